"""batches list | show | undo through the CLI, on SQLite and PostgreSQL.

security.md "Bulk and concurrency": ``batches undo`` restores the exact previous values in one
transaction, is itself audited (a batch of kind ``undo``, ``phone.undo`` and ``batch.undo``
events), and refuses (or needs ``--force``) when a row changed after the batch. The store is read
directly to prove what was restored.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.commands.test_phones import count, execute, import_, phones, query, store_state, write_csv
from tests.conftest import SIRET_A, SIRET_B, create_account, login, register

ADMIN_A = "MDU000001"
BATCH_KEYS = [
    "id",
    "kind",
    "file_name",
    "file_sha256",
    "actor",
    "establishment",
    "created_at",
    "rows_total",
    "rows_changed",
    "rows_unchanged",
    "rows_rejected",
    "undone_at",
    "undo_of",
]
CHANGE_KEYS = ["batch_id", "identifier", "line", "before", "after"]
AT = "2026-01-15T09:30:00+00:00"  # the frozen clock


@pytest.fixture
def applied(cli, admin_a, tmp_path) -> dict[str, str]:
    """Batch 1: three agents (a mobile, no phone, a landline) given new numbers; one row left unchanged."""
    people = {
        "mobile": create_account(cli, "Jeanne", "Dupont", phone="06 12 34 56 78", activate_it=False),
        "none": create_account(cli, "Paul", "Martin", activate_it=False),
        "landline": create_account(cli, "Luc", "Petit", phone="01 42 68 53 00", activate_it=False),
        "same": create_account(cli, "Léa", "Noël", phone="06 98 76 54 32", activate_it=False),
    }
    path = write_csv(
        tmp_path,
        [
            ["identifier", "phone"],
            [people["mobile"], "07 81 22 33 44"],
            [people["none"], "0692 12 34 56"],
            [people["landline"], "07 81 22 33 55"],
            [people["same"], "06 98 76 54 32"],
        ],
        "batch1.csv",
    )
    result = import_(cli, path)
    assert result.exit_code == 0, result.stderr
    return people


BEFORE = {"mobile": ("+33612345678", "mobile"), "none": (None, None), "landline": ("+33142685300", "landline")}
AFTER = {
    "mobile": ("+33781223344", "mobile"),
    "none": ("+262692123456", "mobile"),
    "landline": ("+33781223355", "mobile"),
}


def phones_of(cli, people: dict[str, str]) -> dict[str, tuple]:
    stored = phones(cli.store)
    return {key: stored[identifier] for key, identifier in people.items()}


# -- list / show -------------------------------------------------------------------------------------


def test_list_shows_the_batches_of_the_establishment(cli, applied, tmp_path):
    batches = cli.json("batches", "list")

    assert [list(b) for b in batches] == [BATCH_KEYS]
    (batch,) = batches
    assert batch == {
        "id": 1,
        "kind": "phones",
        "file_name": str(tmp_path / "batch1.csv"),
        "file_sha256": batch["file_sha256"],
        "actor": ADMIN_A,
        "establishment": SIRET_A,
        "created_at": AT,
        "rows_total": 4,
        "rows_changed": 3,
        "rows_unchanged": 1,
        "rows_rejected": 0,
        "undone_at": None,
        "undo_of": None,
    }
    assert len(batch["file_sha256"]) == 64


def test_list_json_is_an_empty_list_without_batches(cli, admin_a):
    result = cli.ok("batches", "list", "--format", "json")

    assert json.loads(result.stdout) == []


def test_show_gives_the_counts_and_each_change_in_full(cli, applied):
    shown = cli.json("batches", "show", "1")

    assert list(shown) == [*BATCH_KEYS, "changes"]
    assert (shown["id"], shown["kind"], shown["rows_changed"]) == (1, "phones", 3)
    assert [list(c) for c in shown["changes"]] == [CHANGE_KEYS] * 3
    assert shown["changes"] == [
        {
            "batch_id": 1,
            "identifier": applied[key],
            "line": line,
            "before": {"phone": BEFORE[key][0], "phone_type": BEFORE[key][1]},
            "after": {"phone": AFTER[key][0], "phone_type": AFTER[key][1]},
        }
        for key, line in (("mobile", 2), ("none", 3), ("landline", 4))
    ]


def test_show_as_a_table_names_the_batch(cli, applied):
    result = cli.ok("batches", "show", "1")

    assert "Batch 1" in result.stdout
    assert applied["landline"] in result.stdout


# -- undo --------------------------------------------------------------------------------------------


def test_undo_restores_the_exact_previous_phones(cli, applied):
    assert phones_of(cli, applied) == {**AFTER, "same": ("+33698765432", "mobile")}

    result = cli("batches", "undo", "1", "--yes")

    assert result.exit_code == 0, result.stderr
    assert result.stderr == "Batch 1 undone: 3 rows restored (recorded as batch 2).\n"
    assert phones_of(cli, applied) == {**BEFORE, "same": ("+33698765432", "mobile")}


def test_undo_is_itself_a_batch(cli, applied):
    cli.ok("batches", "undo", "1", "--yes")

    first, undo = cli.json("batches", "list")
    assert (first["id"], first["undone_at"]) == (1, AT)
    assert (undo["id"], undo["kind"], undo["undo_of"], undo["actor"], undo["file_name"]) == (
        2,
        "undo",
        1,
        ADMIN_A,
        None,
    )
    assert (undo["rows_total"], undo["rows_changed"]) == (3, 3)
    changes = cli.json("batches", "show", "2")["changes"]
    assert [(c["identifier"], c["before"]["phone"], c["after"]["phone"]) for c in changes] == [
        (applied[key], AFTER[key][0], BEFORE[key][0]) for key in ("mobile", "none", "landline")
    ]


def test_undo_is_audited_with_phones_masked(cli, applied):
    cli.ok("batches", "undo", "1", "--yes")

    raw = cli.ok("history", "--batch", "2", "--format", "json").stdout
    events = json.loads(raw)
    assert [(e["action"], e["target"], e["actor"], e["batch_id"]) for e in events] == [
        ("phone.undo", applied["mobile"], ADMIN_A, 2),
        ("phone.undo", applied["none"], ADMIN_A, 2),
        ("phone.undo", applied["landline"], ADMIN_A, 2),
        ("batch.undo", "batch:1", ADMIN_A, 2),
    ]
    assert [(e["before"], e["after"]) for e in events[:3]] == [
        ({"phone": "+33 7 •• •• •• 44"}, {"phone": "+33 6 •• •• •• 78"}),
        ({"phone": "+262 692 •• •• 56"}, {"phone": None}),
        ({"phone": "+33 7 •• •• •• 55"}, {"phone": "+33 1 •• •• •• 00"}),
    ]
    assert events[3]["after"] == {"restored": 3, "forced": False}
    for digits in ("612345678", "781223344", "692123456", "142685300"):
        assert digits not in raw.replace(" ", "")
    assert cli("history", "verify").exit_code == 0


def test_undo_ends_the_sessions_of_the_agents_whose_phone_it_restores(cli, applied):
    execute(
        cli.store,
        "INSERT INTO auth_session (account_id, token_hash, created_at, last_seen_at, expires_at) "
        "SELECT id, 'not-a-real-token-hash', updated_at, updated_at, updated_at FROM account WHERE identifier = :i",
        i=applied["none"],
    )

    cli.ok("batches", "undo", "1", "--yes")

    revoked = query(
        cli.store, "SELECT revoked_at IS NOT NULL FROM auth_session WHERE token_hash = 'not-a-real-token-hash'"
    )
    assert [bool(r) for (r,) in revoked] == [True]
    cli.ok("whoami")


def test_undo_twice_is_refused(cli, applied):
    cli.ok("batches", "undo", "1", "--yes")
    before = store_state(cli.store)

    result = cli("batches", "undo", "1", "--yes")

    assert result.exit_code == 5
    assert result.stderr == "Error: Batch 1 was already undone.\n"
    assert store_state(cli.store) == before


def test_an_undo_batch_cannot_be_undone(cli, applied):
    cli.ok("batches", "undo", "1", "--yes")

    result = cli("batches", "undo", "2", "--yes")

    assert result.exit_code == 5
    assert result.stderr == "Error: Batch 2 (undo) cannot be undone.\n"
    assert phones_of(cli, applied) == {**BEFORE, "same": ("+33698765432", "mobile")}


def test_undo_is_refused_when_a_row_changed_after_the_batch(cli, applied):
    cli.ok("accounts", "update", applied["none"], "--phone", "07 81 99 99 99")
    before = store_state(cli.store)

    result = cli("batches", "undo", "1", "--yes")

    assert result.exit_code == 5
    assert result.stderr.startswith(f"Error: 1 account(s) changed after batch 1: {applied['none']}.\n")
    assert "--force" in result.stderr
    assert store_state(cli.store) == before  # nothing restored, not even the rows that did not change


def test_undo_with_force_restores_anyway(cli, applied):
    cli.ok("accounts", "update", applied["none"], "--phone", "07 81 99 99 99")

    result = cli("batches", "undo", "1", "--yes", "--force")

    assert result.exit_code == 0, result.stderr
    assert phones_of(cli, applied) == {**BEFORE, "same": ("+33698765432", "mobile")}
    (event,) = cli.json("history", "--action", "batch.undo")
    assert event["after"] == {"restored": 3, "forced": True}
    undo = cli.json("batches", "show", "2")
    forced = next(c for c in undo["changes"] if c["identifier"] == applied["none"])
    assert forced["before"] == {"phone": "+33781999999", "phone_type": "mobile"}  # what the undo overwrote


def test_undo_without_a_terminal_needs_yes(cli, applied):
    result = cli("batches", "undo", "1")

    assert result.exit_code == 2
    assert phones_of(cli, applied)["mobile"] == AFTER["mobile"]


def test_undo_is_one_transaction(cli, applied, monkeypatch):
    from pepsctl.store import queries

    before = store_state(cli.store)
    insert = queries.insert_rows

    def failing_insert(session, model, columns, rows):
        if model.__tablename__ == "batch_change":
            raise RuntimeError("connection lost (injected)")
        return insert(session, model, columns, rows)

    monkeypatch.setattr(queries, "insert_rows", failing_insert)

    result = cli("batches", "undo", "1", "--yes")

    assert result.exit_code == 70
    assert store_state(cli.store) == before
    assert cli.json("batches", "list")[0]["undone_at"] is None


def test_the_file_applies_again_after_an_undo(cli, applied, tmp_path):
    cli.ok("batches", "undo", "1", "--yes")

    result = import_(cli, Path(tmp_path / "batch1.csv"))

    assert result.exit_code == 0, result.stderr
    assert "Applied as batch 3" in result.stderr
    assert phones_of(cli, applied) == {**AFTER, "same": ("+33698765432", "mobile")}


# -- not found, not yours ----------------------------------------------------------------------------


@pytest.mark.parametrize("command", [("show",), ("undo", "--yes")])
def test_an_unknown_batch_is_refused_like_another_establishments(cli, admin_a, command):
    action = "account.list" if command[0] == "show" else "account.update"
    result = cli("batches", command[0], "99", *command[1:])

    assert result.exit_code == 7
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: You may not do this ({action}) on batch:99.\n"
        "Hint: Not in your establishment nor in one that delegated to it (or it does not exist).\n"
    )


def test_a_batch_id_that_is_not_a_number_is_a_usage_error(cli, admin_a):
    assert cli("batches", "show", "abc").exit_code == 2


def test_another_establishments_batch_is_out_of_reach(cli, admin_a, tmp_path):
    admin_b = register(cli, SIRET_B, last="Petit", first="Luc", phone="06 11 22 33 44")
    login(cli, admin_b)  # a new workstation for B's administrator: a code, so a stepped-up session
    agent_b = create_account(cli, "Paul", "Martin", phone="06 55 44 33 22", activate_it=False)
    assert import_(cli, write_csv(tmp_path, [["identifier", "phone"], [agent_b, "07 81 22 33 44"]])).exit_code == 0
    login(cli, ADMIN_A)
    before = store_state(cli.store)

    shown = cli("batches", "show", "1")
    undone = cli("batches", "undo", "1", "--yes", "--force")

    assert (shown.exit_code, undone.exit_code) == (7, 7)
    assert shown.stdout == ""
    assert shown.stderr.startswith("Error: You may not do this (account.list) on batch:1.\n")
    assert undone.stderr.startswith("Error: You may not do this (account.update) on batch:1.\n")
    assert "+33781223344" not in shown.stderr + undone.stderr
    assert store_state(cli.store)["account"] == before["account"]
    assert phones(cli.store)[agent_b] == ("+33781223344", "mobile")
    assert cli.json("batches", "list") == []
    assert count(cli.store, "batch") == 1
    denied = cli.json("history", "--action", "permission.denied")
    assert [(e["actor"], e["target"]) for e in denied] == [(ADMIN_A, "batch:1"), (ADMIN_A, "batch:1")]


def test_a_user_profile_cannot_list_batches(cli, applied):
    user = create_account(cli, "Anne", "Roux", phone="06 10 10 10 10")
    login(cli, user)

    assert cli("batches", "list").exit_code == 7
    assert cli("batches", "show", "1").exit_code == 7
    assert cli("batches", "undo", "1", "--yes").exit_code == 7
    assert phones_of(cli, applied)["mobile"] == AFTER["mobile"]
