"""``notify expiring``: the monthly e-mail listing the accounts that expire next month.

Meant for cron on the 20th of each month (domain.md). It covers every establishment of the store
(a system job: no login) and is idempotent: one reminder per establishment and month, recorded in
``expiry_reminder`` under the history lock, so two runs — even at the same moment — send once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlmodel import col

from pepsctl import clock
from pepsctl.domain import accounts, history, notify
from pepsctl.domain.env import ADMIN, Env
from pepsctl.domain.history import NewEvent
from pepsctl.errors import InvalidInput
from pepsctl.i18n import _, ngettext
from pepsctl.store.engine import lock_history
from pepsctl.store.models import Account, Establishment, ExpiryReminder

SENT, ALREADY_SENT, WOULD_SEND, NO_RECIPIENT = "sent", "already-sent", "would-send", "no-recipient"
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, slots=True)
class ReminderView:
    establishment: str
    name: str
    month: str
    accounts: int
    recipients: int
    status: str


def _month_bounds(month: str | None) -> tuple[str, datetime, datetime]:
    if month is None:
        now = clock.now()
        year, number = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    else:
        found = _MONTH.match(month.strip())
        if not found or not 1 <= int(found.group(2)) <= 12:
            raise InvalidInput(_("--month takes YYYY-MM, e.g. 2027-03."), field="month")
        year, number = int(found.group(1)), int(found.group(2))
    start = datetime(year, number, 1, tzinfo=UTC)
    return f"{year:04d}-{number:02d}", start, accounts.add_months(start, 1)


def send_expiring(env: Env, *, month: str | None = None, dry_run: bool = False) -> list[ReminderView]:
    """E-mail each establishment's administrators the accounts expiring in ``month`` (default: next)."""
    label, start, end = _month_bounds(month)
    if env.actor is None:
        env.label = env.label or "system:notify"
    if not dry_run:
        lock_history(env.session.connection())  # serialise concurrent runs before reading what was sent
    sent = set(env.session.scalars(select(ExpiryReminder.establishment_id).where(col(ExpiryReminder.month) == label)))
    rows = list(
        env.session.execute(
            select(
                Account.establishment_id, Account.identifier, Account.last_name, Account.first_name, Account.expires_at
            )
            .where(col(Account.expires_at) >= start)
            .where(col(Account.expires_at) < end)
            .order_by(col(Account.establishment_id), col(Account.expires_at), col(Account.identifier))
        )
    )
    expiring: dict[int, list] = {}
    for row in rows:
        expiring.setdefault(row.establishment_id, []).append(row)
    if not expiring:
        return []
    establishments = {
        e.id: e for e in env.session.scalars(select(Establishment).where(col(Establishment.id).in_(list(expiring))))
    }
    admins: dict[int, list[str]] = {}
    now = clock.now()
    for est_id, email in env.session.execute(
        select(Account.establishment_id, Account.email)
        .where(col(Account.establishment_id).in_(list(expiring)))
        .where(col(Account.profile) == ADMIN)
        .where(col(Account.locked_at).is_(None))
        .where(col(Account.activated_at).is_not(None))
        .where((col(Account.expires_at).is_(None)) | (col(Account.expires_at) > now))
    ):
        admins.setdefault(est_id, []).append(email)

    views: list[ReminderView] = []
    messages: list[notify.Message] = []
    reminders: list[ExpiryReminder] = []
    events: list[NewEvent] = []
    for est_id, listed in sorted(expiring.items(), key=lambda item: establishments[item[0]].siret):
        est = establishments[est_id]
        recipients = sorted(set(admins.get(est_id, [])))
        if est_id in sent:
            status = ALREADY_SENT
        elif not recipients:
            status = NO_RECIPIENT
        elif dry_run:
            status = WOULD_SEND
        else:
            status = SENT
            body = _message(est, label, listed)
            subject = ngettext(
                "PEP's: {n} account of {name} expires in {month}",
                "PEP's: {n} accounts of {name} expire in {month}",
                len(listed),
            ).format(n=len(listed), name=est.name, month=label)
            messages += [notify.Message(channel="email", to=to, subject=subject, body=body) for to in recipients]
            reminders.append(
                ExpiryReminder(
                    establishment_id=est_id, month=label, accounts=len(listed), recipients=len(recipients), sent_at=now
                )
            )
            events.append(
                NewEvent(
                    action="notify.expiring",
                    target=est.siret,
                    establishment=est.siret,
                    after={"month": label, "accounts": len(listed), "recipients": len(recipients)},
                )
            )
        views.append(ReminderView(est.siret, est.name, label, len(listed), len(recipients), status))
    if reminders:
        env.session.add_all(reminders)
        env.session.flush()
        history.record_many(env, events)
        notify.deliver_many(env.session, env.gateway, messages)
    return views


def _message(est: Establishment, month: str, listed: list) -> str:
    lines = [
        _("These accounts of {name} ({siret}) expire in {month}:").format(name=est.name, siret=est.siret, month=month),
        "",
    ]
    for row in listed:
        lines.append(
            f"  {row.identifier}  {row.first_name} {row.last_name}  "
            + _("expires on {date}").format(date=clock.as_utc(row.expires_at).date().isoformat())
        )
    lines += [
        "",
        _("Renew those still needed: pepsctl accounts renew ID… (or renew --file FILE)."),
        _("Delete those of people who left: pepsctl accounts delete ID."),
    ]
    return "\n".join(lines) + "\n"
