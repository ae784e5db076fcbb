"""Tests of pepsctl.domain.validation: every rule, the error paths, and hypothesis properties."""

from __future__ import annotations

import dataclasses
import re

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberType
from phonenumbers.phonemetadata import PhoneMetadata

from pepsctl.domain import validation as v
from pepsctl.domain.validation import (
    FUNDS,
    IDENTIFIER_RE,
    Phone,
    format_identifier,
    identifier_prefix,
    mask_phone,
    normalize_civility,
    normalize_email,
    normalize_function,
    normalize_identifier,
    normalize_name,
    normalize_phone,
    normalize_siret,
    siren_of,
    validate_contract_number,
    validate_fund,
    validate_otp_format,
    validate_password,
)
from pepsctl.errors import InvalidInput

FAST = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
ROBUST = settings(max_examples=200, deadline=None, database=None)


def refused(func, *args, field: str | None = None) -> InvalidInput:
    """Call ``func`` and return the InvalidInput it must raise (exit code 3, and the field if given)."""
    with pytest.raises(InvalidInput) as info:
        func(*args)
    assert info.value.exit_code == 3
    if field is not None:
        assert info.value.field == field
    return info.value


def attempt(func, *args):
    """``(result, None)`` or ``(None, the InvalidInput)``; any other exception fails the test."""
    try:
        return func(*args), None
    except InvalidInput as error:
        return None, error


# ---------------------------------------------------------------------------------------------------
# Phones: metropolitan writings
# ---------------------------------------------------------------------------------------------------

MOBILE_WRITINGS = [
    "06 12 34 56 78",
    "06.12.34.56.78",
    "06-12-34-56-78",
    "0612345678",
    "06/12/34/56/78",
    "  06 12 34 56 78  ",
    "06\u00a012\u00a034\u00a056\u00a078",  # no-break spaces (French typography)
    "06\u202f12\u202f34\u202f56\u202f78",  # narrow no-break spaces
    "06 12 34 56 78\n",
    "+33 6 12 34 56 78",
    "+33612345678",
    "+33 (0)6 12 34 56 78",
    "+33 06 12 34 56 78",
    "+33-6-12-34-56-78",
    "0033612345678",
    "00 33 6 12 34 56 78",
    "33612345678",  # the '+' lost by a spreadsheet: 11 digits, cannot be a national writing
    "33 6 12 34 56 78",
]


@pytest.mark.parametrize("raw", MOBILE_WRITINGS)
def test_french_mobile_every_usual_writing(raw):
    assert normalize_phone(raw) == Phone("+33612345678", "mobile", "FR")


@pytest.mark.parametrize(
    ("raw", "e164", "kind"),
    [
        ("01 23 45 67 89", "+33123456789", "landline"),
        ("04 72 12 34 56", "+33472123456", "landline"),
        ("05 56 12 34 56", "+33556123456", "landline"),
        ("07 81 23 45 67", "+33781234567", "mobile"),
        ("09 51 23 45 67", "+33951234567", "voip"),
        ("+33 9 51 23 45 67", "+33951234567", "voip"),
        # 09 is not geographic: a national 0976 number stays metropolitan (write +262/+594… otherwise).
        ("09 76 22 12 34", "+33976221234", "voip"),
    ],
)
def test_french_landline_mobile_voip(raw, e164, kind):
    assert normalize_phone(raw) == Phone(e164, kind, "FR")


def test_channel_follows_the_type():
    assert normalize_phone("06 12 34 56 78").channel == "sms"
    assert normalize_phone("01 23 45 67 89").channel == "voice"
    assert normalize_phone("09 51 23 45 67").channel == "voice"
    assert Phone("+508551234", "mobile", "PM").channel == "sms"


def test_phone_is_frozen_with_slots():
    phone = normalize_phone("0612345678")
    with pytest.raises(dataclasses.FrozenInstanceError):
        phone.e164 = "+33700000000"  # type: ignore[misc]
    assert not hasattr(phone, "__dict__")


# ---------------------------------------------------------------------------------------------------
# Phones: overseas departments and territories (E.164 values checked with phonenumbers)
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "e164", "kind", "region"),
    [
        # Réunion
        ("0692 12 34 56", "+262692123456", "mobile", "RE"),
        ("0693 40 12 34", "+262693401234", "mobile", "RE"),
        ("0262 12 34 56", "+262262123456", "landline", "RE"),
        ("02 63 01 23 45", "+262263012345", "landline", "RE"),
        ("07 09 20 12 34", "+262709201234", "mobile", "RE"),
        # Guadeloupe
        ("0690 12 34 56", "+590690123456", "mobile", "GP"),
        ("0590 12 34 56", "+590590123456", "landline", "GP"),
        ("07 09 00 12 34", "+590709001234", "mobile", "GP"),
        # Saint-Barthélemy and Saint-Martin share +590 and 0590
        ("0590 27 12 34", "+590590271234", "landline", "BL"),
        ("0590 07 12 34", "+590590071234", "landline", "MF"),
        # Martinique
        ("0696 12 34 56", "+596696123456", "mobile", "MQ"),
        ("0697 12 34 56", "+596697123456", "mobile", "MQ"),
        ("0596 30 12 34", "+596596301234", "landline", "MQ"),
        # Guyane
        ("0694 20 12 34", "+594694201234", "mobile", "GF"),
        ("0594 30 12 34", "+594594301234", "landline", "GF"),
        ("07 09 30 12 34", "+594709301234", "mobile", "GF"),
        # Mayotte
        ("0639 40 12 34", "+262639401234", "mobile", "YT"),
        ("0269 61 12 34", "+262269611234", "landline", "YT"),
        ("07 09 35 12 34", "+262709351234", "mobile", "YT"),
        # Saint-Pierre-et-Miquelon
        ("07 08 40 12 34", "+508708401234", "mobile", "PM"),
        ("+508 41 12 34", "+508411234", "landline", "PM"),
        ("+508 55 12 34", "+508551234", "mobile", "PM"),  # FIXED_LINE_OR_MOBILE -> mobile
        # Polynesia, New Caledonia, Wallis-et-Futuna: international writing only
        ("+689 87 12 34 56", "+68987123456", "mobile", "PF"),
        ("+687 75 12 34", "+687751234", "mobile", "NC"),
        ("+687 20 12 34", "+687201234", "landline", "NC"),
        ("+681 82 12 34", "+681821234", "mobile", "WF"),
        ("+681 72 12 34", "+681721234", "mobile", "WF"),  # FIXED_LINE_OR_MOBILE -> mobile
        # International writings of overseas numbers
        ("+262 692 12 34 56", "+262692123456", "mobile", "RE"),
        ("00262692123456", "+262692123456", "mobile", "RE"),
        ("262692123456", "+262692123456", "mobile", "RE"),
        ("+262 (0)692 12 34 56", "+262692123456", "mobile", "RE"),
        ("+590 690 12 34 56", "+590690123456", "mobile", "GP"),
        ("+262 976 22 12 34", "+262976221234", "voip", "RE"),
    ],
)
def test_overseas_numbers(raw, e164, kind, region):
    phone = normalize_phone(raw)
    assert phone == Phone(e164, kind, region)
    number = phonenumbers.parse(e164, None)
    assert phonenumbers.is_valid_number(number)
    assert phonenumbers.region_code_for_number(number) == region


def test_overseas_national_prefix_is_never_taken_as_metropolitan():
    # phonenumbers' FR metadata accepts +33 5 96 12 34 56, but 0596 is Martinique's: unassigned there.
    assert phonenumbers.is_valid_number(phonenumbers.parse("0596123456", "FR"))
    error = refused(normalize_phone, "0596 12 34 56", field="phone")
    assert "neither SMS nor a call" in error.message


def test_overseas_number_written_with_plus_33_is_refused_with_a_hint():
    error = refused(normalize_phone, "+33 6 92 12 34 56", field="phone")
    assert "+33" in error.message
    assert error.hint is not None
    assert "+262" in error.hint


@pytest.mark.parametrize("region", ["RE", "YT", "GP", "BL", "MF", "MQ", "GF"])
@pytest.mark.parametrize("number_type", [PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE])
def test_phonenumbers_example_numbers_in_national_writing(region, number_type):
    example = phonenumbers.example_number_for_type(region, number_type)
    national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
    phone = normalize_phone(national)
    assert phone.e164 == phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    assert phone.region == phonenumbers.region_code_for_number(example)
    assert phone.type == ("mobile" if number_type == PhoneNumberType.MOBILE else "landline")


def _overseas_patterns():
    patterns = []
    for region in ("RE", "YT", "GP", "BL", "MF", "MQ", "GF", "PM"):
        metadata = PhoneMetadata.metadata_for_region(region)
        for desc in (metadata.mobile, metadata.fixed_line):
            if desc is not None and desc.national_number_pattern:
                patterns.append((region, metadata.country_code, re.compile(desc.national_number_pattern)))
    return patterns


def test_overseas_prefix_table_covers_phonenumbers_metadata():
    """Every 10-digit national number that an overseas plan assigns (mobile or landline) gets that plan,
    sampled on every 5-digit national prefix of the geographic and mobile ranges (02, 05, 06, 07)."""
    patterns = _overseas_patterns()
    checked = 0
    for head in range(10_000, 80_000):
        if head // 10_000 not in (2, 5, 6, 7):
            continue
        for tail in ("0000", "5555", "1234"):
            nsn = f"{head}{tail}"
            owners = {(region, cc) for region, cc, pattern in patterns if pattern.fullmatch(nsn)}
            if not owners:
                continue
            checked += 1
            phone = normalize_phone("0" + nsn)
            assert any(phone.e164 == f"+{cc}{nsn}" for _, cc in owners), (nsn, owners, phone)
            assert phone.region != "FR"
    assert checked > 1000


# ---------------------------------------------------------------------------------------------------
# Phones: refusals
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("08 99 12 34 56", "premium-rate"),
        ("+33 8 99 12 34 56", "premium-rate"),
        ("08 00 12 34 56", "free-phone"),
        ("08 10 12 34 56", "shared-cost"),
        ("08 06 12 34 56", "shared-cost"),  # UAN
        ("+800 1234 5678", "free-phone"),  # international free phone
    ],
)
def test_special_numbers_are_refused_with_a_reason(raw, words):
    error = refused(normalize_phone, raw, field="phone")
    assert words in error.message
    assert "neither SMS nor a call" in error.message


@pytest.mark.parametrize("raw", ["3615", "112", "15", "17", "3919", "36 15"])
def test_short_numbers_are_refused(raw):
    error = refused(normalize_phone, raw, field="phone")
    assert "short" in error.message


@pytest.mark.parametrize(
    "raw",
    [
        "06 12 34 56 7",  # 9 digits
        "06 12 34 56 789",  # 11 digits
        "07 12 34 56 78",  # unassigned 07 range
        "0691 01 23 45",  # unassigned Guadeloupe range
        "0612",
        "+33 6 12",
        "+999 123 456 789",  # no such country code
        "+",
        "00",
        "0000000000",
        "+508 0 12 34",
        "055 12 34",  # Saint-Pierre national writing: ambiguous with a truncated French number
    ],
)
def test_invalid_numbers_are_refused(raw):
    refused(normalize_phone, raw, field="phone")


def test_bare_nine_digits_are_refused_with_a_hint_about_the_leading_zero():
    error = refused(normalize_phone, "612345678", field="phone")
    assert error.hint is not None
    assert "leading 0" in error.hint


@pytest.mark.parametrize(
    "raw",
    [
        "06 12 34 56 78 poste 12",
        "06 12 AB 56 78",
        "abc",
        "1-800-FLOWERS",
        "+33 6 12 34 56 78 ext. 2",
        "0612345678x",
    ],
)
def test_letters_are_refused(raw):
    error = refused(normalize_phone, raw, field="phone")
    assert "letters" in error.message


@pytest.mark.parametrize(
    "raw",
    [
        "０６１２３４５６７８",  # full-width digits
        "٠٦١٢٣٤٥٦٧٨",  # Arabic-Indic digits
        "06;12;34;56;78",
        "06_12_34_56_78",
        "++33612345678",
        "06 12 34 56 78+",
        "+33 6 12 34\x1b[31m 56 78",
        "06 12 34 56 78 #1",
    ],
)
def test_other_characters_are_refused(raw):
    error = refused(normalize_phone, raw, field="phone")
    assert "\x1b" not in error.message


@pytest.mark.parametrize("raw", ["", "   ", "\t\n"])
def test_empty_phone_is_refused(raw):
    error = refused(normalize_phone, raw, field="phone")
    assert "empty" in error.message


def test_phone_longer_than_40_characters_is_refused_before_parsing():
    raw = "06 12 34 56 78" + " " * 27
    assert len(raw) == 41
    error = refused(normalize_phone, raw, field="phone")
    assert "too long" in error.message
    assert normalize_phone(raw[:40]).e164 == "+33612345678"


def test_refusal_messages_never_contain_the_number():
    for raw in ("0899123456", "0596123456", "0712345678", "612345678"):
        error = refused(normalize_phone, raw)
        assert "123456" not in error.message
        assert "123456" not in (error.hint or "")


def test_phone_results_are_cached():
    v._normalize_phone_cached.cache_clear()
    normalize_phone("06 99 88 77 66")
    normalize_phone("06 99 88 77 66")
    info = v._normalize_phone_cached.cache_info()
    assert info.hits == 1
    assert info.maxsize == 65536


# ---------------------------------------------------------------------------------------------------
# Phones: the fast path equals the phonenumbers path
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", ["06 12 34 56 78", "06.12.34.56.78", "+33 6 12 34 56 78", "0033612345678", "01 23 45 67 89"]
)
def test_fast_path_takes_plain_metropolitan_writings(raw):
    assert v._fast_phone(raw) == v._slow_phone(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "0692 12 34 56",  # overseas prefixes are left to the slow path
        "0596 30 12 34",
        "0262 12 34 56",
        "0639 40 12 34",
        "0899 12 34 56",  # 08: special numbers
        "0800 12 34 56",
        "07 12 34 56 78",  # invalid for phonenumbers
        "+33 (0)6 12 34 56 78",
        "33612345678",
        "-+33612345678",
    ],
)
def test_fast_path_declines(raw):
    assert v._fast_phone(raw) is None


def test_french_type_is_decided_by_the_first_three_digits():
    """The fast path's premise: outside 8…, phonenumbers types a +33 number by its first three digits."""
    from phonenumbers import PhoneNumber

    for prefix in (f"{n:03d}" for n in range(100, 1000)):
        if prefix[0] == "8":
            continue
        suffixes = ["000000", "999999", *(f"{(int(prefix) * 7919 + k * 104729) % 10**6:06d}" for k in range(12))]
        for suffix in suffixes:
            number = PhoneNumber(country_code=33, national_number=int(prefix + suffix))
            assert v._french_type(prefix) == phonenumbers.number_type(number), prefix + suffix


def test_fast_path_equals_slow_path_on_every_four_digit_prefix():
    accepted = 0
    for head in range(1000, 10_000):
        for raw in (f"0{head}12345", f"+33 {head} 98 76 5"):
            fast = v._fast_phone(raw)
            if fast is not None:
                accepted += 1
                assert fast == v._slow_phone(raw), raw
    assert accepted > 5000


_NSN_HEADS = [
    *"123456789",
    "12",
    "61",
    "692",
    "693",
    "639",
    "690",
    "691",
    "694",
    "695",
    "696",
    "697",
    "698",
    "699",
    "262",
    "263",
    "268",
    "2688",
    "2689",
    "269",
    "590",
    "594",
    "596",
    "598",
    "5987",
    "5988",
    "5989",
    "70",
    "708",
    "7084",
    "7085",
    "709",
    "7090",
    "7091",
    "7092",
    "7093",
    "73",
    "80",
    "806",
    "81",
    "89",
    "939",
    "947",
    "976",
]


@st.composite
def french_like_writings(draw) -> str:
    prefix = draw(st.sampled_from(["0", "+33", "0033", "+33 ", "00 33 ", "+33 (0)", "33", "+330", "", "-", "+"]))
    head = draw(st.sampled_from(_NSN_HEADS))
    length = draw(st.sampled_from([9, 9, 9, 9, 8, 10]))
    tail = draw(st.text(alphabet="0123456789", min_size=max(0, length - len(head)), max_size=length - len(head)))
    digits = (head + tail)[:length]
    separators = draw(
        st.lists(
            st.sampled_from(["", "", "", " ", ".", "-", "  ", "/", "\t", "+", "\u00a0"]),
            min_size=len(digits),
            max_size=len(digits),
        )
    )
    body = "".join(sep + digit for sep, digit in zip(separators, digits, strict=True))
    suffix = draw(st.sampled_from(["", "", " ", "\n", "-", "0"]))
    return prefix + body + suffix


@FAST
@given(st.one_of(french_like_writings(), st.text(max_size=30)))
def test_property_fast_path_result_equals_slow_path(raw):
    fast = v._fast_phone(raw)
    if fast is not None:
        assert fast == v._slow_phone(raw)
        assert normalize_phone(raw) == fast


@ROBUST
@given(
    st.one_of(
        french_like_writings(),
        st.text(max_size=50),
        st.text(alphabet="0123456789 +-.()/a\x1b０", max_size=45),
    )
)
def test_property_normalize_phone_raises_only_invalid_input(raw):
    phone, error = attempt(normalize_phone, raw)
    if error is not None:
        assert error.field == "phone"
    else:
        assert re.fullmatch(r"\+[1-9][0-9]{4,14}", phone.e164)
        assert phone.type in ("mobile", "landline", "voip")
        assert phone.channel in ("sms", "voice")


# ---------------------------------------------------------------------------------------------------
# Masking phones
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("e164", "masked"),
    [
        ("+33612345678", "+33 6 •• •• •• 78"),
        ("+33123456789", "+33 1 •• •• •• 89"),
        ("+33951234567", "+33 9 •• •• •• 67"),
        ("+33899123456", "+33 899 •• •• 56"),
        ("+262692123456", "+262 692 •• •• 56"),
        ("+262262123456", "+262 262 •• •• 56"),
        ("+590690123456", "+590 690 •• •• 56"),
        ("+596696123456", "+596 696 •• •• 56"),
        ("+594694201234", "+594 694 •• •• 34"),
        ("+262639401234", "+262 639 •• •• 34"),
        ("+508708401234", "+508 708 ••• •34"),
        ("+68987123456", "+689 87 •• •• 56"),
        ("+687751234", "+687 ••.••.34"),  # 6 digits: four masked, so not the first group
        ("+447400123456", "+44 7400 ••••56"),
        ("+16502530000", "+1 650-•••-••00"),
    ],
)
def test_mask_phone_formats(e164, masked):
    assert mask_phone(e164) == masked


def test_mask_phone_keeps_four_digits_masked_in_short_numbers():
    """Found by the property below: a 7-digit Comoros number showed its first group and last two
    digits, 5 of 7 digits. The first group is dropped when it would leave fewer than four masked."""
    assert mask_phone("+2693000000") == "+269 ••• •• 00"
    assert mask_phone("+262692123456") == "+262 692 •• •• 56"


def test_mask_phone_none_empty_and_non_e164():
    assert mask_phone(None) is None
    assert mask_phone("") == ""
    assert mask_phone("0612345678") == "••••••••78"
    assert mask_phone("+999123456789") == "+••••••••••89"
    assert mask_phone("n/a") == "••"


@FAST
@given(st.from_regex(r"\+33[1-79][0-9]{8}", fullmatch=True))
def test_property_mask_fast_path_equals_phonenumbers_formatting(e164):
    assert mask_phone(e164) == v._mask_with_phonenumbers(e164)


@ROBUST
@given(french_like_writings())
def test_property_mask_hides_all_but_prefix_and_last_two_digits(raw):
    try:
        phone = normalize_phone(raw)
    except InvalidInput:
        return
    masked = mask_phone(phone.e164)
    assert masked is not None
    shown = re.sub(r"[^0-9]", "", masked)
    assert masked.endswith(phone.e164[-2:])
    assert len(shown) <= len(phone.e164) - 1 - 4  # at least four digits masked
    assert "•" in masked


# ---------------------------------------------------------------------------------------------------
# E-mail
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("jeanne.dupont@mairie-exemple.fr", "jeanne.dupont@mairie-exemple.fr"),
        ("Jeanne.Dupont@Mairie-Exemple.FR", "Jeanne.Dupont@mairie-exemple.fr"),  # local part kept as typed
        ("  jeanne@exemple.fr \n", "jeanne@exemple.fr"),
        ("jeanne@exämple.fr", "jeanne@exämple.fr"),  # Unicode domain
        ("jeanne@EXÄMPLE.FR", "jeanne@exämple.fr"),
        ("jeanne@xn--exmple-cua.fr", "jeanne@exämple.fr"),
        ("jean-pierre.o'neil+rh@cdg-974.fr", "jean-pierre.o'neil+rh@cdg-974.fr"),
    ],
)
def test_email_valid(raw, normalized):
    assert normalize_email(raw) == normalized


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "jeanne",
        "jeanne@",
        "@exemple.fr",
        "jean ne@exemple.fr",
        "jeanne@exemple fr",
        "jeanne@localhost",
        "jeanne@@exemple.fr",
        "jeanne@exemple..fr",
        "Jeanne <jeanne@exemple.fr>",
        "jeanne@exemple.fr\x1b[0m",
        "a" * 300 + "@exemple.fr",
    ],
)
def test_email_invalid(raw):
    refused(normalize_email, raw, field="email")


# ---------------------------------------------------------------------------------------------------
# SIRET
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["73282932000074", "732 829 320 00074", "732.829.320.00074", " 73282932000074 "])
def test_siret_valid(raw):
    assert normalize_siret(raw) == "73282932000074"


def test_siret_la_poste_rule_relies_on_stdnum():
    # SIREN 356000000 (La Poste): the sum of the digits is a multiple of 5, not a Luhn number.
    assert normalize_siret("356 000 000 01000") == "35600000001000"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("73282932000075", "check digit"),
        ("7328293200007", "14 digits"),
        ("732829320000741", "14 digits"),
        ("7328293200007A", "14 digits"),
        ("732-829-320-00074", "14 digits"),
        ("", "empty"),
        ("   ", "empty"),
        ("1" * 50, "14 digits"),
    ],
)
def test_siret_invalid(raw, words):
    error = refused(normalize_siret, raw, field="siret")
    assert words in error.message


def test_siren_of():
    assert siren_of("732 829 320 00074") == "732829320"
    refused(siren_of, "73282932000075", field="siret")


# ---------------------------------------------------------------------------------------------------
# Names, function, civility
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Dupont", "Dupont"),
        ("  Jean   Pierre  ", "Jean Pierre"),
        ("Jean\tPierre", "Jean Pierre"),
        ("Jean-Pierre", "Jean-Pierre"),
        ("D’Artagnan", "D'Artagnan"),
        ("D'Artagnan", "D'Artagnan"),
        ("Lê", "Lê"),
        ("Éloïse", "Éloïse"),
        ("E\u0301loi\u0308se", "Éloïse"),  # decomposed accents are composed (NFC)
        ("Müller-Lüdenscheidt", "Müller-Lüdenscheidt"),
        ("J.-P.", "J.-P."),
        ("de La Fontaine", "de La Fontaine"),
        ("'t Hooft", "'t Hooft"),
        ("Œuvray", "Œuvray"),
        ("Nguyễn", "Nguyễn"),
        ("山田", "山田"),
        ("O\u00a0Brien", "O Brien"),
        ("X", "X"),
    ],
)
def test_names_valid(raw, normalized):
    assert normalize_name(raw, "last_name") == normalized


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("Dupont2", "digits"),
        ("Louis XIV 14", "digits"),
        ("Dupont１", "digits"),  # full-width digit
        ("[bold]x[/bold]", "not allowed"),
        ("\x1b[31mDupont", "not allowed"),
        ("Dupont\x1b", "not allowed"),
        ("<script>", "not allowed"),
        ("Du;pont", "not allowed"),
        ("Du_pont", "not allowed"),
        ("Du@pont", "not allowed"),
        ("Jean\nPierre", "not allowed"),
        ("Du\u200bpont", "not allowed"),  # zero-width space
        ("Du\u202epont", "not allowed"),  # right-to-left override
        ("\u0301Dupont", "not allowed"),  # a lone combining accent
        ("Dupont 😀", "not allowed"),
        ("", "empty"),
        ("   ", "empty"),
        ("---", "letter"),
        ("' .", "letter"),
    ],
)
def test_names_invalid(raw, words):
    error = refused(normalize_name, raw, "first_name", field="first_name")
    assert words in error.message
    assert "first name" in error.message
    assert "\x1b" not in error.message
    assert "\u202e" not in error.message


def test_name_length_limits():
    assert normalize_name("A" * 80, "last_name") == "A" * 80
    assert normalize_name(" " + "A" * 80 + " ", "last_name") == "A" * 80
    error = refused(normalize_name, "A" * 81, "last_name", field="last_name")
    assert "80" in error.message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        (" Gestionnaire RH ", "Gestionnaire RH"),
        ("Directrice générale des services", "Directrice générale des services"),
        ("[bold]DRH[/bold]", "[bold]DRH[/bold]"),  # free text, shown literally by the renderer
        ("x" * 120, "x" * 120),
    ],
)
def test_function_valid(raw, expected):
    assert normalize_function(raw) == expected


@pytest.mark.parametrize("raw", ["x" * 121, "\x1b[31mDRH", "DRH\x1b", "RH\nPaie", "RH\tPaie", "RH\u202e", "RH\x00"])
def test_function_invalid(raw):
    error = refused(normalize_function, raw, field="function")
    assert "\x1b" not in error.message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("M", "M"),
        ("m", "M"),
        ("M.", "M"),
        ("Mr", "M"),
        ("MR.", "M"),
        ("Monsieur", "M"),
        (" monsieur ", "M"),
        ("MME", "MME"),
        ("Mme", "MME"),
        ("Mme.", "MME"),
        ("Madame", "MME"),
        ("MADAME", "MME"),
        ("Mrs", "MME"),
        ("Ms", "MME"),
        ("Mlle", "MME"),
        ("Mademoiselle", "MME"),
    ],
)
def test_civility_valid(raw, expected):
    assert normalize_civility(raw) == expected


@pytest.mark.parametrize("raw", ["", "Dr", "Mx", "Madam", "Monsieur Madame", "MM", "M2"])
def test_civility_invalid(raw):
    refused(normalize_civility, raw, field="civility")


def test_civility_is_accent_insensitive():
    assert normalize_civility("Mádame") == "MME"
    assert normalize_civility("MÔNSIEUR") == "M"


# ---------------------------------------------------------------------------------------------------
# Identifiers
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "last", "prefix"),
    [
        ("Jeanne", "Dupont", "JDU"),
        ("Jean", "D'Artagnan", "JDA"),
        ("Minh", "Lê", "MLE"),
        ("Élodie", "Éluard", "EEL"),
        ("Jean-Pierre", "O'Neil", "JON"),
        ("Ægir", "Œuvray", "AOE"),
        ("Anna", "Strauß", "AST"),
        ("Ann", "O", "AOX"),
        ("Li", "Xu", "LXU"),
        ("Tomás", "  Ñúñez", "TNU"),
        ("山田", "太郎", "XXX"),
        ("", "", "XXX"),
    ],
)
def test_identifier_prefix(first, last, prefix):
    assert identifier_prefix(first, last) == prefix


def test_format_identifier():
    assert format_identifier("JDU", 42) == "JDU000042"
    assert format_identifier("JDU", 0) == "JDU000000"
    assert format_identifier("JDU", 999_999) == "JDU999999"
    for prefix, number in [("JDU", 1_000_000), ("JDU", -1), ("JD", 1), ("jdu", 1), ("JDÜ", 1)]:
        with pytest.raises(ValueError, match="identifier"):
            format_identifier(prefix, number)


def test_identifier_re():
    assert IDENTIFIER_RE.match("JDU000042")
    assert not IDENTIFIER_RE.match("JDU000042\n")
    assert not IDENTIFIER_RE.match("JDU00042")


@pytest.mark.parametrize(("raw", "expected"), [("JDU000042", "JDU000042"), (" jdu000042 ", "JDU000042")])
def test_normalize_identifier_valid(raw, expected):
    assert normalize_identifier(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "JDU00042", "JDU0000421", "JD0000042", "JDU-000042", "ıdu000042", "ＪＤＵ000042", "JDU000042\n0"],
)
def test_normalize_identifier_invalid(raw):
    refused(normalize_identifier, raw, field="identifier")


@ROBUST
@given(st.text(max_size=30), st.text(max_size=30), st.integers(0, 999_999))
def test_property_identifiers_round_trip(first, last, number):
    prefix = identifier_prefix(first, last)
    assert re.fullmatch(r"[A-Z]{3}", prefix)
    identifier = format_identifier(prefix, number)
    assert normalize_identifier(identifier.lower()) == identifier


# ---------------------------------------------------------------------------------------------------
# Passwords
# ---------------------------------------------------------------------------------------------------


def test_password_length_limits():
    refused(validate_password, "Xk7#pQ2!mZ9", field="password")  # 11
    validate_password("Xk7#pQ2!mZ9w")  # 12
    validate_password("Zq8!vLm2" * 16)  # 128
    error = refused(validate_password, "Zq8!vLm2" * 16 + "x", field="password")  # 129
    assert "128" in error.message


def test_password_length_counts_characters_not_bytes():
    validate_password("éèàùçœ€ßøæ¿¡")  # 12 characters, 25 bytes in UTF-8
    refused(validate_password, "éèàùçœ€ßøæ¿")  # 11 characters


@pytest.mark.parametrize(
    "password",
    [
        "motdepasse123",
        "MotDePasse123",
        "azertyuiop123",
        "AZERTYUIOP123",
        "password1234",
        "qwertyuiop12",
        "123456789012",
        "azertyuiopqsdf",
        "bonjour123456",
        "soleil123456",
        "marseille2024",
        "motdépasse123",  # accent-insensitive
        "Soleil2024!!!",  # a common base with digits and symbols around it
        "!!Marseille1234",
    ],
)
def test_common_passwords_are_refused(password):
    error = refused(validate_password, password, field="password")
    assert "common" in error.message
    assert password not in error.message


def test_blocklist_is_shipped_loaded_once_and_large_enough():
    v._common_passwords.cache_clear()
    first = v._common_passwords()
    assert v._common_passwords() is first
    assert len(first) >= 300
    assert {"motdepasse123", "azertyuiop123", "password1234", "123456789012"} <= first


@pytest.mark.parametrize(
    ("password", "context"),
    [
        ("Dupont est un nom courant", ["Dupont"]),
        ("je suis DUPONT pour toujours", ["Dupont"]),
        ("Mme Lefevre aime le the", ["Lefèvre"]),  # accent-insensitive
        ("Mme Lefèvre aime le thé", ["Lefevre"]),
        ("le grand Jean-Pierre 2024", ["Jean-Pierre"]),
        ("P-i-e-r-r-e en vacances", ["Jean-Pierre"]),
        ("siret 73282932000074 ok", ["73282932000074"]),
        ("siren 732829320 et alors", ["73282932000074"]),
        ("Mon acces PEPS en 2025 !", []),
        ("pepsctl est un outil sympa", []),
        ("la caisse CNRACL et moi", []),
        ("adhesion Ircantec du jour", []),
        ("la rafp est une caisse ok", []),
    ],
)
def test_password_containing_a_context_word_is_refused(password, context):
    error = refused(validate_password, password, context, field="password")
    assert password not in error.message


def test_short_context_words_are_ignored():
    validate_password("Li et Xu sont partis loin", ["Li", "Xu"])
    validate_password("Un chat dort sur le canape", ["Jeanne", "Dupont", "73282932000074"])


@ROBUST
@given(st.text(max_size=140), st.lists(st.text(max_size=20), max_size=3))
def test_property_validate_password_raises_only_invalid_input(password, context):
    _, error = attempt(validate_password, password, context)
    if error is not None:
        assert error.field == "password"
        # Never echoed (a context word may be named, but the caller gave it).
        if len(password) >= 12 and not any(password.casefold() in word.casefold() for word in context):
            assert password not in error.message


# ---------------------------------------------------------------------------------------------------
# One-time code format
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("012345", "012345"),
        ("000000", "000000"),
        (" 123456 ", "123456"),
        ("123 456", "123456"),
        ("987654\n", "987654"),
    ],
)
def test_otp_format_valid(raw, expected):
    assert validate_otp_format(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "12345",
        "1234567",
        "abcdef",
        "",
        "      ",
        "１２３４５６",  # full-width
        "١٢٣٤٥٦",  # Arabic-Indic
        "۱۲۳۴۵۶",  # extended Arabic-Indic
        "१२३४५६",  # Devanagari
        "12345６",
        "+12345",
        "-12345",
        "12-345",
        "12.3456",
        "123456\x00",
        "²³⁴⁵⁶⁷",  # superscripts
    ],
)
def test_otp_format_invalid(raw):
    error = refused(validate_otp_format, raw, field="otp")
    digits = re.sub(r"\s", "", raw)
    if digits:
        assert digits not in error.message


@ROBUST
@given(st.text(max_size=20))
def test_property_validate_otp_format_raises_only_invalid_input(raw):
    code, error = attempt(validate_otp_format, raw)
    if error is not None:
        assert error.field == "otp"
    else:
        assert re.fullmatch(r"[0-9]{6}", code)
        assert code.isascii()


@ROBUST
@given(st.from_regex(r"[0-9]{6}", fullmatch=True), st.sampled_from(["", " ", "  ", "\t"]))
def test_property_otp_codes_round_trip(code, spacing):
    assert validate_otp_format(spacing + code[:3] + spacing + code[3:] + spacing) == code


# ---------------------------------------------------------------------------------------------------
# Funds and contract numbers
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("CNRACL", "CNRACL"),
        ("cnracl", "CNRACL"),
        (" Ircantec ", "IRCANTEC"),
        ("rafp", "RAFP"),
        ("Fnc", "FNC"),
    ],
)
def test_fund_valid(raw, expected):
    assert validate_fund(raw) == expected


@pytest.mark.parametrize("raw", ["", "CDC", "CNRACL IRCANTEC", "ırcantec", "C N R A C L"])
def test_fund_invalid_lists_the_allowed_values(raw):
    error = refused(validate_fund, raw, field="fund")
    for fund in FUNDS:
        assert fund in error.message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12345", "12345"),
        (" ABC-123/45.6 ", "ABC-123/45.6"),
        ("C 123 456", "C 123 456"),
        ("A" * 30, "A" * 30),
        ("7", "7"),
    ],
)
def test_contract_number_valid(raw, expected):
    assert validate_contract_number(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "A" * 31, "abc_def", "n°123", "123;456", "é123", "---", "12\n34", "１２３"])
def test_contract_number_invalid(raw):
    refused(validate_contract_number, raw, field="contract_number")


# ---------------------------------------------------------------------------------------------------
# Robustness: arbitrary text never raises anything but InvalidInput
# ---------------------------------------------------------------------------------------------------


@ROBUST
@given(st.text(max_size=100))
def test_property_normalize_name_raises_only_invalid_input(raw):
    name, error = attempt(normalize_name, raw, "last_name")
    if error is not None:
        assert error.field == "last_name"
        assert "\x1b" not in error.message
    else:
        assert 1 <= len(name) <= 80
        assert name == name.strip()
        assert "  " not in name
        assert not re.search(r"[0-9\[\]<>\x00-\x1f\x7f]", name)


@ROBUST
@given(st.text(max_size=140))
def test_property_other_validators_raise_only_invalid_input(raw):
    for func in (
        normalize_email,
        normalize_siret,
        normalize_function,
        normalize_civility,
        normalize_identifier,
        validate_fund,
        validate_contract_number,
        siren_of,
    ):
        attempt(func, raw)
    function, error = attempt(normalize_function, raw)
    assert error is not None or function is None or (0 < len(function) <= 120 and "\x1b" not in function)


@pytest.mark.parametrize(
    "password",
    ["cheval batterie agrafe", "lenteursdumardimatin", "UNE LONGUE PHRASE CALME", "7391 2846 5017", "éléphants roses"],
)
def test_no_composition_rules(password):
    """A long passphrase of one character class is accepted: no digit, symbol or case is demanded."""
    validate_password(password)
