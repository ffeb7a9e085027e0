"""Replay: a day recorded while the demo traded PAPER replays to the same trades, and identically every time."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from desktop.cli.main import main as kitedesk
from desktop.cli.replay import main as replay
from desktop.engine.replay import ReplayError, market_times
from tests.simkit import demo_start

WORKSPACE = """version = 1

[[session]]
profile = "UK9394"
label = "Morning"
segments = ["NIFTY", "BANKNIFTY"]
lots = 1
stop_loss = 5
itm_offset = 100
mode = "PAPER"
on_stop = "square_off"
"""


@pytest.fixture(autouse=True)
def _one_qt_application(qapp):
    """The replay (and `kitedesk run`) make a QCoreApplication when none exists; later tests in this process
    need the QApplication that pytest-qt makes, so it is made first."""
    return qapp


def _round_trips(text: str) -> list[tuple[str, str, str, str]]:
    """(symbol, side, quantity, minute) of each trade of an export-format CSV, sorted (two segments may trade in
    the same second: the export orders those by their random ids)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    return sorted((r["symbol"], r["trade_type"], r["quantity"], r["order_execution_time"][:16]) for r in rows)


@pytest.fixture(scope="module")
def demo_day(tmp_path_factory: pytest.TempPathFactory, qapp) -> tuple[Path, Path, str]:
    """A short demo morning traded PAPER by `kitedesk run --demo` (recorded, as the demo always is)."""
    root = tmp_path_factory.mktemp("demo-day")
    workspace = root / "ws.toml"
    workspace.write_text(WORKSPACE)
    home = root / "home"
    code = kitedesk(["run", str(workspace), "--demo", "--speed", "120", "--start", demo_start("09:20"), "--for", "15",
                     "--every", "30", "--home", str(home)])  # fmt: skip
    assert code == 0
    live = root / "live.csv"
    assert (
        kitedesk(["export", "--broker", "UK9394", "--mode", "PAPER", "--out", str(live), "--home", str(home)])
        == 0
    )
    [recording] = (home / "recordings" / "UK9394").glob("*.kdrec")
    return recording, workspace, live.read_text()


def test_a_recorded_demo_day_replays_to_the_trades_it_made_and_identically_twice(
    demo_day, tmp_path: Path
) -> None:
    recording, workspace, live = demo_day
    assert len(_round_trips(live)) >= 2, "the demo morning made no trade: nothing to compare"
    out1, out2 = tmp_path / "one", tmp_path / "two"
    assert replay([str(recording), str(workspace), "--out", str(out1)], out=io.StringIO()) == 0
    assert replay([str(recording), str(workspace), "--out", str(out2)], out=io.StringIO()) == 0
    replayed = (out1 / "trades.csv").read_text()
    assert _round_trips(replayed) == _round_trips(live)
    for name in ("orders.csv", "trades.csv", "summary.csv", "equity.csv", "equity.png"):
        assert (out1 / name).read_bytes() == (out2 / name).read_bytes(), name
    summary = list(csv.DictReader(io.StringIO((out1 / "summary.csv").read_text())))
    assert [r["session_label"] for r in summary] == ["Morning"]
    assert int(summary[0]["round_trips"]) == sum(1 for t in _round_trips(live) if t[1] == "sell")
    assert Decimal(summary[0]["net_pnl"]) < Decimal(summary[0]["gross_pnl"])  # charges paid


def test_a_window_of_the_day_replays_only_its_frames(demo_day, tmp_path: Path) -> None:
    recording, workspace, live = demo_day
    first = min(t[3] for t in _round_trips(live))
    hh, mm = int(first[11:13]), int(first[14:16]) + 1  # a minute after the first entry
    end = f"{hh + mm // 60:02d}:{mm % 60:02d}"
    out = tmp_path / "window"
    assert replay([str(recording), str(workspace), "--to", end, "--out", str(out)], out=io.StringIO()) == 0
    trips = _round_trips((out / "trades.csv").read_text())
    assert 0 < len(trips) < len(_round_trips(live))
    assert all(t[3][11:] <= end for t in trips)  # squared off at the window's end at the latest


def test_bad_input_is_refused_in_words(demo_day, tmp_path: Path, capsys) -> None:
    recording, workspace, _ = demo_day
    assert replay([str(recording), str(workspace), "--speed", "fast"]) == 2
    assert "--speed is max or a number" in capsys.readouterr().err
    assert replay([str(tmp_path / "nope.kdrec"), str(workspace)]) == 2
    assert "does not exist" in capsys.readouterr().err
    lonely = tmp_path / "2026-01-05.kdrec"
    lonely.write_bytes(recording.read_bytes())
    assert replay([str(lonely), str(workspace)]) == 2
    assert "2026-01-05.instruments.csv is missing" in capsys.readouterr().err
    with pytest.raises(ReplayError, match="HH:MM"):
        market_times(date(2026, 1, 5), "9h30", None)


def test_a_simulator_day_replays_without_a_recording_and_identically_twice(tmp_path: Path) -> None:
    workspace = tmp_path / "ws.toml"
    workspace.write_text(WORKSPACE.replace('mode = "PAPER"', 'mode = "LIVE"'))
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        said = io.StringIO()
        args = [
            "--sim-day",
            "2026-01-05",
            str(workspace),
            "--from",
            "09:15",
            "--to",
            "11:00",
            "--out",
            str(out),
        ]
        assert replay(args, out=said) == 0
        assert "UK9394 'Morning' traded LIVE: replayed as PAPER" in said.getvalue()
    trips = _round_trips((outs[0] / "trades.csv").read_text())
    assert trips and all("2026-01-05T09:15" <= t[3] <= "2026-01-05T11:00" for t in trips)
    for name in ("orders.csv", "trades.csv"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_a_simulator_weekend_is_refused_in_words(tmp_path: Path, capsys) -> None:
    workspace = tmp_path / "ws.toml"
    workspace.write_text(WORKSPACE)
    assert replay(["--sim-day", "2026-01-03", str(workspace), "--out", str(tmp_path / "o")]) == 2
    assert "is a Saturday" in capsys.readouterr().err


def test_a_frames_market_time_is_its_latest_exchange_time_as_the_parser_reads_it(demo_day) -> None:
    from desktop.broker.recording import read_frames
    from desktop.broker.ticks import parse_frame
    from desktop.engine.replay import frame_time

    recording, _, _ = demo_day
    checked = 0
    for frame in read_frames(recording):
        stamps = (
            [t.exchange_timestamp for t in parse_frame(frame.data) if t.exchange_timestamp]
            if not frame.kind
            else []
        )
        assert frame_time(frame) == (max(stamps) if stamps else None)
        checked += bool(stamps)
    assert checked > 100


def test_a_replay_at_a_given_speed_takes_its_time_and_trades_the_same(demo_day, tmp_path: Path) -> None:
    import time as wall

    recording, workspace, _ = demo_day
    fast, paced = tmp_path / "fast", tmp_path / "paced"
    assert replay([str(recording), str(workspace), "--out", str(fast)], out=io.StringIO()) == 0
    started = wall.monotonic()
    assert (
        replay([str(recording), str(workspace), "--speed", "1800", "--out", str(paced)], out=io.StringIO())
        == 0
    )
    assert wall.monotonic() - started >= 0.9  # about 30 market minutes at 1800x: a second at least
    assert (fast / "trades.csv").read_bytes() == (paced / "trades.csv").read_bytes()


def test_a_recording_without_the_traded_option_says_its_orders_could_not_fill(
    demo_day, tmp_path: Path
) -> None:
    from desktop.broker.recording import DayFile, Frame, day_of, read_frames
    from desktop.broker.ticks import pack_frame, split_packets

    recording, workspace, _ = demo_day
    day = day_of(recording).isoformat()
    folder = tmp_path / "index-only"
    folder.mkdir()
    for sidecar in (".instruments.csv", ".candles.json"):
        (folder / f"{day}{sidecar}").write_bytes(recording.with_name(f"{day}{sidecar}").read_bytes())
    index_only = DayFile(folder / f"{day}.kdrec")  # the indices' packets only: no option was recorded
    for f in read_frames(recording):
        if f.kind == 0 and len(f.data) > 1:
            packets = [
                p for p in split_packets(f.data) if p[:4] in (b"\x00\x03\xe9\x09", b"\x00\x03\xf8\x09")
            ]
            f = Frame(f.received, f.kind, pack_frame(packets))
        index_only.append([f])
    index_only.close()
    said = io.StringIO()
    assert replay([str(folder / f"{day}.kdrec"), str(workspace), "--out", str(tmp_path / "o")], out=said) == 0
    assert "the recording holds no market data of NIFTY" in said.getvalue()
    assert _round_trips((tmp_path / "o" / "trades.csv").read_text()) == []


def test_one_days_recordings_of_two_accounts_merge_in_arrival_order_each_frame_naming_its_account(
    tmp_path: Path,
) -> None:
    from desktop.broker.recording import DayFile, Frame
    from desktop.engine.replay import ReplayError, recorded_day

    paths = []
    for account, times in (("UK9394", (1.0, 3.0)), ("UK1234", (2.0, 4.0))):
        folder = tmp_path / account
        folder.mkdir()
        (folder / "2026-01-05.instruments.csv").write_text("instrument_token,tradingsymbol\n")
        (folder / "2026-01-05.candles.json").write_text(
            f'{{"256265": [["2026-01-05 09:1{times[0]:.0f}:00", 1, 1, 1, 1, 0]]}}'
        )
        f = DayFile(folder / "2026-01-05.kdrec")
        f.append([Frame(t, 0, account.encode()) for t in times])
        f.close()
        paths.append(folder / "2026-01-05.kdrec")
    frames, data, accounts = recorded_day(paths)
    assert [(f.received, f.account, f.data) for f in frames] == [
        (1.0, "UK9394", b"UK9394"), (2.0, "UK1234", b"UK1234"), (3.0, "UK9394", b"UK9394"), (4.0, "UK1234", b"UK1234"),
    ]  # fmt: skip
    assert accounts == {"UK9394", "UK1234"} and data.day == date(2026, 1, 5)
    assert [r[0] for r in data.candles[256265]] == ["2026-01-05 09:11:00", "2026-01-05 09:12:00"]
    other = tmp_path / "UK9394" / "2026-01-06.kdrec"
    other.write_bytes(paths[0].read_bytes())
    with pytest.raises(ReplayError, match="different days: 2026-01-05, 2026-01-06"):
        recorded_day([paths[0], other])
