"""`kitedesk replay RECORDING...|--sim-day YYYY-MM-DD [--from HH:MM --to HH:MM] WORKSPACE.toml [--speed max|N]
[--out DIR]`: what a workspace's sessions would have done on a recorded (or simulated) day.

Writes into DIR: `orders.csv`, `trades.csv` (the trade export's columns), `summary.csv` (per session: round trips,
win rate, gross and net P&L after Zerodha's charges, engine/charges.py), `equity.csv` and `equity.png` (the
equity curve of each session, the best in orange).
The same recording and workspace give byte-identical files on every run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import TextIO

from desktop.broker.recording import Frame
from desktop.engine.curves_png import draw_curves, write_png
from desktop.engine.replay import (
    Replay,
    ReplayError,
    ReplayOptions,
    ReplayResult,
    market_times,
    orders_csv,
    recorded_day,
)
from desktop.engine.report import equity_csv, summarise, summary_csv, summary_lines
from desktop.engine.strategy.registry import available_strategies
from desktop.engine.workspace import WorkspaceError, load_workspace


def build_parser() -> argparse.ArgumentParser:
    """The `kitedesk replay` command line."""
    p = argparse.ArgumentParser(
        prog="kitedesk replay",
        usage="kitedesk replay (RECORDING... | --sim-day YYYY-MM-DD) WORKSPACE.toml [options]",
        description="Replay a recorded day (or a day of the built-in simulator) through a workspace's sessions, "
        "as PAPER, and write the orders, trades and a summary.",
        epilog="example: kitedesk replay ~/.local/share/KiteDesk/recordings/AB1234/2026-01-05.kdrec ws.toml "
        "--from 09:15 --to 15:30 --out replay-0105",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="RECORDING... WORKSPACE",
        help="the day's recordings (.kdrec, one per account: each account's sessions get its own) and the workspace",
    )
    p.add_argument(
        "--sim-day", type=date.fromisoformat, metavar="YYYY-MM-DD", help="replay a simulator day instead"
    )
    p.add_argument("--seed", type=int, default=1, help="the simulator's seed with --sim-day (default 1)")
    p.add_argument("--from", dest="start", metavar="HH:MM", help="market time to start at")
    p.add_argument("--to", dest="end", metavar="HH:MM", help="market time to end at")
    p.add_argument("--speed", default="max", help="max (default), or N times market speed")
    p.add_argument("--out", default="replay-out", help="folder for the results (default ./replay-out)")
    return p


def main(argv: Sequence[str], out: TextIO | None = None) -> int:
    """The `kitedesk replay` command; returns its exit status."""
    out = sys.stdout if out is None else out  # the stream of this call, not of the import
    args = build_parser().parse_args(list(argv))
    try:
        result = _replay(args, out)
    except (ReplayError, WorkspaceError) as exc:
        problems = getattr(exc, "problems", None) or [str(exc)]
        print("kitedesk replay: " + "\n  ".join(problems), file=sys.stderr)
        return 2
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "orders.csv").write_text(orders_csv(result.orders), encoding="utf-8", newline="")
    (folder / "trades.csv").write_text(result.trades_csv, encoding="utf-8", newline="")
    summaries, curve = summarise(result.trades_csv)
    (folder / "summary.csv").write_text(summary_csv(summaries), encoding="utf-8", newline="")
    (folder / "equity.csv").write_text(equity_csv(curve), encoding="utf-8", newline="")
    labels = [s.label for s in summaries]
    curves = [[(p.time, float(p.net)) for p in curve if p.label == label] for label in labels]
    best = max(range(len(labels)), key=lambda i: summaries[i].net, default=None)
    write_png(folder / "equity.png", draw_curves(curves, best))
    for note in result.notes:
        print(note, file=out)
    for line in summary_lines(summaries) or ["no trades"]:
        print(line, file=out)
    rate = result.ticks / result.seconds if result.seconds else 0.0
    print(
        f"replayed {result.frames} frames ({result.ticks} ticks to the sessions) in {result.seconds:.1f} s "
        f"({rate:,.0f} ticks/s); {len(result.orders)} orders; results in {folder}",
        file=out,
    )
    return 0


def _replay(args: argparse.Namespace, out: TextIO) -> ReplayResult:
    *recordings, workspace_path = args.inputs
    if args.sim_day is not None and recordings:
        raise ReplayError("with --sim-day give the workspace only")
    if args.sim_day is None and not recordings:
        raise ReplayError("give the recording(s) (.kdrec) and the workspace, or --sim-day and the workspace")
    workspace = load_workspace(
        workspace_path, known_strategies=available_strategies(), live_needs_confirmation=False
    )
    speed = _speed(args.speed)
    frames: Iterable[Frame]
    accounts: set[str] = set()
    if args.sim_day is not None:
        from desktop.cli.sim_day import sim_day

        frames, data = sim_day(args.sim_day, workspace, args.seed)
    else:
        frames, data, accounts = recorded_day([Path(r) for r in recordings])
    start, end = market_times(data.day, args.start, args.end)
    replay = Replay(workspace, frames, data, ReplayOptions(start, end, speed), recorded_accounts=accounts)
    return replay.run()


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise ReplayError(f"--speed is max or a number of times market speed above 0, not {text!r}")
    return value
