"""Lockout and recovery through the CLI, on SQLite and PostgreSQL; and no secret ever leaks.

- Lockout: five consecutive failures (passwords and one-time codes alike) lock the account; a
  locked account refuses even the right password and code, with the output of a wrong password;
  an administrator of the same establishment unlocks it (nobody else), and the person then sets a
  new password from the e-mailed code. Lock, unlock and reset each e-mail the person.
- Recovery: ``password forgot`` answers the same whatever it is given; the reset code lives 24 hours
  and ends the lock; ``password change`` needs the current password and a code, and ends every
  other session and workstation trust.
- Secrets: after a scripted session, no password, code, TOTP secret or token is in the history,
  in what any command printed, or anywhere in the store.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest

from pepsctl import clock
from tests.commands.test_two_factor import (
    actions,
    enroll,
    forget_trust,
    last_event_id,
    other_code,
    query,
    quick_admin,
    relogin,
    scalar,
    session_tokens,
    try_login,
    use_token,
)
from tests.conftest import (
    PASSWORD,
    SIRET_A,
    SIRET_B,
    Cli,
    create_account,
    last_code,
    last_sms_code,
    login,
    register,
)

NEW_PASSWORD = "une-toute-nouvelle-phrase"
WRONG_PASSWORD = "pas-le-bon-mot-de-passe"
USER_EMAIL = "paul.martin@example.fr"
USER_PHONE = "+33611223344"
LOCKED = (
    "Error: This account is locked.\n"
    "Hint: Reset your password with 'pepsctl password forgot IDENTIFIER --email EMAIL', "
    "or ask an administrator of your establishment to unlock it.\n"
)
BAD_CREDENTIALS = "Error: Unknown identifier or wrong password.\n"
BAD_CODE = (
    "Error: Unknown identifier, or wrong, used or expired code.\n"
    "Hint: Check the code in the e-mail; an administrator can send a new one.\n"
)
FORGOT = (
    "If this identifier and e-mail match an account, a reset code was sent to that e-mail. "
    "Then: pepsctl password set IDENTIFIER --code CODE\n"
)


@pytest.fixture
def admin_a(store_url) -> str:
    """Establishment A, its administrator active and logged in (stepped up, workstation trusted)."""
    return quick_admin(store_url)


@pytest.fixture
def user(cli, admin_a) -> str:
    """An active user of A with a mobile; the administrator of A stays logged in."""
    return create_account(cli, "Paul", "Martin", phone="06 11 22 33 44")


def column(url: str, name: str, identifier: str):
    return scalar(url, f"SELECT {name} FROM account WHERE identifier = :i", i=identifier)


def subjects(cli, to: str) -> list[str]:
    return [m["subject"] for m in cli.json("outbox", "list", "--to", to)]


def lock(cli, identifier: str) -> None:
    for attempt in range(1, 6):
        result = try_login(cli, identifier, password=WRONG_PASSWORD)
        assert result.exit_code == (8 if attempt == 5 else 6), attempt


def set_password(cli, identifier: str, code: str, password: str):
    return cli("password", "set", identifier, "--code", code, "--password-stdin", input=password + "\n")


def change_password(cli, current: str, new: str, *extra: str):
    return cli("password", "change", "--password-stdin", *extra, input=f"{current}\n{new}\n")


# -- lockout ---------------------------------------------------------------------------------------


def test_the_fifth_failure_locks_whether_passwords_or_codes(cli, user, store_url):
    mark = last_event_id(store_url)
    for _attempt in range(3):
        wrong = try_login(cli, user, password=WRONG_PASSWORD)
        assert (wrong.exit_code, wrong.stdout) == (6, "")
        assert wrong.stderr.startswith(BAD_CREDENTIALS)
    sent = try_login(cli, user)  # the right password: a code is sent, nothing is reset yet
    assert sent.exit_code == 6
    assert column(store_url, "failed_attempts", user) == 3
    code = last_sms_code(cli)
    fourth = try_login(cli, user, "--otp", other_code(code))
    assert fourth.exit_code == 6
    assert column(store_url, "failed_attempts", user) == 4
    fifth = try_login(cli, user, "--otp", other_code(code))
    assert (fifth.exit_code, fifth.stdout, fifth.stderr) == (8, "", LOCKED)
    assert column(store_url, "failed_attempts", user) == 5
    assert column(store_url, "locked_at", user) is not None
    events = actions(store_url, mark)
    assert events.count("auth.failed") == 5
    assert events.count("otp.wrong") == 2
    assert events[-1] == "account.locked"
    reasons = [
        json.loads(after)["reason"]
        for (after,) in query(
            store_url, "SELECT after FROM audit_event WHERE action = 'auth.failed' AND id > :i ORDER BY id", i=mark
        )
    ]
    assert reasons == ["password", "password", "password", "code", "code"]
    assert subjects(cli, USER_EMAIL)[-1] == f"Your PEP's account {user} is locked"


def test_a_locked_account_refuses_the_right_password_and_code_like_a_wrong_password(cli, user, store_url):
    assert try_login(cli, user).exit_code == 6
    code = last_sms_code(cli)  # a valid code, sent before the lock
    lock(cli, user)
    clock.advance(timedelta(minutes=1))  # still within the code's 5 minutes
    right = try_login(cli, user, "--otp", code)
    wrong = try_login(cli, user, "--otp", code, password=WRONG_PASSWORD)
    via_env = cli("login", user, env={"PEPSCTL_PASSWORD": PASSWORD, "PEPSCTL_OTP": code})
    clock.advance(timedelta(days=30))  # and no unlock with time
    later = try_login(cli, user)
    for result in (right, wrong, via_env, later):
        assert (result.exit_code, result.stdout, result.stderr) == (8, "", LOCKED)
    assert session_tokens_of(store_url, user) == 0
    assert "auth.refused.locked" in actions(store_url)


def test_failures_are_counted_across_resends(cli, user, store_url):
    """A new code (the right password again) does not reset the counter: the fifth wrong code locks."""
    for attempt in range(1, 5):
        assert try_login(cli, user).exit_code == 6  # a new code is sent, replacing the previous one
        assert try_login(cli, user, "--otp", other_code(last_sms_code(cli))).exit_code == 6
        assert column(store_url, "failed_attempts", user) == attempt
    assert try_login(cli, user).exit_code == 6
    fifth = try_login(cli, user, "--otp", other_code(last_sms_code(cli)))
    assert (fifth.exit_code, fifth.stdout, fifth.stderr) == (8, "", LOCKED)
    assert column(store_url, "locked_at", user) is not None
    assert actions(store_url).count("otp.sent") >= 5


def test_a_locked_account_refuses_the_right_authenticator_code_like_a_wrong_one(cli, user, store_url):
    login(cli, user)  # with a code: a stepped-up session, so the user may enrol an authenticator
    totp = pyotp.TOTP(enroll(cli))
    lock(cli, user)
    mark = last_event_id(store_url)
    step = column(store_url, "totp_last_step", user)
    clock.advance(timedelta(seconds=30))
    right = try_login(cli, user, "--totp", "--otp", totp.at(clock.now()))
    wrong = try_login(cli, user, "--totp", "--otp", other_code(totp.at(clock.now())), password=WRONG_PASSWORD)
    unattended = cli("login", user, "--totp", env={"PEPSCTL_PASSWORD": PASSWORD, "PEPSCTL_TOTP_SECRET": totp.secret})
    for result in (right, wrong, unattended):
        assert (result.exit_code, result.stdout, result.stderr) == (8, "", LOCKED)
    assert actions(store_url, mark) == ["auth.refused.locked"] * 3
    assert column(store_url, "totp_last_step", user) == step  # the right code was not even consumed


def test_a_locked_account_cannot_pass_a_step_up_even_with_the_right_code(cli, user, store_url, isolate):
    login(cli, user)
    relogin(cli, user)  # a trusted workstation: a session that is not stepped up
    args = ("me", "update", "--email", "p.martin@example.fr")
    assert cli(*args).exit_code == 6  # a step-up code was sent
    code = last_sms_code(cli)
    user_session = session_tokens(isolate)
    for _attempt in range(5):  # locked from elsewhere (failures leave this session's token in the keyring)
        try_login(cli, user, password=WRONG_PASSWORD)
    use_token(isolate, user_session[0])
    right = cli(*args, "--otp", code)
    wrong = cli(*args, "--otp", other_code(code))
    assert right.exit_code == wrong.exit_code == 6
    assert right.stdout == wrong.stdout == ""
    assert right.stderr == wrong.stderr
    assert column(store_url, "email", user) == USER_EMAIL
    assert "auth.stepup" not in actions(store_url)


def test_password_forgot_on_a_locked_account_answers_the_same_and_unlocks_nothing_by_itself(cli, user, store_url):
    lock(cli, user)
    locked = cli("password", "forgot", user, "--email", USER_EMAIL)
    unknown = cli("password", "forgot", "ZZZ999999", "--email", USER_EMAIL)
    for result in (locked, unknown):
        assert (result.exit_code, result.stdout, result.stderr) == (0, "", FORGOT)
    code = last_code(cli, USER_EMAIL)
    # Until the reset code is used, the lock stands: the right password and a wrong reset code are refused.
    right = try_login(cli, user)
    assert (right.exit_code, right.stdout, right.stderr) == (8, "", LOCKED)
    assert code != "AAAA-AAAA-AAAA"
    wrong = set_password(cli, user, "AAAA-AAAA-AAAA", NEW_PASSWORD)
    assert (wrong.exit_code, wrong.stdout, wrong.stderr) == (6, "", BAD_CODE)
    assert column(store_url, "locked_at", user) is not None
    assert try_login(cli, user, password=NEW_PASSWORD).exit_code == 8
    # The reset code itself is the way out.
    assert set_password(cli, user, code, NEW_PASSWORD).exit_code == 0
    assert column(store_url, "locked_at", user) is None


def test_unlock_ends_the_sessions_and_workstation_trusts_left_open_in_the_store(cli, user, admin_a, store_url, isolate):
    """Locking already ends them; unlocking ends them again, whatever the store held (a lock set by hand)."""
    from tests.commands.test_accounts import set_account

    login(cli, user)  # a session and a workstation trust for the user
    set_account(store_url, user, locked_at=clock.now())  # a lock that left them open
    open_rows = (
        "SELECT (SELECT count(*) FROM auth_session s JOIN account a ON a.id = s.account_id "
        "WHERE a.identifier = :i AND s.revoked_at IS NULL), "
        "(SELECT count(*) FROM trusted_device t JOIN account a ON a.id = t.account_id "
        "WHERE a.identifier = :i AND t.revoked_at IS NULL)"
    )
    assert query(store_url, open_rows, i=user) == [(1, 1)]
    relogin(cli, admin_a)
    done = cli("accounts", "unlock", user, "--yes")
    assert done.exit_code == 0, done.stderr
    assert query(store_url, open_rows, i=user) == [(0, 0)]
    # The administrator starts the reset but never sees the code: it went to the user's e-mail only.
    reset = last_code(cli, USER_EMAIL)
    assert reset not in done.stdout + done.stderr
    assert reset.replace("-", "") not in done.stdout + done.stderr


def session_tokens_of(url: str, identifier: str) -> int:
    return scalar(
        url,
        "SELECT count(*) FROM auth_session s JOIN account a ON a.id = s.account_id WHERE a.identifier = :i",
        i=identifier,
    )


def test_only_an_administrator_of_the_same_establishment_unlocks(cli, user, admin_a, store_url):
    colleague = create_account(cli, "Anne", "Roux", phone="06 22 33 44 55")
    lock(cli, user)
    # Another establishment's administrator: refused.
    quick_admin(store_url, SIRET_B, last="Bernard", first="Luc", phone="06 50 60 70 80")
    refused = cli("accounts", "unlock", user, "--yes")
    assert (refused.exit_code, refused.stdout) == (7, "")
    # A user of the same establishment: refused.
    login(cli, colleague)
    assert cli("accounts", "unlock", user, "--yes").exit_code == 7
    assert column(store_url, "locked_at", user) is not None
    # The administrator of A: done.
    relogin(cli, admin_a)
    mark = last_event_id(store_url)
    done = cli("accounts", "unlock", user, "--yes")
    assert done.exit_code == 0, done.stderr
    assert USER_EMAIL in done.stderr
    assert actions(store_url, mark) == ["account.unlock"]
    assert column(store_url, "locked_at", user) is None
    assert column(store_url, "failed_attempts", user) == 0
    assert actions(store_url).count("permission.denied") == 2
    # The old password no longer opens the account: a new one must be set from the e-mailed code.
    old = try_login(cli, user)
    assert (old.exit_code, old.stdout) == (6, "")
    assert old.stderr.startswith("Error: A new password must be set for this account.\n")
    assert subjects(cli, USER_EMAIL)[-2:] == [
        f"Your PEP's account {user} is locked",
        f"Reset the password of your PEP's account {user}",
    ]
    assert set_password(cli, user, last_code(cli, USER_EMAIL), NEW_PASSWORD).exit_code == 0
    assert subjects(cli, USER_EMAIL)[-1] == "Your PEP's password was changed"
    assert try_login(cli, user, password=PASSWORD).exit_code == 6
    assert try_login(cli, user, password=NEW_PASSWORD).exit_code == 6  # a code: workstation trust ended
    assert try_login(cli, user, "--otp", last_sms_code(cli), password=NEW_PASSWORD).exit_code == 0


def test_unlocking_an_account_that_is_not_locked_is_refused(cli, user):
    result = cli("accounts", "unlock", user, "--yes")
    assert (result.exit_code, result.stdout) == (5, "")
    assert result.stderr.startswith(f"Error: {user} is not locked.\n")


# -- password forgot / set -------------------------------------------------------------------------


def test_password_forgot_answers_the_same_whatever_it_is_given(cli, user, store_url):
    mails = len(cli.json("outbox", "list"))
    answers = [
        cli("password", "forgot", user, "--email", USER_EMAIL),
        cli("password", "forgot", user, "--email", "someone.else@example.fr"),
        cli("password", "forgot", "ZZZ999999", "--email", USER_EMAIL),
        cli("password", "forgot", "not an identifier", "--email", "not an e-mail"),
    ]
    for result in answers:
        assert (result.exit_code, result.stdout, result.stderr) == (0, "", FORGOT)
    sent = cli.json("outbox", "list")[mails:]
    assert [(m["to"], m["subject"]) for m in sent] == [(USER_EMAIL, f"Reset the password of your PEP's account {user}")]
    assert actions(store_url).count("auth.reset.requested") == 1
    assert actions(store_url).count("auth.reset.unmatched") == 3


def test_a_reset_code_is_accepted_until_24_hours(cli, user, store_url):
    cli.ok("password", "forgot", user, "--email", USER_EMAIL)
    code = last_code(cli, USER_EMAIL)
    clock.advance(timedelta(hours=24, seconds=-1))
    assert set_password(cli, user, code, NEW_PASSWORD).exit_code == 0
    assert try_login(cli, user, password=NEW_PASSWORD).exit_code == 6  # the code is asked, the password was right
    assert "auth.password.set" in actions(store_url)


def test_a_reset_code_is_refused_at_24_hours(cli, user, store_url):
    cli.ok("password", "forgot", user, "--email", USER_EMAIL)
    code = last_code(cli, USER_EMAIL)
    hashed = column(store_url, "password_hash", user)
    clock.advance(timedelta(hours=24))
    result = set_password(cli, user, code, NEW_PASSWORD)
    assert (result.exit_code, result.stdout, result.stderr) == (6, "", BAD_CODE)
    assert column(store_url, "password_hash", user) == hashed
    assert column(store_url, "failed_attempts", user) == 1  # a failed code counts


def test_a_password_reset_sets_the_password_and_ends_the_lock(cli, user, store_url):
    lock(cli, user)
    cli.ok("password", "forgot", user, "--email", USER_EMAIL)  # a locked person can still reset
    assert set_password(cli, user, last_code(cli, USER_EMAIL), NEW_PASSWORD).exit_code == 0
    assert column(store_url, "locked_at", user) is None
    assert column(store_url, "failed_attempts", user) == 0
    assert try_login(cli, user, password=PASSWORD).exit_code == 6
    assert try_login(cli, user, password=NEW_PASSWORD).exit_code == 6
    assert try_login(cli, user, "--otp", last_sms_code(cli), password=NEW_PASSWORD).exit_code == 0
    assert subjects(cli, USER_EMAIL)[-3:] == [
        f"Your PEP's account {user} is locked",
        f"Reset the password of your PEP's account {user}",
        "Your PEP's password was changed",
    ]


# -- password change -------------------------------------------------------------------------------


def test_password_change_refuses_a_wrong_current_password_and_counts_it(cli, admin_a, store_url):
    sent = len(cli.json("outbox", "list"))
    for attempt in range(1, 5):
        result = change_password(cli, WRONG_PASSWORD, NEW_PASSWORD)
        assert (result.exit_code, result.stdout) == (6, ""), attempt
        assert result.stderr.startswith("Error: The current password is wrong.\n")
        assert column(store_url, "failed_attempts", admin_a) == attempt
    assert len(cli.json("outbox", "list")) == sent  # no code for a wrong password
    fifth = change_password(cli, WRONG_PASSWORD, NEW_PASSWORD)
    assert (fifth.exit_code, fifth.stderr) == (8, LOCKED)
    assert cli("whoami").exit_code == 6  # the lock ended the session


def test_password_change_ends_every_other_session_and_workstation_trust(cli, admin_a, store_url, isolate):
    (other_session,) = session_tokens(isolate)
    relogin(cli, admin_a)  # this session changes the password; the other one is elsewhere
    first = change_password(cli, PASSWORD, NEW_PASSWORD)
    assert first.exit_code == 6
    assert "(password.change)" in first.stderr
    done = change_password(cli, PASSWORD, NEW_PASSWORD, "--otp", last_sms_code(cli))
    assert done.exit_code == 0, done.stderr
    assert "auth.password.changed" in actions(store_url)
    assert subjects(cli, "marie.durand@21999001700010.example.fr")[-1] == "Your PEP's password was changed"
    assert cli("whoami").exit_code == 0  # this session goes on
    (this_session,) = session_tokens(isolate)
    use_token(isolate, other_session)
    ended = cli("whoami")
    assert (ended.exit_code, ended.stdout) == (6, "")
    use_token(isolate, this_session)
    cli.ok("logout")
    assert try_login(cli, admin_a).stderr.startswith(BAD_CREDENTIALS)
    trusted_before = try_login(cli, admin_a, password=NEW_PASSWORD)
    assert trusted_before.exit_code == 6  # the workstation is no longer trusted: a code again
    assert trusted_before.stderr.startswith("Error: A one-time code was sent by SMS")


def test_password_change_refuses_the_same_password(cli, admin_a, store_url):
    result = change_password(cli, PASSWORD, PASSWORD)
    assert (result.exit_code, result.stdout) == (3, "")
    assert column(store_url, "failed_attempts", admin_a) == 0


# -- no secret ever leaks --------------------------------------------------------------------------


@dataclass
class RecordingCli(Cli):
    """The fixture's CLI, keeping every result (but the outbox's, the test's window on the gateway)."""

    seen: list = field(default_factory=list)

    def __call__(self, *args: str, input: str | None = None, env: dict[str, str] | None = None):
        result = super().__call__(*args, input=input, env=env)
        if args[0] != "outbox":
            self.seen.append((args, result))
        return result


# Distinctive one-time codes (secrets.randbelow patched): a random 6-digit code could match a
# SIRET, a phone number or a timestamp by chance and make the scan flaky.
FORCED_CODES = [583071, 694182, 705293, 816304, 927415, 438526, 549637, 650748, 761859, 872960]


def test_no_secret_appears_in_the_history_the_output_or_the_store(cli, store_url, isolate, monkeypatch):
    from pepsctl.domain import otp

    draws = iter(FORCED_CODES)
    monkeypatch.setattr(otp.secrets, "randbelow", lambda n: next(draws))
    kept: list[str] = []  # every session and trust token the keyring was given
    original = isolate.set_password

    def keep(service: str, name: str, value: str) -> None:
        kept.append(value)
        original(service, name, value)

    monkeypatch.setattr(isolate, "set_password", keep)
    run = RecordingCli(cli.store, cli.runner)

    # A scripted session: registration, activation, logins, a user, an authenticator, a reset, a change.
    admin = register(run, SIRET_A)
    login(run, admin)
    agent = create_account(run, "Paul", "Martin", phone="06 11 22 33 44", activate_it=False)
    activation = last_code(run, USER_EMAIL)
    assert set_password(run, agent, activation, PASSWORD).exit_code == 0
    started = run.ok("me", "totp", "enroll")
    run.seen.pop()  # the secret is shown there, once, by design
    (secret,) = parse_qs(urlparse(started.stdout.strip()).query)["secret"]
    run.ok("me", "totp", "enroll", "--code", pyotp.TOTP(secret).at(clock.now()))
    clock.advance(timedelta(seconds=30))
    run.ok("login", admin, "--password-stdin", "--totp", input=PASSWORD + "\n", env={"PEPSCTL_TOTP_SECRET": secret})
    assert try_login(run, agent, password=WRONG_PASSWORD).exit_code == 6
    assert try_login(run, agent).exit_code == 6
    assert try_login(run, agent, "--otp", "000000").exit_code == 6  # a wrong code
    login(run, agent)
    assert try_login(run, agent, "--otp", "000000").exit_code == 0  # trusted: the code is not read
    run.ok("password", "forgot", agent, "--email", USER_EMAIL)
    reset = last_code(run, USER_EMAIL)
    assert set_password(run, agent, reset, NEW_PASSWORD).exit_code == 0
    assert try_login(run, agent, password=NEW_PASSWORD).exit_code == 6
    assert try_login(run, agent, "--otp", last_sms_code(run), password=NEW_PASSWORD).exit_code == 0
    assert try_login(run, agent, password=NEW_PASSWORD).exit_code == 0  # trusted: a session not stepped up
    assert change_password(run, NEW_PASSWORD, WRONG_PASSWORD + "-2").exit_code == 6
    assert change_password(run, NEW_PASSWORD, WRONG_PASSWORD + "-2", "--otp", last_sms_code(run)).exit_code == 0
    forget_trust(isolate)
    login(run, admin)
    history = run.ok("history", "--format", "json").stdout
    run.ok("history", "verify")
    run.json("outbox", "list")  # lets the outbox blank what has expired

    used_codes = [f"{n:06d}" for n in FORCED_CODES[: len(FORCED_CODES) - sum(1 for _ in draws)]]
    assert len(used_codes) >= 6, used_codes
    secrets_ = {
        "password": PASSWORD,
        "new password": NEW_PASSWORD,
        "changed password": WRONG_PASSWORD + "-2",
        "activation code": activation,
        "reset code": reset,
        "TOTP secret": secret,
        **{f"one-time code {code}": code for code in used_codes},
        **{f"token {i}": token for i, token in enumerate(kept)},
    }
    assert len(kept) >= 6  # sessions and trust tokens

    def leaks(text: str) -> list[str]:
        found = []
        for name, value in secrets_.items():
            pattern = rf"(?<![0-9]){re.escape(value)}(?![0-9])" if value.isdigit() else re.escape(value)
            if re.search(pattern, text):
                found.append(name)
        return found

    # Every authentication event is in the history, and none of them says a secret.
    recorded = {event["action"] for event in json.loads(history)}
    assert {
        "otp.sent",
        "otp.verified",
        "otp.wrong",
        "auth.failed",
        "auth.login",
        "auth.stepup",
        "auth.reset.requested",
        "auth.password.set",
        "auth.password.changed",
        "totp.enrolled",
        "totp.verified",
    } <= recorded, recorded
    assert leaks(history) == []
    for args, result in run.seen:
        assert leaks(result.stdout + result.stderr) == [], args
    assert leaks(store_text(store_url)) == []


def store_text(url: str) -> str:
    """Every cell of every table, as text, but the hash columns (hex that a short code could match by
    chance) and account.totp_secret: the TOTP secret must be kept for the server to compute codes, so
    it is in that column by design (security.md: stored encrypted or at least never displayed again)."""
    from sqlalchemy import select
    from sqlmodel import SQLModel

    import pepsctl.store.models  # noqa: F401 - registers the tables
    from pepsctl.store.engine import create_store_engine, parse_store_url

    engine = create_store_engine(parse_store_url(url))
    lines = []
    try:
        with engine.connect() as conn:
            for table in SQLModel.metadata.sorted_tables:
                columns = [
                    c
                    for c in table.columns
                    if not c.name.endswith("hash") and (table.name, c.name) != ("account", "totp_secret")
                ]
                lines += [repr(tuple(row)) for row in conn.execute(select(*columns))]
    finally:
        engine.dispose()
    assert len(lines) > 50
    return "\n".join(lines)
