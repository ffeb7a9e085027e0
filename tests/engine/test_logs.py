"""Per-session log files: seed names and format, market time, isolation between sessions, redaction."""

from __future__ import annotations

import errno
import logging
import re

from desktop.domain import Mode, Segment, SessionKey
from desktop.engine.logs import SessionLogs

from .builders import at

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d - LiveAgent-NIFTY-PAPER-UK9394 - INFO - .+$")


def read(path) -> str:
    return path.read_text(encoding="utf-8")


def test_line_format_and_file_name_follow_the_seed_with_market_time(tmp_path):
    logs = SessionLogs(tmp_path, SessionKey("UK9394", "a" * 32), "Computer 1", Mode.PAPER)
    log = logs.for_segment(Segment.NIFTY)
    log.info("Entry signal detected", at=at(10, 0))
    log.set_market_time(at(10, 0, 1))
    log.info("Position opened: lot_size=%d", 65)
    logs.close()
    assert log.path.name == "live_trader_NIFTY_PAPER_UK9394.log"
    assert log.path.parent.parent == tmp_path / "logs"
    assert read(log.path).splitlines() == [
        "2026-01-08 10:00:00 - LiveAgent-NIFTY-PAPER-UK9394 - INFO - Entry signal detected",
        "2026-01-08 10:00:01 - LiveAgent-NIFTY-PAPER-UK9394 - INFO - Position opened: lot_size=65",
    ]


def test_without_market_time_the_wall_clock_stamps_the_line(tmp_path):
    logs = SessionLogs(tmp_path, SessionKey("UK9394", "b" * 32), "x", Mode.PAPER)
    log = logs.for_segment(Segment.NIFTY)
    log.info("starting")
    logs.close()
    line = read(log.path).strip()
    assert LINE.match(line) and not line.startswith("2026-01-08 10:")


def test_before_any_market_time_the_engines_market_clock_stamps_the_line_not_the_wall_clock(tmp_path):
    # Issue 16 (12): a recovery's lines were stamped with the wall clock among the market-time lines around them.
    logs = SessionLogs(tmp_path, SessionKey("UK9394", "c" * 32), "x", Mode.PAPER, clock=lambda: at(9, 31, 7))
    log = logs.for_segment(Segment.NIFTY)
    log.warning("recovered an open position")
    log.set_market_time(at(9, 31, 9))
    log.info("a tick later")
    logs.close()
    assert [line[:19] for line in read(log.path).splitlines()] == [
        "2026-01-08 09:31:07",
        "2026-01-08 09:31:09",
    ]


def test_two_sessions_of_one_account_write_different_files_and_closing_one_keeps_the_other(tmp_path):
    first = SessionLogs(tmp_path, SessionKey.new("UK9394"), "Computer 1", Mode.PAPER)
    third = SessionLogs(tmp_path, SessionKey.new("UK9394"), "Computer 1", Mode.PAPER)  # same label even
    a, b = first.for_segment(Segment.NIFTY), third.for_segment(Segment.NIFTY)
    assert a.path != b.path and a.path.name == b.path.name
    assert a.logger is not b.logger and a.name == b.name
    a.info("from first", at=at(10, 0))
    b.info("from third", at=at(10, 0))
    first.close()
    a.info("after close", at=at(10, 1))  # a stopping agent's late line goes nowhere
    b.info("third still logging", at=at(10, 1))
    third.close()
    assert "from third" not in read(a.path) and "after close" not in read(a.path)
    assert "from first" not in read(b.path)
    assert "third still logging" in read(b.path)


def test_session_loggers_stay_out_of_the_global_registry_and_do_not_propagate(tmp_path, caplog):
    logs = SessionLogs(tmp_path, SessionKey.new("UK1234"), "Computer 2", Mode.PAPER)
    log = logs.for_segment(Segment.SENSEX)
    with caplog.at_level(logging.DEBUG):
        log.warning("only in my file", at=at(11, 0))
    logs.close()
    assert log.name == "LiveAgent-SENSEX-PAPER-UK1234"
    assert log.name not in logging.Logger.manager.loggerDict
    assert caplog.records == []
    assert "only in my file" in read(log.path)


def test_secrets_are_redacted_in_messages_arguments_and_tracebacks(tmp_path):
    logs = SessionLogs(tmp_path, SessionKey.new("UK9394"), "c", Mode.LIVE)
    log = logs.for_segment(Segment.BANKNIFTY)
    logs.add_secret("apisecret123456")
    logs.add_secret("tok_ABCDEF987654")  # registered after the logger exists: still applies
    log.info("login with token tok_ABCDEF987654", at=at(9, 16))
    log.info("secret is %s", "apisecret123456", at=at(9, 16))
    try:
        raise ValueError("bad session tok_ABCDEF987654")
    except ValueError:
        log.exception("order failed", at=at(9, 17))
    logs.close()
    text = read(log.path)
    assert "tok_ABCDEF987654" not in text and "apisecret123456" not in text
    # message, argument, and the traceback's source line and exception text
    assert text.count("***") == 4 and "Traceback" in text


def test_a_log_file_that_cannot_be_written_says_so_once_in_words_and_again_when_it_can(tmp_path, capsys):
    logs = SessionLogs(tmp_path, SessionKey("UK9394", "a" * 32), "Computer 1", Mode.PAPER)
    log = logs.for_segment(Segment.NIFTY)
    (handler,) = log.logger.handlers
    real = handler.stream

    class FullDisk:
        def write(self, _text: str) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self) -> None:
            pass

    handler.stream = FullDisk()
    for n in range(3):
        log.info("line %d", n, at=at(9, 30))
    handler.stream = real
    log.info("back", at=at(9, 31))
    logs.close()
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2, (
        err
    )  # one line for the failure, however many lines were lost; one when it writes again
    assert (
        "cannot write the log" in err[0] and "the disk is full" in err[0] and "Traceback" not in "".join(err)
    )
    assert "written again" in err[1]
    text = read(log.path)
    assert "back" in text and "line 0" not in text


def test_closing_a_log_on_a_full_disk_loses_its_last_lines_without_failing_the_stop(tmp_path, capsys):
    # A chaos run's Ctrl-C on a full disk ended `kitedesk run` with "stopping ... failed: the disk is full": the
    # log file's last buffered lines could not be flushed when the session stopped, and that OSError ended the stop.
    logs = SessionLogs(tmp_path, SessionKey("UK9394", "a" * 32), "Computer 1", Mode.PAPER)
    log = logs.for_segment(Segment.NIFTY)
    (handler,) = log.logger.handlers
    log.info("written", at=at(9, 30))
    real = handler.stream

    class FullOnClose:
        closed = False

        def write(self, text: str) -> None:
            real.write(text)

        def flush(self) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self) -> None:
            self.closed = True
            real.close()

    stream = FullOnClose()
    handler.stream = stream
    logs.close()  # no OSError out of the session's stop
    assert stream.closed
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "cannot write the log" in err[0] and "the disk is full" in err[0], err
