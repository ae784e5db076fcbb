"""pepsctl: administration of PEP's establishments, accounts, rights and two-factor readiness."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pepsctl")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"
