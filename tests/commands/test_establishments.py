"""establishments register | list | show | update | accept-cgu, through the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta

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
    last_sms_code,
    login,
    register,
    with_code,
)

REGISTRATION_KEYS = [
    "siret",
    "name",
    "status",
    "administrator",
    "activation_sent_to",
    "activation_expires_at",
]
ESTABLISHMENT_KEYS = [
    "siret",
    "siren",
    "name",
    "status",
    "registration_path",
    "funds",
    "administrators",
    "accounts",
    "cgu_version",
    "cgu_accepted_at",
    "cgu_accepted_by",
    "created_at",
]
EMAIL = "marie.durand@mairie.example.fr"
CODE_SENT = (
    "Error: This action (establishment.register) needs a one-time code: one was sent by SMS to +33 6 •• •• •• 40.\n"
    "Hint: Run the same command again with --otp CODE (valid 5 minutes).\n"
)


def register_args(
    siret: str = SIRET_A,
    *,
    funds: tuple[str, ...] = ("CNRACL=C-1234",),
    via: str | None = None,
    last: str = "Durand",
    first: str = "Marie",
    email: str = EMAIL,
    phone: str = "06 10 20 30 40",
) -> list[str]:
    args = ["establishments", "register", "--siret", siret, "--name", "Mairie de Démoville"]
    for fund in funds:
        args += ["--fund", fund]
    if via:
        args += ["--via", via]
    args += [
        "--admin-civility",
        "MME",
        "--admin-last-name",
        last,
        "--admin-first-name",
        first,
        "--admin-email",
        email,
        "--admin-phone",
        phone,
    ]
    return args


def counts(url: str) -> dict[str, int]:
    """Rows per table of the store, read directly (not through pepsctl)."""
    from sqlalchemy import text

    from pepsctl.store.engine import create_store_engine, parse_store_url

    engine = create_store_engine(parse_store_url(url))
    try:
        with engine.connect() as conn:
            return {
                table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in (
                    "establishment",
                    "establishment_fund",
                    "account",
                    "one_time_code",
                    "outbox_message",
                    "audit_event",
                )
            }
    finally:
        engine.dispose()


def status_in_store(url: str, siret: str) -> str:
    from sqlalchemy import text

    from pepsctl.store.engine import create_store_engine, parse_store_url

    engine = create_store_engine(parse_store_url(url))
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT status FROM establishment WHERE siret = :s"), {"s": siret}).scalar_one()
    finally:
        engine.dispose()


def register_json(cli, *args: str) -> dict:
    """Register (the one-time code sent to the registrant's phone, then the same command with it)."""
    return json.loads(with_code(cli, *args, "--format", "json").stdout)


def actions(cli, *args: str) -> list[str]:
    return [e["action"] for e in cli.json("history", *args)]


# -- register --------------------------------------------------------------------------------------


def test_register_classic_prints_the_registration_view_and_sends_the_code(cli, store_url):
    # First a one-time code to the registrant's phone: nothing is registered yet.
    result = cli(*register_args(), "--format", "json")
    assert (result.exit_code, result.stdout, result.stderr) == (6, "", CODE_SENT)
    assert counts(store_url)["establishment"] == counts(store_url)["account"] == 0
    otp = last_code(cli, "+33610203040")
    result = cli(*register_args(), "--format", "json", "--otp", otp)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert list(data) == REGISTRATION_KEYS
    assert data["siret"] == SIRET_A
    assert data["name"] == "Mairie de Démoville"
    assert data["status"] == "pending"
    assert data["administrator"] == "MDU000001"
    assert data["activation_sent_to"] == EMAIL
    assert data["activation_expires_at"] == (FROZEN_AT + timedelta(days=15)).isoformat()
    assert result.stderr == (
        f"An activation code was sent to {EMAIL}. Then: pepsctl password set MDU000001 --code CODE\n"
    )
    code = last_code(cli, EMAIL)
    assert len(code) == 14 and code[4] == code[9] == "-"


def test_register_classic_needs_a_contract_number_for_each_fund(cli, store_url):
    result = cli(*register_args(funds=("CNRACL=C-1234", "RAFP")))
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr == (
        "Error: The classic path needs the contract number of fund RAFP.\n"
        "Hint: Write --fund RAFP=NUMBER, or register --via net-entreprises.\n"
    )
    assert counts(store_url)["establishment"] == 0


def test_register_classic_refuses_an_empty_contract_number(cli, store_url):
    result = cli(*register_args(funds=("CNRACL=",)))
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.startswith("Error: The classic path needs the contract number of fund CNRACL.\n")
    assert counts(store_url)["establishment"] == 0


def test_register_via_net_entreprises_accepts_a_fund_without_number(cli):
    data = register_json(cli, *register_args(funds=("CNRACL", "RAFP=R-77"), via="net-entreprises"))
    assert data["status"] == "pending"
    activate(cli, data["administrator"], EMAIL)
    login(cli, data["administrator"])
    view = cli.json("establishments", "show", SIRET_A)
    assert view["registration_path"] == "net-entreprises"
    assert view["funds"] == ["CNRACL", "RAFP:R-77"]


def test_register_needs_at_least_one_fund(cli, store_url):
    result = cli(*register_args(funds=()))
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr == (
        "Error: An establishment registers with at least one fund contract.\n"
        "Hint: Add --fund CNRACL=NUMBER (or IRCANTEC, RAFP, FNC).\n"
    )
    assert counts(store_url)["establishment"] == 0


def test_register_refuses_an_unknown_fund(cli, store_url):
    result = cli(*register_args(funds=("CNRACL=C-1", "AGIRC=A-1")))
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr == "Error: Unknown fund: use one of CNRACL, IRCANTEC, RAFP, FNC.\n"
    assert counts(store_url)["establishment"] == 0


def test_register_refuses_an_unknown_path(cli, store_url):
    result = cli(*register_args(via="minitel"))
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr == "Error: Unknown registration path 'minitel': use classic or net-entreprises.\n"
    assert counts(store_url)["establishment"] == 0


@pytest.mark.parametrize(
    ("siret", "message"),
    [
        ("21999001700011", "This SIRET is not valid: its check digit is wrong."),  # Luhn
        ("2199900170001", "A SIRET has 14 digits."),
        ("219990017000100", "A SIRET has 14 digits."),
    ],
    ids=["luhn", "13-digits", "15-digits"],
)
def test_register_refuses_an_invalid_siret(cli, store_url, siret, message):
    result = cli(*register_args(siret))
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr == (f"Error: {message}\nHint: Copy it from the establishment's Kbis or INSEE notice.\n")
    assert counts(store_url)["establishment"] == 0


@pytest.mark.parametrize(
    ("option", "value", "first_line"),
    [
        ("phone", "08 92 12 34 56", "Error: This is a premium-rate number: it can receive neither SMS nor a call."),
        ("phone", "3615", "Error: This is a short or incomplete number: it can receive neither SMS nor a call."),
        ("email", "marie.durand@", "Error: This is not a valid e-mail address:"),
        ("email", "marie durand", "Error: This is not a valid e-mail address:"),
    ],
    ids=["premium-phone", "short-phone", "email-no-domain", "email-no-at"],
)
def test_register_refuses_an_invalid_admin_phone_or_email_and_writes_nothing(cli, store_url, option, value, first_line):
    before = counts(store_url)
    result = cli(*register_args(**{option: value}))
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.startswith(first_line)
    assert len(result.stderr.splitlines()) <= 2
    assert counts(store_url) == before == dict.fromkeys(before, 0)


def test_establishment_is_pending_until_its_first_administrator_sets_a_password(cli, store_url):
    data = register_json(cli, *register_args())
    assert data["status"] == "pending"
    assert status_in_store(store_url, SIRET_A) == "pending"
    # A pending administrator cannot log in to look at it.
    refused = cli("login", data["administrator"], "--password-stdin", input=PASSWORD + "\n")
    assert refused.exit_code == 6
    assert refused.stderr.startswith("Error: Unknown identifier or wrong password.\n")  # not a code sent
    activate(cli, data["administrator"], EMAIL)
    assert status_in_store(store_url, SIRET_A) == "active"
    login(cli, data["administrator"])
    assert cli.json("establishments", "show", SIRET_A)["status"] == "active"
    assert "establishment.activate" in actions(cli)


def test_a_second_administrator_does_not_activate_again(cli, admin_a, store_url):
    create_account(cli, "Paul", "Martin", profile="admin")
    assert status_in_store(store_url, SIRET_A) == "active"
    assert actions(cli, "--action", "establishment.activate") == ["establishment.activate"]


def test_activation_code_is_accepted_15_days_minus_one_second_after_registration(cli, store_url):
    data = register_json(cli, *register_args())
    code = last_code(cli, EMAIL)
    clock.advance(timedelta(days=15) - timedelta(seconds=1))
    result = cli("password", "set", data["administrator"], "--code", code, "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == "Password set. Log in with 'pepsctl login MDU000001'.\n"
    assert status_in_store(store_url, SIRET_A) == "active"


def test_activation_code_is_refused_15_days_after_registration(cli, store_url):
    data = register_json(cli, *register_args())
    code = last_code(cli, EMAIL)
    clock.advance(timedelta(days=15))
    result = cli("password", "set", data["administrator"], "--code", code, "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 6
    assert result.stdout == ""
    assert result.stderr.startswith("Error: Unknown identifier, or wrong, used or expired code.\n")
    assert status_in_store(store_url, SIRET_A) == "pending"
    # The outbox no longer shows the expired code.
    assert [m["code"] for m in cli.json("outbox", "list", "--to", EMAIL)] == [None]


def test_registering_an_already_registered_siret_names_its_administrators(cli, store_url):
    admin = register(cli, SIRET_A, last="Durand", first="Marie")
    login(cli, admin)
    create_account(cli, "Jean-Luc", "Legoff", profile="admin")
    create_account(cli, "Simone", "Weil", profile="user")  # a user is not named
    before = counts(store_url)

    result = cli(*register_args(SIRET_A, last="Nouveau", first="Paul", email="paul.nouveau@example.fr"))
    assert result.exit_code == 5
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: SIRET {SIRET_A} is already registered.\n"
        "Hint: Ask one of its administrators for an account: Jean-Luc LEGOFF, Marie DURAND.\n"
    )
    after = counts(store_url)
    # Nothing was created, but the refusal is in the history.
    assert {k: v for k, v in after.items() if k != "audit_event"} == {
        k: v for k, v in before.items() if k != "audit_event"
    }
    assert after["audit_event"] == before["audit_event"] + 1
    assert cli.json("outbox", "list", "--to", "paul.nouveau@example.fr") == []
    refused = cli.json("history", "--action", "establishment.register.refused")
    assert len(refused) == 1
    assert refused[0]["target"] == SIRET_A
    assert refused[0]["establishment"] == SIRET_A
    cli.ok("history", "verify")


def test_registering_a_siret_written_with_spaces_is_still_a_duplicate(cli):
    register(cli, SIRET_A)
    spaced = f"{SIRET_A[:3]} {SIRET_A[3:6]} {SIRET_A[6:9]} {SIRET_A[9:]}"
    result = cli(*register_args(spaced, email="autre@example.fr"))
    assert result.exit_code == 5
    assert result.stderr.startswith(f"Error: SIRET {SIRET_A} is already registered.\n")


# -- list / show -----------------------------------------------------------------------------------


def test_list_shows_only_the_actors_establishment(cli):
    admin_b = register(cli, SIRET_B, last="Bernard", first="Louis")
    admin_a = register(cli, SIRET_A)
    login(cli, admin_a)
    result = cli("establishments", "list", "--format", "json")
    assert result.exit_code == 0
    assert result.stderr == ""
    rows = json.loads(result.stdout)
    assert [r["siret"] for r in rows] == [SIRET_A]
    assert list(rows[0]) == ESTABLISHMENT_KEYS
    row = rows[0]
    assert row["siren"] == SIRET_A[:9]
    assert row["status"] == "active"
    assert row["registration_path"] == "classic"
    assert row["funds"] == ["CNRACL:C-1234"]
    assert (row["administrators"], row["accounts"]) == (1, 1)
    assert row["cgu_version"] is row["cgu_accepted_at"] is row["cgu_accepted_by"] is None
    assert row["created_at"] == FROZEN_AT.isoformat()
    login(cli, admin_b)
    assert [r["siret"] for r in cli.json("establishments", "list")] == [SIRET_B]


def test_list_as_csv_has_every_field_in_the_header(cli, admin_a):
    result = cli("establishments", "list", "--format", "csv")
    assert result.exit_code == 0
    header, row = result.stdout.splitlines()
    assert header.split(",") == ESTABLISHMENT_KEYS
    assert row.startswith(f"{SIRET_A},{SIRET_A[:9]},")


def test_show_own_establishment(cli, admin_a):
    result = cli("establishments", "show", SIRET_A, "--format", "json")
    assert result.exit_code == 0
    assert result.stderr == ""
    view = json.loads(result.stdout)
    assert list(view) == ESTABLISHMENT_KEYS
    assert view["siret"] == SIRET_A


def test_show_of_another_or_an_unregistered_establishment_gives_the_same_refusal(cli):
    register(cli, SIRET_B, last="Bernard", first="Louis")
    admin_a = register(cli, SIRET_A)
    login(cli, admin_a)
    other = cli("establishments", "show", SIRET_B)
    unknown = cli("establishments", "show", SIRET_C)
    assert other.exit_code == unknown.exit_code == 7
    assert other.stdout == unknown.stdout == ""
    assert other.stderr == (
        f"Error: You may not do this (establishment.read) on {SIRET_B}.\n"
        "Hint: Not in your establishment nor in one that delegated to it (or it does not exist).\n"
    )
    # The SIRET typed is echoed; nothing else tells "exists elsewhere" from "does not exist".
    assert other.stderr.replace(SIRET_B, "<SIRET>") == unknown.stderr.replace(SIRET_C, "<SIRET>")
    denied = cli.json("history", "--action", "permission.denied")
    assert [e["target"] for e in denied] == [SIRET_B, SIRET_C]


def test_show_of_an_invalid_siret_is_invalid_input(cli, admin_a):
    result = cli("establishments", "show", "12345")
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.startswith("Error: A SIRET has 14 digits.\n")


def test_update_of_another_establishment_is_refused(cli):
    admin_b = register(cli, SIRET_B, last="Bernard", first="Louis")
    admin_a = register(cli, SIRET_A)
    login(cli, admin_a)
    for args in (["update", SIRET_B, "--name", "Pris"], ["accept-cgu", SIRET_B]):
        result = cli("establishments", *args)
        assert result.exit_code == 7, args
        assert result.stdout == ""
    login(cli, admin_b)
    view = cli.json("establishments", "show", SIRET_B)
    assert view["name"] == f"Mairie {SIRET_B[:5]}"
    assert view["cgu_version"] is view["cgu_accepted_by"] is None


# -- update ----------------------------------------------------------------------------------------


def test_update_name(cli, admin_a):
    result = cli("establishments", "update", SIRET_A, "--name", "  Mairie   de Nouvelleville ", "--format", "json")
    assert result.exit_code == 0
    assert result.stderr == ""
    view = json.loads(result.stdout)
    assert list(view) == ESTABLISHMENT_KEYS
    assert view["name"] == "Mairie de Nouvelleville"
    assert cli.json("establishments", "show", SIRET_A)["name"] == "Mairie de Nouvelleville"
    (event,) = cli.json("history", "--action", "establishment.update")
    assert event["before"] == {"name": f"Mairie {SIRET_A[:5]}"}
    assert event["after"] == {"name": "Mairie de Nouvelleville"}
    assert event["actor"] == admin_a


def test_update_fund_replaces_the_whole_list(cli, admin_a):
    view = cli.json("establishments", "update", SIRET_A, "--fund", "RAFP=R-2", "--fund", "ircantec=I-1")
    assert view["funds"] == ["IRCANTEC:I-1", "RAFP:R-2"]
    assert cli.json("establishments", "show", SIRET_A)["funds"] == ["IRCANTEC:I-1", "RAFP:R-2"]
    (event,) = cli.json("history", "--action", "establishment.update")
    assert event["before"] == {"funds": ["CNRACL:C-1234"]}
    assert event["after"] == {"funds": ["IRCANTEC:I-1", "RAFP:R-2"]}


def test_update_fund_follows_the_registration_path_rules(cli, admin_a):
    result = cli("establishments", "update", SIRET_A, "--fund", "CNRACL")
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: The classic path needs the contract number of fund CNRACL.\n")
    result = cli("establishments", "update", SIRET_A, "--fund", "CNRACL=C-1", "--fund", "cnracl=C-2")
    assert result.exit_code == 3
    assert result.stderr == "Error: Fund CNRACL is given twice.\n"
    assert cli.json("establishments", "show", SIRET_A)["funds"] == ["CNRACL:C-1234"]
    assert actions(cli, "--action", "establishment.update") == []


def test_update_with_nothing_to_change_is_invalid_input(cli, admin_a):
    result = cli("establishments", "update", SIRET_A)
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr == "Error: Nothing to change: give --name or --fund.\n"


def test_update_with_the_same_values_records_nothing(cli, admin_a):
    cli.ok("establishments", "update", SIRET_A, "--name", f"Mairie {SIRET_A[:5]}", "--fund", "CNRACL=C-1234")
    assert actions(cli, "--action", "establishment.update") == []


# -- CGU -------------------------------------------------------------------------------------------


def test_accept_cgu_records_version_date_and_who(cli, admin_a):
    accepted_at = clock.advance(timedelta(minutes=17, seconds=3))
    result = cli("establishments", "accept-cgu", SIRET_A, "--format", "json")
    assert result.exit_code == 0
    assert result.stderr == ""
    view = json.loads(result.stdout)
    assert list(view) == ESTABLISHMENT_KEYS
    assert view["cgu_version"] == "2025-07"
    assert view["cgu_accepted_at"] == accepted_at.isoformat()
    assert view["cgu_accepted_by"] == admin_a
    clock.advance(timedelta(minutes=1))
    shown = cli.json("establishments", "show", SIRET_A)
    assert (shown["cgu_version"], shown["cgu_accepted_at"], shown["cgu_accepted_by"]) == (
        "2025-07",
        accepted_at.isoformat(),
        admin_a,
    )
    (event,) = cli.json("history", "--action", "establishment.accept_cgu")
    assert event["actor"] == admin_a
    assert event["after"] == {"cgu_version": "2025-07"}
    assert event["at"] == accepted_at.isoformat()


@pytest.mark.parametrize(
    ("args", "action"),
    [
        (("update", SIRET_A, "--name", "Piratée"), "establishment.update"),
        (("update", SIRET_A, "--fund", "FNC=F-1"), "establishment.update"),
        (("accept-cgu", SIRET_A), "establishment.accept_cgu"),
    ],
    ids=["update-name", "update-fund", "accept-cgu"],
)
def test_a_user_profile_cannot_update_or_accept_the_cgu(cli, admin_a, args, action):
    user = create_account(cli, "Paul", "Martin", profile="user")
    login(cli, user)
    result = cli("establishments", *args)
    assert result.exit_code == 7
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: You may not do this ({action}) on {SIRET_A}.\n"
        "Hint: A user profile cannot run administrator operations.\n"
    )
    # A user may still read their own establishment, unchanged.
    view = cli.json("establishments", "show", SIRET_A)
    assert view["name"] == f"Mairie {SIRET_A[:5]}"
    assert view["funds"] == ["CNRACL:C-1234"]
    assert view["cgu_version"] is None
    login(cli, admin_a)
    (denied,) = cli.json("history", "--action", "permission.denied")
    assert denied["actor"] == user
    assert denied["after"] == {"action": action, "rule": "user-profile"}


# -- history ---------------------------------------------------------------------------------------


def test_every_mutation_is_in_the_history_and_the_chain_verifies(cli):
    # Registration and the first login, each with the one-time code sent to the phone (one code each).
    assert cli(*register_args()).exit_code == 6
    sms_codes = [last_sms_code(cli)]
    data = cli.json(*register_args(), "--otp", sms_codes[0])
    identifier = data["administrator"]
    code = last_code(cli, EMAIL)
    activate(cli, identifier, EMAIL)
    assert cli("login", identifier, "--password-stdin", input=PASSWORD + "\n").exit_code == 6
    sms_codes.append(last_sms_code(cli))
    cli.ok("login", identifier, "--password-stdin", "--otp", sms_codes[1], input=PASSWORD + "\n")
    cli.ok("establishments", "update", SIRET_A, "--name", "Mairie renommée")
    cli.ok("establishments", "update", SIRET_A, "--fund", "FNC=F-9")
    cli.ok("establishments", "accept-cgu", SIRET_A)
    events = cli.json("history")
    assert [e["action"] for e in events] == [
        "otp.sent",
        "otp.verified",
        "establishment.register",
        "account.create",
        "account.activate",
        "establishment.activate",
        "otp.sent",
        "otp.verified",
        "auth.login",
        "establishment.update",
        "establishment.update",
        "establishment.accept_cgu",
    ]
    assert all(e["establishment"] == SIRET_A for e in events)
    assert events[0]["actor"] == events[2]["actor"] == f"registrant:{EMAIL}"
    assert events[2]["after"] == {"name": "Mairie de Démoville", "path": "classic", "funds": ["CNRACL"]}
    # Neither the activation code, the one-time codes, the password nor the full phone number reach the history.
    dumped = json.dumps(events, ensure_ascii=False)
    for secret in (code, code.replace("-", ""), PASSWORD, "+33610203040", "06 10 20 30 40", "610203040"):
        assert secret not in dumped
    for sms_code in sms_codes:
        assert sms_code not in dumped.replace(SIRET_A, "")  # six digits: not to be confused with the SIRET's
    assert "+33 6 •• •• •• 40" in dumped
    result = cli("history", "verify")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == "The audit trail is intact (12 events).\n"
