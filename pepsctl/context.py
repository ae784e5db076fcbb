"""The application object on ``ctx.obj``: the only place that wires the layers together.

Settings and the store are resolved lazily (``pepsctl --help`` touches neither); the engine is
created on first use and its schema version checked once; ``env()`` opens one transaction, finds
the actor from the session token, commits on success and hands messages to the gateway.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from functools import cached_property
from secrets import randbelow
from typing import TYPE_CHECKING, TypeVar

from pepsctl import config
from pepsctl.errors import PepsError

T = TypeVar("T")

ATTEMPTS = 3  # a transaction PostgreSQL aborted as a serialization failure or deadlock is run again, 3 times in all
RETRY_PAUSE = 0.05  # seconds, times the attempt number, plus up to 50 ms of jitter

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from pepsctl.domain.env import Env
    from pepsctl.domain.notify import Gateway
    from pepsctl.store.engine import StoreUrl


class AppContext:
    def __init__(
        self,
        *,
        store_option: str | None = None,
        profile_option: str | None = None,
        verbose: int = 0,
    ) -> None:
        self.store_option = store_option
        self.profile_option = profile_option
        self.verbose = verbose
        self._engine: Engine | None = None

    # -- settings -------------------------------------------------------------------------------
    @cached_property
    def choice(self) -> config.StoreChoice:
        return config.choose_store(self.store_option, self.profile_option)

    @cached_property
    def store(self) -> StoreUrl:
        from pepsctl.store.engine import parse_store_url

        return parse_store_url(self.choice.raw)

    @property
    def token_name(self) -> str:
        return f"session:{self.store.display}"

    # -- store ----------------------------------------------------------------------------------
    def engine(self, *, create: bool = False, check_schema: bool = True) -> Engine:
        if self._engine is None:
            from pepsctl import secrets
            from pepsctl.store.engine import check_version, create_store_engine, read_schema_version, translate_errors

            password = None
            if self.store.dialect == "postgresql" and not self.store.has_password:
                password = secrets.get_store_password(self.store.display)
            with translate_errors(self.store):
                engine = create_store_engine(self.store, password=password, create=create)
                if check_schema:
                    check_version(read_schema_version(engine), display=self.store.display)
            self._engine = engine
        return self._engine

    def gateway(self) -> Gateway:
        """E-mails by SMTP when configured, SMS/voice by the profile's provider when configured,
        the rest through the outbox where it is allowed (a local store, or an explicit opt-in)."""
        import shlex

        from pepsctl.domain import notify

        profile = self.choice.profile
        fallback: Gateway = notify.OutboxGateway() if self.outbox_allowed else notify.RefusingGateway()
        email: Gateway = fallback
        phone: Gateway = fallback
        if profile is not None and profile.smtp is not None:
            from pepsctl import secrets

            smtp = profile.smtp
            email = notify.SmtpGateway(
                host=smtp.host,
                port=smtp.port,
                sender=smtp.sender,
                user=smtp.user,
                password=secrets.get_token(f"smtp:{smtp.host}:{smtp.user}") if smtp.user else None,
                starttls=smtp.starttls,
            )
        if profile is not None and (profile.sms_command or profile.sms_url):
            phone = notify.PhoneGateway(
                command=shlex.split(profile.sms_command) if profile.sms_command else None, url=profile.sms_url
            )
        if email is phone:
            return email
        return notify.RoutingGateway(email=email, phone=phone)

    @property
    def outbox_allowed(self) -> bool:
        """The outbox is the default on a local SQLite store; a remote store must opt in."""
        if self.store.dialect == "sqlite":
            return True
        profile = self.choice.profile
        return config.env_flag(config.ENV_OUTBOX) or bool(profile and profile.outbox)

    @contextlib.contextmanager
    def env(
        self, *, auth: bool = True, create: bool = False, check_schema: bool = True, otp: str | None = None
    ) -> Iterator[Env]:
        """One transaction: committed when the block succeeds, rolled back when it fails.

        A :class:`PepsError` with ``persist`` (a refusal or failed login that must stay in the
        history) commits what was written before it is reported.
        """
        from sqlmodel import Session

        from pepsctl.domain.env import Env
        from pepsctl.domain.generic import refresh_hints
        from pepsctl.store.engine import translate_errors

        engine = self.engine(create=create, check_schema=check_schema)
        gateway = self.gateway()
        with translate_errors(self.store), Session(engine, expire_on_commit=False) as session:
            session.begin()
            env = Env(session=session, gateway=gateway, otp=otp)
            try:
                if auth:
                    env.actor = self._resolve_actor(env)
                yield env
            except PepsError as error:
                if error.persist:
                    session.commit()
                else:
                    session.rollback()
                raise
            except BaseException:
                session.rollback()
                raise
            else:
                # What the transaction wrote may have changed names or e-mails: their verdicts too.
                refresh_hints(session)
                session.commit()
                gateway.flush()

    def transact(self, operation: Callable[[Env], T], *, auth: bool = True, otp: str | None = None) -> T:
        """``operation(env)`` in one transaction, run again when PostgreSQL aborts it as a serialization
        failure or a deadlock (SQLSTATE 40001 / 40P01), at most :data:`ATTEMPTS` times in all.

        The transaction is replayed whole (its writes were rolled back, its messages never sent); any
        other failure, and the last conflict, reach the caller.
        """
        from pepsctl.errors import StoreError
        from pepsctl.i18n import _
        from pepsctl.store.engine import is_retryable

        for attempt in range(1, ATTEMPTS + 1):
            try:
                with self.env(auth=auth, otp=otp) as env:
                    return operation(env)
            except StoreError as failure:
                if not is_retryable(failure.__cause__):
                    raise
                if attempt == ATTEMPTS:
                    raise StoreError(
                        _("Another administrator's work kept conflicting with this one ({n} attempts).").format(
                            n=ATTEMPTS
                        ),
                        hint=_("Nothing was changed. Run the command again."),
                    ) from failure
                # A short pause, different for each process, so the two sides do not meet again.
                time.sleep(RETRY_PAUSE * attempt + randbelow(50) / 1000)
        raise AssertionError("unreachable")  # pragma: no cover

    def _resolve_actor(self, env: Env):
        from pepsctl import secrets
        from pepsctl.domain import auth

        token = secrets.get_token(self.token_name)
        return auth.resolve_session(env, token)

    def trust_name(self, identifier: str) -> str:
        return f"trust:{self.store.display}:{identifier.strip().upper()}"

    # -- session tokens -------------------------------------------------------------------------
    def save_token(self, token: str) -> None:
        from pepsctl import secrets

        secrets.set_token(self.token_name, token)

    def current_token(self) -> str | None:
        from pepsctl import secrets

        return secrets.get_token(self.token_name)

    def load_secret(self, name: str) -> str | None:
        from pepsctl import secrets

        return secrets.get_token(name)

    def keep_secret(self, name: str, value: str) -> None:
        from pepsctl import secrets

        secrets.set_token(name, value)

    def forget_token(self) -> None:
        from pepsctl import secrets

        secrets.delete_token(self.token_name)

    @property
    def debug(self) -> bool:
        return config.env_flag(config.ENV_DEBUG)

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def env_value(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None
