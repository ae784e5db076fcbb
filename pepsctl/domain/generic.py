"""Accounts that look shared or not personal: the heuristic, and its verdict kept on each account.

domain.md "Accounts": one account per person. ``generic_signals`` says why an account looks generic
(role words in the names or the mailbox, several people in one name…); a strong signal accuses
alone, weak ones need a second. Only one signal depends on other rows — a mailbox used by several
accounts, which is strong on its own — so the rest is a pure function of the account's names and
e-mail, and the store keeps its verdict in ``account.generic_hint``:

- NULL means not known yet. A database trigger sets it back to NULL whenever the last name, the
  first name or the e-mail changes (migration 0007), so a kept verdict is never stale, whatever
  wrote the row.
- :func:`refresh_hints` computes the unknown ones; the application calls it before each
  transaction commits, ``store upgrade`` after migrating, the benchmark generator after loading.
- The readiness audit reads the verdict, and for rows still unknown falls back to the SQL
  pre-filter and this module's decision: the result is the same, only slower.

When the heuristic changes (a word, a rule), :data:`HEURISTIC` changes with it (a test compares
the code's fingerprint with it), and a migration must reset every verdict to NULL.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Iterator
from functools import lru_cache

from pepsctl.i18n import _

# Words that name a role, a place or a service rather than a person (folded: lower case, no accents).
ROLE_WORDS = frozenset(
    [
        "accueil",
        "secretariat",
        "secretaire",
        "mairie",
        "rh",
        "drh",
        "grh",
        "sirh",
        "paie",
        "paye",
        "compta",
        "comptabilite",
        "comptable",
        "direction",
        "directeur",
        "service",
        "services",
        "contact",
        "admin",
        "administrateur",
        "administration",
        "informatique",
        "dsi",
        "dgs",
        "ccas",
        "cias",
        "standard",
        "courrier",
        "courriers",
        "finances",
        "finance",
        "personnel",
        "gestion",
        "gestionnaire",
        "agent",
        "agents",
        "test",
        "tests",
        "generique",
        "commun",
        "commune",
        "communs",
        "equipe",
        "bureau",
        "guichet",
        "etatcivil",
        "urbanisme",
        "technique",
        "techniques",
        "cantine",
        "ecole",
        "retraite",
        "retraites",
        "carriere",
        "carrieres",
        "ressources",
        "humaines",
        "info",
        "infos",
        "noreply",
        "support",
        "cdg",
        "syndicat",
        "sivu",
        "sivom",
        "ehpad",
        "hopital",
        "centre",
        "pole",
        "cellule",
        "mission",
    ]
)
# Role words that are also common French surnames: alone, they do not accuse anyone.
SURNAME_ROLE_WORDS = frozenset({"paye", "service", "bureau", "standard", "commune", "centre", "mission", "agent"})
_SEPARATORS = re.compile(r"\s(et|and)\s|[&/,;+]|\s-\s", re.IGNORECASE)
_TOKENS = re.compile(r"[a-z]+")


def fold(text: str | None) -> str:
    if text is not None and text.isascii():
        return text.casefold()  # NFKD leaves ASCII as it is: the same result, without the walk
    decomposed = unicodedata.normalize("NFKD", text or "")
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def generic_signals(first_name: str, last_name: str, email: str, *, mailbox_shared: bool) -> list[str]:
    """Why an account looks shared or not personal (empty: it looks personal).

    Strong signals accuse alone; weak ones need a second: a real surname that happens to be a role
    word ("Paye", "Service") is not enough.
    """
    strong: list[str] = []
    weak: list[str] = []
    first_tokens, first_separated, first_digits = _name_facts(first_name)
    last_tokens, last_separated, last_digits = _name_facts(last_name)
    if first_tokens & ROLE_WORDS:
        strong.append(_("first name {name!r} is a role, not a person").format(name=first_name))
    role_last = last_tokens & ROLE_WORDS
    if role_last:
        (weak if role_last <= SURNAME_ROLE_WORDS else strong).append(
            _("last name {name!r} is a role word").format(name=last_name)
        )
    if first_separated or last_separated:
        strong.append(_("several people in one name"))
    if first_digits or last_digits:
        weak.append(_("digits in the name"))
    local = fold(email.partition("@")[0])
    tokens = [t for t in _TOKENS.findall(local) if t not in first_tokens and t not in last_tokens]
    roles = [t for t in tokens if t in ROLE_WORDS]
    if roles:
        personal = [t for t in tokens if t not in ROLE_WORDS and len(t) > 1]
        (weak if personal or (first_tokens | last_tokens) & set(_TOKENS.findall(local)) else strong).append(
            _("the mailbox {local!r} is a role's").format(local=email.partition("@")[0])
        )
    if mailbox_shared:
        strong.append(_("the mailbox is used by several accounts"))
    if strong or len(weak) >= 2:
        return strong + weak
    return []


@lru_cache(maxsize=65536)
def _name_facts(name: str) -> tuple[frozenset[str], bool, bool]:
    """A name's folded words, and whether it holds a separator or a digit (cached: names repeat)."""
    return frozenset(_TOKENS.findall(fold(name))), bool(_SEPARATORS.search(name)), any(c.isdigit() for c in name)


def generic_hint(first_name: str, last_name: str, email: str) -> bool:
    """The kept verdict: does the account look generic on its own names and e-mail alone?

    With a mailbox shared by several accounts it is generic whatever this says (a strong signal).
    """
    return bool(generic_signals(first_name, last_name, email, mailbox_shared=False))


# Bump when the rules of ``generic_signals`` change in a way that changes a verdict (the words and
# patterns are in the fingerprint already).
RULES_VERSION = 1


def fingerprint() -> str:
    """A digest of the heuristic (its words, patterns and rules version): when it changes, the kept
    verdicts must be recomputed."""
    source = "\n".join(
        [
            str(RULES_VERSION),
            " ".join(sorted(ROLE_WORDS)),
            " ".join(sorted(SURNAME_ROLE_WORDS)),
            _SEPARATORS.pattern,
            _TOKENS.pattern,
        ]
    )
    return hashlib.sha256(source.encode()).hexdigest()[:16]


# The fingerprint of the heuristic whose verdicts the store keeps (see the module's docstring).
HEURISTIC = "b571c360df2ffc08"

REFRESH_CHUNK = 20_000


def refresh_hints(session, *, chunk: int = REFRESH_CHUNK) -> int:
    """Compute every unknown verdict (``generic_hint IS NULL``), in chunks; return how many were set.

    Set-based: one indexed read per chunk (a partial index holds the unknown rows), one executemany
    to write. Each write checks that the names and e-mail are still those the verdict was computed
    from, so a concurrent change (which the trigger resets to NULL) is never given a stale verdict.
    """
    from sqlalchemy import bindparam, select, update
    from sqlmodel import col

    from pepsctl.store.models import Account

    table = Account.__table__  # type: ignore[attr-defined]
    write = (
        update(table)
        .where(table.c.id == bindparam("row_id"))
        .where(table.c.generic_hint.is_(None))
        .where(table.c.last_name == bindparam("old_last"))
        .where(table.c.first_name == bindparam("old_first"))
        .where(table.c.email == bindparam("old_email"))
        .values(generic_hint=bindparam("hint"))
    )
    done, after = 0, 0
    while True:
        rows = session.execute(
            select(col(Account.id), col(Account.first_name), col(Account.last_name), col(Account.email))
            .where(col(Account.generic_hint).is_(None))
            .where(col(Account.id) > after)
            .order_by(col(Account.id))
            .limit(chunk)
        ).all()
        if not rows:
            return done
        session.execute(write, list(_verdicts(rows)))
        done += len(rows)
        after = rows[-1][0]
        if len(rows) < chunk:
            return done


def _verdicts(rows: Iterable) -> Iterator[dict]:
    for row_id, first, last, email in rows:
        yield {
            "row_id": row_id,
            "old_last": last,
            "old_first": first,
            "old_email": email,
            "hint": generic_hint(first, last, email),
        }
