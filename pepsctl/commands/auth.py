"""login, logout, whoami, password set."""

from __future__ import annotations

import dataclasses
import os
from typing import Annotated

import typer

from pepsctl import output
from pepsctl.commands._options import (
    FormatOpt,
    OtpOpt,
    PasswordStdinOpt,
    fmt,
    get_app,
    interactive,
    read_password,
    run,
    sub_app,
)
from pepsctl.config import ENV_TOTP_SECRET
from pepsctl.errors import PhoneRequired
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
    otp: OtpOpt = None,
    use_totp: Annotated[
        bool, typer.Option("--totp", help=_("Use your authenticator app's code instead of SMS or voice."))
    ] = False,
    phone: Annotated[
        str | None,
        typer.Option("--phone", help=_("Your personal phone, if your account has none yet."), show_default=False),
    ] = None,
    format: FormatOpt = None,
) -> None:
    """Log in: password, then a one-time code at the first login and every 7 days on this workstation.

    Without a terminal, the first call sends the code and exits 6; the same call with --otp CODE
    completes. The session lives in the OS keyring.

    Example: echo "$PASSWORD" | pepsctl login JDU000042 --password-stdin --otp 123456
    """
    from pepsctl.domain import auth

    app = get_app(ctx)
    password = read_password(stdin=password_stdin, prompt=_("Password"))
    trust_name = app.trust_name(identifier)
    request = auth.LoginRequest(
        identifier=identifier,
        password=password,
        # A script that gives an authenticator secret (PEPSCTL_TOTP_SECRET) means the app, not SMS.
        use_totp=use_totp or (not otp and bool(os.environ.get(ENV_TOTP_SECRET))),
        trust_token=app.load_secret(trust_name),
        phone=phone,
    )
    try:
        result = run(app, lambda env: auth.login(env, dataclasses.replace(request, otp=env.otp)), otp=otp, auth=False)
    except PhoneRequired as needed:
        if phone or not interactive():
            raise
        output.info(needed.message)
        request = dataclasses.replace(request, phone=typer.prompt(_("Your personal phone number"), err=True))
        result = run(app, lambda env: auth.login(env, dataclasses.replace(request, otp=env.otp)), otp=otp, auth=False)
    app.save_token(result.token)
    if result.trust_token:
        app.keep_secret(trust_name, result.trust_token)
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


def whoami(
    ctx: typer.Context,
    can: Annotated[
        tuple[str, str] | None,
        typer.Option(
            "--can",
            metavar="ACTION TARGET",
            help=_(
                "Explain whether you may run ACTION on TARGET, and which rule decides. ACTION: read:SERVICE, "
                "write:SERVICE, or a gate action such as account.update; TARGET: an account identifier, "
                "a SIRET or delegation:ID. Exit 0 when allowed, 7 when refused."
            ),
            show_default=False,
        ),
    ] = None,
    format: FormatOpt = None,
) -> None:
    """Who you are, in which establishment, and until when the session lasts.

    With --can, the authorization gate explains one decision instead.

    Example: pepsctl whoami --can read:cir 21999001700010
    """
    from pepsctl.domain import auth

    app = get_app(ctx)
    if can is not None and can[0] is not None:
        from pepsctl.domain import authz

        with app.env() as env:
            explained = authz.explain(env, can[0], can[1])
        output.render(explained, fmt(format), single=True, title=_("Authorization"))
        if not explained.allowed:
            raise typer.Exit(7)
        return
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


@password_app.command("forgot")
def forgot(
    ctx: typer.Context,
    identifier: Annotated[str, typer.Argument(help=_("Your account identifier."))],
    email: Annotated[str, typer.Option("--email", help=_("The e-mail address of the account."))],
) -> None:
    """Ask for a reset code by e-mail (valid 24 hours); the answer is the same whether or not they match.

    Example: pepsctl password forgot JDU000042 --email jeanne.dupont@mairie.fr
    """
    from pepsctl.domain import auth

    with get_app(ctx).env(auth=False) as env:
        auth.forgot(env, identifier, email)
    output.success(
        _(
            "If this identifier and e-mail match an account, a reset code was sent to that e-mail. "
            "Then: pepsctl password set IDENTIFIER --code CODE"
        )
    )


@password_app.command("change")
def change(
    ctx: typer.Context,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin", help=_("Read the current password, then the new one, from two lines of standard input.")
        ),
    ] = False,
    otp: OtpOpt = None,
) -> None:
    """Change your password: the current one and a one-time code; ends your other sessions.

    Example: printf '%s\\n%s\\n' "$OLD" "$NEW" | pepsctl password change --password-stdin --otp 123456
    """
    from pepsctl.domain import auth

    app = get_app(ctx)
    current = read_password(stdin=password_stdin, prompt=_("Current password"))
    new = read_password(stdin=password_stdin, prompt=_("New password"), confirm_twice=True, env=False)
    run(app, lambda env: auth.change_password(env, current, new), otp=otp)
    output.success(_("Password changed; your other sessions and trusted workstations were ended."))
