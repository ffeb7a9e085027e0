"""Recording the wire: block files that survive a crash, retention, disk use, and a real feed recorded."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

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


def test_a_block_compressed_frame_by_frame_is_the_zlib_data_of_its_records_compressed_whole(
    tmp_path: Path,
) -> None:
    import struct
    import zlib

    from desktop.broker.recording import LEVEL, MAGIC

    frames = [Frame(1.5 + n, KIND_BINARY, os.urandom(300) + bytes(n * 700)) for n in range(8)]
    f = DayFile(day_file(tmp_path, DAY))
    size = f.append(frames)
    f.close()
    data = day_file(tmp_path, DAY).read_bytes()
    records = b"".join(struct.pack("<dBI", fr.received, fr.kind, len(fr.data)) + fr.data for fr in frames)
    body = zlib.compress(records, LEVEL)
    assert data[len(MAGIC) :] == b"KDRB" + struct.pack("<II", len(body), zlib.crc32(body)) + body
    assert size == len(data) - len(MAGIC)
    assert list(read_frames(day_file(tmp_path, DAY))) == frames


def test_a_block_is_compressed_in_pieces_with_the_recorders_pause_before_each(tmp_path: Path) -> None:
    from desktop.broker.recording import PIECE

    paused: list[int] = []
    frames = [Frame(1.0, KIND_BINARY, bytes(PIECE * 2 + 1)), Frame(2.0, KIND_TEXT, b"{}")]
    f = DayFile(day_file(tmp_path, DAY), pause=lambda: paused.append(1))
    f.append(frames)
    f.close()
    assert len(paused) == 3 + 1, "three pieces of the big frame, one of the small one"
    assert list(read_frames(day_file(tmp_path, DAY))) == frames


def test_a_block_stops_pausing_once_its_pauses_took_the_budget(tmp_path: Path, monkeypatch) -> None:
    import desktop.broker.recording as recording

    monkeypatch.setattr(recording, "PAUSE_BUDGET", 0.05)
    paused: list[int] = []

    def busy() -> None:  # frames handed out all the time: each pause waits its whole timeout
        paused.append(1)
        time.sleep(0.02)

    frames = [Frame(1.0, KIND_BINARY, bytes(recording.PIECE * 20))]
    f = DayFile(day_file(tmp_path, DAY), pause=busy)
    f.append(frames)
    f.close()
    assert 2 <= len(paused) <= 4, f"paused {len(paused)} times for 20 pieces: the rest went on at once"
    assert list(read_frames(day_file(tmp_path, DAY))) == frames


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


def _blocking_append(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """The first DayFile.append held up (a slow or full disk) until `release` is set; `writing` says it started."""
    writing, release = threading.Event(), threading.Event()
    append = DayFile.append

    def slow_append(self: DayFile, frames: Any) -> int:
        if not writing.is_set():
            writing.set()
            assert release.wait(10), "the test never released the disk"
        return append(self, frames)

    monkeypatch.setattr(DayFile, "append", slow_append)
    return writing, release


def _returns_within(seconds: float, fn: Any) -> bool:
    """True when `fn()` returned within `seconds` (run on a thread of its own, so a blocked call is seen)."""
    done = threading.Event()
    t = threading.Thread(target=lambda: (fn(), done.set()), name="kitedesk-test-caller")
    t.start()
    returned = done.wait(seconds)
    if not returned:
        t.join(15)  # unblocked once the test releases the disk
    return returned


def test_the_feeds_thread_never_waits_for_the_recorders_disk_write(tmp_path: Path, monkeypatch) -> None:
    import desktop.broker.recording as recording

    monkeypatch.setattr(recording, "FLUSH_EVERY", 0.05)
    writing, release = _blocking_append(monkeypatch)
    rec = FeedRecorder(tmp_path / "UK9394", clock=_clock)
    try:
        rec.frame(b"first")
        assert writing.wait(5)  # the recorder's thread is inside a disk write, held up
        arrived = _returns_within(1.0, lambda: rec.frame(b"second"))
        text_arrived = _returns_within(1.0, lambda: rec.text('{"type":"order"}'))
        release.set()
    finally:
        release.set()
        rec.close()
    assert arrived and text_arrived, "frame() waited behind the disk write: the feed's thread stalled"
    assert [f.data for f in read_frames(day_file(tmp_path / "UK9394", DAY))] == [
        b"first", b"second", b'{"type":"order"}',
    ]  # fmt: skip


def test_keeping_candles_never_holds_up_the_feeds_thread(tmp_path: Path, monkeypatch) -> None:
    import desktop.broker.recording as recording

    entered, release = threading.Event(), threading.Event()
    write_atomic = recording._write_atomic

    def slow_write(path: Path, data: bytes) -> None:
        entered.set()
        assert release.wait(10)
        write_atomic(path, data)

    monkeypatch.setattr(recording, "_write_atomic", slow_write)
    rec = FeedRecorder(tmp_path / "UK9394", clock=_clock)
    keeper = threading.Thread(
        target=rec.keep_candles, args=(DAY, 256265, [["2026-01-05 09:15:00", 1, 1, 1, 1, 0]]),
        name="kitedesk-test-candles",
    )  # fmt: skip
    keeper.start()
    try:
        assert entered.wait(5)
        arrived = _returns_within(1.0, lambda: rec.frame(b"tick"))
    finally:
        release.set()
        keeper.join(10)
        rec.close()
    assert arrived, "frame() waited behind the candles' write"
    assert [f.data for f in read_frames(day_file(tmp_path / "UK9394", DAY))] == [b"tick"]


def test_close_without_waiting_returns_at_once_and_the_next_recorder_writes_after_the_last_block(
    tmp_path: Path, monkeypatch
) -> None:
    writing, release = _blocking_append(monkeypatch)
    folder = tmp_path / "UK9394"
    path = day_file(folder, DAY)
    old = FeedRecorder(folder, clock=_clock)
    new: FeedRecorder | None = None
    threads: list[threading.Thread] = []
    try:
        old.frame(b"old")
        threads.append(threading.Thread(target=old.flush, name="kitedesk-test-flush-old"))
        threads[-1].start()
        assert writing.wait(5)  # its write is held up by the disk
        assert _returns_within(1.0, lambda: old.close(wait=False)), "close(wait=False) waited for the disk"
        new = FeedRecorder(folder, clock=_clock, after=old)
        new.frame(b"new")
        threads.append(threading.Thread(target=new.flush, name="kitedesk-test-flush-new"))
        threads[-1].start()
        time.sleep(0.3)
        assert list(read_frames(path)) == [], (
            "the next recorder wrote before the last block of the one it replaced"
        )
        release.set()
        for t in threads:
            t.join(10)
        assert old.join(5)
    finally:
        release.set()
        old.close()
        if new is not None:
            new.close()
    assert [f.data for f in read_frames(path)] == [b"old", b"new"]


def test_switching_an_accounts_recording_off_or_on_never_waits_for_its_disk(
    tmp_path: Path, monkeypatch
) -> None:
    """Engine.set_recording runs on the window's thread (File → Settings…): the recorder it replaces writes its
    last block on its own thread, and the engine's close waits for it."""
    from desktop.broker.profiles import MemorySecretStore
    from desktop.engine.engine import Engine

    writing, release = _blocking_append(monkeypatch)
    engine = Engine(tmp_path / "home", secrets=MemorySecretStore(), clock=_clock)
    try:
        engine.set_recording("UK9394", True)
        rec = engine.hub.recorder("UK9394")
        assert rec is not None
        rec.frame(b"before")
        assert writing.wait(5)  # the recorder's thread writes that frame, held up by the disk
        rec.frame(b"during")
        assert _returns_within(1.0, lambda: engine.set_recording("UK9394", False)), "off waited for the disk"
        assert _returns_within(1.0, lambda: engine.set_recording("UK9394", True, 7)), "on waited for the disk"
        again = engine.hub.recorder("UK9394")
        assert again is not None and again is not rec
        again.frame(b"after")
    finally:
        release.set()
        engine.close()
    folder = tmp_path / "home" / "recordings" / "UK9394"
    assert [f.data for f in read_frames(day_file(folder, DAY))] == [b"before", b"during", b"after"]


def test_a_feed_switched_through_recorders_while_frames_flow_keeps_every_frame_once_in_order(
    tmp_path: Path, monkeypatch
) -> None:
    # Recording switched on and off (a retention change, a toggle) while the feed's thread records, the first
    # recorder's last block held up by a slow disk: every frame lands once, in the order it came, in one file.
    writing, release = _blocking_append(monkeypatch)
    folder = tmp_path / "UK9394"
    swap = threading.Lock()  # the hub swaps the feed's recorder under its lock; the feed reads it under it
    current: list[FeedRecorder] = [FeedRecorder(folder, clock=_clock)]
    made = list(current)
    stop = threading.Event()
    sent: list[int] = []

    def feed() -> None:
        n = 0
        while not stop.is_set() or n < 50:
            with swap:
                current[0].frame(n.to_bytes(4, "little"))
                sent.append(n)
            n += 1
            if n % 7 == 0:
                time.sleep(0.001)

    feeder = threading.Thread(target=feed, name="kitedesk-test-feed")
    feeder.start()
    try:
        assert writing.wait(5)  # the first recorder's block is on its way to a slow disk
        for _ in range(3):
            with swap:
                old = current[0]
                current[0] = FeedRecorder(folder, clock=_clock, after=old)
                made.append(current[0])
            assert _returns_within(1.0, lambda old=old: old.close(wait=False))  # type: ignore[misc]
            time.sleep(0.05)
        release.set()
        time.sleep(0.2)
    finally:
        release.set()
        stop.set()
        feeder.join(10)
        for rec in made:
            rec.close()
    got = [int.from_bytes(f.data, "little") for f in read_frames(day_file(folder, DAY))]
    assert got == sent, f"{len(got)} frames read of {len(sent)} sent"
    assert sum(r.frames_recorded for r in made) == len(sent)


def _short_write(monkeypatch: pytest.MonkeyPatch, picks: Callable[[bytes], bool], nth: int) -> None:
    """The `nth` of the recorder's writes that `picks` takes only half its bytes and returns (a disk filling in its
    middle: a short write, no error)."""
    import desktop.broker.recording as recording

    real_write = os.write
    seen = {"picked": 0}

    def full_disk_write(fd: int, data: bytes) -> int:
        if picks(data):
            seen["picked"] += 1
            if seen["picked"] == nth:
                return real_write(fd, data[: len(data) // 2])
        return real_write(fd, data)

    monkeypatch.setattr(recording.os, "write", full_disk_write)


def test_a_block_the_full_disk_cut_short_does_not_hide_the_blocks_written_after_it(
    tmp_path: Path, monkeypatch
) -> None:
    # A disk full in the middle of a block: the OS writes part of it and says how much (a short write). The
    # frames written once the disk has room again must still be readable, not lost behind a torn block.
    _short_write(monkeypatch, lambda data: data.startswith(b"KDRB"), 2)  # the second block
    folder = tmp_path / "UK9394"
    rec = FeedRecorder(folder, clock=_clock)
    try:
        rec.frame(b"before")
        rec.flush()
        rec.frame(b"cut short")
        with contextlib.suppress(OSError):  # said so: the disk is full
            rec.flush()
        rec.frame(b"after")
        rec.flush()
    finally:
        rec.close()
    got = [f.data for f in read_frames(day_file(folder, DAY))]
    assert got[0] == b"before" and got[-1] == b"after", got
    assert rec.bytes_written == day_file(folder, DAY).stat().st_size - len(b"KDREC1\n")


def test_a_file_the_full_disk_took_only_part_of_is_never_put_in_place(tmp_path: Path, monkeypatch) -> None:
    # Chaos soak seed 8: on a full tmpfs `os.write` wrote part of the warm-up candles and returned (a short write, no
    # error); the torn file replaced the good one, and every later start failed reading it (JSONDecodeError).
    import errno

    from desktop.broker import recording

    path = tmp_path / "2026-01-05.candles.json"
    path.write_bytes(b'{"256265": []}')
    real_write = os.write
    taken: list[int] = []

    def full_disk(fd: int, data: Any) -> int:
        if taken:
            raise OSError(errno.ENOSPC, "No space left on device")
        taken.append(real_write(fd, bytes(data)[:10]))  # the disk took 10 bytes of it
        return taken[-1]

    monkeypatch.setattr(recording.os, "write", full_disk)
    with pytest.raises(OSError):
        recording._write_atomic(path, b'{"256265": [["2026-01-05 09:15:00", 1, 2, 0.5, 1.5, 0]]}')
    monkeypatch.undo()
    assert path.read_bytes() == b'{"256265": []}', "the good file stays"
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no torn temporary file left behind"


def test_a_torn_candles_file_of_an_earlier_run_is_replaced_not_a_failed_start(tmp_path: Path) -> None:
    rec = FeedRecorder(tmp_path / "UK9394", clock=_clock)
    try:
        (tmp_path / "UK9394").mkdir(parents=True, exist_ok=True)
        (tmp_path / "UK9394" / "2026-01-05.candles.json").write_text('{"256265": [["2026-01-05 09:1')
        rec.keep_candles(DAY, 256265, [["2026-01-05 09:16:00", 1.5, 2.5, 1.0, 2.0, 0]])
    finally:
        rec.close()
    candles = read_candles(day_file(tmp_path / "UK9394", DAY))
    assert [c[0] for c in candles[256265]] == ["2026-01-05 09:16:00"]


def test_a_day_files_header_the_full_disk_took_only_part_of_is_written_again_not_left_torn(
    tmp_path: Path, monkeypatch
) -> None:
    # A new day's file begins with a 7-byte header. On a full disk the OS may take part of it and return (a short
    # write): a torn header left in place made the whole day's file unreadable ("not a KiteDesk recording"), its
    # blocks appended after it lost to a replay.
    _short_write(monkeypatch, lambda data: data == b"KDREC1\n", 1)
    folder = tmp_path / "UK9394"
    rec = FeedRecorder(folder, clock=_clock)
    try:
        rec.frame(b"lost with the full disk")
        with pytest.raises(OSError):  # said so: the disk is full
            rec.flush()
        rec.frame(b"after")
        rec.flush()
    finally:
        rec.close()
    got = [f.data for f in read_frames(day_file(folder, DAY))]
    assert got[-1] == b"after", got
    assert not list(folder.glob("*.broken-*")), "the day's file was set aside as unreadable"
