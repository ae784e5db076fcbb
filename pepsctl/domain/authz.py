"""The one authorization gate: every domain operation asks it first. It fails closed.

Rules (foundation): an administrator acts on their own establishment; a user reads and edits only
themselves. Anything else is :class:`PermissionDenied` (exit 7), recorded in the history, with the
same message whether or not the target exists elsewhere. Delegations extend ``may_act_on`` later.
"""

from __future__ import annotations

from typing import NoReturn

from pepsctl.domain import history
from pepsctl.domain.env import Actor, Env
from pepsctl.errors import PermissionDenied
from pepsctl.i18n import _

# Actions an administrator may run on their establishment and its accounts.
ADMIN_ACTIONS = frozenset(
    {
        "establishment.read",
        "establishment.update",
        "establishment.accept_cgu",
        "account.list",
        "account.read",
        "account.create",
        "account.update",
        "account.delete",
        "account.renew",
        "account.unlock",
        "history.read",
    }
)
# Actions a user may run on their own account only.
SELF_ACTIONS = frozenset({"account.read", "establishment.read", "me.update"})


def decide(actor: Actor, action: str, establishment_id: int, target_account_id: int | None = None) -> bool:
    """True when ``actor`` may run ``action`` on that establishment (and account)."""
    if establishment_id != actor.establishment_id:
        return False
    if actor.is_admin:
        # An administrator is also a person with their own account (me update: e-mail, phone).
        return action in ADMIN_ACTIONS or (action in SELF_ACTIONS and target_account_id == actor.account_id)
    if action == "establishment.read":
        return True
    return action in SELF_ACTIONS and target_account_id == actor.account_id


def require(
    env: Env,
    action: str,
    establishment_id: int,
    *,
    target_account_id: int | None = None,
    target: str | None = None,
) -> Actor:
    """Return the actor if allowed; otherwise record the refusal and raise PermissionDenied."""
    actor = env.require_actor()
    if decide(actor, action, establishment_id, target_account_id):
        return actor
    deny(env, action, target)


def deny(env: Env, action: str, target: str | None) -> NoReturn:
    """Record a refusal (kept even though the operation fails) and raise PermissionDenied."""
    actor = env.require_actor()
    history.record(
        env,
        "permission.denied",
        target=target,
        establishment=actor.siret,
        after={"action": action},
    )
    raise PermissionDenied(
        _("You may not do this ({action}) on {target}.").format(action=action, target=target or "-"),
        hint=_("Administrators act on their own establishment; users on their own account only."),
        persist=True,
    )


def require_history_read(env: Env, siret: str) -> Actor:
    actor = env.require_actor()
    if actor.is_admin and siret == actor.siret:
        return actor
    deny(env, "history.read", siret)
