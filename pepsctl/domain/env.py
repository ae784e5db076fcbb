"""What every domain operation is given: the open transaction, the gateway, and the actor."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session

from pepsctl.domain.notify import Gateway
from pepsctl.errors import NotLoggedIn
from pepsctl.i18n import _

ADMIN = "admin"
USER = "user"


@dataclass(frozen=True, slots=True)
class Actor:
    """The authenticated person on whose behalf an operation runs."""

    account_id: int
    identifier: str
    establishment_id: int
    siret: str
    profile: str
    session_id: int | None = None
    stepped_up_at: datetime | None = None
    session_expires_at: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.profile == ADMIN


@dataclass(slots=True)
class Env:
    """One unit of work: a session inside one transaction (the caller commits), and who acts."""

    session: Session
    gateway: Gateway
    actor: Actor | None = None
    otp: str | None = None
    label: str | None = None  # who acts when nobody is logged in ("system:demo"…)
    extras: dict[str, object] = field(default_factory=dict)

    @property
    def dialect(self) -> str:
        return self.session.get_bind().dialect.name

    def require_actor(self) -> Actor:
        if self.actor is None:
            raise NotLoggedIn(_("You are not logged in."), hint=_("Run 'pepsctl login IDENTIFIER'."))
        return self.actor

    @property
    def actor_label(self) -> str:
        if self.actor is not None:
            return self.actor.identifier
        return self.label or "anonymous"
