"""Sending e-mails, SMS and voice calls: the outbox gateway (local default) or SMTP.

The outbox writes messages in the same transaction as the operation, so a message exists only
if the operation committed. SMTP messages are queued and sent after the commit (``flush``).
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import NamedTuple, Protocol

from sqlmodel import Session, col, update

from pepsctl import clock
from pepsctl.errors import StoreError, UsageError
from pepsctl.i18n import _
from pepsctl.store.models import OutboxMessage


class Message(NamedTuple):
    """One e-mail, SMS or voice call (a named tuple: a bulk import builds one per changed agent)."""

    channel: str  # email | sms | voice
    to: str
    body: str
    subject: str | None = None
    code: str | None = None  # kept only by the outbox, blanked once used or expired
    code_id: int | None = None
    code_expires_at: datetime | None = None


class Gateway(Protocol):
    name: str

    def deliver(self, session: Session, message: Message) -> None: ...

    def flush(self) -> None: ...


class OutboxGateway:
    """Keeps messages in the store's outbox table (``pepsctl outbox list``)."""

    name = "outbox"

    def deliver_many(self, session: Session, messages: Iterable[Message]) -> None:
        """Many messages in one statement stream (bulk imports); ``messages`` may be a generator."""
        from pepsctl.store import queries

        now = queries.stored_stamp(session, clock.now())
        queries.insert_rows(
            session,
            OutboxMessage,
            ("channel", "to", "subject", "body", "code", "code_id", "code_expires_at", "created_at"),
            ((m.channel, m.to, m.subject, m.body, m.code, m.code_id, m.code_expires_at, now) for m in messages),
        )

    def deliver(self, session: Session, message: Message) -> None:
        session.add(
            OutboxMessage(
                channel=message.channel,
                to=message.to,
                subject=message.subject,
                body=message.body,
                code=message.code,
                code_id=message.code_id,
                code_expires_at=message.code_expires_at,
                created_at=clock.now(),
            )
        )

    def flush(self) -> None:
        return None


@dataclass(slots=True)
class SmtpGateway:
    """Sends e-mails through an SMTP relay after the transaction commits."""

    host: str
    port: int
    sender: str
    user: str | None = None
    password: str | None = None
    starttls: bool = True
    pending: list[Message] = field(default_factory=list)
    name: str = "smtp"

    def deliver(self, session: Session, message: Message) -> None:
        if message.channel != "email":
            raise UsageError(
                _("The SMTP gateway sends e-mails only; no SMS or voice gateway is configured."),
                hint=_("Configure an SMS/voice gateway in the profile."),
            )
        self.pending.append(message)

    def flush(self) -> None:
        if not self.pending:
            return
        try:
            with smtplib.SMTP(self.host, self.port, timeout=30) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.user and self.password:
                    smtp.login(self.user, self.password)
                for message in self.pending:
                    email = EmailMessage()
                    email["From"] = self.sender
                    email["To"] = message.to
                    email["Subject"] = message.subject or "PEP's"
                    email.set_content(message.body)
                    smtp.send_message(email)
        except (OSError, smtplib.SMTPException) as error:
            raise StoreError(
                _("The change was saved but the e-mail could not be sent: {reason}").format(reason=error),
                hint=_("Check the SMTP settings of the profile."),
            ) from error
        finally:
            self.pending.clear()


@dataclass(slots=True)
class PhoneGateway:
    """Sends SMS and voice calls through the organisation's provider, after the commit.

    Either a command (``sms_command`` in the profile, run without a shell, the message as JSON on
    its standard input) or an HTTP endpoint (``sms_url``: a POST of the same JSON). The JSON is
    ``{"channel": "sms"|"voice", "to": "+33612345678", "body": "PEP's: your code is 123456…"}``;
    a non-zero exit status or an HTTP status other than 2xx is a failure.
    """

    command: list[str] | None = None
    url: str | None = None
    pending: list[Message] = field(default_factory=list)
    name: str = "phone"

    def deliver(self, session: Session, message: Message) -> None:
        self.pending.append(message)

    def flush(self) -> None:
        import json
        import subprocess
        import urllib.request

        try:
            for message in self.pending:
                payload = json.dumps({"channel": message.channel, "to": message.to, "body": message.body})
                if self.command:
                    subprocess.run(  # noqa: S603 - the administrator's own configured command, no shell
                        self.command, input=payload, text=True, check=True, capture_output=True, timeout=30
                    )
                elif self.url:
                    request = urllib.request.Request(  # noqa: S310 - an https URL from the profile
                        self.url, data=payload.encode(), headers={"Content-Type": "application/json"}, method="POST"
                    )
                    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                        if not 200 <= response.status < 300:
                            raise OSError(f"HTTP {response.status}")
        except (OSError, subprocess.SubprocessError) as error:
            raise StoreError(
                _("The code could not be sent: {reason}").format(reason=error),
                hint=_("Check the SMS/voice gateway settings of the profile (sms_command or sms_url)."),
            ) from error
        finally:
            self.pending.clear()


@dataclass(slots=True)
class RoutingGateway:
    """E-mails through one gateway, SMS and voice calls through another."""

    email: Gateway
    phone: Gateway
    name: str = "routing"

    def deliver(self, session: Session, message: Message) -> None:
        (self.email if message.channel == "email" else self.phone).deliver(session, message)

    def flush(self) -> None:
        self.email.flush()
        self.phone.flush()


class RefusingGateway:
    """A remote store with no gateway configured: refuse rather than keep messages in the store."""

    name = "none"

    def deliver(self, session: Session, message: Message) -> None:
        raise UsageError(
            _("No message gateway is configured for this remote store."),
            hint=_(
                "Configure SMTP in the profile, or allow the built-in outbox with PEPSCTL_OUTBOX=1 "
                "or 'outbox = true' in the profile."
            ),
        )

    def flush(self) -> None:
        return None


def deliver_many(session: Session, gateway: Gateway, messages: Iterable[Message]) -> None:
    """Hand many messages to the gateway at once (the outbox writes them set-based, streamed)."""
    many = getattr(gateway, "deliver_many", None)
    if many is not None:
        many(session, messages)
        return
    if isinstance(gateway, RoutingGateway):
        messages = list(messages)
        deliver_many(session, gateway.email, [m for m in messages if m.channel == "email"])
        deliver_many(session, gateway.phone, [m for m in messages if m.channel != "email"])
        return
    for message in messages:
        gateway.deliver(session, message)


def send_email(session: Session, gateway: Gateway, to: str, subject: str, body: str, **code) -> None:
    gateway.deliver(session, Message(channel="email", to=to, subject=subject, body=body, **code))


BLANKED = "[blanked]"


def _blanked_values() -> dict:
    """code NULL, and the code taken out of the body too (SET sees the row's old values)."""
    from sqlalchemy import func

    return {"code": None, "body": func.replace(col(OutboxMessage.body), col(OutboxMessage.code), BLANKED)}


def blank_code(session: Session, code_id: int) -> None:
    """Blank the outbox copy of a code once it has been used or invalidated."""
    session.exec(
        update(OutboxMessage)
        .where(col(OutboxMessage.code_id) == code_id)
        .where(col(OutboxMessage.code).is_not(None))
        .values(**_blanked_values())
    )


def blank_expired_codes(session: Session) -> None:
    session.exec(
        update(OutboxMessage)
        .where(col(OutboxMessage.code).is_not(None))
        .where(col(OutboxMessage.code_expires_at) <= clock.now())
        .values(**_blanked_values())
    )


@dataclass(frozen=True, slots=True)
class OutboxView:
    id: int
    channel: str
    to: str
    subject: str | None
    body: str
    code: str | None
    created_at: datetime


def _outbox_view(row: OutboxMessage) -> OutboxView:
    assert row.id is not None
    return OutboxView(row.id, row.channel, row.to, row.subject, row.body, row.code, row.created_at)


def list_outbox(session: Session, *, to: str | None = None, limit: int | None = None) -> list[OutboxView]:
    """Messages of the built-in gateway, oldest first; expired codes are blanked first."""
    from sqlmodel import select

    blank_expired_codes(session)
    query = select(OutboxMessage)
    if to:
        query = query.where(col(OutboxMessage.to) == to.strip())
    query = query.order_by(col(OutboxMessage.id).desc())
    if limit:
        query = query.limit(limit)
    rows = list(session.exec(query))
    rows.reverse()
    return [_outbox_view(row) for row in rows]


def show_outbox(session: Session, message_id: int) -> OutboxView:
    from pepsctl.errors import NotFound

    blank_expired_codes(session)
    row = session.get(OutboxMessage, message_id)
    if row is None:
        raise NotFound(_("No outbox message {id}.").format(id=message_id), hint=_("See 'pepsctl outbox list'."))
    return _outbox_view(row)
