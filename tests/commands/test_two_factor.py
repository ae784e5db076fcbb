"""Two-factor authentication through the CLI, on SQLite and PostgreSQL.

- Login: a one-time code at the first login and again once the workstation's trust (7 days from
  the code, not sliding) has run out; a phone given at the first login of an account with none;
  malformed codes refused without consuming anything.
- Step-up: every sensitive action is refused without a code (exit 6, nothing written) and done
  with one; the code then holds for the rest of the session; a session opened on a trusted
  workstation (no code) is not stepped up.
- A phone change by the person: a code to the old number, then one to the new number.
- Authenticator apps (TOTP): enrolment, each time step once, unattended use with
  PEPSCTL_TOTP_SECRET, wrong codes counted.

The store is read directly where a rule is about what it holds (rows written or not, counters).
"""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest

from pepsctl import clock
from tests.conftest import (
    PASSWORD,
    SIRET_A,
    create_account,
    last_sms_code,
    register,
)

ADMIN_PHONE = "+33610203040"
ADMIN_MASKED = "+33 6 •• •• •• 40"
ADMIN_EMAIL = "marie.durand@21999001700010.example.fr"
CODE_SENT = (
    f"Error: A one-time code was sent by SMS to {ADMIN_MASKED}.\n"
    "Hint: Run the same command again with --otp CODE (valid 5 minutes).\n"
)
WRONG_CODE = (
    "Error: Wrong, used or expired code.\nHint: Run the same command again without --otp to receive a new code.\n"
)
MALFORMED = "Error: A one-time code is 6 digits.\nHint: Type the 6 digits received by SMS or voice call.\n"
NEW_ACCOUNT = (
    "accounts",
    "create",
    "--profile",
    "user",
    "--civility",
    "MME",
    "--last-name",
    "Dupont",
    "--first-name",
    "Jeanne",
    "--email",
    "jeanne.dupont@example.fr",
)


# -- helpers ---------------------------------------------------------------------------------------


def query(url: str, sql: str, **params) -> list[tuple]:
    from sqlalchemy import text

    from pepsctl.store.engine import create_store_engine, parse_store_url

    engine = create_store_engine(parse_store_url(url))
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def scalar(url: str, sql: str, **params):
    ((value,),) = query(url, sql, **params)
    return value


def actions(url: str, since_id: int = 0) -> list[str]:
    return [a for (a,) in query(url, "SELECT action FROM audit_event WHERE id > :i ORDER BY id", i=since_id)]


def last_event_id(url: str) -> int:
    return scalar(url, "SELECT coalesce(max(id), 0) FROM audit_event")


def phone_messages(cli) -> list[dict]:
    return [m for m in cli.json("outbox", "list") if m["channel"] in ("sms", "voice")]


def try_login(cli, identifier: str, *extra: str, password: str = PASSWORD, env: dict | None = None):
    return cli("login", identifier, "--password-stdin", *extra, input=password + "\n", env=env)


def relogin(cli, identifier: str) -> None:
    """A new session on this (trusted) workstation: no code asked, so the session is not stepped up."""
    result = try_login(cli, identifier, "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["stepped_up"] is False


def quick_admin(
    store_url: str,
    siret: str = SIRET_A,
    *,
    last: str = "Durand",
    first: str = "Marie",
    phone: str = "06 10 20 30 40",
) -> str:
    """What conftest's register() + login() leave (an active administrator logged in with a code on a
    trusted workstation), made through the domain rather than eight CLI calls: the files stay fast.
    The CLI paths themselves are tested below (first login, registration)."""
    from pepsctl.context import AppContext
    from pepsctl.domain import auth, establishments
    from pepsctl.domain.models import FundContract, NewAdministrator, NewEstablishment
    from pepsctl.errors import OtpRequired

    email = f"{first.lower()}.{last.lower()}@{siret}.example.fr"
    new = NewEstablishment(
        siret=siret,
        name=f"Mairie {siret[:5]}",
        funds=(FundContract("CNRACL", "C-1234"),),
        via="classic",
        admin=NewAdministrator("MME", last, first, email, phone),
    )
    app = AppContext(store_option=store_url)

    def newest_code(channels: tuple[str, ...]) -> str:
        from sqlalchemy import text

        with app.engine().connect() as conn:
            rows = conn.execute(text("SELECT channel, code FROM outbox_message WHERE code IS NOT NULL ORDER BY id"))
            return [code for channel, code in rows if channel in channels][-1]

    try:
        with app.env(auth=False) as env:
            identifier = establishments.register(env, new, require_code=False).administrator
        with app.env(auth=False) as env:
            auth.set_password(env, identifier, newest_code(("email",)), PASSWORD)
        with pytest.raises(OtpRequired), app.env(auth=False) as env:
            auth.login(env, auth.LoginRequest(identifier, PASSWORD))
        with app.env(auth=False) as env:
            result = auth.login(env, auth.LoginRequest(identifier, PASSWORD, otp=newest_code(("sms", "voice"))))
        assert result.trust_token is not None
        app.save_token(result.token)
        app.keep_secret(app.trust_name(identifier), result.trust_token)
    finally:
        app.dispose()
    return identifier


@pytest.fixture
def admin_a(store_url) -> str:
    """Establishment A, its administrator active and logged in (stepped up, workstation trusted)."""
    return quick_admin(store_url)


def other_code(code: str) -> str:
    """A well-formed code that is not ``code``."""
    return f"{(int(code) + 1) % 1_000_000:06d}"


def session_tokens(keyring) -> list[str]:
    return [v for (service, key), v in keyring.items.items() if service == "pepsctl" and key.startswith("session:")]


def use_token(keyring, token: str) -> None:
    """Put ``token`` back as this store's session (as if another terminal used it)."""
    for key in list(keyring.items):
        if key[0] == "pepsctl" and key[1].startswith("session:"):
            keyring.items[key] = token


def forget_trust(keyring) -> None:
    for key in [k for k in keyring.items if k[0] == "pepsctl" and k[1].startswith("trust:")]:
        del keyring.items[key]


# -- login -----------------------------------------------------------------------------------------


def test_the_first_login_needs_a_code_sent_to_the_masked_number(cli, store_url, isolate):
    identifier = register(cli, SIRET_A)
    mark = last_event_id(store_url)
    first = try_login(cli, identifier)
    assert (first.exit_code, first.stdout, first.stderr) == (6, "", CODE_SENT)
    assert ADMIN_PHONE not in first.stderr
    assert session_tokens(isolate) == []  # no session yet
    assert phone_messages(cli)[-1]["to"] == ADMIN_PHONE
    done = try_login(cli, identifier, "--otp", last_sms_code(cli))
    assert done.exit_code == 0, done.stderr
    assert cli.json("whoami")["stepped_up"] is True  # the login code steps the session up
    assert actions(store_url, mark) == ["otp.sent", "otp.verified", "auth.login"]


def test_the_next_login_on_the_same_workstation_needs_no_code(cli, admin_a, store_url):
    cli.ok("logout")
    relogin(cli, admin_a)
    login_event = query(store_url, "SELECT after FROM audit_event WHERE action = 'auth.login' ORDER BY id")[-1][0]
    assert json.loads(login_event)["second_factor"] == "trusted"


def test_another_workstation_needs_a_code(cli, admin_a, isolate):
    forget_trust(isolate)  # what a second computer looks like: no trust token for this account
    result = try_login(cli, admin_a)
    assert (result.exit_code, result.stderr) == (6, CODE_SENT)


def test_workstation_trust_lasts_7_days_from_the_code_not_sliding(cli, admin_a):
    start = clock.now()  # admin_a verified its login code now
    for _day in range(6):
        clock.advance(timedelta(days=1))
        assert cli("whoami").exit_code == 6  # the session itself ended long ago (30 min idle)
        relogin(cli, admin_a)  # activity every day: it must not extend the trust
        assert cli("whoami").exit_code == 0
    clock.advance(start + timedelta(days=7, seconds=-1) - clock.now())
    relogin(cli, admin_a)
    clock.advance(timedelta(seconds=1))  # exactly 7 days after the code
    result = try_login(cli, admin_a)
    assert (result.exit_code, result.stderr) == (6, CODE_SENT)
    assert try_login(cli, admin_a, "--otp", last_sms_code(cli)).exit_code == 0
    assert cli.json("whoami")["stepped_up"] is True


def test_an_account_with_no_phone_gives_one_at_its_first_login(cli, admin_a, store_url):
    identifier = create_account(cli, "Paul", "Martin")  # no phone
    result = try_login(cli, identifier)
    assert (result.exit_code, result.stdout) == (6, "")
    assert result.stderr.startswith("Error: Your account has no phone number for one-time codes.\n")
    assert "--phone" in result.stderr
    sent = len(phone_messages(cli))
    result = try_login(cli, identifier, "--phone", "07 81 00 00 02")
    assert result.exit_code == 6
    assert result.stderr.startswith("Error: A one-time code was sent by SMS to +33 7 •• •• •• 02.\n")
    messages = phone_messages(cli)
    assert len(messages) == sent + 1
    assert (messages[-1]["channel"], messages[-1]["to"]) == ("sms", "+33781000002")
    # The phone is stored only once its code came back.
    assert scalar(store_url, "SELECT phone FROM account WHERE identifier = :i", i=identifier) is None
    code = messages[-1]["code"]
    assert try_login(cli, identifier, "--phone", "07 81 00 00 02", "--otp", other_code(code)).exit_code == 6
    assert scalar(store_url, "SELECT phone FROM account WHERE identifier = :i", i=identifier) is None
    assert try_login(cli, identifier, "--phone", "07 81 00 00 02", "--otp", code).exit_code == 0
    me = cli.json("me", "show")
    assert (me["phone"], me["phone_type"], me["phone_verified"]) == ("+33781000002", "mobile", True)
    assert "account.phone.set" in actions(store_url)


def test_a_landline_gets_its_login_code_by_voice_call(cli, admin_a):
    identifier = create_account(cli, "Paul", "Martin", phone="01 42 68 53 00")
    result = try_login(cli, identifier)
    assert result.exit_code == 6
    assert result.stderr.startswith("Error: A one-time code was sent by voice call to +33 1 •• •• •• 00.\n")
    message = phone_messages(cli)[-1]
    assert (message["channel"], message["to"]) == ("voice", "+33142685300")
    assert try_login(cli, identifier, "--otp", message["code"]).exit_code == 0


def test_login_with_totp_and_no_authenticator_enrolled(cli, admin_a, isolate):
    forget_trust(isolate)
    sent = len(phone_messages(cli))
    result = try_login(cli, admin_a, "--totp", "--otp", "123456")
    assert (result.exit_code, result.stdout) == (6, "")
    assert result.stderr == (
        "Error: No authenticator app is enrolled for this account.\n"
        "Hint: Log in without --totp to receive a code by SMS or voice call.\n"
    )
    assert len(phone_messages(cli)) == sent


MALFORMED_CODES = {
    "full-width": "１２３４５６",
    "arabic-indic": "١٢٣٤٥٦",
    "letters": "abcdef",
    "5 digits": "12345",
    "7 digits": "1234567",
    "whitespace": "   ",
    "one full-width digit": "12345６",
}


def test_a_malformed_login_code_is_refused_and_consumes_nothing(cli, admin_a, isolate, store_url):
    forget_trust(isolate)
    assert try_login(cli, admin_a).exit_code == 6
    code = last_sms_code(cli)
    for name, bad in MALFORMED_CODES.items():
        result = try_login(cli, admin_a, "--otp", bad)
        assert (result.exit_code, result.stdout, result.stderr) == (3, "", MALFORMED), name
    assert scalar(store_url, "SELECT failed_attempts FROM account WHERE identifier = :i", i=admin_a) == 0
    assert last_sms_code(cli) == code  # neither used nor replaced
    assert try_login(cli, admin_a, "--otp", code).exit_code == 0


def test_an_empty_otp_option_is_a_usage_error_and_consumes_nothing(cli, admin_a, isolate):
    forget_trust(isolate)
    assert try_login(cli, admin_a).exit_code == 6
    code = last_sms_code(cli)
    sent = len(phone_messages(cli))
    result = try_login(cli, admin_a, "--otp", "")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.startswith("Error: ")
    assert "Traceback" not in result.output
    assert len(phone_messages(cli)) == sent  # no new code: the pending one still works
    assert try_login(cli, admin_a, "--otp", code).exit_code == 0


def test_a_wrong_login_code_is_refused_and_counted(cli, admin_a, isolate, store_url):
    forget_trust(isolate)
    assert try_login(cli, admin_a).exit_code == 6
    code = last_sms_code(cli)
    mark = last_event_id(store_url)
    result = try_login(cli, admin_a, "--otp", other_code(code))
    assert (result.exit_code, result.stdout, result.stderr) == (6, "", WRONG_CODE)
    assert actions(store_url, mark) == ["otp.wrong", "auth.failed"]
    assert try_login(cli, admin_a, "--otp", code).exit_code == 0
    assert try_login(cli, admin_a, "--otp", code).exit_code == 0  # trusted now: the code is not even read
    forget_trust(isolate)
    mark = last_event_id(store_url)
    replay = try_login(cli, admin_a, "--otp", code)
    assert (replay.exit_code, replay.stderr) == (6, WRONG_CODE)
    assert actions(store_url, mark) == ["otp.replayed", "auth.failed"]


def test_a_login_code_lives_exactly_300_seconds(cli, admin_a, isolate, store_url):
    forget_trust(isolate)
    assert try_login(cli, admin_a).exit_code == 6
    code = last_sms_code(cli)
    clock.advance(timedelta(seconds=300))
    mark = last_event_id(store_url)
    late = try_login(cli, admin_a, "--otp", code)
    assert (late.exit_code, late.stderr) == (6, WRONG_CODE)
    assert actions(store_url, mark) == ["otp.expired", "auth.failed"]
    assert phone_messages(cli)[-1]["code"] is None  # blanked in the outbox once expired
    assert try_login(cli, admin_a).exit_code == 6
    code = last_sms_code(cli)
    clock.advance(timedelta(seconds=299))
    assert try_login(cli, admin_a, "--otp", code).exit_code == 0


def test_a_new_code_replaces_the_one_before(cli, admin_a, isolate, store_url):
    forget_trust(isolate)
    assert try_login(cli, admin_a).exit_code == 6
    first = last_sms_code(cli)
    assert try_login(cli, admin_a).exit_code == 6
    second = last_sms_code(cli)
    assert [m["code"] for m in phone_messages(cli)[-2:]] == [None, second]
    if first != second:  # one chance in a million that both draws are equal
        mark = last_event_id(store_url)
        assert try_login(cli, admin_a, "--otp", first).exit_code == 6
        assert actions(store_url, mark) == ["otp.replaced", "auth.failed"]
    assert try_login(cli, admin_a, "--otp", second).exit_code == 0


def test_at_most_five_codes_in_15_minutes(cli, admin_a, isolate, store_url):
    forget_trust(isolate)
    sent = len(phone_messages(cli))
    for _ in range(4):  # the fixture's login code was the first of the window
        assert try_login(cli, admin_a).exit_code == 6
    assert len(phone_messages(cli)) == sent + 4
    sixth = try_login(cli, admin_a)
    assert (sixth.exit_code, sixth.stdout) == (5, "")
    assert sixth.stderr.startswith("Error: Too many codes were sent in the last 15 minutes.\n")
    assert len(phone_messages(cli)) == sent + 4  # nothing sent
    assert actions(store_url)[-1] == "otp.rate_limited"
    clock.advance(timedelta(minutes=15))
    again = try_login(cli, admin_a)
    assert (again.exit_code, again.stderr) == (6, CODE_SENT)
    assert try_login(cli, admin_a, "--otp", last_sms_code(cli)).exit_code == 0


# -- step-up ---------------------------------------------------------------------------------------


def count_accounts(url: str) -> int:
    return scalar(url, "SELECT count(*) FROM account")


def test_registration_needs_a_code_and_writes_nothing_without_it(cli, store_url):
    args = (
        "establishments",
        "register",
        "--siret",
        SIRET_A,
        "--name",
        "Mairie de Test",
        "--fund",
        "CNRACL=C-1234",
        "--admin-civility",
        "MME",
        "--admin-last-name",
        "Durand",
        "--admin-first-name",
        "Marie",
        "--admin-email",
        "marie.durand@example.fr",
        "--admin-phone",
        "06 10 20 30 40",
    )
    first = cli(*args)
    assert (first.exit_code, first.stdout) == (6, "")
    assert first.stderr.startswith(
        f"Error: This action (establishment.register) needs a one-time code: one was sent by SMS to {ADMIN_MASKED}.\n"
    )
    code = last_sms_code(cli)
    assert cli(*args, "--otp", other_code(code)).exit_code == 6
    assert scalar(store_url, "SELECT count(*) FROM establishment") == 0
    assert count_accounts(store_url) == 0
    assert cli(*args, "--otp", code).exit_code == 0
    assert scalar(store_url, "SELECT count(*) FROM establishment") == 1
    # Before the account exists the code is bound to the SIRET and the phone: the history masks it.
    events = query(store_url, "SELECT action, target FROM audit_event WHERE action LIKE 'otp.%' ORDER BY id")
    assert events == [
        ("otp.sent", f"{SIRET_A}:{ADMIN_MASKED}"),
        ("otp.wrong", f"{SIRET_A}:{ADMIN_MASKED}"),
        ("otp.verified", f"{SIRET_A}:{ADMIN_MASKED}"),
    ]
    assert "610203040" not in repr(query(store_url, "SELECT * FROM audit_event"))


def test_accounts_create_needs_a_code(cli, admin_a, store_url):
    relogin(cli, admin_a)
    mark = last_event_id(store_url)
    first = cli(*NEW_ACCOUNT)
    assert (first.exit_code, first.stdout) == (6, "")
    assert first.stderr == (
        f"Error: This action (account.create) needs a one-time code: one was sent by SMS to {ADMIN_MASKED}.\n"
        "Hint: Run the same command again with --otp CODE (valid 5 minutes).\n"
    )
    assert count_accounts(store_url) == 1
    assert actions(store_url, mark) == ["otp.sent"]
    assert cli.json("whoami")["stepped_up"] is False
    done = cli(*NEW_ACCOUNT, "--otp", last_sms_code(cli))
    assert done.exit_code == 0, done.stderr
    assert count_accounts(store_url) == 2
    assert actions(store_url, mark)[1:4] == ["otp.verified", "auth.stepup", "account.create"]


def test_a_malformed_step_up_code_writes_nothing(cli, admin_a, store_url):
    relogin(cli, admin_a)
    assert cli(*NEW_ACCOUNT).exit_code == 6
    code = last_sms_code(cli)
    for name, bad in MALFORMED_CODES.items():
        result = cli(*NEW_ACCOUNT, "--otp", bad)
        assert (result.exit_code, result.stdout, result.stderr) == (3, "", MALFORMED), name
    empty = cli(*NEW_ACCOUNT, "--otp", "")
    assert (empty.exit_code, empty.stdout) == (2, "")
    assert count_accounts(store_url) == 1
    assert last_sms_code(cli) == code  # still the one pending code
    assert cli(*NEW_ACCOUNT, "--otp", code).exit_code == 0


def test_a_step_up_code_is_bound_to_its_session(cli, admin_a, store_url):
    relogin(cli, admin_a)
    assert cli(*NEW_ACCOUNT).exit_code == 6
    code = last_sms_code(cli)
    relogin(cli, admin_a)  # another session: the code was for the first one
    result = cli(*NEW_ACCOUNT, "--otp", code)
    assert (result.exit_code, result.stderr) == (6, WRONG_CODE)
    assert count_accounts(store_url) == 1


def test_a_step_up_code_is_bound_to_the_action_it_was_sent_for(cli, admin_a, store_url):
    other = create_account(cli, "Paul", "Martin", phone="06 11 22 33 44", activate_it=False)
    relogin(cli, admin_a)
    assert cli(*NEW_ACCOUNT).exit_code == 6  # a code for account.create
    code = last_sms_code(cli)
    elsewhere = cli("accounts", "update", other, "--phone", "07 81 22 33 44", "--otp", code)
    assert (elsewhere.exit_code, elsewhere.stderr) == (6, WRONG_CODE)
    assert scalar(store_url, "SELECT phone FROM account WHERE identifier = :i", i=other) == "+33611223344"
    assert cli.json("whoami")["stepped_up"] is False
    assert cli(*NEW_ACCOUNT, "--otp", code).exit_code == 0  # where it belongs, it still works
    assert count_accounts(store_url) == 3


def test_a_step_up_code_is_bound_to_the_target_it_was_sent_for(cli, admin_a, store_url):
    """security.md: a code is bound to "a given sensitive action on a given target"."""
    first = create_account(cli, "Paul", "Martin", phone="06 11 22 33 44", activate_it=False)
    second = create_account(cli, "Anne", "Martin", phone="06 11 22 33 55", activate_it=False)
    relogin(cli, admin_a)
    assert cli("accounts", "update", first, "--phone", "07 81 22 33 44").exit_code == 6  # a code for `first`
    code = last_sms_code(cli)
    elsewhere = cli("accounts", "update", second, "--phone", "07 81 22 33 55", "--otp", code)
    assert (elsewhere.exit_code, elsewhere.stderr) == (6, WRONG_CODE)
    assert scalar(store_url, "SELECT phone FROM account WHERE identifier = :i", i=second) == "+33611223355"
    assert cli.json("whoami")["stepped_up"] is False
    assert cli("accounts", "update", first, "--phone", "07 81 22 33 44", "--otp", code).exit_code == 0
    assert scalar(store_url, "SELECT phone FROM account WHERE identifier = :i", i=first) == "+33781223344"


def test_a_long_step_up_target_is_kept_by_its_digest():
    from pepsctl.domain import stepup

    assert stepup.code_target(None) is None
    assert stepup.code_target("MDU000001") == "MDU000001"
    long = ",".join(f"MDU{i:06d}:cnracl-retraite" for i in range(10))
    digest = stepup.code_target(long)
    assert digest is not None and len(digest) == 64 and digest.startswith("sha256:")
    assert digest != stepup.code_target(long + "x")


@pytest.mark.parametrize(
    ("option", "column", "value"),
    [
        (("--phone", "07 81 22 33 44"), "phone", "+33781223344"),
        (("--email", "paul.nouveau@example.fr"), "email", "paul.nouveau@example.fr"),
        (("--clear-phone",), "phone", None),
    ],
    ids=["phone", "email", "clear-phone"],
)
def test_changing_another_accounts_contact_details_needs_a_code(cli, admin_a, store_url, option, column, value):
    other = create_account(cli, "Paul", "Martin", phone="06 11 22 33 44", activate_it=False)
    relogin(cli, admin_a)
    select = f"SELECT {column}, updated_at FROM account WHERE identifier = :i"
    before = query(store_url, select, i=other)
    first = cli("accounts", "update", other, *option)
    assert first.exit_code == 6
    assert "(account.update.contact)" in first.stderr
    assert query(store_url, select, i=other) == before
    assert cli("accounts", "update", other, *option, "--otp", last_sms_code(cli)).exit_code == 0
    assert query(store_url, select, i=other)[0][0] == value
    # A change that is not a contact detail never needed a code.
    assert cli("accounts", "update", other, "--function", "Paie").exit_code == 0


def test_the_code_holds_for_the_rest_of_the_session(cli, admin_a, store_url):
    relogin(cli, admin_a)
    assert cli(*NEW_ACCOUNT).exit_code == 6
    assert cli(*NEW_ACCOUNT, "--otp", last_sms_code(cli)).exit_code == 0
    assert cli.json("whoami")["stepped_up"] is True
    sent = len(phone_messages(cli))
    other = cli.json(
        "accounts", "create", "--profile", "user", "--civility", "M", "--last-name", "Martin", "--first-name",
        "Paul", "--email", "paul.martin@example.fr", "--phone", "06 11 22 33 44",
    )["identifier"]  # fmt: skip
    assert cli("accounts", "update", other, "--email", "p.martin@example.fr").exit_code == 0
    assert cli("me", "update", "--email", "marie.durand@example.fr").exit_code == 0
    assert len(phone_messages(cli)) == sent  # no second code
    # ...but only for that session: a new one asks again.
    relogin(cli, admin_a)
    assert cli("accounts", "update", other, "--email", "paul.martin@example.fr").exit_code == 6


def test_a_login_code_steps_the_session_up(cli, admin_a, isolate, store_url):
    forget_trust(isolate)
    assert try_login(cli, admin_a).exit_code == 6
    assert try_login(cli, admin_a, "--otp", last_sms_code(cli)).exit_code == 0
    sent = len(phone_messages(cli))
    assert cli(*NEW_ACCOUNT).exit_code == 0
    assert len(phone_messages(cli)) == sent


def test_changing_ones_own_email_needs_a_code(cli, admin_a, store_url):
    relogin(cli, admin_a)
    first = cli("me", "update", "--email", "m.durand@example.fr")
    assert first.exit_code == 6
    assert "(me.update.contact)" in first.stderr
    assert scalar(store_url, "SELECT email FROM account WHERE identifier = :i", i=admin_a) == ADMIN_EMAIL
    assert cli("me", "update", "--email", "m.durand@example.fr", "--otp", last_sms_code(cli)).exit_code == 0
    assert scalar(store_url, "SELECT email FROM account WHERE identifier = :i", i=admin_a) == "m.durand@example.fr"
    told = {m["to"] for m in cli.json("outbox", "list") if m["subject"] == "Your PEP's contact details changed"}
    assert told == {ADMIN_EMAIL, "m.durand@example.fr"}  # the old address is told too


def test_changing_ones_own_function_needs_no_code(cli, admin_a, store_url):
    relogin(cli, admin_a)
    assert cli("me", "update", "--function", "DRH").exit_code == 0


def test_changing_ones_password_needs_a_code(cli, admin_a, store_url):
    relogin(cli, admin_a)
    hashed = scalar(store_url, "SELECT password_hash FROM account WHERE identifier = :i", i=admin_a)
    stdin = f"{PASSWORD}\nune-toute-nouvelle-phrase\n"
    first = cli("password", "change", "--password-stdin", input=stdin)
    assert first.exit_code == 6
    assert "(password.change)" in first.stderr
    assert scalar(store_url, "SELECT password_hash FROM account WHERE identifier = :i", i=admin_a) == hashed
    assert cli("password", "change", "--password-stdin", "--otp", last_sms_code(cli), input=stdin).exit_code == 0
    assert scalar(store_url, "SELECT password_hash FROM account WHERE identifier = :i", i=admin_a) != hashed


def enroll(cli) -> str:
    """Start and confirm an authenticator enrolment; returns the secret read from the otpauth:// URI."""
    started = cli.ok("me", "totp", "enroll")
    uri = started.stdout.strip()
    parsed = urlparse(uri)
    assert (parsed.scheme, parsed.netloc) == ("otpauth", "totp")
    (secret,) = parse_qs(parsed.query)["secret"]
    cli.ok("me", "totp", "enroll", "--code", pyotp.TOTP(secret).at(clock.now()))
    return secret


def test_removing_ones_authenticator_needs_a_code(cli, admin_a, store_url):
    enroll(cli)
    relogin(cli, admin_a)
    first = cli("me", "totp", "remove")
    assert first.exit_code == 6
    assert "(totp.remove)" in first.stderr
    assert cli.json("me", "show")["totp_enabled"] is True
    assert cli("me", "totp", "remove", "--otp", last_sms_code(cli)).exit_code == 0
    assert cli.json("me", "show")["totp_enabled"] is False
    assert scalar(store_url, "SELECT totp_secret FROM account WHERE identifier = :i", i=admin_a) is None


# -- a phone change by the person: the old number, then the new one --------------------------------


def test_changing_ones_own_phone_needs_a_code_to_each_number(cli, admin_a, store_url, isolate):
    (first_session,) = session_tokens(isolate)
    relogin(cli, admin_a)  # the session making the change; the first one stays open elsewhere
    args = ("me", "update", "--phone", "07 81 22 33 44")

    first = cli(*args)
    assert (first.exit_code, first.stdout) == (6, "")
    assert first.stderr.startswith(
        f"Error: To confirm the phone change, a code was sent to your current number ({ADMIN_MASKED}).\n"
    )
    assert phone_messages(cli)[-1]["to"] == ADMIN_PHONE
    second = cli(*args, "--otp", last_sms_code(cli))
    assert second.exit_code == 6
    assert second.stderr.startswith(
        "Error: To confirm the phone change, a code was sent to the new number (+33 7 •• •• •• 44).\n"
    )
    assert phone_messages(cli)[-1]["to"] == "+33781223344"
    assert scalar(store_url, "SELECT phone FROM account WHERE identifier = :i", i=admin_a) == ADMIN_PHONE
    new_code = last_sms_code(cli)
    assert cli(*args, "--otp", other_code(new_code)).exit_code == 6  # a wrong code for the new number
    assert scalar(store_url, "SELECT phone FROM account WHERE identifier = :i", i=admin_a) == ADMIN_PHONE
    third = cli(*args, "--otp", new_code)
    assert third.exit_code == 0, third.stderr
    me = cli.json("me", "show")
    assert (me["phone"], me["phone_verified"]) == ("+33781223344", True)
    mails = [
        m for m in cli.json("outbox", "list", "--to", ADMIN_EMAIL) if m["subject"] != "Your PEP's account MDU000001"
    ]
    assert mails[-1]["subject"] == "Your PEP's contact details changed"
    assert "+33 7 •• •• •• 44" in mails[-1]["body"]
    # This session goes on; the other one is over.
    assert cli("whoami").exit_code == 0
    use_token(isolate, first_session)
    result = cli("whoami")
    assert (result.exit_code, result.stdout) == (6, "")


def test_a_phone_change_refuses_the_old_numbers_code_for_the_new_number(cli, admin_a, store_url):
    relogin(cli, admin_a)
    args = ("me", "update", "--phone", "07 81 22 33 44")
    assert cli(*args).exit_code == 6
    old_code = last_sms_code(cli)
    assert cli(*args, "--otp", old_code).exit_code == 6
    result = cli(*args, "--otp", old_code)  # replayed: it was for the old number
    assert result.exit_code == 6
    assert scalar(store_url, "SELECT phone FROM account WHERE identifier = :i", i=admin_a) == ADMIN_PHONE


# -- authenticator apps (TOTP) ---------------------------------------------------------------------


def test_enrolment_shows_the_secret_once_and_activates_only_with_a_valid_code(cli, admin_a, store_url):
    started = cli.ok("me", "totp", "enroll")
    uri = started.stdout.strip()
    assert uri.startswith("otpauth://totp/")
    (secret,) = parse_qs(urlparse(uri).query)["secret"]
    assert f"Secret (shown only now): {secret}" in started.stderr
    assert cli.json("me", "show")["totp_enabled"] is False
    assert try_login(cli, admin_a, "--totp", "--otp", pyotp.TOTP(secret).at(clock.now())).exit_code == 6
    right = pyotp.TOTP(secret).at(clock.now())
    wrong = cli("me", "totp", "enroll", "--code", other_code(right))
    assert (wrong.exit_code, wrong.stdout) == (6, "")
    assert wrong.stderr.startswith("Error: Wrong authenticator code: the app is not enrolled.\n")
    assert cli.json("me", "show")["totp_enabled"] is False
    assert cli("me", "totp", "enroll", "--code", right).exit_code == 0
    assert cli.json("me", "show")["totp_enabled"] is True
    assert "totp.enrolled" in actions(store_url)
    assert secret not in cli.ok("me", "show").output  # never shown again
    again = cli("me", "totp", "enroll")
    assert again.exit_code == 5
    assert secret not in again.output


def test_enrolling_an_authenticator_needs_a_code(cli, admin_a, store_url):
    """A new authenticator steps sessions up later, so binding one is itself a sensitive action."""
    relogin(cli, admin_a)
    first = cli("me", "totp", "enroll")
    assert (first.exit_code, first.stdout) == (6, "")
    assert "(totp.enroll)" in first.stderr
    assert scalar(store_url, "SELECT totp_secret FROM account WHERE identifier = :i", i=admin_a) is None
    done = cli("me", "totp", "enroll", "--otp", last_sms_code(cli))
    assert done.exit_code == 0, done.stderr
    assert done.stdout.startswith("otpauth://totp/")


def test_login_with_totp_accepts_each_time_step_once(cli, admin_a, store_url):
    secret = enroll(cli)
    totp = pyotp.TOTP(secret)
    used = totp.at(clock.now())  # the enrolment's code
    replay = try_login(cli, admin_a, "--totp", "--otp", used)
    assert (replay.exit_code, replay.stdout) == (6, "")
    assert replay.stderr.startswith("Error: Wrong or already used authenticator code.\n")
    clock.advance(timedelta(seconds=30))
    fresh = totp.at(clock.now())
    assert try_login(cli, admin_a, "--totp", "--otp", fresh).exit_code == 0
    assert cli.json("whoami")["stepped_up"] is True
    assert try_login(cli, admin_a, "--totp", "--otp", fresh).exit_code == 6  # the same step again
    old = totp.at(clock.now() - timedelta(seconds=30))
    assert try_login(cli, admin_a, "--totp", "--otp", old).exit_code == 6  # an earlier step
    assert actions(store_url).count("totp.verified") == 1
    assert actions(store_url).count("totp.failed") == 3


def test_totp_secret_in_the_environment_runs_unattended(cli, admin_a, store_url):
    secret = enroll(cli)
    ci = {"PEPSCTL_TOTP_SECRET": secret}
    clock.advance(timedelta(seconds=30))
    sent = len(phone_messages(cli))
    mark = last_event_id(store_url)
    assert try_login(cli, admin_a, "--totp", env=ci).exit_code == 0  # no --otp: computed from the secret
    assert actions(store_url, mark) == ["totp.verified", "auth.login"]
    clock.advance(timedelta(seconds=30))
    relogin(cli, admin_a)  # trusted workstation: not stepped up
    clock.advance(timedelta(seconds=30))
    mark = last_event_id(store_url)
    result = cli(*NEW_ACCOUNT, env=ci)
    assert result.exit_code == 0, result.stderr
    assert actions(store_url, mark) == ["totp.verified", "auth.stepup", "account.create"]
    assert count_accounts(store_url) == 2
    assert len(phone_messages(cli)) == sent  # no SMS at all
    # A secret that is not base32 is refused plainly.
    bad = cli("login", admin_a, "--totp", "--password-stdin", input=PASSWORD + "\n", env={"PEPSCTL_TOTP_SECRET": "!!"})
    assert (bad.exit_code, bad.stdout) == (3, "")
    assert bad.stderr.startswith("Error: PEPSCTL_TOTP_SECRET is not a base32 secret.\n")


def not_a_totp(secret: str) -> str:
    """A well-formed code that no step around now accepts."""
    totp = pyotp.TOTP(secret)
    valid = {totp.at(clock.now() + timedelta(seconds=30 * step)) for step in (-1, 0, 1)}
    return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in valid)


def test_a_wrong_totp_code_counts_toward_the_lockout(cli, admin_a, store_url):
    secret = enroll(cli)
    wrong = not_a_totp(secret)
    for attempt in range(1, 5):
        result = try_login(cli, admin_a, "--totp", "--otp", wrong)
        assert result.exit_code == 6, attempt
        assert scalar(store_url, "SELECT failed_attempts FROM account WHERE identifier = :i", i=admin_a) == attempt
    fifth = try_login(cli, admin_a, "--totp", "--otp", wrong)
    assert fifth.exit_code == 8
    assert scalar(store_url, "SELECT locked_at FROM account WHERE identifier = :i", i=admin_a) is not None
    assert actions(store_url).count("totp.failed") == 5
    assert "account.locked" in actions(store_url)
