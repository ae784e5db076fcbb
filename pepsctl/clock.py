"""The one clock of pepsctl: aware UTC datetimes, frozen by the tests.

Imports only the standard library.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_frozen: datetime | None = None


def now() -> datetime:
    """The current time as an aware UTC datetime (the frozen one in tests)."""
    if _frozen is not None:
        return _frozen
    return datetime.now(UTC)


def freeze(at: datetime) -> None:
    """Freeze the clock at ``at`` (aware); for tests."""
    if at.tzinfo is None:
        raise ValueError("the clock only holds aware datetimes")
    global _frozen
    _frozen = at.astimezone(UTC)


def advance(delta: timedelta) -> datetime:
    """Move a frozen clock forward by ``delta``; for tests."""
    global _frozen
    if _frozen is None:
        raise RuntimeError("the clock is not frozen")
    _frozen = _frozen + delta
    return _frozen


def unfreeze() -> None:
    global _frozen
    _frozen = None


def as_utc(value: datetime | None) -> datetime | None:
    """Make a datetime read back from a store aware UTC (SQLite returns naive ones)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
