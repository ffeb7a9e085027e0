"""Late fills of a position let go (gone from the broker, desktop/engine/outside.py): counted in the day's P&L,
and never booked against a newer position in the same option."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from desktop.domain import OptionRight, Tick
from desktop.engine.strategy.base import EnterPosition
from desktop.engine.trader import SegmentTrader
from tests.engine.traders import T0, RecordingGateway, enter, fill


def index_tick(trader: SegmentTrader, seconds: int) -> None:
    """An index tick `seconds` after T0."""
    price = trader.index_price
    assert price is not None
    trader.on_ticks([Tick(trader.segment.spec.index_token, price, T0 + timedelta(seconds=seconds))])


def broker_check(trader: SegmentTrader, seconds: int) -> None:
    """An index tick with the periodic check of the broker's positions due (it runs every 30 real seconds)."""
    trader.outside.next_check = 0.0
    index_tick(trader, seconds)


def enter_again(trader: SegmentTrader, gateway: RecordingGateway, price: str, seconds: int) -> str:
    """The strategy's next entry, filled in full; returns its order id."""
    trader.strategy.pending_entry = OptionRight.CE
    trader.act([EnterPosition(OptionRight.CE, "test")])
    entry = gateway.placed[-1]
    order_id = gateway.orders()[-1].order_id
    fill(trader, order_id, entry.quantity, price, f"F{order_id}", at=T0 + timedelta(seconds=seconds))
    return order_id


def test_a_late_fill_of_a_let_go_positions_stop_is_never_booked_against_the_next_position(make) -> None:
    # The periodic check let the position go (the broker showed none) while Kite refused to cancel its stop. The
    # next entry bought the same strike; then the old stop's fill came. Matched by symbol only, it sold the new
    # holding: the trader went flat while the broker still held the new position, and its stop was cancelled.
    trader, gateway, store = make()
    enter(trader, gateway, "200")  # O1 bought 195, O2 its stop
    first = trader.holding
    assert first is not None
    gateway.net = 0
    gateway.refuse_cancel = True  # "being processed": the stop is filling at the broker
    broker_check(trader, 1)
    broker_check(trader, 31)
    assert trader.holding is None and trader.keeper.let_go is first, "let go, its stop not cancelled"
    gateway.refuse_cancel = False
    gateway.net = 195
    new_entry = enter_again(trader, gateway, "210", 40)  # O3, its stop O4
    h = trader.holding
    assert h is not None and h.tradingsymbol == first.tradingsymbol and h.quantity == 195
    assert h.stop_order is not None and h.stop_order.order_id != "O2"
    new_stop = h.stop_order.order_id
    assert new_entry == "O3" and new_stop == "O4"

    fill(trader, "O2", 195, "186", "F2", at=T0 + timedelta(seconds=45))  # the old stop's late fill

    assert trader.holding is h and h.quantity == 195, "the new position is still held"
    assert h.stop_order.resting and new_stop not in gateway.cancelled, "the new position keeps its stop"
    assert trader.realised == Decimal("-2730.00"), "the old stop's sale is counted (195 × (186 − 200))"
    assert trader.ctx.risk.open_positions == 1
    rows = [p for p in store.positions.for_session(broker_id="UK9394", session_id=trader.ctx.key.session_id)
            if p.tradingsymbol == h.tradingsymbol]  # fmt: skip
    assert [p.quantity for p in rows] == [195], "the stored position is the new one, not flat"
    kinds = [
        n.kind for n in store.journal.for_session(broker_id="UK9394", session_id=trader.ctx.key.session_id)
    ]
    assert "late_fill_counted" in kinds
    log = trader.log.path.read_text()
    assert "after the position was let go: P&L -2730.00 counted" in log
    assert "still held" not in log, "the old stop settling is nothing to the new position"

    # The new position's own stop still closes it, with its own P&L.
    fill(trader, new_stop, 195, "205", "F4", at=T0 + timedelta(seconds=60))
    assert trader.holding is None and trader.realised == Decimal("-2730.00") + Decimal("-975.00")
