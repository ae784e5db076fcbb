"""Service rights: per account, per service, per establishment, at level write or read (none = no row).

- An account's rights on its own establishment are granted by that establishment's administrators.
- A centralizer's administrators grant their own users rights on a delegated establishment's
  services, within an accepted delegation's scope (``establishment=`` names it); the row remembers
  the delegation, and revoking the delegation deletes it.
- Services marked ``held_by`` in the catalogue (account management) are held by the administrator
  profile and are never granted.
- Granting a right to a sensitive service is a sensitive action (step-up).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, delete, or_, select
from sqlmodel import col

from pepsctl import clock
from pepsctl.domain import accounts, authz, catalogue, history, stepup
from pepsctl.domain import validation as v
from pepsctl.domain.env import ADMIN, Env
from pepsctl.domain.history import NewEvent
from pepsctl.errors import Conflict, InvalidInput
from pepsctl.i18n import _
from pepsctl.store import queries
from pepsctl.store.models import Account, AccountRight, Delegation, DelegationService, Establishment, Service

WRITE = "write"
READ = "read"
LEVELS = (WRITE, READ)
_LEVEL_WORDS = {
    "write": WRITE,
    "w": WRITE,
    "modification": WRITE,
    "modify": WRITE,
    "read": READ,
    "r": READ,
    "lecture": READ,
    "lecture seule": READ,
    "lecture-seule": READ,
    "read-only": READ,
    "none": None,
    "aucun": None,
    "": None,
}


def parse_level(raw: str | None) -> str | None:
    """write | read | None (no right), from English or French words, case and accents ignored."""
    folded = catalogue._fold(raw or "")
    if folded not in _LEVEL_WORDS:
        raise InvalidInput(
            _("Unknown level {level!r}: use write (modification), read (lecture seule) or none.").format(level=raw),
            field="level",
        )
    return _LEVEL_WORDS[folded]


@dataclass(frozen=True, slots=True)
class RightView:
    identifier: str
    establishment: str
    service: str
    label: str
    level: str
    via: str  # profile | direct | delegation
    delegation_id: int | None
    sensitive: bool
    active: bool
    granted_by: str | None
    granted_at: datetime | None


@dataclass(frozen=True, slots=True)
class RightChange:
    identifier: str
    establishment: str
    service: str
    before: str | None
    after: str | None


@dataclass(frozen=True, slots=True)
class MatrixRow:
    identifier: str
    last_name: str
    first_name: str
    profile: str
    rights: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Matrix:
    establishment: str
    services: list[catalogue.ServiceView]
    rows: list[MatrixRow]


# -- helpers -------------------------------------------------------------------------------------


def _active_delegations(env: Env, ids: set[int], *, lock: bool = False) -> dict[int, set[str]]:
    """For the given delegation ids, the scope of those still accepted and unexpired (two queries).

    ``lock``: to write through them, share-lock the rows (``FOR SHARE`` on PostgreSQL) so that a
    concurrent revocation waits for this transaction, or is seen before it.
    """
    if not ids:
        return {}
    now = clock.now()
    query = (
        select(Delegation.id)
        .where(col(Delegation.id).in_(ids))
        .where(col(Delegation.status) == "accepted")
        .where(or_(col(Delegation.ends_at).is_(None), col(Delegation.ends_at) > now))
    )
    active = set(env.session.scalars(query.with_for_update(read=True) if lock else query))
    scopes: dict[int, set[str]] = {i: set() for i in active}
    if active:
        for delegation_id, code in env.session.execute(
            select(DelegationService.delegation_id, DelegationService.service_code).where(
                col(DelegationService.delegation_id).in_(active)
            )
        ):
            scopes[delegation_id].add(code)
    return scopes


def _held_services(env: Env, profile: str) -> list[Service]:
    return [s for s in catalogue.services(env.session) if s.held_by == profile]


def _target(env: Env, home: Establishment, siret: str | None, action: str) -> tuple[Establishment, int | None]:
    """The establishment a grant applies to: the account's own, or one delegated to it (and the delegation)."""
    if siret is None:
        return home, None
    siret = v.normalize_siret(siret)
    if siret == home.siret:
        return home, None
    target = queries.get_establishment_by_siret(env.session, siret)
    if target is None or target.id is None or home.id is None:
        authz.deny(env, action, siret)
    delegation = authz.active_delegation(env, home.id, target.id, lock=True)  # a revocation waits for us
    if delegation is None or delegation.id is None:
        authz.deny(env, action, siret)
    return target, delegation.id


def _check_scope(env: Env, action: str, siret: str, delegation_id: int | None, services: list[Service]) -> None:
    if delegation_id is None:
        return
    scope = authz.scope_of(env, delegation_id)
    outside = [s.code for s in services if s.code not in scope]
    if outside:
        authz.deny(
            env,
            action,
            siret,
            authz.Decision(
                False,
                "outside-scope",
                _("Delegation {id} does not cover: {codes}.").format(id=delegation_id, codes=", ".join(outside)),
            ),
        )
    env.extras["delegation_id"] = delegation_id


def _refuse_held(services: list[Service]) -> None:
    held = [s.code for s in services if s.held_by]
    if held:
        raise Conflict(
            _("{codes}: held by the administrator profile, never granted.").format(codes=", ".join(held)),
            hint=_("Make the account an administrator instead: pepsctl accounts update ID --profile admin"),
        )


def _current(env: Env, account_id: int, establishment_id: int) -> dict[str, AccountRight]:
    return {
        r.service_code: r
        for r in env.session.scalars(
            select(AccountRight)
            .where(col(AccountRight.account_id) == account_id)
            .where(col(AccountRight.establishment_id) == establishment_id)
        )
    }


def _write(
    env: Env,
    account: Account,
    establishment: Establishment,
    delegation_id: int | None,
    wanted: dict[str, str | None],
    action: str,
) -> list[RightChange]:
    """Bring the account's rights on ``establishment`` for the given services to ``wanted``."""
    assert account.id is not None and establishment.id is not None
    current = {code: row.level for code, row in _current(env, account.id, establishment.id).items()}
    changes = [
        RightChange(account.identifier, establishment.siret, code, current.get(code), level)
        for code, level in wanted.items()
        if current.get(code) != level
    ]
    rows = _current(env, account.id, establishment.id)
    if not changes:
        return []
    now = clock.now()
    removed = [c.service for c in changes if c.after is None]
    if removed:
        env.session.execute(
            delete(AccountRight)
            .where(col(AccountRight.account_id) == account.id)
            .where(col(AccountRight.establishment_id) == establishment.id)
            .where(col(AccountRight.service_code).in_(removed))
        )
    for change in changes:
        if change.after is None:
            continue
        row = rows.get(change.service)
        if row is None:
            row = AccountRight(
                account_id=account.id,
                establishment_id=establishment.id,
                service_code=change.service,
                level=change.after,
                delegation_id=delegation_id,
                granted_by=env.actor_label,
                granted_at=now,
            )
        else:
            row.level = change.after
            row.delegation_id = delegation_id
            row.granted_by = env.actor_label
            row.granted_at = now
        env.session.add(row)
    env.session.flush()
    history.record_many(
        env,
        [
            NewEvent(
                action=action if c.after is not None else "right.revoke",
                target=account.identifier,
                establishment=establishment.siret,
                delegation_id=delegation_id,
                before={"service": c.service, "level": c.before},
                after={"service": c.service, "level": c.after},
            )
            for c in changes
        ],
    )
    return changes


def _step_up_if_sensitive(env: Env, services: dict[str, Service], changes: list[RightChange]) -> None:
    raised = [
        c
        for c in changes
        if c.after is not None and services[c.service].sensitive and (c.before is None or c.after == WRITE)
    ]
    if raised:
        stepup.require(
            env, "right.grant.sensitive", target=",".join(sorted({f"{c.identifier}:{c.service}" for c in raised}))
        )


# -- operations ----------------------------------------------------------------------------------


def list_rights(env: Env, identifier: str, *, establishment: str | None = None) -> list[RightView]:
    """An account's rights: held by profile, granted on its establishment, granted through delegations."""
    account, home = accounts.load(env, identifier, "right.read")
    assert account.id is not None
    rows = list(
        env.session.execute(
            select(AccountRight, Service, Establishment.siret)
            .join(Service, col(Service.code) == col(AccountRight.service_code))
            .join(Establishment, col(Establishment.id) == col(AccountRight.establishment_id))
            .where(col(AccountRight.account_id) == account.id)
            .order_by(col(Establishment.siret), col(Service.position))
        )
    )
    scopes = _active_delegations(env, {r.delegation_id for r, _s, _e in rows if r.delegation_id is not None})
    result: list[RightView] = []
    if account.profile == ADMIN:
        result += [
            RightView(
                identifier=account.identifier,
                establishment=home.siret,
                service=s.code,
                label=s.label,
                level=WRITE,
                via="profile",
                delegation_id=None,
                sensitive=s.sensitive,
                active=True,
                granted_by=None,
                granted_at=None,
            )
            for s in _held_services(env, ADMIN)
        ]
    for right, service, siret in rows:
        if right.delegation_id is None:
            active = service.retired_at is None
            via = "direct"
        else:
            active = service.retired_at is None and service.code in scopes.get(right.delegation_id, set())
            via = "delegation"
        result.append(
            RightView(
                account.identifier,
                siret,
                service.code,
                service.label,
                right.level,
                via,
                right.delegation_id,
                service.sensitive,
                active,
                right.granted_by,
                right.granted_at,
            )
        )
    if establishment:
        wanted = v.normalize_siret(establishment)
        result = [r for r in result if r.establishment == wanted]
    return result


def grant(
    env: Env, identifier: str, codes: list[str], *, level: str = READ, establishment: str | None = None
) -> list[RightChange]:
    """Give ``level`` on the services (replacing a different level); ``establishment`` for a delegated one."""
    wanted_level = parse_level(level)
    if wanted_level is None:
        return revoke(env, identifier, codes, establishment=establishment)
    account, home = accounts.load(env, identifier, "right.grant")
    services = catalogue.resolve(env.session, codes)
    _refuse_held(services)
    target, delegation_id = _target(env, home, establishment, "right.grant")
    _check_scope(env, "right.grant", target.siret, delegation_id, services)
    assert account.id is not None and target.id is not None
    current = {code: row.level for code, row in _current(env, account.id, target.id).items()}
    preview = [RightChange(identifier, target.siret, s.code, current.get(s.code), wanted_level) for s in services]
    _step_up_if_sensitive(env, {s.code: s for s in services}, preview)
    wanted = dict.fromkeys((s.code for s in services), wanted_level)
    return _write(env, account, target, delegation_id, wanted, "right.grant")


def revoke(env: Env, identifier: str, codes: list[str], *, establishment: str | None = None) -> list[RightChange]:
    """Remove the rights on the services (none is not an error: nothing changes)."""
    account, home = accounts.load(env, identifier, "right.revoke")
    services = catalogue.resolve(env.session, codes, include_retired=True)
    _refuse_held(services)
    target = home
    if establishment is not None and v.normalize_siret(establishment) != home.siret:
        # Revoking a delegated right needs no active delegation (clean-up), only a row to remove.
        found = queries.get_establishment_by_siret(env.session, v.normalize_siret(establishment))
        if found is None:
            authz.deny(env, "right.revoke", establishment)
        target = found
    assert account.id is not None and target.id is not None
    current = _current(env, account.id, target.id)
    if target.id != home.id and not current:
        authz.deny(env, "right.revoke", target.siret)
    delegation_id = next((r.delegation_id for r in current.values()), None)
    if delegation_id is not None:
        env.extras["delegation_id"] = delegation_id
    return _write(env, account, target, delegation_id, dict.fromkeys((s.code for s in services), None), "right.revoke")


def plan_copy(env: Env, source_id: str, target_id: str) -> list[RightChange]:
    """What copying the rights of ``source_id`` onto ``target_id`` would change (nothing written)."""
    return _copy(env, source_id, target_id, apply=False)


def copy(env: Env, source_id: str, target_id: str) -> list[RightChange]:
    """Replace the target account's rights by the source's (own and still-active delegated ones)."""
    return _copy(env, source_id, target_id, apply=True)


def _copy(env: Env, source_id: str, target_id: str, *, apply: bool) -> list[RightChange]:
    source, source_home = accounts.load(env, source_id, "right.read")
    target, target_home = accounts.load(env, target_id, "right.grant")
    if source_home.id != target_home.id:
        raise Conflict(
            _("{source} and {target} belong to different establishments: rights are copied within one.").format(
                source=source.identifier, target=target.identifier
            )
        )
    if source.id == target.id:
        raise InvalidInput(_("Copying an account's rights onto itself changes nothing."), field="to")
    assert source.id is not None and target.id is not None
    source_rows = list(env.session.scalars(select(AccountRight).where(col(AccountRight.account_id) == source.id)))
    ids = {r.delegation_id for r in source_rows if r.delegation_id is not None}
    scopes = _active_delegations(env, ids, lock=apply)  # a concurrent revocation waits for the copy
    live = {s.code: s for s in catalogue.services(env.session)}
    wanted: dict[int, dict[str, str | None]] = {}
    delegation_of: dict[int, int | None] = {}
    for row in source_rows:
        if row.service_code not in live:
            continue
        if row.delegation_id is not None and row.service_code not in scopes.get(row.delegation_id, set()):
            continue
        wanted.setdefault(row.establishment_id, {})[row.service_code] = row.level
        delegation_of[row.establishment_id] = row.delegation_id
    target_rows = list(env.session.scalars(select(AccountRight).where(col(AccountRight.account_id) == target.id)))
    for row in target_rows:
        wanted.setdefault(row.establishment_id, {}).setdefault(row.service_code, None)
        delegation_of.setdefault(row.establishment_id, row.delegation_id)
    sirets = {
        e.id: e
        for e in env.session.scalars(select(Establishment).where(col(Establishment.id).in_(list(wanted))))
        if e.id is not None
    }
    current = {(r.establishment_id, r.service_code): r.level for r in target_rows}
    changes = [
        RightChange(target.identifier, sirets[est].siret, code, current.get((est, code)), level)
        for est, codes in wanted.items()
        for code, level in codes.items()
        if current.get((est, code)) != level
    ]
    if not apply or not changes:
        return changes
    _step_up_if_sensitive(env, live, changes)
    written: list[RightChange] = []
    for est, codes in wanted.items():
        written += _write(env, target, sirets[est], delegation_of.get(est), codes, "right.grant")
    return written


def matrix(env: Env, *, establishment: str | None = None, theme: str | None = None) -> Matrix:
    """Accounts × services of one establishment, in one query (plus the catalogue)."""
    est = accounts.resolve_establishment(env, establishment, "right.read")
    services = catalogue.list_catalogue(env.session, theme=theme)
    held = {s.code for s in services if s.held_by == ADMIN}
    rows: dict[int, MatrixRow] = {}
    query = (
        select(
            Account.id,
            Account.identifier,
            Account.last_name,
            Account.first_name,
            Account.profile,
            AccountRight.service_code,
            AccountRight.level,
        )
        .outerjoin(
            AccountRight,
            and_(
                col(AccountRight.account_id) == col(Account.id),
                col(AccountRight.establishment_id) == est.id,
            ),
        )
        .where(col(Account.establishment_id) == est.id)
        .order_by(col(Account.last_name), col(Account.first_name), col(Account.identifier))
    )
    wanted = {s.code for s in services}
    for account_id, identifier, last_name, first_name, profile, code, level in env.session.execute(query):
        row = rows.get(account_id)
        if row is None:
            row = rows[account_id] = MatrixRow(identifier, last_name, first_name, profile, {})
            if profile == ADMIN:
                row.rights.update(dict.fromkeys(held, WRITE))
        if code is not None and code in wanted:
            row.rights[code] = level
    return Matrix(est.siret, services, list(rows.values()))
