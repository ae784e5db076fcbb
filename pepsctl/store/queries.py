"""Set-based reads and writes the domain calls (get_*, find_*, count_*, next_*, lock_*)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from itertools import chain, islice
from operator import itemgetter
from typing import Any

from sqlalchemy import DateTime, case, func, or_, select, text, update
from sqlmodel import Session, col

from pepsctl.store.engine import lock_establishment_sql
from pepsctl.store.models import Account, Counter, Delegation, Establishment, EstablishmentFund


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


def lock_establishments(session: Session, ids) -> None:
    """Lock establishment rows (``ids``: a list, or a SELECT of ids) until the end of the transaction,
    in id order, in one statement (FOR UPDATE on PostgreSQL; on SQLite BEGIN IMMEDIATE already
    serialises writers)."""
    _lock_rows(session, Establishment, ids, read=False)


def share_lock_delegations(session: Session, ids) -> None:
    """Share-lock delegation rows (``ids``: a SELECT of ids) until the end of the transaction: a
    concurrent revocation waits for it, or is seen before it (PostgreSQL; SQLite serialises writers)."""
    _lock_rows(session, Delegation, ids, read=True)


def _lock_rows(session: Session, model, ids, *, read: bool) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(
        select(model.id).where(col(model.id).in_(ids)).order_by(col(model.id)).with_for_update(read=read, of=model)
    ).all()


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


CHUNK_ROWS = 20_000  # rows per executemany on SQLite: memory stays bounded, statements stay few


def bulk_insert(session: Session, model, rows: Iterable[Mapping[str, Any]]) -> int:
    """Insert many rows given as mappings (all with the same keys); see :func:`insert_rows`."""
    iterator = iter(rows)
    first = next(iterator, None)
    if first is None:
        return 0
    columns = list(first)
    getter = itemgetter(*columns)
    if len(columns) == 1:
        return insert_rows(session, model, columns, ((getter(row),) for row in chain([first], iterator)))
    return insert_rows(session, model, columns, map(getter, chain([first], iterator)))


def insert_rows(session: Session, model, columns: Sequence[str], rows: Iterable[tuple]) -> int:
    """Insert a stream of tuples without holding it in memory; returns how many were inserted.

    PostgreSQL: one ``COPY``. SQLite: the driver's executemany on plain tuples (SQLAlchemy's per-row
    processing costs 2x), one statement per :data:`CHUNK_ROWS` rows, date-times converted to what
    SQLAlchemy's SQLite ``DateTime`` stores (each distinct value once).
    """
    table = model.__table__
    names = ", ".join(f'"{c}"' for c in columns)
    count = 0
    if session.get_bind().dialect.name == "postgresql":
        raw = session.connection().connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
        return count
    stamps = [i for i, c in enumerate(columns) if _is_datetime(table.c[c].type)]
    if stamps:
        rows = _with_sqlite_stamps(rows, stamps)
    sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join("?" for _ in columns)})'
    connection = session.connection()
    while chunk := list(islice(rows, CHUNK_ROWS)):
        connection.exec_driver_sql(sql, chunk)
        count += len(chunk)
    return count


def _is_datetime(type_) -> bool:
    return isinstance(type_, DateTime) or isinstance(getattr(type_, "impl", None), DateTime)


def stored_stamp(session: Session, value: datetime) -> datetime | str:
    """``value`` as :func:`insert_rows` writes it: a caller streaming many rows with one date-time
    converts it once with this instead of having every row converted."""
    if session.get_bind().dialect.name == "sqlite":
        return _sqlite_stamp(value)
    return value


def _with_sqlite_stamps(rows: Iterable[tuple], positions: list[int]) -> Iterator[tuple]:
    seen: dict[datetime, str] = {}
    for row in rows:
        for i in positions:
            if isinstance(row[i], datetime):
                break
        else:  # already stored values (stored_stamp) or None: as they are
            yield row
            continue
        values = list(row)
        for i in positions:
            value = values[i]
            if isinstance(value, datetime):
                text_ = seen.get(value)
                if text_ is None:
                    text_ = seen[value] = _sqlite_stamp(value)
                values[i] = text_
        yield tuple(values)


def _sqlite_stamp(value: datetime) -> str:
    """What SQLAlchemy's SQLite DateTime stores: naive UTC text with microseconds."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def bulk_update_phones(session: Session, rows: Iterable[tuple[int, str | None, str | None]], now: datetime) -> None:
    """Set phone, phone_type (and clear phone_verified_at) for many accounts: ``rows`` of (id, phone, phone_type).

    PostgreSQL: COPY into a temporary table and one ``UPDATE … FROM``; SQLite: executemany in chunks.
    """
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
                copy.write_row(row)
        session.execute(
            text(
                "UPDATE account SET phone = tmp_phone.phone, phone_type = tmp_phone.phone_type, "
                "phone_verified_at = NULL, updated_at = :now FROM tmp_phone WHERE account.id = tmp_phone.id"
            ),
            {"now": now},
        )
        session.execute(text("DROP TABLE tmp_phone"))
        return
    stamp = _sqlite_stamp(now)
    ordered = ((phone, phone_type, stamp, id_) for id_, phone, phone_type in rows)
    connection = session.connection()
    while chunk := list(islice(ordered, CHUNK_ROWS)):
        connection.exec_driver_sql(
            "UPDATE account SET phone = ?, phone_type = ?, phone_verified_at = NULL, updated_at = ? WHERE id = ?",
            chunk,
        )


def accounts_in(session: Session, establishment_ids, *, names: bool = True):
    """The columns bulk work needs, for every account of those establishments (one query;
    ``establishment_ids``: a list, or a SELECT of ids).

    ``names=False`` leaves out the establishment and the names (a 300,000-row phones import does not
    need them: ≈ 40 MB less).
    """
    columns = [Account.id, Account.identifier, Account.email, Account.phone, Account.phone_type]
    if names:
        columns[2:2] = [Account.establishment_id, Account.last_name, Account.first_name]
    return session.execute(
        select(*columns).where(col(Account.establishment_id).in_(establishment_ids)).order_by(col(Account.identifier))
    ).all()


def account_phones(session: Session, establishment_ids) -> Iterator[tuple[int, str, str, str | None, str | None, int]]:
    """``(id, identifier, email, phone, phone_type, establishment_id)`` of every account of those
    establishments (``establishment_ids``: a list, or a SELECT of ids), ordered by
    identifier, streamed as plain tuples (a phones import over 300,000 accounts holds what it keeps of them,
    not 300,000 result rows). The few phone types are shared objects, not one string per row.
    """
    if isinstance(establishment_ids, list) and not establishment_ids:
        return
    result = session.connection().execute(  # Core rows: no ORM loading for 300,000 of them
        select(
            Account.id, Account.identifier, Account.email, Account.phone, Account.phone_type, Account.establishment_id
        )
        .where(col(Account.establishment_id).in_(establishment_ids))
        .order_by(col(Account.identifier))
        .execution_options(yield_per=CHUNK_ROWS)  # a server-side cursor on PostgreSQL
    )
    types: dict[str | None, str | None] = {None: None}
    establishments: dict[int, int] = {}  # one int object per establishment, not one per row
    for id_, identifier, email, phone, phone_type, establishment_id in result:
        kind = types.get(phone_type)
        if kind is None and phone_type is not None:
            kind = types[phone_type] = phone_type
        yield id_, identifier, email, phone, kind, establishments.setdefault(establishment_id, establishment_id)


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
