"""Manual actions of a LIVE session on the simulator (real kiteconnect, real sockets): move the stop (the broker's
SL order modified, limit with trigger), exit now (the stop cancelled, the position sold at market), cancel a
working entry. Each goes through the session's public API, the segment agent's inbox and the broker."""

from __future__ import annotations

from datetime import timedelta

from desktop.broker.exchange_rules import MAX_MODIFICATIONS
from desktop.engine import Engine
from desktop.engine.protection import floor_tick, stop_limit
from tests.e2e.conftest import params, sim_book, wait_until


def _journal(session, kind: str) -> list[dict]:
    session.services.writer.flush()
    entries = session.services.store.journal.for_session(
        broker_id=session.key.broker_id, session_id=session.key.session_id
    )
    return [e.payload for e in entries if e.kind == kind]


def test_a_manual_stop_move_then_exit_now_of_a_live_position(demo_engine: Engine, qapp) -> None:
    sim, book = sim_book(demo_engine)
    session = demo_engine.open_session("UK9394", "Manual")
    session.start(params(segments=["NIFTY"], lots=1, stop_loss=7, itm_offset=150, mode="LIVE"))
    tag = session.key.order_tag

    def ours(status: str, kind: str = "SL"):
        return [
            o for o in book.orders.values() if o.tag == tag and o.order_type == kind and o.status == status
        ]

    wait_until(qapp, lambda: ours("TRIGGER PENDING"), 60, "a LIVE position under its SL order")
    agent = session.agent(session.params.segments[0])  # type: ignore[union-attr]
    assert agent is not None
    agent.run_on_thread(lambda trader: setattr(trader.strategy, "on_bar", lambda bar: []))  # no new entries
    sim.state.clock.set_speed(1.0)  # the premium moves slowly: a level between the stop and the price holds
    stop = ours("TRIGGER PENDING")[0]
    symbol = stop.instrument.tradingsymbol
    wait_until(
        qapp, lambda: session.snapshot().segments[0].option_price is not None, 10, "the option's price"
    )
    ltp = session.snapshot().segments[0].option_price
    assert ltp is not None
    level = floor_tick((stop.trigger_price + ltp) / 2)
    assert stop.trigger_price < level < ltp

    outcome = session.move_stop(symbol, str(level)).result(timeout=20)
    assert f"moved to {level}" in outcome.text
    assert (stop.trigger_price, stop.price, stop.status) == (
        level,
        stop_limit("NFO", level),
        "TRIGGER PENDING",
    )
    wait_until(
        qapp, lambda: session.snapshot().segments[0].stop_price == level, 5, "the strategy keeping the stop"
    )

    session.exit_position(symbol).result(timeout=20)

    def held() -> int:
        legs = [leg for leg in book.legs.values() if leg.instrument.tradingsymbol == symbol]
        return sum(leg.buy_quantity - leg.sell_quantity for leg in legs)

    wait_until(qapp, lambda: held() == 0, 30, "the manual exit filled at the broker")
    assert stop.status == "CANCELLED" and stop.filled_quantity == 0, "the stop cancelled, never sold twice"
    sells = [
        o for o in book.orders.values() if o.tag == tag and o.transaction_type == "SELL" and o.filled_quantity
    ]
    assert len(sells) == 1 and sells[0].market_protection, "a MARKET order with market protection"
    wait_until(qapp, lambda: session.snapshot().segments[0].quantity == 0, 10, "the session flat")
    assert _journal(session, "manual_stop_move")[0]["to"] == str(level)
    assert _journal(session, "manual_exit")[0]["sent"] is True
    session.stop("square_off")


def test_a_manual_cancel_of_a_working_live_entry(demo_engine: Engine, qapp, monkeypatch) -> None:
    # The trader's own patience would cancel the rest 30 s (market time, 0.25 s here) after it was sent.
    monkeypatch.setattr("desktop.engine.trader.ORDER_PATIENCE", timedelta(hours=1))
    sim, book = sim_book(demo_engine)
    sim.inject_fault({"kind": "fill_part_of_next_order", "api_key": "UK9394", "quantity": 65})
    session = demo_engine.open_session("UK9394", "Manual cancel")
    session.start(params(segments=["NIFTY"], lots=3, stop_loss=7, itm_offset=150, mode="LIVE"))
    tag = session.key.order_tag

    def working_entries():
        return [o for o in session.snapshot().orders if o.side.value == "BUY" and o.status.value == "OPEN"]

    wait_until(qapp, working_entries, 60, "an entry working part-filled at the broker")
    entry = working_entries()[0]
    session.cancel_order(entry.tradingsymbol, entry.order_id).result(timeout=20)
    at_broker = book.orders[entry.order_id]
    wait_until(qapp, lambda: at_broker.status == "CANCELLED", 10, "the entry cancelled at the broker")
    assert (at_broker.filled_quantity, at_broker.cancelled_quantity) == (65, 130)
    # What it bought is the position, protected as any other.
    wait_until(
        qapp,
        lambda: [
            o for o in book.orders.values() if o.tag == tag and o.order_type == "SL" and o.quantity == 65
        ],
        20,
        "a stop for the 65 bought",
    )
    [note] = _journal(session, "manual_cancel")
    assert (note["order_id"], note["role"], note["by"]) == (entry.order_id, "entry", "window")
    session.stop("square_off")


def test_a_stop_at_kites_modification_cap_is_replaced_at_the_level_moved_to(
    demo_engine: Engine, qapp
) -> None:
    # The broker's stop has had Kite's 25 modifications (an earlier run trailed it; this one counts from 0): the
    # simulator refuses the next, and the stop is replaced (cancelled, then placed at the level) rather than left.
    sim, book = sim_book(demo_engine)
    session = demo_engine.open_session("UK9394", "Capped")
    session.start(params(segments=["NIFTY"], lots=1, stop_loss=7, itm_offset=150, mode="LIVE"))
    tag = session.key.order_tag

    def ours(status: str):
        return [
            o for o in book.orders.values() if o.tag == tag and o.order_type == "SL" and o.status == status
        ]

    wait_until(qapp, lambda: ours("TRIGGER PENDING"), 60, "a LIVE position under its SL order")
    agent = session.agent(session.params.segments[0])  # type: ignore[union-attr]
    assert agent is not None
    agent.run_on_thread(lambda trader: setattr(trader.strategy, "on_bar", lambda bar: []))  # no new entries
    sim.state.clock.set_speed(1.0)
    old = ours("TRIGGER PENDING")[0]
    old.modifications = MAX_MODIFICATIONS
    symbol = old.instrument.tradingsymbol
    wait_until(
        qapp, lambda: session.snapshot().segments[0].option_price is not None, 10, "the option's price"
    )
    ltp = session.snapshot().segments[0].option_price
    assert ltp is not None
    level = floor_tick((old.trigger_price + ltp) / 2)
    assert old.trigger_price < level < ltp

    outcome = session.move_stop(symbol, str(level)).result(timeout=20)
    assert f"moved to {level}" in outcome.text, outcome.text
    assert old.status == "CANCELLED" and old.filled_quantity == 0
    resting = ours("TRIGGER PENDING")
    assert [(o.trigger_price, o.price, o.quantity) for o in resting] == [
        (level, stop_limit("NFO", level), old.quantity)
    ], "one stop, at the level, for what is held"
    wait_until(qapp, lambda: session.snapshot().segments[0].protection == "", 5, "the position protected")
    session.stop("square_off")
