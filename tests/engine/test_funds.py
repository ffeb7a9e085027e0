"""The funds watcher (desktop/engine/funds.py): its own thread, a fetch at start, one more on each `refresh`, a
failed fetch keeping the last amounts and saying why, and a clean stop."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from pathlib import Path

from desktop.engine.funds import Funds, FundsWatcher, funds_from_margins

MOCK = Path(__file__).parents[1] / "fixtures" / "kite-mocks" / "margins.json"


def test_kites_margins_reply_reads_as_available_and_used_equity_funds():
    doc = json.loads(MOCK.read_text())["data"]
    funds = funds_from_margins(doc)
    assert funds == Funds(Decimal("99725.05"), Decimal("145706.55"))
    assert funds_from_margins(doc["equity"]) == funds  # GET /user/margins/equity answers the segment alone


def test_the_watcher_fetches_at_start_and_after_each_refresh_on_its_own_thread_and_keeps_the_last_amounts_on_error():
    answers: list[object] = [
        {"equity": {"net": 5000.5, "utilised": {"debits": 0}}},
        RuntimeError("Kite did not answer"),
        {"equity": {"net": 1200, "utilised": {"debits": 3800.5}}},
    ]
    threads: list[str] = []
    told: list[Funds] = []
    got = threading.Semaphore(0)

    def fetch() -> dict:
        threads.append(threading.current_thread().name)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    def on_funds(funds: Funds) -> None:
        told.append(funds)
        got.release()

    watcher = FundsWatcher(fetch, on_funds, interval_s=60, name="funds-test")
    watcher.start()
    try:
        assert got.acquire(timeout=5)
        assert told[-1].available == Decimal("5000.50") and told[-1].error == ""
        watcher.refresh()  # a fill: fetched now, not in a minute
        assert got.acquire(timeout=5)
        assert told[-1].available == Decimal("5000.50") and told[-1].error == "Kite did not answer"
        assert told[-1].fetched_at == told[0].fetched_at  # the amounts are the last good answer's
        watcher.refresh()
        assert got.acquire(timeout=5)
        assert told[-1] == watcher.latest
        assert (told[-1].available, told[-1].used, told[-1].error) == (Decimal(1200), Decimal("3800.50"), "")
    finally:
        watcher.close()
    assert threads == ["funds-test"] * 3
    assert not any(t.name == "funds-test" for t in threading.enumerate())
