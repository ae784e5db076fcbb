"""The audit trail is append-only in the store itself, and the retention purge keeps it verifiable.

security.md: "Append-only and hash-chained"; "Retention is documented (12 months by default) with a
purge command that keeps the chain verifiable"; issue #7: "tests prove the audit table refuses
UPDATE and DELETE on both stores".
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from pepsctl import clock
from pepsctl.store.engine import create_store_engine, parse_store_url
from tests.conftest import create_account, login


def _execute(store_url: str, statement: str) -> None:
    engine = create_store_engine(parse_store_url(store_url))
    try:
        with engine.begin() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


def _scalar(store_url: str, statement: str):
    engine = create_store_engine(parse_store_url(store_url))
    try:
        with engine.connect() as connection:
            return connection.execute(text(statement)).scalar_one()
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_event SET actor = 'ZZZ999999'",
        "UPDATE audit_event SET after = NULL WHERE id = 1",
        "DELETE FROM audit_event",
        "DELETE FROM audit_event WHERE id = (SELECT max(id) FROM audit_event)",
    ],
)
def test_the_audit_table_refuses_update_and_delete(cli, admin_a, statement):
    before = _scalar(cli.store, "SELECT count(*) FROM audit_event")
    assert before > 0

    with pytest.raises(DatabaseError, match="append-only"):
        _execute(cli.store, statement)

    assert _scalar(cli.store, "SELECT count(*) FROM audit_event") == before
    assert cli("history", "verify").exit_code == 0


def test_postgresql_refuses_truncate_of_the_audit_table(cli, admin_a):
    if not cli.store.startswith("postgresql"):
        pytest.skip("TRUNCATE is a PostgreSQL statement")
    with pytest.raises(DatabaseError, match="append-only"):
        _execute(cli.store, "TRUNCATE audit_event")
    assert cli("history", "verify").exit_code == 0


def test_appending_still_works(cli, admin_a):
    before = _scalar(cli.store, "SELECT count(*) FROM audit_event")
    create_account(cli, "Jeanne", "Dupont")
    assert _scalar(cli.store, "SELECT count(*) FROM audit_event") > before
    assert cli("history", "verify").exit_code == 0


def _purge(cli, *args: str):
    return cli.ok("store", "purge", "--yes", "--format", "json", *args)


def test_purge_deletes_what_is_older_than_the_period_and_the_chain_still_verifies(cli, admin_a):
    create_account(cli, "Jeanne", "Dupont")
    old_events = _scalar(cli.store, "SELECT count(*) FROM audit_event")
    old_messages = _scalar(cli.store, "SELECT count(*) FROM outbox_message")
    clock.advance(timedelta(days=366))
    login(cli, admin_a)  # new events, inside the period
    recent = _scalar(cli.store, "SELECT count(*) FROM audit_event") - old_events

    result = json.loads(_purge(cli).stdout)

    assert result["history_events"] == old_events
    assert result["outbox_messages"] == old_messages
    assert result["dry_run"] is False
    # What remains: the recent events, and the purge's own event.
    assert _scalar(cli.store, "SELECT count(*) FROM audit_event") == recent + 1
    verified = cli.ok("history", "verify", "--format", "json")
    assert json.loads(verified.stdout)["ok"] is True
    assert _scalar(cli.store, "SELECT action FROM audit_event ORDER BY id DESC LIMIT 1") == "store.purge"


def test_a_purged_chain_still_detects_tampering(cli, admin_a):
    clock.advance(timedelta(days=400))
    login(cli, admin_a)
    create_account(cli, "Jeanne", "Dupont")
    _purge(cli)
    assert cli("history", "verify").exit_code == 0
    # The owner of the database drops the protection and edits a remaining event: the chain tells.
    if cli.store.startswith("postgresql"):
        _execute(
            cli.store,
            "ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_update_delete; "
            "UPDATE audit_event SET actor = 'ZZZ999999' WHERE id = (SELECT min(id) FROM audit_event); "
            "ALTER TABLE audit_event ENABLE TRIGGER audit_event_no_update_delete",
        )
    else:
        _execute(cli.store, "DROP TRIGGER audit_event_no_update")
        _execute(cli.store, "UPDATE audit_event SET actor = 'ZZZ999999' WHERE id = (SELECT min(id) FROM audit_event)")
    assert cli("history", "verify").exit_code == 1


def test_purge_dry_run_counts_and_deletes_nothing(cli, admin_a):
    events = _scalar(cli.store, "SELECT count(*) FROM audit_event")
    clock.advance(timedelta(days=366))

    result = json.loads(cli.ok("store", "purge", "--dry-run", "--format", "json").stdout)

    assert result["dry_run"] is True
    assert result["history_events"] == events
    assert _scalar(cli.store, "SELECT count(*) FROM audit_event") == events


def test_nothing_is_older_than_the_period_nothing_is_purged(cli, admin_a):
    events = _scalar(cli.store, "SELECT count(*) FROM audit_event")
    result = json.loads(_purge(cli).stdout)
    assert result["history_events"] == 0
    assert _scalar(cli.store, "SELECT count(*) FROM audit_event") == events


def test_purge_asks_for_confirmation_and_checks_the_period(cli, admin_a):
    refused = cli("store", "purge")
    assert refused.exit_code == 2
    too_short = cli("store", "purge", "--older-than", "7", "--yes")
    assert too_short.exit_code == 3
    assert "--older-than" in too_short.stderr


def test_purged_batches_take_the_previous_values_with_them(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "Dupont", phone="06 12 34 56 78")
    path = tmp_path / "phones.csv"
    path.write_text(f"identifier;phone\n{user};07 81 00 00 99\n", encoding="utf-8")
    cli.ok("phones", "import", str(path), "--yes")
    assert _scalar(cli.store, "SELECT count(*) FROM batch_change") == 1
    clock.advance(timedelta(days=366))

    result = json.loads(_purge(cli).stdout)

    assert (result["batches"], result["batch_changes"]) == (1, 1)
    assert _scalar(cli.store, "SELECT count(*) FROM batch_change") == 0
    assert _scalar(cli.store, "SELECT count(*) FROM batch") == 0
    assert cli("history", "verify").exit_code == 0
