"""pepsctl: administration of PEP's establishments, accounts, rights and two-factor readiness."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # The version comes from the package metadata, read only when asked for (importlib.metadata
    # costs ~30 ms at start-up, which every command would pay).
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("pepsctl")
        except PackageNotFoundError:  # pragma: no cover - a source tree without install
            return "0+unknown"
    raise AttributeError(name)
