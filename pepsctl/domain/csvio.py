"""The one CSV reader: real files from spreadsheets, as administrators produce them.

- Encodings: UTF-8 (with or without BOM), then Windows-1252 (French Excel's "CSV (séparateur :
  point-virgule)"); the one that decodes is kept.
- Delimiter: ``;`` or ``,`` (or tab), sniffed from the header line.
- Headers in French or English, matched without case, accents, spaces or punctuation
  (``Téléphone``, ``telephone``, ``phone``, ``N° portable``…), mapped to the command's fields;
  columns the command does not own are ignored (and named in a warning), never applied.
- A column that looks like a NIR (numéro de sécurité sociale) is dropped with a warning: pepsctl
  never stores one.
- The one leading ``'`` that spreadsheet-safe exports add is stripped again.
- A file that cannot be read raises InvalidInput (exit 3) with the line number and a hint.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pepsctl.csvsafe import unneutralise
from pepsctl.errors import InvalidInput
from pepsctl.i18n import _

MAX_FIELD = 10_000
MAX_BYTES = 512 * 1024 * 1024

# Every header spelling pepsctl knows, by field (normalised: lower case, no accents, only a-z0-9).
ALIASES: dict[str, tuple[str, ...]] = {
    "identifier": ("identifier", "identifiant", "id", "login", "compte", "idcompte", "identifiantpeps"),
    "email": ("email", "courriel", "mail", "adressemail", "adressecourriel", "emailprofessionnel", "e_mail"),
    "phone": (
        "phone",
        "telephone",
        "tel",
        "portable",
        "mobile",
        "numero",
        "numerodetelephone",
        "telephoneportable",
        "telephonemobile",
        "ntelephone",
        "noteléphone",
        "ndetelephone",
        "phonenumber",
        "newphone",
        "nouveautelephone",
    ),
    "last_name": ("lastname", "nom", "nomdefamille", "nomdusage", "surname", "familyname"),
    "first_name": ("firstname", "prenom", "givenname"),
    "civility": ("civility", "civilite", "titre"),
    "profile": ("profile", "profil"),
    "function": ("function", "fonction", "service", "fonctionservice"),
    "establishment": ("establishment", "etablissement", "siret"),
    "service": ("service", "service_code", "servicecode", "codeservice", "code"),
    "level": ("level", "niveau", "droit"),
    "current_phone": ("currentphone", "telephoneactuel", "ancientelephone", "oldphone"),
    "status": ("status", "statut"),
    "expires_at": ("expiresat", "expiration", "dateexpiration"),
}
_NIR_HEADERS = ("nir", "numerodesecuritesociale", "securitesociale", "numerosecu", "nss", "insee", "numeroinsee")
_NIR_VALUE = re.compile(r"^[12][0-9]{2}(0[1-9]|1[0-2]|[2-9][0-9])(2[AB]|[0-9]{2})[0-9]{3}[0-9]{3}([0-9]{2})?$")


def normalise_header(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.strip().lstrip("\ufeff"))
    ascii_only = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    return re.sub(r"[^a-z0-9]", "", ascii_only)


# Header → the fields it may name, in ALIASES order: "service" is the function column of an
# accounts file and the service column of a rights file (the command's wanted fields decide).
_LOOKUP: dict[str, tuple[str, ...]] = {}
for _name, _aliases in ALIASES.items():
    for _alias in _aliases:
        _key = normalise_header(_alias)
        if _name not in _LOOKUP.get(_key, ()):
            _LOOKUP[_key] = (*_LOOKUP.get(_key, ()), _name)


def _value(cell: str) -> str:
    """A cell as a value: its spreadsheet-safe quote removed, stripped."""
    return (unneutralise(cell) if cell[:1] == "'" else cell).strip()


class Row(tuple):
    """One data row, in one tuple: ``(line, layout, *cells)``.

    A 300,000-row file makes 300,000 of them: a tuple of the cells costs a third of a dataclass holding a
    dict and a tuple. ``values`` (by field name) is derived from the cells on access; a loop over every
    row reads one field with :meth:`CsvFile.getter` instead.
    """

    __slots__ = ()

    def __new__(cls, line: int, layout: tuple[tuple[str, int], ...], cells: Iterable[str]) -> Row:
        return tuple.__new__(cls, (line, layout, *cells))

    @property
    def line(self) -> int:
        """The line number in the file (the header is line 1; a multi-line record: the line it ends on)."""
        return self[0]

    @property
    def cells(self) -> tuple[str, ...]:
        """The cells as in the file, for reports."""
        return self[2:]

    @property
    def values(self) -> dict[str, str]:
        """The command's fields: the cell stripped, its spreadsheet-safe quote removed; ``""`` when missing.

        The mapping of the row last asked is kept: a loop reading several fields of a row builds it once.
        """
        global _last_values
        last = _last_values
        if last[0] is self:
            return last[1]
        width = len(self)
        values = {name: _value(self[i]) if i < width else "" for name, i in self[1]}
        _last_values = (self, values)
        return values

    def __repr__(self) -> str:
        return f"Row(line={self[0]!r}, values={self.values!r}, cells={self.cells!r})"


_last_values: tuple[object, dict[str, str]] = (None, {})  # (row, its values): see Row.values


@dataclass(slots=True)
class CsvFile:
    path: str
    sha256: str
    encoding: str
    delimiter: str
    headers: list[str]
    fields: dict[str, str]  # field -> original header
    rows: list[Row]
    warnings: list[str] = field(default_factory=list)
    parsed: dict[str, object] = field(default_factory=dict)  # values normalised before the transaction
    layout: tuple[tuple[str, int], ...] = ()  # (field, its index in a Row) for every mapped field

    def getter(self, name: str) -> Callable[[Row], str]:
        """A function giving ``row.values.get(name, "")`` without building the mapping (loops over every row)."""
        index = dict(self.layout).get(name)
        if index is None:
            return lambda _row: ""

        def get(row: Row) -> str:
            if index < len(row):
                cell = row[index]
                return (unneutralise(cell) if cell[:1] == "'" else cell).strip()  # _value, inlined: 300,000 calls
            return ""

        return get


def _decode(data: bytes) -> tuple[str, str]:
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as error:
            raise _undecodable(data[3:], error) from error  # error.start counts from after the BOM
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError as error:
        raise _undecodable(data, error) from error


def _undecodable(data: bytes, error: UnicodeDecodeError) -> InvalidInput:
    line = data[: error.start].count(b"\n") + 1
    return InvalidInput(
        _("Line {line}: the file is neither UTF-8 nor Windows-1252 text.").format(line=line),
        field="file",
        hint=_("Save it from the spreadsheet as 'CSV UTF-8' or 'CSV (séparateur : point-virgule)'."),
    )


def _sniff(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (";", ",", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read(
    path: str | Path,
    *,
    wanted: Iterable[str],
    required_any: Iterable[Iterable[str]] = (),
) -> CsvFile:
    """Read a CSV file and map its headers to ``wanted`` fields.

    ``required_any`` lists groups of fields of which at least one must be present
    (e.g. ``[("identifier", "email"), ("phone",)]``).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InvalidInput(
            _("Cannot read {path}: {reason}").format(path=path, reason=error.strerror or error), field="file"
        ) from error
    if len(data) > MAX_BYTES:
        raise InvalidInput(_("{path} is larger than 512 MB.").format(path=path), field="file")
    if b"\x00" in data[:65536]:
        raise InvalidInput(
            _("Line 1: {path} is not a text file.").format(path=path),
            field="file",
            hint=_("Export the sheet as CSV from the spreadsheet."),
        )
    text, encoding = _decode(data)
    return parse(
        text,
        path=str(path),
        sha256=hashlib.sha256(data).hexdigest(),
        encoding=encoding,
        wanted=wanted,
        required_any=required_any,
    )


def parse(
    text: str,
    *,
    path: str = "-",
    sha256: str = "",
    encoding: str = "utf-8",
    wanted: Iterable[str],
    required_any: Iterable[Iterable[str]] = (),
) -> CsvFile:
    wanted = tuple(wanted)
    first_line = text.split("\n", 1)[0]
    if not first_line.strip():
        raise InvalidInput(
            _("Line 1: {path} has no header row.").format(path=path),
            field="file",
            hint=_("The first line names the columns, e.g. identifier;phone."),
        )
    delimiter = _sniff(first_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        headers = next(reader)
    except csv.Error as error:
        raise InvalidInput(_("Line 1: {reason}").format(reason=error), field="file") from error
    headers = [h.strip().lstrip("\ufeff") for h in headers]
    fields: dict[str, str] = {}
    index: dict[str, int] = {}
    warnings: list[str] = []
    ignored: list[str] = []
    nir_headers: set[int] = set()  # blanked in the rows too, whatever their values look like
    for position, header in enumerate(headers):
        key = normalise_header(header)
        if key in _NIR_HEADERS or "securitesociale" in key:
            warnings.append(
                _("Column {header!r} looks like a NIR: it is ignored and never stored.").format(header=header)
            )
            nir_headers.add(position)
            continue
        name = next((n for n in _LOOKUP.get(key, ()) if n in wanted and n not in fields), None)
        if name is not None:
            fields[name] = header
            index[name] = position
        elif header:
            ignored.append(header)
    if ignored:
        warnings.append(_("Columns not used by this command (ignored): {names}.").format(names=", ".join(ignored)))
    for group in required_any:
        group = tuple(group)
        if not any(name in fields for name in group):
            raise InvalidInput(
                _("Line 1: no column for {names}.").format(names=" or ".join(group)),
                field="file",
                hint=_("Headers found: {found}. Expected e.g.: {expected}.").format(
                    found=", ".join(headers) or "-", expected=";".join(g[0] for g in map(tuple, required_any))
                ),
            )
    rows: list[Row] = []
    nir_columns: set[int] = set()
    used = set(index.values())
    unused = [i for i in range(len(headers)) if i not in used]  # where a NIR may hide
    layout = tuple((name, position + 2) for name, position in index.items())  # + 2: a Row starts with line, layout
    append = rows.append
    try:
        for cells in reader:
            line = reader.line_num
            if not "".join(cells).strip():
                continue
            if max(map(len, cells)) > MAX_FIELD:
                raise InvalidInput(
                    _("Line {line}: a cell is longer than {n} characters.").format(line=line, n=MAX_FIELD),
                    field="file",
                )
            width = len(cells)
            for i in unused if width <= len(headers) else [*unused, *range(len(headers), width)]:
                if i < width and 12 < len(cells[i]) < 22 and _NIR_VALUE.match("".join(cells[i].split())):
                    nir_columns.add(i)
            append(Row(line, layout, cells))
    except csv.Error as error:
        raise InvalidInput(
            _("Line {line}: {reason}").format(line=reader.line_num, reason=error),
            field="file",
            hint=_("Check the quotes on that line (a cell with {delimiter!r} or a line break must be quoted).").format(
                delimiter=delimiter
            ),
        ) from error
    if nir_columns:
        names = [headers[i] if i < len(headers) and headers[i] else str(i + 1) for i in sorted(nir_columns)]
        warnings.append(
            _("Column(s) {names} hold values that look like NIRs: they are ignored and never stored.").format(
                names=", ".join(names)
            )
        )
    if blanked := nir_columns | nir_headers:
        rows = [Row(r.line, layout, ("" if i in blanked else c for i, c in enumerate(r.cells))) for r in rows]
    return CsvFile(path, sha256, encoding, delimiter, headers, fields, rows, warnings, layout=layout)


def report_rows(headers: list[str], rows: Iterable[tuple[Row, str]]) -> list[Mapping[str, str]]:
    """Rejected rows in their input columns, plus ``line`` and ``reason``, ready to fix and feed back."""
    named = [(i, h) for i, h in enumerate(headers) if h]
    return [
        {**{h: (row.cells[i] if i < len(row.cells) else "") for i, h in named}, "line": str(row.line), "reason": reason}
        for row, reason in rows
    ]
