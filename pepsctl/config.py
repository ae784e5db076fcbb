"""Settings: every PEPSCTL_* variable named once, profiles, and the precedence between them.

Store selection, first match wins: ``--store``, ``PEPSCTL_STORE``, the active profile
(``--profile``/``PEPSCTL_PROFILE`` or the one chosen with ``profile use``), the embedded default
(a SQLite file in the user data directory). Profiles live in ``profiles.toml`` in the user config
directory. Imports only the standard library at module level (platformdirs lazily).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pepsctl.errors import InvalidInput, NotFound, UsageError
from pepsctl.i18n import _

APP_NAME = "pepsctl"

# Every environment variable pepsctl reads, named once.
ENV_STORE = "PEPSCTL_STORE"
ENV_PROFILE = "PEPSCTL_PROFILE"
ENV_FORMAT = "PEPSCTL_FORMAT"
ENV_STORE_PASSWORD = "PEPSCTL_STORE_PASSWORD"  # noqa: S105 - a variable's name
ENV_PASSWORD = "PEPSCTL_PASSWORD"  # noqa: S105
ENV_OTP = "PEPSCTL_OTP"
ENV_TOTP_SECRET = "PEPSCTL_TOTP_SECRET"  # noqa: S105
ENV_DEBUG = "PEPSCTL_DEBUG"
ENV_OUTBOX = "PEPSCTL_OUTBOX"
ENV_LANG = "PEPSCTL_LANG"
ENV_CONFIG_DIR = "PEPSCTL_CONFIG_DIR"
ENV_DATA_DIR = "PEPSCTL_DATA_DIR"
ENV_STATE_DIR = "PEPSCTL_STATE_DIR"
ENV_ALLOW_PLAINTEXT_KEYRING = "PEPSCTL_ALLOW_PLAINTEXT_KEYRING"

ALL_ENV = (
    ENV_STORE,
    ENV_PROFILE,
    ENV_FORMAT,
    ENV_STORE_PASSWORD,
    ENV_PASSWORD,
    ENV_OTP,
    ENV_TOTP_SECRET,
    ENV_DEBUG,
    ENV_OUTBOX,
    ENV_LANG,
    ENV_CONFIG_DIR,
    ENV_DATA_DIR,
    ENV_STATE_DIR,
    ENV_ALLOW_PLAINTEXT_KEYRING,
)

PROFILE_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def config_dir() -> Path:
    if value := os.environ.get(ENV_CONFIG_DIR):
        return Path(value)
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def data_dir() -> Path:
    if value := os.environ.get(ENV_DATA_DIR):
        return Path(value)
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def state_dir() -> Path:
    if value := os.environ.get(ENV_STATE_DIR):
        return Path(value)
    import platformdirs

    return Path(platformdirs.user_state_dir(APP_NAME, appauthor=False))


def default_store() -> str:
    return str(data_dir() / "pepsctl.db")


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int = 587
    user: str | None = None
    starttls: bool = True
    sender: str = "pepsctl@localhost"


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    store: str
    outbox: bool = False
    smtp: SmtpSettings | None = None
    sms_command: str | None = None
    sms_url: str | None = None

    def to_toml(self) -> dict[str, Any]:
        data: dict[str, Any] = {"store": self.store}
        if self.outbox:
            data["outbox"] = True
        if self.sms_command:
            data["sms_command"] = self.sms_command
        if self.sms_url:
            data["sms_url"] = self.sms_url
        if self.smtp is not None:
            data["smtp"] = {
                "host": self.smtp.host,
                "port": self.smtp.port,
                "starttls": self.smtp.starttls,
                "sender": self.smtp.sender,
            }
            if self.smtp.user:
                data["smtp"]["user"] = self.smtp.user
        return data


@dataclass(slots=True)
class ProfileFile:
    path: Path
    active: str | None = None
    profiles: dict[str, Profile] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> ProfileFile:
        path = path or config_dir() / "profiles.toml"
        if not path.exists():
            return cls(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise InvalidInput(
                _("Cannot read the profiles file {path}: {reason}").format(path=path, reason=error),
                hint=_("Fix or remove the file."),
            ) from error
        profiles = {}
        for name, raw in (data.get("profiles") or {}).items():
            smtp = raw.get("smtp")
            profiles[name] = Profile(
                name=name,
                store=str(raw.get("store", "")),
                outbox=bool(raw.get("outbox", False)),
                sms_command=raw.get("sms_command"),
                sms_url=raw.get("sms_url"),
                smtp=SmtpSettings(
                    host=str(smtp["host"]),
                    port=int(smtp.get("port", 587)),
                    user=smtp.get("user"),
                    starttls=bool(smtp.get("starttls", True)),
                    sender=str(smtp.get("sender", "pepsctl@localhost")),
                )
                if smtp
                else None,
            )
        return cls(path, data.get("active"), profiles)

    def save(self) -> None:
        lines = []
        if self.active:
            lines.append(f"active = {_toml_str(self.active)}")
        for name, profile in sorted(self.profiles.items()):
            data = profile.to_toml()
            smtp = data.pop("smtp", None)
            lines.append("")
            lines.append(f"[profiles.{_toml_key(name)}]")
            lines.extend(f"{key} = {_toml_value(value)}" for key, value in data.items())
            if smtp:
                lines.append(f"[profiles.{_toml_key(name)}.smtp]")
                lines.extend(f"{key} = {_toml_value(value)}" for key, value in smtp.items())
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines).lstrip("\n") + "\n")
        os.replace(tmp, self.path)

    def get(self, name: str) -> Profile:
        try:
            return self.profiles[name]
        except KeyError:
            raise NotFound(
                _("No profile named {name!r}.").format(name=name),
                hint=_("See 'pepsctl profile list'."),
            ) from None


def validate_profile_name(name: str) -> str:
    if not name or len(name) > 40 or not set(name) <= PROFILE_NAME_CHARS:
        raise InvalidInput(_("A profile name has 1 to 40 letters, digits, '-', '_' or '.'."), field="name")
    return name


def _toml_str(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _toml_key(value: str) -> str:
    return value if set(value) <= PROFILE_NAME_CHARS - {"."} else _toml_str(value)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return _toml_str(str(value))


@dataclass(frozen=True, slots=True)
class StoreChoice:
    """Which store to use and why (shown by ``store status``)."""

    raw: str
    source: str  # option | env | profile:NAME | default
    profile: Profile | None = None


def choose_store(option: str | None, profile_option: str | None = None) -> StoreChoice:
    """Apply the precedence of cli.md: --store, PEPSCTL_STORE, the active profile, the default."""
    if option:
        return StoreChoice(option, "option")
    if value := os.environ.get(ENV_STORE):
        return StoreChoice(value, "env")
    profiles = ProfileFile.load()
    name = profile_option or os.environ.get(ENV_PROFILE) or profiles.active
    if name:
        profile = profiles.get(name)
        return StoreChoice(profile.store, f"profile:{name}", profile)
    return StoreChoice(default_store(), "default")


def output_format(option: str | None) -> str:
    fmt = (option or os.environ.get(ENV_FORMAT) or "table").strip().lower()
    if fmt not in ("table", "json", "csv"):
        raise UsageError(_("Unknown format {fmt!r}.").format(fmt=fmt), hint=_("Use table, json or csv."))
    return fmt
