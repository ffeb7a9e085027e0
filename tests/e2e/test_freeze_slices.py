"""Orders above the exchange's freeze quantity (real kiteconnect, the strict simulator, LIVE): the entry goes out
in slices (Kite's autoslice), the position is protected by stop-loss orders that each stay within the freeze and
together cover exactly what is held, the exit sells it all, and the session's P&L equals the broker's trades."""

from __future__ import annotations

from decimal import Decimal

import pytest

from desktop.broker import exchange_rules as rules
from desktop.engine import Engine
from tests.e2e.conftest import params, sim_book, wait_until


def _ours(book, tag: str):
    return [o for o in book.orders.values() if o.tag == tag]


def _held(book, symbol: str) -> int:
    legs = [leg for leg in book.legs.values() if leg.instrument.tradingsymbol == symbol]
    return sum(leg.buy_quantity - leg.sell_quantity for leg in legs)


def _resting_stops(book, tag: str):
    return [o for o in _ours(book, tag) if o.order_type == "SL" and o.status in ("TRIGGER PENDING", "OPEN")]


def _brokers_pnl(book, tag: str, symbol: str) -> Decimal:
    ours = {o.order_id for o in _ours(book, tag)}
    return sum(
        (
            Decimal(str(t["average_price"])) * t["quantity"] * (1 if t["transaction_type"] == "SELL" else -1)
            for t in book.trades
            if t["order_id"] in ours and t["tradingsymbol"] == symbol
        ),
        Decimal(0),
    ).quantize(Decimal("0.01"))


@pytest.mark.parametrize(("index", "lots", "freeze"), [("NIFTY", 60, 1800), ("BANKNIFTY", 25, 600)])
def test_an_entry_above_the_freeze_is_sliced_protected_exactly_and_exited_with_the_brokers_pnl(
    demo_engine: Engine, qapp, index: str, lots: int, freeze: int
) -> None:
    sim, book = sim_book(demo_engine)
    assert rules.freeze_quantity(index) == freeze
    session = demo_engine.open_session("UK9394", "Computer 3")
    session.start(params(segments=[index], lots=lots, stop_loss=7, itm_offset=0, mode="LIVE"))
    tag = session.key.order_tag
    segment = session.params.segments[0]  # type: ignore[union-attr]

    def entries():
        return [o for o in _ours(book, tag) if o.transaction_type == "BUY"]

    wait_until(qapp, lambda: entries() and all(o.status == "COMPLETE" for o in entries()), 90, "a sliced entry")
    lot = entries()[0].instrument.lot_size
    symbol = entries()[0].instrument.tradingsymbol
    cap = freeze - freeze % lot
    assert len(entries()) > 1 and all(o.quantity <= cap for o in entries()), "each slice within the freeze"
    assert sum(o.quantity for o in entries()) == lots * lot
    agent = session.agent(segment)
    assert agent is not None
    agent.post_command("call", lambda trader: setattr(trader.strategy, "on_bar", lambda bar: []))

    def covered() -> bool:
        stops = _resting_stops(book, tag)
        return sum(o.quantity - o.filled_quantity for o in stops) == _held(book, symbol) == lots * lot

    wait_until(qapp, covered, 30, "stops covering exactly the held quantity")
    stops = _resting_stops(book, tag)
    assert len(stops) > 1 and all(o.quantity <= cap for o in stops), "one stop per slice, each within the freeze"
    wait_until(qapp, lambda: session.snapshot().segments[0].quantity == lots * lot, 10, "held as one position")

    agent.post_command("call", lambda trader: trader.exit("manual"))
    wait_until(qapp, lambda: _held(book, symbol) == 0, 60, "the whole position sold")
    wait_until(qapp, lambda: not _resting_stops(book, tag), 20, "no stop left resting")
    broker = _brokers_pnl(book, tag, symbol)
    wait_until(qapp, lambda: session.snapshot().realised_pnl == broker, 20, f"the session's P&L = broker's {broker}")
    session.stop("square_off")
