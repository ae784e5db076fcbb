"""What the benchmarks share: an isolated pepsctl environment, and timing a command as a child process
(wall time, exit code, and the child's own peak RSS and CPU time).

``ru_maxrss`` counts a process's whole life, the moments between ``fork`` and ``exec`` included: a
child forked from a benchmark that holds a 300,000-row data set would report the benchmark's memory,
not its own. So a small launcher (a fresh interpreter holding nothing) starts the command and reads
its ``wait4`` usage; the launcher's own fork carries only the launcher's few megabytes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_LAUNCHER = """
import json, os, subprocess, sys, time
out, err = sys.argv[1], sys.argv[2]
with open(out, "wb") as stdout, open(err, "wb") as stderr:
    start = time.perf_counter()
    child = subprocess.Popen(sys.argv[3:], stdout=stdout, stderr=stderr)
    _pid, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
print(json.dumps({"wall": wall, "code": os.waitstatus_to_exitcode(status), "peak_mb": usage.ru_maxrss / 1024,
                  "cpu": usage.ru_utime + usage.ru_stime}))
"""


def run_child(cmd: list[str], env: dict[str, str], out: Path) -> tuple[float, int, float, float, str]:
    """Wall time, exit code, peak RSS (MB), CPU time (user + system) and stderr of ``cmd``; stdout to ``out``."""
    err = out.with_suffix(out.suffix + ".err")
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, str(out), str(err), *cmd], env=env, capture_output=True, text=True, check=True
    )
    elapsed = time.perf_counter() - start
    figures = json.loads(done.stdout)
    # The launcher's own start-up (≈ 20 ms) is not in "wall"; keep the smaller of the two.
    wall = min(figures["wall"], elapsed)
    return wall, figures["code"], figures["peak_mb"], figures["cpu"], err.read_text(encoding="utf-8", errors="replace")


def isolated_env(store: str | None) -> tuple[Path, dict[str, str]]:
    """A new temporary folder and the environment of a pepsctl that keeps everything there: its own
    config, data and state, no OS keyring, the outbox allowed, and ``store`` (default: a SQLite file
    in the folder)."""
    tmp = Path(tempfile.mkdtemp(prefix="pepsctl-bench-"))
    env = dict(os.environ)
    env.update(
        PEPSCTL_CONFIG_DIR=str(tmp / "config"),
        PEPSCTL_DATA_DIR=str(tmp / "data"),
        PEPSCTL_STATE_DIR=str(tmp / "state"),
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        PEPSCTL_OUTBOX="1",
        PEPSCTL_STORE=store or f"sqlite:///{tmp / 'bench.db'}",
    )
    return tmp, env
