"""The one renderer of pepsctl: data on stdout, people's messages on stderr.

Formats (``--format``):

``table``
    A Rich table for people. Rich is imported inside the functions that need it, never at module
    level, so ``pepsctl --help`` stays fast. The console is built with ``markup=False``,
    ``highlight=False`` and ``emoji=False`` and every cell is a :class:`rich.text.Text`, so user data
    prints literally (``[bold]x[/bold]`` stays as typed). Control characters in cells and titles
    (C0 including TAB/CR/LF, DEL, C1) are replaced by a visible backslash escape — ``\\t``, ``\\n``,
    ``\\r`` for those three, ``\\xNN`` for the others (ESC becomes ``\\x1b``) — and the Unicode
    bidirectional overrides/isolates and line/paragraph separators (U+202A–U+202E, U+2066–U+2069,
    U+2028, U+2029) by ``\\uNNNN``: no escape sequence taken from data ever reaches the terminal.
    ``None`` shows as an empty cell, booleans as yes/no, datetimes as ``YYYY-MM-DD HH:MM`` in UTC,
    lists as ``a, b``. Nothing is truncated: long cells fold.

``json``
    Raw data, streamed: ``[``, the objects in batches (see below), ``]`` (the bytes are exactly those
    of ``json.dumps(list, indent=2, ensure_ascii=False)``); one object with ``single=True``. Keys are
    the column keys (every key of each record when no columns are given). Datetimes are ISO 8601
    with their offset (naive ones are taken as UTC), dates ISO, enums their value, sets sorted lists.
    ``json.dumps`` escapes C0 controls; DEL, C1 and the bidi/separator characters above are escaped
    too (``\\u009b``…), which is the same JSON data but cannot drive a terminal.

``csv``
    A header row of column keys, then one row per record, streamed in batches; ``,`` delimiter and
    ``\\n`` line terminator (RFC 4180 quoting otherwise: cells holding the delimiter, ``"``, CR or LF
    are quoted). Without columns the header is the first record's keys. ``None`` is empty, booleans
    ``true``/``false``, datetimes ISO 8601, lists joined with ``|``. Every text cell is
    spreadsheet-neutralised (see :func:`neutralise`); numbers are not (``-5`` cannot carry a
    formula). Cells are data: they are not escaped for a terminal. :func:`write_csv` writes a file
    for spreadsheets: mode 0600, UTF-8 with a BOM (French Excel), delimiter chosen by the caller.

JSON and CSV are written in batches of records: the first record alone (output starts at once, even
from a slow source), then 2, 4, … up to :data:`BATCH_ROWS` records per write. Flat records (every
value a scalar: text, number, boolean, ``None``, datetime, date, enum…) take a fast path: one C
encoder call per batch for JSON, a converter per value type for CSV. It writes exactly the bytes of
the general path (every value through :func:`_jsonable` or :func:`_csv_cell`, one ``json.dumps``
per record), which a batch holding any other record takes.

Messages (:func:`info`, :func:`warn`, :func:`success`, :func:`error`) and :func:`progress` go to
stderr as plain text.

Only the standard library and :mod:`pepsctl.i18n` are imported at module level.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import Enum
from itertools import chain, islice
from operator import attrgetter, itemgetter
from typing import IO, TYPE_CHECKING, Any, NamedTuple, TextIO, cast

from pepsctl.csvsafe import neutralise, unneutralise
from pepsctl.i18n import _

if TYPE_CHECKING:  # pragma: no cover - typing only
    from rich.console import Console, JustifyMethod

FORMATS: tuple[str, ...] = ("table", "json", "csv")

__all__ = [
    "FORMATS",
    "Column",
    "create_private",
    "error",
    "info",
    "is_interactive",
    "neutralise",
    "progress",
    "render",
    "success",
    "unneutralise",
    "warn",
    "write_csv",
]


class Column(NamedTuple):
    """One column: ``key`` is the field name (JSON key, CSV header), ``header`` the table heading."""

    key: str
    header: str | None = None
    justify: str = "left"

    @property
    def label(self) -> str:
        """The table heading: ``header``, or ``key`` when no header was given."""
        return self.header if self.header is not None else self.key


# --------------------------------------------------------------------------------------------------
# Escaping for the terminal

_BIDI_AND_SEPARATORS = (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029)


def _terminal_table(*, keep_newlines: bool) -> dict[int, str]:
    table: dict[int, str] = {}
    for code in (*range(0x00, 0x20), *range(0x7F, 0xA0)):
        table[code] = f"\\x{code:02x}"
    table[0x09] = "\\t"
    table[0x0A] = "\\n"
    table[0x0D] = "\\r"
    for code in _BIDI_AND_SEPARATORS:
        table[code] = f"\\u{code:04x}"
    if keep_newlines:
        del table[0x09], table[0x0A]
    return table


_CELL_ESCAPES = _terminal_table(keep_newlines=False)
_MESSAGE_ESCAPES = _terminal_table(keep_newlines=True)
# Inside JSON strings: C0 is already escaped by json.dumps; DEL, C1, bidi and separators here.
_JSON_ESCAPES = {code: f"\\u{code:04x}" for code in (*range(0x7F, 0xA0), *_BIDI_AND_SEPARATORS)}


def _safe_cell(text: str) -> str:
    """``text`` with every control character replaced by its visible escape (see the module doc)."""
    return text.translate(_CELL_ESCAPES)


def _safe_message(text: str) -> str:
    """Like :func:`_safe_cell` but keeps newlines and tabs, for multi-line messages."""
    return text.translate(_MESSAGE_ESCAPES)


# --------------------------------------------------------------------------------------------------
# Spreadsheet neutralisation

# neutralise/unneutralise live in pepsctl.csvsafe (the CSV reader of the domain uses them too).


# --------------------------------------------------------------------------------------------------
# Records and values


def _as_mapping(record: Any) -> Mapping[str, Any]:
    """Accept a mapping (the contract), and, for convenience, a pydantic model, dataclass or NamedTuple."""
    if isinstance(record, Mapping):
        return record
    model_dump = getattr(record, "model_dump", None)
    if callable(model_dump):
        dumped: Mapping[str, Any] = model_dump()
        return dumped
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {field.name: getattr(record, field.name) for field in dataclasses.fields(record)}
    as_dict = getattr(record, "_asdict", None)
    if callable(as_dict):
        named: Mapping[str, Any] = as_dict()
        return named
    raise TypeError(f"cannot render a {type(record).__name__} as a record")


def _columns(columns: Sequence[Column | str] | None) -> list[Column] | None:
    if columns is None:
        return None
    return [column if isinstance(column, Column) else Column(column) for column in columns]


def _aware(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC (the store only holds UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _sorted_if_possible(values: Iterable[Any]) -> list[Any]:
    items = list(values)
    try:
        return sorted(items)
    except TypeError:
        return items


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (see the module doc for the rules)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN and infinities are not JSON
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Enum):
        return _jsonable(value.value)
    if isinstance(value, datetime):
        return _aware(value).isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, set | frozenset):
        return [_jsonable(item) for item in _sorted_if_possible(value)]
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, Decimal):
        return str(value)
    try:
        return _jsonable(_as_mapping(value))
    except TypeError:
        return str(value)


def _csv_text(value: Any) -> str:
    """One CSV cell before neutralisation."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return _csv_text(value.value)
    if isinstance(value, datetime):
        return _aware(value).isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return "|".join(_csv_text(item) for item in _sorted_if_possible(value))
    if isinstance(value, list | tuple):
        return "|".join(_csv_text(item) for item in value)
    if isinstance(value, Mapping):
        return json.dumps(_jsonable(value), ensure_ascii=False)
    return str(value)


def _csv_cell(value: Any) -> str:
    text = _csv_text(value)
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return text  # a number cannot carry a formula; "-5" stays "-5"
    return neutralise(text)


def _table_text(value: Any) -> str:
    """One table cell before escaping."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, Enum):
        return _table_text(value.value)
    if isinstance(value, datetime):
        return _aware(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return ", ".join(_table_text(item) for item in _sorted_if_possible(value))
    if isinstance(value, list | tuple):
        return ", ".join(_table_text(item) for item in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{key}={_table_text(item)}" for key, item in value.items())
    return str(value)


# --------------------------------------------------------------------------------------------------
# render


def render(
    records: Iterable[Mapping[str, Any]] | Mapping[str, Any],
    fmt: str,
    *,
    columns: Sequence[Column | str] | None = None,
    title: str | None = None,
    file: TextIO | None = None,
    single: bool = False,
    table_columns: Sequence[Column | str] | None = None,
) -> None:
    """Write ``records`` to ``file`` (stdout by default) as a table, JSON or CSV.

    ``columns`` are the fields of every format (default: the records' keys); ``table_columns``, when
    given, is the shorter selection a table shows to people (JSON and CSV keep every field).

    With ``single=True``, ``records`` is one record (a mapping, or an iterable holding exactly one):
    JSON prints one object and the table is a two-column field/value table.
    An unknown ``fmt`` raises :class:`pepsctl.errors.UsageError`.
    """
    if fmt not in FORMATS:
        from pepsctl.errors import UsageError

        raise UsageError(
            _("Unknown format {fmt!r}.").format(fmt=fmt),
            hint=_("Use one of: {formats}.").format(formats=", ".join(FORMATS)),
        )
    out: TextIO = file if file is not None else sys.stdout
    cols = _columns(table_columns if fmt == "table" and table_columns is not None else columns)
    rows: Iterable[Any]
    if single:
        rows = [_single_record(records)]
    elif isinstance(records, Mapping):
        raise TypeError("render() got one mapping: pass single=True or a list of records")
    else:
        rows = records
    if fmt == "json":
        _render_json(rows, cols, out, single=single)
    elif fmt == "csv":
        _write_csv_rows(out, rows, cols, delimiter=",")
    elif single:
        _render_single_table(next(iter(rows)), cols, title, out)
    else:
        _render_table(rows, cols, title, out)
    out.flush()


def _single_record(records: Any) -> Mapping[str, Any]:
    record_like = (
        isinstance(records, Mapping)
        or callable(getattr(records, "model_dump", None))  # pydantic models iterate over (name, value)
        or callable(getattr(records, "_asdict", None))
        or (dataclasses.is_dataclass(records) and not isinstance(records, type))
    )
    if record_like or not isinstance(records, Iterable):
        return _as_mapping(records)
    items = list(records)
    if len(items) != 1:
        raise ValueError(f"single=True needs exactly one record, got {len(items)}")
    return _as_mapping(items[0])


def _project(record: Mapping[str, Any], cols: list[Column] | None) -> dict[str, Any]:
    if cols is None:
        return {str(key): value for key, value in record.items()}
    return {column.key: record.get(column.key) for column in cols}


# ---- batches and flat records

# The most records written at once; the first batch holds one record, each next one twice as many.
BATCH_ROWS = 1000


def _batches(rows: Iterable[Any]) -> Iterator[list[Any]]:
    iterator = iter(rows)
    size = 1
    while batch := list(islice(iterator, size)):
        yield batch
        size = min(2 * size, BATCH_ROWS)


def _record_getter(kind: type, keys: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]] | None:
    """A C-level getter of the ``keys`` of a record of type ``kind``, giving what ``_as_mapping(record).get``
    gives, or None when ``kind`` needs :func:`_as_mapping`."""
    getter: Callable[[Any], Any]
    if kind is dict:
        getter = itemgetter(*keys)  # a missing key raises KeyError: see _batch_values
    elif (
        dataclasses.is_dataclass(kind)
        and not issubclass(kind, Mapping | type)
        and getattr(kind, "__dictoffset__", None) == 0  # slots only: no instance attribute shadows the class
        and getattr(kind, "model_dump", None) is None
        and not hasattr(kind, "__getattr__")
        and kind.__getattribute__ is object.__getattribute__
    ):
        names = tuple(field.name for field in dataclasses.fields(kind))
        if not names or not set(keys) <= set(names):
            return None
        if keys == names:
            getter = attrgetter(*names)
        else:  # every field is read, as _as_mapping does (an unset one fails the same way)
            fetch, pick = attrgetter(*names), itemgetter(*(names.index(key) for key in keys))
            if len(names) == 1:
                return lambda record: (fetch(record),) * len(keys)
            getter = lambda record: pick(fetch(record))  # noqa: E731
    else:
        return None
    if len(keys) == 1:
        return lambda record: (getter(record),)
    return getter


def _batch_values(records: list[Any], keys: Sequence[str]) -> list[tuple[Any, ...]]:
    """For each record, the values of ``keys``: ``_as_mapping(record).get(key)`` for each key."""
    key_tuple = tuple(keys)
    kinds = set(map(type, records))
    if len(kinds) == 1 and key_tuple:
        getter = _record_getter(kinds.pop(), key_tuple)
        if getter is not None:
            try:
                return list(map(getter, records))
            except KeyError:  # a dict without some key: .get gives None
                pass
    return [tuple(map(_as_mapping(record).get, key_tuple)) for record in records]


# ---- JSON


def _json_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2).translate(_JSON_ESCAPES)


def _json_object(record: Any, cols: list[Column] | None) -> str:
    """One record as ``json.dumps(indent=2)`` writes it, escaped: the general path, for any record."""
    return _json_dumps(_jsonable(_project(_as_mapping(record), cols)))


def _json_general_rows(records: Iterable[Any], cols: list[Column] | None, out: TextIO, first: bool) -> bool:
    """Write ``records`` as items of the JSON list, one by one; return whether none was written yet."""
    for record in records:
        out.write("[\n  " if first else ",\n  ")
        out.write(_json_object(record, cols).replace("\n", "\n  "))
        first = False
    return first


def _render_json_general(rows: Iterable[Any], cols: list[Column] | None, out: TextIO, *, single: bool) -> None:
    """The general path, record by record: the reference whose bytes the fast path reproduces (tests)."""
    if single:
        (record,) = rows
        out.write(_json_object(record, cols) + "\n")
        return
    first = _json_general_rows(rows, cols, out, True)
    out.write("[]\n" if first else "\n]\n")


class _NotFlat(Exception):
    """A value that is not a scalar in JSON: the record goes by the general path."""


def _flat_default(value: Any) -> Any:
    """The JSON encoder's hook for what it cannot write itself (datetimes, enums…): the scalar of _jsonable."""
    if type(value) is datetime:
        return _aware(value).isoformat()  # what _jsonable gives, sooner
    converted = _jsonable(value)
    if isinstance(converted, list | dict):
        raise _NotFlat
    return converted


# The C encoder (no ``indent``) writes a list of scalars with a raw newline between two values and
# nowhere else: strings escape theirs.
_VALUES_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=("\n", ": "), default=_flat_default)
_JSON_ESCAPE_PATTERN = re.compile("[" + "".join(re.escape(chr(code)) for code in _JSON_ESCAPES) + "]")
# Containers the encoder writes itself, on one line: a record holding one goes by the general path.
_JSON_CONTAINERS = (list, tuple, dict)


def _flat_keys(cols: list[Column] | None) -> tuple[str, ...] | None:
    return tuple(column.key for column in cols) if cols is not None else None


def _json_template(keys: tuple[str, ...], margin: str) -> str:
    """A flat object of ``keys`` as ``json.dumps(indent=2)`` lays it out, indented by ``margin``, with a
    ``%s`` for each value."""
    inner = "\n" + margin + "  "
    fields = ("," + inner).join(_json_dumps(key).replace("%", "%%") + ": %s" for key in keys)
    return margin + "{" + inner + fields + "\n" + margin + "}"


def _json_flat(records: list[Any], keys: tuple[str, ...] | None, margin: str) -> str | None:
    """``records`` as objects indented by ``margin`` and joined by ``,\\n``, exactly as the general path
    writes them, or None when they are not flat records of the same keys (then the caller takes the
    general path).

    The values of all the records are encoded by one call of the C encoder, then set in a template of
    the objects' layout (keys encoded once).
    """
    try:
        rows: list[Any]
        if keys is None:
            if set(map(type, records)) != {dict}:
                return None  # other mappings, or records to convert
            key_sets = set(map(tuple, records))
            if len(key_sets) != 1:
                return None  # records of different keys
            (keys,) = key_sets
            rows = list(map(dict.values, records))
        else:
            rows = _batch_values(records, keys)
        if not keys or len(set(keys)) != len(keys) or any(type(key) is not str for key in keys):
            return None  # {}, a key written once for two columns, keys that str() converts
        values = list(chain.from_iterable(rows))
        if any(issubclass(kind, _JSON_CONTAINERS) for kind in set(map(type, values))):
            return None
        encoded = _VALUES_ENCODER.encode(values)
    except Exception:  # _NotFlat, a non-finite float, a record that fails: the general path decides
        return None
    if ("\x7f" in encoded or not encoded.isascii()) and _JSON_ESCAPE_PATTERN.search(encoded):  # DEL is ASCII
        encoded = encoded.translate(_JSON_ESCAPES)
    parts = encoded[1:-1].split("\n")
    if len(parts) != len(values):  # pragma: no cover - cannot happen: every raw newline is a separator
        return None
    return ",\n".join([_json_template(keys, margin)] * len(rows)) % tuple(parts)


def _render_json(rows: Iterable[Any], cols: list[Column] | None, out: TextIO, *, single: bool) -> None:
    keys = _flat_keys(cols)
    if single:
        (record,) = rows
        text = _json_flat([record], keys, "")
        out.write((text if text is not None else _json_object(record, cols)) + "\n")
        return
    first = True
    for batch in _batches(rows):
        text = _json_flat(batch, keys, "  ")
        if text is None:
            first = _json_general_rows(batch, cols, out, first)
        else:
            out.write(("[\n" if first else ",\n") + text)
            first = False
    out.write("[]\n" if first else "\n]\n")


# ---- CSV


def _csv_line(fields: Sequence[str], delimiter: str) -> str:
    """One CSV record ending in ``\\n``: RFC 4180 quoting, done here because :mod:`csv` with a ``\\n``
    terminator leaves a field holding a lone ``\\r`` unquoted (a broken file)."""
    cells = []
    for field in fields:
        if delimiter in field or '"' in field or "\n" in field or "\r" in field:
            field = '"' + field.replace('"', '""') + '"'
        cells.append(field)
    if cells == [""]:
        cells = ['""']  # a lone empty field would be a blank line, which readers skip
    return delimiter.join(cells) + "\n"


def _check_delimiter(delimiter: str) -> None:
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise ValueError(f"bad CSV delimiter {delimiter!r}")


def _write_csv_rows_general(out: IO[str], rows: Iterable[Any], cols: list[Column] | None, *, delimiter: str) -> int:
    """The general path, record by record: the reference whose bytes :func:`_write_csv_rows` reproduces
    (tests)."""
    _check_delimiter(delimiter)
    keys: list[str] | None = [column.key for column in cols] if cols is not None else None
    if keys is not None:
        out.write(_csv_line([neutralise(key) for key in keys], delimiter))
    count = 0
    for raw in rows:
        record = _as_mapping(raw)
        if keys is None:
            keys = [str(key) for key in record]
            out.write(_csv_line([neutralise(key) for key in keys], delimiter))
        out.write(_csv_line([_csv_cell(record.get(key)) for key in keys], delimiter))
        count += 1
    return count


def _write_csv_rows(out: IO[str], rows: Iterable[Any], cols: list[Column] | None, *, delimiter: str) -> int:
    """Stream CSV: header of column keys (the first record's keys when no columns), then rows, in batches."""
    _check_delimiter(delimiter)
    keys: list[str] | None = [column.key for column in cols] if cols is not None else None
    if keys is not None:
        out.write(_csv_line([neutralise(key) for key in keys], delimiter))
    count = 0
    for batch in _batches(rows):
        if keys is None:
            keys = [str(key) for key in _as_mapping(batch[0])]
            out.write(_csv_line([neutralise(key) for key in keys], delimiter))
        try:
            text = _csv_lines(batch, keys, delimiter)
        except Exception:  # a record the fast path cannot take: the general path fails (or not) on its own
            _csv_general_rows(out, batch, keys, delimiter)
        else:
            out.write(text)
        count += len(batch)
    return count


def _csv_general_rows(out: IO[str], records: Iterable[Any], keys: Sequence[str], delimiter: str) -> None:
    for raw in records:
        record = _as_mapping(raw)
        out.write(_csv_line([_csv_cell(record.get(key)) for key in keys], delimiter))


# The CSV cell of a value of exactly these types, as _csv_cell makes it (str is handled inline).
_CSV_CELLS: dict[type, Callable[[Any], str]] = {
    type(None): lambda value: "",
    bool: lambda value: "true" if value else "false",
    int: str,
    float: str,
    datetime: lambda value: neutralise(_aware(value).isoformat()),
    date: lambda value: neutralise(value.isoformat()),
}
# A text can need neutralising only when it starts with one of these (see pepsctl.csvsafe).
_NEUTRALISABLE_STARTS = frozenset("=+-@\t\r\n'")


def _csv_lines(records: list[Any], keys: Sequence[str], delimiter: str) -> str:
    """The CSV lines of ``records``, exactly as :func:`_csv_general_rows` writes them."""
    width = len(keys)
    cells_of = _CSV_CELLS
    lines = []
    for values in _batch_values(records, keys):
        cells = [
            (neutralise(value) if value[:1] in _NEUTRALISABLE_STARTS else value)
            if type(value) is str
            else cells_of.get(type(value), _csv_cell)(value)
            for value in values
        ]
        line = delimiter.join(cells)
        if not line:
            lines.append(_csv_line(cells, delimiter))  # the lone empty cell
        elif '"' in line or "\n" in line or "\r" in line or line.count(delimiter) != width - 1:
            # quoting needed: what _csv_line does, without its call
            quoted = [
                '"' + cell.replace('"', '""') + '"'
                if delimiter in cell or '"' in cell or "\n" in cell or "\r" in cell
                else cell
                for cell in cells
            ]
            lines.append(delimiter.join(quoted) + "\n")
        else:
            lines.append(line + "\n")
    return "".join(lines)


def write_csv(
    path_or_file: str | os.PathLike[str] | IO[str],
    records: Iterable[Mapping[str, Any]],
    columns: Sequence[Column | str] | None,
    *,
    delimiter: str = ",",
) -> int:
    """Write ``records`` as CSV (the rules of ``render(fmt="csv")``) and return the number of rows.

    A path is created (or truncated) with mode 0600 and written in ``utf-8-sig`` (with a BOM, so
    French Excel reads the accents); pass ``delimiter=";"`` for a file meant for French Excel. The
    path ``-`` means stdout (no BOM). An open text file is written as it is (its encoding, no BOM).
    """
    cols = _columns(columns)
    if not isinstance(path_or_file, str | os.PathLike):
        return _write_csv_rows(path_or_file, records, cols, delimiter=delimiter)
    if os.fspath(path_or_file) == "-":
        count = _write_csv_rows(sys.stdout, records, cols, delimiter=delimiter)
        sys.stdout.flush()
        return count
    fd = create_private(path_or_file)
    with open(fd, "w", encoding="utf-8-sig", newline="") as handle:
        return _write_csv_rows(handle, records, cols, delimiter=delimiter)


def create_private(path: str | os.PathLike[str]) -> int:
    """Create (or truncate) ``path`` with mode 0600 and return its descriptor, open for writing.

    A path that cannot be written (no such directory, a directory, no permission) raises
    :class:`pepsctl.errors.InvalidInput` (exit 3) naming it, never a traceback.
    """
    try:
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    except OSError as error:
        from pepsctl.errors import InvalidInput

        raise InvalidInput(
            _("Cannot write {path}: {reason}").format(path=os.fspath(path), reason=error.strerror or error),
            field="output",
        ) from None
    if hasattr(os, "fchmod"):
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_TRUNC: tighten it
    return fd


# ---- table


def _console(out: TextIO) -> Console:
    from rich.console import Console

    width = None
    if not _isatty(out) and not os.environ.get("COLUMNS"):
        width = 200  # piped to a file or a pager: do not squeeze the table into 80 columns
    return Console(file=out, markup=False, highlight=False, emoji=False, width=width)


# Above this many rows a table is laid out by a plain formatter: Rich measures and wraps every cell,
# which takes seconds for thousands of rows (a 2,000-account rights matrix: 4.6 s against 0.1 s).
PLAIN_TABLE_ROWS = 300


def _render_plain_table(records: list[Mapping[str, Any]], cols: list[Column], title: str | None, out: TextIO) -> None:
    """The same columns, escaped the same way, padded to the widest cell; no wrapping."""
    import unicodedata

    def width(text: str) -> int:
        return (
            sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text) if not text.isascii() else len(text)
        )

    cells = [[_safe_cell(_table_text(record.get(column.key))) for column in cols] for record in records]
    labels = [_safe_cell(column.label) for column in cols]
    widths = [max([width(labels[i]), *(width(row[i]) for row in cells)]) for i in range(len(cols))]

    def line(values: list[str]) -> str:
        parts = []
        for i, value in enumerate(values):
            room = widths[i] - width(value)
            if cols[i].justify == "right":
                parts.append(" " * room + value)
            elif cols[i].justify == "center":
                parts.append(" " * (room // 2) + value + " " * (room - room // 2))
            else:
                parts.append(value + " " * room)
        return "  " + "   ".join(parts).rstrip()

    if title:
        out.write(_safe_cell(title) + "\n\n")
    out.write(line(labels) + "\n")
    out.write(" " + "━" * (sum(widths) + 3 * (len(widths) - 1) + 2) + "\n")
    out.write("\n".join(line(row) for row in cells) + "\n")


def _render_table(rows: Iterable[Any], cols: list[Column] | None, title: str | None, out: TextIO) -> None:
    records = [_as_mapping(record) for record in rows]
    if not records:
        info(_("No results."))
        return
    if cols is None:
        seen: dict[str, None] = {}
        for record in records:
            seen.update(dict.fromkeys(str(key) for key in record))
        cols = [Column(key) for key in seen]
    if len(records) > PLAIN_TABLE_ROWS:
        _render_plain_table(records, cols, title, out)
        return

    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(_safe_cell(title)) if title else None, box=box.SIMPLE_HEAVY)
    for column in cols:
        justify = cast("JustifyMethod", column.justify)
        label = _safe_cell(column.label)
        table.add_column(Text(label), justify=justify, overflow="fold", min_width=min(len(label), 12))
    for record in records:
        table.add_row(*(Text(_safe_cell(_table_text(record.get(column.key)))) for column in cols))
    _console(out).print(table)


def _render_single_table(record: Mapping[str, Any], cols: list[Column] | None, title: str | None, out: TextIO) -> None:
    if cols is None:
        cols = [Column(str(key)) for key in record]

    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(_safe_cell(title)) if title else None, box=box.SIMPLE_HEAVY)
    table.add_column(Text(_("Field")), overflow="fold")
    table.add_column(Text(_("Value")), overflow="fold")
    for column in cols:
        table.add_row(Text(_safe_cell(column.label)), Text(_safe_cell(_table_text(record.get(column.key)))))
    _console(out).print(table)


# --------------------------------------------------------------------------------------------------
# Messages for people (stderr)


def _say(text: str) -> None:
    stream = sys.stderr
    stream.write(_safe_message(text) + "\n")
    stream.flush()


def info(message: str) -> None:
    """A plain message for people, on stderr (no markup, control characters escaped)."""
    _say(message)


def warn(message: str) -> None:
    """``Warning: message`` on stderr."""
    _say(_("Warning: {message}").format(message=message))


def success(message: str) -> None:
    """A message saying something was done, on stderr."""
    _say(message)


def error(message: str, hint: str | None = None) -> None:
    """``Error: message`` and, with a hint, ``Hint: hint`` on stderr."""
    _say(_("Error: {message}").format(message=message))
    if hint:
        _say(_("Hint: {hint}").format(hint=hint))


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def is_interactive() -> bool:
    """True when both stdin and stderr are terminals (a person can answer a prompt)."""
    return _isatty(sys.stdin) and _isatty(sys.stderr)


def _no_op(n: int = 1) -> None:
    """The advance callback when progress is not shown."""


@contextmanager
def progress(total: int | None, description: str, *, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (bar, count, percentage, ETA); yields ``advance(n)``.

    The bar shows only when ``enabled`` and stderr is a terminal; otherwise ``advance`` does
    nothing. ``total=None`` shows an indeterminate bar.
    """
    if not (enabled and _isatty(sys.stderr)):
        yield _no_op
        return

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    console = Console(file=sys.stderr, markup=False, highlight=False, emoji=False)
    columns = (
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(_safe_cell(description), total=total)

        def advance(n: int = 1) -> None:
            bar.advance(task, n)

        yield advance
