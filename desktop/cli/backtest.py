"""`kitedesk backtest WORKSPACE.toml --days 2026-01-05..2026-01-09 --sweep stop_loss=3,5,7 --sweep itm_offset=50,100,150
(--sim | --recordings DIR) [--workers N | --cluster tcp://HOST:PORT] [--from HH:MM --to HH:MM] [--out DIR]`:
parameter sweeps over days, in processes on this machine or on an existing Dask cluster.

Writes `results.csv` (one row per combination: round trips, win rate, gross, charges and net P&L, max drawdown,
Sharpe of daily P&L), `equity.csv` (every combination's equity curve) and `equity.png` (the curves, the best in
orange) into DIR. A progress bar with an ETA runs
on stderr; Ctrl+C stops cleanly and writes the rows of the combinations already finished.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from desktop.cli.sim_day import sim_day
from desktop.domain import format_rupees
from desktop.engine.backtest import (
    BacktestError,
    DaySource,
    combinations,
    curves_csv,
    eta_line,
    parse_days,
    parse_sweep,
    results_csv,
    run_sweep,
)
from desktop.engine.curves_png import draw_curves, write_png
from desktop.engine.replay import ReplayError
from desktop.engine.workspace import WorkspaceError


def build_parser() -> argparse.ArgumentParser:
    """The `kitedesk backtest` command line."""
    p = argparse.ArgumentParser(
        prog="kitedesk backtest",
        description="Replay a workspace over several days for every combination of the swept parameters.",
        epilog="example: kitedesk backtest ws.toml --sim --days 2026-01-05..2026-01-09 --sweep stop_loss=3,5,7 "
        "--sweep itm_offset=50,100,150",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("workspace", help="the workspace file (TOML); every session gets each combination")
    p.add_argument("--days", required=True, type=_days, help="YYYY-MM-DD..YYYY-MM-DD (weekdays) or a list")
    p.add_argument(
        "--sweep", action="append", default=[], type=_sweep, metavar="NAME=V1,V2", help="a parameter's values"
    )
    days = p.add_mutually_exclusive_group(required=True)
    days.add_argument("--sim", action="store_true", help="replay the built-in simulator's days")
    days.add_argument(
        "--recordings", metavar="DIR", help="a folder of recordings (<day>.kdrec, as kitedesk record writes)"
    )
    p.add_argument("--seed", type=int, default=1, help="the simulator's seed with --sim (default 1)")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="processes (default: one per core)"
    )
    where.add_argument(
        "--cluster",
        metavar="tcp://HOST:PORT",
        help="run the jobs on this Dask scheduler instead (needs pip install 'kitedesk[cluster]' here and on the "
        "workers; --recordings must be at the same path on the workers)",
    )
    p.add_argument("--from", dest="start", metavar="HH:MM", help="market time each day starts at")
    p.add_argument("--to", dest="end", metavar="HH:MM", help="market time each day ends at")
    p.add_argument("--out", default="backtest-out", help="folder for the results (default ./backtest-out)")
    return p


def _days(text: str) -> list:
    try:
        return parse_days(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _sweep(text: str) -> tuple[str, list[str]]:
    try:
        return parse_sweep(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Sequence[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    """The `kitedesk backtest` command; returns its exit status."""
    out = sys.stdout if out is None else out  # the stream of this call, not of the import
    err = sys.stderr if err is None else err
    args = build_parser().parse_args(list(argv))
    if not args.days:
        print("kitedesk backtest: no weekday in --days", file=err)
        return 2
    combos = combinations(args.sweep)
    source = DaySource(args.recordings, args.seed if args.sim else None, args.start, args.end, sim_day)

    def progress(done: int, total: int, seconds: float) -> None:
        print("\r" + eta_line(done, total, seconds), end="", file=err, flush=True)

    try:
        rows, complete = run_sweep(
            args.workspace, combos, args.days, source, max(1, args.workers), progress, cluster=args.cluster
        )
    except (BacktestError, ReplayError, WorkspaceError) as exc:
        problems = getattr(exc, "problems", None) or [str(exc)]
        print("\nkitedesk backtest: " + "\n  ".join(problems), file=err)
        return 2
    print(file=err)
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.csv").write_text(results_csv(rows), encoding="utf-8", newline="")
    (folder / "equity.csv").write_text(curves_csv(rows), encoding="utf-8", newline="")
    best = max(rows, key=lambda r: r.net, default=None)
    curves = [[(t, float(v)) for t, v in r.curve or []] for r in rows]
    write_png(folder / "equity.png", draw_curves(curves, rows.index(best) if best is not None else None))
    if best is not None:
        settings = " ".join(f"{k}={v}" for k, v in best.settings.items()) or "the workspace as it is"
        print(f"best net P&L: {settings}: {format_rupees(best.net)} over {best.days} day(s)", file=out)
    what = "" if complete else f" (stopped: {len(rows)} of {len(combos)} combinations finished)"
    print(f"{len(rows)} combination(s) × {len(args.days)} day(s) in {folder}{what}", file=out)
    return 0 if complete else 130
