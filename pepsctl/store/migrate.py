"""Alembic driven from code: the migrations ship inside the package (``store/migrations``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head() or ""


def current(engine: Engine) -> str | None:
    """The store's schema revision, or None when it has no schema yet."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return MigrationContext.configure(connection).get_current_revision()


def pending(engine: Engine) -> list[str]:
    """Revisions not yet applied, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    rev = current(engine)
    revisions = [s.revision for s in script.walk_revisions(base="base", head="heads")]
    revisions.reverse()
    if rev is None:
        return revisions
    return revisions[revisions.index(rev) + 1 :] if rev in revisions else []


def upgrade(engine: Engine) -> None:
    command.upgrade(alembic_config(engine), "head")


@dataclass(frozen=True, slots=True)
class SchemaState:
    current: str | None
    head: str
    pending: list[str]
