"""The one line a terminal command prints for an OS error (issue 16 §10): what a trader can act on, then the
OS's own words and the file, never a traceback."""

from __future__ import annotations

import errno
import os

from desktop.cli.support import Problems, trader_message
from desktop.store import StoreFullError, StoreLockedError, StoreWriteError


def test_a_full_disk_says_so_in_plain_words() -> None:
    # Ctrl-C of a chaos run on a full disk printed only "kitedesk run: No space left on device".
    said = trader_message(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert said == "the disk is full (No space left on device)"


def test_the_file_is_named_after_the_os_words() -> None:
    said = trader_message(OSError(errno.EROFS, os.strerror(errno.EROFS), "/home/t/.kitedesk/kitedesk.db"))
    assert said == "the disk is read-only (Read-only file system: /home/t/.kitedesk/kitedesk.db)"


def test_other_os_errors_keep_their_own_words() -> None:
    said = trader_message(PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/home/t/.kitedesk"))
    assert said == "Permission denied: /home/t/.kitedesk"
    assert trader_message(OSError("no errno")) == "no errno"


class _Store:
    def __init__(self, failure: StoreWriteError | None) -> None:
        self.write_failure = failure


class _Engine:
    def __init__(self, failure: StoreWriteError | None = None) -> None:
        self.store = _Store(failure)


def _full(path: str | None = None) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)


def test_a_full_disk_met_by_every_stop_is_said_once() -> None:
    # Chaos seed 54's Ctrl-C printed the store's full disk, then "the disk is full" three more times: once bare,
    # once per session whose stop met it.
    full = StoreFullError("the disk is full (or the database reached its size limit); ... Free some space.")
    problems = Problems("kitedesk run", _Engine(full))  # type: ignore[arg-type]
    problems.add(full)
    problems.add(_full())
    problems.add(_full(), "stopping UK9394 'chaos paper A'")
    problems.add(_full(), "stopping UK1234 'chaos paper B'")
    assert problems.lines() == [f"kitedesk run: {full}"]


def test_a_full_disk_the_store_did_not_meet_is_said_once_in_plain_words() -> None:
    problems = Problems("kitedesk run", _Engine())  # type: ignore[arg-type]
    problems.add(_full(), "stopping UK9394 'chaos paper A'")
    problems.add(_full())
    assert problems.lines() == ["kitedesk run: the disk is full (No space left on device)"]


def test_another_storage_failure_and_a_full_disk_are_both_said() -> None:
    locked = StoreLockedError("the fill was not saved: the database /h/kitedesk.db is locked")
    problems = Problems("kitedesk run", _Engine(locked))  # type: ignore[arg-type]
    problems.add(locked)
    problems.add(_full())
    problems.add(ValueError("odd"), "stopping UK9394 'x'")
    assert problems.lines() == [
        "kitedesk run: the disk is full (No space left on device)",
        f"kitedesk run: {locked}",
        "kitedesk run: stopping UK9394 'x' failed: odd",
    ]


def test_a_database_locked_through_every_stop_is_said_once() -> None:
    # Ctrl-C while another program kept the database locked printed the lock once bare, then once per session.
    locked = StoreLockedError(
        "the database /h/kitedesk.db stayed locked by another program for about 20.0 s; ..."
    )
    problems = Problems("kitedesk run", _Engine())  # type: ignore[arg-type]
    problems.add(locked)
    problems.add(locked, "stopping UK9394 'Computer 1'")
    problems.add(StoreLockedError(str(locked)), "stopping UK1234 'Computer 2'")
    assert problems.lines() == [f"kitedesk run: {locked}"]
