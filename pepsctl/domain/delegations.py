"""Delegations: a centralizer asks an establishment to act for it, within a scope of services.

Life cycle: ``pending`` → ``accepted`` or ``refused`` (by an administrator of the target
establishment, never by the requester's side) → ``revoked`` (by either side, from pending or
accepted). An accepted delegation with an end date in the past is shown as ``expired`` and grants
nothing. Revoking deletes the rights granted through it, in the same transaction. Every step is in
the history (under the delegation's id, so both sides see it) and e-mails the other side's
administrators.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from sqlalchemy import delete, or_, select
from sqlmodel import col

from pepsctl import clock
from pepsctl.domain import authz, catalogue, history, notify, rights, stepup
from pepsctl.domain import validation as v
from pepsctl.domain.env import Env
from pepsctl.errors import Conflict, InvalidInput, NotFound
from pepsctl.i18n import _
from pepsctl.store import queries
from pepsctl.store.models import AccountRight, Delegation, DelegationService, Establishment, Service

PENDING, ACCEPTED, REFUSED, REVOKED, EXPIRED = "pending", "accepted", "refused", "revoked", "expired"
STATUSES = (PENDING, ACCEPTED, REFUSED, REVOKED, EXPIRED)
MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class DelegationView:
    id: int
    status: str
    direction: str  # outgoing (we asked) | incoming (we were asked)
    centralizer: str
    centralizer_name: str
    establishment: str
    establishment_name: str
    services: list[str]
    ends_at: datetime | None
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None
    revoked_by: str | None
    revoked_at: datetime | None


def status_of(delegation: Delegation, now: datetime) -> str:
    if delegation.status == ACCEPTED and delegation.ends_at is not None and delegation.ends_at <= now:
        return EXPIRED
    return delegation.status


def _views(env: Env, rows: list[Delegation]) -> list[DelegationView]:
    actor = env.require_actor()
    ids = [d.id for d in rows if d.id is not None]
    scopes: dict[int, list[str]] = {i: [] for i in ids}
    if ids:
        for delegation_id, code in env.session.execute(
            select(DelegationService.delegation_id, DelegationService.service_code)
            .join(Service, col(Service.code) == col(DelegationService.service_code))
            .where(col(DelegationService.delegation_id).in_(ids))
            .order_by(col(Service.position))
        ):
            scopes[delegation_id].append(code)
    est_ids = {d.centralizer_id for d in rows} | {d.establishment_id for d in rows}
    names = {e.id: e for e in env.session.scalars(select(Establishment).where(col(Establishment.id).in_(est_ids)))}
    now = clock.now()
    return [
        DelegationView(
            id=d.id or 0,
            status=status_of(d, now),
            direction="outgoing" if d.centralizer_id == actor.establishment_id else "incoming",
            centralizer=names[d.centralizer_id].siret,
            centralizer_name=names[d.centralizer_id].name,
            establishment=names[d.establishment_id].siret,
            establishment_name=names[d.establishment_id].name,
            services=scopes.get(d.id or 0, []),
            ends_at=d.ends_at,
            requested_by=d.requested_by,
            requested_at=d.requested_at,
            decided_by=d.decided_by,
            decided_at=d.decided_at,
            reason=d.reason,
            revoked_by=d.revoked_by,
            revoked_at=d.revoked_at,
        )
        for d in rows
    ]


def _own(env: Env, action: str) -> Establishment:
    actor = env.require_actor()
    authz.require(env, action, actor.establishment_id, target=actor.siret)
    establishment = env.session.get(Establishment, actor.establishment_id)
    assert establishment is not None
    return establishment


def _load(env: Env, delegation_id: int, action: str, *, side: str | None = None, lock: bool = False) -> Delegation:
    """A delegation the actor's establishment is a side of (``side``: centralizer or establishment only).

    ``lock``: for a decision or a revocation, the row is locked (``FOR UPDATE`` on PostgreSQL; SQLite's
    ``BEGIN IMMEDIATE`` already serialises writers) and read after any concurrent decision committed.
    """
    actor = env.require_actor()
    delegation = env.session.get(Delegation, delegation_id, with_for_update=True if lock else None)
    if delegation is None:
        # An unknown delegation and one the actor's establishment is not a side of: the same refusal.
        authz.deny(env, action, f"delegation:{delegation_id}")
    sides = {"centralizer": delegation.centralizer_id, "establishment": delegation.establishment_id}
    allowed = [sides[side]] if side else list(sides.values())
    target = f"delegation:{delegation_id}"
    if actor.establishment_id not in allowed:
        authz.deny(env, action, target)
    authz.require(env, action, actor.establishment_id, target=target)
    return delegation


def _end_of(day: date | datetime | None) -> datetime | None:
    if day is None:
        return None
    if isinstance(day, datetime):
        return clock.as_utc(day)
    return datetime.combine(day, time(23, 59, 59), tzinfo=UTC)


def _notify(env: Env, establishment_id: int, subject: str, body: str) -> None:
    for admin in queries.administrators_of(env.session, establishment_id):
        notify.send_email(env.session, env.gateway, admin.email, subject, body)


def _event(env: Env, action: str, delegation: Delegation, siret: str, **after: object) -> None:
    history.record(
        env,
        action,
        target=f"delegation:{delegation.id}",
        establishment=siret,
        delegation_id=delegation.id,
        after={"status": delegation.status, **after},
    )


# -- operations ----------------------------------------------------------------------------------


def request(
    env: Env, siret: str, *, services: list[str] | None = None, ends_at: date | datetime | None = None
) -> DelegationView:
    """Ask ``siret`` for a delegation to the actor's establishment (all services unless named)."""
    own = _own(env, "delegation.request")
    siret = v.normalize_siret(siret)
    target = queries.get_establishment_by_siret(env.session, siret)
    if target is None or target.id is None:
        raise NotFound(
            _("No establishment {siret} is registered.").format(siret=siret),
            hint=_("A delegation is asked of a registered establishment; check the SIRET."),
        )
    if target.id == own.id:
        raise Conflict(_("An establishment cannot ask itself for a delegation."))
    scope = catalogue.resolve(env.session, services) if services else catalogue.services(env.session)
    end = _end_of(ends_at)
    now = clock.now()
    if end is not None and end <= now:
        raise InvalidInput(_("The end date must be in the future."), field="until")
    assert own.id is not None
    queries.lock_establishment(env.session, own.id)  # two requests at once: the second sees the first
    existing = env.session.scalars(
        select(Delegation)
        .where(col(Delegation.centralizer_id) == own.id)
        .where(col(Delegation.establishment_id) == target.id)
        .where(col(Delegation.status).in_([PENDING, ACCEPTED]))
        .where(or_(col(Delegation.ends_at).is_(None), col(Delegation.ends_at) > now))
    ).first()
    if existing is not None:
        raise Conflict(
            _("Delegation {id} from {siret} is already {status}.").format(
                id=existing.id, siret=siret, status=existing.status
            ),
            hint=_("Revoke it first to ask for a different scope: pepsctl delegations revoke {id}").format(
                id=existing.id
            ),
        )
    assert own.id is not None
    delegation = Delegation(
        centralizer_id=own.id,
        establishment_id=target.id,
        status=PENDING,
        ends_at=end,
        requested_by=env.actor_label,
        requested_at=now,
    )
    env.session.add(delegation)
    env.session.flush()
    assert delegation.id is not None
    env.session.add_all([DelegationService(delegation_id=delegation.id, service_code=s.code) for s in scope])
    env.session.flush()
    _event(env, "delegation.request", delegation, own.siret, services=[s.code for s in scope], to=siret)
    _notify(
        env,
        target.id,
        _("PEP's: {name} asks for a delegation").format(name=own.name),
        _(
            "{name} ({siret}) asks to act for your establishment on {n} services ({codes}).\n"
            "An administrator accepts or refuses it:\n"
            "  pepsctl delegations accept {id}\n  pepsctl delegations refuse {id} --reason '…'"
        ).format(
            name=own.name,
            siret=own.siret,
            n=len(scope),
            codes=", ".join(s.code for s in scope),
            id=delegation.id,
        ),
    )
    return _views(env, [delegation])[0]


def list_delegations(env: Env, *, status: str | None = None) -> list[DelegationView]:
    """Delegations the actor's establishment asked for or was asked for."""
    own = _own(env, "delegation.read")
    if status is not None and status not in STATUSES:
        raise InvalidInput(
            _("Unknown status {status!r}: use {allowed}.").format(status=status, allowed=", ".join(STATUSES)),
            field="status",
        )
    rows = list(
        env.session.scalars(
            select(Delegation)
            .where((col(Delegation.centralizer_id) == own.id) | (col(Delegation.establishment_id) == own.id))
            .order_by(col(Delegation.id))
        )
    )
    views = _views(env, rows)
    return [d for d in views if status is None or d.status == status]


def show(env: Env, delegation_id: int) -> DelegationView:
    return _views(env, [_load(env, delegation_id, "delegation.read")])[0]


def _require_state(delegation: Delegation, allowed: tuple[str, ...], verb: str) -> None:
    status = status_of(delegation, clock.now())
    if status not in allowed:
        raise Conflict(
            _("Delegation {id} is {status}: it cannot be {verb}.").format(id=delegation.id, status=status, verb=verb),
            hint=_("See 'pepsctl delegations show {id}'.").format(id=delegation.id),
        )


def accept(env: Env, delegation_id: int) -> DelegationView:
    """Accept a pending request, as an administrator of the establishment asked (a sensitive action)."""
    delegation = _load(env, delegation_id, "delegation.accept", side="establishment", lock=True)
    _require_state(delegation, (PENDING,), _("accepted"))
    if delegation.ends_at is not None and delegation.ends_at <= clock.now():
        raise Conflict(_("Delegation {id} ended before it was accepted.").format(id=delegation_id))
    stepup.require(env, "delegation.accept", target=f"delegation:{delegation.id}")
    return _decide(env, delegation, ACCEPTED, None)


def refuse(env: Env, delegation_id: int, *, reason: str | None = None) -> DelegationView:
    delegation = _load(env, delegation_id, "delegation.refuse", side="establishment", lock=True)
    _require_state(delegation, (PENDING,), _("refused"))
    text = v.normalize_function(reason) if reason else None
    if text is not None and len(text) > MAX_REASON:
        raise InvalidInput(_("A reason has at most {n} characters.").format(n=MAX_REASON), field="reason")
    return _decide(env, delegation, REFUSED, text)


def _decide(env: Env, delegation: Delegation, status: str, reason: str | None) -> DelegationView:
    actor = env.require_actor()
    if delegation.requested_by == actor.identifier:  # cannot happen across establishments; kept as a guard
        authz.deny(env, f"delegation.{status}", f"delegation:{delegation.id}")
    delegation.status = status
    delegation.decided_by = actor.identifier
    delegation.decided_at = clock.now()
    delegation.reason = reason
    env.session.add(delegation)
    env.session.flush()
    _event(env, f"delegation.{'accept' if status == ACCEPTED else 'refuse'}", delegation, actor.siret, reason=reason)
    own = env.session.get(Establishment, delegation.establishment_id)
    assert own is not None
    words = {ACCEPTED: _("accepted"), REFUSED: _("refused")}
    _notify(
        env,
        delegation.centralizer_id,
        _("PEP's: delegation {id} {word} by {name}").format(id=delegation.id, word=words[status], name=own.name),
        _("{name} ({siret}) {word} your delegation request {id}.{reason}").format(
            name=own.name,
            siret=own.siret,
            word=words[status],
            id=delegation.id,
            reason=("\n" + _("Reason: {reason}").format(reason=reason)) if reason else "",
        ),
    )
    return _views(env, [delegation])[0]


def revoke(env: Env, delegation_id: int) -> tuple[DelegationView, int]:
    """End a pending or accepted delegation, from either side; delete the rights granted through it."""
    delegation = _load(env, delegation_id, "delegation.revoke", lock=True)
    _require_state(delegation, (PENDING, ACCEPTED, EXPIRED), _("revoked"))
    actor = env.require_actor()
    removed = env.session.execute(delete(AccountRight).where(col(AccountRight.delegation_id) == delegation_id)).rowcount
    delegation.status = REVOKED
    delegation.revoked_by = actor.identifier
    delegation.revoked_at = clock.now()
    env.session.add(delegation)
    env.session.flush()
    _event(env, "delegation.revoke", delegation, actor.siret, rights_removed=removed)
    ours = actor.establishment_id == delegation.centralizer_id
    other = delegation.establishment_id if ours else delegation.centralizer_id
    own = env.session.get(Establishment, actor.establishment_id)
    assert own is not None
    _notify(
        env,
        other,
        _("PEP's: delegation {id} revoked").format(id=delegation.id),
        _("{name} ({siret}) revoked delegation {id}. The rights granted through it are removed.").format(
            name=own.name, siret=own.siret, id=delegation.id
        ),
    )
    return _views(env, [delegation])[0], int(removed or 0)


def grant(
    env: Env, identifier: str, siret: str, codes: list[str], *, level: str = rights.READ
) -> list[rights.RightChange]:
    """Give one of the centralizer's own accounts a right on a delegated establishment's services."""
    return rights.grant(env, identifier, codes, level=level, establishment=siret)


def revoke_grant(env: Env, identifier: str, siret: str, codes: list[str]) -> list[rights.RightChange]:
    return rights.revoke(env, identifier, codes, establishment=siret)
