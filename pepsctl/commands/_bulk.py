"""What every bulk import command shares: its options and how it reports the result."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pepsctl import output
from pepsctl.commands._options import fields_of, fmt
from pepsctl.i18n import _

PROGRESS_THRESHOLD = 5000

SkipInvalidOpt = Annotated[
    bool, typer.Option("--skip-invalid", help=_("Apply the valid rows even if some are invalid."))
]


def _writable_report(value: Path | None) -> Path | None:
    """Refuse a --report path that cannot be written before the import runs, not after it applied."""
    import os

    if value is None or str(value) == "-":
        return value
    if value.is_dir():
        raise typer.BadParameter(_("{path} is a directory.").format(path=value))
    if value.exists():
        writable = os.access(value, os.W_OK)
    else:
        folder = value.parent
        if not folder.is_dir():
            raise typer.BadParameter(_("the folder {path} does not exist.").format(path=folder))
        writable = os.access(folder, os.W_OK | os.X_OK)
    if not writable:
        raise typer.BadParameter(_("{path} cannot be written (permission denied).").format(path=value))
    return value


ReportOpt = Annotated[
    Path | None,
    typer.Option(
        "--report",
        help=_("Write the rejected rows, with a 'reason' column, to this CSV (checked before the import runs)."),
        show_default=False,
        callback=_writable_report,
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help=_("No progress bar."))]


def finish(result, headers: list[str], report: Path | None, format, dry_run: bool) -> None:
    from pepsctl.domain import bulk, csvio

    if report is not None:
        rows = csvio.report_rows(headers, result.rejects)
        columns = [*(h for h in headers if h), "line", "reason"]
        output.write_csv(report, rows, columns, delimiter=";")
        output.info(_("Rejected rows written to {path}.").format(path=report))
    shown = result.plan if dry_run else [p for p in result.plan if p.action == bulk.REJECT]
    if dry_run or shown:
        output.render(
            [p for p in shown if p.action != bulk.UNCHANGED] if fmt(format) == "table" else shown,
            fmt(format),
            columns=fields_of(bulk.PlanRow),
            title=_("Plan") if dry_run else _("Rejected rows"),
        )
    elif format is not None:
        output.render(result.summary(), fmt(format), single=True)
    summary = _("{total} rows: {changed} to change, {unchanged} unchanged, {rejected} rejected.").format(
        total=result.total, changed=result.changed, unchanged=result.unchanged, rejected=result.rejected
    )
    if dry_run:
        output.info(summary + " " + _("Dry run: nothing was written."))
    elif result.applied:
        output.success(
            summary + " " + _("Applied as batch {id} (undo: pepsctl batches undo {id}).").format(id=result.batch_id)
        )
    elif result.error is None:
        output.info(summary + " " + _("Nothing to change."))
    if result.error is not None:
        raise result.error
