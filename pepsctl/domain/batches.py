"""Batches: what each bulk file changed, and undo (the exact previous values, in one transaction)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlmodel import col

from pepsctl import clock
from pepsctl.domain import authz, bulk, history, lockout, stepup
from pepsctl.domain.env import Env
from pepsctl.domain.history import NewEvent
from pepsctl.errors import Conflict
from pepsctl.i18n import _
from pepsctl.store import queries
from pepsctl.store.models import Batch, BatchChange


@dataclass(frozen=True, slots=True)
class BatchView:
    id: int
    kind: str
    file_name: str | None
    file_sha256: str | None
    actor: str
    establishment: str
    created_at: datetime
    rows_total: int
    rows_changed: int
    rows_unchanged: int
    rows_rejected: int
    undone_at: datetime | None
    undo_of: int | None


@dataclass(frozen=True, slots=True)
class ChangeView:
    batch_id: int
    identifier: str
    line: int | None
    before: dict
    after: dict


def _view(batch: Batch) -> BatchView:
    assert batch.id is not None
    return BatchView(
        batch.id,
        batch.kind,
        batch.file_name,
        batch.file_sha256,
        batch.actor,
        batch.establishment,
        batch.created_at,
        batch.rows_total,
        batch.rows_changed,
        batch.rows_unchanged,
        batch.rows_rejected,
        batch.undone_at,
        batch.undo_of,
    )


def list_batches(env: Env) -> list[BatchView]:
    actor = env.require_actor()
    authz.require(env, "account.list", actor.establishment_id, target=actor.siret)
    rows = env.session.scalars(select(Batch).where(col(Batch.establishment) == actor.siret).order_by(col(Batch.id)))
    return [_view(b) for b in rows]


def _load(env: Env, batch_id: int, action: str) -> Batch:
    actor = env.require_actor()
    batch = env.session.get(Batch, batch_id)
    if batch is None or batch.establishment != actor.siret:
        # An unknown batch and another establishment's get the same refusal.
        authz.deny(env, action, f"batch:{batch_id}")
    authz.require(env, action, actor.establishment_id, target=f"batch:{batch_id}")
    return batch


def show(env: Env, batch_id: int) -> tuple[BatchView, list[ChangeView]]:
    batch = _load(env, batch_id, "account.list")
    changes = env.session.scalars(
        select(BatchChange).where(col(BatchChange.batch_id) == batch_id).order_by(col(BatchChange.id))
    )
    return _view(batch), [
        ChangeView(batch_id, c.identifier, c.line, json.loads(c.before), json.loads(c.after)) for c in changes
    ]


@dataclass(frozen=True, slots=True)
class UndoResult:
    batch_id: int
    undo_batch_id: int
    restored: int
    conflicts: list[str]


# Where the Undoer of each kind of batch lives ("module:attribute").
_UNDOERS = {
    "phones": "pepsctl.domain.phones:UNDO",
    "rights": "pepsctl.domain.rights_bulk:UNDO",
    "accounts": "pepsctl.domain.accounts_bulk:UNDO",
    "renew": "pepsctl.domain.accounts_bulk:UNDO_RENEW",
}


def _undoer(batch: Batch) -> bulk.Undoer:
    import importlib

    where = _UNDOERS.get(batch.kind)
    undoer = None
    if where:
        module, _sep, attribute = where.partition(":")
        undoer = getattr(importlib.import_module(module), attribute, None)
    if undoer is None:
        raise Conflict(_("Batch {id} ({kind}) cannot be undone.").format(id=batch.id, kind=batch.kind))
    return undoer


def undo(env: Env, batch_id: int, *, force: bool = False) -> UndoResult:
    """Restore the exact previous values of a batch, in one transaction; refuse if rows changed since."""
    batch = _load(env, batch_id, "account.update")
    actor = env.require_actor()
    if batch.undone_at is not None:
        raise Conflict(_("Batch {id} was already undone.").format(id=batch_id))
    undoer = _undoer(batch)
    queries.lock_establishment(env.session, actor.establishment_id)
    changes = list(
        env.session.scalars(
            select(BatchChange).where(col(BatchChange.batch_id) == batch_id).order_by(col(BatchChange.id))
        )
    )
    decoded = [(c, json.loads(c.before), json.loads(c.after)) for c in changes]
    current = undoer.current(env, decoded)
    conflicts, restore = [], []
    for c, before, after in decoded:
        now_val = current.get(c.id)
        if now_val is None and not undoer.absent_ok:
            conflicts.append(c.identifier)
            continue
        if now_val != after:
            conflicts.append(c.identifier)
            if not force:
                continue
        restore.append((c, before, now_val))
    if conflicts and not force:
        raise Conflict(
            _("{n} account(s) changed after batch {id}: {names}.").format(
                n=len(conflicts), id=batch_id, names=", ".join(conflicts[:10])
            ),
            hint=_("Undo with --force to restore the batch's previous values anyway (later changes are lost)."),
        )
    stepup.require(env, "bulk.apply", target=f"batch:{batch_id}")
    now = clock.now()
    undoer.restore(env, restore)
    undo_id = bulk.record_batch(
        env,
        kind="undo",
        source=None,
        changes=[
            {"account_id": c.account_id, "identifier": c.identifier, "line": c.line, "before": now_val, "after": before}
            for c, before, now_val in restore
        ],
        counts=(len(changes), len(restore), 0, 0),
        undo_of=batch_id,
    )
    if undoer.revokes_sessions:
        lockout.revoke_sessions_of_batch(env, undo_id)  # restoring a phone is a phone change too
    batch.undone_at = now
    env.session.add(batch)
    history.record_many(
        env,
        [
            NewEvent(
                action=undoer.action,
                target=c.identifier,
                establishment=actor.siret,
                before=undoer.event(now_val),
                after=undoer.event(before),
                batch_id=undo_id,
            )
            for c, before, now_val in restore
        ]
        + [
            NewEvent(
                action="batch.undo",
                target=f"batch:{batch_id}",
                establishment=actor.siret,
                batch_id=undo_id,
                after={"restored": len(restore), "forced": bool(conflicts)},
            )
        ],
    )
    return UndoResult(batch_id, undo_id, len(restore), conflicts)
