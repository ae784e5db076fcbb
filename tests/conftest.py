"""Test isolation and the store fixtures.

- ``isolate`` (autouse): config/data/state directories in tmp_path, an in-memory keyring, no
  colour, fixed width, the clock frozen, no PEPSCTL_* variable leaking in from the outside.
- ``store_url``: parametrised over SQLite (a fresh file per test) and PostgreSQL (one database
  created for the run, emptied between tests, dropped at the end). PostgreSQL tests carry the
  ``postgres`` marker; they are skipped when the server is unreachable unless
  ``PEPSCTL_REQUIRE_POSTGRES=1`` (CI), in which case they fail.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError
from typer.testing import CliRunner

from pepsctl import clock, config

FROZEN_AT = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
PG_ADMIN_URL = os.environ.get("PEPSCTL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


class MemoryKeyring(KeyringBackend):
    """A keyring that forgets everything at the end of the test."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.items.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


@pytest.fixture(autouse=True)
def isolate(tmp_path, monkeypatch) -> Iterator[MemoryKeyring]:
    for name in list(os.environ):
        if name.startswith("PEPSCTL_") and name not in ("PEPSCTL_TEST_PG_URL", "PEPSCTL_REQUIRE_POSTGRES"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    monkeypatch.setenv(config.ENV_CONFIG_DIR, str(tmp_path / "config"))
    monkeypatch.setenv(config.ENV_DATA_DIR, str(tmp_path / "data"))
    monkeypatch.setenv(config.ENV_STATE_DIR, str(tmp_path / "state"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    backend = MemoryKeyring()
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    clock.freeze(FROZEN_AT)
    # Cheap Argon2 parameters in tests: the production defaults cost ~0.1 s per hash.
    from argon2 import PasswordHasher

    from pepsctl.domain import passwords

    monkeypatch.setattr(passwords, "_hasher", lambda: PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))
    passwords._dummy_hash.cache_clear()
    yield backend
    clock.unfreeze()
    keyring.set_keyring(previous)


# -- PostgreSQL ------------------------------------------------------------------------------------


@dataclass
class PgDatabase:
    url: str
    name: str


def _pg_available() -> bool:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def pg_database() -> Iterator[PgDatabase]:
    import psycopg
    from sqlalchemy.engine import make_url

    if not _pg_available():
        if os.environ.get("PEPSCTL_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required (PEPSCTL_REQUIRE_POSTGRES=1) and unreachable at {PG_ADMIN_URL}")
        pytest.skip(f"PostgreSQL unreachable at {PG_ADMIN_URL}")
    name = f"pepsctl_test_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    # Create the schema once; tests then empty the tables.
    from pepsctl.domain import schema
    from pepsctl.store.engine import create_store_engine, parse_store_url

    engine = create_store_engine(parse_store_url(url))
    schema.initialise(engine)
    engine.dispose()
    try:
        yield PgDatabase(url, name)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _empty_pg(url: str) -> None:
    from sqlalchemy import text
    from sqlmodel import SQLModel

    from pepsctl.domain import codes
    from pepsctl.store.engine import create_store_engine, parse_store_url

    engine = create_store_engine(parse_store_url(url))
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as conn:
        # The audit trail refuses TRUNCATE unless the retention purge's gate is open (migration 0006).
        conn.execute(text("SELECT set_config('pepsctl.history_purge', 'on', true)"))
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        conn.execute(text("INSERT INTO counter (name, value) VALUES ('account', 0)"))
        conn.execute(
            text("INSERT INTO store_meta (key, value) VALUES (:k, :v)"),
            {"k": codes.KEY_NAME, "v": codes.new_store_key()},
        )
    # The service catalogue, as `init` leaves it (the TRUNCATE emptied it too).
    from sqlmodel import Session

    from pepsctl.domain import catalogue

    with Session(engine) as session, session.begin():
        catalogue.sync(session)
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path) -> str:
    """An initialised, empty store URL on each dialect."""
    if request.param == "sqlite":
        from pepsctl.domain import schema
        from pepsctl.store.engine import create_store_engine, parse_store_url

        url = f"sqlite:///{tmp_path / 'store' / 'pepsctl.db'}"
        engine = create_store_engine(parse_store_url(url), create=True)
        schema.initialise(engine)
        engine.dispose()
        return url
    db: PgDatabase = request.getfixturevalue("pg_database")
    _empty_pg(db.url)
    # A remote store refuses the outbox unless explicitly allowed: the tests allow it.
    request.getfixturevalue("monkeypatch").setenv(config.ENV_OUTBOX, "1")
    return db.url


# -- CLI -------------------------------------------------------------------------------------------


@dataclass
class Cli:
    """Runs pepsctl in-process against one store."""

    store: str
    runner: CliRunner

    def __call__(self, *args: str, input: str | None = None, env: dict[str, str] | None = None):
        from pepsctl.cli import app

        return self.runner.invoke(app, ["--store", self.store, *args], input=input, env=env, catch_exceptions=False)

    def ok(self, *args: str, input: str | None = None, env: dict[str, str] | None = None):
        result = self(*args, input=input, env=env)
        assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
        return result

    def json(self, *args: str, input: str | None = None):
        import json

        result = self.ok(*args, "--format", "json", input=input)
        return json.loads(result.stdout)


@pytest.fixture
def cli(store_url) -> Cli:
    return Cli(store_url, CliRunner())


# -- a small world: establishments with logged-in administrators -----------------------------------

SIRET_A = "21999001700010"
SIRET_B = "25999002600017"
SIRET_C = "20999003500013"
PASSWORD = "un-mot-de-passe-solide"


def last_code(cli: Cli, to: str) -> str:
    """The newest code sent to ``to`` through the outbox."""
    messages = cli.json("outbox", "list", "--to", to)
    codes = [m["code"] for m in messages if m["code"]]
    assert codes, messages
    return codes[-1]


def last_sms_code(cli: Cli) -> str:
    """The newest one-time code sent by SMS or voice call through the outbox."""
    messages = [m for m in cli.json("outbox", "list") if m["channel"] in ("sms", "voice") and m["code"]]
    assert messages, "no one-time code in the outbox"
    return messages[-1]["code"]


def with_code(cli: Cli, *args: str, input: str | None = None):
    """Run a command that needs a one-time code: without --otp it sends one (exit 6); again with it."""
    first = cli(*args, input=input)
    if first.exit_code == 0:
        return first
    assert first.exit_code == 6, (first.exit_code, first.stdout, first.stderr)
    assert "code" in first.stderr, first.stderr
    return cli.ok(*args, "--otp", last_sms_code(cli), input=input)


def register(
    cli: Cli,
    siret: str,
    *,
    last: str = "Durand",
    first: str = "Marie",
    email: str | None = None,
    phone: str = "06 10 20 30 40",
) -> str:
    """Register an establishment and activate its first administrator; returns the identifier."""
    email = email or f"{first.lower()}.{last.lower()}@{siret}.example.fr"
    import json

    result = with_code(
        cli,
        "establishments",
        "register",
        "--siret",
        siret,
        "--name",
        f"Mairie {siret[:5]}",
        "--fund",
        "CNRACL=C-1234",
        "--admin-civility",
        "MME",
        "--admin-last-name",
        last,
        "--admin-first-name",
        first,
        "--admin-email",
        email,
        "--admin-phone",
        phone,
        "--format",
        "json",
    )
    data = json.loads(result.stdout)
    identifier = data["administrator"]
    activate(cli, identifier, email)
    return identifier


def activate(cli: Cli, identifier: str, email: str) -> None:
    code = last_code(cli, email)
    cli.ok("password", "set", identifier, "--code", code, "--password-stdin", input=PASSWORD + "\n")


def login(cli: Cli, identifier: str) -> None:
    """Log in, with the one-time code when this (test) workstation is not trusted yet.

    An account with no phone gives one at its first login (07 81 + its sequence number).
    """
    args = ["login", identifier, "--password-stdin"]
    first = cli(*args, input=PASSWORD + "\n")
    if first.exit_code == 0:
        return
    if "has no phone" in first.stderr:
        args += ["--phone", f"0781{identifier[-6:]}"]
    with_code(cli, *args, input=PASSWORD + "\n")


def create_account(
    cli: Cli,
    first: str,
    last: str,
    *,
    profile: str = "user",
    phone: str | None = None,
    activate_it: bool = True,
    extra: tuple[str, ...] = (),
) -> str:
    email = f"{first.lower()}.{last.lower()}@example.fr"
    args = [
        "accounts",
        "create",
        "--profile",
        profile,
        "--civility",
        "M",
        "--last-name",
        last,
        "--first-name",
        first,
        "--email",
        email,
        *extra,
    ]
    if phone:
        args += ["--phone", phone]
    identifier = cli.json(*args)["identifier"]
    if activate_it:
        activate(cli, identifier, email)
    return identifier


@pytest.fixture
def admin_a(cli) -> str:
    """Establishment A registered, its administrator activated and logged in."""
    identifier = register(cli, SIRET_A)
    login(cli, identifier)
    return identifier
