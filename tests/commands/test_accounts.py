"""accounts create | list | show | update | renew | delete | expiring, through the CLI, on SQLite and PostgreSQL.

One test per rule of domain.md "Accounts" and security.md "Authorization"; exit code, stdout and
stderr are asserted separately, and the JSON keys of AccountView are pinned.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta

import pytest

from pepsctl import clock
from tests.conftest import (
    FROZEN_AT,
    PASSWORD,
    SIRET_A,
    SIRET_B,
    SIRET_C,
    activate,
    create_account,
    last_code,
    login,
    register,
)

ACCOUNT_KEYS = [
    "identifier",
    "establishment",
    "profile",
    "status",
    "civility",
    "last_name",
    "first_name",
    "email",
    "phone",
    "phone_type",
    "function",
    "expires_at",
    "last_login_at",
    "created_at",
]
ADMIN_A = "MDU000001"  # Marie Durand, registered by the admin_a fixture
RENEWED_UNTIL = "2027-07-15T09:30:00+00:00"  # FROZEN_AT (2026-01-15T09:30Z) + 18 months
NOT_LOGGED_IN = "Error: You are not logged in to this store.\nHint: Run 'pepsctl login IDENTIFIER'.\n"
OTHER_HINT = "Hint: Not in your establishment nor in one that delegated to it (or it does not exist).\n"
USER_HINT = "Hint: A user profile cannot run administrator operations.\n"


# -- helpers -----------------------------------------------------------------------------------------


def _engine(url: str):
    from pepsctl.store.engine import create_store_engine, parse_store_url

    return create_store_engine(parse_store_url(url))


def counts(url: str) -> dict[str, int]:
    """Rows per table, read directly from the store (not through pepsctl)."""
    from sqlalchemy import text

    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return {
                table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in ("account", "one_time_code", "outbox_message", "audit_event", "auth_session")
            }
    finally:
        engine.dispose()


def account_row(url: str, identifier: str) -> dict | None:
    from sqlalchemy import select
    from sqlmodel import col

    from pepsctl.store.models import Account

    engine = _engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(select(Account).where(col(Account.identifier) == identifier)).mappings().first()
            return dict(row) if row else None
    finally:
        engine.dispose()


def set_account(url: str, identifier: str, **values) -> None:
    """Change an account row behind pepsctl's back (expiry dates, lock) to set up a state."""
    from sqlalchemy import update
    from sqlmodel import col

    from pepsctl.store.models import Account

    engine = _engine(url)
    try:
        with engine.begin() as conn:
            changed = conn.execute(
                update(Account).where(col(Account.identifier) == identifier).values(**values)
            ).rowcount
        assert changed == 1, identifier
    finally:
        engine.dispose()


def create_args(
    first: str,
    last: str,
    *,
    email: str | None = None,
    profile: str = "user",
    phone: str | None = None,
    civility: str = "MME",
    extra: tuple[str, ...] = (),
) -> list[str]:
    args = [
        "accounts",
        "create",
        "--profile",
        profile,
        "--civility",
        civility,
        "--last-name",
        last,
        "--first-name",
        first,
        "--email",
        email or f"{first.lower()}.{last.lower()}@example.fr",
    ]
    if phone is not None:
        args += ["--phone", phone]
    return [*args, *extra]


def session_token(keyring) -> str:
    tokens = [v for (service, name), v in keyring.items.items() if service == "pepsctl" and name.startswith("session:")]
    assert len(tokens) == 1, tokens
    return tokens[0]


def use_session(keyring, token: str) -> None:
    """Put back a session token saved earlier (as if the person ran pepsctl on their own machine)."""
    keys = [k for k in keyring.items if k[0] == "pepsctl" and k[1].startswith("session:")]
    assert len(keys) == 1, keys
    keyring.items[keys[0]] = token


def lock_out(cli, identifier: str) -> None:
    """Five wrong passwords: the account is locked (the fifth failure answers exit 8)."""
    codes = [cli("login", identifier, "--password-stdin", input="not-the-right-password\n").exit_code for _ in range(5)]
    assert codes == [6, 6, 6, 6, 8], codes


def history(cli, *args: str) -> list[dict]:
    return cli.json("history", *args)


def iso(moment: datetime) -> str:
    return moment.isoformat()


# -- create ------------------------------------------------------------------------------------------


def test_create_prints_the_account_view_and_hands_out_the_identifier(cli, admin_a):
    result = cli(
        *create_args("Jeanne", "Dupont", phone="06 12 34 56 78", extra=("--function", "DRH")), "--format", "json"
    )

    assert result.exit_code == 0, result.stderr
    assert result.stderr == "Hand the identifier JDU000002 to the agent.\n"
    data = json.loads(result.stdout)
    assert list(data) == ACCOUNT_KEYS
    assert data == {
        "identifier": "JDU000002",
        "establishment": SIRET_A,
        "profile": "user",
        "status": "pending",
        "civility": "MME",
        "last_name": "Dupont",
        "first_name": "Jeanne",
        "email": "jeanne.dupont@example.fr",
        "phone": "+33612345678",
        "phone_type": "mobile",
        "function": "DRH",
        "expires_at": None,
        "last_login_at": None,
        "created_at": iso(FROZEN_AT),
    }


@pytest.mark.parametrize(
    ("first", "last", "prefix"),
    [
        ("Jeanne", "Dupont", "JDU"),
        ("Émile", "Ängström", "EAN"),
        ("Élodie", "Œuvray", "EOE"),
        ("jean-luc", "d'Ornano", "JDO"),
        ("Ève", "Ô", "EOX"),
    ],
)
def test_identifier_is_first_letter_two_letters_and_six_digits_without_accents(cli, admin_a, first, last, prefix):
    data = cli.json(*create_args(first, last, email="agent@example.fr"))

    assert data["identifier"] == f"{prefix}000002"
    assert data["first_name"] == first and data["last_name"] == last  # the names themselves keep their accents


def test_identifier_sequence_is_global_across_establishments(cli, admin_a):
    admin_b = register(cli, SIRET_B, last="Martin", first="Paul")
    assert admin_b == "PMA000002"
    assert create_account(cli, "Jeanne", "Dupont", activate_it=False) == "JDU000003"
    login(cli, admin_b)
    # A homonym in another establishment: same prefix, the next number of the one sequence.
    assert create_account(cli, "Jeanne", "Dupont", activate_it=False) == "JDU000004"


def test_create_emails_an_activation_code_valid_15_days(cli, admin_a):
    early = cli.json(*create_args("Jeanne", "Dupont"))["identifier"]
    late = cli.json(*create_args("Karim", "Benali"))["identifier"]

    messages = cli.json("outbox", "list", "--to", "jeanne.dupont@example.fr")
    assert len(messages) == 1
    message = messages[0]
    assert message["channel"] == "email"
    assert message["subject"] == "Your PEP's account JDU000002"
    assert "Identifier: JDU000002" in message["body"]
    assert "Activation code: " + message["code"] + " (valid until 2026-01-30 09:30 UTC)" in message["body"]

    # Still valid one second before the 15 days are up...
    clock.advance(timedelta(days=15, seconds=-1))
    activate(cli, early, "jeanne.dupont@example.fr")
    # ...and no longer at 15 days: the outbox blanks it and 'password set' refuses it.
    late_code = last_code(cli, "karim.benali@example.fr")
    clock.advance(timedelta(seconds=1))
    assert cli.json("outbox", "list", "--to", "karim.benali@example.fr")[0]["code"] is None
    result = cli("password", "set", late, "--code", late_code, "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 6
    assert result.stdout == ""
    assert result.stderr.startswith("Error: Unknown identifier, or wrong, used or expired code.\n")


def test_account_is_pending_until_its_password_is_set(cli, admin_a):
    identifier = cli.json(*create_args("Jeanne", "Dupont"))["identifier"]
    assert cli.json("accounts", "show", identifier)["status"] == "pending"
    assert [a["identifier"] for a in cli.json("accounts", "list", "--status", "pending")] == [identifier]

    activate(cli, identifier, "jeanne.dupont@example.fr")

    shown = cli.json("accounts", "show", identifier)
    assert shown["status"] == "active"
    assert shown["expires_at"] == RENEWED_UNTIL  # 18 months after activation
    assert cli.json("accounts", "list", "--status", "pending") == []


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--phone", "12345", "Error: This is a short or incomplete number: it can receive neither SMS nor a call.\n"),
        ("--phone", "08 99 12 34 56", "Error: This is a premium-rate number: it can receive neither SMS nor a call.\n"),
        (
            "--email",
            "jeanne.dupont@",
            "Error: This is not a valid e-mail address: There must be something after the @-sign.\n",
        ),
        ("--email", "   ", "Error: The e-mail address is empty.\n"),
        ("--last-name", "Dupont2", "Error: The last name must not contain digits.\n"),
        ("--first-name", "J@nne", "Error: The first name contains a character that is not allowed: '@' (U+0040).\n"),
        ("--first-name", "  ", "Error: The first name is empty.\n"),
        ("--civility", "Dr", "Error: Unknown civility: use M or MME.\n"),
        ("--profile", "root", "Error: Unknown profile 'root': use admin or user.\n"),
    ],
)
def test_create_with_an_invalid_value_exits_3_and_writes_nothing(cli, admin_a, option, value, message):
    before = counts(cli.store)
    args = {
        "--civility": "MME",
        "--last-name": "Dupont",
        "--first-name": "Jeanne",
        "--email": "jeanne.dupont@example.fr",
        "--phone": "06 12 34 56 78",
        "--profile": "user",
    }
    args[option] = value
    result = cli("accounts", "create", *[item for pair in args.items() for item in pair])

    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.startswith(message)
    lines = result.stderr.splitlines()
    assert 1 <= len(lines) <= 2 and lines[0].startswith("Error: ")
    assert len(lines) == 1 or lines[1].startswith("Hint: ")
    assert "899123456" not in result.stderr.replace(" ", "")  # a phone number is never repeated in full
    assert counts(cli.store) == before  # no account, no code, no e-mail, no history event


def test_create_the_same_person_twice_exits_5(cli, admin_a):
    first = cli.json(*create_args("Jeanne", "Dupont"))["identifier"]
    before = counts(cli.store)

    result = cli(*create_args("Jeanne", "Dupont"))

    assert result.exit_code == 5
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: Jeanne Dupont already has an account here: {first}.\n"
        "Hint: One account per person: renew or update the existing one.\n"
    )
    assert counts(cli.store) == before


def test_homonyms_with_their_own_mailboxes_get_two_accounts(cli, admin_a):
    one = cli.json(*create_args("Jeanne", "Dupont", email="jeanne.dupont@example.fr"))["identifier"]
    two = cli.json(*create_args("Jeanne", "Dupont", email="j.dupont2@example.fr"))["identifier"]

    assert (one, two) == ("JDU000002", "JDU000003")


def test_create_in_another_establishment_is_denied_whether_or_not_it_is_registered(cli, admin_a):
    register(cli, SIRET_B, last="Martin", first="Paul")
    login(cli, ADMIN_A)
    before = counts(cli.store)

    registered = cli(*create_args("Jeanne", "Dupont"), "--establishment", SIRET_B)
    unregistered = cli(*create_args("Jeanne", "Dupont"), "--establishment", SIRET_C)

    assert registered.exit_code == unregistered.exit_code == 7
    assert registered.stdout == unregistered.stdout == ""
    assert registered.stderr == (f"Error: You may not do this (account.create) on {SIRET_B}.\n" + OTHER_HINT)
    # The same answer, but for the SIRET typed: nothing tells whether SIRET_C is registered.
    assert unregistered.stderr == registered.stderr.replace(SIRET_B, SIRET_C)
    after = counts(cli.store)
    assert after["account"] == before["account"] and after["outbox_message"] == before["outbox_message"]
    denied = history(cli, "--action", "permission.denied")
    assert [(e["target"], e["after"]) for e in denied] == [
        (SIRET_B, {"action": "account.create", "rule": "no-delegation"}),
        (SIRET_C, {"action": "account.create", "rule": "no-delegation"}),
    ]


def test_create_with_an_invalid_siret_exits_3(cli, admin_a):
    result = cli(*create_args("Jeanne", "Dupont"), "--establishment", "21999001700011")

    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.startswith("Error: This SIRET is not valid: its check digit is wrong.\n")


def test_create_in_your_own_establishment_by_siret_is_allowed(cli, admin_a):
    data = cli.json(*create_args("Jeanne", "Dupont"), "--establishment", SIRET_A)

    assert data["establishment"] == SIRET_A


def test_a_user_cannot_create_accounts(cli, admin_a):
    user = create_account(cli, "Karim", "Benali")
    login(cli, user)
    before = counts(cli.store)["account"]

    result = cli(*create_args("Jeanne", "Dupont"))

    assert result.exit_code == 7
    assert result.stdout == ""
    assert result.stderr == f"Error: You may not do this (account.create) on {SIRET_A}.\n" + USER_HINT
    assert counts(cli.store)["account"] == before


def test_create_without_a_session_exits_6(cli):
    register(cli, SIRET_A)  # registered and activated, but nobody logged in
    before = counts(cli.store)

    result = cli(*create_args("Jeanne", "Dupont"))

    assert result.exit_code == 6
    assert result.stdout == ""
    assert result.stderr == NOT_LOGGED_IN
    assert counts(cli.store) == before


def test_create_after_logout_exits_6(cli, admin_a):
    cli.ok("logout")

    result = cli(*create_args("Jeanne", "Dupont"))

    assert result.exit_code == 6
    assert result.stderr == NOT_LOGGED_IN


# -- list --------------------------------------------------------------------------------------------


def test_list_json_pins_the_account_fields(cli, admin_a):
    rows = cli.json("accounts", "list")

    assert [list(row) for row in rows] == [ACCOUNT_KEYS]
    assert rows[0]["identifier"] == ADMIN_A
    assert rows[0]["status"] == "active"


def test_list_filters_by_profile(cli, admin_a):
    second_admin = create_account(cli, "Paul", "Martin", profile="admin")
    user = create_account(cli, "Jeanne", "Dupont")

    admins = cli.json("accounts", "list", "--profile", "admin")
    users = cli.json("accounts", "list", "--profile", "user")

    assert sorted(a["identifier"] for a in admins) == sorted([ADMIN_A, second_admin])
    assert {a["profile"] for a in admins} == {"admin"}
    assert [a["identifier"] for a in users] == [user]
    result = cli("accounts", "list", "--profile", "superuser")
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr == "Error: Unknown profile 'superuser': use admin or user.\n"


@pytest.fixture
def four_states(cli, admin_a) -> dict[str, set[str]]:
    """One account in each state: active (and the admin), pending, locked, expired."""
    active = create_account(cli, "Alice", "Active")
    pending = create_account(cli, "Paul", "Pending", activate_it=False)
    locked = create_account(cli, "Louis", "Locked")
    expired = create_account(cli, "Eve", "Expired")
    lock_out(cli, locked)
    set_account(cli.store, expired, expires_at=FROZEN_AT - timedelta(days=1))
    return {"active": {ADMIN_A, active}, "pending": {pending}, "locked": {locked}, "expired": {expired}}


@pytest.mark.parametrize("status", ["active", "pending", "locked", "expired"])
def test_list_filters_by_status(cli, four_states, status):
    rows = cli.json("accounts", "list", "--status", status)

    assert {r["identifier"] for r in rows} == four_states[status]
    assert {r["status"] for r in rows} == {status}


def test_list_with_an_unknown_status_exits_3(cli, admin_a):
    result = cli("accounts", "list", "--status", "asleep")

    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr == "Error: Unknown status 'asleep': use active, pending, locked, expired.\n"


def test_an_account_whose_expiry_date_is_now_is_expired(cli, admin_a):
    user = create_account(cli, "Jeanne", "Dupont")
    set_account(cli.store, user, expires_at=FROZEN_AT)

    assert [r["identifier"] for r in cli.json("accounts", "list", "--status", "expired")] == [user]
    assert cli.json("accounts", "show", user)["status"] == "expired"


def test_list_filters_accounts_with_no_phone(cli, admin_a):
    no_phone = create_account(cli, "Jeanne", "Dupont")
    create_account(cli, "Karim", "Benali", phone="06 12 34 56 78")

    rows = cli.json("accounts", "list", "--missing-phone")

    assert [r["identifier"] for r in rows] == [no_phone]
    assert rows[0]["phone"] is None and rows[0]["phone_type"] is None


def test_list_masks_phones_and_show_gives_them_in_full(cli, admin_a):
    user = create_account(cli, "Jeanne", "Dupont", phone="06 12 34 56 78")

    listed = {r["identifier"]: r for r in cli.json("accounts", "list")}
    table = cli.ok("accounts", "list")
    as_csv = cli.ok("accounts", "list", "--format", "csv")
    shown = cli.json("accounts", "show", user)

    assert listed[user]["phone"] == "+33 6 •• •• •• 78"
    assert listed[ADMIN_A]["phone"] == "+33 6 •• •• •• 40"
    for output in (table.stdout, as_csv.stdout, json.dumps(listed, ensure_ascii=False)):
        assert "612345678" not in output.replace(" ", "")
        assert "+33 6 •• •• •• 78" in output
    assert shown["phone"] == "+33612345678"
    assert shown["phone_type"] == "mobile"


def test_list_as_csv_has_a_header_and_one_row_per_account(cli, admin_a):
    user = create_account(cli, "Jeanne", "Dupont", phone="06 12 34 56 78")

    result = cli.ok("accounts", "list", "--format", "csv")

    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert result.stdout.splitlines()[0] == ",".join(ACCOUNT_KEYS)
    assert sorted(r["identifier"] for r in rows) == sorted([ADMIN_A, user])
    jeanne = next(r for r in rows if r["identifier"] == user)
    # '+' would start a formula in a spreadsheet: the cell is neutralised with a leading quote.
    assert jeanne["phone"] == "'+33 6 •• •• •• 78"
    assert jeanne["function"] == ""
    assert jeanne["created_at"] == iso(FROZEN_AT)


def test_list_with_no_match_still_has_a_csv_header_and_an_empty_json_list(cli, admin_a):
    as_csv = cli("accounts", "list", "--missing-phone", "--format", "csv")
    as_json = cli("accounts", "list", "--missing-phone", "--format", "json")

    assert as_csv.exit_code == as_json.exit_code == 0
    assert as_csv.stdout == ",".join(ACCOUNT_KEYS) + "\n"
    assert as_json.stdout.strip() == "[]"
    assert as_csv.stderr == as_json.stderr == ""


def test_list_of_another_establishment_is_denied(cli, admin_a):
    register(cli, SIRET_B, last="Martin", first="Paul")
    login(cli, ADMIN_A)

    result = cli("accounts", "list", "--establishment", SIRET_B)

    assert result.exit_code == 7
    assert result.stdout == ""
    assert "Martin" not in result.stderr and "Paul" not in result.stderr


# -- show --------------------------------------------------------------------------------------------


def test_show_an_unknown_account_is_refused_like_another_establishments(cli, admin_a):
    other = register(cli, SIRET_B, last="Martin", first="Paul")
    login(cli, ADMIN_A)

    unknown = cli("accounts", "show", "zzz999999")
    theirs = cli("accounts", "show", other)

    # security.md: the same answer whether the account exists elsewhere or not at all.
    assert unknown.exit_code == theirs.exit_code == 7
    assert unknown.stdout == theirs.stdout == ""
    assert unknown.stderr == "Error: You may not do this (account.read) on ZZZ999999.\n" + OTHER_HINT
    assert unknown.stderr.replace("ZZZ999999", "<ID>") == theirs.stderr.replace(other, "<ID>")
    denied = [e["target"] for e in history(cli, "--action", "permission.denied")]
    assert denied == ["ZZZ999999", other]


def test_show_something_that_is_not_an_identifier_exits_3(cli, admin_a):
    result = cli("accounts", "show", "jeanne")

    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.startswith("Error: This is not an account identifier.\n")


def test_show_an_account_of_another_establishment_exits_7_and_reveals_nothing(cli, admin_a):
    other = register(cli, SIRET_B, last="Martin", first="Paul", phone="06 99 88 77 66")
    login(cli, ADMIN_A)

    result = cli("accounts", "show", other)

    assert result.exit_code == 7
    assert result.stdout == ""
    assert result.stderr == f"Error: You may not do this (account.read) on {other}.\n" + OTHER_HINT
    for secret in ("Martin", "Paul", "paul.martin", SIRET_B, "99 88", "+33699887766"):
        assert secret not in result.stderr


def test_a_user_can_show_themselves_but_not_a_colleague(cli, admin_a):
    user = create_account(cli, "Jeanne", "Dupont", phone="06 12 34 56 78")
    login(cli, user)

    mine = cli("accounts", "show", user, "--format", "json")
    theirs = cli("accounts", "show", ADMIN_A, "--format", "json")

    assert mine.exit_code == 0, mine.stderr
    assert json.loads(mine.stdout)["phone"] == "+33612345678"
    assert theirs.exit_code == 7
    assert theirs.stdout == ""
    assert theirs.stderr == f"Error: You may not do this (account.read) on {ADMIN_A}.\n" + USER_HINT
    assert "Durand" not in theirs.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("accounts", "list"),
        ("accounts", "update", "{other}", "--function", "DRH"),
        ("accounts", "update", "{me}", "--profile", "admin"),
        ("accounts", "renew", "{me}"),
        ("accounts", "delete", "{other}", "--yes"),
        ("accounts", "expiring"),
    ],
    ids=["list", "update-colleague", "promote-self", "renew-self", "delete", "expiring"],
)
def test_a_user_cannot_run_administrator_operations(cli, admin_a, args):
    user = create_account(cli, "Jeanne", "Dupont")
    login(cli, user)
    before = account_row(cli.store, ADMIN_A), account_row(cli.store, user)

    result = cli(*(a.format(me=user, other=ADMIN_A) for a in args))

    assert result.exit_code == 7, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("Error: You may not do this (account.")
    assert (account_row(cli.store, ADMIN_A), account_row(cli.store, user)) == before


# -- update ------------------------------------------------------------------------------------------


def test_update_changes_contact_details_and_names(cli, admin_a):
    user = create_account(cli, "Jeanne", "Dupont", phone="06 12 34 56 78")

    result = cli(
        "accounts",
        "update",
        user,
        "--phone",
        "+33 7 81 22 33 44",
        "--email",
        "j.martin@example.fr",
        "--function",
        "Service RH",
        "--last-name",
        "Martin",
        "--first-name",
        "Jeanne-Marie",
        "--civility",
        "M",
        "--format",
        "json",
    )

    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    data = json.loads(result.stdout)
    assert list(data) == ACCOUNT_KEYS
    assert data["identifier"] == user  # the identifier never changes
    assert (data["last_name"], data["first_name"], data["civility"]) == ("Martin", "Jeanne-Marie", "M")
    assert (data["email"], data["phone"], data["phone_type"]) == ("j.martin@example.fr", "+33781223344", "mobile")
    assert data["function"] == "Service RH"
    assert cli.json("accounts", "show", user) == data


def test_update_can_clear_the_phone_and_the_function(cli, admin_a):
    user = create_account(cli, "Jeanne", "Dupont", phone="06 12 34 56 78", extra=("--function", "DRH"))

    data = cli.json("accounts", "update", user, "--clear-phone", "--clear-function")

    assert (data["phone"], data["phone_type"], data["function"]) == (None, None, None)


def test_update_with_an_invalid_phone_exits_3_and_changes_nothing(cli, admin_a):
    user = create_account(cli, "Jeanne", "Dupont", phone="06 12 34 56 78")
    before = account_row(cli.store, user)
    events = counts(cli.store)["audit_event"]

    result = cli("accounts", "update", user, "--email", "new@example.fr", "--phone", "0612")

    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    assert account_row(cli.store, user) == before
    assert counts(cli.store)["audit_event"] == events


def test_update_with_nothing_to_change_exits_3(cli, admin_a):
    result = cli("accounts", "update", ADMIN_A)

    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr == "Error: Nothing to change: give at least one option.\nHint: See --help.\n"


def test_update_an_unknown_account_exits_7(cli, admin_a):
    result = cli("accounts", "update", "ZZZ999999", "--function", "DRH")

    assert result.exit_code == 7
    assert result.stdout == ""
    assert result.stderr == "Error: You may not do this (account.update) on ZZZ999999.\n" + OTHER_HINT


def test_update_an_account_of_another_establishment_exits_7(cli, admin_a):
    other = register(cli, SIRET_B, last="Martin", first="Paul")
    login(cli, ADMIN_A)
    before = account_row(cli.store, other)

    result = cli("accounts", "update", other, "--profile", "user")

    assert result.exit_code == 7
    assert result.stdout == ""
    assert result.stderr == f"Error: You may not do this (account.update) on {other}.\n" + OTHER_HINT
    assert account_row(cli.store, other) == before


def test_promote_a_user_then_demote_the_first_administrator(cli, admin_a):
    user = create_account(cli, "Jeanne", "Dupont")

    promoted = cli.json("accounts", "update", user, "--profile", "admin")
    demoted = cli.json("accounts", "update", ADMIN_A, "--profile", "user")

    assert promoted["profile"] == "admin"
    assert demoted["profile"] == "user"
    # The demotion takes effect on the very next command of the demoted administrator.
    result = cli("accounts", "list")
    assert result.exit_code == 7
    assert result.stdout == ""
    login(cli, user)
    assert [a["identifier"] for a in cli.json("accounts", "list", "--profile", "admin")] == [user]


def test_demoting_the_last_active_administrator_exits_5_and_changes_nothing(cli, admin_a):
    before = account_row(cli.store, ADMIN_A)
    events = counts(cli.store)["audit_event"]

    result = cli("accounts", "update", ADMIN_A, "--profile", "user", "--function", "Maire")

    assert result.exit_code == 5
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: {ADMIN_A} is the last active administrator of {SIRET_A}: cannot demote it.\n"
        "Hint: Create or promote another administrator first (pepsctl accounts create --profile admin).\n"
    )
    assert account_row(cli.store, ADMIN_A) == before  # not even the function
    assert counts(cli.store)["audit_event"] == events


@pytest.mark.parametrize("state", ["pending", "locked", "expired"])
def test_an_administrator_who_cannot_act_does_not_count_as_another_administrator(cli, admin_a, state):
    other = create_account(cli, "Paul", "Martin", profile="admin", activate_it=state != "pending")
    if state == "locked":
        lock_out(cli, other)
    elif state == "expired":
        set_account(cli.store, other, expires_at=FROZEN_AT - timedelta(seconds=1))

    result = cli("accounts", "update", ADMIN_A, "--profile", "user")

    assert result.exit_code == 5
    assert result.stderr.startswith(f"Error: {ADMIN_A} is the last active administrator of {SIRET_A}")
    assert account_row(cli.store, ADMIN_A)["profile"] == "admin"


def test_update_history_records_before_and_after_with_phones_masked(cli, admin_a):
    user = create_account(cli, "Jeanne", "Dupont", phone="06 12 34 56 78")
    cli.ok("accounts", "update", user, "--phone", "07 81 22 33 44", "--function", "DRH")

    raw = cli.ok("history", "--format", "json").stdout
    events = [e for e in json.loads(raw) if e["action"] == "account.update"]

    assert len(events) == 1
    event = events[0]
    assert (event["actor"], event["target"], event["establishment"]) == (ADMIN_A, user, SIRET_A)
    assert event["before"] == {"phone": "+33 6 •• •• •• 78", "function": None}
    assert event["after"] == {"phone": "+33 7 •• •• •• 44", "function": "DRH"}
    for digits in ("612345678", "781223344", "610203040"):
        assert digits not in raw.replace(" ", "")
    cli.ok("history", "verify")


# -- renew -------------------------------------------------------------------------------------------


def test_renew_sets_the_expiry_18_months_from_now(cli, admin_a):
    user = create_account(cli, "Jeanne", "Dupont")
    set_account(cli.store, user, expires_at=FROZEN_AT + timedelta(days=20))

    result = cli("accounts", "renew", user, "--format", "json")

    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [list(r) for r in rows] == [ACCOUNT_KEYS]
    assert rows[0]["expires_at"] == RENEWED_UNTIL
    assert cli.json("accounts", "show", user)["expires_at"] == RENEWED_UNTIL
    events = history(cli, "--action", "account.renew")
    assert [(e["target"], e["before"], e["after"]) for e in events] == [
        (user, {"expires_at": iso(FROZEN_AT + timedelta(days=20))}, {"expires_at": RENEWED_UNTIL})
    ]


def test_renew_several_accounts_at_once(cli, admin_a):
    one = create_account(cli, "Jeanne", "Dupont")
    two = create_account(cli, "Karim", "Benali")
    for identifier in (one, two):
        set_account(cli.store, identifier, expires_at=FROZEN_AT + timedelta(days=3))

    rows = cli.json("accounts", "renew", one, two.lower())

    assert [(r["identifier"], r["expires_at"]) for r in rows] == [(one, RENEWED_UNTIL), (two, RENEWED_UNTIL)]


def test_renewing_an_expired_account_makes_it_active_again(cli, admin_a):
    user = create_account(cli, "Jeanne", "Dupont")
    set_account(cli.store, user, expires_at=FROZEN_AT - timedelta(days=1))
    assert cli.json("accounts", "show", user)["status"] == "expired"
    refused = cli("login", user, "--password-stdin", input=PASSWORD + "\n")
    assert refused.exit_code == 6
    assert refused.stderr.startswith("Error: This account expired on 2026-01-14.\n")

    rows = cli.json("accounts", "renew", user)

    assert (rows[0]["status"], rows[0]["expires_at"]) == ("active", RENEWED_UNTIL)
    assert cli.json("accounts", "list", "--status", "expired") == []
    login(cli, user)  # and the agent can log in again


def test_renewing_a_pending_account_exits_5(cli, admin_a):
    pending = create_account(cli, "Jeanne", "Dupont", activate_it=False)

    result = cli("accounts", "renew", pending)

    assert result.exit_code == 5
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: {pending} is not activated yet: there is nothing to renew.\n"
        "Hint: The agent activates it with 'pepsctl password set'.\n"
    )
    assert account_row(cli.store, pending)["expires_at"] is None


@pytest.mark.parametrize("spoiler", ["unknown", "pending", "other-establishment"])
def test_renew_is_all_or_nothing(cli, admin_a, spoiler):
    one = create_account(cli, "Jeanne", "Dupont")
    two = create_account(cli, "Karim", "Benali")
    if spoiler == "unknown":
        bad, code = "ZZZ999999", 7  # refused like another establishment's account
    elif spoiler == "pending":
        bad, code = create_account(cli, "Paul", "Pending", activate_it=False), 5
    else:
        bad, code = register(cli, SIRET_B, last="Martin", first="Paul"), 7
        login(cli, ADMIN_A)
    soon = FROZEN_AT + timedelta(days=3)
    for identifier in (one, two):
        set_account(cli.store, identifier, expires_at=soon)

    result = cli("accounts", "renew", one, bad, two)

    assert result.exit_code == code
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    for identifier in (one, two):
        assert account_row(cli.store, identifier)["expires_at"] == soon
    assert history(cli, "--action", "account.renew") == []


# -- delete ------------------------------------------------------------------------------------------


def test_delete_without_yes_and_without_a_terminal_exits_2_and_deletes_nothing(cli, admin_a):
    user = create_account(cli, "Jeanne", "Dupont")

    result = cli("accounts", "delete", user)

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: Confirmation needed and there is no terminal to ask: Delete account {user}?\n"
        "Hint: Add --yes to confirm.\n"
    )
    assert account_row(cli.store, user) is not None


def test_delete_with_yes_deletes_the_account_and_records_it(cli, admin_a):
    user = create_account(cli, "Jeanne", "Dupont", phone="06 12 34 56 78")

    result = cli("accounts", "delete", user, "--yes")

    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == f"Deleted {user}.\n"
    assert account_row(cli.store, user) is None
    assert cli("accounts", "show", user).exit_code == 7  # gone: refused like any account outside the scope
    events = history(cli, "--action", "account.delete")
    assert len(events) == 1
    assert events[0]["target"] == user
    assert events[0]["before"]["last_name"] == "Dupont"
    assert events[0]["before"]["phone"] == "+33 6 •• •• •• 78"


def test_delete_json_prints_the_deleted_account(cli, admin_a):
    user = create_account(cli, "Jeanne", "Dupont")

    result = cli("accounts", "delete", user, "--yes", "--format", "json")

    assert result.exit_code == 0, result.stderr
    assert list(json.loads(result.stdout)) == ACCOUNT_KEYS
    assert result.stderr == f"Deleted {user}.\n"


def test_deleting_yourself_exits_5(cli, admin_a):
    create_account(cli, "Paul", "Martin", profile="admin")  # even with a successor in place

    result = cli("accounts", "delete", ADMIN_A, "--yes")

    assert result.exit_code == 5
    assert result.stdout == ""
    assert result.stderr == (
        "Error: You cannot delete your own account.\n"
        "Hint: Name a successor administrator, who then deletes your account.\n"
    )
    assert account_row(cli.store, ADMIN_A) is not None


def test_the_last_administrator_cannot_be_deleted(cli, admin_a):
    """Through the CLI the only way to reach the last administrator is deleting oneself: refused.

    (The guard itself, with a second administrator acting concurrently, is tested in
    tests/domain/test_accounts_rules.py and tests/store/test_concurrency.py.)
    """
    result = cli("accounts", "delete", ADMIN_A, "--yes")

    assert result.exit_code == 5
    assert result.stdout == ""
    assert account_row(cli.store, ADMIN_A) is not None
    assert cli.json("accounts", "list", "--profile", "admin", "--status", "active")[0]["identifier"] == ADMIN_A


def test_a_successor_deletes_the_departing_administrator(cli, admin_a):
    successor = create_account(cli, "Paul", "Martin", profile="admin")
    login(cli, successor)

    result = cli("accounts", "delete", ADMIN_A, "--yes")

    assert result.exit_code == 0, result.stderr
    assert result.stderr == f"Deleted {ADMIN_A}.\n"
    assert account_row(cli.store, ADMIN_A) is None
    assert [a["identifier"] for a in cli.json("accounts", "list", "--profile", "admin")] == [successor]


def test_delete_an_account_of_another_establishment_exits_7(cli, admin_a):
    register(cli, SIRET_B, last="Martin", first="Paul")
    other = "PMA000002"
    login(cli, ADMIN_A)

    result = cli("accounts", "delete", other, "--yes")

    assert result.exit_code == 7
    assert result.stdout == ""
    assert account_row(cli.store, other) is not None


def test_a_deleted_account_sessions_stop_working(cli, admin_a, isolate):
    user = create_account(cli, "Jeanne", "Dupont")
    login(cli, user)
    user_token = session_token(isolate)
    assert cli("accounts", "show", user).exit_code == 0
    login(cli, ADMIN_A)
    cli.ok("accounts", "delete", user, "--yes")

    use_session(isolate, user_token)  # the agent's next command
    result = cli("accounts", "show", user)

    assert result.exit_code == 6
    assert result.stdout == ""
    assert result.stderr == NOT_LOGGED_IN
    assert counts(cli.store)["auth_session"] == 2  # the admin's two sessions; the agent's went with the account


# -- expiring ----------------------------------------------------------------------------------------


def test_expiring_lists_only_the_accounts_expiring_within_the_window(cli, admin_a):
    soon = create_account(cli, "Jeanne", "Dupont")
    edge = create_account(cli, "Karim", "Benali")
    later = create_account(cli, "Louis", "Later")
    gone = create_account(cli, "Eve", "Expired")
    create_account(cli, "Paul", "Pending", activate_it=False)  # no expiry date yet
    set_account(cli.store, soon, expires_at=FROZEN_AT + timedelta(days=10))
    set_account(cli.store, edge, expires_at=FROZEN_AT + timedelta(days=31))
    set_account(cli.store, later, expires_at=FROZEN_AT + timedelta(days=31, seconds=1))
    set_account(cli.store, gone, expires_at=FROZEN_AT - timedelta(days=1))

    default = cli("accounts", "expiring", "--format", "json")
    within_31 = cli.json("accounts", "expiring", "--within", "31")
    within_45 = cli.json("accounts", "expiring", "--within", "45")
    within_5 = cli.json("accounts", "expiring", "--within", "5")

    assert default.exit_code == 0, default.stderr
    assert [r["identifier"] for r in json.loads(default.stdout)] == [soon, edge]
    assert [r["identifier"] for r in within_31] == [soon, edge]
    assert [list(r) for r in within_31] == [ACCOUNT_KEYS] * 2
    assert [r["identifier"] for r in within_45] == [soon, edge, later]  # soonest first; ADMIN_A is 18 months out
    assert within_5 == []
    assert {r["status"] for r in within_45} == {"active"}


def test_expiring_with_a_negative_window_exits_3(cli, admin_a):
    result = cli("accounts", "expiring", "--within", "-1")

    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr == "Error: --within takes a number of days from 0 to 3660.\n"
