"""Authentication, password part: first password from an activation code, login, sessions, logout.

Sessions: a random token (``secrets.token_urlsafe(32)``) kept by the caller in the OS keyring, only
its SHA-256 in the store; 30 minutes idle, 12 hours absolute. Five consecutive failures lock the
account (counted atomically in the store); a locked account is refused with the same answer
whether the password given was right or wrong. An unknown identifier and a wrong password get the
same message, exit code and (through a dummy Argon2 verification) similar timing.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlmodel import col

from pepsctl import clock
from pepsctl.domain import codes, establishments, history, passwords
from pepsctl.domain import validation as v
from pepsctl.domain.accounts import VALIDITY_MONTHS, add_months, status_of
from pepsctl.domain.env import Actor, Env
from pepsctl.domain.models import SessionView
from pepsctl.errors import (
    AccountLocked,
    AuthError,
    BadCredentials,
    InvalidInput,
    NotLoggedIn,
)
from pepsctl.i18n import _
from pepsctl.store import queries
from pepsctl.store.models import Account, AuthSession, Establishment

SESSION_IDLE = timedelta(minutes=30)
SESSION_ABSOLUTE = timedelta(hours=12)
MAX_FAILURES = 5


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


def _locked() -> AccountLocked:
    return AccountLocked(
        _("This account is locked."),
        hint=_("An administrator of your establishment can unlock it; you then set a new password."),
        persist=True,
    )


def record_failure(env: Env, account: Account, establishment_siret: str, reason: str) -> bool:
    """Count one failed authentication atomically; lock at the 5th. Returns True if now locked."""
    now = clock.now()
    failures = env.session.execute(
        update(Account)
        .where(col(Account.id) == account.id)
        .values(failed_attempts=col(Account.failed_attempts) + 1)
        .returning(Account.failed_attempts)
    ).scalar_one()
    history.record(
        env,
        "auth.failed",
        target=account.identifier,
        establishment=establishment_siret,
        after={"reason": reason, "failures": failures},
        actor=account.identifier,
    )
    if failures >= MAX_FAILURES:
        locked = env.session.execute(
            update(Account)
            .where(col(Account.id) == account.id)
            .where(col(Account.locked_at).is_(None))
            .values(locked_at=now)
            .returning(Account.id)
        ).scalar_one_or_none()
        if locked is not None:
            history.record(
                env,
                "account.locked",
                target=account.identifier,
                establishment=establishment_siret,
                actor=account.identifier,
            )
            revoke_sessions(env, account.id)
        return True
    return False


def revoke_sessions(env: Env, account_id: int | None, *, keep: int | None = None) -> None:
    query = (
        update(AuthSession)
        .where(col(AuthSession.account_id) == account_id)
        .where(col(AuthSession.revoked_at).is_(None))
    )
    if keep is not None:
        query = query.where(col(AuthSession.id) != keep)
    env.session.execute(query.values(revoked_at=clock.now()))


@dataclass(frozen=True, slots=True)
class LoginResult:
    token: str
    session: SessionView


def login(env: Env, identifier: str, password: str) -> LoginResult:
    """Check the password and open a session. Failures are counted and kept in the history."""
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
    now = clock.now()
    if account.locked_at is not None:
        history.record(
            env,
            "auth.refused.locked",
            target=account.identifier,
            establishment=establishment.siret,
            actor=account.identifier,
        )
        raise _locked()
    if not ok:
        if record_failure(env, account, establishment.siret, "password"):
            raise _locked()
        raise _bad_credentials()
    status = status_of(account, now)
    if status == "pending":
        raise AuthError(
            _("This account is not activated yet."),
            hint=_("Set your first password with 'pepsctl password set {identifier} --code CODE'.").format(
                identifier=account.identifier
            ),
        )
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
    if passwords.needs_rehash(account.password_hash or ""):
        account.password_hash = passwords.hash_password(password)
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
    )
    env.session.add(row)
    env.session.flush()
    history.record(
        env,
        "auth.login",
        target=account.identifier,
        establishment=establishment.siret,
        actor=account.identifier,
    )
    return LoginResult(token, _session_view(account, establishment, row))


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
        raise _locked()
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
        record_failure(env, account, establishment.siret, "code")
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
    revoke_sessions(env, account.id)
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
