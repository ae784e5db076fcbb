"""The audit trail: every event chained, `history verify` names the first bad event after an edit,
a deletion, a reordering or a truncation; the `history` filters, its permission and its JSON keys."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import Connection, select, text, update

from pepsctl import clock
from pepsctl.domain import history
from pepsctl.store.engine import create_store_engine, parse_store_url
from pepsctl.store.models import AuditEvent
from tests.conftest import FROZEN_AT, SIRET_A, SIRET_B, activate, create_account, login, register, with_code

EVENT_KEYS = [
    "id",
    "at",
    "actor",
    "establishment",
    "action",
    "target",
    "batch_id",
    "delegation_id",
    "before",
    "after",
]
CONTENT_COLUMNS = [
    "at",
    "actor",
    "establishment",
    "delegation_id",
    "action",
    "target",
    "batch_id",
    "before",
    "after",
    "prev_hash",
    "hash",
]


_PG_TRIGGER = (
    "CREATE TRIGGER audit_event_no_update_delete BEFORE UPDATE OR DELETE ON audit_event "
    "FOR EACH ROW EXECUTE FUNCTION pepsctl_audit_append_only()"
)


@contextmanager
def raw(store_url: str, *, attacker: bool = True) -> Iterator[Connection]:
    """A connection to the store outside pepsctl, in one committed transaction: the attacker's.

    The attacker owns the database (or the file): they first drop the triggers that keep the audit
    trail append-only (migration 0006). The hash chain must still tell.
    """
    engine = create_store_engine(parse_store_url(store_url))
    postgres = engine.dialect.name == "postgresql"
    try:
        with engine.begin() as connection:
            if attacker and postgres:
                connection.execute(text("DROP TRIGGER IF EXISTS audit_event_no_update_delete ON audit_event"))
            elif attacker:
                connection.execute(text("DROP TRIGGER IF EXISTS audit_event_no_update"))
                connection.execute(text("DROP TRIGGER IF EXISTS audit_event_no_delete"))
            yield connection
    finally:
        if attacker and postgres:  # the database outlives this test: put the protection back
            with engine.begin() as connection:
                connection.execute(text("DROP TRIGGER IF EXISTS audit_event_no_update_delete ON audit_event"))
                connection.execute(text(_PG_TRIGGER))
        engine.dispose()


def rows(store_url: str) -> list[dict]:
    with raw(store_url, attacker=False) as connection:
        return [dict(r) for r in connection.execute(select(AuditEvent.__table__).order_by(text("id"))).mappings()]


def verify(cli) -> tuple[int, dict, str]:
    result = cli("history", "verify", "--format", "json")
    return result.exit_code, json.loads(result.stdout), result.stderr


@pytest.fixture
def trail(cli, admin_a) -> list[dict]:
    """Normal use: a registration, activations, logins, a few accounts: a dozen events or so."""
    create_account(cli, "Jean", "Martin")
    create_account(cli, "Paul", "Petit", activate_it=False)
    login(cli, admin_a)
    events = rows(cli.store)
    assert len(events) >= 8
    return events


# -- the chain -------------------------------------------------------------------------------------


def test_every_event_is_chained(cli, trail):
    previous = history.GENESIS
    for row in trail:
        assert row["prev_hash"] == previous, row["id"]
        assert row["hash"] == history.event_hash(previous, row), row["id"]
        assert len(row["hash"]) == 64
        previous = row["hash"]
    with raw(cli.store) as connection:
        head = connection.execute(
            text("SELECT value FROM store_meta WHERE key = :k"), {"k": history.HEAD_KEY}
        ).scalar_one()
    assert head == f"{len(trail)}:{previous}"


def test_verify_passes_after_normal_use(cli, trail):
    result = cli("history", "verify")
    assert result.exit_code == 0, result.stderr
    assert f"The audit trail is intact ({len(trail)} events)." in result.stderr
    code, data, _err = verify(cli)
    assert code == 0
    assert data == {"ok": True, "checked": len(trail), "first_bad_id": None, "reason": None}


def test_verify_on_an_empty_store(cli):
    code, data, _err = verify(cli)
    assert code == 0
    assert data["checked"] == 0


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("actor", "ZZZ999999"),
        ("action", "auth.logout"),
        ("target", "XYZ000001"),
        ("establishment", SIRET_B),
        ("after", '{"profile":"user"}'),
        ("before", '{"phone":"+33 6 •• •• •• 00"}'),
        ("batch_id", 7),
        ("delegation_id", 3),
    ],
)
def test_an_edited_event_is_named(cli, trail, column, value):
    target = trail[2]["id"]
    with raw(cli.store) as connection:
        connection.execute(text(f"UPDATE audit_event SET {column} = :v WHERE id = :id"), {"v": value, "id": target})
    code, data, stderr = verify(cli)
    assert code == 1
    assert data["ok"] is False
    assert data["first_bad_id"] == target
    assert data["checked"] == 2
    assert data["reason"] == "was modified after it was recorded"
    assert f"Error: The audit trail is broken at event {target}: it was modified after it was recorded." in stderr


def test_an_edited_timestamp_is_named(cli, trail):
    target = trail[3]["id"]
    with raw(cli.store) as connection:
        connection.execute(update(AuditEvent).where(AuditEvent.id == target).values(at=FROZEN_AT - timedelta(days=30)))
    code, data, _err = verify(cli)
    assert code == 1
    assert data["first_bad_id"] == target


def test_an_edited_event_with_a_recomputed_hash_is_caught_by_the_next_one(cli, trail):
    """Someone who knows the algorithm rewrites one event's hash: the following event no longer fits."""
    row = dict(trail[2])
    row["actor"] = "ZZZ999999"
    forged = history.event_hash(row["prev_hash"], row)
    with raw(cli.store) as connection:
        connection.execute(
            text("UPDATE audit_event SET actor = :a, hash = :h WHERE id = :id"),
            {"a": row["actor"], "h": forged, "id": row["id"]},
        )
    code, data, _err = verify(cli)
    assert code == 1
    assert data["first_bad_id"] == trail[3]["id"]
    assert data["reason"] == "does not follow the previous event"


def test_a_deleted_middle_event_is_named(cli, trail):
    gone = trail[3]["id"]
    with raw(cli.store) as connection:
        connection.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": gone})
    code, data, stderr = verify(cli)
    assert code == 1
    assert data["first_bad_id"] == trail[4]["id"]
    assert data["reason"] == "does not follow the previous event"
    assert f"event {trail[4]['id']}" in stderr
    assert "3 events before it are intact" in stderr


def test_the_first_event_deleted_is_named(cli, trail):
    with raw(cli.store) as connection:
        connection.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": trail[0]["id"]})
    code, data, _err = verify(cli)
    assert code == 1
    assert data["first_bad_id"] == trail[1]["id"]


def _swap(connection: Connection, a: int, b: int, columns: list[str]) -> None:
    first = connection.execute(select(AuditEvent.__table__).where(text("id = :id")), {"id": a}).mappings().one()
    second = connection.execute(select(AuditEvent.__table__).where(text("id = :id")), {"id": b}).mappings().one()
    table = AuditEvent.__table__
    connection.execute(update(table).where(table.c.id == a).values({c: second[c] for c in columns}))
    connection.execute(update(table).where(table.c.id == b).values({c: first[c] for c in columns}))


def test_reordered_events_are_named(cli, trail):
    """Two events swapped whole (hashes included), as a reordering of the trail."""
    a, b = trail[2]["id"], trail[3]["id"]
    with raw(cli.store) as connection:
        _swap(connection, a, b, CONTENT_COLUMNS)
    code, data, stderr = verify(cli)
    assert code == 1
    assert data["first_bad_id"] == a
    assert data["reason"] == "does not follow the previous event"
    assert f"event {a}" in stderr


def test_swapped_content_under_the_same_hashes_is_named(cli, trail):
    a, b = trail[4]["id"], trail[5]["id"]
    content = [c for c in CONTENT_COLUMNS if c not in ("prev_hash", "hash")]
    with raw(cli.store) as connection:
        _swap(connection, a, b, content)
    code, data, _err = verify(cli)
    assert code == 1
    assert data["first_bad_id"] == a
    assert data["reason"] == "was modified after it was recorded"


def test_the_deleted_newest_event_is_detected(cli, trail):
    with raw(cli.store) as connection:
        connection.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": trail[-1]["id"]})
    result = cli("history", "verify")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: The audit trail is broken at the end of the trail: the newest events were removed.\n"
    )
    code, data, _err = verify(cli)
    assert code == 1
    assert data["first_bad_id"] is None
    assert data["checked"] == len(trail) - 1
    assert data["reason"] == "the newest events were removed"


def test_every_event_deleted_is_detected(cli, trail):
    with raw(cli.store) as connection:
        connection.execute(text("DELETE FROM audit_event"))
    code, data, _err = verify(cli)
    assert code == 1
    assert data["checked"] == 0


def test_a_forged_event_appended_is_detected(cli, trail):
    """An event added at the end with a valid chain link, but outside pepsctl (head not moved)."""
    row = {c: trail[-1][c] for c in CONTENT_COLUMNS}
    row.update(action="account.delete", target="XYZ000001", prev_hash=trail[-1]["hash"])
    row["hash"] = history.event_hash(row["prev_hash"], row)
    with raw(cli.store) as connection:
        connection.execute(AuditEvent.__table__.insert().values(row))
    code, _data, _err = verify(cli)
    assert code == 1


def test_history_keeps_working_after_verify_failed(cli, trail, admin_a):
    """A broken trail is reported, never repaired silently by later appends."""
    with raw(cli.store) as connection:
        connection.execute(text("UPDATE audit_event SET actor = 'X' WHERE id = :id"), {"id": trail[1]["id"]})
    login(cli, admin_a)
    code, data, _err = verify(cli)
    assert code == 1
    assert data["first_bad_id"] == trail[1]["id"]


# -- listing and filters ---------------------------------------------------------------------------


def test_history_json_keys(cli, trail):
    events = cli.json("history")
    assert events
    for event in events:
        assert list(event) == EVENT_KEYS
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    first = events[0]
    assert first["action"] == "otp.sent"  # the registration's one-time code, sent before it registers
    assert first["at"] == "2026-01-15T09:30:00+00:00"
    assert first["establishment"] == SIRET_A
    assert isinstance(first["after"], dict)


def test_history_csv_header(cli, trail):
    lines = cli.ok("history", "--format", "csv").stdout.splitlines()
    assert lines[0] == ",".join(EVENT_KEYS)


def test_history_empty_result_keeps_the_keys(cli, admin_a):
    assert cli.json("history", "--action", "nothing.like.this") == []
    assert cli.ok("history", "--action", "nothing.like.this", "--format", "csv").stdout.splitlines() == [
        ",".join(EVENT_KEYS)
    ]


def test_history_filter_account(cli, admin_a):
    jean = create_account(cli, "Jean", "Martin")
    login(cli, admin_a)
    events = cli.json("history", "--account", jean)
    assert events
    assert all(jean in (e["target"], e["actor"]) for e in events)
    assert {"account.create", "account.activate"} <= {e["action"] for e in events}
    # Lower case is accepted (identifiers are normalised); a bad identifier is exit 3.
    assert cli.json("history", "--account", jean.lower()) == events
    assert cli("history", "--account", "not-an-id").exit_code == 3


def test_history_filter_action_exact_and_prefix(cli, admin_a):
    create_account(cli, "Jean", "Martin")
    login(cli, admin_a)
    all_events = cli.json("history")
    exact = cli.json("history", "--action", "account.create")
    assert exact and {e["action"] for e in exact} == {"account.create"}
    prefixed = cli.json("history", "--action", "account.*")
    assert {e["action"] for e in prefixed} >= {"account.create", "account.activate"}
    assert all(e["action"].startswith("account.") for e in prefixed)
    assert [e["id"] for e in prefixed] == [e["id"] for e in all_events if e["action"].startswith("account.")]
    auth = cli.json("history", "--action", "auth.*")
    assert {e["action"] for e in auth} == {"auth.login"}
    # '*' matches a prefix, not a pattern anywhere else; '%' and '_' are literal characters.
    assert cli.json("history", "--action", "%") == []
    assert cli.json("history", "--action", "%*") == []
    assert cli.json("history", "--action", "account_*") == []
    assert cli.json("history", "--action", "*") == all_events


def test_history_filter_since(cli, admin_a):
    clock.advance(timedelta(days=2))
    login(cli, admin_a)  # a trusted workstation: no code, so the account creation asks for one
    jean = json.loads(
        with_code(
            cli,
            "accounts",
            "create",
            "--profile",
            "user",
            "--civility",
            "M",
            "--last-name",
            "Martin",
            "--first-name",
            "Jean",
            "--email",
            "jean.martin@example.fr",
            "--format",
            "json",
        ).stdout
    )["identifier"]
    activate(cli, jean, "jean.martin@example.fr")
    login(cli, admin_a)
    later = cli.json("history", "--since", "2026-01-16")
    assert later
    assert all(e["at"] == "2026-01-17T09:30:00+00:00" for e in later)
    everything = cli.json("history")
    assert len(everything) > len(later)
    assert cli.json("history", "--since", "2026-01-17T09:30") == later  # inclusive
    assert cli.json("history", "--since", "2026-01-17T09:31") == []
    assert cli.json("history", "--since", "2026-01-17T10:30+01:00") == later  # an offset is honoured
    bad = cli("history", "--since", "last tuesday")
    assert bad.exit_code == 3
    assert "YYYY-MM-DD" in bad.stderr


def test_history_filter_limit_gives_the_newest_oldest_first(cli, admin_a):
    create_account(cli, "Jean", "Martin")
    login(cli, admin_a)
    everything = cli.json("history")
    newest = cli.json("history", "--limit", "3")
    assert newest == everything[-3:]
    assert (
        cli.json("history", "--limit", "3", "--action", "account.*")
        == [e for e in everything if e["action"].startswith("account.")][-3:]
    )


def test_filters_combine(cli, admin_a):
    jean = create_account(cli, "Jean", "Martin")
    login(cli, admin_a)
    events = cli.json("history", "--account", jean, "--action", "account.activate")
    assert len(events) == 1
    assert events[0]["target"] == jean


def test_history_is_limited_to_the_own_establishment(cli, admin_a):
    register(cli, SIRET_B, last="Bernard", first="Luc", phone="06 11 22 33 44")
    login(cli, admin_a)
    events = cli.json("history")
    assert {e["establishment"] for e in events} == {SIRET_A}
    result = cli("history", "--establishment", SIRET_B)
    assert result.exit_code == 7
    assert result.stdout == ""


def test_a_user_profile_cannot_read_the_history(cli, admin_a):
    jean = create_account(cli, "Jean", "Martin")
    login(cli, jean)
    result = cli("history")
    assert result.exit_code == 7, result.stderr
    assert result.stdout == ""
    result = cli("history", "--account", jean)
    assert result.exit_code == 7
    # The refusal itself is in the trail, and the trail is intact.
    login(cli, admin_a)
    denied = cli.json("history", "--action", "permission.denied")
    assert [(e["actor"], e["after"]) for e in denied] == [
        (jean, {"action": "history.read", "rule": "user-profile"})
    ] * 2
    assert cli("history", "verify").exit_code == 0


def test_history_needs_a_login(cli, admin_a):
    cli.ok("logout")
    result = cli("history")
    assert result.exit_code == 6


def test_phones_are_masked_in_the_history(cli, admin_a):
    create_account(cli, "Jean", "Martin", phone="06 98 76 54 32")
    with raw(cli.store) as connection:
        stored = connection.execute(text("SELECT before, after FROM audit_event")).all()
    dump = json.dumps([list(r) for r in stored], ensure_ascii=False)
    assert "698765432" not in dump and "98 76 54" not in dump
    created = [e for e in cli.json("history", "--action", "account.create") if e["after"]["last_name"] == "Martin"]
    assert created[0]["after"]["phone"] == "+33 6 •• •• •• 32"


# -- the domain functions --------------------------------------------------------------------------


@contextmanager
def domain_env(store_url: str, label: str = "system:test"):
    from sqlmodel import Session

    from pepsctl.domain.env import Env
    from pepsctl.domain.notify import OutboxGateway

    engine = create_store_engine(parse_store_url(store_url))
    try:
        with Session(engine) as session, session.begin():
            yield Env(session=session, gateway=OutboxGateway(), label=label)
    finally:
        engine.dispose()


def _verify(store_url: str) -> history.VerifyResult:
    from sqlmodel import Session

    engine = create_store_engine(parse_store_url(store_url))
    try:
        with Session(engine) as session:
            return history.verify(session)
    finally:
        engine.dispose()


def test_record_many_chains_in_order(store_url):
    with domain_env(store_url) as env:
        count = history.record_many(
            env,
            [history.NewEvent(action=f"test.{i}", target=str(i), after={"phone": "+33612345678"}) for i in range(5)],
        )
        assert history.record_many(env, []) == 0
    assert count == 5
    stored = rows(store_url)
    assert [r["action"] for r in stored] == [f"test.{i}" for i in range(5)]
    assert all(r["actor"] == "system:test" for r in stored)
    assert all("+33612345678" not in (r["after"] or "") for r in stored)
    assert _verify(store_url).ok


def test_a_rolled_back_transaction_leaves_no_event_and_an_intact_chain(store_url):
    def record_then_fail() -> None:
        with domain_env(store_url) as env:
            history.record(env, "test.kept.out")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        record_then_fail()
    assert rows(store_url) == []
    with domain_env(store_url) as env:
        history.record(env, "test.kept")
    result = _verify(store_url)
    assert result.ok and result.checked == 1


def test_event_hash_depends_on_every_field_and_the_previous_hash():
    base = {
        "at": FROZEN_AT,
        "actor": "MDU000001",
        "establishment": SIRET_A,
        "delegation_id": None,
        "action": "account.create",
        "target": "JMA000002",
        "batch_id": None,
        "before": None,
        "after": '{"profile":"user"}',
    }
    reference = history.event_hash(history.GENESIS, base)
    assert reference == history.event_hash(history.GENESIS, dict(base))
    assert history.event_hash("1" * 64, base) != reference
    for key, other in [
        ("at", FROZEN_AT + timedelta(microseconds=1)),
        ("actor", "X"),
        ("establishment", SIRET_B),
        ("delegation_id", 1),
        ("action", "account.delete"),
        ("target", "JMA000003"),
        ("batch_id", 1),
        ("before", "{}"),
        ("after", '{"profile":"admin"}'),
    ]:
        assert history.event_hash(history.GENESIS, {**base, key: other}) != reference, key
    # The time zone of an equal instant does not matter (SQLite reads back naive UTC).
    naive = {**base, "at": FROZEN_AT.replace(tzinfo=None)}
    assert history.event_hash(history.GENESIS, naive) == reference


def _append_worker(url: str, barrier, worker: int, count: int) -> None:
    from sqlmodel import Session

    from pepsctl.domain.env import Env
    from pepsctl.domain.notify import OutboxGateway

    engine = create_store_engine(parse_store_url(url))
    barrier.wait(timeout=60)
    for i in range(count):
        with Session(engine) as session, session.begin():
            env = Env(session=session, gateway=OutboxGateway(), label=f"worker{worker}")
            history.record(env, "test.concurrent", target=f"{worker}-{i}")
    engine.dispose()


def test_concurrent_appends_from_processes_keep_one_chain(store_url):
    """Real processes appending at once (a barrier starts them together): one chain, nothing lost."""
    workers, count = 3, 15
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers)
    processes = [context.Process(target=_append_worker, args=(store_url, barrier, w, count)) for w in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0] * workers
    stored = rows(store_url)
    assert len(stored) == workers * count
    assert len({r["prev_hash"] for r in stored}) == len(stored)  # no fork: each hash is followed once
    result = _verify(store_url)
    assert result.ok, result
    assert result.checked == workers * count
