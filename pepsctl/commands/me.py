"""me show | update | totp enroll | totp remove: your own account."""

from __future__ import annotations

from typing import Annotated

import typer

from pepsctl import output
from pepsctl.commands._options import FormatOpt, OtpOpt, fmt, get_app, run, sub_app
from pepsctl.i18n import _

app = sub_app(_("Your own account: details, phone, authenticator app.\n\nExample: pepsctl me show"))
totp_app = sub_app(
    _("Authenticator apps (TOTP) as a second factor.\n\nExample: pepsctl me totp enroll"),
)
app.add_typer(totp_app, name="totp")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="me")


@app.command("show")
def show(ctx: typer.Context, format: FormatOpt = None) -> None:
    """Show your account, with your full phone number.

    Example: pepsctl me show --format json
    """
    from pepsctl.domain import me

    with get_app(ctx).env() as env:
        view = me.show(env)
    output.render(view, fmt(format), single=True, title=_("My account"))


@app.command("update")
def update(
    ctx: typer.Context,
    email: Annotated[
        str | None, typer.Option("--email", help=_("New e-mail (needs a code)."), show_default=False)
    ] = None,
    phone: Annotated[
        str | None,
        typer.Option(
            "--phone", help=_("New phone: a code to the old number, then one to the new."), show_default=False
        ),
    ] = None,
    function: Annotated[
        str | None, typer.Option("--function", help=_("Function or service."), show_default=False)
    ] = None,
    otp: OtpOpt = None,
    format: FormatOpt = None,
) -> None:
    """Change your e-mail, phone or function. Contact changes are confirmed by one-time codes.

    Without a terminal, each step stops with exit 6 and says where the next code went: run the same
    command again with --otp CODE.

    Example: pepsctl me update --phone "06 12 34 56 78" --otp 123456
    """
    from pepsctl.domain import me

    view = run(get_app(ctx), lambda env: me.update(env, email=email, phone=phone, function=function), otp=otp)
    output.render(view, fmt(format), single=True, title=_("My account"))


@totp_app.command("enroll")
def totp_enroll(
    ctx: typer.Context,
    code: Annotated[
        str | None,
        typer.Option("--code", help=_("The first code shown by the app: activates the enrolment."), show_default=False),
    ] = None,
    otp: OtpOpt = None,
) -> None:
    """Enrol an authenticator app (needs a one-time code): scan the QR code, then confirm with its first code.

    The secret is shown only now. In CI, keep it in PEPSCTL_TOTP_SECRET so that pepsctl computes
    the codes itself.

    Example: pepsctl me totp enroll   (then)   pepsctl me totp enroll --code 123456
    """
    from pepsctl.domain import me

    app_ = get_app(ctx)
    if code:
        with app_.env() as env:
            me.totp_confirm(env, code)
        output.success(_("Authenticator app enrolled: use 'pepsctl login --totp' and --otp with its codes."))
        return
    enrolment = run(app_, me.totp_enroll, otp=otp)
    _show_qr(enrolment.uri)
    typer.echo(enrolment.uri)
    output.info(_("Secret (shown only now): {secret}").format(secret=enrolment.secret))
    output.info(_("Then confirm with: pepsctl me totp enroll --code CODE"))


def _show_qr(uri: str) -> None:
    import io
    import sys

    import qrcode

    if not sys.stderr.isatty():
        return
    qr = qrcode.QRCode(border=1)
    qr.add_data(uri)
    buffer = io.StringIO()
    qr.print_ascii(out=buffer, invert=True)
    sys.stderr.write(buffer.getvalue())


@totp_app.command("remove")
def totp_remove(ctx: typer.Context, otp: OtpOpt = None) -> None:
    """Remove your authenticator app (needs a one-time code).

    Example: pepsctl me totp remove --otp 123456
    """
    from pepsctl.domain import me

    removed = run(get_app(ctx), me.totp_remove, otp=otp)
    output.success(_("Authenticator app removed.") if removed else _("No authenticator app was enrolled."))
