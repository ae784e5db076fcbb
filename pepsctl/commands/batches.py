"""batches list | show | undo."""

from __future__ import annotations

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
from pepsctl.i18n import _

app = sub_app(_("Applied bulk files: what they changed, and undo.\n\nExample: pepsctl batches list"))

COLUMNS = ["id", "kind", "created_at", "actor", "file_name", "rows_total", "rows_changed", "rows_rejected", "undone_at"]
IdArg = Annotated[int, typer.Argument(metavar="ID", help=_("Batch id from 'batches list'."), max=MAX_ID)]


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="batches")


@app.command("list")
def list_(ctx: typer.Context, format: FormatOpt = None) -> None:
    """List the batches applied to your establishment.

    Example: pepsctl batches list --format json
    """
    from pepsctl.domain import batches

    with get_app(ctx).env() as env:
        views = batches.list_batches(env)
    output.render(views, fmt(format), columns=fields_of(batches.BatchView), table_columns=COLUMNS, title=_("Batches"))


@app.command("show")
def show(ctx: typer.Context, batch_id: IdArg, format: FormatOpt = None) -> None:
    """Show a batch's counts and its per-row changes (phones in full: this is an administrator's view).

    Example: pepsctl batches show 3
    """
    from pepsctl.domain import batches

    with get_app(ctx).env() as env:
        view, changes = batches.show(env, batch_id)
    if fmt(format) == "json":
        import dataclasses

        output.render(
            {**dataclasses.asdict(view), "changes": [dataclasses.asdict(c) for c in changes]}, "json", single=True
        )
        return
    if fmt(format) == "table":
        output.render(view, "table", single=True, title=_("Batch {id}").format(id=batch_id))
    output.render(changes, fmt(format), columns=fields_of(batches.ChangeView), title=_("Changes"))


@app.command("undo")
def undo(
    ctx: typer.Context,
    batch_id: IdArg,
    force: Annotated[bool, typer.Option("--force", help=_("Undo even if some rows changed after the batch."))] = False,
    yes: YesOpt = False,
    otp: OtpOpt = None,
    format: FormatOpt = None,
) -> None:
    """Restore the exact previous values of a batch, in one transaction (audited, itself a batch).

    Example: pepsctl batches undo 3 --yes
    """
    from pepsctl.domain import batches

    confirm(_("Undo batch {id}?").format(id=batch_id), yes=yes)
    result = run(get_app(ctx), lambda env: batches.undo(env, batch_id, force=force), otp=otp)
    if format is not None:
        output.render(result, fmt(format), single=True)
    output.success(
        _("Batch {id} undone: {n} rows restored (recorded as batch {undo}).").format(
            id=batch_id, n=result.restored, undo=result.undo_batch_id
        )
    )
