"""Keyring access for session tokens, workstation trust tokens and remote store passwords.

- Session and trust tokens (short-lived) go to the OS keyring; when no backend exists (headless
  machines raise ``NoKeyringError`` even on reads) they fall back to a 0600 file in the user state
  directory, with a one-line warning.
- A remote store's password comes from ``PEPSCTL_STORE_PASSWORD`` or the keyring, never from a file;
  a plaintext keyring backend is refused for it unless ``PEPSCTL_ALLOW_PLAINTEXT_KEYRING=1``.
- ``PYTHON_KEYRING_BACKEND`` is honoured (keyring reads it itself).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from pathlib import Path

from pepsctl import config
from pepsctl.errors import PepsError, StoreError
from pepsctl.i18n import _

SERVICE = "pepsctl"
STORE_SERVICE = "pepsctl-store"

log = logging.getLogger(__name__)
_warned = False


class KeyringUnavailable(PepsError):
    exit_code = 9


def _keyring():
    import keyring

    return keyring


def _no_keyring_errors() -> tuple[type[BaseException], ...]:
    from keyring.errors import KeyringError

    return (KeyringError,)


def _fallback_path() -> Path:
    return config.state_dir() / "tokens.json"


def _warn_fallback() -> None:
    global _warned
    if not _warned:
        _warned = True
        sys.stderr.write(
            _("Warning: no OS keyring here; tokens are kept in {path} (mode 0600).").format(path=_fallback_path())
            + "\n"
        )


def _read_fallback() -> dict[str, str]:
    path = _fallback_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_fallback(data: dict[str, str]) -> None:
    path = _fallback_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.replace(tmp, path)


def get_token(name: str) -> str | None:
    """Read a session or trust token (``name`` identifies the store and the kind)."""
    try:
        value = _keyring().get_password(SERVICE, name)
    except _no_keyring_errors():
        _warn_fallback()
        return _read_fallback().get(name)
    return value


def set_token(name: str, token: str) -> None:
    try:
        kr = _keyring()
        kr.set_password(SERVICE, name, token)
        if kr.get_password(SERVICE, name) != token:
            raise StoreError(_("The keyring did not keep the session token."))
    except _no_keyring_errors():
        _warn_fallback()
        data = _read_fallback()
        data[name] = token
        _write_fallback(data)


def delete_token(name: str) -> None:
    try:
        kr = _keyring()
        try:
            kr.delete_password(SERVICE, name)
        except _password_delete_error():
            pass
    except _no_keyring_errors():
        data = _read_fallback()
        if data.pop(name, None) is not None:
            _write_fallback(data)


def _password_delete_error() -> type[BaseException]:
    from keyring.errors import PasswordDeleteError

    return PasswordDeleteError


def get_store_password(store_display: str) -> str | None:
    """The remote store's password: ``PEPSCTL_STORE_PASSWORD``, else the keyring, else None."""
    if value := os.environ.get(config.ENV_STORE_PASSWORD):
        return value
    try:
        return _keyring().get_password(STORE_SERVICE, store_display)
    except _no_keyring_errors():
        return None


def set_store_password(store_display: str, password: str) -> None:
    """Keep a store password in the keyring, refusing plaintext backends, and read it back."""
    kr = _keyring()
    try:
        backend = kr.get_keyring()
        if _is_plaintext(backend) and not config.env_flag(config.ENV_ALLOW_PLAINTEXT_KEYRING):
            raise KeyringUnavailable(
                _("The keyring backend {name} stores passwords in plain text.").format(name=type(backend).__name__),
                hint=_(
                    "Use a real OS keyring, or set PEPSCTL_STORE_PASSWORD in the environment instead "
                    "(PEPSCTL_ALLOW_PLAINTEXT_KEYRING=1 accepts the plaintext backend)."
                ),
            )
        kr.set_password(STORE_SERVICE, store_display, password)
        if kr.get_password(STORE_SERVICE, store_display) != password:
            raise KeyringUnavailable(_("The keyring did not keep the store password."))
    except _no_keyring_errors() as error:
        raise KeyringUnavailable(
            _("No OS keyring is available to keep the store password."),
            hint=_("Set PEPSCTL_STORE_PASSWORD in the environment of the commands instead."),
        ) from error


def delete_store_password(store_display: str) -> None:
    with contextlib.suppress(Exception):  # nothing to delete, or no keyring: both fine
        _keyring().delete_password(STORE_SERVICE, store_display)


def _is_plaintext(backend: object) -> bool:
    name = f"{type(backend).__module__}.{type(backend).__name__}".lower()
    return "plaintext" in name or "uncrypted" in name or "unencrypted" in name
