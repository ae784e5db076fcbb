"""The one renderer: formats, escaping, spreadsheet safety, streams and messages."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from enum import Enum, IntEnum, StrEnum
from pathlib import Path
from typing import NamedTuple
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pepsctl import output
from pepsctl.errors import UsageError
from pepsctl.output import FORMATS, Column, neutralise, render, unneutralise, write_csv


class Status(Enum):
    ACTIVE = "active"
    LOCKED = "locked"


MOMENT = datetime(2024, 3, 5, 14, 7, 9, tzinfo=UTC)

RECORDS = [
    {
        "identifier": "JDU000042",
        "last_name": "Dupont",
        "phone": "+33612345678",
        "status": Status.ACTIVE,
        "is_admin": True,
        "created_at": MOMENT,
        "expires_on": date(2025, 1, 31),
        "services": ["DSN", "PASRAU"],
        "function": None,
    },
    {
        "identifier": "MAR000007",
        "last_name": "Martin",
        "phone": None,
        "status": Status.LOCKED,
        "is_admin": False,
        "created_at": datetime(2024, 3, 5, 16, 7, tzinfo=timezone(timedelta(hours=2))),
        "expires_on": None,
        "services": [],
        "function": "Comptable",
    },
]
KEYS = [
    "identifier",
    "last_name",
    "phone",
    "status",
    "is_admin",
    "created_at",
    "expires_on",
    "services",
    "function",
]


@pytest.fixture(autouse=True)
def _plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("PEPSCTL_LANG", raising=False)


def _render(records: object, fmt: str, **kwargs: object) -> str:
    buffer = io.StringIO()
    render(records, fmt, file=buffer, **kwargs)  # type: ignore[arg-type]
    return buffer.getvalue()


# ---- JSON


def test_json_list_shape_and_values_are_pinned() -> None:
    data = json.loads(_render(RECORDS, "json"))
    assert isinstance(data, list)
    assert [list(item) for item in data] == [KEYS, KEYS]
    assert data[0] == {
        "identifier": "JDU000042",
        "last_name": "Dupont",
        "phone": "+33612345678",
        "status": "active",
        "is_admin": True,
        "created_at": "2024-03-05T14:07:09+00:00",
        "expires_on": "2025-01-31",
        "services": ["DSN", "PASRAU"],
        "function": None,
    }
    assert data[1]["created_at"] == "2024-03-05T16:07:00+02:00"


def test_json_datetimes_are_aware() -> None:
    naive = datetime(2024, 3, 5, 14, 7)
    data = json.loads(_render([{"at": naive}, {"at": MOMENT}], "json"))
    for item in data:
        assert datetime.fromisoformat(item["at"]).tzinfo is not None
    assert data[0]["at"] == "2024-03-05T14:07:00+00:00"


def test_json_is_exactly_json_dumps_indent_2() -> None:
    text = _render(RECORDS, "json")
    expected = json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"
    assert text == expected
    assert text.endswith("]\n")


def test_json_single_is_one_object() -> None:
    text = _render(RECORDS[0], "json", single=True)
    data = json.loads(text)
    assert isinstance(data, dict)
    assert list(data) == KEYS
    assert text.endswith("}\n")
    # an iterable of exactly one is accepted too
    assert json.loads(_render([RECORDS[0]], "json", single=True)) == data


def test_json_columns_choose_and_order_keys() -> None:
    columns = [Column("last_name", "Last name"), "identifier", Column("missing")]
    data = json.loads(_render(RECORDS, "json", columns=columns))
    assert data[0] == {"last_name": "Dupont", "identifier": "JDU000042", "missing": None}
    assert [list(item) for item in data] == [["last_name", "identifier", "missing"]] * 2


def test_json_sets_tuples_and_non_ascii() -> None:
    text = _render([{"s": {"b", "a"}, "t": (1, 2), "name": "Élodie"}], "json")
    assert json.loads(text) == [{"s": ["a", "b"], "t": [1, 2], "name": "Élodie"}]
    assert "Élodie" in text  # ensure_ascii=False


def test_json_escapes_terminal_controls_but_keeps_the_data() -> None:
    value = "a\x1b[2Jb\x9b31mc\x7fd\u202ee\n"
    text = _render([{"v": value}], "json")
    assert "\x1b" not in text
    assert "\x9b" not in text
    assert "\x7f" not in text
    assert "\u202e" not in text
    assert json.loads(text) == [{"v": value}]


def test_json_is_streamed() -> None:
    seen: list[str] = []
    buffer = io.StringIO()

    def records() -> Iterator[dict[str, int]]:
        for number in range(3):
            seen.append(buffer.getvalue())
            yield {"n": number}

    render(records(), "json", file=buffer)
    assert seen[0] == ""
    assert seen[1].startswith("[\n")  # the first object was written before the second was made
    assert '"n": 0' in seen[1]
    assert json.loads(buffer.getvalue()) == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_json_accepts_dataclasses_and_models() -> None:
    from dataclasses import dataclass

    @dataclass
    class View:
        identifier: str
        at: datetime

    data = json.loads(_render([View("JDU000042", MOMENT)], "json"))
    assert data == [{"identifier": "JDU000042", "at": "2024-03-05T14:07:09+00:00"}]

    from pydantic import BaseModel

    class Model(BaseModel):
        identifier: str
        at: datetime

    model = Model(identifier="JDU000042", at=MOMENT)
    assert json.loads(_render(model, "json", single=True)) == data[0]
    assert json.loads(_render([model], "json")) == data


# ---- CSV


def _csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_csv_header_is_the_keys_and_values_are_stringified() -> None:
    text = _render(RECORDS, "csv")
    rows = _csv_rows(text)
    assert rows[0] == KEYS
    assert rows[1] == [
        "JDU000042",
        "Dupont",
        "'+33612345678",
        "active",
        "true",
        "2024-03-05T14:07:09+00:00",
        "2025-01-31",
        "DSN|PASRAU",
        "",
    ]
    assert rows[2][2] == ""
    assert rows[2][4] == "false"
    assert "\r\n" not in text
    assert text.endswith("\n")


def test_csv_header_uses_keys_not_headers() -> None:
    text = _render(RECORDS, "csv", columns=[Column("identifier", "Identifiant"), "last_name"])
    assert _csv_rows(text) == [["identifier", "last_name"], ["JDU000042", "Dupont"], ["MAR000007", "Martin"]]


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r", "\n"])
def test_csv_neutralises_each_dangerous_start(start: str) -> None:
    value = f"{start}HYPERLINK(1)"
    rows = _csv_rows(_render([{"v": value}], "csv"))
    assert rows[1] == ["'" + value]
    assert unneutralise(rows[1][0]) == value


def test_csv_numbers_are_not_neutralised() -> None:
    rows = _csv_rows(_render([{"n": -5, "f": -1.5, "text": "-5"}], "csv"))
    assert rows[1] == ["-5", "-1.5", "'-5"]


def test_csv_neutralises_the_plain_phone_in_e164() -> None:
    assert neutralise("+33612345678") == "'+33612345678"
    assert unneutralise("'+33612345678") == "+33612345678"


@given(st.text())
def test_unneutralise_undoes_neutralise(text: str) -> None:
    assert unneutralise(neutralise(text)) == text


@given(st.text())
def test_neutralised_text_never_starts_with_a_formula(text: str) -> None:
    assert neutralise(text)[:1] not in {"=", "+", "-", "@", "\t", "\r", "\n"}


@pytest.mark.parametrize("text", ["'abc", "'Dupont", "'", "''", "abc", "", "O'Neil", "'1"])
def test_unneutralise_leaves_ordinary_quotes_alone(text: str) -> None:
    assert unneutralise(text) == text


def test_neutralise_a_text_that_already_looks_neutralised() -> None:
    # one more quote so that the round trip is exact
    assert neutralise("'=1") == "''=1"
    assert unneutralise("''=1") == "'=1"
    assert unneutralise("'=1") == "=1"


def test_csv_quotes_lone_carriage_returns_and_empty_single_cells() -> None:
    text = _render([{"v": "a\rb"}, {"v": ""}, {"v": 'say "hi", then'}], "csv")
    assert text == 'v\n"a\rb"\n""\n"say ""hi"", then"\n'
    assert _csv_rows(text) == [["v"], ["a\rb"], [""], ['say "hi", then']]


@given(st.lists(st.text(), min_size=1, max_size=4), st.sampled_from([",", ";"]))
def test_csv_round_trips_through_the_reader(values: list[str], delimiter: str) -> None:
    buffer = io.StringIO()
    keys = [f"k{index}" for index in range(len(values))]
    write_csv(buffer, [dict(zip(keys, values, strict=True))], keys, delimiter=delimiter)
    rows = list(csv.reader(io.StringIO(buffer.getvalue(), newline=""), delimiter=delimiter))
    assert rows[0] == keys
    assert [unneutralise(cell) for cell in rows[1]] == values


def test_csv_is_streamed() -> None:
    seen: list[str] = []
    buffer = io.StringIO()

    def records() -> Iterator[dict[str, int]]:
        for number in range(2):
            seen.append(buffer.getvalue())
            yield {"n": number}

    render(records(), "csv", file=buffer)
    assert seen == ["", "n\n0\n"]
    assert buffer.getvalue() == "n\n0\n1\n"


# ---- table


def test_table_shows_headers_values_and_title() -> None:
    columns = [Column("identifier", "Identifier"), Column("is_admin", "Admin"), "created_at", "services"]
    text = _render(RECORDS, "table", columns=columns, title="Accounts")
    assert "Accounts" in text
    assert "Identifier" in text
    assert "Admin" in text
    assert "JDU000042" in text
    assert "yes" in text
    assert "no" in text
    assert "2024-03-05 14:07" in text
    assert "2024-03-05 14:07:09" not in text
    assert "DSN, PASRAU" in text
    assert "is_admin" not in text


def test_a_large_table_is_laid_out_plainly_with_the_same_escaping_and_alignment() -> None:
    from pepsctl.output import PLAIN_TABLE_ROWS

    evil = "a\x1b[31mred[bold]\u202e"
    records = [{"identifier": f"JDU{n:06d}", "name": evil if n == 7 else "Dupont", "level": "W"} for n in range(400)]
    assert len(records) > PLAIN_TABLE_ROWS
    columns = ["identifier", "name", Column("level", "cir", justify="center")]

    text = _render(records, "table", columns=columns, title="Rights")

    lines = text.splitlines()
    assert lines[0] == "Rights"
    assert lines[2].split() == ["identifier", "name", "cir"]
    assert len(lines) == 4 + 400
    assert "\x1b" not in text and "\u202e" not in text
    assert "a\\x1b[31mred[bold]\\u202e" in text  # escaped, markup literal
    # Every row has its cells at the header's columns.
    start = lines[2].index("cir")
    assert all(line[start + 1] == "W" for line in lines[4:])


def test_table_datetimes_are_shown_in_utc() -> None:
    text = _render([RECORDS[1]], "table", columns=["created_at"])
    assert "2024-03-05 14:07" in text  # 16:07+02:00


def test_table_prints_markup_literally() -> None:
    text = _render([{"name": "[bold]x[/bold]", "emoji": ":smile:"}], "table")
    assert "[bold]x[/bold]" in text
    assert ":smile:" in text


def test_table_never_emits_escape_sequences_from_data() -> None:
    evil = "a\x1b[31mred\x1b]0;title\x07\x9b2J\rb\nc\x7f\u202e"
    text = _render([{"name": evil}], "table", title=f"T{evil}")
    for control in ("\x1b", "\x07", "\x9b", "\r", "\x7f", "\u202e"):
        assert control not in text
    assert "\\x1b[31mred" in text
    assert "\\u202e" in text


def test_table_without_colour_writes_no_escape_at_all() -> None:
    text = _render(RECORDS, "table", title="Accounts")
    assert "\x1b" not in text


def test_table_single_is_field_value() -> None:
    text = _render(RECORDS[0], "table", single=True, columns=[Column("last_name", "Last name"), "phone"])
    assert "Field" in text
    assert "Value" in text
    assert "Last name" in text
    assert "Dupont" in text
    assert "+33612345678" in text
    assert "JDU000042" not in text


def test_table_to_stdout_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    render(RECORDS, "table")
    captured = capsys.readouterr()
    assert "JDU000042" in captured.out
    assert captured.err == ""


# ---- empty


def test_empty_table_says_so_on_stderr_only(capsys: pytest.CaptureFixture[str]) -> None:
    render([], "table", columns=["identifier"])
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "No results.\n"


def test_empty_json_is_an_empty_list(capsys: pytest.CaptureFixture[str]) -> None:
    render([], "json", columns=["identifier"])
    captured = capsys.readouterr()
    assert captured.out == "[]\n"
    assert json.loads(captured.out) == []
    assert captured.err == ""


def test_empty_csv_is_the_header_only(capsys: pytest.CaptureFixture[str]) -> None:
    render(iter([]), "csv", columns=["identifier", Column("phone", "Phone")])
    captured = capsys.readouterr()
    assert captured.out == "identifier,phone\n"
    assert captured.err == ""


# ---- bad format


@pytest.mark.parametrize("fmt", ["xml", "", "JSON"])
def test_unknown_format_is_a_usage_error(fmt: str) -> None:
    with pytest.raises(UsageError) as excinfo:
        render(RECORDS, fmt)
    assert excinfo.value.exit_code == 2
    assert FORMATS == ("table", "json", "csv")


# ---- write_csv


def test_write_csv_creates_a_private_file_with_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    count = write_csv(path, RECORDS, ["identifier", "phone", "last_name"], delimiter=";")
    assert count == 2
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    assert text == "identifier;phone;last_name\nJDU000042;'+33612345678;Dupont\nMAR000007;;Martin\n"


def test_write_csv_tightens_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text("old content that is longer than the new one\n" * 10)
    path.chmod(0o644)
    write_csv(str(path), [{"a": "é"}], ["a"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text(encoding="utf-8-sig") == "a\né\n"


def test_write_csv_to_an_open_file() -> None:
    buffer = io.StringIO()
    write_csv(buffer, [{"a": "=1", "b": None}], [Column("a"), "b"])
    assert buffer.getvalue() == "a,b\n'=1,\n"


# ---- messages


def test_error_prints_error_and_hint_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    output.error("No such account JDU000042.", hint="Run 'pepsctl accounts list'.")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "Error: No such account JDU000042.\nHint: Run 'pepsctl accounts list'.\n"


def test_error_without_hint(capsys: pytest.CaptureFixture[str]) -> None:
    output.error("Broken.")
    assert capsys.readouterr().err == "Error: Broken.\n"


def test_messages_go_to_stderr_as_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    output.info("[bold]info[/bold]")
    output.warn("careful")
    output.success("done \x1b[2J")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "[bold]info[/bold]\nWarning: careful\ndone \\x1b[2J\n"


def test_progress_disabled_is_a_no_op(capsys: pytest.CaptureFixture[str]) -> None:
    with output.progress(10, "Importing", enabled=False) as advance:
        advance(3)
        advance(7)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ""


def test_progress_without_a_terminal_is_silent(capsys: pytest.CaptureFixture[str]) -> None:
    with output.progress(None, "Importing", enabled=True) as advance:
        advance(1)
    assert capsys.readouterr().err == ""


def test_is_interactive_is_false_under_pytest_capture() -> None:
    assert output.is_interactive() is False


# ---- cold start


def test_importing_output_does_not_import_rich() -> None:
    code = "import sys, pepsctl.output; print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert result.stdout.strip() == "[]"


# ---- the fast path for flat records: the bytes of the general path, in batches


class Level(IntEnum):
    LOW = 1


class Kind(StrEnum):
    FORMULA = "=1+1"


class Pair(Enum):
    BOTH = (1, 2)  # its value is a list in JSON: not flat


@dataclass(frozen=True, slots=True)
class Flat:
    """Like the domain's views (frozen, slots)."""

    a: object
    b: object
    c: object


@dataclass
class Loose:
    a: object
    b: object


class Named(NamedTuple):
    a: object
    c: object


KEY_POOL = ["a", "b", "c", 'q"uote', "per%cent", "bidi\u202e", "x,y", "=formula", "é"]
TRICKY = "=+-@'\t\r\n\",;%\\aZ0 éÉ—\x00\x1b\x7f\x85\x9b\u00a0\u202a\u202e\u2028\u2029\u2066\u2069\U0001f600"
OFFSETS = st.builds(timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)))
FLAT = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=TRICKY, max_size=8),
    st.text(max_size=8),
    st.datetimes(timezones=st.one_of(st.none(), st.just(UTC), OFFSETS)),
    st.dates(),
    st.times(),
    st.sampled_from([*Status, *Level, *Kind]),
    st.decimals(),
)
ANY = st.one_of(
    FLAT,
    st.floats(),  # NaN and infinities
    st.lists(st.integers(), max_size=2),
    st.tuples(st.text(alphabet=TRICKY, max_size=3)),
    st.frozensets(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(KEY_POOL), st.integers(), max_size=2),
    st.just(Pair.BOTH),
    st.builds(Loose, FLAT, FLAT),
)


def _reference(records: object, fmt: str, columns: object = None, *, single: bool = False, delimiter: str = ",") -> str:
    """The general path, record by record: the output as it was before the fast path."""
    buffer = io.StringIO()
    cols = output._columns(columns)  # type: ignore[arg-type]
    rows = [output._single_record(records)] if single else records
    if fmt == "json":
        output._render_json_general(rows, cols, buffer, single=single)  # type: ignore[arg-type]
    else:
        output._write_csv_rows_general(buffer, rows, cols, delimiter=delimiter)  # type: ignore[arg-type]
    return buffer.getvalue()


def _fast(records: object, fmt: str, columns: object = None, *, single: bool = False, delimiter: str = ",") -> str:
    if fmt == "csv" and not single:
        buffer = io.StringIO()
        output._write_csv_rows(buffer, records, output._columns(columns), delimiter=delimiter)  # type: ignore[arg-type]
        return buffer.getvalue()
    return _render(records, fmt, columns=columns, single=single)


@contextmanager
def _general_path_forbidden() -> Iterator[None]:
    """Fail when a record goes by the general path (the fallback of the fast one)."""
    with (
        mock.patch.object(output, "_json_general_rows", side_effect=AssertionError("general JSON path taken")),
        mock.patch.object(output, "_json_object", side_effect=AssertionError("general JSON path taken")),
        mock.patch.object(output, "_csv_general_rows", side_effect=AssertionError("general CSV path taken")),
    ):
        yield


@given(
    keys=st.lists(st.sampled_from(KEY_POOL), min_size=1, max_size=5, unique=True),
    shape=st.sampled_from(["dicts", "sparse dicts", "views", "no columns"]),
    delimiter=st.sampled_from([",", ";", "\t", "%"]),
    data=st.data(),
)
def test_flat_records_take_the_fast_path_with_the_bytes_of_the_general_one(
    keys: list[str], shape: str, delimiter: str, data: st.DataObject
) -> None:
    columns: list[str] | None = keys
    rows = st.lists
    same_keys = st.tuples(*[FLAT] * len(keys)).map(lambda values: dict(zip(keys, values, strict=True)))
    if shape == "dicts":
        records = data.draw(rows(same_keys, max_size=12))
    elif shape == "sparse dicts":  # missing keys are None; an empty record too
        records = data.draw(rows(st.dictionaries(st.sampled_from(KEY_POOL), FLAT), max_size=12))
    elif shape == "views":
        records = data.draw(rows(st.builds(Flat, FLAT, FLAT, FLAT), max_size=12))
    else:  # every record has the same keys, in the same order
        columns = None
        records = data.draw(rows(same_keys, max_size=12))

    for fmt in FORMATS[1:]:
        expected = _reference(records, fmt, columns, delimiter=delimiter)
        with _general_path_forbidden():
            assert _fast(records, fmt, columns, delimiter=delimiter) == expected
    if records:
        for fmt in FORMATS[1:]:
            expected = _reference(records[0], fmt, columns, single=True)
            with _general_path_forbidden():
                assert _fast(records[0], fmt, columns, single=True) == expected


@given(
    records=st.lists(
        st.one_of(
            st.dictionaries(st.sampled_from(KEY_POOL), ANY, max_size=5),
            st.dictionaries(st.sampled_from(KEY_POOL), FLAT, max_size=5),
            st.builds(Flat, ANY, ANY, ANY),
            st.builds(Loose, ANY, ANY),
            st.builds(Named, FLAT, ANY),
        ),
        max_size=12,
    ),
    columns=st.one_of(st.none(), st.lists(st.sampled_from(KEY_POOL), max_size=5)),  # duplicates too
    delimiter=st.sampled_from([",", ";"]),
)
def test_any_records_give_the_bytes_of_the_general_path(
    records: list[object], columns: list[str] | None, delimiter: str
) -> None:
    for fmt in FORMATS[1:]:
        expected = _reference(records, fmt, columns, delimiter=delimiter)
        assert _fast(records, fmt, columns, delimiter=delimiter) == expected
    if records:
        for fmt in FORMATS[1:]:
            assert _fast(records[0], fmt, columns, single=True) == _reference(records[0], fmt, columns, single=True)


@pytest.mark.parametrize(
    "code", [*range(0x00, 0x20), *range(0x7F, 0xA1), 0x2028, 0x2029, *range(0x2029, 0x2030), *range(0x2065, 0x206B)]
)
def test_the_fast_path_escapes_each_control_as_the_general_one(code: int) -> None:
    columns = ["v", chr(code)]
    records = [{"v": f"a{chr(code)}b", chr(code): 1}, {"v": "plain", chr(code): 2}]
    for fmt in FORMATS[1:]:
        expected, expected_single = _reference(records, fmt, columns), _reference(records[0], fmt, columns, single=True)
        with _general_path_forbidden():
            assert _fast(records, fmt, columns) == expected
            assert _fast(records[0], fmt, columns, single=True) == expected_single


@dataclass(frozen=True, slots=True)
class Solo:
    a: object


@dataclass(slots=True)
class Unset:
    a: object
    b: object = field(init=False)


@pytest.mark.parametrize("columns", [["a"], ["a", "a"], ["a", "b"], ["b"], None])
def test_views_of_one_field_and_unset_fields_behave_as_in_the_general_path(columns: list[str] | None) -> None:
    solos = [Solo(n) for n in range(5)]
    for fmt in FORMATS[1:]:
        assert _fast(solos, fmt, columns) == _reference(solos, fmt, columns)
    unset = [Unset(1)]
    for fmt in FORMATS[1:]:
        with pytest.raises(AttributeError):
            _reference(unset, fmt, columns)
        with pytest.raises(AttributeError):
            _fast(unset, fmt, columns)


def test_a_record_that_is_not_flat_takes_the_general_path_for_its_batch_only() -> None:
    records: list[dict[str, object]] = [{"n": n, "at": MOMENT, "v": "=x"} for n in range(3000)]
    records[1500] = {"n": 1500, "at": MOMENT, "v": ["a", "b"]}
    records[2500] = {"n": 2500, "at": MOMENT, "v": math.nan}
    for fmt in FORMATS[1:]:
        assert _render(records, fmt) == _reference(records, fmt)
        assert _render(records, fmt, columns=["v", "n"]) == _reference(records, fmt, ["v", "n"])
    data = json.loads(_render(records, "json"))
    assert data[1500]["v"] == ["a", "b"]
    assert data[2500]["v"] is None
    assert data[0] == {"n": 0, "at": "2024-03-05T14:07:09+00:00", "v": "=x"}


class _Writes(io.StringIO):
    """A stream that keeps each write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_a_large_output_is_written_in_batches(fmt: str) -> None:
    records = [Flat(n, f"Agent {n} — Démoville", MOMENT) for n in range(5000)]
    out = _Writes()
    render(records, fmt, columns=["a", "b", "c"], file=out)

    assert out.getvalue() == _reference(records, fmt, ["a", "b", "c"])
    assert 5 < len(out.writes) < 25  # batches: neither the whole output at once nor a write per record
    rows_per_write = [text.count('"a": ') if fmt == "json" else text.count("\n") for text in out.writes]
    assert max(rows_per_write) == output.BATCH_ROWS
    assert rows_per_write[:3] == [1, 2, 4] if fmt == "json" else [1, 1, 2]  # the first record at once (CSV: header)
    assert sum(rows_per_write) == 5000 + (fmt == "csv")


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_records_from_a_slow_source_are_written_batch_by_batch(fmt: str) -> None:
    buffer = io.StringIO()
    seen: dict[int, str] = {}

    def records() -> Iterator[dict[str, int]]:
        for number in range(3000):
            seen[number] = buffer.getvalue()
            yield {"n": number}

    render(records(), fmt, file=buffer)
    marker = '"n": ' if fmt == "json" else "\n"
    written = {number: text.count(marker) for number, text in seen.items()}
    assert written[1] >= 1  # the first record before the second is made
    assert 2500 - 2 * output.BATCH_ROWS <= written[2500] < 2500  # while the source runs
    assert buffer.getvalue() == _reference([{"n": number} for number in range(3000)], fmt)
