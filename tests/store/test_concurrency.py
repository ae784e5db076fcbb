"""Concurrency of the accounts rules with real processes and a barrier, on SQLite and PostgreSQL.

Each child process is a fresh interpreter (``spawn``): it gets the store URL, the session token
and the moment to freeze its clock at as arguments, never from the parent's keyring or frozen
clock. It opens a session on its own engine, waits at the barrier, then runs one domain operation
in one transaction exactly as ``AppContext.env()`` does (commit on success, rollback on error),
and reports the exit code its error would give.

SQLite runs every transaction under ``BEGIN IMMEDIATE``, so the barrier sits right before the
transaction starts. On PostgreSQL a second variant also holds both transactions at a barrier
*inside* the transaction, after they have read the accounts and right before the guard locks the
establishment: only ``SELECT … FOR UPDATE`` then keeps the last administrator.
"""

from __future__ import annotations

import multiprocessing
from datetime import datetime
from typing import Any

import pytest

from pepsctl import clock
from tests.conftest import FROZEN_AT, SIRET_A, Cli, create_account, login

TIMEOUT = 30  # seconds; a healthy race takes about two
ADMIN_A = "MDU000001"
SECOND = "PMA000002"  # Paul Martin, the second administrator


# -- the child process -------------------------------------------------------------------------------


def _operation(env, kind: str, argument: Any) -> str:
    from pepsctl.domain import accounts
    from pepsctl.domain.models import AccountChanges, NewAccount

    if kind == "demote":
        return accounts.update(env, argument, AccountChanges(profile="user")).identifier
    if kind == "delete":
        return accounts.delete(env, argument).identifier
    if kind == "create":
        return accounts.create(env, NewAccount(**argument)).identifier
    raise AssertionError(kind)


def _child(
    url: str,
    frozen_at: datetime,
    token: str,
    kind: str,
    argument: Any,
    barrier,
    results,
    name: str,
    barrier_before_lock: bool,
) -> None:
    """Run one operation as the owner of ``token``; put (name, exit code, message) on ``results``."""
    import dataclasses

    from sqlmodel import Session

    from pepsctl import clock
    from pepsctl.domain import auth
    from pepsctl.domain.env import Env
    from pepsctl.domain.notify import OutboxGateway
    from pepsctl.errors import PepsError
    from pepsctl.store import queries
    from pepsctl.store.engine import create_store_engine, parse_store_url, translate_errors

    clock.freeze(frozen_at)  # the parent's clock is not inherited: freeze this one explicitly
    if barrier_before_lock:
        lock = queries.lock_establishment

        def lock_after_barrier(session, establishment_id):
            barrier.wait(TIMEOUT)  # both transactions have read everything; now both try to lock
            lock(session, establishment_id)

        queries.lock_establishment = lock_after_barrier
    store = parse_store_url(url)
    engine = create_store_engine(store)
    try:
        engine.connect().close()  # connect before the barrier, so that both start together
        with translate_errors(store), Session(engine, expire_on_commit=False) as session:
            if not barrier_before_lock:
                barrier.wait(TIMEOUT)  # right before the transaction starts
            session.begin()
            env = Env(session=session, gateway=OutboxGateway())
            try:
                env.actor = auth.resolve_session(env, token)
                if kind == "create":
                    # Creating an account is a sensitive action: act as a session that verified a
                    # one-time code (the step-up itself is tested through the CLI).
                    env.actor = dataclasses.replace(env.actor, stepped_up_at=clock.now())
                outcome = _operation(env, kind, argument)
            except PepsError as error:
                if error.persist:
                    session.commit()
                else:
                    session.rollback()
                raise
            except BaseException:
                session.rollback()
                raise
            session.commit()
        results.put((name, 0, outcome))
    except PepsError as error:
        results.put((name, error.exit_code, error.message))
    except BaseException as error:  # reported to the parent, which fails the test
        results.put((name, -1, f"{type(error).__name__}: {error}"))
    finally:
        engine.dispose()


# -- the parent --------------------------------------------------------------------------------------


def race(url: str, jobs: dict[str, tuple[str, str, Any]], *, barrier_before_lock: bool = False) -> dict:
    """Start one process per job (name → (token, kind, argument)) at once; {name: (exit code, message)}."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(jobs))
    results = context.Queue()
    processes = [
        context.Process(
            target=_child,
            args=(url, clock.now(), token, kind, argument, barrier, results, name, barrier_before_lock),
            name=f"pepsctl-race-{name}",
        )
        for name, (token, kind, argument) in jobs.items()
    ]
    for process in processes:
        process.start()
    try:
        outcomes = {}
        for _ in processes:
            name, code, message = results.get(timeout=TIMEOUT)
            outcomes[name] = (code, message)
    finally:
        for process in processes:
            process.join(TIMEOUT)
            if process.is_alive():  # pragma: no cover - only when a child hangs
                process.kill()
                process.join()
    assert [p.exitcode for p in processes] == [0] * len(processes)
    assert all(code >= 0 for code, _message in outcomes.values()), outcomes
    return outcomes


def session_token(cli: Cli, keyring, identifier: str) -> str:
    login(cli, identifier)
    tokens = [v for (service, key), v in keyring.items.items() if service == "pepsctl" and key.startswith("session:")]
    assert len(tokens) == 1
    return tokens[0]


def admins_of_a(url: str) -> dict[str, str]:
    """{identifier: profile} of the accounts of establishment A, and the count of active administrators."""
    from sqlalchemy import select
    from sqlmodel import Session, col

    from pepsctl.store import queries
    from pepsctl.store.engine import create_store_engine, parse_store_url
    from pepsctl.store.models import Account

    engine = create_store_engine(parse_store_url(url))
    try:
        with Session(engine) as session:
            establishment = queries.get_establishment_by_siret(session, SIRET_A)
            assert establishment is not None and establishment.id is not None
            rows = session.execute(
                select(Account.identifier, Account.profile).where(col(Account.establishment_id) == establishment.id)
            ).all()
            profiles = {identifier: profile for identifier, profile in rows}
            profiles["active admins"] = str(queries.count_active_admins(session, establishment.id, FROZEN_AT))
            return profiles
    finally:
        engine.dispose()


@pytest.fixture
def two_admin_tokens(cli, admin_a, isolate) -> dict[str, str]:
    """Establishment A with exactly two active administrators, each with a live session token."""
    assert create_account(cli, "Paul", "Martin", profile="admin") == SECOND
    return {ADMIN_A: session_token(cli, isolate, ADMIN_A), SECOND: session_token(cli, isolate, SECOND)}


# -- the last-administrator guard --------------------------------------------------------------------


def _new(email: str) -> dict[str, str]:
    return {"profile": "user", "civility": "MME", "last_name": "Dupont", "first_name": "Jeanne", "email": email}


KINDS = pytest.mark.parametrize(
    ("first_kind", "second_kind"),
    [("demote", "demote"), ("delete", "demote"), ("delete", "delete")],
    ids=["demote-each-other", "delete-vs-demote", "delete-each-other"],
)


def check_one_administrator_left(cli: Cli, jobs: dict, outcomes: dict, *, loser_codes: tuple[int, ...]) -> None:
    """Exactly one operation succeeded, the other was refused with one of ``loser_codes``; one admin is left."""
    assert sorted(code for code, _message in outcomes.values())[0] == 0, outcomes
    winner = next(name for name, (code, _message) in outcomes.items() if code == 0)
    loser = SECOND if winner == ADMIN_A else ADMIN_A
    verb, permission = ("demote", "account.update") if jobs[loser][1] == "demote" else ("delete", "account.delete")
    expected = {
        5: f"{winner} is the last active administrator of {SIRET_A}: cannot {verb} it.",
        6: "You are not logged in to this store.",
        7: f"You may not do this ({permission}) on {winner}.",
    }
    code, message = outcomes[loser]
    assert code in loser_codes and message == expected[code], outcomes
    profiles = admins_of_a(cli.store)
    assert profiles["active admins"] == "1"
    assert profiles[winner] == "admin"
    assert profiles.get(loser) in (None, "user")  # deleted or demoted by the winner
    cli.ok("history", "verify")  # both appended to the chain at once: it is still intact


@KINDS
def test_two_administrators_removing_each_other_at_once_leave_one(cli, two_admin_tokens, first_kind, second_kind):
    jobs = {
        ADMIN_A: (two_admin_tokens[ADMIN_A], first_kind, SECOND),
        SECOND: (two_admin_tokens[SECOND], second_kind, ADMIN_A),
    }

    outcomes = race(cli.store, jobs)

    # The loser is refused by the guard (5) if its transaction ran alongside the winner's; if it
    # started only once the winner's had committed (always so on SQLite, where BEGIN IMMEDIATE
    # serialises whole transactions) it finds its own account demoted (7, the gate) or deleted
    # (6, its session went with it). Never two successes.
    loser_codes = (5, 7) if {first_kind, second_kind} == {"demote"} else (5, 6, 7)
    check_one_administrator_left(cli, jobs, outcomes, loser_codes=loser_codes)


@pytest.mark.postgres
class TestInsideTheTransaction:
    """PostgreSQL only: both transactions pause at the barrier after reading, right before the guard's lock.

    Both have passed the gate as administrators and read two active administrators; only the
    ``SELECT … FOR UPDATE`` on the establishment makes the second re-count after the first commits.
    (SQLite cannot run this: BEGIN IMMEDIATE lets only one transaction in at a time.)
    """

    @pytest.fixture
    def store_url(self, pg_database, monkeypatch) -> str:
        from pepsctl import config
        from tests.conftest import _empty_pg

        _empty_pg(pg_database.url)
        monkeypatch.setenv(config.ENV_OUTBOX, "1")
        return pg_database.url

    @KINDS
    def test_the_guard_locks_the_establishment(self, cli, two_admin_tokens, first_kind, second_kind):
        jobs = {
            ADMIN_A: (two_admin_tokens[ADMIN_A], first_kind, SECOND),
            SECOND: (two_admin_tokens[SECOND], second_kind, ADMIN_A),
        }

        outcomes = race(cli.store, jobs, barrier_before_lock=True)

        check_one_administrator_left(cli, jobs, outcomes, loser_codes=(5,))

    def test_the_same_person_twice_is_one_account(self, cli, two_admin_tokens):
        jobs = {
            "one": (two_admin_tokens[ADMIN_A], "create", _new("jeanne.dupont@example.fr")),
            "two": (two_admin_tokens[SECOND], "create", _new("jeanne.dupont@example.fr")),
        }

        outcomes = race(cli.store, jobs, barrier_before_lock=True)

        check_one_person(cli, outcomes)


# -- identifiers and duplicates ----------------------------------------------------------------------


def test_homonyms_created_at_once_get_distinct_identifiers(cli, two_admin_tokens):
    jobs = {
        "one": (two_admin_tokens[ADMIN_A], "create", _new("jeanne.dupont@example.fr")),
        "two": (two_admin_tokens[SECOND], "create", _new("j.dupont@example.fr")),
    }

    outcomes = race(cli.store, jobs)

    assert [code for code, _identifier in outcomes.values()] == [0, 0], outcomes
    assert sorted(identifier for _code, identifier in outcomes.values()) == ["JDU000003", "JDU000004"]
    login(cli, ADMIN_A)
    listed = cli.json("accounts", "list", "--status", "pending")
    assert sorted((a["identifier"], a["email"]) for a in listed) == sorted(
        (identifier, jobs[name][2]["email"]) for name, (_code, identifier) in outcomes.items()
    )


def test_the_same_person_created_twice_at_once_gets_one_account(cli, two_admin_tokens):
    jobs = {
        "one": (two_admin_tokens[ADMIN_A], "create", _new("jeanne.dupont@example.fr")),
        "two": (two_admin_tokens[SECOND], "create", _new("jeanne.dupont@example.fr")),
    }

    outcomes = race(cli.store, jobs)

    check_one_person(cli, outcomes)


def check_one_person(cli: Cli, outcomes: dict) -> None:
    assert sorted(code for code, _message in outcomes.values()) == [0, 5], outcomes
    (identifier,) = [message for code, message in outcomes.values() if code == 0]
    (refusal,) = [message for code, message in outcomes.values() if code == 5]
    assert refusal == f"Jeanne Dupont already has an account here: {identifier}."
    login(cli, ADMIN_A)
    assert [a["identifier"] for a in cli.json("accounts", "list", "--status", "pending")] == [identifier]
