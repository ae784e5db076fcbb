"""rights catalog | list | grant | revoke | copy | matrix | import."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pepsctl import output
from pepsctl.commands._bulk import PROGRESS_THRESHOLD, QuietOpt, ReportOpt, SkipInvalidOpt, check_report, finish
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
from pepsctl.i18n import _

app = sub_app(
    _(
        "Service rights: the catalogue, and what each account may do on each service "
        "(write = modification, read = lecture seule).\n\n"
        "Example: pepsctl rights grant JDU000042 cir estimation --level read"
    )
)

IdArg = Annotated[str, typer.Argument(help=_("Account identifier, e.g. JDU000042."))]
ServicesArg = Annotated[
    list[str], typer.Argument(metavar="SERVICE...", help=_("Service codes from 'pepsctl rights catalog'."))
]
LevelOpt = Annotated[
    str, typer.Option("--level", "-l", help=_("write (modification) or read (lecture seule); none revokes."))
]
DelegatedOpt = Annotated[
    str | None,
    typer.Option(
        "--establishment",
        "-e",
        help=_("SIRET of a delegated establishment: the right applies there (default: the account's own)."),
        show_default=False,
    ),
]
RIGHT_COLUMNS = ["establishment", "service", "label", "level", "via", "delegation_id", "active"]
LEGEND = {"write": "W", "read": "R"}


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="rights")


def render_changes(changes, format, *, title: str) -> None:
    from pepsctl.domain.rights import RightChange

    if not changes and fmt(format) == "table":
        output.info(_("Nothing to change."))
        return
    output.render(changes, fmt(format), columns=fields_of(RightChange), title=title)


@app.command("catalog")
def catalog(
    ctx: typer.Context,
    theme: Annotated[
        str | None, typer.Option("--theme", help=_("Only this theme, e.g. Carrière."), show_default=False)
    ] = None,
    fund: Annotated[
        str | None,
        typer.Option("--fund", help=_("Only this fund: CNRACL, IRCANTEC, RAFP, FNC or ALL."), show_default=False),
    ] = None,
    format: FormatOpt = None,
) -> None:
    """List the PEP's services rights are granted on: code, label, theme, fund, sensitive.

    Granting a right to a sensitive service needs a one-time code. Services held_by admin (account
    management) come with the administrator profile and are never granted.

    Example: pepsctl rights catalog --theme "Droits à pensions"
    """
    from pepsctl.domain import catalogue

    with get_app(ctx).env(auth=False) as env:
        views = catalogue.list_catalogue(env.session, theme=theme, fund=fund)
    output.render(views, fmt(format), columns=fields_of(catalogue.ServiceView), title=_("Services"))


@app.command("list")
def list_(
    ctx: typer.Context,
    identifier: IdArg,
    establishment: Annotated[
        str | None,
        typer.Option("--establishment", "-e", help=_("Only the rights on this SIRET."), show_default=False),
    ] = None,
    format: FormatOpt = None,
) -> None:
    """An account's rights: on its establishment and on the establishments delegated to it.

    via tells where a right comes from: profile (administrators), direct, or delegation;
    active is false for a right whose delegation ended.

    Example: pepsctl rights list JDU000042 --format json
    """
    from pepsctl.domain import rights

    with get_app(ctx).env() as env:
        views = rights.list_rights(env, identifier, establishment=establishment)
    output.render(
        views,
        fmt(format),
        columns=fields_of(rights.RightView),
        table_columns=RIGHT_COLUMNS,
        title=_("Rights of {identifier}").format(identifier=identifier.upper()),
    )


@app.command("grant")
def grant(
    ctx: typer.Context,
    identifier: IdArg,
    services: ServicesArg,
    level: LevelOpt = "read",
    establishment: DelegatedOpt = None,
    otp: OtpOpt = None,
    format: FormatOpt = None,
) -> None:
    """Grant an account a right on services (a different level is replaced).

    A right on a sensitive service needs a one-time code. With --establishment, the right is on a
    delegated establishment's service, within the delegation's scope.

    Example: pepsctl rights grant JDU000042 cir estimation --level write
    """
    from pepsctl.domain import rights

    changes = run(
        get_app(ctx),
        lambda env: rights.grant(env, identifier, services, level=level, establishment=establishment),
        otp=otp,
    )
    render_changes(changes, format, title=_("Rights granted"))


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    identifier: IdArg,
    services: ServicesArg,
    establishment: DelegatedOpt = None,
    format: FormatOpt = None,
) -> None:
    """Remove an account's rights on services.

    Example: pepsctl rights revoke JDU000042 references-bancaires
    """
    from pepsctl.domain import rights

    with get_app(ctx).env() as env:
        changes = rights.revoke(env, identifier, services, establishment=establishment)
    render_changes(changes, format, title=_("Rights revoked"))


@app.command("copy")
def copy(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(metavar="FROM_ID", help=_("Account whose rights are copied."))],
    target: Annotated[str, typer.Argument(metavar="TO_ID", help=_("Account whose rights are replaced."))],
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    otp: OtpOpt = None,
    format: FormatOpt = None,
) -> None:
    """Replace TO_ID's rights by FROM_ID's: shows what changes, then asks for confirmation.

    Both accounts belong to one establishment; delegated rights still in force are copied too.

    Example: pepsctl rights copy JDU000042 PMA000043 --dry-run
    """
    from pepsctl.domain import rights

    app_ = get_app(ctx)
    with app_.env() as env:
        plan = rights.plan_copy(env, source, target)
    render_changes(plan, format, title=_("Rights of {id} after the copy").format(id=target.upper()))
    if dry_run or not plan:
        return
    confirm(_("Apply these {n} changes to {id}?").format(n=len(plan), id=target.upper()), yes=yes)
    done = run(app_, lambda env: rights.copy(env, source, target), otp=otp)
    output.success(_("{n} rights changed on {id}.").format(n=len(done), id=target.upper()))


@app.command("matrix")
def matrix(
    ctx: typer.Context,
    establishment: EstablishmentOpt = None,
    theme: Annotated[
        str | None, typer.Option("--theme", help=_("Only this theme's services."), show_default=False)
    ] = None,
    format: FormatOpt = None,
) -> None:
    """Accounts × services of one establishment: W = write, R = read, blank = none.

    The table shows the services anyone holds a right on; CSV has one column per service of the
    catalogue (write, read or empty); JSON gives each account's rights as an object.

    Example: pepsctl rights matrix --format csv > rights.csv
    """
    from pepsctl.domain import rights

    with get_app(ctx).env() as env:
        grid = rights.matrix(env, establishment=establishment, theme=theme)
    render_matrix(grid, fmt(format))


def render_matrix(grid, fmt_: str) -> None:
    from pepsctl.output import Column

    base = ["identifier", "last_name", "first_name", "profile"]
    if fmt_ == "json":
        output.render(
            ({**{k: getattr(r, k) for k in base}, "rights": r.rights} for r in grid.rows),
            "json",
            columns=[*base, "rights"],
        )
        return
    codes = [s.code for s in grid.services]
    if fmt_ == "table":
        used = {code for r in grid.rows for code in r.rights}
        codes = [c for c in codes if c in used]
        cells = LEGEND
    else:
        cells = {"write": "write", "read": "read"}
    rows = (
        {**{k: getattr(r, k) for k in base}, **{c: cells.get(r.rights.get(c, ""), "") for c in codes}}
        for r in grid.rows
    )
    columns = [*base, *(Column(c, justify="center") for c in codes)]
    output.render(rows, fmt_, columns=columns, title=_("Rights in {siret}").format(siret=grid.establishment))


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(help=_("CSV file: identifier (or email), service, level, and optionally establishment.")),
    ],
    dry_run: DryRunOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    report: ReportOpt = None,
    quiet: QuietOpt = False,
    yes: YesOpt = False,
    otp: OtpOpt = None,
    format: FormatOpt = None,
) -> None:
    """Set service rights in bulk from a CSV: every row validated first, then one transaction, undoable.

    One row per account and service; level write (modification), read (lecture seule) or none
    (aucun, or empty) to remove. Rights not in the file stay as they are. An establishment column
    (SIRET) puts the right on a delegated establishment, within the delegation's scope. Any invalid
    row means nothing is written (exit 3) unless --skip-invalid. Applying needs a one-time code.

    Example: pepsctl rights import rights.csv --dry-run    then    pepsctl rights import rights.csv --yes
    """
    from pepsctl.domain import rights_bulk

    check_report(report)
    app_ = get_app(ctx)
    source = rights_bulk.read_file(str(file))
    for warning in source.warnings:
        output.warn(warning)
    if not dry_run:
        confirm(_("Apply the rights of {path} ({n} rows)?").format(path=file, n=len(source.rows)), yes=yes)
    options = rights_bulk.ImportOptions(dry_run=dry_run, skip_invalid=skip_invalid)
    with output.progress(
        len(source.rows), _("Checking rows"), enabled=not quiet and len(source.rows) >= PROGRESS_THRESHOLD
    ) as advance:
        result = run(app_, lambda env: rights_bulk.import_file(env, source, options, progress=advance), otp=otp)
    finish(result, source.headers, report, format, dry_run)
