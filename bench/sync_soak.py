"""Central sync soak (issue 19 §3): tests/sync/test_randomized.py for longer, over several seeds.

    .venv/bin/python bench/sync_soak.py --seconds 300 --runs 3 [--seed N]

Each run: three computers (two of UK9394, one of UK1234) trade on the simulator for --seconds while a seeded
schedule kills their `kitedesk sync run` processes (-9) and stops (fast or immediate) and starts a PostgreSQL
cluster of the run's own; then every local row must be central exactly once and every central row of an
account on each of its computers. The default suite runs it for 20 s; this is the long version. Prints each
run's seed and verdict; the exit status is 1 when any run failed (replay it with --seed).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEST = "tests/sync/test_randomized.py"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=300.0, help="how long the computers trade in each run")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seed", type=int, help="the first run's seed (default: random); the next runs add 1")
    args = p.parse_args()
    first = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    failed = []
    for n in range(args.runs):
        seed = first + n
        env = {
            **os.environ,
            "KITEDESK_SYNC_SEED": str(seed),
            "KITEDESK_SYNC_RANDOM_SECONDS": str(args.seconds),
        }
        t = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", TEST, "-q", "-s", "-p", "no:cacheprovider"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
        )
        summary = [
            ln for ln in done.stdout.splitlines() if "kills of a sync" in ln or "randomized sync" in ln
        ]
        verdict = "passed" if done.returncode == 0 else "FAILED"
        print(f"run {n + 1}: seed {seed}, {time.monotonic() - t:.0f} s, {verdict}", *summary, sep="\n  ")
        if done.returncode != 0:
            failed.append(seed)
            print(done.stdout[-4000:])
    print(
        f"{args.runs - len(failed)} of {args.runs} runs passed"
        + (f"; failed seeds {failed}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
