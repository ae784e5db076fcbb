"""``accounts import`` / ``export`` / ``renew --file``: accounts in bulk, on the one bulk engine.

Import (columns in French or English, see :data:`csvio.ALIASES`): ``identifier``, ``civility``,
``last_name``, ``first_name``, ``email``, ``phone``, ``function``, ``profile``.

- A row with an identifier updates that account of the establishment acted on; an empty cell
  leaves the field as it is (a file never clears a field). An identifier outside that establishment
  gets the same answer as an unknown one.
- A row without an identifier creates an account (civility, names and e-mail required; profile
  ``user`` by default); the identifiers are generated with one reservation of the sequence, and
  each agent is e-mailed an activation code (15 days), as ``accounts create`` does. In ``upsert``
  mode a row naming an existing person (same last name, first name and e-mail, ignoring case) is
  that person's account, so the same file imported twice creates nobody the second time;
  ``create-only`` rejects it, and rejects rows with an identifier; ``update-only`` rejects rows
  without one.
- Every value goes through the validators of ``accounts create/update``. Rejected: the same account
  or the same person twice in the file, a phone shared with another account (unless
  ``--allow-shared``), demotions that would leave no active administrator (checked over the final
  state, with the establishment locked), a row whose ``establishment`` cell names another SIRET.
- Other columns (status, expires_at, rights…) are ignored with a warning; a NIR-looking column is
  dropped with a warning (:mod:`csvio`).
- Applied in one transaction, set-based: one sequence reservation, COPY/executemany inserts of the
  accounts, their activation codes and the e-mails, one executemany UPDATE, the batch (kind
  ``accounts``), the history events. A changed phone is unverified and ends the agent's sessions;
  a changed e-mail or phone is notified to the agent (at the old address too).

Renew (``renew --file``): an ``identifier`` column; each activated account of the establishment is
renewed 18 months from now (one executemany), batch kind ``renew``. An account whose expiry is
already on or after the new expiry date is unchanged (the same file twice the same day is a no-op).

Undo: ``UNDO`` restores updated fields and deletes created accounts (a created account that was
changed or activated since is a conflict, ``--force`` deletes it anyway); ``UNDO_RENEW`` restores
``expires_at`` and ``renewed_at``. Neither may leave an establishment without an active administrator.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlmodel import col

from pepsctl import clock
from pepsctl.domain import accounts, authz, bulk, codes, csvio, history, notify, stepup
from pepsctl.domain import validation as v
from pepsctl.domain.env import ADMIN, USER, Env
from pepsctl.domain.generic import generic_hint
from pepsctl.domain.history import NewEvent
from pepsctl.errors import InvalidInput, LastAdministrator
from pepsctl.i18n import _
from pepsctl.store import queries
from pepsctl.store.models import Account, BatchChange, Establishment, OneTimeCode, OutboxMessage

KIND = "accounts"
RENEW_KIND = "renew"
CREATE = "create"
MODES = ("upsert", "create-only", "update-only")
# The fields an accounts file owns, in the order the plan lists them.
FIELDS = ("civility", "last_name", "first_name", "email", "phone", "function", "profile")
WANTED = ("identifier", *FIELDS, "establishment")
CREATE_REQUIRED = ("civility", "last_name", "first_name", "email")
# What the history records of an account (phones masked by the history module).
HISTORY_KEYS = ("profile", "civility", "last_name", "first_name", "email", "phone", "function")
EXPORT_COLUMNS = [
    "identifier",
    "civility",
    "last_name",
    "first_name",
    "email",
    "phone",
    "function",
    "profile",
    "status",
    "expires_at",
]
_PROGRESS_STEP = 5000


@dataclass(frozen=True, slots=True)
class ImportOptions:
    mode: str = "upsert"
    dry_run: bool = False
    skip_invalid: bool = False
    allow_shared: bool = False
    establishment: str | None = None  # SIRET; default: the actor's


@dataclass(frozen=True, slots=True)
class RenewOptions:
    dry_run: bool = False
    skip_invalid: bool = False
    establishment: str | None = None


# -- reading -------------------------------------------------------------------------------------


def read_file(path: str) -> csvio.CsvFile:
    """Read an accounts file and normalise every distinct phone writing once, before any transaction.

    A file without an identifier column can only create accounts: it must name the civility, the
    names and the e-mail (exit 3 on line 1 otherwise).
    """
    source = csvio.read(path, wanted=WANTED, required_any=[("identifier", "last_name", "first_name", "email")])
    if "identifier" not in source.fields:
        for name in CREATE_REQUIRED:
            if name not in source.fields:
                raise InvalidInput(
                    _("Line 1: no column for {name}.").format(name=name),
                    field="file",
                    hint=_(
                        "Without an identifier column every row creates an account: give civility, "
                        "last_name, first_name and email (phone, function and profile are optional)."
                    ),
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


def read_renew_file(path: str) -> csvio.CsvFile:
    return csvio.read(path, wanted=("identifier",), required_any=[("identifier",)])


def _phone(source: csvio.CsvFile, raw: str) -> v.Phone:
    found = source.parsed.get(raw)
    if found is None:
        found = v.normalize_phone(raw)
    if isinstance(found, InvalidInput):
        raise found
    assert isinstance(found, v.Phone)
    return found


def _validate(source: csvio.CsvFile, row: csvio.Row) -> dict[str, Any]:
    """The row's non-empty owned cells, validated as ``accounts create/update`` does (InvalidInput if not)."""
    values: dict[str, Any] = {}
    for name in FIELDS:
        raw = row.values.get(name, "")
        if not raw:
            continue
        if name == "phone":
            values[name] = _phone(source, raw)
        elif name == "profile":
            values[name] = accounts.validate_profile(raw)
        elif name == "civility":
            values[name] = v.normalize_civility(raw)
        elif name in ("last_name", "first_name"):
            values[name] = v.normalize_name(raw, name)
        elif name == "email":
            values[name] = v.normalize_email(raw)
        else:
            function = v.normalize_function(raw)
            if function is not None:
                values[name] = function
    return values


# -- planning ------------------------------------------------------------------------------------


def _person(last_name: str, first_name: str, email: str) -> tuple[str, str, str]:
    return (last_name.casefold(), first_name.casefold(), email.casefold())


def _active_admin(account: Any, profile: str, now: datetime) -> bool:
    return (
        profile == ADMIN
        and account.activated_at is not None
        and account.locked_at is None
        and (account.expires_at is None or account.expires_at > now)
    )


@dataclass(slots=True)
class _Item:
    """One valid row: an update of ``account`` (``changes``: field → new value) or a creation (``values``)."""

    row: csvio.Row
    account: Any | None
    values: dict[str, Any] = field(default_factory=dict)
    changes: dict[str, Any] = field(default_factory=dict)
    identifier: str | None = None  # set for a creation once applied

    @property
    def creates(self) -> bool:
        return self.account is None

    def final_phone(self) -> str | None:
        if self.account is None:
            phone = self.values.get("phone")
            return phone.e164 if phone else None
        return self.changes.get("phone", self.account.phone)


def import_file(
    env: Env, source: csvio.CsvFile, options: ImportOptions, *, progress: bulk.Progress = bulk.no_progress
) -> bulk.BulkResult:
    if options.mode not in MODES:
        raise InvalidInput(
            _("Unknown mode {mode!r}: use {modes}.").format(mode=options.mode, modes=", ".join(MODES)), field="mode"
        )
    establishment = accounts.resolve_establishment(env, options.establishment, "account.update")
    assert establishment.id is not None
    if options.mode != "update-only":
        authz.require(env, "account.create", establishment.id, target=establishment.siret)
    queries.lock_establishment(env.session, establishment.id)
    loaded = queries.accounts_for_bulk(env.session, [establishment.id])
    by_identifier = {a.identifier: a for a in loaded}
    by_person: dict[tuple[str, str, str], list] = defaultdict(list)
    for a in loaded:
        by_person[_person(a.last_name, a.first_name, a.email)].append(a)

    items: dict[int, _Item] = {}  # line -> valid row
    reasons: dict[int, str] = {}  # line -> why the row is rejected
    seen_accounts: dict[int, int] = {}  # account id -> line
    seen_people: dict[tuple[str, str, str], int] = {}  # person -> line
    for done, row in enumerate(source.rows, start=1):
        if done % _PROGRESS_STEP == 0:
            progress(_PROGRESS_STEP)
        reason = _plan_row(
            source, row, options.mode, establishment, by_identifier, by_person, seen_accounts, seen_people, items
        )
        if reason is not None:
            reasons[row.line] = reason
    progress(len(source.rows) % _PROGRESS_STEP)

    # Rules over the final state: rejecting a row can break another, so repeat until nothing moves.
    while True:
        found = {} if options.allow_shared else _shared(loaded, items)
        found.update(_last_admin(loaded, items, establishment.siret, exclude=found))
        if not found:
            break
        for line, reason in found.items():
            reasons[line] = reason
            del items[line]

    plan, rejects = _plan(source, items, reasons)
    changed = sum(1 for i in items.values() if i.creates or i.changes)
    result, apply = bulk.planned(
        env,
        kind=KIND,
        source=source,
        plan=plan,
        rejects=rejects,
        changed=changed,
        unchanged=len(items) - changed,
        dry_run=options.dry_run,
        skip_invalid=options.skip_invalid,
        siret=establishment.siret,
    )
    if not apply:
        return result
    stepup.require(env, "bulk.apply", target=source.sha256)
    todo = [i for i in items.values() if i.creates or i.changes]
    result.batch_id = _apply(env, source, establishment, todo, result)
    result.applied = True
    result.plan, _rejects = _plan(source, items, reasons)  # now with the new identifiers
    return result


def _plan_row(
    source: csvio.CsvFile,
    row: csvio.Row,
    mode: str,
    establishment: Establishment,
    by_identifier: dict[str, Any],
    by_person: dict[tuple[str, str, str], list],
    seen_accounts: dict[int, int],
    seen_people: dict[tuple[str, str, str], int],
    items: dict[int, _Item],
) -> str | None:
    """Validate one row and add it to ``items``; or return why it is rejected."""
    raw_siret = row.values.get("establishment", "")
    if raw_siret:
        try:
            siret = v.normalize_siret(raw_siret)
        except InvalidInput as error:
            return error.message
        if siret != establishment.siret:
            return _("the establishment column names {siret}: this import acts on {own} (see --establishment)").format(
                siret=siret, own=establishment.siret
            )
    raw_identifier = row.values.get("identifier", "")
    account = None
    if raw_identifier:
        try:
            identifier = v.normalize_identifier(raw_identifier)
        except InvalidInput as error:
            return error.message
        account = by_identifier.get(identifier)
        if account is None:
            return _("no account {identifier} in the establishments you may act on").format(identifier=identifier)
        if mode == "create-only":
            return _("{identifier} already exists (create-only mode creates accounts only)").format(
                identifier=identifier
            )
    elif mode == "update-only":
        return _("no identifier (update-only mode creates no account)")
    try:
        values = _validate(source, row)
    except InvalidInput as error:
        return error.message
    if account is None:
        missing = [name for name in CREATE_REQUIRED if name not in values]
        if missing:
            return _("a new account needs {fields}: {missing} is empty").format(
                fields=", ".join(CREATE_REQUIRED), missing=missing[0]
            )
        person = _person(values["last_name"], values["first_name"], values["email"])
        if person in seen_people:
            return _("the same person is already on line {line}").format(line=seen_people[person])
        existing = by_person.get(person, [])
        if existing and mode == "create-only":
            return _("{first} {last} already has an account here: {identifier}").format(
                first=values["first_name"], last=values["last_name"], identifier=existing[0].identifier
            )
        if len(existing) > 1:
            return _("several accounts match this person: give the identifier")
        if not existing:
            seen_people[person] = row.line
            values.setdefault("profile", USER)
            items[row.line] = _Item(row, None, values=values)
            return None
        account = existing[0]  # upsert: the person's account
    if account.id in seen_accounts:
        return _("the account is already on line {line}").format(line=seen_accounts[account.id])
    changes: dict[str, Any] = {}
    for name, value in values.items():
        if name == "phone":
            if value.e164 != account.phone:
                changes["phone"] = value.e164
                changes["phone_type"] = value.type
        elif value != getattr(account, name):
            changes[name] = value
    person = _person(
        changes.get("last_name", account.last_name),
        changes.get("first_name", account.first_name),
        changes.get("email", account.email),
    )
    if person in seen_people:
        return _("the same person is already on line {line}").format(line=seen_people[person])
    others = [a for a in by_person.get(person, []) if a.id != account.id]
    if others and person != _person(account.last_name, account.first_name, account.email):
        return _("{identifier} already has these names and e-mail: one account per person").format(
            identifier=others[0].identifier
        )
    seen_accounts[account.id] = row.line
    seen_people[person] = row.line
    items[row.line] = _Item(row, account, changes=changes)
    return None


def _shared(loaded: list, items: dict[int, _Item]) -> dict[int, str]:
    """Rows that would give a number to several accounts (final state; one personal number per agent)."""
    by_account = {i.account.id: i for i in items.values() if i.account is not None}
    holders: dict[str, list[str]] = defaultdict(list)  # number -> identifiers ("line N" for new accounts)
    for a in loaded:
        item = by_account.get(a.id)
        number = item.final_phone() if item is not None else a.phone
        if number:
            holders[number].append(a.identifier)
    for item in items.values():
        if item.creates and (number := item.final_phone()):
            holders[number].append(_("line {line}").format(line=item.row.line))
    found = {}
    for line, item in items.items():
        setting = (item.creates and "phone" in item.values) or "phone" in item.changes
        number = item.final_phone()
        if not setting or number is None or len(holders[number]) < 2:
            continue
        me = item.account.identifier if item.account is not None else _("line {line}").format(line=line)
        others = ", ".join(h for h in holders[number] if h != me)
        found[line] = _(
            "number shared with {others} (one personal number per agent; --allow-shared accepts it)"
        ).format(others=others)
    return found


def _last_admin(loaded: list, items: dict[int, _Item], siret: str, *, exclude: dict[int, str]) -> dict[int, str]:
    """Demotions that would leave the establishment without an active administrator (final state)."""
    now = clock.now()
    current = sum(1 for a in loaded if _active_admin(a, a.profile, now))
    if current == 0:
        return {}
    profiles = {
        i.account.id: i.changes["profile"]
        for line, i in items.items()
        if i.account is not None and "profile" in i.changes and line not in exclude
    }
    final = sum(1 for a in loaded if _active_admin(a, profiles.get(a.id, a.profile), now))
    if final:
        return {}
    return {
        line: _("{identifier} is an active administrator: demoting it would leave {siret} without one").format(
            identifier=i.account.identifier, siret=siret
        )
        for line, i in items.items()
        if line not in exclude
        and i.account is not None
        and i.changes.get("profile") == USER
        and _active_admin(i.account, i.account.profile, now)
    }


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, v.Phone):
        return value.e164
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _plan(
    source: csvio.CsvFile, items: dict[int, _Item], reasons: dict[int, str]
) -> tuple[list[bulk.PlanRow], list[tuple[csvio.Row, str]]]:
    plan: list[bulk.PlanRow] = []
    rejects: list[tuple[csvio.Row, str]] = []
    for row in source.rows:
        if row.line in reasons:
            reason = reasons[row.line]
            rejects.append((row, reason))
            plan.append(
                bulk.PlanRow(row.line, row.values.get("identifier") or None, bulk.REJECT, None, None, None, reason)
            )
            continue
        item = items[row.line]
        if item.creates:
            plan.extend(
                bulk.PlanRow(row.line, item.identifier, CREATE, name, None, _text(item.values[name]), None)
                for name in FIELDS
                if name in item.values
            )
        elif item.changes:
            plan.extend(
                bulk.PlanRow(
                    row.line,
                    item.account.identifier,
                    bulk.UPDATE,
                    name,
                    _text(getattr(item.account, name)),
                    _text(item.changes[name]),
                    None,
                )
                for name in FIELDS
                if name in item.changes
            )
        else:
            plan.append(bulk.PlanRow(row.line, item.account.identifier, bulk.UNCHANGED, None, None, None, None))
    return plan, rejects


# -- applying ------------------------------------------------------------------------------------


def issue_activation_codes(env: Env, account_ids: list[int]) -> dict[int, codes.IssuedCode]:
    """The set-based :func:`codes.issue` for new accounts: one activation code each, one insert, one read.

    New accounts have no earlier code to invalidate. Returns account id → issued code.
    """
    if not account_ids:
        return {}
    now = clock.now()
    plain = {account_id: codes.new_long_code() for account_id in account_ids}
    challenges = {secrets.token_hex(16): account_id for account_id in account_ids}
    challenge_of = {account_id: challenge for challenge, account_id in challenges.items()}
    expires_at = now + codes.ACTIVATION_LIFETIME
    queries.bulk_insert(
        env.session,
        OneTimeCode,
        [
            {
                "account_id": account_id,
                "purpose": codes.ACTIVATION,
                "target": None,
                "challenge": challenge_of[account_id],
                "code_hash": codes.code_hash(env.session, plain[account_id]),
                "channel": "email",
                "created_at": now,
                "expires_at": expires_at,
                "used_at": None,
                "invalidated_at": None,
            }
            for account_id in account_ids
        ],
    )
    # The ids COPY/executemany do not return: read them back by their random challenges (one query).
    ids = {
        challenge: code_id
        for code_id, challenge in env.session.execute(
            select(OneTimeCode.id, OneTimeCode.challenge)
            .where(col(OneTimeCode.purpose) == codes.ACTIVATION)
            .where(col(OneTimeCode.created_at) == now)
            .where(col(OneTimeCode.used_at).is_(None))
        )
        if challenge in challenges
    }
    return {
        account_id: codes.IssuedCode(ids[challenge_of[account_id]], plain[account_id], expires_at)
        for account_id in account_ids
    }


def _apply(env: Env, source: csvio.CsvFile, establishment: Establishment, todo: list[_Item], result) -> int:
    session = env.session
    now = clock.now()
    actor = env.require_actor()
    assert establishment.id is not None
    creations = [i for i in todo if i.creates]
    updates = [i for i in todo if not i.creates]
    messages: list[notify.Message] = []
    created_ids: dict[str, int] = {}
    if creations:
        numbers = queries.next_numbers(session, "account", len(creations))
        rows = []
        for item, number in zip(creations, numbers, strict=True):
            values = item.values
            phone = values.get("phone")
            item.identifier = v.format_identifier(
                v.identifier_prefix(values["first_name"], values["last_name"]), number
            )
            rows.append(
                {
                    "identifier": item.identifier,
                    "establishment_id": establishment.id,
                    "profile": values["profile"],
                    "civility": values["civility"],
                    "last_name": values["last_name"],
                    "first_name": values["first_name"],
                    "email": values["email"],
                    "phone": phone.e164 if phone else None,
                    "phone_type": phone.type if phone else None,
                    "function": values.get("function"),
                    "must_set_password": True,
                    "failed_attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                    "generic_hint": generic_hint(values["first_name"], values["last_name"], values["email"]),
                }
            )
        queries.bulk_insert(session, Account, rows)
        wanted = {item.identifier for item in creations}
        created_ids = {
            identifier: account_id
            for account_id, identifier in session.execute(
                select(Account.id, Account.identifier)
                .where(col(Account.establishment_id) == establishment.id)
                .where(col(Account.created_at) == now)
            )
            if identifier in wanted
        }
        issued = issue_activation_codes(env, list(created_ids.values()))
        for item in creations:
            assert item.identifier is not None
            messages.append(
                accounts.activation_message(
                    item.values["first_name"],
                    item.values["last_name"],
                    establishment.name,
                    item.identifier,
                    issued[created_ids[item.identifier]],
                    item.values["email"],
                )
            )
    queries.bulk_update_accounts(session, [{"id": i.account.id, **i.changes} for i in updates], now)

    changes = [_creation_change(i, created_ids) for i in creations] + [_update_change(i) for i in updates]
    changes.sort(key=lambda c: c["line"])
    batch_id = bulk.record_batch(
        env,
        kind=KIND,
        source=source,
        changes=changes,
        counts=(result.total, len(changes), result.unchanged, result.rejected),
    )
    # A changed phone ends the agent's sessions (security.md), but the administrator's own one.
    queries.revoke_sessions_of(
        session, [i.account.id for i in updates if "phone" in i.changes], now, keep=actor.session_id
    )
    for item in updates:
        contact = sorted({"email", "phone"} & set(item.changes))
        if contact:
            account = item.account
            messages += accounts.contact_messages(
                account.identifier,
                item.changes.get("email", account.email),
                item.changes.get("phone", account.phone),
                {"email": account.email},
                contact,
            )
    events = [
        NewEvent(
            action="account.create" if c["before"] == {} else "account.update",
            target=c["identifier"],
            establishment=establishment.siret,
            before=None if c["before"] == {} else {k: c["before"][k] for k in HISTORY_KEYS if k in c["before"]},
            after=(
                {**{k: c["after"][k] for k in HISTORY_KEYS}, "expires_at": None}
                if c["before"] == {}
                else {k: c["after"][k] for k in HISTORY_KEYS if k in c["after"]}
            ),
            batch_id=batch_id,
        )
        for c in changes
    ]
    events.append(
        NewEvent(
            action="bulk.applied",
            target=f"batch:{batch_id}",
            establishment=establishment.siret,
            batch_id=batch_id,
            after={
                "kind": KIND,
                "created": len(creations),
                "changed": len(changes),
                "rows": result.total,
                "sha256": source.sha256,
            },
        )
    )
    history.record_many(env, events)
    notify.deliver_many(session, env.gateway, messages)
    return batch_id


def _snapshot(values: dict[str, Any]) -> dict[str, Any]:
    phone = values.get("phone")
    return {
        "profile": values["profile"],
        "civility": values["civility"],
        "last_name": values["last_name"],
        "first_name": values["first_name"],
        "email": values["email"],
        "phone": phone.e164 if phone else None,
        "phone_type": phone.type if phone else None,
        "function": values.get("function"),
    }


def _creation_change(item: _Item, created_ids: dict[str, int]) -> dict:
    assert item.identifier is not None
    return {
        "account_id": created_ids[item.identifier],
        "identifier": item.identifier,
        "line": item.row.line,
        "before": {},
        # "activated": undo deletes a created account only while it is still the one created.
        "after": {**_snapshot(item.values), "activated": False},
    }


def _update_change(item: _Item) -> dict:
    account = item.account
    return {
        "account_id": account.id,
        "identifier": account.identifier,
        "line": item.row.line,
        "before": {name: getattr(account, name) for name in item.changes},
        "after": dict(item.changes),
    }


# -- export --------------------------------------------------------------------------------------


def export(env: Env, siret: str | None = None) -> list[dict[str, Any]]:
    """One row per account of the establishment, phones in full (an administrator's export)."""
    establishment = accounts.resolve_establishment(env, siret, "account.list")
    now = clock.now()
    assert establishment.id is not None
    return [
        {
            "identifier": a.identifier,
            "civility": a.civility,
            "last_name": a.last_name,
            "first_name": a.first_name,
            "email": a.email,
            "phone": a.phone,
            "function": a.function,
            "profile": a.profile,
            "status": accounts.status_of(a, now),
            "expires_at": a.expires_at,
        }
        for a in queries.accounts_for_bulk(env.session, [establishment.id])
    ]


# -- renew ---------------------------------------------------------------------------------------


def _renewable(raw: str, by_identifier: dict[str, Any], seen: dict[int, int]) -> tuple[Any, str]:
    """The account a renew row names, or why it is rejected."""
    if not raw:
        return None, _("no identifier")
    try:
        identifier = v.normalize_identifier(raw)
    except InvalidInput as error:
        return None, error.message
    account = by_identifier.get(identifier)
    if account is None:
        return None, _("no account {identifier} in the establishments you may act on").format(identifier=identifier)
    if account.id in seen:
        return None, _("the account is already on line {line}").format(line=seen[account.id])
    if account.activated_at is None:
        return None, _("{identifier} is not activated yet: there is nothing to renew").format(identifier=identifier)
    return account, ""


def renew_file(
    env: Env, source: csvio.CsvFile, options: RenewOptions, *, progress: bulk.Progress = bulk.no_progress
) -> bulk.BulkResult:
    establishment = accounts.resolve_establishment(env, options.establishment, "account.renew")
    assert establishment.id is not None
    queries.lock_establishment(env.session, establishment.id)
    by_identifier = {a.identifier: a for a in queries.accounts_for_bulk(env.session, [establishment.id])}
    now = clock.now()
    expires_at = accounts.add_months(now, accounts.VALIDITY_MONTHS)

    plan: list[bulk.PlanRow] = []
    rejects: list[tuple[csvio.Row, str]] = []
    todo: list[tuple[csvio.Row, Any]] = []
    seen: dict[int, int] = {}
    unchanged = 0
    for done, row in enumerate(source.rows, start=1):
        if done % _PROGRESS_STEP == 0:
            progress(_PROGRESS_STEP)
        raw = row.values.get("identifier", "")
        account, reason = _renewable(raw, by_identifier, seen)
        if account is None:
            rejects.append((row, reason))
            plan.append(bulk.PlanRow(row.line, raw or None, bulk.REJECT, "expires_at", None, None, reason))
            continue
        seen[account.id] = row.line
        before = _text(account.expires_at)
        if account.expires_at is not None and account.expires_at.date() >= expires_at.date():
            unchanged += 1
            plan.append(bulk.PlanRow(row.line, account.identifier, bulk.UNCHANGED, "expires_at", before, before, None))
            continue
        todo.append((row, account))
        plan.append(
            bulk.PlanRow(row.line, account.identifier, bulk.UPDATE, "expires_at", before, _text(expires_at), None)
        )
    progress(len(source.rows) % _PROGRESS_STEP)

    result, apply = bulk.planned(
        env,
        kind=RENEW_KIND,
        source=source,
        plan=plan,
        rejects=rejects,
        changed=len(todo),
        unchanged=unchanged,
        dry_run=options.dry_run,
        skip_invalid=options.skip_invalid,
        siret=establishment.siret,
    )
    if not apply:
        return result
    stepup.require(env, "bulk.apply", target=source.sha256)
    queries.bulk_set_expiry(
        env.session, [{"id": a.id, "expires_at": expires_at, "renewed_at": now} for _row, a in todo], now
    )
    changes = [
        {
            "account_id": a.id,
            "identifier": a.identifier,
            "line": row.line,
            "before": {"expires_at": _text(a.expires_at), "renewed_at": _text(a.renewed_at)},
            "after": {"expires_at": _text(expires_at), "renewed_at": _text(now)},
        }
        for row, a in todo
    ]
    batch_id = bulk.record_batch(
        env,
        kind=RENEW_KIND,
        source=source,
        changes=changes,
        counts=(result.total, len(changes), unchanged, len(rejects)),
    )
    history.record_many(
        env,
        [
            NewEvent(
                action="account.renew",
                target=c["identifier"],
                establishment=establishment.siret,
                before={"expires_at": c["before"]["expires_at"]},
                after={"expires_at": c["after"]["expires_at"]},
                batch_id=batch_id,
            )
            for c in changes
        ]
        + [
            NewEvent(
                action="bulk.applied",
                target=f"batch:{batch_id}",
                establishment=establishment.siret,
                batch_id=batch_id,
                after={"kind": RENEW_KIND, "changed": len(changes), "rows": result.total, "sha256": source.sha256},
            )
        ],
    )
    result.batch_id = batch_id
    result.applied = True
    return result


# -- undo ----------------------------------------------------------------------------------------

_UNDO_COLUMNS = (
    Account.id,
    Account.establishment_id,
    Account.profile,
    Account.civility,
    Account.last_name,
    Account.first_name,
    Account.email,
    Account.phone,
    Account.phone_type,
    Account.function,
    Account.activated_at,
    Account.expires_at,
    Account.renewed_at,
)


def _batch_accounts(env: Env, batch_id: int) -> dict[int, Any]:
    """The accounts a batch changed that still exist, by id (one join, no IN list)."""
    return {
        r.id: r
        for r in env.session.execute(
            select(*_UNDO_COLUMNS)
            .join(BatchChange, col(BatchChange.account_id) == col(Account.id))
            .where(col(BatchChange.batch_id) == batch_id)
        )
    }


def _undo_current(env: Env, changes: list[bulk.DecodedChange]) -> dict[int | None, dict | None]:
    if not changes:
        return {}
    rows = _batch_accounts(env, changes[0][0].batch_id)
    result: dict[int | None, dict | None] = {}
    for change, _before, after in changes:
        row = rows.get(change.account_id) if change.account_id is not None else None
        if row is None:
            continue
        values = {name: _text(getattr(row, name)) for name in after if name != "activated"}
        if "activated" in after:
            values["activated"] = row.activated_at is not None
        result[change.id] = values
    return result


class _AdminGuard:
    """Refuse an undo that leaves an establishment it touches without an active administrator."""

    def __init__(self, env: Env, batch_id: int) -> None:
        self.env = env
        ids = {r.establishment_id for r in _batch_accounts(env, batch_id).values()}
        self.before: dict[int, int] = {}
        now = clock.now()
        for establishment_id in sorted(ids):
            queries.lock_establishment(env.session, establishment_id)
            self.before[establishment_id] = queries.count_active_admins(env.session, establishment_id, now)

    def check(self) -> None:
        now = clock.now()
        for establishment_id, before in self.before.items():
            if before and not queries.count_active_admins(self.env.session, establishment_id, now):
                establishment = self.env.session.get(Establishment, establishment_id)
                siret = establishment.siret if establishment is not None else "-"
                raise LastAdministrator(
                    _("Undoing this batch would leave {siret} without an active administrator.").format(siret=siret),
                    hint=_("Create or promote another administrator first (pepsctl accounts create --profile admin)."),
                )


def _undo_restore(env: Env, items: list[tuple[BatchChange, dict, dict | None]]) -> None:
    if not items:
        return
    guard = _AdminGuard(env, items[0][0].batch_id)
    now = clock.now()
    created = [c.account_id for c, before, _now in items if before == {} and c.account_id is not None]
    if created:
        _blank_outbox_codes(env, created)
        queries.delete_accounts(env.session, created)
    updates = [{"id": c.account_id, **before} for c, before, _now in items if before]
    queries.bulk_update_accounts(env.session, updates, now)
    actor = env.require_actor()
    queries.revoke_sessions_of(env.session, [u["id"] for u in updates if "phone" in u], now, keep=actor.session_id)
    guard.check()


def _blank_outbox_codes(env: Env, account_ids: list[int]) -> None:
    """Blank the outbox copies of the codes of accounts about to be deleted (one executemany)."""
    from sqlalchemy import bindparam, update

    outbox = OutboxMessage.__table__  # type: ignore[attr-defined]  # Core: not an ORM bulk update by key
    codes_of = select(OneTimeCode.id).where(col(OneTimeCode.account_id) == bindparam("b_account"))
    env.session.execute(
        update(outbox)
        .where(outbox.c.code_id.in_(codes_of.scalar_subquery()))
        .where(outbox.c.code.is_not(None))
        .values({outbox.c.code: None, outbox.c.body: func.replace(outbox.c.body, outbox.c.code, notify.BLANKED)}),
        [{"b_account": account_id} for account_id in account_ids],
    )


def _undo_event(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if not values:
        return None
    return {k: values[k] for k in HISTORY_KEYS if k in values} or None


UNDO = bulk.Undoer(current=_undo_current, restore=_undo_restore, action="account.undo", event=_undo_event)


def _renew_current(env: Env, changes: list[bulk.DecodedChange]) -> dict[int | None, dict | None]:
    if not changes:
        return {}
    rows = _batch_accounts(env, changes[0][0].batch_id)
    return {
        change.id: {"expires_at": _text(row.expires_at), "renewed_at": _text(row.renewed_at)}
        for change, _b, _a in changes
        if change.account_id is not None and (row := rows.get(change.account_id)) is not None
    }


def _renew_restore(env: Env, items: list[tuple[BatchChange, dict, dict | None]]) -> None:
    if not items:
        return
    guard = _AdminGuard(env, items[0][0].batch_id)
    queries.bulk_set_expiry(
        env.session,
        [
            {
                "id": c.account_id,
                "expires_at": datetime.fromisoformat(before["expires_at"]) if before["expires_at"] else None,
                "renewed_at": datetime.fromisoformat(before["renewed_at"]) if before["renewed_at"] else None,
            }
            for c, before, _now in items
        ],
        clock.now(),
    )
    guard.check()


UNDO_RENEW = bulk.Undoer(
    current=_renew_current,
    restore=_renew_restore,
    action="account.renew.undo",
    event=lambda values: {"expires_at": values["expires_at"]} if values else None,
)
