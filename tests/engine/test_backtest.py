"""Backtest sweeps: every combination over every day, the same rows from a process pool as from one process."""

from __future__ import annotations

import csv
import io
import multiprocessing
import threading
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from desktop.cli.backtest import main as backtest
from desktop.cli.replay import main as replay
from desktop.cli.sim_day import sim_day
from desktop.engine import Workspace, available_strategies, example_raw, load_workspace, parse_params
from desktop.engine.backtest import (
    FRAMES_BETWEEN_LOOKS,
    ComboResult,
    DaySource,
    SweepStopped,
    _StoppableFrames,
    combinations,
    combine,
    params_with,
    parse_days,
    parse_sweep,
    run_sweep,
    sweep_problems,
)
from tests.engine.test_replay import WORKSPACE


@pytest.fixture(autouse=True)
def _one_qt_application(qapp):
    """The replay (and `kitedesk run`) make a QCoreApplication when none exists; later tests in this process
    need the QApplication that pytest-qt makes, so it is made first."""
    return qapp


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "ws.toml"
    path.write_text(WORKSPACE)
    return path


def _rows(folder: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((folder / "results.csv").read_text())))


def test_a_sweep_in_processes_gives_the_rows_of_one_process_and_of_plain_replays(
    workspace: Path, tmp_path: Path
) -> None:
    common = [
        str(workspace),
        "--sim",
        "--days",
        "2026-01-05..2026-01-06",
        "--sweep",
        "stop_loss=3,7",
        "--to",
        "10:15",
    ]
    pool, serial = tmp_path / "pool", tmp_path / "serial"
    assert (
        backtest([*common, "--workers", "2", "--out", str(pool)], out=io.StringIO(), err=io.StringIO()) == 0
    )
    assert (
        backtest([*common, "--workers", "1", "--out", str(serial)], out=io.StringIO(), err=io.StringIO()) == 0
    )
    assert (pool / "results.csv").read_bytes() == (serial / "results.csv").read_bytes()
    assert (pool / "equity.csv").read_bytes() == (serial / "equity.csv").read_bytes()
    assert (pool / "equity.png").read_bytes() == (serial / "equity.png").read_bytes()
    rows = _rows(pool)
    assert [r["stop_loss"] for r in rows] == ["3", "7"] and all(r["days"] == "2" for r in rows)
    # the stop_loss=7 row is the sum of two plain replays of the same days with stop_loss = 7
    net = Decimal(0)
    trips = 0
    for day in ("2026-01-05", "2026-01-06"):
        ws7 = tmp_path / "ws7.toml"
        ws7.write_text(WORKSPACE.replace("stop_loss = 5", "stop_loss = 7"))
        out = tmp_path / f"replay-{day}"
        assert (
            replay(["--sim-day", day, str(ws7), "--to", "10:15", "--out", str(out)], out=io.StringIO()) == 0
        )
        [summary] = csv.DictReader(io.StringIO((out / "summary.csv").read_text()))
        net += Decimal(summary["net_pnl"])
        trips += int(summary["round_trips"])
    assert (Decimal(rows[1]["net_pnl"]), int(rows[1]["round_trips"])) == (net, trips)
    assert trips > 0


def test_a_combination_the_workspace_refuses_is_said_before_any_replay(
    workspace: Path, tmp_path: Path
) -> None:
    err = io.StringIO()
    args = [
        str(workspace),
        "--sim",
        "--days",
        "2026-01-05",
        "--sweep",
        "itm_offset=75",
        "--out",
        str(tmp_path / "o"),
    ]
    assert backtest(args, out=io.StringIO(), err=err) == 2
    assert "multiple of" in err.getvalue() and "'Morning'" in err.getvalue()
    assert not (tmp_path / "o").exists()


def test_days_sweeps_and_combinations_parse_as_a_trader_writes_them() -> None:
    assert parse_days("2026-01-02..2026-01-06") == [date(2026, 1, 2), date(2026, 1, 5), date(2026, 1, 6)]
    assert parse_days("2026-01-07,2026-01-05") == [date(2026, 1, 5), date(2026, 1, 7)]
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        parse_days("monday..friday")
    assert parse_sweep("stop_loss=3, 5") == ("stop_loss", ["3", "5"])
    with pytest.raises(ValueError, match="NAME=V1,V2"):
        parse_sweep("stop_loss")
    combos = combinations([("a", ["1", "2"]), ("b", ["x", "y"])])
    assert combos == [{"a": "1", "b": "x"}, {"a": "1", "b": "y"}, {"a": "2", "b": "x"}, {"a": "2", "b": "y"}]


def test_drawdown_and_sharpe_come_from_the_net_equity_over_the_days() -> None:
    header = (
        "symbol,isin,trade_date,exchange,segment,series,trade_type,auction,quantity,price,trade_id,order_id,"
    )
    header += "order_execution_time,expiry_date,broker_id,session_label,mode,order_tag,round_trip_pnl\n"

    def day(d: str, sell: str, pnl: str) -> str:
        buy = f"X,,{d},NSE,FO,,buy,false,1,100,1,1,{d}T09:30:00,,U,A,PAPER,T,\n"
        return header + buy + f"X,,{d},NSE,FO,,sell,false,1,{sell},2,2,{d}T10:00:00,,U,A,PAPER,T,{pnl}\n"

    r = combine(
        {},
        {
            date(2026, 1, 5): day("2026-01-05", "1100", "1000"),
            date(2026, 1, 6): day("2026-01-06", "600", "-400"),
        },
    )
    # four executed orders: 4 x ₹20 brokerage + 18 % GST on it = ₹94.40, plus small turnover fees and STT
    assert r.round_trips == 2 and r.wins == 1 and r.gross == Decimal(600)
    assert Decimal("94.40") < r.charges < Decimal(100)
    peak = max(v for _, v in r.curve or [])
    assert r.max_drawdown == peak - r.curve[-1][1] > Decimal(400)
    assert r.sharpe is not None and r.sharpe > 0


def _stop_after_the_first_row(
    workspace: Path | Workspace, processes: bool
) -> tuple[list[ComboResult], bool, list[int]]:
    stop = threading.Event()
    seen: list[int] = []

    def first_row(index: int, _row: ComboResult) -> None:
        seen.append(index)
        stop.set()

    combos = combinations([("stop_loss", ["3", "5", "7"])])
    source = DaySource(None, 1, None, "11:30", sim_day)
    ref = str(workspace) if isinstance(workspace, Path) else workspace
    rows, complete = run_sweep(
        ref, combos, [date(2026, 1, 5)], source, 1, stop=stop, on_row=first_row, processes=processes
    )
    return rows, complete, seen


def test_a_stopped_sweep_keeps_its_finished_rows_and_the_job_in_progress_ends_at_once(
    workspace: Path,
) -> None:
    inline_rows, inline_complete, inline_seen = _stop_after_the_first_row(workspace, processes=False)
    assert (len(inline_rows), inline_complete, inline_seen) == (1, False, [0])
    # In one worker process the second combination is under way when the stop comes: it ends at its next frames
    # (had it run on to its end, its row would be collected too), and the third never starts.
    ws = load_workspace(workspace, known_strategies=available_strategies(), live_needs_confirmation=False)
    pool_rows, pool_complete, pool_seen = _stop_after_the_first_row(ws, processes=True)
    assert (len(pool_rows), pool_complete, pool_seen) == (1, False, [0])
    assert multiprocessing.active_children() == []
    # the workspace given as an object in processes gives the row its file gives inline
    assert (pool_rows[0].settings, pool_rows[0].net, pool_rows[0].round_trips) == (
        inline_rows[0].settings,
        inline_rows[0].net,
        inline_rows[0].round_trips,
    )


def test_stoppable_frames_stop_between_frames_and_keep_a_generated_days_bind() -> None:
    class Day:
        bound: object = None

        def bind(self, wanted: object) -> None:
            self.bound = wanted

        def __iter__(self):
            return iter(range(10 * FRAMES_BETWEEN_LOOKS))

    stop = threading.Event()
    day = Day()
    frames = _StoppableFrames(day, stop)
    frames.bind("subscriptions")
    assert day.bound == "subscriptions"
    got = []
    with pytest.raises(SweepStopped):
        for frame in frames:
            got.append(frame)
            if frame == 3 * FRAMES_BETWEEN_LOOKS - 1:
                stop.set()
    assert len(got) == 3 * FRAMES_BETWEEN_LOOKS
    assert not hasattr(_StoppableFrames([1, 2], stop), "bind")  # a recording has none: the replay asks


def test_sweep_values_are_checked_as_the_form_words_them() -> None:
    params = parse_params(example_raw())
    assert params_with(params, {"stop_loss": "2.5", "entry_start": "09:30"}).stop_loss == Decimal("2.5")
    problems = sweep_problems(params, combinations([("stop_loss", ["3", "abc"]), ("lots", ["1", "2"])]))
    assert [p.in_form for p in problems] == [
        "Stop loss % must be a percent between 0 and 100 (exclusive) of the entry premium, not 'abc'"
    ]  # once, though two combinations have it
    assert sweep_problems(params, combinations([("stop_loss", ["3", "5"])])) == []


def test_a_sweep_on_a_dask_cluster_gives_the_rows_of_the_process_pool(
    workspace: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`--cluster tcp://HOST:PORT`: the same jobs on a dask.distributed cluster (here a LocalCluster of two
    worker processes on this machine), the same table, curves and picture as the process pool; and the workers
    end cleanly (a Qt application made on a task's thread hung or crashed them at close)."""
    distributed = pytest.importorskip("distributed")  # the [test] extra installs it: CI runs this test
    common = [
        str(workspace),
        "--sim",
        "--days",
        "2026-01-05",
        "--sweep",
        "stop_loss=3,7",
        "--to",
        "10:15",
    ]
    pool, on_cluster = tmp_path / "pool", tmp_path / "cluster"
    assert (
        backtest([*common, "--workers", "2", "--out", str(pool)], out=io.StringIO(), err=io.StringIO()) == 0
    )
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50
    ) as cluster:
        out = io.StringIO()
        args = [*common, "--cluster", cluster.scheduler_address, "--out", str(on_cluster)]
        assert backtest(args, out=out, err=io.StringIO()) == 0
        with distributed.Client(cluster, set_as_default=False) as client:
            ran = client.run(lambda dask_worker: dask_worker.state.executed_count)
    assert sum(ran.values()) == 2 and "2 combination(s)" in out.getvalue()  # 2 combinations x 1 day, there
    ended_badly = [
        r.getMessage()
        for r in caplog.records
        if "killed" in r.getMessage() or "still alive" in r.getMessage()
    ]
    assert not ended_badly, ended_badly
    for name in ("results.csv", "equity.csv", "equity.png"):
        assert (on_cluster / name).read_bytes() == (pool / name).read_bytes(), name
    rows = _rows(on_cluster)
    assert [r["stop_loss"] for r in rows] == ["3", "7"] and all(int(r["round_trips"]) > 0 for r in rows)


def test_a_cluster_that_cannot_be_reached_is_said_and_nothing_is_written(
    workspace: Path, tmp_path: Path
) -> None:
    pytest.importorskip("distributed")
    import socket

    from desktop.engine.backtest import BacktestError, DaySource, run_sweep

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BacktestError, match=f"cannot reach the Dask cluster at tcp://127.0.0.1:{port}"):
        run_sweep(str(workspace), [{}], [date(2026, 1, 5)], DaySource(None, 1), 1,
                  cluster=f"tcp://127.0.0.1:{port}", connect_timeout=1)  # fmt: skip


def test_without_dask_installed_the_cluster_option_says_what_to_install(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` raises ImportError
    err = io.StringIO()
    args = [str(workspace), "--sim", "--days", "2026-01-05", "--cluster", "tcp://127.0.0.1:8786",
            "--out", str(tmp_path / "o")]  # fmt: skip
    assert backtest(args, out=io.StringIO(), err=err) == 2
    assert "pip install 'kitedesk[cluster]'" in err.getvalue()
    assert not (tmp_path / "o").exists()
