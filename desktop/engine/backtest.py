"""Backtest sweeps: every combination of some parameters over every day, each day a replay, in parallel processes.

A job is one (combination, day): the workspace's sessions with the combination's settings, replayed over that day
(a recording, or a simulator day) exactly as `kitedesk replay` would. Jobs run in a process pool (one process per
core by default; each replay is deterministic, so the pool gives the same rows as one process), or on an existing
Dask cluster (`cluster="tcp://HOST:PORT"`: a desk that outgrows one machine). dask.distributed is an optional
extra (`pip install 'kitedesk[cluster]'`), imported only when a cluster is asked for; its workers need KiteDesk
installed, and recordings at the same path (a shared folder): the workspace itself is sent as text. A combination's
row sums its days: round trips, win rate, gross and net P&L after charges, the largest fall of its net equity
from a peak (max drawdown), and the Sharpe ratio of its daily net P&L (mean over standard deviation, times √252).
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
import tomllib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from desktop.engine.params import ParamsError, params_to_dict, parse_params
from desktop.engine.replay import (
    DayData,
    Replay,
    ReplayError,
    ReplayOptions,
    day_data,
    market_times,
    recorded_frames,
)
from desktop.engine.report import summarise
from desktop.engine.strategy.registry import available_strategies
from desktop.engine.workspace import Workspace, load_workspace, parse_workspace

TRADING_DAYS_A_YEAR = 252
CLUSTER_CONNECT_TIMEOUT = 10.0  # seconds to reach a Dask scheduler before saying it cannot be reached


class BacktestError(ValueError):
    """A sweep that cannot run; the message says why."""


# A simulator day's frames and data for (day, workspace, seed): desktop/cli/sim_day.py's `sim_day`, handed in by
# the composition root (the engine never imports the simulator).
SimDay = Callable[[date, Workspace, int], tuple[Iterable[Any], DayData]]


@dataclass(frozen=True, slots=True)
class DaySource:
    """Where a day's frames come from: a folder of recordings (`<day>.kdrec`) or the simulator (seed), whose
    days `sim_day` makes (a module-level function, so the source pickles into the sweep's processes)."""

    recordings: str | None = None
    sim_seed: int | None = None
    start: str | None = None  # HH:MM
    end: str | None = None
    sim_day: SimDay | None = None

    def replay(self, workspace: Workspace, day: date) -> str:
        """The day replayed through `workspace`: its trades (export columns)."""
        frames: Iterable[Any]
        if self.sim_seed is not None:
            if self.sim_day is None:
                raise BacktestError("simulated days need the simulator's day maker (kitedesk backtest --sim)")
            frames, data = self.sim_day(day, workspace, self.sim_seed)
        else:
            assert self.recordings is not None
            path = Path(self.recordings) / f"{day.isoformat()}.kdrec"
            if not path.is_file():
                raise ReplayError(f"no recording of {day} in {self.recordings}")
            data, frames = day_data(path), recorded_frames(path)
        start, end = market_times(day, self.start, self.end)
        return Replay(workspace, frames, data, ReplayOptions(start, end)).run().trades_csv


def parse_days(text: str) -> list[date]:
    """`2026-01-05..2026-01-09` (weekdays in between) or `2026-01-05,2026-01-07`; ValueError in words."""
    try:
        if ".." in text:
            first, last = (date.fromisoformat(p.strip()) for p in text.split("..", 1))
            if last < first:
                raise ValueError(f"{last} is before {first}")
            days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
            return [d for d in days if d.weekday() < 5]
        return sorted({date.fromisoformat(p.strip()) for p in text.split(",") if p.strip()})
    except ValueError as exc:
        raise ValueError(f"days are YYYY-MM-DD..YYYY-MM-DD or a comma-separated list ({exc})") from None


def parse_sweep(text: str) -> tuple[str, list[str]]:
    """`stop_loss=3,5,7` -> ("stop_loss", ["3", "5", "7"]); ValueError in words."""
    name, sep, values = text.partition("=")
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not name.strip() or not items:
        raise ValueError(f"a sweep is NAME=V1,V2,... such as stop_loss=3,5,7, not {text!r}")
    return name.strip(), items


def combinations(sweeps: Sequence[tuple[str, list[str]]]) -> list[dict[str, str]]:
    """Every combination of the sweeps' values, the last sweep changing fastest."""
    names = [n for n, _ in sweeps]
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(v for _, v in sweeps))]


def apply_settings(workspace: Workspace, settings: dict[str, str]) -> Workspace:
    """The workspace with `settings` in every session, validated as the workspace file is; BacktestError lists
    every problem."""
    sessions = []
    problems: list[str] = []
    for entry in workspace.sessions:
        raw = params_to_dict(entry.params, confirm_live=True)
        raw.update({k: _number(v) for k, v in settings.items()})
        try:
            params = parse_params(raw, confirm_live=True, known_strategies=available_strategies())
        except ParamsError as e:
            problems += [f"{entry.label!r}: {p}" for p in e.problems]
            continue
        sessions.append(replace(entry, params=params))
    if problems:
        raise BacktestError("; ".join(problems))
    return replace(workspace, sessions=tuple(sessions))


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def run_job(workspace_path: str, settings: dict[str, str], day: date, source: DaySource) -> str:
    """One (combination, day) in a worker process: the trades of that day (export columns)."""
    workspace = load_workspace(
        workspace_path, known_strategies=available_strategies(), live_needs_confirmation=False
    )
    return source.replay(apply_settings(workspace, settings), day)


def run_cluster_job(workspace_text: str, settings: dict[str, str], day: date, source: DaySource) -> str:
    """`run_job` on a Dask worker, which may not see this machine's files: the workspace comes as its text."""
    workspace = parse_workspace(
        tomllib.loads(workspace_text), known_strategies=available_strategies(), live_needs_confirmation=False
    )
    return source.replay(apply_settings(workspace, settings), day)


@dataclass(slots=True)
class ComboResult:
    """One combination's row: its settings and totals over the days."""

    settings: dict[str, str]
    days: int = 0
    round_trips: int = 0
    wins: int = 0
    gross: Decimal = Decimal(0)
    charges: Decimal = Decimal(0)
    max_drawdown: Decimal = Decimal(0)
    sharpe: float | None = None
    curve: list[tuple[str, Decimal]] | None = None  # (time, running net P&L) across the days

    @property
    def net(self) -> Decimal:
        """Gross less charges."""
        return self.gross - self.charges

    @property
    def win_rate(self) -> Decimal:
        """Winning round trips in percent."""
        return (
            (Decimal(100) * self.wins / self.round_trips).quantize(Decimal("0.1"))
            if self.round_trips
            else Decimal(0)
        )


def combine(settings: dict[str, str], days: dict[date, str]) -> ComboResult:
    """A combination's row from its days' trades."""
    result = ComboResult(settings, days=len(days), curve=[])
    assert result.curve is not None
    daily: list[float] = []
    running = peak = Decimal(0)
    for day in sorted(days):
        summaries, curve = summarise(days[day])
        day_net = sum((s.net for s in summaries), Decimal(0))
        daily.append(float(day_net))
        for s in summaries:
            result.round_trips += s.round_trips
            result.wins += s.wins
            result.gross += s.gross
            result.charges += s.charges.total
        # Sessions' running P&L of the day, summed at each fill, on top of the days before.
        latest: dict[str, Decimal] = {}
        for point in curve:
            latest[point.label] = point.net
            value = running + sum(latest.values(), Decimal(0))
            result.curve.append((point.time, value))
            peak = max(peak, value)
            result.max_drawdown = max(result.max_drawdown, peak - value)
        running += day_net
    if len(daily) >= 2 and statistics.stdev(daily) > 0:
        result.sharpe = statistics.mean(daily) / statistics.stdev(daily) * math.sqrt(TRADING_DAYS_A_YEAR)
    return result


Progress = Callable[[int, int, float], None]  # (jobs done, jobs in all, seconds so far)


def run_sweep(
    workspace_path: str,
    combos: list[dict[str, str]],
    days: list[date],
    source: DaySource,
    workers: int,
    progress: Progress | None = None,
    cluster: str | None = None,
    connect_timeout: float = CLUSTER_CONNECT_TIMEOUT,
) -> tuple[list[ComboResult], bool]:
    """Runs every (combination, day), in `workers` processes or on the Dask cluster at `cluster`; returns the rows
    of the combinations whose every day finished (in the order of `combos`) and whether all did (False after
    Ctrl+C). A failed job raises BacktestError naming it, as does a cluster that cannot be used."""
    workspace = load_workspace(
        workspace_path, known_strategies=available_strategies(), live_needs_confirmation=False
    )
    for settings in combos:  # refused before any process starts: a typo costs nothing
        apply_settings(workspace, settings)
    jobs = [(i, day) for i in range(len(combos)) for day in days]
    done: dict[int, dict[date, str]] = {i: {} for i in range(len(combos))}
    started = time.monotonic()
    complete = True
    if cluster is not None:
        text = Path(workspace_path).read_text(encoding="utf-8")  # readable: load_workspace read it above
        complete = _run_on_cluster(
            cluster, connect_timeout, text, combos, jobs, source, done, progress, started
        )
    elif workers <= 1:
        try:
            for n, (i, day) in enumerate(jobs, 1):
                done[i][day] = run_job(workspace_path, combos[i], day, source)
                if progress:
                    progress(n, len(jobs), time.monotonic() - started)
        except KeyboardInterrupt:
            complete = False
    else:
        import multiprocessing

        # spawn: a forked child would inherit the parent's threads' locks half-held.
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        futures: dict[Future[str], tuple[int, date]] = {}
        try:
            futures = {
                pool.submit(run_job, workspace_path, combos[i], day, source): (i, day) for i, day in jobs
            }
            for n, future in enumerate(as_completed(futures), 1):
                i, day = futures[future]
                try:
                    done[i][day] = future.result()
                except (ReplayError, BacktestError, ParamsError) as exc:
                    raise BacktestError(f"{_label(combos[i])} on {day}: {exc}") from None
                if progress:
                    progress(n, len(jobs), time.monotonic() - started)
        except KeyboardInterrupt:
            complete = False
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    rows = [combine(combos[i], done[i]) for i in range(len(combos)) if len(done[i]) == len(days)]
    return rows, complete and len(rows) == len(combos)


def _run_on_cluster(
    address: str,
    connect_timeout: float,
    workspace_text: str,
    combos: list[dict[str, str]],
    jobs: list[tuple[int, date]],
    source: DaySource,
    done: dict[int, dict[date, str]],
    progress: Progress | None,
    started: float,
) -> bool:
    """The jobs on the Dask cluster at `address`, results into `done`; False after Ctrl+C."""
    try:
        import distributed
    except ImportError:
        raise BacktestError(
            "--cluster needs dask.distributed, which is not installed: pip install 'kitedesk[cluster]' "
            "(or pip install distributed) on this machine and on the cluster's workers"
        ) from None
    try:
        client = distributed.Client(address, timeout=connect_timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise BacktestError(
            f"cannot reach the Dask cluster at {address} (within {connect_timeout:g} s): {exc}. "
            "Check the scheduler's address and port, and that it is running"
        ) from None
    futures: dict[Any, tuple[int, date]] = {}
    try:
        try:
            client.register_plugin(_qt_on_main_thread(distributed), name="kitedesk-qt-application")
        except ImportError as exc:
            raise BacktestError(_NOT_ON_WORKERS.format(exc=exc)) from None
        for i, day in jobs:
            future = client.submit(run_cluster_job, workspace_text, combos[i], day, source, pure=False)
            futures[future] = (i, day)
        for n, future in enumerate(distributed.as_completed(list(futures), loop=client.loop), 1):
            i, day = futures[future]
            try:
                done[i][day] = future.result()
            except (ReplayError, BacktestError, ParamsError) as exc:
                raise BacktestError(f"{_label(combos[i])} on {day}: {exc}") from None
            except ImportError as exc:
                raise BacktestError(_NOT_ON_WORKERS.format(exc=exc)) from None
            if progress:
                progress(n, len(jobs), time.monotonic() - started)
        return True
    except KeyboardInterrupt:
        return False
    finally:
        client.cancel(list(futures))
        client.close()


_NOT_ON_WORKERS = (
    "the cluster's workers cannot run KiteDesk's jobs ({exc}): install this KiteDesk, with the [cluster] extra, "
    "on every worker"
)


def _qt_on_main_thread(distributed: Any) -> Any:
    """A worker plugin that makes the worker process's QCoreApplication on its main thread, where the worker's
    own loop calls `setup`. A replay's agents are QThreads and a replay makes the application when there is
    none, but a Dask task runs on a thread of the worker's pool: an application made there took the worker
    process down (SIGSEGV) when the worker closed."""

    class QtApplication(distributed.WorkerPlugin):  # type: ignore[misc, name-defined]
        def setup(self, worker: Any) -> None:
            from PySide6.QtCore import QCoreApplication

            QCoreApplication.instance() or QCoreApplication([])

    return QtApplication()


def _label(settings: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in settings.items()) or "the workspace as it is"


def results_csv(rows: list[ComboResult]) -> str:
    """One row per combination."""
    import csv
    import io

    names = list(rows[0].settings) if rows else []
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow([*names, "days", "round_trips", "win_rate_pct", "gross_pnl", "charges", "net_pnl", "max_drawdown",
                "sharpe_daily"])  # fmt: skip
    for r in rows:
        sharpe = "" if r.sharpe is None else f"{r.sharpe:.2f}"
        w.writerow([*(r.settings[n] for n in names), r.days, r.round_trips, r.win_rate, r.gross, r.charges, r.net,
                    r.max_drawdown, sharpe])  # fmt: skip
    return out.getvalue()


def curves_csv(rows: list[ComboResult]) -> str:
    """Every combination's equity curve: combination, time, running net P&L."""
    import csv
    import io

    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["combination", "time", "net_pnl"])
    for r in rows:
        for t, value in r.curve or []:
            w.writerow([_label(r.settings), t, value])
    return out.getvalue()


def eta_line(done: int, total: int, seconds: float, width: int = 30) -> str:
    """`[=====     ] 12/45 jobs, 0:21 elapsed, ETA 0:57`."""
    filled = int(width * done / total) if total else width
    eta = seconds / done * (total - done) if done else 0.0
    return (
        f"[{'=' * filled}{' ' * (width - filled)}] {done}/{total} jobs, "
        f"{timedelta(seconds=int(seconds))} elapsed, ETA {timedelta(seconds=int(eta))}"
    )
