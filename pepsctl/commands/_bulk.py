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


def check_report(path: Path | None) -> None:
    """Refuse a --report path that cannot be written before the import runs, not after it applied:
    exit 3 with the message of an --output path that cannot be written."""
    import errno
    import os

    from pepsctl.errors import InvalidInput

    if path is None or str(path) == "-":
        return
    if path.is_dir():
        reason = errno.EISDIR
    elif path.exists():
        reason = 0 if os.access(path, os.W_OK) else errno.EACCES
    elif not path.parent.is_dir():
        reason = errno.ENOENT
    else:
        reason = 0 if os.access(path.parent, os.W_OK | os.X_OK) else errno.EACCES
    if reason:
        raise InvalidInput(
            _("Cannot write {path}: {reason}").format(path=path, reason=os.strerror(reason)), field="output"
        )


ReportOpt = Annotated[
    Path | None,
    typer.Option(
        "--report",
        help=_("Write the rejected rows, with a 'reason' column, to this CSV (checked before the import runs)."),
        show_default=False,
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
