"""The isolation matrix: every (command, actor) pair on establishment A's targets, on SQLite and PostgreSQL.

security.md "Authorization" and docs/security.md "Threat model": A is the target establishment; B is a
centralizer holding an ACCEPTED delegation from A whose scope is cir, estimation and gestion-comptes
(account management); C is a third establishment with no delegation. The actors are A's administrator,
A's user, B's administrator (delegated, with account management), B's user (read on A's cir through the
delegation), C's administrator, and nobody (no session).

One world is built per store and every cell (one CLI invocation) runs against it: reads and refusals
leave it as it was, and each allowed write is followed by a restore so that later cells see the same
world. For every refusal (exit 7) the test also checks that stdout is empty, that the stderr is the one
a target that does not exist gets (the target replaced by a placeholder), and that the refusal is in
the history (exactly one ``permission.denied`` event by that actor on the typed target) — except for
``whoami --can``, which explains on stdout and records nothing (tests/commands/test_gate.py).

An unknown target always gets the "outside your scope" refusal. C's refusals must be identical to it
byte for byte. A refusal *inside* the actor's scope (A's own user; B's actors on what the delegation
lets B see) keeps the same first line but may name its rule in the hint (user-profile, not-delegable):
the actor's establishment already knows that target exists.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import SIRET_A, SIRET_B, SIRET_C, create_account, login, register, with_code

ADMIN_A = "MDU000001"  # Marie Durand, administrator of A (the target establishment)
ADMIN_B = "PMA000002"  # Paul Martin, administrator of B (the centralizer)
ADMIN_C = "LBE000003"  # Luc Bernard, administrator of C (no delegation)
USER_B = "KBE000004"  # Karim Benali, a user of B: read on A's cir through the delegation
USER_A = "JDU000005"  # Jeanne Dupont, a user of A: read on A's cir
TARGET = "LNO000006"  # Lea Noel, an agent of A: the account every account cell targets (locked)
SPARE_A = "ARO000007"  # Anne Roux, an agent of A that A's administrator deletes
SPARE_B = "YBL000008"  # Yves Blanc, an agent of A that B's administrator deletes
NOBODY = "-"  # no session
ACTORS = (ADMIN_A, USER_A, ADMIN_B, USER_B, ADMIN_C, NOBODY)
ACTOR_NAMES = {ADMIN_A: "A admin", USER_A: "A user", ADMIN_B: "B admin", USER_B: "B user", ADMIN_C: "C admin"}
ACTOR_NAMES[NOBODY] = "no session"
SCOPE = "cir,estimation,gestion-comptes"
NAME_A = f"Mairie {SIRET_A[:5]}"  # as conftest.register names it: updating to it changes nothing

# Targets typed in the cells, and a well-formed one that does not exist for each kind.
UNKNOWN = {
    "account": "XYZ999999",
    "siret": "21999005800006",  # a valid SIRET nobody registered
    "delegation": "9999",
    "batch": "9999",
}

# -- THE TABLE ----------------------------------------------------------------------------------------
# (command, argv with one {placeholder} for A's target, expected exit per actor in the order
#  A admin, A user, B admin, B user, C admin, no session). One comment per row gives the rule.
# Common rules: "A admin" runs every administrator action on A (own establishment); "A user" gets 7 on
# administrator operations (rule user-profile); "C admin" gets 7 everywhere on A (no delegation: the same
# answer as for a target that does not exist); "no session" gets 6 ("You are not logged in"), except
# `outbox list`, which needs no login (the local gateway's messages, not an establishment's data).
# {spare} is SPARE_A for A's administrator and SPARE_B for everyone else (a deleted account stays deleted).
#   command                   argv                                                      AA  AU  BA  BU  CA  --
MATRIX: list[tuple[str, tuple[str, ...], tuple[int, int, int, int, int, int]]] = [
    # B admin: account management (gestion-comptes) is in the delegation's scope → allowed; B user: an
    # administrator operation through the delegation → 7 (user-profile); A user: a colleague's account → 7.
    ("accounts show", ("accounts", "show", "{account}"), (0, 7, 0, 7, 7, 6)),
    # Listing A's accounts: the same rule as reading one (account.list is a delegated administrator action).
    ("accounts list", ("accounts", "list", "--establishment", "{siret}"), (0, 7, 0, 7, 7, 6)),
    # A's rights on an account: right.read is delegated to B's administrators (account management).
    ("rights list", ("rights", "list", "{account}"), (0, 7, 0, 7, 7, 6)),
    # The rights matrix of A: right.read on the establishment, same rule as rights list.
    ("rights matrix", ("rights", "matrix", "--establishment", "{siret}"), (0, 7, 0, 7, 7, 6)),
    # The delegation A → B is readable by an administrator of either side; users never (user-profile);
    # C is no side of it → 7, as for an unknown id.
    ("delegations show", ("delegations", "show", "{delegation}"), (0, 7, 0, 7, 7, 6)),
    # A batch belongs to the establishment that imported it: only A's administrator; B admin too gets 7
    # (batches are not shared through a delegation; same answer as an unknown batch id).
    ("batches show", ("batches", "show", "{batch}"), (0, 7, 7, 7, 7, 6)),
    # A's history: history.read is a delegated administrator action → B admin allowed; B user → 7.
    ("history", ("history", "--establishment", "{siret}"), (0, 7, 0, 7, 7, 6)),
    # A's record: everyone in A reads it (A user: establishment.read is a self action); B admin and B user
    # read it through the delegation (B user holds a right through it); C → 7.
    ("establishments show", ("establishments", "show", "{siret}"), (0, 0, 0, 0, 7, 6)),
    # Readiness of A: an account.list on A (delegated) → B admin allowed; exit 1 = findings (A's agents
    # were never activated or have no verified phone), i.e. the gate let it through.
    ("audit readiness", ("audit", "readiness", "--establishment", "{siret}"), (1, 7, 1, 7, 7, 6)),
    # Own scope, no target: every administrator on their own establishment (allowed); users → 7.
    ("phones template", ("phones", "template"), (0, 7, 0, 7, 0, 6)),
    # Own scope: every administrator checks their own establishment's phones (all valid: exit 0); users → 7.
    ("phones check", ("phones", "check"), (0, 7, 0, 7, 0, 6)),
    # whoami --can read:cir A: A admin holds no right on cir (not held by profile) → 7; A user holds read;
    # B admin holds no right through the delegation → 7; B user holds read through it; C → 7 (no-delegation).
    ("whoami read:cir", ("whoami", "--can", "read:cir", "{siret}", "--format", "json"), (7, 0, 7, 0, 7, 6)),
    # write:cir: nobody holds write (A user and B user hold read: rule level) → 7 for all.
    ("whoami write:cir", ("whoami", "--can", "write:cir", "{siret}", "--format", "json"), (7, 7, 7, 7, 7, 6)),
    # The local outbox needs no login: the same list for everyone (documented exception to exit 6).
    ("outbox list", ("outbox", "list", "--format", "json"), (0, 0, 0, 0, 0, 0)),
    # -- writes (each allowed one is restored right after) ---------------------------------------------
    # Updating an account of A: account management is in the delegation's scope → B admin allowed.
    ("accounts update", ("accounts", "update", "{account}", "--function", "Gestionnaire"), (0, 7, 0, 7, 7, 6)),
    # Renewing: a delegated account-management action → B admin allowed.
    ("accounts renew", ("accounts", "renew", "{account}", "--yes"), (0, 7, 0, 7, 7, 6)),
    # Unlocking the (locked) target: delegated account management → B admin allowed (re-locked after).
    ("accounts unlock", ("accounts", "unlock", "{account}", "--yes"), (0, 7, 0, 7, 7, 6)),
    # Deleting an agent of A: delegated account management → B admin allowed (each deletes its own spare).
    ("accounts delete", ("accounts", "delete", "{spare}", "--yes"), (0, 7, 0, 7, 7, 6)),
    # Granting a right to A's agents is A's own decision (not delegable) → B admin 7 (not-delegable).
    ("rights grant", ("rights", "grant", "{account}", "estimation", "--level", "read"), (0, 7, 7, 7, 7, 6)),
    # Revoking one: A's own decision too → B admin 7.
    ("rights revoke", ("rights", "revoke", "{account}", "estimation"), (0, 7, 7, 7, 7, 6)),
    # A's record is A's own decision → B admin 7 (not-delegable), A user 7 (user-profile).
    ("establishments update", ("establishments", "update", "{siret}", "--name", NAME_A), (0, 7, 7, 7, 7, 6)),
    # Accepting: only A's administrators (the establishment asked), and the delegation is already accepted
    # → A admin 5 (not pending: a conflict, after the gate let it through); B admin: nobody accepts their
    # own request → 7.
    ("delegations accept", ("delegations", "accept", "{delegation}", "--yes"), (5, 7, 7, 7, 7, 6)),
    # Refusing: the same rule as accepting (A admin: not pending → 5; B admin → 7).
    ("delegations refuse", ("delegations", "refuse", "{delegation}"), (5, 7, 7, 7, 7, 6)),
    # Revoking: from either side, by an administrator → A admin and B admin allowed (re-created after).
    ("delegations revoke", ("delegations", "revoke", "{delegation}", "--yes"), (0, 7, 0, 7, 7, 6)),
    # Undoing A's batch: only A's administrator (re-imported after); B admin → 7 like batches show.
    ("batches undo", ("batches", "undo", "{batch}", "--yes"), (0, 7, 7, 7, 7, 6)),
]
# ------------------------------------------------------------------------------------------------------

NO_LOGIN = {"outbox list"}  # commands that need no session (see the table)
NOT_LOGGED_IN = "Error: You are not logged in to this store.\nHint: Run 'pepsctl login IDENTIFIER'.\n"
WHOAMI = {"whoami read:cir", "whoami write:cir"}  # explain on stdout and record nothing


@dataclass
class World:
    cli: object
    keyring: object
    tmp_path: Path
    sessions: dict[str, dict] = field(default_factory=dict)
    delegation: int = 0
    batch: int = 0
    imports: int = 0

    def as_(self, actor: str) -> None:
        """Put back ``actor``'s session (opened once, at setup), as if they ran pepsctl on their machine."""
        for key in [k for k in self.keyring.items if k[0] == "pepsctl" and k[1].startswith("session:")]:
            del self.keyring.items[key]
        if actor != NOBODY:
            self.keyring.items.update(self.sessions[actor])

    def login(self, actor: str) -> None:
        login(self.cli, actor)
        self.sessions[actor] = {
            k: v for k, v in self.keyring.items.items() if k[0] == "pepsctl" and k[1].startswith("session:")
        }

    def targets(self, actor: str) -> dict[str, str]:
        return {
            "account": TARGET,
            "spare": SPARE_A if actor == ADMIN_A else SPARE_B,
            "siret": SIRET_A,
            "delegation": str(self.delegation),
            "batch": str(self.batch),
        }


def _engine(url: str):
    from pepsctl.store.engine import create_store_engine, parse_store_url

    return create_store_engine(parse_store_url(url))


def query(url: str, sql: str, **params) -> list[tuple]:
    from sqlalchemy import text

    engine = _engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def lock(url: str, identifier: str) -> None:
    """Lock an account as five failures would (directly in the store: no login needed)."""
    query(
        url,
        "UPDATE account SET locked_at = updated_at, failed_attempts = 5 WHERE identifier = :i",
        i=identifier,
    )


def import_phones(world: World) -> int:
    """A's administrator imports a new phone for the target: a batch of A; returns its id."""
    world.imports += 1
    phone = f"07 81 22 33 {40 + world.imports:02d}"
    path = world.tmp_path / f"phones{world.imports}.csv"
    path.write_text(f"identifier;phone\n{TARGET};{phone}\n", encoding="utf-8")
    world.as_(ADMIN_A)
    with_code(world.cli, "phones", "import", str(path), "--yes", "--quiet")
    return query(world.cli.store, "SELECT max(id) FROM batch WHERE kind = 'phones'")[0][0]


def delegate(world: World) -> int:
    """B asks A (scope cir, estimation, gestion-comptes), A accepts, B grants its user read on A's cir."""
    cli = world.cli
    world.as_(ADMIN_B)
    delegation_id = cli.json("delegations", "request", SIRET_A, "--services", SCOPE)["id"]
    world.as_(ADMIN_A)
    with_code(cli, "delegations", "accept", str(delegation_id), "--yes")
    world.as_(ADMIN_B)
    cli.ok("delegations", "grant", USER_B, "--establishment", SIRET_A, "cir", "--level", "read")
    return delegation_id


def build(cli, keyring, tmp_path: Path) -> World:
    world = World(cli, keyring, tmp_path)
    assert register(cli, SIRET_A, last="Durand", first="Marie", phone="06 10 20 30 41") == ADMIN_A
    assert register(cli, SIRET_B, last="Martin", first="Paul", phone="06 10 20 30 42") == ADMIN_B
    assert register(cli, SIRET_C, last="Bernard", first="Luc", phone="06 10 20 30 43") == ADMIN_C
    world.login(ADMIN_B)
    assert create_account(cli, "Karim", "Benali", phone="06 10 20 30 44") == USER_B
    world.login(ADMIN_C)
    world.login(ADMIN_A)
    assert create_account(cli, "Jeanne", "Dupont", phone="06 10 20 30 45") == USER_A
    assert create_account(cli, "Lea", "Noel", phone="06 10 20 30 46") == TARGET
    assert create_account(cli, "Anne", "Roux", phone="06 10 20 30 47", activate_it=False) == SPARE_A
    assert create_account(cli, "Yves", "Blanc", phone="06 10 20 30 48", activate_it=False) == SPARE_B
    cli.ok("rights", "grant", USER_A, "cir", "--level", "read")
    cli.ok("rights", "grant", TARGET, "cir", "estimation", "--level", "read")
    world.delegation = delegate(world)
    world.batch = import_phones(world)
    world.login(USER_A)
    world.login(USER_B)
    lock(cli.store, TARGET)
    return world


def restore(world: World, command: str, actor: str) -> None:
    """Undo an allowed write so that the next cells see the same world."""
    cli = world.cli
    if command == "accounts unlock":
        lock(cli.store, TARGET)
    elif command == "rights revoke":
        world.as_(ADMIN_A)
        cli.ok("rights", "grant", TARGET, "estimation", "--level", "read")
    elif command == "delegations revoke":
        world.delegation = delegate(world)
    elif command == "batches undo":
        world.batch = import_phones(world)


def denials(url: str, actor: str) -> list[tuple[int, str]]:
    return query(
        url,
        "SELECT id, target FROM audit_event WHERE action = 'permission.denied' AND actor = :a ORDER BY id",
        a=actor,
    )


def placeholder(text: str, value: str) -> str:
    return re.sub(rf"(?<![\w]){re.escape(value)}(?![\w])", "TARGET", text)


KINDS = ("account", "spare", "siret", "delegation", "batch")
OUTSIDE_HINT = "Hint: Not in your establishment nor in one that delegated to it (or it does not exist).\n"
# Refusals inside the actor's own scope (A's own actors, or B's through its delegation) may name their
# rule: the actor's establishment already knows the target. Outside it (C) only the OUTSIDE_HINT.
IN_SCOPE_HINTS = {
    "Hint: A user profile cannot run administrator operations.\n",
    "Hint: Only the establishment's own administrators may do this.\n",
}
IN_SCOPE_RULES = {"user-profile", "not-delegable", "no-right", "level"}


def _kind(argv: tuple[str, ...]) -> str | None:
    return next((k for k in KINDS if any(f"{{{k}}}" in a for a in argv)), None)


def refusal_problems(world: World, argv: tuple[str, ...], actor: str, result) -> list[str]:
    """What is wrong with a refusal (exit 7): stdout, and the answer compared with an unknown target's."""
    kind = _kind(argv)
    if kind is None:  # own scope (phones template/check): no target to compare with
        return [] if result.stdout == "" else [f"stdout not empty: {result.stdout!r}"]
    typed = world.targets(actor)[kind]
    unknown = UNKNOWN["account" if kind == "spare" else kind]
    other = world.cli(*[a.format(**dict.fromkeys(KINDS, unknown)) for a in argv])
    problems = [] if other.exit_code == 7 else [f"unknown target: exit {other.exit_code} {other.stderr!r}"]
    if argv[0] == "whoami":  # the explanation is on stdout; nothing on stderr
        mine, theirs = json.loads(result.stdout), json.loads(other.stdout)
        if result.stderr or other.stderr or mine["allowed"] is not False:
            problems.append(f"whoami refusal: {result.stdout!r} {result.stderr!r}")
        same = {**mine, "target": None} == {**theirs, "target": None}
        if not same and (actor == ADMIN_C or mine["rule"] not in IN_SCOPE_RULES):
            problems.append(f"explained unlike an unknown target: {mine} vs {theirs}")
        return problems
    if result.stdout:
        problems.append(f"stdout not empty: {result.stdout!r}")
    if other.stdout:
        problems.append(f"stdout not empty for an unknown target: {other.stdout!r}")
    mine, theirs = placeholder(result.stderr, typed), placeholder(other.stderr, unknown)
    if theirs.splitlines(keepends=True)[1:] != [OUTSIDE_HINT]:
        problems.append(f"unknown target not refused as outside the scope: {other.stderr!r}")
    if mine != theirs:
        first, _sep, hint = mine.partition("\n")
        if actor == ADMIN_C or first != theirs.partition("\n")[0] or hint not in IN_SCOPE_HINTS:
            problems.append(f"answered unlike an unknown target: {result.stderr!r} vs {other.stderr!r}")
    return problems


def denied_target(world: World, argv: tuple[str, ...], actor: str) -> str:
    """The target a refusal records: the typed one (batch:N, delegation:N), or the actor's own SIRET."""
    kind = _kind(argv)
    if kind is None:
        return {ADMIN_A: SIRET_A, USER_A: SIRET_A, ADMIN_B: SIRET_B, USER_B: SIRET_B, ADMIN_C: SIRET_C}[actor]
    typed = world.targets(actor)[kind]
    return f"{kind}:{typed}" if kind in ("delegation", "batch") else typed


def test_the_table_needs_a_session_everywhere_but_the_documented_exceptions():
    assert {command for command, _argv, codes in MATRIX if codes[-1] != 6} == NO_LOGIN


@pytest.fixture
def fast_cli(cli, monkeypatch):
    """The same ``cli``, with the Click command built once: Typer rebuilds it (~0.1 s) at every invoke."""
    import typer.main
    import typer.testing

    from pepsctl.cli import app

    built, original = typer.main.get_command(app), typer.testing._get_command

    def get_command(typer_app):
        return built if typer_app is app else original(typer_app)

    monkeypatch.setattr(typer.testing, "_get_command", get_command)
    return cli


def test_isolation_matrix(fast_cli, isolate, tmp_path):
    cli = fast_cli
    world = build(cli, isolate, tmp_path)

    got, want, problems = [], [], []
    for command, argv, codes in MATRIX:
        for actor, expected in zip(ACTORS, codes, strict=True):
            world.as_(actor)
            typed = world.targets(actor)
            args = [a.format(**typed) for a in argv]
            before = denials(cli.store, actor)
            result = cli(*args)
            got.append((command, ACTOR_NAMES[actor], result.exit_code))
            want.append((command, ACTOR_NAMES[actor], expected))
            if result.exit_code != expected:
                problems.append(f"{command} / {ACTOR_NAMES[actor]}: {result.exit_code} {result.stderr!r}")
            if result.exit_code == 7:
                after = denials(cli.store, actor)
                problems += [
                    f"{command} / {ACTOR_NAMES[actor]}: {p}" for p in refusal_problems(world, argv, actor, result)
                ]
                new = [t for i, t in after if (i, t) not in before]
                wanted = [] if command in WHOAMI else [denied_target(world, argv, actor)]
                if new != wanted:  # exactly one permission.denied, on the typed target (none for an explanation)
                    problems.append(f"{command} / {ACTOR_NAMES[actor]}: permission.denied events {new} != {wanted}")
            elif actor == NOBODY and result.exit_code == 6:
                if result.stdout or result.stderr != NOT_LOGGED_IN:
                    problems.append(f"{command} / no session: {result.stdout!r} {result.stderr!r}")
            elif result.exit_code == 0 and actor != NOBODY:
                restore(world, command, actor)

    assert problems == []
    assert got == want
