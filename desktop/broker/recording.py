"""Recording the wire: every raw Kite WebSocket frame of an account feed, with its receive time, on disk.

A replay (`desktop/engine/replay.py`) feeds these frames back through the same parser, streams, agents and
strategy, so what a recording keeps is exactly what came off the socket: binary tick frames (heartbeats
included) and text messages, each with the wall-clock time it arrived.

File layout: `<home>/recordings/<broker_id>/<YYYY-MM-DD>.kdrec`, one file per market day and account feed,
beside it `<YYYY-MM-DD>.instruments.csv` (that day's instruments dump of the traded indices, in Kite's own
CSV columns, so a replay resolves the same contracts) and `<YYYY-MM-DD>.candles.json` (the warm-up candles
the sessions fetched, so a replay's indicators start where the live run's did).

A `.kdrec` file is the magic line `KDREC1\\n`, then blocks: `KDRB`, the compressed length (u32), the CRC-32 of
the compressed bytes (u32), then zlib data holding records `<f8 receive time><u1 kind><u4 length><bytes>`
(little-endian; kind 0 binary, 1 text). Why zlib and not zstd: it is in the standard library (no new
dependency) and a block a second is far below what either needs. Level 1 (`LEVEL`): on a busy feed's recorded
frames it compresses 1.76:1 against level 6's 1.92:1, for a fifth of the CPU (0.62 s against 3.28 s for 51 MB),
and the recorder runs beside the engine all day.

Crash safety: the feed's thread only appends a frame to a list (no disk, no compression on the thread that
decodes ticks, and never a wait for the disk: the list's lock is held for list operations only, the file has a
lock of its own); the recorder's own thread compresses and appends one block at least every second
(`FLUSH_EVERY`), so a crash of the process loses at most the last second (written blocks are in the OS's
page cache; a power cut may lose what the OS had not written yet). A torn last block (a crash in the middle
of a write) is skipped by the reader and cut off by the next writer of that file before it appends.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import logging
import os
import struct
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from desktop.domain import Instrument

log = logging.getLogger(__name__)

MAGIC = b"KDREC1\n"
BLOCK_MAGIC = b"KDRB"
_BLOCK = struct.Struct("<4sII")
_RECORD = struct.Struct("<dBI")
LEVEL = 1  # zlib level of a block: see the module docstring
KIND_BINARY = 0
KIND_TEXT = 1
SUFFIX = ".kdrec"
INSTRUMENTS_SUFFIX = ".instruments.csv"
CANDLES_SUFFIX = ".candles.json"
RECORDINGS_DIRNAME = "recordings"
FLUSH_EVERY = 1.0  # seconds: the most a crash loses
BLOCK_BYTES = 256 * 1024  # a busier feed writes a block sooner
# Bytes compressed between two calls of the recorder's `pause` (about 0.2 ms of one core at level 1).
PIECE = 64 * 1024
# Seconds a block's compression may spend in its pauses and pieces before it goes on without pausing: with frames
# handed out all the time, pausing before every piece would leave the recorder behind its feed for good.
PAUSE_BUDGET = 0.25
DEFAULT_RETENTION_DAYS = 30
# Kite's instruments CSV columns (what `KiteConnect.instruments()` parses and `parse_instruments_csv` reads).
INSTRUMENT_COLUMNS = (
    "instrument_token", "exchange_token", "tradingsymbol", "name", "last_price", "expiry", "strike",
    "tick_size", "lot_size", "instrument_type", "segment", "exchange",
)  # fmt: skip


class RecordingError(ValueError):
    """A file that is not a KiteDesk recording (the message says which and why)."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame off the wire: when it arrived (epoch seconds), binary or text, its bytes."""

    received: float
    kind: int
    data: bytes

    @property
    def text(self) -> str:
        """A text frame's message."""
        return self.data.decode("utf-8", errors="replace")


def private_folder(folder: Path) -> None:
    """Creates `folder` and its missing parents readable by their owner only (0700), whatever the umask: a
    recording is an account's market data, kept inside the home like its database."""
    missing = []
    cursor = Path(folder)
    while not cursor.exists() and cursor.parent != cursor:
        missing.append(cursor)
        cursor = cursor.parent
    for made in reversed(missing):
        made.mkdir(mode=0o700, exist_ok=True)
        os.chmod(made, 0o700)


def recordings_dir(home: Path) -> Path:
    """The folder of every account's recordings inside `home`."""
    return Path(home) / RECORDINGS_DIRNAME


def day_file(folder: Path, day: date) -> Path:
    """The recording of `day` in an account's folder."""
    return Path(folder) / f"{day.isoformat()}{SUFFIX}"


def day_of(path: Path) -> date:
    """The market day a `.kdrec` file (or its sidecar) holds, from its name."""
    try:
        return date.fromisoformat(Path(path).name[:10])
    except ValueError:
        raise RecordingError(f"{Path(path).name} is not named after a day (YYYY-MM-DD{SUFFIX})") from None


# Reading ------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class ReadReport:
    """What a read found: blocks read, the byte offset where the valid data ends, and a torn tail."""

    blocks: int = 0
    valid_end: int = 0
    torn: bool = False


def read_frames(path: Path, report: ReadReport | None = None) -> Iterator[Frame]:
    """The frames of a recording in the order they arrived; a torn last block ends the read quietly
    (`report.torn` says so). A file that is no recording at all raises `RecordingError`."""
    report = report if report is not None else ReadReport()
    with open(path, "rb") as f:
        head = f.read(len(MAGIC))
        if head != MAGIC:
            raise RecordingError(f"{Path(path).name} is not a KiteDesk recording (no {MAGIC!r} header)")
        report.valid_end = len(MAGIC)
        while True:
            header = f.read(_BLOCK.size)
            if not header:
                return
            if len(header) < _BLOCK.size:
                report.torn = True
                return
            magic, length, crc = _BLOCK.unpack(header)
            body = f.read(length)
            if magic != BLOCK_MAGIC or len(body) < length or zlib.crc32(body) != crc:
                report.torn = True
                return
            try:
                raw = zlib.decompress(body)
            except zlib.error:
                report.torn = True
                return
            report.blocks += 1
            report.valid_end = f.tell()
            yield from _records(raw)


def _records(raw: bytes) -> Iterator[Frame]:
    pos, end = 0, len(raw)
    while pos + _RECORD.size <= end:
        received, kind, length = _RECORD.unpack_from(raw, pos)
        pos += _RECORD.size
        yield Frame(received, kind, raw[pos : pos + length])
        pos += length


def _valid_end(path: Path) -> int:
    report = ReadReport()
    for _ in read_frames(path, report):
        pass
    return report.valid_end


# Writing ------------------------------------------------------------------------------------------------


class DayFile:
    """One day's `.kdrec` opened for appending (a torn tail from a crash cut off first); not thread-safe."""

    def __init__(self, path: Path, pause: Callable[[], object] | None = None) -> None:
        """`pause`: called between two pieces of a block being compressed (see `FeedRecorder`)."""
        self.path = Path(path)
        self.pause = pause
        private_folder(self.path.parent)
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        if not fresh:
            try:
                end = _valid_end(self.path)
            except RecordingError:
                # Not ours (or a header torn by a crash): kept aside, never overwritten.
                self.path.rename(self.path.with_name(self.path.name + f".broken-{int(time.time())}"))
                fresh = True
            else:
                if end < self.path.stat().st_size:
                    log.warning("%s: a torn last block (a crash) was cut off", self.path.name)
                    os.truncate(self.path, end)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if fresh:
            try:  # all of the header or none: a torn one would make the whole day's file unreadable
                written = os.write(self._fd, MAGIC)
                if written != len(MAGIC):
                    raise OSError(
                        errno.ENOSPC, f"the disk took {written} of a recording's {len(MAGIC)}-byte header"
                    )
            except OSError:
                os.ftruncate(self._fd, 0)
                os.close(self._fd)
                raise
        self._end = os.fstat(self._fd).st_size  # where the last whole block ends

    def append(self, frames: Iterable[Frame]) -> int:
        """Writes one compressed block of `frames`; returns its size on disk. A block the disk took only part of
        (full: a short write) is cut off again and OSError raised: the blocks after it must follow a whole one, or
        the reader, which stops at a torn block, would never see them. Its `pause` is called before each piece of at
        most `PIECE` bytes is compressed."""
        pause = self.pause
        paused_until = time.monotonic() + PAUSE_BUDGET  # past it, no more pauses in this block
        # Compressed frame by frame into one stream (the same zlib data as the block compressed whole): the frames
        # are not first copied into one buffer, and no single call holds the interpreter lock for long. Compressed
        # whole, a second of a busy feed (about 4 MB) held it for up to 3 ms at a time, and every account feed's
        # thread waited: the frame arriving meanwhile was decided 7-20 ms late (issue 18's p99).
        deflate = zlib.compressobj(LEVEL)
        parts = []
        for f in frames:
            parts.append(deflate.compress(_RECORD.pack(f.received, f.kind, len(f.data))))
            data = memoryview(f.data)
            for start in range(0, len(data), PIECE):
                if pause is not None:
                    pause()
                    if time.monotonic() > paused_until:
                        pause = None  # a busy process must not leave the recorder behind its feed
                parts.append(deflate.compress(data[start : start + PIECE]))
        parts.append(deflate.flush())
        body = b"".join(parts)
        block = _BLOCK.pack(BLOCK_MAGIC, len(body), zlib.crc32(body)) + body
        try:
            written = os.write(self._fd, block)  # one write: a crash tears at most this block
            if written != len(block):
                raise OSError(errno.ENOSPC, f"the disk took {written} of a block's {len(block)} bytes")
        except OSError:
            os.ftruncate(self._fd, self._end)
            raise
        self._end += len(block)
        return len(block)

    def close(self) -> None:
        """Closes the file."""
        os.close(self._fd)


InstrumentSource = Callable[[date], list[Instrument] | None]
BACKGROUND_NICE = 19  # the recorder's thread: the lowest CPU priority (Linux)


def _background_priority() -> None:
    """The calling thread gets the lowest CPU priority, on Linux (where a thread's nice value is its own; elsewhere
    nothing changes). The recorder's compression is most of the process's CPU on a busy feed (two recorded feeds
    at 80,000 ticks/s: 11 % of a core against 5 % for all four feeds' threads), and on a busy core a feed's thread
    woken by a frame waited for the recorder's time slice. It holds the interpreter lock only a few microseconds
    between two pieces it compresses, so a recorder waiting for the CPU seldom holds up a thread that needs it."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)


class FeedRecorder:
    """Records one account feed's frames into per-day files; `frame()` is all the feed's thread does.

    `clock` names the market day of a frame (the engine's market clock: in a demo the simulator's day);
    `instruments(day)` returns that day's dump once a session has loaded it, or None (asked again later).
    """

    def __init__(
        self,
        folder: Path,
        clock: Callable[[], datetime] | None = None,
        instruments: InstrumentSource | None = None,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        wall: Callable[[], float] = time.time,
        after: FeedRecorder | None = None,
        pause: Callable[[], object] | None = None,
    ) -> None:
        """`after`: the account's previous recorder, being closed: this one touches no file before it ended (both
        would write the same day's file). `pause`: called on the recorder's thread between two pieces of a block
        it compresses, to wait (briefly) for a moment when it holds nothing more urgent up: the engine's waits
        while an account feed's thread is deciding a frame. On one busy core, a recorder compressing a second of
        frames took the CPU from the feeds' threads whenever it took back the interpreter lock between two
        pieces, and the frame being decided waited for its time slice (7-20 ms: issue 18's p99)."""
        if retention_days < 1:
            raise ValueError("keep recordings for at least 1 day")
        self.folder = Path(folder)
        self._clock = clock or datetime.now
        self._instruments = instruments
        self.retention_days = retention_days
        self._wall = wall
        # Two locks, so that the feed's thread never waits for the disk: `_lock` guards the pending frames and
        # `_closed` (held for list operations only), `_io` the day file, the sidecars and the counters (held while
        # compressing and writing). `_io` is taken first whenever both are held.
        self._lock = threading.Condition()
        self._io = threading.Lock()
        self._after = after
        self._pause = pause
        self._pending: list[Frame] = []
        self._pending_bytes = 0
        self._day: date | None = None
        self._file: DayFile | None = None
        self._dump_written: set[date] = set()
        self._closed = False
        self._failing = False  # the last block could not be written (said once until one is again)
        self.frames_recorded = 0
        self.bytes_written = 0
        self._thread = threading.Thread(target=self._run, name=f"kitedesk-recorder-{self.folder.name}")
        self._thread.start()

    # The feed's thread ----------------------------------------------------------------------------------
    def frame(self, data: bytes) -> None:
        """A binary frame just arrived."""
        self._add(Frame(self._wall(), KIND_BINARY, bytes(data)))

    def text(self, message: str) -> None:
        """A text frame just arrived."""
        self._add(Frame(self._wall(), KIND_TEXT, message.encode("utf-8")))

    def _add(self, frame: Frame) -> None:
        with self._lock:
            if self._closed:
                return
            self._pending.append(frame)
            self._pending_bytes += len(frame.data)
            if self._pending_bytes >= BLOCK_BYTES:
                self._lock.notify()

    # Other threads ----------------------------------------------------------------------------------------
    def keep_candles(self, day: date, token: int, candles: list[Any]) -> None:
        """Keeps the warm-up candles a session fetched for `token` beside `day`'s recording (merged)."""
        path = self.folder / f"{day.isoformat()}{CANDLES_SUFFIX}"
        with self._io:
            private_folder(self.folder)
            try:
                kept = json.loads(path.read_text()) if path.exists() else {}
            except (
                ValueError
            ):  # torn by an older version on a full disk: rebuilt from what the sessions fetch now
                log.warning("the warm-up candles kept in %s could not be read: written again", path)
                kept = {}
            rows = {str(c[0]): c for c in kept.get(str(token), [])}
            rows.update({str(c[0]): [_jsonable(v) for v in c] for c in candles})
            kept[str(token)] = [rows[k] for k in sorted(rows)]
            _write_atomic(path, json.dumps(kept, sort_keys=True).encode())

    def flush(self) -> None:
        """Writes what is pending now (tests; the thread does it every second by itself)."""
        self._write_pending()

    def close(self, wait: bool = True) -> None:
        """Ends the recorder: its thread writes what is pending, closes the file and ends. `wait`: until it has
        (at most 10 s); False returns at once (the window's thread, which must never wait for a disk)."""
        with self._lock:
            self._closed = True
            self._lock.notify()
        if not wait:
            return
        self.join(timeout=10)
        if not self._thread.is_alive():
            self._finish()  # the thread's own end did it, unless it died: then it is done here

    def join(self, timeout: float | None = None) -> bool:
        """Waits up to `timeout` s for the recorder's thread to end (after `close`); True once it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # The recorder's thread --------------------------------------------------------------------------------
    def _run(self) -> None:
        _background_priority()
        with self._io:
            self._previous_ended()
            self._prune_quietly()
        while True:
            with self._lock:
                if self._closed:
                    break
                self._lock.wait(FLUSH_EVERY)
            # The disk is written with `_lock` released: the feed's thread appends frames meanwhile.
            try:
                self._write_pending()
            except OSError as exc:  # a full disk must not end the feed: said once, and tried again
                if not self._failing:
                    log.error(
                        "recording %s: cannot write to the disk (%s); tried again every second",
                        self.folder.name,
                        exc,
                    )
                self._failing = True
            else:
                if self._failing:
                    log.warning("recording %s: writing again", self.folder.name)
                self._failing = False
        self._finish()

    def _finish(self) -> None:
        """The last frames written and the file closed (a full disk loses them: said in the log)."""
        try:
            self._write_pending()
        except OSError as exc:
            log.error("recording %s: its last frames are not written (%s)", self.folder.name, exc)
        with self._io:
            if self._file is not None:
                self._file.close()
                self._file = None

    def _previous_ended(self) -> None:
        """Waits for the account's previous recorder (`after`) to end: one writer of a day's file at a time."""
        if self._after is not None:
            self._after.join()
            self._after = None

    def _write_pending(self) -> None:
        with self._io:
            self._previous_ended()
            with self._lock:
                if not self._pending:
                    return
            day = self._clock().date()
            if day != self._day or self._file is None:
                if self._file is not None:
                    self._file.close()
                    self._file = None
                self._day, self._file = day, DayFile(day_file(self.folder, day), self._pause)
                self._prune_quietly()
            if day not in self._dump_written:
                self._export_dump(day)
            with self._lock:  # taken at the last moment: what came meanwhile goes into this block too
                frames, self._pending, self._pending_bytes = self._pending, [], 0
            self.bytes_written += self._file.append(frames)
            self.frames_recorded += len(frames)

    def _export_dump(self, day: date) -> None:
        path = self.folder / f"{day.isoformat()}{INSTRUMENTS_SUFFIX}"
        if path.exists():
            self._dump_written.add(day)
            return
        if self._instruments is None:
            return
        try:
            dump = self._instruments(day)
        except Exception as exc:  # the frames still get recorded; the dump is asked again next second
            log.warning(
                "recording %s: the instruments of %s are not readable yet: %s", self.folder.name, day, exc
            )
            return
        if dump:
            write_instruments(path, dump)
            self._dump_written.add(day)

    def _prune_quietly(self) -> None:
        try:
            prune(self.folder, self.retention_days, self._clock().date())
        except OSError as exc:
            log.warning("recording %s: old days not pruned: %s", self.folder.name, exc)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (int, float, str)) or value is None:
        return value
    return str(value)


def _write_atomic(path: Path, data: bytes) -> None:
    """`data` in place of `path`, all of it or nothing. A full disk may take part of a write and say nothing (a short
    write): what is left is written until the disk refuses, and a refused file never replaces the good one (a chaos
    soak saw a torn candles file fail every later start)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # an account's data: its owner's only
    try:
        left = memoryview(data)
        while left:
            left = left[os.write(fd, left) :]
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.close(fd)
    os.replace(tmp, path)


def write_instruments(path: Path, instruments: Iterable[Instrument]) -> int:
    """Writes a dump in Kite's instruments CSV columns; returns the row count."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(INSTRUMENT_COLUMNS)
    count = 0
    for i in instruments:
        writer.writerow(
            (
                i.instrument_token, i.exchange_token, i.tradingsymbol, i.name, 0,
                "" if i.expiry is None else i.expiry.isoformat(), i.strike, i.tick_size, i.lot_size,
                i.instrument_type, i.segment, i.exchange,
            )
        )  # fmt: skip
        count += 1
    _write_atomic(Path(path), buffer.getvalue().encode("utf-8"))
    return count


def read_candles(recording: Path) -> dict[int, list[list[Any]]]:
    """The warm-up candles kept beside a recording (token -> [ts, o, h, l, c, v] rows), or {}."""
    path = Path(recording).with_name(day_of(recording).isoformat() + CANDLES_SUFFIX)
    if not path.exists():
        return {}
    return {int(k): v for k, v in json.loads(path.read_text()).items()}


# Retention and disk use --------------------------------------------------------------------------------


def prune(folder: Path, retention_days: int, today: date) -> list[Path]:
    """Deletes an account's recordings (and their sidecars) of days older than `retention_days` before
    `today`; returns what went."""
    cutoff = today - timedelta(days=retention_days - 1)
    gone: list[Path] = []
    if not Path(folder).is_dir():
        return gone
    for path in sorted(Path(folder).iterdir()):
        try:
            day = date.fromisoformat(path.name[:10])
        except ValueError:
            continue  # not ours
        if day < cutoff and path.is_file():
            path.unlink()
            gone.append(path)
    return gone


def disk_usage(home: Path) -> dict[str, int]:
    """Bytes used by each account's recordings in `home` (what the settings window shows)."""
    root = recordings_dir(home)
    if not root.is_dir():
        return {}
    return {
        folder.name: sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        for folder in sorted(root.iterdir())
        if folder.is_dir()
    }


def format_bytes(n: int) -> str:
    """A size as a trader reads it: 0 B, 12.3 KB, 4.5 MB, 1.2 GB."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
