"""The PEP's service catalogue: a data file shipped in the package, synchronised into the store.

Services are data (``data/services.toml``): no service code appears in the logic. ``sync`` runs at
``init`` and ``store upgrade``: it adds new services (with no right for anyone), updates labels,
themes, funds and flags, and retires services that left the file (their rights stay, inert).
"""

from __future__ import annotations

import difflib
import tomllib
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources

from sqlalchemy import select
from sqlmodel import Session, col

from pepsctl import clock
from pepsctl.errors import InvalidInput, NotFound
from pepsctl.i18n import _
from pepsctl.store.models import Service, StoreMeta

VERSION_KEY = "catalogue_version"
FUNDS = ("CNRACL", "IRCANTEC", "RAFP", "FNC", "ALL")
HELD_BY = ("admin",)


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    code: str
    label: str
    theme: str
    fund: str
    sensitive: bool
    held_by: str | None = None


@dataclass(frozen=True, slots=True)
class Catalogue:
    version: str
    services: tuple[CatalogueEntry, ...]


@dataclass(frozen=True, slots=True)
class ServiceView:
    code: str
    label: str
    theme: str
    fund: str
    sensitive: bool
    held_by: str | None


def parse(text: str) -> Catalogue:
    """Read and check a catalogue file's text (codes unique, funds known, flags typed)."""
    data = tomllib.loads(text)
    version = data.get("version")
    if not isinstance(version, str) or not version:
        raise InvalidInput(_("The service catalogue has no version."))
    entries: list[CatalogueEntry] = []
    seen: set[str] = set()
    for raw in data.get("service", []):
        entry = CatalogueEntry(
            code=str(raw["code"]),
            label=str(raw["label"]),
            theme=str(raw["theme"]),
            fund=str(raw["fund"]),
            sensitive=raw.get("sensitive", False),
            held_by=raw.get("held_by"),
        )
        if entry.code in seen or entry.code != entry.code.strip().lower() or not entry.code:
            raise InvalidInput(_("Bad or duplicate service code {code!r} in the catalogue.").format(code=entry.code))
        if entry.fund not in FUNDS or entry.held_by not in (None, *HELD_BY):
            raise InvalidInput(_("Bad fund or held_by for service {code!r}.").format(code=entry.code))
        if not isinstance(entry.sensitive, bool):  # bool("false") would be True
            raise InvalidInput(
                _("The sensitive flag of service {code!r} is not true or false.").format(code=entry.code)
            )
        seen.add(entry.code)
        entries.append(entry)
    return Catalogue(version=version, services=tuple(entries))


@cache
def shipped() -> Catalogue:
    """The catalogue shipped with this version of pepsctl."""
    text = resources.files("pepsctl.domain").joinpath("data", "services.toml").read_text(encoding="utf-8")
    return parse(text)


def store_version(session: Session) -> str | None:
    meta = session.get(StoreMeta, VERSION_KEY)
    return meta.value if meta else None


@dataclass(frozen=True, slots=True)
class SyncResult:
    version: str
    added: list[str]
    updated: list[str]
    retired: list[str]


def sync(session: Session, catalogue: Catalogue | None = None) -> SyncResult:
    """Bring the store's service table to ``catalogue`` (default: the shipped one)."""
    catalogue = catalogue or shipped()
    existing = {s.code: s for s in session.scalars(select(Service))}
    added: list[str] = []
    updated: list[str] = []
    retired: list[str] = []
    for position, entry in enumerate(catalogue.services):
        row = existing.pop(entry.code, None)
        values = {
            "label": entry.label,
            "theme": entry.theme,
            "fund": entry.fund,
            "sensitive": entry.sensitive,
            "held_by": entry.held_by,
            "position": position,
            "retired_at": None,
        }
        if row is None:
            session.add(Service(code=entry.code, **values))
            added.append(entry.code)
            continue
        if any(getattr(row, key) != value for key, value in values.items()):
            for key, value in values.items():
                setattr(row, key, value)
            session.add(row)
            updated.append(entry.code)
    for row in existing.values():
        if row.retired_at is None:
            row.retired_at = clock.now()
            session.add(row)
            retired.append(row.code)
    meta = session.get(StoreMeta, VERSION_KEY)
    if meta is None:
        session.add(StoreMeta(key=VERSION_KEY, value=catalogue.version))
    else:
        meta.value = catalogue.version
        session.add(meta)
    session.flush()
    return SyncResult(catalogue.version, added, updated, retired)


def services(session: Session, *, include_retired: bool = False) -> list[Service]:
    query = select(Service).order_by(col(Service.position), col(Service.code))
    if not include_retired:
        query = query.where(col(Service.retired_at).is_(None))
    return list(session.scalars(query))


def view(service: Service) -> ServiceView:
    return ServiceView(service.code, service.label, service.theme, service.fund, service.sensitive, service.held_by)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


def list_catalogue(session: Session, *, theme: str | None = None, fund: str | None = None) -> list[ServiceView]:
    """The active services, filtered by theme (case and accents ignored) and fund."""
    rows = services(session)
    if theme:
        themes = sorted({r.theme for r in rows})
        wanted = _fold(theme)
        rows = [r for r in rows if _fold(r.theme) == wanted]
        if not rows:
            raise NotFound(
                _("No theme {theme!r} in the catalogue.").format(theme=theme),
                hint=_("Themes: {themes}.").format(themes=", ".join(themes)),
            )
    if fund:
        wanted_fund = fund.strip().upper()
        if wanted_fund not in FUNDS:
            raise InvalidInput(
                _("Unknown fund {fund!r}: use {funds}.").format(fund=fund, funds=", ".join(FUNDS)), field="fund"
            )
        rows = [r for r in rows if r.fund == wanted_fund]
    return [view(r) for r in rows]


def suggestions(code: str, rows: list[Service], limit: int = 3) -> list[str]:
    """The closest service codes to a mistyped one (by code, then by label words)."""
    folded = _fold(code)
    codes = [r.code for r in rows]
    found = difflib.get_close_matches(folded, codes, n=limit, cutoff=0.5)
    if len(found) < limit:
        labels = {_fold(r.label): r.code for r in rows}
        for label in difflib.get_close_matches(folded, list(labels), n=limit, cutoff=0.4):
            if labels[label] not in found:
                found.append(labels[label])
        for r in rows:
            if folded and (folded in _fold(r.label) or folded in r.code) and r.code not in found:
                found.append(r.code)
    return found[:limit]


def resolve(session: Session, raw_codes: list[str], *, include_retired: bool = False) -> list[Service]:
    """The services named by ``raw_codes`` (commas allowed, duplicates dropped), in the order given, or exit 4.

    Retired services are unknown, except with ``include_retired`` (to revoke an inert right).
    """
    wanted: list[str] = []
    for raw in raw_codes:
        for part in raw.split(","):
            code = _fold(part)
            if code and code not in wanted:
                wanted.append(code)
    if not wanted:
        raise InvalidInput(_("Name at least one service code."), hint=_("See 'pepsctl rights catalog'."))
    rows = services(session, include_retired=include_retired)
    by_code = {r.code: r for r in rows}
    for code in wanted:
        if code not in by_code:
            close = suggestions(code, rows)
            hint = (
                _("Did you mean: {codes}?").format(codes=", ".join(close))
                if close
                else _("See 'pepsctl rights catalog'.")
            )
            raise NotFound(_("No service {code!r} in the catalogue.").format(code=code), hint=hint)
    return [by_code[code] for code in wanted]
