"""Accounts: create, list, show, update, renew, delete, expiring — with the last-administrator guard.

Rules (domain.md): nominative accounts with a generated identifier (``JDU000042``); an activation
code e-mailed on creation (15 days); expiry 18 months after activation or the last renewal; every
establishment keeps at least one active administrator, checked and written in one transaction that
locks the establishment.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import func, literal, or_, select, union_all
from sqlmodel import col

from pepsctl import clock
from pepsctl.domain import authz, codes, history, lockout, notify, stepup
from pepsctl.domain import validation as v
from pepsctl.domain.env import ADMIN, USER, Env
from pepsctl.domain.generic import generic_hint
from pepsctl.domain.models import AccountChanges, AccountFilter, AccountView, NewAccount
from pepsctl.errors import Conflict, InvalidInput, LastAdministrator
from pepsctl.i18n import _
from pepsctl.store import queries
from pepsctl.store.models import Account, Delegation, DelegationService, Establishment, Service

VALIDITY_MONTHS = 18
PROFILES = (ADMIN, USER)
STATUSES = ("active", "pending", "locked", "expired")


def add_months(moment: datetime, months: int) -> datetime:
    """The same day ``months`` later (clamped to the month's last day)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def status_of(account: Account, now: datetime) -> str:
    if account.locked_at is not None:
        return "locked"
    if account.activated_at is None:
        return "pending"
    if account.expires_at is not None and account.expires_at <= now:
        return "expired"
    return "active"


def validate_profile(raw: str) -> str:
    value = raw.strip().lower()
    aliases = {"administrator": ADMIN, "administrateur": ADMIN, "utilisateur": USER}
    value = aliases.get(value, value)
    if value not in PROFILES:
        raise InvalidInput(_("Unknown profile {value!r}: use admin or user.").format(value=raw), field="profile")
    return value


def view(account: Account, siret: str, now: datetime, *, full_phone: bool = False) -> AccountView:
    return AccountView(
        identifier=account.identifier,
        establishment=siret,
        profile=account.profile,
        status=status_of(account, now),
        civility=account.civility,
        last_name=account.last_name,
        first_name=account.first_name,
        email=account.email,
        phone=account.phone if full_phone else v.mask_phone(account.phone),
        phone_type=account.phone_type,
        function=account.function,
        expires_at=account.expires_at,
        last_login_at=account.last_login_at,
        created_at=account.created_at,
    )


def snapshot(account: Account) -> dict[str, object]:
    """The fields recorded in history before/after (phones are masked by the history)."""
    return {
        "profile": account.profile,
        "civility": account.civility,
        "last_name": account.last_name,
        "first_name": account.first_name,
        "email": account.email,
        "phone": account.phone,
        "function": account.function,
        "expires_at": account.expires_at.isoformat() if account.expires_at else None,
    }


# -- creation ------------------------------------------------------------------------------------


def insert_account(
    env: Env,
    establishment: Establishment,
    *,
    profile: str,
    civility: str,
    last_name: str,
    first_name: str,
    email: str,
    phone: v.Phone | None,
    function: str | None,
) -> tuple[Account, codes.IssuedCode]:
    """Insert a validated account, issue its activation code and e-mail it. Shared with registration."""
    assert establishment.id is not None
    # Serialise creations in this establishment so that two concurrent ones cannot both pass the check.
    queries.lock_establishment(env.session, establishment.id)
    duplicate = env.session.scalars(
        select(Account.identifier)
        .where(col(Account.establishment_id) == establishment.id)
        .where(col(Account.email) == email)
        .where(col(Account.last_name) == last_name)
        .where(col(Account.first_name) == first_name)
    ).first()
    if duplicate:
        raise Conflict(
            _("{first} {last} already has an account here: {identifier}.").format(
                first=first_name, last=last_name, identifier=duplicate
            ),
            hint=_("One account per person: renew or update the existing one."),
        )
    now = clock.now()
    number = queries.next_numbers(env.session, "account")[0]
    account = Account(
        identifier=v.format_identifier(v.identifier_prefix(first_name, last_name), number),
        establishment_id=establishment.id,
        profile=profile,
        civility=civility,
        last_name=last_name,
        first_name=first_name,
        email=email,
        phone=phone.e164 if phone else None,
        phone_type=phone.type if phone else None,
        function=function,
        must_set_password=True,
        created_at=now,
        updated_at=now,
        generic_hint=generic_hint(first_name, last_name, email),
    )
    env.session.add(account)
    env.session.flush()
    assert account.id is not None
    code = codes.issue(
        env,
        account.id,
        codes.ACTIVATION,
        code=codes.new_long_code(),
        lifetime=codes.ACTIVATION_LIFETIME,
        channel="email",
    )
    env.gateway.deliver(
        env.session, activation_message(first_name, last_name, establishment.name, account.identifier, code, email)
    )
    history.record(
        env,
        "account.create",
        target=account.identifier,
        establishment=establishment.siret,
        after=snapshot(account),
    )
    return account, code


def create(env: Env, new: NewAccount) -> AccountView:
    """Create a nominative account in the actor's establishment (or the one named, if allowed)."""
    establishment = resolve_establishment(env, new.establishment, "account.create")
    phone = v.normalize_phone(new.phone) if new.phone else None
    values = {
        "profile": validate_profile(new.profile),
        "civility": v.normalize_civility(new.civility),
        "last_name": v.normalize_name(new.last_name, "last_name"),
        "first_name": v.normalize_name(new.first_name, "first_name"),
        "email": v.normalize_email(new.email),
        "function": v.normalize_function(new.function),
    }
    stepup.require(env, "account.create", target=values["email"])
    account, _code = insert_account(env, establishment, phone=phone, **values)
    return view(account, establishment.siret, clock.now(), full_phone=True)


# -- lookups -------------------------------------------------------------------------------------


def resolve_establishment(env: Env, siret: str | None, action: str) -> Establishment:
    """The establishment an operation targets (default: the actor's), once the gate allows it.

    An establishment outside the actor's scope and one that does not exist get the same refusal.
    """
    actor = env.require_actor()
    if siret is None:
        establishment = env.session.get(Establishment, actor.establishment_id)
        assert establishment is not None
    else:
        siret = v.normalize_siret(siret)
        establishment = queries.get_establishment_by_siret(env.session, siret)
        if establishment is None:
            authz.deny(env, action, siret)
    assert establishment.id is not None
    authz.require(env, action, establishment.id, target=establishment.siret)
    return establishment


def delegating(centralizer_id: int, now: datetime):
    """SELECT (establishment id, delegation id) of the establishments whose accepted, unexpired
    delegation to ``centralizer_id`` covers account management (a service held by administrators):
    the establishments ``authz`` lets that centre's administrators manage. The newest delegation of each.
    """
    return (
        select(col(Delegation.establishment_id), func.max(col(Delegation.id)))
        .join(DelegationService, col(DelegationService.delegation_id) == col(Delegation.id))
        .join(Service, col(Service.code) == col(DelegationService.service_code))
        .where(col(Delegation.centralizer_id) == centralizer_id)
        .where(col(Delegation.status) == "accepted")
        .where(or_(col(Delegation.ends_at).is_(None), col(Delegation.ends_at) > now))
        .where(col(Service.held_by) == ADMIN)
        .where(col(Service.retired_at).is_(None))
        .group_by(col(Delegation.establishment_id))
    )


class Managed(NamedTuple):
    """The establishments a bulk operation acts on (see :func:`managed`)."""

    # (id, SIRET, name, delegation id — None for the actor's own), the actor's own first, then by SIRET
    establishments: list[tuple[int, str, str, int | None]]
    # Their ids for an SQL ``IN``: a list, or a SELECT when a centre acts for many (no 40,000-item list)
    ids: Any


def managed(env: Env, action: str, siret: str | None = None, *, lock: bool = False) -> Managed:
    """The establishments a bulk operation acts on, each with the delegation that allows it: the one
    named by ``siret``; by default the actor's own and every establishment whose delegation covers
    account management (domain.md: a centre de gestion acts for them). ``action`` must be one an
    administrator may run through such a delegation (``authz.DELEGATED_ADMIN_ACTIONS``).

    ``lock`` (to write): the delegations are share-locked first (a concurrent revocation waits for
    this transaction, or is seen before it), then the establishments. A fixed number of queries,
    however many establishments.
    """
    actor = env.require_actor()
    if siret is not None:
        one = resolve_establishment(env, siret, action)
        assert one.id is not None
        delegation_id = None if one.id == actor.establishment_id else env.extras.get("delegation_id")
        if lock:
            if delegation_id is not None:
                authz.active_delegation(env, actor.establishment_id, one.id, lock=True)
            queries.lock_establishments(env.session, [one.id])
        return Managed([(one.id, one.siret, one.name, delegation_id)], [one.id])
    own = resolve_establishment(env, None, action)
    assert own.id is not None
    found: list[tuple[int, str, str, int | None]] = [(own.id, own.siret, own.name, None)]
    if action not in authz.DELEGATED_ADMIN_ACTIONS:
        if lock:
            queries.lock_establishments(env.session, [own.id])
        return Managed(found, [own.id])
    now = clock.now()
    if lock:
        queries.share_lock_delegations(env.session, delegating(own.id, now).with_only_columns(func.max(Delegation.id)))
    delegations = delegating(own.id, now).subquery()
    found += [
        (est_id, est_siret, name, delegation_id)
        for est_id, est_siret, name, delegation_id in env.session.execute(
            select(col(Establishment.id), col(Establishment.siret), col(Establishment.name), delegations.c[1])
            .join(delegations, delegations.c.establishment_id == col(Establishment.id))
            .order_by(col(Establishment.siret))
        )
    ]
    ids: Any = [row[0] for row in found]
    if len(found) > 500:
        ids = union_all(
            select(literal(own.id)), delegating(own.id, now).with_only_columns(col(Delegation.establishment_id))
        )
    if lock:
        queries.lock_establishments(env.session, ids)
    return Managed(found, ids)


def load(env: Env, identifier: str, action: str) -> tuple[Account, Establishment]:
    """An account the actor may run ``action`` on; exit 7 otherwise.

    An unknown identifier gets exactly the refusal another establishment's account gets
    (security.md: the caller learns nothing about accounts outside their scope).
    """
    identifier = v.normalize_identifier(identifier)
    account = queries.get_account_by_identifier(env.session, identifier)
    if account is None:
        authz.deny(env, action, identifier)
    assert account.id is not None
    authz.require(env, action, account.establishment_id, target_account_id=account.id, target=identifier)
    establishment = env.session.get(Establishment, account.establishment_id)
    assert establishment is not None
    return account, establishment


# -- reading -------------------------------------------------------------------------------------


def list_accounts(env: Env, filters: AccountFilter) -> list[AccountView]:
    establishment = resolve_establishment(env, filters.establishment, "account.list")
    now = clock.now()
    query = select(Account).where(col(Account.establishment_id) == establishment.id)
    if filters.profile:
        query = query.where(col(Account.profile) == validate_profile(filters.profile))
    if filters.status:
        if filters.status not in STATUSES:
            raise InvalidInput(
                _("Unknown status {status!r}: use {allowed}.").format(
                    status=filters.status, allowed=", ".join(STATUSES)
                ),
                field="status",
            )
        query = query.where(queries.status_filter(filters.status, now))
    if filters.missing_phone:
        query = query.where(col(Account.phone).is_(None))
    query = query.order_by(col(Account.last_name), col(Account.first_name), col(Account.identifier))
    return [view(a, establishment.siret, now) for a in env.session.scalars(query)]


def show(env: Env, identifier: str) -> AccountView:
    account, establishment = load(env, identifier, "account.read")
    return view(account, establishment.siret, clock.now(), full_phone=True)


def expiring(env: Env, *, within_days: int, siret: str | None = None) -> list[AccountView]:
    if within_days < 0 or within_days > 3660:
        raise InvalidInput(_("--within takes a number of days from 0 to 3660."), field="within")
    establishment = resolve_establishment(env, siret, "account.list")
    now = clock.now()
    query = (
        select(Account)
        .where(col(Account.establishment_id) == establishment.id)
        .where(col(Account.expires_at).is_not(None))
        .where(col(Account.expires_at) > now)
        .where(col(Account.expires_at) <= now + timedelta(days=within_days))
        .order_by(col(Account.expires_at), col(Account.identifier))
    )
    return [view(a, establishment.siret, now) for a in env.session.scalars(query)]


# -- changes -------------------------------------------------------------------------------------


def guard_last_admin(env: Env, establishment: Establishment, account: Account, reason: str) -> None:
    """Refuse if ``account`` is the last active administrator, with the establishment locked."""
    assert establishment.id is not None
    queries.lock_establishment(env.session, establishment.id)
    env.session.refresh(account)
    if account.profile != ADMIN:
        return
    remaining = queries.count_active_admins(env.session, establishment.id, clock.now(), excluding=account.id)
    if remaining == 0:
        raise LastAdministrator(
            _("{identifier} is the last active administrator of {siret}: cannot {reason}.").format(
                identifier=account.identifier, siret=establishment.siret, reason=reason
            ),
            hint=_("Create or promote another administrator first (pepsctl accounts create --profile admin)."),
        )


def update(env: Env, identifier: str, changes: AccountChanges) -> AccountView:
    if changes.is_empty():
        raise InvalidInput(_("Nothing to change: give at least one option."), hint=_("See --help."))
    account, establishment = load(env, identifier, "account.update")
    new_values: dict[str, object] = {}
    if changes.profile is not None:
        new_values["profile"] = validate_profile(changes.profile)
    if changes.civility is not None:
        new_values["civility"] = v.normalize_civility(changes.civility)
    if changes.last_name is not None:
        new_values["last_name"] = v.normalize_name(changes.last_name, "last_name")
    if changes.first_name is not None:
        new_values["first_name"] = v.normalize_name(changes.first_name, "first_name")
    if changes.email is not None:
        new_values["email"] = v.normalize_email(changes.email)
    if changes.clear_phone:
        new_values["phone"] = None
        new_values["phone_type"] = None
        new_values["phone_verified_at"] = None
    elif changes.phone is not None:
        phone = v.normalize_phone(changes.phone)
        if phone.e164 != account.phone:
            new_values.update(phone=phone.e164, phone_type=phone.type, phone_verified_at=None)
    if changes.clear_function:
        new_values["function"] = None
    elif changes.function is not None:
        new_values["function"] = v.normalize_function(changes.function)
    changed = {k: val for k, val in new_values.items() if getattr(account, k) != val}
    now = clock.now()
    if not changed:
        return view(account, establishment.siret, now, full_phone=True)
    contact = {"email", "phone"} & set(changed)
    if contact:
        stepup.require(env, "account.update.contact", target=account.identifier)
    if changed.get("profile") == USER:
        guard_last_admin(env, establishment, account, _("demote it"))
    before = snapshot(account)
    for key, value in changed.items():
        setattr(account, key, value)
    account.updated_at = now
    env.session.add(account)
    env.session.flush()
    after = snapshot(account)
    if contact:
        notify_contact_change(env, account, before, sorted(contact))
    if "phone" in contact:
        lockout.revoke_sessions(env, account.id)
    history.record(
        env,
        "account.update",
        target=account.identifier,
        establishment=establishment.siret,
        before={k: before[k] for k in after if before[k] != after[k]},
        after={k: after[k] for k in after if before[k] != after[k]},
    )
    return view(account, establishment.siret, now, full_phone=True)


def renew(env: Env, identifiers: list[str]) -> list[AccountView]:
    """Extend each account 18 months from now; all or nothing."""
    if not identifiers:
        raise InvalidInput(_("Give at least one account identifier."))
    now = clock.now()
    unique = dict.fromkeys(v.normalize_identifier(identifier) for identifier in identifiers)
    loaded = [load(env, identifier, "account.renew") for identifier in unique]
    views = []
    for account, establishment in loaded:
        if account.activated_at is None:
            raise Conflict(
                _("{identifier} is not activated yet: there is nothing to renew.").format(
                    identifier=account.identifier
                ),
                hint=_("The agent activates it with 'pepsctl password set'."),
            )
        before = account.expires_at
        account.expires_at = add_months(now, VALIDITY_MONTHS)
        account.renewed_at = now
        account.updated_at = now
        env.session.add(account)
        history.record(
            env,
            "account.renew",
            target=account.identifier,
            establishment=establishment.siret,
            before={"expires_at": before.isoformat() if before else None},
            after={"expires_at": account.expires_at.isoformat()},
        )
        views.append(view(account, establishment.siret, now))
    return views


def delete(env: Env, identifier: str) -> AccountView:
    account, establishment = load(env, identifier, "account.delete")
    actor = env.require_actor()
    if account.id == actor.account_id:
        raise Conflict(
            _("You cannot delete your own account."),
            hint=_("Name a successor administrator, who then deletes your account."),
        )
    guard_last_admin(env, establishment, account, _("delete it"))
    now = clock.now()
    result = view(account, establishment.siret, now)
    history.record(
        env,
        "account.delete",
        target=account.identifier,
        establishment=establishment.siret,
        before=snapshot(account),
    )
    env.session.delete(account)
    env.session.flush()
    return result


def notify_contact_change(env: Env, account: Account, before: dict[str, object], fields: list[str]) -> None:
    """E-mail the person (at the old address too, when it changed) that their contact details changed."""
    for message in contact_messages(account.identifier, account.email, account.phone, before, fields):
        env.gateway.deliver(env.session, message)


def activation_message(first: str, last: str, establishment: str, identifier: str, code: codes.IssuedCode, to: str):
    """The activation e-mail of a new account (``accounts create`` and ``accounts import``)."""
    return notify.Message(
        channel="email",
        to=to,
        subject=_("Your PEP's account {identifier}").format(identifier=identifier),
        body=_(
            "Hello {first} {last},\n\n"
            "An account was created for you on PEP's for {establishment}.\n"
            "Identifier: {identifier}\n"
            "Activation code: {code} (valid until {until:%Y-%m-%d %H:%M} UTC)\n\n"
            "Set your password with:\n  pepsctl password set {identifier} --code {code}\n"
        ).format(
            first=first,
            last=last,
            establishment=establishment,
            identifier=identifier,
            code=code.code,
            until=code.expires_at,
        ),
        code=code.code,
        code_id=code.id,
        code_expires_at=code.expires_at,
    )


def contact_messages(identifier: str, email: str, phone: str | None, before: dict, fields: list[str]):
    """The notice sent when an e-mail or phone changes (to the old address too)."""
    masked = {"phone": v.mask_phone(phone) or "-", "email": email}
    lines = "\n".join(f"  {name}: {masked[name]}" for name in fields)
    addresses = {email}
    if "email" in fields and isinstance(before.get("email"), str):
        addresses.add(before["email"])
    return [
        notify.Message(
            channel="email",
            to=address,
            subject=_("Your PEP's contact details changed"),
            body=_(
                "The contact details of your account {identifier} changed:\n{lines}\n"
                "If this was not expected, tell your administrator at once.\n"
            ).format(identifier=identifier, lines=lines),
        )
        for address in sorted(addresses)
    ]


def unlock(env: Env, identifier: str) -> AccountView:
    """An administrator unlocks an account: the person then sets a new password from an e-mailed code."""
    from pepsctl.domain import auth

    account, establishment = load(env, identifier, "account.unlock")
    if account.locked_at is None:
        raise Conflict(
            _("{identifier} is not locked.").format(identifier=account.identifier),
            hint=_("Only a locked account can be unlocked."),
        )
    now = clock.now()
    account.locked_at = None
    account.failed_attempts = 0
    account.must_set_password = True
    account.updated_at = now
    env.session.add(account)
    lockout.revoke_sessions(env, account.id)
    lockout.revoke_trust(env, account.id)
    auth.send_reset_code(
        env,
        account,
        reason=_("An administrator unlocked your account {identifier}; set a new password to use it again.").format(
            identifier=account.identifier
        ),
    )
    history.record(env, "account.unlock", target=account.identifier, establishment=establishment.siret)
    return view(account, establishment.siret, now, full_phone=True)
