"""The one validator of pepsctl: phones, e-mails, SIRETs, names, identifiers, passwords, codes.

Every function takes what a person typed (option, prompt or CSV cell) and returns the normalised value,
or raises :class:`~pepsctl.errors.InvalidInput` (exit code 3) with the field name, a message and, where it
helps, a hint. Nothing else escapes: arbitrary text never crashes a validator.

Messages never repeat a password or a one-time code, and never a full phone number.

Phones (``shared/spec/domain.md``, "Phones"):

* National writings (10 digits starting with ``0``): the national prefixes that belong to an overseas
  department or territory (``0692`` Réunion, ``0690`` Guadeloupe, ``0596`` Martinique…, see
  :data:`_OVERSEAS_NATIONAL_PREFIXES`) are parsed in that territory only; the others as ``FR``, and if that
  is not a valid number, in each overseas numbering plan in turn. ``09`` numbers (VoIP, not geographic) are
  taken as metropolitan.
* International writings (``+`` or ``00``): any country, if valid.
* Digits only, without ``+``, starting with the country code of France or of an overseas territory
  (``33612345678``, ``262692123456``), at least 11 digits: taken as if the ``+`` had been lost (spreadsheets
  do that). This cannot be mistaken for a French national writing, which has 10 digits starting with ``0``.
  Other bare digit strings (``612345678``, where a spreadsheet dropped the leading ``0``) are refused with a
  hint rather than guessed.
* Mobile and fixed-line-or-mobile numbers get SMS, landlines and VoIP a voice call; every other type
  (premium rate, shared cost, free phone, UAN, pager, personal, voicemail, unknown) is refused.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

import phonenumbers
import stdnum.exceptions
from email_validator import EmailNotValidError, validate_email
from phonenumbers import PhoneNumber, PhoneNumberType
from stdnum.fr import siret as _stdnum_siret

from pepsctl.errors import InvalidInput
from pepsctl.i18n import _

__all__ = [
    "FUNDS",
    "IDENTIFIER_RE",
    "PASSWORD_MAX_LENGTH",
    "PASSWORD_MIN_LENGTH",
    "Phone",
    "format_identifier",
    "identifier_prefix",
    "mask_phone",
    "normalize_civility",
    "normalize_email",
    "normalize_function",
    "normalize_identifier",
    "normalize_name",
    "normalize_phone",
    "normalize_siret",
    "siren_of",
    "validate_contract_number",
    "validate_fund",
    "validate_otp_format",
    "validate_password",
]


def _show_char(char: str) -> str:
    """A character for an error message: never a raw control or escape character."""
    code = f"U+{ord(char):04X}"
    if char.isprintable() and not char.isspace():
        return f"'{char}' ({code})"
    return code


# --------------------------------------------------------------------------------------------------
# Phones
# --------------------------------------------------------------------------------------------------

PHONE_MAX_INPUT_LENGTH = 40


@dataclass(frozen=True, slots=True)
class Phone:
    """A phone number that can receive a one-time code."""

    e164: str  # '+33612345678'
    type: str  # 'mobile' | 'landline' | 'voip'
    region: str  # 'FR', 'RE', 'GP', ... (phonenumbers' region of the number itself)

    @property
    def channel(self) -> str:
        """How a one-time code reaches this number: ``sms`` for a mobile, ``voice`` otherwise."""
        return "sms" if self.type == "mobile" else "voice"


_ACCEPTED_TYPES: dict[int, str] = {
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE: "landline",
    PhoneNumberType.VOIP: "voip",
}

# National prefixes (as written in France, with the leading 0) that belong to an overseas department or
# territory, and the region(s) to parse them with. Taken from phonenumbers' metadata (geographic and mobile
# ranges); a test checks it against that metadata. For +262 (Réunion, Mayotte) and +590 (Guadeloupe,
# Saint-Barthélemy, Saint-Martin) one region per country code is enough: phonenumbers then finds the right
# territory from the number itself. Such numbers are never metropolitan: no fall back to 'FR' (whose
# metadata wrongly accepts e.g. 0596… and 0269… as +33 numbers).
_OVERSEAS_NATIONAL_PREFIXES: dict[str, tuple[str, ...]] = {
    "0262": ("RE",),  # Réunion landlines
    "0263": ("RE",),
    "02688": ("RE",),
    "02689": ("RE",),  # Mayotte
    "0269": ("RE",),  # Mayotte landlines
    "0590": ("GP",),  # Guadeloupe, Saint-Barthélemy, Saint-Martin landlines
    "0594": ("GF",),  # Guyane landlines
    "0596": ("MQ",),  # Martinique landlines
    "05987": ("GP",),
    "05988": ("GF",),
    "05989": ("MQ",),
    "0639": ("RE",),  # Mayotte mobiles
    "0690": ("GP",),  # Guadeloupe, Saint-Barthélemy, Saint-Martin mobiles
    "0691": ("GP",),
    "0692": ("RE",),  # Réunion mobiles
    "0693": ("RE",),
    "0694": ("GF",),  # Guyane mobiles
    "0696": ("MQ",),  # Martinique mobiles
    "0697": ("MQ",),
    "07084": ("PM",),  # Saint-Pierre-et-Miquelon mobiles
    "07085": ("PM",),
    "07090": ("GP",),
    "07091": ("MQ",),
    "07092": ("RE",),
    "07093": ("RE", "GF"),  # Mayotte or Guyane, by the next digit
}
# Tried after 'FR' for a national writing that matches no prefix above (a safety net for new ranges).
# New Caledonia, French Polynesia and Wallis-et-Futuna have no national prefix 0: they need +687/+689/+681.
_OVERSEAS_FALLBACK_REGIONS = ("RE", "GP", "MQ", "GF", "PM")
# Country codes of France and its overseas territories, for digits typed without their '+'.
_FRENCH_COUNTRY_CODES = ("33", "262", "590", "594", "596", "508", "687", "689", "681")

_SEPARATORS = frozenset(" \t\u00a0\u2007\u2009\u202f.-\u2010\u2011\u2012\u2013/()")
_FAST_DELETE = str.maketrans("", "", " .-")
_FAST_RE = re.compile(r"(?:0|\+33|0033)([1-9][0-9]{8})")


def _overseas_regions(national: str) -> tuple[str, ...] | None:
    return _OVERSEAS_NATIONAL_PREFIXES.get(national[:5]) or _OVERSEAS_NATIONAL_PREFIXES.get(national[:4])


def _phone_error(message: str, hint: str | None = None) -> InvalidInput:
    return InvalidInput(message, field="phone", hint=hint)


def _refused_type_message(number_type: int) -> str:
    if number_type == PhoneNumberType.PREMIUM_RATE:
        return _("This is a premium-rate number: it can receive neither SMS nor a call.")
    if number_type in (PhoneNumberType.SHARED_COST, PhoneNumberType.UAN):
        return _("This is a shared-cost or special-rate number: it can receive neither SMS nor a call.")
    if number_type == PhoneNumberType.TOLL_FREE:
        return _("This is a free-phone number: it can receive neither SMS nor a call.")
    if number_type == PhoneNumberType.PAGER:
        return _("This is a pager number: it can receive neither SMS nor a call.")
    if number_type == PhoneNumberType.PERSONAL_NUMBER:
        return _("This is a personal (forwarding) number: it can receive neither SMS nor a call.")
    if number_type == PhoneNumberType.VOICEMAIL:
        return _("This is a voicemail access number: it can receive neither SMS nor a call.")
    return _("The type of this number is unknown: it can receive neither SMS nor a call.")


def _phone_from_number(number: PhoneNumber) -> Phone:
    number_type = phonenumbers.number_type(number)
    kind = _ACCEPTED_TYPES.get(number_type)
    if kind is None:
        raise _phone_error(
            _refused_type_message(number_type),
            hint=_("Give a personal mobile (for SMS) or a landline (for a voice call)."),
        )
    region = phonenumbers.region_code_for_number(number) or "ZZ"
    return Phone(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), kind, region)


def _invalid_number() -> InvalidInput:
    return _phone_error(
        _("This is not a valid phone number: it can receive neither SMS nor a call."),
        hint=_("Check the digits, e.g. 06 12 34 56 78, 0692 12 34 56 or +262 692 12 34 56."),
    )


def _clean_phone(raw: str) -> str:
    """``+`` (if written) followed by the digits, or InvalidInput for anything that is not a phone writing."""
    text = raw.strip()
    if not text:
        raise _phone_error(_("The phone number is empty."))
    plus = text.startswith("+")
    if plus:
        text = text[1:]
    digits: list[str] = []
    for char in text:
        if "0" <= char <= "9":
            digits.append(char)
        elif char in _SEPARATORS:
            continue
        elif unicodedata.category(char).startswith("L"):
            raise _phone_error(
                _("A phone number must not contain letters."),
                hint=_("Write the digits only, without an extension or a comment."),
            )
        elif char == "+":
            raise _phone_error(_("A phone number has at most one '+', at its start."))
        else:
            raise _phone_error(
                _("The phone number contains a character that is not allowed: {char}.").format(char=_show_char(char)),
                hint=_("Use ASCII digits, spaces, dots or hyphens, and '+' for the country code."),
            )
    if not digits:
        raise _phone_error(_("The phone number has no digits."))
    return ("+" if plus else "") + "".join(digits)


def _parse(text: str, region: str | None) -> PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None


def _slow_phone(raw: str) -> Phone:
    """The reference implementation: every decision goes through phonenumbers."""
    cleaned = _clean_phone(raw)
    if cleaned.startswith("00"):
        cleaned = "+" + cleaned[2:]
    if cleaned.startswith("+"):
        number = _parse(cleaned, None)
        if number is None or not phonenumbers.is_valid_number(number):
            if number is not None and number.country_code == 33:
                national = "0" + phonenumbers.national_significant_number(number)
                if _overseas_regions(national):
                    raise _phone_error(
                        _("This is not a valid phone number: an overseas number does not use +33."),
                        hint=_("Write it with its own country code (e.g. +262 692 12 34 56) or as 0692 12 34 56."),
                    )
            raise _invalid_number()
        return _phone_from_number(number)
    if cleaned.startswith("0"):
        if len(cleaned) != 10:
            raise _phone_error(
                _("A phone number written without a country code has 10 digits and starts with 0."),
                hint=_(
                    "For Saint-Pierre-et-Miquelon, New Caledonia, Polynesia, Wallis-et-Futuna or another "
                    "country, write the country code: +508, +687, +689, +681…"
                ),
            )
        regions = _overseas_regions(cleaned) or ("FR", *_OVERSEAS_FALLBACK_REGIONS)
        for region in regions:
            number = _parse(cleaned, region)
            if number is not None and phonenumbers.is_valid_number(number):
                return _phone_from_number(number)
        raise _invalid_number()
    # Digits without '+' nor a leading 0.
    if len(cleaned) < 8:
        raise _phone_error(
            _("This is a short or incomplete number: it can receive neither SMS nor a call."),
            hint=_("Write the full number, e.g. 06 12 34 56 78."),
        )
    if len(cleaned) >= 11 and cleaned.startswith(_FRENCH_COUNTRY_CODES):
        number = _parse("+" + cleaned, None)
        if number is not None and phonenumbers.is_valid_number(number):
            return _phone_from_number(number)
    raise _phone_error(
        _("This phone number has neither a leading 0 nor a country code."),
        hint=_("Write it as 06 12 34 56 78 or +33 6 12 34 56 78 (spreadsheets often drop the leading 0)."),
    )


def _fast_phone(raw: str) -> Phone | None:
    """Plain metropolitan writings without parsing; ``None`` means "ask :func:`_slow_phone`".

    Only the candidate number is decided here; its validity and type still come from phonenumbers
    (``number_type`` once per three-digit prefix, see :func:`_french_type`).
    Overseas national prefixes and 08 numbers are left to the slow path, and so is every number the slow
    path would refuse, so the two agree on every input this accepts (a hypothesis test checks it).
    """
    text = raw.strip()
    if "+" in text[1:]:
        return None
    match = _FAST_RE.fullmatch(text.translate(_FAST_DELETE))
    if match is None:
        return None
    nsn = match[1]
    if nsn[0] == "8" or _overseas_regions("0" + nsn):
        return None
    kind = _ACCEPTED_TYPES.get(_french_type(nsn[:3]))
    if kind is None:
        return None
    return Phone("+33" + nsn, kind, "FR")


@functools.cache
def _french_type(prefix: str) -> int:
    """phonenumbers' type of every +33 number whose national number starts with ``prefix`` (3 digits).

    The French metadata decides the type of a number outside 8… by its first three digits (every
    pattern is a prefix followed by ``\\d{n}``); a test checks it against ``number_type`` for every prefix,
    so a metadata change that breaks this is caught. One ``number_type`` call per prefix instead of per row.
    """
    return phonenumbers.number_type(PhoneNumber(country_code=33, national_number=int(prefix + "000000")))


@functools.lru_cache(maxsize=65536)
def _normalize_phone_cached(raw: str) -> Phone:
    return _fast_phone(raw) or _slow_phone(raw)


def normalize_phone(raw: str) -> Phone:
    """The E.164 form, type and region of a phone number that can receive a one-time code."""
    if not isinstance(raw, str) or not raw.strip():
        raise _phone_error(_("The phone number is empty."))
    if len(raw) > PHONE_MAX_INPUT_LENGTH:
        raise _phone_error(_("The phone number is too long (at most {n} characters).").format(n=PHONE_MAX_INPUT_LENGTH))
    return _normalize_phone_cached(raw)


_MASK = "•"
_FR_E164_RE = re.compile(r"\+33([1-79])[0-9]{6}([0-9]{2})")
_E164_RE = re.compile(r"\+[1-9][0-9]{3,14}")


def _mask_digits(text: str, keep_last: int = 2) -> str:
    """Replace every digit of ``text`` by a bullet, except the last ``keep_last`` digits."""
    total = sum(char.isdigit() for char in text)
    seen = 0
    out = []
    for char in text:
        if char.isdigit():
            seen += 1
            out.append(char if seen > total - keep_last else _MASK)
        else:
            out.append(char)
    return "".join(out)


def _mask_fallback(value: str) -> str:
    digits = "".join(char for char in value if "0" <= char <= "9")
    prefix = "+" if value.startswith("+") else ""
    if len(digits) < 4:
        return prefix + _MASK * 2
    return prefix + _MASK * (len(digits) - 2) + digits[-2:]


def _mask_with_phonenumbers(e164: str) -> str:
    """Country code and first group kept, every other digit masked except the last two."""
    if not _E164_RE.fullmatch(e164):
        return _mask_fallback(e164)
    number = _parse(e164, None)
    if number is None:
        return _mask_fallback(e164)
    formatted = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    country = f"+{number.country_code}"
    if not formatted.startswith(country) or re.sub(r"[^0-9]", "", formatted) != e164[1:]:
        return _mask_fallback(e164)
    rest = formatted[len(country) :]
    group = re.match(r"[^0-9]*([0-9]+)", rest)
    rest_digits = sum(char.isdigit() for char in rest)
    # The first group is shown only if at least four digits stay masked (the last two are shown too).
    if group is not None and len(group[1]) <= 4 and rest_digits - len(group[1]) - 2 >= 4:
        head, tail = rest[: group.end()], rest[group.end() :]
    else:
        head, tail = "", rest
    return country + head + _mask_digits(tail)


@functools.lru_cache(maxsize=65536)
def _mask_cached(e164: str) -> str:
    match = _FR_E164_RE.fullmatch(e164)
    if match is not None:
        return f"+33 {match[1]} {_MASK * 2} {_MASK * 2} {_MASK * 2} {match[2]}"
    return _mask_with_phonenumbers(e164)


def mask_phone(e164: str | None) -> str | None:
    """``+33612345678`` → ``+33 6 •• •• •• 78``; ``+262692123456`` → ``+262 692 •• •• 56``; None → None.

    Never shows more than the country code, the first group and the last two digits; a value that is not
    E.164 gets every digit but the last two masked.
    """
    if e164 is None:
        return None
    if not e164:
        return ""
    # Metropolitan numbers, the bulk of a 300,000-row import: ≈ 900 distinct masks, looked up by their
    # first and last two digits (what _FR_E164_RE keeps) instead of caching every number.
    if len(e164) == 12 and e164[:3] == "+33" and e164[3] in "12345679" and e164[3:].isdigit() and e164.isascii():
        key = e164[3] + e164[10:]
        masked = _FR_MASKS.get(key)
        if masked is None:
            masked = _FR_MASKS[key] = _mask_cached(e164)
        return masked
    return _mask_cached(e164)


_FR_MASKS: dict[str, str] = {}


# --------------------------------------------------------------------------------------------------
# E-mail, SIRET
# --------------------------------------------------------------------------------------------------


def normalize_email(raw: str) -> str:
    """The normalised address: domain lower-cased (Unicode kept), local part as typed."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput(_("The e-mail address is empty."), field="email")
    text = raw.strip()
    if len(text) > 320:
        raise InvalidInput(_("The e-mail address is too long."), field="email")
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput(
            _("This is not a valid e-mail address: {reason}").format(reason=str(exc)),
            field="email",
            hint=_("Give a professional address such as jeanne.dupont@mairie-exemple.fr."),
        ) from None
    return result.normalized


def normalize_siret(raw: str) -> str:
    """The 14 digits of a valid SIRET (spaces and dots allowed in the input)."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput(_("The SIRET is empty."), field="siret")
    if len(raw) > 40:
        raise InvalidInput(_("A SIRET has 14 digits."), field="siret")
    try:
        return _stdnum_siret.validate(raw.strip())
    except stdnum.exceptions.InvalidLength:
        message = _("A SIRET has 14 digits.")
    except stdnum.exceptions.InvalidChecksum:
        message = _("This SIRET is not valid: its check digit is wrong.")
    except stdnum.exceptions.ValidationError:
        message = _("A SIRET is made of 14 digits (spaces and dots allowed).")
    raise InvalidInput(message, field="siret", hint=_("Copy it from the establishment's Kbis or INSEE notice."))


def siren_of(siret: str) -> str:
    """The SIREN (first 9 digits) of a SIRET, validated first."""
    return normalize_siret(siret)[:9]


# --------------------------------------------------------------------------------------------------
# Names, function, civility
# --------------------------------------------------------------------------------------------------

NAME_MAX_LENGTH = 80
FUNCTION_MAX_LENGTH = 120

_NAME_TRANSLATION = str.maketrans(
    {
        "\u2019": "'",  # ’
        "\u2018": "'",  # ‘
        "\u02bc": "'",  # ʼ
        "\u00b4": "'",  # ´
        "`": "'",
        "\u2010": "-",  # hyphen
        "\u2011": "-",  # non-breaking hyphen
        "\u2013": "-",  # en dash
        "\t": " ",
        "\u00a0": " ",
        "\u202f": " ",
        "\u2007": " ",
        "\u2009": " ",
    }
)
_NAME_PUNCTUATION = frozenset(" -'.")
_FIELD_LABELS = {"last_name": "last name", "first_name": "first name"}


def _field_label(field: str) -> str:
    label = _FIELD_LABELS.get(field)
    return _(label) if label else field


def normalize_name(raw: str, field: str) -> str:
    """A person's last or first name: letters (any script, accents), spaces, ``-``, ``'``, ``.``."""
    label = _field_label(field)
    if not isinstance(raw, str):
        raise InvalidInput(_("The {field} is empty.").format(field=label), field=field)
    text = unicodedata.normalize("NFC", raw).translate(_NAME_TRANSLATION).strip()
    if not text:
        raise InvalidInput(_("The {field} is empty.").format(field=label), field=field)
    text = re.sub(r"[^\S\n\r\x0b\x0c\x1c-\x1f\x85\u2028\u2029]+", " ", text)
    has_letter = False
    previous = ""
    for char in text:
        category = unicodedata.category(char)
        if category.startswith("L"):
            has_letter = True
        elif category.startswith("M") and previous and not previous.isspace() and previous not in "-'.":
            pass  # a combining accent on a letter
        elif char in _NAME_PUNCTUATION:
            pass
        elif category.startswith("N"):
            raise InvalidInput(
                _("The {field} must not contain digits.").format(field=label),
                field=field,
            )
        else:
            raise InvalidInput(
                _("The {field} contains a character that is not allowed: {char}.").format(
                    field=label, char=_show_char(char)
                ),
                field=field,
                hint=_("Use letters, spaces, hyphens, apostrophes and periods only."),
            )
        previous = char
    if not has_letter:
        raise InvalidInput(_("The {field} must contain a letter.").format(field=label), field=field)
    if len(text) > NAME_MAX_LENGTH:
        raise InvalidInput(
            _("The {field} is too long (at most {n} characters).").format(field=label, n=NAME_MAX_LENGTH),
            field=field,
        )
    return text


_FORBIDDEN_TEXT_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


def normalize_function(raw: str | None) -> str | None:
    """Optional free text (function or service): stripped, at most 120 characters, no control characters."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InvalidInput(_("The function must be text."), field="function")
    text = unicodedata.normalize("NFC", raw).strip()
    if not text:
        return None
    for char in text:
        if unicodedata.category(char) in _FORBIDDEN_TEXT_CATEGORIES:
            raise InvalidInput(
                _("The function contains a control character that is not allowed: {char}.").format(
                    char=_show_char(char)
                ),
                field="function",
            )
    if len(text) > FUNCTION_MAX_LENGTH:
        raise InvalidInput(
            _("The function is too long (at most {n} characters).").format(n=FUNCTION_MAX_LENGTH),
            field="function",
        )
    return text


def _fold(text: str) -> str:
    """Case- and accent-insensitive form: NFKD, combining marks dropped, casefolded."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char)).casefold()


_CIVILITIES = {
    "m": "M",
    "mr": "M",
    "monsieur": "M",
    "mme": "MME",
    "madame": "MME",
    "mrs": "MME",
    "ms": "MME",
    "mlle": "MME",
    "mademoiselle": "MME",
    "miss": "MME",
}


def normalize_civility(raw: str) -> str:
    """``M`` or ``MME`` from the usual French and English writings (case- and accent-insensitive)."""
    key = _fold(raw).strip().rstrip(".").strip() if isinstance(raw, str) else ""
    civility = _CIVILITIES.get(key)
    if civility is None:
        raise InvalidInput(
            _("Unknown civility: use M or MME."),
            field="civility",
            hint=_("M (Monsieur) or MME (Madame)."),
        )
    return civility


# --------------------------------------------------------------------------------------------------
# Identifiers
# --------------------------------------------------------------------------------------------------

IDENTIFIER_RE = re.compile(r"^[A-Z]{3}[0-9]{6}\Z")
_PREFIX_RE = re.compile(r"[A-Z]{3}")
# Letters that NFKD does not decompose into ASCII.
_LIGATURES = str.maketrans(
    {
        "œ": "oe",
        "Œ": "OE",
        "æ": "ae",
        "Æ": "AE",
        "ß": "ss",
        "ø": "o",
        "Ø": "O",
        "đ": "d",
        "Đ": "D",
        "ł": "l",
        "Ł": "L",
        "þ": "th",
        "Þ": "TH",
        "ð": "d",
        "Ð": "D",
    }
)


def _ascii_letters(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES))
    return "".join(char for char in decomposed if char.isascii() and char.isalpha()).upper()


def identifier_prefix(first_name: str, last_name: str) -> str:
    """First letter of the first name + first two of the last name, ASCII upper case, padded with X."""
    first = _ascii_letters(first_name)[:1].ljust(1, "X")
    last = _ascii_letters(last_name)[:2].ljust(2, "X")
    return first + last


def format_identifier(prefix: str, number: int) -> str:
    """``('JDU', 42)`` → ``'JDU000042'``. A bad prefix or number is a programming error (ValueError)."""
    if not _PREFIX_RE.fullmatch(prefix) or not 0 <= number <= 999_999:
        raise ValueError(f"cannot format identifier from {prefix!r} and {number!r}")
    return f"{prefix}{number:06d}"


def normalize_identifier(raw: str) -> str:
    """An account identifier (``JDU000042``), stripped and upper-cased."""
    text = raw.strip() if isinstance(raw, str) else ""
    if text.isascii():
        text = text.upper()
    if not IDENTIFIER_RE.match(text):
        raise InvalidInput(
            _("This is not an account identifier."),
            field="identifier",
            hint=_("An identifier is 3 letters and 6 digits, e.g. JDU000042."),
        )
    return text


# --------------------------------------------------------------------------------------------------
# Passwords
# --------------------------------------------------------------------------------------------------

PASSWORD_MIN_LENGTH = 12
PASSWORD_MAX_LENGTH = 128
_ALWAYS_FORBIDDEN_WORDS = ("peps", "pepsctl", "cnracl", "ircantec", "rafp", "fnc")
_NON_ALNUM = re.compile(r"[\W_]+")
_EDGE_NON_LETTERS = re.compile(r"^[\W\d_]+|[\W\d_]+$")


@functools.cache
def _common_passwords() -> frozenset[str]:
    text = resources.files("pepsctl.domain").joinpath("data", "common-passwords.txt").read_text(encoding="utf-8")
    return frozenset(_fold(line.strip()) for line in text.splitlines() if line.strip() and not line.startswith("#"))


def _context_tokens(words: Iterable[str]) -> set[str]:
    tokens: set[str] = set(_ALWAYS_FORBIDDEN_WORDS)
    for word in words:
        if not isinstance(word, str):
            continue
        for token in _NON_ALNUM.split(_fold(word)):
            if len(token) >= 3:
                tokens.add(token)
                if len(token) == 14 and token.isdigit():
                    tokens.add(token[:9])  # the SIREN of a SIRET
    return tokens


def validate_password(password: str, context_words: Iterable[str] = ()) -> None:
    """Refuse a password that is too short or long, common, or contains a context word.

    Length is counted in characters (code points), with no truncation and no composition rule. The
    checks are case- and accent-insensitive; context words of 3 characters or more count (names are split
    on spaces, hyphens and apostrophes), plus the platform's and the funds' names. The message never
    repeats the password.
    """
    if not isinstance(password, str):
        raise InvalidInput(_("The password must be text."), field="password")
    if len(password) < PASSWORD_MIN_LENGTH:
        raise InvalidInput(
            _("The password is too short: at least {n} characters.").format(n=PASSWORD_MIN_LENGTH),
            field="password",
            hint=_("A sentence of several words is long and easy to remember."),
        )
    if len(password) > PASSWORD_MAX_LENGTH:
        raise InvalidInput(
            _("The password is too long: at most {n} characters.").format(n=PASSWORD_MAX_LENGTH),
            field="password",
        )
    folded = _fold(password)
    blocklist = _common_passwords()
    core = _EDGE_NON_LETTERS.sub("", folded)
    if folded in blocklist or core in blocklist:
        raise InvalidInput(
            _("This password is too common."),
            field="password",
            hint=_("Choose one that is not in the lists of common passwords, e.g. a sentence."),
        )
    squeezed = _NON_ALNUM.sub("", folded)
    for token in sorted(_context_tokens(context_words), key=lambda t: (-len(t), t)):
        if token in folded or token in squeezed:
            raise InvalidInput(
                _("The password must not contain '{word}' (your name, the SIRET or the platform's name).").format(
                    word=token
                ),
                field="password",
            )


# --------------------------------------------------------------------------------------------------
# One-time codes, funds, contract numbers
# --------------------------------------------------------------------------------------------------

_OTP_RE = re.compile(r"[0-9]{6}")


def validate_otp_format(code: str) -> str:
    """The 6 ASCII digits of a one-time code (spaces removed, leading zeros kept). Never echoes the code."""
    text = "".join(code.split()) if isinstance(code, str) else ""
    if not _OTP_RE.fullmatch(text):
        raise InvalidInput(
            _("A one-time code is 6 digits."),
            field="otp",
            hint=_("Type the 6 digits received by SMS or voice call."),
        )
    return text


FUNDS = ("CNRACL", "IRCANTEC", "RAFP", "FNC")


def validate_fund(raw: str) -> str:
    """One of CNRACL, IRCANTEC, RAFP, FNC (case-insensitive), in upper case."""
    key = raw.strip().casefold() if isinstance(raw, str) else ""
    for fund in FUNDS:
        if key == fund.casefold():
            return fund
    raise InvalidInput(
        _("Unknown fund: use one of {funds}.").format(funds=", ".join(FUNDS)),
        field="fund",
    )


_CONTRACT_RE = re.compile(r"[A-Za-z0-9/.\- ]{1,30}")


def validate_contract_number(raw: str) -> str:
    """A fund contract number: 1 to 30 of letters, digits, ``/``, ``-``, ``.`` and spaces (stripped)."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not _CONTRACT_RE.fullmatch(text) or not any(char.isalnum() for char in text):
        raise InvalidInput(
            _("This is not a contract number: 1 to 30 letters, digits, '/', '-', '.' or spaces."),
            field="contract_number",
            hint=_("Copy the immatriculation or adhesion number from the fund's documents."),
        )
    return text
