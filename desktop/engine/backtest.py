"""Backtest sweeps: every combination of some parameters over every day, each day a replay, in parallel processes.

A job is one (combination, day): the workspace's sessions with the combination's settings, replayed over that day
(a recording, or a simulator day) exactly as `kitedesk replay` would. Jobs run in a process pool (one process per
core by default; each replay is deterministic, so the pool gives the same rows as one process). A combination's
row sums its days: round trips, win rate, gross and net P&L after charges, the largest fall of its net equity
from a peak (max drawdown), and the Sharpe ratio of its daily net P&L (mean over standard deviation, times √252).
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import statistics
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from desktop.domain import StrategyParams
from desktop.engine.param_spec import Problem
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


class SweepStopped(Exception):
    """A job given up midway because its sweep was stopped (the window's Cancel): it has no row."""


class StopFlag(Protocol):
    """What a sweep is stopped by: a `threading.Event` (this process) or a `multiprocessing` one (its workers)."""

    def is_set(self) -> bool:
        """True once the sweep is to stop."""
        ...


# How many frames a job replays between two looks at its stop flag: a look at a process-shared flag takes a lock
# (microseconds); a simulated day is ~22,500 frames, so a stopped job ends within a few milliseconds of replay.
FRAMES_BETWEEN_LOOKS = 50


class _StoppableFrames:
    """A day's frames that raise SweepStopped once `stop` is set; a generated day's `bind` is passed through."""

    def __init__(self, frames: Iterable[Any], stop: StopFlag) -> None:
        self._frames = frames
        self._stop = stop
        bind = getattr(frames, "bind", None)
        if bind is not None:  # the replay sends a generated day what its sessions subscribed
            self.bind = bind

    def __iter__(self) -> Iterator[Any]:
        for n, frame in enumerate(self._frames):
            if n % FRAMES_BETWEEN_LOOKS == 0 and self._stop.is_set():
                raise SweepStopped()
            yield frame


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

    def replay(self, workspace: Workspace, day: date, stop: StopFlag | None = None) -> str:
        """The day replayed through `workspace`: its trades (export columns). SweepStopped once `stop` is set."""
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
        if stop is not None:
            frames = _StoppableFrames(frames, stop)
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


def params_with(params: StrategyParams, settings: dict[str, str]) -> StrategyParams:
    """`params` with `settings` (values as typed: "3", "2.5", "09:30"), validated as a workspace file is;
    ParamsError lists every problem."""
    raw = params_to_dict(params, confirm_live=True)
    raw.update({k: _number(v) for k, v in settings.items()})
    return parse_params(raw, confirm_live=True, known_strategies=available_strategies())


def apply_settings(workspace: Workspace, settings: dict[str, str]) -> Workspace:
    """The workspace with `settings` in every session, validated as the workspace file is; BacktestError lists
    every problem."""
    sessions = []
    problems: list[str] = []
    for entry in workspace.sessions:
        try:
            params = params_with(entry.params, settings)
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


def sweep_problems(params: StrategyParams, combos: Sequence[dict[str, str]]) -> list[Problem]:
    """Every distinct problem of `params` with each combination's settings (the window's check before a run: a
    Problem carries the form's wording, `.in_form`)."""
    problems: dict[str, Problem] = {}
    for settings in combos:
        try:
            params_with(params, settings)
        except ParamsError as e:
            for p in e.problems:
                problems.setdefault(str(p), p if isinstance(p, Problem) else Problem("", p))
    return list(problems.values())


# A workspace file's path (the CLI), or the workspace itself (the window's tab).
WorkspaceRef = str | Workspace

# A worker process's stop flag, set by the pool's initializer (one per process, never shared by two sweeps: each
# sweep has a pool of its own).
_worker_stop: StopFlag | None = None


def _start_worker(stop: StopFlag | None, nice: int) -> None:
    global _worker_stop
    _worker_stop = stop
    if nice and hasattr(os, "nice"):
        os.nice(nice)


def run_job(
    workspace: WorkspaceRef,
    settings: dict[str, str],
    day: date,
    source: DaySource,
    stop: StopFlag | None = None,
) -> str:
    """One (combination, day), in a worker process or inline: the trades of that day (export columns);
    SweepStopped when the sweep's stop flag is set (`stop`, else the worker process's)."""
    if isinstance(workspace, str):
        workspace = load_workspace(
            workspace, known_strategies=available_strategies(), live_needs_confirmation=False
        )
    return source.replay(apply_settings(workspace, settings), day, stop if stop is not None else _worker_stop)


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
RowDone = Callable[[int, "ComboResult"], None]  # (index in combos, its row) as soon as its last day finished


def run_sweep(
    workspace: WorkspaceRef,
    combos: list[dict[str, str]],
    days: list[date],
    source: DaySource,
    workers: int,
    progress: Progress | None = None,
    *,
    stop: StopFlag | None = None,
    on_row: RowDone | None = None,
    processes: bool | None = None,
    nice: int = 0,
    cluster: str | None = None,
    connect_timeout: float = CLUSTER_CONNECT_TIMEOUT,
) -> tuple[list[ComboResult], bool]:
    """Runs every (combination, day); returns the rows of the combinations whose every day finished (in the order
    of `combos`) and whether all did (False after Ctrl+C or once `stop` is set). A failed job raises BacktestError
    naming it.

    `processes`: in a pool of `workers` processes (default: when `workers` > 1), else inline. `stop`: looked at
    between frames, so a job in progress ends within milliseconds and no new one starts; the rows finished are
    kept. `nice`: added to the worker processes' niceness (the window's sweep must not slow a live session).
    `cluster`: the jobs go to the Dask cluster at that address instead (a workspace file only: its text is sent to
    the workers, which may not see this machine's files); a cluster that cannot be used raises BacktestError."""
    workspace_text = None
    if cluster is not None:
        if not isinstance(workspace, str):
            raise BacktestError("a sweep on a cluster needs a workspace file")
        workspace_text = Path(workspace).read_text(encoding="utf-8")
    if isinstance(workspace, str):
        workspace = load_workspace(
            workspace, known_strategies=available_strategies(), live_needs_confirmation=False
        )
    for settings in combos:  # refused before any process starts: a typo costs nothing
        apply_settings(workspace, settings)
    jobs = [(i, day) for i in range(len(combos)) for day in days]
    done: dict[int, dict[date, str]] = {i: {} for i in range(len(combos))}
    started = time.monotonic()
    finished = 0

    def record(i: int, day: date, trades: str) -> None:
        nonlocal finished
        done[i][day] = trades
        finished += 1
        if progress:
            progress(finished, len(jobs), time.monotonic() - started)
        if on_row and len(done[i]) == len(days):
            on_row(i, combine(combos[i], done[i]))

    complete = True
    if workspace_text is not None and cluster is not None:
        complete = _run_on_cluster(cluster, connect_timeout, workspace_text, combos, jobs, source, record)
    elif not (workers > 1 if processes is None else processes):
        try:
            for i, day in jobs:
                if stop is not None and stop.is_set():
                    raise SweepStopped()
                job = functools.partial(run_job, workspace, combos[i], day, source, stop)
                record(i, day, _named(combos[i], day, job))
        except (KeyboardInterrupt, SweepStopped):
            complete = False
    else:
        complete = _run_in_pool(workspace, combos, jobs, source, max(1, workers), record, stop, nice)
    rows = [combine(combos[i], done[i]) for i in range(len(combos)) if len(done[i]) == len(days)]
    return rows, complete and len(rows) == len(combos)


def _named(settings: dict[str, str], day: date, job: Callable[[], str]) -> str:
    try:
        return job()
    except (ReplayError, BacktestError, ParamsError) as exc:
        raise BacktestError(f"{_label(settings)} on {day}: {exc}") from None


def _run_in_pool(
    workspace: Workspace,
    combos: list[dict[str, str]],
    jobs: list[tuple[int, date]],
    source: DaySource,
    workers: int,
    record: Callable[[int, date, str], None],
    stop: StopFlag | None,
    nice: int,
) -> bool:
    """The jobs in a process pool; False when stopped (Ctrl+C or `stop`) before every job finished."""
    import multiprocessing

    # spawn: a forked child would inherit the parent's threads' locks half-held.
    context = multiprocessing.get_context("spawn")
    # The workers' own stop flag: `stop` may be a threading.Event, which does not cross into a process.
    halt = context.Event() if stop is not None else None
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_start_worker, initargs=(halt, nice)
    )
    futures: dict[Future[str], tuple[int, date]] = {}
    collected: set[Future[str]] = set()
    complete = True
    try:
        futures = {pool.submit(run_job, workspace, combos[i], day, source): (i, day) for i, day in jobs}
        pending = set(futures)
        while pending:
            # With a stop flag, woken 10 times a second to look at it; without one, only by a finished job.
            ready, pending = wait(
                pending, timeout=0.1 if stop is not None else None, return_when=FIRST_COMPLETED
            )
            for future in sorted(ready, key=futures.__getitem__):  # in submission order: a set has none, and
                # of two that failed together the first combination's error is the one said (it was either)
                collected.add(future)
                i, day = futures[future]
                try:
                    record(i, day, _named(combos[i], day, future.result))
                except SweepStopped:
                    complete = False
            if stop is not None and stop.is_set():
                complete = False
                break
    except KeyboardInterrupt:
        complete = False
    finally:
        if halt is not None:  # stopped, or an error: the jobs in progress end at their next look
            halt.set()
        pool.shutdown(wait=True, cancel_futures=True)
    if stop is not None and stop.is_set():
        # Jobs that finished while the pool was stopping are kept: their rows are whole.
        for future, (i, day) in futures.items():
            if future in collected or future.cancelled() or future.exception() is not None:
                continue
            record(i, day, future.result())
    return complete and len(collected) == len(futures)


def _run_on_cluster(
    address: str,
    connect_timeout: float,
    workspace_text: str,
    combos: list[dict[str, str]],
    jobs: list[tuple[int, date]],
    source: DaySource,
    record: Callable[[int, date, str], None],
) -> bool:
    """The jobs on the Dask cluster at `address`, each result to `record`; False after Ctrl+C."""
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
        for future in distributed.as_completed(list(futures), loop=client.loop):
            i, day = futures[future]
            try:
                trades = future.result()
            except (ReplayError, BacktestError, ParamsError) as exc:
                raise BacktestError(f"{_label(combos[i])} on {day}: {exc}") from None
            except ImportError as exc:
                raise BacktestError(_NOT_ON_WORKERS.format(exc=exc)) from None
            record(i, day, trades)
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
