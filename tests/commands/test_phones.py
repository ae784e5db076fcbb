"""phones import | template | check through the CLI, on SQLite and PostgreSQL.

One test per rule of cli.md "CSV files" and security.md "Bulk and concurrency": every row validated
before anything is written, nothing written when a row is invalid (unless --skip-invalid), one
transaction, a batch recorded, the same file twice a no-op, set-based writes. The store is read
directly (not through pepsctl) to prove what was, or was not, written.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from pathlib import Path

import pytest

from tests.conftest import SIRET_A, SIRET_B, create_account, login, register, with_code

ADMIN_A = "MDU000001"  # Marie Durand, registered by the admin_a fixture
PLAN_KEYS = ["line", "identifier", "action", "field", "before", "after", "reason"]
FINDING_KEYS = ["identifier", "last_name", "first_name", "email", "issue", "phone", "detail", "establishment"]


# -- helpers -----------------------------------------------------------------------------------------


def _engine(url: str):
    from pepsctl.store.engine import create_store_engine, parse_store_url

    return create_store_engine(parse_store_url(url))


def query(url: str, sql: str, **params) -> list[tuple]:
    from sqlalchemy import text

    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def execute(url: str, sql: str, **params) -> None:
    from sqlalchemy import text

    engine = _engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql), params)
    finally:
        engine.dispose()


def phones(url: str) -> dict[str, tuple[str | None, str | None]]:
    """{identifier: (phone, phone_type)} of every account, read from the store."""
    return {i: (p, t) for i, p, t in query(url, "SELECT identifier, phone, phone_type FROM account")}


def accounts_table(url: str) -> list[tuple]:
    return query(url, "SELECT * FROM account ORDER BY id")


def count(url: str, table: str) -> int:
    return query(url, f"SELECT count(*) FROM {table}")[0][0]


def store_state(url: str) -> dict[str, object]:
    """What an import may write: the accounts, its batch, history, messages and sessions."""
    return {
        "account": accounts_table(url),
        **{t: count(url, t) for t in ("batch", "batch_change", "audit_event", "outbox_message")},
        "auth_session": query(url, "SELECT id, revoked_at FROM auth_session ORDER BY id"),
    }


def write_csv(tmp_path: Path, rows: list[list[str]], name: str = "phones.csv", delimiter: str = ";") -> Path:
    path = tmp_path / name
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def import_(cli, path: Path, *args: str):
    return cli("phones", "import", str(path), "--yes", "--quiet", *args)


def add_accounts(url: str, count_: int) -> list[str]:
    """``count_`` accounts in establishment A in one statement; their identifiers, in order."""
    from benchmarks.generate import add_accounts as generate

    before = {i for (i,) in query(url, "SELECT identifier FROM account")}
    engine = _engine(url)
    try:
        generate(engine, SIRET_A, count_)
    finally:
        engine.dispose()
    return sorted(i for (i,) in query(url, "SELECT identifier FROM account") if i not in before)


def read_report(path: Path) -> tuple[bytes, list[list[str]]]:
    data = path.read_bytes()
    return data, list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))


# -- numbers -----------------------------------------------------------------------------------------

OVERSEAS = [
    ("Réunion", "0692 12 34 56", "+262692123456"),
    ("Guadeloupe", "0690 12 34 56", "+590690123456"),
    ("Martinique", "0696 12 34 56", "+596696123456"),
    ("Guyane", "0694 12 34 56", "+594694123456"),
    ("Mayotte", "0639 01 23 45", "+262639012345"),
]


def test_overseas_numbers_are_stored_in_e164_with_their_own_country_code(cli, admin_a, tmp_path):
    people = [create_account(cli, first, "Agent", activate_it=False) for first, _raw, _e164 in OVERSEAS]
    path = write_csv(
        tmp_path, [["identifier", "phone"], *[[p, raw] for p, (_f, raw, _e) in zip(people, OVERSEAS, strict=True)]]
    )

    result = import_(cli, path)

    assert result.exit_code == 0, result.stderr
    assert "5 rows: 5 to change, 0 unchanged, 0 rejected. Applied as batch 1" in result.stderr
    stored = phones(cli.store)
    assert [stored[p] for p in people] == [(e164, "mobile") for _f, _raw, e164 in OVERSEAS]


def test_a_landline_is_stored_with_its_type(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "Dupont", activate_it=False)

    import_(cli, write_csv(tmp_path, [["identifier", "phone"], [user, "01 42 68 53 00"]]))

    assert phones(cli.store)[user] == ("+33142685300", "landline")


UNREACHABLE = [
    ("0899 12 34 56", "This is a premium-rate number: it can receive neither SMS nor a call."),
    ("12 34", "This is a short or incomplete number: it can receive neither SMS nor a call."),
    ("612345678", "This phone number has neither a leading 0 nor a country code."),
]


def test_a_number_that_can_receive_no_code_is_rejected_with_its_reason(cli, admin_a, tmp_path):
    users = [
        create_account(cli, first, "Dupont", phone=f"06 12 34 56 7{i}", activate_it=False)
        for i, first in enumerate(("Jeanne", "Paul", "Luc"))
    ]
    rows = [[user, raw] for user, (raw, _reason) in zip(users, UNREACHABLE, strict=True)]
    before = store_state(cli.store)

    result = import_(cli, write_csv(tmp_path, [["identifier", "phone"], *rows]), "--format", "json")

    assert result.exit_code == 3
    assert json.loads(result.stdout) == [
        {
            "line": i + 2,
            "identifier": user,
            "action": "reject",
            "field": "phone",
            "before": f"+3361234567{i}",
            "after": None,
            "reason": reason,
        }
        for i, (user, (_raw, reason)) in enumerate(zip(users, UNREACHABLE, strict=True))
    ]
    assert result.stderr == (
        "Error: 3 rows are invalid: nothing was written.\n"
        "Hint: Fix them (see --report FILE), or apply the valid rows with --skip-invalid.\n"
    )
    after = store_state(cli.store)
    assert after["account"] == before["account"]
    assert after["batch"] == 0


# -- all or nothing ----------------------------------------------------------------------------------


@pytest.fixture
def thousand(cli, admin_a, tmp_path) -> tuple[list[str], Path]:
    """1,000 accounts, and a file that gives each a new number plus one invalid row (line 502)."""
    people = add_accounts(cli.store, 1000)
    rows = [["Identifiant", "Nom", "Téléphone"]]
    rows += [[p, "Agent", f"07 81 {i:06d}"] for i, p in enumerate(people[:500])]
    rows += [["XYZ999999", "Inconnu", "07 99 99 99 99"]]
    rows += [[p, "Agent", f"07 81 {i:06d}"] for i, p in enumerate(people[500:], start=500)]
    return people, write_csv(tmp_path, rows)


def test_one_invalid_row_among_a_thousand_writes_nothing(cli, thousand, tmp_path):
    _people, path = thousand
    before = store_state(cli.store)
    report = tmp_path / "rejected.csv"

    result = import_(cli, path, "--report", str(report))

    assert result.exit_code == 3
    assert "Error: 1 row is invalid: nothing was written." in result.stderr
    assert "XYZ999999" in result.stdout  # the rejected rows are listed, with their line and reason
    after = store_state(cli.store)
    assert after["account"] == before["account"]
    assert (after["batch"], after["batch_change"], after["outbox_message"]) == (0, 0, before["outbox_message"])
    assert after["audit_event"] == before["audit_event"] + 1  # the rejected import, audited
    assert cli.json("batches", "list") == []
    assert [e["after"] for e in cli.json("history", "--action", "bulk.rejected")] == [
        {"kind": "phones", "rejected": 1, "rows": 1001}
    ]


def test_the_report_holds_exactly_the_invalid_rows_in_their_input_columns(cli, thousand, tmp_path):
    _people, path = thousand
    report = tmp_path / "rejected.csv"
    report.write_text("an older report, readable by all\n")
    report.chmod(0o644)

    import_(cli, path, "--report", str(report))

    assert stat.S_IMODE(os.stat(report).st_mode) == 0o600
    data, rows = read_report(report)
    assert data.startswith(b"\xef\xbb\xbf")
    assert rows == [
        ["Identifiant", "Nom", "Téléphone", "line", "reason"],
        ["XYZ999999", "Inconnu", "07 99 99 99 99", "502", "no account XYZ999999 in the establishments you may act on"],
    ]


@pytest.mark.parametrize("where", ["missing folder", "a directory", "read-only file"])
def test_a_report_that_cannot_be_written_is_refused_before_anything_is_applied(cli, admin_a, tmp_path, where):
    """Found by hardening: the report used to be written after the batch was applied, so an unwritable
    path gave exit 3 for an import that had in fact been applied."""
    user = create_account(cli, "Jeanne", "Dupont", activate_it=False)
    path = write_csv(tmp_path, [["identifier", "phone"], [user, "07 81 22 33 44"]])
    report = {
        "missing folder": tmp_path / "no" / "such" / "folder" / "r.csv",
        "a directory": tmp_path,
        "read-only file": tmp_path / "locked.csv",
    }[where]
    if where == "read-only file":
        report.write_text("")
        report.chmod(0o400)
        if os.access(report, os.W_OK):  # root writes anything
            pytest.skip("permissions do not bind this user")
    before = store_state(cli.store)

    result = import_(cli, path, "--skip-invalid", "--report", str(report))

    assert result.exit_code == 3, result.stderr  # like an --output path that cannot be written
    assert result.stderr.startswith(f"Error: Cannot write {report}: ")
    assert store_state(cli.store) == before


def test_skip_invalid_applies_the_valid_rows_and_records_a_batch_with_their_counts(cli, thousand):
    people, path = thousand

    result = import_(cli, path, "--skip-invalid")

    assert result.exit_code == 0, result.stderr
    assert "1001 rows: 1000 to change, 0 unchanged, 1 rejected. Applied as batch 1" in result.stderr
    stored = phones(cli.store)
    assert all(stored[p] == (f"+33781{i:06d}", "mobile") for i, p in enumerate(people))
    (batch,) = cli.json("batches", "list")
    assert (batch["id"], batch["kind"], batch["rows_total"], batch["rows_changed"]) == (1, "phones", 1001, 1000)
    assert (batch["rows_unchanged"], batch["rows_rejected"], batch["undo_of"]) == (0, 1, None)
    assert count(cli.store, "batch_change") == 1000


def test_dry_run_prints_the_plan_and_writes_nothing(cli, admin_a, tmp_path):
    changed = create_account(cli, "Jeanne", "Dupont", phone="06 12 34 56 78", activate_it=False)
    same = create_account(cli, "Paul", "Martin", phone="06 98 76 54 32", activate_it=False)
    path = write_csv(
        tmp_path,
        [["identifier", "phone"], [changed, "07 81 22 33 44"], [same, "+33 6 98 76 54 32"], ["JDU000099", "0600"]],
    )
    before = store_state(cli.store)

    result = cli("phones", "import", str(path), "--dry-run", "--format", "json")  # no --yes: nothing to confirm

    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert [list(p) for p in plan] == [PLAN_KEYS] * 3
    assert plan == [
        dict(zip(PLAN_KEYS, [2, changed, "update", "phone", "+33612345678", "+33781223344", None], strict=True)),
        dict(zip(PLAN_KEYS, [3, same, "unchanged", "phone", "+33698765432", "+33698765432", None], strict=True)),
        dict(
            zip(
                PLAN_KEYS,
                [
                    4,
                    "JDU000099",
                    "reject",
                    "phone",
                    None,
                    None,
                    "no account JDU000099 in the establishments you may act on",
                ],
                strict=True,
            )
        ),
    ]
    assert result.stderr.endswith("3 rows: 1 to change, 1 unchanged, 1 rejected. Dry run: nothing was written.\n"), (
        result.stderr
    )
    assert store_state(cli.store) == before


def test_without_a_terminal_an_import_needs_yes(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "Dupont", activate_it=False)
    path = write_csv(tmp_path, [["identifier", "phone"], [user, "07 81 22 33 44"]])

    result = cli("phones", "import", str(path))

    assert result.exit_code == 2
    assert result.stderr.startswith("Error: Confirmation needed and there is no terminal to ask")
    assert phones(cli.store)[user] == (None, None)


def test_the_same_file_twice_changes_nothing_the_second_time(cli, admin_a, tmp_path):
    users = [create_account(cli, f, "Dupont", activate_it=False) for f in ("Jeanne", "Paul", "Luc")]
    path = write_csv(
        tmp_path,
        [["identifier", "phone"], [users[0], "07 81 22 33 44"], [users[1], "0692 12 34 56"], [users[2], ""]],
    )
    assert import_(cli, path).exit_code == 0
    before = store_state(cli.store)

    again = import_(cli, path)

    assert again.exit_code == 0, again.stderr
    assert "3 rows: 0 to change, 3 unchanged, 0 rejected. Nothing to change." in again.stderr
    assert store_state(cli.store) == before
    assert [b["id"] for b in cli.json("batches", "list")] == [1]


def test_an_empty_phone_cell_changes_nothing(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "Dupont", phone="06 12 34 56 78", activate_it=False)

    result = import_(cli, write_csv(tmp_path, [["identifier", "phone"], [user, " "]]))

    assert result.exit_code == 0
    assert phones(cli.store)[user] == ("+33612345678", "mobile")
    assert cli.json("batches", "list") == []


def test_a_phones_file_cannot_change_other_fields(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "Dupont", activate_it=False)
    path = write_csv(
        tmp_path,
        [
            ["identifier", "phone", "profile", "email", "nom", "fonction", "establishment"],
            [user, "07 81 22 33 44", "admin", "pirate@example.fr", "Pirate", "DRH", SIRET_B],
        ],
    )
    before = query(cli.store, "SELECT profile, email, last_name, function, establishment_id FROM account")

    result = import_(cli, path)

    assert result.exit_code == 0, result.stderr
    assert "Columns not used by this command (ignored): profile, nom, fonction, establishment." in result.stderr
    assert query(cli.store, "SELECT profile, email, last_name, function, establishment_id FROM account") == before
    assert phones(cli.store)[user] == ("+33781223344", "mobile")


def test_a_file_that_cannot_be_read_is_refused_with_its_line(cli, tmp_path):
    path = tmp_path / "phones.csv"
    path.write_text('identifier;phone\nJDU000002;0612345678\nPMA000003;"07\n')

    result = import_(cli, path)

    assert result.exit_code == 3
    assert result.stderr.startswith("Error: Line 3: ")


def test_a_file_without_a_phone_column_is_refused(cli, tmp_path):
    result = import_(cli, write_csv(tmp_path, [["identifier", "nom"], ["JDU000002", "Dupont"]]))

    assert result.exit_code == 3
    assert result.stderr.startswith("Error: Line 1: no column for phone.\n")


# -- matching ----------------------------------------------------------------------------------------


def test_rows_are_matched_by_email_when_there_is_no_identifier_column(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "Dupont", activate_it=False)
    path = write_csv(tmp_path, [["Courriel", "Téléphone"], ["JEANNE.Dupont@Example.FR", "07 81 22 33 44"]])

    result = import_(cli, path)

    assert result.exit_code == 0, result.stderr
    assert phones(cli.store)[user] == ("+33781223344", "mobile")


def test_an_email_used_by_two_accounts_is_rejected(cli, admin_a, tmp_path):
    for first, last in (("Jeanne", "Dupont"), ("Paul", "Martin")):
        cli.ok(
            *("accounts", "create", "--profile", "user", "--civility", "M"),
            *("--last-name", last, "--first-name", first, "--email", "accueil@example.fr"),
        )
    path = write_csv(tmp_path, [["email", "phone"], ["accueil@example.fr", "07 81 22 33 44"]])

    result = import_(cli, path, "--format", "json")

    assert result.exit_code == 3
    assert [p["reason"] for p in json.loads(result.stdout)] == ["several accounts use this e-mail: give the identifier"]
    assert list(phones(cli.store).values()).count((None, None)) == 2


def test_the_same_account_on_two_lines_is_rejected(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "Dupont", activate_it=False)
    path = write_csv(tmp_path, [["identifier", "phone"], [user, "07 81 22 33 44"], [user.lower(), "07 81 22 33 55"]])

    result = import_(cli, path, "--format", "json")

    assert result.exit_code == 3
    assert [(p["line"], p["reason"]) for p in json.loads(result.stdout)] == [(3, "the account is already on line 2")]
    assert phones(cli.store)[user] == (None, None)


def test_rows_for_another_establishment_are_rejected_and_not_applied(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "Dupont", activate_it=False)
    admin_b = register(cli, SIRET_B, last="Petit", first="Luc", phone="06 11 22 33 44")
    assert cli.json("whoami")["identifier"] == admin_a  # registering B left A's (stepped-up) session alone
    path = write_csv(
        tmp_path,
        [
            ["identifier", "email", "phone"],
            [admin_b, "", "07 81 00 00 01"],
            ["", f"luc.petit@{SIRET_B}.example.fr", "07 81 00 00 02"],
            [user, "", "07 81 00 00 03"],
        ],
    )
    report = tmp_path / "rejected.csv"

    result = import_(cli, path, "--skip-invalid", "--report", str(report), "--format", "json")

    assert result.exit_code == 0, result.stderr
    assert [(p["line"], p["identifier"], p["reason"]) for p in json.loads(result.stdout)] == [
        (2, admin_b, f"no account {admin_b} in the establishments you may act on"),
        (3, None, "no account with this e-mail in the establishments you may act on"),
    ]
    stored = phones(cli.store)
    assert stored[admin_b] == ("+33611223344", "mobile")
    assert stored[user] == ("+33781000003", "mobile")
    _data, rows = read_report(report)
    assert [r[-1] for r in rows[1:]] == [
        f"no account {admin_b} in the establishments you may act on",
        "no account with this e-mail in the establishments you may act on",
    ]


# -- shared numbers ----------------------------------------------------------------------------------


def test_one_number_for_two_rows_is_refused(cli, admin_a, tmp_path):
    one = create_account(cli, "Jeanne", "Dupont", activate_it=False)
    two = create_account(cli, "Paul", "Martin", activate_it=False)
    path = write_csv(tmp_path, [["identifier", "phone"], [one, "07 81 22 33 44"], [two, "+33781223344"]])

    result = import_(cli, path, "--format", "json")

    assert result.exit_code == 3
    reasons = {p["identifier"]: p["reason"] for p in json.loads(result.stdout)}
    assert reasons == {
        one: f"number shared with {two} (one personal number per agent; --allow-shared accepts it)",
        two: f"number shared with {one} (one personal number per agent; --allow-shared accepts it)",
    }
    assert (phones(cli.store)[one], phones(cli.store)[two]) == ((None, None), (None, None))


def test_a_number_already_held_by_another_account_is_refused(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "Dupont", activate_it=False)

    result = import_(cli, write_csv(tmp_path, [["identifier", "phone"], [user, "06 10 20 30 40"]]), "--format", "json")

    assert result.exit_code == 3
    assert [p["reason"] for p in json.loads(result.stdout)] == [
        f"number shared with {ADMIN_A} (one personal number per agent; --allow-shared accepts it)"
    ]


def test_numbers_may_move_between_accounts_in_one_file(cli, admin_a, tmp_path):
    one = create_account(cli, "Jeanne", "Dupont", phone="07 81 00 00 01", activate_it=False)
    two = create_account(cli, "Paul", "Martin", phone="07 81 00 00 02", activate_it=False)
    path = write_csv(tmp_path, [["identifier", "phone"], [one, "07 81 00 00 02"], [two, "07 81 00 00 01"]])

    result = import_(cli, path)

    assert result.exit_code == 0, result.stderr
    assert (phones(cli.store)[one][0], phones(cli.store)[two][0]) == ("+33781000002", "+33781000001")


def test_allow_shared_accepts_one_number_for_several_accounts(cli, admin_a, tmp_path):
    one = create_account(cli, "Jeanne", "Dupont", activate_it=False)
    two = create_account(cli, "Paul", "Martin", activate_it=False)
    path = write_csv(tmp_path, [["identifier", "phone"], [one, "07 81 22 33 44"], [two, "07 81 22 33 44"]])

    result = import_(cli, path, "--allow-shared")

    assert result.exit_code == 0, result.stderr
    assert phones(cli.store)[one] == phones(cli.store)[two] == ("+33781223344", "mobile")


# -- what a changed number brings ------------------------------------------------------------------------


@pytest.fixture
def verified_user(cli, admin_a) -> str:
    """An agent with a verified phone and a live session of their own."""
    user = create_account(cli, "Jeanne", "Dupont", phone="06 12 34 56 78", activate_it=False)
    execute(cli.store, "UPDATE account SET phone_verified_at = updated_at WHERE identifier = :i", i=user)
    execute(
        cli.store,
        "INSERT INTO auth_session (account_id, token_hash, created_at, last_seen_at, expires_at) "
        "SELECT id, 'not-a-real-token-hash', updated_at, updated_at, updated_at FROM account WHERE identifier = :i",
        i=user,
    )
    return user


def test_a_changed_phone_is_unverified_and_the_agent_is_emailed(cli, verified_user, tmp_path):
    unchanged = create_account(cli, "Paul", "Martin", phone="06 98 76 54 32", activate_it=False)
    execute(cli.store, "UPDATE account SET phone_verified_at = updated_at")
    path = write_csv(tmp_path, [["identifier", "phone"], [verified_user, "07 81 22 33 44"], [unchanged, "0698765432"]])

    assert import_(cli, path).exit_code == 0

    verified = dict(query(cli.store, "SELECT identifier, phone_verified_at IS NOT NULL FROM account"))
    assert (bool(verified[verified_user]), bool(verified[unchanged])) == (False, True)
    messages = [m for m in cli.json("outbox", "list") if m["subject"] == "Your PEP's phone number changed"]
    assert [(m["channel"], m["to"]) for m in messages] == [("email", "jeanne.dupont@example.fr")]
    assert "+33 7 •• •• •• 44" in messages[0]["body"]
    assert "781223344" not in messages[0]["body"].replace(" ", "")


def test_a_changed_phone_ends_the_agents_sessions(cli, verified_user, tmp_path):
    path = write_csv(tmp_path, [["identifier", "phone"], [verified_user, "07 81 22 33 44"]])

    assert import_(cli, path).exit_code == 0

    sessions = query(
        cli.store,
        "SELECT a.identifier, s.revoked_at IS NOT NULL FROM auth_session s JOIN account a ON a.id = s.account_id",
    )
    assert {(i, bool(revoked)) for i, revoked in sessions} >= {(verified_user, True), (ADMIN_A, False)}
    cli.ok("whoami")  # the administrator who imported stays logged in


def test_the_history_has_one_masked_event_per_changed_row_with_the_batch(cli, admin_a, tmp_path):
    users = [
        create_account(cli, f, "Dupont", phone="06 12 34 56 7" + str(i), activate_it=False)
        for i, f in enumerate(("Jeanne", "Paul", "Luc"))
    ]
    path = write_csv(
        tmp_path,
        [["identifier", "phone"], [users[0], "07 81 22 33 44"], [users[1], "0612345671"], [users[2], "0692 12 34 56"]],
    )

    import_(cli, path)

    raw = cli.ok("history", "--batch", "1", "--format", "json").stdout
    events = [e for e in json.loads(raw) if e["action"] == "phone.update"]
    assert [(e["target"], e["actor"], e["establishment"], e["batch_id"]) for e in events] == [
        (users[0], ADMIN_A, SIRET_A, 1),
        (users[2], ADMIN_A, SIRET_A, 1),
    ]
    assert [(e["before"], e["after"]) for e in events] == [
        ({"phone": "+33 6 •• •• •• 70"}, {"phone": "+33 7 •• •• •• 44"}),
        ({"phone": "+33 6 •• •• •• 72"}, {"phone": "+262 692 •• •• 56"}),
    ]
    for digits in ("781223344", "612345670", "692123456"):
        assert digits not in raw.replace(" ", "")
    assert [e["action"] for e in json.loads(raw) if e["action"] != "phone.update"] == ["bulk.applied"]
    assert cli("history", "verify").exit_code == 0


# -- template ----------------------------------------------------------------------------------------


def test_a_template_round_trips_with_zero_changes(cli, admin_a, tmp_path):
    create_account(cli, "Jeanne", "Dupont", phone="06 12 34 56 78", activate_it=False)
    create_account(cli, "Paul", "Martin", phone="0692 12 34 56", activate_it=False)
    create_account(cli, "Luc", "Petit", phone="01 42 68 53 00", activate_it=False)
    create_account(cli, "Léa", "Noël", activate_it=False)  # no phone: an empty cell
    template = tmp_path / "template.csv"
    cli.ok("phones", "template", "--output", str(template))
    assert "'+33612345678" in template.read_text(encoding="utf-8-sig")  # neutralised for spreadsheets
    before = store_state(cli.store)

    result = import_(cli, template)

    assert result.exit_code == 0, result.stderr
    assert "5 rows: 0 to change, 5 unchanged, 0 rejected. Nothing to change." in result.stderr
    # The template's name and establishment columns are only named in a warning, never applied.
    assert (
        "Warning: Columns not used by this command (ignored): last_name, first_name, establishment, "
        "establishment_name." in result.stderr
    )
    assert store_state(cli.store) == before


def test_a_missing_only_template_lists_the_accounts_without_a_phone(cli, admin_a, tmp_path):
    create_account(cli, "Jeanne", "Dupont", phone="06 12 34 56 78", activate_it=False)
    missing = create_account(cli, "Léa", "Noël", activate_it=False)
    template = tmp_path / "template.csv"

    cli.ok("phones", "template", "--missing-only", "--output", str(template))

    assert stat.S_IMODE(os.stat(template).st_mode) == 0o600
    rows = list(csv.reader(io.StringIO(template.read_text(encoding="utf-8-sig")), delimiter=";"))
    assert rows == [
        ["identifier", "last_name", "first_name", "email", "phone", "establishment", "establishment_name"],
        [missing, "Noël", "Léa", "léa.noël@example.fr", "", SIRET_A, "Mairie 21999"],
    ]


# -- set-based, atomic ----------------------------------------------------------------------------------


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
    people = add_accounts(cli.store, 2010)
    small = write_csv(
        tmp_path, [["identifier", "phone"], *[[p, f"07 81 {i:06d}"] for i, p in enumerate(people[:10])]], "small.csv"
    )
    large = write_csv(
        tmp_path, [["identifier", "phone"], *[[p, f"07 82 {i:06d}"] for i, p in enumerate(people[10:])]], "large.csv"
    )

    statements = (statements_of(cli, small), statements_of(cli, large))

    assert statements[0] == statements[1], statements
    assert 10 < statements[0] < 100, statements  # the listener saw the import (and no per-row statement)
    assert [b["rows_changed"] for b in cli.json("batches", "list")] == [10, 2000]


def test_a_failure_in_the_middle_of_the_transaction_leaves_the_store_unchanged(cli, admin_a, tmp_path, monkeypatch):
    from sqlalchemy import text

    from pepsctl.store import queries

    users = [create_account(cli, f, "Dupont", activate_it=False) for f in ("Jeanne", "Paul")]
    path = write_csv(tmp_path, [["identifier", "phone"], [users[0], "07 81 22 33 44"], [users[1], "07 81 22 33 55"]])
    before = store_state(cli.store)
    insert = queries.insert_rows
    seen_inside: list[object] = []

    def failing_insert(session, model, columns, rows):
        if model.__tablename__ == "batch_change":
            # The phones UPDATE already ran in this transaction: the new number is visible here.
            seen_inside.append(
                session.execute(text("SELECT phone FROM account WHERE identifier = :i"), {"i": users[0]}).scalar()
            )
            raise RuntimeError("disk full (injected)")
        return insert(session, model, columns, rows)

    monkeypatch.setattr(queries, "insert_rows", failing_insert)

    result = import_(cli, path)

    assert result.exit_code == 70
    assert "disk full (injected)" in result.stderr
    assert seen_inside == ["+33781223344"]
    assert store_state(cli.store) == before


# -- check -------------------------------------------------------------------------------------------


@pytest.fixture
def problems(cli, admin_a, tmp_path) -> dict[str, str]:
    """One account with no phone, two sharing one, one with a number no longer valid, one fine."""
    names = {
        "missing": ("Léa", "Noël"),
        "one": ("Jeanne", "Dupont"),
        "two": ("Paul", "Martin"),
        "bad": ("Luc", "Petit"),
    }
    people = {key: create_account(cli, first, last, activate_it=False) for key, (first, last) in names.items()}
    path = write_csv(
        tmp_path,
        [["identifier", "phone"], [people["one"], "07 81 22 33 44"], [people["two"], "07 81 22 33 44"]],
        "shared.csv",
    )
    assert import_(cli, path, "--allow-shared").exit_code == 0
    # A premium number stored before the rules were tightened (not through pepsctl).
    execute(
        cli.store,
        "UPDATE account SET phone = '+33899123456', phone_type = 'mobile' WHERE identifier = :i",
        i=people["bad"],
    )
    return people


def test_check_lists_missing_shared_and_invalid_numbers_and_exits_1(cli, problems):
    result = cli("phones", "check", "--format", "json")

    assert result.exit_code == 1
    findings = json.loads(result.stdout)
    assert [list(f) for f in findings] == [FINDING_KEYS] * len(findings)
    assert {f["establishment"] for f in findings} == {SIRET_A}
    assert sorted((f["identifier"], f["issue"], f["phone"], f["detail"]) for f in findings) == sorted(
        [
            (problems["missing"], "missing", None, None),
            (problems["one"], "shared", "+33 7 •• •• •• 44", f"also used by {problems['two']}"),
            (problems["two"], "shared", "+33 7 •• •• •• 44", f"also used by {problems['one']}"),
            (
                problems["bad"],
                "invalid",
                "+33 899 •• •• 56",
                "This is a premium-rate number: it can receive neither SMS nor a call.",
            ),
        ]
    )
    missing = next(f for f in findings if f["issue"] == "missing")
    assert (missing["last_name"], missing["first_name"], missing["email"]) == ("Noël", "Léa", "léa.noël@example.fr")
    assert result.stderr == (
        "Error: 4 phone problem(s) found.\n"
        "Hint: Fill in 'pepsctl phones template --missing-only' and import it with 'pepsctl phones import'.\n"
    )


def test_check_passes_once_every_number_is_fixed(cli, problems, tmp_path):
    path = write_csv(
        tmp_path,
        [
            ["identifier", "phone"],
            [problems["missing"], "07 81 00 00 01"],
            [problems["two"], "07 81 00 00 02"],
            [problems["bad"], "0692 12 34 56"],
        ],
    )
    assert import_(cli, path).exit_code == 0

    result = cli("phones", "check", "--format", "json")

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == []
    assert "Every account has a valid personal phone." in result.stderr


# -- who may import ------------------------------------------------------------------------------------


def test_a_user_profile_cannot_import_phones(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "Dupont", phone="06 12 34 56 78")
    login(cli, user)
    path = write_csv(tmp_path, [["identifier", "phone"], [ADMIN_A, "07 81 22 33 44"]])

    result = import_(cli, path)

    assert result.exit_code == 7
    assert phones(cli.store)[ADMIN_A] == ("+33610203040", "mobile")


def test_an_import_needs_a_session(cli, admin_a, tmp_path):
    cli.ok("logout")
    path = write_csv(tmp_path, [["identifier", "phone"], [ADMIN_A, "07 81 22 33 44"]])

    result = import_(cli, path)

    assert result.exit_code == 6
    assert phones(cli.store)[ADMIN_A] == ("+33610203040", "mobile")


def test_a_session_that_is_not_stepped_up_needs_a_code_to_apply(cli, admin_a, tmp_path):
    user = create_account(cli, "Jeanne", "Dupont", activate_it=False)
    login(cli, ADMIN_A)  # a trusted workstation: no code at login, so no step-up
    path = write_csv(tmp_path, [["identifier", "phone"], [user, "07 81 22 33 44"]])

    first = import_(cli, path)

    assert first.exit_code == 6
    assert phones(cli.store)[user] == (None, None)
    assert with_code(cli, "phones", "import", str(path), "--yes", "--quiet").exit_code == 0
    assert phones(cli.store)[user] == ("+33781223344", "mobile")
