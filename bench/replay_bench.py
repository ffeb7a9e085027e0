"""Replay and backtest figures (issue 24 §4), printed side by side.

    .venv/bin/python bench/replay_bench.py                 # a full simulator day; a 27 x 5 sweep of whole days
    .venv/bin/python bench/replay_bench.py --quick         # 09:15-11:15 and a 4 x 2 sweep (a shared machine)
    .venv/bin/python bench/replay_bench.py --only sweep --repeat 3   # one figure, measured three times
    .venv/bin/python bench/replay_bench.py --only sweep --sweep-to 10:15   # the sweep on 09:15-10:15 windows

1. Replay throughput: one session trading NIFTY, BANKNIFTY and SENSEX (orders included) over a simulator day whose
   frames are made first (the simulator's cost is not counted), then replayed from memory: ticks/s on one core.
2. The EMA 9/21 cross on the same minute bars (simulator days' NIFTY, written out as an OHLC CSV), market orders
   and the same stop rule, run by KiteDesk's strategy over bars (desktop/engine/bar_backtest.py) and by backtrader:
   bars/s of each, the ratio, and the two lists of trades side by side (they must agree).
3. A sweep: wall time with one process and with the pool (one process per core), and the speed-up. Each process
   makes a simulator day once and its later jobs of that day replay the packets it made (desktop/cli/sim_day.py):
   the model costs about 30 us a packet, three quarters of a whole-day job when every job made its day again
   (a 27 x 5 whole-day sweep took about 20 minutes in one process). Each timing starts with no day made.

backtrader is the bench's peer, never an app dependency: `pip install -e '.[bench]'` or
`pip install backtrader==1.9.78.123`; without it the comparison says so and the rest runs.
Figures are wall time and, beside them, the process's CPU time: on a shared machine the wall clock also
counts the other programs' turns.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from desktop.broker.sim.market import Market  # noqa: E402
from desktop.cli.sim_day import forget_days, sim_day  # noqa: E402
from desktop.domain import MARKET_CLOSE, MARKET_OPEN, Segment, StrategyParams  # noqa: E402
from desktop.engine.backtest import DaySource, combinations, parse_days, results_csv, run_sweep  # noqa: E402
from desktop.engine.bar_backtest import BarTrade, read_ohlc_csv, run_bars, write_ohlc_csv  # noqa: E402
from desktop.engine.bars import candle_to_bar  # noqa: E402
from desktop.engine.replay import Replay, ReplayOptions, market_times  # noqa: E402
from desktop.engine.strategy.exits import stop_level  # noqa: E402
from desktop.engine.strategy.itm_momentum import ItmMomentumStrategy  # noqa: E402
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


def throughput(workspace_path: str, day: str, start: str, end: str, repeat: int = 1) -> None:
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
    walls, cpus = [], []
    for _ in range(repeat):
        load = os.getloadavg()[0]
        cpu = time.process_time()
        second = Replay(workspace, kept, data, ReplayOptions(t_start, t_end)).run()
        cpu = time.process_time() - cpu
        assert second.trades_csv == first.trades_csv, "a replay from memory must trade as the first run did"
        walls.append(second.ticks / second.seconds)
        cpus.append(second.ticks / cpu)
        print(
            f"replay throughput: {second.ticks:,} ticks in {second.frames:,} frames, {len(second.orders)} orders, "
            f"{second.seconds:.2f} s -> {second.ticks / second.seconds:,.0f} ticks/s "
            f"({second.frames / second.seconds:,.0f} frames/s; {cpu:.2f} CPU s -> {second.ticks / cpu:,.0f} ticks "
            f"per CPU second; load average {load:.1f} before) on one session x 3 segments (target 100,000 ticks/s)"
        )
    if repeat > 1:
        print(
            f"replay throughput over {repeat} runs: {min(walls):,.0f}-{max(walls):,.0f} ticks/s, "
            f"{min(cpus):,.0f}-{max(cpus):,.0f} ticks per CPU second"
        )


# The EMA cross on bars, KiteDesk against backtrader ---------------------------------------------------------

BAR_PARAMS = StrategyParams(segments=(Segment.NIFTY,), lots=1, stop_loss=Decimal("0.1"), itm_offset=0)


def write_sim_bars(path: Path, days: list[date], seed: int = 1) -> int:
    """The simulator's NIFTY minute bars of `days`, as an OHLC CSV; how many."""
    token = Segment.NIFTY.spec.index_token
    bars = []
    for day in days:
        market = Market(seed, day)
        rows = market.candles(
            token, "minute", datetime.combine(day, MARKET_OPEN), datetime.combine(day, MARKET_CLOSE)
        )
        bars += [candle_to_bar(r) for r in rows]
    write_ohlc_csv(path, bars)
    return len(bars)


def kitedesk_bars(csv_path: Path) -> list[BarTrade]:
    """KiteDesk: the default strategy (EMA 9/21 cross, its stop rule) over the CSV's bars."""
    return run_bars(ItmMomentumStrategy(BAR_PARAMS, Segment.NIFTY), read_ohlc_csv(csv_path))


def backtrader_bars(csv_path: Path) -> list[BarTrade]:
    """backtrader: the same rules with its own EMA, CrossOver, broker, market and stop orders."""
    import backtrader as bt

    p = BAR_PARAMS
    trades: list[BarTrade] = []

    def bar_start(data: object) -> datetime:
        return bt.num2date(data.datetime[0])  # type: ignore[attr-defined]

    class EmaCross(bt.Strategy):  # type: ignore[misc]
        def __init__(self) -> None:
            self.cross = bt.ind.CrossOver(bt.ind.EMA(period=p.fast_ema), bt.ind.EMA(period=p.slow_ema))
            self.entry: tuple[datetime, Decimal] | None = None
            self.stop_order = self.exit_order = self.entry_order = None
            self.exit_reason = ""

        def notify_order(self, order: bt.Order) -> None:
            if order.status != order.Completed:
                return
            price = Decimal(repr(order.executed.price)).quantize(Decimal("0.01"))
            if order.isbuy():
                self.entry_order = None
                self.entry = (bar_start(self.data), price)
                stop = stop_level(price, p.stop_loss)  # the same rule: stop-loss %, rounded up to the tick
                self.stop_order = self.sell(exectype=bt.Order.Stop, price=float(stop))
            else:
                stop = self.stop_order
                reason = (
                    "stop_loss" if stop is not None and order.ref == stop.ref else self.exit_reason
                )  # a copy is notified
                assert self.entry is not None
                trades.append(BarTrade(self.entry[0], self.entry[1], bar_start(self.data), price, reason))
                self.entry, self.stop_order, self.exit_order = None, None, None

        def next(self) -> None:
            closed_at = bar_start(self.data) + timedelta(minutes=1)
            if self.entry is not None and self.exit_order is None:
                reason = (
                    "square_off"
                    if closed_at.time() >= p.square_off
                    else "signal_exit"
                    if self.cross[0] < 0
                    else ""
                )
                if reason:
                    if self.stop_order is not None:
                        self.cancel(self.stop_order)
                    self.exit_reason, self.exit_order = reason, self.close()
            elif (
                self.entry is None
                and self.entry_order is None
                and self.cross[0] > 0
                and p.entry_start <= closed_at.time() <= p.entry_end
            ):
                self.entry_order = self.buy()

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.GenericCSVData(
        dataname=str(csv_path), dtformat="%Y-%m-%d %H:%M:%S", timeframe=bt.TimeFrame.Minutes, compression=1,
        datetime=0, open=1, high=2, low=3, close=4, volume=5, openinterest=-1,
    ))  # fmt: skip
    cerebro.addstrategy(EmaCross)
    cerebro.broker.setcash(1e9)  # one index unit costs more than its default cash
    cerebro.broker.set_checksubmit(
        False
    )  # orders rest at once: a stop placed and cancelled in one bar is gone
    [strategy] = cerebro.run()
    if strategy.entry is not None:  # as run_bars: an open position is closed at the last close
        last = Decimal(repr(strategy.data.close[0])).quantize(Decimal("0.01"))
        trades.append(
            BarTrade(strategy.entry[0], strategy.entry[1], bar_start(strategy.data), last, "end_of_data")
        )
    return trades


def compare_with_backtrader(days: list[date], repeat: int) -> None:
    try:
        import backtrader  # noqa: F401
    except ImportError:
        print("backtrader comparison: skipped, backtrader is not installed (pip install -e '.[bench]')")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "nifty-minute.csv"
        n = write_sim_bars(path, days)
        timings = {}
        results = {}
        for name, run in (("KiteDesk", kitedesk_bars), ("backtrader", backtrader_bars)):
            best = None
            for _ in range(repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                results[name] = run(path)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                best = (wall, cpu) if best is None or wall < best[0] else best
            timings[name] = best
    ours, theirs = results["KiteDesk"], results["backtrader"]
    print(f"EMA {BAR_PARAMS.fast_ema}/{BAR_PARAMS.slow_ema} cross on {n:,} NIFTY minute bars ({len(days)} sim days, "
          f"stop {BAR_PARAMS.stop_loss} %, market orders at the next open; best of {repeat}):")  # fmt: skip
    for name, (wall, cpu) in timings.items():
        print(f"  {name:<10} {n / wall:>12,.0f} bars/s ({wall * 1000:.1f} ms wall, {cpu * 1000:.1f} ms CPU), "
              f"{len(results[name])} round trips")  # fmt: skip
    ratio = timings["backtrader"][0] / timings["KiteDesk"][0]
    print(f"  ratio: KiteDesk {ratio:.1f} x backtrader (target >= 10 x)")
    print(f"  {'entry bar':<11} {'at':>9} -> {'exit bar':<11} {'at':>9} {'reason':<15} | backtrader")
    for i in range(max(len(ours), len(theirs))):
        a = ours[i] if i < len(ours) else None
        b = theirs[i] if i < len(theirs) else None

        def cells(t: BarTrade | None) -> str:
            if t is None:
                return "(none)"
            return f"{t.entry_bar:%m-%d %H:%M} {t.entry_price:>9} -> {t.exit_bar:%m-%d %H:%M} {t.exit_price:>9} {t.reason:<15}"

        same = a is not None and b is not None and _same_trade(a, b)
        print(f"  {cells(a)} | {'same' if same else 'DIFFERENT: ' + cells(b)}")
    agree = len(ours) == len(theirs) and all(_same_trade(a, b) for a, b in zip(ours, theirs, strict=True))
    print(f"  trades agree (entries and exits, bar and price): {agree}")


def _same_trade(a: BarTrade, b: BarTrade) -> bool:
    return (a.entry_bar, a.entry_price, a.exit_bar, a.exit_price, a.reason) == (
        b.entry_bar, b.entry_price, b.exit_bar, b.exit_price, b.reason
    )  # fmt: skip


def sweep(workspace_path: str, combos: int, days: str, start: str, end: str, repeat: int = 1) -> None:
    values = {
        27: [("stop_loss", ["3", "5", "7"]), ("itm_offset", ["100", "200", "300"]), ("lots", ["1", "2", "3"])]
    }
    grid = values.get(combos) or [("stop_loss", [str(3 + i) for i in range(combos)])]
    combos_ = combinations(grid)
    day_list = parse_days(days)
    source = DaySource(None, 1, start, end, sim_day)
    workers = os.cpu_count() or 1

    def timed(n: int) -> tuple[str, float, float, float]:
        """The table, wall seconds, CPU seconds (this process and its children) and the load average before."""
        forget_days()  # from scratch: no day made by an earlier step of this process (one process runs inline)
        load = os.getloadavg()[0]
        t0, c0 = time.perf_counter(), _cpu()
        rows, _ = run_sweep(workspace_path, combos_, day_list, source, n)
        forget_days()
        return results_csv(rows), time.perf_counter() - t0, _cpu() - c0, load

    jobs = len(combos_) * len(day_list)
    pools, serials, speedups = [], [], []
    for _ in range(repeat):
        pooled, pool_s, pool_cpu, pool_load = timed(workers)
        serial, serial_s, serial_cpu, serial_load = timed(1)
        pools.append(pool_s)
        serials.append(serial_s)
        speedups.append(serial_s / pool_s)
        print(
            f"sweep {len(combos_)} combinations x {len(day_list)} days ({start}-{end} each, {jobs} replays of a "
            f"simulator day, each day made once per process): one process {serial_s:.1f} s "
            f"({serial_s / jobs:.2f} s a job; {serial_cpu:.0f} CPU s; load average {serial_load:.1f} before), "
            f"{workers} processes {pool_s:.1f} s ({pool_cpu:.0f} CPU s; load average {pool_load:.1f} before), "
            f"speed-up {serial_s / pool_s:.2f}x on {os.cpu_count()} cores; same table: {pooled == serial}",
            flush=True,
        )
    if repeat > 1:
        print(
            f"sweep over {repeat} runs: one process {min(serials):.1f}-{max(serials):.1f} s, {workers} processes "
            f"{min(pools):.1f}-{max(pools):.1f} s, speed-up {min(speedups):.2f}-{max(speedups):.2f}x"
        )


def _cpu() -> float:
    """CPU seconds of this process and of its children that ended (the pool's workers, once it shut down)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a shorter day and a smaller sweep")
    p.add_argument(
        "--sweep-to",
        default="15:30",
        metavar="HH:MM",
        help="the sweep's days end at this market time (default 15:30, whole days: 7-9 minutes each way, pool "
        "and one process, about 6 and 8 CPU minutes, on a shared 2-core machine; 10:15 for one-hour windows)",
    )
    p.add_argument(
        "--only", choices=("throughput", "bars", "sweep"), help="one figure only (default: all three)"
    )
    p.add_argument(
        "--repeat", type=int, default=1, help="measure the throughput and the sweep this many times"
    )
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws.toml"
        ws.write_text(WORKSPACE)
        end = "11:15" if args.quick else "15:30"
        if args.only in (None, "throughput"):
            throughput(str(ws), "2026-01-05", "09:15", end, args.repeat)
        if args.only in (None, "bars"):
            compare_with_backtrader(
                parse_days("2026-01-05..2026-01-06" if args.quick else "2026-01-05..2026-01-09"), 3
            )
        if args.only in (None, "sweep"):
            if args.quick:
                sweep(str(ws), 4, "2026-01-05..2026-01-06", "09:15", "10:15", args.repeat)
            else:
                sweep(str(ws), 27, "2026-01-05..2026-01-09", "09:15", args.sweep_to, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
