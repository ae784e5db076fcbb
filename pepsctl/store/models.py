"""SQLModel tables, and only tables (singular names, aware-UTC datetimes).

Rows are built from validated values by the domain layer (``Model.model_validate``): table classes
do not validate when constructed. Every foreign-key column that is filtered or joined on has an index.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from pepsctl.store.types import UTCDateTime

# The schema version this code expects: the newest Alembic revision (a test keeps them equal).
SCHEMA_VERSION = "0007"


def _dt(*, nullable: bool = True, index: bool = False) -> Column:
    return Column(UTCDateTime(), nullable=nullable, index=index)


class StoreMeta(SQLModel, table=True):
    """Key/value facts about the store: the HMAC key for codes, the history chain head."""

    __tablename__ = "store_meta"

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(sa_column=Column(Text, nullable=False))


class Counter(SQLModel, table=True):
    """Named sequences, incremented atomically (``UPDATE … RETURNING``): account identifiers."""

    __tablename__ = "counter"

    name: str = Field(primary_key=True, max_length=32)
    value: int = Field(default=0)


class Establishment(SQLModel, table=True):
    __tablename__ = "establishment"

    id: int | None = Field(default=None, primary_key=True)
    siret: str = Field(max_length=14, unique=True)
    siren: str = Field(max_length=9, index=True)
    name: str = Field(max_length=200)
    registration_path: str = Field(max_length=20)  # classic | net-entreprises
    status: str = Field(max_length=10, default="pending")  # pending | active
    cgu_version: str | None = Field(default=None, max_length=20)
    cgu_accepted_at: datetime | None = Field(default=None, sa_column=_dt())
    cgu_accepted_by: str | None = Field(default=None, max_length=9)
    created_at: datetime = Field(sa_column=_dt(nullable=False))
    updated_at: datetime = Field(sa_column=_dt(nullable=False))


class EstablishmentFund(SQLModel, table=True):
    """A fund contract of an establishment (CNRACL, IRCANTEC, RAFP, FNC) with its number."""

    __tablename__ = "establishment_fund"
    __table_args__ = (UniqueConstraint("establishment_id", "fund"),)

    id: int | None = Field(default=None, primary_key=True)
    establishment_id: int = Field(foreign_key="establishment.id", index=True, ondelete="CASCADE")
    fund: str = Field(max_length=10)
    contract_number: str = Field(max_length=30)


class Account(SQLModel, table=True):
    __tablename__ = "account"
    __table_args__ = (
        Index("ix_account_establishment_profile", "establishment_id", "profile"),
        Index("ix_account_email", "email"),
        Index("ix_account_phone", "phone"),
        # The accounts whose generic_hint is not known yet (few: refreshed before each commit).
        Index(
            "ix_account_generic_hint_unknown",
            "id",
            sqlite_where=text("generic_hint IS NULL"),
            postgresql_where=text("generic_hint IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    identifier: str = Field(max_length=9, unique=True)
    establishment_id: int = Field(foreign_key="establishment.id", index=True)
    profile: str = Field(max_length=5)  # admin | user
    civility: str = Field(max_length=3)  # M | MME
    last_name: str = Field(max_length=80)
    first_name: str = Field(max_length=80)
    email: str = Field(max_length=254)
    phone: str | None = Field(default=None, max_length=20)  # E.164
    phone_type: str | None = Field(default=None, max_length=10)  # mobile | landline | voip
    phone_verified_at: datetime | None = Field(default=None, sa_column=_dt())
    function: str | None = Field(default=None, max_length=120)
    password_hash: str | None = Field(default=None, max_length=255)
    must_set_password: bool = Field(default=True)
    failed_attempts: int = Field(default=0)
    locked_at: datetime | None = Field(default=None, sa_column=_dt())
    activated_at: datetime | None = Field(default=None, sa_column=_dt())
    renewed_at: datetime | None = Field(default=None, sa_column=_dt())
    expires_at: datetime | None = Field(default=None, sa_column=_dt(index=True))
    last_login_at: datetime | None = Field(default=None, sa_column=_dt())
    totp_secret: str | None = Field(default=None, max_length=255)
    totp_last_step: int | None = Field(default=None)
    totp_enabled_at: datetime | None = Field(default=None, sa_column=_dt())
    created_at: datetime = Field(sa_column=_dt(nullable=False))
    updated_at: datetime = Field(sa_column=_dt(nullable=False))
    # Does the account look generic on its names and e-mail alone (pepsctl.domain.generic)? NULL: not
    # known yet; a trigger resets it to NULL when a name or the e-mail changes (migration 0007).
    generic_hint: bool | None = Field(default=None)


class AuthSession(SQLModel, table=True):
    """A login session: only the hash of its token is stored."""

    __tablename__ = "auth_session"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    account_id: int = Field(foreign_key="account.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(sa_column=_dt(nullable=False))
    last_seen_at: datetime = Field(sa_column=_dt(nullable=False))
    expires_at: datetime = Field(sa_column=_dt(nullable=False))
    stepped_up_at: datetime | None = Field(default=None, sa_column=_dt())
    revoked_at: datetime | None = Field(default=None, sa_column=_dt())


class OneTimeCode(SQLModel, table=True):
    """Activation, reset and one-time codes: stored only as a keyed hash, consumed once."""

    __tablename__ = "one_time_code"
    __table_args__ = (Index("ix_one_time_code_account_purpose", "account_id", "purpose"),)

    id: int | None = Field(default=None, primary_key=True)
    # None for a code sent before the account exists (registration: bound to ``target``).
    account_id: int | None = Field(default=None, foreign_key="account.id", ondelete="CASCADE")
    purpose: str = Field(max_length=64)  # activation | reset | login | step-up:<session>:<action> | phone-…
    target: str | None = Field(default=None, max_length=64, index=True)  # SIRET, E.164…
    challenge: str = Field(max_length=64)
    code_hash: str = Field(max_length=64)
    channel: str = Field(max_length=10)  # email | sms | voice
    created_at: datetime = Field(sa_column=_dt(nullable=False))
    expires_at: datetime = Field(sa_column=_dt(nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=_dt())
    invalidated_at: datetime | None = Field(default=None, sa_column=_dt())


class TrustedDevice(SQLModel, table=True):
    """A workstation that verified a one-time code: no new code at login for 7 days (not sliding)."""

    __tablename__ = "trusted_device"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    account_id: int = Field(foreign_key="account.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(sa_column=_dt(nullable=False))
    expires_at: datetime = Field(sa_column=_dt(nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=_dt())


class Batch(SQLModel, table=True):
    """One applied bulk file (or the undo of one): who, what, when, counts."""

    __tablename__ = "batch"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=20)  # phones | undo
    file_name: str | None = Field(default=None, max_length=255)
    file_sha256: str | None = Field(default=None, max_length=64)
    actor: str = Field(max_length=64)
    establishment: str = Field(max_length=14, index=True)
    created_at: datetime = Field(sa_column=_dt(nullable=False))
    rows_total: int = Field(default=0)
    rows_changed: int = Field(default=0)
    rows_unchanged: int = Field(default=0)
    rows_rejected: int = Field(default=0)
    undone_at: datetime | None = Field(default=None, sa_column=_dt())
    undo_of: int | None = Field(default=None)


class BatchChange(SQLModel, table=True):
    """One row a batch changed: the exact previous and new values (JSON), for show and undo."""

    __tablename__ = "batch_change"

    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(foreign_key="batch.id", index=True, ondelete="CASCADE")
    account_id: int | None = Field(default=None, index=True)
    identifier: str = Field(max_length=9)
    line: int | None = Field(default=None)
    before: str = Field(sa_column=Column(Text, nullable=False))
    after: str = Field(sa_column=Column(Text, nullable=False))


class AuditEvent(SQLModel, table=True):
    """The audit trail: append-only, each event chained to the previous one by its hash."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=_dt(nullable=False, index=True))
    actor: str = Field(max_length=64)
    establishment: str | None = Field(default=None, max_length=14, index=True)
    delegation_id: int | None = Field(default=None)
    action: str = Field(max_length=64, index=True)
    target: str | None = Field(default=None, max_length=64, index=True)
    batch_id: int | None = Field(default=None, index=True)
    before: str | None = Field(default=None, sa_column=Column(Text))
    after: str | None = Field(default=None, sa_column=Column(Text))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class OutboxMessage(SQLModel, table=True):
    """Messages sent through the built-in outbox gateway (e-mails, SMS, voice calls)."""

    __tablename__ = "outbox_message"

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=10)  # email | sms | voice
    to: str = Field(max_length=254, index=True)
    subject: str | None = Field(default=None, max_length=200)
    body: str = Field(sa_column=Column(Text, nullable=False))
    code: str | None = Field(default=None, max_length=32)
    code_id: int | None = Field(default=None, index=True)
    code_expires_at: datetime | None = Field(default=None, sa_column=_dt())
    created_at: datetime = Field(sa_column=_dt(nullable=False))


class Service(SQLModel, table=True):
    """A PEP's service from the shipped catalogue (synchronised by ``init`` and ``store upgrade``)."""

    __tablename__ = "service"

    code: str = Field(primary_key=True, max_length=40)
    label: str = Field(max_length=200)
    theme: str = Field(max_length=80)
    fund: str = Field(max_length=10)  # CNRACL | IRCANTEC | RAFP | FNC | ALL
    sensitive: bool = Field(default=False)
    held_by: str | None = Field(default=None, max_length=10)  # "admin": held by the profile, never granted
    position: int = Field(default=0)
    retired_at: datetime | None = Field(default=None, sa_column=_dt())


class Delegation(SQLModel, table=True):
    """A centralizer's request to act for an establishment, and its life cycle."""

    __tablename__ = "delegation"

    id: int | None = Field(default=None, primary_key=True)
    centralizer_id: int = Field(foreign_key="establishment.id", index=True)
    establishment_id: int = Field(foreign_key="establishment.id", index=True)
    status: str = Field(max_length=10, default="pending")  # pending | accepted | refused | revoked
    ends_at: datetime | None = Field(default=None, sa_column=_dt())
    requested_by: str = Field(max_length=64)
    requested_at: datetime = Field(sa_column=_dt(nullable=False))
    decided_by: str | None = Field(default=None, max_length=64)
    decided_at: datetime | None = Field(default=None, sa_column=_dt())
    reason: str | None = Field(default=None, sa_column=Column(Text))
    revoked_by: str | None = Field(default=None, max_length=64)
    revoked_at: datetime | None = Field(default=None, sa_column=_dt())


class DelegationService(SQLModel, table=True):
    """One service in a delegation's scope."""

    __tablename__ = "delegation_service"

    delegation_id: int = Field(foreign_key="delegation.id", primary_key=True, ondelete="CASCADE")
    service_code: str = Field(foreign_key="service.code", primary_key=True, max_length=40)


class AccountRight(SQLModel, table=True):
    """A right of an account on a service of an establishment: its own, or one delegated to it."""

    __tablename__ = "account_right"
    __table_args__ = (
        UniqueConstraint("account_id", "establishment_id", "service_code"),
        Index("ix_account_right_establishment_service", "establishment_id", "service_code"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True, ondelete="CASCADE")
    establishment_id: int = Field(foreign_key="establishment.id")
    service_code: str = Field(foreign_key="service.code", max_length=40)
    level: str = Field(max_length=5)  # write | read
    delegation_id: int | None = Field(default=None, foreign_key="delegation.id", index=True, ondelete="CASCADE")
    granted_by: str = Field(max_length=64)
    granted_at: datetime = Field(sa_column=_dt(nullable=False))


class ExpiryReminder(SQLModel, table=True):
    """The monthly expiry reminder sent to an establishment's administrators (once per month)."""

    __tablename__ = "expiry_reminder"
    __table_args__ = (UniqueConstraint("establishment_id", "month"),)

    id: int | None = Field(default=None, primary_key=True)
    establishment_id: int = Field(foreign_key="establishment.id", index=True)
    month: str = Field(max_length=7)  # YYYY-MM: the month the listed accounts expire in
    accounts: int = Field(default=0)
    recipients: int = Field(default=0)
    sent_at: datetime = Field(sa_column=_dt(nullable=False))
