"""Self-service: one's own details, contact changes confirmed by codes, authenticator apps.

- ``update``: the function freely; the e-mail after a step-up; the phone after a code sent to the
  old number and then one sent to the new number (three calls of the same command without a
  terminal: each stops with exit 6 saying where the next code went).
- ``totp``: enrol (the secret shown once, active after a first valid code), remove (step-up).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pepsctl import clock
from pepsctl.domain import accounts, authz, history, lockout, otp, stepup, totp
from pepsctl.domain import validation as v
from pepsctl.domain.env import Env
from pepsctl.domain.models import AccountView
from pepsctl.errors import InvalidInput
from pepsctl.i18n import _
from pepsctl.store.models import Account, Establishment

PHONE_CONFIRM_WINDOW = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class MeView:
    identifier: str
    establishment: str
    profile: str
    status: str
    civility: str
    last_name: str
    first_name: str
    email: str
    phone: str | None
    phone_type: str | None
    phone_verified: bool
    function: str | None
    totp_enabled: bool
    expires_at: datetime | None
    last_login_at: datetime | None


def _mine(env: Env) -> tuple[Account, Establishment]:
    actor = env.require_actor()
    account = env.session.get(Account, actor.account_id)
    establishment = env.session.get(Establishment, actor.establishment_id)
    assert account is not None and establishment is not None
    return account, establishment


def show(env: Env) -> MeView:
    account, establishment = _mine(env)
    base: AccountView = accounts.view(account, establishment.siret, clock.now(), full_phone=True)
    return MeView(
        identifier=base.identifier,
        establishment=base.establishment,
        profile=base.profile,
        status=base.status,
        civility=base.civility,
        last_name=base.last_name,
        first_name=base.first_name,
        email=base.email,
        phone=base.phone,
        phone_type=base.phone_type,
        phone_verified=account.phone_verified_at is not None,
        function=base.function,
        totp_enabled=totp.enabled(account),
        expires_at=base.expires_at,
        last_login_at=base.last_login_at,
    )


def update(env: Env, *, email: str | None = None, phone: str | None = None, function: str | None = None) -> MeView:
    account, establishment = _mine(env)
    actor = env.require_actor()
    authz.require(env, "me.update", establishment.id or 0, target_account_id=account.id, target=account.identifier)
    if email is None and phone is None and function is None:
        raise InvalidInput(_("Nothing to change: give --email, --phone or --function."))
    new_email = v.normalize_email(email) if email is not None else None
    new_phone = v.normalize_phone(phone) if phone is not None else None
    new_function = v.normalize_function(function) if function is not None else None
    if new_email == account.email:
        new_email = None
    if new_phone is not None and new_phone.e164 == account.phone:
        new_phone = None
    if new_email is not None:
        stepup.require(env, "me.update.contact")
    # A phone change needs no separate step-up: its code to the current number is one.
    if new_phone is not None:
        _confirm_phone(env, account, establishment, new_phone)
    before = accounts.snapshot(account)
    changed: list[str] = []
    if new_email is not None:
        account.email = new_email
        changed.append("email")
    if new_phone is not None:
        account.phone, account.phone_type, account.phone_verified_at = new_phone.e164, new_phone.type, clock.now()
        changed.append("phone")
    if function is not None and new_function != account.function:
        account.function = new_function
    account.updated_at = clock.now()
    env.session.add(account)
    env.session.flush()
    after = accounts.snapshot(account)
    diff = [k for k in after if before[k] != after[k]]
    if diff:
        history.record(
            env,
            "me.update",
            target=account.identifier,
            establishment=establishment.siret,
            before={k: before[k] for k in diff},
            after={k: after[k] for k in diff},
        )
    if changed:
        accounts.notify_contact_change(env, account, before, changed)
    if "phone" in changed:
        lockout.revoke_sessions(env, account.id, keep=actor.session_id)
    return show(env)


def _confirm_phone(env: Env, account: Account, establishment: Establishment, phone: v.Phone) -> None:
    """A code to the old number, then one to the new number; returns once both are verified."""
    siret = establishment.siret
    old_ok = account.phone is None or otp.recently_verified(
        env, account, "phone-old", target=phone.e164, within=PHONE_CONFIRM_WINDOW
    )
    code = env.otp if not _otp_spent(env) else None
    if not old_ok:
        assert account.phone is not None
        if code and otp.pending(env, account, "phone-old", target=phone.e164):
            otp.verify(env, account=account, purpose="phone-old", code=code, target=phone.e164, establishment=siret)
            stepup.mark_stepped_up(env)
            code = None
        else:
            sent = otp.send(
                env,
                account=account,
                purpose="phone-old",
                phone=account.phone,
                phone_type=account.phone_type,
                target=phone.e164,
                establishment=siret,
            )
            raise _phone_step_error(sent, _("your current number"))
    if code and otp.pending(env, account, "phone-new", target=phone.e164):
        otp.verify(env, account=account, purpose="phone-new", code=code, target=phone.e164, establishment=siret)
        return
    sent = otp.send(
        env,
        account=account,
        purpose="phone-new",
        phone=phone.e164,
        phone_type=phone.type,
        target=phone.e164,
        establishment=siret,
    )
    raise _phone_step_error(sent, _("the new number"))


def _otp_spent(env: Env) -> bool:
    """True when this command's --otp was already used by the step-up just before."""
    return bool(env.extras.get("otp_spent"))


def _phone_step_error(sent: otp.Sent, which: str):
    error = stepup.code_sent_error(sent)
    error.message = _("To confirm the phone change, a code was sent to {which} ({to}).").format(which=which, to=sent.to)
    return error


def totp_enroll(env: Env) -> totp.Enrolment:
    account, establishment = _mine(env)
    # A new authenticator can step sessions up later: binding it needs a code itself.
    stepup.require(env, "totp.enroll")
    return totp.enroll_start(env, account, establishment=establishment.siret)


def totp_confirm(env: Env, code: str) -> None:
    account, establishment = _mine(env)
    totp.enroll_confirm(env, account, code, establishment=establishment.siret)


def totp_remove(env: Env) -> bool:
    account, establishment = _mine(env)
    stepup.require(env, "totp.remove")
    return totp.remove(env, account, establishment=establishment.siret)
