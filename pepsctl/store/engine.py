"""Engines from store URLs, and every difference between SQLite and PostgreSQL outside the migrations.

- SQLite: WAL, foreign keys on for every connection, a 32 MiB page cache, busy timeout 5 s (``PEPSCTL_SQLITE_BUSY_MS``),
  ``BEGIN IMMEDIATE`` for every transaction (so the last-administrator guard and identifier sequence
  are serialised), a new file created 0600 in a 0700 directory.
- PostgreSQL: ``postgresql://user@host:port/db`` URLs driven by psycopg 3, the password passed in
  (from the keyring or ``PEPSCTL_STORE_PASSWORD``, never from a file), connect and statement timeouts.
- Driver errors become :class:`~pepsctl.errors.StoreError` (exit 9) with a hint.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, exc, text
from sqlalchemy.engine import URL, make_url

from pepsctl.errors import InvalidInput, PepsError, SchemaMismatch, StoreError, StoreNotInitialised
from pepsctl.i18n import _

SQLITE_BUSY_MS = 5000


@dataclass(frozen=True, slots=True)
class StoreUrl:
    """A parsed store location. ``display`` never contains a password."""

    url: URL
    dialect: str  # sqlite | postgresql
    display: str

    @property
    def sqlite_path(self) -> Path | None:
        if self.dialect != "sqlite" or not self.url.database:
            return None
        return Path(self.url.database)

    @property
    def has_password(self) -> bool:
        return self.url.password is not None


def parse_store_url(raw: str) -> StoreUrl:
    """Parse ``sqlite:///path``, a plain file path, or ``postgresql://user@host:port/db``."""
    raw = raw.strip()
    if not raw:
        raise InvalidInput(_("The store URL is empty."), field="store")
    if "\x00" in raw:  # no path holds a NUL byte (pathlib raises ValueError on it)
        raise InvalidInput(_("Cannot read the store URL {url!r}.").format(url=_redact(raw)), field="store")
    if "://" not in raw:
        path = Path(raw).expanduser().resolve()
        url = URL.create("sqlite", database=str(path))
        return StoreUrl(url, "sqlite", str(path))
    try:
        url = make_url(raw)
    except (exc.ArgumentError, ValueError) as error:  # ValueError: a port that is not a number
        raise InvalidInput(
            _("Cannot read the store URL {url!r}.").format(url=_redact(raw)),
            field="store",
            hint=_("Use sqlite:///path/to/file.db, a file path, or postgresql://user@host:5432/dbname."),
        ) from error
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise InvalidInput(_("A SQLite store needs a file path."), field="store")
        path = Path(url.database).expanduser().resolve()
        url = url.set(database=str(path))
        return StoreUrl(url, "sqlite", str(path))
    if backend in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
        display = url.render_as_string(hide_password=True).replace("postgresql+psycopg", "postgresql")
        return StoreUrl(url, "postgresql", display)
    raise InvalidInput(
        _("Unsupported store type {backend!r}.").format(backend=backend),
        field="store",
        hint=_("Use a SQLite file or a postgresql:// URL."),
    )


def _redact(raw: str) -> str:
    with contextlib.suppress(Exception):
        return make_url(raw).render_as_string(hide_password=True)
    return "<unreadable>"


def create_store_engine(store: StoreUrl, *, password: str | None = None, create: bool = False) -> Engine:
    """An engine for ``store``. A missing SQLite file is an error unless ``create``."""
    if store.dialect == "sqlite":
        return _sqlite_engine(store, create=create)
    return _postgres_engine(store, password=password)


def _sqlite_engine(store: StoreUrl, *, create: bool) -> Engine:
    path = store.sqlite_path
    assert path is not None
    if not path.exists():
        if not create:
            raise StoreNotInitialised(
                _("No store at {path}.").format(path=path),
                hint=_("Run 'pepsctl init' to create it, or choose another store with --store."),
            )
        _create_private_file(path)
    busy_ms = int(os.environ.get("PEPSCTL_SQLITE_BUSY_MS", SQLITE_BUSY_MS))
    engine = create_engine(store.url, connect_args={"timeout": busy_ms / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # pragma: no branch - tiny
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms:d}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA cache_size=-32768")  # up to 32 MiB of pages: bulk writes update large indexes
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        mode = "DEFERRED" if conn.get_execution_options().get("pepsctl_readonly") else "IMMEDIATE"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _create_private_file(path: Path) -> None:
    """Create the store file 0600, its directory 0700 when we create it."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
        os.chmod(path.parent, 0o700)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


def _postgres_engine(store: StoreUrl, *, password: str | None) -> Engine:
    url = store.url
    if password is not None and url.password is None:
        url = url.set(password=password)
    statement_ms = int(os.environ.get("PEPSCTL_STATEMENT_TIMEOUT_MS", "60000"))
    connect_args = {
        "connect_timeout": int(os.environ.get("PEPSCTL_CONNECT_TIMEOUT", "5")),
        "options": f"-c statement_timeout={statement_ms:d} -c lock_timeout=30000",
        "application_name": "pepsctl",
    }
    return create_engine(url, connect_args=connect_args, pool_pre_ping=False)


def lock_establishment_sql(dialect: str) -> str:
    """The statement that locks one establishment row for the rest of the transaction."""
    if dialect == "postgresql":
        return "SELECT id FROM establishment WHERE id = :id FOR UPDATE"
    return "SELECT id FROM establishment WHERE id = :id"  # BEGIN IMMEDIATE already serialises writers


def lock_history(connection) -> None:
    """Serialise appends to the hash chain (SQLite: already serialised by BEGIN IMMEDIATE)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(7213550001)"))


@contextlib.contextmanager
def translate_errors(store: StoreUrl) -> Iterator[None]:
    """Turn driver errors into StoreError with a hint; let PepsError through unchanged."""
    try:
        yield
    except PepsError:
        raise
    except exc.OperationalError as error:
        raise StoreError(
            _("The store {store} cannot be used: {reason}").format(
                store=store.display, reason=_first_line(error.orig or error)
            ),
            hint=_hint_for(store),
        ) from error
    except exc.InterfaceError as error:
        raise StoreError(
            _("The store {store} cannot be reached: {reason}").format(
                store=store.display, reason=_first_line(error.orig or error)
            ),
            hint=_hint_for(store),
        ) from error


def _first_line(error: BaseException) -> str:
    text_ = str(error).strip().splitlines()
    line = text_[0] if text_ else type(error).__name__
    return line.replace("\n", " ")[:300]


def _hint_for(store: StoreUrl) -> str:
    if store.dialect == "postgresql":
        return _(
            "Check that the server is running and reachable, and that the password is in the keyring "
            "(pepsctl profile add --ask-password) or in PEPSCTL_STORE_PASSWORD."
        )
    return _("Check the file's permissions and that no other program holds it locked.")


def is_retryable(error: BaseException) -> bool:
    """A serialization failure or deadlock on PostgreSQL, worth retrying the transaction."""
    orig = getattr(error, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None)
    return sqlstate in ("40001", "40P01")


def read_schema_version(engine: Engine) -> str | None:
    """The store's Alembic revision without importing Alembic (None when it has no schema)."""
    from sqlalchemy import inspect

    with engine.connect().execution_options(pepsctl_readonly=True) as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def check_version(found: str | None, *, display: str) -> None:
    """Fail with exit 9 unless the store is at the schema version this code expects (without importing
    Alembic: every command checks it)."""
    from pepsctl.store.models import SCHEMA_VERSION

    if found is None:
        raise StoreNotInitialised(
            _("The store {store} is not initialised.").format(store=display),
            hint=_("Run 'pepsctl init' to create its schema."),
        )
    if found != SCHEMA_VERSION:
        if found < SCHEMA_VERSION:
            raise SchemaMismatch(
                _("The store {store} is at schema version {found}; this pepsctl needs {need}.").format(
                    store=display, found=found, need=SCHEMA_VERSION
                ),
                hint=_("Run 'pepsctl store upgrade'."),
            )
        raise SchemaMismatch(
            _("The store {store} is at schema version {found}, newer than this pepsctl ({need}).").format(
                store=display, found=found, need=SCHEMA_VERSION
            ),
            hint=_("Upgrade pepsctl."),
        )
