"""audit readiness | generic | stale, and notify expiring."""

from __future__ import annotations

from typing import Annotated

import typer

from pepsctl import output
from pepsctl.commands._options import DryRunOpt, FormatOpt, ScopeOpt, fields_of, fmt, get_app, sub_app
from pepsctl.errors import CheckFailed
from pepsctl.i18n import _

app = sub_app(
    _(
        "Checks before the two-factor switch-over: readiness, generic and stale accounts. Exit 1 when "
        "something needs fixing, so CI can use them as a gate.\n\nExample: pepsctl audit readiness"
    )
)
notify_app = sub_app(_("Scheduled e-mails to administrators.\n\nExample: pepsctl notify expiring --dry-run"))

FINDING_TABLE = ["establishment", "severity", "check", "identifier", "last_name", "first_name", "detail", "fix"]


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="audit")
    root.add_typer(notify_app, name="notify")


def _render_findings(findings, format, title: str) -> None:
    from pepsctl.domain.audit import Finding

    if not findings and fmt(format) == "table":
        return
    output.render(findings, fmt(format), columns=fields_of(Finding), table_columns=FINDING_TABLE, title=title)


@app.command("readiness")
def readiness(
    ctx: typer.Context,
    establishment: ScopeOpt = None,
    strict: Annotated[bool, typer.Option("--strict", help=_("Warnings fail too (exit 1)."))] = False,
    summary: Annotated[
        bool, typer.Option("--summary", help=_("One row per establishment instead of one per finding."))
    ] = False,
    format: FormatOpt = None,
) -> None:
    """Is every account ready for two-factor authentication? Exit 1 when not (or with --strict, warnings).

    Checks, per establishment in scope (yours, and those that delegated account management to you;
    or the one --establishment names): administrators (none: error, one: warning), CGU accepted,
    generic accounts, names and e-mail, phone missing / invalid / shared / never verified, expired
    accounts still present, accounts unused for 18 months, activations never completed. Each finding
    names the account and the command that fixes it. JSON and CSV: one row per finding.

    Example: pepsctl audit readiness --format json > findings.json || echo "not ready"
    """
    from pepsctl.domain import audit

    with get_app(ctx).env() as env:
        report = audit.readiness(env, siret=establishment)
    f = fmt(format)
    if summary:
        output.render(report.establishments, f, columns=fields_of(audit.EstablishmentSummary), title=_("Readiness"))
    else:
        if f == "table":
            not_ready = [s for s in report.establishments if not s.ready or s.warnings]
            if len(report.establishments) > 1 and not_ready:
                output.render(
                    not_ready, f, columns=fields_of(audit.EstablishmentSummary), title=_("Establishments to fix")
                )
        _render_findings(report.findings, format, _("Findings"))
    ready = sum(1 for s in report.establishments if s.ready)
    text = _("{ready} of {total} establishment(s) ready; {errors} error(s), {warnings} warning(s).").format(
        ready=ready, total=len(report.establishments), errors=report.errors, warnings=report.warnings
    )
    if report.failed(strict=strict):
        raise CheckFailed(
            _("Not ready: {text}").format(text=text),
            hint=_("Each finding's 'fix' column gives the command to run; then run the audit again."),
        )
    output.success(_("Ready: {text}").format(text=text))


@app.command("generic")
def generic(ctx: typer.Context, establishment: ScopeOpt = None, format: FormatOpt = None) -> None:
    """Accounts that look shared or not personal, each with its reasons; exit 1 when there are any.

    Role words in names or in the mailbox (accueil, secretariat, mairie, rh, paie…), several people
    in one name, one mailbox for several accounts. A real surname that happens to be a role word
    ("Paye", "Service") needs a second signal.

    Example: pepsctl audit generic --format csv > generic.csv
    """
    from pepsctl.domain import audit

    with get_app(ctx).env() as env:
        findings = audit.generic(env, siret=establishment)
    _render_findings(findings, format, _("Generic accounts"))
    if findings:
        raise CheckFailed(
            _("{n} account(s) look generic.").format(n=len(findings)),
            hint=_("One nominative account per person: create them, then delete the shared one."),
        )
    output.success(_("Every account looks personal."))


@app.command("stale")
def stale(
    ctx: typer.Context,
    days: Annotated[int, typer.Option("--days", help=_("Not logged in for this many days."))] = 548,
    establishment: ScopeOpt = None,
    format: FormatOpt = None,
) -> None:
    """Accounts never used, not used for --days days (default 548, 18 months), or expired; exit 1 if any.

    Example: pepsctl audit stale --days 365
    """
    from pepsctl.domain import audit

    with get_app(ctx).env() as env:
        findings = audit.stale(env, days=days, siret=establishment)
    _render_findings(findings, format, _("Stale accounts"))
    if findings:
        raise CheckFailed(
            _("{n} stale account(s).").format(n=len(findings)),
            hint=_("Renew those still needed, delete those of people who left."),
        )
    output.success(_("No stale account."))


@notify_app.command("expiring")
def expiring(
    ctx: typer.Context,
    month: Annotated[
        str | None,
        typer.Option(
            "--month", help=_("YYYY-MM: the month the accounts expire in (default: next month)."), show_default=False
        ),
    ] = None,
    dry_run: DryRunOpt = False,
    format: FormatOpt = None,
) -> None:
    """E-mail each establishment's administrators the accounts that expire next month.

    Meant for cron on the 20th of each month; covers every establishment of the store and needs no
    login. Idempotent: run twice in a month, it sends once.

    Example: 0 7 20 * *  pepsctl notify expiring
    """
    from pepsctl.domain import reminders

    with get_app(ctx).env(auth=False) as env:
        views = reminders.send_expiring(env, month=month, dry_run=dry_run)
    output.render(views, fmt(format), columns=fields_of(reminders.ReminderView), title=_("Expiry reminders"))
    sent = sum(1 for v in views if v.status == reminders.SENT)
    output.info(_("{n} reminder(s) sent.").format(n=sent))
