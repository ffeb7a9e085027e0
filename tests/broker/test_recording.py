"""Recording the wire: block files that survive a crash, retention, disk use, and a real feed recorded."""

from __future__ import annotations

import os
import time
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from desktop.broker.instruments import InstrumentBook, parse_instruments_csv
from desktop.broker.recording import (
    KIND_BINARY,
    KIND_TEXT,
    DayFile,
    FeedRecorder,
    Frame,
    ReadReport,
    RecordingError,
    day_file,
    disk_usage,
    format_bytes,
    prune,
    read_candles,
    read_frames,
)
from desktop.broker.ticks import parse_frame
from desktop.domain import Instrument
from tests.broker.conftest import login, wait_until

DAY = date(2026, 1, 5)


def _clock() -> datetime:
    return datetime(2026, 1, 5, 10, 0)


def test_frames_come_back_in_order_with_their_kind_and_time(tmp_path: Path) -> None:
    f = DayFile(day_file(tmp_path, DAY))
    f.append([Frame(1.5, KIND_BINARY, b"\x00\x01\xff"), Frame(2.25, KIND_TEXT, b'{"type":"order"}')])
    f.append([Frame(3.0, KIND_BINARY, b"x" * 5000)])
    f.close()
    report = ReadReport()
    frames = list(read_frames(day_file(tmp_path, DAY), report))
    assert frames == [
        Frame(1.5, KIND_BINARY, b"\x00\x01\xff"),
        Frame(2.25, KIND_TEXT, b'{"type":"order"}'),
        Frame(3.0, KIND_BINARY, b"x" * 5000),
    ]
    assert (report.blocks, report.torn) == (2, False)


def test_a_torn_last_block_is_skipped_by_the_reader_and_cut_off_by_the_next_writer(tmp_path: Path) -> None:
    path = day_file(tmp_path, DAY)
    f = DayFile(path)
    f.append([Frame(1.0, KIND_BINARY, b"first")])
    f.append([Frame(2.0, KIND_BINARY, b"second block, torn by a crash")])
    f.close()
    os.truncate(path, path.stat().st_size - 7)  # the crash: the last block half written
    report = ReadReport()
    assert [fr.data for fr in read_frames(path, report)] == [b"first"]
    assert report.torn
    f = DayFile(path)  # the next run of that day appends after the last whole block
    f.append([Frame(3.0, KIND_BINARY, b"after the restart")])
    f.close()
    report = ReadReport()
    assert [fr.data for fr in read_frames(path, report)] == [b"first", b"after the restart"]
    assert not report.torn


def test_a_file_that_is_no_recording_is_refused_in_words_and_never_overwritten(tmp_path: Path) -> None:
    path = day_file(tmp_path, DAY)
    path.write_bytes(b"hello, not a recording")
    with pytest.raises(RecordingError, match="not a KiteDesk recording"):
        list(read_frames(path))
    DayFile(path).close()
    kept = [p for p in tmp_path.iterdir() if ".broken-" in p.name]
    assert len(kept) == 1 and kept[0].read_bytes() == b"hello, not a recording"


def test_the_recorder_writes_a_block_within_a_second_without_being_asked(tmp_path: Path) -> None:
    rec = FeedRecorder(tmp_path / "UK9394", clock=_clock)
    try:
        rec.frame(b"\x00\x00")
        rec.text('{"type":"message"}')
        path = day_file(tmp_path / "UK9394", DAY)
        # nothing but the recorder's own thread writes it: a crash after this loses nothing of these two
        assert wait_until(lambda: path.exists() and len(list(read_frames(path))) == 2, timeout=2.5)
        assert [f.kind for f in read_frames(path)] == [KIND_BINARY, KIND_TEXT]
    finally:
        rec.close()


def test_the_days_instruments_and_warm_up_candles_are_kept_beside_the_recording(tmp_path: Path) -> None:
    nifty = Instrument(
        256265, 1001, "NIFTY 50", "NIFTY", "NSE", "INDICES", "EQ", None, Decimal(0), 1, Decimal("0.05")
    )
    call = Instrument(
        12345, 48, "NIFTY26JAN24000CE", "NIFTY", "NFO", "NFO-OPT", "CE", date(2026, 1, 29), Decimal(24000), 65,
        Decimal("0.05"),
    )  # fmt: skip
    asked: list[date] = []

    def dump(day: date) -> list[Instrument] | None:
        asked.append(day)
        return None if len(asked) == 1 else [nifty, call]  # the session loads it a moment after the start

    rec = FeedRecorder(tmp_path / "UK9394", clock=_clock, instruments=dump)
    try:
        rec.frame(b"\x00\x00")
        rec.flush()
        rec.frame(b"\x00\x00")
        rec.flush()
        rec.keep_candles(DAY, 256265, [[datetime(2026, 1, 5, 9, 15), 1.0, 2.0, 0.5, 1.5, 0]])
        rec.keep_candles(DAY, 256265, [["2026-01-05 09:16:00", 1.5, 2.5, 1.0, 2.0, 0]])
    finally:
        rec.close()
    csv_path = tmp_path / "UK9394" / "2026-01-05.instruments.csv"
    book = InstrumentBook.from_rows(parse_instruments_csv(csv_path.read_bytes()), DAY)
    assert book.by_token(12345) == call and book.by_token(256265) == nifty
    candles = read_candles(day_file(tmp_path / "UK9394", DAY))
    assert [c[0] for c in candles[256265]] == ["2026-01-05 09:15:00", "2026-01-05 09:16:00"]


def test_retention_prunes_old_days_and_disk_use_is_counted_per_account(tmp_path: Path) -> None:
    folder = tmp_path / "recordings" / "UK9394"
    folder.mkdir(parents=True)
    for name in (
        "2026-01-01.kdrec",
        "2026-01-01.instruments.csv",
        "2026-01-04.kdrec",
        "2026-01-05.kdrec",
        "notes.txt",
    ):
        (folder / name).write_bytes(b"x" * 10)
    gone = prune(folder, 2, DAY)  # keep today and yesterday
    assert sorted(p.name for p in gone) == ["2026-01-01.instruments.csv", "2026-01-01.kdrec"]
    assert sorted(p.name for p in folder.iterdir()) == ["2026-01-04.kdrec", "2026-01-05.kdrec", "notes.txt"]
    assert disk_usage(tmp_path) == {"UK9394": 30}
    assert format_bytes(30) == "30 B" and format_bytes(3 * 1024 * 1024) == "3.0 MB"
    with pytest.raises(ValueError, match="at least 1 day"):
        FeedRecorder(folder, retention_days=0)


def test_a_real_feed_records_what_the_simulator_sent(hub, sim, tmp_path: Path) -> None:
    rec = FeedRecorder(tmp_path / "UK9394", clock=sim.state.clock.now)
    hub.set_recorder("UK9394", rec)
    session = login(hub, sim, "UK9394")
    kite = hub.open_session(session)
    stream = hub.open_stream(kite)
    try:
        seen: list[int] = []
        stream.add_tick_listener(lambda ticks: seen.extend(t.instrument_token for t in ticks))
        stream.subscribe([256265], "full")
        assert wait_until(lambda: seen.count(256265) >= 3)
        assert hub.feed("UK9394").recorder is rec
    finally:
        stream.close()
        kite.close()
        assert hub.set_recorder("UK9394", None) is rec
        rec.close()
    path = day_file(tmp_path / "UK9394", sim.state.clock.now().date())
    ticks = [t for f in read_frames(path) if f.kind == KIND_BINARY for t in parse_frame(f.data)]
    assert sum(1 for t in ticks if t.instrument_token == 256265) >= 3
    assert rec.frames_recorded >= 3 and rec.bytes_written == path.stat().st_size - len(b"KDREC1\n")
    assert time.time() - 60 < next(iter(read_frames(path))).received <= time.time()


def test_recordings_are_readable_by_their_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    import stat

    old = os.umask(0o022)
    try:
        home = tmp_path / "home"
        home.mkdir()
        rec = FeedRecorder(home / "recordings" / "UK9394", clock=_clock, instruments=lambda day: None)
        rec.frame(b"\x00\x00")
        rec.keep_candles(DAY, 256265, [["2026-01-05 09:15:00", 1, 1, 1, 1, 0]])
        rec.close()
    finally:
        os.umask(old)
    for path in (home / "recordings", home / "recordings" / "UK9394"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    files = list((home / "recordings" / "UK9394").iterdir())
    assert len(files) == 2 and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
