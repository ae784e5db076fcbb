"""Consecutive failures and the lock: five failed authentications (password or code) lock the account.

The counter is incremented in the store (``UPDATE … SET failed_attempts = failed_attempts + 1 …
RETURNING``) so parallel attempts from several processes are all counted; there is no unlock with
time: a password reset or an administrator's unlock ends it.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlmodel import col

from pepsctl import clock
from pepsctl.domain import history, notify
from pepsctl.domain.env import Env
from pepsctl.errors import AccountLocked
from pepsctl.i18n import _
from pepsctl.store.models import Account, AuthSession, BatchChange, TrustedDevice

MAX_FAILURES = 5


def locked_error() -> AccountLocked:
    return AccountLocked(
        _("This account is locked."),
        hint=_(
            "Reset your password with 'pepsctl password forgot IDENTIFIER --email EMAIL', "
            "or ask an administrator of your establishment to unlock it."
        ),
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
    if failures < MAX_FAILURES:
        return False
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
        revoke_trust(env, account.id)
        notify.send_email(
            env.session,
            env.gateway,
            to=account.email,
            subject=_("Your PEP's account {identifier} is locked").format(identifier=account.identifier),
            body=_(
                "Your account {identifier} was locked after {n} failed attempts.\n"
                "Reset your password with: pepsctl password forgot {identifier} --email {email}\n"
                "or ask an administrator of your establishment to unlock it.\n"
                "If these attempts were not yours, tell your administrator.\n"
            ).format(identifier=account.identifier, n=MAX_FAILURES, email=account.email),
        )
    return True


def reset_failures(env: Env, account: Account) -> None:
    account.failed_attempts = 0
    env.session.add(account)


def revoke_sessions(env: Env, account_id: int | None, *, keep: int | None = None) -> None:
    """End the account's sessions in the store (all, or all but ``keep``)."""
    query = (
        update(AuthSession)
        .where(col(AuthSession.account_id) == account_id)
        .where(col(AuthSession.revoked_at).is_(None))
    )
    if keep is not None:
        query = query.where(col(AuthSession.id) != keep)
    env.session.execute(query.values(revoked_at=clock.now()))


def revoke_sessions_of_batch(env: Env, batch_id: int) -> None:
    """End the sessions of every account a batch changed (one statement), but the actor's own."""
    changed = select(col(BatchChange.account_id)).where(col(BatchChange.batch_id) == batch_id)
    query = (
        update(AuthSession).where(col(AuthSession.account_id).in_(changed)).where(col(AuthSession.revoked_at).is_(None))
    )
    if env.actor is not None and env.actor.session_id is not None:
        query = query.where(col(AuthSession.id) != env.actor.session_id)
    env.session.execute(query.values(revoked_at=clock.now()))


def revoke_trust(env: Env, account_id: int | None) -> None:
    """Forget every trusted workstation of the account: the next login asks for a code."""
    env.session.execute(
        update(TrustedDevice)
        .where(col(TrustedDevice.account_id) == account_id)
        .where(col(TrustedDevice.revoked_at).is_(None))
        .values(revoked_at=clock.now())
    )
