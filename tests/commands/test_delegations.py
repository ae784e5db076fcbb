"""delegations request | list | show | accept | refuse | revoke | grant | revoke-grant, on SQLite and PostgreSQL.

domain.md "Delegations" and security.md "Authorization": a centralizer (B, a centre de gestion)
asks an establishment (A) to act for it; only A's administrators accept or refuse; B's
administrators then grant B's users rights on A's services within the delegated scope; either side
revokes, and the revocation takes effect on the very next command. C is a third establishment that
never delegated anything to B.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from pepsctl import clock
from tests.conftest import (
    FROZEN_AT,
    SIRET_A,
    SIRET_B,
    SIRET_C,
    create_account,
    login,
    register,
    with_code,
)

ADMIN_A = "MDU000001"  # Marie Durand, administrator of A
ADMIN_B = "PMA000002"  # Paul Martin, administrator of B (the centralizer)
ADMIN_C = "LBE000003"  # Luc Bernard, administrator of C
USER_B = "KBE000004"  # Karim Benali, a user of B
EMAIL_A = f"marie.durand@{SIRET_A}.example.fr"
EMAIL_B = f"paul.martin@{SIRET_B}.example.fr"
EMAIL_C = f"luc.bernard@{SIRET_C}.example.fr"
SIRET_UNREGISTERED = "21999005800006"  # a valid SIRET nobody registered
SCOPE = "cir,estimation,gestion-comptes"
DELEGATION_KEYS = [
    "id",
    "status",
    "direction",
    "centralizer",
    "centralizer_name",
    "establishment",
    "establishment_name",
    "services",
    "ends_at",
    "requested_by",
    "requested_at",
    "decided_by",
    "decided_at",
    "reason",
    "revoked_by",
    "revoked_at",
]
NOW = FROZEN_AT.isoformat()
OTHER_HINT = "Hint: Not in your establishment nor in one that delegated to it (or it does not exist).\n"


# -- helpers -----------------------------------------------------------------------------------------


def _engine(url: str):
    from pepsctl.store.engine import create_store_engine, parse_store_url

    return create_store_engine(parse_store_url(url))


def query(url: str, sql: str, **params) -> list[tuple]:
    """Rows read directly from the store, not through pepsctl."""
    from sqlalchemy import text

    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def stored_delegation(url: str, delegation_id: int) -> dict:
    from sqlalchemy import text

    engine = _engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT * FROM delegation WHERE id = :id"), {"id": delegation_id}).mappings().one()
            return dict(row)
    finally:
        engine.dispose()


def delegated_rights(url: str) -> list[tuple]:
    """(identifier, SIRET, service, level, delegation id) of every right held through a delegation."""
    return query(
        url,
        "SELECT a.identifier, e.siret, r.service_code, r.level, r.delegation_id FROM account_right r "
        "JOIN account a ON a.id = r.account_id JOIN establishment e ON e.id = r.establishment_id "
        "WHERE r.delegation_id IS NOT NULL ORDER BY a.identifier, e.siret, r.service_code",
    )


def count(url: str, table: str) -> int:
    return query(url, f"SELECT count(*) FROM {table}")[0][0]


def emails(cli, to: str) -> list[dict]:
    return [m for m in cli.json("outbox", "list", "--to", to) if m["channel"] == "email"]


def subjects(cli, to: str) -> list[str]:
    return [m["subject"] for m in emails(cli, to)]


def history(cli, *args: str) -> list[dict]:
    return cli.json("history", *args)


def can(cli, action: str, target: str):
    """whoami --can ACTION TARGET: (exit code, the explanation)."""
    result = cli("whoami", "--can", action, target, "--format", "json")
    assert result.exit_code in (0, 7), (result.exit_code, result.stdout, result.stderr)
    return result.exit_code, json.loads(result.stdout)


def request(cli, siret: str = SIRET_A, services: str | None = SCOPE, *extra: str) -> dict:
    args = ["delegations", "request", siret, *extra]
    if services is not None:
        args += ["--services", services]
    return cli.json(*args)


def accept(cli, delegation_id: int) -> dict:
    result = with_code(cli, "delegations", "accept", str(delegation_id), "--yes", "--format", "json")
    return json.loads(result.stdout)


def grant(cli, *services: str, level: str = "read", account: str = USER_B, siret: str = SIRET_A) -> list[dict]:
    return cli.json("delegations", "grant", account, "--establishment", siret, *services, "--level", level)


def accepted(cli, services: str | None = SCOPE, *extra: str) -> int:
    """B asks A, A accepts; B's administrator is logged in again at the end. Returns the delegation id."""
    delegation_id = request(cli, SIRET_A, services, *extra)["id"]
    login(cli, ADMIN_A)
    accept(cli, delegation_id)
    login(cli, ADMIN_B)
    return delegation_id


def delegated_cir(cli, services: str | None = SCOPE) -> int:
    """An accepted delegation and USER_B holding read on A's cir through it; ADMIN_B logged in."""
    delegation_id = accepted(cli, services)
    grant(cli, "cir")
    return delegation_id


def session_items(keyring) -> dict:
    """The session token(s) pepsctl keeps in the (test) keyring."""
    return {k: v for k, v in keyring.items.items() if k[0] == "pepsctl" and k[1].startswith("session:")}


def restore_session_items(keyring, saved: dict) -> None:
    """Put back a session saved earlier, as if its owner ran pepsctl again on their own machine."""
    for key in session_items(keyring):
        del keyring.items[key]
    keyring.items.update(saved)


def fresh_session(cli, identifier: str) -> None:
    """A session that has not verified a code yet: the workstation is trusted, so login needs none."""
    login(cli, identifier)
    login(cli, identifier)
    assert cli.json("whoami")["identifier"] == identifier


@pytest.fixture
def world(cli):
    """A, B (the centralizer) and C registered, each with its administrator; B has a user; B's admin logged in."""
    assert register(cli, SIRET_A, last="Durand", first="Marie", phone="06 10 20 30 41") == ADMIN_A
    assert register(cli, SIRET_B, last="Martin", first="Paul", phone="06 10 20 30 42") == ADMIN_B
    assert register(cli, SIRET_C, last="Bernard", first="Luc", phone="06 10 20 30 43") == ADMIN_C
    login(cli, ADMIN_B)
    assert create_account(cli, "Karim", "Benali", phone="06 10 20 30 44") == USER_B
    return cli


# -- the life cycle ----------------------------------------------------------------------------------


def test_request_is_pending_outgoing_for_the_centralizer_and_incoming_for_the_establishment(world):
    cli = world

    created = request(cli)

    assert list(created) == DELEGATION_KEYS
    assert created == {
        "id": 1,
        "status": "pending",
        "direction": "outgoing",
        "centralizer": SIRET_B,
        "centralizer_name": "Mairie 25999",
        "establishment": SIRET_A,
        "establishment_name": "Mairie 21999",
        "services": ["estimation", "cir", "gestion-comptes"],  # catalogue order
        "ends_at": None,
        "requested_by": ADMIN_B,
        "requested_at": NOW,
        "decided_by": None,
        "decided_at": None,
        "reason": None,
        "revoked_by": None,
        "revoked_at": None,
    }
    assert cli.json("delegations", "list") == [created]
    assert stored_delegation(cli.store, 1)["status"] == "pending"
    assert sorted(query(cli.store, "SELECT service_code FROM delegation_service WHERE delegation_id = 1")) == [
        ("cir",),
        ("estimation",),
        ("gestion-comptes",),
    ]
    login(cli, ADMIN_A)
    incoming = cli.json("delegations", "show", "1")
    assert incoming == {**created, "direction": "incoming"}
    assert cli.json("delegations", "list", "--status", "pending") == [incoming]
    assert cli.json("delegations", "list", "--status", "accepted") == []


def test_request_emails_the_establishment_administrators_only(world):
    cli = world

    request(cli)

    messages = emails(cli, EMAIL_A)
    assert [m["subject"] for m in messages] == [
        "Your PEP's account MDU000001",
        "PEP's: Mairie 25999 asks for a delegation",
    ]
    body = messages[-1]["body"]
    assert SIRET_B in body and "pepsctl delegations accept 1" in body and "pepsctl delegations refuse 1" in body
    assert "PEP's: Mairie 25999 asks for a delegation" not in subjects(cli, EMAIL_B) + subjects(cli, EMAIL_C)


def test_accept_is_a_sensitive_action_then_the_centralizer_is_emailed(world):
    cli = world
    request(cli)
    fresh_session(cli, ADMIN_A)

    first = cli("delegations", "accept", "1", "--yes")

    assert first.exit_code == 6, (first.stdout, first.stderr)
    assert first.stdout == ""
    assert "needs a one-time code" in first.stderr and "--otp CODE" in first.stderr
    assert stored_delegation(cli.store, 1)["status"] == "pending"
    assert not any("accepted" in s for s in subjects(cli, EMAIL_B))

    done = accept(cli, 1)

    assert done["status"] == "accepted"
    assert done["direction"] == "incoming"
    assert (done["decided_by"], done["decided_at"]) == (ADMIN_A, NOW)
    row = stored_delegation(cli.store, 1)
    assert (row["status"], row["decided_by"]) == ("accepted", ADMIN_A)
    mails = emails(cli, EMAIL_B)
    assert mails[-1]["subject"] == "PEP's: delegation 1 accepted by Mairie 21999"
    assert mails[-1]["body"] == f"Mairie 21999 ({SIRET_A}) accepted your delegation request 1."
    login(cli, ADMIN_B)
    assert cli.json("delegations", "show", "1")["direction"] == "outgoing"
    assert cli.json("delegations", "list", "--status", "accepted")[0]["status"] == "accepted"


def test_accept_needs_confirmation_without_a_terminal(world):
    cli = world
    request(cli)
    login(cli, ADMIN_A)

    result = cli("delegations", "accept", "1")

    assert result.exit_code == 2
    assert stored_delegation(cli.store, 1)["status"] == "pending"


def test_delegated_grant_is_listed_via_the_delegation(world):
    cli = world
    accepted(cli)

    changes = grant(cli, "cir")

    assert changes == [
        {"identifier": USER_B, "establishment": SIRET_A, "service": "cir", "before": None, "after": "read"}
    ]
    assert delegated_rights(cli.store) == [(USER_B, SIRET_A, "cir", "read", 1)]
    login(cli, USER_B)
    assert cli.json("rights", "list", USER_B) == [
        {
            "identifier": USER_B,
            "establishment": SIRET_A,
            "service": "cir",
            "label": "Comptes individuels retraite (CIR)",
            "level": "read",
            "via": "delegation",
            "delegation_id": 1,
            "sensitive": False,
            "active": True,
            "granted_by": ADMIN_B,
            "granted_at": NOW,
        }
    ]


def test_the_gate_allows_the_delegated_right_and_nothing_beyond_it(world):
    cli = world
    delegated_cir(cli)
    login(cli, USER_B)

    read_a = can(cli, "read:cir", SIRET_A)
    write_a = can(cli, "write:cir", SIRET_A)
    read_c = can(cli, "read:cir", SIRET_C)
    other_service = can(cli, "read:estimation", SIRET_A)  # in the scope, but no right granted on it

    assert read_a[0] == 0 and (read_a[1]["rule"], read_a[1]["delegation_id"]) == ("delegation-right", 1)
    assert read_a[1]["allowed"] is True
    assert write_a[0] == 7 and write_a[1]["rule"] == "level" and write_a[1]["allowed"] is False
    assert read_c[0] == 7 and read_c[1]["rule"] == "no-delegation"
    assert other_service[0] == 7 and other_service[1]["rule"] == "no-right"


def test_a_delegated_user_reads_the_delegated_establishment_record_and_no_other(world):
    cli = world
    delegated_cir(cli)
    login(cli, USER_B)

    shown = cli("establishments", "show", SIRET_A, "--format", "json")
    other = cli("establishments", "show", SIRET_C)

    assert shown.exit_code == 0, shown.stderr
    assert json.loads(shown.stdout)["siret"] == SIRET_A
    assert other.exit_code == 7
    assert other.stdout == ""
    assert other.stderr == f"Error: You may not do this (establishment.read) on {SIRET_C}.\n" + OTHER_HINT


def test_a_centralizer_user_without_a_delegated_right_cannot_read_the_record(world):
    cli = world
    accepted(cli)
    login(cli, USER_B)

    assert cli("establishments", "show", SIRET_A).exit_code == 7


def test_revoke_grant_removes_one_delegated_right(world):
    cli = world
    delegated_cir(cli)
    grant(cli, "estimation")

    removed = cli.json("delegations", "revoke-grant", USER_B, "--establishment", SIRET_A, "cir")

    assert removed == [
        {"identifier": USER_B, "establishment": SIRET_A, "service": "cir", "before": "read", "after": None}
    ]
    assert delegated_rights(cli.store) == [(USER_B, SIRET_A, "estimation", "read", 1)]
    login(cli, USER_B)
    assert can(cli, "read:cir", SIRET_A)[0] == 7
    assert can(cli, "read:estimation", SIRET_A)[0] == 0


# -- request: the rules ------------------------------------------------------------------------------


def test_request_default_scope_is_every_active_service_of_the_catalogue(world):
    cli = world
    catalogue = [s["code"] for s in cli.json("rights", "catalog")]

    created = request(cli, SIRET_A, None)

    assert len(catalogue) > 30
    assert created["services"] == catalogue


def test_request_with_a_single_service_and_an_end_date(world):
    cli = world

    created = request(cli, SIRET_A, "cir", "--until", "2026-02-14")

    assert created["services"] == ["cir"]
    assert created["ends_at"] == "2026-02-14T23:59:59+00:00"  # the last day counts in full


@pytest.mark.parametrize("until", ["2026-01-14", "2025-06-30"])
def test_request_ending_in_the_past_exits_3_and_writes_nothing(world, until):
    cli = world

    result = cli("delegations", "request", SIRET_A, "--services", "cir", "--until", until)

    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.startswith("Error: The end date must be in the future.\n")
    assert count(cli.store, "delegation") == 0


def test_request_to_an_unregistered_siret_exits_4(world):
    cli = world

    result = cli("delegations", "request", SIRET_UNREGISTERED, "--services", "cir")

    assert result.exit_code == 4
    assert result.stdout == ""
    assert result.stderr.startswith(f"Error: No establishment {SIRET_UNREGISTERED} is registered.\n")
    assert count(cli.store, "delegation") == 0


def test_request_with_an_invalid_siret_exits_3(world):
    result = world("delegations", "request", "21999001700011", "--services", "cir")

    assert result.exit_code == 3
    assert count(world.store, "delegation") == 0


def test_request_with_an_unknown_service_exits_4(world):
    cli = world

    result = cli("delegations", "request", SIRET_A, "--services", "cir,cirr2")

    assert result.exit_code == 4
    assert result.stderr.startswith("Error: No service 'cirr2' in the catalogue.\n")
    assert count(cli.store, "delegation") == 0


def test_request_to_ones_own_establishment_exits_5(world):
    cli = world

    result = cli("delegations", "request", SIRET_B, "--services", "cir")

    assert result.exit_code == 5
    assert result.stderr.startswith("Error: An establishment cannot ask itself for a delegation.\n")
    assert count(cli.store, "delegation") == 0


@pytest.mark.parametrize("state", ["pending", "accepted"])
def test_a_second_request_while_one_is_pending_or_accepted_exits_5(world, state):
    cli = world
    if state == "pending":
        request(cli)
    else:
        accepted(cli)

    result = cli("delegations", "request", SIRET_A, "--services", "di")

    assert result.exit_code == 5
    assert result.stderr.startswith(f"Error: Delegation 1 from {SIRET_A} is already {state}.\n")
    assert count(cli.store, "delegation") == 1


def test_a_user_profile_cannot_request_a_delegation(world):
    cli = world
    login(cli, USER_B)

    result = cli("delegations", "request", SIRET_A, "--services", "cir")

    assert result.exit_code == 7
    assert count(cli.store, "delegation") == 0


# -- who decides -------------------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["accept", "refuse"])
def test_the_requester_side_cannot_decide_its_own_request(world, verb):
    cli = world
    request(cli)

    result = cli("delegations", verb, "1", "--yes") if verb == "accept" else cli("delegations", verb, "1")

    assert result.exit_code == 7
    assert result.stdout == ""
    assert result.stderr.startswith(f"Error: You may not do this (delegation.{verb}) on delegation:1.\n")
    row = stored_delegation(cli.store, 1)
    assert (row["status"], row["decided_by"]) == ("pending", None)
    denied = history(cli, "--action", "permission.denied")
    assert [(e["actor"], e["establishment"], e["target"], e["after"]) for e in denied] == [
        (ADMIN_B, SIRET_B, "delegation:1", {"action": f"delegation.{verb}", "rule": "no-delegation"})
    ]


def test_a_third_establishment_cannot_accept_refuse_show_or_revoke(world):
    cli = world
    request(cli)
    login(cli, ADMIN_C)

    results = {
        "accept": cli("delegations", "accept", "1", "--yes"),
        "refuse": cli("delegations", "refuse", "1"),
        "show": cli("delegations", "show", "1"),
        "revoke": cli("delegations", "revoke", "1", "--yes"),
    }

    assert {verb: r.exit_code for verb, r in results.items()} == dict.fromkeys(results, 7)
    assert all(r.stdout == "" for r in results.values())
    assert stored_delegation(cli.store, 1)["status"] == "pending"
    assert cli.json("delegations", "list") == []
    assert can(cli, "delegation.read", "delegation:1")[0] == 7


def test_a_user_profile_of_the_establishment_cannot_accept(world):
    cli = world
    request(cli)
    login(cli, ADMIN_A)
    user_a = create_account(cli, "Jeanne", "Dupont", phone="06 10 20 30 45")
    login(cli, user_a)

    result = cli("delegations", "accept", "1", "--yes", "--format", "json")

    assert result.exit_code == 7
    assert result.stderr == (
        "Error: You may not do this (delegation.accept) on delegation:1.\n"
        "Hint: A user profile cannot run administrator operations.\n"
    )
    assert stored_delegation(cli.store, 1)["status"] == "pending"


# -- refuse, wrong states, unknown ids ---------------------------------------------------------------


def test_refuse_with_a_reason_stores_it_and_emails_the_centralizer(world):
    cli = world
    request(cli)
    login(cli, ADMIN_A)

    refused = cli.json("delegations", "refuse", "1", "--reason", "Nous gérons nos comptes nous-mêmes.")

    assert refused["status"] == "refused"
    assert refused["reason"] == "Nous gérons nos comptes nous-mêmes."
    assert (refused["decided_by"], refused["decided_at"]) == (ADMIN_A, NOW)
    row = stored_delegation(cli.store, 1)
    assert (row["status"], row["reason"]) == ("refused", "Nous gérons nos comptes nous-mêmes.")
    mail = emails(cli, EMAIL_B)[-1]
    assert mail["subject"] == "PEP's: delegation 1 refused by Mairie 21999"
    assert mail["body"] == (
        f"Mairie 21999 ({SIRET_A}) refused your delegation request 1.\nReason: Nous gérons nos comptes nous-mêmes."
    )


def test_a_refused_delegation_can_be_neither_accepted_nor_revoked(world):
    cli = world
    request(cli)
    login(cli, ADMIN_A)
    cli.ok("delegations", "refuse", "1")

    accepted_ = cli("delegations", "accept", "1", "--yes")
    revoked = cli("delegations", "revoke", "1", "--yes")
    refused_again = cli("delegations", "refuse", "1")

    assert (accepted_.exit_code, revoked.exit_code, refused_again.exit_code) == (5, 5, 5)
    assert accepted_.stderr.startswith("Error: Delegation 1 is refused: it cannot be accepted.\n")
    assert revoked.stderr.startswith("Error: Delegation 1 is refused: it cannot be revoked.\n")
    row = stored_delegation(cli.store, 1)
    assert (row["status"], row["revoked_by"]) == ("refused", None)


def test_after_a_refusal_the_centralizer_may_ask_again(world):
    cli = world
    request(cli)
    login(cli, ADMIN_A)
    cli.ok("delegations", "refuse", "1")
    login(cli, ADMIN_B)

    again = request(cli, SIRET_A, "cir")

    assert (again["id"], again["status"]) == (2, "pending")


@pytest.mark.parametrize(
    "args",
    [
        ("show", "99"),
        ("accept", "99", "--yes"),
        ("refuse", "99"),
        ("revoke", "99", "--yes"),
    ],
)
def test_an_unknown_delegation_id_is_refused_like_another_establishments(world, args):
    cli = world
    request(cli)
    login(cli, ADMIN_A)

    result = cli("delegations", *args)

    # security.md: an unknown id and a delegation of others get the same answer (exit 7).
    assert result.exit_code == 7
    assert result.stdout == ""
    assert result.stderr.startswith("Error: You may not do this (delegation.")
    assert result.stderr.endswith(
        " on delegation:99.\nHint: Not in your establishment nor in one that delegated to it (or it does not exist).\n"
    )


# -- scope -------------------------------------------------------------------------------------------


def test_granting_a_service_outside_the_scope_is_denied_and_writes_nothing(world):
    cli = world
    accepted(cli)

    result = cli("delegations", "grant", USER_B, "--establishment", SIRET_A, "di", "--level", "read")

    assert result.exit_code == 7
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: You may not do this (right.grant) on {SIRET_A}.\nHint: Delegation 1 does not cover: di.\n"
    )
    assert delegated_rights(cli.store) == []
    assert history(cli, "--action", "right.grant") == []
    login(cli, USER_B)
    assert can(cli, "read:di", SIRET_A)[1]["rule"] == "outside-scope"


def test_a_scope_and_an_outside_service_in_one_grant_writes_nothing(world):
    cli = world
    accepted(cli)

    result = cli("delegations", "grant", USER_B, "--establishment", SIRET_A, "cir", "di")

    assert result.exit_code == 7
    assert delegated_rights(cli.store) == []


def test_granting_without_a_delegation_looks_the_same_as_an_unregistered_siret(world):
    cli = world
    accepted(cli)

    registered = cli("delegations", "grant", USER_B, "--establishment", SIRET_C, "cir")
    unregistered = cli("delegations", "grant", USER_B, "--establishment", SIRET_UNREGISTERED, "cir")

    assert registered.exit_code == unregistered.exit_code == 7
    assert registered.stdout == unregistered.stdout == ""
    assert registered.stderr == f"Error: You may not do this (right.grant) on {SIRET_C}.\n" + OTHER_HINT
    assert unregistered.stderr == registered.stderr.replace(SIRET_C, SIRET_UNREGISTERED)
    assert delegated_rights(cli.store) == []


def test_granting_on_a_pending_delegation_is_denied(world):
    cli = world
    request(cli)

    result = cli("delegations", "grant", USER_B, "--establishment", SIRET_A, "cir")

    assert result.exit_code == 7
    assert result.stderr == f"Error: You may not do this (right.grant) on {SIRET_A}.\n" + OTHER_HINT
    assert delegated_rights(cli.store) == []


def test_the_account_management_service_is_never_granted_even_in_scope(world):
    cli = world
    accepted(cli)

    result = cli("delegations", "grant", USER_B, "--establishment", SIRET_A, "gestion-comptes")

    assert result.exit_code == 5
    assert result.stderr.startswith("Error: gestion-comptes: held by the administrator profile, never granted.\n")
    assert delegated_rights(cli.store) == []


def test_a_delegated_grant_only_goes_to_the_centralizers_own_accounts(world):
    cli = world
    accepted(cli)

    result = cli("delegations", "grant", ADMIN_C, "--establishment", SIRET_A, "cir")

    assert result.exit_code == 7
    assert delegated_rights(cli.store) == []


def test_a_centralizer_user_cannot_grant_delegated_rights(world):
    cli = world
    accepted(cli)
    login(cli, USER_B)

    result = cli("delegations", "grant", USER_B, "--establishment", SIRET_A, "cir")

    assert result.exit_code == 7
    assert delegated_rights(cli.store) == []


# -- account management through the delegation ------------------------------------------------------


def test_the_centralizer_admin_manages_accounts_through_gestion_comptes(world):
    cli = world
    accepted(cli)

    listed = cli.json("accounts", "list", "--establishment", SIRET_A)
    shown = cli.json("accounts", "show", ADMIN_A)
    created = with_code(
        cli,
        "accounts",
        "create",
        "--establishment",
        SIRET_A,
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
        "--format",
        "json",
    )
    events = history(cli, "--establishment", SIRET_A)

    assert [a["identifier"] for a in listed] == [ADMIN_A]
    assert (shown["identifier"], shown["establishment"]) == (ADMIN_A, SIRET_A)
    new = json.loads(created.stdout)
    assert new["establishment"] == SIRET_A
    assert query(
        cli.store,
        "SELECT e.siret FROM account a JOIN establishment e ON e.id = a.establishment_id WHERE a.identifier = :i",
        i=new["identifier"],
    ) == [(SIRET_A,)]
    mine = [e for e in events if e["actor"] == ADMIN_B and e["establishment"] == SIRET_A]
    creation = [e for e in mine if e["action"] == "account.create"]
    assert [(e["target"], e["delegation_id"]) for e in creation] == [(new["identifier"], 1)]
    assert {e["action"] for e in events} >= {"establishment.register", "delegation.request", "delegation.accept"}
    login(cli, ADMIN_A)
    # A sees what the centralizer did for it, under the delegation's id.
    assert [e["delegation_id"] for e in history(cli, "--action", "account.create") if e["actor"] == ADMIN_B] == [1]


def test_without_gestion_comptes_in_scope_account_management_is_refused(world):
    cli = world
    accepted(cli, "cir,estimation")

    listed = cli("accounts", "list", "--establishment", SIRET_A)
    shown = cli("accounts", "show", ADMIN_A)
    events = cli("history", "--establishment", SIRET_A)
    why = can(cli, "account.list", SIRET_A)

    assert (listed.exit_code, shown.exit_code, events.exit_code) == (7, 7, 7)
    assert listed.stderr == (
        f"Error: You may not do this (account.list) on {SIRET_A}.\n"
        "Hint: Delegation 1 does not cover account management.\n"
    )
    assert why[0] == 7 and why[1]["rule"] == "outside-scope"


def test_the_centralizers_users_never_manage_delegated_accounts(world):
    cli = world
    delegated_cir(cli)
    login(cli, USER_B)

    listed = cli("accounts", "list", "--establishment", SIRET_A)
    shown = cli("accounts", "show", ADMIN_A)
    why = can(cli, "account.list", SIRET_A)

    assert (listed.exit_code, shown.exit_code) == (7, 7)
    assert listed.stderr.endswith("Hint: A user profile cannot run administrator operations.\n")
    assert why[0] == 7 and why[1]["rule"] == "user-profile"


def test_the_centralizer_admin_cannot_take_the_establishments_own_decisions(world):
    cli = world
    accepted(cli)
    before = cli.json("accounts", "list", "--establishment", SIRET_A)

    update = cli("establishments", "update", SIRET_A, "--name", "Pris en main")
    cgu = cli("establishments", "accept-cgu", SIRET_A)
    rights = cli("rights", "grant", ADMIN_A, "cir")
    revoke = cli("rights", "revoke", ADMIN_A, "cir")

    assert (update.exit_code, cgu.exit_code, rights.exit_code, revoke.exit_code) == (7, 7, 7, 7)
    assert update.stderr == (
        f"Error: You may not do this (establishment.update) on {SIRET_A}.\n"
        "Hint: Only the establishment's own administrators may do this.\n"
    )
    assert query(cli.store, "SELECT name, cgu_version FROM establishment WHERE siret = :s", s=SIRET_A) == [
        ("Mairie 21999", None)
    ]
    assert count(cli.store, "account_right") == 0
    assert cli.json("accounts", "list", "--establishment", SIRET_A) == before
    for action in ("establishment.update", "establishment.accept_cgu", "right.grant", "delegation.accept"):
        assert can(cli, action, SIRET_A)[1]["rule"] == "not-delegable", action


# -- revocation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("revoker", "notified", "silent"),
    [(ADMIN_A, EMAIL_B, EMAIL_A), (ADMIN_B, EMAIL_A, EMAIL_B)],
    ids=["by-the-establishment", "by-the-centralizer"],
)
def test_revoke_takes_effect_on_the_very_next_command(world, isolate, revoker, notified, silent):
    cli = world
    delegated_cir(cli)
    grant(cli, "estimation", level="write")
    login(cli, USER_B)
    assert can(cli, "read:cir", SIRET_A)[0] == 0  # the user's session is open before the revocation
    user_session = session_items(isolate)
    login(cli, revoker)
    mails_before = len(emails(cli, notified))

    result = cli("delegations", "revoke", "1", "--yes", "--format", "json")

    assert result.exit_code == 0, result.stderr
    assert result.stderr == "2 rights removed.\n"
    revoked = json.loads(result.stdout)
    assert (revoked["status"], revoked["revoked_by"], revoked["revoked_at"]) == ("revoked", revoker, NOW)
    assert delegated_rights(cli.store) == []
    assert stored_delegation(cli.store, 1)["status"] == "revoked"
    mails = emails(cli, notified)
    assert len(mails) == mails_before + 1
    assert mails[-1]["subject"] == "PEP's: delegation 1 revoked"
    assert "The rights granted through it are removed." in mails[-1]["body"]
    assert "PEP's: delegation 1 revoked" not in subjects(cli, silent)
    # The user's very next command, in the session opened before the revocation.
    restore_session_items(isolate, user_session)
    assert cli.json("whoami")["identifier"] == USER_B
    code, why = can(cli, "read:cir", SIRET_A)
    assert code == 7 and why["rule"] == "no-delegation"
    assert cli.json("rights", "list", USER_B) == []
    assert cli("establishments", "show", SIRET_A).exit_code == 7


def test_a_second_revoke_exits_5(world):
    cli = world
    accepted(cli)
    cli.ok("delegations", "revoke", "1", "--yes")

    again = cli("delegations", "revoke", "1", "--yes")

    assert again.exit_code == 5
    assert again.stderr.startswith("Error: Delegation 1 is revoked: it cannot be revoked.\n")
    assert len(history(cli, "--action", "delegation.revoke")) == 1


def test_revoke_needs_confirmation_without_a_terminal(world):
    cli = world
    delegated_cir(cli)

    result = cli("delegations", "revoke", "1")

    assert result.exit_code == 2
    assert stored_delegation(cli.store, 1)["status"] == "accepted"
    assert delegated_rights(cli.store) == [(USER_B, SIRET_A, "cir", "read", 1)]


def test_the_requester_may_withdraw_a_pending_request(world):
    cli = world
    request(cli)

    result = cli("delegations", "revoke", "1", "--yes", "--format", "json")

    assert result.exit_code == 0, result.stderr
    assert result.stderr == "0 rights removed.\n"
    assert json.loads(result.stdout)["status"] == "revoked"
    login(cli, ADMIN_A)
    assert cli("delegations", "accept", "1", "--yes").exit_code == 5
    # A new request is possible once the old one is revoked.
    login(cli, ADMIN_B)
    assert request(cli)["id"] == 2


# -- end date ----------------------------------------------------------------------------------------


def test_an_end_date_expires_the_delegation_after_its_last_day(world):
    cli = world
    delegation_id = request(cli, SIRET_A, SCOPE, "--until", "2026-02-14")["id"]
    login(cli, ADMIN_A)
    accept(cli, delegation_id)
    login(cli, ADMIN_B)
    grant(cli, "cir")

    clock.freeze(datetime(2026, 2, 14, 23, 0, tzinfo=UTC))  # still the last day
    login(cli, USER_B)
    assert can(cli, "read:cir", SIRET_A)[0] == 0
    assert cli.json("rights", "list", USER_B)[0]["active"] is True

    clock.advance(timedelta(hours=1))  # 2026-02-15 00:00 UTC: over
    login(cli, USER_B)  # an hour idle ended the session
    code, why = can(cli, "read:cir", SIRET_A)
    assert code == 7 and why["rule"] == "no-delegation"
    rows = cli.json("rights", "list", USER_B)
    assert [(r["service"], r["via"], r["active"]) for r in rows] == [("cir", "delegation", False)]
    assert cli("establishments", "show", SIRET_A).exit_code == 7
    login(cli, ADMIN_B)
    shown = cli.json("delegations", "show", str(delegation_id))
    assert (shown["status"], shown["ends_at"]) == ("expired", "2026-02-14T23:59:59+00:00")
    assert [d["id"] for d in cli.json("delegations", "list", "--status", "expired")] == [delegation_id]
    assert stored_delegation(cli.store, delegation_id)["status"] == "accepted"  # derived, not rewritten
    assert cli("accounts", "list", "--establishment", SIRET_A).exit_code == 7
    assert cli("delegations", "grant", USER_B, "--establishment", SIRET_A, "estimation").exit_code == 7
    # An expired delegation does not block a new request, and can still be revoked (its rows go).
    assert request(cli, SIRET_A, "cir")["id"] == delegation_id + 1
    revoked = cli("delegations", "revoke", str(delegation_id), "--yes")
    assert revoked.exit_code == 0, revoked.stderr
    assert delegated_rights(cli.store) == []


def test_a_request_whose_end_date_passed_cannot_be_accepted(world):
    cli = world
    request(cli, SIRET_A, "cir", "--until", "2026-01-20")
    clock.advance(timedelta(days=10))
    login(cli, ADMIN_A)

    result = cli("delegations", "accept", "1", "--yes", "--otp", "000000")

    assert result.exit_code == 5
    assert stored_delegation(cli.store, 1)["status"] == "pending"


# -- history -----------------------------------------------------------------------------------------


def test_history_tells_the_story_on_both_sides(world):
    cli = world
    delegated_cir(cli)
    login(cli, ADMIN_A)
    cli.ok("delegations", "revoke", "1", "--yes")

    story = ["delegation.request", "delegation.accept", "right.grant", "delegation.revoke"]
    seen_by_a = [e for e in history(cli) if e["delegation_id"] == 1]
    assert [e["action"] for e in seen_by_a if e["action"] in story] == story
    by_action = {e["action"]: e for e in seen_by_a}
    assert (by_action["delegation.request"]["actor"], by_action["delegation.request"]["after"]["to"]) == (
        ADMIN_B,
        SIRET_A,
    )
    assert by_action["delegation.accept"]["actor"] == ADMIN_A
    assert (by_action["right.grant"]["actor"], by_action["right.grant"]["target"]) == (ADMIN_B, USER_B)
    assert by_action["right.grant"]["after"] == {"service": "cir", "level": "read"}
    assert by_action["delegation.revoke"]["after"] == {"status": "revoked", "rights_removed": 1}
    login(cli, ADMIN_B)
    seen_by_b = [e for e in history(cli) if e["delegation_id"] == 1]
    assert [e["action"] for e in seen_by_b if e["action"] in story] == story
    assert [e["id"] for e in seen_by_b if e["action"] in story] == [e["id"] for e in seen_by_a if e["action"] in story]
    # C, a stranger to the delegation, sees none of it.
    login(cli, ADMIN_C)
    assert [e for e in history(cli) if e["delegation_id"] == 1] == []
    verify = cli("history", "verify")
    assert verify.exit_code == 0, (verify.stdout, verify.stderr)


def test_the_centralizer_does_not_read_the_establishments_history_without_account_management(world):
    cli = world
    accepted(cli, "cir")

    result = cli("history", "--establishment", SIRET_A)

    assert result.exit_code == 7
    assert result.stdout == ""


# -- the Done-when scenario --------------------------------------------------------------------------


def test_done_when_a_centre_de_gestion_acts_for_the_establishments_that_accepted(world):
    cli = world
    admin_d = register(cli, SIRET_UNREGISTERED, last="Petit", first="Anne", phone="06 10 20 30 46")
    email_d = f"anne.petit@{SIRET_UNREGISTERED}.example.fr"
    login(cli, ADMIN_B)

    # B, the centre de gestion, asks A, C and D.
    asked = {
        siret: request(cli, siret, "estimation,simulation,cir")["id"]
        for siret in (SIRET_A, SIRET_C, SIRET_UNREGISTERED)
    }
    assert [d["status"] for d in cli.json("delegations", "list")] == ["pending"] * 3
    for email in (EMAIL_A, EMAIL_C, email_d):
        assert subjects(cli, email)[-1] == "PEP's: Mairie 25999 asks for a delegation"

    # A accepts, C refuses, D ignores.
    login(cli, ADMIN_A)
    accept(cli, asked[SIRET_A])
    login(cli, ADMIN_C)
    cli.ok("delegations", "refuse", str(asked[SIRET_C]), "--reason", "Pas maintenant.")
    login(cli, admin_d)
    assert cli.json("delegations", "list")[0]["direction"] == "incoming"

    # B's admin grants B_USER read on A's pension services.
    login(cli, ADMIN_B)
    granted = grant(cli, "estimation", "simulation", "cir")
    assert [(c["service"], c["after"]) for c in granted] == [
        ("estimation", "read"),
        ("simulation", "read"),
        ("cir", "read"),
    ]
    for siret in (SIRET_C, SIRET_UNREGISTERED):
        assert cli("delegations", "grant", USER_B, "--establishment", siret, "estimation").exit_code == 7
    statuses = {d["establishment"]: d["status"] for d in cli.json("delegations", "list")}
    assert statuses == {SIRET_A: "accepted", SIRET_C: "refused", SIRET_UNREGISTERED: "pending"}

    # B_USER acts for A, and for nobody else.
    login(cli, USER_B)
    for service in ("estimation", "simulation", "cir"):
        assert can(cli, f"read:{service}", SIRET_A)[0] == 0
    assert can(cli, "write:estimation", SIRET_A)[0] == 7
    for siret in (SIRET_C, SIRET_UNREGISTERED):
        code, why = can(cli, "read:estimation", siret)
        assert code == 7 and why["rule"] == "no-delegation"

    # A's history and B's history tell the whole story, in order.
    story_a = [
        ("delegation.request", ADMIN_B),
        ("delegation.accept", ADMIN_A),
        ("right.grant", ADMIN_B),
        ("right.grant", ADMIN_B),
        ("right.grant", ADMIN_B),
    ]
    login(cli, ADMIN_A)
    events_a = [(e["action"], e["actor"]) for e in history(cli) if e["delegation_id"] == asked[SIRET_A]]
    assert [e for e in events_a if e[0].startswith(("delegation.", "right."))] == story_a
    assert not [e for e in history(cli) if e["delegation_id"] in (asked[SIRET_C], asked[SIRET_UNREGISTERED])]
    login(cli, ADMIN_B)
    events_b = [
        (e["action"], e["actor"], e["delegation_id"])
        for e in history(cli)
        if e["action"].startswith(("delegation.", "right."))
    ]
    assert events_b == [
        ("delegation.request", ADMIN_B, asked[SIRET_A]),
        ("delegation.request", ADMIN_B, asked[SIRET_C]),
        ("delegation.request", ADMIN_B, asked[SIRET_UNREGISTERED]),
        ("delegation.accept", ADMIN_A, asked[SIRET_A]),
        ("delegation.refuse", ADMIN_C, asked[SIRET_C]),
        ("right.grant", ADMIN_B, asked[SIRET_A]),
        ("right.grant", ADMIN_B, asked[SIRET_A]),
        ("right.grant", ADMIN_B, asked[SIRET_A]),
    ]
    refusal = [e for e in history(cli, "--action", "delegation.refuse")]
    assert refusal[0]["after"] == {"status": "refused", "reason": "Pas maintenant."}
    assert cli("history", "verify").exit_code == 0


def test_the_establishments_step_up_stays_out_of_the_centralizers_history(world):
    cli = world
    request(cli)
    fresh_session(cli, ADMIN_A)

    accept(cli, 1)

    # A's administrator authenticated in A, not through the delegation: B never sees it.
    own = [e for e in history(cli) if e["action"] in ("otp.sent", "otp.verified", "auth.stepup")]
    assert [(e["action"], e["delegation_id"]) for e in own][-3:] == [
        ("otp.sent", None),
        ("otp.verified", None),
        ("auth.stepup", None),
    ]
    login(cli, ADMIN_B)
    foreign = [e for e in history(cli) if e["establishment"] != SIRET_B]
    assert [(e["action"], e["actor"]) for e in foreign] == [("delegation.accept", ADMIN_A)]
    assert all("phone" not in (e["after"] or {}) for e in foreign)
