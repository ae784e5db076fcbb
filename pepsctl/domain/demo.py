"""``init --demo``: sample establishments to explore, with the problems the audit looks for.

- Mairie de Démoville: the main establishment, with accounts showing every kind of problem, and
  some service rights.
- Centre de gestion de Démo: a centralizer; the Mairie accepted its delegation request (scope:
  career and pension services and account management), the CCAS has not answered yet and the
  Syndicat refused. One of its agents holds read rights on the Mairie's pension services.
- CCAS de Démoville and Syndicat des eaux de Démo: small establishments with one administrator.
- SIVOM de la vallée de Démo: it delegated to the centre de gestion long ago, and its only
  administrator's account has since expired: no active administrator (what the centre de gestion's
  audit shows, with the fix: renew it, or create another through the delegation).
- A legacy account of the Mairie, migrated from the former platform without a first name.

Every demo administrator has the same demo password and authenticator-app secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from pepsctl import clock
from pepsctl.domain import accounts, catalogue, establishments, passwords
from pepsctl.domain import validation as v
from pepsctl.domain.env import ADMIN, USER, Env
from pepsctl.domain.models import FundContract, NewAdministrator, NewEstablishment
from pepsctl.store import queries
from pepsctl.store.models import Account, AccountRight, Delegation, DelegationService, Establishment

DEMO_SIRET = "21999001700010"
DEMO_NAME = "Mairie de Démoville"
# A demonstration store only: the password is printed by 'init --demo' and in the README.
DEMO_PASSWORD = "jardin-des-plantes-demo"  # noqa: S105
# The demo administrator's authenticator-app secret, so that the quick start logs in unattended
# with PEPSCTL_TOTP_SECRET, the way CI scripts do.
DEMO_TOTP_SECRET = "DEMOVILLEMAIRIEDEMOVILLEMAIRIEAB"  # noqa: S105

CDG_SIRET = "25999002600009"
CCAS_SIRET = "21999005800006"
SYNDICAT_SIRET = "20999003500005"
SIVOM_SIRET = "25999040600003"
# (siret, name, funds, administrator: civility, last, first, e-mail, phone, function)
_OTHERS = [
    (
        CDG_SIRET,
        "Centre de gestion de la FPT de Démo",
        (FundContract("CNRACL", "C-75-009871"), FundContract("IRCANTEC", "I-2011-10442")),
        ("M", "Garnier", "Nicolas", "nicolas.garnier@cdg-demo.example.fr", "06 20 30 40 50", "Pôle carrières"),
    ),
    (
        CCAS_SIRET,
        "CCAS de Démoville",
        (FundContract("CNRACL", "C-75-004587"),),
        ("MME", "Chevalier", "Anne", "anne.chevalier@ccas-demoville.example.fr", "06 30 40 50 60", None),
    ),
    (
        SYNDICAT_SIRET,
        "Syndicat des eaux de Démo",
        (FundContract("IRCANTEC", "I-2020-55120"),),
        ("M", "Robin", "Olivier", "olivier.robin@eaux-demo.example.fr", "06 40 50 60 70", None),
    ),
    (
        SIVOM_SIRET,
        "SIVOM de la vallée de Démo",
        (FundContract("CNRACL", "C-75-006120"),),
        ("M", "Perrin", "Alain", "alain.perrin@sivom-demo.example.fr", "06 45 56 67 78", "Secrétaire général"),
    ),
]
# The Mairie's rights: (identifier's first and last name, service, level)
_RIGHTS = [
    ("Jeanne", "Dupont", "cir", "write"),
    ("Jeanne", "Dupont", "estimation", "write"),
    ("Jeanne", "Dupont", "demande-retraite", "write"),
    ("Karim", "Benali", "cir", "read"),
    ("Karim", "Benali", "cotisations", "write"),
    ("Claire", "Petit", "di", "write"),
    ("Claire", "Petit", "references-bancaires", "read"),
]
# The themes the Mairie delegated to the centre de gestion, and the services its agent reads there.
_DELEGATED_THEMES = ("Droits à pensions", "Carrière")
_DELEGATED_READ = ("estimation", "simulation", "cir")

# (civility, first, last, email local part, phone, profile, condition)
_PEOPLE = [
    ("M", "Paul", "Leroy", "paul.leroy", "06 11 22 33 44", ADMIN, "active"),
    ("MME", "Jeanne", "Dupont", "jeanne.dupont", "06 12 34 56 78", USER, "active"),
    ("M", "Karim", "Benali", "karim.benali", "07 81 23 45 67", USER, "active"),
    ("MME", "Sophie", "Martin", "sophie.martin", None, USER, "active"),
    ("M", "Lucas", "Bernard", "lucas.bernard", None, USER, "active"),
    ("MME", "Claire", "Petit", "claire.petit", "06 55 44 33 22", USER, "active"),
    ("M", "Thomas", "Moreau", "thomas.moreau", "06 55 44 33 22", USER, "active"),
    ("MME", "Nathalie", "Roux", "nathalie.roux", "01 23 45 67 89", USER, "active"),
    ("MME", "Accueil", "Mairie", "accueil", "01 44 55 66 77", USER, "active"),
    ("M", "Henri", "Fournier", "henri.fournier", "06 98 76 54 32", USER, "expired"),
    ("MME", "Léa", "Girard", "lea.girard", "0692 12 34 56", USER, "active"),
    ("M", "Hugo", "Lambert", "hugo.lambert", "06 01 02 03 04", USER, "pending"),
    ("MME", "Nadia", "Colin", "nadia.colin", "06 22 33 44 55", USER, "stale"),
    ("M", "Marc", "Blanc", "marc.blanc", "06 77 88 99 00", USER, "invalid-phone"),
    # Migrated from the former platform without a first name: a nominative account must name its person.
    ("MME", "", "Mercier", "c.mercier", "06 23 45 67 89", USER, "active"),
]
# Accounts whose agent never logged in since their phone was set: their number is not proven.
_UNVERIFIED = {"jeanne.dupont", "lea.girard", "accueil"}


@dataclass(frozen=True, slots=True)
class DemoResult:
    created: bool
    siret: str
    administrator: str
    password: str
    accounts: int
    totp_secret: str = DEMO_TOTP_SECRET
    centralizer_administrator: str | None = None


def build(env: Env) -> DemoResult:
    """Create the demo establishment once; later calls find it and change nothing."""
    existing = queries.get_establishment_by_siret(env.session, DEMO_SIRET)
    if existing is not None:
        assert existing.id is not None
        admin = queries.administrators_of(env.session, existing.id)[0]
        total = queries.account_counts(env.session, [existing.id])[existing.id][1]
        cdg = queries.get_establishment_by_siret(env.session, CDG_SIRET)
        cdg_admins = queries.administrators_of(env.session, cdg.id) if cdg is not None and cdg.id is not None else []
        return DemoResult(
            False,
            DEMO_SIRET,
            admin.identifier,
            DEMO_PASSWORD,
            total,
            centralizer_administrator=cdg_admins[0].identifier if cdg_admins else None,
        )
    env.label = "system:demo"
    registration = establishments.register(
        env,
        NewEstablishment(
            siret=DEMO_SIRET,
            name=DEMO_NAME,
            funds=(FundContract("CNRACL", "C-75-004213"), FundContract("IRCANTEC", "I-2019-88231")),
            via=establishments.CLASSIC,
            admin=NewAdministrator(
                civility="MME",
                last_name="Durand",
                first_name="Marie",
                email="marie.durand@demoville.example.fr",
                phone="06 10 20 30 40",
                function="Directrice des ressources humaines",
            ),
        ),
        require_code=False,
    )
    establishment = queries.get_establishment_by_siret(env.session, DEMO_SIRET)
    assert establishment is not None
    now = clock.now()
    password_hash = passwords.hash_password(DEMO_PASSWORD)
    admin = queries.get_account_by_identifier(env.session, registration.administrator)
    assert admin is not None
    _activate(admin, now, password_hash)
    admin.phone_verified_at = now
    admin.totp_secret = DEMO_TOTP_SECRET
    admin.totp_enabled_at = now
    establishment.status = "active"
    for civility, first, last, local, phone, profile, condition in _PEOPLE:
        account, _code = accounts.insert_account(
            env,
            establishment,
            profile=profile,
            civility=civility,
            last_name=last,
            first_name=first,
            email=f"{local}@demoville.example.fr",
            phone=v.normalize_phone(phone) if phone else None,
            function=None,
        )
        if condition in ("active", "invalid-phone"):
            _activate(account, now - timedelta(days=30), password_hash)
            account.last_login_at = now - timedelta(days=2)
        elif condition == "expired":
            _activate(account, now - timedelta(days=30 * 19), password_hash)
            account.expires_at = now - timedelta(days=20)
        elif condition == "stale":
            # Renewed two months ago, but not used for 19 months.
            _activate(account, now - timedelta(days=30 * 20), password_hash)
            account.last_login_at = now - timedelta(days=30 * 19)
            account.renewed_at = now - timedelta(days=60)
            account.expires_at = accounts.add_months(account.renewed_at, accounts.VALIDITY_MONTHS)
        elif condition == "pending":
            account.created_at = now - timedelta(days=40)  # its activation code expired unused
        if condition == "invalid-phone":
            # A premium-rate number kept from an older import: it can receive neither SMS nor call.
            account.phone, account.phone_type = "+33899123456", None
        if account.phone and local not in _UNVERIFIED and account.activated_at is not None:
            account.phone_verified_at = account.activated_at
        env.session.add(account)
    env.session.flush()
    cdg_admin = _rights_and_delegations(env, establishment, now, password_hash)
    return DemoResult(
        True,
        DEMO_SIRET,
        registration.administrator,
        DEMO_PASSWORD,
        len(_PEOPLE) + 1,
        centralizer_administrator=cdg_admin,
    )


def _others(env: Env, now, password_hash: str) -> dict[str, tuple[Establishment, Account]]:
    created: dict[str, tuple[Establishment, Account]] = {}
    for siret, name, funds, (civility, last, first, email, phone, function) in _OTHERS:
        registration = establishments.register(
            env,
            NewEstablishment(
                siret=siret,
                name=name,
                funds=funds,
                via=establishments.CLASSIC,
                admin=NewAdministrator(civility, last, first, email, phone, function),
            ),
            require_code=False,
        )
        establishment = queries.get_establishment_by_siret(env.session, siret)
        admin = queries.get_account_by_identifier(env.session, registration.administrator)
        assert establishment is not None and admin is not None
        _activate(admin, now, password_hash)
        admin.phone_verified_at = now
        admin.totp_secret = DEMO_TOTP_SECRET
        admin.totp_enabled_at = now
        establishment.status = "active"
        establishment.cgu_version = establishments.CGU_VERSION
        establishment.cgu_accepted_at = now
        establishment.cgu_accepted_by = admin.identifier
        env.session.add_all([admin, establishment])
        created[siret] = (establishment, admin)
    return created


def _rights_and_delegations(env: Env, mairie: Establishment, now, password_hash: str) -> str:
    others = _others(env, now, password_hash)
    cdg, cdg_admin = others[CDG_SIRET]
    agent, _code = accounts.insert_account(
        env,
        cdg,
        profile=USER,
        civility="MME",
        last_name="Faure",
        first_name="Inès",
        email="ines.faure@cdg-demo.example.fr",
        phone=v.normalize_phone("06 50 60 70 80"),
        function="Gestionnaire retraites",
    )
    _activate(agent, now, password_hash)
    agent.phone_verified_at = now
    env.session.add(agent)
    by_name = {(a.first_name, a.last_name): a for a in queries.accounts_in(env.session, [mairie.id])}
    assert mairie.id is not None and cdg.id is not None and agent.id is not None
    env.session.add_all(
        AccountRight(
            account_id=by_name[(first, last)].id,
            establishment_id=mairie.id,
            service_code=code,
            level=level,
            granted_by="system:demo",
            granted_at=now,
        )
        for first, last, code, level in _RIGHTS
    )
    services = catalogue.services(env.session)
    scope = [s.code for s in services if s.theme in _DELEGATED_THEMES or s.held_by]
    # (establishment, status, reason, scope, days ago)
    states = [
        (mairie, "accepted", None, scope, 10),
        (others[CCAS_SIRET][0], "pending", None, scope, 10),
        (others[SYNDICAT_SIRET][0], "refused", "Nous gérons nos comptes nous-mêmes.", scope, 10),
        (others[SIVOM_SIRET][0], "accepted", None, scope, 400),
    ]
    # The SIVOM's only administrator has not been renewed since: his account expired three months ago.
    sivom_admin = others[SIVOM_SIRET][1]
    sivom_admin.activated_at = sivom_admin.phone_verified_at = now - timedelta(days=900)
    sivom_admin.last_login_at = now - timedelta(days=95)
    sivom_admin.expires_at = now - timedelta(days=90)
    env.session.add(sivom_admin)
    accepted_id = None
    for target, status, reason, codes, days in states:
        assert target.id is not None
        decided = status != "pending"
        delegation = Delegation(
            centralizer_id=cdg.id,
            establishment_id=target.id,
            status=status,
            requested_by=cdg_admin.identifier,
            requested_at=now - timedelta(days=days),
            decided_by=("system:demo" if decided else None),
            decided_at=(now - timedelta(days=days - 2) if decided else None),
            reason=reason,
        )
        env.session.add(delegation)
        env.session.flush()
        assert delegation.id is not None
        env.session.add_all(DelegationService(delegation_id=delegation.id, service_code=c) for c in codes)
        if target is mairie:
            accepted_id = delegation.id
    env.session.add_all(
        AccountRight(
            account_id=agent.id,
            establishment_id=mairie.id,
            service_code=code,
            level="read",
            delegation_id=accepted_id,
            granted_by=cdg_admin.identifier,
            granted_at=now,
        )
        for code in _DELEGATED_READ
    )
    env.session.flush()
    return cdg_admin.identifier


def _activate(account: Account, when, password_hash: str) -> None:
    account.password_hash = password_hash
    account.must_set_password = False
    account.activated_at = when
    account.expires_at = accounts.add_months(when, accounts.VALIDITY_MONTHS)
    account.updated_at = when
