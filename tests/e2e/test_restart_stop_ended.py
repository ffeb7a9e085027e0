"""A stop the exchange ends right after a restart is acted on at once (issue 16, never naked). A 300-s chaos soak
(seed 43, speed 74, a loaded machine) restarted `kitedesk run` with a LIVE NIFTY position kept under its stop; 2 market
minutes later a gap took the premium 55 % down and the exchange cancelled the triggered stop (its limit outside price
protection). The segment sold 9 s later (11 market minutes, the position naked): its recovery had re-read the trades
of every order of its day (31, one REST call each on the segment's thread, behind which the stop's CANCELLED update
and every tick waited; its clock sat at the restart's minute). The store already held all those fills: a restart
reads the trades only of the orders whose fills it has not recorded. The real kiteconnect client on the simulator."""

from __future__ import annotations

from pathlib import Path

from desktop.broker.profiles import MemorySecretStore
from desktop.broker.session import KiteSession
from desktop.cli.demo import start_demo
from desktop.engine import Engine, SessionState
from desktop.engine.snapshots import AgentState
from desktop.engine.workspace import OnStop
from tests.e2e.conftest import FEED, START, params, wait_until
from tests.simkit import start_sim

RAW = {"segments": ["NIFTY"], "lots": 1, "stop_loss": 20, "itm_offset": 100, "mode": "LIVE"}


def test_a_restart_reads_no_trades_it_recorded_and_sells_at_once_when_the_exchange_ends_the_kept_stop(
    tmp_path: Path, qapp, monkeypatch
) -> None:
    sim = start_sim(speed=120.0, start=START, seed=3, rate_limits=True)
    book = sim.state.accounts["UK9394"].book
    home = tmp_path / "home"
    reads: list[str] = []  # the order ids whose trades this process asked Kite for
    order_trades = KiteSession.order_trades

    def counted(self: KiteSession, order_id: str):
        reads.append(order_id)
        return order_trades(self, order_id)

    monkeypatch.setattr(KiteSession, "order_trades", counted)
    engines: list[Engine] = []

    def engine() -> Engine:
        e = Engine(home, secrets=MemorySecretStore(), feed_options=FEED)
        engines.append(e)
        start_demo(e, sim_url=sim.url)
        return e

    try:
        first = engine()
        session = first.open_session("UK9394", "Kept")
        session.start(params(**RAW))
        tag = session.key.order_tag

        def tagged():
            return [o for o in book.orders.values() if o.tag == tag]

        def held_under_stop() -> str | None:
            orders = tagged()
            net = sum(o.filled_quantity * (1 if o.transaction_type == "BUY" else -1) for o in orders)
            stops = [o for o in orders if o.order_type == "SL" and o.status == "TRIGGER PENDING"]
            return stops[0].instrument.tradingsymbol if net > 0 and len(stops) == 1 else None

        wait_until(qapp, held_under_stop, 60, "a LIVE position held under its stop at the broker")
        symbol = held_under_stop()
        assert symbol is not None
        first.close(OnStop.KEEP)
        engines.remove(first)
        filled_before = {o.order_id for o in tagged() if o.filled_quantity}
        assert filled_before and held_under_stop() == symbol  # kept: the stop rests with no process
        reads.clear()

        second = engine()
        resumed = second.open_session("UK9394", "Kept")
        assert resumed.key == session.key, "the restart must take the kept session over"
        resumed.start(params(**RAW))
        wait_until(
            qapp,
            lambda: (
                resumed.state is SessionState.RUNNING
                and [s.state for s in resumed.snapshot().segments] == [AgentState.RUNNING]
            ),
            30,
            "the restarted segment running",
        )
        # The exchange ends the stop: the premium gaps through its trigger and its limit falls outside protection.
        sim.inject_fault({"kind": "gap_premium", "tradingsymbol": symbol, "percent": -55})

        def flat_at_broker() -> bool:
            orders = tagged()
            net = sum(o.filled_quantity * (1 if o.transaction_type == "BUY" else -1) for o in orders)
            return net == 0 and all(o.is_final for o in orders)

        wait_until(qapp, flat_at_broker, 30, "the position sold after the exchange ended its stop")
        cancelled = [o for o in tagged() if o.order_type == "SL" and o.status == "CANCELLED"]
        assert cancelled and "price protection" in (cancelled[-1].status_message or "")
        again = sorted(set(reads) & filled_before)
        assert not again, f"the restart read again the trades of orders whose fills it had recorded: {again}"
    finally:
        for e in engines:
            e.close(OnStop.SQUARE_OFF)
        qapp.processEvents()
        sim.stop()
