"""Retention: purge what is older than the retention period (12 months by default), in one transaction.

What goes (docs/security.md, Retention):

- history events older than the period — the chain stays verifiable: the hash of the last purged
  event becomes the *anchor* the oldest remaining event follows, and the count of purged events is
  kept, so ``history verify`` still detects any edit, deletion or reordering of what remains;
- outbox messages (e-mails and codes sent, personal data);
- batches and their per-row changes (they hold previous values: names, e-mails, phones);
- one-time codes, sessions and workstation trusts that ended before the period.

The personal data of a deleted account thus leaves the store with the history events and batches
that mention it, once they are older than the period. The purge itself is recorded in the history.
It is a store operator's job (no login: whoever holds the store's owner credentials; on PostgreSQL
the application role has no DELETE privilege on the audit trail — docs/deployment.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, text
from sqlmodel import col

from pepsctl import clock
from pepsctl.domain import history
from pepsctl.domain.env import Env
from pepsctl.errors import InvalidInput
from pepsctl.i18n import _
from pepsctl.store.engine import lock_history
from pepsctl.store.models import (
    AuditEvent,
    AuthSession,
    Batch,
    BatchChange,
    OneTimeCode,
    OutboxMessage,
    StoreMeta,
    TrustedDevice,
)

DEFAULT_DAYS = 365
MIN_DAYS = 30
GATE_KEY = "history_purge"  # the SQLite trigger lets DELETE through while this row exists


@dataclass(frozen=True, slots=True)
class PurgeView:
    cutoff: datetime
    dry_run: bool
    history_events: int
    outbox_messages: int
    batches: int
    batch_changes: int
    one_time_codes: int
    sessions: int
    trusted_devices: int


def _count(env: Env, model, condition) -> int:
    return int(env.session.execute(select(func.count()).select_from(model).where(condition)).scalar_one())


def purge(env: Env, *, older_than_days: int = DEFAULT_DAYS, dry_run: bool = False) -> PurgeView:
    if older_than_days < MIN_DAYS or older_than_days > 36500:
        raise InvalidInput(
            _("--older-than takes a number of days from {min} to 36500.").format(min=MIN_DAYS), field="older_than"
        )
    if env.actor is None:
        env.label = env.label or "system:purge"
    cutoff = clock.now() - timedelta(days=older_than_days)
    lock_history(env.session.connection())
    last_old = env.session.execute(
        select(AuditEvent.id, AuditEvent.hash)
        .where(col(AuditEvent.at) < cutoff)
        .order_by(col(AuditEvent.id).desc())
        .limit(1)
    ).first()
    events_condition = col(AuditEvent.id) <= (last_old.id if last_old else 0)
    old_batches = select(Batch.id).where(col(Batch.created_at) < cutoff)
    conditions = {
        "outbox_messages": (OutboxMessage, col(OutboxMessage.created_at) < cutoff),
        "batch_changes": (BatchChange, col(BatchChange.batch_id).in_(old_batches)),
        "batches": (Batch, col(Batch.created_at) < cutoff),
        "one_time_codes": (OneTimeCode, col(OneTimeCode.expires_at) < cutoff),
        "sessions": (AuthSession, or_(col(AuthSession.expires_at) < cutoff, col(AuthSession.revoked_at) < cutoff)),
        "trusted_devices": (
            TrustedDevice,
            or_(col(TrustedDevice.expires_at) < cutoff, col(TrustedDevice.revoked_at) < cutoff),
        ),
    }
    counts = {name: _count(env, model, condition) for name, (model, condition) in conditions.items()}
    counts["history_events"] = _count(env, AuditEvent, events_condition)
    view = PurgeView(cutoff=cutoff, dry_run=dry_run, **counts)
    if dry_run or not any(counts.values()):
        return view
    if last_old is not None:
        purged, _anchor = history.read_anchor(env.session)
        _open_gate(env)
        env.session.execute(delete(AuditEvent).where(events_condition))
        _close_gate(env)
        history.write_anchor(env.session, purged + counts["history_events"], last_old.hash)
    for name in ("outbox_messages", "batch_changes", "batches", "one_time_codes", "sessions", "trusted_devices"):
        model, condition = conditions[name]
        env.session.execute(delete(model).where(condition))
    env.session.flush()
    history.record(
        env,
        "store.purge",
        after={"cutoff": cutoff.isoformat(), "days": older_than_days, **counts},
    )
    return view


def _open_gate(env: Env) -> None:
    if env.dialect == "postgresql":
        env.session.execute(text("SELECT set_config('pepsctl.history_purge', 'on', true)"))
    else:
        env.session.add(StoreMeta(key=GATE_KEY, value="1"))
        env.session.flush()


def _close_gate(env: Env) -> None:
    if env.dialect == "postgresql":
        env.session.execute(text("SELECT set_config('pepsctl.history_purge', 'off', true)"))
    else:
        env.session.execute(delete(StoreMeta).where(col(StoreMeta.key) == GATE_KEY))
