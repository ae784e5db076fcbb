"""store/engine.py: SQLite pragmas and BEGIN IMMEDIATE, file modes, URL parsing, driver errors."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest
from sqlalchemy import event, text
from typer.testing import CliRunner

from pepsctl.errors import InvalidInput, StoreError, StoreNotInitialised
from pepsctl.store.engine import SQLITE_BUSY_MS, create_store_engine, parse_store_url, translate_errors


def _sqlite_store(tmp_path: Path) -> str:
    """An initialised SQLite store file (the schema is not needed by most engine tests)."""
    from pepsctl.domain import schema

    path = tmp_path / "engine" / "pepsctl.db"
    engine = create_store_engine(parse_store_url(str(path)), create=True)
    schema.initialise(engine)
    engine.dispose()
    return str(path)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _invoke(*args: str):
    from pepsctl.cli import app

    return CliRunner().invoke(app, list(args), catch_exceptions=False)


# -- SQLite connections ----------------------------------------------------------------------------


def test_sqlite_connection_pragmas(tmp_path):
    engine = create_store_engine(parse_store_url(_sqlite_store(tmp_path)))
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar().lower() == "wal"
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    finally:
        engine.dispose()
    assert SQLITE_BUSY_MS >= 5000


def test_sqlite_pragmas_on_every_pooled_connection(tmp_path):
    """Not only the first connection: each new DBAPI connection gets foreign keys on."""
    engine = create_store_engine(parse_store_url(_sqlite_store(tmp_path)))
    try:
        # Two distinct DBAPI connections held at once (raw: no transaction, so no write lock).
        first = engine.raw_connection()
        second = engine.raw_connection()
        try:
            assert first.driver_connection is not second.driver_connection
            for connection in (first, second):
                cursor = connection.cursor()
                assert cursor.execute("PRAGMA foreign_keys").fetchone()[0] == 1
                assert cursor.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
                assert cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
                cursor.close()
        finally:
            first.close()
            second.close()
    finally:
        engine.dispose()


def test_sqlite_foreign_keys_are_enforced(tmp_path):
    from sqlalchemy.exc import IntegrityError

    engine = create_store_engine(parse_store_url(_sqlite_store(tmp_path)))
    try:
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO establishment_fund (establishment_id, fund, contract_number) "
                    "VALUES (424242, 'CNRACL', 'C-1')"
                )
            )
    finally:
        engine.dispose()


def test_sqlite_transactions_begin_immediate(tmp_path):
    """Every transaction is BEGIN IMMEDIATE: seen in the statements sent to the driver."""
    engine = create_store_engine(parse_store_url(_sqlite_store(tmp_path)))
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _seen(_conn, _cursor, statement, *_args):
        statements.append(statement.strip().upper())

    try:
        with engine.begin() as connection:
            connection.execute(text("SELECT count(*) FROM account"))
        begins = [s for s in statements if s.startswith("BEGIN")]
        assert begins == ["BEGIN IMMEDIATE"]
    finally:
        engine.dispose()


def test_sqlite_write_lock_held_from_the_start_of_a_pepsctl_transaction(tmp_path):
    """While a pepsctl transaction is open (even before it writes), nobody else can take the write lock."""
    from pepsctl.context import AppContext

    path = _sqlite_store(tmp_path)
    app = AppContext(store_option=path)
    try:
        with app.env(auth=False) as env:
            env.session.execute(text("SELECT count(*) FROM account")).scalar()  # a read only
            other = sqlite3.connect(path, timeout=0, isolation_level=None)
            try:
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("BEGIN IMMEDIATE")
            finally:
                other.close()
        # Once it has committed, the lock is free again.
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        finally:
            other.close()
    finally:
        app.dispose()


def test_sqlite_readonly_connections_begin_deferred(tmp_path):
    """The schema-version read (pepsctl_readonly) must not take the write lock."""
    engine = create_store_engine(parse_store_url(_sqlite_store(tmp_path)))
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _seen(_conn, _cursor, statement, *_args):
        statements.append(statement.strip().upper())

    try:
        with engine.connect().execution_options(pepsctl_readonly=True) as connection, connection.begin():
            connection.execute(text("SELECT 1"))
        assert [s for s in statements if s.startswith("BEGIN")] == ["BEGIN DEFERRED"]
    finally:
        engine.dispose()


def test_busy_timeout_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PEPSCTL_SQLITE_BUSY_MS", "7500")
    engine = create_store_engine(parse_store_url(_sqlite_store(tmp_path)))
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 7500
    finally:
        engine.dispose()


def test_missing_sqlite_file_is_not_created_without_create(tmp_path):
    path = tmp_path / "absent" / "store.db"
    with pytest.raises(StoreNotInitialised) as caught:
        create_store_engine(parse_store_url(str(path)))
    assert caught.value.exit_code == 9
    assert "pepsctl init" in (caught.value.hint or "")
    assert not path.exists() and not path.parent.exists()


# -- file modes ------------------------------------------------------------------------------------


def test_init_creates_a_private_file_in_a_private_directory(tmp_path):
    path = tmp_path / "new-dir" / "deeper" / "store.db"
    result = _invoke("--store", f"sqlite:///{path}", "init")
    assert result.exit_code == 0, result.stderr
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    # WAL side files live next to it; the directory's mode protects them.
    assert "Created the store" in result.stderr


def test_init_on_an_existing_directory_keeps_its_mode_and_makes_the_file_private(tmp_path):
    directory = tmp_path / "shared"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    path = directory / "store.db"
    result = _invoke("--store", str(path), "init")
    assert result.exit_code == 0, result.stderr
    assert _mode(path) == 0o600
    assert _mode(directory) == 0o755  # not ours: left alone


def test_init_file_is_private_whatever_the_umask(tmp_path):
    import os

    path = tmp_path / "umask" / "store.db"
    previous = os.umask(0)
    try:
        result = _invoke("--store", str(path), "init")
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.stderr
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700


# -- parse_store_url -------------------------------------------------------------------------------


def test_plain_path_is_a_sqlite_file(tmp_path):
    store = parse_store_url(str(tmp_path / "a.db"))
    assert store.dialect == "sqlite"
    assert store.sqlite_path == tmp_path / "a.db"
    assert store.display == str(tmp_path / "a.db")
    assert not store.has_password


def test_relative_and_home_paths_are_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert parse_store_url("rel.db").sqlite_path == tmp_path / "rel.db"
    assert parse_store_url("sqlite:///rel.db").sqlite_path == tmp_path / "rel.db"
    assert parse_store_url("~/x.db").sqlite_path == tmp_path / "home" / "x.db"


def test_sqlite_url(tmp_path):
    store = parse_store_url(f"sqlite:///{tmp_path / 'b.db'}")
    assert store.dialect == "sqlite"
    assert store.sqlite_path == tmp_path / "b.db"
    assert store.url.drivername == "sqlite"


@pytest.mark.parametrize(
    "raw", ["postgresql://peps@db.example.fr:5432/peps", "postgres://peps@db.example.fr:5432/peps"]
)
def test_postgresql_url_uses_psycopg(raw):
    store = parse_store_url(raw)
    assert store.dialect == "postgresql"
    assert store.url.drivername == "postgresql+psycopg"
    assert store.display == "postgresql://peps@db.example.fr:5432/peps"
    assert store.sqlite_path is None
    assert not store.has_password


@pytest.mark.parametrize(
    ("raw", "secret"),
    [
        ("postgresql://peps:hunter2-secret@db.example.fr:5432/peps", "hunter2-secret"),
        ("postgresql://peps:s%40cr%3At@db.example.fr/peps", "s@cr:t"),
        ("postgresql+psycopg2://peps:pw-in-url@db.example.fr/peps?sslmode=require", "pw-in-url"),
    ],
)
def test_display_never_contains_the_password(raw, secret):
    store = parse_store_url(raw)
    assert store.has_password
    assert store.url.password == secret
    assert secret not in store.display
    assert secret.replace("@", "%40").replace(":", "%3A") not in store.display
    assert "***" in store.display


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "mysql://u@h/db", "http://example.fr/store", "sqlite://", "sqlite:///:memory:", "://nothing"],
)
def test_unusable_urls_are_invalid_input(raw):
    with pytest.raises(InvalidInput) as caught:
        parse_store_url(raw)
    assert caught.value.exit_code == 3


def test_unreadable_url_never_echoes_its_password():
    with pytest.raises(InvalidInput) as caught:
        parse_store_url("postgresql://peps:topsecret@db.example.fr:notaport/peps")
    assert caught.value.exit_code == 3
    assert "topsecret" not in str(caught.value)
    assert "topsecret" not in (caught.value.hint or "")


@pytest.mark.parametrize(
    "raw", ["mysql://u@h/db", "sqlite:///:memory:", "postgresql://peps:topsecret@db.example.fr:notaport/peps"]
)
def test_bad_store_on_the_command_line_exits_3(raw):
    result = _invoke("--store", raw, "store", "status")
    assert result.exit_code == 3, (result.exit_code, result.stderr)
    assert result.stderr.startswith("Error: ")
    assert "Traceback" not in result.stderr
    assert "topsecret" not in result.stderr + result.stdout


# -- driver errors ---------------------------------------------------------------------------------


@pytest.mark.postgres
def test_unreachable_postgresql_is_a_store_error_without_the_password():
    store = parse_store_url("postgresql://postgres:sekrit-pw@127.0.0.1:1/x")
    engine = create_store_engine(store)
    try:
        with pytest.raises(StoreError) as caught, translate_errors(store), engine.connect():
            pass
    finally:
        engine.dispose()
    assert caught.value.exit_code == 9
    assert "sekrit-pw" not in str(caught.value) + (caught.value.hint or "")
    assert "127.0.0.1" in str(caught.value)


def test_postgresql_connections_are_configured(store_url):
    """On PostgreSQL: application name and statement timeout come from the engine; on SQLite, WAL."""
    engine = create_store_engine(parse_store_url(store_url))
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                assert connection.exec_driver_sql("SHOW application_name").scalar() == "pepsctl"
                assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "1min"
                assert connection.exec_driver_sql("SHOW lock_timeout").scalar() == "30s"
            else:
                assert connection.exec_driver_sql("PRAGMA journal_mode").scalar().lower() == "wal"
                assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


# -- PostgreSQL: serialization failures and deadlocks are replayed a bounded number of times ---------------

_SERIALIZATION_FAILURE = "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure'; END $$"


def _counter_value(url: str, name: str = "account") -> int:
    engine = create_store_engine(parse_store_url(url))
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT value FROM counter WHERE name = :n"), {"n": name}).scalar_one()
    finally:
        engine.dispose()


def _postgres_only(url: str) -> None:
    if not url.startswith("postgresql"):
        pytest.skip("serialization failures and deadlocks are PostgreSQL's (SQLite serialises writers)")


@pytest.mark.postgres
def test_retries_serialization_failures(store_url, monkeypatch):
    """A transaction the server aborts with SQLSTATE 40001 is run again whole; its first writes are gone."""
    from pepsctl import context
    from pepsctl.context import AppContext

    _postgres_only(store_url)
    monkeypatch.setattr(context, "RETRY_PAUSE", 0.0)
    app = AppContext(store_option=store_url)
    attempts: list[int] = []

    def operation(env):
        attempts.append(len(attempts) + 1)
        env.session.execute(text("UPDATE counter SET value = value + 1 WHERE name = 'account'"))
        if len(attempts) == 1:
            env.session.execute(text(_SERIALIZATION_FAILURE))  # a real 40001 from the server
        return "done"

    try:
        assert app.transact(operation, auth=False) == "done"
    finally:
        app.dispose()
    assert attempts == [1, 2]
    assert _counter_value(store_url) == 1  # the aborted attempt's increment was rolled back


@pytest.mark.postgres
def test_a_conflict_that_persists_is_exit_9_after_a_bounded_number_of_attempts(store_url, monkeypatch):
    from pepsctl import context
    from pepsctl.context import ATTEMPTS, AppContext

    _postgres_only(store_url)
    monkeypatch.setattr(context, "RETRY_PAUSE", 0.0)
    app = AppContext(store_option=store_url)
    attempts: list[int] = []

    def operation(env):
        attempts.append(1)
        env.session.execute(text("UPDATE counter SET value = value + 1 WHERE name = 'account'"))
        env.session.execute(text(_SERIALIZATION_FAILURE))

    try:
        with pytest.raises(StoreError, match="conflicting") as raised:
            app.transact(operation, auth=False)
    finally:
        app.dispose()
    assert len(attempts) == ATTEMPTS == 3
    assert raised.value.exit_code == 9
    assert "Nothing was changed" in (raised.value.hint or "")
    assert _counter_value(store_url) == 0


def test_other_store_failures_are_not_replayed(store_url):
    """Only serialization failures and deadlocks are replayed: a constraint violation is reported at once."""
    from sqlalchemy.exc import IntegrityError

    from pepsctl.context import AppContext

    app = AppContext(store_option=store_url)
    attempts: list[int] = []

    def operation(env):
        attempts.append(1)
        env.session.execute(text("INSERT INTO counter (name, value) VALUES ('account', 1)"))  # duplicate key

    try:
        with pytest.raises(IntegrityError):
            app.transact(operation, auth=False)
    finally:
        app.dispose()
    assert attempts == [1]


@pytest.mark.postgres
def test_a_real_deadlock_between_two_transactions_is_replayed(store_url, monkeypatch):
    """Two transactions lock two rows in opposite orders: PostgreSQL aborts one (40P01); it is replayed."""
    import threading

    from pepsctl import context
    from pepsctl.context import AppContext

    _postgres_only(store_url)
    monkeypatch.setattr(context, "RETRY_PAUSE", 0.0)
    engine = create_store_engine(parse_store_url(store_url))
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO counter (name, value) VALUES ('first', 0), ('second', 0)"))
    engine.dispose()
    barrier = threading.Barrier(2, timeout=30)
    attempts = {"first": 0, "second": 0}
    errors: list[BaseException] = []

    def worker(mine: str, other: str) -> None:
        app = AppContext(store_option=store_url)

        def operation(env):
            attempts[mine] += 1
            env.session.execute(text("UPDATE counter SET value = value + 1 WHERE name = :n"), {"n": mine})
            if attempts[mine] == 1:
                barrier.wait()  # both hold their first row: each now asks for the other's
            env.session.execute(text("UPDATE counter SET value = value + 1 WHERE name = :n"), {"n": other})

        try:
            app.transact(operation, auth=False)
        except BaseException as error:  # reported to the test thread
            errors.append(error)
        finally:
            app.dispose()

    threads = [threading.Thread(target=worker, args=pair) for pair in (("first", "second"), ("second", "first"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(attempts.values()) == [1, 2]  # one was the deadlock's victim and was replayed
    assert (_counter_value(store_url, "first"), _counter_value(store_url, "second")) == (2, 2)
