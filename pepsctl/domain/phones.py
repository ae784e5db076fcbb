"""Phones before the two-factor switch-over: a template to fill, a bulk import, a check.

- ``template``: one row per account in scope (identifier, names, e-mail, current phone).
- ``import_file``: match by identifier, or by e-mail when there is none; normalise to E.164; the
  type decides SMS or voice; numbers that can receive neither are refused; a number given to
  several accounts is refused (``--allow-shared`` accepts it); an empty phone cell changes nothing.
  A changed number is marked unverified and the agent is e-mailed.
- ``check``: missing, invalid and shared numbers.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from pepsctl import clock
from pepsctl.domain import authz, bulk, csvio, history, lockout, notify, stepup
from pepsctl.domain import validation as v
from pepsctl.domain.env import Env
from pepsctl.domain.history import NewEvent
from pepsctl.errors import InvalidInput
from pepsctl.i18n import _
from pepsctl.store import queries
from pepsctl.store.models import Establishment

KIND = "phones"
TEMPLATE_COLUMNS = ["identifier", "last_name", "first_name", "email", "phone"]


def _scope(env: Env, action: str) -> list[Establishment]:
    """The establishments the actor may act on for ``action`` (their own, for now)."""
    actor = env.require_actor()
    establishment = env.session.get(Establishment, actor.establishment_id)
    assert establishment is not None and establishment.id is not None
    authz.require(env, action, establishment.id, target=establishment.siret)
    return [establishment]


def template(env: Env, *, missing_only: bool = False) -> list[dict[str, str | None]]:
    scope = _scope(env, "account.list")
    rows = queries.accounts_in(env.session, [e.id for e in scope if e.id is not None])
    return [
        {
            "identifier": r.identifier,
            "last_name": r.last_name,
            "first_name": r.first_name,
            "email": r.email,
            "phone": r.phone,
        }
        for r in rows
        if not missing_only or r.phone is None
    ]


@dataclass(frozen=True, slots=True)
class Finding:
    identifier: str
    last_name: str
    first_name: str
    email: str
    issue: str  # missing | invalid | shared
    phone: str | None
    detail: str | None


def check(env: Env) -> list[Finding]:
    """Accounts whose phone is missing, no longer valid, or shared with another account."""
    scope = _scope(env, "account.list")
    rows = queries.accounts_in(env.session, [e.id for e in scope if e.id is not None])
    by_phone: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        if r.phone:
            by_phone[r.phone].append(r.identifier)
    findings = []
    for r in rows:
        masked = v.mask_phone(r.phone)
        if r.phone is None:
            findings.append(Finding(r.identifier, r.last_name, r.first_name, r.email, "missing", None, None))
            continue
        try:
            v.normalize_phone(r.phone)
        except InvalidInput as error:
            findings.append(Finding(r.identifier, r.last_name, r.first_name, r.email, "invalid", masked, error.message))
            continue
        others = [i for i in by_phone[r.phone] if i != r.identifier]
        if others:
            detail = _("also used by {others}").format(others=", ".join(others))
            findings.append(Finding(r.identifier, r.last_name, r.first_name, r.email, "shared", masked, detail))
    return findings


@dataclass(frozen=True, slots=True)
class ImportOptions:
    dry_run: bool = False
    skip_invalid: bool = False
    allow_shared: bool = False


def read_file(path: str) -> csvio.CsvFile:
    """Read the file and normalise every distinct phone writing once, before any transaction opens.

    Parsing phones is the costly part of an import (phonenumbers: ~45,000 numbers a second); doing
    it here keeps the write transaction — and the lock it holds — short.
    """
    source = csvio.read(
        path, wanted=("identifier", "email", "phone"), required_any=[("identifier", "email"), ("phone",)]
    )
    parsed = source.parsed
    for row in source.rows:
        raw = row.values.get("phone", "")
        if raw and raw not in parsed:
            try:
                parsed[raw] = v.normalize_phone(raw)
            except InvalidInput as error:
                parsed[raw] = error
    return source


def _phone(source: csvio.CsvFile, raw: str) -> v.Phone:
    found = source.parsed.get(raw)
    if found is None:
        found = v.normalize_phone(raw)
    if isinstance(found, InvalidInput):
        raise found
    assert isinstance(found, v.Phone)
    return found


def import_file(
    env: Env, source: csvio.CsvFile, options: ImportOptions, *, progress: bulk.Progress = bulk.no_progress
) -> bulk.BulkResult:
    scope = _scope(env, "account.update")
    for establishment in scope:
        assert establishment.id is not None
        queries.lock_establishment(env.session, establishment.id)
    accounts = queries.accounts_in(env.session, [e.id for e in scope if e.id is not None], names=False)
    by_identifier = {a.identifier: a for a in accounts}
    by_email: dict[str, list] = defaultdict(list)
    if any(not row.values.get("identifier") for row in source.rows):  # only then match by e-mail
        for a in accounts:
            by_email[a.email.casefold()].append(a)

    plan: list[bulk.PlanRow] = []
    rejects: list[tuple[csvio.Row, str]] = []
    updates: dict[int, tuple[csvio.Row, v.Phone, Any]] = {}  # account id -> (row, new phone, account)
    seen: dict[int, int] = {}  # account id -> line
    # Only a dry run shows the whole plan; an apply lists its rejected rows (300,000 plan rows less).
    keep = options.dry_run
    unchanged = 0
    match = bulk.match_account
    add = plan.append
    for done, row in enumerate(source.rows, start=1):
        if done % 5000 == 0:
            progress(5000)
        account, reason = match(row, by_identifier, by_email)
        if account is None:
            rejects.append((row, reason))
            add(bulk.PlanRow(row.line, row.values.get("identifier") or None, bulk.REJECT, "phone", None, None, reason))
            continue
        if account.id in seen:
            reason = _("the account is already on line {line}").format(line=seen[account.id])
            rejects.append((row, reason))
            add(bulk.PlanRow(row.line, account.identifier, bulk.REJECT, "phone", None, None, reason))
            continue
        seen[account.id] = row.line
        raw = row.values.get("phone", "")
        if not raw:
            unchanged += 1
            if keep:
                add(bulk.PlanRow(row.line, account.identifier, bulk.UNCHANGED, "phone", account.phone, account.phone))
            continue
        try:
            phone = _phone(source, raw)
        except InvalidInput as error:
            rejects.append((row, error.message))
            add(bulk.PlanRow(row.line, account.identifier, bulk.REJECT, "phone", account.phone, None, error.message))
            continue
        if phone.e164 == account.phone and phone.type == account.phone_type:
            unchanged += 1
            if keep:
                add(bulk.PlanRow(row.line, account.identifier, bulk.UNCHANGED, "phone", account.phone, account.phone))
            continue
        updates[account.id] = (row, phone, account)
        if keep:
            add(bulk.PlanRow(row.line, account.identifier, bulk.UPDATE, "phone", account.phone, phone.e164))
    progress(len(source.rows) % 5000)
    del seen, by_email

    if not options.allow_shared:
        _reject_shared(accounts, updates, plan, rejects)

    changed = len(updates)
    actor = env.require_actor()
    result, apply = bulk.planned(
        env,
        kind=KIND,
        source=source,
        plan=plan,
        rejects=rejects,
        changed=changed,
        unchanged=unchanged,
        dry_run=options.dry_run,
        skip_invalid=options.skip_invalid,
        siret=actor.siret,
    )
    if not apply:
        return result
    stepup.require(env, "bulk.apply", target=source.sha256)
    result.batch_id = _apply(env, source, updates, result)
    result.applied = True
    return result


def _reject_shared(accounts, updates, plan, rejects) -> None:
    """Refuse rows that would give one number to several accounts."""
    final: dict[str, list[int]] = defaultdict(list)
    for a in accounts:
        number = updates[a.id][1].e164 if a.id in updates else a.phone
        if number:
            final[number].append(a.id)
    identifiers = {a.id: a.identifier for a in accounts}
    shared = {aid: others for ids in final.values() if len(ids) > 1 for aid in ids for others in [ids]}
    bad = [aid for aid in updates if aid in shared]
    if not bad:
        return
    by_line = {p.line: i for i, p in enumerate(plan)}
    for aid in bad:
        row, phone, account = updates.pop(aid)
        others = ", ".join(identifiers[o] for o in shared[aid] if o != aid)
        reason = _("number shared with {others} (one personal number per agent; --allow-shared accepts it)").format(
            others=others
        )
        rejects.append((row, reason))
        refused = bulk.PlanRow(row.line, account.identifier, bulk.REJECT, "phone", account.phone, phone.e164, reason)
        if row.line in by_line:  # a dry run's plan holds the row
            plan[by_line[row.line]] = refused
        else:
            plan.append(refused)
    plan.sort(key=lambda p: p.line)


def _change_json(phone: str | None, phone_type: str | None) -> str:
    """``bulk.change_json({"phone": phone, "phone_type": phone_type})``, without building the mapping."""
    return (
        '{"phone":'
        + ("null" if phone is None else _encode_ascii(phone))
        + ',"phone_type":'
        + ("null" if phone_type is None else _encode_ascii(phone_type))
        + "}"
    )


_encode_ascii = json.encoder.encode_basestring_ascii


def _apply(env: Env, source, updates, result: bulk.BulkResult) -> int:
    """Write the plan: every step streams from ``updates`` (nothing per row is held in memory twice)."""
    actor = env.require_actor()
    queries.bulk_update_phones(
        env.session, ((aid, phone.e164, phone.type) for aid, (_row, phone, _a) in updates.items()), clock.now()
    )
    batch_id = bulk.record_batch(
        env,
        kind=KIND,
        source=source,
        encoded=(
            (aid, a.identifier, row.line, _change_json(a.phone, a.phone_type), _change_json(phone.e164, phone.type))
            for aid, (row, phone, a) in updates.items()
        ),
        counts=(result.total, len(updates), result.unchanged, result.rejected),
    )
    lockout.revoke_sessions_of_batch(env, batch_id)  # a phone change ends the agent's sessions (security.md)
    history.record_many(
        env,
        (
            NewEvent(
                action="phone.update",
                target=a.identifier,
                establishment=actor.siret,
                before={"phone": a.phone},
                after={"phone": phone.e164},
                batch_id=batch_id,
            )
            for _row, phone, a in updates.values()
        ),
    )
    subject = _("Your PEP's phone number changed")
    body = _(
        "The phone number of your account {identifier}, used for one-time codes, is now {phone}.\n"
        "If this is not your personal number, tell your administrator.\n"
    )
    notify.deliver_many(
        env.session,
        env.gateway,
        (
            notify.Message(
                channel="email",
                to=a.email,
                subject=subject,
                body=body.format(identifier=a.identifier, phone=v.mask_phone(phone.e164)),
            )
            for _row, phone, a in updates.values()
        ),
    )
    history.record(
        env,
        "bulk.applied",
        target=f"batch:{batch_id}",
        establishment=actor.siret,
        batch_id=batch_id,
        after={"kind": KIND, "changed": len(updates), "rows": result.total, "sha256": source.sha256},
    )
    return batch_id


# -- undo ----------------------------------------------------------------------------------------


def _undo_current(env: Env, changes: list[bulk.DecodedChange]) -> dict[int | None, dict | None]:
    from sqlalchemy import select
    from sqlmodel import col

    from pepsctl.store.models import Account

    if not changes:
        return {}
    from pepsctl.store.models import BatchChange

    # One join on the batch's changes (no IN list of 300,000 ids).
    rows = {
        r.id: {"phone": r.phone, "phone_type": r.phone_type}
        for r in env.session.execute(
            select(Account.id, Account.phone, Account.phone_type)
            .join(BatchChange, col(BatchChange.account_id) == col(Account.id))
            .where(col(BatchChange.batch_id) == changes[0][0].batch_id)
        )
    }
    return {c.id: rows[c.account_id] for c, _b, _a in changes if c.account_id in rows}


def _undo_restore(env: Env, items) -> None:
    rows = ((c.account_id, before["phone"], before["phone_type"]) for c, before, _n in items)
    queries.bulk_update_phones(env.session, rows, clock.now())


UNDO = bulk.Undoer(
    current=_undo_current,
    restore=_undo_restore,
    action="phone.undo",
    event=lambda values: {"phone": values["phone"]} if values is not None else None,
    revokes_sessions=True,
)
