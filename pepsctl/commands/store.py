"""init, store status, store upgrade."""

from __future__ import annotations

from typing import Annotated

import typer

from pepsctl import output
from pepsctl.commands._options import DryRunOpt, FormatOpt, YesOpt, confirm, fmt, get_app, sub_app
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
    """Apply the pending schema migrations and service catalogue changes.

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


@store_app.command("purge")
def purge(
    ctx: typer.Context,
    older_than: Annotated[
        int, typer.Option("--older-than", help=_("Retention period in days (default 365: 12 months; at least 30)."))
    ] = 365,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    format: FormatOpt = None,
) -> None:
    """Delete what is older than the retention period: history, outbox, batches, ended codes and sessions.

    The audit trail stays verifiable ('history verify' starts from the anchor the purge leaves) and
    the purge itself is recorded. A store operator's job: no login; on PostgreSQL run it with the
    owner role (the application role cannot delete audit events).

    Example: pepsctl store purge --older-than 365 --dry-run
    """
    from pepsctl.domain import retention

    app = get_app(ctx)
    if not dry_run:
        confirm(
            _("Delete everything older than {days} days from {store}?").format(
                days=older_than, store=app.store.display
            ),
            yes=yes,
        )
    with app.env(auth=False) as env:
        view = retention.purge(env, older_than_days=older_than, dry_run=dry_run)
    output.render(view, fmt(format), single=True, title=_("Purge (dry run)") if dry_run else _("Purged"))
