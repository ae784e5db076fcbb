"""Migrations: the Alembic head is the version the code expects, an empty database upgrades to
exactly the tables of the models, and a store at another schema version is refused (exit 9)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from pepsctl import config
from pepsctl.store import migrate
from pepsctl.store.engine import check_version, create_store_engine, parse_store_url, read_schema_version
from pepsctl.store.models import SCHEMA_VERSION
from tests.conftest import FROZEN_AT, PG_ADMIN_URL, SIRET_A, Cli, register


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_store_url(request, tmp_path) -> Iterator[str]:
    """A store with no schema at all: an empty SQLite file, or a brand-new PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'empty' / 'store.db'}"
        create_store_engine(parse_store_url(url), create=True).dispose()
        yield url
        return
    request.getfixturevalue("pg_database")  # skips (or fails in CI) when PostgreSQL is unreachable
    import psycopg
    from sqlalchemy.engine import make_url

    request.getfixturevalue("monkeypatch").setenv(config.ENV_OUTBOX, "1")  # as the store_url fixture does
    name = f"pepsctl_migr_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def set_schema_version(store_url) -> Iterator:
    """Change the store's alembic_version; restored afterwards (the PostgreSQL database is shared)."""
    engine = create_store_engine(parse_store_url(store_url))

    def _set(version: str) -> None:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": version})

    try:
        yield _set
    finally:
        _set(SCHEMA_VERSION)
        engine.dispose()


ALL_REVISIONS = sorted(p.name[:4] for p in migrate.MIGRATIONS.joinpath("versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


def test_revisions_are_numbered_in_order():
    assert ALL_REVISIONS[-1] == SCHEMA_VERSION
    assert [f"{n:04d}" for n in range(1, len(ALL_REVISIONS) + 1)] == ALL_REVISIONS


def test_upgrade_from_the_first_revision_keeps_the_data(empty_store_url):
    """A store created by an older pepsctl is upgraded in place, its rows kept."""
    from alembic import command
    from sqlalchemy import text

    engine = create_store_engine(parse_store_url(empty_store_url))
    try:
        command.upgrade(migrate.alembic_config(engine), "0001")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO establishment (siret, siren, name, registration_path, status, created_at, updated_at)"
                    " VALUES ('21999001700010', '219990017', 'Mairie', 'classic', 'active', :t, :t)"
                ),
                {"t": "2026-01-01 00:00:00"},
            )
        migrate.upgrade(engine)
        assert read_schema_version(engine) == SCHEMA_VERSION
        with engine.connect() as connection:
            assert connection.execute(text("SELECT name FROM establishment")).scalar_one() == "Mairie"
    finally:
        engine.dispose()


def test_schema_version_is_the_alembic_head():
    assert migrate.head() == SCHEMA_VERSION


def test_one_linear_history_of_revisions():
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert script.get_heads() == [SCHEMA_VERSION]
    assert len(script.get_bases()) == 1


def test_upgrading_an_empty_database_gives_exactly_the_model_tables(empty_store_url):
    engine = create_store_engine(parse_store_url(empty_store_url))
    try:
        assert read_schema_version(engine) is None
        assert migrate.pending(engine) == ALL_REVISIONS
        migrate.upgrade(engine)
        assert read_schema_version(engine) == SCHEMA_VERSION
        assert migrate.pending(engine) == []
        with engine.connect() as connection:
            inspector = inspect(connection)
            tables = set(inspector.get_table_names()) - {"alembic_version"}
            assert tables == set(SQLModel.metadata.tables)
            for name, table in SQLModel.metadata.tables.items():
                found = {c["name"]: c for c in inspector.get_columns(name)}
                assert set(found) == {c.name for c in table.columns}, name
                for column in table.columns:
                    assert found[column.name]["nullable"] == column.nullable, (name, column.name)
                primary = inspector.get_pk_constraint(name)["constrained_columns"]
                assert sorted(primary) == sorted(c.name for c in table.primary_key.columns), name
    finally:
        engine.dispose()


def test_migrated_schema_matches_the_models_exactly(empty_store_url):
    """Alembic's own comparison (types, indexes, constraints, foreign keys) finds no difference."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = create_store_engine(parse_store_url(empty_store_url))
    try:
        migrate.upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, SQLModel.metadata) == []
    finally:
        engine.dispose()


def test_downgrade_to_base_and_upgrade_again(empty_store_url):
    from alembic import command

    engine = create_store_engine(parse_store_url(empty_store_url))
    try:
        migrate.upgrade(engine)
        command.downgrade(migrate.alembic_config(engine), "base")
        with engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) <= {"alembic_version"}
        assert read_schema_version(engine) is None
        migrate.upgrade(engine)
        assert read_schema_version(engine) == SCHEMA_VERSION
    finally:
        engine.dispose()


def test_store_upgrade_applies_the_pending_migrations(empty_store_url):
    from typer.testing import CliRunner

    cli = Cli(empty_store_url, CliRunner())
    before = cli.json("store", "status")
    assert before["schema_version"] is None
    assert before["pending_migrations"] == ALL_REVISIONS
    assert before["counts"] == {}

    # A store with no schema is refused by every other command.
    result = cli("accounts", "list")
    assert result.exit_code == 9
    assert "pepsctl init" in result.stderr

    result = cli.ok("store", "upgrade")
    assert f"Applied: {', '.join(ALL_REVISIONS)}" in result.stderr
    after = cli.json("store", "status")
    assert after["schema_version"] == SCHEMA_VERSION
    assert after["pending_migrations"] == []
    assert after["counts"] == {"establishments": 0, "accounts": 0, "history_events": 0, "outbox_messages": 0}
    assert "up to date" in cli.ok("store", "upgrade").stderr
    # The store is usable: the code key and the account counter exist.
    assert cli("history", "verify").exit_code == 0
    assert register(cli, SIRET_A).endswith("000001")


def test_older_schema_is_refused_with_the_upgrade_hint(cli, set_schema_version):
    set_schema_version("0000")
    result = cli("accounts", "list")
    assert result.exit_code == 9, result.stderr
    assert result.stdout == ""
    assert "0000" in result.stderr and SCHEMA_VERSION in result.stderr
    assert "Hint: Run 'pepsctl store upgrade'." in result.stderr
    assert "Traceback" not in result.stderr
    # store status still answers, to show what is wrong.
    status = json.loads(cli.ok("store", "status", "--format", "json").stdout)
    assert status["schema_version"] == "0000"
    assert status["expected_version"] == SCHEMA_VERSION


def test_newer_schema_is_refused_with_upgrade_pepsctl(cli, set_schema_version):
    set_schema_version("9999")
    result = cli("history", "verify")
    assert result.exit_code == 9, result.stderr
    assert "newer than this pepsctl" in result.stderr
    assert "Upgrade pepsctl" in result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line]
    assert 1 <= len(lines) <= 2


def test_check_version_is_the_gate():
    from pepsctl.errors import SchemaMismatch, StoreNotInitialised

    check_version(SCHEMA_VERSION, display="x")
    with pytest.raises(StoreNotInitialised):
        check_version(None, display="x")
    with pytest.raises(SchemaMismatch, match="newer"):
        check_version("9999", display="x")
    with pytest.raises(SchemaMismatch) as caught:
        check_version("0000", display="x")
    assert "store upgrade" in (caught.value.hint or "")


def test_store_upgrade_computes_the_verdicts_of_older_accounts(empty_store_url):
    """A store from before migration 0007: ``store upgrade`` adds ``account.generic_hint`` and computes
    each account's generic-account verdict (tests/store/test_generic_hint.py)."""
    from alembic import command
    from typer.testing import CliRunner

    engine = create_store_engine(parse_store_url(empty_store_url))
    try:
        command.upgrade(migrate.alembic_config(engine), "0006")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO establishment (siret, siren, name, registration_path, status, created_at, updated_at)"
                    " VALUES (:s, '219990017', 'Mairie', 'classic', 'active', :t, :t)"
                ),
                {"s": SIRET_A, "t": FROZEN_AT},
            )
            est_id = conn.execute(text("SELECT id FROM establishment")).scalar_one()
            for identifier, first, last in (("ACC000001", "Accueil", "Mairie"), ("MSO000002", "Sophie", "Martin")):
                conn.execute(
                    text(
                        "INSERT INTO account (identifier, establishment_id, profile, civility, last_name, first_name,"
                        " email, must_set_password, failed_attempts, created_at, updated_at)"
                        " VALUES (:i, :e, 'user', 'MME', :l, :f, :m, :b, 0, :t, :t)"
                    ),
                    {
                        "i": identifier,
                        "e": est_id,
                        "l": last,
                        "f": first,
                        "m": f"{identifier}@x.fr",
                        "b": True,
                        "t": FROZEN_AT,
                    },
                )
    finally:
        engine.dispose()

    Cli(empty_store_url, CliRunner()).ok("store", "upgrade")
    engine = create_store_engine(parse_store_url(empty_store_url))
    try:
        with engine.connect() as conn:
            kept = dict(conn.execute(text("SELECT identifier, generic_hint FROM account")).all())
    finally:
        engine.dispose()
    assert {identifier: bool(hint) for identifier, hint in kept.items()} == {"ACC000001": True, "MSO000002": False}
