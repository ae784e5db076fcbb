"""accounts import | export | renew --file through the CLI, on SQLite and PostgreSQL.

The rules of cli.md "CSV files" and security.md "Bulk and concurrency" for accounts: every row
validated with the validators of ``accounts create/update`` before anything is written, nothing
written when a row is invalid (unless --skip-invalid), one set-based transaction recorded as a batch
that ``batches undo`` reverses, the same file twice a no-op, a spreadsheet-safe export that imports
back with zero changes. The store is read directly to prove what was, or was not, written.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from pepsctl import clock
from tests.commands.test_accounts import account_row, set_account
from tests.commands.test_phones import add_accounts, count, execute, query, read_report, write_csv
from tests.conftest import (
    FROZEN_AT,
    PASSWORD,
    SIRET_A,
    SIRET_B,
    SIRET_C,
    activate,
    create_account,
    last_sms_code,
    login,
    register,
    with_code,
)

ADMIN_A = "MDU000001"  # Marie Durand, registered by the admin_a fixture
HEADER = ["identifier", "civility", "last_name", "first_name", "email", "phone", "function", "profile"]
FRENCH = ["Identifiant", "Civilité", "Nom", "Prénom", "Courriel", "Téléphone", "Fonction", "Profil"]
PLAN_KEYS = ["line", "identifier", "action", "field", "before", "after", "reason"]
EXPORT_KEYS = [*HEADER[:6], "function", "profile", "status", "expires_at"]
RENEWED_UNTIL = "2027-07-15T09:30:00+00:00"  # FROZEN_AT + 18 months
FIELDS = "civility, last_name, first_name, email, phone, function, profile"
NOT_IN_SCOPE = "no account {} in the establishments you may act on"


# -- helpers -----------------------------------------------------------------------------------------


def import_(cli, path: Path, *args: str):
    return cli("accounts", "import", str(path), "--yes", "--quiet", *args)


def renew(cli, path: Path, *args: str):
    return cli("accounts", "renew", "--file", str(path), "--yes", "--quiet", *args)


def plan_of(result) -> list[dict]:
    return json.loads(result.stdout)


def stored(url: str) -> dict[str, dict]:
    """{identifier: the owned fields} of every account, read from the store."""
    rows = query(
        url,
        "SELECT identifier, civility, last_name, first_name, email, phone, phone_type, function, profile FROM account",
    )
    keys = ["civility", "last_name", "first_name", "email", "phone", "phone_type", "function", "profile"]
    return {r[0]: dict(zip(keys, r[1:], strict=True)) for r in rows}


def store_state(url: str) -> dict[str, object]:
    """What an accounts import may write: accounts, codes, batches, history, messages, sessions, the sequence."""
    return {
        "account": query(url, "SELECT * FROM account ORDER BY id"),
        **{
            t: count(url, t)
            for t in ("one_time_code", "batch", "batch_change", "audit_event", "outbox_message", "auth_session")
        },
        "counter": query(url, "SELECT value FROM counter WHERE name = 'account'"),
    }


def person(first: str, last: str, *, civility: str = "MME", phone: str = "", function: str = "", profile: str = ""):
    """A creation row (no identifier)."""
    return ["", civility, last, first, f"{first.lower()}.{last.lower()}@example.fr", phone, function, profile]


def update_row(identifier: str, **values: str) -> list[str]:
    return [identifier, *(values.get(name, "") for name in HEADER[1:])]


def history(cli, *args: str) -> list[dict]:
    return cli.json("history", *args)


# -- creating ----------------------------------------------------------------------------------------


def test_rows_without_identifier_create_accounts_emailed_their_activation_code(cli, admin_a, tmp_path):
    path = write_csv(
        tmp_path,
        [
            FRENCH,
            ["", "Madame", "Dupont", "Jeanne", "Jeanne.Dupont@Example.FR", "06 12 34 56 78", "DRH", "utilisateur"],
            ["", "M.", "Martin", "Paul", "paul.martin@example.fr", "", "", "administrateur"],
            ["", "M", "Benali", "Karim", "karim.benali@example.fr", "0692 12 34 56", "", ""],
        ],
    )

    result = import_(cli, path, "--format", "json")

    assert result.exit_code == 0, result.stderr
    assert "3 rows: 3 to change, 0 unchanged, 0 rejected. Applied as batch 1" in result.stderr
    # One reservation of the sequence for the three: consecutive numbers, the prefix from the names.
    created = ["JDU000002", "PMA000003", "KBE000004"]
    plan = plan_of(result)
    assert [list(p) for p in plan] == [PLAN_KEYS] * len(plan)
    assert sorted({(p["line"], p["identifier"], p["action"]) for p in plan}) == [
        (2, created[0], "create"),
        (3, created[1], "create"),
        (4, created[2], "create"),
    ]
    assert [(p["field"], p["after"]) for p in plan if p["line"] == 2] == [
        ("civility", "MME"),
        ("last_name", "Dupont"),
        ("first_name", "Jeanne"),
        ("email", "Jeanne.Dupont@example.fr"),
        ("phone", "+33612345678"),
        ("function", "DRH"),
        ("profile", "user"),
    ]
    accounts = stored(cli.store)
    assert accounts[created[0]] == {
        "civility": "MME",
        "last_name": "Dupont",
        "first_name": "Jeanne",
        "email": "Jeanne.Dupont@example.fr",
        "phone": "+33612345678",
        "phone_type": "mobile",
        "function": "DRH",
        "profile": "user",
    }
    assert (accounts[created[1]]["profile"], accounts[created[1]]["phone"]) == ("admin", None)
    assert (accounts[created[2]]["profile"], accounts[created[2]]["phone"]) == ("user", "+262692123456")
    assert query(cli.store, "SELECT value FROM counter WHERE name = 'account'") == [(4,)]
    shown = cli.json("accounts", "show", created[0])
    assert (shown["status"], shown["establishment"]) == ("pending", SIRET_A)

    # Each agent got the e-mail of 'accounts create', and its code sets the password.
    for identifier, email in zip(
        created, ["Jeanne.Dupont@example.fr", "paul.martin@example.fr", "karim.benali@example.fr"], strict=True
    ):
        (message,) = cli.json("outbox", "list", "--to", email)
        assert message["subject"] == f"Your PEP's account {identifier}"
        assert f"pepsctl password set {identifier} --code {message['code']}" in message["body"]
    activate(cli, created[0], "Jeanne.Dupont@example.fr")
    assert cli.json("accounts", "show", created[0])["status"] == "active"
    assert cli.json("outbox", "list", "--to", "Jeanne.Dupont@example.fr")[0]["code"] is None  # blanked once used
    login(cli, created[0])


def test_an_agent_created_by_import_gets_the_same_activation_as_with_accounts_create(cli, admin_a, tmp_path):
    single = create_account(cli, "Luc", "Petit", activate_it=False)
    path = write_csv(tmp_path, [HEADER, person("Léa", "Noël")])

    assert import_(cli, path).exit_code == 0

    def shape(to: str, identifier: str, name: str) -> tuple[str, str]:
        (message,) = cli.json("outbox", "list", "--to", to)
        body = message["body"].replace(message["code"], "CODE").replace(identifier, "ID").replace(name, "NAME")
        return message["subject"].replace(identifier, "ID"), body

    assert shape("léa.noël@example.fr", "LNO000003", "Léa Noël") == shape("luc.petit@example.fr", single, "Luc Petit")
    codes = query(cli.store, "SELECT purpose, channel, target, expires_at, used_at FROM one_time_code ORDER BY id")
    assert codes[-1] == codes[-2]  # same purpose, channel, lifetime
    assert codes[-1][:3] == ("activation", "email", None)


# -- updating ----------------------------------------------------------------------------------------


def test_a_row_with_an_identifier_updates_its_fields_and_the_plan_shows_a_to_b(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "Dupont", phone="06 12 34 56 78", activate_it=False)
    path = write_csv(
        tmp_path,
        [
            HEADER,
            update_row(user.lower(), civility="Madame", last_name="Dupont-Moreau", function="DRH", profile="admin"),
        ],
    )

    result = import_(cli, path, "--format", "json")

    assert result.exit_code == 0, result.stderr
    assert plan_of(result) == [
        dict(zip(PLAN_KEYS, [2, user, "update", "civility", "M", "MME", None], strict=True)),
        dict(zip(PLAN_KEYS, [2, user, "update", "last_name", "Dupont", "Dupont-Moreau", None], strict=True)),
        dict(zip(PLAN_KEYS, [2, user, "update", "function", None, "DRH", None], strict=True)),
        dict(zip(PLAN_KEYS, [2, user, "update", "profile", "user", "admin", None], strict=True)),
    ]
    assert stored(cli.store)[user] == {
        "civility": "MME",
        "last_name": "Dupont-Moreau",
        "first_name": "Jeanne",
        "email": "jeanne.dupont@example.fr",
        "phone": "+33612345678",
        "phone_type": "mobile",
        "function": "DRH",
        "profile": "admin",
    }
    (change,) = cli.json("batches", "show", "1")["changes"]
    assert (change["before"], change["after"]) == (
        {"civility": "M", "last_name": "Dupont", "function": None, "profile": "user"},
        {"civility": "MME", "last_name": "Dupont-Moreau", "function": "DRH", "profile": "admin"},
    )
    events = history(cli, "--batch", "1")
    assert [(e["action"], e["target"], e["batch_id"]) for e in events] == [
        ("account.update", user, 1),
        ("bulk.applied", "batch:1", 1),
    ]
    assert (events[0]["before"], events[0]["after"]) == (change["before"], change["after"])


def test_an_empty_cell_leaves_the_field_unchanged(cli, admin_a, tmp_path):
    user = create_account(
        cli, "Jeanne", "Dupont", phone="06 12 34 56 78", activate_it=False, extra=("--function", "DRH")
    )
    before = stored(cli.store)[user]
    path = write_csv(tmp_path, [HEADER, update_row(user, email=" ", phone="", function="")])

    result = import_(cli, path, "--format", "json")

    assert result.exit_code == 0, result.stderr
    assert plan_of(result) == [dict(zip(PLAN_KEYS, [2, user, "unchanged", None, None, None, None], strict=True))]
    assert "1 rows: 0 to change, 1 unchanged, 0 rejected. Nothing to change." in result.stderr
    assert stored(cli.store)[user] == before
    assert cli.json("batches", "list") == []


def test_create_only_mode_creates_and_rejects_existing_accounts_and_people(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "Dupont", activate_it=False)
    path = write_csv(
        tmp_path, [HEADER, update_row(user, function="DRH"), person("Jeanne", "Dupont"), person("Paul", "Martin")]
    )

    result = import_(cli, path, "--mode", "create-only", "--skip-invalid", "--format", "json")

    assert result.exit_code == 0, result.stderr
    assert [(p["line"], p["reason"]) for p in plan_of(result) if p["action"] == "reject"] == [
        (2, f"{user} already exists (create-only mode creates accounts only)"),
        (3, f"Jeanne Dupont already has an account here: {user}"),
    ]
    assert set(stored(cli.store)) == {ADMIN_A, user, "PMA000003"}
    assert stored(cli.store)[user]["function"] is None


def test_update_only_mode_updates_and_rejects_rows_without_identifier(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "Dupont", activate_it=False)
    path = write_csv(tmp_path, [HEADER, update_row(user, function="DRH"), person("Paul", "Martin")])
    before = store_state(cli.store)

    refused = import_(cli, path, "--mode", "update-only", "--format", "json")

    assert refused.exit_code == 3
    assert [(p["line"], p["reason"]) for p in plan_of(refused)] == [
        (3, "no identifier (update-only mode creates no account)")
    ]
    assert store_state(cli.store)["account"] == before["account"]
    assert import_(cli, path, "--mode", "update-only", "--skip-invalid").exit_code == 0
    assert set(stored(cli.store)) == {ADMIN_A, user}
    assert stored(cli.store)[user]["function"] == "DRH"


def test_upsert_creates_and_updates_in_one_batch(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "Dupont", activate_it=False)
    path = write_csv(tmp_path, [HEADER, update_row(user, function="DRH"), person("Paul", "Martin")])

    result = import_(cli, path)

    assert result.exit_code == 0, result.stderr
    (batch,) = cli.json("batches", "list")
    assert (batch["kind"], batch["rows_total"], batch["rows_changed"]) == ("accounts", 2, 2)
    assert [(c["identifier"], c["before"]) for c in cli.json("batches", "show", "1")["changes"]] == [
        (user, {"function": None}),
        ("PMA000003", {}),
    ]
    assert [e["action"] for e in history(cli, "--batch", "1")] == ["account.update", "account.create", "bulk.applied"]


# -- the same file twice -----------------------------------------------------------------------------


def test_the_same_file_twice_changes_nothing_the_second_time(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "Dupont", activate_it=False)
    path = write_csv(
        tmp_path,
        [
            FRENCH,
            update_row(user, phone="07 81 22 33 44", function="DRH"),
            person("Paul", "Martin", phone="07 81 22 33 55", profile="admin"),
        ],
    )
    assert import_(cli, path).exit_code == 0
    before = store_state(cli.store)

    again = import_(cli, path, "--format", "json")

    assert again.exit_code == 0, again.stderr
    assert "2 rows: 0 to change, 2 unchanged, 0 rejected. Nothing to change." in again.stderr
    # Upsert: the row without identifier names an existing person, who is that account.
    assert [(p["identifier"], p["action"]) for p in plan_of(again)] == [(user, "unchanged"), ("PMA000003", "unchanged")]
    assert store_state(cli.store) == before
    assert [b["id"] for b in cli.json("batches", "list")] == [1]


# -- rejected rows -----------------------------------------------------------------------------------


def test_every_invalid_value_is_rejected_with_the_reason_of_its_validator(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "Dupont", activate_it=False)
    rows = [
        (update_row(user, civility="Docteur"), "Unknown civility: use M or MME."),
        (update_row(user, last_name="Dupont2"), "The last name must not contain digits."),
        (update_row(user, first_name="<b>"), "The first name contains a character that is not allowed: '<' (U+003C)."),
        (update_row(user, email="jeanne@"), None),  # the e-mail validator's own reason
        (
            update_row(user, phone="0899 12 34 56"),
            "This is a premium-rate number: it can receive neither SMS nor a call.",
        ),
        (update_row(user, function="x" * 121), "The function is too long (at most 120 characters)."),
        (update_row(user, profile="superuser"), "Unknown profile 'superuser': use admin or user."),
        (update_row("JDU42"), "This is not an account identifier."),
        (update_row("ZZZ999999", function="DRH"), NOT_IN_SCOPE.format("ZZZ999999")),
        (
            ["", "M", "Martin", "Paul", "", "", "", ""],
            "a new account needs civility, last_name, first_name, email: email is empty",
        ),
    ]
    path = write_csv(tmp_path, [HEADER, *(r for r, _reason in rows)])
    before = store_state(cli.store)

    result = import_(cli, path, "--format", "json")

    assert result.exit_code == 3
    plan = plan_of(result)
    assert [(p["line"], p["action"]) for p in plan] == [(i + 2, "reject") for i in range(len(rows))]
    for p, (_row, reason) in zip(plan, rows, strict=True):
        if reason is None:
            assert p["reason"].startswith("This is not a valid e-mail address: ")
        else:
            assert p["reason"] == reason, p
    assert result.stderr.endswith(
        "Error: 10 rows are invalid: nothing was written.\n"
        "Hint: Fix them (see --report FILE), or apply the valid rows with --skip-invalid.\n"
    )
    after = store_state(cli.store)
    assert after["account"] == before["account"]
    assert (after["batch"], after["audit_event"]) == (0, before["audit_event"] + 1)  # the rejected import, audited
    assert [e["after"] for e in history(cli, "--action", "bulk.rejected")] == [
        {"kind": "accounts", "rejected": 10, "rows": 10}
    ]


def test_the_same_account_or_person_twice_in_a_file_is_rejected(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "Dupont", activate_it=False)
    path = write_csv(
        tmp_path,
        [
            HEADER,
            update_row(user, function="DRH"),
            update_row(user.lower(), function="DAF"),
            person("Paul", "Martin"),
            ["", "M", "MARTIN", "paul", "Paul.Martin@example.fr", "", "", ""],
            update_row(ADMIN_A, last_name="Dupont", first_name="Jeanne", email="jeanne.dupont@example.fr"),
        ],
    )

    result = import_(cli, path, "--format", "json")

    assert result.exit_code == 3
    assert [(p["line"], p["reason"]) for p in plan_of(result)] == [
        (3, "the account is already on line 2"),
        (5, "the same person is already on line 4"),
        (6, "the same person is already on line 2"),
    ]
    assert set(stored(cli.store)) == {ADMIN_A, user}


def test_renaming_an_account_into_another_person_is_rejected(cli, admin_a, tmp_path):
    one = create_account(cli, "Jeanne", "Dupont", activate_it=False)
    two = create_account(cli, "Paul", "Martin", activate_it=False)
    row = update_row(two, last_name="Dupont", first_name="Jeanne", email="jeanne.dupont@example.fr")

    result = import_(cli, write_csv(tmp_path, [HEADER, row]), "--format", "json")

    assert result.exit_code == 3
    assert [p["reason"] for p in plan_of(result)] == [
        f"{one} already has these names and e-mail: one account per person"
    ]


def test_a_new_row_matching_several_existing_accounts_is_rejected(cli, admin_a, tmp_path):
    one = create_account(cli, "Jeanne", "Dupont", activate_it=False)
    two = create_account(cli, "Paul", "Martin", activate_it=False)
    # Two accounts for one person, made before the rule (not through pepsctl).
    set_account(cli.store, two, last_name="Dupont", first_name="Jeanne", email="jeanne.dupont@example.fr")

    result = import_(cli, write_csv(tmp_path, [HEADER, person("Jeanne", "Dupont", function="DRH")]), "--format", "json")

    assert result.exit_code == 3
    assert [p["reason"] for p in plan_of(result)] == ["several accounts match this person: give the identifier"]
    # With the identifier, either account is updated (it keeps its own names: not a new duplicate).
    assert import_(cli, write_csv(tmp_path, [HEADER, update_row(one, function="DRH")], "one.csv")).exit_code == 0


def test_a_phone_shared_with_another_account_is_rejected_unless_allow_shared(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "Dupont", activate_it=False)
    path = write_csv(
        tmp_path,
        [
            HEADER,
            update_row(user, phone="06 10 20 30 40"),  # the administrator's number
            person("Paul", "Martin", phone="07 81 22 33 44"),
            person("Luc", "Petit", phone="+33781223344"),
        ],
    )

    result = import_(cli, path, "--format", "json")

    assert result.exit_code == 3
    shared = "(one personal number per agent; --allow-shared accepts it)"
    assert [(p["line"], p["reason"]) for p in plan_of(result)] == [
        (2, f"number shared with {ADMIN_A} {shared}"),
        (3, f"number shared with line 4 {shared}"),
        (4, f"number shared with line 3 {shared}"),
    ]
    assert import_(cli, path, "--allow-shared").exit_code == 0
    phones = {a["last_name"]: a["phone"] for a in stored(cli.store).values()}
    assert phones == {
        "Durand": "+33610203040",
        "Dupont": "+33610203040",
        "Martin": "+33781223344",
        "Petit": "+33781223344",
    }


def test_numbers_may_move_between_accounts_in_one_file(cli, admin_a, tmp_path):
    one = create_account(cli, "Jeanne", "Dupont", phone="07 81 00 00 01", activate_it=False)
    two = create_account(cli, "Paul", "Martin", phone="07 81 00 00 02", activate_it=False)
    path = write_csv(tmp_path, [HEADER, update_row(one, phone="0781000002"), update_row(two, phone="0781000001")])

    assert import_(cli, path).exit_code == 0

    assert (stored(cli.store)[one]["phone"], stored(cli.store)[two]["phone"]) == ("+33781000002", "+33781000001")


def test_demoting_the_last_active_administrator_is_rejected(cli, admin_a, tmp_path):
    pending_admin = create_account(cli, "Paul", "Martin", profile="admin", activate_it=False)
    path = write_csv(tmp_path, [HEADER, update_row(ADMIN_A, profile="user", function="Partie")])

    result = import_(cli, path, "--format", "json")

    assert result.exit_code == 3
    assert [p["reason"] for p in plan_of(result)] == [
        f"{ADMIN_A} is an active administrator: demoting it would leave {SIRET_A} without one"
    ]
    assert stored(cli.store)[ADMIN_A]["profile"] == "admin"
    # Once another administrator is active, the same file applies.
    activate(cli, pending_admin, "paul.martin@example.fr")
    assert import_(cli, path).exit_code == 0
    assert stored(cli.store)[ADMIN_A]["profile"] == "user"


def test_demoting_every_administrator_in_one_file_is_rejected(cli, admin_a, tmp_path):
    second = create_account(cli, "Paul", "Martin", profile="admin")
    path = write_csv(tmp_path, [HEADER, update_row(ADMIN_A, profile="user"), update_row(second, profile="user")])

    result = import_(cli, path, "--skip-invalid", "--format", "json")

    assert result.exit_code == 0, result.stderr

    assert [(p["identifier"], p["action"]) for p in plan_of(result)] == [(ADMIN_A, "reject"), (second, "reject")]
    assert {stored(cli.store)[i]["profile"] for i in (ADMIN_A, second)} == {"admin"}


def test_a_row_naming_another_establishment_is_rejected(cli, admin_a, tmp_path):
    path = write_csv(
        tmp_path,
        [
            [*HEADER, "SIRET"],
            [*person("Paul", "Martin"), SIRET_B],
            [*person("Luc", "Petit"), SIRET_A],
            [*person("Léa", "Noël"), "123"],
        ],
    )

    result = import_(cli, path, "--format", "json")

    assert result.exit_code == 3
    assert [(p["line"], p["reason"]) for p in plan_of(result)] == [
        (2, f"the establishment column names {SIRET_B}: this import acts on {SIRET_A} (see --establishment)"),
        (4, "A SIRET has 14 digits."),
    ]


# -- all or nothing ----------------------------------------------------------------------------------


@pytest.fixture
def thousand(cli, admin_a, tmp_path) -> Path:
    """1,000 new agents and one invalid row (line 502)."""
    rows = [FRENCH]
    rows += [["", "M", "Nouveau", "Agent", f"agent.{i}@example.fr", "", "", ""] for i in range(500)]
    rows += [["", "M", "Inconnu", "Agent", "pas-une-adresse", "", "", ""]]
    rows += [["", "M", "Nouveau", "Agent", f"agent.{i}@example.fr", "", "", ""] for i in range(500, 1000)]
    return write_csv(tmp_path, rows)


def test_one_invalid_row_among_a_thousand_writes_nothing_then_skip_invalid_applies_the_rest(cli, thousand, tmp_path):
    before = store_state(cli.store)
    report = tmp_path / "rejected.csv"

    result = import_(cli, thousand, "--report", str(report))

    assert result.exit_code == 3
    assert "Error: 1 row is invalid: nothing was written." in result.stderr
    after = store_state(cli.store)
    assert {k: after[k] for k in after if k != "audit_event"} == {k: before[k] for k in before if k != "audit_event"}
    assert cli.json("batches", "list") == []

    applied = import_(cli, thousand, "--skip-invalid")

    assert applied.exit_code == 0, applied.stderr
    assert "1001 rows: 1000 to change, 0 unchanged, 1 rejected. Applied as batch 1" in applied.stderr
    assert count(cli.store, "account") == 1001
    assert count(cli.store, "one_time_code") == before["one_time_code"] + 1000
    (batch,) = cli.json("batches", "list")
    assert (batch["rows_total"], batch["rows_changed"], batch["rows_rejected"]) == (1001, 1000, 1)
    assert query(cli.store, "SELECT value FROM counter WHERE name = 'account'") == [(1001,)]


def test_the_report_holds_the_rejected_rows_in_their_input_columns(cli, thousand, tmp_path):
    report = tmp_path / "rejected.csv"
    report.write_text("an older report, readable by all\n")
    report.chmod(0o644)

    import_(cli, thousand, "--report", str(report))

    assert stat.S_IMODE(os.stat(report).st_mode) == 0o600
    data, rows = read_report(report)
    assert data.startswith(b"\xef\xbb\xbf")
    assert rows[0] == [*FRENCH, "line", "reason"]
    assert len(rows) == 2
    assert rows[1][:9] == ["", "M", "Inconnu", "Agent", "pas-une-adresse", "", "", "", "502"]
    assert rows[1][9].startswith("This is not a valid e-mail address: ")


def test_dry_run_prints_the_plan_and_writes_nothing(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "Dupont", activate_it=False)
    same = create_account(cli, "Luc", "Petit", activate_it=False)
    path = write_csv(
        tmp_path,
        [HEADER, update_row(user, function="DRH"), update_row(same), person("Paul", "Martin"), update_row("ZZZ999999")],
    )
    before = store_state(cli.store)

    result = cli("accounts", "import", str(path), "--dry-run", "--format", "json")  # no --yes: nothing to confirm

    assert result.exit_code == 0, result.stderr
    plan = plan_of(result)
    assert [(p["line"], p["identifier"], p["action"], p["field"]) for p in plan] == [
        (2, user, "update", "function"),
        (3, same, "unchanged", None),
        *((4, None, "create", f) for f in ("civility", "last_name", "first_name", "email", "profile")),
        (5, "ZZZ999999", "reject", None),
    ]
    assert result.stderr.endswith("4 rows: 2 to change, 1 unchanged, 1 rejected. Dry run: nothing was written.\n")
    assert store_state(cli.store) == before  # accounts, codes, batches, history, messages, the sequence


def test_without_a_terminal_an_import_needs_yes(cli, admin_a, tmp_path):
    path = write_csv(tmp_path, [HEADER, person("Paul", "Martin")])

    result = cli("accounts", "import", str(path))

    assert result.exit_code == 2
    assert result.stderr.startswith("Error: Confirmation needed and there is no terminal to ask")
    assert set(stored(cli.store)) == {ADMIN_A}


# -- columns -----------------------------------------------------------------------------------------


def test_a_nir_column_is_dropped_with_a_warning_and_never_stored(cli, admin_a, tmp_path):
    nir = "2 84 05 75 123 456 78"
    path = write_csv(tmp_path, [[*HEADER, "NIR"], [*person("Jeanne", "Dupont"), nir]])

    result = import_(cli, path)

    assert result.exit_code == 0, result.stderr
    assert "Warning: Column 'NIR' looks like a NIR: it is ignored and never stored." in result.stderr
    compact = nir.replace(" ", "")
    for table in ("account", "audit_event", "batch_change", "outbox_message"):
        dump = json.dumps(query(cli.store, f"SELECT * FROM {table}"), default=str)
        assert compact not in dump.replace(" ", "")


def test_columns_the_command_does_not_own_are_ignored_with_a_warning(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "Dupont", activate_it=False)
    path = write_csv(
        tmp_path,
        [
            ["identifier", "function", "droits", "statut", "expires_at", "password"],
            [user, "DRH", "cir=write", "active", "2099-01-01", "un-mot-de-passe"],
        ],
    )
    before = account_row(cli.store, user)

    result = import_(cli, path)

    assert result.exit_code == 0, result.stderr
    assert "Warning: Columns not used by this command (ignored): droits, statut, expires_at, password." in result.stderr
    after = account_row(cli.store, user)
    assert after["function"] == "DRH"
    assert {k: after[k] for k in after if k not in ("function", "updated_at")} == {
        k: before[k] for k in before if k not in ("function", "updated_at")
    }
    assert count(cli.store, "account_right") == 0


def test_a_file_that_cannot_be_read_is_refused_with_its_line(cli, admin_a, tmp_path):
    path = tmp_path / "accounts.csv"
    path.write_text('identifier;function\nJDU000002;DRH\nPMA000003;"DAF\n')

    result = import_(cli, path)

    assert result.exit_code == 3
    assert result.stderr.startswith("Error: Line 3: ")
    assert "Traceback" not in result.stderr


def test_a_file_without_identifiers_needs_the_columns_of_a_new_account(cli, admin_a, tmp_path):
    path = write_csv(tmp_path, [["nom", "prénom", "courriel"], ["Dupont", "Jeanne", "jeanne@example.fr"]])

    result = import_(cli, path)

    assert result.exit_code == 3
    assert result.stderr.startswith("Error: Line 1: no column for civility.\nHint: Without an identifier column")


# -- who may import ----------------------------------------------------------------------------------


def test_a_user_profile_cannot_import_export_or_renew_by_file(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "Dupont", phone="06 12 34 56 78")
    login(cli, user)
    path = write_csv(tmp_path, [HEADER, update_row(ADMIN_A, function="Pirate")])

    assert import_(cli, path).exit_code == 7
    assert cli("accounts", "export").exit_code == 7
    assert renew(cli, path).exit_code == 7
    assert stored(cli.store)[ADMIN_A]["function"] is None


def test_another_establishments_siret_exits_7(cli, admin_a, tmp_path):
    register(cli, SIRET_B, last="Petit", first="Luc", phone="06 11 22 33 44")
    path = write_csv(tmp_path, [HEADER, person("Paul", "Martin")])

    for result in (
        import_(cli, path, "--establishment", SIRET_B),
        cli("accounts", "export", "--establishment", SIRET_B),
        renew(cli, path, "--establishment", SIRET_B),
        import_(cli, path, "--establishment", SIRET_C),  # a SIRET registered nowhere: the same answer
    ):
        assert result.exit_code == 7, result.stderr
        assert "Not in your establishment nor in one that delegated to it (or it does not exist)." in result.stderr
        assert result.stdout == ""
    assert set(stored(cli.store)) == {ADMIN_A, "LPE000002"}


def test_another_establishments_accounts_are_rejected_without_revealing_them(cli, admin_a, tmp_path):
    admin_b = register(cli, SIRET_B, last="Petit", first="Luc", phone="06 11 22 33 44")
    before = stored(cli.store)[admin_b]
    path = write_csv(
        tmp_path, [HEADER, update_row(admin_b, function="Pirate"), update_row("ZZZ999999", function="Pirate")]
    )

    result = import_(cli, path, "--format", "json")

    assert result.exit_code == 3
    assert [p["reason"] for p in plan_of(result)] == [NOT_IN_SCOPE.format(admin_b), NOT_IN_SCOPE.format("ZZZ999999")]
    assert "Petit" not in result.stdout + result.stderr
    assert stored(cli.store)[admin_b] == before


def test_a_session_that_is_not_stepped_up_needs_a_code_to_apply(cli, admin_a, tmp_path):
    login(cli, ADMIN_A)  # a trusted workstation: no code at login, so no step-up
    path = write_csv(tmp_path, [HEADER, person("Paul", "Martin")])

    first = import_(cli, path)

    assert first.exit_code == 6
    assert "This action (bulk.apply) needs a one-time code" in first.stderr
    assert set(stored(cli.store)) == {ADMIN_A}
    assert with_code(cli, "accounts", "import", str(path), "--yes", "--quiet").exit_code == 0
    assert set(stored(cli.store)) == {ADMIN_A, "PMA000002"}


# -- what a changed contact brings -------------------------------------------------------------------


@pytest.fixture
def verified_user(cli, admin_a) -> str:
    """An agent with a verified phone and a live session of their own."""
    user = create_account(cli, "Jeanne", "Dupont", phone="06 12 34 56 78", activate_it=False)
    execute(cli.store, "UPDATE account SET phone_verified_at = updated_at")
    execute(
        cli.store,
        "INSERT INTO auth_session (account_id, token_hash, created_at, last_seen_at, expires_at) "
        "SELECT id, 'not-a-real-token-hash', updated_at, updated_at, updated_at FROM account WHERE identifier = :i",
        i=user,
    )
    return user


def test_a_changed_phone_is_unverified_ends_the_sessions_and_the_agent_is_emailed(cli, verified_user, tmp_path):
    other = create_account(cli, "Paul", "Martin", phone="06 98 76 54 32", activate_it=False)
    execute(cli.store, "UPDATE account SET phone_verified_at = updated_at")
    path = write_csv(
        tmp_path, [HEADER, update_row(verified_user, phone="07 81 22 33 44"), update_row(other, function="DRH")]
    )

    assert import_(cli, path).exit_code == 0

    verified = dict(query(cli.store, "SELECT identifier, phone_verified_at IS NOT NULL FROM account"))
    assert (bool(verified[verified_user]), bool(verified[other]), bool(verified[ADMIN_A])) == (False, True, True)
    sessions = query(
        cli.store,
        "SELECT a.identifier, s.revoked_at IS NOT NULL FROM auth_session s JOIN account a ON a.id = s.account_id",
    )
    assert {(i, bool(revoked)) for i, revoked in sessions} >= {(verified_user, True), (ADMIN_A, False)}
    cli.ok("whoami")  # the administrator who imported stays logged in
    notices = [m for m in cli.json("outbox", "list") if m["subject"] == "Your PEP's contact details changed"]
    assert [m["to"] for m in notices] == ["jeanne.dupont@example.fr"]
    assert "phone: +33 7 •• •• •• 44" in notices[0]["body"]


def test_a_changed_email_is_notified_at_the_old_and_the_new_address(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "Dupont", activate_it=False)
    path = write_csv(tmp_path, [HEADER, update_row(user, email="j.dupont@example.fr")])

    assert import_(cli, path).exit_code == 0

    notices = [m for m in cli.json("outbox", "list") if m["subject"] == "Your PEP's contact details changed"]
    assert sorted(m["to"] for m in notices) == ["j.dupont@example.fr", "jeanne.dupont@example.fr"]


def test_the_history_masks_phones_and_names_the_batch(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "Dupont", phone="06 12 34 56 70", activate_it=False)
    path = write_csv(
        tmp_path,
        [HEADER, update_row(user, phone="07 81 22 33 44"), person("Paul", "Martin", phone="0692 12 34 56")],
    )

    assert import_(cli, path).exit_code == 0

    raw = cli.ok("history", "--batch", "1", "--format", "json").stdout
    events = json.loads(raw)
    assert [(e["action"], e["target"], e["actor"], e["establishment"]) for e in events] == [
        ("account.update", user, ADMIN_A, SIRET_A),
        ("account.create", "PMA000003", ADMIN_A, SIRET_A),
        ("bulk.applied", "batch:1", ADMIN_A, SIRET_A),
    ]
    assert (events[0]["before"], events[0]["after"]) == ({"phone": "+33 6 •• •• •• 70"}, {"phone": "+33 7 •• •• •• 44"})
    assert events[1]["before"] is None
    assert events[1]["after"]["phone"] == "+262 692 •• •• 56"
    for digits in ("781223344", "612345670", "692123456"):
        assert digits not in raw.replace(" ", "")
    assert cli("history", "verify").exit_code == 0


# -- undo --------------------------------------------------------------------------------------------


def test_undo_restores_the_updated_fields_and_deletes_the_created_accounts(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "Dupont", phone="06 12 34 56 78", activate_it=False)
    before = store_state(cli.store)
    fields_before = stored(cli.store)
    path = write_csv(
        tmp_path,
        [
            HEADER,
            update_row(user, civility="M", first_name="Jeanne-Marie", phone="07 81 22 33 44", function="DRH"),
            person("Paul", "Martin", phone="07 81 22 33 55", profile="admin"),
        ],
    )
    assert import_(cli, path).exit_code == 0
    code = cli.json("outbox", "list", "--to", "paul.martin@example.fr")[0]["code"]

    result = cli("batches", "undo", "1", "--yes")

    assert result.exit_code == 0, result.stderr
    assert result.stderr == "Batch 1 undone: 2 rows restored (recorded as batch 2).\n"
    assert stored(cli.store) == fields_before
    assert count(cli.store, "account") == len(before["account"])
    assert count(cli.store, "one_time_code") == before["one_time_code"]
    # The deleted agent's activation code is gone, and blanked in the outbox.
    assert cli.json("outbox", "list", "--to", "paul.martin@example.fr")[0]["code"] is None
    refused = cli("password", "set", "PMA000003", "--code", code, "--password-stdin", input=PASSWORD + "\n")
    assert refused.exit_code == 6
    events = history(cli, "--batch", "2")
    assert [(e["action"], e["target"]) for e in events] == [
        ("account.undo", user),
        ("account.undo", "PMA000003"),
        ("batch.undo", "batch:1"),
    ]
    assert events[1]["after"] is None


def test_undo_refuses_when_a_created_account_was_activated_since_unless_forced(cli, admin_a, tmp_path):
    path = write_csv(tmp_path, [HEADER, person("Paul", "Martin")])
    assert import_(cli, path).exit_code == 0
    activate(cli, "PMA000002", "paul.martin@example.fr")

    refused = cli("batches", "undo", "1", "--yes")

    assert refused.exit_code == 5
    assert refused.stderr.startswith("Error: 1 account(s) changed after batch 1: PMA000002.\n")
    assert "PMA000002" in stored(cli.store)
    assert cli("batches", "undo", "1", "--yes", "--force").exit_code == 0
    assert "PMA000002" not in stored(cli.store)


def test_undo_refuses_when_an_updated_field_changed_since(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "Dupont", activate_it=False)
    assert import_(cli, write_csv(tmp_path, [HEADER, update_row(user, function="DRH")])).exit_code == 0
    cli.ok("accounts", "update", user, "--function", "DAF")

    refused = cli("batches", "undo", "1", "--yes")

    assert refused.exit_code == 5
    assert stored(cli.store)[user]["function"] == "DAF"
    assert cli("batches", "undo", "1", "--yes", "--force").exit_code == 0
    assert stored(cli.store)[user]["function"] is None


def test_undo_of_a_promotion_cannot_leave_the_establishment_without_an_administrator(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "Dupont")
    path = write_csv(tmp_path, [HEADER, update_row(user, profile="admin")])
    assert import_(cli, path).exit_code == 0
    login(cli, user)  # the promoted agent, with a code: a stepped-up session
    cli.ok("accounts", "delete", ADMIN_A, "--yes")

    refused = cli("batches", "undo", "1", "--yes")

    assert refused.exit_code == 5
    assert refused.stderr.startswith(
        f"Error: Undoing this batch would leave {SIRET_A} without an active administrator."
    )
    assert stored(cli.store)[user]["profile"] == "admin"


# -- set-based ---------------------------------------------------------------------------------------


def statements_of(cli, path: Path) -> int:
    """The SQL statements one import sends, through every engine (a listener on the Engine class)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    seen: list[str] = []

    def count_statement(_conn, _cursor, statement, _parameters, _context, _executemany):
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", count_statement)
    try:
        result = import_(cli, path)
    finally:
        event.remove(Engine, "before_cursor_execute", count_statement)
    assert result.exit_code == 0, result.stderr
    return len(seen)


def test_the_import_is_set_based(cli, admin_a, tmp_path):
    people = add_accounts(cli.store, 210)

    def rows(tag: str, updated: list[str]) -> list[list[str]]:
        n = len(updated)
        return [
            HEADER,
            *(update_row(p, phone=f"07 8{tag} {i:06d}", function=f"Service {tag}") for i, p in enumerate(updated)),
            *(
                ["", "MME", "Nouvelle", "Agente", f"agente.{tag}.{i}@example.fr", f"07 8{int(tag) + 2} {i:06d}", "", ""]
                for i in range(n)
            ),
        ]

    small = write_csv(tmp_path, rows("1", people[:10]), "small.csv")
    large = write_csv(tmp_path, rows("2", people[10:]), "large.csv")

    statements = (statements_of(cli, small), statements_of(cli, large))

    assert statements[0] == statements[1], statements
    assert 10 < statements[0] < 100, statements  # the listener saw the import (and no per-row statement)
    assert [b["rows_changed"] for b in cli.json("batches", "list")] == [20, 400]
    assert count(cli.store, "account") == 1 + 210 + 10 + 200


# -- export ------------------------------------------------------------------------------------------


def test_export_is_a_spreadsheet_safe_csv_file(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "-Dupont", phone="06 12 34 56 78", extra=("--function", "=1+1"))
    output = tmp_path / "accounts.csv"
    output.write_text("old\n")
    output.chmod(0o644)

    result = cli("accounts", "export", "--output", str(output))

    assert result.exit_code == 0, result.stderr
    assert result.stderr == f"Wrote 2 accounts to {output}.\n"
    assert stat.S_IMODE(os.stat(output).st_mode) == 0o600
    data = output.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))
    assert rows == [
        EXPORT_KEYS,
        [
            user,
            "M",
            "'-Dupont",
            "Jeanne",
            "jeanne.-dupont@example.fr",
            "'+33612345678",
            "'=1+1",
            "user",
            "active",
            RENEWED_UNTIL,
        ],
        [
            ADMIN_A,
            "MME",
            "Durand",
            "Marie",
            f"marie.durand@{SIRET_A}.example.fr",
            "'+33610203040",
            "",
            "admin",
            "active",
            RENEWED_UNTIL,
        ],
    ]


def test_export_to_stdout_as_json(cli, admin_a):
    user = create_account(cli, "Jeanne", "Dupont", phone="0692 12 34 56", extra=("--function", "DRH"))
    set_account(cli.store, user, expires_at=FROZEN_AT - timedelta(days=1))
    pending = create_account(cli, "Luc", "Petit", activate_it=False)

    rows = cli.json("accounts", "export")

    assert [list(r) for r in rows] == [EXPORT_KEYS] * 3
    assert [r["identifier"] for r in rows] == [user, pending, ADMIN_A]
    assert rows[0] == {
        "identifier": user,
        "civility": "M",
        "last_name": "Dupont",
        "first_name": "Jeanne",
        "email": "jeanne.dupont@example.fr",
        "phone": "+262692123456",
        "function": "DRH",
        "profile": "user",
        "status": "expired",
        "expires_at": "2026-01-14T09:30:00+00:00",
    }
    assert (rows[1]["status"], rows[1]["expires_at"], rows[1]["phone"]) == ("pending", None, None)


@pytest.mark.parametrize("mode", ["upsert", "update-only"])
def test_export_then_import_changes_nothing(cli, admin_a, tmp_path, mode):
    create_account(cli, "Jeanne", "-Dupont", phone="06 12 34 56 78", extra=("--function", '=HYPERLINK("x")'))
    create_account(cli, "Paul", "Martin", phone="0692 12 34 56", extra=("--function", "+33 @équipe"))
    create_account(cli, "Léa", "Noël", activate_it=False)
    exported = tmp_path / "accounts.csv"
    cli.ok("accounts", "export", "--output", str(exported))
    before = store_state(cli.store)

    result = import_(cli, exported, "--mode", mode)

    assert result.exit_code == 0, result.stderr
    assert "4 rows: 0 to change, 4 unchanged, 0 rejected. Nothing to change." in result.stderr
    assert "Warning: Columns not used by this command (ignored): status, expires_at." in result.stderr
    assert store_state(cli.store) == before


# -- renew --file ------------------------------------------------------------------------------------


@pytest.fixture
def renewable(cli, admin_a) -> dict[str, str]:
    """Two active agents (one soon to expire), one already expired, one pending."""
    people = {
        "soon": create_account(cli, "Jeanne", "Dupont"),
        "expired": create_account(cli, "Paul", "Martin"),
        "pending": create_account(cli, "Luc", "Petit", activate_it=False),
    }
    set_account(cli.store, people["soon"], expires_at=FROZEN_AT + timedelta(days=20))
    set_account(cli.store, people["expired"], expires_at=FROZEN_AT - timedelta(days=1))
    return people


def expiry(url: str, identifier: str) -> tuple[str | None, str | None]:
    row = account_row(url, identifier)
    assert row is not None
    return tuple(v.isoformat() if v else None for v in (row["expires_at"], row["renewed_at"]))  # type: ignore[return-value]


def test_renew_file_renews_every_account_listed_in_one_batch(cli, renewable, tmp_path):
    path = write_csv(
        tmp_path, [["Identifiant", "Nom"], [renewable["soon"], "Dupont"], [renewable["expired"].lower(), "Martin"]]
    )

    result = with_code(cli, "accounts", "renew", "--file", str(path), "--yes", "--format", "json")

    assert "2 rows: 2 to change, 0 unchanged, 0 rejected. Applied as batch 1" in result.stderr
    assert "Warning: Columns not used by this command (ignored): Nom." in result.stderr
    assert [(p["identifier"], p["action"], p["field"], p["after"]) for p in plan_of(result)] == [
        (renewable["soon"], "update", "expires_at", RENEWED_UNTIL),
        (renewable["expired"], "update", "expires_at", RENEWED_UNTIL),
    ]
    for key in ("soon", "expired"):
        assert expiry(cli.store, renewable[key]) == (RENEWED_UNTIL, FROZEN_AT.isoformat())
        assert cli.json("accounts", "show", renewable[key])["status"] == "active"
    (batch,) = cli.json("batches", "list")
    assert (batch["kind"], batch["rows_changed"]) == ("renew", 2)
    events = history(cli, "--batch", "1")
    assert [(e["action"], e["target"], e["after"]) for e in events[:2]] == [
        ("account.renew", renewable["soon"], {"expires_at": RENEWED_UNTIL}),
        ("account.renew", renewable["expired"], {"expires_at": RENEWED_UNTIL}),
    ]


def test_renew_file_rejects_unknown_pending_and_foreign_identifiers(cli, renewable, tmp_path):
    admin_b = register(cli, SIRET_B, last="Petit", first="Paul", phone="06 11 22 33 44")
    path = write_csv(
        tmp_path,
        [
            ["identifier"],
            [renewable["soon"]],
            [renewable["pending"]],
            ["ZZZ999999"],
            [admin_b],
            ["pas-un-id"],
            [renewable["soon"]],
        ],
    )
    before = store_state(cli.store)
    report = tmp_path / "rejected.csv"

    refused = renew(cli, path, "--report", str(report), "--format", "json")

    assert refused.exit_code == 3
    assert [(p["line"], p["reason"]) for p in plan_of(refused)] == [
        (3, f"{renewable['pending']} is not activated yet: there is nothing to renew"),
        (4, NOT_IN_SCOPE.format("ZZZ999999")),
        (5, NOT_IN_SCOPE.format(admin_b)),
        (6, "This is not an account identifier."),
        (7, "the account is already on line 2"),
    ]
    assert store_state(cli.store)["account"] == before["account"]
    _data, rows = read_report(report)
    assert [r[1:] for r in rows] == [["line", "reason"], *([str(p["line"]), p["reason"]] for p in plan_of(refused))]

    applied = with_code(cli, "accounts", "renew", "--file", str(path), "--yes", "--skip-invalid")

    assert "6 rows: 1 to change, 0 unchanged, 5 rejected. Applied as batch 1" in applied.stderr
    assert expiry(cli.store, renewable["soon"])[0] == RENEWED_UNTIL
    assert expiry(cli.store, renewable["pending"])[0] is None


def test_renew_file_twice_changes_nothing_the_second_time_and_dry_run_writes_nothing(cli, renewable, tmp_path):
    path = write_csv(tmp_path, [["identifier"], [renewable["soon"]]])
    before = store_state(cli.store)

    dry = cli("accounts", "renew", "--file", str(path), "--dry-run")

    assert dry.exit_code == 0, dry.stderr
    assert "1 rows: 1 to change, 0 unchanged, 0 rejected. Dry run: nothing was written." in dry.stderr
    assert store_state(cli.store) == before
    with_code(cli, "accounts", "renew", "--file", str(path), "--yes")
    state = store_state(cli.store)

    again = renew(cli, path)

    assert again.exit_code == 0, again.stderr
    assert "1 rows: 0 to change, 1 unchanged, 0 rejected. Nothing to change." in again.stderr
    assert store_state(cli.store) == state


def test_undo_of_a_renew_batch_restores_the_exact_dates(cli, renewable, tmp_path):
    previous = {key: expiry(cli.store, renewable[key]) for key in ("soon", "expired")}
    path = write_csv(tmp_path, [["identifier"], [renewable["soon"]], [renewable["expired"]]])
    with_code(cli, "accounts", "renew", "--file", str(path), "--yes")

    result = cli("batches", "undo", "1", "--yes")

    assert result.exit_code == 0, result.stderr
    assert {key: expiry(cli.store, renewable[key]) for key in ("soon", "expired")} == previous
    assert cli.json("accounts", "show", renewable["expired"])["status"] == "expired"
    assert [e["action"] for e in history(cli, "--batch", "2")] == [
        "account.renew.undo",
        "account.renew.undo",
        "batch.undo",
    ]


def test_renew_needs_identifiers_or_a_file_not_both(cli, admin_a, tmp_path):
    path = write_csv(tmp_path, [["identifier"], [ADMIN_A]])

    for args, message in (
        ((), "Error: Give at least one account identifier, or --file FILE.\n"),
        ((ADMIN_A, "--file", str(path)), "Error: Give account identifiers or --file FILE, not both.\n"),
        ((ADMIN_A, "--dry-run"), "Error: These options need --file: --dry-run.\n"),
    ):
        result = cli("accounts", "renew", *args)
        assert result.exit_code == 2, (args, result.stderr)
        assert result.stderr.startswith(message)


def test_undo_of_a_renew_batch_cannot_leave_the_last_administrator_expired(cli, admin_a, tmp_path):
    """The last active administrator cannot be left to expire by restoring an expiry date now past."""
    set_account(cli.store, ADMIN_A, expires_at=FROZEN_AT + timedelta(days=1))
    path = write_csv(tmp_path, [["identifier"], [ADMIN_A]])
    with_code(cli, "accounts", "renew", "--file", str(path), "--yes")
    renewed = account_row(cli.store, ADMIN_A)["expires_at"]
    clock.advance(timedelta(days=2))  # the date the undo would restore is now in the past
    login(cli, ADMIN_A)

    refused = cli("batches", "undo", "1", "--yes")
    if refused.exit_code == 6:  # a session from a trusted workstation: the step-up code first
        refused = cli("batches", "undo", "1", "--yes", "--otp", last_sms_code(cli))

    assert (refused.exit_code, refused.stdout) == (5, "")
    assert refused.stderr.startswith(
        f"Error: Undoing this batch would leave {SIRET_A} without an active administrator."
    )
    assert account_row(cli.store, ADMIN_A)["expires_at"] == renewed
    assert cli.json("accounts", "show", ADMIN_A)["status"] == "active"
