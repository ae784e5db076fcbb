"""Two phones imports at once, with real processes, on SQLite and PostgreSQL (security.md "Bulk and concurrency").

Each child is a fresh interpreter (``spawn``) that runs the real CLI in-process (``CliRunner``)
against the same store URL, as its own administrator: its session token is passed in and put in
an in-memory keyring of its own, its clock frozen explicitly. The children wait at a barrier, then
both run ``pepsctl phones import FILE --yes``. Both must complete (one waits: SQLite's busy
timeout and ``BEGIN IMMEDIATE``, PostgreSQL's ``SELECT … FOR UPDATE`` on the establishment), each
batch applied whole.

On PostgreSQL a second variant holds both transactions at the barrier *inside* the transaction,
after each has resolved its session and right before the import locks the establishment: only the
lock then keeps the second import from planning against the accounts the first is changing.
"""

from __future__ import annotations

import multiprocessing
from datetime import datetime
from pathlib import Path

import pytest

from pepsctl import clock
from tests.commands.test_phones import add_accounts, phones, write_csv
from tests.conftest import Cli, create_account, login

TIMEOUT = 40  # seconds; a healthy race takes about two
ADMIN_A = "MDU000001"
SECOND = "PMA000002"  # Paul Martin, a second administrator of A


# -- the child process -------------------------------------------------------------------------------


def _child(
    url: str,
    frozen_at: datetime,
    keyring_entry: tuple[str, str, str],
    file: str,
    barrier,
    results,
    name: str,
    barrier_inside: bool,
) -> None:
    """Run ``pepsctl phones import FILE --yes`` as the owner of the session; report (name, exit code, stderr)."""
    try:
        import keyring
        from typer.testing import CliRunner

        from pepsctl import clock
        from pepsctl.cli import app
        from pepsctl.domain import phones  # noqa: F401 - imported before the barrier: both start together
        from pepsctl.store import queries
        from tests.conftest import MemoryKeyring

        clock.freeze(frozen_at)  # the parent's frozen clock is not inherited
        backend = MemoryKeyring()
        service, key, token = keyring_entry
        backend.items[(service, key)] = token
        keyring.set_keyring(backend)
        if barrier_inside:
            lock = queries.lock_establishment

            def lock_after_barrier(session, establishment_id):
                barrier.wait(TIMEOUT)  # both transactions are open and have read the session; now both lock
                lock(session, establishment_id)

            queries.lock_establishment = lock_after_barrier
        else:
            barrier.wait(TIMEOUT)  # right before the command starts
        result = CliRunner().invoke(app, ["--store", url, "phones", "import", file, "--yes", "--quiet"])
        results.put((name, result.exit_code, result.stderr))
    except BaseException as error:  # reported to the parent, which fails the test
        results.put((name, -1, f"{type(error).__name__}: {error}"))


def race(url: str, jobs: dict[str, tuple[tuple[str, str, str], Path]], *, barrier_inside: bool = False) -> dict:
    """One process per job (name → (keyring entry, file)), started at once; {name: (exit code, stderr)}."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(jobs))
    results = context.Queue()
    processes = [
        context.Process(
            target=_child,
            args=(url, clock.now(), entry, str(file), barrier, results, name, barrier_inside),
            name=f"pepsctl-import-{name}",
        )
        for name, (entry, file) in jobs.items()
    ]
    for process in processes:
        process.start()
    try:
        outcomes = {}
        for _ in processes:
            name, code, stderr = results.get(timeout=TIMEOUT * 2)
            outcomes[name] = (code, stderr)
    finally:
        for process in processes:
            process.join(TIMEOUT)
            if process.is_alive():  # pragma: no cover - only when a child hangs
                process.kill()
                process.join()
    assert [p.exitcode for p in processes] == [0] * len(processes)
    return outcomes


def _hanging_child(url: str, frozen_at: datetime, keyring_entry: tuple[str, str, str], file: str, results) -> None:
    """Run the import, and hang once the phones UPDATE has run inside the transaction (the parent kills it)."""
    import time

    import keyring
    from typer.testing import CliRunner

    from pepsctl import clock
    from pepsctl.cli import app
    from pepsctl.store import queries
    from tests.conftest import MemoryKeyring

    clock.freeze(frozen_at)
    backend = MemoryKeyring()
    service, key, token = keyring_entry
    backend.items[(service, key)] = token
    keyring.set_keyring(backend)
    insert = queries.insert_rows

    def hang(session, model, columns, rows):
        if model.__tablename__ == "batch_change":
            results.put("phones updated, batch not yet recorded")
            time.sleep(TIMEOUT * 3)
        return insert(session, model, columns, rows)

    queries.insert_rows = hang
    CliRunner().invoke(app, ["--store", url, "phones", "import", file, "--yes", "--quiet"])
    results.put("finished")  # pragma: no cover - only when the parent did not kill it


# -- the parent --------------------------------------------------------------------------------------


def session_entry(keyring) -> tuple[str, str, str]:
    """The one session token in the test keyring, as (service, key, token)."""
    entries = [(s, k, v) for (s, k), v in keyring.items.items() if s == "pepsctl" and k.startswith("session:")]
    assert len(entries) == 1, entries
    return entries[0]


@pytest.fixture
def two_sessions(cli: Cli, admin_a, isolate) -> dict[str, tuple[str, str, str]]:
    """Two administrators of A, each with a live stepped-up session (a code verified at login)."""
    first = session_entry(isolate)
    assert create_account(cli, "Paul", "Martin", profile="admin") == SECOND
    login(cli, SECOND)  # a first login on this workstation: a code, so a stepped-up session
    second = session_entry(isolate)
    assert first[2] != second[2]
    return {ADMIN_A: first, SECOND: second}


@pytest.fixture
def agents(cli: Cli, two_sessions) -> list[str]:
    return add_accounts(cli.store, 40)


def numbers(prefix: str, people: list[str]) -> dict[str, str]:
    return {p: f"+33{prefix}{i:06d}" for i, p in enumerate(people)}


def phone_file(tmp_path: Path, name: str, wanted: dict[str, str]) -> Path:
    return write_csv(tmp_path, [["identifier", "phone"], *[[p, "0" + n[3:]] for p, n in wanted.items()]], name)


def batches(url: str) -> list[tuple]:
    from tests.commands.test_phones import query

    return query(url, "SELECT id, kind, file_name, rows_total, rows_changed, rows_rejected FROM batch ORDER BY id")


def check_both_complete(outcomes: dict) -> None:
    assert {name: code for name, (code, _stderr) in outcomes.items()} == {ADMIN_A: 0, SECOND: 0}, outcomes
    for _code, stderr in outcomes.values():
        assert "40 rows: 40 to change, 0 unchanged, 0 rejected. Applied as batch" in stderr or (
            "20 rows: 20 to change, 0 unchanged, 0 rejected. Applied as batch" in stderr
        ), stderr


def check_history(cli: Cli) -> None:
    login(cli, ADMIN_A)
    assert cli("history", "verify").exit_code == 0  # both appended to the chain at once: still intact


def disjoint(cli: Cli, two_sessions, agents, tmp_path, *, barrier_inside: bool = False) -> None:
    one, two = numbers("783", agents[:20]), numbers("784", agents[20:])
    files = {ADMIN_A: phone_file(tmp_path, "one.csv", one), SECOND: phone_file(tmp_path, "two.csv", two)}

    outcomes = race(cli.store, {n: (two_sessions[n], f) for n, f in files.items()}, barrier_inside=barrier_inside)

    check_both_complete(outcomes)
    stored = phones(cli.store)
    assert {p: stored[p] for p in agents} == {p: (n, "mobile") for p, n in {**one, **two}.items()}
    assert sorted((Path(f).name, total, changed) for _i, _k, f, total, changed, _r in batches(cli.store)) == [
        ("one.csv", 20, 20),
        ("two.csv", 20, 20),
    ]
    check_history(cli)


def overlapping(cli: Cli, two_sessions, agents, tmp_path, *, barrier_inside: bool = False) -> None:
    one, two = numbers("783", agents), numbers("784", agents)
    files = {ADMIN_A: phone_file(tmp_path, "one.csv", one), SECOND: phone_file(tmp_path, "two.csv", two)}
    before = phones(cli.store)

    outcomes = race(cli.store, {n: (two_sessions[n], f) for n, f in files.items()}, barrier_inside=barrier_inside)

    check_both_complete(outcomes)
    recorded = batches(cli.store)
    # Each batch applied whole: the second found every row changed by the first, and changed it again.
    assert [(kind, total, changed, rejected) for _i, kind, _f, total, changed, rejected in recorded] == [
        ("phones", 40, 40, 0),
        ("phones", 40, 40, 0),
    ]
    last = Path(recorded[-1][2]).name
    final = {p: phones(cli.store)[p][0] for p in agents}
    assert final == (one if last == "one.csv" else two)  # entirely the file applied last, never a mix
    from tests.commands.test_phones import query

    first_changes = query(
        cli.store, 'SELECT identifier, "before" FROM batch_change WHERE batch_id = :b', b=recorded[0][0]
    )
    assert all(f'"phone":"{before[i][0]}"' in b for i, b in first_changes)  # the first saw the original numbers
    first_file = one if Path(recorded[0][2]).name == "one.csv" else two
    second_changes = query(
        cli.store, 'SELECT identifier, "before" FROM batch_change WHERE batch_id = :b', b=recorded[1][0]
    )
    assert all(f'"phone":"{first_file[i]}"' in b for i, b in second_changes)  # the second saw the first's numbers
    check_history(cli)


def test_two_imports_of_disjoint_files_both_complete(cli, two_sessions, agents, tmp_path):
    disjoint(cli, two_sessions, agents, tmp_path)


def test_two_imports_of_overlapping_files_are_each_applied_whole(cli, two_sessions, agents, tmp_path):
    overlapping(cli, two_sessions, agents, tmp_path)


@pytest.mark.postgres
class TestInsideTheTransaction:
    """PostgreSQL only: both transactions wait at the barrier inside the transaction, right before the lock.

    (SQLite cannot run this: BEGIN IMMEDIATE lets only one transaction in at a time, so the second
    would wait for the first, which waits at the barrier.)
    """

    @pytest.fixture
    def store_url(self, pg_database, monkeypatch) -> str:
        from pepsctl import config
        from tests.conftest import _empty_pg

        _empty_pg(pg_database.url)
        monkeypatch.setenv(config.ENV_OUTBOX, "1")
        return pg_database.url

    def test_disjoint_files(self, cli, two_sessions, agents, tmp_path):
        disjoint(cli, two_sessions, agents, tmp_path, barrier_inside=True)

    def test_overlapping_files(self, cli, two_sessions, agents, tmp_path):
        overlapping(cli, two_sessions, agents, tmp_path, barrier_inside=True)


def test_killing_an_import_midway_leaves_the_store_as_it_was(cli, two_sessions, agents, tmp_path):
    from tests.commands.test_phones import store_state

    path = phone_file(tmp_path, "one.csv", numbers("783", agents))
    before = store_state(cli.store)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(
        target=_hanging_child, args=(cli.store, clock.now(), two_sessions[ADMIN_A], str(path), results)
    )
    process.start()
    try:
        assert results.get(timeout=TIMEOUT) == "phones updated, batch not yet recorded"
    finally:
        process.kill()  # SIGKILL: no rollback, no cleanup in the process
        process.join(TIMEOUT)

    after = store_state(cli.store)
    assert after["account"] == before["account"]
    assert {k: after[k] for k in ("batch", "batch_change", "audit_event", "outbox_message")} == {
        k: before[k] for k in ("batch", "batch_change", "audit_event", "outbox_message")
    }
    # The store is usable at once (the lock went with the process): the same file then applies whole.
    result = cli("phones", "import", str(path), "--yes", "--quiet")  # as SECOND, logged in last
    assert result.exit_code == 0, result.stderr
    assert {p: phones(cli.store)[p][0] for p in agents} == numbers("783", agents)
