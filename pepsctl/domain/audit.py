"""The administrators' checklist before the two-factor switch-over, as set-based checks.

``readiness`` runs every check over the scope (the actor's establishment, and the establishments
that delegated account management to it; or one establishment) in a fixed number of queries: one
over establishments (administrators, CGU) and one over accounts (every account-level flag at once,
with the store-wide shared phones and mailboxes as grouped subqueries); the heuristic for generic
accounts confirms in Python only the rows the SQL pre-filter picked. Each finding names the account
and the command that fixes it. ``generic`` and ``stale`` are the same machinery, narrowed.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, case, false, func, literal, or_, select
from sqlmodel import col

from pepsctl import clock
from pepsctl.domain import accounts, authz
from pepsctl.domain.env import ADMIN, Env
from pepsctl.errors import InvalidInput
from pepsctl.i18n import _
from pepsctl.store.models import Account, Delegation, DelegationService, Establishment, Service

ERROR = "error"
WARNING = "warning"
STALE_DAYS = 548  # 18 months: the platform's validity period
ACTIVATION_DAYS = 15

# (check, severity, what it means) — the order findings are reported in.
CHECKS: tuple[tuple[str, str, str], ...] = (
    ("no-administrator", ERROR, "no active administrator"),
    ("single-administrator", WARNING, "a single active administrator (two are recommended)"),
    ("cgu-not-accepted", ERROR, "the terms of use (CGU) are not accepted"),
    ("generic-account", ERROR, "an account that looks shared or not personal"),
    ("missing-identity", ERROR, "a missing name or e-mail"),
    ("missing-phone", ERROR, "no phone for one-time codes"),
    ("invalid-phone", ERROR, "a phone that can receive neither SMS nor call"),
    ("shared-phone", ERROR, "a phone shared with another account"),
    ("unverified-phone", WARNING, "a phone never proven by a code"),
    ("expired-account", WARNING, "an expired account still present"),
    ("stale-account", WARNING, "not used for 18 months"),
    ("pending-activation", WARNING, "the activation code expired unused"),
)
SEVERITY = {code: severity for code, severity, _d in CHECKS}
_ORDER = {code: i for i, (code, _s, _d) in enumerate(CHECKS)}

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


@dataclass(frozen=True, slots=True)
class Finding:
    establishment: str
    establishment_name: str
    check: str
    severity: str
    identifier: str | None
    last_name: str | None
    first_name: str | None
    detail: str
    fix: str


@dataclass(frozen=True, slots=True)
class EstablishmentSummary:
    establishment: str
    name: str
    accounts: int
    active_administrators: int
    errors: int
    warnings: int
    ready: bool


@dataclass(slots=True)
class Report:
    findings: list[Finding]
    establishments: list[EstablishmentSummary] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity == ERROR)

    @property
    def warnings(self) -> int:
        return sum(1 for f in self.findings if f.severity == WARNING)

    def failed(self, *, strict: bool) -> bool:
        return bool(self.errors or (strict and self.warnings))


# -- scope ---------------------------------------------------------------------------------------


def _scope_condition(env: Env, siret: str | None, column):
    """SQL condition on ``column`` (an establishment id) for the establishments the actor may audit."""
    if siret is not None:
        establishment = accounts.resolve_establishment(env, siret, "account.list")
        return column == establishment.id
    actor = env.require_actor()
    authz.require(env, "account.list", actor.establishment_id, target=actor.siret)
    now = clock.now()
    delegated = (
        select(Delegation.establishment_id)
        .join(DelegationService, col(DelegationService.delegation_id) == col(Delegation.id))
        .join(Service, col(Service.code) == col(DelegationService.service_code))
        .where(col(Delegation.centralizer_id) == actor.establishment_id)
        .where(col(Delegation.status) == "accepted")
        .where(or_(col(Delegation.ends_at).is_(None), col(Delegation.ends_at) > now))
        .where(col(Service.held_by) == ADMIN)
        .where(col(Service.retired_at).is_(None))
    )
    return or_(column == actor.establishment_id, column.in_(delegated))


# -- generic accounts ----------------------------------------------------------------------------


def fold(text: str | None) -> str:
    decomposed = unicodedata.normalize("NFKD", text or "")
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def generic_signals(first_name: str, last_name: str, email: str, *, mailbox_shared: bool) -> list[str]:
    """Why an account looks shared or not personal (empty: it looks personal).

    Strong signals accuse alone; weak ones need a second: a real surname that happens to be a role
    word ("Paye", "Service") is not enough.
    """
    strong: list[str] = []
    weak: list[str] = []
    first, last = fold(first_name), fold(last_name)
    first_tokens, last_tokens = set(_TOKENS.findall(first)), set(_TOKENS.findall(last))
    if first_tokens & ROLE_WORDS:
        strong.append(_("first name {name!r} is a role, not a person").format(name=first_name))
    role_last = last_tokens & ROLE_WORDS
    if role_last:
        (weak if role_last <= SURNAME_ROLE_WORDS else strong).append(
            _("last name {name!r} is a role word").format(name=last_name)
        )
    if _SEPARATORS.search(first_name) or _SEPARATORS.search(last_name):
        strong.append(_("several people in one name"))
    if any(ch.isdigit() for ch in first_name + last_name):
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


def _local_part(dialect: str):
    """The lower-cased local part of the e-mail, and its first token (split on . - _), in SQL."""
    email = func.lower(col(Account.email))
    if dialect == "postgresql":
        local = func.split_part(email, "@", 1)
        first = func.split_part(func.replace(func.replace(local, "-", "."), "_", "."), ".", 1)
    else:
        local = func.substr(email, 1, func.instr(email, "@") - 1)
        dotted = func.replace(func.replace(local, "-", "."), "_", ".") + "."
        first = func.substr(dotted, 1, func.instr(dotted, ".") - 1)
    return local, first


def _role_prefilter(dialect: str):
    """SQL pre-filter, cheap over 300,000 rows: rows that may carry a generic signal (Python confirms)."""
    words = sorted(ROLE_WORDS)
    local, first_token = _local_part(dialect)
    conditions = [
        func.lower(col(Account.first_name)).in_(words),
        func.lower(col(Account.last_name)).in_(words),
        local.in_(words),
        first_token.in_(words),
    ]
    for text in (col(Account.first_name), col(Account.last_name)):
        conditions += [func.lower(text).like("% et %"), text.like("%&%"), text.like("%/%"), text.like("%,%")]
        conditions.append(text.regexp_match("[0-9]") if dialect == "postgresql" else text.op("GLOB")("*[0-9]*"))
    return or_(*conditions)


# -- the checks ----------------------------------------------------------------------------------


def _fixes(siret: str, identifier: str | None) -> dict[str, str]:
    i = identifier or "ID"
    return {
        "no-administrator": _(
            "pepsctl accounts create --profile admin … --establishment {siret}, or pepsctl accounts unlock / renew "
            "an administrator"
        ).format(siret=siret),
        "single-administrator": _("pepsctl accounts update ID --profile admin (name a second administrator)"),
        "cgu-not-accepted": _("pepsctl establishments accept-cgu {siret}").format(siret=siret),
        "generic-account": _("pepsctl accounts delete {id} after creating one nominative account per person").format(
            id=i
        ),
        "missing-identity": _("pepsctl accounts update {id} --last-name … --first-name … --email …").format(id=i),
        "missing-phone": _("pepsctl accounts update {id} --phone NUMBER (many: pepsctl phones template)").format(id=i),
        "invalid-phone": _("pepsctl accounts update {id} --phone NUMBER (a mobile, or a landline)").format(id=i),
        "shared-phone": _("pepsctl accounts update {id} --phone PERSONAL_NUMBER").format(id=i),
        "unverified-phone": _("the agent logs in once: the code sent proves the number"),
        "expired-account": _("pepsctl accounts renew {id}, or pepsctl accounts delete {id} if the person left").format(
            id=i
        ),
        "stale-account": _("pepsctl accounts renew {id} if still needed, else pepsctl accounts delete {id}").format(
            id=i
        ),
        "pending-activation": _(
            "pepsctl accounts delete {id} and create it again (a new activation e-mail), if still needed"
        ).format(id=i),
    }


def readiness(env: Env, *, siret: str | None = None, checks: frozenset[str] | None = None) -> Report:
    """Every check (or the ``checks`` named) over the scope."""
    wanted = checks or frozenset(SEVERITY)
    now = clock.now()
    in_scope_est = _scope_condition(env, siret, col(Establishment.id))
    in_scope_acc = _scope_condition(env, siret, col(Account.establishment_id))
    findings: list[Finding] = []
    summaries: dict[int, list] = {}
    names: dict[int, tuple[str, str]] = {}

    active_admin = and_(col(Account.profile) == ADMIN, accounts_active(now))
    est_rows = env.session.execute(
        select(
            Establishment.id,
            Establishment.siret,
            Establishment.name,
            Establishment.cgu_accepted_at,
            func.count(col(Account.id)),
            func.coalesce(func.sum(case((active_admin, 1), else_=0)), 0),
        )
        .outerjoin(Account, col(Account.establishment_id) == col(Establishment.id))
        .where(in_scope_est)
        .group_by(col(Establishment.id), col(Establishment.siret), col(Establishment.name))
        .group_by(col(Establishment.cgu_accepted_at))
        .order_by(col(Establishment.siret))
    )
    for est_id, est_siret, name, cgu_at, total, admins in est_rows:
        names[est_id] = (est_siret, name)
        summaries[est_id] = [est_siret, name, int(total), int(admins), 0, 0]
        fixes = _fixes(est_siret, None)
        if int(admins) == 0 and "no-administrator" in wanted:
            findings.append(_finding(est_siret, name, "no-administrator", None, _("no active administrator"), fixes))
        elif int(admins) == 1 and "single-administrator" in wanted:
            findings.append(
                _finding(est_siret, name, "single-administrator", None, _("one active administrator"), fixes)
            )
        if cgu_at is None and "cgu-not-accepted" in wanted:
            findings.append(_finding(est_siret, name, "cgu-not-accepted", None, _("CGU not accepted"), fixes))

    findings += _account_findings(env, in_scope_acc, now, wanted, names)
    findings.sort(key=lambda f: (f.establishment, f.identifier or "", _ORDER[f.check]))
    by_siret = {values[0]: values for values in summaries.values()}
    for f in findings:
        by_siret[f.establishment][4 if f.severity == ERROR else 5] += 1
    report = Report(findings)
    report.establishments = [
        EstablishmentSummary(s, n, total, admins, errors, warns, errors == 0)
        for s, n, total, admins, errors, warns in sorted(summaries.values())
    ]
    return report


def accounts_active(now: datetime):
    return and_(
        col(Account.locked_at).is_(None),
        col(Account.activated_at).is_not(None),
        or_(col(Account.expires_at).is_(None), col(Account.expires_at) > now),
    )


def _finding(siret: str, name: str, check: str, row, detail: str, fixes: dict[str, str]) -> Finding:
    return Finding(
        establishment=siret,
        establishment_name=name,
        check=check,
        severity=SEVERITY[check],
        identifier=row.identifier if row is not None else None,
        last_name=row.last_name if row is not None else None,
        first_name=row.first_name if row is not None else None,
        detail=detail,
        fix=fixes[check],
    )


def _account_findings(env: Env, in_scope, now: datetime, wanted: frozenset[str], names) -> list[Finding]:
    shared_phones = (
        select(col(Account.phone).label("phone"), func.count().label("n"))
        .where(col(Account.phone).is_not(None))
        .group_by(col(Account.phone))
        .having(func.count() > 1)
        .subquery()
    )
    shared_mail = (
        select(func.lower(col(Account.email)).label("email"), func.count().label("n"))
        .group_by(func.lower(col(Account.email)))
        .having(func.count() > 1)
        .subquery()
    )
    stale_before = now - timedelta(days=STALE_DAYS)
    expired = and_(col(Account.expires_at).is_not(None), col(Account.expires_at) <= now)
    flags = {
        "missing-phone": col(Account.phone).is_(None),
        "invalid-phone": and_(
            col(Account.phone).is_not(None),
            or_(
                col(Account.phone_type).is_(None),
                col(Account.phone_type).not_in(["mobile", "landline", "voip"]),
                col(Account.phone).not_like("+%"),
            ),
        ),
        "shared-phone": shared_phones.c.n.is_not(None),
        "unverified-phone": and_(col(Account.phone).is_not(None), col(Account.phone_verified_at).is_(None)),
        "missing-identity": or_(
            func.trim(col(Account.last_name)) == "",
            func.trim(col(Account.first_name)) == "",
            col(Account.email).not_like("%_@_%"),
        ),
        "expired-account": expired,
        "stale-account": and_(
            col(Account.activated_at).is_not(None),
            ~expired,
            # Not used for 18 months, renewed or not: a renewal does not prove the person is still there.
            func.coalesce(col(Account.last_login_at), col(Account.activated_at)) < stale_before,
        ),
        "pending-activation": and_(
            col(Account.activated_at).is_(None), col(Account.created_at) < now - timedelta(days=ACTIVATION_DAYS)
        ),
        "generic-account": or_(_role_prefilter(env.dialect), shared_mail.c.n.is_not(None)),
    }
    selected = {name: condition for name, condition in flags.items() if name in wanted}
    if not selected:
        return []
    columns = [
        case((condition, literal(True)), else_=false()).label(name.replace("-", "_"))
        for name, condition in selected.items()
    ]
    query = (
        select(
            Account.id,
            Account.identifier,
            Account.establishment_id,
            Account.last_name,
            Account.first_name,
            Account.email,
            Account.phone,
            shared_phones.c.n.label("sharers"),
            shared_mail.c.n.label("mailbox_users"),
            *columns,
        )
        .outerjoin(shared_phones, shared_phones.c.phone == col(Account.phone))
        .outerjoin(shared_mail, shared_mail.c.email == func.lower(col(Account.email)))
        .where(in_scope)
        .where(or_(*selected.values()))
    )
    rows = list(env.session.execute(query))
    sharers = _sharers(env, [r.phone for r in rows if r.sharers]) if "shared-phone" in selected else {}
    findings: list[Finding] = []
    for row in rows:
        siret, name = names[row.establishment_id]
        fixes = _fixes(siret, row.identifier)
        for check in selected:
            if not getattr(row, check.replace("-", "_")):
                continue
            if check == "generic-account":
                reasons = generic_signals(
                    row.first_name, row.last_name, row.email, mailbox_shared=bool(row.mailbox_users)
                )
                if not reasons:
                    continue
                detail = "; ".join(reasons)
            elif check == "shared-phone":
                detail = _shared_detail(row, sharers.get(row.phone, []))
            else:
                detail = dict((c, d) for c, _s, d in CHECKS)[check]
            findings.append(_finding(siret, name, check, row, detail, fixes))
    return findings


def _sharers(env: Env, phones: list[str]) -> dict[str, list[tuple[str, int]]]:
    """For shared phones: every (identifier, establishment id) using each (one query)."""
    result: dict[str, list[tuple[str, int]]] = {}
    unique = sorted(set(phones))
    for start in range(0, len(unique), 5000):
        chunk = unique[start : start + 5000]
        for phone, identifier, est_id in env.session.execute(
            select(Account.phone, Account.identifier, Account.establishment_id).where(col(Account.phone).in_(chunk))
        ):
            result.setdefault(phone, []).append((identifier, est_id))
    return result


def _shared_detail(row, users: list[tuple[str, int]]) -> str:
    same = [i for i, est in users if est == row.establishment_id and i != row.identifier]
    elsewhere = sum(1 for i, est in users if est != row.establishment_id)
    parts = []
    if same:
        parts.append(_("also used by {ids}").format(ids=", ".join(same)))
    if elsewhere:
        # Never name another establishment's accounts: only that they exist.
        parts.append(_("also used by {n} account(s) of another establishment").format(n=elsewhere))
    return "; ".join(parts) or _("shared with another account")


def generic(env: Env, *, siret: str | None = None) -> list[Finding]:
    return readiness(env, siret=siret, checks=frozenset({"generic-account"})).findings


def stale(env: Env, *, days: int = STALE_DAYS, siret: str | None = None) -> list[Finding]:
    """Accounts never used, not used for ``days`` days, or expired."""
    if days < 1 or days > 3660:
        raise InvalidInput(_("--days takes a number of days from 1 to 3660."), field="days")
    now = clock.now()
    in_scope_acc = _scope_condition(env, siret, col(Account.establishment_id))
    since = now - timedelta(days=days)
    expired = and_(col(Account.expires_at).is_not(None), col(Account.expires_at) <= now)
    never = and_(col(Account.last_login_at).is_(None), col(Account.created_at) < since)
    old = col(Account.last_login_at) < since
    rows = env.session.execute(
        select(
            Account.identifier,
            Account.last_name,
            Account.first_name,
            Account.last_login_at,
            Account.expires_at,
            Establishment.siret,
            Establishment.name,
            case((expired, "expired"), (never, "never"), else_="old").label("why"),
        )
        .join(Establishment, col(Establishment.id) == col(Account.establishment_id))
        .where(in_scope_acc)
        .where(or_(expired, never, old))
        .order_by(col(Establishment.siret), col(Account.identifier))
    )
    findings = []
    for row in rows:
        if row.why == "expired":
            detail = _("expired on {date}").format(date=clock.as_utc(row.expires_at).date().isoformat())
        elif row.why == "never":
            detail = _("never logged in")
        else:
            detail = _("last login on {date}").format(date=clock.as_utc(row.last_login_at).date().isoformat())
        check = "expired-account" if row.why == "expired" else "stale-account"
        findings.append(
            Finding(
                row.siret,
                row.name,
                check,
                SEVERITY[check],
                row.identifier,
                row.last_name,
                row.first_name,
                detail,
                _fixes(row.siret, row.identifier)[check],
            )
        )
    return findings
