"""Activation and reset codes (and, later, one-time codes): issued, stored as a keyed hash, consumed once.

A code is kept only as HMAC-SHA256 with a per-store key (``store_meta.code_key``), bound to one
account and one purpose, invalidated by a newer code of the same purpose, and consumed by one
conditional UPDATE so that two concurrent uses give exactly one success.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlmodel import Session, col

from pepsctl import clock
from pepsctl.domain.env import Env
from pepsctl.errors import StoreNotInitialised
from pepsctl.i18n import _
from pepsctl.store.models import OneTimeCode, StoreMeta

KEY_NAME = "code_key"
ACTIVATION = "activation"
RESET = "reset"
ACTIVATION_LIFETIME = timedelta(days=15)
RESET_LIFETIME = timedelta(hours=24)
# Letters and digits with no look-alikes (no 0/O, 1/I/L).
_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


def new_store_key() -> str:
    return secrets.token_hex(32)


def _key(session: Session) -> bytes:
    cached = session.info.get(KEY_NAME)
    if cached is None:
        meta = session.get(StoreMeta, KEY_NAME)
        if meta is None:
            raise StoreNotInitialised(
                _("The store has no code key."), hint=_("Run 'pepsctl init' to finish initialising it.")
            )
        cached = session.info[KEY_NAME] = bytes.fromhex(meta.value)
    return cached


def code_hash(session: Session, code: str) -> str:
    return hmac.new(_key(session), code.encode("utf-8"), hashlib.sha256).hexdigest()


def new_long_code() -> str:
    """A 12-character activation/reset code, shown in three groups of four, e.g. ABCD-EFGH-JKMN (about 59 bits)."""
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def normalize_long_code(raw: str) -> str:
    compact = "".join(ch for ch in raw.upper() if ch not in " -")
    if len(compact) != 12 or not all(ch in _ALPHABET for ch in compact):
        return ""
    return f"{compact[:4]}-{compact[4:8]}-{compact[8:]}"


@dataclass(frozen=True, slots=True)
class IssuedCode:
    id: int
    code: str
    expires_at: datetime


def _owned(query, account_id: int | None, target: str | None):
    """Codes of one account (and target, when given), or of a target alone before an account exists."""
    if account_id is None:
        query = query.where(col(OneTimeCode.account_id).is_(None))
    else:
        query = query.where(col(OneTimeCode.account_id) == account_id)
    if target is not None:
        query = query.where(col(OneTimeCode.target) == target)
    return query


def issue(
    env: Env,
    account_id: int | None,
    purpose: str,
    *,
    code: str,
    lifetime: timedelta,
    channel: str,
    target: str | None = None,
) -> IssuedCode:
    """Store a new code for that account (or target) and purpose, invalidating the earlier ones."""
    now = clock.now()
    invalidate(env, account_id, purpose, target=target)
    row = OneTimeCode(
        account_id=account_id,
        purpose=purpose,
        target=target,
        challenge=secrets.token_hex(16),
        code_hash=code_hash(env.session, code),
        channel=channel,
        created_at=now,
        expires_at=now + lifetime,
    )
    env.session.add(row)
    env.session.flush()
    assert row.id is not None
    return IssuedCode(row.id, code, row.expires_at)


def invalidate(env: Env, account_id: int | None, purpose: str, *, target: str | None = None) -> None:
    """Invalidate the open codes of that purpose, and blank their outbox copies."""
    from pepsctl.domain.notify import blank_code

    query = _owned(update(OneTimeCode), account_id, target)
    ids = env.session.execute(
        query.where(col(OneTimeCode.purpose) == purpose)
        .where(col(OneTimeCode.used_at).is_(None))
        .where(col(OneTimeCode.invalidated_at).is_(None))
        .values(invalidated_at=clock.now())
        .returning(OneTimeCode.id)
    ).scalars()
    for code_id in list(ids):
        blank_code(env.session, code_id)


def consume(
    env: Env, account_id: int | None, purposes: tuple[str, ...], code: str, *, target: str | None = None
) -> int | None:
    """Use a valid code atomically; returns its id, or None if wrong, used, replaced or expired.

    The open codes of the account are compared with ``hmac.compare_digest``; the match is then
    consumed by one conditional UPDATE, so two concurrent uses give exactly one success.
    """
    if not code:
        return None
    now = clock.now()
    wanted = code_hash(env.session, code)
    candidates = env.session.execute(
        _owned(select(OneTimeCode.id, OneTimeCode.code_hash), account_id, target)
        .where(col(OneTimeCode.purpose).in_(purposes))
        .where(col(OneTimeCode.used_at).is_(None))
        .where(col(OneTimeCode.invalidated_at).is_(None))
        .where(col(OneTimeCode.expires_at) > now)
    ).all()
    match = next((row.id for row in candidates if hmac.compare_digest(row.code_hash, wanted)), None)
    if match is None:
        return None
    found = env.session.execute(
        update(OneTimeCode)
        .where(col(OneTimeCode.id) == match)
        .where(col(OneTimeCode.used_at).is_(None))
        .where(col(OneTimeCode.invalidated_at).is_(None))
        .values(used_at=now)
        .returning(OneTimeCode.id)
    ).scalar_one_or_none()
    if found is not None:
        from pepsctl.domain.notify import blank_code

        blank_code(env.session, found)
    return found


def why_refused(
    env: Env, account_id: int | None, purposes: tuple[str, ...], code: str, *, target: str | None = None
) -> str:
    """For the history: was a refused code 'expired', 'replayed' (already used), 'replaced' or 'wrong'?"""
    wanted = code_hash(env.session, code)
    rows = env.session.execute(
        _owned(select(OneTimeCode), account_id, target)
        .where(col(OneTimeCode.purpose).in_(purposes))
        .order_by(col(OneTimeCode.id).desc())
        .limit(20)
    ).scalars()
    for row in rows:
        if hmac.compare_digest(row.code_hash, wanted):
            if row.used_at is not None:
                return "replayed"
            if row.invalidated_at is not None:
                return "replaced"
            return "expired"
    return "wrong"


def recent_count(
    env: Env, account_id: int | None, *, target: str | None, since: datetime, channels: tuple[str, ...]
) -> int:
    """How many codes were sent to that account (or target) by those channels since ``since``."""
    from sqlalchemy import func

    return int(
        env.session.execute(
            _owned(select(func.count()).select_from(OneTimeCode), account_id, target)
            .where(col(OneTimeCode.channel).in_(channels))
            .where(col(OneTimeCode.created_at) > since)
        ).scalar_one()
    )
