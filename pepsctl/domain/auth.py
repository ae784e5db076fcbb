"""Authentication: passwords, the second factor at login, sessions, recovery.

- Login: password, then a one-time code (SMS to a mobile, voice call to a landline, or an
  authenticator app with ``--totp``) at the first login and again once the workstation's trust
  (7 days from the code's verification, not sliding) has run out. A code verified at login steps
  the session up for sensitive actions.
- Sessions: a random token (``secrets.token_urlsafe(32)``) kept by the caller in the OS keyring, only
  its SHA-256 in the store; 30 minutes idle, 12 hours absolute. Same for workstation trust tokens.
- Five consecutive failures (password or code) lock the account (see :mod:`lockout`); a locked
  account is refused with the same answer whether the credentials were right or wrong. An unknown
  identifier and a wrong password get the same message, exit code and (through a dummy Argon2
  verification) similar timing.
- Recovery: ``password forgot`` e-mails a reset code valid 24 hours (same answer whether or not
  the identifier and e-mail match); ``password set`` with it sets a new password and ends the lock.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlmodel import col

from pepsctl import clock
from pepsctl.domain import codes, establishments, history, lockout, notify, otp, passwords, stepup, totp
from pepsctl.domain import validation as v
from pepsctl.domain.accounts import VALIDITY_MONTHS, add_months, status_of
from pepsctl.domain.env import Actor, Env
from pepsctl.domain.models import SessionView
from pepsctl.errors import AuthError, BadCredentials, InvalidInput, NotLoggedIn, OtpRequired, PhoneRequired
from pepsctl.i18n import _
from pepsctl.store import queries
from pepsctl.store.models import Account, AuthSession, Establishment, TrustedDevice

SESSION_IDLE = timedelta(minutes=30)
SESSION_ABSOLUTE = timedelta(hours=12)
TRUST_LIFETIME = timedelta(days=7)
RESET_EMAIL_LIMIT = 5


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _bad_credentials() -> BadCredentials:
    return BadCredentials(
        _("Unknown identifier or wrong password."),
        hint=_(
            "New account? Set your first password with 'pepsctl password set IDENTIFIER --code CODE' "
            "from the activation e-mail. Forgot it? Ask an administrator."
        ),
        persist=True,
    )


@dataclass(frozen=True, slots=True)
class LoginResult:
    token: str
    session: SessionView
    trust_token: str | None  # a new workstation trust token to keep, when a code was verified


@dataclass(frozen=True, slots=True)
class LoginRequest:
    identifier: str
    password: str
    otp: str | None = None
    use_totp: bool = False
    trust_token: str | None = None  # this workstation's trust token for that account, if any
    phone: str | None = None  # a phone to register at the first login of an account with none


def _check_password(env: Env, identifier: str, password: str) -> tuple[Account, Establishment]:
    """The account behind identifier + password; failures counted and kept in the history."""
    try:
        identifier = v.normalize_identifier(identifier)
    except InvalidInput:
        identifier = ""
    account = queries.get_account_by_identifier(env.session, identifier) if identifier else None
    ok = passwords.verify(account.password_hash if account else None, password)
    if account is None:
        history.record(env, "auth.failed", target=identifier or None, after={"reason": "unknown"})
        raise _bad_credentials()
    establishment = env.session.get(Establishment, account.establishment_id)
    assert establishment is not None and account.id is not None
    if account.locked_at is not None:
        history.record(
            env,
            "auth.refused.locked",
            target=account.identifier,
            establishment=establishment.siret,
            actor=account.identifier,
        )
        raise lockout.locked_error()
    if not ok:
        if lockout.record_failure(env, account, establishment.siret, "password"):
            raise lockout.locked_error()
        raise _bad_credentials()
    status = status_of(account, clock.now())
    if status == "expired":
        history.record(
            env,
            "auth.refused.expired",
            target=account.identifier,
            establishment=establishment.siret,
            actor=account.identifier,
        )
        raise AuthError(
            _("This account expired on {date:%Y-%m-%d}.").format(date=account.expires_at),
            hint=_("Ask an administrator of your establishment to renew it."),
            persist=True,
        )
    if account.must_set_password:
        raise AuthError(
            _("A new password must be set for this account."),
            hint=_("Use the code sent by e-mail: pepsctl password set {identifier} --code CODE").format(
                identifier=account.identifier
            ),
        )
    return account, establishment


def _trusted(env: Env, account: Account, trust_token: str | None) -> bool:
    if not trust_token:
        return False
    row = env.session.scalars(
        select(TrustedDevice)
        .where(col(TrustedDevice.token_hash) == token_hash(trust_token))
        .where(col(TrustedDevice.account_id) == account.id)
    ).first()
    return row is not None and row.revoked_at is None and row.expires_at > clock.now()


def _second_factor(env: Env, request: LoginRequest, account: Account, establishment: Establishment) -> None:
    """Check the login code (TOTP or SMS/voice), or send one and stop with exit 6."""
    siret = establishment.siret
    if request.use_totp:
        if not totp.enabled(account):
            raise AuthError(
                _("No authenticator app is enrolled for this account."),
                hint=_("Log in without --totp to receive a code by SMS or voice call."),
            )
        if not request.otp:
            raise OtpRequired(
                _("A code from your authenticator app is needed."),
                hint=_("Run the same command again with --otp CODE (or set PEPSCTL_TOTP_SECRET in scripts)."),
            )
        totp.verify(env, account, request.otp, establishment=siret)
        return
    if account.phone is None:
        _first_phone(env, request, account, establishment)
        return
    otp.send_or_verify(
        env,
        request.otp,
        account=account,
        purpose="login",
        phone=account.phone,
        phone_type=account.phone_type,
        establishment=siret,
    )
    if account.phone_verified_at is None:
        account.phone_verified_at = clock.now()


def _first_phone(env: Env, request: LoginRequest, account: Account, establishment: Establishment) -> None:
    """An account with no phone gives one at its first login; a code sent to it proves it."""
    if not request.phone:
        raise PhoneRequired(
            _("Your account has no phone number for one-time codes."),
            hint=_("Give your personal phone: run the same command again with --phone NUMBER."),
        )
    phone = v.normalize_phone(request.phone)
    otp.send_or_verify(
        env,
        request.otp,
        account=account,
        purpose="phone-new",
        phone=phone.e164,
        phone_type=phone.type,
        target=phone.e164,
        establishment=establishment.siret,
    )
    before = account.phone
    account.phone, account.phone_type, account.phone_verified_at = phone.e164, phone.type, clock.now()
    history.record(
        env,
        "account.phone.set",
        target=account.identifier,
        establishment=establishment.siret,
        before={"phone": before},
        after={"phone": phone.e164},
        actor=account.identifier,
    )


def login(env: Env, request: LoginRequest) -> LoginResult:
    """Password, then the second factor unless this workstation is trusted; opens a session."""
    account, establishment = _check_password(env, request.identifier, request.password)
    env.label = account.identifier
    now = clock.now()
    trust_token = None
    stepped_up_at = None
    if request.use_totp or not _trusted(env, account, request.trust_token):
        _second_factor(env, request, account, establishment)
        trust_token = secrets.token_urlsafe(32)
        env.session.add(
            TrustedDevice(
                token_hash=token_hash(trust_token),
                account_id=account.id,
                created_at=now,
                expires_at=now + TRUST_LIFETIME,
            )
        )
        stepped_up_at = now
    if passwords.needs_rehash(account.password_hash or ""):
        account.password_hash = passwords.hash_password(request.password)
    account.failed_attempts = 0
    account.last_login_at = now
    env.session.add(account)
    token = secrets.token_urlsafe(32)
    row = AuthSession(
        token_hash=token_hash(token),
        account_id=account.id,
        created_at=now,
        last_seen_at=now,
        expires_at=now + SESSION_ABSOLUTE,
        stepped_up_at=stepped_up_at,
    )
    env.session.add(row)
    env.session.flush()
    history.record(
        env,
        "auth.login",
        target=account.identifier,
        establishment=establishment.siret,
        after={"second_factor": "totp" if request.use_totp else ("code" if trust_token else "trusted")},
    )
    return LoginResult(token, _session_view(account, establishment, row), trust_token)


def _session_view(account: Account, establishment: Establishment, row: AuthSession) -> SessionView:
    return SessionView(
        identifier=account.identifier,
        name=f"{account.first_name} {account.last_name}",
        profile=account.profile,
        establishment=establishment.siret,
        establishment_name=establishment.name,
        session_expires_at=min(row.expires_at, row.last_seen_at + SESSION_IDLE),
        stepped_up=row.stepped_up_at is not None,
    )


def _not_logged_in(message: str | None = None) -> NotLoggedIn:
    return NotLoggedIn(
        message or _("You are not logged in to this store."),
        hint=_("Run 'pepsctl login IDENTIFIER'."),
    )


def find_session(env: Env, token: str | None) -> tuple[AuthSession, Account, Establishment]:
    """The live session behind ``token`` (refreshing its idle time), or NotLoggedIn."""
    if not token:
        raise _not_logged_in()
    row = _session_row(env, token)
    now = clock.now()
    if row is None or row.revoked_at is not None:
        raise _not_logged_in()
    if now >= row.expires_at or now - row.last_seen_at >= SESSION_IDLE:
        raise _not_logged_in(_("Your session has expired."))
    account = env.session.get(Account, row.account_id)
    assert account is not None
    if account.locked_at is not None:
        raise lockout.locked_error()
    if status_of(account, now) == "expired":
        raise _not_logged_in(_("Your account has expired."))
    establishment = env.session.get(Establishment, account.establishment_id)
    assert establishment is not None
    row.last_seen_at = now
    env.session.add(row)
    return row, account, establishment


def _session_row(env: Env, token: str) -> AuthSession | None:
    return env.session.scalars(select(AuthSession).where(col(AuthSession.token_hash) == token_hash(token))).first()


def resolve_session(env: Env, token: str | None) -> Actor:
    row, account, establishment = find_session(env, token)
    assert account.id is not None and establishment.id is not None
    return Actor(
        account_id=account.id,
        identifier=account.identifier,
        establishment_id=establishment.id,
        siret=establishment.siret,
        profile=account.profile,
        session_id=row.id,
        stepped_up_at=row.stepped_up_at,
        session_expires_at=min(row.expires_at, row.last_seen_at + SESSION_IDLE),
    )


def whoami(env: Env, token: str | None) -> SessionView:
    row, account, establishment = find_session(env, token)
    return _session_view(account, establishment, row)


def logout(env: Env, token: str | None) -> bool:
    """Revoke the session server-side; True if there was a live one."""
    if not token:
        return False
    row = _session_row(env, token)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = clock.now()
    env.session.add(row)
    account = env.session.get(Account, row.account_id)
    if account is not None:
        establishment = env.session.get(Establishment, account.establishment_id)
        history.record(
            env,
            "auth.logout",
            target=account.identifier,
            establishment=establishment.siret if establishment else None,
            actor=account.identifier,
        )
    return True


def set_password(env: Env, identifier: str, code: str, password: str) -> SessionView | None:
    """Set a password from an activation (15 days) or reset (24 hours) code; activates the account."""
    try:
        identifier = v.normalize_identifier(identifier)
    except InvalidInput:
        identifier = ""
    account = queries.get_account_by_identifier(env.session, identifier) if identifier else None
    normalized = codes.normalize_long_code(code)
    if account is None or not normalized:
        history.record(env, "auth.code.failed", target=identifier or None, after={"purpose": "password"})
        raise _bad_code()
    establishment = env.session.get(Establishment, account.establishment_id)
    assert establishment is not None and account.id is not None
    used = codes.consume(env, account.id, (codes.ACTIVATION, codes.RESET), normalized)
    if used is None:
        lockout.record_failure(env, account, establishment.siret, "code")
        raise _bad_code()
    # Checked only once the code is known good: before, a refusal would tell that the identifier
    # exists (and whose names it has). A refusal rolls back, so the code stays usable.
    v.validate_password(
        password,
        context_words=(
            account.first_name,
            account.last_name,
            account.identifier,
            establishment.siret,
            account.email.split("@")[0],
        ),
    )
    if env.actor is None:
        env.label = account.identifier
    now = clock.now()
    first_activation = account.activated_at is None
    account.password_hash = passwords.hash_password(password)
    account.must_set_password = False
    account.failed_attempts = 0
    account.locked_at = None
    if first_activation:
        account.activated_at = now
        account.expires_at = add_months(now, VALIDITY_MONTHS)
    account.updated_at = now
    env.session.add(account)
    lockout.revoke_sessions(env, account.id)
    if not first_activation:
        lockout.revoke_trust(env, account.id)
        _password_notice(env, account, _("was just set with a reset code"))
    history.record(
        env,
        "account.activate" if first_activation else "auth.password.set",
        target=account.identifier,
        establishment=establishment.siret,
        actor=account.identifier,
    )
    if first_activation and account.profile == "admin":
        establishments.activate(env, establishment)
    return None


def _bad_code() -> AuthError:
    return AuthError(
        _("Unknown identifier, or wrong, used or expired code."),
        hint=_("Check the code in the e-mail; an administrator can send a new one."),
        persist=True,
    )


def forgot(env: Env, identifier: str, email: str) -> None:
    """E-mail a reset code (24 hours) if identifier and e-mail match; the same answer either way."""
    try:
        identifier = v.normalize_identifier(identifier)
        email = v.normalize_email(email)
    except InvalidInput:
        identifier = email = ""
    account = queries.get_account_by_identifier(env.session, identifier) if identifier else None
    if account is None or account.email.casefold() != email.casefold() or account.activated_at is None:
        history.record(env, "auth.reset.unmatched", target=identifier or None)
        return
    establishment = env.session.get(Establishment, account.establishment_id)
    assert establishment is not None and account.id is not None
    now = clock.now()
    sent = codes.recent_count(env, account.id, target=None, since=now - otp.RATE_WINDOW, channels=("email",))
    if sent >= RESET_EMAIL_LIMIT:
        history.record(env, "auth.reset.rate_limited", target=account.identifier, establishment=establishment.siret)
        return
    send_reset_code(env, account, reason=_("You asked to reset your password."))
    history.record(
        env,
        "auth.reset.requested",
        target=account.identifier,
        establishment=establishment.siret,
        actor=account.identifier,
    )


def send_reset_code(env: Env, account: Account, *, reason: str) -> None:
    """Issue a reset code (24 hours, replacing earlier ones) and e-mail it to the account."""
    assert account.id is not None
    code = codes.issue(
        env, account.id, codes.RESET, code=codes.new_long_code(), lifetime=codes.RESET_LIFETIME, channel="email"
    )
    notify.send_email(
        env.session,
        env.gateway,
        to=account.email,
        subject=_("Reset the password of your PEP's account {identifier}").format(identifier=account.identifier),
        body=_(
            "{reason}\n"
            "Reset code: {code} (valid until {until:%Y-%m-%d %H:%M} UTC)\n"
            "Set a new password with:\n  pepsctl password set {identifier} --code {code}\n"
            "If you did not ask for this, ignore this e-mail and tell your administrator.\n"
        ).format(reason=reason, code=code.code, until=code.expires_at, identifier=account.identifier),
        code=code.code,
        code_id=code.id,
        code_expires_at=code.expires_at,
    )


def change_password(env: Env, current: str, new: str) -> None:
    """Change one's own password: the current one and a fresh code; ends every other session and trust."""
    actor = env.require_actor()
    account = env.session.get(Account, actor.account_id)
    establishment = env.session.get(Establishment, actor.establishment_id)
    assert account is not None and establishment is not None
    if not passwords.verify(account.password_hash, current):
        if lockout.record_failure(env, account, establishment.siret, "password"):
            raise lockout.locked_error()
        raise BadCredentials(_("The current password is wrong."), persist=True)
    v.validate_password(
        new,
        context_words=(
            account.first_name,
            account.last_name,
            account.identifier,
            establishment.siret,
            account.email.split("@")[0],
        ),
    )
    if passwords.verify(account.password_hash, new):
        raise InvalidInput(_("The new password is the same as the current one."), field="password")
    stepup.require(env, "password.change")
    account.password_hash = passwords.hash_password(new)
    account.failed_attempts = 0
    account.updated_at = clock.now()
    env.session.add(account)
    lockout.revoke_sessions(env, account.id, keep=actor.session_id)
    lockout.revoke_trust(env, account.id)
    _password_notice(env, account, _("was changed; your other sessions were ended"))
    history.record(env, "auth.password.changed", target=account.identifier, establishment=establishment.siret)


def _password_notice(env: Env, account: Account, what: str) -> None:
    """Tell the person, by e-mail, that their password changed."""
    notify.send_email(
        env.session,
        env.gateway,
        to=account.email,
        subject=_("Your PEP's password was changed"),
        body=_(
            "The password of your account {identifier} {what}.\nIf this was not you, tell your administrator at once.\n"
        ).format(identifier=account.identifier, what=what),
    )
