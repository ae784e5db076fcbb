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


def read_password(*, stdin: bool, prompt: str, confirm_twice: bool = False) -> str:
    """A password from --password-stdin, PEPSCTL_PASSWORD, or a hidden prompt on a terminal."""
    if stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise UsageError(_("No password on standard input."))
        return password
    if value := os.environ.get(config.ENV_PASSWORD):
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
