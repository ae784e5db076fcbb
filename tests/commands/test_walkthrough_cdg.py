"""A centre de gestion puts phones on the accounts of the establishments it acts for, as a new user would.

The bulk issue's "done when", on the demo store (``init --demo``), through the CLI, on SQLite and
PostgreSQL: the centre de gestion's administrator exports a phones template for every establishment
that delegated account management to it, fills it in French Excel (semicolons, Windows-1252, the
apostrophe Excel keeps, numbers written every usual way, one of them wrong), previews the changes,
applies them, reads the rejected row in the report, fixes it and imports the report again, and
undoes one batch. Each step checks what the command printed and what the store holds.
"""

from __future__ import annotations

import csv
import io
import json

from tests.commands.test_audit import DEMO_CDG, DEMO_MAIRIE, DEMO_SIVOM, demo, demo_login, readiness

TEMPLATE_HEADER = ["identifier", "last_name", "first_name", "email", "phone", "establishment", "establishment_name"]
# What an agent's number looks like in a real spreadsheet: every usual French writing, a different
# number on each row (the last two digits).
WRITINGS = [
    "06 12 34 56 {}",
    "+33 6 12 34 57 {}",
    "06.12.34.58.{}",
    "00336123459{}",
    "(0)6-12-34-60-{}",
    "0692 12 34 {}",
]


def writing(n: int) -> str:
    return WRITINGS[n % len(WRITINGS)].format(f"{10 + n:02d}")


def read_template(path) -> list[dict[str, str]]:
    text = path.read_bytes().decode("utf-8-sig")  # what Excel sees: UTF-8 with its BOM
    return list(csv.DictReader(io.StringIO(text), delimiter=";"))


def save_as_french_excel(path, rows: list[dict[str, str]], header: list[str]) -> None:
    """Excel's "CSV (séparateur : point-virgule)": Windows-1252, ';', CRLF, no BOM."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, delimiter=";", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes(out.getvalue().encode("cp1252"))


def stored_phones(cli) -> dict[str, str | None]:
    from tests.commands.test_audit import query

    return dict(query(cli.store, "SELECT identifier, phone FROM account"))


def test_a_centre_de_gestion_fills_in_the_phones_of_its_establishments(cli, tmp_path):
    demo_login(cli, demo(cli))
    findings = readiness(cli)[1]
    missing_before = {f["identifier"] for f in findings if f["check"] == "missing-phone"}
    shared_before = {f["identifier"] for f in findings if f["check"] in ("shared-phone", "invalid-phone")}
    assert missing_before and shared_before

    # 1. The template: every account of every establishment it acts for, which establishment each is in.
    missing = tmp_path / "manquants.csv"
    cli.ok("phones", "template", "--missing-only", "--output", str(missing))
    assert {r["identifier"] for r in read_template(missing)} == missing_before
    template = tmp_path / "telephones.csv"
    result = cli("phones", "template", "--output", str(template))
    assert result.exit_code == 0, result.stderr
    assert template.read_bytes().startswith(b"\xef\xbb\xbf")  # opens in French Excel with its accents
    rows = read_template(template)
    assert list(rows[0]) == TEMPLATE_HEADER
    assert {r["establishment"] for r in rows} == {DEMO_MAIRIE, DEMO_CDG, DEMO_SIVOM}
    assert {r["establishment_name"] for r in rows if r["establishment"] == DEMO_SIVOM} == {"SIVOM de la vallée de Démo"}
    assert all(r["phone"].startswith("'+") for r in rows if r["phone"])  # spreadsheet-safe: kept as text

    # 2. Filled in Excel: a personal number, written some usual way, for each account without one or
    # sharing one, and for the SIVOM's; one of them mistyped. The other rows stay as exported.
    sivom = [r["identifier"] for r in rows if r["establishment"] == DEMO_SIVOM]
    targets = [r for r in rows if r["identifier"] in missing_before | shared_before | set(sivom)]
    for n, row in enumerate(targets):
        row["phone"] = writing(n)
    wrong = targets[1]
    wrong["phone"] = "06 12 34"  # too short
    filled = tmp_path / "telephones-rempli.csv"
    save_as_french_excel(filled, rows, TEMPLATE_HEADER)

    # 3. The preview: what would change, row by row (the wrong row shown rejected); nothing written.
    before = stored_phones(cli)
    result = cli("phones", "import", str(filled), "--dry-run", "--format", "json")
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert {p["action"] for p in plan} == {"update", "unchanged", "reject"}
    (rejected,) = [p for p in plan if p["action"] == "reject"]
    assert rejected["identifier"] == wrong["identifier"] and rejected["reason"]
    assert stored_phones(cli) == before

    # 4. Applied, the wrong row set aside in a report (in the file's own columns, with the reason).
    report = tmp_path / "rejets.csv"
    result = cli("phones", "import", str(filled), "--yes", "--skip-invalid", "--report", str(report))
    assert result.exit_code == 0, result.stderr
    after = stored_phones(cli)
    changed = {i for i in after if after[i] != before[i]}
    assert changed == {r["identifier"] for r in targets} - {wrong["identifier"]}
    assert all(after[i].startswith("+") for i in changed)
    reported = list(csv.DictReader(io.StringIO(report.read_bytes().decode("utf-8-sig")), delimiter=";"))
    assert [r["identifier"] for r in reported] == [wrong["identifier"]]
    assert list(reported[0]) == [*TEMPLATE_HEADER, "line", "reason"]
    assert reported[0]["reason"] == rejected["reason"]

    # 5. The report fixed in Excel and imported again as it is (its line and reason columns are ignored).
    reported[0]["phone"] = "07 81 22 33 44"
    save_as_french_excel(report, reported, [*TEMPLATE_HEADER, "line", "reason"])
    result = cli("phones", "import", str(report), "--yes")
    assert result.exit_code == 0, result.stderr
    assert stored_phones(cli)[wrong["identifier"]] == "+33781223344"
    left = {(f["identifier"], f["check"]) for f in readiness(cli)[1]}
    assert not {i for i, check in left if check in ("missing-phone", "shared-phone")} & {
        r["identifier"] for r in targets
    }

    # 6. Both batches are listed; the second is undone: the account has no phone again.
    batches = sorted(cli.json("batches", "list"), key=lambda b: b["id"])
    assert [(b["kind"], b["rows_changed"], b["establishment"]) for b in batches] == [
        ("phones", len(changed), DEMO_CDG),
        ("phones", 1, DEMO_CDG),
    ]
    second = batches[1]["id"]
    result = cli("batches", "undo", str(second), "--yes")
    assert result.exit_code == 0, result.stderr
    assert stored_phones(cli)[wrong["identifier"]] == before[wrong["identifier"]]
    assert {i: p for i, p in stored_phones(cli).items() if i in changed} == {i: after[i] for i in changed}

    # The Mairie's history shows each change to its accounts, made through the delegation.
    events = cli.json("history", "--establishment", DEMO_MAIRIE, "--action", "phone.update")
    mairie = {r["identifier"] for r in targets if r["establishment"] == DEMO_MAIRIE} - {wrong["identifier"]}
    assert {e["target"] for e in events} >= mairie
    assert {(e["establishment"], e["delegation_id"] is not None) for e in events} == {(DEMO_MAIRIE, True)}


def _template(cli, tmp_path):
    path = tmp_path / "tous.csv"
    cli.ok("phones", "template", "--output", str(path))
    return path


def test_the_scope_is_the_establishments_that_delegated_account_management(cli, tmp_path):
    """Not the CCAS (request pending) nor the Syndicat (refused): their accounts are out of reach, in
    every phones command, exactly like accounts that do not exist."""
    from pepsctl.domain.demo import CCAS_SIRET, SYNDICAT_SIRET
    from tests.commands.test_audit import query

    demo_login(cli, demo(cli))
    everyone = read_template(_template(cli, tmp_path))
    assert {r["establishment"] for r in everyone} == {DEMO_MAIRIE, DEMO_CDG, DEMO_SIVOM}

    # --establishment narrows every command to one establishment in scope; another is refused (exit 7).
    narrowed = tmp_path / "sivom.csv"
    cli.ok("phones", "template", "--establishment", DEMO_SIVOM, "--output", str(narrowed))
    assert {r["establishment"] for r in read_template(narrowed)} == {DEMO_SIVOM}
    checked = cli("phones", "check", "--establishment", DEMO_MAIRIE, "--format", "json")
    assert {f["establishment"] for f in json.loads(checked.stdout)} == {DEMO_MAIRIE}
    for siret in (CCAS_SIRET, SYNDICAT_SIRET):
        for command in (("template",), ("check",)):
            result = cli("phones", *command, "--establishment", siret)
            assert result.exit_code == 7, (command, siret, result.stderr)

    # An import naming the Syndicat's administrator rejects that row like an unknown identifier.
    (syndicat_admin,) = query(
        cli.store,
        "SELECT a.identifier FROM account a JOIN establishment e ON e.id = a.establishment_id WHERE e.siret = :s",
        s=SYNDICAT_SIRET,
    )[0:1]
    mairie_row = next(r for r in everyone if r["establishment"] == DEMO_MAIRIE)
    path = tmp_path / "mixed.csv"
    path.write_text(
        f"identifier;phone\n{syndicat_admin[0]};07 81 99 99 01\nZZZ999999;07 81 99 99 02\n"
        f"{mairie_row['identifier']};07 81 99 99 03\n",
        encoding="utf-8",
    )
    result = cli("phones", "import", str(path), "--dry-run", "--format", "json")
    plan = {p["line"]: (p["action"], p["reason"]) for p in json.loads(result.stdout)}
    assert plan[2] == ("reject", f"no account {syndicat_admin[0]} in the establishments you may act on")
    assert plan[3] == ("reject", "no account ZZZ999999 in the establishments you may act on")
    assert plan[4] == ("update", None)
    # With --establishment, the Mairie's own row is out of reach too.
    result = cli("phones", "import", str(path), "--dry-run", "--format", "json", "--establishment", DEMO_SIVOM)
    assert [p["action"] for p in json.loads(result.stdout)] == ["reject", "reject", "reject"]


def test_a_stored_number_no_longer_valid_imports_unchanged_from_the_template(cli, tmp_path):
    """A template imported as it is changes nothing and rejects nothing, even the demo's premium-rate
    number (the audit reports it; the administrator replaces it when they have the right one)."""
    demo_login(cli, demo(cli))
    invalid = [f["identifier"] for f in readiness(cli)[1] if f["check"] == "invalid-phone"]
    assert invalid
    result = cli("phones", "import", str(_template(cli, tmp_path)), "--yes")
    assert result.exit_code == 0, result.stderr
    assert "0 to change" in result.stderr and "0 rejected" in result.stderr
