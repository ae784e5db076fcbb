"""The accounts rules through the domain layer (pepsctl.domain.accounts), on SQLite and PostgreSQL.

Where the CLI cannot reach a rule (an administrator demoted by a colleague while their own command
runs), the operation is called with an Env and an Actor built by hand, in one transaction that is
committed or rolled back exactly as AppContext.env() does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from pepsctl import clock
from pepsctl.domain import accounts
from pepsctl.domain.env import Actor, Env
from pepsctl.domain.models import AccountChanges, AccountFilter, NewAccount
from pepsctl.errors import Conflict, LastAdministrator, PepsError, PermissionDenied
from pepsctl.store.models import Account
from tests.conftest import FROZEN_AT, SIRET_A, SIRET_B, SIRET_C, create_account, register

ADMIN_A = "MDU000001"


# -- helpers -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def domain_env(
    url: str, identifier: str | None = None, *, profile: str | None = None, stepped_up: bool = False
) -> Iterator[Env]:
    """One transaction on the store, acting as ``identifier`` (with ``profile`` as the session saw it).

    ``stepped_up``: as a session that verified a one-time code (sensitive actions need one).

    Committed when the block succeeds; rolled back when it raises (a PepsError with ``persist``
    commits, like AppContext.env()).
    """
    from sqlalchemy import select
    from sqlmodel import Session, col

    from pepsctl.domain.notify import OutboxGateway
    from pepsctl.store.engine import create_store_engine, parse_store_url
    from pepsctl.store.models import Establishment

    engine = create_store_engine(parse_store_url(url))
    try:
        with Session(engine, expire_on_commit=False) as session:
            session.begin()
            env = Env(session=session, gateway=OutboxGateway())
            if identifier is not None:
                account = session.scalars(select(Account).where(col(Account.identifier) == identifier)).one()
                establishment = session.get(Establishment, account.establishment_id)
                assert account.id is not None and establishment is not None and establishment.id is not None
                env.actor = Actor(
                    account_id=account.id,
                    identifier=account.identifier,
                    establishment_id=establishment.id,
                    siret=establishment.siret,
                    profile=profile or account.profile,
                    stepped_up_at=clock.now() if stepped_up else None,
                )
            try:
                yield env
            except PepsError as error:
                session.commit() if error.persist else session.rollback()
                raise
            except BaseException:
                session.rollback()
                raise
            else:
                session.commit()
    finally:
        engine.dispose()


def row(url: str, identifier: str) -> Account | None:
    from sqlalchemy import select
    from sqlmodel import col

    with domain_env(url) as env:
        return env.session.scalars(select(Account).where(col(Account.identifier) == identifier)).first()


def set_account(url: str, identifier: str, **values) -> None:
    from sqlalchemy import update
    from sqlmodel import col

    with domain_env(url) as env:
        result = env.session.execute(update(Account).where(col(Account.identifier) == identifier).values(**values))
        assert result.rowcount == 1


def account(**fields) -> Account:
    """An unsaved Account row with the fields status_of looks at."""
    values = dict(
        identifier="JDU000042",
        establishment_id=1,
        profile="user",
        civility="MME",
        last_name="Dupont",
        first_name="Jeanne",
        email="jeanne.dupont@example.fr",
        created_at=FROZEN_AT,
        updated_at=FROZEN_AT,
    )
    values.update(fields)
    return Account(**values)


# -- pure rules --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (datetime(2026, 1, 15, 9, 30, tzinfo=UTC), datetime(2027, 7, 15, 9, 30, tzinfo=UTC)),
        (datetime(2026, 8, 31, 23, 59, tzinfo=UTC), datetime(2028, 2, 29, 23, 59, tzinfo=UTC)),  # leap year
        (datetime(2025, 8, 31, tzinfo=UTC), datetime(2027, 2, 28, tzinfo=UTC)),
        (datetime(2026, 12, 31, tzinfo=UTC), datetime(2028, 6, 30, tzinfo=UTC)),
        (datetime(2026, 6, 1, tzinfo=UTC), datetime(2027, 12, 1, tzinfo=UTC)),
    ],
)
def test_accounts_are_valid_18_months_to_the_day(start, expected):
    assert accounts.VALIDITY_MONTHS == 18
    assert accounts.add_months(start, accounts.VALIDITY_MONTHS) == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, "pending"),
        ({"activated_at": FROZEN_AT, "expires_at": FROZEN_AT + timedelta(seconds=1)}, "active"),
        ({"activated_at": FROZEN_AT, "expires_at": FROZEN_AT}, "expired"),
        ({"activated_at": FROZEN_AT, "expires_at": None}, "active"),
        ({"activated_at": FROZEN_AT, "expires_at": FROZEN_AT, "locked_at": FROZEN_AT}, "locked"),
        ({"locked_at": FROZEN_AT}, "locked"),
    ],
    ids=["pending", "active", "expired-at-the-second", "no-expiry", "locked-beats-expired", "locked-beats-pending"],
)
def test_status_of_an_account(fields, expected):
    assert accounts.status_of(account(**fields), FROZEN_AT) == expected


def test_status_filter_in_sql_agrees_with_the_status_shown(cli, admin_a):
    """Every account appears under exactly the --status that its own status field shows."""
    states = {
        "Active": {},
        "Edge": {"expires_at": FROZEN_AT},  # expiring at this very second: expired
        "Expired": {"expires_at": FROZEN_AT - timedelta(days=400)},
        "Locked": {"locked_at": FROZEN_AT},
        "Lockedexpired": {"locked_at": FROZEN_AT, "expires_at": FROZEN_AT - timedelta(days=1)},
    }
    for last, values in states.items():
        identifier = create_account(cli, "Jo", last)
        if values:
            set_account(cli.store, identifier, **values)
    create_account(cli, "Jo", "Pending", activate_it=False)

    with domain_env(cli.store, ADMIN_A) as env:
        everyone = accounts.list_accounts(env, AccountFilter())
        by_status = {s: accounts.list_accounts(env, AccountFilter(status=s)) for s in accounts.STATUSES}

    assert len(everyone) == 7
    for status, views in by_status.items():
        assert sorted(v.identifier for v in views) == sorted(v.identifier for v in everyone if v.status == status)
    assert sum(len(views) for views in by_status.values()) == len(everyone)


# -- create ------------------------------------------------------------------------------------------


def test_create_returns_the_full_phone_and_records_it_masked(cli, admin_a):
    new = NewAccount(
        profile="user",
        civility="Madame",
        last_name=" Dupont ",
        first_name="Jeanne",
        email="jeanne.dupont@EXAMPLE.fr",
        phone="06.12.34.56.78",
    )
    with domain_env(cli.store, ADMIN_A, stepped_up=True) as env:
        view = accounts.create(env, new)

    assert (view.identifier, view.status, view.civility, view.last_name) == ("JDU000002", "pending", "MME", "Dupont")
    assert (view.email, view.phone, view.phone_type) == ("jeanne.dupont@example.fr", "+33612345678", "mobile")
    events = [e for e in cli.json("history") if e["action"] == "account.create"]
    assert events[-1]["after"]["phone"] == "+33 6 •• •• •• 78"
    assert events[-1]["target"] == "JDU000002"


def test_create_needs_an_actor(cli):
    register(cli, SIRET_A)
    from pepsctl.errors import NotLoggedIn

    with pytest.raises(NotLoggedIn), domain_env(cli.store) as env:
        accounts.create(env, NewAccount("user", "M", "Dupont", "Jean", "jean.dupont@example.fr"))
    assert row(cli.store, "JDU000002") is None


def test_another_establishment_registered_or_not_gets_the_same_refusal(cli, admin_a):
    register(cli, SIRET_B, last="Martin", first="Paul")
    messages = {}
    for siret in (SIRET_B, SIRET_C):
        new = NewAccount("user", "M", "Dupont", "Jean", "jean.dupont@example.fr", establishment=siret)
        with pytest.raises(PermissionDenied) as caught, domain_env(cli.store, ADMIN_A) as env:
            accounts.create(env, new)
        messages[siret] = (caught.value.message.replace(siret, "<SIRET>"), caught.value.hint, caught.value.exit_code)

    assert messages[SIRET_B] == messages[SIRET_C]
    assert messages[SIRET_B][2] == 7


# -- the last-administrator guard --------------------------------------------------------------------


@pytest.fixture
def two_admins(cli, admin_a) -> tuple[str, str]:
    second = create_account(cli, "Paul", "Martin", profile="admin")
    return admin_a, second


def test_a_demoted_administrator_whose_command_is_still_running_cannot_delete_the_last_one(cli, two_admins):
    """A1's command started as an administrator; meanwhile A2 demoted A1. A1 now deletes A2: refused."""
    first, second = two_admins
    set_account(cli.store, first, profile="user")  # A2's demotion of A1, committed first

    with pytest.raises(LastAdministrator) as caught, domain_env(cli.store, first, profile="admin") as env:
        accounts.delete(env, second)

    assert caught.value.exit_code == 5
    assert caught.value.message == f"{second} is the last active administrator of {SIRET_A}: cannot delete it."
    assert row(cli.store, second) is not None


def test_a_demoted_administrator_whose_command_is_still_running_cannot_demote_the_last_one(cli, two_admins):
    first, second = two_admins
    set_account(cli.store, first, profile="user")

    with pytest.raises(LastAdministrator), domain_env(cli.store, first, profile="admin") as env:
        accounts.update(env, second, AccountChanges(profile="user", function="Maire"))

    second_row = row(cli.store, second)
    assert second_row is not None
    assert (second_row.profile, second_row.function) == ("admin", None)


def test_an_administrator_deletes_or_demotes_another_while_one_remains(cli, two_admins):
    first, second = two_admins
    third = create_account(cli, "Karim", "Benali", profile="admin")

    with domain_env(cli.store, first) as env:
        demoted = accounts.update(env, second, AccountChanges(profile="user"))
    with domain_env(cli.store, first) as env:
        deleted = accounts.delete(env, third)

    assert demoted.profile == "user"
    assert deleted.identifier == third
    assert row(cli.store, third) is None


def test_deleting_a_user_needs_no_other_administrator(cli, admin_a):
    user = create_account(cli, "Jeanne", "Dupont")

    with domain_env(cli.store, ADMIN_A) as env:
        accounts.delete(env, user)

    assert row(cli.store, user) is None


def test_promoting_is_never_guarded_and_an_unchanged_profile_writes_nothing(cli, admin_a):
    with domain_env(cli.store, ADMIN_A) as env:
        view = accounts.update(env, ADMIN_A, AccountChanges(profile="admin"))
    assert view.profile == "admin"
    assert [e for e in cli.json("history") if e["action"] == "account.update"] == []


# -- renew and lookups -------------------------------------------------------------------------------


def test_renew_of_a_pending_account_is_a_conflict(cli, admin_a):
    pending = create_account(cli, "Jeanne", "Dupont", activate_it=False)

    with pytest.raises(Conflict), domain_env(cli.store, ADMIN_A) as env:
        accounts.renew(env, [pending])


def test_renew_counts_from_now_not_from_the_old_expiry(cli, admin_a):
    user = create_account(cli, "Jeanne", "Dupont")
    set_account(cli.store, user, expires_at=FROZEN_AT + timedelta(days=300))
    clock.advance(timedelta(days=45))

    with domain_env(cli.store, ADMIN_A) as env:
        (view,) = accounts.renew(env, [user, user.lower()])  # the same account twice is renewed once

    assert view.expires_at == datetime(2027, 9, 1, 9, 30, tzinfo=UTC)  # 2026-03-01 + 18 months
    renewed = row(cli.store, user)
    assert renewed is not None and renewed.renewed_at == clock.now()


def test_an_unknown_identifier_is_refused_before_anything_is_changed(cli, admin_a):
    user = create_account(cli, "Jeanne", "Dupont")
    before = row(cli.store, user)

    with pytest.raises(PermissionDenied), domain_env(cli.store, ADMIN_A) as env:
        accounts.renew(env, [user, "ZZZ999999"])

    after = row(cli.store, user)
    assert before is not None and after is not None and after.expires_at == before.expires_at


def test_a_user_reads_only_themselves(cli, admin_a):
    user = create_account(cli, "Jeanne", "Dupont")

    with domain_env(cli.store, user) as env:
        mine = accounts.show(env, user)
    with pytest.raises(PermissionDenied), domain_env(cli.store, user) as env:
        accounts.show(env, ADMIN_A)

    assert mine.identifier == user
    denied = [e for e in cli.json("history") if e["action"] == "permission.denied"]
    assert [(e["actor"], e["target"]) for e in denied] == [(user, ADMIN_A)]  # the refusal is kept
