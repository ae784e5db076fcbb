"""The one bulk engine: validate every row in memory, plan, then apply in one transaction.

Every import follows the same steps: read the file (:mod:`csvio`), validate every row with the
same validators as the single-record commands, load the rows it touches in one query, compute a
plan per row (update ``field: a → b`` / unchanged / reject + reason), and — unless ``--dry-run``,
or a row was rejected without ``--skip-invalid`` — apply it in one transaction: set-based writes
(executemany on SQLite, COPY and one ``UPDATE … FROM`` on PostgreSQL), the batch and its per-row
changes recorded for ``batches show/undo``, one history event per changed row. The same file twice
changes nothing the second time (and records no batch).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from pepsctl import clock
from pepsctl.domain import csvio
from pepsctl.domain import validation as v
from pepsctl.domain.env import Env
from pepsctl.errors import InvalidInput
from pepsctl.i18n import _, ngettext
from pepsctl.store import queries
from pepsctl.store.models import Batch, BatchChange

# One change of a batch as undo sees it: (the stored change, its before values, its after values).
DecodedChange = tuple[BatchChange, dict[str, Any], dict[str, Any]]

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
_encode_ascii = json.encoder.encode_basestring_ascii  # the C version, what _ENCODER uses for a str


def change_json(values: Mapping[str, Any] | None) -> str:
    """A change's values as stored in ``batch_change``: exactly ``_ENCODER.encode(values)`` (a property test
    checks it), written directly for the flat text/integer/None mappings bulk imports record by the
    hundred thousand."""
    if values is None or values.__class__ is not dict:
        return _ENCODER.encode(values)
    parts = []
    for key in sorted(values):
        value = values[key]
        kind = value.__class__
        if key.__class__ is not str:
            return _ENCODER.encode(values)
        if kind is str:
            text = _encode_ascii(value)
        elif value is None:
            text = "null"
        elif kind is int:
            text = int.__repr__(value)
        else:
            return _ENCODER.encode(values)
        parts.append(_encode_ascii(key) + ":" + text)
    return "{" + ",".join(parts) + "}"


UPDATE = "update"
UNCHANGED = "unchanged"
REJECT = "reject"

Progress = Callable[[int], None]


def no_progress(_n: int = 1) -> None:
    return None


@dataclass(slots=True)  # not frozen: a 300,000-row file makes 300,000 of them, and frozen init is 3x slower
class PlanRow:
    line: int
    identifier: str | None
    action: str  # update | unchanged | reject
    field: str | None
    before: str | None
    after: str | None
    reason: str | None = None


@dataclass(slots=True)
class BulkResult:
    kind: str
    file: str
    total: int
    changed: int
    unchanged: int
    rejected: int
    applied: bool
    dry_run: bool
    batch_id: int | None
    plan: list[PlanRow]
    rejects: list[tuple[csvio.Row, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skip_invalid: bool = False

    @property
    def error(self) -> InvalidInput | None:
        """Exit 3 when rows were rejected and nothing was written (no --skip-invalid)."""
        if self.rejected and not self.applied and not self.dry_run and not self.skip_invalid:
            return InvalidInput(
                ngettext(
                    "{n} row is invalid: nothing was written.",
                    "{n} rows are invalid: nothing was written.",
                    self.rejected,
                ).format(n=self.rejected),
                field="file",
                hint=_("Fix them (see --report FILE), or apply the valid rows with --skip-invalid."),
            )
        return None

    def summary(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "file": self.file,
            "total": self.total,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "applied": self.applied,
            "dry_run": self.dry_run,
            "batch_id": self.batch_id,
        }


def record_batch(
    env: Env,
    *,
    kind: str,
    source: csvio.CsvFile | None,
    changes: Iterable[dict] = (),
    counts: tuple[int, int, int, int],
    undo_of: int | None = None,
    encoded: Iterable[tuple[int | None, str, int | None, str, str]] = (),
) -> int:
    """Record the batch and its per-row changes, streamed: ``changes`` as mappings (``account_id,
    identifier, line, before, after``), or ``encoded`` as tuples whose before/after are already
    :func:`change_json` text."""
    actor = env.require_actor()
    total, changed, unchanged, rejected = counts
    batch = Batch(
        kind=kind,
        file_name=source.path[-255:] if source else None,
        file_sha256=source.sha256 if source else None,
        actor=actor.identifier,
        establishment=actor.siret,
        created_at=clock.now(),
        rows_total=total,
        rows_changed=changed,
        rows_unchanged=unchanged,
        rows_rejected=rejected,
        undo_of=undo_of,
    )
    env.session.add(batch)
    env.session.flush()
    assert batch.id is not None
    batch_id = batch.id
    encode = change_json
    queries.insert_rows(
        env.session,
        BatchChange,
        ("batch_id", "account_id", "identifier", "line", "before", "after"),
        chain(
            (
                (batch_id, c["account_id"], c["identifier"], c.get("line"), encode(c["before"]), encode(c["after"]))
                for c in changes
            ),
            ((batch_id, *row) for row in encoded),
        ),
    )
    return batch.id


@dataclass(frozen=True, slots=True)
class Undoer:
    """How ``batches undo`` reverses one kind of batch (each bulk module defines ``UNDO``).

    ``current`` returns, per change id, the values the change's ``after`` is compared with (a row
    missing from the result is a conflict, unless ``absent_ok``: a right that was removed has no
    row); ``restore`` writes the ``before`` values set-based; ``event`` gives the history fields.
    """

    current: Callable[[Env, list[DecodedChange]], Mapping[int | None, dict[str, Any] | None]]
    restore: Callable[[Env, list[tuple[BatchChange, dict[str, Any], dict[str, Any] | None]]], None]
    action: str
    event: Callable[[dict[str, Any] | None], dict[str, Any] | None] = lambda values: values
    revokes_sessions: bool = False
    absent_ok: bool = False


def match_account(row: csvio.Row, by_identifier: dict, by_email: dict) -> tuple[Any, str]:
    """The account a row names: by identifier, or by e-mail when there is none; else a reason."""
    values = row.values
    return match(values.get("identifier", ""), values.get("email", ""), by_identifier, by_email)


def match(identifier: str, email: str, by_identifier: dict, by_email: dict) -> tuple[Any, str]:
    """:func:`match_account` on a row's identifier and e-mail cells (``""`` when absent)."""
    if identifier:
        try:
            identifier = v.normalize_identifier(identifier)
        except InvalidInput as error:
            return None, error.message
        account = by_identifier.get(identifier)
        if account is None:
            return None, _("no account {identifier} in the establishments you may act on").format(identifier=identifier)
        return account, ""
    if not email:
        return None, _("no identifier and no e-mail")
    matches = by_email.get(email.casefold(), [])
    if not matches:
        return None, _("no account with this e-mail in the establishments you may act on")
    if len(matches) > 1:
        return None, _("several accounts use this e-mail: give the identifier")
    return matches[0], ""


def planned(
    env: Env,
    *,
    kind: str,
    source: csvio.CsvFile,
    plan: list[PlanRow],
    rejects: list[tuple[csvio.Row, str]],
    changed: int,
    unchanged: int,
    dry_run: bool,
    skip_invalid: bool,
    siret: str,
) -> tuple[BulkResult, bool]:
    """The result of a planned import, and whether to apply it now.

    Nothing is applied on a dry run, when rows were rejected without ``--skip-invalid`` (the
    rejected file is then recorded in the history, exit 3 follows), or when nothing changes.
    """
    result = BulkResult(
        kind=kind,
        file=source.path,
        total=len(source.rows),
        changed=changed,
        unchanged=unchanged,
        rejected=len(rejects),
        applied=False,
        dry_run=dry_run,
        batch_id=None,
        plan=plan,
        rejects=rejects,
        warnings=list(source.warnings),
        skip_invalid=skip_invalid,
    )
    refused = bool(rejects) and not skip_invalid
    if refused and not dry_run:
        from pepsctl.domain import history

        history.record(
            env,
            "bulk.rejected",
            target=source.path[-64:],
            establishment=siret,
            after={"kind": kind, "rejected": len(rejects), "rows": len(source.rows)},
        )
    return result, not (dry_run or refused or not changed)
