"""The one authorization gate: every domain operation asks it first. It fails closed.

Rules, in the order :func:`decide` applies them:

1. Own establishment. An administrator runs every administrator action on their establishment and
   its accounts, and holds the services marked ``held_by = "admin"`` in the catalogue (account
   management) by their profile. A user reads their establishment and reads or edits only their own
   account. Anyone uses a service (``service.read:CODE`` / ``service.write:CODE``) with a right on it.
2. Another establishment: only through an *accepted, unexpired* delegation from that establishment
   to the actor's (the centralizer). Then a user (or an administrator) uses a service with a right
   granted through that delegation and still in its scope; the centralizer's administrators run the
   account-management actions there when the delegation's scope covers an account-management
   service; anyone with a right through the delegation reads the establishment's record.
3. Everything else is :class:`PermissionDenied` (exit 7), recorded in the history, with the same
   message whether or not the target exists.

The gate reads delegations and rights from the store at every decision: a revocation takes effect
on the very next command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

from sqlalchemy import or_, select
from sqlmodel import col

from pepsctl import clock
from pepsctl.domain import history
from pepsctl.domain.env import Actor, Env
from pepsctl.errors import PermissionDenied
from pepsctl.i18n import _
from pepsctl.store.models import AccountRight, Delegation, DelegationService, Service

# Actions an administrator may run on their establishment and its accounts.
ADMIN_ACTIONS = frozenset(
    {
        "establishment.read",
        "establishment.update",
        "establishment.accept_cgu",
        "account.list",
        "account.read",
        "account.create",
        "account.update",
        "account.delete",
        "account.renew",
        "account.unlock",
        "history.read",
        "right.read",
        "right.grant",
        "right.revoke",
        "delegation.read",
        "delegation.request",
        "delegation.accept",
        "delegation.refuse",
        "delegation.revoke",
    }
)
# Actions a user may run on their own account only.
SELF_ACTIONS = frozenset({"account.read", "establishment.read", "me.update", "right.read"})
# Administrator actions a centralizer's administrators may run on a delegated establishment whose
# scope covers an account-management service. Not the establishment's own decisions (CGU, its
# record, its delegations, its agents' rights).
DELEGATED_ADMIN_ACTIONS = frozenset(
    {
        "establishment.read",
        "account.list",
        "account.read",
        "account.create",
        "account.update",
        "account.delete",
        "account.renew",
        "account.unlock",
        "history.read",
        "right.read",
    }
)
SERVICE_PREFIX = "service."
LEVELS = ("read", "write")


def service_action(level: str, code: str) -> str:
    return f"{SERVICE_PREFIX}{level}:{code}"


def known_action(action: str) -> bool:
    if action.startswith(SERVICE_PREFIX):
        level, _sep, code = action[len(SERVICE_PREFIX) :].partition(":")
        return level in LEVELS and bool(code)
    return action in ADMIN_ACTIONS or action in SELF_ACTIONS


@dataclass(frozen=True, slots=True)
class Decision:
    """What the gate decided and which rule decided it (``whoami --can`` shows it)."""

    allowed: bool
    rule: str
    reason: str
    delegation_id: int | None = None


def _allow(rule: str, reason: str, delegation_id: int | None = None) -> Decision:
    return Decision(True, rule, reason, delegation_id)


def _refuse(rule: str, reason: str) -> Decision:
    return Decision(False, rule, reason)


def active_delegation(env: Env, centralizer_id: int, establishment_id: int, *, lock: bool = False) -> Delegation | None:
    """The accepted, unexpired delegation from ``establishment_id`` to ``centralizer_id``, if any.

    ``lock``: to write through it, share-lock the row (``FOR SHARE`` on PostgreSQL) so that a
    concurrent revocation waits for this transaction, or is seen before it.
    """
    now = clock.now()
    query = (
        select(Delegation)
        .where(col(Delegation.centralizer_id) == centralizer_id)
        .where(col(Delegation.establishment_id) == establishment_id)
        .where(col(Delegation.status) == "accepted")
        .where(or_(col(Delegation.ends_at).is_(None), col(Delegation.ends_at) > now))
        .order_by(col(Delegation.id).desc())
    )
    if lock:
        query = query.with_for_update(read=True)
    return env.session.scalars(query).first()


def scope_of(env: Env, delegation_id: int) -> set[str]:
    """The service codes a delegation covers (retired services excluded)."""
    return set(
        env.session.scalars(
            select(DelegationService.service_code)
            .join(Service, col(Service.code) == col(DelegationService.service_code))
            .where(col(DelegationService.delegation_id) == delegation_id)
            .where(col(Service.retired_at).is_(None))
        )
    )


def _held_by_profile(env: Env, code: str, profile: str) -> bool:
    service = env.session.get(Service, code)
    return service is not None and service.retired_at is None and service.held_by == profile


def _right_level(env: Env, account_id: int, establishment_id: int, code: str, delegation_id: int | None) -> str | None:
    query = (
        select(AccountRight.level)
        .join(Service, col(Service.code) == col(AccountRight.service_code))
        .where(col(AccountRight.account_id) == account_id)
        .where(col(AccountRight.establishment_id) == establishment_id)
        .where(col(AccountRight.service_code) == code)
        .where(col(Service.retired_at).is_(None))
    )
    if delegation_id is None:
        query = query.where(col(AccountRight.delegation_id).is_(None))
    else:
        query = query.where(col(AccountRight.delegation_id) == delegation_id)
    return env.session.scalars(query).first()


def _level_covers(held: str | None, wanted: str) -> bool:
    return held == "write" or (held == "read" and wanted == "read")


def _service_decision(
    env: Env, actor: Actor, level: str, code: str, establishment_id: int, delegation_id: int | None
) -> Decision:
    if delegation_id is None and _held_by_profile(env, code, actor.profile):
        return _allow("profile", _("Administrators hold {code} by their profile.").format(code=code))
    held = _right_level(env, actor.account_id, establishment_id, code, delegation_id)
    if _level_covers(held, level):
        if delegation_id is None:
            return _allow("right", _("You hold the right {level} on {code}.").format(level=held, code=code))
        return _allow(
            "delegation-right",
            _("You hold the right {level} on {code} through delegation {id}.").format(
                level=held, code=code, id=delegation_id
            ),
            delegation_id,
        )
    if held is None:
        return _refuse("no-right", _("You hold no right on {code} there.").format(code=code))
    return _refuse("level", _("Your right on {code} is {held}, not {level}.").format(code=code, held=held, level=level))


def decide(
    env: Env,
    actor: Actor,
    action: str,
    establishment_id: int,
    target_account_id: int | None = None,
) -> Decision:
    """Decide whether ``actor`` may run ``action`` on that establishment (and account)."""
    service: tuple[str, str] | None = None
    if action.startswith(SERVICE_PREFIX):
        level, _sep, code = action[len(SERVICE_PREFIX) :].partition(":")
        if level not in LEVELS or not code:
            return _refuse("unknown-action", _("Unknown action {action}.").format(action=action))
        service = (level, code)

    if establishment_id == actor.establishment_id:
        if service is not None:
            return _service_decision(env, actor, *service, establishment_id, None)
        if actor.is_admin and action in ADMIN_ACTIONS:
            return _allow("administrator", _("You are an administrator of this establishment."))
        if action in SELF_ACTIONS and (action == "establishment.read" or target_account_id == actor.account_id):
            return _allow("self", _("Everyone may do this on their own account."))
        if not actor.is_admin and action in ADMIN_ACTIONS:
            return _refuse("user-profile", _("A user profile cannot run administrator operations."))
        return _refuse(
            "not-allowed", _("Administrators act on their own establishment; users on their own account only.")
        )

    delegation = active_delegation(env, actor.establishment_id, establishment_id)
    if delegation is None or delegation.id is None:
        # Same answer whether the establishment exists, never delegated, or delegated to someone else.
        return no_delegation()
    scope = scope_of(env, delegation.id)
    if service is not None:
        if service[1] not in scope:
            return _refuse(
                "outside-scope",
                _("Delegation {id} does not cover the service {code}.").format(id=delegation.id, code=service[1]),
            )
        return _service_decision(env, actor, *service, establishment_id, delegation.id)
    if action == "establishment.read" and (actor.is_admin or _has_delegated_right(env, actor, delegation.id)):
        return _allow(
            "delegation", _("Delegation {id} lets your establishment act here.").format(id=delegation.id), delegation.id
        )
    if action in DELEGATED_ADMIN_ACTIONS:
        if not actor.is_admin:
            return _refuse("user-profile", _("A user profile cannot run administrator operations."))
        managed = {s for s in scope if _held_by_profile(env, s, "admin")}
        if managed:
            return _allow(
                "delegation",
                _("Delegation {id} covers account management ({codes}).").format(
                    id=delegation.id, codes=", ".join(sorted(managed))
                ),
                delegation.id,
            )
        return _refuse(
            "outside-scope",
            _("Delegation {id} does not cover account management.").format(id=delegation.id),
        )
    return _refuse("not-delegable", _("Only the establishment's own administrators may do this."))


def _has_delegated_right(env: Env, actor: Actor, delegation_id: int) -> bool:
    return (
        env.session.scalars(
            select(AccountRight.id)
            .where(col(AccountRight.account_id) == actor.account_id)
            .where(col(AccountRight.delegation_id) == delegation_id)
        ).first()
        is not None
    )


def require(
    env: Env,
    action: str,
    establishment_id: int,
    *,
    target_account_id: int | None = None,
    target: str | None = None,
) -> Actor:
    """Return the actor if allowed; otherwise record the refusal and raise PermissionDenied.

    When a delegation allowed it, its id is kept on the unit of work so that the history events of
    the operation name it.
    """
    actor = env.require_actor()
    decision = decide(env, actor, action, establishment_id, target_account_id)
    if decision.allowed:
        if decision.delegation_id is not None:
            env.extras["delegation_id"] = decision.delegation_id
        return actor
    deny(env, action, target, decision)


def no_delegation() -> Decision:
    """The refusal for another establishment's target, and for a target that does not exist."""
    return _refuse(
        "no-delegation", _("Not in your establishment nor in one that delegated to it (or it does not exist).")
    )


def deny(env: Env, action: str, target: str | None, decision: Decision | None = None) -> NoReturn:
    """Record a refusal (kept even though the operation fails) and raise PermissionDenied.

    Without a decision (a target that does not exist, or is outside every scope), the refusal is
    the one for another establishment's target: the caller learns nothing about existence.
    """
    actor = env.require_actor()
    decision = decision or no_delegation()
    history.record(
        env,
        "permission.denied",
        target=target,
        establishment=actor.siret,
        after={"action": action, "rule": decision.rule},
    )
    raise PermissionDenied(
        _("You may not do this ({action}) on {target}.").format(action=action, target=target or "-"),
        hint=decision.reason,
        persist=True,
    )


def require_history_read(env: Env, siret: str) -> Actor:
    from pepsctl.store import queries

    env.require_actor()
    establishment = queries.get_establishment_by_siret(env.session, siret)
    if establishment is None or establishment.id is None:
        deny(env, "history.read", siret)
    return require(env, "history.read", establishment.id, target=siret)


@dataclass(frozen=True, slots=True)
class Explanation:
    allowed: bool
    action: str
    target: str
    rule: str
    reason: str
    delegation_id: int | None


def parse_action(raw: str) -> str:
    """A gate action from ``account.update``, ``read:cir``, ``write:cir`` or ``service.read:cir``."""
    from pepsctl.errors import InvalidInput

    action = raw.strip().lower()
    if action.startswith(("read:", "write:")):
        action = SERVICE_PREFIX + action
    if not known_action(action):
        actions = ", ".join(sorted(ADMIN_ACTIONS | SELF_ACTIONS))
        raise InvalidInput(
            _("Unknown action {action!r}.").format(action=raw),
            hint=_("Use read:SERVICE, write:SERVICE or one of: {actions}.").format(actions=actions),
            field="can",
        )
    return action


def explain(env: Env, raw_action: str, target: str) -> Explanation:
    """Why the gate would allow or refuse ``action`` on ``target`` (an account, a SIRET or delegation:N).

    A target that does not exist is explained exactly as one of another establishment.
    """
    from pepsctl.domain import catalogue
    from pepsctl.domain import validation as v
    from pepsctl.store import queries
    from pepsctl.store.models import Account, Establishment

    actor = env.require_actor()
    action = parse_action(raw_action)
    if action.startswith(SERVICE_PREFIX):
        code = action.partition(":")[2]
        catalogue.resolve(env.session, [code])  # an unknown service is exit 4 with suggestions
    text = target.strip()
    if not text.isprintable():  # NUL, controls, undecodable argv bytes: no target has them (and none is echoed)
        from pepsctl.errors import InvalidInput

        raise InvalidInput(
            _("Cannot read the target {target!r}.").format(target=target),
            hint=_("TARGET is an account identifier, a SIRET or delegation:ID."),
            field="can",
        )
    establishment_id = -1
    account_id: int | None = None
    if text.lower().startswith("delegation:"):
        number = text.partition(":")[2]
        # isdigit() is true for '²' (int() refuses it); ids are 32-bit in the store.
        valid = number.isdecimal() and len(number) <= 10 and int(number) < 2**31
        delegation = env.session.get(Delegation, int(number)) if valid else None
        if delegation is not None and actor.establishment_id in (
            delegation.centralizer_id,
            delegation.establishment_id,
        ):
            establishment_id = actor.establishment_id
    elif text.replace(" ", "").isdigit():
        found = queries.get_establishment_by_siret(env.session, v.normalize_siret(text))
        establishment_id = found.id if isinstance(found, Establishment) and found.id is not None else -1
    else:
        account = queries.get_account_by_identifier(env.session, v.normalize_identifier(text))
        if isinstance(account, Account) and account.id is not None:
            establishment_id, account_id = account.establishment_id, account.id
    decision = decide(env, actor, action, establishment_id, account_id)
    return Explanation(decision.allowed, action, text, decision.rule, decision.reason, decision.delegation_id)
