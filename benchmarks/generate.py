"""Fill a store with an establishment of N accounts (set-based: one executemany)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert
from sqlmodel import Session

from pepsctl import clock
from pepsctl.domain import accounts, passwords
from pepsctl.domain import validation as v
from pepsctl.store import queries
from pepsctl.store.models import Account

FIRST = ["Jeanne", "Paul", "Karim", "Sophie", "Lucas", "Claire", "Thomas", "Léa", "Hugo", "Nathalie"]
LAST = ["Dupont", "Leroy", "Benali", "Martin", "Bernard", "Petit", "Moreau", "Girard", "Lambert", "Roux"]


def add_accounts(engine, siret: str, count: int) -> None:
    now = clock.now()
    with Session(engine) as session, session.begin():
        establishment = queries.get_establishment_by_siret(session, siret)
        assert establishment is not None
        numbers = queries.next_numbers(session, "account", count)
        password_hash = passwords.hash_password("benchmark-password-long")
        rows = []
        for i, number in enumerate(numbers):
            first, last = FIRST[i % 10], LAST[(i // 10) % 10]
            rows.append(
                {
                    "identifier": v.format_identifier(v.identifier_prefix(first, last), number),
                    "establishment_id": establishment.id,
                    "profile": "user",
                    "civility": "M",
                    "last_name": last,
                    "first_name": first,
                    "email": f"{first.lower()}.{last.lower()}.{number}@bench.example.fr",
                    "phone": f"+336{number % 100000000:08d}",
                    "phone_type": "mobile",
                    "password_hash": password_hash,
                    "must_set_password": False,
                    "failed_attempts": 0,
                    "activated_at": now - timedelta(days=30),
                    "expires_at": accounts.add_months(now, 17),
                    "created_at": now,
                    "updated_at": now,
                }
            )
        session.execute(insert(Account), rows)


def add_rights(engine, siret: str, services: list[str], per_account: int = 4) -> int:
    """Give every account of the establishment ``per_account`` rights (rotating services and levels)."""
    from sqlalchemy import select
    from sqlmodel import col

    from pepsctl.store.models import AccountRight

    now = clock.now()
    with Session(engine) as session, session.begin():
        establishment = queries.get_establishment_by_siret(session, siret)
        assert establishment is not None
        ids = list(session.scalars(select(Account.id).where(col(Account.establishment_id) == establishment.id)))
        session.execute(AccountRight.__table__.delete().where(col(AccountRight.establishment_id) == establishment.id))
        rows = [
            {
                "account_id": account_id,
                "establishment_id": establishment.id,
                "service_code": services[(i + k) % len(services)],
                "level": "write" if (i + k) % 3 == 0 else "read",
                "delegation_id": None,
                "granted_by": "benchmark",
                "granted_at": now,
            }
            for i, account_id in enumerate(ids)
            for k in range(per_account)
        ]
        session.execute(insert(AccountRight), rows)
    return len(rows)
