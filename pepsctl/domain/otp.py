"""One-time codes by SMS (mobile) or voice call (landline): 6 digits, 5 minutes, single use.

A code is random (``secrets``), kept only as a keyed hash (see :mod:`codes`), bound to one account
(or, before an account exists, one target), one purpose and one challenge; a new code of the same
purpose invalidates the earlier ones; at most 5 codes per account (or target) in 15 minutes, since
every SMS or call costs money. A wrong code counts as a failed authentication (lockout).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlmodel import col

from pepsctl import clock
from pepsctl.domain import codes, history, lockout
from pepsctl.domain import validation as v
from pepsctl.domain.env import Env
from pepsctl.domain.notify import Message
from pepsctl.errors import AuthError, Conflict, OtpRequired
from pepsctl.i18n import _
from pepsctl.store.models import Account, OneTimeCode

LIFETIME = timedelta(seconds=300)
RATE_LIMIT = 5
RATE_WINDOW = timedelta(minutes=15)
PHONE_CHANNELS = ("sms", "voice")


def new_code() -> str:
    """Six ASCII digits, leading zeros kept."""
    return f"{secrets.randbelow(1_000_000):06d}"


def channel_for(phone_type: str | None) -> str:
    return "sms" if phone_type == "mobile" else "voice"


def _audit_target(account: Account | None, target: str | None) -> str | None:
    """Who a code event is about: the account, or (registration) its target with the phone masked."""
    if account is not None:
        return account.identifier
    if target is None:
        return None
    return ":".join(v.mask_phone(part) or "" if part.startswith("+") else part for part in target.split(":"))


@dataclass(frozen=True, slots=True)
class Sent:
    channel: str
    to: str  # masked
    expires_at: datetime


class TooManyCodes(Conflict):
    """More than 5 codes asked in 15 minutes."""


def send(
    env: Env,
    *,
    account: Account | None,
    purpose: str,
    phone: str,
    phone_type: str | None,
    target: str | None = None,
    establishment: str | None = None,
) -> Sent:
    """Send a new code to ``phone`` by SMS or voice call; earlier codes of that purpose stop working."""
    account_id = account.id if account is not None else None
    now = clock.now()
    recent = codes.recent_count(
        env,
        account_id,
        target=None if account is not None else target,
        since=now - RATE_WINDOW,
        channels=PHONE_CHANNELS,
    )
    if recent >= RATE_LIMIT:
        history.record(
            env,
            "otp.rate_limited",
            target=_audit_target(account, target),
            establishment=establishment,
            after={"purpose": purpose.split(":")[0]},
        )
        raise TooManyCodes(
            _("Too many codes were sent in the last 15 minutes."),
            hint=_("Wait a few minutes, then try again with the last code you received."),
            persist=True,
        )
    channel = channel_for(phone_type)
    code = new_code()
    issued = codes.issue(env, account_id, purpose, code=code, lifetime=LIFETIME, channel=channel, target=target)
    body = _("PEP's: your code is {code}. It expires in 5 minutes. Never give it to anyone.").format(code=code)
    env.gateway.deliver(
        env.session,
        Message(
            channel=channel,
            to=phone,
            body=body,
            subject=None,
            code=code,
            code_id=issued.id,
            code_expires_at=issued.expires_at,
        ),
    )
    history.record(
        env,
        "otp.sent",
        target=_audit_target(account, target),
        establishment=establishment,
        after={"purpose": purpose.split(":")[0], "channel": channel, "phone": phone},
    )
    return Sent(channel=channel, to=v.mask_phone(phone) or "", expires_at=issued.expires_at)


def verify(
    env: Env,
    *,
    account: Account | None,
    purpose: str,
    code: str,
    target: str | None = None,
    establishment: str | None = None,
) -> None:
    """Consume a code or fail (counted against the account's lockout). Bad formats are exit 3."""
    code = v.validate_otp_format(code)
    account_id = account.id if account is not None else None
    label = _audit_target(account, target)
    used = codes.consume(env, account_id, (purpose,), code, target=target)
    if used is not None:
        history.record(
            env, "otp.verified", target=label, establishment=establishment, after={"purpose": purpose.split(":")[0]}
        )
        return
    reason = codes.why_refused(env, account_id, (purpose,), code, target=target)
    history.record(
        env, f"otp.{reason}", target=label, establishment=establishment, after={"purpose": purpose.split(":")[0]}
    )
    if account is not None and lockout.record_failure(env, account, establishment or "", "code"):
        raise lockout.locked_error()
    raise AuthError(
        _("Wrong, used or expired code."),
        hint=_("Run the same command again without --otp to receive a new code."),
        persist=True,
    )


def _exists(env: Env, account: Account, purpose: str, *conditions) -> bool:
    query = (
        select(func.count())
        .select_from(OneTimeCode)
        .where(col(OneTimeCode.account_id) == account.id)
        .where(col(OneTimeCode.purpose) == purpose)
        .where(*conditions)
    )
    return bool(env.session.execute(query).scalar_one())


def pending(env: Env, account: Account, purpose: str, *, target: str | None = None) -> bool:
    """True when a code of that purpose was sent and is still usable."""
    conditions = [
        col(OneTimeCode.used_at).is_(None),
        col(OneTimeCode.invalidated_at).is_(None),
        col(OneTimeCode.expires_at) > clock.now(),
    ]
    if target is not None:
        conditions.append(col(OneTimeCode.target) == target)
    return _exists(env, account, purpose, *conditions)


def recently_verified(env: Env, account: Account, purpose: str, *, target: str, within: timedelta) -> bool:
    """True when a code of that purpose and target was used within ``within``."""
    return _exists(
        env, account, purpose, col(OneTimeCode.target) == target, col(OneTimeCode.used_at) > clock.now() - within
    )


def code_sent_error(sent: Sent, action: str | None = None) -> OtpRequired:
    how = _("by SMS") if sent.channel == "sms" else _("by voice call")
    if action:
        message = _("This action ({action}) needs a one-time code: one was sent {how} to {to}.").format(
            action=action, how=how, to=sent.to
        )
    else:
        message = _("A one-time code was sent {how} to {to}.").format(how=how, to=sent.to)
    return OtpRequired(
        message,
        hint=_("Run the same command again with --otp CODE (valid 5 minutes)."),
        persist=True,
    )


def send_or_verify(
    env: Env,
    code: str | None,
    *,
    account: Account | None,
    purpose: str,
    phone: str,
    phone_type: str | None,
    target: str | None = None,
    establishment: str | None = None,
    action: str | None = None,
) -> None:
    """The two-step form every code follows: without ``code``, send one and stop (exit 6,
    saying where it went); with it, verify it (or fail, counted against the lockout)."""
    if not code:
        sent = send(
            env,
            account=account,
            purpose=purpose,
            phone=phone,
            phone_type=phone_type,
            target=target,
            establishment=establishment,
        )
        raise code_sent_error(sent, action)
    verify(env, account=account, purpose=purpose, code=code, target=target, establishment=establishment)
