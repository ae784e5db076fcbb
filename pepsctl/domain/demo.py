"""``init --demo``: a sample establishment to explore, with the problems the audit looks for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from pepsctl import clock
from pepsctl.domain import accounts, establishments, passwords
from pepsctl.domain import validation as v
from pepsctl.domain.env import ADMIN, USER, Env
from pepsctl.domain.models import FundContract, NewAdministrator, NewEstablishment
from pepsctl.store import queries
from pepsctl.store.models import Account

DEMO_SIRET = "21999001700010"
DEMO_NAME = "Mairie de Démoville"
# A demonstration store only: the password is printed by 'init --demo' and in the README.
DEMO_PASSWORD = "jardin-des-plantes-demo"  # noqa: S105
# The demo administrator's authenticator-app secret, so that the quick start logs in unattended
# with PEPSCTL_TOTP_SECRET, the way CI scripts do.
DEMO_TOTP_SECRET = "DEMOVILLEMAIRIEDEMOVILLEMAIRIEAB"  # noqa: S105

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
]


@dataclass(frozen=True, slots=True)
class DemoResult:
    created: bool
    siret: str
    administrator: str
    password: str
    accounts: int
    totp_secret: str = DEMO_TOTP_SECRET


def build(env: Env) -> DemoResult:
    """Create the demo establishment once; later calls find it and change nothing."""
    existing = queries.get_establishment_by_siret(env.session, DEMO_SIRET)
    if existing is not None:
        assert existing.id is not None
        admin = queries.administrators_of(env.session, existing.id)[0]
        total = queries.account_counts(env.session, [existing.id])[existing.id][1]
        return DemoResult(False, DEMO_SIRET, admin.identifier, DEMO_PASSWORD, total)
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
        if condition == "active":
            _activate(account, now - timedelta(days=30), password_hash)
        elif condition == "expired":
            _activate(account, now - timedelta(days=30 * 19), password_hash)
            account.expires_at = now - timedelta(days=20)
        env.session.add(account)
    env.session.flush()
    return DemoResult(True, DEMO_SIRET, registration.administrator, DEMO_PASSWORD, len(_PEOPLE) + 1)


def _activate(account: Account, when, password_hash: str) -> None:
    account.password_hash = password_hash
    account.must_set_password = False
    account.activated_at = when
    account.expires_at = accounts.add_months(when, accounts.VALIDITY_MONTHS)
    account.updated_at = when
