"""The readiness audit over the benchmark data set: 40,000 establishments and 300,000 accounts.

    python benchmarks/bench_audit.py [--runs 5] [--store postgresql://postgres@127.0.0.1:5432/pepsctl_bench_audit]

The demo store (``pepsctl init --demo``) plus ``benchmarks.generate.build_dataset``: every
establishment has delegated account management to the demo's centre de gestion, whose administrator
logs in (password and authenticator-app code) and audits them all. Timed: the whole command as a
subprocess, JSON on stdout redirected to a file (``audit readiness --format json`` and
``--summary``), the in-process ``pepsctl.domain.audit.readiness`` call, and the in-process JSON
rendering of its result (``pepsctl.output.render``); medians of ``--runs`` runs. The peak RSS and
the CPU time (user + system) are the child process's own (``wait4``); in-process CPU is this
process's (on PostgreSQL the server's CPU is not counted). On a busy machine the wall times are
noisy: the CPU times are steadier. Target: under 2 s on both stores. The PostgreSQL database must
exist and be empty.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.measure import isolated_env  # noqa: E402 - after the path is set
from benchmarks.measure import run_child as measure_child  # noqa: E402


def run_child(cmd: list[str], env: dict[str, str], out: Path) -> tuple[float, int, float, float]:
    """Wall time, exit code, peak RSS (MB) and CPU time of one run, stdout to ``out`` (``> findings.json``)."""
    wall, code, peak_mb, cpu, err = measure_child(cmd, env, out)
    if code not in (0, 1):  # 1: the audit found something to fix, as expected
        raise SystemExit(f"{' '.join(cmd[2:])} failed with {code}:\n{err[-2000:]}")
    return wall, code, peak_mb, cpu


def timed_command(cmd: list[str], env: dict[str, str], runs: int, out: Path) -> dict:
    samples = [run_child(cmd, env, out) for _ in range(runs)]
    walls = [s[0] for s in samples]
    return {
        "median": statistics.median(walls),
        "min": min(walls),
        "rss": max(s[2] for s in samples),
        "cpu": statistics.median(s[3] for s in samples),
        "exit": samples[-1][1],
        "rows": json.loads(out.read_text(encoding="utf-8")),
    }


def in_process(engine, identifier: str, runs: int):
    """``audit.readiness`` as the command calls it (one transaction), without the interpreter's start-up."""
    from sqlmodel import Session

    from pepsctl.domain import audit
    from pepsctl.domain.env import Actor, Env
    from pepsctl.domain.notify import RefusingGateway
    from pepsctl.store import queries
    from pepsctl.store.models import Establishment

    samples, cpu, report = [], [], None
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        with Session(engine) as session, session.begin():
            account = queries.get_account_by_identifier(session, identifier)
            assert account is not None and account.id is not None
            establishment = session.get(Establishment, account.establishment_id)
            assert establishment is not None
            actor = Actor(account.id, account.identifier, establishment.id or 0, establishment.siret, account.profile)
            report = audit.readiness(Env(session=session, gateway=RefusingGateway(), actor=actor))
        samples.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(samples), min(samples), statistics.median(cpu), report


def rendering(report, runs: int) -> dict[str, tuple[float, float, float]]:
    """The JSON output of the findings and of the summary, in-process: (median, min, median CPU)."""
    import io

    from pepsctl import output
    from pepsctl.commands._options import fields_of
    from pepsctl.domain.audit import EstablishmentSummary, Finding

    result = {}
    for name, records, kind in (
        ("findings", report.findings, Finding),
        ("summary", report.establishments, EstablishmentSummary),
    ):
        walls, cpus = [], []
        for _ in range(runs):
            start, start_cpu = time.perf_counter(), time.process_time()
            output.render(records, "json", columns=fields_of(kind), file=io.StringIO())
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - start_cpu)
        result[name] = (statistics.median(walls), min(walls), statistics.median(cpus))
    return result


def digest(report) -> str:
    """A fingerprint of the findings and summaries: equal before and after an optimisation."""
    data = [dataclasses.astuple(f) for f in report.findings] + [dataclasses.astuple(s) for s in report.establishments]
    return hashlib.sha256(json.dumps(data, ensure_ascii=False).encode()).hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--establishments", type=int, default=40_000)
    parser.add_argument("--accounts", type=int, default=300_000)
    parser.add_argument("--store", help="store URL (default: a temporary SQLite file); the database must be empty")
    args = parser.parse_args()

    tmp, env = isolated_env(args.store)
    pepsctl = [sys.executable, "-m", "pepsctl"]
    subprocess.run([*pepsctl, "init", "--demo"], env=env, check=True, capture_output=True)

    from sqlalchemy import text
    from sqlmodel import Session

    from benchmarks.generate import build_dataset
    from pepsctl.domain.demo import CDG_SIRET, DEMO_PASSWORD, DEMO_TOTP_SECRET
    from pepsctl.store import queries
    from pepsctl.store.engine import create_store_engine, parse_store_url

    store = parse_store_url(env["PEPSCTL_STORE"])
    engine = create_store_engine(store)
    start = time.perf_counter()
    counts = build_dataset(engine, establishments=args.establishments, accounts=args.accounts)
    build_s = time.perf_counter() - start
    with Session(engine) as session:
        cdg = queries.get_establishment_by_siret(session, CDG_SIRET)
        assert cdg is not None and cdg.id is not None
        identifier = queries.administrators_of(session, cdg.id)[0].identifier
        establishments, accounts = session.execute(
            text("SELECT (SELECT count(*) FROM establishment), (SELECT count(*) FROM account)")
        ).one()
    subprocess.run(
        [*pepsctl, "login", identifier, "--password-stdin", "--totp"],
        env={**env, "PEPSCTL_TOTP_SECRET": DEMO_TOTP_SECRET},
        input=DEMO_PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
    )

    audit_cmd = [*pepsctl, "audit", "readiness", "--format", "json"]
    full = timed_command(audit_cmd, env, args.runs, tmp / "findings.json")
    summary = timed_command([*audit_cmd, "--summary"], env, args.runs, tmp / "summary.json")
    median, low, cpu, report = in_process(engine, identifier, args.runs)
    engine.dispose()
    rendered = rendering(report, args.runs)

    findings = len(full["rows"])
    errors = sum(1 for f in full["rows"] if f["severity"] == "error")
    ready = sum(1 for s in summary["rows"] if s["ready"])
    # The runs span a minute or two, and accounts cross the time-dependent checks' boundaries (an
    # activation code expiring, an account becoming stale): a few findings may come or go meanwhile.
    assert report is not None and abs(len(report.findings) - findings) <= 10, (len(report.findings), findings)
    assert len(report.establishments) == len(summary["rows"])
    version = engine.dialect.server_version_info or ()
    print(
        f"store: {store.dialect} {'.'.join(map(str, version))}, python {sys.version.split()[0]}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, median of {args.runs} runs"
    )
    print(
        f"data set: {establishments:,} establishments ({counts['establishments']:,} generated), {accounts:,} accounts, "
        f"{counts['delegations']:,} delegations to {CDG_SIRET}; built in {build_s:.1f} s; audit by {identifier}"
    )
    print(
        f"findings: {findings:,} ({errors:,} errors, {findings - errors:,} warnings); "
        f"{ready:,} of {len(summary['rows']):,} establishments ready; digest {digest(report)}"
    )
    print()
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print()
    print("| scenario | median | min | CPU (median) | peak RSS | rows out |")
    print("|---|---:|---:|---:|---:|---:|")
    print(
        f"| `audit readiness --format json`, whole command | {full['median']:.2f} s | {full['min']:.2f} s "
        f"| {full['cpu']:.2f} s | {full['rss']:.0f} MB | {findings:,} findings |"
    )
    print(
        f"| `audit readiness --summary --format json`, whole command | {summary['median']:.2f} s "
        f"| {summary['min']:.2f} s | {summary['cpu']:.2f} s | {summary['rss']:.0f} MB "
        f"| {len(summary['rows']):,} establishments |"
    )
    print(
        f"| `audit.readiness()` in-process | {median:.2f} s | {low:.2f} s | {cpu:.2f} s (client) | "
        f"| {len(report.findings):,} findings |"
    )
    for name, rows_out in (("findings", f"{findings:,} findings"), ("summary", f"{len(summary['rows']):,} rows")):
        wall, fastest, spent = rendered[name]
        print(
            f"| `output.render` JSON of the {name}, in-process | {wall:.2f} s | {fastest:.2f} s | {spent:.2f} s "
            f"| | {rows_out} |"
        )


if __name__ == "__main__":
    main()
