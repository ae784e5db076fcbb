"""Option types shared by the commands, and the one confirmation helper."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from typing import Annotated

import typer

from pepsctl import config
from pepsctl.context import AppContext
from pepsctl.errors import ConfirmationRefused, UsageError
from pepsctl.i18n import _


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


# Ids (batches, delegations, outbox messages) are 32-bit integers in the store: a larger number is a
# usage error (exit 2), never a failure of the database driver.
MAX_ID = 2**31 - 1

FormatOpt = Annotated[
    Format | None,
    typer.Option(
        "--format",
        "-f",
        help=_("Output format: table for people, json or csv for scripts. Default: PEPSCTL_FORMAT or table."),
        case_sensitive=False,
        show_default=False,
    ),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help=_("Do not ask for confirmation."))]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help=_("Show what would change; write nothing."))]
EstablishmentOpt = Annotated[
    str | None,
    typer.Option(
        "--establishment", "-e", help=_("SIRET of the establishment (default: your own)."), show_default=False
    ),
]
ScopeOpt = Annotated[
    str | None,
    typer.Option(
        "--establishment",
        "-e",
        help=_(
            "Only this establishment (SIRET). Default: your own and every establishment that delegated "
            "account management to yours."
        ),
        show_default=False,
    ),
]
OtpOpt = Annotated[
    str | None,
    typer.Option(
        "--otp",
        envvar=config.ENV_OTP,
        help=_("One-time code received by SMS or voice call."),
        show_default=False,
    ),
]
PasswordStdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help=_("Read the password from the first line of standard input."))
]


def get_app(ctx: typer.Context) -> AppContext:
    """The application object the root callback put on ``ctx.obj``."""
    obj = ctx.find_root().obj
    if not isinstance(obj, AppContext):  # pragma: no cover - only when a sub-app runs alone
        obj = AppContext()
        ctx.find_root().obj = obj
    return obj


def fmt(option: Format | None) -> str:
    return config.output_format(option.value if option else None)


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def confirm(question: str, *, yes: bool) -> None:
    """Ask on a terminal; ``--yes`` skips; no terminal and no ``--yes`` refuses with exit 2."""
    if yes:
        return
    if not interactive():
        raise ConfirmationRefused(
            _("Confirmation needed and there is no terminal to ask: {question}").format(question=question),
            hint=_("Add --yes to confirm."),
        )
    if not typer.confirm(question, default=False, err=True):
        raise ConfirmationRefused(_("Cancelled: nothing was changed."))


def read_password(*, stdin: bool, prompt: str, confirm_twice: bool = False, env: bool = True) -> str:
    """A password from --password-stdin, PEPSCTL_PASSWORD (when ``env``), or a hidden prompt on a terminal."""
    if stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise UsageError(_("No password on standard input."))
        return password
    if env and (value := os.environ.get(config.ENV_PASSWORD)):
        return value
    if not interactive():
        raise UsageError(
            _("A password is needed and there is no terminal to ask for it."),
            hint=_("Use --password-stdin or set PEPSCTL_PASSWORD."),
        )
    return typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm_twice, err=True)


def fields_of(view_class: type) -> list[str]:
    """The field names of a view dataclass: the JSON keys and CSV header, even for no rows."""
    import dataclasses

    return [f.name for f in dataclasses.fields(view_class)]


def sub_app(help: str, **kwargs) -> typer.Typer:
    """A command group with the project's settings (plain help: fast start-up)."""
    kwargs.setdefault("no_args_is_help", True)
    return typer.Typer(help=help, rich_markup_mode=None, **kwargs)


def otp_or_totp(otp: str | None) -> str | None:
    """The code given with --otp/PEPSCTL_OTP, else one computed from PEPSCTL_TOTP_SECRET (CI)."""
    if otp == "":
        # An empty --otp (e.g. --otp "$CODE" with CODE unset) must not be read as "send me a new
        # code": that would invalidate the pending code and cost an SMS.
        raise UsageError(
            _("--otp was given an empty value."),
            hint=_("Give the 6-digit code, or leave --otp out to receive a new one."),
        )
    if otp:
        return otp
    if secret := os.environ.get(config.ENV_TOTP_SECRET):
        from pepsctl.domain import totp

        return totp.current_code(secret)
    return None


def run(app_: AppContext, operation, *, otp: str | None = None, auth: bool = True):
    """Run ``operation(env)`` in one transaction (replayed after a PostgreSQL serialization failure or
    deadlock, see :meth:`AppContext.transact`); when it needs a one-time code, ask on a terminal.

    Without a terminal the OtpRequired error (exit 6) says where the code went; the same command
    repeated with --otp CODE completes. On a terminal the code is asked and the operation runs again.
    """
    from pepsctl import output
    from pepsctl.errors import OtpRequired

    code = otp_or_totp(otp)
    for _attempt in range(4):
        try:
            return app_.transact(operation, auth=auth, otp=code)
        except OtpRequired as needed:
            if not interactive():
                raise
            output.info(needed.message)
            code = typer.prompt(_("One-time code"), err=True).strip()
    raise UsageError(_("Too many codes asked in one command."))
