"""`StoreWriter` on a store that stopped accepting writes: the cause is logged once, not once per write, and
the writes resuming once too."""

from __future__ import annotations

import logging
import time

from desktop.engine.writer import RETRY_EVERY, LatestRow, StoreWriter
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


def test_a_row_the_store_refused_is_written_once_it_writes_again_in_its_latest_state() -> None:
    """Seed 41 of the chaos run: a position sold while the disk was full; its flat row (with the sale's P&L) was
    refused and never written, so the store kept the session's P&L from before the sale (₹75.00 off the broker's).
    A refused row's latest state is written once the store writes again, with no later write to carry it."""
    full = [True]
    rows: dict[str, int] = {}
    notes: list[str] = []

    def upsert(key: str, value: int):
        def write() -> None:
            if full[0]:
                raise StoreWriteError("the disk is full; KiteDesk stopped recording")
            rows[key] = value

        return LatestRow(("position", key), write)

    def note() -> None:
        if full[0]:
            raise StoreWriteError("the disk is full; KiteDesk stopped recording")
        notes.append("note")

    writer = StoreWriter()
    try:
        for job in (upsert("NIFTY", 1), upsert("BANKNIFTY", 1), note, upsert("BANKNIFTY", 2)):
            writer.submit(job)
        assert writer.flush()
        assert rows == {} and notes == []
        full[0] = False  # the disk has room again; nothing more is submitted
        deadline = time.monotonic() + 5 * RETRY_EVERY
        while rows != {"NIFTY": 1, "BANKNIFTY": 2} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rows == {"NIFTY": 1, "BANKNIFTY": 2}, "each row in its latest state, the earlier one replaced"
        assert notes == [], "a refused note is not written late (the journal's order)"
        writer.submit(upsert("NIFTY", 3))
        assert writer.flush() and rows["NIFTY"] == 3
    finally:
        writer.close()
