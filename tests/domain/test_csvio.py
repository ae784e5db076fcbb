"""pepsctl.domain.csvio: real spreadsheet files read, or refused with exit 3 and a line number.

cli.md "CSV files" and security.md "Data and files" (no NIR) and "Bulk and concurrency" (the leading
quote of a neutralised cell is stripped again). No store is needed: every test writes its file in
tmp_path and reads it with the phones command's fields.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pepsctl.csvsafe import neutralise, unneutralise
from pepsctl.domain import csvio
from pepsctl.errors import InvalidInput

WANTED = ("identifier", "email", "phone", "last_name", "first_name")
REQUIRED = [("identifier", "email"), ("phone",)]


def read(path: Path) -> csvio.CsvFile:
    return csvio.read(path, wanted=WANTED, required_any=REQUIRED)


def write(tmp_path: Path, data: bytes | str, name: str = "phones.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def refused(path: Path) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        read(path)
    assert caught.value.exit_code == 3
    return caught.value


# -- encodings ---------------------------------------------------------------------------------------

ACCENTED = "Identifiant;Nom;Prénom;Téléphone\nJDU000002;Hélène-Noël;Françoise;06 12 34 56 78\n"
ACCENTED_ROW = {
    "identifier": "JDU000002",
    "last_name": "Hélène-Noël",
    "first_name": "Françoise",
    "phone": "06 12 34 56 78",
}


def test_utf8_without_bom_is_read(tmp_path):
    source = read(write(tmp_path, ACCENTED.encode("utf-8")))

    assert source.encoding == "utf-8"
    assert [r.values for r in source.rows] == [ACCENTED_ROW]


def test_utf8_with_bom_is_read_and_the_bom_is_not_part_of_the_first_header(tmp_path):
    source = read(write(tmp_path, b"\xef\xbb\xbf" + ACCENTED.encode("utf-8")))

    assert source.encoding == "utf-8-sig"
    assert source.headers[0] == "Identifiant"
    assert source.fields["identifier"] == "Identifiant"
    assert [r.values for r in source.rows] == [ACCENTED_ROW]


def test_windows_1252_from_french_excel_is_read_with_its_accents(tmp_path):
    data = ACCENTED.replace("\n", "\r\n").encode("cp1252")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")  # the test file really is not UTF-8

    source = read(write(tmp_path, data))

    assert source.encoding == "cp1252"
    assert [r.values for r in source.rows] == [ACCENTED_ROW]


def test_bytes_neither_utf8_nor_windows_1252_are_refused_with_their_line(tmp_path):
    # 0x81 is undefined in Windows-1252 and invalid alone in UTF-8.
    error = refused(write(tmp_path, b"identifier;phone\nA;1\nB;\x81\n"))

    assert error.message.startswith("Line 3:")
    assert "neither UTF-8 nor Windows-1252" in error.message


def test_a_bom_followed_by_invalid_utf8_is_refused(tmp_path):
    error = refused(write(tmp_path, b"\xef\xbb\xbfidentifier;phone\nA;\xe9\n"))

    assert error.message.startswith("Line 2:")


# -- delimiters --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("delimiter", "name"), [(";", "semicolon"), (",", "comma"), ("\t", "tab")])
def test_the_delimiter_is_sniffed(tmp_path, delimiter, name):
    text = delimiter.join(["identifier", "phone", "last_name"]) + "\n"
    text += delimiter.join(["JDU000002", "06 12 34 56 78", "Dupont"]) + "\n"

    source = read(write(tmp_path, text, f"{name}.csv"))

    assert source.delimiter == delimiter
    assert [r.values for r in source.rows] == [
        {"identifier": "JDU000002", "phone": "06 12 34 56 78", "last_name": "Dupont"}
    ]


def test_a_semicolon_file_keeps_commas_inside_cells(tmp_path):
    source = read(write(tmp_path, "identifier;phone;nom\nJDU000002;0612345678;Dupont, épouse Martin\n"))

    assert source.delimiter == ";"
    assert source.rows[0].values["last_name"] == "Dupont, épouse Martin"


def test_a_quoted_cell_may_hold_the_delimiter_and_a_line_break(tmp_path):
    source = read(write(tmp_path, 'identifier;phone;nom\nJDU000002;0612345678;"Du;pont\nbis"\nPMA000003;07;X\n'))

    assert [r.line for r in source.rows] == [3, 4]  # the line where each record ends
    assert source.rows[0].values["last_name"] == "Du;pont\nbis"


# -- headers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (["Identifiant", "Téléphone", "Courriel"], ["identifier", "phone", "email"]),
        (["IDENTIFIANT", "TÉLÉPHONE", "COURRIEL"], ["identifier", "phone", "email"]),
        (["identifiant", "telephone", "courriel"], ["identifier", "phone", "email"]),
        (["Identifier", "Phone", "E-mail"], ["identifier", "phone", "email"]),
        (["identifier", "phone", "email"], ["identifier", "phone", "email"]),
        (["Courriel", "N° de téléphone"], ["email", "phone"]),
        (["  Identifiant ", "Téléphone portable", "Adresse mail"], ["identifier", "phone", "email"]),
        (["Nom", "Prénom", "Identifiant", "Tél"], ["last_name", "first_name", "identifier", "phone"]),
        (["last_name", "first_name", "identifier", "Phone Number"], ["last_name", "first_name", "identifier", "phone"]),
    ],
)
def test_french_and_english_headers_match_without_case_or_accents(tmp_path, headers, expected):
    cells = [f"v{i}" for i in range(len(headers))]
    source = read(write(tmp_path, ";".join(headers) + "\n" + ";".join(cells) + "\n"))

    assert list(source.fields) == expected
    assert source.rows[0].values == dict(zip(expected, cells, strict=True))


def test_columns_the_command_does_not_own_are_ignored_with_a_warning(tmp_path):
    source = read(write(tmp_path, "identifier;phone;profil;droits\nJDU000002;0612345678;admin;all\n"))

    assert source.rows[0].values == {"identifier": "JDU000002", "phone": "0612345678"}
    assert source.warnings == ["Columns not used by this command (ignored): profil, droits."]


def test_the_first_of_two_columns_for_one_field_wins(tmp_path):
    source = read(write(tmp_path, "identifier;phone;mobile\nJDU000002;0612345678;0799999999\n"))

    assert source.fields == {"identifier": "identifier", "phone": "phone"}
    assert source.rows[0].values["phone"] == "0612345678"


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        ("identifier;nom", "phone"),
        ("courriel;nom", "phone"),
        ("telephone;nom", "identifier or email"),
        ("nom;prenom", "identifier or email"),
    ],
)
def test_a_missing_required_column_is_refused_naming_it(tmp_path, header, missing):
    error = refused(write(tmp_path, header + "\nx;y\n"))

    assert error.message == f"Line 1: no column for {missing}."
    assert error.hint is not None and header.replace(";", ", ") in error.hint


# -- the leading quote of a neutralised cell -----------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("'+33612345678", "+33612345678"),
        ("'=1+1", "=1+1"),
        ("'-12", "-12"),
        ("'@x", "@x"),
        ("''+33612345678", "'+33612345678"),  # exactly one quote is stripped
        ("'abc", "'abc"),  # not a neutralised cell: kept as it is
        ("'0612345678", "'0612345678"),
        ("+33612345678", "+33612345678"),
    ],
)
def test_the_one_quote_of_a_neutralised_cell_is_stripped(tmp_path, cell, value):
    source = read(write(tmp_path, f"identifier;phone;nom\nJDU000002;{cell};{cell}\n"))

    assert source.rows[0].values == {"identifier": "JDU000002", "phone": value, "last_name": value}
    assert source.rows[0].cells[1] == cell  # the report shows the cell as it was in the file


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=20))
def test_neutralise_then_read_gives_back_the_text(text):
    # The rule behind the template round trip, for every text (cells are stripped on reading).
    cell = '"' + neutralise(text).replace('"', '""') + '"'
    source = csvio.parse(f"identifier;nom\nJDU000002;{cell}\n", wanted=WANTED, required_any=[("identifier",)])

    assert source.rows[0].values["last_name"] == unneutralise(neutralise(text)).strip() == text.strip()


# -- NIR ---------------------------------------------------------------------------------------------

NIRS = ["1 84 12 76 451 089 46", "184127645108946", "2 69 05 2A 123 456 78", "1841276451089"]


@pytest.mark.parametrize("header", ["NIR", "Numéro de sécurité sociale", "N° sécurité sociale", "nss", "INSEE"])
def test_a_nir_header_drops_the_column_with_a_warning(tmp_path, header):
    source = read(write(tmp_path, f"identifier;phone;{header}\nJDU000002;0612345678;1 84 12 76 451 089 46\n"))

    assert f"Column {header!r} looks like a NIR: it is ignored and never stored." in source.warnings
    assert source.rows[0].values == {"identifier": "JDU000002", "phone": "0612345678"}
    report = csvio.report_rows(source.headers, [(source.rows[0], "refused")])
    assert "1 84 12 76 451 089 46" not in repr(source.rows) + repr(report)


def test_a_nir_header_drops_the_column_whatever_its_values_look_like(tmp_path):
    # Written with dots, the values escape the value check: the header alone must drop them.
    source = read(write(tmp_path, "identifier;phone;NIR\nJDU000002;0899 12 34 56;1.84.12.76.451.089.46\n"))

    report = csvio.report_rows(source.headers, [(source.rows[0], "premium")])
    assert "1.84.12.76.451.089.46" not in repr(source.rows) + repr(report)
    assert report == [
        {"identifier": "JDU000002", "phone": "0899 12 34 56", "NIR": "", "line": "2", "reason": "premium"}
    ]


@pytest.mark.parametrize("nir", [*NIRS, "1\u00a084\u00a012\u00a076\u00a0451\u00a0089\u00a046"])
def test_a_column_whose_values_look_like_nirs_is_dropped_with_a_warning(tmp_path, nir):
    text = f"identifier;phone;Référence\nJDU000002;0612345678;{nir}\nPMA000003;0799999999;\n"
    source = read(write(tmp_path, text))

    assert "Column(s) Référence hold values that look like NIRs: they are ignored and never stored." in source.warnings
    assert [r.values for r in source.rows] == [
        {"identifier": "JDU000002", "phone": "0612345678"},
        {"identifier": "PMA000003", "phone": "0799999999"},
    ]
    assert [r.cells for r in source.rows] == [("JDU000002", "0612345678", ""), ("PMA000003", "0799999999", "")]
    report = csvio.report_rows(source.headers, [(r, "x") for r in source.rows])
    assert nir not in repr(report)
    assert nir.replace(" ", "") not in repr(report).replace(" ", "")


@pytest.mark.parametrize("value", ["12345", "Service RH", "0612345678", "+33612345678", "384127645108946"])
def test_other_values_are_kept_in_the_report_cells(tmp_path, value):
    source = read(write(tmp_path, f"identifier;phone;Commentaire\nJDU000002;0612345678;{value}\n"))

    assert source.rows[0].cells[2] == value
    assert not any("NIR" in w for w in source.warnings)


# -- files that cannot be read ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('identifier;phone\nA;0612\nB;"06"x\nC;0614\n', 3),
        ('identifier;phone\nA;0612\nB;0613\nC;0614\nD;"06"1\n', 5),
        ('identifier;phone\nA;0612\nB;"0613\n', 3),
    ],
)
def test_a_bad_quote_is_refused_with_its_line_number(tmp_path, text, line):
    error = refused(write(tmp_path, text))

    assert error.message.startswith(f"Line {line}:")
    assert error.hint is not None and "quote" in error.hint


def test_a_bad_quote_in_the_header_is_refused_on_line_1(tmp_path):
    error = refused(write(tmp_path, 'identifier;"phone"x\nA;1\n'))

    assert error.message.startswith("Line 1:")


def test_a_binary_file_is_refused(tmp_path):
    data = b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00identifier;phone"  # an .xlsx, not a CSV
    path = write(tmp_path, data, "phones.xlsx")

    error = refused(path)

    assert error.message == f"Line 1: {path} is not a text file."
    assert error.hint == "Export the sheet as CSV from the spreadsheet."


@pytest.mark.parametrize("data", [b"", b"\n\n", b"\xef\xbb\xbf", b"   \r\n"])
def test_an_empty_file_is_refused(tmp_path, data):
    path = write(tmp_path, data)

    error = refused(path)

    assert error.message == f"Line 1: {path} has no header row."


def test_a_missing_file_is_refused(tmp_path):
    error = refused(tmp_path / "nowhere.csv")

    assert error.message.startswith(f"Cannot read {tmp_path / 'nowhere.csv'}:")


def test_a_header_only_file_has_no_rows(tmp_path):
    source = read(write(tmp_path, "identifier;phone\n;\n\n"))

    assert source.rows == []


def test_a_cell_too_long_is_refused_with_its_line(tmp_path):
    error = refused(write(tmp_path, "identifier;phone\nA;1\nB;" + "9" * (csvio.MAX_FIELD + 1) + "\n"))

    assert error.message == f"Line 3: a cell is longer than {csvio.MAX_FIELD} characters."


def test_lines_and_sha256_describe_the_file(tmp_path):
    import hashlib

    data = b"identifier;phone\r\nA;1\r\n\r\nB;2\r\n"
    source = read(write(tmp_path, data))

    assert [r.line for r in source.rows] == [2, 4]  # blank lines skipped, numbering kept
    assert source.sha256 == hashlib.sha256(data).hexdigest()


# -- anything else: InvalidInput, never a crash ------------------------------------------------------------

HEADER_PIECES = st.sampled_from(["identifier", "phone", "courriel", "Téléphone", "NIR", "", '"', "'", ";", ",", "\t"])
PRINTABLE = st.text(alphabet=st.sampled_from(list("AZaz09;,\t\"'\r\n =+-@é\x00\u00a0")), max_size=80)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.builds(lambda h, b: (h + "\n" + b).encode(), st.lists(HEADER_PIECES, max_size=6).map("".join), PRINTABLE),
        st.builds(lambda b: b"identifier;phone\n" + b, st.binary(max_size=200)),
        st.builds(lambda t: t.encode("cp1252", "replace"), PRINTABLE),
    )
)
def test_arbitrary_bytes_are_read_or_refused_with_invalid_input(tmp_path, data):
    path = tmp_path / "fuzz.csv"
    path.write_bytes(data)

    try:
        source = read(path)
    except InvalidInput as error:
        refusal = error
    else:
        refusal = None
    if refusal is not None:
        assert refusal.exit_code == 3
        assert refusal.message.startswith(("Line ", "Cannot read"))
        return
    assert all(set(r.values) <= set(WANTED) for r in source.rows)
    assert all(r.line >= 2 for r in source.rows)
