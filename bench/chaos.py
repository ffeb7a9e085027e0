"""Chaos soak (issue 16): the simulator and `kitedesk run` (LIVE and PAPER sessions of two accounts) driven through
the trading day while a seeded schedule injects every fault the simulator has, kill -9 and restarts, a second
process on the same home, a locked database and a full disk; the money-safety invariants are checked against the
simulator's books after every step and at the end, after a final recovery restart (the run's last process may
have left a stop that filled later: the next start must count it).

    sudo .venv/bin/python bench/chaos.py --seconds 1800 --seed 1        # a 30-minute soak over one market day
    .venv/bin/python bench/chaos.py --seconds 30 --seed 11 --speed 30 --start 09:20 --fault-gap 3 --verbose
                                                                        # one of CI's seeds (tests/chaos)

Root is needed only for the full-disk fault (the home is mounted on a small tmpfs); without it the run says the
fault was not injected. By default the market speed is chosen so that --seconds covers 09:20 to 15:30.
Prints faults injected, restarts, the cover tolerance (real seconds at the run's speed), naked-seconds outside
and inside fault windows, P&L mismatches, duplicates and memory growth (RSS of the run processes), then every
invariant broken; the exit status is 1 when any was. The run's files (home, workspace, each
run's output) stay in the printed work folder for a post-mortem. The harness is tests/chaos/harness.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from desktop.broker.sim.faults import FAULT_KINDS  # noqa: E402
from tests.chaos.harness import HARNESS_FAULTS, ChaosConfig, report_json, run_chaos  # noqa: E402

DAY_SECONDS = (15 * 60 + 30 - (9 * 60 + 20)) * 60  # 09:20 to the close


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=1800.0, help="wall-clock length of the run")
    p.add_argument("--seed", type=int, default=1, help="seed of the market and of the fault schedule")
    p.add_argument(
        "--speed", type=float, help="market speed (default: the day fits in --seconds, at least 10)"
    )
    p.add_argument("--start", default="09:20", help='market start "HH:MM"')
    p.add_argument("--fault-gap", type=float, default=4.0, help="mean wall seconds between faults")
    p.add_argument(
        "--odd-partial-fills",
        action="store_true",
        help="also partial fills that are not a lot multiple (defect 9; no stop can then be placed)",
    )
    p.add_argument(
        "--faults", help="only these faults, comma-separated (e.g. second_process,kill9); default: all"
    )
    p.add_argument("--no-tmpfs", action="store_true", help="no tmpfs home (and so no full-disk fault)")
    p.add_argument("--json", help="also write the report as JSON to this file")
    p.add_argument("--verbose", action="store_true", help="print each fault and restart as it happens")
    args = p.parse_args(argv)
    known = (*FAULT_KINDS, *HARNESS_FAULTS)
    unknown = [k for k in (args.faults or "").split(",") if k and k not in known]
    if unknown:
        p.error(f"unknown fault {', '.join(unknown)}: choose from {', '.join(known)}")
    speed = args.speed or max(10.0, DAY_SECONDS / args.seconds)
    config = ChaosConfig(
        seed=args.seed,
        seconds=args.seconds,
        speed=speed,
        start=args.start,
        mean_fault_gap_s=args.fault_gap,
        tmpfs_mb=0 if args.no_tmpfs else 96,
        odd_partial_fills=args.odd_partial_fills,
        kinds=tuple(args.faults.split(",")) if args.faults else None,
        quiet=not args.verbose,
    )
    print(f"chaos: seed {args.seed}, {args.seconds:g} s at speed {speed:g} from {args.start}", flush=True)
    report = run_chaos(config)
    print(report.summary())
    if report.rss_mb:
        peak = max(mb for _, mb in report.rss_mb)
        pid, first, last, span = max(report.rss_per_process, key=lambda r: r[3])
        print(
            f"memory growth: the longest-lived run process (pid {pid}) {first:.0f} → {last:.0f} MB "
            f"({last - first:+.0f} MB in {span:.0f} s after its start-up); peak RSS of any run process {peak:.0f} MB"
        )
    print(f"work folder: {report.work_dir}")
    extra = (f" --faults {args.faults}" if args.faults else "") + (
        " --odd-partial-fills" if args.odd_partial_fills else ""
    )
    print(
        f"reproduce: sudo .venv/bin/python bench/chaos.py --seconds {args.seconds:g} --seed {args.seed} "
        f"--speed {speed:g} --start {args.start} --fault-gap {args.fault_gap:g}{extra}"
    )
    if args.json:
        Path(args.json).write_text(report_json(report), encoding="utf-8")
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
