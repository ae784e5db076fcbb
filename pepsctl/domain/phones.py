"""Phones before the two-factor switch-over: a template to fill, a bulk import, a check.

Scope: the actor's establishment and every establishment that delegated account management to it
(``accounts.managed``), or the one named; rows name each account's establishment, and the history
records each change under it, with the delegation it went through.

- ``template``: one row per account in scope (identifier, names, e-mail, current phone, establishment).
- ``import_file``: match by identifier, or by e-mail when there is none; normalise to E.164; the
  type decides SMS or voice; numbers that can receive neither are refused; a number given to
  several accounts is refused (``--allow-shared`` accepts it); an empty phone cell changes nothing.
  A changed number is marked unverified and the agent is e-mailed.
- ``check``: missing, invalid and shared numbers.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from pepsctl import clock
from pepsctl.domain import accounts, bulk, csvio, history, lockout, notify, stepup
from pepsctl.domain import validation as v
from pepsctl.domain.env import Env
from pepsctl.domain.history import NewEvent
from pepsctl.errors import InvalidInput
from pepsctl.i18n import _
from pepsctl.store import queries

KIND = "phones"
# The columns of a template; the establishment's come last (a file from before they existed still
# has its columns where they were).
TEMPLATE_COLUMNS = ["identifier", "last_name", "first_name", "email", "phone", "establishment", "establishment_name"]


def template(env: Env, *, missing_only: bool = False, siret: str | None = None) -> list[dict[str, str | None]]:
    scope = accounts.managed(env, "account.list", siret)
    names = {est_id: (est_siret, name) for est_id, est_siret, name, _d in scope.establishments}
    rows = queries.accounts_in(env.session, scope.ids)
    return [
        {
            "identifier": r.identifier,
            "last_name": r.last_name,
            "first_name": r.first_name,
            "email": r.email,
            "phone": r.phone,
            "establishment": names[r.establishment_id][0],
            "establishment_name": names[r.establishment_id][1],
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
    establishment: str  # its SIRET


def check(env: Env, *, siret: str | None = None) -> list[Finding]:
    """Accounts whose phone is missing, no longer valid, or shared with another account of the scope."""
    scope = accounts.managed(env, "account.list", siret)
    sirets = {est_id: est_siret for est_id, est_siret, _n, _d in scope.establishments}
    rows = queries.accounts_in(env.session, scope.ids)
    by_phone: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        if r.phone:
            by_phone[r.phone].append(r.identifier)
    findings = []
    for r in rows:
        if r.phone is None:
            issue, detail = "missing", None
        else:
            try:
                v.normalize_phone(r.phone)
            except InvalidInput as error:
                issue, detail = "invalid", error.message
            else:
                others = [i for i in by_phone[r.phone] if i != r.identifier]
                if not others:
                    continue
                issue, detail = "shared", _("also used by {others}").format(others=", ".join(others))
        findings.append(
            Finding(
                r.identifier,
                r.last_name,
                r.first_name,
                r.email,
                issue,
                v.mask_phone(r.phone),
                detail,
                sirets[r.establishment_id],
            )
        )
    return findings


@dataclass(frozen=True, slots=True)
class ImportOptions:
    dry_run: bool = False
    skip_invalid: bool = False
    allow_shared: bool = False
    establishment: str | None = None  # SIRET: only this one (default: every establishment in scope)


MOBILE = "mobile"


def read_file(path: str) -> csvio.CsvFile:
    """Read the file and normalise every distinct phone writing once, before any transaction opens.

    Parsing phones is the costly part of an import (phonenumbers: ~45,000 numbers a second); doing
    it here keeps the write transaction — and the lock it holds — short.
    """
    source = csvio.read(
        path, wanted=("identifier", "email", "phone"), required_any=[("identifier", "email"), ("phone",)]
    )
    parsed = source.parsed
    get_phone = source.getter("phone")
    for row in source.rows:
        raw = get_phone(row)
        if raw and raw not in parsed:
            try:
                phone = v.normalize_phone(raw)
            except InvalidInput as error:
                parsed[raw] = error
            else:  # a mobile, most numbers, as its E.164 text alone: no object per row
                parsed[raw] = phone.e164 if phone.type == MOBILE else phone
    return source


def _phone(source: csvio.CsvFile, raw: str) -> tuple[str, str]:
    """The E.164 form and type of a phone cell, from what :func:`read_file` kept (or parsed now)."""
    found = source.parsed.get(raw)
    if found is None:
        found = v.normalize_phone(raw)
    if found.__class__ is str:
        return found, MOBILE  # type: ignore[return-value]
    if isinstance(found, InvalidInput):
        raise found
    assert isinstance(found, v.Phone)
    return found.e164, found.type


class _Account(NamedTuple):
    """What an import needs of an account the file names (a plain tuple: one per row of a large file)."""

    id: int
    identifier: str
    email: str
    phone: str | None
    phone_type: str | None
    establishment_id: int


class _Updates:
    """The accepted changes, in file order, as parallel lists (32 bytes a change, not a dict entry, a tuple and a
    phone object): the row, its new number and type, the account."""

    __slots__ = ("accounts", "e164s", "rows", "types")

    def __init__(self) -> None:
        self.rows: list[csvio.Row] = []
        self.e164s: list[str] = []
        self.types: list[str] = []
        self.accounts: list[_Account] = []

    def add(self, row: csvio.Row, e164: str, type_: str, account: _Account) -> None:
        self.rows.append(row)
        self.e164s.append(e164)
        self.types.append(type_)
        self.accounts.append(account)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[tuple[csvio.Row, str, str, _Account]]:
        return zip(self.rows, self.e164s, self.types, self.accounts, strict=True)

    def drop(self, positions: set[int]) -> None:
        for name in self.__slots__:
            values = getattr(self, name)
            setattr(self, name, [x for i, x in enumerate(values) if i not in positions])


def _load_accounts(
    env: Env, establishment_ids: Any, source: csvio.CsvFile, *, others: bool
) -> tuple[dict[str, _Account], list[Any], bool]:
    """The accounts in scope: those the file names by identifier, every account in identifier order, and
    whether some row has no identifier (then rows are matched by e-mail too).

    Of the accounts the file does not name, the list keeps every one when some row has no identifier
    (matching by e-mail needs them), else only ``(identifier, phone)`` of those with a phone when
    ``others`` (the shared-number check), else none. An account's identifier is the row's own string
    when the file writes it as stored (one string per account, not two).
    """
    get_identifier = source.getter("identifier")
    named: dict[str, Any] = {}  # normalised identifier -> itself, then -> its account once loaded
    everyone = False
    for row in source.rows:
        raw = get_identifier(row)
        if not raw:
            everyone = True
            continue
        try:
            key = v.normalize_identifier(raw)
        except InvalidInput:
            continue
        if key == raw:
            key = raw
        named.setdefault(key, key)
    accounts: list[Any] = []
    keep = accounts.append
    make = _Account._make
    for found in queries.account_phones(env.session, establishment_ids):
        key = named.get(found[1])
        if key is not None:
            account = named[key] = make((found[0], key, found[2], found[3], found[4], found[5]))
            keep(account)
        elif everyone:
            keep(make(found))
        elif others and found[3]:
            keep((found[1], found[3]))
    for key in [key for key, account in named.items() if account.__class__ is not _Account]:
        del named[key]  # no such account in scope
    return named, accounts, everyone


def import_file(
    env: Env, source: csvio.CsvFile, options: ImportOptions, *, progress: bulk.Progress = bulk.no_progress
) -> bulk.BulkResult:
    scope = accounts.managed(env, "account.update", options.establishment, lock=True)
    rows = source.rows
    get_identifier = source.getter("identifier")
    get_email = source.getter("email")
    get_phone = source.getter("phone")
    by_identifier, loaded, by_email_needed = _load_accounts(env, scope.ids, source, others=not options.allow_shared)
    by_email: dict[str, list] = defaultdict(list)
    if by_email_needed:  # only then match by e-mail
        for a in loaded:
            by_email[a.email.casefold()].append(a)

    plan: list[bulk.PlanRow] = []
    rejects: list[tuple[csvio.Row, str]] = []
    updates = _Updates()
    seen: dict[int, int] = {}  # account id -> line
    # Only a dry run shows the whole plan; an apply lists its rejected rows (300,000 plan rows less).
    keep = options.dry_run
    unchanged = 0
    match = bulk.match
    add = plan.append
    for done, row in enumerate(rows, start=1):
        if done % 5000 == 0:
            progress(5000)
        identifier = get_identifier(row)
        # Written as stored (most files): no need to normalise it again to find it.
        account = by_identifier.get(identifier)
        if account is None:
            account, reason = match(identifier, "" if identifier else get_email(row), by_identifier, by_email)
        if account is None:
            rejects.append((row, reason))
            add(bulk.PlanRow(row.line, identifier or None, bulk.REJECT, "phone", None, None, reason))
            continue
        line = row[0]  # row.line
        if account.id in seen:
            reason = _("the account is already on line {line}").format(line=seen[account.id])
            rejects.append((row, reason))
            add(bulk.PlanRow(line, account.identifier, bulk.REJECT, "phone", None, None, reason))
            continue
        seen[account.id] = line
        raw = get_phone(row)
        # An empty cell, or the stored number as exported (even one no longer valid: the audit reports
        # those; a template imported as it is changes nothing and rejects nothing).
        if not raw or raw == account.phone:
            unchanged += 1
            if keep:
                add(bulk.PlanRow(line, account.identifier, bulk.UNCHANGED, "phone", account.phone, account.phone))
            continue
        try:
            e164, type_ = _phone(source, raw)
        except InvalidInput as error:
            rejects.append((row, error.message))
            add(bulk.PlanRow(line, account.identifier, bulk.REJECT, "phone", account.phone, None, error.message))
            continue
        if e164 == account.phone and type_ == account.phone_type:
            unchanged += 1
            if keep:
                add(bulk.PlanRow(line, account.identifier, bulk.UNCHANGED, "phone", account.phone, account.phone))
            continue
        updates.add(row, e164, type_, account)
        if keep:
            add(bulk.PlanRow(line, account.identifier, bulk.UPDATE, "phone", account.phone, e164))
    progress(len(rows) % 5000)
    del seen, by_email, by_identifier

    if not options.allow_shared:
        _reject_shared(loaded, updates, plan, rejects)
    del loaded  # what is left of the accounts is in ``updates``

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
    result.batch_id = _apply(env, source, updates, result, scope)
    result.applied = True
    return result


def _reject_shared(accounts: list[Any], updates: _Updates, plan, rejects) -> None:
    """Refuse rows that would give one number to several accounts.

    ``accounts``: every account in identifier order (see :func:`_load_accounts`); the others named on a
    refusal are listed in that order.
    """
    new = dict(zip((a.id for a in updates.accounts), updates.e164s, strict=True))
    first: dict[str, str] = {}  # number -> the identifier of its first holder
    holders: dict[str, list[str]] = {}  # number -> every holder, for the numbers held more than once
    for a in accounts:
        if a.__class__ is _Account:
            identifier, number = a.identifier, new.get(a.id, a.phone)
        else:
            identifier, number = a
        if not number:
            continue
        held = first.setdefault(number, identifier)
        if held is not identifier:
            holders.setdefault(number, [held]).append(identifier)
    del new, first
    bad = [i for i, e164 in enumerate(updates.e164s) if e164 in holders]
    if not bad:
        return
    by_line = {p.line: i for i, p in enumerate(plan)}
    for i in bad:
        row, e164, account = updates.rows[i], updates.e164s[i], updates.accounts[i]
        others = ", ".join(o for o in holders[e164] if o != account.identifier)
        reason = _("number shared with {others} (one personal number per agent; --allow-shared accepts it)").format(
            others=others
        )
        rejects.append((row, reason))
        refused = bulk.PlanRow(row.line, account.identifier, bulk.REJECT, "phone", account.phone, e164, reason)
        if row.line in by_line:  # a dry run's plan holds the row
            plan[by_line[row.line]] = refused
        else:
            plan.append(refused)
    updates.drop(set(bad))
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


def _apply(env: Env, source, updates: _Updates, result: bulk.BulkResult, scope: accounts.Managed) -> int:
    """Write the plan: every step streams from ``updates`` (nothing per row is held in memory twice)."""
    actor = env.require_actor()
    # Each change goes in the history of its account's establishment, with the delegation it went through.
    where = {est_id: (est_siret, delegation_id) for est_id, est_siret, _n, delegation_id in scope.establishments}
    queries.bulk_update_phones(
        env.session,
        zip((a.id for a in updates.accounts), updates.e164s, updates.types, strict=True),
        clock.now(),
    )
    batch_id = bulk.record_batch(
        env,
        kind=KIND,
        source=source,
        encoded=(
            (a.id, a.identifier, row[0], _change_json(a.phone, a.phone_type), _change_json(e164, type_))
            for row, e164, type_, a in updates
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
                establishment=where[a.establishment_id][0],
                before={"phone": a.phone},
                after={"phone": e164},
                batch_id=batch_id,
                delegation_id=where[a.establishment_id][1],
            )
            for e164, a in zip(updates.e164s, updates.accounts, strict=True)
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
                body=body.format(identifier=a.identifier, phone=v.mask_phone(e164)),
            )
            for e164, a in zip(updates.e164s, updates.accounts, strict=True)
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
