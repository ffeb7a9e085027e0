"""An entry whose reply was lost and that Kite's order book showed only after the engine gave it up (real
kiteconnect, the simulator's lagging order book, LIVE): it is the session's own order, so it is adopted when it
shows, counted as the day's trade, protected by its stop-loss order at once and its P&L counted like any other."""

from __future__ import annotations

from desktop.engine import Engine
from desktop.engine.strategy.base import EnterPosition
from tests.e2e.conftest import (
    brokers_pnl,
    held_at_broker,
    params,
    resting_stops,
    sim_book,
    tagged_orders,
    wait_until,
)


def one_signal_only(trader) -> None:
    """The strategy's signals after its first entry are dropped (on the agent's thread)."""
    on_bar, entered = trader.strategy.on_bar, []

    def on_bar_once(bar):  # type: ignore[no-untyped-def]
        if entered:
            return []
        actions = on_bar(bar)
        entered.extend(a for a in actions if isinstance(a, EnterPosition))
        return actions

    trader.strategy.on_bar = on_bar_once


def test_an_entry_kite_showed_only_after_it_was_given_up_is_adopted_protected_and_counted(
    demo_engine: Engine, qapp
) -> None:
    sim, book = sim_book(demo_engine)
    # The entry's reply is lost and Kite's book lags it by 10 market minutes: the lookup by tag finds nothing,
    # the engine gives it up after its patience (30 s), and only then does the order show, and fill.
    sim.inject_fault(
        {"kind": "lose_next_order_reply", "api_key": "UK9394", "how": "503", "appear_after": 600}
    )
    session = demo_engine.open_session("UK9394", "Computer 3")
    lines: list[str] = []
    session.sig_log_line.connect(lambda line: lines.append(line.text))
    session.start(params(segments=["NIFTY"], lots=1, stop_loss=7, itm_offset=0, mode="LIVE"))
    tag = session.key.order_tag
    segment = session.params.segments[0]  # type: ignore[union-attr]

    agent = session.agent(segment)
    assert agent is not None
    # One signal only: the lagging order is the session's only entry (one that shows while the segment holds
    # another position is a different case).
    agent.run_on_thread(one_signal_only)

    def entries():
        return [o for o in tagged_orders(book, tag) if o.transaction_type == "BUY"]

    in_book_at_give_up: list[int] = []

    def given_up() -> bool:
        if any("never showed in Kite's order updates" in x for x in lines):
            in_book_at_give_up.append(len(entries()))
            return True
        return False

    wait_until(qapp, given_up, 60, "the entry given up")
    assert in_book_at_give_up == [0], "given up before Kite's book showed it"
    wait_until(qapp, lambda: entries() and entries()[0].status == "COMPLETE", 60, "the lagging entry filled")
    entry = entries()[0]
    symbol, held = entry.instrument.tradingsymbol, entry.filled_quantity

    wait_until(qapp, lambda: sum(o.quantity for o in resting_stops(book, tag)) == held, 20,
               f"a stop-loss order protecting the {held} bought")  # fmt: skip
    stop = resting_stops(book, tag)[0]
    assert stop.instrument.tradingsymbol == symbol and stop.transaction_type == "SELL"
    assert stop.trigger_price < entry.average_price, "the strategy's stop below the entry price"
    wait_until(qapp, lambda: session.snapshot().segments[0].quantity == held, 10, "the session holds it")
    assert session.snapshot().segments[0].trades_today == 1, "the adopted entry is the day's trade"
    assert not any("an order this run did not place" in x for x in lines)
    assert len(entries()) == 1, "never a second entry while the first was on its way"

    agent.run_on_thread(lambda trader: trader.exit("manual"))
    wait_until(qapp, lambda: held_at_broker(book, symbol) == 0, 60, "the position sold")
    wait_until(qapp, lambda: not resting_stops(book, tag), 20, "no stop left resting")
    broker = brokers_pnl(book, tag, symbol)
    wait_until(
        qapp, lambda: session.snapshot().realised_pnl == broker, 20, f"the session's P&L = broker's {broker}"
    )
    session.stop("square_off")
