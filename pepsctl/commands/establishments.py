"""establishments register | list | show | update | accept-cgu."""

from __future__ import annotations

from typing import Annotated

import typer

from pepsctl import output
from pepsctl.commands._options import FormatOpt, OtpOpt, fields_of, fmt, get_app, run, sub_app
from pepsctl.errors import InvalidInput
from pepsctl.i18n import _

app = sub_app(
    _("Register establishments and manage their details.\n\nExample: pepsctl establishments show 21999001700010")
)

COLUMNS = [
    "siret",
    "name",
    "status",
    "registration_path",
    "funds",
    "administrators",
    "accounts",
    "cgu_version",
]

FundOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--fund",
        help=_("A fund contract as FUND=CONTRACT_NUMBER (CNRACL, IRCANTEC, RAFP, FNC); repeat for several."),
        show_default=False,
    ),
]


def _funds(values: list[str] | None):
    from pepsctl.domain.models import FundContract

    funds = []
    for value in values or []:
        fund, sep, number = value.partition("=")
        if not fund.strip():
            raise InvalidInput(
                _("Cannot read --fund {value!r}: write FUND=CONTRACT_NUMBER.").format(value=value),
                field="fund",
            )
        funds.append(FundContract(fund.strip(), number.strip() if sep else None))
    return tuple(funds)


@app.command("register")
def register(
    ctx: typer.Context,
    siret: Annotated[str, typer.Option("--siret", help=_("The establishment's SIRET (14 digits)."))],
    name: Annotated[str, typer.Option("--name", help=_("The establishment's name."))],
    admin_civility: Annotated[str, typer.Option("--admin-civility", help=_("M or MME."))],
    admin_last_name: Annotated[str, typer.Option("--admin-last-name", help=_("First administrator's last name."))],
    admin_first_name: Annotated[str, typer.Option("--admin-first-name", help=_("First administrator's first name."))],
    admin_email: Annotated[
        str, typer.Option("--admin-email", help=_("Professional e-mail: the activation code goes there."))
    ],
    admin_phone: Annotated[str, typer.Option("--admin-phone", help=_("Personal phone for one-time codes."))],
    fund: FundOpt = None,
    via: Annotated[
        str,
        typer.Option("--via", help=_("Registration path: classic (contract numbers) or net-entreprises.")),
    ] = "classic",
    admin_function: Annotated[
        str | None, typer.Option("--admin-function", help=_("Function or service."), show_default=False)
    ] = None,
    otp: OtpOpt = None,
    format: FormatOpt = None,
) -> None:
    """Register an establishment; you become its first administrator.

    A sensitive action: a one-time code is first sent to --admin-phone (without a terminal the
    command exits 6; run it again with --otp CODE). Then an e-mail with an activation code (valid
    15 days) is sent to --admin-email; set your password with 'pepsctl password set'.

    Example: pepsctl establishments register --siret 21999001700010 --name "Mairie de Démoville"
    --fund CNRACL=C-75-004213 --admin-civility MME --admin-last-name Durand --admin-first-name Marie
    --admin-email marie.durand@demoville.fr --admin-phone "06 10 20 30 40"
    """
    from pepsctl.domain import establishments
    from pepsctl.domain.models import NewAdministrator, NewEstablishment

    new = NewEstablishment(
        siret=siret,
        name=name,
        funds=_funds(fund),
        via=via,
        admin=NewAdministrator(
            civility=admin_civility,
            last_name=admin_last_name,
            first_name=admin_first_name,
            email=admin_email,
            phone=admin_phone,
            function=admin_function,
        ),
    )
    result = run(get_app(ctx), lambda env: establishments.register(env, new), otp=otp, auth=False)
    output.render(result, fmt(format), single=True, title=_("Registered"))
    output.info(
        _("An activation code was sent to {email}. Then: pepsctl password set {identifier} --code CODE").format(
            email=result.activation_sent_to, identifier=result.administrator
        )
    )


@app.command("list")
def list_(ctx: typer.Context, format: FormatOpt = None) -> None:
    """List the establishments you administer.

    Example: pepsctl establishments list --format csv
    """
    from pepsctl.domain import establishments

    with get_app(ctx).env() as env:
        views = establishments.list_establishments(env)
    from pepsctl.domain.models import EstablishmentView

    output.render(
        views, fmt(format), columns=fields_of(EstablishmentView), table_columns=COLUMNS, title=_("Establishments")
    )


@app.command("show")
def show(
    ctx: typer.Context,
    siret: Annotated[str, typer.Argument(help=_("SIRET of the establishment."))],
    format: FormatOpt = None,
) -> None:
    """Show an establishment's details, funds and CGU acceptance.

    Example: pepsctl establishments show 21999001700010
    """
    from pepsctl.domain import establishments

    with get_app(ctx).env() as env:
        view = establishments.show(env, siret)
    output.render(view, fmt(format), single=True, title=_("Establishment"))


@app.command("update")
def update(
    ctx: typer.Context,
    siret: Annotated[str, typer.Argument(help=_("SIRET of the establishment."))],
    name: Annotated[str | None, typer.Option("--name", help=_("New name."), show_default=False)] = None,
    fund: FundOpt = None,
    format: FormatOpt = None,
) -> None:
    """Change an establishment's name or fund contracts (--fund replaces the whole list).

    Example: pepsctl establishments update 21999001700010 --fund CNRACL=C-75-004213 --fund RAFP=R-1
    """
    from pepsctl.domain import establishments
    from pepsctl.domain.models import EstablishmentChanges

    changes = EstablishmentChanges(name=name, funds=_funds(fund) if fund else None)
    with get_app(ctx).env() as env:
        view = establishments.update(env, siret, changes)
    output.render(view, fmt(format), single=True, title=_("Establishment"))


@app.command("accept-cgu")
def accept_cgu(
    ctx: typer.Context,
    siret: Annotated[str, typer.Argument(help=_("SIRET of the establishment."))],
    format: FormatOpt = None,
) -> None:
    """Accept the platform's terms of use (CGU) for the establishment; administrators only.

    Example: pepsctl establishments accept-cgu 21999001700010
    """
    from pepsctl.domain import establishments

    with get_app(ctx).env() as env:
        view = establishments.accept_cgu(env, siret)
    output.render(view, fmt(format), single=True, title=_("Establishment"))
