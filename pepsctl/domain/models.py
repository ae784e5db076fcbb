"""Inputs and views of the domain operations. Their field names are the JSON keys and CSV headers:
renaming one is a breaking change for scripts (a test pins them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class FundContract:
    fund: str
    contract_number: str | None


@dataclass(frozen=True, slots=True)
class NewAdministrator:
    civility: str
    last_name: str
    first_name: str
    email: str
    phone: str
    function: str | None = None


@dataclass(frozen=True, slots=True)
class NewEstablishment:
    siret: str
    name: str
    funds: tuple[FundContract, ...]
    via: str  # classic | net-entreprises
    admin: NewAdministrator


@dataclass(frozen=True, slots=True)
class EstablishmentChanges:
    name: str | None = None
    funds: tuple[FundContract, ...] | None = None


@dataclass(frozen=True, slots=True)
class EstablishmentView:
    siret: str
    siren: str
    name: str
    status: str
    registration_path: str
    funds: list[str]
    administrators: int
    accounts: int
    cgu_version: str | None
    cgu_accepted_at: datetime | None
    cgu_accepted_by: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RegistrationView:
    siret: str
    name: str
    status: str
    administrator: str
    activation_sent_to: str
    activation_expires_at: datetime


@dataclass(frozen=True, slots=True)
class NewAccount:
    profile: str
    civility: str
    last_name: str
    first_name: str
    email: str
    phone: str | None = None
    function: str | None = None
    establishment: str | None = None  # SIRET; default: the actor's


@dataclass(frozen=True, slots=True)
class AccountChanges:
    profile: str | None = None
    civility: str | None = None
    last_name: str | None = None
    first_name: str | None = None
    email: str | None = None
    phone: str | None = None
    clear_phone: bool = False
    function: str | None = None
    clear_function: bool = False

    def is_empty(self) -> bool:
        return not any(
            (
                self.profile,
                self.civility,
                self.last_name,
                self.first_name,
                self.email,
                self.phone,
                self.clear_phone,
                self.function,
                self.clear_function,
            )
        )


@dataclass(frozen=True, slots=True)
class AccountFilter:
    establishment: str | None = None
    profile: str | None = None
    status: str | None = None
    missing_phone: bool = False


@dataclass(frozen=True, slots=True)
class AccountView:
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
    function: str | None
    expires_at: datetime | None
    last_login_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SessionView:
    identifier: str
    name: str
    profile: str
    establishment: str
    establishment_name: str
    session_expires_at: datetime
    stepped_up: bool


@dataclass(frozen=True, slots=True)
class StoreStatus:
    store: str
    source: str
    dialect: str
    schema_version: str | None
    expected_version: str
    pending_migrations: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    catalogue_version: str | None = None
    expected_catalogue: str | None = None
