"""Real processes racing and crashing against one store, on SQLite and PostgreSQL (security.md).

What tests/store/test_concurrency.py, test_bulk_concurrency.py and test_otp_concurrency.py do not
already cover:

- two ``rights import`` at once, of disjoint and of overlapping files ("Bulk and concurrency");
- delegations ("Authorization"): two requests for one pair, two acceptances, an acceptance and a
  revocation, a grant (``delegations grant``, ``rights import``, ``rights copy``) and a revocation,
  all at the same moment;
- ``kill -9`` of a real ``pepsctl`` process in the middle of the transaction of a large
  ``phones import``, ``batches undo`` and ``rights import``: the store is as it was, and usable.

Races. Two worker processes, spawned once for the module (fresh interpreters: ``spawn``), run the
two sides of every race: the real CLI in-process (``CliRunner``), as the owner of a session token
(an in-memory keyring of their own), their clock frozen explicitly, the test's environment set
again for each command. In the *plain* variant both wait at a ``multiprocessing.Barrier`` right
before the command. In the *interleaved* variant (PostgreSQL only: SQLite's ``BEGIN IMMEDIATE`` lets one
transaction in at a time) one child stops inside its transaction, after it has read what it
decides on and right before its first write; the other child starts only then; the stopped one is
let go once every other child has finished or is waiting on a lock in the server
(``pg_stat_activity``). A barrier cannot do this: with a correct lock the second child never
reaches the meeting point while the first holds the lock. The interleaving is therefore the worst
one for a missing lock, and the test still completes when the lock is there.

Crashes. The command runs as a subprocess (``python -c`` freezing the clock and giving the session
token, then ``pepsctl.cli.main``). SQLite: once the -wal file has grown (the transaction spills its
pages before it commits) the process is stopped, the write lock checked as still held, then
SIGKILLed. PostgreSQL: the test holds the history's advisory lock, so the command, having written
its rows, waits on it (seen in ``pg_stat_activity`` with a transaction id); then SIGKILL.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer.main
import typer.testing

from pepsctl import clock
from tests.commands.test_phones import add_accounts, query, store_state, write_csv
from tests.conftest import SIRET_A, SIRET_B, Cli, create_account, login, register

TIMEOUT = 60  # seconds; a healthy race takes two or three
ROOT = Path(__file__).resolve().parents[2]
PG_ONLY = pytest.mark.parametrize("store_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)

# Establishment A's administrators (the rights imports).
ADMIN_A = "MDU000001"  # Marie Durand
SECOND_A = "PMA000002"  # Paul Martin

# The delegation world: B (a centre de gestion) asks A.
D_ADMIN_A = "MDU000001"  # Marie Durand, administrator of A
D_ADMIN_B = "PMA000002"  # Paul Martin, administrator of B
D_USER_B = "KBE000003"  # Karim Benali, a user of B
SECONDS = {SIRET_A: ("Claire", "Moreau", "06 10 20 30 46"), SIRET_B: ("Hugo", "Roux", "06 10 20 30 45")}
SCOPE = "cir,estimation"

# Statements that write a delegation or a right: where an interleaved child stops.
WRITES_DELEGATION = r'\s*(INSERT INTO|UPDATE|DELETE FROM) "?(delegation|account_right)"?[\s(]'


# Typer rebuilds the Click command from the signatures on every CliRunner.invoke (about 0.1 s, most
# of a test command's cost); it is the same command every time, so build it once.
_command = functools.cache(typer.main.get_command)


@pytest.fixture(autouse=True)
def _one_command(monkeypatch) -> None:
    monkeypatch.setattr(typer.testing, "_get_command", _command)


# -- the racing children --------------------------------------------------------------------------------


def _worker(inbox, events, barrier, start, go) -> None:
    """One spawned process for the whole module: it runs the jobs it is sent, one at a time.

    Spawning a fresh interpreter per race costs seconds of imports; the workers are spawned once
    and each job starts from a clean state (environment, keyring, clock, hooks) all the same.
    """
    import pepsctl.cli  # noqa: F401 - the imports, once
    from pepsctl.domain import delegations, phones, rights, rights_bulk  # noqa: F401

    typer.testing._get_command = _command
    while (task := inbox.get()) is not None:
        _job(*task, events=events, barrier=barrier, start=start, go=go)


def _job(ident, environ, url, frozen_at, entry, args, name, interleaved, pause, *, events, barrier, start, go) -> None:
    """Run ``pepsctl --store URL ARGS…`` as the session's owner; report (ident, "done", name, code, stdout, stderr).

    Plain: wait at the barrier, then run. Interleaved: wait for ``start``; ``pause`` is None, ("sql",
    regex) to stop before the first statement matching it, or ("call", module, attribute) to stop
    before the first call of that function: report (ident, "arrived", name) and wait for ``go``. On
    PostgreSQL every server process used is reported as (ident, "pid", name, pid), so that the
    parent sees it waiting on a lock. ``ident`` tells this race's messages from a failed one's.
    """
    import importlib
    import re

    import keyring
    from sqlalchemy import Engine, event
    from typer.testing import CliRunner

    from pepsctl import clock
    from pepsctl.cli import app
    from tests.conftest import MemoryKeyring

    pids: set[int] = set()
    stopped: list[bool] = []
    restore = None

    def stop_here() -> None:
        if not stopped:
            stopped.append(True)
            events.put((ident, "arrived", name))
            if not go.wait(TIMEOUT):
                raise TimeoutError(f"{name} was never let go")

    def watch(conn, _cursor, statement, _parameters, _context, _executemany):
        if conn.dialect.name == "postgresql":
            pid = conn.connection.dbapi_connection.info.backend_pid
            if pid not in pids:
                pids.add(pid)
                events.put((ident, "pid", name, pid))
        if pause and pause[0] == "sql" and re.match(pause[1], statement, re.IGNORECASE):
            stop_here()

    try:
        for key in [k for k in os.environ if k.startswith("PEPSCTL_")]:
            del os.environ[key]
        os.environ.update(environ)  # this test's directories and settings
        clock.freeze(frozen_at)  # the parent's frozen clock is not inherited
        backend = MemoryKeyring()
        service, key, token = entry
        backend.items[(service, key)] = token
        keyring.set_keyring(backend)
        event.listen(Engine, "before_cursor_execute", watch)
        if pause and pause[0] == "call":
            module = importlib.import_module(pause[1])
            original = getattr(module, pause[2])

            def held(*args_, **kwargs):
                stop_here()
                return original(*args_, **kwargs)

            setattr(module, pause[2], held)
            restore = (module, pause[2], original)
        if interleaved:
            assert start.wait(TIMEOUT), f"{name} was never started"
        else:
            barrier.wait(TIMEOUT)  # right before the command starts
        result = CliRunner().invoke(app, ["--store", url, *args])
        stderr = result.stderr
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            stderr += f"\n{type(result.exception).__name__}: {result.exception}"
        events.put((ident, "done", name, result.exit_code, result.stdout, stderr))
    except BaseException as error:  # reported to the parent, which fails the test
        events.put((ident, "done", name, -1, "", f"{type(error).__name__}: {error}"))
    finally:
        event.remove(Engine, "before_cursor_execute", watch)
        if restore is not None:
            setattr(*restore)
        clock.unfreeze()


class Workers:
    """Two spawned processes, each running one side of every race."""

    size = 2

    def __init__(self) -> None:
        self.races = 0
        context = multiprocessing.get_context("spawn")
        self.events = context.Queue()
        self.barrier = context.Barrier(self.size)
        self.starts = [context.Event() for _ in range(self.size)]
        self.gos = [context.Event() for _ in range(self.size)]
        self.inboxes = [context.Queue() for _ in range(self.size)]
        self.processes = [
            context.Process(
                target=_worker,
                args=(self.inboxes[i], self.events, self.barrier, self.starts[i], self.gos[i]),
                name=f"pepsctl-race-{i}",
                daemon=True,
            )
            for i in range(self.size)
        ]
        for process in self.processes:
            process.start()

    def close(self) -> None:
        for inbox in self.inboxes:
            inbox.put(None)
        for process in self.processes:
            process.join(TIMEOUT)
            if process.is_alive():  # pragma: no cover - only when a worker hangs
                process.kill()
                process.join()


@pytest.fixture(scope="module")
def workers():
    pool = Workers()
    yield pool
    pool.close()


@dataclass
class Job:
    entry: tuple[str, str, str]  # the session: (keyring service, key, token)
    args: list[str]
    pause: tuple | None = None  # interleaved: where it stops inside its transaction
    after: str | None = None  # interleaved: start once this job has stopped


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


class _Monitor:
    """Which of the children's server processes wait on a lock (PostgreSQL)."""

    def __init__(self, url: str | None) -> None:
        self.pids: dict[str, set[int]] = {}
        self.conn = None
        if url is not None:
            import psycopg

            self.conn = psycopg.connect(url, autocommit=True)

    def waiting(self, name: str) -> bool:
        pids = list(self.pids.get(name, ()))
        if self.conn is None or not pids:
            return False
        row = self.conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s) AND wait_event_type = 'Lock'", (pids,)
        ).fetchone()
        return bool(row and row[0])

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def _messages(events) -> list[tuple]:
    """The messages waiting (at least one, or none after 20 ms)."""
    try:
        found = [events.get(timeout=0.02)]
    except queue.Empty:
        return []
    while True:
        try:
            found.append(events.get_nowait())
        except queue.Empty:
            return found


def race(workers: Workers, url: str, jobs: dict[str, Job], *, interleaved: bool = False) -> dict[str, Outcome]:
    """Run the two jobs in the two workers, at the same moment (or interleaved); {name: outcome}."""
    assert len(jobs) == workers.size
    workers.races += 1
    ident = workers.races
    names = list(jobs)
    environ = {k: v for k, v in os.environ.items() if k.startswith("PEPSCTL_")}
    workers.barrier.reset()
    for event in (*workers.starts, *workers.gos):
        event.clear()
    starts = dict(zip(names, workers.starts, strict=True))
    gos = dict(zip(names, workers.gos, strict=True))
    monitor = _Monitor(url if interleaved and url.startswith("postgresql") else None)
    arrived: set[str] = set()
    done: dict[str, Outcome] = {}
    for inbox, (name, job) in zip(workers.inboxes, jobs.items(), strict=True):
        pause = job.pause if interleaved else None
        inbox.put((ident, environ, url, clock.now(), job.entry, job.args, name, interleaved, pause))
        if not job.after:
            starts[name].set()
    deadline = time.monotonic() + TIMEOUT * 2
    try:
        while len(done) < len(jobs):
            assert time.monotonic() < deadline, f"the race did not finish: arrived {arrived}, done {done}"
            for message in _messages(workers.events):
                if message[0] != ident:
                    continue  # left over from a race that failed
                if message[1] == "pid":
                    monitor.pids.setdefault(message[2], set()).add(message[3])
                elif message[1] == "arrived":
                    arrived.add(message[2])
                else:
                    done[message[2]] = Outcome(*message[3:])
            if not interleaved:
                continue
            for name, job in jobs.items():
                if job.after and not starts[name].is_set() and (job.after in arrived or job.after in done):
                    starts[name].set()
            held = {name for name in arrived if not gos[name].is_set()}
            others = [name for name in jobs if name not in held and name not in done]
            if held and all(starts[name].is_set() and monitor.waiting(name) for name in others):
                for name in held:
                    gos[name].set()
    finally:
        monitor.close()
        if len(done) < len(jobs):  # let the workers go, for the next test
            workers.barrier.abort()
            for event in (*workers.starts, *workers.gos):
                event.set()
    assert all(o.code >= 0 for o in done.values()), done
    if interleaved:
        first = next(name for name, job in jobs.items() if job.pause)
        assert first in arrived, f"{first} never reached its stopping point: {done}"
    return done


# -- sessions -----------------------------------------------------------------------------------------


def session_entry(keyring) -> tuple[str, str, str]:
    """The one session token in the test keyring, as (service, key, token)."""
    entries = [(s, k, v) for (s, k), v in keyring.items.items() if s == "pepsctl" and k.startswith("session:")]
    assert len(entries) == 1, entries
    return entries[0]


def act_as(keyring, entry: tuple[str, str, str]) -> None:
    """Make the in-process CLI run as this session's owner."""
    service, key, token = entry
    keyring.items[(service, key)] = token


def login_entry(cli: Cli, keyring, identifier: str) -> tuple[str, str, str]:
    """A first login on this workstation (with a code: a stepped-up session); its keyring entry."""
    login(cli, identifier)
    return session_entry(keyring)


def history_ok(cli: Cli) -> None:
    result = cli("history", "verify")
    assert result.exit_code == 0, (result.stdout, result.stderr)


def actions(url: str, target: str) -> list[str]:
    return [a for (a,) in query(url, "SELECT action FROM audit_event WHERE target = :t ORDER BY id", t=target)]


# -- two rights imports at once -----------------------------------------------------------------------


@pytest.fixture
def importers(cli: Cli, admin_a, isolate) -> dict[str, tuple[str, str, str]]:
    """Two administrators of A, each with a live stepped-up session."""
    first = session_entry(isolate)
    assert create_account(cli, "Paul", "Martin", profile="admin") == SECOND_A
    second = login_entry(cli, isolate, SECOND_A)
    assert first[2] != second[2]
    return {ADMIN_A: first, SECOND_A: second}


@pytest.fixture
def agents(cli: Cli, importers) -> list[str]:
    return add_accounts(cli.store, 40)


def rights_file(tmp_path: Path, name: str, wanted: dict[tuple[str, str], str]) -> Path:
    rows = [["identifier", "service", "level"], *[[i, s, lv] for (i, s), lv in wanted.items()]]
    return write_csv(tmp_path, rows, name)


def rights_of(url: str, people: list[str]) -> dict[tuple[str, str], str]:
    rows = query(
        url,
        "SELECT a.identifier, r.service_code, r.level FROM account_right r JOIN account a ON a.id = r.account_id",
    )
    return {(i, s): lv for i, s, lv in rows if i in people}


def rights_batches(url: str) -> list[tuple]:
    return query(url, "SELECT id, file_name, rows_total, rows_changed, rows_rejected FROM batch ORDER BY id")


def levels_before(url: str, batch_id: int) -> dict[tuple[str, str], str | None]:
    rows = query(url, 'SELECT identifier, "before" FROM batch_change WHERE batch_id = :b', b=batch_id)
    return {(i, json.loads(b)["service"]): json.loads(b)["level"] for i, b in rows}


def import_jobs(importers, files: dict[str, Path], interleaved: bool) -> dict[str, Job]:
    # Interleaved: both stop right before the import locks the establishment, their sessions read.
    pause = ("call", "pepsctl.store.queries", "lock_establishment")
    return {
        name: Job(importers[name], ["rights", "import", str(path), "--yes", "--quiet"], pause=pause)
        for name, path in files.items()
    }


def check_applied(outcomes: dict[str, Outcome], rows: int) -> None:
    assert {n: o.code for n, o in outcomes.items()} == {ADMIN_A: 0, SECOND_A: 0}, outcomes
    for outcome in outcomes.values():
        assert f"{rows} rows: {rows} to change, 0 unchanged, 0 rejected. Applied as batch" in outcome.stderr


def disjoint_rights(workers, cli: Cli, importers, agents, tmp_path, interleaved: bool) -> None:
    one = {(a, s): lv for a in agents[:20] for s, lv in (("cir", "read"), ("estimation", "write"))}
    two = {(a, s): lv for a in agents[20:] for s, lv in (("cir", "write"), ("simulation", "read"))}
    files = {ADMIN_A: rights_file(tmp_path, "one.csv", one), SECOND_A: rights_file(tmp_path, "two.csv", two)}

    outcomes = race(workers, cli.store, import_jobs(importers, files, interleaved), interleaved=interleaved)

    check_applied(outcomes, 40)
    assert rights_of(cli.store, agents) == {**one, **two}
    recorded = sorted(
        (Path(f).name, total, changed, rejected) for _i, f, total, changed, rejected in rights_batches(cli.store)
    )
    assert recorded == [("one.csv", 40, 40, 0), ("two.csv", 40, 40, 0)]
    history_ok(cli)


def overlapping_rights(workers, cli: Cli, importers, agents, tmp_path, interleaved: bool) -> None:
    one = {(a, s): lv for a in agents for s, lv in (("cir", "read"), ("estimation", "write"))}
    two = {(a, s): lv for a in agents for s, lv in (("cir", "write"), ("estimation", "read"))}
    files = {ADMIN_A: rights_file(tmp_path, "one.csv", one), SECOND_A: rights_file(tmp_path, "two.csv", two)}

    outcomes = race(workers, cli.store, import_jobs(importers, files, interleaved), interleaved=interleaved)

    check_applied(outcomes, 80)
    recorded = rights_batches(cli.store)
    assert [(total, changed, rejected) for _i, _f, total, changed, rejected in recorded] == [(80, 80, 0)] * 2
    applied = [one if Path(f).name == "one.csv" else two for _i, f, *_counts in recorded]
    # Entirely the file applied last, never a mix; the first saw no rights, the second the first's.
    assert rights_of(cli.store, agents) == applied[1]
    assert levels_before(cli.store, recorded[0][0]) == dict.fromkeys(applied[0])
    assert levels_before(cli.store, recorded[1][0]) == applied[0]
    history_ok(cli)


def test_two_rights_imports_of_disjoint_files_both_complete(workers, cli, importers, agents, tmp_path):
    disjoint_rights(workers, cli, importers, agents, tmp_path, interleaved=False)


def test_two_rights_imports_of_overlapping_files_are_each_applied_whole(workers, cli, importers, agents, tmp_path):
    overlapping_rights(workers, cli, importers, agents, tmp_path, interleaved=False)


@PG_ONLY
def test_two_rights_imports_of_disjoint_files_inside_their_transactions(workers, cli, importers, agents, tmp_path):
    disjoint_rights(workers, cli, importers, agents, tmp_path, interleaved=True)


@PG_ONLY
def test_two_rights_imports_of_overlapping_files_inside_their_transactions(workers, cli, importers, agents, tmp_path):
    overlapping_rights(workers, cli, importers, agents, tmp_path, interleaved=True)


# -- delegations --------------------------------------------------------------------------------------


@dataclass
class World:
    cli: Cli
    keyring: object
    sessions: dict[str, tuple[str, str, str]]

    def act_as(self, identifier: str) -> None:
        act_as(self.keyring, self.sessions[identifier])

    def request(self) -> int:
        """B asks A for a delegation on SCOPE; its id (pending)."""
        self.act_as(D_ADMIN_B)
        return self.cli.json("delegations", "request", SIRET_A, "--services", SCOPE)["id"]

    def accepted(self) -> int:
        delegation_id = self.request()
        self.act_as(D_ADMIN_A)
        assert self.cli.json("delegations", "accept", str(delegation_id), "--yes")["status"] == "accepted"
        return delegation_id

    def job(self, identifier: str, *args: str, pause: tuple | None = None, after: str | None = None) -> Job:
        return Job(self.sessions[identifier], list(args), pause=pause, after=after)

    def second(self, siret: str, profile: str = "admin") -> str:
        """Another account of A or B, created by its administrator; an administrator is logged in."""
        self.act_as(D_ADMIN_A if siret == SIRET_A else D_ADMIN_B)
        first, last, phone = SECONDS[siret]
        identifier = create_account(self.cli, first, last, profile=profile, phone=phone)
        if profile == "admin":
            self.sessions[identifier] = login_entry(self.cli, self.keyring, identifier)
        return identifier


@pytest.fixture
def world(cli: Cli, isolate) -> World:
    """A and B registered, their administrators with a stepped-up session each; a user of B."""
    assert register(cli, SIRET_A, last="Durand", first="Marie", phone="06 10 20 30 41") == D_ADMIN_A
    assert register(cli, SIRET_B, last="Martin", first="Paul", phone="06 10 20 30 42") == D_ADMIN_B
    sessions = {D_ADMIN_B: login_entry(cli, isolate, D_ADMIN_B)}
    assert create_account(cli, "Karim", "Benali", phone="06 10 20 30 44") == D_USER_B
    sessions[D_ADMIN_A] = login_entry(cli, isolate, D_ADMIN_A)
    return World(cli, isolate, sessions)


def delegations_of_the_pair(url: str) -> list[dict]:
    rows = query(
        url,
        "SELECT d.id, d.status, d.decided_by, d.revoked_by FROM delegation d "
        "JOIN establishment c ON c.id = d.centralizer_id JOIN establishment e ON e.id = d.establishment_id "
        "WHERE c.siret = :b AND e.siret = :a ORDER BY d.id",
        b=SIRET_B,
        a=SIRET_A,
    )
    return [dict(zip(("id", "status", "decided_by", "revoked_by"), row, strict=True)) for row in rows]


def delegated_rights(url: str) -> list[tuple]:
    return query(
        url, "SELECT account_id, service_code, level, delegation_id FROM account_right WHERE delegation_id IS NOT NULL"
    )


def check_consistent(world: World, delegation_id: int) -> None:
    """Never an accepted delegation carrying a revocation, never a revoked one with rights left."""
    url = world.cli.store
    (stored,) = [d for d in delegations_of_the_pair(url) if d["id"] == delegation_id]
    if stored["status"] == "revoked":
        assert delegated_rights(url) == []
    else:
        assert stored["revoked_by"] is None, stored
    live = [d for d in delegations_of_the_pair(url) if d["status"] in ("pending", "accepted")]
    assert len(live) <= 1, live
    world.act_as(D_ADMIN_A)
    history_ok(world.cli)


def test_two_requests_for_one_pair_at_once_make_one_delegation(workers, world, store_url):
    args = ("delegations", "request", SIRET_A, "--services", SCOPE, "--format", "json")
    second = world.second(SIRET_B)
    jobs = {D_ADMIN_B: world.job(D_ADMIN_B, *args), second: world.job(second, *args)}
    two_requests(workers, world, jobs)


@PG_ONLY
def test_two_requests_for_one_pair_interleaved_make_one_delegation(workers, world, store_url):
    args = ("delegations", "request", SIRET_A, "--services", SCOPE, "--format", "json")
    second = world.second(SIRET_B)
    jobs = {
        D_ADMIN_B: world.job(D_ADMIN_B, *args, pause=("sql", WRITES_DELEGATION)),
        second: world.job(second, *args, after=D_ADMIN_B),
    }
    two_requests(workers, world, jobs, interleaved=True)


def two_requests(workers, world: World, jobs: dict[str, Job], *, interleaved: bool = False) -> None:
    outcomes = race(workers, world.cli.store, jobs, interleaved=interleaved)

    assert sorted(o.code for o in outcomes.values()) == [0, 5], outcomes
    (made,) = [o.json()["id"] for o in outcomes.values() if o.code == 0]
    (refusal,) = [o.stderr for o in outcomes.values() if o.code == 5]
    assert f"Delegation {made} from {SIRET_A} is already pending." in refusal
    assert [(d["id"], d["status"]) for d in delegations_of_the_pair(world.cli.store)] == [(made, "pending")]
    check_consistent(world, made)


def two_acceptances(workers, world: World, *, interleaved: bool = False) -> None:
    second = world.second(SIRET_A)
    delegation_id = world.request()
    args = ("delegations", "accept", str(delegation_id), "--yes")
    jobs = {
        D_ADMIN_A: world.job(D_ADMIN_A, *args, pause=("sql", WRITES_DELEGATION)),
        second: world.job(second, *args, after=D_ADMIN_A),
    }

    outcomes = race(workers, world.cli.store, jobs, interleaved=interleaved)

    assert sorted(o.code for o in outcomes.values()) == [0, 5], outcomes
    (winner,) = [name for name, o in outcomes.items() if o.code == 0]
    (refusal,) = [o.stderr for o in outcomes.values() if o.code == 5]
    assert f"Delegation {delegation_id} is accepted: it cannot be accepted." in refusal
    (stored,) = delegations_of_the_pair(world.cli.store)
    assert (stored["status"], stored["decided_by"]) == ("accepted", winner)
    target = f"delegation:{delegation_id}"
    assert actions(world.cli.store, target) == ["delegation.request", "delegation.accept"]
    told = f"%delegation {delegation_id} accepted%"
    mails = query(world.cli.store, "SELECT count(*) FROM outbox_message WHERE subject LIKE :s", s=told)
    assert mails == [(1,)]  # B's administrator, told once
    check_consistent(world, delegation_id)


def test_two_acceptances_at_once_accept_once(workers, world, store_url):
    two_acceptances(workers, world)


@PG_ONLY
def test_two_acceptances_interleaved_accept_once(workers, world, store_url):
    two_acceptances(workers, world, interleaved=True)


def accept_and_revoke(workers, world: World, *, first: str | None) -> None:
    """A accepts while B withdraws its request; ``first`` stops inside its transaction (interleaved)."""
    delegation_id = world.request()
    accept = world.job(D_ADMIN_A, "delegations", "accept", str(delegation_id), "--yes")
    revoke = world.job(D_ADMIN_B, "delegations", "revoke", str(delegation_id), "--yes")
    jobs = {"accept": accept, "revoke": revoke}
    if first is not None:
        jobs[first].pause = ("sql", WRITES_DELEGATION)
        jobs["revoke" if first == "accept" else "accept"].after = first

    outcomes = race(workers, world.cli.store, jobs, interleaved=first is not None)

    # Revoking a pending or an accepted delegation both succeed: the revocation always goes through;
    # the acceptance only if it came first.
    assert outcomes["revoke"].code == 0, outcomes
    assert outcomes["accept"].code in (0, 5), outcomes
    (stored,) = delegations_of_the_pair(world.cli.store)
    target = f"delegation:{delegation_id}"
    if outcomes["accept"].code == 0:
        assert stored == {"id": delegation_id, "status": "revoked", "decided_by": D_ADMIN_A, "revoked_by": D_ADMIN_B}
        assert actions(world.cli.store, target) == ["delegation.request", "delegation.accept", "delegation.revoke"]
    else:
        assert f"Delegation {delegation_id} is revoked: it cannot be accepted." in outcomes["accept"].stderr
        assert stored == {"id": delegation_id, "status": "revoked", "decided_by": None, "revoked_by": D_ADMIN_B}
        assert actions(world.cli.store, target) == ["delegation.request", "delegation.revoke"]
    check_consistent(world, delegation_id)


def test_an_acceptance_and_a_revocation_at_once_end_revoked(workers, world, store_url):
    accept_and_revoke(workers, world, first=None)


@PG_ONLY
@pytest.mark.parametrize("first", ["accept", "revoke"])
def test_an_acceptance_and_a_revocation_interleaved_end_revoked(workers, world, store_url, first):
    accept_and_revoke(workers, world, first=first)


GRANT = ("delegations", "grant", D_USER_B, "--establishment", SIRET_A, "cir", "estimation", "--level", "read")


def grant_and_revoke(workers, world: World, tmp_path: Path, *, via: str, first: str | None) -> None:
    """B grants rights through the delegation (one command, a rights import, or a copy of its user's
    delegated rights) while A revokes the delegation."""
    delegation_id = world.accepted()
    pause = ("sql", WRITES_DELEGATION)
    if via == "grant":
        grant = world.job(D_ADMIN_B, *GRANT)
    elif via == "import":
        rows = [["identifier", "service", "level", "establishment"]]
        rows += [[D_USER_B, code, "read", SIRET_A] for code in SCOPE.split(",")]
        path = write_csv(tmp_path, rows, "delegated.csv")
        grant = world.job(D_ADMIN_B, "rights", "import", str(path), "--yes", "--quiet")
        pause = ("call", "pepsctl.domain.rights_bulk", "_write_rights")  # its rows go in by COPY
    else:
        world.act_as(D_ADMIN_B)
        world.cli.ok(*GRANT)
        grant = world.job(D_ADMIN_B, "rights", "copy", D_USER_B, world.second(SIRET_B, "user"), "--yes")
    revoke = world.job(D_ADMIN_A, "delegations", "revoke", str(delegation_id), "--yes")
    jobs = {"grant": grant, "revoke": revoke}
    if first is not None:
        jobs[first].pause = pause if first == "grant" else ("sql", WRITES_DELEGATION)
        jobs["revoke" if first == "grant" else "grant"].after = first

    outcomes = race(workers, world.cli.store, jobs, interleaved=first is not None)

    assert outcomes["revoke"].code == 0, outcomes
    if via == "copy":
        # The copy always completes: before the revocation (both accounts' rights then go with it),
        # or after it (no delegated right is in force any more: nothing to copy).
        assert outcomes["grant"].code == 0, outcomes
        assert outcomes["revoke"].stderr in ("4 rights removed.\n", "2 rights removed.\n"), outcomes
    elif outcomes["grant"].code == 0:
        assert "2 rights removed." in outcomes["revoke"].stderr  # granted first, removed with the delegation
    else:
        # Refused: the delegation no longer lets B act for A (exit 7; 3 for the file's rows).
        assert outcomes["grant"].code == (7 if via == "grant" else 3), outcomes
        assert "0 rights removed." in outcomes["revoke"].stderr
    (stored,) = delegations_of_the_pair(world.cli.store)
    assert stored["status"] == "revoked"
    check_consistent(world, delegation_id)


@pytest.mark.parametrize("via", ["grant", "import", "copy"])
def test_a_grant_and_a_revocation_at_once_leave_no_right(workers, world, store_url, tmp_path, via):
    grant_and_revoke(workers, world, tmp_path, via=via, first=None)


@PG_ONLY
@pytest.mark.parametrize("first", ["grant", "revoke"])
@pytest.mark.parametrize("via", ["grant", "import", "copy"])
def test_a_grant_and_a_revocation_interleaved_leave_no_right(workers, world, store_url, tmp_path, via, first):
    grant_and_revoke(workers, world, tmp_path, via=via, first=first)


# -- kill -9 in the middle of a large transaction -----------------------------------------------------

LARGE = 20_000

# The command as a subprocess: its clock frozen at argv[1], the session token from the environment.
LAUNCHER = """
import os, sys
from datetime import datetime

import keyring
from keyring.backend import KeyringBackend

from pepsctl import clock


class OneSession(KeyringBackend):
    priority = 1

    def get_password(self, service, username):
        if (service, username) == ("pepsctl", os.environ["TEST_SESSION_KEY"]):
            return os.environ["TEST_SESSION_TOKEN"]
        return None

    def set_password(self, service, username, password):
        raise AssertionError("nothing to keep")

    def delete_password(self, service, username):
        raise AssertionError("nothing to forget")


clock.freeze(datetime.fromisoformat(sys.argv[1]))
keyring.set_keyring(OneSession())
from pepsctl.cli import main

sys.argv = ["pepsctl", *sys.argv[2:]]
main()
"""


def start_command(cli: Cli, entry: tuple[str, str, str], tmp_path: Path, *args: str) -> subprocess.Popen:
    _service, key, token = entry
    environ = {**os.environ, "TEST_SESSION_KEY": key, "TEST_SESSION_TOKEN": token}
    stderr = (tmp_path / "killed.stderr").open("wb")
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, clock.now().isoformat(), "--store", cli.store, *args],
        cwd=ROOT,
        env=environ,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


def _write_lock_held(path: str) -> bool:
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as error:
        return "locked" in str(error)
    else:
        probe.execute("ROLLBACK")
        return False
    finally:
        probe.close()


def kill_sqlite_writer(cli: Cli, entry, tmp_path: Path, *args: str) -> None:
    """Start the command; once the -wal file grows (it writes inside its transaction), stop it, check
    that it still holds the write lock (not committed), and SIGKILL it."""
    path = cli.store.removeprefix("sqlite:///")
    wal = Path(path + "-wal")
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert not wal.exists() or wal.stat().st_size == 0
    process = start_command(cli, entry, tmp_path, *args)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (wal.exists() and wal.stat().st_size > SPILLED):
            assert process.poll() is None, (process.returncode, (tmp_path / "killed.stderr").read_text())
            assert time.monotonic() < deadline, "the command never wrote"
            time.sleep(0.002)
        os.kill(process.pid, signal.SIGSTOP)
        while not _stopped(process.pid):
            time.sleep(0.001)
        assert _write_lock_held(path), "the command committed before it could be killed"
    finally:
        process.kill()  # SIGKILL: no rollback, no clean-up in the process
        process.wait(TIMEOUT)
    assert process.returncode == -signal.SIGKILL


SPILLED = 512 * 1024  # bytes of -wal: pages written by the open transaction (the page cache spilled)


def kill_postgres_writer(cli: Cli, entry, tmp_path: Path, *args: str) -> None:
    """Hold the history's lock; start the command; once it waits on that lock after writing its rows
    (a transaction id, seen in pg_stat_activity), SIGKILL it; then let the lock go."""
    import psycopg

    from pepsctl.store.engine import create_store_engine, lock_history, parse_store_url

    engine = create_store_engine(parse_store_url(cli.store))
    # pg_stat_activity is a snapshot per transaction: watch from an autocommit connection of its own.
    with engine.connect() as holder, psycopg.connect(cli.store, autocommit=True) as watcher:
        holder.begin()
        lock_history(holder)
        process = start_command(cli, entry, tmp_path, *args)
        try:
            deadline = time.monotonic() + TIMEOUT
            while True:
                assert process.poll() is None, (process.returncode, (tmp_path / "killed.stderr").read_text())
                assert time.monotonic() < deadline, "the command never reached the history"
                waiting = watcher.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND wait_event = 'advisory' AND backend_xid IS NOT NULL"
                ).fetchall()
                if waiting:
                    break
                time.sleep(0.01)
        finally:
            process.kill()  # SIGKILL: the server is left with an open transaction and no client
            process.wait(TIMEOUT)
        ((backend,),) = waiting
        holder.rollback()  # the lock goes; the orphaned transaction then finds its client gone
        deadline = time.monotonic() + TIMEOUT
        while watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (backend,)).fetchone()[0]:
            assert time.monotonic() < deadline, "the killed command's server process lingers"
            time.sleep(0.02)
    engine.dispose()
    assert process.returncode == -signal.SIGKILL


def kill_in_the_middle(cli: Cli, entry, tmp_path: Path, *args: str) -> None:
    if cli.store.startswith("sqlite"):
        kill_sqlite_writer(cli, entry, tmp_path, *args)
    else:
        kill_postgres_writer(cli, entry, tmp_path, *args)


def everything(url: str) -> dict[str, object]:
    """What the commands may write: accounts, rights, batches, history, messages, sessions."""
    return {
        **store_state(url),
        "account_right": query(url, "SELECT * FROM account_right ORDER BY id"),
        "batch_rows": query(url, "SELECT * FROM batch ORDER BY id"),
    }


def check_untouched(cli: Cli, before: dict, listed: list) -> None:
    assert everything(cli.store) == before
    assert cli.json("batches", "list") == listed  # no half batch
    history_ok(cli)


@pytest.fixture
def crowd(cli: Cli, admin_a, isolate) -> tuple[tuple[str, str, str], list[str]]:
    """A's administrator (a stepped-up session) and LARGE accounts."""
    return session_entry(isolate), add_accounts(cli.store, LARGE)


def large_phones(tmp_path: Path, people: list[str], prefix: str = "783") -> Path:
    rows = [["identifier", "phone"], *[[p, f"0{prefix}{i:06d}"] for i, p in enumerate(people)]]
    return write_csv(tmp_path, rows, f"phones-{prefix}.csv")


def test_killing_a_large_phones_import_leaves_the_store_as_it_was(cli, crowd, tmp_path):
    entry, people = crowd
    path = large_phones(tmp_path, people)
    before, listed = everything(cli.store), cli.json("batches", "list")

    kill_in_the_middle(cli, entry, tmp_path, "phones", "import", str(path), "--yes", "--quiet")

    check_untouched(cli, before, listed)
    # Usable at once: a write goes through (the killed transaction's locks went with it).
    small = write_csv(tmp_path, [["identifier", "phone"], [people[0], "06 99 00 00 01"]], "small.csv")
    assert cli("phones", "import", str(small), "--yes", "--quiet").exit_code == 0
    assert [b["rows_changed"] for b in cli.json("batches", "list")] == [1]


def test_killing_the_undo_of_a_large_batch_leaves_the_store_as_it_was(cli, crowd, tmp_path):
    entry, people = crowd
    result = cli("phones", "import", str(large_phones(tmp_path, people)), "--yes", "--quiet", "--format", "json")
    assert result.exit_code == 0, result.stderr
    batch_id = json.loads(result.stdout)["batch_id"]
    before, listed = everything(cli.store), cli.json("batches", "list")

    kill_in_the_middle(cli, entry, tmp_path, "batches", "undo", str(batch_id), "--yes")

    check_untouched(cli, before, listed)
    assert [(b["id"], b["undone_at"]) for b in listed] == [(batch_id, None)]


def test_killing_a_large_rights_import_leaves_the_store_as_it_was(cli, crowd, tmp_path):
    entry, people = crowd
    rows = [["identifier", "service", "level"], *[[p, "cir", "read"] for p in people]]
    path = write_csv(tmp_path, rows, "rights.csv")
    before, listed = everything(cli.store), cli.json("batches", "list")

    kill_in_the_middle(cli, entry, tmp_path, "rights", "import", str(path), "--yes", "--quiet")

    check_untouched(cli, before, listed)
    small = write_csv(tmp_path, [["identifier", "service", "level"], [people[0], "cir", "write"]], "small.csv")
    assert cli("rights", "import", str(small), "--yes", "--quiet").exit_code == 0
    assert [b["rows_changed"] for b in cli.json("batches", "list")] == [1]
