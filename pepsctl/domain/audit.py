"""The administrators' checklist before the two-factor switch-over, as set-based checks.

``readiness`` runs every check over the scope (the actor's establishment, and the establishments
that delegated account management to it; or one establishment) in a fixed number of queries: one
over establishments (administrators, CGU) and one over accounts (every account-level flag at once,
with the store-wide shared phones and mailboxes as grouped subqueries); the heuristic for generic
accounts confirms in Python only the rows the SQL pre-filter picked. Each finding names the account
and the command that fixes it. ``generic`` and ``stale`` are the same machinery, narrowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import itemgetter

from sqlalchemy import LargeBinary, and_, case, cast, func, or_, select
from sqlmodel import col

from pepsctl import clock
from pepsctl.domain import accounts
from pepsctl.domain.env import ADMIN, Env
from pepsctl.domain.generic import ROLE_WORDS, generic_signals
from pepsctl.errors import InvalidInput
from pepsctl.i18n import _
from pepsctl.store.models import Account, Delegation, Establishment

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
_DETAILS = {code: description for code, _s, description in CHECKS}
_ORDER = {code: i for i, (code, _s, _d) in enumerate(CHECKS)}


@dataclass(slots=True)  # not frozen: tens of thousands are built per audit, and frozen init costs 5 ×
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
    """SQL condition on ``column`` (an establishment id) for the establishments the actor may audit:
    the one named, or their own and those whose delegation covers account management."""
    if siret is not None:
        establishment = accounts.resolve_establishment(env, siret, "account.list")
        return column == establishment.id
    own = accounts.resolve_establishment(env, None, "account.list")
    delegated = accounts.delegating(own.id or 0, clock.now()).with_only_columns(col(Delegation.establishment_id))
    return or_(column == own.id, column.in_(delegated))


# -- generic accounts ----------------------------------------------------------------------------


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
    _local, first_token = _local_part(dialect)
    conditions = [
        func.lower(col(Account.first_name)).in_(words),
        func.lower(col(Account.last_name)).in_(words),
        # A whole local part that is a role word is its own first token. The token is costly to cut
        # out: only for mailboxes whose first characters can begin a role word.
        and_(func.lower(func.substr(col(Account.email), 1, 3)).in_(_role_starts(words)), first_token.in_(words)),
    ]
    # Python folds accents and splits names into words ("Secrétariat", "Ressources humaines", "Jeanne
    # et Paul"): a name with a non-ASCII letter, a digit or a separator goes to Python to decide.
    for text in (col(Account.first_name), col(Account.last_name)):
        if dialect == "postgresql":
            conditions += [func.octet_length(text) != func.char_length(text), text.regexp_match(_NAME_SPLIT)]
        else:
            non_ascii = func.length(text) != func.length(cast(text, LargeBinary))  # characters != bytes
            conditions += [non_ascii, text.op("GLOB")(f"*{_NAME_SPLIT}*")]
    return or_(*conditions)


def _role_starts(words: list[str]) -> list[str]:
    """The first three characters of any e-mail whose first token is one of ``words`` (two letters at least)."""
    starts = {w[:3] for w in words if len(w) >= 3}
    return sorted(starts | {w + end for w in words if len(w) == 2 for end in ("", ".", "-", "_", "@")})


_NAME_SPLIT = "[0-9 .'&/,;+-]"  # a character class in both PostgreSQL regular expressions and SQLite GLOB


# -- the checks ----------------------------------------------------------------------------------


def _fixes(siret: str, identifier: str | None) -> dict[str, str]:
    texts = _fix_texts()
    return {check: _fix(texts, check, siret, identifier) for check in texts}


def _fix(texts: dict[str, str], check: str, siret: str, identifier: str | None) -> str:
    """The command that fixes a finding: its text from ``_fix_texts`` with the SIRET and the identifier."""
    if check in ("single-administrator", "unverified-phone"):
        return texts[check]
    return texts[check].format(siret=siret, id=identifier or "ID")


def _fix_texts() -> dict[str, str]:
    """Each check's fix, translated once per audit; ``_fix`` fills {siret} and {id}."""
    return {
        "no-administrator": _(
            "pepsctl accounts create --profile admin … --establishment {siret}, or pepsctl accounts unlock / renew "
            "an administrator"
        ),
        "single-administrator": _("pepsctl accounts update ID --profile admin (name a second administrator)"),
        "cgu-not-accepted": _("pepsctl establishments accept-cgu {siret}"),
        "generic-account": _("pepsctl accounts delete {id} after creating one nominative account per person"),
        "missing-identity": _("pepsctl accounts update {id} --last-name … --first-name … --email …"),
        "missing-phone": _("pepsctl accounts update {id} --phone NUMBER (many: pepsctl phones template)"),
        "invalid-phone": _("pepsctl accounts update {id} --phone NUMBER (a mobile, or a landline)"),
        "shared-phone": _("pepsctl accounts update {id} --phone PERSONAL_NUMBER"),
        "unverified-phone": _("the agent logs in once: the code sent proves the number"),
        "expired-account": _("pepsctl accounts renew {id}, or pepsctl accounts delete {id} if the person left"),
        # A renewal does not clear it (the check is about use): the agent's next login does.
        "stale-account": _("pepsctl accounts delete {id} if the person left; else the agent logs in again"),
        "pending-activation": _(
            "pepsctl accounts delete {id} and create it again (a new activation e-mail), if still needed"
        ),
    }


def readiness(env: Env, *, siret: str | None = None, checks: frozenset[str] | None = None) -> Report:
    """Every check (or the ``checks`` named) over the scope."""
    wanted = checks or frozenset(SEVERITY)
    now = clock.now()
    in_scope_est = _scope_condition(env, siret, col(Establishment.id))
    in_scope_acc = _scope_condition(env, siret, col(Account.establishment_id))
    # Findings per establishment: its own first (in CHECKS order), then its accounts' (by identifier).
    own: dict[int, list[Finding]] = {}
    summaries: dict[int, list] = {}
    names: dict[int, tuple[str, str]] = {}
    texts = _fix_texts()
    if env.dialect == "postgresql":
        # The plan's estimates are inflated (joins on expressions): JIT would compile for ≈ 0.5 s, in vain.
        env.session.connection().exec_driver_sql("SET LOCAL jit = off")

    # Core execution (plain rows, no ORM loading): the statements select columns only.
    connection = env.session.connection()
    for est_id, est_siret, name, cgu_missing, total, admins in connection.execute(
        _establishments(env, in_scope_est, now)
    ):
        names[est_id] = (est_siret, name)
        summaries[est_id] = [est_siret, name, int(total), int(admins), 0, 0]
        found: list[Finding] = []
        if int(admins) == 0 and "no-administrator" in wanted:
            fix = _fix(texts, "no-administrator", est_siret, None)
            found.append(_finding(est_siret, name, "no-administrator", None, _("no active administrator"), fix))
        elif int(admins) == 1 and "single-administrator" in wanted:
            fix = _fix(texts, "single-administrator", est_siret, None)
            found.append(_finding(est_siret, name, "single-administrator", None, _("one active administrator"), fix))
        if cgu_missing and "cgu-not-accepted" in wanted:
            fix = _fix(texts, "cgu-not-accepted", est_siret, None)
            found.append(_finding(est_siret, name, "cgu-not-accepted", None, _("CGU not accepted"), fix))
        if found:
            own[est_id] = found

    of_accounts = _account_findings(env, in_scope_acc, now, wanted, names, texts)
    # Ordered by establishment (SIRET), then identifier, then check: no sort of the findings themselves.
    findings: list[Finding] = []
    for est_id in sorted(summaries, key=lambda i: summaries[i][0]):
        counts = summaries[est_id]
        for f in (*own.get(est_id, ()), *of_accounts.get(est_id, ())):
            counts[4 if f.severity == ERROR else 5] += 1
            findings.append(f)
    report = Report(findings)
    report.establishments = [
        EstablishmentSummary(s, n, total, admins, errors, warns, errors == 0)
        for s, n, total, admins, errors, warns in sorted(summaries.values())
    ]
    return report


def _establishments(env: Env, in_scope, now: datetime):
    """The establishments in scope, each with its number of accounts and of active administrators."""
    active_admin = and_(col(Account.profile) == ADMIN, accounts_active(now))
    # Whether the CGU were accepted, not when: no date-time to convert for each of 40,000 rows.
    cgu_missing = col(Establishment.cgu_accepted_at).is_(None)
    columns = (Establishment.id, Establishment.siret, Establishment.name, cgu_missing.label("cgu_missing"))
    if env.dialect == "sqlite":
        # Two index lookups per establishment: cheaper on SQLite than grouping the outer join of every account.
        its = col(Account.establishment_id) == col(Establishment.id)
        total = select(func.count()).where(its).correlate(Establishment).scalar_subquery()
        admins = select(func.count()).where(its, active_admin).correlate(Establishment).scalar_subquery()
        return select(*columns, total, admins).where(in_scope).order_by(col(Establishment.siret))
    return (
        select(*columns, func.count(col(Account.id)), func.coalesce(func.sum(case((active_admin, 1), else_=0)), 0))
        .outerjoin(Account, col(Account.establishment_id) == col(Establishment.id))
        .where(in_scope)
        .group_by(col(Establishment.id), col(Establishment.siret), col(Establishment.name))
        .group_by(cgu_missing)
        .order_by(col(Establishment.siret))
    )


def accounts_active(now: datetime):
    return and_(
        col(Account.locked_at).is_(None),
        col(Account.activated_at).is_not(None),
        or_(col(Account.expires_at).is_(None), col(Account.expires_at) > now),
    )


def _finding(siret: str, name: str, check: str, row, detail: str, fix: str) -> Finding:
    return Finding(
        establishment=siret,
        establishment_name=name,
        check=check,
        severity=SEVERITY[check],
        identifier=row.identifier if row is not None else None,
        last_name=row.last_name if row is not None else None,
        first_name=row.first_name if row is not None else None,
        detail=detail,
        fix=fix,
    )


def _account_findings(
    env: Env, in_scope, now: datetime, wanted: frozenset[str], names, texts
) -> dict[int, list[Finding]]:
    shared_phones = (
        select(col(Account.phone).label("phone"), func.count().label("n"))
        .where(col(Account.phone).is_not(None))
        .group_by(col(Account.phone))
        .having(func.count() > 1)
    )
    shared_mail = (
        select(func.lower(col(Account.email)).label("email"), func.count().label("n"))
        .group_by(func.lower(col(Account.email)))
        .having(func.count() > 1)
    )
    query = select()
    if env.dialect == "postgresql":
        # Hash joins, each grouped subquery computed once.
        phones, mail = shared_phones.subquery(), shared_mail.subquery()
        phone_shared, mailbox_shared = phones.c.n.is_not(None), mail.c.n.is_not(None)
        query = query.select_from(Account).outerjoin(phones, phones.c.phone == col(Account.phone))
        query = query.outerjoin(mail, mail.c.email == func.lower(col(Account.email)))
    else:
        # SQLite: membership in lists materialised once (faster than its joins on them).
        phones, mail = shared_phones.cte("shared_phones"), shared_mail.cte("shared_mail")
        phone_shared = col(Account.phone).in_(select(phones.c.phone))
        mailbox_shared = func.lower(col(Account.email)).in_(select(mail.c.email))
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
        "shared-phone": phone_shared,
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
        # The verdict kept on the account (pepsctl.domain.generic); for rows not known yet, the
        # pre-filter. Python confirms either way, with the shared mailbox as one more signal.
        "generic-account": or_(
            col(Account.generic_hint).is_(True),
            and_(col(Account.generic_hint).is_(None), _role_prefilter(env.dialect)),
            mailbox_shared,
        ),
    }
    selected = {name: condition for name, condition in flags.items() if name in wanted}
    if not selected:
        return {}
    # Every flag of a row in one integer (a bit per check, and one for a shared mailbox): few columns to fetch.
    bits = {name: 1 << i for i, name in enumerate(selected)}
    mailbox_bit = 1 << len(selected)
    flagged = [case((condition, bits[name]), else_=0) for name, condition in selected.items()]
    if "generic-account" in selected:
        flagged.append(case((mailbox_shared, mailbox_bit), else_=0))
    query = query.add_columns(
        Account.identifier,
        Account.establishment_id,
        Account.last_name,
        Account.first_name,
        Account.email,
        Account.phone,
        sum(flagged[1:], flagged[0]).label("flags"),
    )
    rows = env.session.connection().execute(query.where(in_scope).where(or_(*selected.values()))).all()
    shared_bit = bits.get("shared-phone", 0)
    sharers = _sharers(env, [r.phone for r in rows if r.flags & shared_bit]) if shared_bit else {}
    findings: dict[int, list[Finding]] = {}
    order = sorted(bits.items(), key=lambda item: _ORDER[item[0]])  # each account's findings in CHECKS order
    rows.sort(key=itemgetter(1, 0))  # by establishment, then identifier
    for row in rows:
        identifier, est_id, last_name, first_name, email, phone, flags = row
        siret, name = names[est_id]
        found = findings.get(est_id)
        if found is None:
            found = findings[est_id] = []
        for check, bit in order:
            if not flags & bit:
                continue
            if check == "generic-account":
                reasons = generic_signals(first_name, last_name, email, mailbox_shared=bool(flags & mailbox_bit))
                if not reasons:
                    continue
                detail = "; ".join(reasons)
            elif check == "shared-phone":
                detail = _shared_detail(row, sharers.get(phone, []))
            else:
                detail = _DETAILS[check]
            fix = _fix(texts, check, siret, identifier)
            found.append(Finding(siret, name, check, SEVERITY[check], identifier, last_name, first_name, detail, fix))
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
