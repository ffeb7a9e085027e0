"""Replay and backtest figures (issue 24 §4), printed side by side.

    .venv/bin/python bench/replay_bench.py                 # a full simulator day; a 27 x 5 sweep, pool and serial
    .venv/bin/python bench/replay_bench.py --quick         # 09:15-11:15 and a 4 x 2 sweep (a shared machine)

1. Replay throughput: one session trading NIFTY, BANKNIFTY and SENSEX (orders included) over a simulator day whose
   frames are made first (the simulator's cost is not counted), then replayed from memory: ticks/s on one core.
2. A sweep: wall time with one process and with the pool (one process per core), and the speed-up.
The backtrader comparison of the issue (§4, EMA 9/21 on minute bars) is not part of this script yet.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from desktop.cli.sim_day import sim_day  # noqa: E402
from desktop.engine.backtest import DaySource, combinations, parse_days, run_sweep  # noqa: E402
from desktop.engine.replay import Replay, ReplayOptions, market_times  # noqa: E402
from desktop.engine.strategy.registry import available_strategies  # noqa: E402
from desktop.engine.workspace import load_workspace  # noqa: E402

WORKSPACE = """version = 1

[[session]]
profile = "BENCH1"
label = "Bench"
segments = ["NIFTY", "BANKNIFTY", "SENSEX"]
lots = 1
stop_loss = 5
itm_offset = 100
mode = "PAPER"
"""


def throughput(workspace_path: str, day: str, start: str, end: str) -> None:
    from datetime import date

    workspace = load_workspace(workspace_path, known_strategies=available_strategies())
    d = date.fromisoformat(day)
    frames_source, data = sim_day(d, workspace, 1)
    kept = []

    class Keep:  # the frames the first run delivered (with the options it subscribed), for the timed run
        def bind(self, wanted):  # noqa: ANN001, ANN202
            frames_source.bind(wanted)

        def __iter__(self):  # noqa: ANN204
            for f in frames_source:
                kept.append(f)
                yield f

    t_start, t_end = market_times(d, start, end)
    first = Replay(workspace, Keep(), data, ReplayOptions(t_start, t_end)).run()
    second = Replay(workspace, kept, data, ReplayOptions(t_start, t_end)).run()
    assert second.trades_csv == first.trades_csv, "a replay from memory must trade as the first run did"
    print(
        f"replay throughput: {second.ticks:,} ticks in {second.frames:,} frames, {len(second.orders)} orders, "
        f"{second.seconds:.2f} s -> {second.ticks / second.seconds:,.0f} ticks/s "
        f"({second.frames / second.seconds:,.0f} frames/s) on one session x 3 segments (target 100,000 ticks/s)"
    )


def sweep(workspace_path: str, combos: int, days: str, start: str, end: str) -> None:
    values = {
        27: [("stop_loss", ["3", "5", "7"]), ("itm_offset", ["100", "200", "300"]), ("lots", ["1", "2", "3"])]
    }
    grid = values.get(combos) or [("stop_loss", [str(3 + i) for i in range(combos)])]
    combos_ = combinations(grid)
    day_list = parse_days(days)
    source = DaySource(None, 1, start, end, sim_day)
    workers = os.cpu_count() or 1
    t0 = time.perf_counter()
    pooled, _ = run_sweep(workspace_path, combos_, day_list, source, workers)
    pool_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    serial, _ = run_sweep(workspace_path, combos_, day_list, source, 1)
    serial_s = time.perf_counter() - t0
    same = [r.net for r in pooled] == [r.net for r in serial]
    print(
        f"sweep {len(combos_)} combinations x {len(day_list)} days ({start}-{end}): one process {serial_s:.1f} s, "
        f"{workers} processes {pool_s:.1f} s, speed-up {serial_s / pool_s:.2f}x; same rows: {same}"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a shorter day and a smaller sweep")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws.toml"
        ws.write_text(WORKSPACE)
        end = "11:15" if args.quick else "15:30"
        throughput(str(ws), "2026-01-05", "09:15", end)
        if args.quick:
            sweep(str(ws), 4, "2026-01-05..2026-01-06", "09:15", "10:15")
        else:
            sweep(str(ws), 27, "2026-01-05..2026-01-09", "09:15", "15:30")
    return 0


if __name__ == "__main__":
    sys.exit(main())
