"""One-time codes under concurrency, with real processes and a barrier, on SQLite and PostgreSQL.

Each child is a fresh interpreter (``spawn``): it gets the store URL, the identifier, the code and
the moment to freeze its clock at as arguments, opens its own engine, session and ``Env``, waits at
the barrier, then runs :func:`pepsctl.domain.otp.verify` in one transaction exactly as
``AppContext.env()`` does (commit on success and on a persisted refusal, rollback otherwise), and
reports the exit code its error would give.

- Ten wrong codes at once: the failure counter is incremented in the store (``failed_attempts + 1
  … RETURNING``), so it ends at exactly 10 and the account is locked once.
- One valid code used twice at once: the conditional UPDATE lets exactly one use through. On
  PostgreSQL a second variant holds both transactions at a barrier *after* they have both read the
  code as open and right before they consume it (SQLite's ``BEGIN IMMEDIATE`` already serialises
  the whole transaction, so a barrier inside it would only deadlock).
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from datetime import datetime

import pytest
from sqlalchemy import text

from pepsctl import clock
from pepsctl.context import AppContext
from pepsctl.domain import establishments, otp
from pepsctl.domain.models import FundContract, NewAdministrator, NewEstablishment
from pepsctl.store import queries
from tests.conftest import SIRET_A

TIMEOUT = 60  # seconds; a healthy race takes a few
CODE = "000042"
WRONG = "999999"


# -- the child process -------------------------------------------------------------------------------


def _child(url: str, frozen_at: datetime, identifier: str, code: str, barrier, results, name: str, inside: bool):
    """Verify ``code`` for ``identifier``; put (name, exit code, message) on ``results``."""
    from sqlmodel import Session

    from pepsctl import clock
    from pepsctl.domain import codes, otp
    from pepsctl.domain.env import Env
    from pepsctl.domain.notify import OutboxGateway
    from pepsctl.errors import PepsError
    from pepsctl.store import queries
    from pepsctl.store.engine import create_store_engine, parse_store_url, translate_errors

    clock.freeze(frozen_at)  # the parent's frozen clock is not inherited
    if inside:
        # Hold every transaction right after it has read the open codes and before it consumes one.
        consume_update = codes.update
        waited = []

        def update_after_barrier(*args, **kwargs):
            if not waited:
                waited.append(True)
                barrier.wait(TIMEOUT)
            return consume_update(*args, **kwargs)

        codes.update = update_after_barrier
    store = parse_store_url(url)
    engine = create_store_engine(store)
    try:
        engine.connect().close()  # connect before the barrier, so that all start together
        with translate_errors(store), Session(engine, expire_on_commit=False) as session:
            if not inside:
                barrier.wait(TIMEOUT)  # right before the transaction starts
            session.begin()
            env = Env(session=session, gateway=OutboxGateway(), label=f"race:{name}")
            try:
                account = queries.get_account_by_identifier(session, identifier)
                assert account is not None
                otp.verify(env, account=account, purpose="login", code=code, establishment=SIRET_A)
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
        results.put((name, 0, "verified"))
    except PepsError as error:
        results.put((name, error.exit_code, error.message))
    except BaseException as error:  # reported to the parent, which fails the test
        results.put((name, -1, f"{type(error).__name__}: {error}"))
    finally:
        engine.dispose()


def race(url: str, identifier: str, codes: list[str], *, inside: bool = False) -> list[tuple[int, str]]:
    """One process per code, all verifying at once; their (exit code, message), sorted."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(codes))
    results = context.Queue()
    processes = [
        context.Process(
            target=_child,
            args=(url, clock.now(), identifier, code, barrier, results, f"p{i}", inside),
            name=f"pepsctl-otp-race-{i}",
        )
        for i, code in enumerate(codes)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=TIMEOUT) for _ in processes]
    finally:
        for process in processes:
            process.join(TIMEOUT)
            if process.is_alive():  # pragma: no cover - only when a child hangs
                process.kill()
                process.join()
    assert [p.exitcode for p in processes] == [0] * len(processes)
    assert all(code >= 0 for _name, code, _message in outcomes), outcomes
    return sorted((code, message) for _name, code, message in outcomes)


# -- the world: one account with one open login code -------------------------------------------------


@pytest.fixture
def app(store_url):
    app = AppContext(store_option=store_url)
    yield app
    app.dispose()


@pytest.fixture
def agent(app, monkeypatch) -> str:
    """An account with one open login code, CODE."""
    monkeypatch.setattr(otp.secrets, "randbelow", lambda n: 42)
    new = NewEstablishment(
        siret=SIRET_A,
        name="Mairie de Test",
        funds=(FundContract("CNRACL", "C-1234"),),
        via="classic",
        admin=NewAdministrator("MME", "Durand", "Marie", "marie.durand@example.fr", "06 10 20 30 40"),
    )
    with app.env(auth=False) as env:
        identifier = establishments.register(env, new, require_code=False).administrator
    with app.env(auth=False) as env:
        account = queries.get_account_by_identifier(env.session, identifier)
        otp.send(env, account=account, purpose="login", phone="+33610203040", phone_type="mobile")
    return identifier


def sql(app, statement: str, **params) -> list[tuple]:
    with app.engine().connect() as conn:
        return [tuple(row) for row in conn.execute(text(statement), params)]


def audit_actions(app) -> Counter:
    return Counter(action for (action,) in sql(app, "SELECT action FROM audit_event"))


# -- tests -------------------------------------------------------------------------------------------


def test_ten_wrong_codes_in_parallel_are_all_counted_and_lock_once(app, agent, store_url):
    outcomes = race(store_url, agent, [WRONG] * 10)
    assert [code for code, _message in outcomes] == [6] * 4 + [8] * 6, outcomes
    ((failed, locked_at),) = sql(app, "SELECT failed_attempts, locked_at FROM account WHERE identifier = :i", i=agent)
    assert failed == 10
    assert locked_at is not None
    counted = audit_actions(app)
    assert counted["otp.wrong"] == 10
    assert counted["auth.failed"] == 10
    assert counted["account.locked"] == 1
    ((mails,),) = sql(app, "SELECT count(*) FROM outbox_message WHERE subject LIKE '%is locked'")
    assert mails == 1
    # The chain of events written by ten processes at once is intact.
    from pepsctl.domain import history

    with app.env(auth=False) as env:
        assert history.verify(env.session).ok


def test_one_code_used_twice_in_parallel_succeeds_once(app, agent, store_url):
    outcomes = race(store_url, agent, [CODE, CODE])
    assert outcomes[0] == (0, "verified")
    assert outcomes[1] == (6, "Wrong, used or expired code.")
    ((used,),) = sql(app, "SELECT count(*) FROM one_time_code WHERE purpose = 'login' AND used_at IS NOT NULL")
    assert used == 1
    counted = audit_actions(app)
    assert (counted["otp.verified"], counted["otp.replayed"]) == (1, 1)


@pytest.mark.parametrize("store_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_one_code_used_twice_after_both_read_it_as_open_succeeds_once(app, agent, store_url):
    outcomes = race(store_url, agent, [CODE, CODE], inside=True)
    assert outcomes[0] == (0, "verified")
    assert outcomes[1] == (6, "Wrong, used or expired code.")
    ((used,),) = sql(app, "SELECT count(*) FROM one_time_code WHERE purpose = 'login' AND used_at IS NOT NULL")
    assert used == 1
