"""login, logout, whoami, password set."""

from __future__ import annotations

from typing import Annotated

import typer

from pepsctl import output
from pepsctl.commands._options import FormatOpt, PasswordStdinOpt, fmt, get_app, read_password, sub_app
from pepsctl.i18n import _

password_app = sub_app(_("Set or change passwords.\n\nExample: pepsctl password set JDU000042 --code ABCD-EFGH-JKMN"))


def register(root: typer.Typer) -> None:
    root.command("login")(login)
    root.command("logout")(logout)
    root.command("whoami")(whoami)
    root.add_typer(password_app, name="password")


def login(
    ctx: typer.Context,
    identifier: Annotated[str, typer.Argument(help=_("Your account identifier, e.g. JDU000042."))],
    password_stdin: PasswordStdinOpt = False,
    format: FormatOpt = None,
) -> None:
    """Log in to the store and keep the session in the OS keyring.

    Example: echo "$PASSWORD" | pepsctl login JDU000042 --password-stdin
    """
    from pepsctl.domain import auth

    app = get_app(ctx)
    password = read_password(stdin=password_stdin, prompt=_("Password"))
    with app.env(auth=False) as env:
        result = auth.login(env, identifier, password)
    app.save_token(result.token)
    if format is None:
        output.success(
            _("Logged in as {identifier} ({establishment}) until {until:%Y-%m-%d %H:%M} UTC at the latest.").format(
                identifier=result.session.identifier,
                establishment=result.session.establishment_name,
                until=result.session.session_expires_at,
            )
        )
    else:
        output.render(result.session, fmt(format), single=True)


def logout(ctx: typer.Context) -> None:
    """End the session here and in the store.

    Example: pepsctl logout
    """
    from pepsctl.domain import auth

    app = get_app(ctx)
    token = app.current_token()
    with app.env(auth=False) as env:
        ended = auth.logout(env, token)
    app.forget_token()
    output.success(_("Logged out.") if ended else _("You were not logged in."))


def whoami(ctx: typer.Context, format: FormatOpt = None) -> None:
    """Who you are, in which establishment, and until when the session lasts.

    Example: pepsctl whoami --format json
    """
    from pepsctl.domain import auth

    app = get_app(ctx)
    with app.env(auth=False) as env:
        view = auth.whoami(env, app.current_token())
    output.render(view, fmt(format), single=True, title=_("Session"))


@password_app.command("set")
def set_password(
    ctx: typer.Context,
    identifier: Annotated[str, typer.Argument(help=_("Account identifier, e.g. JDU000042."))],
    code: Annotated[str, typer.Option("--code", help=_("The activation or reset code from the e-mail."))],
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Set your password with the code from the activation (or reset) e-mail.

    The password has 12 to 128 characters; common passwords and your own names are refused.

    Example: pepsctl password set JDU000042 --code ABCD-EFGH-JKLM
    """
    from pepsctl.domain import auth

    app = get_app(ctx)
    password = read_password(stdin=password_stdin, prompt=_("New password"), confirm_twice=True)
    with app.env(auth=False) as env:
        auth.set_password(env, identifier, code, password)
    output.success(
        _("Password set. Log in with 'pepsctl login {identifier}'.").format(identifier=identifier.strip().upper())
    )
