"""One-time codes by SMS or voice call (pepsctl.domain.otp), on SQLite and PostgreSQL.

Each rule of security.md "One-time codes" gets its own test, through the domain functions that
every command uses, each call in its own transaction exactly as ``AppContext.env()`` runs it
(commit on success, commit of the audit facts on a persisted refusal, rollback otherwise).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import timedelta

import pytest
from sqlalchemy import text

from pepsctl import clock
from pepsctl.context import AppContext
from pepsctl.domain import codes, establishments, otp
from pepsctl.domain import validation as v
from pepsctl.domain.models import FundContract, NewAdministrator, NewEstablishment
from pepsctl.errors import AuthError, InvalidInput, PepsError
from pepsctl.store import queries
from tests.conftest import FROZEN_AT, SIRET_A

FORCED = "000042"  # what secrets.randbelow(…) == 42 must give: leading zeros kept


# -- a tiny world: one establishment and its (pending) administrator, made through the domain ------


@pytest.fixture
def app(store_url):
    app = AppContext(store_option=store_url)
    yield app
    app.dispose()


@pytest.fixture
def agent(app) -> str:
    """The identifier of an account with the mobile +33 6 10 20 30 40."""
    new = NewEstablishment(
        siret=SIRET_A,
        name="Mairie de Test",
        funds=(FundContract("CNRACL", "C-1234"),),
        via="classic",
        admin=NewAdministrator("MME", "Durand", "Marie", "marie.durand@example.fr", "06 10 20 30 40"),
    )
    with app.env(auth=False) as env:
        return establishments.register(env, new, require_code=False).administrator


@pytest.fixture
def forced_code(monkeypatch) -> str:
    """Every new code is FORCED (secrets.randbelow patched where otp.py calls it)."""
    calls: list[int] = []

    def randbelow(n: int) -> int:
        calls.append(n)
        return 42

    monkeypatch.setattr(otp.secrets, "randbelow", randbelow)
    yield FORCED
    assert set(calls) <= {1_000_000}


def send(app, identifier: str, *, purpose: str = "login", phone: str | None = None) -> otp.Sent:
    with app.env(auth=False) as env:
        account = queries.get_account_by_identifier(env.session, identifier)
        assert account is not None
        number = v.normalize_phone(phone) if phone else v.normalize_phone(account.phone)
        return otp.send(
            env,
            account=account,
            purpose=purpose,
            phone=number.e164,
            phone_type=number.type,
            establishment=SIRET_A,
        )


def verify(app, identifier: str, code: str, *, purpose: str = "login") -> PepsError | None:
    """None when the code was accepted, else the error (its audit facts committed as the CLI does)."""
    try:
        with app.env(auth=False) as env:
            account = queries.get_account_by_identifier(env.session, identifier)
            assert account is not None
            otp.verify(env, account=account, purpose=purpose, code=code, establishment=SIRET_A)
    except PepsError as error:
        return error
    return None


def sql(app, statement: str, **params) -> list[tuple]:
    with app.engine().connect() as conn:
        return [tuple(row) for row in conn.execute(text(statement), params)]


def outbox_codes(app) -> list[str | None]:
    return [row[0] for row in sql(app, "SELECT code FROM outbox_message WHERE channel <> 'email' ORDER BY id")]


def last_outbox_code(app) -> str:
    code = outbox_codes(app)[-1]
    assert code is not None
    return code


def actions(app, prefix: str = "otp.") -> list[str]:
    return [a for (a,) in sql(app, "SELECT action FROM audit_event ORDER BY id") if a.startswith(prefix)]


def failures(app, identifier: str) -> int:
    ((count,),) = sql(app, "SELECT failed_attempts FROM account WHERE identifier = :i", i=identifier)
    return count


def table_text(app, table: str) -> str:
    """Every cell of a table as text: what someone with a copy of the store would read."""
    return "\n".join(repr(row) for row in sql(app, f"SELECT * FROM {table}"))


# -- format ----------------------------------------------------------------------------------------


def test_a_code_is_six_ascii_digits_with_leading_zeros_kept(app, agent, forced_code):
    sent = send(app, agent)
    assert last_outbox_code(app) == "000042"
    ((body,),) = sql(app, "SELECT body FROM outbox_message WHERE channel = 'sms'")
    assert "000042" in body
    assert sent.to == "+33 6 •• •• •• 40"  # only the masked number is handed back
    assert sent.expires_at == FROZEN_AT + timedelta(seconds=300)
    # "42" is not the code: the zeros are part of it.
    assert isinstance(verify(app, agent, "42"), InvalidInput)
    assert verify(app, agent, "000042") is None


def test_new_codes_are_always_six_ascii_digits():
    drawn = {otp.new_code() for _ in range(500)}
    assert all(re.fullmatch(r"[0-9]{6}", code) for code in drawn)
    assert len(drawn) > 450  # random, not a counter or a constant


# -- lifetime: exactly 300 seconds ----------------------------------------------------------------


def test_a_code_is_accepted_at_299_seconds(app, agent):
    send(app, agent)
    clock.advance(timedelta(seconds=299))
    assert verify(app, agent, last_outbox_code(app)) is None
    assert actions(app) == ["otp.sent", "otp.verified"]


def test_a_code_is_refused_at_300_seconds(app, agent):
    send(app, agent)
    code = last_outbox_code(app)
    clock.advance(timedelta(seconds=300))
    error = verify(app, agent, code)
    assert isinstance(error, AuthError) and error.exit_code == 6
    assert error.message == "Wrong, used or expired code."
    assert code not in error.message and code not in (error.hint or "")
    assert actions(app) == ["otp.sent", "otp.expired"]
    assert failures(app, agent) == 1


# -- single use, bound to one account and one purpose, replaced by a resend -------------------------


def test_a_code_is_single_use(app, agent):
    send(app, agent)
    code = last_outbox_code(app)
    assert verify(app, agent, code) is None
    error = verify(app, agent, code)
    assert isinstance(error, AuthError) and error.exit_code == 6
    assert actions(app) == ["otp.sent", "otp.verified", "otp.replayed"]
    assert failures(app, agent) == 1
    ((used,),) = sql(app, "SELECT count(*) FROM one_time_code WHERE used_at IS NOT NULL AND purpose = 'login'")
    assert used == 1


def test_a_resend_invalidates_the_earlier_code(app, agent):
    send(app, agent)
    first = last_outbox_code(app)
    send(app, agent)
    second = last_outbox_code(app)
    assert outbox_codes(app)[0] is None  # the earlier code is blanked in the outbox at once
    if first != second:  # one chance in a million that both draws are equal
        assert isinstance(verify(app, agent, first), AuthError)
        assert actions(app)[-1] == "otp.replaced"
    assert verify(app, agent, second) is None
    ((open_codes,),) = sql(app, "SELECT count(*) FROM one_time_code WHERE purpose = 'login' AND invalidated_at IS NULL")
    assert open_codes == 1  # the second, now used


def test_a_code_is_bound_to_its_purpose(app, agent):
    send(app, agent, purpose="login")
    code = last_outbox_code(app)
    assert isinstance(verify(app, agent, code, purpose="step-up:1"), AuthError)
    assert actions(app)[-1] == "otp.wrong"
    assert verify(app, agent, code, purpose="login") is None  # still usable where it belongs


def test_a_code_is_bound_to_its_account(app, agent, forced_code):
    from pepsctl.domain import accounts

    with app.env(auth=False) as env:
        establishment = queries.get_establishment_by_siret(env.session, SIRET_A)
        other, _code = accounts.insert_account(
            env,
            establishment,
            profile="user",
            civility="M",
            last_name="Martin",
            first_name="Paul",
            email="paul.martin@example.fr",
            phone=v.normalize_phone("06 11 22 33 44"),
            function=None,
        )
        other_id = other.identifier
    send(app, agent)
    assert isinstance(verify(app, other_id, forced_code), AuthError)  # Paul has no such code
    assert failures(app, other_id) == 1
    assert verify(app, agent, forced_code) is None


def test_a_wrong_code_is_a_counted_failure(app, agent, forced_code):
    send(app, agent)
    error = verify(app, agent, "999999")
    assert isinstance(error, AuthError) and error.exit_code == 6
    assert error.persist  # the failure is kept even though the command fails
    assert actions(app, "")[-2:] == ["otp.wrong", "auth.failed"]
    assert failures(app, agent) == 1
    assert verify(app, agent, forced_code) is None  # a wrong guess does not burn the real code


# -- storage: a keyed hash only; the outbox copy is blanked ----------------------------------------


def test_a_code_is_stored_only_as_a_keyed_hash(app, agent, forced_code):
    send(app, agent)
    ((stored,),) = sql(app, "SELECT code_hash FROM one_time_code WHERE purpose = 'login'")
    ((key,),) = sql(app, "SELECT value FROM store_meta WHERE key = :k", k=codes.KEY_NAME)
    assert stored == hmac.new(bytes.fromhex(key), b"000042", hashlib.sha256).hexdigest()
    assert stored != hashlib.sha256(b"000042").hexdigest()  # keyed, not a plain hash of 10^6 values
    for table in ("one_time_code", "audit_event"):
        assert "000042" not in table_text(app, table), table
    assert "000042" in table_text(app, "outbox_message")  # the gateway's copy, until used
    assert verify(app, agent, forced_code) is None
    for table in ("one_time_code", "audit_event", "outbox_message"):
        assert "000042" not in table_text(app, table), table
    ((body, code),) = sql(app, "SELECT body, code FROM outbox_message WHERE channel = 'sms'")
    assert code is None
    assert "[blanked]" in body


def test_a_code_is_compared_with_hmac_compare_digest(app, agent, forced_code, monkeypatch):
    """The keyed hash of the code given is compared with the stored ones in constant time."""
    compared: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(codes.hmac, "compare_digest", spy)
    send(app, agent)
    ((key,),) = sql(app, "SELECT value FROM store_meta WHERE key = :k", k=codes.KEY_NAME)
    keyed = hmac.new(bytes.fromhex(key), b"000042", hashlib.sha256).hexdigest()
    assert isinstance(verify(app, agent, "999999"), AuthError)
    wrong = hmac.new(bytes.fromhex(key), b"999999", hashlib.sha256).hexdigest()
    assert (keyed, wrong) in compared or (wrong, keyed) in compared  # the wrong guess went through it too
    compared.clear()
    assert verify(app, agent, forced_code) is None
    assert (keyed, keyed) in compared


def test_the_outbox_copy_is_blanked_once_expired(app, agent, forced_code):
    from pepsctl.domain import notify

    send(app, agent)
    clock.advance(timedelta(seconds=299))
    with app.env(auth=False) as env:
        assert [m.code for m in notify.list_outbox(env.session) if m.channel == "sms"] == ["000042"]
    clock.advance(timedelta(seconds=1))
    with app.env(auth=False) as env:
        assert [m.code for m in notify.list_outbox(env.session) if m.channel == "sms"] == [None]
    assert "000042" not in table_text(app, "outbox_message")


# -- bad inputs: refused (exit 3), never a crash, nothing consumed or counted -----------------------

BAD_INPUTS = [
    pytest.param("１２３４５６", id="full-width"),
    pytest.param("١٢٣٤٥٦", id="arabic-indic"),
    pytest.param("۱۲۳۴۵۶", id="extended-arabic-indic"),
    pytest.param("१२३४५६", id="devanagari"),
    pytest.param("00004２", id="one-full-width-digit"),
    pytest.param("abcdef", id="letters"),
    pytest.param("00004a", id="a-letter"),
    pytest.param("00004", id="5-digits"),
    pytest.param("0000420", id="7-digits"),
    pytest.param("", id="empty"),
    pytest.param("   ", id="whitespace"),
    pytest.param("-00042", id="sign"),
    pytest.param("0x002a", id="hex"),
    pytest.param("000042\x00", id="nul"),
    pytest.param("²³⁴⁵⁶⁷", id="superscripts"),
]


@pytest.mark.parametrize("bad", BAD_INPUTS)
def test_a_malformed_code_is_refused_without_consuming_anything(app, agent, forced_code, bad):
    send(app, agent)
    error = verify(app, agent, bad)
    assert isinstance(error, InvalidInput) and error.exit_code == 3
    assert error.message == "A one-time code is 6 digits."
    assert failures(app, agent) == 0  # a typo is not a guess
    assert actions(app) == ["otp.sent"]
    assert verify(app, agent, forced_code) is None  # the real code is still usable


def test_spaces_inside_a_code_are_ignored(app, agent, forced_code):
    send(app, agent)
    assert verify(app, agent, " 000 042 ") is None


# -- rate limit: 5 codes per account per 15 minutes ------------------------------------------------


def test_the_sixth_code_within_15_minutes_is_refused(app, agent):
    for minute in range(5):
        send(app, agent, purpose="login" if minute % 2 else "step-up:1")  # every purpose counts
        clock.advance(timedelta(minutes=1))
    with pytest.raises(otp.TooManyCodes) as refused:
        send(app, agent, purpose="step-up:2")
    assert refused.value.exit_code == 5
    assert refused.value.persist
    assert len(outbox_codes(app)) == 5  # nothing sent, nothing paid
    assert actions(app)[-1] == "otp.rate_limited"


def test_codes_can_be_sent_again_15_minutes_later(app, agent):
    for _ in range(5):
        send(app, agent)
    clock.advance(timedelta(minutes=15) - timedelta(seconds=1))
    with pytest.raises(otp.TooManyCodes):
        send(app, agent)
    clock.advance(timedelta(seconds=1))
    sent = send(app, agent)
    assert sent.channel == "sms"
    assert len(outbox_codes(app)) == 6
    assert verify(app, agent, last_outbox_code(app)) is None


# -- channel: SMS to a mobile, voice call to a landline ---------------------------------------------


@pytest.mark.parametrize(
    ("phone", "channel", "masked"),
    [
        ("06 12 34 56 78", "sms", "+33 6 •• •• •• 78"),
        ("07 81 00 00 02", "sms", "+33 7 •• •• •• 02"),
        ("0692 12 34 56", "sms", "+262 692 •• •• 56"),
        ("01 42 68 53 00", "voice", "+33 1 •• •• •• 00"),
        ("05 56 00 00 00", "voice", "+33 5 •• •• •• 00"),
    ],
)
def test_the_channel_follows_the_phone_type(app, agent, phone, channel, masked):
    sent = send(app, agent, phone=phone)
    assert (sent.channel, sent.to) == (channel, masked)
    ((kind, to),) = sql(app, "SELECT channel, \"to\" FROM outbox_message WHERE channel <> 'email'")
    assert (kind, to) == (channel, v.normalize_phone(phone).e164)
    ((stored,),) = sql(app, "SELECT channel FROM one_time_code WHERE purpose = 'login'")
    assert stored == channel
