"""Start to first window painted: the frozen app (build_installer.spec) beside the pip-installed one.

Starts each `KiteDesk` (a fresh, empty home each time, no demo) --runs times, alternating the two, and times
from the moment the process is started to Qt's first flush of the main window's backing store to the screen
(Qt's own `qt.widgets.painting` log says "Flushing ... of MainWindow"), then ends it with SIGTERM.
One warm-up start of each is not counted (the first start reads the files from disk).
Budget: the frozen app's median ≤ 3 s and ≤ 1.2 × the pip-installed one's; exits 1 when over.

    python tools/build_installer.py && python bench/first_paint_frozen.py [--runs 7]
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

ROOT = Path(__file__).resolve().parent.parent
FROZEN_BUDGET_S = 3.0
RATIO_BUDGET = 1.2
FIRST_FLUSH = "of MainWindow"


def first_paint_s(cmd: list[str], timeout: float = 60.0) -> float:
    """Seconds from starting `cmd` (a KiteDesk window) to the first flush of its main window."""
    with tempfile.TemporaryDirectory(prefix="kitedesk-paint-") as home:
        env = dict(os.environ)
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
        env.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
        env["QT_LOGGING_RULES"] = "qt.widgets.painting=true"
        env["QT_MESSAGE_PATTERN"] = "%{category}: %{message}"
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [*cmd, "--home", home], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
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
    p = argparse.ArgumentParser(
        description="Frozen vs pip-installed KiteDesk: start to first window painted."
    )
    p.add_argument("--runs", type=int, default=7, help="counted starts of each (default 7)")
    p.add_argument(
        "--frozen", default=str(ROOT / "dist" / "KiteDesk" / "KiteDesk"), help="the frozen KiteDesk"
    )
    pip_script = Path(sys.executable).with_name("kitedesk")
    p.add_argument(
        "--pip", default=str(pip_script), help="the pip-installed kitedesk (default: beside this Python)"
    )
    args = p.parse_args()
    if not Path(args.frozen).is_file():
        print(f"no frozen app at {args.frozen}: build it with tools/build_installer.py", file=sys.stderr)
        return 1
    apps = {"frozen": [args.frozen], "pip": [args.pip]}
    times: dict[str, list[float]] = {name: [] for name in apps}
    for cmd in apps.values():
        first_paint_s(cmd)  # warm-up: the files come from the page cache from now on
    for _ in range(args.runs):
        for name, cmd in apps.items():
            times[name].append(first_paint_s(cmd))
    med = {name: statistics.median(v) for name, v in times.items()}
    print(f"start to first window painted ({args.runs} starts each, offscreen unless QT_QPA_PLATFORM says)")
    for name, v in times.items():
        print(
            f"  {name:<7} median {med[name]:.2f} s   min {min(v):.2f}   max {max(v):.2f}   ({args.frozen if name == 'frozen' else args.pip})"
        )
    ratio = med["frozen"] / med["pip"]
    ok = med["frozen"] <= FROZEN_BUDGET_S and ratio <= RATIO_BUDGET
    print(
        f"  frozen / pip = {ratio:.2f}   (budget: frozen ≤ {FROZEN_BUDGET_S:g} s and ≤ {RATIO_BUDGET:g} × pip: "
        f"{'ok' if ok else 'OVER BUDGET'})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
