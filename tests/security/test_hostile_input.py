"""Hostile input never crashes pepsctl, never reaches the terminal raw, and a refused file writes nothing.

security.md ("Data and files": no traceback for foreseeable failures, user data shown literally;
"One-time codes": only ASCII ``[0-9]{6}``; "Bulk and concurrency": neutralised CSV cells round-trip)
and cli.md (exit codes, CSV files). Exit 70 is pepsctl's "unexpected failure": for any input a person
or a spreadsheet can produce it is a bug.

- CSV files built by hypothesis (encodings, delimiters, quotes, huge cells, many columns, NUL bytes,
  binary) go through the three readers (no store: many examples) and through ``phones import``,
  ``accounts import`` and ``rights import`` on SQLite (fewer examples); a set of fixed hostile files
  goes through the three commands on both stores.
- Option values built by hypothesis (Unicode digits, controls, bidi overrides, lone surrogates as
  ``surrogateescape`` makes of non-UTF-8 argv bytes, 10,000 characters, SQL/shell/format metacharacters,
  NUL) go to the commands that take free text, on SQLite; fixed ones on both stores.
- Markup and escape sequences in accepted names and functions are shown literally; exports neutralise
  formula cells and import back with zero changes.
"""

from __future__ import annotations

import csv
import io
import json
import re
import stat
import unicodedata
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stdnum import luhn

from pepsctl import clock
from pepsctl.domain import accounts_bulk, csvio, phones, rights_bulk
from pepsctl.domain import validation as v
from pepsctl.errors import InvalidInput
from tests.conftest import PASSWORD, SIRET_A, SIRET_B, create_account, last_sms_code

CSV_EXITS = frozenset({0, 1, 2, 3, 5, 6, 7})  # an import: never 4 (an unknown row is a rejected row, exit 3)
REFUSED = frozenset({2, 3, 4, 5, 6, 7})
# Hypothesis examples run on SQLite only (how a value is read does not depend on the store); the fixed
# hostile values and files that reach the database driver run on both stores.
sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
USER_EMAIL = "jeanne.dupont@example.fr"
# The tables an import may change: compared before and after an import that exits 3.
DATA_TABLES = ("account", "account_right", "batch", "batch_change", "establishment", "establishment_fund")


def handled(result, allowed: frozenset[int] = REFUSED) -> int:
    """The exit code of a command that must fail (or succeed) cleanly: documented, no traceback."""
    everything = result.stdout + result.stderr
    assert "Traceback" not in everything, everything[-2000:]
    assert result.exit_code != 70, result.stderr
    assert result.exit_code in allowed, (result.exit_code, result.stderr[-1000:])
    return result.exit_code


def cheap(max_examples: int):
    return settings(
        derandomize=True,
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.function_scoped_fixture,
        ],
    )


class StoreState:
    """The rows of the data tables, to prove that a refused import wrote nothing."""

    def __init__(self, url: str) -> None:
        from pepsctl.store.engine import create_store_engine, parse_store_url

        self.engine = create_store_engine(parse_store_url(url))

    def snapshot(self) -> dict[str, list[str]]:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return {
                table: sorted(repr(tuple(row)) for row in conn.execute(text(f'SELECT * FROM "{table}"')))
                for table in DATA_TABLES
            }

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def state(cli) -> Iterator[StoreState]:
    store = StoreState(cli.store)
    yield store
    store.close()


@pytest.fixture
def user(cli, admin_a) -> str:
    """An activated agent of establishment A, with a phone."""
    return create_account(cli, "Jeanne", "Dupont", phone="06 12 34 56 78")


# -- CSV files built by hypothesis ---------------------------------------------------------------------

# The columns of each command (French and English headers), the values that fit them, and the rest.
COLUMNS = {
    "phones": (["identifier", "phone"], ["courriel", "nom", "NIR", "note"]),
    "accounts": (["Identifiant", "civility", "nom", "Prénom", "courriel"], ["Téléphone", "fonction", "profile", "NIR"]),
    "rights": (["identifier", "service", "niveau"], ["establishment", "email", "note"]),
}
FITTING = {
    "identifier": ["@USER@", "@USER@", "XYZ000999", " @USER@ ", ""],
    "identifiant": ["@USER@", "@USER@", "XYZ000999", ""],
    "phone": ["06 12 34 56 78", "07 81 23 45 67", "+262 692 12 34 56", "'+33698765432", "0612"],
    "telephone": ["06 12 34 56 78", "07 81 23 45 67", ""],
    "civility": ["M", "MME", "Madame", "x"],
    "nom": ["Dupont", "Éloïse-Marie", "-Durand", "O'Neil"],
    "prenom": ["Jeanne", "Zoé", "Luc"],
    "courriel": [USER_EMAIL, "=x@example.fr", "nouvel.agent@example.fr"],
    "email": [USER_EMAIL],
    "fonction": ["RH", "=1+1", "'@SUM(A1)", "Directrice; adjointe"],
    "profile": ["user", "admin", "root"],
    "service": ["cir", "CIR", "estimation", "nope"],
    "niveau": ["read", "write", "lecture seule", "none", "admin"],
    "establishment": [SIRET_A, SIRET_B, ""],
}
OTHER_HEADERS = ["", '"', "a;b", "\ufeffidentifier", "NIR", "phone", "service"]
HOSTILE_CELLS = [
    '=HYPERLINK("http://evil","x")',
    "'=1+1",
    "-2+3",
    "@SUM(A1)",
    "\t0612345678",
    "\r0612345678",
    "' OR 1=1 --",
    "$(rm -rf /)",
    "%s%n{0}",
    "\x1b[31mred\x1b]8;;http://evil\x1b\\",
    "\u202eevil",
    "[bold red]x[/]",
    "a\x00b",
    "\x00",
    "０６１２３４５６７８",
    "٠٦١٢٣٤٥٦٧٨",
    "x" * 10_000,
    "9" * 10_001,
    '"',
    'a"b',
    "a\nb",
    "a\r\nb",
    "1 84 12 76 451 089 46",
    "\x85\x9b",
]
ENCODINGS = ["utf-8", "utf-8", "utf-8-sig", "cp1252", "latin-1", "utf-16", "utf-16-le"]


def _cell(header: str):
    fitting = FITTING.get(csvio.normalise_header(header), [])
    choices = [st.sampled_from(HOSTILE_CELLS), st.text(max_size=12)]
    if fitting:
        choices = [st.sampled_from(fitting)] * 3 + choices
    return st.one_of(*choices)


@st.composite
def csv_documents(draw, command: str) -> tuple[str, str, bool] | bytes:
    """A file for ``command``: (text, encoding, NUL past the first 64 KiB) to encode, or raw bytes."""
    kind = draw(st.sampled_from(["table"] * 6 + ["header-only", "binary", "empty"]))
    if kind == "binary":
        return draw(st.binary(max_size=600))
    if kind == "empty":
        return draw(st.sampled_from([b"", b"\n\n", b"\xef\xbb\xbf", b"\r\n", b"\x00", b"\xff\xfe"]))
    required, optional = COLUMNS[command]
    headers = draw(st.permutations(required))
    headers = headers[: len(headers) - draw(st.sampled_from([0, 0, 0, 1]))]  # sometimes a column is missing
    headers += draw(st.lists(st.sampled_from(optional + OTHER_HEADERS), max_size=2))
    many = draw(st.sampled_from([0, 0, 0, 0, 40, 2_000]))  # very many columns
    headers += [f"col{i}" for i in range(many)]
    rows: list[list[str]] = []
    if kind == "table":
        shape = st.tuples(*(_cell(h) for h in headers[:8])).map(list)
        rows = draw(st.lists(shape, min_size=1, max_size=4))
        rows = [row + [""] * (len(headers) - len(row)) for row in rows]
        if draw(st.integers(0, 4)) == 0:
            rows = [row[: draw(st.integers(0, len(row) + 1))] for row in rows]  # ragged rows
    delimiter = draw(st.sampled_from([";", ";", ",", "\t", "|"]))
    if draw(st.integers(0, 3)) > 0:
        buffer = io.StringIO()
        terminator = draw(st.sampled_from(["\n", "\r\n", "\r"]))
        csv.writer(buffer, delimiter=delimiter, lineterminator=terminator).writerows([headers, *rows])
        text = buffer.getvalue()
    else:  # written by hand: unbalanced and stray quotes stay as they are
        text = "\n".join(delimiter.join(row) for row in [headers, *rows]) + draw(st.sampled_from(["", "\n", '"']))
    return text, draw(st.sampled_from(ENCODINGS)), draw(st.integers(0, 9)) == 0


def to_bytes(document: tuple[str, str, bool] | bytes, user: str = "JDU000002") -> bytes:
    if isinstance(document, bytes):
        return document
    text, encoding, late_nul = document
    data = text.replace("@USER@", user).encode(encoding, errors="replace")
    if late_nul:  # past the 64 KiB the reader looks at for NUL bytes
        data += b"\n" * 70_000 + f"{user};\x00;\x00\n".encode()
    return data


READERS: dict[str, Callable[[str], object]] = {
    "phones": phones.read_file,
    "accounts": accounts_bulk.read_file,
    "rights": rights_bulk.read_file,
}
IMPORTS = {"phones": ("phones", "import"), "accounts": ("accounts", "import"), "rights": ("rights", "import")}


def _read(read: Callable[[str], object], path: Path):
    try:
        return read(str(path))
    except InvalidInput as error:
        return error


@cheap(200)
@given(document=st.sampled_from(sorted(COLUMNS)).flatmap(csv_documents))
def test_every_reader_reads_or_refuses_generated_files_with_exit_3(tmp_path_factory, document):
    path = tmp_path_factory.mktemp("csv") / "file.csv"
    path.write_bytes(to_bytes(document))
    for name, read in READERS.items():
        source = _read(read, path)
        if isinstance(source, InvalidInput):
            assert source.exit_code == 3, name
            assert source.message.startswith(("Line ", "Cannot read")), (name, source.message)
            assert "\x00" not in source.message
            continue
        assert all(row.line >= 2 for row in source.rows), name  # type: ignore[attr-defined]
        assert all(len(cell) <= 10_000 for row in source.rows for cell in row.cells), name  # type: ignore[attr-defined]


@sqlite_only
def test_generated_files_through_the_import_commands(cli, user, state, tmp_path):
    """--dry-run, then applying (the session is stepped up): documented exit codes; exit 3 writes nothing."""
    counter = iter(range(10_000))

    @cheap(20)
    @given(data=st.data())
    def check(data):
        command = data.draw(st.sampled_from(sorted(IMPORTS)), label="command")
        document = data.draw(csv_documents(command), label="file")
        path = tmp_path / f"generated-{next(counter)}.csv"
        path.write_bytes(to_bytes(document, user))
        for mode in ("--dry-run", "--yes"):
            before = state.snapshot()
            code = handled(cli(*IMPORTS[command], str(path), mode), CSV_EXITS)
            if code == 3 or mode == "--dry-run":
                assert state.snapshot() == before, (command, mode, code)

    check()


# -- fixed hostile files, both stores --------------------------------------------------------------------


def hostile_files(command: str, user: str) -> dict[str, bytes]:
    text = {
        "phones": f"identifier;phone\n{user};06 99 88 77 66\n",
        "accounts": f"identifier;nom;prénom;courriel;téléphone;fonction\n{user};Dupont;Jeanne;{USER_EMAIL};;RH\n",
        "rights": f"identifier;service;level\n{user};cir;read\n",
    }[command]
    header, row = text.splitlines()
    rest = header.count(";")  # the cells after the identifier

    def hostile_row(cell: str) -> str:
        return f"{header}\n{user};" + ";".join([cell] * rest) + "\n"

    return {
        "empty": b"",
        "utf-16 with BOM": text.encode("utf-16"),
        "cp1252": text.replace("Jeanne", "Hélène").encode("cp1252"),
        "BOM then invalid UTF-8": b"\xef\xbb\xbf" + header.encode() + b"\n\xff\xfe\n",
        "NUL past 64 KiB": (text + "\n" * 70_000 + f"{user};a\x00b;\x00\n").encode(),
        "cell of 10,001": (header + "\n" + row + "9" * 10_001 + "\n").encode(),
        "cells of 10,000 and 5,000 columns": (
            header + ";" + ";".join(f"c{i}" for i in range(5_000)) + "\n" + f"{user};" + ";".join(["x" * 10_000] * rest)
        ).encode(),
        "unbalanced quote": (header + '\n"' + row + "\n").encode(),
        "SQL, shell, escapes": hostile_row("' OR 1=1 --$(rm -rf /)%s{0}\x1b[31m\u202e'=1").encode(),
        "full-width digits": hostile_row("０６１２３４５６７８").encode("utf-8-sig"),
    }


def test_fixed_hostile_files_through_every_import_command(cli, user, state, tmp_path):
    """--dry-run, then applying what could be read: documented exit codes, and exit 3 writes nothing."""
    for command in sorted(IMPORTS):
        for number, (name, data) in enumerate(hostile_files(command, user).items()):
            path = tmp_path / f"{command}-{number}.csv"
            path.write_bytes(data)
            before = state.snapshot()
            dry_run = cli(*IMPORTS[command], str(path), "--dry-run")
            handled(dry_run, CSV_EXITS)
            assert state.snapshot() == before, (command, name)
            results = [dry_run]
            if dry_run.exit_code == 0:  # a file refused when read is refused the same way when applied
                results.append(cli(*IMPORTS[command], str(path), "--yes"))
                if handled(results[-1], CSV_EXITS) == 3:
                    assert state.snapshot() == before, (command, name)
            for result in results:
                assert "\x1b" not in result.stdout + result.stderr, (command, name)
                assert "\x00" not in result.stdout + result.stderr, (command, name)


@sqlite_only
def test_a_report_of_hostile_rows_is_private_and_spreadsheet_safe(cli, user, tmp_path):
    path = tmp_path / "phones.csv"
    path.write_text(
        f'identifier;phone;note\n{user};=HYPERLINK("http://evil");\x1b[31m\n{user};+33 6 1;@SUM(A1)\nXYZ000999;-1;x\n',
        encoding="utf-8",
    )
    report = tmp_path / "report.csv"
    handled(cli("phones", "import", str(path), "--yes", "--report", str(report)), frozenset({3}))
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    rows = list(csv.reader(io.StringIO(report.read_text(encoding="utf-8-sig")), delimiter=";"))
    assert rows[0] == ["identifier", "phone", "note", "line", "reason"]
    assert [row[1] for row in rows[1:]] == ['\'=HYPERLINK("http://evil")', "'+33 6 1", "'-1"]
    assert [row[2] for row in rows[1:]] == ["\x1b[31m", "'@SUM(A1)", "x"]  # data, kept (neutralised) for the fix
    for row in rows[1:]:
        assert not row[-1].startswith(("=", "+", "-", "@", "\t", "\r", "\n"))


@sqlite_only
def test_paths_that_cannot_be_read_or_written_are_refused_cleanly(cli, user, tmp_path):
    """A typo in --output or --report, a directory, a NUL byte: an error naming the path, never exit 70."""
    good = tmp_path / "phones.csv"
    good.write_text(f"identifier;phone\nXYZ000999;0612345678\n{user};06 12 34 56 78\n", encoding="utf-8")
    missing = tmp_path / "no" / "such" / "dir"
    cases = {
        ("phones", "import", str(good), "--yes", "--report", str(missing / "report.csv")): {3},
        ("phones", "import", str(good), "--dry-run", "--report", str(tmp_path)): {3},
        ("phones", "template", "--output", str(missing / "template.csv")): {3},
        ("accounts", "export", "--output", str(tmp_path)): {3},
        ("accounts", "export", "--format", "json", "--output", str(missing / "accounts.json")): {3},
        ("phones", "import", "a\x00b.csv", "--dry-run"): {2, 3},
        ("phones", "import", str(tmp_path / "a\udcffb.csv"), "--dry-run"): {3},
        ("phones", "import", str(tmp_path), "--dry-run"): {3},
        ("accounts", "export", "--output", "a\x00b.csv"): {2, 3},
    }
    for args, allowed in cases.items():
        result = cli(*args)
        handled(result, frozenset(allowed))
        assert result.stderr.startswith("Error: ") or "Usage:" in result.stderr, (args, result.stderr)
    assert not missing.parent.exists()
    for store in ("a\x00b", "sqlite:///a\x00b.db", "postgresql://u:s3cret@h/db\x00"):
        result = cli.runner.invoke(_app(), ["--store", store, "whoami"], catch_exceptions=False)
        handled(result, frozenset({3}))
        assert "s3cret" not in result.stderr


@sqlite_only
@pytest.mark.parametrize(
    "command",
    [("phones", "import"), ("accounts", "import"), ("accounts", "renew", "--file"), ("rights", "import")],
    ids=" ".join,
)
def test_every_import_refuses_an_unwritable_report_before_reading_its_file(cli, user, tmp_path, command):
    """The report is checked first: nothing is read, applied or audited when it cannot be written."""
    good = tmp_path / "rows.csv"
    good.write_text(f"identifier;phone;service;level\n{user};06 12 34 56 78;cir;read\n", encoding="utf-8")
    report = tmp_path / "no" / "such" / "dir" / "report.csv"
    events = len(cli.json("history"))

    result = cli(*command, str(good), "--yes", "--skip-invalid", "--report", str(report))

    assert result.exit_code == 3, result.stderr
    assert result.stderr.startswith(f"Error: Cannot write {report}: No such file or directory"), result.stderr
    assert cli.json("batches", "list") == []
    assert len(cli.json("history")) == events


def _app():
    from pepsctl.cli import app

    return app


# -- option values -----------------------------------------------------------------------------------------

FIXED_VALUES = [
    "０６１２３４５６７８",
    "٠٦١٢٣٤٥٦٧٨",
    "۰۶۱۲۳۴۵۶۷۸",
    "a\x00b",
    "x" * 10_000,
    "' OR 1=1 --",
    "'; DROP TABLE account; --",
    "$(rm -rf /)",
    "`id`",
    "%s%s%n",
    "{0}{1}",
    "%(x)s",
    "\u202eevil\u202c",
    "\u2066x\u2069",
    "\x1b[31mred",
    "\x1b]8;;http://evil\x1b\\x",
    "\r",
    "\x07",
    "a\udcffb",  # a non-UTF-8 argv byte, as surrogateescape decodes it
    "\ud800",
    "[bold red]x[/]",
    "[link=http://evil]x",
    "",
    " ",
    "\t\n",
    "²",
    "9" * 30,
    "-1",
    "NULL",
    "delegation:²",
    "delegation:" + "9" * 30,
]
ANY_CHARACTER = st.characters(
    categories=["Cc", "Cf", "Cs", "Co", "Zs", "Zl", "Zp", "Nd", "No", "Nl", "Mn", "Lu", "Ll", "Lo", "Ps", "Po", "Sm"]
)
HOSTILE = st.one_of(
    st.sampled_from(FIXED_VALUES),
    st.text(ANY_CHARACTER, max_size=30),
    st.builds(lambda a, b: a + b, st.sampled_from(FIXED_VALUES), st.text(ANY_CHARACTER, max_size=4)),
)


def _letters(number: int) -> str:
    """A distinct name for each example (names take no digits): 0 → 'a', 27 → 'bb'…"""
    text = ""
    number += 1
    while number:
        number, rest = divmod(number - 1, 26)
        text = chr(ord("a") + rest) + text
    return text


@sqlite_only
def test_hostile_values_for_accounts_create(cli, admin_a):
    counter = iter(range(10_000))
    fields = ["--civility", "--last-name", "--first-name", "--email", "--phone", "--function", "--profile"]

    @cheap(25)
    @given(option=st.sampled_from([*fields, "--establishment"]), value=HOSTILE)
    def check(option, value):
        tag = _letters(next(counter))
        values = {
            "--civility": "MME",
            "--last-name": f"Martin{tag}",
            "--first-name": "Anne",
            "--email": f"anne.{tag}@example.fr",
            "--phone": "06 44 55 66 77",
            "--function": "RH",
            "--profile": "user",
            "--establishment": SIRET_A,
        }
        values[option] = value
        args = [item for pair in values.items() for item in pair]
        result = cli("accounts", "create", *args, "--format", "json")
        if handled(result, REFUSED | {0}) == 0:
            created = json.loads(result.stdout)
            if option == "--function":
                assert created["function"] == v.normalize_function(value)
            elif option in ("--last-name", "--first-name"):
                assert created[option[2:].replace("-", "_")] == v.normalize_name(value, "last_name")

    check()


@sqlite_only
def test_hostile_values_for_accounts_update(cli, user):

    @cheap(25)
    @given(
        option=st.sampled_from(["--civility", "--last-name", "--email", "--phone", "--function", "--profile", "ID"]),
        value=HOSTILE,
    )
    def check(option, value):
        if option == "ID":
            result = cli("accounts", "update", value, "--function", "RH", "--format", "json")
        else:
            result = cli("accounts", "update", user, option, value, "--format", "json")
        if handled(result, REFUSED | {0}) == 0 and option == "--function":
            assert json.loads(result.stdout)["function"] == v.normalize_function(value)

    check()


def _siret(number: int) -> str:
    """A valid SIRET (SIREN and SIRET Luhn keys) for each example."""
    siren = f"21{number:06d}"
    siren += luhn.calc_check_digit(siren)
    nic = f"{number % 10_000:04d}"
    return siren + nic + luhn.calc_check_digit(siren + nic)


@sqlite_only
def test_hostile_values_for_establishments_register(cli):
    counter = iter(range(1, 10_000))
    options = ["--siret", "--name", "--fund", "--admin-last-name", "--admin-email", "--admin-phone", "--admin-function"]

    @cheap(15)
    @given(option=st.sampled_from(options), value=HOSTILE)
    def check(option, value):
        number = next(counter)
        values = {
            "--siret": _siret(number),
            "--name": "Mairie de Démoville",
            "--fund": "CNRACL=C-1234",
            "--admin-civility": "M",
            "--admin-last-name": "Martin",
            "--admin-first-name": "Paul",
            "--admin-email": f"paul.martin.{_letters(number)}@example.fr",
            "--admin-phone": "06 11 22 33 44",
            "--admin-function": "DGS",
        }
        values[option] = value
        args = ["establishments", "register", *(item for pair in values.items() for item in pair)]
        clock.advance(timedelta(minutes=16))  # out of the rate limit of the previous example
        if handled(cli(*args), REFUSED) == 6:
            # The code went to the phone: completing with it reaches the write.
            handled(cli(*args, "--otp", last_sms_code(cli)), REFUSED | {0})

    check()


@sqlite_only
def test_hostile_values_for_login_and_password_commands(cli, user):

    @cheap(25)
    @given(value=HOSTILE, where=st.sampled_from(["login", "login --phone", "forgot", "forgot --email", "set --code"]))
    def check(value, where):
        if where == "login":
            result = cli("login", value, "--password-stdin", input=PASSWORD + "\n")
        elif where == "login --phone":
            result = cli("login", value, "--password-stdin", "--phone", value, input="wrong password!!\n")
        elif where == "forgot":
            result = cli("password", "forgot", value, "--email", USER_EMAIL)
        elif where == "forgot --email":
            result = cli("password", "forgot", user, "--email", value)
        else:
            result = cli("password", "set", user, "--code", value, "--password-stdin", input=PASSWORD + "x\n")
        # 'forgot' answers the same (exit 0) whether or not the identifier and e-mail match; wrong reset
        # codes count towards the lockout (exit 8).
        handled(result, REFUSED | ({0} if where.startswith("forgot") else {8} if where == "set --code" else set()))

    check()


@sqlite_only
def _revokes(level: str) -> bool:
    """True for the level words that mean "no right" ('', none, aucun): grant then revokes."""
    from pepsctl.domain import rights

    try:
        return rights.parse_level(level) is None
    except InvalidInput:
        return False


@sqlite_only
def test_hostile_values_for_rights_delegations_and_whoami(cli, user):

    @cheap(40)
    @given(
        value=HOSTILE,
        where=st.sampled_from(
            ["grant", "grant level", "revoke", "request", "request services", "can action", "can target", "can both"]
        ),
    )
    def check(value, where):
        commands = {
            "grant": ("rights", "grant", user, value),
            "grant level": ("rights", "grant", user, "cir", "--level", value),
            "revoke": ("rights", "revoke", user, value),
            "request": ("delegations", "request", value),
            "request services": ("delegations", "request", SIRET_B, "--services", value),
            "can action": ("whoami", "--can", value, user),
            "can target": ("whoami", "--can", "read:cir", value),
            "can both": ("whoami", "--can", "account.update", f"delegation:{value}"),
        }
        result = cli(*commands[where])
        handled(result, REFUSED | ({0} if where == "grant level" and _revokes(value) else set()))
        assert "\x1b" not in result.stdout + result.stderr

    check()


@sqlite_only
def test_hostile_values_for_history_and_outbox_filters(cli, admin_a):

    @cheap(30)
    @given(value=HOSTILE, option=st.sampled_from(["--since", "--action", "--account", "--establishment", "--to"]))
    def check(value, option):
        result = cli("outbox", "list", "--to", value) if option == "--to" else cli("history", option, value)
        # A filter that matches nothing is a success with no rows.
        handled(result, REFUSED | {0})

    check()


@sqlite_only
def test_history_since_out_of_range_is_invalid_input(cli):
    """Read before the store is opened: an offset that leaves the years 1-9999 is not a crash."""
    for since in ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "2026-13-01", "2026-01-15T25:00"):
        handled(cli("history", "--since", since), frozenset({3}))


def _text_commands(user: str, value: str) -> list[tuple[str, ...]]:
    return [
        ("accounts", "create", "--civility", "M", "--last-name", value, "--first-name", "Luc", "--email", "l@x.fr"),
        ("accounts", "update", user, "--function", value),
        ("accounts", "update", value, "--phone", "06 12 34 56 78"),
        ("establishments", "update", SIRET_A, "--name", value),
        ("login", value, "--password-stdin"),
        ("rights", "grant", user, value),
        ("delegations", "request", value),
        ("outbox", "list", "--to", value),
        ("whoami", "--can", value, user),
        ("whoami", "--can", "read:cir", f"delegation:{value}"),
        ("history", "--action", value),
    ]


def _number_commands(value: str) -> list[tuple[str, ...]]:
    return [
        ("delegations", "show", value),
        ("batches", "show", value),
        ("outbox", "show", value),
        ("outbox", "list", "--limit", value),
        ("history", "--batch", value),
        ("history", "--limit", value),
        ("whoami", "--can", "account.update", f"delegation:{value}"),
    ]


def test_fixed_hostile_values_on_both_stores(cli, user):
    """What reaches the database driver itself: NUL, lone surrogates, long text, numbers out of range."""
    runs = [args for value in ("a\x00b", "a\udcffb", "x" * 10_000) for args in _text_commands(user, value)]
    runs += [args for value in ("9" * 30, "-1") for args in _number_commands(value)]
    runs.append(("whoami", "--can", "read:cir", "delegation:²"))  # a digit for isdigit(), not for int()
    for args in runs:
        result = cli(*args, input=PASSWORD + "\n")
        handled(result, REFUSED | {0})
        assert "\x00" not in result.stdout + result.stderr, args


# -- one-time codes in other digits ------------------------------------------------------------------------

# Three look-alikes and a mixed code: four refusals, below the lockout's five even if they counted.
DIGIT_SCRIPTS = {"full-width": 0xFF10, "arabic-indic": 0x0660, "mathematical bold": 0x1D7CE}


def _in_script(code: str, zero: int) -> str:
    return "".join(chr(zero + int(digit)) for digit in code)


def test_the_real_code_in_other_digits_is_refused_then_the_ascii_code_works(cli, user):
    args = ("login", user, "--password-stdin")
    first = cli(*args, input=PASSWORD + "\n")
    assert first.exit_code == 6, first.stderr
    code = last_sms_code(cli)
    for name, zero in DIGIT_SCRIPTS.items():
        translated = _in_script(code, zero)
        assert unicodedata.digit(translated[0]) == int(code[0])  # the same number, in other digits
        result = cli(*args, "--otp", translated, input=PASSWORD + "\n")
        assert handled(result, frozenset({3, 6})), name
        assert "Logged in" not in result.stderr, name
        assert translated not in result.stdout + result.stderr
    mixed = code[:5] + _in_script(code[5], 0xFF10)
    handled(cli(*args, "--otp", mixed, input=PASSWORD + "\n"), frozenset({3, 6}))
    whoami = cli("whoami", "--format", "json")
    assert whoami.exit_code != 0 or json.loads(whoami.stdout)["identifier"] != user
    # Refusing the look-alikes neither consumed nor locked anything: the ASCII code still logs in.
    done = cli(*args, "--otp", code, input=PASSWORD + "\n")
    assert done.exit_code == 0, done.stderr
    assert cli.json("whoami")["identifier"] == user


def test_unicode_digit_codes_are_never_accepted_by_the_validator():
    @cheap(300)
    @given(st.text(st.characters(categories=["Nd"]), min_size=6, max_size=6).filter(lambda t: not t.isascii()))
    def check(code):
        with pytest.raises(InvalidInput) as caught:
            v.validate_otp_format(code)
        assert code not in caught.value.message

    check()


# -- shown literally ---------------------------------------------------------------------------------------

RAW_TERMINAL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
DISPLAY_VALUES = [
    "[bold red]x[/]",
    "[link=http://evil]clic[/link]",
    ":warning: [/]",
    "\x1b[31mrouge",
    "\x1b]8;;http://evil\x1b\\lien\x1b]8;;\x1b\\",
    "a\rb",
    "cloche\x07",
    "\u202egnp.exe",
    "\x9b2J",
]


def test_markup_and_escape_sequences_are_refused_or_shown_literally(cli, admin_a):
    shown: dict[str, str] = {}
    for number, value in enumerate(DISPLAY_VALUES):
        tag = _letters(number)
        last = f"Petit{tag}"
        for option in ("--last-name", "--function"):
            values = {"--last-name": last, "--function": "Agent"}
            values[option] = value
            result = cli(
                "accounts", "create", "--civility", "M", "--first-name", "Marc",
                "--email", f"marc.{tag}.{option[2:]}@example.fr", *(i for p in values.items() for i in p),
                "--format", "json",
            )  # fmt: skip
            if handled(result, frozenset({0, 3})) == 0:
                shown[json.loads(result.stdout)["identifier"]] = value
            else:
                assert RAW_TERMINAL.search(result.stderr) is None
    assert shown  # the markup is accepted as a function
    table = cli.ok("accounts", "list")
    assert RAW_TERMINAL.search(table.stdout) is None
    assert "\x1b" not in table.stdout + table.stderr
    listed = {a["identifier"]: a for a in cli.json("accounts", "list")}
    for identifier, value in shown.items():
        assert listed[identifier]["function"] == value or listed[identifier]["last_name"] == value  # exact in JSON
        if RAW_TERMINAL.search(value) is None:
            assert value in table.stdout  # markup printed as typed
        one = cli.ok("accounts", "show", identifier)
        assert RAW_TERMINAL.search(one.stdout) is None

    # An establishment name accepts markup, C1 controls and bidi overrides: all printed as escapes.
    name = "Mairie [bold]x[/] \x9b2J \u202eevil"
    handled(cli("establishments", "update", SIRET_A, "--name", name), frozenset({0}))
    for args in (("establishments", "list"), ("establishments", "show", SIRET_A), ("whoami",)):
        out = cli.ok(*args)
        assert RAW_TERMINAL.search(out.stdout + out.stderr) is None, args
        assert "[bold]x[/]" in out.stdout
        assert "\\x9b2J" in out.stdout
    assert cli.json("establishments", "show", SIRET_A)["name"] == name


# -- exports neutralise, imports restore ---------------------------------------------------------------------

FORMULA_FUNCTIONS = ["=1+1", '=HYPERLINK("http://evil","x")', "+33 6 12", "-2", "@SUM(A1)", "'=quoted", "''+x", 'a;b"c']
FORMULA_EMAILS = ["=x@example.fr", "+y@example.fr", "-z@example.fr"]


def _export(cli, path: Path) -> list[dict[str, str]]:
    cli.ok("accounts", "export", "--output", str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig")), delimiter=";"))


def _no_change(cli, *args: str) -> None:
    plan = cli.json(*args, "--dry-run")
    assert [row["action"] for row in plan if row["action"] != "unchanged"] == [], plan
    applied = cli.ok(*args, "--yes")
    assert "0 to change" in applied.stderr, applied.stderr


def test_exports_neutralise_formulas_and_import_back_with_zero_changes(cli, admin_a, tmp_path):
    for number, function in enumerate(FORMULA_FUNCTIONS):
        email = FORMULA_EMAILS[number] if number < len(FORMULA_EMAILS) else f"agent.{_letters(number)}@example.fr"
        extra = ("--function", function)
        cli.ok(
            "accounts", "create", "--civility", "MME", "--last-name", f"-Durand{_letters(number)}",
            "--first-name", "Zoé", "--email", email, "--phone", f"06 50 60 70 {number:02d}", *extra,
        )  # fmt: skip
    rows = _export(cli, tmp_path / "accounts.csv")
    cells = [cell for row in rows for cell in row.values()]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r", "\n")]
    functions = {row["function"] for row in rows}
    assert {"'=1+1", "'+33 6 12", "'-2", "'@SUM(A1)", "''=quoted", "'''+x", 'a;b"c'} <= functions
    assert {"'=x@example.fr", "'+y@example.fr", "'-z@example.fr"} <= {row["email"] for row in rows}
    _no_change(cli, "accounts", "import", str(tmp_path / "accounts.csv"))
    template = tmp_path / "phones.csv"
    cli.ok("phones", "template", "--output", str(template))
    assert stat.S_IMODE(template.stat().st_mode) == 0o600
    _no_change(cli, "phones", "import", str(template))
    stdout_csv = cli.ok("accounts", "export").stdout
    assert "\n=" not in stdout_csv
    assert ";=" not in stdout_csv
    assert ",=" not in stdout_csv


@sqlite_only
def test_generated_functions_round_trip_through_export_and_import(cli, user, tmp_path):
    counter = iter(range(10_000))
    start = st.sampled_from(["=", "+", "-", "@", "'", "''=", " ", '"', ";", ""])
    body = st.text(st.characters(categories=["Lu", "Ll", "Nd", "Po", "Sm", "Zs", "Ps", "Pe"]), max_size=15)

    @cheap(8)
    @given(function=st.builds(lambda a, b: a + b, start, body))
    def check(function):
        result = cli("accounts", "update", user, "--function", function, "--format", "json")
        if handled(result, frozenset({0, 3})) == 3:
            return
        path = tmp_path / f"export-{next(counter)}.csv"
        (row,) = [r for r in _export(cli, path) if r["identifier"] == user]
        assert row["function"][:1] not in ("=", "+", "-", "@")
        plan = cli.json("accounts", "import", str(path), "--dry-run")
        assert [p["action"] for p in plan] == ["unchanged"] * len(plan), (function, plan)

    check()
