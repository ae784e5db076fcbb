"""outbox list | show: the built-in gateway's messages, codes blanked once used or expired, and the
refusal to use it on a remote store that did not opt in."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from pepsctl import clock, config
from pepsctl.store.engine import create_store_engine, parse_store_url
from tests.conftest import PASSWORD, SIRET_A, Cli, activate, create_account, register, with_code

MESSAGE_KEYS = ["id", "channel", "to", "subject", "body", "code", "created_at"]
LONG_CODE = re.compile(r"^[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}$")
JEAN = "jean.martin@example.fr"
SMS_BLANKED = "PEP's: your code is [blanked]. It expires in 5 minutes. Never give it to anyone."
# What the admin_a fixture leaves in the outbox: the registration's SMS code, the activation e-mail,
# then the login's SMS codes (conftest.login asks twice: its first try and with_code's each send one).
ADMIN_A_CHANNELS = ["sms", "email", "sms", "sms"]


def messages(cli: Cli, *args: str) -> list[dict]:
    return cli.json("outbox", "list", *args)


def table_counts(url: str) -> dict[str, int]:
    engine = create_store_engine(parse_store_url(url))
    try:
        with engine.connect() as connection:
            return {
                name: connection.execute(text(f"SELECT count(*) FROM {name}")).scalar_one()
                for name in ("establishment", "establishment_fund", "account", "audit_event", "outbox_message")
            }
    finally:
        engine.dispose()


def register_args(siret: str = SIRET_A, email: str = "marie.durand@example.fr") -> list[str]:
    return [
        "establishments",
        "register",
        "--siret",
        siret,
        "--name",
        "Mairie de Demoville",
        "--fund",
        "CNRACL=C-1234",
        "--admin-civility",
        "MME",
        "--admin-last-name",
        "Durand",
        "--admin-first-name",
        "Marie",
        "--admin-email",
        email,
        "--admin-phone",
        "06 10 20 30 40",
    ]


# -- list and show ---------------------------------------------------------------------------------


def test_outbox_list_and_show_json_fields(cli, admin_a):
    create_account(cli, "Jean", "Martin", activate_it=False)
    listed = messages(cli)
    assert len(listed) == 5
    assert [m["channel"] for m in listed] == [*ADMIN_A_CHANNELS, "email"]
    for message in listed:
        assert list(message) == MESSAGE_KEYS
        assert message["channel"] in ("email", "sms", "voice")
        assert message["created_at"] == "2026-01-15T09:30:00+00:00"
    assert [m["id"] for m in listed] == sorted(m["id"] for m in listed)
    newest = listed[-1]
    assert newest["to"] == JEAN
    assert newest["channel"] == "email"
    assert LONG_CODE.match(newest["code"])
    assert newest["code"] in newest["body"]
    shown = cli.json("outbox", "show", str(newest["id"]))
    assert list(shown) == MESSAGE_KEYS
    assert shown == newest


def test_outbox_empty_list(cli):
    assert messages(cli) == []
    assert cli.ok("outbox", "list", "--format", "csv").stdout.splitlines() == [",".join(MESSAGE_KEYS)]


def test_outbox_csv_and_table(cli, admin_a):
    lines = cli.ok("outbox", "list", "--format", "csv").stdout.splitlines()
    assert lines[0] == ",".join(MESSAGE_KEYS)
    table = cli.ok("outbox", "list").stdout
    assert "marie.durand@21999001700010.example.fr" in table


def test_outbox_list_filter_and_limit(cli, admin_a):
    create_account(cli, "Jean", "Martin", activate_it=False)
    create_account(cli, "Paul", "Petit", activate_it=False)
    everything = messages(cli)
    assert len(everything) == 6
    assert [m["channel"] for m in everything] == [*ADMIN_A_CHANNELS, "email", "email"]
    assert [m["to"] for m in messages(cli, "--to", JEAN)] == [JEAN]
    assert [m["to"] for m in messages(cli, "--to", f"  {JEAN} ")] == [JEAN]
    assert messages(cli, "--to", "nobody@example.fr") == []
    assert messages(cli, "--limit", "2") == everything[-2:]


def test_outbox_show_unknown_is_not_found(cli, admin_a):
    result = cli("outbox", "show", "999")
    assert result.exit_code == 4, result.stderr
    assert result.stdout == ""
    assert "999" in result.stderr
    assert "pepsctl outbox list" in result.stderr


def test_outbox_show_needs_a_number(cli):
    assert cli("outbox", "show", "abc").exit_code == 2


# -- codes blanked ---------------------------------------------------------------------------------


def test_a_used_code_is_blanked(cli, admin_a):
    create_account(cli, "Jean", "Martin", activate_it=False)
    (message,) = messages(cli, "--to", JEAN)
    code = message["code"]
    assert code
    identifier = next(a["identifier"] for a in cli.json("accounts", "list") if a["email"] == JEAN)
    cli.ok("password", "set", identifier, "--code", code, "--password-stdin", input=PASSWORD + "\n")
    (after,) = messages(cli, "--to", JEAN)
    assert after["code"] is None
    assert code not in after["body"]  # blanked means unreadable, in the body too
    assert cli.json("outbox", "show", str(after["id"]))["code"] is None
    # The other messages are untouched.
    assert after["id"] == message["id"] and after["subject"] == message["subject"]


def test_the_registration_code_is_blanked_once_used(cli, admin_a):
    """register() in conftest activated the administrator: the activation code is gone.

    So are the one-time codes by SMS: the registration's and the login's, used or replaced.
    """
    listed = messages(cli)
    assert [m["channel"] for m in listed] == ADMIN_A_CHANNELS
    (message,) = [m for m in listed if m["channel"] == "email"]
    assert message["code"] is None
    assert not re.search(r"[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}", message["body"])
    for sms in (m for m in listed if m["channel"] == "sms"):
        assert sms["code"] is None
        assert sms["body"] == SMS_BLANKED


def test_a_code_still_valid_is_shown(cli, admin_a):
    create_account(cli, "Jean", "Martin", activate_it=False)
    clock.advance(timedelta(days=15) - timedelta(seconds=1))
    (message,) = messages(cli, "--to", JEAN)
    assert message["code"] is not None


@pytest.mark.parametrize("after", [timedelta(days=15), timedelta(days=15, seconds=1), timedelta(days=40)])
def test_an_expired_code_is_blanked(cli, admin_a, after):
    create_account(cli, "Jean", "Martin", activate_it=False)
    (before,) = messages(cli, "--to", JEAN)
    code = before["code"]
    clock.advance(after)
    (message,) = messages(cli, "--to", JEAN)
    assert message["code"] is None
    assert code not in message["body"]
    assert cli.json("outbox", "show", str(message["id"]))["code"] is None


def test_an_expired_code_is_blanked_by_show_too(cli, admin_a):
    create_account(cli, "Jean", "Martin", activate_it=False)
    (before,) = messages(cli, "--to", JEAN)
    clock.advance(timedelta(days=16))
    shown = cli.json("outbox", "show", str(before["id"]))
    assert shown["code"] is None
    assert before["code"] not in shown["body"]


def test_an_expired_code_no_longer_sets_a_password(cli, admin_a):
    jean = create_account(cli, "Jean", "Martin", activate_it=False)
    (before,) = messages(cli, "--to", JEAN)
    clock.advance(timedelta(days=15, seconds=1))
    result = cli("password", "set", jean, "--code", before["code"], "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 6


def test_blanking_happens_in_the_store(cli, admin_a):
    """The code is gone from the table itself, not only from what is shown."""
    create_account(cli, "Jean", "Martin")
    engine = create_store_engine(parse_store_url(cli.store))
    try:
        with engine.connect() as connection:
            stored = connection.execute(text("SELECT code, body FROM outbox_message")).all()
    finally:
        engine.dispose()
    assert all(code is None for code, _body in stored)
    assert not any(re.search(r"[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}", body) for _code, body in stored)


# -- remote stores ---------------------------------------------------------------------------------


@pytest.fixture
def pg_no_outbox(request, monkeypatch) -> Cli:
    """The test PostgreSQL database, emptied, with PEPSCTL_OUTBOX unset (as on a real server)."""
    from tests.conftest import _empty_pg

    db = request.getfixturevalue("pg_database")
    _empty_pg(db.url)
    monkeypatch.delenv(config.ENV_OUTBOX, raising=False)
    return Cli(db.url, CliRunner())


@pytest.mark.postgres
@pytest.mark.parametrize("args", [("outbox", "list"), ("outbox", "show", "1")])
def test_outbox_on_postgresql_needs_an_explicit_opt_in(pg_no_outbox, args):
    result = pg_no_outbox(*args)
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    assert "not enabled" in result.stderr
    assert "Hint:" in result.stderr and "PEPSCTL_OUTBOX=1" in result.stderr


@pytest.mark.postgres
def test_registering_on_postgresql_without_a_gateway_writes_nothing(pg_no_outbox):
    before = table_counts(pg_no_outbox.store)
    result = pg_no_outbox(*register_args())
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert result.stdout == ""
    assert "No message gateway is configured" in result.stderr
    assert "PEPSCTL_OUTBOX=1" in result.stderr
    assert table_counts(pg_no_outbox.store) == before
    assert before["establishment"] == before["account"] == before["audit_event"] == before["outbox_message"] == 0
    assert pg_no_outbox("history", "verify").exit_code == 0


@pytest.mark.postgres
def test_postgresql_with_the_opt_in_uses_the_outbox(pg_no_outbox, monkeypatch):
    monkeypatch.setenv(config.ENV_OUTBOX, "1")
    identifier = register(pg_no_outbox, SIRET_A)
    assert identifier
    # The registration's one-time code, then the activation e-mail.
    assert [m["channel"] for m in messages(pg_no_outbox)] == ["sms", "email"]


@pytest.mark.postgres
@pytest.mark.parametrize("value", ["0", "", "no", "false"])
def test_outbox_opt_in_is_explicit(pg_no_outbox, monkeypatch, value):
    monkeypatch.setenv(config.ENV_OUTBOX, value)
    assert pg_no_outbox("outbox", "list").exit_code == 2


def test_sqlite_uses_the_outbox_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv(config.ENV_OUTBOX, raising=False)
    path = tmp_path / "local.db"
    cli = Cli(str(path), CliRunner())
    cli.ok("init")
    identifier = json.loads(with_code(cli, *register_args(), "--format", "json").stdout)["administrator"]
    sms, message = messages(cli)
    assert (sms["channel"], sms["to"], sms["code"]) == ("sms", "+33610203040", None)  # used by the registration
    assert message["channel"] == "email"
    assert LONG_CODE.match(message["code"])
    activate(cli, identifier, message["to"])
    assert messages(cli)[1]["code"] is None
