"""history [filters] and history verify."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from pepsctl import output
from pepsctl.commands._options import MAX_ID, EstablishmentOpt, FormatOpt, fmt, get_app, sub_app
from pepsctl.errors import CheckFailed, InvalidInput
from pepsctl.i18n import _

app = sub_app(
    _(
        "The audit trail: every change and every authentication event.\n\n"
        "Example: pepsctl history --account JDU000042 --since 2025-07-01"
    ),
    invoke_without_command=True,
    no_args_is_help=False,
)

COLUMNS = ["id", "at", "actor", "establishment", "action", "target", "batch_id", "delegation_id", "before", "after"]


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="history")


def _since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: an offset that leaves the years 1-9999
        raise InvalidInput(
            _("Cannot read the date {value!r}.").format(value=value),
            field="since",
            hint=_("Use YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)."),
        ) from None


@app.callback()
def history(
    ctx: typer.Context,
    account: Annotated[
        str | None, typer.Option("--account", help=_("Events about or by this account."), show_default=False)
    ] = None,
    establishment: EstablishmentOpt = None,
    action: Annotated[
        str | None,
        typer.Option("--action", help=_("Only this action (a trailing * matches a prefix)."), show_default=False),
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help=_("From this date (UTC)."), show_default=False)] = None,
    batch: Annotated[
        int | None, typer.Option("--batch", help=_("Only this batch."), show_default=False, max=MAX_ID)
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", help=_("Only the newest N events."), show_default=False, min=0, max=MAX_ID),
    ] = None,
    format: FormatOpt = None,
) -> None:
    """Show the audit trail of your establishment.

    Example: pepsctl history --account JDU000042 --since 2025-07-01
    """
    if ctx.invoked_subcommand is not None:
        return
    from pepsctl.domain import history as history_ops
    from pepsctl.domain import validation

    if action is not None and not action.isprintable():  # NUL, controls, undecodable bytes: no action has them
        raise InvalidInput(
            _("Cannot read the action {value!r}.").format(value=action),
            field="action",
            hint=_("An action is a name such as account.update, or a prefix and * such as otp.*."),
        )
    filters = history_ops.HistoryFilter(
        account=validation.normalize_identifier(account) if account else None,
        establishment=validation.normalize_siret(establishment) if establishment else None,
        action=action,
        since=_since(since),
        batch_id=batch,
        limit=limit,
    )
    with get_app(ctx).env() as env:
        events = history_ops.list_events(env, filters)
    output.render(events, fmt(format), columns=COLUMNS, title=_("History"))  # every field of EventView


@app.command("verify")
def verify(ctx: typer.Context, format: FormatOpt = None) -> None:
    """Check that the audit trail is intact: exit 1 and name the first bad event if not.

    Example: pepsctl history verify
    """
    from pepsctl.domain import history as history_ops

    with get_app(ctx).env(auth=False) as env:
        result = history_ops.verify(env.session)
    if format is not None:
        output.render(result, fmt(format), single=True)
    if not result.ok:
        if result.first_bad_id:
            message = _("The audit trail is broken at event {id}: it {reason}.")
        else:  # the reason is then a whole clause ("the newest events were removed")
            message = _("The audit trail is broken at the end of the trail: {reason}.")
        raise CheckFailed(
            message.format(id=result.first_bad_id, reason=result.reason),
            hint=_("{n} events before it are intact. Restore the store from a backup.").format(n=result.checked),
        )
    output.success(_("The audit trail is intact ({n} events).").format(n=result.checked))
