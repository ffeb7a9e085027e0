"""A LIVE position closed outside KiteDesk (the trader sells it in Kite web) on the simulator, with the real
kiteconnect client: stopping the session must not sell it again, which would open a short option position,
and the resting stop-loss order, which would do the same when triggered, is cancelled."""

from __future__ import annotations

import time

from desktop.domain import Segment
from desktop.engine import Engine
from tests.e2e.conftest import params, sim_book, wait_until


def test_a_position_sold_in_kite_web_is_not_sold_again_by_the_square_off(demo_engine: Engine, qapp) -> None:
    sim, book = sim_book(demo_engine)
    session = demo_engine.open_session("UK9394", "Computer 3")
    lines: list[str] = []
    session.sig_log_line.connect(lambda line: lines.append(line.text))
    session.start(params(segments=["NIFTY"], lots=3, stop_loss=20, itm_offset=150, mode="LIVE"))

    def tagged():
        return [o for o in book.orders.values() if (o.tag or "").startswith("KD")]

    def protected():
        orders = tagged()
        stops = [o for o in orders if o.order_type == "SL" and o.status == "TRIGGER PENDING"]
        entries = [o for o in orders if o.transaction_type == "BUY" and o.status == "COMPLETE"]
        return (entries[-1], stops[-1]) if stops and entries else None

    async def sell_in_kite_web(symbol: str, quantity: int):
        # On the simulator's loop, so no order of KiteDesk's comes between the look and the sale.
        held = sum(leg.quantity for leg in book.legs.values() if leg.instrument.tradingsymbol == symbol)
        if held != quantity:
            return None  # the strategy has just exited by itself: wait for its next position
        form = {"exchange": "NFO", "tradingsymbol": symbol, "transaction_type": "SELL", "quantity": str(quantity),
                "product": "MIS", "order_type": "MARKET", "market_protection": "-1"}  # fmt: skip
        return book.place(form, "regular", sim.state.clock.now())  # no tag: not KiteDesk's

    manual = None
    for _attempt in range(5):
        wait_until(qapp, protected, 60, "a LIVE position protected by a stop at the broker")
        entry, stop = protected()
        symbol = entry.instrument.tradingsymbol
        manual = sim.call(lambda: sell_in_kite_web(symbol, entry.quantity))  # noqa: B023
        if manual is not None:
            break
    assert manual is not None, "the strategy always exited before the trader could"
    assert manual.status == "COMPLETE"
    session.stop("square_off")
    sells = [o for o in tagged() if o.transaction_type == "SELL" and int(o.order_id) > int(manual.order_id)]
    assert [
        o for o in sells if o.instrument.tradingsymbol == symbol and o.order_type in ("MARKET", "LIMIT")
    ] == []
    leg = next(leg for leg in book.legs.values() if leg.instrument.tradingsymbol == symbol)
    assert leg.quantity == 0, "no short option position"
    assert stop.status == "CANCELLED"
    wait_until(qapp, lambda: any("closed outside KiteDesk?" in line for line in lines), 5, "the log line")


def test_two_sessions_holding_one_option_keep_one_stop_once_part_is_sold_in_kite_web(
    demo_engine: Engine, qapp
) -> None:
    # Two tabs of one account buy the same call; the trader sells one tab's worth in Kite web. Each tab used to
    # compare the account's 65 with its own 65 and keep its stop: both triggered would sell 65 short.
    sim, book = sim_book(demo_engine)
    sessions = [demo_engine.open_session("UK9394", label) for label in ("A", "B")]
    for s in sessions:
        s.start(params(segments=["NIFTY"], lots=1, stop_loss=30, itm_offset=150, mode="LIVE"))

    def holding(s):  # type: ignore[no-untyped-def]
        seg = s.snapshot().segments
        return seg[0].option_symbol if seg and seg[0].quantity == 65 else None

    def both_hold_one_option() -> bool:
        symbols = [holding(s) for s in sessions]
        return symbols[0] is not None and symbols[0] == symbols[1]

    wait_until(qapp, both_hold_one_option, 60, "both sessions holding the same call")
    for s in sessions:  # no more signals: the positions stay while the test looks
        s.agent(Segment.NIFTY).run_on_thread(lambda t: setattr(t.strategy, "on_bar", lambda bar: []))
    symbol = holding(sessions[0])
    a, b = sessions
    wait_until(
        qapp, lambda: b._others_holding("NFO", symbol) == [(a.key.session_id, 65)], 5, "each sees the other"
    )

    def stops():  # type: ignore[no-untyped-def]
        return [o for o in book.orders.values() if (o.tag or "").startswith("KD") and o.order_type == "SL"
                and o.instrument.tradingsymbol == symbol and o.status == "TRIGGER PENDING"]  # fmt: skip

    wait_until(qapp, lambda: len(stops()) == 2, 30, "a stop at the broker for each")
    form = {"exchange": "NFO", "tradingsymbol": symbol, "transaction_type": "SELL", "quantity": "65",
            "product": "MIS", "order_type": "MARKET", "market_protection": "-1"}  # fmt: skip
    assert sim.call(lambda: _place(book, form, sim)).status == "COMPLETE"  # the trader, in Kite web

    for _sighting in range(2):  # the check runs every 30 s and acts on its second sighting: made due now
        for s in sessions:
            s.agent(Segment.NIFTY).run_on_thread(lambda t: setattr(t.outside, "next_check", 0.0))
        qapp.processEvents()
        wait_until(qapp, lambda: all(s.agent(Segment.NIFTY).backlog == 0 for s in sessions), 5, "checked")
        time.sleep(0.3)  # a few index ticks (120x): the checks run on them
    wait_until(qapp, lambda: len(stops()) == 1, 10, "one stop left, for the 65 the account holds")
    assert [o.quantity for o in stops()] == [65]
    first = min(sessions, key=lambda s: s.key.session_id)
    # The panels follow within a publish round (a flat segment nobody looks at is published once a second).
    wait_until(
        qapp,
        lambda: holding(first) == symbol and all(holding(s) is None for s in sessions if s is not first),
        5,
        "the first session keeps the 65, the other lets its 65 go",
    )
    other = next(s for s in sessions if s is not first)
    assert other._others_holding("NFO", symbol) == [(first.key.session_id, 65)]
    first.agent(Segment.NIFTY).run_on_thread(lambda t: 1 / 0)  # a strategy bug: that segment fails
    # Its frozen snapshot no longer counts: it would hold a share of the account's position for ever.
    wait_until(qapp, lambda: other._others_holding("NFO", symbol) == [], 5, "a failed segment not counted")


async def _place(book, form, sim):  # type: ignore[no-untyped-def]
    return book.place(form, "regular", sim.state.clock.now())  # no tag: not KiteDesk's
