"""`StoreWriter` on a store that stopped accepting writes: the cause is logged once, not once per write, and
the writes resuming once too."""

from __future__ import annotations

import logging

from desktop.engine.writer import StoreWriter
from desktop.store import StoreWriteError


def test_a_latched_store_failure_is_logged_once_and_other_failures_each_time(caplog) -> None:
    def full() -> None:
        raise StoreWriteError("the disk is full; KiteDesk stopped recording")

    def bug() -> None:
        raise ValueError("a caller's bug")

    written: list[int] = []
    writer = StoreWriter()
    try:
        with caplog.at_level(logging.WARNING, logger="desktop.engine.writer"):
            for job in (full, full, bug, full, bug, lambda: written.append(1)):
                writer.submit(job)
            assert writer.flush()
    finally:
        writer.close()
    assert writer.failures == 5 and written == [1]  # the writes behind the failures still ran
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "a background store write failed: the disk is full; KiteDesk stopped recording",
        "a background store write failed: a caller's bug",
        "a background store write failed: a caller's bug",
        "background store writes resumed (3 were not saved meanwhile)",  # the store writes again: said once
    ]
