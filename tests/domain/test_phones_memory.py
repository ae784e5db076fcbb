"""The compact forms a 300,000-row phones import relies on (performance.md "Bulk phones import").

A CSV row is one tuple of its line and cells, its values derived on access; ``CsvFile.getter`` reads
one field of every row without building the mapping; both must give exactly what the mapping gives.
"""

from __future__ import annotations

import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pepsctl.csvsafe import neutralise
from pepsctl.domain import csvio

WANTED = ("identifier", "email", "phone")


def parse(text: str) -> csvio.CsvFile:
    return csvio.parse(text, wanted=WANTED, required_any=[("identifier", "email"), ("phone",)])


def test_a_row_is_one_tuple_of_its_line_and_cells():
    source = parse("identifiant;téléphone;commentaire\nJDU000002; 06 12 34 56 78 ;rien\nPMA000003\n")

    first, short = source.rows
    assert isinstance(first, tuple)
    assert (first.line, first.cells) == (2, ("JDU000002", " 06 12 34 56 78 ", "rien"))
    assert first.values == {"identifier": "JDU000002", "phone": "06 12 34 56 78"}
    assert (short.line, short.cells, short.values) == (3, ("PMA000003",), {"identifier": "PMA000003", "phone": ""})
    # No dict and no second tuple per row: the row costs its cells' pointers and a little more.
    assert sys.getsizeof(first) <= sys.getsizeof((2, None, *first.cells))
    assert "06 12 34 56 78" in repr(first)


def test_the_getter_of_a_field_the_file_does_not_have_gives_empty_text():
    source = parse("identifier;phone\nJDU000002;0612345678\n")

    assert source.getter("email")(source.rows[0]) == ""
    assert source.getter("phone")(source.rows[0]) == "0612345678"


def test_a_blanked_nir_column_keeps_rows_compact_and_their_values():
    source = parse("identifier;phone;x\nJDU000002;0612345678;1 84 12 76 451 089 46\n")

    (row,) = source.rows
    assert isinstance(row, csvio.Row)
    assert row.cells == ("JDU000002", "0612345678", "")
    assert source.getter("phone")(row) == row.values["phone"] == "0612345678"


cell = st.one_of(
    st.text(alphabet=st.sampled_from(list("aZ09 +'=-@é\t")), max_size=12),
    st.text(max_size=8).map(neutralise),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    headers=st.permutations(["identifiant", "courriel", "téléphone", "autre"]),
    rows=st.lists(st.lists(cell, min_size=1, max_size=5), min_size=1, max_size=6),
)
def test_the_getters_give_exactly_the_values(headers, rows):
    lines = [";".join(headers)]
    lines += [";".join('"' + c.replace('"', '""') + '"' for c in cells) for cells in rows]
    source = parse("\n".join(lines) + "\n")

    for row in source.rows:
        for name in WANTED:
            assert source.getter(name)(row) == row.values.get(name, "")


@pytest.mark.parametrize("phone", ["06 12 34 56 78", "'+33612345678", "01 23 45 67 89", "0 800 123 456", "12"])
def test_what_read_file_keeps_of_a_phone_gives_the_normalised_number_and_type(tmp_path, phone):
    from pepsctl.domain import phones
    from pepsctl.domain import validation as v
    from pepsctl.errors import InvalidInput

    path = tmp_path / "phones.csv"
    path.write_text(f"identifier;phone\nJDU000002;{phone}\n", encoding="utf-8")
    source = phones.read_file(str(path))
    raw = source.getter("phone")(source.rows[0])

    try:
        expected: object = v.normalize_phone(raw)
    except InvalidInput as error:
        expected = error.message
    try:
        got: object = phones._phone(source, raw)
    except InvalidInput as error:
        got = error.message
    if isinstance(expected, v.Phone):
        expected = (expected.e164, expected.type)
    assert got == expected
