"""``rights import``: set service rights in bulk from a CSV, on the one bulk engine.

Columns: ``identifier`` (or ``email``), ``service`` (a catalogue code), ``level`` (write /
modification, read / lecture seule, or none / aucun / empty to remove), and optionally
``establishment`` (the SIRET of a delegated establishment: the right applies there, within an
accepted delegation's scope). Only the (account, service) pairs in the file change: rights not
listed stay as they are. The file's accounts are those of the actor's establishment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlmodel import col

from pepsctl import clock
from pepsctl.domain import authz, bulk, catalogue, csvio, history, stepup
from pepsctl.domain import validation as v
from pepsctl.domain.env import Env
from pepsctl.domain.history import NewEvent
from pepsctl.domain.rights import parse_level
from pepsctl.errors import InvalidInput
from pepsctl.i18n import _
from pepsctl.store import queries
from pepsctl.store.models import Account, AccountRight, BatchChange, Delegation, DelegationService, Establishment

KIND = "rights"
WANTED = ("identifier", "email", "service", "level", "establishment")


@dataclass(frozen=True, slots=True)
class ImportOptions:
    dry_run: bool = False
    skip_invalid: bool = False


@dataclass(frozen=True, slots=True)
class _Write:
    row: csvio.Row
    account_id: int
    identifier: str
    establishment_id: int
    siret: str
    delegation_id: int | None
    service: str
    right_id: int | None
    before: str | None
    after: str | None


def read_file(path: str) -> csvio.CsvFile:
    return csvio.read(path, wanted=WANTED, required_any=[("identifier", "email"), ("service",), ("level",)])


def _delegated(env: Env, centralizer_id: int) -> dict[str, tuple[int, int, set[str]]]:
    """SIRET → (establishment id, delegation id, scope) for the accepted, unexpired delegations."""
    now = clock.now()
    rows = list(
        env.session.execute(
            select(Delegation.id, Delegation.establishment_id, Establishment.siret)
            .join(Establishment, col(Establishment.id) == col(Delegation.establishment_id))
            .where(col(Delegation.centralizer_id) == centralizer_id)
            .where(col(Delegation.status) == "accepted")
            .where(or_(col(Delegation.ends_at).is_(None), col(Delegation.ends_at) > now))
            .with_for_update(read=True, of=Delegation)  # a concurrent revocation waits for this import
        )
    )
    result = {siret: (est_id, d_id, set()) for d_id, est_id, siret in rows}
    by_id = {d_id: siret for d_id, _e, siret in rows}
    if by_id:
        for d_id, code in env.session.execute(
            select(DelegationService.delegation_id, DelegationService.service_code).where(
                col(DelegationService.delegation_id).in_(list(by_id))
            )
        ):
            result[by_id[d_id]][2].add(code)
    return result


def _current(env: Env, establishment_id: int) -> dict[tuple[int, int, str], tuple[int, str, int | None]]:
    """(account, establishment, service) → (right id, level, delegation) for the establishment's accounts."""
    return {
        (account_id, est_id, code): (right_id, level, delegation_id)
        for right_id, account_id, est_id, code, level, delegation_id in env.session.execute(
            select(
                AccountRight.id,
                AccountRight.account_id,
                AccountRight.establishment_id,
                AccountRight.service_code,
                AccountRight.level,
                AccountRight.delegation_id,
            )
            .join(Account, col(Account.id) == col(AccountRight.account_id))
            .where(col(Account.establishment_id) == establishment_id)
        )
    }


def import_file(
    env: Env, source: csvio.CsvFile, options: ImportOptions, *, progress: bulk.Progress = bulk.no_progress
) -> bulk.BulkResult:
    actor = env.require_actor()
    own = env.session.get(Establishment, actor.establishment_id)
    assert own is not None and own.id is not None
    authz.require(env, "right.grant", own.id, target=own.siret)
    queries.lock_establishment(env.session, own.id)
    accounts = queries.accounts_in(env.session, [own.id])
    by_identifier = {a.identifier: a for a in accounts}
    by_email: dict[str, list] = {}
    for a in accounts:
        by_email.setdefault(a.email.casefold(), []).append(a)
    live = catalogue.services(env.session)
    services = {s.code: s for s in live}
    delegated = _delegated(env, own.id)
    current = _current(env, own.id)

    plan: list[bulk.PlanRow] = []
    rejects: list[tuple[csvio.Row, str]] = []
    writes: list[_Write] = []
    seen: dict[tuple[int, int, str], int] = {}

    def reject(row: csvio.Row, identifier: str | None, field: str | None, reason: str) -> None:
        rejects.append((row, reason))
        plan.append(bulk.PlanRow(row.line, identifier, bulk.REJECT, field, None, None, reason))

    for done, row in enumerate(source.rows, start=1):
        if done % 5000 == 0:
            progress(5000)
        account, reason = bulk.match_account(row, by_identifier, by_email)
        if account is None:
            reject(row, row.values.get("identifier") or None, "service", reason)
            continue
        code = catalogue._fold(row.values.get("service", ""))
        service = services.get(code)
        if service is None:
            close = catalogue.suggestions(code, live)
            reason = _("unknown service {code!r}").format(code=code)
            if close:
                reason += " " + _("(did you mean: {codes}?)").format(codes=", ".join(close))
            reject(row, account.identifier, "service", reason)
            continue
        if service.held_by:
            reject(row, account.identifier, code, _("held by the administrator profile, never granted"))
            continue
        try:
            level = parse_level(row.values.get("level", ""))
        except InvalidInput as error:
            reject(row, account.identifier, code, error.message)
            continue
        raw_siret = row.values.get("establishment", "")
        est_id, siret, delegation_id = own.id, own.siret, None
        if raw_siret:
            try:
                wanted_siret = v.normalize_siret(raw_siret)
            except InvalidInput as error:
                reject(row, account.identifier, code, error.message)
                continue
            if wanted_siret != own.siret:
                found = delegated.get(wanted_siret)
                if found is None:
                    reject(
                        row,
                        account.identifier,
                        code,
                        _("no accepted delegation lets your establishment act for {siret}").format(siret=wanted_siret),
                    )
                    continue
                est_id, delegation_id, scope = found
                siret = wanted_siret
                if code not in scope:
                    reject(
                        row,
                        account.identifier,
                        code,
                        _("outside the scope of delegation {id}").format(id=delegation_id),
                    )
                    continue
        key = (account.id, est_id, code)
        if key in seen:
            reject(row, account.identifier, code, _("the same right is already on line {line}").format(line=seen[key]))
            continue
        seen[key] = row.line
        right_id, before, _d = current.get(key, (None, None, None))
        field = code if delegation_id is None else f"{code}@{siret}"
        if before == level:
            plan.append(bulk.PlanRow(row.line, account.identifier, bulk.UNCHANGED, field, before, level, None))
            continue
        plan.append(bulk.PlanRow(row.line, account.identifier, bulk.UPDATE, field, before, level, None))
        writes.append(
            _Write(row, account.id, account.identifier, est_id, siret, delegation_id, code, right_id, before, level)
        )
    progress(len(source.rows) % 5000)

    unchanged = sum(1 for p in plan if p.action == bulk.UNCHANGED)
    result, apply = bulk.planned(
        env,
        kind=KIND,
        source=source,
        plan=plan,
        rejects=rejects,
        changed=len(writes),
        unchanged=unchanged,
        dry_run=options.dry_run,
        skip_invalid=options.skip_invalid,
        siret=own.siret,
    )
    if not apply:
        return result
    stepup.require(env, "bulk.apply", target=source.sha256)
    result.batch_id = _apply(env, source, own, writes, result)
    result.applied = True
    return result


def _values(siret: str, service: str, level: str | None, delegation_id: int | None) -> dict[str, Any]:
    return {"establishment": siret, "service": service, "level": level, "delegation_id": delegation_id}


def _write_rights(env: Env, items: list[tuple[int, int, str, int | None, str | None, int | None]]) -> None:
    """Apply (account, establishment, service, existing right id, new level, delegation) set-based."""
    now = clock.now()
    label = env.actor_label
    inserts = [
        {
            "account_id": account_id,
            "establishment_id": est_id,
            "service_code": code,
            "level": level,
            "delegation_id": delegation_id,
            "granted_by": label,
            "granted_at": now,
        }
        for account_id, est_id, code, right_id, level, delegation_id in items
        if right_id is None and level is not None
    ]
    updates = [
        {"id": right_id, "level": level, "delegation_id": delegation_id, "granted_by": label, "granted_at": now}
        for _a, _e, _c, right_id, level, delegation_id in items
        if right_id is not None and level is not None
    ]
    deletes = [{"rid": right_id} for _a, _e, _c, right_id, level, _d in items if right_id is not None and level is None]
    table = AccountRight.__table__  # type: ignore[attr-defined]
    if deletes:
        env.session.execute(table.delete().where(table.c.id == bindparam("rid")), deletes)
    if updates:
        env.session.execute(update(AccountRight), updates)
    if inserts:
        queries.bulk_insert(env.session, AccountRight, inserts)


def _apply(env: Env, source: csvio.CsvFile, own: Establishment, writes: list[_Write], result: bulk.BulkResult) -> int:
    _write_rights(
        env, [(w.account_id, w.establishment_id, w.service, w.right_id, w.after, w.delegation_id) for w in writes]
    )
    changes = [
        {
            "account_id": w.account_id,
            "identifier": w.identifier,
            "line": w.row.line,
            "before": _values(w.siret, w.service, w.before, w.delegation_id if w.before else None),
            "after": _values(w.siret, w.service, w.after, w.delegation_id if w.after else None),
        }
        for w in writes
    ]
    batch_id = bulk.record_batch(
        env,
        kind=KIND,
        source=source,
        changes=changes,
        counts=(result.total, len(changes), result.unchanged, result.rejected),
    )
    history.record_many(
        env,
        [
            NewEvent(
                action="right.grant" if w.after is not None else "right.revoke",
                target=w.identifier,
                establishment=w.siret,
                delegation_id=w.delegation_id,
                batch_id=batch_id,
                before={"service": w.service, "level": w.before},
                after={"service": w.service, "level": w.after},
            )
            for w in writes
        ]
        + [
            NewEvent(
                action="bulk.applied",
                target=f"batch:{batch_id}",
                establishment=own.siret,
                batch_id=batch_id,
                after={"kind": KIND, "changed": len(changes), "rows": result.total, "sha256": source.sha256},
            )
        ],
    )
    return batch_id


# -- undo ----------------------------------------------------------------------------------------


def _rights_of_batch(env: Env, batch_id: int) -> dict[tuple[int, str, str], tuple[int, str, int | None]]:
    """(account, SIRET, service) → (right id, level, delegation) for the accounts a batch touched (one join)."""
    return {
        (account_id, siret, code): (right_id, level, delegation_id)
        for right_id, account_id, siret, code, level, delegation_id in env.session.execute(
            select(
                AccountRight.id,
                AccountRight.account_id,
                Establishment.siret,
                AccountRight.service_code,
                AccountRight.level,
                AccountRight.delegation_id,
            )
            .join(Establishment, col(Establishment.id) == col(AccountRight.establishment_id))
            .where(
                col(AccountRight.account_id).in_(
                    select(BatchChange.account_id).where(col(BatchChange.batch_id) == batch_id)
                )
            )
        )
    }


def _undo_current(env: Env, changes: list[bulk.DecodedChange]) -> dict[int | None, dict | None]:
    if not changes:
        return {}
    rows = _rights_of_batch(env, changes[0][0].batch_id)
    result: dict[int | None, dict | None] = {}
    for change, _before, after in changes:
        assert change.account_id is not None
        _rid, level, delegation_id = rows.get(
            (change.account_id, after["establishment"], after["service"]), (None,) * 3
        )
        result[change.id] = _values(after["establishment"], after["service"], level, delegation_id)
    return result


def _undo_restore(env: Env, items: list[tuple[BatchChange, dict, dict | None]]) -> None:
    if not items:
        return
    rows = _rights_of_batch(env, items[0][0].batch_id)
    sirets = {before["establishment"] for _c, before, _n in items}
    ids = {
        e.siret: e.id for e in env.session.scalars(select(Establishment).where(col(Establishment.siret).in_(sirets)))
    }
    writes = []
    for change, before, _now in items:
        assert change.account_id is not None
        right_id = rows.get((change.account_id, before["establishment"], before["service"]), (None,))[0]
        est_id = ids[before["establishment"]]
        assert est_id is not None
        writes.append(
            (change.account_id, est_id, before["service"], right_id, before["level"], before.get("delegation_id"))
        )
    _write_rights(env, writes)


UNDO = bulk.Undoer(
    current=_undo_current,
    restore=_undo_restore,
    action="right.undo",
    event=lambda values: {"service": values["service"], "level": values["level"]} if values else None,
    absent_ok=True,
)
