"""Set-based reads and writes the domain calls (get_*, find_*, count_*, next_*, lock_*)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import case, func, or_, select, text, update
from sqlmodel import Session, col

from pepsctl.store.engine import lock_establishment_sql
from pepsctl.store.models import Account, Counter, Establishment, EstablishmentFund


def get_establishment_by_siret(session: Session, siret: str) -> Establishment | None:
    return session.scalars(select(Establishment).where(col(Establishment.siret) == siret)).first()


def get_account_by_identifier(session: Session, identifier: str) -> Account | None:
    return session.scalars(select(Account).where(col(Account.identifier) == identifier)).first()


def funds_of(session: Session, establishment_ids: list[int]) -> dict[int, list[EstablishmentFund]]:
    result: dict[int, list[EstablishmentFund]] = {i: [] for i in establishment_ids}
    if not establishment_ids:
        return result
    rows = session.scalars(
        select(EstablishmentFund)
        .where(col(EstablishmentFund.establishment_id).in_(establishment_ids))
        .order_by(col(EstablishmentFund.fund))
    )
    for row in rows:
        result[row.establishment_id].append(row)
    return result


def account_counts(session: Session, establishment_ids: list[int]) -> dict[int, tuple[int, int]]:
    """(administrators, accounts) per establishment, in one query."""
    result = dict.fromkeys(establishment_ids, (0, 0))
    if not establishment_ids:
        return result
    is_admin = func.sum(case((col(Account.profile) == "admin", 1), else_=0))
    rows = session.execute(
        select(Account.establishment_id, is_admin, func.count())
        .where(col(Account.establishment_id).in_(establishment_ids))
        .group_by(col(Account.establishment_id))
    )
    for establishment_id, admins, total in rows:
        result[establishment_id] = (int(admins or 0), int(total))
    return result


def next_numbers(session: Session, name: str, count: int = 1) -> range:
    """Reserve ``count`` numbers of a named sequence atomically (``UPDATE … RETURNING``)."""
    last = session.execute(
        update(Counter)
        .where(col(Counter.name) == name)
        .values(value=col(Counter.value) + count)
        .returning(Counter.value)
    ).scalar_one()
    return range(last - count + 1, last + 1)


def lock_establishment(session: Session, establishment_id: int) -> None:
    """Lock one establishment row until the end of the transaction (FOR UPDATE on PostgreSQL)."""
    dialect = session.get_bind().dialect.name
    session.execute(text(lock_establishment_sql(dialect)), {"id": establishment_id})


def active_admin_filter(now: datetime):
    """SQL condition: an administrator who can act (activated, not locked, not expired)."""
    return (
        (col(Account.profile) == "admin")
        & col(Account.activated_at).is_not(None)
        & col(Account.locked_at).is_(None)
        & or_(col(Account.expires_at).is_(None), col(Account.expires_at) > now)
    )


def count_active_admins(session: Session, establishment_id: int, now: datetime, *, excluding: int | None = None) -> int:
    query = (
        select(func.count())
        .select_from(Account)
        .where(col(Account.establishment_id) == establishment_id)
        .where(active_admin_filter(now))
    )
    if excluding is not None:
        query = query.where(col(Account.id) != excluding)
    return int(session.execute(query).scalar_one())


def administrators_of(session: Session, establishment_id: int) -> list[Account]:
    return list(
        session.scalars(
            select(Account)
            .where(col(Account.establishment_id) == establishment_id)
            .where(col(Account.profile) == "admin")
            .order_by(col(Account.identifier))
        )
    )


def status_filter(status: str, now: datetime):
    """SQL condition matching the derived status of an account."""
    if status == "locked":
        return col(Account.locked_at).is_not(None)
    if status == "expired":
        return col(Account.locked_at).is_(None) & (col(Account.expires_at) <= now)
    if status == "pending":
        return col(Account.locked_at).is_(None) & col(Account.activated_at).is_(None)
    return (
        col(Account.locked_at).is_(None)
        & col(Account.activated_at).is_not(None)
        & or_(col(Account.expires_at).is_(None), col(Account.expires_at) > now)
    )


# -- bulk ------------------------------------------------------------------------------------------


def bulk_insert(session: Session, model, rows: list[dict]) -> None:
    """Insert many rows in one statement stream: COPY on PostgreSQL, executemany on SQLite."""
    if not rows:
        return
    table = model.__table__
    if session.get_bind().dialect.name == "postgresql":
        columns = list(rows[0])
        names = ", ".join(f'"{c}"' for c in columns)
        raw = session.connection().connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row(tuple(row[c] for c in columns))
        return
    # SQLite: the driver's executemany on plain tuples (SQLAlchemy's per-row processing costs 2x).
    columns = list(rows[0])
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join("?" for _ in columns)
    session.connection().exec_driver_sql(
        f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})',
        [tuple(_sqlite_value(row[c]) for c in columns) for row in rows],
    )


def _sqlite_value(value):
    """What SQLAlchemy's SQLite DateTime stores: naive UTC text with microseconds."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def bulk_update_phones(session: Session, rows: list[dict], now: datetime) -> None:
    """Set phone, phone_type (and clear phone_verified_at) for many accounts: ``rows`` of id/phone/phone_type.

    PostgreSQL: COPY into a temporary table and one ``UPDATE … FROM``; SQLite: one executemany.
    """
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text(
                "CREATE TEMPORARY TABLE IF NOT EXISTS tmp_phone (id integer PRIMARY KEY, phone varchar(20), "
                "phone_type varchar(10)) ON COMMIT DROP"
            )
        )
        raw = session.connection().connection.driver_connection
        with raw.cursor() as cursor, cursor.copy("COPY tmp_phone (id, phone, phone_type) FROM STDIN") as copy:
            for row in rows:
                copy.write_row((row["id"], row["phone"], row["phone_type"]))
        session.execute(
            text(
                "UPDATE account SET phone = tmp_phone.phone, phone_type = tmp_phone.phone_type, "
                "phone_verified_at = NULL, updated_at = :now FROM tmp_phone WHERE account.id = tmp_phone.id"
            ),
            {"now": now},
        )
        session.execute(text("DROP TABLE tmp_phone"))
        return
    session.connection().exec_driver_sql(
        "UPDATE account SET phone = ?, phone_type = ?, phone_verified_at = NULL, updated_at = ? WHERE id = ?",
        [
            (row["phone"], row["phone_type"], now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"), row["id"])
            for row in rows
        ],
    )


def accounts_in(session: Session, establishment_ids: list[int]):
    """The columns bulk work needs, for every account of those establishments (one query)."""
    return session.execute(
        select(
            Account.id,
            Account.identifier,
            Account.establishment_id,
            Account.last_name,
            Account.first_name,
            Account.email,
            Account.phone,
            Account.phone_type,
        )
        .where(col(Account.establishment_id).in_(establishment_ids))
        .order_by(col(Account.identifier))
    ).all()


# -- accounts in bulk (accounts import / renew --file and their undo) -------------------------------

# The account columns a bulk file may set: ``bulk_update_accounts`` writes any subset of them per row.
BULK_ACCOUNT_FIELDS = ("profile", "civility", "last_name", "first_name", "email", "phone", "phone_type", "function")


def accounts_for_bulk(session: Session, establishment_ids: list[int]):
    """Every column an accounts import compares and checks, for the accounts of those establishments (one query)."""
    return session.execute(
        select(
            Account.id,
            Account.identifier,
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
            Account.locked_at,
            Account.expires_at,
            Account.renewed_at,
        )
        .where(col(Account.establishment_id).in_(establishment_ids))
        .order_by(col(Account.identifier))
    ).all()


def bulk_update_accounts(session: Session, rows: list[dict], now: datetime) -> None:
    """Set, per account, any subset of :data:`BULK_ACCOUNT_FIELDS` in one executemany.

    ``rows`` are dicts with ``id`` and the fields to set (a missing key leaves the column as it is;
    ``None`` sets NULL). A row that sets ``phone`` also clears ``phone_verified_at``.
    """
    if not rows:
        return
    from sqlalchemy import Boolean, bindparam

    table = Account.__table__  # type: ignore[attr-defined]
    values: dict = {
        table.c[name]: case(
            (bindparam(f"s_{name}", type_=Boolean()), bindparam(f"v_{name}", type_=table.c[name].type)),
            else_=table.c[name],
        )
        for name in BULK_ACCOUNT_FIELDS
    }
    values[table.c.phone_verified_at] = case(
        (bindparam("s_phone", type_=Boolean()), None), else_=table.c.phone_verified_at
    )
    values[table.c.updated_at] = bindparam("b_now", type_=table.c.updated_at.type)
    statement = update(table).where(table.c.id == bindparam("b_id")).values(values)
    session.execute(
        statement,
        [
            {
                "b_id": row["id"],
                "b_now": now,
                **{f"s_{name}": name in row for name in BULK_ACCOUNT_FIELDS},
                **{f"v_{name}": row.get(name) for name in BULK_ACCOUNT_FIELDS},
            }
            for row in rows
        ],
    )


def bulk_set_expiry(session: Session, rows: list[dict], now: datetime) -> None:
    """Set ``expires_at`` and ``renewed_at`` of many accounts (rows of id/expires_at/renewed_at): one executemany."""
    if not rows:
        return
    from sqlalchemy import bindparam

    table = Account.__table__  # type: ignore[attr-defined]
    statement = (
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(
            {
                table.c.expires_at: bindparam("b_expires_at", type_=table.c.expires_at.type),
                table.c.renewed_at: bindparam("b_renewed_at", type_=table.c.renewed_at.type),
                table.c.updated_at: bindparam("b_now", type_=table.c.updated_at.type),
            }
        )
    )
    session.execute(
        statement,
        [
            {"b_id": row["id"], "b_expires_at": row["expires_at"], "b_renewed_at": row["renewed_at"], "b_now": now}
            for row in rows
        ],
    )


def revoke_sessions_of(session: Session, account_ids: list[int], now: datetime, *, keep: int | None = None) -> None:
    """End the live sessions of many accounts (one executemany), but session ``keep``."""
    if not account_ids:
        return
    from sqlalchemy import bindparam

    from pepsctl.store.models import AuthSession

    table = AuthSession.__table__  # type: ignore[attr-defined]
    statement = (
        update(table)
        .where(table.c.account_id == bindparam("b_account"))
        .where(table.c.revoked_at.is_(None))
        .where(table.c.id != bindparam("b_keep"))
        .values({table.c.revoked_at: bindparam("b_now", type_=table.c.revoked_at.type)})
    )
    session.execute(
        statement, [{"b_account": a, "b_keep": keep if keep is not None else -1, "b_now": now} for a in account_ids]
    )


def delete_accounts(session: Session, account_ids: list[int]) -> None:
    """Delete many accounts (one executemany); their codes, sessions, devices and rights go with them (cascade)."""
    if not account_ids:
        return
    from sqlalchemy import bindparam, delete

    table = Account.__table__  # type: ignore[attr-defined]
    session.execute(delete(table).where(table.c.id == bindparam("b_id")), [{"b_id": a} for a in account_ids])
