"""Establishments: registration (classic or via Net-Entreprises), listing, update, CGU acceptance."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlmodel import col

from pepsctl import clock
from pepsctl.domain import accounts, history, otp
from pepsctl.domain import validation as v
from pepsctl.domain.env import ADMIN, Env
from pepsctl.domain.models import (
    EstablishmentChanges,
    EstablishmentView,
    FundContract,
    NewEstablishment,
    RegistrationView,
)
from pepsctl.errors import AlreadyRegistered, InvalidInput
from pepsctl.i18n import _
from pepsctl.store import queries
from pepsctl.store.models import Establishment, EstablishmentFund

CLASSIC = "classic"
NET_ENTREPRISES = "net-entreprises"
PATHS = (CLASSIC, NET_ENTREPRISES)
CGU_VERSION = "2025-07"  # the terms of use in force since the two-factor switch-over


def validate_funds(funds: tuple[FundContract, ...], via: str) -> tuple[FundContract, ...]:
    """At least one fund, each once; a contract number is required on the classic path."""
    if not funds:
        raise InvalidInput(
            _("An establishment registers with at least one fund contract."),
            field="fund",
            hint=_("Add --fund CNRACL=NUMBER (or IRCANTEC, RAFP, FNC)."),
        )
    seen: dict[str, FundContract] = {}
    for item in funds:
        fund = v.validate_fund(item.fund)
        if fund in seen:
            raise InvalidInput(_("Fund {fund} is given twice.").format(fund=fund), field="fund")
        number = item.contract_number
        if number:
            number = v.validate_contract_number(number)
        elif via == CLASSIC:
            raise InvalidInput(
                _("The classic path needs the contract number of fund {fund}.").format(fund=fund),
                field="fund",
                hint=_("Write --fund {fund}=NUMBER, or register --via net-entreprises.").format(fund=fund),
            )
        seen[fund] = FundContract(fund, number or None)
    return tuple(seen.values())


def validate_path(via: str) -> str:
    value = via.strip().lower()
    if value not in PATHS:
        raise InvalidInput(_("Unknown registration path {via!r}: use classic or net-entreprises.").format(via=via))
    return value


def register(env: Env, new: NewEstablishment, *, require_code: bool = True) -> RegistrationView:
    """Register an establishment and its first administrator (pending until activation).

    Registration is a sensitive action: a one-time code goes to the registrant's phone first, and
    the same call with ``env.otp`` completes (``require_code=False`` only for the demo data).
    """
    via = validate_path(new.via)
    siret = v.normalize_siret(new.siret)
    name = _validate_name(new.name)
    funds = validate_funds(new.funds, via)
    admin = new.admin
    civility = v.normalize_civility(admin.civility)
    last_name = v.normalize_name(admin.last_name, "admin_last_name")
    first_name = v.normalize_name(admin.first_name, "admin_first_name")
    email = v.normalize_email(admin.email)
    phone = v.normalize_phone(admin.phone)
    function = v.normalize_function(admin.function)

    existing = queries.get_establishment_by_siret(env.session, siret)
    if existing is not None:
        assert existing.id is not None
        names = [f"{a.first_name} {a.last_name.upper()}" for a in queries.administrators_of(env.session, existing.id)]
        history.record(env, "establishment.register.refused", target=siret, establishment=siret)
        raise AlreadyRegistered(
            _("SIRET {siret} is already registered.").format(siret=siret),
            hint=_("Ask one of its administrators for an account: {names}.").format(names=", ".join(names) or "-"),
            persist=True,
        )
    if env.actor is None and env.label is None:
        env.label = f"registrant:{email}"
    if require_code:
        otp.send_or_verify(
            env,
            env.otp,
            account=None,
            purpose="register",
            phone=phone.e164,
            phone_type=phone.type,
            target=f"{siret}:{phone.e164}",
            establishment=siret,
            action="establishment.register",
        )
    now = clock.now()
    establishment = Establishment(
        siret=siret,
        siren=v.siren_of(siret),
        name=name,
        registration_path=via,
        status="pending",
        created_at=now,
        updated_at=now,
    )
    env.session.add(establishment)
    env.session.flush()
    assert establishment.id is not None
    for fund in funds:
        env.session.add(
            EstablishmentFund(
                establishment_id=establishment.id, fund=fund.fund, contract_number=fund.contract_number or ""
            )
        )
    history.record(
        env,
        "establishment.register",
        target=siret,
        establishment=siret,
        after={"name": name, "path": via, "funds": [f.fund for f in funds]},
    )
    account, code = accounts.insert_account(
        env,
        establishment,
        profile=ADMIN,
        civility=civility,
        last_name=last_name,
        first_name=first_name,
        email=email,
        phone=phone,
        function=function,
    )
    return RegistrationView(
        siret=siret,
        name=name,
        status=establishment.status,
        administrator=account.identifier,
        activation_sent_to=email,
        activation_expires_at=code.expires_at,
    )


def _validate_name(raw: str) -> str:
    name = " ".join(raw.split())
    # Lone surrogates (undecodable argv bytes) cannot be stored: refused like control characters.
    if not name or len(name) > 200 or any(ord(ch) < 32 or ord(ch) == 127 or 0xD800 <= ord(ch) < 0xE000 for ch in raw):
        raise InvalidInput(_("An establishment name has 1 to 200 printable characters."), field="name")
    return name


def _views(env: Env, rows: list[Establishment]) -> list[EstablishmentView]:
    ids = [e.id for e in rows if e.id is not None]
    funds = queries.funds_of(env.session, ids)
    counts = queries.account_counts(env.session, ids)
    result = []
    for e in rows:
        assert e.id is not None
        admins, total = counts[e.id]
        result.append(
            EstablishmentView(
                siret=e.siret,
                siren=e.siren,
                name=e.name,
                status=e.status,
                registration_path=e.registration_path,
                funds=[f"{f.fund}:{f.contract_number}" if f.contract_number else f.fund for f in funds[e.id]],
                administrators=admins,
                accounts=total,
                cgu_version=e.cgu_version,
                cgu_accepted_at=e.cgu_accepted_at,
                cgu_accepted_by=e.cgu_accepted_by,
                created_at=e.created_at,
            )
        )
    return result


def list_establishments(env: Env) -> list[EstablishmentView]:
    """The establishments the actor may see: their own."""
    actor = env.require_actor()
    rows = list(env.session.scalars(select(Establishment).where(col(Establishment.id) == actor.establishment_id)))
    return _views(env, rows)


def show(env: Env, siret: str) -> EstablishmentView:
    establishment = accounts.resolve_establishment(env, siret, "establishment.read")
    return _views(env, [establishment])[0]


def update(env: Env, siret: str, changes: EstablishmentChanges) -> EstablishmentView:
    establishment = accounts.resolve_establishment(env, siret, "establishment.update")
    assert establishment.id is not None
    before: dict[str, object] = {}
    after: dict[str, object] = {}
    if changes.name is not None:
        name = _validate_name(changes.name)
        if name != establishment.name:
            before["name"], after["name"] = establishment.name, name
            establishment.name = name
    if changes.funds is not None:
        funds = validate_funds(changes.funds, establishment.registration_path)
        current = queries.funds_of(env.session, [establishment.id])[establishment.id]
        old = sorted(f"{f.fund}:{f.contract_number}" for f in current)
        new = sorted(f"{f.fund}:{f.contract_number or ''}" for f in funds)
        if old != new:
            env.session.execute(
                delete(EstablishmentFund).where(col(EstablishmentFund.establishment_id) == establishment.id)
            )
            for fund in funds:
                env.session.add(
                    EstablishmentFund(
                        establishment_id=establishment.id,
                        fund=fund.fund,
                        contract_number=fund.contract_number or "",
                    )
                )
            before["funds"], after["funds"] = old, new
    if not after:
        if changes.name is None and changes.funds is None:
            raise InvalidInput(_("Nothing to change: give --name or --fund."))
        return _views(env, [establishment])[0]
    establishment.updated_at = clock.now()
    env.session.add(establishment)
    env.session.flush()
    history.record(
        env,
        "establishment.update",
        target=establishment.siret,
        establishment=establishment.siret,
        before=before,
        after=after,
    )
    return _views(env, [establishment])[0]


def accept_cgu(env: Env, siret: str, version: str = CGU_VERSION) -> EstablishmentView:
    """An administrator accepts the terms of use for the establishment: version, date and who."""
    establishment = accounts.resolve_establishment(env, siret, "establishment.accept_cgu")
    actor = env.require_actor()
    before = {"cgu_version": establishment.cgu_version}
    now = clock.now()
    establishment.cgu_version = version
    establishment.cgu_accepted_at = now
    establishment.cgu_accepted_by = actor.identifier
    establishment.updated_at = now
    env.session.add(establishment)
    env.session.flush()
    history.record(
        env,
        "establishment.accept_cgu",
        target=establishment.siret,
        establishment=establishment.siret,
        before=before,
        after={"cgu_version": version},
    )
    return _views(env, [establishment])[0]


def activate(env: Env, establishment: Establishment) -> None:
    """The first administrator set a password: the establishment becomes active."""
    if establishment.status != "active":
        establishment.status = "active"
        establishment.updated_at = clock.now()
        env.session.add(establishment)
        history.record(env, "establishment.activate", target=establishment.siret, establishment=establishment.siret)
