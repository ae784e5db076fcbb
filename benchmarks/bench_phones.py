"""The 300,000-row phones import: wall time against the phonenumbers floor, and peak memory.

    python benchmarks/bench_phones.py --rows 300000 [--store postgresql://postgres@127.0.0.1:5432/pepsctl_bench]

The floor is what parsing, validating and typing every number with phonenumbers costs alone
(one parse per row, no cache): the import must stay within 1.5 × that floor.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

WRITINGS = ("06 {a} {b} {c} {d}", "+33 6 {a} {b} {c} {d}", "06.{a}.{b}.{c}.{d}", "00336{a}{b}{c}{d}", "06{a}{b}{c}{d}")


PREFIXES = [n for n in range(10, 60) if n != 39]


def phone_text(i: int) -> str:
    digits = f"{(i * 7919) % 10**6:06d}"
    # 06 10… to 06 59…: metropolitan mobiles (06 39 is Mayotte, 06 9x the Antilles and Réunion).
    a, b, c, d = f"{PREFIXES[i % len(PREFIXES)]:02d}", digits[:2], digits[2:4], digits[4:]
    return WRITINGS[i % len(WRITINGS)].format(a=a, b=b, c=c, d=d)


def floor_seconds(texts: list[str]) -> float:
    import phonenumbers

    start = time.perf_counter()
    for text in texts:
        number = phonenumbers.parse(text, "FR")
        phonenumbers.is_valid_number(number)
        phonenumbers.number_type(number)
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--store", help="store URL (default: a temporary SQLite file); the database must be empty")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="pepsctl-bench-"))
    env = dict(os.environ)
    env.update(
        PEPSCTL_CONFIG_DIR=str(tmp / "config"),
        PEPSCTL_DATA_DIR=str(tmp / "data"),
        PEPSCTL_STATE_DIR=str(tmp / "state"),
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        PEPSCTL_OUTBOX="1",
        PEPSCTL_STORE=args.store or f"sqlite:///{tmp / 'bench.db'}",
    )
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

    floor = floor_seconds(texts)
    start = time.perf_counter()
    done = subprocess.run(
        [
            *pepsctl,
            "phones",
            "import",
            str(csv_path),
            "--yes",
            "--quiet",
            "--allow-shared",
            "--report",
            str(tmp / "r.csv"),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if done.returncode != 0:
        print(done.stderr[-2000:])
        print((tmp / "r.csv").read_text()[:1500])
        raise SystemExit(done.returncode)
    start = time.perf_counter()
    again = subprocess.run(
        [*pepsctl, "phones", "import", str(csv_path), "--yes", "--quiet", "--allow-shared"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    second = time.perf_counter() - start
    dialect = parse_store_url(env["PEPSCTL_STORE"]).dialect
    print(f"store: {dialect}, rows: {len(identifiers)}, python {sys.version.split()[0]}, {os.cpu_count()} cores")
    print(f"phonenumbers floor: {floor:.2f} s")
    print(f"phones import: {wall:.2f} s ({wall / floor:.2f} x floor), peak RSS {peak_mb:.0f} MB")
    print(f"same file again (no-op): {second:.2f} s")
    print(done.stderr.strip().splitlines()[-1])
    print(again.stderr.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
