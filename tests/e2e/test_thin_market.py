"""A thin option book on the simulator (real kiteconnect, real sockets): a LIVE entry that fills only in part
has its rest cancelled after `ORDER_PATIENCE`, and the part bought is held under a stop at the broker."""

from __future__ import annotations

import re

from desktop.engine import Engine
from tests.e2e.conftest import params, sim_book, wait_until


def listed_as(order, kind: str) -> bool:
    """The simulator's order is of `kind`; a MARKET order with market protection is listed as a LIMIT, as Kite
    lists it."""
    return order.order_type == kind or (
        kind == "MARKET" and order.order_type == "LIMIT" and order.market_protection
    )


def test_a_live_entry_filled_in_part_becomes_the_position_with_its_stop_at_the_broker(
    demo_engine: Engine, qapp
) -> None:
    sim, book = sim_book(demo_engine)
    sim.inject_fault({"kind": "fill_part_of_next_order", "api_key": "UK9394", "quantity": 65})
    session = demo_engine.open_session("UK9394", "Computer 3")
    lines: list[str] = []
    session.sig_log_line.connect(lambda line: lines.append(line.text))
    session.start(params(segments=["NIFTY"], lots=3, stop_loss=7, itm_offset=150, mode="LIVE"))

    def ours(kind: str):
        return [o for o in book.orders.values() if (o.tag or "").startswith("KD") and listed_as(o, kind)]

    def part_entry_cancelled():
        return [o for o in ours("MARKET") if o.status == "CANCELLED" and o.filled_quantity == 65]

    wait_until(qapp, part_entry_cancelled, 60, "the part-filled entry's rest cancelled")
    entry = part_entry_cancelled()[0]
    assert (entry.transaction_type, entry.quantity, entry.cancelled_quantity) == ("BUY", 195, 130)
    wait_until(
        qapp,
        lambda: [o for o in ours("SL") if o.status == "TRIGGER PENDING"],
        20,
        "a stop for the part bought",
    )
    stop = next(o for o in ours("SL") if o.status == "TRIGGER PENDING")
    assert (stop.instrument.tradingsymbol, stop.quantity) == (entry.instrument.tradingsymbol, 65)
    symbol = entry.instrument.tradingsymbol
    wait_until(
        qapp, lambda: any(f"Entry filled: 65 {symbol}" in line for line in lines), 10, "the entry of 65"
    )
    assert any(
        re.search(r"entry order \S+ still open after 3\d s \(65 of 195 filled\)", line) for line in lines
    )
    session.stop("square_off")
    legs = [
        leg for leg in book.legs.values() if leg.instrument.tradingsymbol == entry.instrument.tradingsymbol
    ]
    assert sum(leg.buy_quantity - leg.sell_quantity for leg in legs) == 0, "squared off: 65 sold, no more"
    assert stop.status == "CANCELLED"


def test_a_live_square_off_the_broker_rejects_leaves_the_position_under_a_new_stop(
    demo_engine: Engine, qapp
) -> None:
    # The square-off cancels the resting stop, then sells; the sale is rejected (RMS, margin). The session must not
    # end with the position at the broker and no stop: it waits, places a stop again, and ends "kept".
    sim, book = sim_book(demo_engine)
    session = demo_engine.open_session("UK9394", "Computer 3")
    session.start(params(segments=["NIFTY"], lots=1, stop_loss=30, itm_offset=150, mode="LIVE"))

    def ours(kind: str, status: str):
        return [o for o in book.orders.values() if (o.tag or "").startswith("KD") and listed_as(o, kind)
                and o.status == status]  # fmt: skip

    wait_until(qapp, lambda: ours("SL", "TRIGGER PENDING"), 60, "a LIVE position under its stop")
    first_stop = ours("SL", "TRIGGER PENDING")[0]
    symbol = first_stop.instrument.tradingsymbol
    agent = session.agent(session.params.segments[0])  # type: ignore[union-attr]
    assert agent is not None
    agent.run_on_thread(lambda trader: setattr(trader.strategy, "on_bar", lambda bar: []))  # no more signals
    sim.inject_fault({"kind": "reject_next_order", "api_key": "UK9394"})
    demo_engine.close_session(session.key, "square_off")  # its tab closed with "Square off"
    assert first_stop.status == "CANCELLED"
    rejected = ours("MARKET", "REJECTED")
    assert (
        rejected
        and rejected[-1].transaction_type == "SELL"
        and rejected[-1].instrument.tradingsymbol == symbol
    )
    again = [o for o in ours("SL", "TRIGGER PENDING") if o.instrument.tradingsymbol == symbol]
    legs = [leg for leg in book.legs.values() if leg.instrument.tradingsymbol == symbol]
    held = sum(leg.buy_quantity - leg.sell_quantity for leg in legs)
    assert held == 65 and [o.quantity for o in again] == [65], "still held, and protected at the broker again"
    assert demo_engine.label_resumes("UK9394", "Computer 3"), "kept: the next tab of this label takes it over"
