"""Authenticator apps (TOTP, RFC 6238, with pyotp): enrolment, verification, each time step once.

The secret is shown once, at enrolment (as an ``otpauth://`` URI and a QR code), and never again.
A code is accepted for the current 30-second step or one step either side; the last accepted step
is remembered and only a later step is accepted, so a code cannot be replayed. For unattended
scripts, ``PEPSCTL_TOTP_SECRET`` lets pepsctl compute the code itself (:func:`current_code`).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

import pyotp
from sqlalchemy import or_, update
from sqlmodel import col

from pepsctl import clock
from pepsctl.domain import history, lockout
from pepsctl.domain import validation as v
from pepsctl.domain.env import Env
from pepsctl.errors import AuthError, Conflict, InvalidInput
from pepsctl.i18n import _
from pepsctl.store.models import Account

STEP = 30
ISSUER = "PEP's (pepsctl)"


def enabled(account: Account) -> bool:
    return account.totp_secret is not None and account.totp_enabled_at is not None


def current_code(secret: str) -> str:
    """The code of the current time step for ``secret`` (for CI: ``PEPSCTL_TOTP_SECRET``)."""
    try:
        return pyotp.TOTP(secret.strip().replace(" ", "").upper()).at(clock.now())
    except (ValueError, TypeError) as error:  # binascii.Error is a ValueError
        raise InvalidInput(_("PEPSCTL_TOTP_SECRET is not a base32 secret."), field="totp_secret") from error


def check(env: Env, account: Account, code: str, *, pending_ok: bool = False) -> bool:
    """Accept ``code`` once for its time step; False when it does not match or was already used."""
    code = v.validate_otp_format(code)
    if account.totp_secret is None or (account.totp_enabled_at is None and not pending_ok):
        return False
    totp = pyotp.TOTP(account.totp_secret)
    now_step = int(clock.now().timestamp()) // STEP
    for step in (now_step + 1, now_step, now_step - 1):
        if hmac.compare_digest(totp.at(step * STEP), code):
            accepted = env.session.execute(
                update(Account)
                .where(col(Account.id) == account.id)
                .where(or_(col(Account.totp_last_step).is_(None), col(Account.totp_last_step) < step))
                .values(totp_last_step=step)
                .returning(Account.id)
            ).scalar_one_or_none()
            return accepted is not None
    return False


def verify(env: Env, account: Account, code: str, *, establishment: str) -> None:
    """Accept a TOTP code or fail, counted against the lockout."""
    if check(env, account, code):
        history.record(env, "totp.verified", target=account.identifier, establishment=establishment)
        return
    history.record(env, "totp.failed", target=account.identifier, establishment=establishment)
    if lockout.record_failure(env, account, establishment, "totp"):
        raise lockout.locked_error()
    raise AuthError(
        _("Wrong or already used authenticator code."),
        hint=_("Wait for the next code in your authenticator app."),
        persist=True,
    )


@dataclass(frozen=True, slots=True)
class Enrolment:
    identifier: str
    uri: str
    secret: str


def enroll_start(env: Env, account: Account, *, establishment: str) -> Enrolment:
    """Make a new secret (pending until a first valid code); show it this once."""
    if enabled(account):
        raise Conflict(
            _("An authenticator app is already enrolled."),
            hint=_("Remove it first with 'pepsctl me totp remove'."),
        )
    secret = pyotp.random_base32()
    account.totp_secret = secret
    account.totp_enabled_at = None
    account.totp_last_step = None
    env.session.add(account)
    history.record(env, "totp.enroll.started", target=account.identifier, establishment=establishment)
    uri = pyotp.TOTP(secret).provisioning_uri(name=account.identifier, issuer_name=ISSUER)
    return Enrolment(account.identifier, uri, secret)


def enroll_confirm(env: Env, account: Account, code: str, *, establishment: str) -> None:
    if account.totp_secret is None or enabled(account):
        raise Conflict(
            _("No authenticator enrolment is waiting for a code."), hint=_("Start with 'pepsctl me totp enroll'.")
        )
    if not check(env, account, code, pending_ok=True):
        if lockout.record_failure(env, account, establishment, "totp"):
            raise lockout.locked_error()
        raise AuthError(_("Wrong authenticator code: the app is not enrolled."), persist=True)
    account.totp_enabled_at = clock.now()
    env.session.add(account)
    history.record(env, "totp.enrolled", target=account.identifier, establishment=establishment)


def remove(env: Env, account: Account, *, establishment: str) -> bool:
    if account.totp_secret is None:
        return False
    account.totp_secret = None
    account.totp_enabled_at = None
    account.totp_last_step = None
    env.session.add(account)
    history.record(env, "totp.removed", target=account.identifier, establishment=establishment)
    return True
