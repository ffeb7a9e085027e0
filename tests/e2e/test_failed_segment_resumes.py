"""A session one of whose segments failed did not stop cleanly: the next tab of its label takes it over, so that
segment's position and the fills since are recovered on that start (issue 16: a 30-minute chaos soak saw a LIVE
segment fail at its start, its session then recorded as cleanly "stopped", and a stop-loss fill of its position
never counted in any session's P&L)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from desktop.broker.errors import BrokerUnavailable
from desktop.broker.session import KiteSession
from desktop.domain import Fill, Mode, Segment, Side
from desktop.engine import Engine, OnStop
from desktop.engine.snapshots import AgentState
from desktop.store import StoreWriteError
from tests.e2e.conftest import sim_book, start_session, wait_until


def test_a_session_whose_segment_failed_is_taken_over_by_the_next_tab_of_its_label(
    demo_engine: Engine, qapp
) -> None:
    session = start_session(demo_engine, "UK9394", "Computer 3", segments=["NIFTY", "BANKNIFTY"], lots=1,
                            stop_loss=20, itm_offset=100, mode="LIVE")  # fmt: skip
    states = lambda: [s.state for s in session.snapshot().segments]  # noqa: E731
    wait_until(qapp, lambda: states() == [AgentState.RUNNING] * 2, 30, "both segments running")

    def fail(trader: object) -> None:
        raise RuntimeError("a failure nobody planned for")

    session.agent(Segment.NIFTY).run_on_thread(fail)
    wait_until(qapp, lambda: states()[0] is AgentState.FAILED, 10, "the NIFTY segment failed")
    demo_engine.close_session(session.key, OnStop.KEEP)
    assert demo_engine.label_resumes("UK9394", "Computer 3"), "the failed segment's session is taken over"
    assert demo_engine.open_session("UK9394", "Computer 3").key == session.key


def test_a_session_that_stopped_cleanly_and_flat_is_not_taken_over(demo_engine: Engine, qapp) -> None:
    session = start_session(demo_engine, "UK9394", "Computer 3", segments=["NIFTY"], lots=1, stop_loss=20,
                            itm_offset=100, mode="LIVE")  # fmt: skip
    wait_until(qapp, lambda: session.snapshot().segments[0].state is AgentState.RUNNING, 30, "running")
    demo_engine.close_session(session.key, OnStop.KEEP)
    assert not demo_engine.label_resumes("UK9394", "Computer 3")


def test_a_session_stopped_with_a_fill_the_store_refused_is_taken_over_by_the_next_tab(
    demo_engine: Engine, qapp, monkeypatch
) -> None:
    """A fill that came while the disk was full waits in the segment to be recorded; if the session stops before
    the store writes again, the next start must count it: the session is taken over, not recorded as stopped."""
    session = start_session(demo_engine, "UK9394", "Computer 3", segments=["NIFTY"], lots=1, stop_loss=20,
                            itm_offset=100, mode="LIVE")  # fmt: skip
    wait_until(qapp, lambda: session.snapshot().segments[0].state is AgentState.RUNNING, 30, "running")
    agent = session.agent(Segment.NIFTY)
    refused: list[str] = []

    def full_disk(fill: Fill) -> None:
        refused.append(fill.fill_id)
        raise StoreWriteError("the fill was not saved: the disk is full")

    def queued_on_a_full_disk(fill: Fill, then=None):
        """A fill's write in the next group commit (the engine's path with a store writer), which fails."""
        refused.append(fill.fill_id)
        if then is not None:
            then()
        return lambda: full_disk(fill)

    def a_fill_while_the_disk_is_full(trader) -> None:
        monkeypatch.setattr(trader.ctx.store.fills, "record", full_disk)
        monkeypatch.setattr(trader.ctx.store.fills, "queue", queued_on_a_full_disk)
        trader.on_fill(Fill("T1", "O1", session.key, Mode.LIVE, "NFO", "NIFTY2611326000CE", Side.SELL, 65,
                            Decimal("100"), datetime(2026, 1, 8, 9, 30)))  # fmt: skip

    agent.run_on_thread(a_fill_while_the_disk_is_full)
    wait_until(qapp, lambda: "T1" in refused, 10, "the fill refused by the store")
    demo_engine.close_session(session.key, OnStop.KEEP)
    assert demo_engine.label_resumes("UK9394", "Computer 3")


def test_a_session_stopped_before_it_could_read_a_stops_fill_is_taken_over_and_the_next_start_records_it(
    demo_engine: Engine, qapp, monkeypatch
) -> None:
    """The 20-minute chaos soak (seed 2): a kept position's stop filled at the broker while `kitedesk run` was
    restarting; the start's recovery counted its P&L from the broker's orders, but Kite's trade list could not be
    read (the login had expired), and the session then stopped flat and "cleanly": no later start ever read that
    trade, so it never reached the session's fills (its trades table, the export). A fill the broker shows and the
    store lacks is owed: the session is taken over by the next tab of its label, whose start records it."""
    sim, book, session, stop, trade_ids = _a_kept_positions_stop_filled_with_no_process(demo_engine, qapp)
    tag = session.key.order_tag

    def stored_fills() -> set[str]:
        rows = demo_engine.store.fills.for_session(broker_id="UK9394", session_id=session.key.session_id)
        return {f.fill_id for f in rows}

    # The next start recovers the session (flat, the stop's P&L counted from the broker's orders), but Kite's trade
    # list cannot be read during it (what an expired login, a dropped connection or a 429 storm does).
    def unreachable(self, order_id: str):
        raise BrokerUnavailable("Kite could not be reached")

    monkeypatch.setattr(KiteSession, "order_trades", unreachable)
    again = demo_engine.open_session("UK9394", "Computer 3")
    assert again.key == session.key
    again.start(session.params)
    again.agent(Segment.NIFTY).run_on_thread(
        lambda trader: setattr(trader.strategy, "on_bar", lambda bar: [])
    )
    buys = {o.order_id for o in book.orders.values() if o.tag == tag and o.transaction_type == "BUY"}
    wait_until(
        qapp,
        lambda: any(o.order_id == stop.order_id and o.status.is_final for o in again.snapshot().orders),
        30,
        "the recovered session shows the stop's end",
    )
    assert again.snapshot().segments[0].option_symbol is None, "flat: the stop sold the position"
    demo_engine.close_session(again.key, OnStop.KEEP)
    assert buys == {
        o.order_id for o in book.orders.values() if o.tag == tag and o.transaction_type == "BUY"
    }, "no new entry: it stopped flat"
    assert not trade_ids & stored_fills(), "the stop's fill could not be read"
    assert demo_engine.label_resumes("UK9394", "Computer 3"), "a fill the store lacks is owed: taken over"

    monkeypatch.undo()
    third = demo_engine.open_session("UK9394", "Computer 3")
    assert third.key == session.key
    third.start(session.params)
    wait_until(qapp, lambda: trade_ids <= stored_fills(), 30, "the stop's fill recorded by the next start")
    demo_engine.close_session(third.key, OnStop.SQUARE_OFF)  # whatever it traded since is sold
    assert not demo_engine.label_resumes("UK9394", "Computer 3"), "nothing owed any more: a clean stop"


def test_a_fill_the_recovery_could_not_read_is_asked_for_again_while_the_session_runs(
    demo_engine: Engine, qapp, monkeypatch
) -> None:
    """The same stop's trade, unreadable during the start's recovery: once Kite answers again (the login renewed, the
    connection back), the running session asks for it again and records it, with no restart."""
    sim, book, session, stop, trade_ids = _a_kept_positions_stop_filled_with_no_process(demo_engine, qapp)

    def stored_fills() -> set[str]:
        rows = demo_engine.store.fills.for_session(broker_id="UK9394", session_id=session.key.session_id)
        return {f.fill_id for f in rows}

    asked: list[str] = []

    def unreachable(self, order_id: str):
        asked.append(order_id)
        raise BrokerUnavailable("Kite could not be reached")

    monkeypatch.setattr(KiteSession, "order_trades", unreachable)
    again = demo_engine.open_session("UK9394", "Computer 3")
    again.start(session.params)
    again.agent(Segment.NIFTY).run_on_thread(
        lambda trader: setattr(trader.strategy, "on_bar", lambda bar: [])
    )
    wait_until(qapp, lambda: stop.order_id in asked, 30, "the recovery asked for the stop's trades")
    assert not trade_ids & stored_fills()
    monkeypatch.undo()  # Kite answers again
    wait_until(qapp, lambda: trade_ids <= stored_fills(), 30, "the stop's fill asked for again and recorded")
    demo_engine.close_session(again.key, OnStop.SQUARE_OFF)


def _a_kept_positions_stop_filled_with_no_process(demo_engine: Engine, qapp):
    """A LIVE NIFTY position kept under its SL order when its session stopped; then, with no process running, the
    premium falls between the stop's trigger and its limit and the stop fills at the broker. Returns the simulator,
    its book, the stopped session, the stop and the stop's trade ids."""
    sim, book = sim_book(demo_engine)
    session = start_session(demo_engine, "UK9394", "Computer 3", segments=["NIFTY"], lots=1, stop_loss=7,
                            itm_offset=150, mode="LIVE")  # fmt: skip
    tag = session.key.order_tag

    def stops(status: str):
        return [
            o for o in book.orders.values() if o.tag == tag and o.order_type == "SL" and o.status == status
        ]

    wait_until(qapp, lambda: stops("TRIGGER PENDING"), 60, "a LIVE position under its SL order")
    session.agent(Segment.NIFTY).run_on_thread(
        lambda trader: setattr(trader.strategy, "on_bar", lambda bar: [])
    )
    demo_engine.close_session(session.key, OnStop.KEEP)
    stop = stops("TRIGGER PENDING")[0]

    # No process runs: the premium falls through the stop's trigger, not its limit, and the stop fills.
    market, now = sim.state.market, sim.state.clock.now()
    last = market.last_price(stop.instrument.instrument_token, now)
    target = (stop.trigger_price + stop.price) / 2
    sim.inject_fault({"kind": "gap_premium", "tradingsymbol": stop.instrument.tradingsymbol,
                      "percent": float((target / last - 1) * 100)})  # fmt: skip
    wait_until(qapp, lambda: stop.status == "COMPLETE", 10, "the stop filled at the broker")
    trade_ids = {str(t["trade_id"]) for t in book.trades if t["order_id"] == stop.order_id}
    assert trade_ids
    return sim, book, session, stop, trade_ids
