"""delegations request | list | show | accept | refuse | revoke | grant | revoke-grant."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from pepsctl import output
from pepsctl.commands._options import (
    MAX_ID,
    FormatOpt,
    OtpOpt,
    YesOpt,
    confirm,
    fields_of,
    fmt,
    get_app,
    run,
    sub_app,
)
from pepsctl.commands.rights import LevelOpt, ServicesArg, render_changes
from pepsctl.i18n import _

app = sub_app(
    _(
        "Delegations: a centralizing establishment asks another to act for it; an administrator of the "
        "other accepts or refuses; either side revokes.\n\nExample: pepsctl delegations request 21999001700010"
    )
)

IdArg = Annotated[int, typer.Argument(metavar="ID", help=_("Delegation id from 'delegations list'."), max=MAX_ID)]
AccountArg = Annotated[
    str, typer.Argument(metavar="ID", help=_("One of your establishment's accounts, e.g. JDU000042."))
]
SiretOpt = Annotated[str, typer.Option("--establishment", "-e", help=_("SIRET of the delegated establishment."))]
COLUMNS = ["id", "status", "direction", "centralizer", "establishment", "establishment_name", "services", "ends_at"]


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="delegations")


def _fields() -> list[str]:
    from pepsctl.domain.delegations import DelegationView

    return fields_of(DelegationView)


def _show(view, format, title: str) -> None:
    output.render(view, fmt(format), columns=_fields(), single=True, title=title)


@app.command("request")
def request(
    ctx: typer.Context,
    siret: Annotated[str, typer.Argument(metavar="SIRET", help=_("The establishment you want to act for."))],
    services: Annotated[
        str | None,
        typer.Option(
            "--services", help=_("Comma-separated service codes (default: every service)."), show_default=False
        ),
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option("--until", formats=["%Y-%m-%d"], help=_("Last day of the delegation."), show_default=False),
    ] = None,
    format: FormatOpt = None,
) -> None:
    """Ask an establishment for a delegation to yours (you are the centralizer).

    Its administrators are e-mailed and accept or refuse. Until then the delegation is pending.

    Example: pepsctl delegations request 21999001700010 --services cir,estimation,simulation --until 2027-06-30
    """
    from pepsctl.domain import delegations

    codes = [services] if services else None
    day = until.date() if until else None
    with get_app(ctx).env() as env:
        view = delegations.request(env, siret, services=codes, ends_at=day)
    _show(view, format, _("Delegation requested"))


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        typer.Option("--status", help=_("pending, accepted, refused, revoked or expired."), show_default=False),
    ] = None,
    format: FormatOpt = None,
) -> None:
    """Delegations your establishment asked for (outgoing) or was asked for (incoming).

    Example: pepsctl delegations list --status pending
    """
    from pepsctl.domain import delegations

    with get_app(ctx).env() as env:
        views = delegations.list_delegations(env, status=status)
    output.render(views, fmt(format), columns=_fields(), table_columns=COLUMNS, title=_("Delegations"))


@app.command("show")
def show(ctx: typer.Context, delegation_id: IdArg, format: FormatOpt = None) -> None:
    """Show one delegation: sides, scope, state and who decided.

    Example: pepsctl delegations show 3
    """
    from pepsctl.domain import delegations

    with get_app(ctx).env() as env:
        view = delegations.show(env, delegation_id)
    _show(view, format, _("Delegation"))


@app.command("accept")
def accept(
    ctx: typer.Context, delegation_id: IdArg, yes: YesOpt = False, otp: OtpOpt = None, format: FormatOpt = None
) -> None:
    """Accept a pending request made to your establishment (a sensitive action: one-time code).

    Example: pepsctl delegations accept 3 --yes
    """
    from pepsctl.domain import delegations

    confirm(_("Let the centralizer of delegation {id} act for your establishment?").format(id=delegation_id), yes=yes)
    view = run(get_app(ctx), lambda env: delegations.accept(env, delegation_id), otp=otp)
    _show(view, format, _("Delegation accepted"))


@app.command("refuse")
def refuse(
    ctx: typer.Context,
    delegation_id: IdArg,
    reason: Annotated[
        str | None, typer.Option("--reason", help=_("Why, for the requester (e-mailed)."), show_default=False)
    ] = None,
    format: FormatOpt = None,
) -> None:
    """Refuse a pending request made to your establishment.

    Example: pepsctl delegations refuse 3 --reason "Nous gérons nos comptes nous-mêmes."
    """
    from pepsctl.domain import delegations

    with get_app(ctx).env() as env:
        view = delegations.refuse(env, delegation_id, reason=reason)
    _show(view, format, _("Delegation refused"))


@app.command("revoke")
def revoke(ctx: typer.Context, delegation_id: IdArg, yes: YesOpt = False, format: FormatOpt = None) -> None:
    """End a delegation, from either side; the rights granted through it go at once.

    Example: pepsctl delegations revoke 3 --yes
    """
    from pepsctl.domain import delegations

    confirm(_("Revoke delegation {id} and remove the rights granted through it?").format(id=delegation_id), yes=yes)
    with get_app(ctx).env() as env:
        view, removed = delegations.revoke(env, delegation_id)
    output.info(_("{n} rights removed.").format(n=removed))
    _show(view, format, _("Delegation revoked"))


@app.command("grant")
def grant(
    ctx: typer.Context,
    identifier: AccountArg,
    establishment: SiretOpt,
    services: ServicesArg,
    level: LevelOpt = "read",
    otp: OtpOpt = None,
    format: FormatOpt = None,
) -> None:
    """Give one of your users a right on a delegated establishment's services, within its scope.

    The same as 'rights grant ID SERVICE… --establishment SIRET'.

    Example: pepsctl delegations grant JDU000042 --establishment 21999001700010 cir estimation --level read
    """
    from pepsctl.domain import delegations

    changes = run(
        get_app(ctx),
        lambda env: delegations.grant(env, identifier, establishment, services, level=level),
        otp=otp,
    )
    render_changes(changes, format, title=_("Delegated rights granted"))


@app.command("revoke-grant")
def revoke_grant(
    ctx: typer.Context,
    identifier: AccountArg,
    establishment: SiretOpt,
    services: ServicesArg,
    format: FormatOpt = None,
) -> None:
    """Remove rights given on a delegated establishment's services.

    Example: pepsctl delegations revoke-grant JDU000042 --establishment 21999001700010 cir
    """
    from pepsctl.domain import delegations

    with get_app(ctx).env() as env:
        changes = delegations.revoke_grant(env, identifier, establishment, services)
    render_changes(changes, format, title=_("Delegated rights revoked"))
