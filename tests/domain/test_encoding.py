"""The hand-written JSON of bulk writes equals the json module's output, byte for byte.

History hashes and batch changes are written by the hundred thousand in a bulk import, so they are
built directly rather than through ``json.JSONEncoder``; a difference would break ``history verify``
or ``batches undo``, so these properties compare them with the encoders they stand for.
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from pepsctl.domain import bulk, history

_SCALARS = st.one_of(
    st.none(),
    st.text(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.floats(allow_nan=False),
)


@given(st.lists(_SCALARS, max_size=12))
def test_event_canonical_form_equals_the_list_encoder(fields):
    expected = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode(fields)
    assert history.canonical(fields) == expected


@given(st.dictionaries(st.text(), _SCALARS, max_size=6))
def test_change_json_equals_the_sorted_ascii_encoder(values):
    expected = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode(values)
    assert bulk.change_json(values) == expected


@given(st.one_of(st.text(), st.none()))
def test_masked_phone_json_equals_the_encoder(phone):
    from pepsctl.domain.validation import mask_phone

    expected = json.JSONEncoder(sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":")).encode(
        {"phone": mask_phone(phone) if isinstance(phone, str) else phone}
    )
    assert history._masked({"phone": phone}) == expected


def test_change_json_of_none_and_nested_values():
    assert bulk.change_json(None) == "null"
    assert bulk.change_json({"b": [1, 2], "a": {"x": None}}) == '{"a":{"x":null},"b":[1,2]}'


@given(st.one_of(st.none(), st.text()), st.one_of(st.none(), st.text()))
def test_a_phone_change_is_encoded_like_any_change(phone, phone_type):
    from pepsctl.domain import phones

    assert phones._change_json(phone, phone_type) == bulk.change_json({"phone": phone, "phone_type": phone_type})


@given(
    st.one_of(
        st.from_regex(r"\+33[0-9]{9}", fullmatch=True),
        st.from_regex(r"\+33[0-9٠-٩]{9}", fullmatch=True),  # Arabic-Indic digits are not ASCII
        st.text(max_size=14),
    )
)
def test_the_metropolitan_mask_lookup_equals_the_general_mask(e164):
    from pepsctl.domain import validation as v

    expected = v._mask_cached(e164) if e164 else ""
    assert v.mask_phone(e164) == expected
