"""The 300,000-row phones import: wall time against the phonenumbers floor, and peak memory.

    python benchmarks/bench_phones.py --rows 300000 [--store postgresql://postgres@127.0.0.1:5432/pepsctl_bench]

The floor, measured in the same run, is the standard library's csv reading the file, plus phonenumbers
parsing, validating, typing and formatting every number once (no cache), plus the driver writing every
row through a temporary table and one ``UPDATE … FROM`` (rolled back): the import must stay within
1.5 × that floor.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.measure import isolated_env, run_child  # noqa: E402 - after the path is set

WRITINGS = ("06 {a} {b} {c} {d}", "+33 6 {a} {b} {c} {d}", "06.{a}.{b}.{c}.{d}", "00336{a}{b}{c}{d}", "06{a}{b}{c}{d}")


PREFIXES = [n for n in range(10, 60) if n != 39]


def phone_text(i: int) -> str:
    digits = f"{(i * 7919) % 10**6:06d}"
    # 06 10… to 06 59…: metropolitan mobiles (06 39 is Mayotte, 06 9x the Antilles and Réunion).
    a, b, c, d = f"{PREFIXES[i % len(PREFIXES)]:02d}", digits[:2], digits[2:4], digits[4:]
    return WRITINGS[i % len(WRITINGS)].format(a=a, b=b, c=c, d=d)


def parse_seconds(texts: list[str]) -> float:
    """phonenumbers alone: parse, validate, type and format every row once (no cache)."""
    import phonenumbers

    start = time.perf_counter()
    for text in texts:
        number = phonenumbers.parse(text, "FR")
        phonenumbers.is_valid_number(number)
        phonenumbers.number_type(number)
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return time.perf_counter() - start


def csv_seconds(path: Path) -> float:
    """The standard library reading the file: decode and split every row."""
    import csv

    start = time.perf_counter()
    with path.open(encoding="cp1252", newline="") as handle:
        for _row in csv.reader(handle, delimiter=";"):
            pass
    return time.perf_counter() - start


def update_seconds(store: str, identifiers: list[str], texts: list[str]) -> float:
    """The driver alone writing every row: a temporary table and one ``UPDATE … FROM``, rolled back after."""
    rows = [
        (identifier, "+33" + "".join(ch for ch in text if ch.isdigit())[-9:])
        for identifier, text in zip(identifiers, texts, strict=True)
    ]
    if store.startswith("postgresql"):
        import psycopg

        with psycopg.connect(store.replace("postgresql+psycopg", "postgresql")) as connection:
            start = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute("CREATE TEMPORARY TABLE floor_phone (identifier text PRIMARY KEY, phone text)")
                with cursor.copy("COPY floor_phone (identifier, phone) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                cursor.execute(
                    "UPDATE account SET phone = f.phone FROM floor_phone f WHERE account.identifier = f.identifier"
                )
            elapsed = time.perf_counter() - start
            connection.rollback()
        return elapsed
    import sqlite3

    connection = sqlite3.connect(store.removeprefix("sqlite:///"), isolation_level=None)
    start = time.perf_counter()
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("CREATE TEMPORARY TABLE floor_phone (identifier TEXT PRIMARY KEY, phone TEXT)")
    connection.executemany("INSERT INTO floor_phone VALUES (?, ?)", rows)
    connection.execute("UPDATE account SET phone = f.phone FROM floor_phone f WHERE account.identifier = f.identifier")
    elapsed = time.perf_counter() - start
    connection.execute("ROLLBACK")
    connection.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--store", help="store URL (default: a temporary SQLite file); the database must be empty")
    args = parser.parse_args()

    tmp, env = isolated_env(args.store)
    pepsctl = [sys.executable, "-m", "pepsctl"]
    subprocess.run([*pepsctl, "init", "--demo"], env=env, check=True, capture_output=True)
    from benchmarks.generate import add_accounts
    from pepsctl.domain.demo import DEMO_PASSWORD, DEMO_SIRET, DEMO_TOTP_SECRET
    from pepsctl.store.engine import create_store_engine, parse_store_url

    subprocess.run(
        [*pepsctl, "login", "MDU000001", "--password-stdin", "--totp"],
        env={**env, "PEPSCTL_TOTP_SECRET": DEMO_TOTP_SECRET},
        input=DEMO_PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
    )
    engine = create_store_engine(parse_store_url(env["PEPSCTL_STORE"]))
    add_accounts(engine, DEMO_SIRET, args.rows)
    from sqlalchemy import text

    with engine.connect() as connection:
        identifiers = [
            row[0]
            for row in connection.execute(
                text("SELECT identifier FROM account WHERE email LIKE '%@bench.example.fr' ORDER BY id")
            )
        ]
    engine.dispose()
    csv_path = tmp / "phones.csv"
    texts = [phone_text(i) for i in range(len(identifiers))]
    with csv_path.open("w", encoding="cp1252", newline="") as handle:
        handle.write("identifiant;téléphone\r\n")
        for identifier, phone in zip(identifiers, texts, strict=True):
            handle.write(f"{identifier};{phone}\r\n")

    # The floor, measured in the same run (the definition): the standard library reading the
    # file, phonenumbers on every row, and the driver writing every row in one temporary-table update.
    parts = {
        "csv": csv_seconds(csv_path),
        "phonenumbers": parse_seconds(texts),
        "update": update_seconds(env["PEPSCTL_STORE"], identifiers, texts),
    }
    floor = sum(parts.values())
    report = tmp / "r.csv"
    command = [*pepsctl, "phones", "import", str(csv_path), "--yes", "--quiet", "--allow-shared"]
    wall, code, peak_mb, cpu, err = run_child([*command, "--report", str(report)], env, tmp / "out.txt")
    if code != 0:
        print(err[-2000:])
        print(report.read_text()[:1500] if report.exists() else "")
        raise SystemExit(code)
    second, code2, _peak2, _cpu2, err2 = run_child(command, env, tmp / "out2.txt")
    if code2 != 0:
        raise SystemExit(err2[-2000:])
    dialect = parse_store_url(env["PEPSCTL_STORE"]).dialect
    print(f"store: {dialect}, rows: {len(identifiers)}, python {sys.version.split()[0]}, {os.cpu_count()} cores")
    print(f"floor: {floor:.2f} s ({', '.join(f'{k} {v:.2f} s' for k, v in parts.items())})")
    print(f"phones import: {wall:.2f} s ({wall / floor:.2f} x floor), CPU {cpu:.2f} s, peak RSS {peak_mb:.0f} MB")
    print(f"same file again (no-op): {second:.2f} s")
    print(err.strip().splitlines()[-1])
    print(err2.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
