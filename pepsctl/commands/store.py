"""init, store status, store upgrade."""

from __future__ import annotations

from typing import Annotated

import typer

from pepsctl import output
from pepsctl.commands._options import FormatOpt, fmt, get_app, sub_app
from pepsctl.i18n import _

store_app = sub_app(_("The store's schema: status and upgrade.\n\nExample: pepsctl store status --format json"))


def register(root: typer.Typer) -> None:
    root.command("init")(init)
    root.add_typer(store_app, name="store")


def init(
    ctx: typer.Context,
    demo: Annotated[
        bool, typer.Option("--demo", help=_("Add a sample establishment with accounts to explore."))
    ] = False,
) -> None:
    """Create the store (or upgrade it) so that pepsctl can use it.

    Example: pepsctl init --demo
    """
    from pepsctl.domain import demo as demo_ops
    from pepsctl.domain import schema
    from pepsctl.store.engine import translate_errors

    app = get_app(ctx)
    engine = app.engine(create=True, check_schema=False)
    with translate_errors(app.store):
        new = schema.initialise(engine)
    output.success(
        (_("Created the store {store}.") if new else _("The store {store} is ready.")).format(store=app.store.display)
    )
    if demo:
        with app.env(auth=False) as env:
            result = demo_ops.build(env)
        if result.created:
            output.success(
                _("Added the demo establishment {siret} with {n} accounts.").format(
                    siret=result.siret, n=result.accounts
                )
            )
        else:
            output.info(_("The demo establishment {siret} is already there.").format(siret=result.siret))
        output.info(
            _(
                "Log in as its administrator, with its password and its authenticator app's secret:\n"
                "  echo '{password}' | PEPSCTL_TOTP_SECRET={secret} pepsctl login {identifier} --password-stdin --totp"
            ).format(password=result.password, secret=result.totp_secret, identifier=result.administrator)
        )
        if result.centralizer_administrator:
            output.info(
                _(
                    "The demo centre de gestion, which acts for the Mairie through a delegation, has the "
                    "administrator {identifier} (same password and secret)."
                ).format(identifier=result.centralizer_administrator)
            )
    else:
        output.info(_("Next: register your establishment with 'pepsctl establishments register --help'."))


@store_app.command("status")
def status(ctx: typer.Context, format: FormatOpt = None) -> None:
    """Show which store is used, its schema version, pending migrations and counts.

    Example: pepsctl store status --format json
    """
    from pepsctl.domain import schema
    from pepsctl.store.engine import translate_errors

    app = get_app(ctx)
    engine = app.engine(check_schema=False)
    with translate_errors(app.store):
        state = schema.status(engine, store=app.store.display, source=app.choice.source, dialect=app.store.dialect)
    output.render(state, fmt(format), single=True, title=_("Store"))


@store_app.command("upgrade")
def upgrade(ctx: typer.Context) -> None:
    """Apply the pending schema migrations.

    Example: pepsctl store upgrade
    """
    from pepsctl.domain import schema
    from pepsctl.store.engine import translate_errors

    app = get_app(ctx)
    engine = app.engine(check_schema=False)
    with translate_errors(app.store):
        applied = schema.upgrade(engine)
    if applied:
        output.success(_("Applied: {revisions}.").format(revisions=", ".join(applied)))
    else:
        output.info(_("The store is up to date."))
