"""phones template | import | check: every account gets a correct, personal phone before the switch-over."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pepsctl import output
from pepsctl.commands._bulk import PROGRESS_THRESHOLD, QuietOpt, ReportOpt, SkipInvalidOpt, check_report
from pepsctl.commands._bulk import finish as _finish
from pepsctl.commands._options import (
    DryRunOpt,
    FormatOpt,
    OtpOpt,
    ScopeOpt,
    YesOpt,
    confirm,
    fields_of,
    fmt,
    get_app,
    run,
    sub_app,
)
from pepsctl.errors import CheckFailed
from pepsctl.i18n import _

app = sub_app(
    _(
        "Phones for one-time codes: a template to fill, a bulk import, a check.\n\n"
        "Example: pepsctl phones template --output phones.csv"
    )
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="phones")


@app.command("template")
def template(
    ctx: typer.Context,
    missing_only: Annotated[bool, typer.Option("--missing-only", help=_("Only accounts with no phone."))] = False,
    establishment: ScopeOpt = None,
    output_file: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help=_("Write the CSV here (UTF-8 with BOM, ';' for French Excel)."), show_default=False
        ),
    ] = None,
) -> None:
    """A CSV with one row per account (identifier, names, e-mail, current phone, establishment) to fill in and import.

    A centre de gestion gets the accounts of every establishment that delegated account management
    to it, each row naming its establishment (SIRET and name).

    Example: pepsctl phones template --missing-only --output phones.csv
    """
    from pepsctl.domain import phones

    with get_app(ctx).env() as env:
        rows = phones.template(env, missing_only=missing_only, siret=establishment)
    if output_file is None:
        output.render(rows, "csv", columns=phones.TEMPLATE_COLUMNS)
        return
    count = output.write_csv(output_file, rows, phones.TEMPLATE_COLUMNS, delimiter=";")
    output.success(_("Wrote {n} rows to {path}.").format(n=count, path=output_file))


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help=_("CSV file: identifier (or email) and phone columns."))],
    dry_run: DryRunOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    allow_shared: Annotated[
        bool, typer.Option("--allow-shared", help=_("Accept one number for several accounts."))
    ] = False,
    report: ReportOpt = None,
    establishment: ScopeOpt = None,
    quiet: QuietOpt = False,
    yes: YesOpt = False,
    otp: OtpOpt = None,
    format: FormatOpt = None,
) -> None:
    """Update phones in bulk from a CSV: every row validated first, then one transaction, undoable.

    Any invalid row means nothing is written (exit 3) unless --skip-invalid. The same file twice
    changes nothing the second time. Applying needs a one-time code (a sensitive action). Rows may
    name accounts of every establishment you act for (yours, and those that delegated account
    management to yours); a row for any other account is rejected.

    Example: pepsctl phones import phones.csv --dry-run    then    pepsctl phones import phones.csv --yes
    """
    from pepsctl.domain import phones

    check_report(report)
    app_ = get_app(ctx)
    source = phones.read_file(str(file))
    for warning in source.warnings:
        output.warn(warning)
    if not dry_run:
        confirm(_("Apply the phones of {path} ({n} rows)?").format(path=file, n=len(source.rows)), yes=yes)
    options = phones.ImportOptions(
        dry_run=dry_run, skip_invalid=skip_invalid, allow_shared=allow_shared, establishment=establishment
    )
    with output.progress(
        len(source.rows), _("Checking rows"), enabled=not quiet and len(source.rows) >= PROGRESS_THRESHOLD
    ) as advance:
        result = run(app_, lambda env: phones.import_file(env, source, options, progress=advance), otp=otp)
    _finish(result, source.headers, report, format, dry_run)


@app.command("check")
def check(ctx: typer.Context, establishment: ScopeOpt = None, format: FormatOpt = None) -> None:
    """Find missing, invalid and shared phone numbers; exit 1 when there are any.

    Over your establishment and every establishment that delegated account management to yours
    (or the one --establishment names).

    Example: pepsctl phones check --format csv > problems.csv
    """
    from pepsctl.domain import phones

    with get_app(ctx).env() as env:
        findings = phones.check(env, siret=establishment)
    output.render(findings, fmt(format), columns=fields_of(phones.Finding), title=_("Phone problems"))
    if findings:
        raise CheckFailed(
            _("{n} phone problem(s) found.").format(n=len(findings)),
            hint=_("Fill in 'pepsctl phones template --missing-only' and import it with 'pepsctl phones import'."),
        )
    output.success(_("Every account has a valid personal phone."))
