"""A protective order sent while the journal could not be written survives `kill -9` (issue 16, defect 3; chaos seed
51). While another program holds the database locked, a LIVE position whose stop ends is protected at once: a new
stop-loss order (the old one cancelled outside KiteDesk), or a sale (the exchange cancelled the triggered stop after a
gap), sent before its intent is journalled. The process is then killed before the journal writes again: the next
start finds the order by the session's tag at the broker, adopts the stop (no second one) or counts the sale's fill
(no second sale). `kitedesk run` against the simulator, the real kiteconnect client, the real SQLite file locked by
this test as the chaos harness locks it. About 11 s (three runs; the protective orders do not wait for the lock)."""

from __future__ import annotations

import signal
import sqlite3
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from desktop.store import Store
from tests.e2e.conftest import START
from tests.e2e.test_recovery import WORKSPACE as RECOVERY_WORKSPACE
from tests.e2e.test_recovery import _poll, _run
from tests.simkit import start_sim

BEFORE_THE_SIGNAL = START.replace(minute=30)  # seed 5: the first NIFTY entry at 09:35 (test_recovery.py)
# One trade a day: a later start sends no new entry, so every sale after the first is a second sale of the position.
WORKSPACE = RECOVERY_WORKSPACE + "max_trades_per_day = 1\n"


class DatabaseLock:
    """Another program holding the home's database locked (as the chaos harness's db_lock fault does)."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self._release = threading.Event()
        self._taken = threading.Event()
        self._thread: threading.Thread | None = None

    def _hold(self) -> None:
        conn = sqlite3.connect(str(self.db), timeout=10, isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            self._taken.set()
            self._release.wait(120)
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    def __enter__(self) -> DatabaseLock:
        self._thread = threading.Thread(target=self._hold, name="test-db-lock")
        self._thread.start()
        assert self._taken.wait(15), "the database lock could not be taken"
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        assert self._thread is not None
        self._thread.join(15)


class SimRuns:
    """`kitedesk run` processes of `WORKSPACE` on one simulator (seed 5, from five minutes before its first NIFTY
    signal) and one home; leaving the `with` block kills those still running and stops the simulator."""

    def __init__(self, tmp_path: Path) -> None:
        self.sim = start_sim(speed=60.0, start=BEFORE_THE_SIGNAL, seed=5)
        self.out = tmp_path
        self.ws = tmp_path / "ws.toml"
        self.ws.write_text(WORKSPACE, encoding="utf-8")
        self.home = tmp_path / "home"
        self.book = self.sim.state.accounts["UK9394"].book
        self.procs: list[Any] = []

    def run(self, name: str) -> Any:
        """A `kitedesk run` of the workspace on the home, its output in `<name>.out`."""
        proc = _run(self.ws, self.sim.url, self.home, self.out / f"{name}.out")
        self.procs.append(proc)
        return proc

    def __enter__(self) -> SimRuns:
        return self

    def __exit__(self, *_: object) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self.sim.stop()


def _query(home: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Rows of the home's database, read as another program would."""
    conn = sqlite3.connect(f"file:{home / 'kitedesk.db'}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def _log(home: Path) -> str:
    return next((home / "logs").glob("*/live_trader_NIFTY_LIVE_UK9394.log")).read_text(encoding="utf-8")


def _pnl(trades: list[tuple[str, int, Decimal]]) -> Decimal:
    """Realised P&L of flat round trips: sales minus buys."""
    total = sum((q * p if side == "SELL" else -q * p for side, q, p in trades), Decimal(0))
    return total.quantize(Decimal("0.01"))


@pytest.mark.slow
def test_orders_sent_while_the_journal_is_locked_are_adopted_after_kill_9_never_sent_twice(
    tmp_path: Path,
) -> None:
    runs = SimRuns(tmp_path)
    sim, home, book, run = runs.sim, runs.home, runs.book, runs.run

    def tagged(tag: str) -> list[Any]:
        return [o for o in book.orders.values() if o.tag == tag]

    def stops(tag: str, status: str = "TRIGGER PENDING") -> list[Any]:
        return [o for o in tagged(tag) if o.order_type == "SL" and o.status == status]

    def cancel_at_broker(order_id: str) -> None:
        async def go() -> None:  # as the trader would in Kite web: an update of our stop, cancelled
            book.cancel(order_id, sim.state.clock.now())

        sim.call(go)

    with runs:  # the processes killed, the simulator stopped, however the test ends
        # -- 1: the stop cancelled outside KiteDesk while the database is locked: a new one at once, unjournalled
        first = run("first")

        def protected() -> Any:
            orders = [o for o in book.orders.values() if (o.tag or "").startswith("KD")]
            bought = [o for o in orders if o.transaction_type == "BUY" and o.status == "COMPLETE"]
            resting = [o for o in orders if o.order_type == "SL" and o.status == "TRIGGER PENDING"]
            return (bought[-1], resting[-1]) if bought and len(resting) == 1 else None

        entry, stop = _poll(
            protected, 60, "a LIVE entry protected by an SL order", first, tmp_path / "first.out"
        )
        tag, symbol = entry.tag, entry.instrument.tradingsymbol
        with DatabaseLock(home / "kitedesk.db"):
            cancel_at_broker(stop.order_id)
            new_stop = _poll(
                lambda: next(iter(stops(tag)), None), 45, "a new stop-loss order while the journal is locked",
                first, tmp_path / "first.out",
            )  # fmt: skip
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        sl_intents = _query(
            home, "SELECT COUNT(*) FROM order_intents WHERE tag = ? AND order_type = 'SL'", tag
        )
        assert sl_intents == [(1,)], "the new stop was sent before its intent was journalled"
        assert new_stop.order_id != stop.order_id and len(stops(tag)) == 1
        assert "is sent anyway to protect the position" in _log(home)

        # -- 2: the next start adopts that stop (it is the session's, by its tag): no second stop
        second = run("second")
        _poll(
            lambda: f"kept the stop-loss order {new_stop.order_id}" in _log(home),
            40, "the second run adopting the unjournalled stop", second, tmp_path / "second.out",
        )  # fmt: skip
        assert [o.order_id for o in stops(tag)] == [new_stop.order_id], (
            "exactly one stop, the one sent before"
        )

        # -- 3: a gap of 80 % (its limit far outside price protection); the exchange cancels the triggered stop while the database is locked: sold at once
        sells_before = {
            o.order_id for o in tagged(tag) if o.transaction_type == "SELL" and o.order_type != "SL"
        }

        def sold() -> list[Any]:
            return [
                o for o in tagged(tag)
                if o.transaction_type == "SELL" and o.order_type != "SL" and o.order_id not in sells_before
                and o.status == "COMPLETE"
            ]  # fmt: skip

        with DatabaseLock(home / "kitedesk.db"):
            sim.inject_fault({"kind": "gap_premium", "tradingsymbol": symbol, "percent": -80})
            [sale] = _poll(
                sold, 45, "the position sold while the journal is locked", second, tmp_path / "second.out"
            )
            second.send_signal(signal.SIGKILL)
            second.wait(10)
        assert "price protection" in (stops(tag, "CANCELLED")[-1].status_message or "")
        [(session_id,)] = _query(home, "SELECT DISTINCT session_id FROM order_intents WHERE tag = ?", tag)
        assert not _query(home, "SELECT 1 FROM fills WHERE order_id = ?", sale.order_id), (
            "not recorded before"
        )

        # -- 4: the next start counts the sale's fill and sends nothing more for that position
        third = run("third")
        _poll(
            lambda: _query(home, "SELECT 1 FROM fills WHERE order_id = ?", sale.order_id),
            40, "the third run counting the fill of the sale sent before its intent was journalled",
            third, tmp_path / "third.out",
        )  # fmt: skip
        third.send_signal(signal.SIGINT)
        assert third.wait(40) == 0, (tmp_path / "third.out").read_text(errors="replace")[-2000:]
        mine = tagged(tag)
        assert all(o.is_final for o in mine)
        later_sales = [
            o.order_id for o in mine
            if o.transaction_type == "SELL" and o.order_type != "SL" and o.order_id not in sells_before
        ]  # fmt: skip
        assert later_sales == [sale.order_id], "no second sale of the position"
        assert sum(o.filled_quantity * (1 if o.transaction_type == "BUY" else -1) for o in mine) == 0
        broker = {o.order_id: o.filled_quantity for o in mine if o.filled_quantity}
        with Store.open(home) as store:
            fills = store.fills.for_session(broker_id="UK9394", session_id=session_id)
        counted: dict[str, int] = {}
        for f in fills:
            counted[f.order_id] = counted.get(f.order_id, 0) + f.quantity
        assert counted == broker, "every fill of the session's orders is counted, the unjournalled sale's too"
        assert _pnl([(f.side.value, f.quantity, f.price) for f in fills]) == _pnl(
            [(o.transaction_type, o.filled_quantity, o.average_price) for o in mine if o.filled_quantity]
        )
