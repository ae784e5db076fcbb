"""The generic-account verdict kept on each account (``account.generic_hint``, migration 0007).

The readiness audit reads the verdict instead of running the heuristic over every account, so the
verdict must never be stale: a trigger resets it to NULL whenever a name or the e-mail changes
(whatever writes the row), every command computes the unknown ones before it commits, ``store
upgrade`` computes them for accounts from an older schema, and a verdict is only written for the
names it was computed from. A NULL verdict is never wrong, only slower: the audit falls back to the
SQL pre-filter and the heuristic (tests/commands/test_audit.py proves both paths give one result).
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import event, text

from pepsctl.domain import generic
from pepsctl.store.engine import create_store_engine, parse_store_url
from tests.conftest import SIRET_A, create_account, with_code


def _engine(url: str):
    return create_store_engine(parse_store_url(url))


def hints(url: str) -> dict[str, bool | None]:
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT identifier, generic_hint FROM account")).all()
    finally:
        engine.dispose()
    return {identifier: None if hint is None else bool(hint) for identifier, hint in rows}


def execute(url: str, sql: str, **params) -> None:
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql), params)
    finally:
        engine.dispose()


def expected(url: str) -> dict[str, bool]:
    """The verdict the heuristic gives each account's current names and e-mail."""
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT identifier, first_name, last_name, email FROM account")).all()
    finally:
        engine.dispose()
    return {identifier: generic.generic_hint(first, last, email) for identifier, first, last, email in rows}


def test_the_kept_verdicts_are_those_of_this_heuristic():
    """Changing a role word or a rule changes the fingerprint: the store's verdicts must then be reset."""
    assert generic.fingerprint() == generic.HEURISTIC, (
        "The generic-account heuristic changed: add a migration that runs "
        "'UPDATE account SET generic_hint = NULL' (store upgrade recomputes them), then set "
        f"pepsctl.domain.generic.HEURISTIC = {generic.fingerprint()!r}."
    )


def test_generic_hint_is_the_heuristic_without_the_shared_mailbox():
    assert generic.generic_hint("Accueil", "Mairie", "accueil@mairie.example.fr") is True
    assert generic.generic_hint("Jean", "Paye", "jean.paye@mairie.example.fr") is False  # a real surname
    # One weak signal: not generic alone; a shared mailbox (a strong signal) is the audit's to add.
    assert generic.generic_hint("Jean", "Dupont", "rh.jean@mairie.example.fr") is False
    assert generic.generic_signals("Jean", "Dupont", "rh.jean@mairie.example.fr", mailbox_shared=True)


def test_every_command_leaves_the_verdicts_known_and_right(cli, admin_a):
    create_account(cli, "Accueil", "Mairie", activate_it=False)
    create_account(cli, "Jean", "Paye", activate_it=False)
    kept = hints(cli.store)
    assert None not in kept.values()
    assert kept == expected(cli.store)
    assert sum(kept.values()) == 1


def test_renaming_an_account_recomputes_its_verdict(cli, admin_a):
    identifier = create_account(cli, "Sophie", "Martin", activate_it=False)
    assert hints(cli.store)[identifier] is False

    with_code(cli, "accounts", "update", identifier, "--first-name", "Secrétariat")
    assert hints(cli.store)[identifier] is True
    result = cli("audit", "generic", "--format", "json")
    assert result.exit_code == 1
    assert [f["identifier"] for f in json.loads(result.stdout)] == [identifier]

    with_code(cli, "accounts", "update", identifier, "--first-name", "Sophie")
    assert hints(cli.store)[identifier] is False


def test_a_change_of_names_or_email_resets_the_verdict_whatever_writes_it(cli, admin_a):
    """The trigger: a program writing behind pepsctl's back cannot leave a stale verdict."""
    identifier = create_account(cli, "Sophie", "Martin", activate_it=False)
    execute(cli.store, "UPDATE account SET generic_hint = :h WHERE identifier = :i", h=True, i=identifier)

    # Other columns, and names written again unchanged, keep it.
    execute(cli.store, "UPDATE account SET phone = '+33612345678', function = 'x' WHERE identifier = :i", i=identifier)
    execute(cli.store, "UPDATE account SET last_name = last_name, email = email WHERE identifier = :i", i=identifier)
    assert hints(cli.store)[identifier] is True

    for column, value in (("last_name", "Accueil"), ("first_name", "Paul"), ("email", "rh@example.fr")):
        execute(cli.store, "UPDATE account SET generic_hint = :h WHERE identifier = :i", h=False, i=identifier)
        execute(cli.store, f"UPDATE account SET {column} = :v WHERE identifier = :i", v=value, i=identifier)
        assert hints(cli.store)[identifier] is None, column
        # Even when the same statement writes a verdict: it was not computed by pepsctl for these names.
        execute(cli.store, "UPDATE account SET generic_hint = :h WHERE identifier = :i", h=False, i=identifier)
        execute(
            cli.store,
            f"UPDATE account SET {column} = :v, generic_hint = :h WHERE identifier = :i",
            v=value + "x",
            h=False,
            i=identifier,
        )
        assert hints(cli.store)[identifier] is None, column

    # The next command computes it again.
    cli.ok("whoami")
    assert hints(cli.store) == expected(cli.store)
    assert hints(cli.store)[identifier] is True  # last name 'Accueilx'… no: 'Accueil' then 'Accueilx'


def test_a_verdict_is_written_only_for_the_names_it_was_computed_from(cli, admin_a, monkeypatch):
    """A change made between reading the names and writing the verdict leaves it unknown, not stale."""
    from sqlmodel import Session

    identifier = create_account(cli, "Sophie", "Martin", activate_it=False)
    execute(cli.store, "UPDATE account SET generic_hint = NULL WHERE identifier = :i", i=identifier)
    engine = _engine(cli.store)
    real = generic._verdicts

    def renamed_meanwhile(rows):
        session.execute(text("UPDATE account SET first_name = 'Accueil' WHERE identifier = :i"), {"i": identifier})
        yield from real(rows)

    monkeypatch.setattr(generic, "_verdicts", renamed_meanwhile)
    try:
        with Session(engine) as session, session.begin():
            generic.refresh_hints(session)
    finally:
        engine.dispose()
    assert hints(cli.store)[identifier] is None  # not False: that verdict was for "Sophie"

    monkeypatch.setattr(generic, "_verdicts", real)
    cli.ok("whoami")
    assert hints(cli.store)[identifier] is True


@pytest.mark.parametrize("chunk", [7, generic.REFRESH_CHUNK])
def test_refresh_is_set_based(cli, admin_a, chunk):
    """The statements to compute 10 or 2,000 verdicts are the same (chunks of ``chunk`` rows aside)."""
    from sqlmodel import Session

    from benchmarks.generate import add_accounts

    def statements_to_refresh(count: int) -> tuple[int, int]:
        engine = _engine(cli.store)
        add_accounts(engine, SIRET_A, count)
        execute(cli.store, "UPDATE account SET generic_hint = NULL")  # as written by an older pepsctl
        seen: list[str] = []

        def count_statement(conn, cursor, statement, *args):
            if "generic_hint" in statement:  # not the dialect's own BEGIN
                seen.append(statement)

        event.listen(engine, "before_cursor_execute", count_statement)
        try:
            with Session(engine) as session, session.begin():
                done = generic.refresh_hints(session, chunk=chunk)
        finally:
            engine.dispose()
        return done, len(seen)

    small = statements_to_refresh(10)
    large = statements_to_refresh(2000)
    assert small[0] >= 10 and large[0] >= 2000
    if chunk == generic.REFRESH_CHUNK:
        assert small[1] == large[1] == 2  # one read, one executemany
    else:
        chunks = -(-large[0] // chunk)  # a read and a write each; one more, empty, read if the last is full
        assert large[1] == 2 * chunks + int(large[0] % chunk == 0)
    assert None not in hints(cli.store).values()
    assert hints(cli.store) == expected(cli.store)


def test_bulk_imports_and_undo_leave_the_verdicts_right(cli, admin_a, tmp_path):
    """accounts import creates accounts with their verdicts and renames others; undo renames them back."""
    renamed = create_account(cli, "Sophie", "Martin", activate_it=False)
    path = tmp_path / "accounts.csv"
    path.write_text(
        "identifier;civility;last_name;first_name;email\n"
        f"{renamed};MME;Martin;Accueil;sophie.martin@example.fr\n"
        ";M;Secretariat;Mairie;secretariat@example.fr\n"
        ";M;Petit;Louis;louis.petit@example.fr\n",
        encoding="utf-8",
    )
    result = cli("accounts", "import", str(path), "--yes", "--quiet")
    assert result.exit_code == 0, result.stderr
    kept = hints(cli.store)
    assert None not in kept.values() and kept == expected(cli.store)
    assert kept[renamed] is True and sum(kept.values()) == 2

    result = cli("batches", "undo", "1", "--yes")
    assert result.exit_code == 0, result.stderr
    kept = hints(cli.store)
    assert None not in kept.values() and kept == expected(cli.store)
    assert kept[renamed] is False and sum(kept.values()) == 0
