"""Step-up: the one place every sensitive operation asks for a fresh one-time code.

A sensitive operation calls :func:`require` after the authorization gate and before it writes
anything. If the session already verified a code (at login or an earlier step-up) it goes on: the
code holds for the rest of the session. Otherwise, with ``--otp`` (or ``PEPSCTL_OTP``, or a code
computed from ``PEPSCTL_TOTP_SECRET``) the code is checked (an authenticator-app code first, if
one is enrolled, then the SMS/voice code); without it, a code is sent to the actor's phone and the
command stops with exit 6, saying where the code went — the same command repeated with ``--otp
CODE`` completes.
"""

from __future__ import annotations

import dataclasses
import hashlib

from sqlalchemy import update
from sqlmodel import col

from pepsctl import clock
from pepsctl.domain import history, otp, totp
from pepsctl.domain.env import Env
from pepsctl.errors import AuthError, OtpRequired
from pepsctl.i18n import _
from pepsctl.store.models import Account, AuthSession

# The operations the platform treats as sensitive (domain.md, Two-factor authentication).
SENSITIVE = frozenset(
    {
        "establishment.register",
        "account.create",
        "account.update.contact",
        "right.grant.sensitive",
        "delegation.accept",
        "bulk.apply",
        "me.update.contact",
        "password.change",
        "totp.enroll",
        "totp.remove",
    }
)


def purpose_for(session_id: int | None, action: str) -> str:
    """A step-up code is bound to its session and to the sensitive action it was sent for."""
    return f"step-up:{session_id}:{action}"


def code_target(target: str | None) -> str | None:
    """What a step-up code is bound to besides its action: the account, delegation, batch or file it is
    for (a long one, such as a list of accounts, by its digest: the store keeps 64 characters)."""
    if target is None or len(target) <= 64:
        return target
    return "sha256:" + hashlib.sha256(target.encode("utf-8")).hexdigest()[:57]


def require(env: Env, action: str, target: str | None = None) -> None:
    """Go on if the session is stepped up; check ``env.otp``; or send a code and stop (exit 6).

    The code is bound to the session, to ``action`` and to ``target`` (what the action is on): a code
    sent for one account's phone change cannot pass another account's.
    """
    actor = env.require_actor()
    if actor.stepped_up_at is not None:
        return
    account = env.session.get(Account, actor.account_id)
    assert account is not None
    purpose = purpose_for(actor.session_id, action)
    target = code_target(target)
    if env.otp:
        if totp.enabled(account) and totp.check(env, account, env.otp):
            history.record(env, "totp.verified", target=actor.identifier, establishment=actor.siret)
        else:
            otp.verify(env, account=account, purpose=purpose, code=env.otp, target=target, establishment=actor.siret)
        mark_stepped_up(env)
        env.extras["otp_spent"] = True
        history.record(env, "auth.stepup", target=actor.identifier, establishment=actor.siret, after={"action": action})
        return
    if account.phone is None:
        if totp.enabled(account):
            raise OtpRequired(
                _("This action ({action}) needs a one-time code.").format(action=action),
                hint=_("Run the same command again with --otp CODE from your authenticator app."),
            )
        raise AuthError(
            _("This action ({action}) needs a one-time code, and your account has no phone.").format(action=action),
            hint=_("Add one with 'pepsctl me update --phone NUMBER', or ask an administrator."),
        )
    sent = otp.send(
        env,
        account=account,
        purpose=purpose,
        phone=account.phone,
        phone_type=account.phone_type,
        target=target,
        establishment=actor.siret,
    )
    raise code_sent_error(sent, action)


code_sent_error = otp.code_sent_error  # kept for the callers of the step-up module


def mark_stepped_up(env: Env) -> None:
    actor = env.require_actor()
    now = clock.now()
    env.session.execute(update(AuthSession).where(col(AuthSession.id) == actor.session_id).values(stepped_up_at=now))
    env.actor = dataclasses.replace(actor, stepped_up_at=now)
