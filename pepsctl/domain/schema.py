"""Store life cycle as domain operations: init, status, upgrade."""

from __future__ import annotations

from sqlalchemy import Engine, func, select
from sqlmodel import Session

from pepsctl.domain import catalogue, codes, generic
from pepsctl.domain.models import StoreStatus
from pepsctl.store import migrate
from pepsctl.store.engine import read_schema_version
from pepsctl.store.models import (
    SCHEMA_VERSION,
    Account,
    AuditEvent,
    Establishment,
    OutboxMessage,
    StoreMeta,
)


def initialise(engine: Engine) -> bool:
    """Create or upgrade the schema and the store's secrets; True if the store was new."""
    new = read_schema_version(engine) is None
    migrate.upgrade(engine)
    with Session(engine) as session, session.begin():
        if session.get(StoreMeta, codes.KEY_NAME) is None:
            session.add(StoreMeta(key=codes.KEY_NAME, value=codes.new_store_key()))
        if catalogue.store_version(session) != catalogue.shipped().version:
            catalogue.sync(session)
        generic.refresh_hints(session)  # accounts from before migration 0007, or after a heuristic change
    return new


def catalogue_pending(engine: Engine) -> bool:
    """True when the store's service catalogue is not the one shipped with this version."""
    if read_schema_version(engine) is None or migrate.pending(engine):
        return True
    with Session(engine) as session:
        return catalogue.store_version(session) != catalogue.shipped().version


def upgrade(engine: Engine) -> list[str]:
    """Apply pending migrations and catalogue changes; returns what was applied."""
    todo = migrate.pending(engine)
    if todo or catalogue_pending(engine):
        initialise(engine)
        todo = [*todo, f"catalogue {catalogue.shipped().version}"]
    return todo


def status(engine: Engine, *, store: str, source: str, dialect: str) -> StoreStatus:
    current = read_schema_version(engine)
    counts: dict[str, int] = {}
    store_catalogue = None
    if current is not None:
        with Session(engine) as session:
            if not migrate.pending(engine):
                store_catalogue = catalogue.store_version(session)
            for name, model in (
                ("establishments", Establishment),
                ("accounts", Account),
                ("history_events", AuditEvent),
                ("outbox_messages", OutboxMessage),
            ):
                counts[name] = int(session.execute(select(func.count()).select_from(model)).scalar_one())
    return StoreStatus(
        store=store,
        source=source,
        dialect=dialect,
        schema_version=current,
        expected_version=SCHEMA_VERSION,
        pending_migrations=migrate.pending(engine),
        counts=counts,
        catalogue_version=store_catalogue,
        expected_catalogue=catalogue.shipped().version,
    )
