"""Start-up and listing times of the real CLI, as medians over repeated subprocess runs."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.measure import isolated_env  # noqa: E402 - after the path is set


def timed(cmd: list[str], env: dict[str, str], runs: int, stdin: str | None = None) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, input=stdin, text=True, capture_output=True, check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000, min(samples) * 1000


def matrix_in_process(engine, runs: int = 7) -> tuple[float, float]:
    """The matrix's own cost, without the interpreter's start-up: query, pivot and table rendering."""
    import io

    from sqlmodel import Session

    from pepsctl.commands.rights import render_matrix
    from pepsctl.domain import rights
    from pepsctl.domain.env import Env
    from pepsctl.domain.notify import RefusingGateway
    from pepsctl.store import queries

    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        with Session(engine) as session:
            admin = queries.get_account_by_identifier(session, "MDU000001")
            env = Env(session=session, gateway=RefusingGateway(), actor=_actor(session, admin))
            grid = rights.matrix(env)
            out = io.StringIO()
            real, sys.stdout = sys.stdout, out
            try:
                render_matrix(grid, "table")
            finally:
                sys.stdout = real
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000, min(samples) * 1000


def _actor(session, account):
    from pepsctl.domain.env import Actor
    from pepsctl.store.models import Establishment

    establishment = session.get(Establishment, account.establishment_id)
    return Actor(account.id, account.identifier, account.establishment_id, establishment.siret, account.profile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--accounts", type=int, default=2000, help="accounts added to the demo establishment")
    parser.add_argument("--store", help="store URL (default: a temporary SQLite file)")
    args = parser.parse_args()

    _tmp, env = isolated_env(args.store)
    store = env["PEPSCTL_STORE"]
    pepsctl = [sys.executable, "-m", "pepsctl"]

    rows = []
    rows.append(("pepsctl --help", *timed([*pepsctl, "--help"], env, args.runs)))
    rows.append(("pepsctl --version", *timed([*pepsctl, "--version"], env, args.runs)))
    rows.append(("pepsctl accounts create --help", *timed([*pepsctl, "accounts", "create", "--help"], env, args.runs)))

    subprocess.run([*pepsctl, "init", "--demo"], env=env, check=True, capture_output=True)
    from pepsctl.domain.demo import DEMO_PASSWORD, DEMO_TOTP_SECRET

    subprocess.run(  # the demo administrator's second factor is an authenticator app, as in CI
        [*pepsctl, "login", "MDU000001", "--password-stdin", "--totp"],
        env={**env, "PEPSCTL_TOTP_SECRET": DEMO_TOTP_SECRET},
        input=DEMO_PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
    )
    rows.append(("accounts list (demo Mairie, 16 accounts)", *timed([*pepsctl, "accounts", "list"], env, args.runs)))

    from benchmarks.generate import add_accounts
    from pepsctl.domain.demo import DEMO_SIRET
    from pepsctl.store.engine import create_store_engine, parse_store_url

    engine = create_store_engine(parse_store_url(store))
    start = time.perf_counter()
    add_accounts(engine, DEMO_SIRET, args.accounts)
    insert_ms = (time.perf_counter() - start) * 1000
    engine.dispose()
    rows.append((f"generate {args.accounts} accounts (one executemany)", insert_ms, insert_ms))
    n = args.accounts + 13
    rows.append((f"accounts list ({n} accounts, table)", *timed([*pepsctl, "accounts", "list"], env, 7)))
    rows.append((f"accounts list ({n} accounts, json)", *timed([*pepsctl, "accounts", "list", "-f", "json"], env, 7)))

    # rights matrix: every account with 4 rights over 12 services.
    from benchmarks.generate import add_rights

    engine = create_store_engine(parse_store_url(store))
    services = ["estimation", "simulation", "cir", "di", "cotisations", "courriers", "emaj", "attestations",
                "consultation-comptes", "suivi-dsn", "affiliation", "messagerie"]  # fmt: skip
    granted = add_rights(engine, DEMO_SIRET, services)
    rows.append((f"matrix in-process ({n} accounts, {granted} rights): query + table", *matrix_in_process(engine)))
    engine.dispose()
    for fmt_ in ("table", "csv", "json"):
        cmd = [*pepsctl, "rights", "matrix", "-f", fmt_]
        rows.append((f"rights matrix ({n} accounts, {fmt_}), whole command", *timed(cmd, env, 7)))

    print(f"store: {parse_store_url(store).dialect}, python {sys.version.split()[0]}, {os.cpu_count()} cores")
    print("| scenario | median ms | min ms |")
    print("|---|---:|---:|")
    for name, median, low in rows:
        print(f"| {name} | {median:.0f} | {low:.0f} |")


if __name__ == "__main__":
    main()
