"""Authentication, password part: password set, login, lockout, sessions, logout, password input.

Through the CLI on SQLite and PostgreSQL; the store is read directly where the rule is about what
it holds (token hashes, failure counters).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

import pytest

from pepsctl import clock
from tests.conftest import (
    FROZEN_AT,
    PASSWORD,
    SIRET_A,
    create_account,
    last_code,
    last_sms_code,
    login,
)

SESSION_KEYS = [
    "identifier",
    "name",
    "profile",
    "establishment",
    "establishment_name",
    "session_expires_at",
    "stepped_up",
]
NEW_PASSWORD = "une-toute-nouvelle-phrase"
WRONG_PASSWORD = "pas-le-bon-mot-de-passe"
BAD_CODE = (
    "Error: Unknown identifier, or wrong, used or expired code.\n"
    "Hint: Check the code in the e-mail; an administrator can send a new one.\n"
)
LOCKED = (
    "Error: This account is locked.\n"
    "Hint: Reset your password with 'pepsctl password forgot IDENTIFIER --email EMAIL', "
    "or ask an administrator of your establishment to unlock it.\n"
)
BAD_PASSWORD = "Error: Unknown identifier or wrong password.\n"
NOT_LOGGED_IN = "Error: You are not logged in to this store.\nHint: Run 'pepsctl login IDENTIFIER'.\n"
EXPIRED_SESSION = "Error: Your session has expired.\nHint: Run 'pepsctl login IDENTIFIER'.\n"
USER_EMAIL = "paul.martin@example.fr"


# -- helpers ---------------------------------------------------------------------------------------


def _engine(url: str):
    from pepsctl.store.engine import create_store_engine, parse_store_url

    return create_store_engine(parse_store_url(url))


def query(url: str, sql: str, **params) -> list[tuple]:
    from sqlalchemy import text

    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def moment(value) -> datetime:
    """A datetime read with raw SQL: SQLite gives text, PostgreSQL an aware datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    result = clock.as_utc(value)
    assert result is not None
    return result


def dump_store(url: str) -> str:
    """Every cell of every table, as text: what an attacker with a copy of the store would see."""
    from sqlalchemy import select
    from sqlmodel import SQLModel

    import pepsctl.store.models  # noqa: F401 - registers the tables

    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return "\n".join(
                repr(tuple(row)) for table in SQLModel.metadata.sorted_tables for row in conn.execute(select(table))
            )
    finally:
        engine.dispose()


def issue_reset_code(url: str, identifier: str) -> str:
    """A reset code issued through the domain (no CLI command issues one yet)."""
    from pepsctl.context import AppContext
    from pepsctl.domain import codes
    from pepsctl.store import queries

    app = AppContext(store_option=url)
    try:
        with app.env(auth=False) as env:
            account = queries.get_account_by_identifier(env.session, identifier)
            assert account is not None and account.id is not None
            issued = codes.issue(
                env,
                account.id,
                codes.RESET,
                code=codes.new_long_code(),
                lifetime=codes.RESET_LIFETIME,
                channel="email",
            )
    finally:
        app.dispose()
    return issued.code


def session_tokens(backend) -> dict[str, str]:
    """The session tokens in the keyring (workstation trust tokens left out)."""
    return {
        user: value
        for (service, user), value in backend.items.items()
        if service == "pepsctl" and user.startswith("session:")
    }


def trust_tokens(backend) -> dict[str, str]:
    return {
        user: value
        for (service, user), value in backend.items.items()
        if service == "pepsctl" and user.startswith("trust:")
    }


def try_login(cli, identifier: str, password: str):
    return cli("login", identifier, "--password-stdin", input=password + "\n")


def login_with_code(cli, identifier: str, *args: str, input: str | None = None, env: dict[str, str] | None = None):
    """A login that goes through when this (test) workstation is not trusted yet; the last result.

    An account with no phone gives one (07 81 + its sequence number); the one-time code sent to it
    then completes the same command with --otp.
    """
    command = ["login", identifier, *args]
    result = cli(*command, input=input, env=env)
    if result.exit_code == 0:
        return result
    if "has no phone" in result.stderr:
        command += ["--phone", f"0781{identifier.strip()[-6:]}"]
        result = cli(*command, input=input, env=env)
    assert (result.exit_code, result.stdout) == (6, ""), (result.exit_code, result.stdout, result.stderr)
    assert result.stderr.startswith("Error: A one-time code was sent by "), result.stderr
    return cli(*command, "--otp", last_sms_code(cli), input=input, env=env)


def first_login(cli, identifier: str, password: str = PASSWORD):
    """``try_login`` at the first login on this workstation: with the phone and code it needs."""
    return login_with_code(cli, identifier, "--password-stdin", input=password + "\n")


def set_password(cli, identifier: str, code: str, password: str = PASSWORD):
    return cli("password", "set", identifier, "--code", code, "--password-stdin", input=password + "\n")


@pytest.fixture
def pending_user(cli, admin_a) -> tuple[str, str]:
    """A user account of establishment A, created but not activated: (identifier, activation code)."""
    identifier = create_account(cli, "Paul", "Martin", activate_it=False)
    return identifier, last_code(cli, USER_EMAIL)


@pytest.fixture
def user(cli, pending_user) -> str:
    """An activated user of A; the administrator of A stays logged in."""
    identifier, code = pending_user
    assert set_password(cli, identifier, code).exit_code == 0
    return identifier


# -- password set ----------------------------------------------------------------------------------


def test_password_set_activates_the_account(cli, pending_user, store_url):
    identifier, code = pending_user
    result = set_password(cli, identifier, code)
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == f"Password set. Log in with 'pepsctl login {identifier}'.\n"
    ((activated_at, expires_at, must_set),) = query(
        store_url,
        "SELECT activated_at, expires_at, must_set_password FROM account WHERE identifier = :i",
        i=identifier,
    )
    assert moment(activated_at) == FROZEN_AT
    assert moment(expires_at) == FROZEN_AT.replace(year=2027, month=7)  # 18 months
    assert not must_set
    # The outbox no longer shows the used code.
    assert [m["code"] for m in cli.json("outbox", "list", "--to", USER_EMAIL)] == [None]


def test_password_set_with_a_wrong_code(cli, pending_user):
    identifier, _code = pending_user
    result = set_password(cli, identifier, "ABCD-EFGH-JKMN")
    assert (result.exit_code, result.stdout, result.stderr) == (6, "", BAD_CODE)


def test_password_set_with_a_malformed_code(cli, pending_user):
    identifier, _code = pending_user
    result = set_password(cli, identifier, "0000")
    assert (result.exit_code, result.stdout, result.stderr) == (6, "", BAD_CODE)


def test_password_set_with_a_used_code(cli, pending_user):
    identifier, code = pending_user
    assert set_password(cli, identifier, code).exit_code == 0
    result = set_password(cli, identifier, code, NEW_PASSWORD)
    assert (result.exit_code, result.stdout, result.stderr) == (6, "", BAD_CODE)
    # The first password still holds.
    assert first_login(cli, identifier, PASSWORD).exit_code == 0
    refused = try_login(cli, identifier, NEW_PASSWORD)
    assert refused.exit_code == 6
    assert refused.stderr.startswith(BAD_PASSWORD)


def test_password_set_with_an_expired_code(cli, pending_user):
    identifier, code = pending_user
    clock.advance(timedelta(days=15))
    result = set_password(cli, identifier, code)
    assert (result.exit_code, result.stdout, result.stderr) == (6, "", BAD_CODE)


def test_password_set_with_a_replaced_code(cli, admin_a):
    """A code that is no longer the newest one (a second activation e-mail) is refused."""
    identifier = create_account(cli, "Paul", "Martin", activate_it=False)
    code = last_code(cli, USER_EMAIL)
    newer = issue_reset_code(cli.store, identifier)
    result = set_password(cli, identifier, code)
    assert result.exit_code == 0  # activation and reset codes are different purposes
    assert set_password(cli, identifier, newer, NEW_PASSWORD).exit_code == 0
    again = issue_reset_code(cli.store, identifier)
    latest = issue_reset_code(cli.store, identifier)
    result = set_password(cli, identifier, again)
    assert (result.exit_code, result.stdout, result.stderr) == (6, "", BAD_CODE)
    assert set_password(cli, identifier, latest).exit_code == 0


@pytest.mark.parametrize("identifier", ["ZZZ999999", "not-an-identifier", ""])
def test_password_set_with_an_unknown_identifier(cli, pending_user, identifier):
    _identifier, code = pending_user
    result = set_password(cli, identifier, code)
    assert (result.exit_code, result.stdout, result.stderr) == (6, "", BAD_CODE)


def test_password_set_failures_are_indistinguishable(cli, pending_user):
    """Unknown identifier, wrong, used and expired code: one answer, even with a bad password."""
    identifier, code = pending_user
    outputs = []
    for password in (PASSWORD, "court"):
        outputs.append(set_password(cli, "ZZZ999999", code, password))
        outputs.append(set_password(cli, identifier, "ABCD-EFGH-JKMN", password))
    assert set_password(cli, identifier, code).exit_code == 0
    reset = issue_reset_code(cli.store, identifier)
    for password in (NEW_PASSWORD, "court"):
        outputs.append(set_password(cli, identifier, code, password))  # used
    clock.advance(timedelta(hours=24))
    for password in (NEW_PASSWORD, "court"):
        outputs.append(set_password(cli, identifier, reset, password))  # expired
    assert {(r.exit_code, r.stdout, r.stderr) for r in outputs} == {(6, "", BAD_CODE)}


def test_password_set_failures_are_in_the_history(cli, pending_user, admin_a):
    identifier, _code = pending_user
    set_password(cli, identifier, "ABCD-EFGH-JKMN")
    events = cli.json("history", "--account", identifier, "--action", "auth.failed")
    assert [(e["actor"], e["target"], e["after"]) for e in events] == [
        (identifier, identifier, {"reason": "code", "failures": 1})
    ]


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("x" * 11, "Error: The password is too short: at least 12 characters.\n"),
        ("Martin-le-magnifique", "Error: The password must not contain 'martin'"),
        ("toujours-MARTÍN-2024", "Error: The password must not contain 'martin'"),
        ("azertyuiopqsdf", "Error: This password is too common.\n"),
        ("Azertyuiopqsdf2024!", "Error: This password is too common.\n"),
        ("x" * 129, "Error: The password is too long: at most 128 characters.\n"),
    ],
    ids=["11-chars", "last-name", "last-name-accented", "blocklisted", "blocklisted-decorated", "129-chars"],
)
def test_password_set_refuses_a_weak_password(cli, pending_user, password, message):
    identifier, code = pending_user
    result = set_password(cli, identifier, code, password)
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.startswith(message)
    assert password not in result.stderr
    # The refusal did not use the code: it still sets an acceptable password.
    assert set_password(cli, identifier, code).exit_code == 0


def test_password_set_accepts_12_characters_and_128(cli, admin_a):
    twelve = create_account(cli, "Paul", "Martin", activate_it=False)
    assert set_password(cli, twelve, last_code(cli, USER_EMAIL), "gq7;vw2#kz0q").exit_code == 0
    long = create_account(cli, "Anne", "Roux", activate_it=False)
    assert set_password(cli, long, last_code(cli, "anne.roux@example.fr"), "é" * 128).exit_code == 0
    assert first_login(cli, long, "é" * 128).exit_code == 0


def test_a_successful_password_set_revokes_earlier_sessions(cli, admin_a, isolate, store_url):
    old_token = next(iter(session_tokens(isolate).values()))
    code = issue_reset_code(store_url, admin_a)
    result = set_password(cli, admin_a, code, NEW_PASSWORD)
    assert result.exit_code == 0
    assert query(store_url, "SELECT count(*) FROM auth_session WHERE revoked_at IS NULL") == [(0,)]
    result = cli("whoami")
    assert (result.exit_code, result.stdout, result.stderr) == (6, "", NOT_LOGGED_IN)
    assert next(iter(session_tokens(isolate).values())) == old_token  # the token is there, but dead
    refused = try_login(cli, admin_a, PASSWORD)
    assert refused.exit_code == 6
    assert refused.stderr.startswith(BAD_PASSWORD)
    # The reset also ended the workstation's trust: the new password needs a code again.
    assert first_login(cli, admin_a, NEW_PASSWORD).exit_code == 0
    assert cli.json("whoami")["identifier"] == admin_a


# -- login -----------------------------------------------------------------------------------------


def test_login_prints_to_stderr_and_keeps_only_the_token_hash_in_the_store(cli, user, isolate, store_url):
    admin_trust = trust_tokens(isolate)
    result = first_login(cli, user, PASSWORD)
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == (f"Logged in as {user} (Mairie 21999) until 2026-01-15 10:00 UTC at the latest.\n")
    ((name, token),) = session_tokens(isolate).items()
    assert name.startswith("session:")
    assert len(token) >= 43  # token_urlsafe(32)
    rows = query(
        store_url,
        "SELECT s.token_hash FROM auth_session s JOIN account a ON a.id = s.account_id WHERE a.identifier = :i",
        i=user,
    )
    assert rows == [(hashlib.sha256(token.encode()).hexdigest(),)]
    # The workstation trust token too: only its hash in the store.
    ((trust_name, trust),) = [(n, t) for n, t in trust_tokens(isolate).items() if n not in admin_trust]
    assert trust_name.endswith(f":{user}")
    assert len(trust) >= 43
    rows = query(
        store_url,
        "SELECT t.token_hash FROM trusted_device t JOIN account a ON a.id = t.account_id WHERE a.identifier = :i",
        i=user,
    )
    assert rows == [(hashlib.sha256(trust.encode()).hexdigest(),)]
    dumped = dump_store(store_url)
    assert token not in dumped
    assert trust not in dumped
    assert PASSWORD not in dumped


def test_login_as_json_shows_the_session_view(cli, user):
    expected = {
        "identifier": user,
        "name": "Paul Martin",
        "profile": "user",
        "establishment": SIRET_A,
        "establishment_name": "Mairie 21999",
        "session_expires_at": (FROZEN_AT + timedelta(minutes=30)).isoformat(),
        "stepped_up": True,  # the code verified at this first login steps the session up
    }
    result = login_with_code(cli, user, "--password-stdin", "--format", "json", input=PASSWORD + "\n")
    assert result.exit_code == 0
    assert result.stderr == ""
    view = json.loads(result.stdout)
    assert list(view) == SESSION_KEYS
    assert view == expected
    # From the now trusted workstation: no code, so a session that is not stepped up.
    result = cli("login", user, "--password-stdin", "--format", "json", input=PASSWORD + "\n")
    assert result.exit_code == 0
    assert result.stderr == ""
    view = json.loads(result.stdout)
    assert list(view) == SESSION_KEYS
    assert view == {**expected, "stepped_up": False}


def test_login_with_an_unknown_identifier_or_a_wrong_password_answers_the_same(cli, user):
    unknown = try_login(cli, "ZZZ999999", PASSWORD)
    malformed = try_login(cli, "Robert'); DROP TABLE account;--", PASSWORD)
    wrong = try_login(cli, user, WRONG_PASSWORD)
    assert unknown.exit_code == malformed.exit_code == wrong.exit_code == 6
    assert unknown.stdout == malformed.stdout == wrong.stdout == ""
    assert unknown.stderr == malformed.stderr == wrong.stderr
    assert unknown.stderr.startswith("Error: Unknown identifier or wrong password.\n")


def test_login_identifier_is_case_insensitive(cli, user):
    assert first_login(cli, f"  {user.lower()} ", PASSWORD).exit_code == 0
    # The workstation's trust is kept under the identifier, whatever its case.
    assert try_login(cli, user.lower(), PASSWORD).exit_code == 0
    assert try_login(cli, user, PASSWORD).exit_code == 0


def test_a_pending_account_cannot_log_in(cli, pending_user):
    identifier, _code = pending_user
    result = try_login(cli, identifier, PASSWORD)
    assert result.exit_code == 6
    assert result.stdout == ""
    assert "pepsctl password set" in result.stderr
    # ...and it says no more than for an unknown identifier (no enumeration of accounts).
    unknown = try_login(cli, "ZZZ999999", PASSWORD)
    assert (unknown.exit_code, unknown.stdout, unknown.stderr) == (6, "", result.stderr)


def test_an_expired_account_cannot_log_in(cli, user, store_url):
    clock.advance(timedelta(days=546) - timedelta(seconds=1))  # 2027-07-15 09:29:59, one second before
    assert first_login(cli, user, PASSWORD).exit_code == 0
    clock.advance(timedelta(seconds=1))
    result = try_login(cli, user, PASSWORD)
    assert result.exit_code == 6
    assert result.stdout == ""
    assert result.stderr == (
        "Error: This account expired on 2027-07-15.\nHint: Ask an administrator of your establishment to renew it.\n"
    )
    assert query(
        store_url,
        "SELECT count(*) FROM audit_event WHERE action = 'auth.refused.expired' AND target = :i",
        i=user,
    ) == [(1,)]


def test_five_consecutive_failures_lock_the_account(cli, user, store_url):
    for attempt in range(1, 5):
        result = try_login(cli, user, WRONG_PASSWORD)
        assert result.exit_code == 6, attempt
        assert result.stderr.startswith("Error: Unknown identifier or wrong password.\n")
    fifth = try_login(cli, user, WRONG_PASSWORD)
    assert (fifth.exit_code, fifth.stdout, fifth.stderr) == (8, "", LOCKED)
    assert query(store_url, "SELECT failed_attempts FROM account WHERE identifier = :i", i=user) == [(5,)]
    ((locked_at,),) = query(store_url, "SELECT locked_at FROM account WHERE identifier = :i", i=user)
    assert moment(locked_at) == FROZEN_AT


def test_a_locked_account_refuses_the_right_password_with_the_same_output(cli, user, store_url):
    for _attempt in range(5):
        try_login(cli, user, WRONG_PASSWORD)
    clock.advance(timedelta(days=30))  # no automatic unlock with time
    wrong = try_login(cli, user, WRONG_PASSWORD)
    right = try_login(cli, user, PASSWORD)
    via_env = cli("login", user, env={"PEPSCTL_PASSWORD": PASSWORD})
    for result in (wrong, right, via_env):
        assert (result.exit_code, result.stdout, result.stderr) == (8, "", LOCKED)
    sessions = "SELECT count(*) FROM auth_session s JOIN account a ON a.id = s.account_id WHERE a.identifier = :i"
    assert query(store_url, sessions, i=user) == [(0,)]


def test_locking_revokes_the_open_sessions(cli, user, store_url):
    login(cli, user)
    assert cli("whoami").exit_code == 0
    for _attempt in range(5):
        try_login(cli, user, WRONG_PASSWORD)  # failures leave the keyring alone
    open_sessions = (
        "SELECT count(*) FROM auth_session s JOIN account a ON a.id = s.account_id "
        "WHERE a.identifier = :i AND s.revoked_at IS NULL"
    )
    assert query(store_url, open_sessions, i=user) == [(0,)]
    result = cli("whoami")
    assert result.exit_code == 6
    assert result.stdout == ""


def test_the_failure_counter_resets_on_success(cli, user, store_url):
    for _attempt in range(4):
        assert try_login(cli, user, WRONG_PASSWORD).exit_code == 6
    assert first_login(cli, user, PASSWORD).exit_code == 0
    assert query(store_url, "SELECT failed_attempts FROM account WHERE identifier = :i", i=user) == [(0,)]
    for _attempt in range(4):
        assert try_login(cli, user, WRONG_PASSWORD).exit_code == 6
    assert try_login(cli, user, PASSWORD).exit_code == 0
    assert try_login(cli, user, WRONG_PASSWORD).exit_code == 6


def test_every_attempt_is_in_the_history_without_any_password(cli, user, admin_a, store_url):
    first_login(cli, user, PASSWORD)
    for _attempt in range(5):
        try_login(cli, user, WRONG_PASSWORD)
    try_login(cli, user, PASSWORD)
    try_login(cli, "ZZZ999999", "mot-de-passe-inconnu")
    login(cli, admin_a)
    result = cli("history", "--account", user, "--format", "json")
    assert result.exit_code == 0
    events = json.loads(result.stdout)
    auth_events = [e["action"] for e in events if e["action"].startswith(("auth.", "otp.", "account.locked"))]
    assert auth_events == [
        "otp.sent",
        "otp.verified",
        "auth.login",
        "auth.failed",
        "auth.failed",
        "auth.failed",
        "auth.failed",
        "auth.failed",
        "account.locked",
        "auth.refused.locked",
    ]
    assert [e["after"]["failures"] for e in events if e["action"] == "auth.failed"] == [1, 2, 3, 4, 5]
    for secret in (PASSWORD, WRONG_PASSWORD, "mot-de-passe-inconnu"):
        assert secret not in result.stdout
        assert secret not in dump_store(store_url)
    # The unknown identifier's attempt belongs to no establishment, but it is in the trail.
    assert query(
        store_url, "SELECT actor, target FROM audit_event WHERE action = 'auth.failed' AND establishment IS NULL"
    ) == [("anonymous", "ZZZ999999")]
    cli.ok("history", "verify")


# -- sessions --------------------------------------------------------------------------------------


def test_whoami_without_login(cli):
    result = cli("whoami")
    assert (result.exit_code, result.stdout, result.stderr) == (6, "", NOT_LOGGED_IN)


def test_whoami_after_login(cli, admin_a):
    clock.advance(timedelta(minutes=10))
    result = cli("whoami", "--format", "json")
    assert result.exit_code == 0
    assert result.stderr == ""
    view = json.loads(result.stdout)
    assert list(view) == SESSION_KEYS
    assert view["identifier"] == admin_a
    assert view["name"] == "Marie Durand"
    assert view["profile"] == "admin"
    assert view["establishment"] == SIRET_A
    assert view["establishment_name"] == "Mairie 21999"
    assert view["session_expires_at"] == (FROZEN_AT + timedelta(minutes=40)).isoformat()  # idle time refreshed
    table = cli("whoami")
    assert table.exit_code == 0
    assert admin_a in table.stdout and SIRET_A in table.stdout


def test_a_session_ends_after_30_idle_minutes(cli, admin_a):
    clock.advance(timedelta(minutes=29, seconds=59))
    assert cli("whoami").exit_code == 0
    clock.advance(timedelta(minutes=30))
    result = cli("whoami")
    assert (result.exit_code, result.stdout, result.stderr) == (6, "", EXPIRED_SESSION)
    result = cli("establishments", "list")
    assert (result.exit_code, result.stdout, result.stderr) == (6, "", EXPIRED_SESSION)


def test_a_session_ends_after_12_hours_even_with_activity(cli, admin_a):
    for step in range(1, 36):  # up to 11 h 40
        clock.advance(timedelta(minutes=20))
        assert cli("whoami").exit_code == 0, step
    clock.advance(timedelta(minutes=20))  # 12 h after login
    result = cli("whoami")
    assert (result.exit_code, result.stdout, result.stderr) == (6, "", EXPIRED_SESSION)
    login(cli, admin_a)
    assert cli("whoami").exit_code == 0


def test_logout_revokes_the_session_in_the_store(cli, admin_a, isolate, store_url):
    ((name, token),) = session_tokens(isolate).items()
    result = cli("logout")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "Logged out.\n")
    assert session_tokens(isolate) == {}
    isolate.set_password("pepsctl", name, token)  # put the old token back by hand
    result = cli("whoami")
    assert (result.exit_code, result.stdout, result.stderr) == (6, "", NOT_LOGGED_IN)
    ((revoked_at,),) = query(store_url, "SELECT revoked_at FROM auth_session")
    assert moment(revoked_at) == FROZEN_AT
    assert query(store_url, "SELECT count(*) FROM audit_event WHERE action = 'auth.logout'") == [(1,)]


def test_logout_when_not_logged_in(cli, admin_a):
    cli.ok("logout")
    result = cli("logout")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "You were not logged in.\n")


@pytest.mark.parametrize(
    "args",
    [("establishments", "list"), ("establishments", "accept-cgu", SIRET_A), ("accounts", "list"), ("history",)],
    ids=["establishments-list", "accept-cgu", "accounts-list", "history"],
)
def test_a_command_needing_a_session_without_login(cli, admin_a, isolate, args):
    isolate.items.clear()
    result = cli(*args)
    assert result.exit_code == 6
    assert result.stdout == ""
    assert result.stderr == NOT_LOGGED_IN


# -- reading the password --------------------------------------------------------------------------


@pytest.mark.parametrize("stdin", ["", "\n", "\r\n"], ids=["empty", "empty-line", "crlf"])
def test_password_stdin_with_nothing_on_stdin(cli, user, stdin):
    for args in (("login", user), ("password", "set", user, "--code", "ABCD-EFGH-JKMN")):
        result = cli(*args, "--password-stdin", input=stdin)
        assert (result.exit_code, result.stdout, result.stderr) == (2, "", "Error: No password on standard input.\n")


def test_no_terminal_and_no_password_variable(cli, user):
    for args in (("login", user), ("password", "set", user, "--code", "ABCD-EFGH-JKMN")):
        result = cli(*args)
        assert result.exit_code == 2
        assert result.stdout == ""
        assert result.stderr == (
            "Error: A password is needed and there is no terminal to ask for it.\n"
            "Hint: Use --password-stdin or set PEPSCTL_PASSWORD.\n"
        )


def test_password_from_the_environment(cli, user):
    result = login_with_code(cli, user, env={"PEPSCTL_PASSWORD": PASSWORD})
    assert result.exit_code == 0, result.stderr
    assert cli.json("whoami")["identifier"] == user


def test_password_stdin_reads_only_the_first_line(cli, user):
    result = login_with_code(cli, user, "--password-stdin", input=PASSWORD + "\nsomething else\n")
    assert result.exit_code == 0, result.stderr


# -- password hashing: Argon2id, rehash, no truncation, a dummy verification for unknown identifiers ---


def _argon2_parameters(hashed: str) -> str:
    """The ``m=…,t=…,p=…`` part of an encoded Argon2 hash."""
    return hashed.split("$")[3]


def test_the_production_hasher_is_argon2id_at_least_as_strong_as_the_library_defaults():
    """The autouse fixture makes hashing cheap in tests: check the real one from an untouched copy of the module."""
    import importlib.util

    from argon2 import PasswordHasher, Type

    spec = importlib.util.find_spec("pepsctl.domain.passwords")
    assert spec is not None and spec.loader is not None
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    hasher, defaults = fresh._hasher(), PasswordHasher()
    assert hasher.type is Type.ID
    assert hasher.time_cost >= defaults.time_cost
    assert hasher.memory_cost >= defaults.memory_cost
    assert hasher.hash_len >= defaults.hash_len
    assert hasher.salt_len >= defaults.salt_len


def test_a_hash_made_with_other_parameters_is_remade_at_the_next_login(cli, user, store_url, monkeypatch):
    from argon2 import PasswordHasher

    from pepsctl.domain import passwords

    select_hash = "SELECT password_hash FROM account WHERE identifier = :i"
    ((old,),) = query(store_url, select_hash, i=user)
    assert old.startswith("$argon2id$") and _argon2_parameters(old) == "m=64,t=1,p=1"
    monkeypatch.setattr(passwords, "_hasher", lambda: PasswordHasher(time_cost=2, memory_cost=128, parallelism=1))
    assert try_login(cli, user, WRONG_PASSWORD).exit_code == 6
    assert query(store_url, select_hash, i=user) == [(old,)]  # a failed login rehashes nothing
    assert first_login(cli, user).exit_code == 0
    ((new,),) = query(store_url, select_hash, i=user)
    assert new.startswith("$argon2id$") and _argon2_parameters(new) == "m=128,t=2,p=1"
    assert passwords.verify(new, PASSWORD)
    # Parameters unchanged since: the next login keeps the hash as it is.
    assert try_login(cli, user, PASSWORD).exit_code == 0
    assert query(store_url, select_hash, i=user) == [(new,)]


def test_a_128_character_password_is_hashed_whole_without_truncation():
    from pepsctl.domain import passwords

    password = "Zq8!vLm2" * 16
    hashed = passwords.hash_password(password)
    assert passwords.verify(hashed, password)
    for prefix in (password[:-1], password[:72], password[:64]):
        assert not passwords.verify(hashed, prefix), len(prefix)
    assert not passwords.verify(hashed, password[:-1] + "x")


def test_an_unknown_identifier_costs_the_same_argon2_verification_as_a_wrong_password(cli, user, monkeypatch):
    from argon2 import PasswordHasher

    from pepsctl.domain import passwords

    verified: list[str] = []

    class Recording(PasswordHasher):
        def verify(self, hash, password):
            verified.append(hash if isinstance(hash, str) else hash.decode())
            return super().verify(hash, password)

    hasher = Recording(time_cost=1, memory_cost=64, parallelism=1)
    monkeypatch.setattr(passwords, "_hasher", lambda: hasher)
    passwords._dummy_hash.cache_clear()
    seen = {}
    for name, identifier in (("wrong", user), ("unknown", "ZZZ999999"), ("malformed", "not an identifier")):
        verified.clear()
        result = try_login(cli, identifier, WRONG_PASSWORD)
        assert (result.exit_code, result.stderr.splitlines()[0]) == (6, BAD_PASSWORD.strip()), name
        seen[name] = list(verified)
    assert [len(calls) for calls in seen.values()] == [1, 1, 1]  # exactly one Argon2 verification each
    (real,), (dummy,) = seen["wrong"], seen["unknown"]
    assert dummy != real and dummy == passwords._dummy_hash() == seen["malformed"][0]
    assert _argon2_parameters(dummy) == _argon2_parameters(real)  # the same cost


def test_an_unknown_identifier_and_a_wrong_password_take_similar_time(cli, user, monkeypatch):
    """With a costly hasher the Argon2 verification dominates: both answers take about as long."""
    import time

    from argon2 import PasswordHasher

    from pepsctl.domain import passwords

    costly = PasswordHasher(time_cost=2, memory_cost=32 * 1024, parallelism=1)
    select_hash = "SELECT password_hash FROM account WHERE identifier = :i"
    monkeypatch.setattr(passwords, "_hasher", lambda: costly)
    passwords._dummy_hash.cache_clear()
    from sqlalchemy import text

    engine = _engine(cli.store)
    try:  # the user's hash made with the costly parameters, as production would have it
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE account SET password_hash = :h WHERE identifier = :i"),
                {"h": costly.hash(PASSWORD), "i": user},
            )
    finally:
        engine.dispose()
    assert _argon2_parameters(query(cli.store, select_hash, i=user)[0][0]) == "m=32768,t=2,p=1"

    def fastest(identifier: str) -> float:
        times = []
        for _ in range(3):  # the fastest of three: a loaded machine only ever adds time (3 < the 5 that lock)
            start = time.perf_counter()
            assert try_login(cli, identifier, WRONG_PASSWORD).exit_code == 6
            times.append(time.perf_counter() - start)
        return min(times)

    fastest("ZZZ999999")  # warm up: the dummy hash is made once per process
    wrong, unknown = fastest(user), fastest("ZZZ999999")
    assert 0.5 < unknown / wrong < 2, (unknown, wrong)
