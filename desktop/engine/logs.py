"""Per-session log files with the seed's names and line format, stamped with market time, secrets redacted.

`<home>/logs/<broker_id>_<label>_<session id>/live_trader_{segment}_{mode}_{broker_id}.log`, one file per
segment, lines like `2026-01-08 10:00:00 - LiveAgent-NIFTY-PAPER-UK9394 - INFO - Entry signal detected`.

Isolation: the loggers are built directly (`logging.Logger(name)`), never through `logging.getLogger`,
so two sessions of one account get two distinct logger objects with two distinct handlers even though
the names are equal; nothing is registered process-wide, and `close()` touches only this session's
handlers. One clock per log: lines carry the market time the agent gives (`at=`, or the last
`set_market_time`), and before the segment knows one (its start, its recovery) the engine's market clock
given to `SessionLogs` (the simulator's time in a demo, IST in live trading); wall time only for a log
built without a clock (tests). A recovery's lines stamped with the wall clock among market-time lines
read as if they happened hours away from the trades around them.
"""

from __future__ import annotations

import errno
import logging
import re
import sys
import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from desktop.domain import Mode, Segment, SessionKey
from desktop.store.home import create_private_file, make_private_folder, narrow_to_owner

LINE_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
REDACTED = "***"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class Redactor:
    """Holds one session's secrets and blanks them out of any text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()

    def add(self, secret: str | None) -> None:
        """Registers a secret (api secret, access token); empty values are ignored."""
        if not secret:
            return
        with self._lock:
            # Longest first, so a secret containing another is blanked whole.
            self._secrets = tuple(sorted({*self._secrets, str(secret)}, key=len, reverse=True))

    def redact(self, text: str) -> str:
        """`text` with every registered secret replaced by ***."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


class MarketTimeFormatter(logging.Formatter):
    """The seed's line format, timed by the record's market time, with secrets redacted.

    Redacting the formatted line (not only the message) also covers arguments and tracebacks.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__(LINE_FORMAT, TIME_FORMAT)
        self.redactor = redactor

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging API
        market_time = getattr(record, "market_time", None)
        if isinstance(market_time, datetime):
            return market_time.strftime(datefmt or TIME_FORMAT)
        return super().formatTime(record, datefmt)  # no market time yet: wall time

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor.redact(super().format(record))


class RedactionFilter(logging.Filter):
    """Blanks secrets out of the message before any handler sees the record."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redactor.redact(record.getMessage())
        record.args = None
        return True


class AgentLog:
    """One segment's logger for one session; stamps each line with market time."""

    def __init__(
        self, logger: logging.Logger, path: Path, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.logger = logger
        self.path = path
        self.market_time: datetime | None = None
        self._clock = clock  # the engine's market clock: the time of lines before any market time is set
        # Set while the account's dispatcher runs this segment's decisions: lines are queued here (a file write has
        # no place on the thread every segment of the account waits for) and written by `write_held`.
        self.held: deque[tuple[int, str, tuple[Any, ...], datetime | None]] | None = None

    @property
    def name(self) -> str:
        """The seed's logger name, e.g. LiveAgent-NIFTY-PAPER-UK9394."""
        return self.logger.name

    def set_market_time(self, t: datetime | None) -> None:
        """The market time used by lines logged without `at=`."""
        self.market_time = t

    def log(self, level: int, msg: str, *args: Any, at: datetime | None = None, exc_info: Any = None) -> None:
        """Logs one line at `level`, timed `at` (market time) or by the last market time set."""
        when = at or self.market_time
        if when is None and self._clock is not None:
            when = self._clock()
        held = self.held
        if held is not None and exc_info is None:
            held.append((level, msg, args, when))
            return
        if exc_info is None:
            self._write(level, msg, args, when)
        else:
            self.logger.log(level, msg, *args, exc_info=exc_info, extra={"market_time": when})

    def _write(self, level: int, msg: str, args: tuple[Any, ...], when: datetime | None) -> None:
        """`logger.log(level, msg, *args)` without looking up the caller's file and line (`Logger.findCaller`, ~10 us
        a line; the line's format names neither)."""
        logger = self.logger
        if logger.isEnabledFor(level):
            logger.handle(
                logger.makeRecord(
                    logger.name, level, "(unknown file)", 0, msg, args, None, extra={"market_time": when}
                )
            )

    def write_held(self, lines: deque[tuple[int, str, tuple[Any, ...], datetime | None]]) -> None:
        """Writes the lines queued in `lines` (see `held`), oldest first (the agent's thread)."""
        while lines:
            level, msg, args, when = lines.popleft()
            self._write(level, msg, args, when)

    def debug(self, msg: str, *args: Any, at: datetime | None = None) -> None:
        """A DEBUG line."""
        self.log(logging.DEBUG, msg, *args, at=at)

    def info(self, msg: str, *args: Any, at: datetime | None = None) -> None:
        """An INFO line."""
        self.log(logging.INFO, msg, *args, at=at)

    def warning(self, msg: str, *args: Any, at: datetime | None = None) -> None:
        """A WARNING line."""
        self.log(logging.WARNING, msg, *args, at=at)

    def error(self, msg: str, *args: Any, at: datetime | None = None) -> None:
        """An ERROR line."""
        self.log(logging.ERROR, msg, *args, at=at)

    def exception(self, msg: str, *args: Any, at: datetime | None = None) -> None:
        """An ERROR line with the current exception's traceback (redacted like the rest)."""
        self.log(logging.ERROR, msg, *args, at=at, exc_info=True)


def session_folder_name(key: SessionKey, label: str) -> str:
    """A folder name unique to the session: account, readable label, session id."""
    slug = _UNSAFE.sub("-", label).strip("-.")[:40] or "session"
    return f"{_UNSAFE.sub('-', key.broker_id)}_{slug}_{key.session_id[:12]}"


class SessionLogFile(logging.FileHandler):
    """A session's log file that says a failed write (a full disk, an I/O error) once, in one line on stderr,
    instead of logging's traceback for every line; once a line is written again it says so, once. The lines
    meanwhile are lost: the trading records are in the database, which reports its own failures."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8")
        self._failing = False
        self._failed_now = False

    def emit(self, record: logging.LogRecord) -> None:
        self._failed_now = False
        super().emit(record)  # a failure calls handleError, under this handler's lock
        if self._failing and not self._failed_now:
            self._failing = False
            sys.stderr.write(f"kitedesk: the log {self.baseFilename} is written again\n")

    def close(self) -> None:
        """Closes the file; lines it could not flush (a full disk) are lost and said so, as for `emit`: the session's
        stop goes on (a chaos run's Ctrl-C on a full disk ended `kitedesk run` with a failed stop)."""
        try:
            super().close()  # the file is closed even when its last flush fails
        except OSError as e:
            self._say_lost(e)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        self._failed_now = True
        self._say_lost(sys.exc_info()[1])

    def _say_lost(self, exc: BaseException | None) -> None:
        if self._failing:
            return
        self._failing = True
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            why = "the disk is full"
        else:
            why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        sys.stderr.write(
            f"kitedesk: cannot write the log {self.baseFilename} ({why}): its lines are lost until it can\n"
        )


class SessionLogs:
    """The log files of one session: one logger per segment, its own folder, its own handlers."""

    def __init__(
        self,
        home: str | Path,
        key: SessionKey,
        label: str,
        mode: Mode,
        level: int = logging.INFO,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """`clock`: the engine's market clock, for lines logged before a segment knows its market time."""
        self.key = key
        self.clock = clock
        self.label = label
        self.mode = mode
        self.level = level
        self.folder = Path(home) / "logs" / session_folder_name(key, label)
        self.redactor = Redactor()
        self._lock = threading.Lock()
        self._agents: dict[Segment, AgentLog] = {}
        self._closed = False

    def add_secret(self, secret: str | None) -> None:
        """Registers a secret to blank out of every line of this session (also of loggers made before)."""
        self.redactor.add(secret)

    def path_for(self, segment: Segment) -> Path:
        """The seed's file name for one segment, inside this session's folder."""
        return self.folder / f"live_trader_{segment.value}_{self.mode.value}_{self.key.broker_id}.log"

    def for_segment(self, segment: Segment) -> AgentLog:
        """The segment's logger (created with its file on first use)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the session's logs are closed")
            agent = self._agents.get(segment)
            if agent is None:
                agent = self._agents[segment] = self._make(segment)
            return agent

    def _make(self, segment: Segment) -> AgentLog:
        name = f"LiveAgent-{segment.value}-{self.mode.value}-{self.key.broker_id}"
        logger = logging.Logger(name, self.level)  # not in logging's global registry: per session
        logger.propagate = False
        logger.addFilter(RedactionFilter(self.redactor))
        path = self.path_for(segment)
        # Trading logs name accounts, orders and prices: readable by their owner only (issue 16 §11).
        make_private_folder(path.parent)
        create_private_file(path)
        narrow_to_owner(path)
        handler = SessionLogFile(path)
        handler.setFormatter(MarketTimeFormatter(self.redactor))
        logger.addHandler(handler)
        return AgentLog(logger, path, self.clock)

    def close(self) -> None:
        """Flushes and closes this session's files; other sessions' logging is untouched."""
        with self._lock:
            self._closed = True
            agents, self._agents = list(self._agents.values()), {}
        for agent in agents:
            for handler in list(agent.logger.handlers):
                agent.logger.removeHandler(handler)
                handler.close()
            # A late line from a stopping agent must not fall through to logging's stderr last resort.
            agent.logger.addHandler(logging.NullHandler())
