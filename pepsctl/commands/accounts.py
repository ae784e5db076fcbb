"""accounts create | list | show | update | renew | delete | expiring."""

from __future__ import annotations

from typing import Annotated

import typer

from pepsctl import output
from pepsctl.commands._options import (
    EstablishmentOpt,
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
from pepsctl.i18n import _

app = sub_app(
    _("Nominative accounts: create, list, update, renew, delete.\n\nExample: pepsctl accounts list --status locked")
)

LIST_COLUMNS = [
    "identifier",
    "profile",
    "status",
    "civility",
    "last_name",
    "first_name",
    "email",
    "phone",
    "function",
    "expires_at",
]


def _fields() -> list[str]:
    from pepsctl.domain.models import AccountView

    return fields_of(AccountView)


IdArg = Annotated[str, typer.Argument(help=_("Account identifier, e.g. JDU000042."))]


@app.command("create")
def create(
    ctx: typer.Context,
    civility: Annotated[str, typer.Option("--civility", help=_("M or MME."))],
    last_name: Annotated[str, typer.Option("--last-name", help=_("Last name."))],
    first_name: Annotated[str, typer.Option("--first-name", help=_("First name."))],
    email: Annotated[str, typer.Option("--email", help=_("Professional e-mail (the activation code goes there)."))],
    profile: Annotated[str, typer.Option("--profile", help=_("admin or user."))] = "user",
    phone: Annotated[
        str | None, typer.Option("--phone", help=_("Personal phone for one-time codes."), show_default=False)
    ] = None,
    function: Annotated[
        str | None, typer.Option("--function", help=_("Function or service."), show_default=False)
    ] = None,
    establishment: EstablishmentOpt = None,
    otp: OtpOpt = None,
    format: FormatOpt = None,
) -> None:
    """Create a nominative account; the agent gets an activation e-mail (valid 15 days).

    A sensitive action: without a session stepped up by a code, a one-time code is sent to your phone.

    Example: pepsctl accounts create --profile user --civility MME --last-name Dupont
    --first-name Jeanne --email jeanne.dupont@mairie.fr --phone "06 12 34 56 78"
    """
    from pepsctl.domain import accounts
    from pepsctl.domain.models import NewAccount

    new = NewAccount(
        profile=profile,
        civility=civility,
        last_name=last_name,
        first_name=first_name,
        email=email,
        phone=phone,
        function=function,
        establishment=establishment,
    )
    view = run(get_app(ctx), lambda env: accounts.create(env, new), otp=otp)
    output.render(view, fmt(format), single=True, title=_("Account created"))
    output.info(_("Hand the identifier {identifier} to the agent.").format(identifier=view.identifier))


@app.command("list")
def list_(
    ctx: typer.Context,
    establishment: EstablishmentOpt = None,
    profile: Annotated[str | None, typer.Option("--profile", help=_("admin or user."), show_default=False)] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help=_("active, pending, locked or expired."), show_default=False),
    ] = None,
    missing_phone: Annotated[bool, typer.Option("--missing-phone", help=_("Only accounts with no phone."))] = False,
    format: FormatOpt = None,
) -> None:
    """List the accounts of your establishment (phones masked).

    Example: pepsctl accounts list --missing-phone --format csv
    """
    from pepsctl.domain import accounts
    from pepsctl.domain.models import AccountFilter

    filters = AccountFilter(
        establishment=establishment,
        profile=profile,
        status=status.strip().lower() if status else None,
        missing_phone=missing_phone,
    )
    with get_app(ctx).env() as env:
        views = accounts.list_accounts(env, filters)
    output.render(views, fmt(format), columns=_fields(), table_columns=LIST_COLUMNS, title=_("Accounts"))


@app.command("show")
def show(ctx: typer.Context, identifier: IdArg, format: FormatOpt = None) -> None:
    """Show one account in full.

    Example: pepsctl accounts show JDU000042
    """
    from pepsctl.domain import accounts

    with get_app(ctx).env() as env:
        view = accounts.show(env, identifier)
    output.render(view, fmt(format), single=True, title=_("Account"))


@app.command("update")
def update(
    ctx: typer.Context,
    identifier: IdArg,
    profile: Annotated[
        str | None,
        typer.Option("--profile", help=_("admin or user (promote or demote)."), show_default=False),
    ] = None,
    civility: Annotated[str | None, typer.Option("--civility", show_default=False)] = None,
    last_name: Annotated[str | None, typer.Option("--last-name", show_default=False)] = None,
    first_name: Annotated[str | None, typer.Option("--first-name", show_default=False)] = None,
    email: Annotated[str | None, typer.Option("--email", show_default=False)] = None,
    phone: Annotated[str | None, typer.Option("--phone", show_default=False)] = None,
    clear_phone: Annotated[bool, typer.Option("--clear-phone", help=_("Remove the phone number."))] = False,
    function: Annotated[str | None, typer.Option("--function", show_default=False)] = None,
    clear_function: Annotated[bool, typer.Option("--clear-function", help=_("Remove the function."))] = False,
    otp: OtpOpt = None,
    format: FormatOpt = None,
) -> None:
    """Change an account's details or profile; demoting the last administrator is refused.

    Example: pepsctl accounts update JDU000042 --phone "06 12 34 56 78" --profile admin
    """
    from pepsctl.domain import accounts
    from pepsctl.domain.models import AccountChanges

    changes = AccountChanges(
        profile=profile,
        civility=civility,
        last_name=last_name,
        first_name=first_name,
        email=email,
        phone=phone,
        clear_phone=clear_phone,
        function=function,
        clear_function=clear_function,
    )
    view = run(get_app(ctx), lambda env: accounts.update(env, identifier, changes), otp=otp)
    output.render(view, fmt(format), single=True, title=_("Account"))


@app.command("renew")
def renew(
    ctx: typer.Context,
    identifiers: Annotated[list[str], typer.Argument(help=_("One or more account identifiers."))],
    format: FormatOpt = None,
) -> None:
    """Renew accounts for 18 months from today.

    Example: pepsctl accounts renew JDU000042 KBE000043
    """
    from pepsctl.domain import accounts

    with get_app(ctx).env() as env:
        views = accounts.renew(env, identifiers)
    output.render(
        views,
        fmt(format),
        columns=_fields(),
        table_columns=["identifier", "last_name", "first_name", "status", "expires_at"],
        title=_("Renewed"),
    )


@app.command("delete")
def delete(ctx: typer.Context, identifier: IdArg, yes: YesOpt = False, format: FormatOpt = None) -> None:
    """Delete the account of someone who left; the last administrator cannot be deleted.

    Example: pepsctl accounts delete JDU000042 --yes
    """
    from pepsctl.domain import accounts

    confirm(_("Delete account {identifier}?").format(identifier=identifier), yes=yes)
    with get_app(ctx).env() as env:
        view = accounts.delete(env, identifier)
    if format is not None:
        output.render(view, fmt(format), single=True)
    output.success(_("Deleted {identifier}.").format(identifier=view.identifier))


@app.command("expiring")
def expiring(
    ctx: typer.Context,
    within: Annotated[int, typer.Option("--within", help=_("Days ahead."))] = 31,
    establishment: EstablishmentOpt = None,
    format: FormatOpt = None,
) -> None:
    """Accounts that expire within the next DAYS days.

    Example: pepsctl accounts expiring --within 60
    """
    from pepsctl.domain import accounts

    with get_app(ctx).env() as env:
        views = accounts.expiring(env, within_days=within, siret=establishment)
    output.render(views, fmt(format), columns=_fields(), table_columns=LIST_COLUMNS, title=_("Accounts expiring"))


@app.command("unlock")
def unlock(ctx: typer.Context, identifier: IdArg, yes: YesOpt = False, format: FormatOpt = None) -> None:
    """Unlock a locked account of your establishment; the agent then sets a new password from an e-mailed code.

    Example: pepsctl accounts unlock JDU000042 --yes
    """
    from pepsctl.domain import accounts

    confirm(_("Unlock account {identifier}?").format(identifier=identifier), yes=yes)
    with get_app(ctx).env() as env:
        view = accounts.unlock(env, identifier)
    if format is not None:
        output.render(view, fmt(format), single=True)
    output.success(
        _("Unlocked {identifier}: a code to set a new password was e-mailed to {email}.").format(
            identifier=view.identifier, email=view.email
        )
    )
