"""whoami --can ACTION TARGET: the authorization gate explains one decision (security.md "Authorization").

Exit 0 when allowed, 7 when refused, with the rule that decided; an unknown action is exit 3, an
unknown service exit 4; a target that does not exist is explained exactly like one of another
establishment.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import SIRET_A, SIRET_B, create_account, login, register

ADMIN_A = "MDU000001"  # Marie Durand, administrator of A
USER_A = "JDU000002"  # Jeanne Dupont, a user of A
OTHER_USER_A = "KBE000003"  # Karim Benali, another user of A
ADMIN_B = "PMA000004"  # Paul Martin, administrator of B
SIRET_UNREGISTERED = "21999005800006"  # a valid SIRET nobody registered
EXPLANATION_KEYS = ["allowed", "action", "target", "rule", "reason", "delegation_id"]
NOT_LOGGED_IN = "Error: You are not logged in to this store.\nHint: Run 'pepsctl login IDENTIFIER'.\n"

# (action, target, exit code, rule)
ADMIN_TABLE = [
    ("account.update", USER_A, 0, "administrator"),
    ("account.read", ADMIN_A, 0, "administrator"),
    ("account.delete", OTHER_USER_A, 0, "administrator"),
    ("right.grant", USER_A, 0, "administrator"),
    ("establishment.update", SIRET_A, 0, "administrator"),
    ("establishment.accept_cgu", SIRET_A, 0, "administrator"),
    ("delegation.request", SIRET_A, 0, "administrator"),
    ("read:gestion-comptes", SIRET_A, 0, "profile"),
    ("write:gestion-comptes", SIRET_A, 0, "profile"),
    ("read:cir", SIRET_A, 7, "no-right"),
    ("me.update", USER_A, 7, "not-allowed"),  # a colleague's own details are theirs to change
    ("account.update", ADMIN_B, 7, "no-delegation"),
    ("establishment.read", SIRET_B, 7, "no-delegation"),
    ("read:cir", SIRET_B, 7, "no-delegation"),
]
USER_TABLE = [
    ("account.read", USER_A, 0, "self"),
    ("right.read", USER_A, 0, "self"),
    ("me.update", USER_A, 0, "self"),
    ("establishment.read", SIRET_A, 0, "self"),
    ("read:cir", SIRET_A, 0, "right"),
    ("write:cir", SIRET_A, 7, "level"),
    ("read:estimation", SIRET_A, 7, "no-right"),
    ("me.update", OTHER_USER_A, 7, "not-allowed"),
    ("account.read", OTHER_USER_A, 7, "user-profile"),
    ("right.read", ADMIN_A, 7, "user-profile"),
    ("account.create", SIRET_A, 7, "user-profile"),
    ("account.update", OTHER_USER_A, 7, "user-profile"),
    ("right.grant", USER_A, 7, "user-profile"),
    ("establishment.update", SIRET_A, 7, "user-profile"),
    ("delegation.accept", SIRET_A, 7, "user-profile"),
    ("read:gestion-comptes", SIRET_A, 7, "no-right"),  # held by the administrator profile only
    ("establishment.read", SIRET_B, 7, "no-delegation"),
]


def explain(cli, action: str, target: str):
    result = cli("whoami", "--can", action, target, "--format", "json")
    return result.exit_code, result


@pytest.fixture
def gate(cli):
    """A with its administrator and two users (USER_A holds read on cir); B with its administrator."""
    assert register(cli, SIRET_A, last="Durand", first="Marie", phone="06 10 20 30 41") == ADMIN_A
    login(cli, ADMIN_A)
    assert create_account(cli, "Jeanne", "Dupont", phone="06 10 20 30 42") == USER_A
    assert create_account(cli, "Karim", "Benali", phone="06 10 20 30 43") == OTHER_USER_A
    cli.ok("rights", "grant", USER_A, "cir", "--level", "read")
    assert register(cli, SIRET_B, last="Martin", first="Paul", phone="06 10 20 30 44") == ADMIN_B
    return cli


@pytest.mark.parametrize(("actor", "table"), [(ADMIN_A, ADMIN_TABLE), (USER_A, USER_TABLE)], ids=["admin", "user"])
def test_the_gate_explains_each_decision_with_its_rule(gate, actor, table):
    cli = gate
    login(cli, actor)

    got, want = [], []
    for action, target, code, rule in table:
        exit_code, result = explain(cli, action, target)
        assert result.stderr == "", (action, target, result.stderr)
        data = json.loads(result.stdout)
        assert list(data) == EXPLANATION_KEYS
        assert data["allowed"] is (exit_code == 0)
        assert data["target"] == target and data["reason"]
        got.append((action, target, exit_code, data["rule"]))
        want.append((action, target, code, rule))

    assert got == want


def test_actions_are_normalised_in_the_explanation(gate):
    cli = gate
    login(cli, USER_A)

    short = json.loads(explain(cli, "READ:CIR", SIRET_A)[1].stdout)
    long = json.loads(explain(cli, "service.read:cir", SIRET_A)[1].stdout)

    assert short == long
    assert short["action"] == "service.read:cir"


@pytest.mark.parametrize("action", ["account.frobnicate", "delete:cir", "read:", "service.admin:cir", ""])
def test_an_unknown_action_exits_3(gate, action):
    cli = gate
    login(cli, ADMIN_A)

    exit_code, result = explain(cli, action, SIRET_A)

    assert exit_code == 3
    assert result.stdout == ""
    assert result.stderr.startswith(f"Error: Unknown action {action!r}.\nHint: Use read:SERVICE, write:SERVICE or")
    assert "account.update" in result.stderr


def test_an_unknown_service_exits_4_with_a_suggestion(gate):
    cli = gate
    login(cli, ADMIN_A)

    exit_code, result = explain(cli, "read:estimaton", SIRET_A)

    assert exit_code == 4
    assert result.stdout == ""
    assert result.stderr.startswith("Error: No service 'estimaton' in the catalogue.\nHint: Did you mean: ")
    assert "estimation" in result.stderr.splitlines()[1]


@pytest.mark.parametrize(
    ("action", "elsewhere", "nowhere"),
    [
        ("account.update", ADMIN_B, "ZZZ999999"),
        ("account.read", ADMIN_B, "ZZZ999999"),
        ("establishment.read", SIRET_B, SIRET_UNREGISTERED),
        ("read:cir", SIRET_B, SIRET_UNREGISTERED),
        ("delegation.read", "delegation:1", "delegation:99"),
    ],
)
def test_a_target_that_does_not_exist_is_explained_like_one_of_another_establishment(gate, action, elsewhere, nowhere):
    cli = gate
    if action == "delegation.read":  # a delegation between B and a third establishment, unknown to A
        register(cli, "20999003500013", last="Bernard", first="Luc", phone="06 10 20 30 45")
        login(cli, ADMIN_B)
        cli.ok("delegations", "request", "20999003500013", "--services", "cir")
    login(cli, ADMIN_A)

    code_elsewhere, there = explain(cli, action, elsewhere)
    code_nowhere, missing = explain(cli, action, nowhere)

    assert code_elsewhere == code_nowhere == 7
    assert there.stderr == missing.stderr == ""
    data_there, data_missing = json.loads(there.stdout), json.loads(missing.stdout)
    assert data_there["rule"] == "no-delegation"
    assert (data_there["target"], data_missing["target"]) == (elsewhere, nowhere)
    assert {**data_there, "target": None} == {**data_missing, "target": None}
    # The table output differs only by the target too (and the padding around it).
    table_there = " ".join(cli("whoami", "--can", action, elsewhere).stdout.split())
    table_missing = " ".join(cli("whoami", "--can", action, nowhere).stdout.split())
    assert table_there.replace(elsewhere, "TARGET") == table_missing.replace(nowhere, "TARGET")


def test_not_logged_in_exits_6(cli):
    register(cli, SIRET_A, last="Durand", first="Marie")  # registered and activated, nobody logged in

    exit_code, result = explain(cli, "account.read", ADMIN_A)

    assert exit_code == 6
    assert result.stdout == ""
    assert result.stderr == NOT_LOGGED_IN


def test_after_logout_exits_6(gate):
    cli = gate
    login(cli, ADMIN_A)
    assert explain(cli, "account.read", ADMIN_A)[0] == 0
    cli.ok("logout")

    exit_code, result = explain(cli, "account.read", ADMIN_A)

    assert exit_code == 6
    assert result.stderr == NOT_LOGGED_IN


def test_a_revoked_right_is_refused_on_the_very_next_decision(gate, isolate):
    cli = gate
    login(cli, USER_A)
    assert explain(cli, "read:cir", SIRET_A)[0] == 0
    user_session = {k: v for k, v in isolate.items.items() if k[0] == "pepsctl" and k[1].startswith("session:")}
    login(cli, ADMIN_A)
    cli.ok("rights", "revoke", USER_A, "cir")
    for key in [k for k in isolate.items if k[0] == "pepsctl" and k[1].startswith("session:")]:
        del isolate.items[key]
    isolate.items.update(user_session)  # the user's own session, opened before the revocation

    exit_code, result = explain(cli, "read:cir", SIRET_A)

    assert json.loads(cli("whoami", "--format", "json").stdout)["identifier"] == USER_A
    assert exit_code == 7
    assert json.loads(result.stdout)["rule"] == "no-right"


def audit_events(url: str) -> int:
    from sqlalchemy import text

    from pepsctl.store.engine import create_store_engine, parse_store_url

    engine = create_store_engine(parse_store_url(url))
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM audit_event")).scalar_one()
    finally:
        engine.dispose()


def test_explaining_a_refusal_records_nothing(gate):
    cli = gate
    login(cli, USER_A)
    before = audit_events(cli.store)

    assert explain(cli, "account.create", SIRET_A)[0] == 7
    assert explain(cli, "read:cir", SIRET_B)[0] == 7

    assert audit_events(cli.store) == before
