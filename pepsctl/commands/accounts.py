"""accounts create | list | show | update | renew | delete | expiring | unlock | import | export."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from pepsctl import output
from pepsctl.commands._bulk import PROGRESS_THRESHOLD, QuietOpt, ReportOpt, SkipInvalidOpt, check_report
from pepsctl.commands._options import (
    DryRunOpt,
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
from pepsctl.errors import UsageError
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
    identifiers: Annotated[
        list[str] | None, typer.Argument(help=_("One or more account identifiers (or --file)."), show_default=False)
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", help=_("CSV file with an identifier column: renew every account listed."), show_default=False
        ),
    ] = None,
    establishment: EstablishmentOpt = None,
    dry_run: DryRunOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    report: ReportOpt = None,
    quiet: QuietOpt = False,
    yes: YesOpt = False,
    otp: OtpOpt = None,
    format: FormatOpt = None,
) -> None:
    """Renew accounts for 18 months from today: the ones named, or every one listed in a CSV file.

    With --file, every row is checked first, then all are renewed in one transaction, recorded as a
    batch that 'batches undo' reverses (a bulk change: it needs a one-time code, like every import).
    An account already valid until the new date is left unchanged. --establishment, --dry-run,
    --skip-invalid, --report, --quiet, --yes and --otp apply to --file.

    Example: pepsctl accounts renew JDU000042 KBE000043    or    pepsctl accounts renew --file expiring.csv --yes
    """
    from pepsctl.domain import accounts

    if file is not None:
        if identifiers:
            raise UsageError(_("Give account identifiers or --file FILE, not both."))
        _renew_file(ctx, file, establishment, dry_run, skip_invalid, report, quiet, yes, otp, format)
        return
    if not identifiers:
        raise UsageError(
            _("Give at least one account identifier, or --file FILE."),
            hint=_("Example: pepsctl accounts renew JDU000042"),
        )
    file_only = {
        "--establishment": establishment is not None,
        "--dry-run": dry_run,
        "--skip-invalid": skip_invalid,
        "--report": report is not None,
    }
    if given := [name for name, used in file_only.items() if used]:
        raise UsageError(_("These options need --file: {options}.").format(options=", ".join(given)))
    with get_app(ctx).env() as env:
        views = accounts.renew(env, identifiers)
    output.render(
        views,
        fmt(format),
        columns=_fields(),
        table_columns=["identifier", "last_name", "first_name", "status", "expires_at"],
        title=_("Renewed"),
    )


def _renew_file(ctx, file, establishment, dry_run, skip_invalid, report, quiet, yes, otp, format) -> None:
    from pepsctl.domain import accounts_bulk

    check_report(report)
    source = accounts_bulk.read_renew_file(str(file))
    for warning in source.warnings:
        output.warn(warning)
    if not dry_run:
        confirm(_("Renew the accounts of {path} ({n} rows)?").format(path=file, n=len(source.rows)), yes=yes)
    options = accounts_bulk.RenewOptions(dry_run=dry_run, skip_invalid=skip_invalid, establishment=establishment)
    with output.progress(
        len(source.rows), _("Checking rows"), enabled=not quiet and len(source.rows) >= PROGRESS_THRESHOLD
    ) as advance:
        result = run(
            get_app(ctx), lambda env: accounts_bulk.renew_file(env, source, options, progress=advance), otp=otp
        )
    _finish(result, source.headers, report, format, dry_run)


def _finish(result, headers: list[str], report: Path | None, format, dry_run: bool) -> None:
    """Like the other imports, but stdout always carries the plan (the rejected rows when nothing was
    written): after an import it names the identifiers of the new accounts."""
    from pepsctl.domain import bulk, csvio

    if report is not None:
        rows = csvio.report_rows(headers, result.rejects)
        columns = [*(h for h in headers if h), "line", "reason"]
        output.write_csv(report, rows, columns, delimiter=";")
        output.info(_("Rejected rows written to {path}.").format(path=report))
    failed = result.error is not None
    shown = [p for p in result.plan if p.action == bulk.REJECT] if failed else result.plan
    if fmt(format) == "table":
        shown = [p for p in shown if p.action != bulk.UNCHANGED]
    if shown or fmt(format) != "table":
        output.render(
            shown,
            fmt(format),
            columns=fields_of(bulk.PlanRow),
            title=_("Rejected rows") if failed else _("Plan") if dry_run else _("Changes"),
        )
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


class ImportMode(StrEnum):
    upsert = "upsert"
    create_only = "create-only"
    update_only = "update-only"


class ExportFormat(StrEnum):
    csv = "csv"
    json = "json"


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help=_(
                "CSV file: identifier, civility, last_name, first_name, email, phone, function, profile "
                "(French or English headers)."
            )
        ),
    ],
    mode: Annotated[
        ImportMode,
        typer.Option(
            "--mode",
            help=_("upsert: rows with an identifier update, rows without create; create-only; update-only."),
            case_sensitive=False,
        ),
    ] = ImportMode.upsert,
    establishment: EstablishmentOpt = None,
    dry_run: DryRunOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    allow_shared: Annotated[
        bool, typer.Option("--allow-shared", help=_("Accept one number for several accounts."))
    ] = False,
    report: ReportOpt = None,
    quiet: QuietOpt = False,
    yes: YesOpt = False,
    otp: OtpOpt = None,
    format: FormatOpt = None,
) -> None:
    """Create and update accounts in bulk from a CSV: every row validated first, one transaction, undoable.

    A row with an identifier updates that account (an empty cell changes nothing); a row without one
    creates an account, whose agent is e-mailed an activation code. Other columns (status,
    expires_at, rights…) are ignored with a warning; a NIR column is dropped. Any invalid row means
    nothing is written (exit 3) unless --skip-invalid; the same file twice changes nothing the second
    time. Applying needs a one-time code (a sensitive action).

    Example: pepsctl accounts import agents.csv --dry-run    then    pepsctl accounts import agents.csv --yes
    """
    from pepsctl.domain import accounts_bulk

    check_report(report)
    source = accounts_bulk.read_file(str(file))
    for warning in source.warnings:
        output.warn(warning)
    if not dry_run:
        confirm(_("Apply the accounts of {path} ({n} rows)?").format(path=file, n=len(source.rows)), yes=yes)
    options = accounts_bulk.ImportOptions(
        mode=mode.value,
        dry_run=dry_run,
        skip_invalid=skip_invalid,
        allow_shared=allow_shared,
        establishment=establishment,
    )
    with output.progress(
        len(source.rows), _("Checking rows"), enabled=not quiet and len(source.rows) >= PROGRESS_THRESHOLD
    ) as advance:
        result = run(
            get_app(ctx), lambda env: accounts_bulk.import_file(env, source, options, progress=advance), otp=otp
        )
    _finish(result, source.headers, report, format, dry_run)


@app.command("export")
def export(
    ctx: typer.Context,
    output_file: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help=_("Write here (CSV: UTF-8 with BOM, ';' for French Excel; mode 0600)."),
            show_default=False,
        ),
    ] = None,
    establishment: EstablishmentOpt = None,
    format: Annotated[
        ExportFormat, typer.Option("--format", "-f", help=_("csv (default) or json."), case_sensitive=False)
    ] = ExportFormat.csv,
) -> None:
    """Export the accounts of the establishment, phones in full, ready to edit and import back.

    Columns: identifier, civility, last_name, first_name, email, phone, function, profile, status,
    expires_at. Cells a spreadsheet would run as formulas are neutralised (and restored on import):
    importing the file unchanged changes nothing.

    Example: pepsctl accounts export --output accounts.csv
    """
    from pepsctl.domain import accounts_bulk

    with get_app(ctx).env() as env:
        rows = accounts_bulk.export(env, establishment)
    columns = accounts_bulk.EXPORT_COLUMNS
    if output_file is None:
        output.render(rows, format.value, columns=columns)
        return
    if format is ExportFormat.json:
        fd = output.create_private(output_file)
        with open(fd, "w", encoding="utf-8") as handle:
            output.render(rows, "json", columns=columns, file=handle)
        count = len(rows)
    else:
        count = output.write_csv(output_file, rows, columns, delimiter=";")
    output.success(_("Wrote {n} accounts to {path}.").format(n=count, path=output_file))


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
