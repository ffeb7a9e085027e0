"""The protective SL order meets a premium that gaps (real kiteconnect, the strict simulator): triggered and left
unfilled below its limit, it is chased and the position sold; cancelled by limit price protection as it
triggers, the position is sold at once. Each ends flat, with the session's P&L equal to the broker's trades."""

from __future__ import annotations

from decimal import Decimal

import pytest

from desktop.engine import Engine
from tests.e2e.conftest import params, sim_book, wait_until


def _held_under_its_stop(demo_engine: Engine, qapp):
    sim, book = sim_book(demo_engine)
    session = demo_engine.open_session("UK9394", "Computer 3")
    lines: list[str] = []
    session.sig_log_line.connect(lambda line: lines.append(line.text))
    session.start(params(segments=["NIFTY"], lots=1, stop_loss=7, itm_offset=150, mode="LIVE"))
    tag = session.key.order_tag

    def stops(status: str):
        return [
            o for o in book.orders.values() if o.tag == tag and o.order_type == "SL" and o.status == status
        ]

    wait_until(qapp, lambda: stops("TRIGGER PENDING"), 60, "a LIVE position under its SL order")
    agent = session.agent(session.params.segments[0])  # type: ignore[union-attr]
    assert agent is not None
    agent.run_on_thread(lambda trader: setattr(trader.strategy, "on_bar", lambda bar: []))  # no new entries
    return sim, book, session, tag, stops("TRIGGER PENDING")[0], lines


def _flat_with_the_brokers_pnl(qapp, book, session, tag: str, symbol: str) -> None:
    def held() -> int:
        legs = [leg for leg in book.legs.values() if leg.instrument.tradingsymbol == symbol]
        return sum(leg.buy_quantity - leg.sell_quantity for leg in legs)

    wait_until(qapp, lambda: held() == 0, 60, "the position sold")
    ours = {o.order_id for o in book.orders.values() if o.tag == tag}
    trades = [t for t in book.trades if t["order_id"] in ours and t["tradingsymbol"] == symbol]
    broker = sum(
        Decimal(str(t["average_price"])) * t["quantity"] * (1 if t["transaction_type"] == "SELL" else -1)
        for t in trades
    ).quantize(Decimal("0.01"))
    wait_until(
        qapp, lambda: session.snapshot().realised_pnl == broker, 20, f"the session's P&L = broker's {broker}"
    )
    working = [o for o in book.orders.values() if o.tag == tag and o.status in ("OPEN", "TRIGGER PENDING")]
    assert working == [], "nothing left working that could sell short"


@pytest.mark.parametrize("percent", [-25, -55])
def test_a_premium_gapping_through_the_stop_ends_with_the_position_sold_and_the_pnl_the_brokers(
    demo_engine: Engine, qapp, percent: int
) -> None:
    sim, book, session, tag, stop, lines = _held_under_its_stop(demo_engine, qapp)
    symbol = stop.instrument.tradingsymbol
    gap = sim.inject_fault({"kind": "gap_premium", "tradingsymbol": symbol, "percent": percent})
    assert Decimal(str(gap["after"])) < stop.price, "the premium jumped past the stop's limit"
    if percent == -25:  # triggered, resting unfilled below its limit: chased
        wait_until(
            qapp, lambda: any("limit lowered" in line for line in lines), 30, "the triggered stop chased"
        )
        assert stop.order_type == "SL" and stop.price < stop.trigger_price, "chased with limit and trigger"
    else:  # its limit outside price protection when it triggered: cancelled by the exchange
        wait_until(qapp, lambda: stop.status == "CANCELLED", 10, "the LPP cancel")
        assert "limit price protection" in stop.status_message and stop.filled_quantity == 0
    _flat_with_the_brokers_pnl(qapp, book, session, tag, symbol)
    session.stop("square_off")
