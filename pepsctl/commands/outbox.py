"""outbox list | show: what the built-in gateway 'sent' (e-mails, SMS, voice calls)."""

from __future__ import annotations

from typing import Annotated

import typer

from pepsctl import output
from pepsctl.commands._options import MAX_ID, FormatOpt, fmt, get_app, sub_app
from pepsctl.errors import InvalidInput, UsageError
from pepsctl.i18n import _

app = sub_app(
    _(
        "Messages sent through the built-in outbox gateway (codes, e-mails).\n\n"
        "Example: pepsctl outbox list --to marie.durand@demoville.fr"
    )
)

COLUMNS = ["id", "channel", "to", "subject", "code", "created_at"]


def _check(ctx: typer.Context):
    app_ = get_app(ctx)
    if not app_.outbox_allowed:
        raise UsageError(
            _("The outbox is not enabled on this remote store."),
            hint=_("Enable it with PEPSCTL_OUTBOX=1 or 'profile add --outbox'."),
        )
    return app_


@app.command("list")
def list_(
    ctx: typer.Context,
    to: Annotated[
        str | None, typer.Option("--to", help=_("Only messages to this address."), show_default=False)
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", help=_("Only the newest N."), show_default=False, min=0, max=MAX_ID)
    ] = None,
    format: FormatOpt = None,
) -> None:
    """List messages, oldest first; a code is blanked once used or expired.

    Example: pepsctl outbox list --to marie.durand@demoville.fr --format json
    """
    from pepsctl.domain import notify

    if to is not None and not to.isprintable():  # NUL, controls, undecodable bytes: no address has them
        raise InvalidInput(_("--to takes an e-mail address or a phone number."), field="to")
    with _check(ctx).env(auth=False) as env:
        views = notify.list_outbox(env.session, to=to, limit=limit)
    output.render(
        views,
        fmt(format),
        columns=["id", "channel", "to", "subject", "body", "code", "created_at"],
        table_columns=COLUMNS,
        title=_("Outbox"),
    )


@app.command("show")
def show(
    ctx: typer.Context,
    message_id: Annotated[int, typer.Argument(metavar="ID", help=_("Message id from 'outbox list'."), max=MAX_ID)],
    format: FormatOpt = None,
) -> None:
    """Show one message in full.

    Example: pepsctl outbox show 3
    """
    from pepsctl.domain import notify

    with _check(ctx).env(auth=False) as env:
        view = notify.show_outbox(env.session, message_id)
    output.render(view, fmt(format), single=True, title=_("Message"))
