"""rights catalog | list | grant | revoke | copy | matrix, through the CLI, on SQLite and PostgreSQL.

One test per rule of domain.md "Service rights" (levels, sensitive services as step-up actions,
held_by services never granted) and security.md "Authorization" (a user profile, another
establishment); exit code, stdout and stderr are asserted separately and the JSON keys are pinned.
The store is read directly where a rule is about what it holds ("nothing written").
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.conftest import (
    FROZEN_AT,
    PASSWORD,
    SIRET_A,
    SIRET_B,
    create_account,
    last_sms_code,
    login,
    register,
    with_code,
)

CATALOG_KEYS = ["code", "label", "theme", "fund", "sensitive", "held_by"]
RIGHT_KEYS = [
    "identifier",
    "establishment",
    "service",
    "label",
    "level",
    "via",
    "delegation_id",
    "sensitive",
    "active",
    "granted_by",
    "granted_at",
]
CHANGE_KEYS = ["identifier", "establishment", "service", "before", "after"]
MATRIX_BASE = ["identifier", "last_name", "first_name", "profile"]
ADMIN_A = "MDU000001"  # Marie Durand, registered by the admin_a fixture
ADMIN_MASKED = "+33 6 •• •• •• 40"  # conftest's register() gives the administrator 06 10 20 30 40
STEP_UP_SENT = (
    "Error: This action (right.grant.sensitive) needs a one-time code: "
    f"one was sent by SMS to {ADMIN_MASKED}.\n"
    "Hint: Run the same command again with --otp CODE (valid 5 minutes).\n"
)
USER_HINT = "Hint: A user profile cannot run administrator operations.\n"
OTHER_HINT = "Hint: Not in your establishment nor in one that delegated to it (or it does not exist).\n"
NOW = FROZEN_AT.isoformat()


# -- helpers -----------------------------------------------------------------------------------------


def _engine(url: str):
    from pepsctl.store.engine import create_store_engine, parse_store_url

    return create_store_engine(parse_store_url(url))


def stored_rights(url: str) -> list[tuple[str, str, str, str]]:
    """Every right row in the store (identifier, SIRET, service, level), read directly."""
    from sqlalchemy import text

    engine = _engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT a.identifier, e.siret, r.service_code, r.level FROM account_right r "
                    "JOIN account a ON a.id = r.account_id JOIN establishment e ON e.id = r.establishment_id"
                )
            )
            return sorted(tuple(row) for row in rows)
    finally:
        engine.dispose()


def right_events(url: str) -> int:
    from sqlalchemy import text

    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM audit_event WHERE action LIKE 'right.%'")).scalar_one()
    finally:
        engine.dispose()


def catalog(cli, *args: str) -> list[dict]:
    return cli.json("rights", "catalog", *args)


def grant(cli, identifier: str, *services: str, level: str | None = None) -> list[dict]:
    args = ["rights", "grant", identifier, *services]
    if level is not None:
        args += ["--level", level]
    return cli.json(*args)


def levels(cli, identifier: str) -> dict[str, str]:
    """The account's rights granted directly (not by profile): service -> level."""
    return {r["service"]: r["level"] for r in cli.json("rights", "list", identifier) if r["via"] != "profile"}


def change(identifier: str, service: str, before: str | None, after: str | None) -> dict:
    return {
        "identifier": identifier,
        "establishment": SIRET_A,
        "service": service,
        "before": before,
        "after": after,
    }


def phone_messages(cli) -> list[dict]:
    return [m for m in cli.json("outbox", "list") if m["channel"] in ("sms", "voice")]


def relogin(cli, identifier: str) -> None:
    """A new session on this (trusted) workstation: no code asked, so the session is not stepped up."""
    cli.ok("logout")
    result = cli("login", identifier, "--password-stdin", "--format", "json", input=PASSWORD + "\n")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["stepped_up"] is False


def matrix_csv(cli, *args: str) -> tuple[list[str], list[dict[str, str]]]:
    result = cli.ok("rights", "matrix", "--format", "csv", *args)
    rows = list(csv.reader(io.StringIO(result.stdout)))
    return rows[0], [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


# -- catalog -----------------------------------------------------------------------------------------


def test_catalog_lists_30_services_or_more_with_pinned_fields_without_a_session(cli):
    result = cli("rights", "catalog", "--format", "json")  # nobody has ever logged in to this store

    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    services = json.loads(result.stdout)
    assert len(services) >= 30
    assert all(list(s) == CATALOG_KEYS for s in services)
    codes = [s["code"] for s in services]
    assert len(set(codes)) == len(codes)
    by_code = {s["code"]: s for s in services}
    # The services named in the public documentation are there.
    for code in ("estimation", "simulation", "demande-retraite", "cir", "di", "cotisations", "emaj", "courriers"):
        assert code in by_code, code
    assert by_code["references-bancaires"]["sensitive"] is True
    assert by_code["di"]["sensitive"] is True
    assert by_code["cir"] == {
        "code": "cir",
        "label": "Comptes individuels retraite (CIR)",
        "theme": "Carrière",
        "fund": "CNRACL",
        "sensitive": False,
        "held_by": None,
    }
    assert [s["code"] for s in services if s["held_by"] is not None] == ["gestion-comptes"]
    assert by_code["gestion-comptes"]["held_by"] == "admin"
    assert {s["fund"] for s in services} <= {"CNRACL", "IRCANTEC", "RAFP", "FNC", "ALL"}


@pytest.mark.parametrize("theme", ["Carrière", "carriere", "CARRIÈRE", "  CarRiere "])
def test_catalog_theme_ignores_case_and_accents(cli, theme):
    every = catalog(cli)
    expected = [s for s in every if s["theme"] == "Carrière"]
    assert len(expected) >= 3

    assert catalog(cli, "--theme", theme) == expected


def test_catalog_theme_with_a_leading_accent(cli):
    expected = [s for s in catalog(cli) if s["theme"] == "Établissement"]

    assert expected and catalog(cli, "--theme", "etablissement") == expected


def test_catalog_unknown_theme_exits_4_with_the_themes_in_the_hint(cli):
    themes = sorted({s["theme"] for s in catalog(cli)})

    result = cli("rights", "catalog", "--theme", "Pensions de réversion")

    assert result.exit_code == 4
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: No theme 'Pensions de réversion' in the catalogue.\nHint: Themes: {', '.join(themes)}.\n"
    )
    assert "Carrière" in themes and "Droits à pensions" in themes


@pytest.mark.parametrize("fund", ["RAFP", "rafp"])
def test_catalog_fund_filters(cli, fund):
    every = catalog(cli)

    rafp = catalog(cli, "--fund", fund)

    assert rafp == [s for s in every if s["fund"] == "RAFP"]
    assert [s["code"] for s in rafp] == ["comptes-rafp", "declaration-rafp"]


def test_catalog_unknown_fund_exits_3(cli):
    result = cli("rights", "catalog", "--fund", "AGIRC")

    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr == "Error: Unknown fund 'AGIRC': use CNRACL, IRCANTEC, RAFP, FNC, ALL.\n"


# -- grant and list ----------------------------------------------------------------------------------


def test_grant_defaults_to_read_and_prints_the_changes(cli, admin_a):
    user = create_account(cli, "Karim", "Benali")

    result = cli("rights", "grant", user, "estimation", "cir", "--format", "json")

    assert result.exit_code == 0, result.stderr
    changes = json.loads(result.stdout)
    assert [list(c) for c in changes] == [CHANGE_KEYS, CHANGE_KEYS]
    assert changes == [change(user, "estimation", None, "read"), change(user, "cir", None, "read")]
    assert stored_rights(cli.store) == [(user, SIRET_A, "cir", "read"), (user, SIRET_A, "estimation", "read")]


@pytest.mark.parametrize(
    ("word", "level"),
    [
        ("write", "write"),
        ("modification", "write"),
        ("Modification", "write"),
        ("read", "read"),
        ("lecture-seule", "read"),
        ("lecture seule", "read"),
    ],
)
def test_grant_accepts_english_and_french_level_words(cli, admin_a, word, level):
    user = create_account(cli, "Karim", "Benali")

    assert grant(cli, user, "cir", level=word) == [change(user, "cir", None, level)]
    assert levels(cli, user) == {"cir": level}


def test_grant_an_unknown_level_exits_3_and_writes_nothing(cli, admin_a):
    user = create_account(cli, "Karim", "Benali")

    result = cli("rights", "grant", user, "cir", "--level", "admin")

    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.startswith(
        "Error: Unknown level 'admin': use write (modification), read (lecture seule) or none.\n"
    )
    assert stored_rights(cli.store) == []


def test_granting_the_same_right_again_changes_nothing(cli, admin_a):
    user = create_account(cli, "Karim", "Benali")
    grant(cli, user, "cir", "estimation", level="write")
    events = right_events(cli.store)

    again = cli("rights", "grant", user, "cir", "estimation", "--level", "write", "--format", "json")
    table = cli("rights", "grant", user, "estimation", "--level", "modification")

    assert (again.exit_code, again.stdout, again.stderr) == (0, "[]\n", "")
    assert (table.exit_code, table.stdout, table.stderr) == (0, "", "Nothing to change.\n")
    assert right_events(cli.store) == events
    assert levels(cli, user) == {"estimation": "write", "cir": "write"}


def test_a_different_level_replaces_the_right(cli, admin_a):
    user = create_account(cli, "Karim", "Benali")
    grant(cli, user, "cir")

    up = grant(cli, user, "cir", level="write")
    down = grant(cli, user, "cir", level="read")

    assert up == [change(user, "cir", "read", "write")]
    assert down == [change(user, "cir", "write", "read")]
    assert stored_rights(cli.store) == [(user, SIRET_A, "cir", "read")]  # replaced, never two rows


@pytest.mark.parametrize("word", ["none", "aucun"])
def test_grant_level_none_revokes(cli, admin_a, word):
    user = create_account(cli, "Karim", "Benali")
    grant(cli, user, "cir", "estimation")

    assert grant(cli, user, "cir", level=word) == [change(user, "cir", "read", None)]
    assert levels(cli, user) == {"estimation": "read"}
    assert [e["after"] for e in cli.json("history", "--action", "right.revoke")] == [{"service": "cir", "level": None}]


def test_service_codes_are_case_insensitive_comma_separated_and_deduplicated(cli, admin_a):
    user = create_account(cli, "Karim", "Benali")

    changes = grant(cli, user, "ESTIMATION,Cir", "cir", "estimation")

    assert changes == [change(user, "estimation", None, "read"), change(user, "cir", None, "read")]


def test_list_json_pins_the_right_fields_in_catalogue_order(cli, admin_a):
    user = create_account(cli, "Karim", "Benali")
    grant(cli, user, "cir", level="write")
    grant(cli, user, "estimation")

    rights = cli.json("rights", "list", user)

    assert [list(r) for r in rights] == [RIGHT_KEYS, RIGHT_KEYS]
    assert rights == [
        {
            "identifier": user,
            "establishment": SIRET_A,
            "service": "estimation",
            "label": "Estimation de calcul",
            "level": "read",
            "via": "direct",
            "delegation_id": None,
            "sensitive": False,
            "active": True,
            "granted_by": ADMIN_A,
            "granted_at": NOW,
        },
        {
            "identifier": user,
            "establishment": SIRET_A,
            "service": "cir",
            "label": "Comptes individuels retraite (CIR)",
            "level": "write",
            "via": "direct",
            "delegation_id": None,
            "sensitive": False,
            "active": True,
            "granted_by": ADMIN_A,
            "granted_at": NOW,
        },
    ]


def test_an_administrator_holds_account_management_by_profile(cli, admin_a):
    user = create_account(cli, "Karim", "Benali")

    assert cli.json("rights", "list", admin_a) == [
        {
            "identifier": ADMIN_A,
            "establishment": SIRET_A,
            "service": "gestion-comptes",
            "label": "Gestion des comptes",
            "level": "write",
            "via": "profile",
            "delegation_id": None,
            "sensitive": True,
            "active": True,
            "granted_by": None,
            "granted_at": None,
        }
    ]
    assert cli.json("rights", "list", user) == []  # a user holds nothing by profile
    assert stored_rights(cli.store) == []  # held by the profile, not stored as a right


# -- revoke ------------------------------------------------------------------------------------------


def test_revoke_removes_the_rights(cli, admin_a):
    user = create_account(cli, "Karim", "Benali")
    grant(cli, user, "estimation", "cir", level="write")

    result = cli("rights", "revoke", user, "cir", "--format", "json")

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == [change(user, "cir", "write", None)]
    assert levels(cli, user) == {"estimation": "write"}
    assert stored_rights(cli.store) == [(user, SIRET_A, "estimation", "write")]


def test_revoking_a_right_not_held_changes_nothing(cli, admin_a):
    user = create_account(cli, "Karim", "Benali")
    grant(cli, user, "estimation")
    events = right_events(cli.store)

    as_json = cli("rights", "revoke", user, "cir", "--format", "json")
    as_table = cli("rights", "revoke", user, "cir")

    assert (as_json.exit_code, as_json.stdout, as_json.stderr) == (0, "[]\n", "")
    assert (as_table.exit_code, as_table.stdout, as_table.stderr) == (0, "", "Nothing to change.\n")
    assert right_events(cli.store) == events
    assert levels(cli, user) == {"estimation": "read"}


# -- unknown and held services -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "suggested"),
    [("cirr", "cir"), ("estimaton", "estimation, simulation, attestations"), ("references-bancaire", None)],
)
@pytest.mark.parametrize("command", ["grant", "revoke"])
def test_an_unknown_service_exits_4_with_the_closest_codes_and_writes_nothing(cli, admin_a, command, typed, suggested):
    user = create_account(cli, "Karim", "Benali")
    grant(cli, user, "cir", level="write")
    before, events = stored_rights(cli.store), right_events(cli.store)

    # A valid code alongside the unknown one: nothing is done for it either.
    result = cli("rights", command, user, "estimation", typed)

    assert result.exit_code == 4
    assert result.stdout == ""
    first, hint = result.stderr.splitlines()
    assert first == f"Error: No service {typed!r} in the catalogue."
    if suggested is None:
        assert hint.startswith("Hint: Did you mean: references-bancaires")
    else:
        assert hint == f"Hint: Did you mean: {suggested}?"
    assert stored_rights(cli.store) == before
    assert right_events(cli.store) == events


def test_account_management_is_never_granted_exit_5(cli, admin_a):
    user = create_account(cli, "Karim", "Benali")

    result = cli("rights", "grant", user, "cir", "gestion-comptes", "--level", "write")
    revoked = cli("rights", "revoke", admin_a, "gestion-comptes")

    assert result.exit_code == 5
    assert result.stdout == ""
    assert result.stderr == (
        "Error: gestion-comptes: held by the administrator profile, never granted.\n"
        "Hint: Make the account an administrator instead: pepsctl accounts update ID --profile admin\n"
    )
    assert revoked.exit_code == 5  # nor taken away: it goes with the profile
    assert stored_rights(cli.store) == []
    assert right_events(cli.store) == 0
    assert cli.json("rights", "list", admin_a)[0]["service"] == "gestion-comptes"


# -- sensitive services: step-up -----------------------------------------------------------------------


def test_a_stepped_up_session_grants_sensitive_services_without_another_code(cli, admin_a):
    user = create_account(cli, "Karim", "Benali")
    sent = len(phone_messages(cli))

    changes = grant(cli, user, "di", "references-bancaires", level="write")

    assert changes == [change(user, "di", None, "write"), change(user, "references-bancaires", None, "write")]
    assert len(phone_messages(cli)) == sent  # the login code holds for the rest of the session


@pytest.mark.parametrize("service", ["references-bancaires", "di"])
def test_a_sensitive_grant_on_a_session_without_a_code_needs_one(cli, admin_a, service):
    user = create_account(cli, "Karim", "Benali")
    relogin(cli, admin_a)
    sent = len(phone_messages(cli))

    first = cli("rights", "grant", user, service, "--format", "json")

    assert (first.exit_code, first.stdout, first.stderr) == (6, "", STEP_UP_SENT)
    assert len(phone_messages(cli)) == sent + 1
    assert phone_messages(cli)[-1]["to"] == "+33610203040"
    assert stored_rights(cli.store) == []
    assert right_events(cli.store) == 0

    done = cli("rights", "grant", user, service, "--format", "json", "--otp", last_sms_code(cli))

    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout) == [change(user, service, None, "read")]
    assert cli.json("whoami")["stepped_up"] is True
    assert [e["after"] for e in cli.json("history", "--action", "auth.stepup")] == [{"action": "right.grant.sensitive"}]
    # The code holds for the rest of the session: the next sensitive grant needs none.
    assert grant(cli, user, "contrats") == [change(user, "contrats", None, "read")]
    assert len(phone_messages(cli)) == sent + 1


def test_a_wrong_code_grants_nothing(cli, admin_a):
    user = create_account(cli, "Karim", "Benali")
    relogin(cli, admin_a)
    assert cli("rights", "grant", user, "di").exit_code == 6
    code = last_sms_code(cli)

    result = cli("rights", "grant", user, "di", "--otp", f"{(int(code) + 1) % 1_000_000:06d}")

    assert result.exit_code == 6
    assert result.stdout == ""
    assert result.stderr.startswith("Error: Wrong, used or expired code.\n")
    assert stored_rights(cli.store) == []
    assert cli.json("whoami")["stepped_up"] is False


def test_a_non_sensitive_grant_needs_no_code(cli, admin_a):
    user = create_account(cli, "Karim", "Benali")
    relogin(cli, admin_a)
    sent = len(phone_messages(cli))

    assert grant(cli, user, "estimation", "cir", level="write") == [
        change(user, "estimation", None, "write"),
        change(user, "cir", None, "write"),
    ]
    assert len(phone_messages(cli)) == sent
    assert cli.json("whoami")["stepped_up"] is False


def test_lowering_or_revoking_a_sensitive_right_needs_no_code(cli, admin_a):
    user = create_account(cli, "Karim", "Benali")
    grant(cli, user, "di", "references-bancaires", level="write")
    relogin(cli, admin_a)
    sent = len(phone_messages(cli))

    assert grant(cli, user, "di", level="read") == [change(user, "di", "write", "read")]
    assert cli.json("rights", "revoke", user, "references-bancaires") == [
        change(user, "references-bancaires", "write", None)
    ]
    assert len(phone_messages(cli)) == sent
    # Raising it again is granting: a code.
    raised = cli("rights", "grant", user, "di", "--level", "write")
    assert (raised.exit_code, raised.stderr) == (6, STEP_UP_SENT)
    assert levels(cli, user) == {"di": "read"}


# -- a user profile ----------------------------------------------------------------------------------


def test_a_user_cannot_grant_revoke_copy_or_see_the_matrix(cli, admin_a):
    user = create_account(cli, "Karim", "Benali")
    other = create_account(cli, "Jeanne", "Dupont")
    grant(cli, other, "cir")
    login(cli, user)
    before, events = stored_rights(cli.store), right_events(cli.store)

    attempts = {
        "grant": cli("rights", "grant", user, "cir", "--level", "write"),
        "revoke": cli("rights", "revoke", other, "cir"),
        "copy": cli("rights", "copy", other, user, "--yes"),
        "matrix": cli("rights", "matrix"),
    }

    assert {name: r.exit_code for name, r in attempts.items()} == dict.fromkeys(attempts, 7)
    assert all(r.stdout == "" for r in attempts.values())
    assert attempts["grant"].stderr == f"Error: You may not do this (right.grant) on {user}.\n" + USER_HINT
    assert attempts["revoke"].stderr == f"Error: You may not do this (right.revoke) on {other}.\n" + USER_HINT
    assert attempts["copy"].stderr == f"Error: You may not do this (right.read) on {other}.\n" + USER_HINT
    assert attempts["matrix"].stderr == f"Error: You may not do this (right.read) on {SIRET_A}.\n" + USER_HINT
    assert stored_rights(cli.store) == before
    assert right_events(cli.store) == events
    login(cli, admin_a)
    denied = cli.json("history", "--action", "permission.denied")
    assert [(e["actor"], e["target"], e["after"]) for e in denied] == [
        (user, user, {"action": "right.grant", "rule": "user-profile"}),
        (user, other, {"action": "right.revoke", "rule": "user-profile"}),
        (user, other, {"action": "right.read", "rule": "user-profile"}),
        (user, SIRET_A, {"action": "right.read", "rule": "user-profile"}),
    ]


def test_a_user_lists_their_own_rights_but_not_anothers(cli, admin_a):
    user = create_account(cli, "Karim", "Benali")
    grant(cli, user, "cir", level="write")
    login(cli, user)

    own = cli.json("rights", "list", user)
    others = cli("rights", "list", admin_a)

    assert [(r["service"], r["level"], r["via"]) for r in own] == [("cir", "write", "direct")]
    assert others.exit_code == 7
    assert others.stdout == ""
    assert others.stderr == f"Error: You may not do this (right.read) on {ADMIN_A}.\n" + USER_HINT


# -- another establishment ---------------------------------------------------------------------------


def test_an_administrator_of_b_cannot_read_or_change_rights_in_a(cli, admin_a):
    user = create_account(cli, "Karim", "Benali")
    grant(cli, user, "cir")
    admin_b = register(cli, SIRET_B, last="Martin", first="Paul")
    login(cli, admin_b)
    before, events = stored_rights(cli.store), right_events(cli.store)

    attempts = {
        "list": cli("rights", "list", user),
        "grant": cli("rights", "grant", user, "estimation", "--level", "write"),
        "revoke": cli("rights", "revoke", user, "cir"),
        "matrix": cli("rights", "matrix", "--establishment", SIRET_A),
    }

    assert {name: r.exit_code for name, r in attempts.items()} == dict.fromkeys(attempts, 7)
    assert all(r.stdout == "" for r in attempts.values())
    assert attempts["list"].stderr == f"Error: You may not do this (right.read) on {user}.\n" + OTHER_HINT
    assert attempts["grant"].stderr == f"Error: You may not do this (right.grant) on {user}.\n" + OTHER_HINT
    assert attempts["revoke"].stderr == f"Error: You may not do this (right.revoke) on {user}.\n" + OTHER_HINT
    assert attempts["matrix"].stderr == f"Error: You may not do this (right.read) on {SIRET_A}.\n" + OTHER_HINT
    assert stored_rights(cli.store) == before == [(user, SIRET_A, "cir", "read")]
    assert right_events(cli.store) == events
    denied = cli.json("history", "--action", "permission.denied")
    assert [(e["establishment"], e["target"], e["after"]["action"]) for e in denied] == [
        (SIRET_B, user, "right.read"),
        (SIRET_B, user, "right.grant"),
        (SIRET_B, user, "right.revoke"),
        (SIRET_B, SIRET_A, "right.read"),
    ]
    assert {e["after"]["rule"] for e in denied} == {"no-delegation"}


# -- copy --------------------------------------------------------------------------------------------


def copy_world(cli) -> tuple[str, str]:
    """A source with cir write, estimation read, di read; a target with cir read and courriers write."""
    source = create_account(cli, "Karim", "Benali")
    target = create_account(cli, "Jeanne", "Dupont")
    grant(cli, source, "cir", level="write")
    grant(cli, source, "estimation", "di")
    grant(cli, target, "cir")
    grant(cli, target, "courriers", level="write")
    return source, target


COPY_PLAN = [
    ("cir", "read", "write"),
    ("courriers", "write", None),
    ("di", None, "read"),
    ("estimation", None, "read"),
]


def plan_of(changes: list[dict], target: str) -> list[tuple]:
    assert all(list(c) == CHANGE_KEYS for c in changes)
    assert {(c["identifier"], c["establishment"]) for c in changes} == {(target, SIRET_A)}
    return sorted((c["service"], c["before"], c["after"]) for c in changes)


def test_copy_replaces_the_targets_rights_by_the_sources(cli, admin_a):
    source, target = copy_world(cli)

    result = cli("rights", "copy", source, target, "--yes", "--format", "json")

    assert result.exit_code == 0, result.stderr
    assert plan_of(json.loads(result.stdout), target) == COPY_PLAN
    assert result.stderr == f"4 rights changed on {target}.\n"
    assert levels(cli, target) == levels(cli, source) == {"estimation": "read", "cir": "write", "di": "read"}
    events = [e for e in cli.json("history", "--account", target) if e["action"].startswith("right.")][-4:]
    assert sorted((e["action"], e["after"]["service"], e["before"]["level"], e["after"]["level"]) for e in events) == [
        ("right.grant", "cir", "read", "write"),
        ("right.grant", "di", None, "read"),
        ("right.grant", "estimation", None, "read"),
        ("right.revoke", "courriers", "write", None),
    ]
    # Copying again changes nothing, and asks nothing.
    again = cli("rights", "copy", source, target, "--format", "json")
    assert (again.exit_code, again.stdout) == (0, "[]\n")


def test_copy_dry_run_shows_the_plan_and_writes_nothing(cli, admin_a):
    source, target = copy_world(cli)
    before, events = stored_rights(cli.store), right_events(cli.store)

    result = cli("rights", "copy", source, target, "--dry-run", "--format", "json")

    assert result.exit_code == 0, result.stderr
    assert plan_of(json.loads(result.stdout), target) == COPY_PLAN
    assert stored_rights(cli.store) == before
    assert right_events(cli.store) == events


def test_copy_without_yes_and_without_a_terminal_exits_2_and_writes_nothing(cli, admin_a):
    source, target = copy_world(cli)
    before, events = stored_rights(cli.store), right_events(cli.store)

    result = cli("rights", "copy", source, target)

    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: Confirmation needed and there is no terminal to ask: Apply these 4 changes to {target}?\n"
        "Hint: Add --yes to confirm.\n"
    )
    assert "courriers" in result.stdout  # the plan was shown first
    assert stored_rights(cli.store) == before
    assert right_events(cli.store) == events


def test_copy_onto_itself_exits_3(cli, admin_a):
    source, _target = copy_world(cli)

    result = cli("rights", "copy", source, source.lower(), "--yes")

    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr == "Error: Copying an account's rights onto itself changes nothing.\n"


def test_copy_across_establishments_exits_5_and_writes_nothing(cli, admin_a):
    source = create_account(cli, "Karim", "Benali")
    grant(cli, source, "cir", level="write")
    admin_b = register(cli, SIRET_B, last="Martin", first="Paul")
    login(cli, admin_b)
    target = create_account(cli, "Jeanne", "Dupont")
    # B, a centralizer, may read A's accounts through an accepted delegation on account management.
    delegation = cli.json("delegations", "request", SIRET_A, "--services", "gestion-comptes,cir")["id"]
    login(cli, admin_a)
    with_code(cli, "delegations", "accept", str(delegation), "--yes")
    login(cli, admin_b)
    assert [r["service"] for r in cli.json("rights", "list", source)] == ["cir"]
    before, events = stored_rights(cli.store), right_events(cli.store)

    result = cli("rights", "copy", source, target, "--yes")

    assert result.exit_code == 5
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: {source} and {target} belong to different establishments: rights are copied within one.\n"
    )
    assert stored_rights(cli.store) == before
    assert right_events(cli.store) == events


def test_copying_a_sensitive_right_needs_a_code_on_a_session_without_one(cli, admin_a):
    source = create_account(cli, "Karim", "Benali")
    target = create_account(cli, "Jeanne", "Dupont")
    grant(cli, source, "references-bancaires", "cir")
    relogin(cli, admin_a)

    first = cli("rights", "copy", source, target, "--yes")

    assert first.exit_code == 6
    assert first.stderr == STEP_UP_SENT
    assert levels(cli, target) == {}
    done = cli("rights", "copy", source, target, "--yes", "--otp", last_sms_code(cli))
    assert done.exit_code == 0, done.stderr
    assert levels(cli, target) == {"cir": "read", "references-bancaires": "read"}


# -- matrix ------------------------------------------------------------------------------------------


@pytest.fixture
def matrix_world(cli, admin_a) -> str:
    """A user (Benali, sorted before Durand) with cir write and di read; the administrator with nothing granted."""
    user = create_account(cli, "Karim", "Benali")
    grant(cli, user, "cir", level="write")
    grant(cli, user, "di")
    return user


def test_matrix_table_shows_w_and_r_under_the_services_anyone_holds(cli, matrix_world):
    user = matrix_world

    result = cli("rights", "matrix")

    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.split()[:1] == ["identifier"])
    assert header.split() == [*MATRIX_BASE, "cir", "di", "gestion-comptes"]  # only the services in use
    user_line = next(line for line in lines if user in line)
    admin_line = next(line for line in lines if ADMIN_A in line)
    assert user_line.split() == [user, "Benali", "Karim", "user", "W", "R"]
    assert admin_line.split() == [ADMIN_A, "Durand", "Marie", "admin", "W"]
    assert lines.index(user_line) < lines.index(admin_line)  # by last name

    def column_of(line: str, cell: str, start: int = 0) -> str:
        at = line.index(cell, start)
        for code in ("cir", "di", "gestion-comptes"):
            begin = header.index(f" {code} ") + 1
            if begin <= at < begin + len(code):
                return code
        raise AssertionError((line, cell))

    tail = user_line.index(" user ") + len(" user ")
    assert column_of(user_line, "W", tail) == "cir"
    assert column_of(user_line, "R", tail) == "di"
    assert column_of(admin_line, "W", admin_line.index(" admin ") + len(" admin ")) == "gestion-comptes"


def test_matrix_csv_has_one_column_per_catalogue_service(cli, matrix_world):
    user = matrix_world
    codes = [s["code"] for s in catalog(cli)]

    header, rows = matrix_csv(cli)

    assert header == [*MATRIX_BASE, *codes]
    empty = dict.fromkeys(codes, "")
    assert rows == [
        {
            "identifier": user,
            "last_name": "Benali",
            "first_name": "Karim",
            "profile": "user",
            **empty,
            "cir": "write",
            "di": "read",
        },
        {
            "identifier": ADMIN_A,
            "last_name": "Durand",
            "first_name": "Marie",
            "profile": "admin",
            **empty,
            "gestion-comptes": "write",
        },
    ]


def test_matrix_json_gives_each_accounts_rights_as_an_object(cli, matrix_world):
    user = matrix_world

    rows = cli.json("rights", "matrix")

    assert rows == [
        {
            "identifier": user,
            "last_name": "Benali",
            "first_name": "Karim",
            "profile": "user",
            "rights": {"cir": "write", "di": "read"},
        },
        {
            "identifier": ADMIN_A,
            "last_name": "Durand",
            "first_name": "Marie",
            "profile": "admin",
            "rights": {"gestion-comptes": "write"},
        },
    ]
    assert [list(r) for r in rows] == [[*MATRIX_BASE, "rights"]] * 2


def test_matrix_theme_restricts_the_services(cli, matrix_world):
    user = matrix_world
    career = [s["code"] for s in catalog(cli, "--theme", "Carrière")]

    header, rows = matrix_csv(cli, "--theme", "carriere")
    as_json = cli.json("rights", "matrix", "--theme", "CARRIÈRE")
    establishment = cli.json("rights", "matrix", "--theme", "Établissement")

    assert header == [*MATRIX_BASE, *career]
    assert [(r["identifier"], r["cir"]) for r in rows] == [(user, "write"), (ADMIN_A, "")]
    assert [r["rights"] for r in as_json] == [{"cir": "write"}, {}]  # no di (Déclaration), no gestion-comptes
    assert [r["rights"] for r in establishment] == [{}, {"gestion-comptes": "write"}]


def test_matrix_of_ones_own_establishment_by_siret(cli, matrix_world):
    rows = cli.json("rights", "matrix", "--establishment", SIRET_A)

    assert [r["identifier"] for r in rows] == [matrix_world, ADMIN_A]


def _add_accounts_with_rights(url: str, count: int) -> None:
    """``count`` more users in establishment A (one statement), each with cir read and di write."""
    from sqlalchemy import insert, select
    from sqlmodel import Session, col

    from benchmarks.generate import add_accounts
    from pepsctl import clock
    from pepsctl.store.models import Account, AccountRight

    engine = _engine(url)
    try:
        add_accounts(engine, SIRET_A, count)
        with Session(engine) as session, session.begin():
            held = select(AccountRight.account_id)
            fresh = session.execute(
                select(Account.id, Account.establishment_id)
                .where(col(Account.profile) == "user")
                .where(col(Account.id).not_in(held))
            ).all()
            session.execute(
                insert(AccountRight),
                [
                    {
                        "account_id": account_id,
                        "establishment_id": establishment_id,
                        "service_code": code,
                        "level": level,
                        "granted_by": "test",
                        "granted_at": clock.now(),
                    }
                    for account_id, establishment_id in fresh
                    for code, level in (("cir", "read"), ("di", "write"))
                ],
            )
    finally:
        engine.dispose()


def _matrix_statements(cli) -> tuple[int, list[dict]]:
    """The SQL statements `rights matrix` sends, through every engine (a listener on the Engine class)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    seen: list[str] = []

    def count_statement(_conn, _cursor, statement, _parameters, _context, _executemany):
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", count_statement)
    try:
        result = cli("rights", "matrix", "--format", "json")
    finally:
        event.remove(Engine, "before_cursor_execute", count_statement)
    assert result.exit_code == 0, result.stderr
    return len(seen), json.loads(result.stdout)


def test_the_matrix_is_set_based(cli, admin_a):
    _add_accounts_with_rights(cli.store, 4)
    small, small_rows = _matrix_statements(cli)
    _add_accounts_with_rights(cli.store, 55)
    large, large_rows = _matrix_statements(cli)

    assert (len(small_rows), len(large_rows)) == (5, 60)
    assert small == large, (small, large)
    assert 0 < small < 30, small  # the listener saw the command, and no statement per account
    users = [r for r in large_rows if r["profile"] == "user"]
    assert len(users) == 59 and all(r["rights"] == {"cir": "read", "di": "write"} for r in users)


# -- history -----------------------------------------------------------------------------------------


def test_every_grant_and_revoke_lands_in_the_history(cli, admin_a):
    user = create_account(cli, "Karim", "Benali")
    grant(cli, user, "cir")
    grant(cli, user, "cir", level="write")
    grant(cli, user, "cir", level="write")  # no change: no event
    cli.ok("rights", "revoke", user, "cir")
    cli.ok("rights", "revoke", user, "cir")  # no change: no event

    granted = cli.json("history", "--action", "right.grant")
    revoked = cli.json("history", "--action", "right.revoke")

    assert [(e["actor"], e["establishment"], e["target"], e["before"], e["after"]) for e in granted] == [
        (ADMIN_A, SIRET_A, user, {"service": "cir", "level": None}, {"service": "cir", "level": "read"}),
        (ADMIN_A, SIRET_A, user, {"service": "cir", "level": "read"}, {"service": "cir", "level": "write"}),
    ]
    assert [(e["target"], e["before"], e["after"]) for e in revoked] == [
        (user, {"service": "cir", "level": "write"}, {"service": "cir", "level": None}),
    ]
    assert [e["action"] for e in cli.json("history", "--account", user) if e["action"].startswith("right.")] == [
        "right.grant",
        "right.grant",
        "right.revoke",
    ]
    cli.ok("history", "verify")
