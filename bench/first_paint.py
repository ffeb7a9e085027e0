"""Start to first window painted (issue 18: ≤ 0.8 s): the pip-installed `kitedesk`, no demo.

Starts `kitedesk --home HOME` --runs times and times from the moment the process is started to Qt's first
flush of the main window's backing store (Qt's `qt.widgets.painting` log says "Flushing ... of MainWindow";
offscreen unless QT_QPA_PLATFORM says otherwise), then ends it with SIGTERM, as bench/first_paint_frozen.py
does. One warm-up start is not counted (the first start reads the files from disk, and creates HOME).

By default every counted start reuses the warm-up's home: a trader's usual start, the database already at the
newest schema. `--fresh` gives each start an empty home (the very first start: the schema is created).
Prints the median, min and max; exits 1 when the median is over the budget.

    python bench/first_paint.py [--runs 7] [--fresh] [--budget 0.8]

Where the time goes: `python -X importtime` on the same start (imports are most of it).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_S = 0.8
FIRST_FLUSH = "of MainWindow"


def first_paint_s(cmd: list[str], home: Path, timeout: float = 60.0) -> float:
    """Seconds from starting `cmd --home home` to the first flush of its main window."""
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    env["QT_LOGGING_RULES"] = "qt.widgets.painting=true"
    env["QT_MESSAGE_PATTERN"] = "%{category}: %{message}"
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [*cmd, "--home", str(home)], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    assert proc.stderr is not None
    took = None
    try:
        for line in proc.stderr:
            if line.startswith("qt.widgets.painting: Flushing") and FIRST_FLUSH in line:
                took = time.perf_counter() - t0
                break
            if time.perf_counter() - t0 > timeout:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=20)  # drains the rest of the log while it stops
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    if took is None:
        raise RuntimeError(f"{cmd[0]} never painted its window (exit {proc.returncode})")
    return took


def main() -> int:
    p = argparse.ArgumentParser(description="KiteDesk: start to first window painted.")
    p.add_argument("--runs", type=int, default=7, help="counted starts (default 7, at least 5)")
    p.add_argument(
        "--fresh", action="store_true", help="an empty home for every start (the very first start)"
    )
    p.add_argument("--budget", type=float, default=BUDGET_S, help="seconds the median may take")
    p.add_argument(
        "--app",
        default=str(Path(sys.executable).with_name("kitedesk")),
        help="the kitedesk to start (default: the one beside this Python)",
    )
    args = p.parse_args()
    if args.runs < 5:
        p.error("--runs must be at least 5")
    with tempfile.TemporaryDirectory(prefix="kitedesk-paint-") as tmp:
        home = Path(tmp) / "home"
        first_paint_s([args.app], home)  # warm-up: page cache, and the home for the later starts
        times = []
        for i in range(args.runs):
            times.append(first_paint_s([args.app], Path(tmp) / f"fresh{i}" if args.fresh else home))
    med = statistics.median(times)
    ok = med <= args.budget
    kind = "an empty home each (first start)" if args.fresh else "an existing home (usual start)"
    print(f"start to first window painted, {args.runs} starts, {kind}: median {med:.3f} s, "
          f"min {min(times):.3f}, max {max(times):.3f}  (budget {args.budget:g} s: {'ok' if ok else 'OVER BUDGET'})")  # fmt: skip
    print("  each: " + ", ".join(f"{t:.3f}" for t in times))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
