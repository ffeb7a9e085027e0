"""Recovery at unit level: `recover_live` against a broker's order book and positions given by hand (the e2e
tests run it against the simulator after a real kill -9), `recover_paper` from the store's fills."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from desktop.broker.errors import InputRejected
from desktop.domain import (
    Fill,
    Mode,
    OptionRight,
    Order,
    OrderRole,
    OrderStatus,
    OrderType,
    Position,
    Side,
    Tick,
)
from desktop.engine.recovery import recover_live, recover_paper
from desktop.engine.snapshots import AgentState
from desktop.engine.strategy.base import EnterPosition
from tests.engine.traders import T0

SYMBOL = "NIFTY2611324850CE"


class Book:
    """The broker's side for `recover_live`: this session's orders, cancels and modifications it receives."""

    def __init__(self, orders: list[Order], refuse_modify: bool = False) -> None:
        self._orders = orders
        self.refuse_modify = refuse_modify
        self.cancelled: list[str] = []
        self.modified: list[tuple[str, int | None]] = []

    def reconcile(self) -> list[Order]:
        return [o for o in self._orders if o.order_id not in self.cancelled]

    def know_fills(self, fills: object) -> None:
        """The recorded fills a restart tells the gateway of (not read again): nothing to read here."""

    def cancel(self, order_id: str) -> Order:
        self.cancelled.append(order_id)
        return next(o for o in self._orders if o.order_id == order_id)

    def modify(self, order_id: str, *, quantity: int | None = None, **_: object) -> Order:
        if self.refuse_modify:
            raise InputRejected("Order cannot be modified")
        self.modified.append((order_id, quantity))
        return next(o for o in self._orders if o.order_id == order_id)


def order(trader, oid, side, qty, kind, status, filled=0, price="0", trigger=None, minute=0) -> Order:
    return Order(oid, trader.ctx.key, Mode.LIVE, "NFO", SYMBOL, side, qty, kind, status, filled, Decimal(price),
                 trigger_price=Decimal(trigger) if trigger else None,
                 timestamp=T0 + timedelta(minutes=minute))  # fmt: skip


def bought(trader, minute=0):
    return order(
        trader, "B1", Side.BUY, 195, OrderType.MARKET, OrderStatus.COMPLETE, 195, "200", minute=minute
    )


def stop(trader, status=OrderStatus.TRIGGER_PENDING, filled=0, price="0"):
    return order(trader, "S1", Side.SELL, 195, OrderType.SL, status, filled, price, "186", minute=1)


def test_a_stop_left_with_no_position_behind_it_is_cancelled(make) -> None:
    trader, _, _ = make()
    book = Book([bought(trader), stop(trader)])
    recover_live(trader, book, {SYMBOL: 0}, T0)  # sold in Kite web while KiteDesk was down
    assert trader.holding is None and book.cancelled == ["S1"]


def test_the_adopted_stop_is_resized_to_the_quantity_held(make) -> None:
    trader, gateway, _ = make()
    book = Book([bought(trader), stop(trader)])
    recover_live(trader, book, {SYMBOL: 65}, T0)  # 130 sold outside
    assert trader.holding is not None and trader.holding.quantity == 65
    assert book.modified == [("S1", 65)] and book.cancelled == []
    assert trader.holding.stop_order is not None and trader.holding.stop_order.intent.quantity == 65
    assert gateway.placed == []


def test_a_stop_that_cannot_be_resized_is_replaced_by_one_of_the_right_size(make) -> None:
    trader, gateway, _ = make()
    book = Book([bought(trader), stop(trader)], refuse_modify=True)
    recover_live(trader, book, {SYMBOL: 65}, T0)
    assert book.cancelled == ["S1"]
    assert [(i.order_type, i.quantity) for i in gateway.placed] == [(OrderType.SL, 65)]


def test_an_exit_left_working_is_cancelled_before_the_position_is_adopted_with_one_stop(make) -> None:
    trader, gateway, _ = make()
    book = Book([
        bought(trader),
        stop(trader, OrderStatus.CANCELLED),
        order(trader, "X1", Side.SELL, 195, OrderType.MARKET, OrderStatus.OPEN, minute=2),
    ])  # fmt: skip
    recover_live(trader, book, {SYMBOL: 195}, T0)
    assert book.cancelled == ["X1"]
    assert trader.holding is not None and trader.holding.quantity == 195
    assert [(i.order_type, i.quantity) for i in gateway.placed] == [(OrderType.SL, 195)]


def test_a_live_restart_keeps_the_days_loss_for_the_daily_loss_limit(make) -> None:
    trader, _, _ = make(max_daily_loss=3000)
    # The previous run bought 195 at 200; its stop sold them at 180 while KiteDesk was down.
    book = Book([bought(trader), stop(trader, OrderStatus.COMPLETE, 195, "180")])
    recover_live(trader, book, {SYMBOL: 0}, T0 + timedelta(minutes=5))
    assert trader.realised == Decimal("-3900.00") and trader.holding is None
    assert trader.ctx.risk.daily_pnl == Decimal("-3900.00") and trader.ctx.risk.loss_limit_breached


def test_a_position_its_stop_closed_while_kitedesk_was_down_is_stored_flat_with_the_days_pnl(make) -> None:
    trader, _, store = make()
    key = trader.ctx.key
    # The previous run stored its position (195 held) before it stopped; its stop sold them at 180 meanwhile.
    store.positions.upsert(Position(key, Mode.LIVE, "NFO", SYMBOL, 195, Decimal("200"), Decimal("200")))
    book = Book([bought(trader), stop(trader, OrderStatus.COMPLETE, 195, "180")])
    recover_live(trader, book, {SYMBOL: 0}, T0 + timedelta(minutes=5))
    (row,) = store.positions.for_session(broker_id=key.broker_id, session_id=key.session_id)
    # Not "195 held" any more (a later start would manage a position that is gone), and the day's P&L stored is
    # the one the broker's orders give, as the session shows it.
    assert (row.quantity, row.realised_pnl) == (0, Decimal("-3900.00")) == (0, trader.realised)


def test_a_paper_position_row_left_held_by_a_crash_is_stored_flat_on_restart(make) -> None:
    trader, _, store = make(Mode.PAPER)
    key = trader.ctx.key
    for fid, side, price in (("F1", Side.BUY, "100"), ("F2", Side.SELL, "110")):
        store.fills.record(Fill(fid, f"O{fid}", key, Mode.PAPER, "NFO", SYMBOL, side, 65, Decimal(price), T0))
    # The sale's fill was durable, its position row (written later, in the background) was not: kill -9.
    store.positions.upsert(Position(key, Mode.PAPER, "NFO", SYMBOL, 65, Decimal("100"), Decimal("100")))
    recover_paper(trader, T0 + timedelta(minutes=5))
    (row,) = store.positions.for_session(broker_id=key.broker_id, session_id=key.session_id)
    assert (row.quantity, row.realised_pnl) == (0, Decimal("650.00"))


def test_a_paper_restart_counts_only_the_days_fills_in_its_pnl(make) -> None:
    trader, _, store = make(Mode.PAPER)
    key = trader.ctx.key
    yesterday, today = T0 - timedelta(days=1), T0
    for fid, side, price, at in (("F1", Side.BUY, "200", yesterday), ("F2", Side.SELL, "180", yesterday),
                                 ("F3", Side.BUY, "100", today), ("F4", Side.SELL, "110", today)):  # fmt: skip
        store.fills.record(
            Fill(fid, f"O{fid}", key, Mode.PAPER, "NFO", SYMBOL, side, 195, Decimal(price), at)
        )
    recover_paper(trader, today)
    assert trader.realised == Decimal("1950.00")  # today's +10 × 195, not yesterday's −20 × 195
    assert trader.ctx.risk.daily_pnl == Decimal("1950.00")
    # The trades and orders tables show the day's earlier fills and orders, as the day's P&L counts them.
    assert [f.fill_id for f in trader.fill_rows] == ["F3", "F4"]


def test_a_live_restart_shows_the_days_earlier_orders_and_fills_of_its_segment(make) -> None:
    trader, _, store = make()
    key = trader.ctx.key
    earlier = [bought(trader), stop(trader, OrderStatus.COMPLETE, 195, "180")]
    other = Order("BN1", key, Mode.LIVE, "NFO", "BANKNIFTY26113600000CE", Side.BUY, 30, OrderType.MARKET,
                  OrderStatus.COMPLETE, 30, Decimal("300"), timestamp=T0)  # fmt: skip
    for o in (*earlier, other):
        store.orders.record(o)
    store.fills.record(Fill("F1", "B1", key, Mode.LIVE, "NFO", SYMBOL, Side.BUY, 195, Decimal("200"), T0))
    store.fills.record(Fill("F2", "S1", key, Mode.LIVE, "NFO", SYMBOL, Side.SELL, 195, Decimal("180"), T0))
    recover_live(trader, Book(earlier), {SYMBOL: 0}, T0 + timedelta(minutes=5))
    assert list(trader.order_rows) == ["B1", "S1"]  # BANKNIFTY's order is its own segment's to show
    assert [f.fill_id for f in trader.fill_rows] == ["F1", "F2"]


def _try_entry(trader) -> None:
    trader.strategy.pending_entry = OptionRight.CE  # as after the strategy's own EnterPosition
    trader.act([EnterPosition(OptionRight.CE, "signal")])


def test_a_flat_live_restart_keeps_the_days_trade_count_so_the_trade_cap_holds(make) -> None:
    trader, gateway, _ = make(max_trades_per_day=1)
    # The previous run's one round trip of the day: bought, then sold by its stop; then kill -9.
    book = Book([bought(trader), stop(trader, OrderStatus.COMPLETE, 195, "210")])
    now = T0 + timedelta(minutes=5)
    recover_live(trader, book, {SYMBOL: 0}, now)
    trader.market_time = now
    _try_entry(trader)
    assert gateway.placed == [], "a second entry with max_trades_per_day = 1"
    assert trader.ctx.risk.trades_today(trader.segment) == 1
    snap = trader.snapshot(AgentState.RUNNING)
    assert snap.trades_today == 1 and snap.risk_note == "trade cap 1 reached, no more entries today"
    refusals = [line for line in trader.log.path.read_text().splitlines() if "entry refused by risk" in line]
    assert refusals == [
        "2026-01-08 10:05:00 - LiveAgent-NIFTY-LIVE-UK9394 - INFO - entry refused by risk: "
        "trade cap 1 reached, no more entries today"
    ]


def test_an_adopted_position_counts_as_the_one_trade_it_was_not_two(make) -> None:
    trader, _, _ = make(max_trades_per_day=2)
    recover_live(trader, Book([bought(trader), stop(trader)]), {SYMBOL: 195}, T0)
    assert trader.holding is not None and trader.ctx.risk.trades_today(trader.segment) == 1


def test_a_flat_paper_restart_counts_the_days_entries_from_its_fills(make) -> None:
    trader, gateway, store = make(Mode.PAPER, max_trades_per_day=2)
    key = trader.ctx.key
    for n, (side, at) in enumerate(((Side.BUY, T0 - timedelta(days=1)), (Side.SELL, T0 - timedelta(days=1)),
                                    (Side.BUY, T0), (Side.SELL, T0), (Side.BUY, T0), (Side.SELL, T0))):  # fmt: skip
        store.fills.record(Fill(f"F{n}", f"O{n}", key, Mode.PAPER, "NFO", SYMBOL, side, 65, Decimal(100), at))
    now = T0 + timedelta(minutes=5)
    recover_paper(trader, now)
    assert trader.ctx.risk.trades_today(trader.segment) == 2  # today's two entries, not yesterday's
    trader.market_time = now
    _try_entry(trader)
    assert gateway.placed == []


def test_a_restart_counts_the_orders_the_earlier_run_sent_in_the_last_minute(make) -> None:
    trader, gateway, store = make(Mode.PAPER, max_orders_per_minute=2)
    key = trader.ctx.key
    for second, oid in ((10, "P1"), (30, "P2")):
        store.journal.append(key, segment=trader.segment, kind="order_sent", payload={"order_id": oid},
                             market_time=T0 + timedelta(seconds=second))  # fmt: skip
    now = T0 + timedelta(seconds=40)
    recover_paper(trader, now)
    trader.market_time = now
    _try_entry(trader)
    assert gateway.placed == []
    assert trader.snapshot(AgentState.RUNNING).risk_note == "max orders per minute (2) reached"
    trader.market_time = T0 + timedelta(seconds=71)  # the order at 10:00:10 left the window
    _try_entry(trader)
    assert len(gateway.placed) == 1 and trader.snapshot(AgentState.RUNNING).risk_note == ""


def test_recovery_lines_carry_the_starts_market_time_not_the_wall_clock(make) -> None:
    trader, _, _ = make()
    start = T0 + timedelta(minutes=7)
    recover_live(trader, Book([bought(trader), stop(trader)]), {SYMBOL: 195}, start)
    lines = trader.log.path.read_text().splitlines()
    recovered = [
        line for line in lines if "recovered an open position" in line or "kept the stop-loss" in line
    ]
    assert len(recovered) == 2 and all(line.startswith("2026-01-08 10:07:00 - ") for line in recovered)


def test_a_daily_loss_limit_reached_earlier_today_stays_reached_after_a_restart(make) -> None:
    trader, gateway, store = make(max_daily_loss=3000)
    # The previous run's position fell to -3900 (unrealised): the limit was reached and journaled; it then
    # came back and was sold at +1950 by its stop while KiteDesk was down.
    store.journal.append(trader.ctx.key, segment=None, kind="loss_limit_reached",
                         payload={"note": "at 10:02, P&L ₹-3900.00"}, market_time=T0 + timedelta(minutes=2))  # fmt: skip
    book = Book([bought(trader), stop(trader, OrderStatus.COMPLETE, 195, "210")])
    now = T0 + timedelta(minutes=30)
    recover_live(trader, book, {SYMBOL: 0}, now)
    assert trader.ctx.risk.daily_pnl == Decimal("1950.00") and trader.ctx.risk.loss_limit_breached
    trader.market_time = now
    _try_entry(trader)
    assert gateway.placed == []
    note = trader.snapshot(AgentState.RUNNING).risk_note
    assert note.startswith("max daily loss ₹3,000.00 reached (at 10:02, P&L ₹-3900.00")


@pytest.mark.parametrize("status", [OrderStatus.TRIGGER_PENDING, OrderStatus.OPEN])
def test_an_open_sl_of_the_tag_is_adopted_triggered_or_not_and_a_triggered_one_is_chased(
    make, status
) -> None:
    trader, gateway, _ = make()
    sl = replace(stop(trader, status), price=Decimal("167.40"), trigger_price=Decimal("186"))
    gateway._orders["S1"] = sl
    book = Book([bought(trader), sl])
    recover_live(trader, book, {SYMBOL: 195}, T0)
    h = trader.holding
    assert h is not None and h.stop_order is not None and h.stop_order.order_id == "S1"
    assert gateway.placed == [] and book.cancelled == [], "adopted: no second stop"
    assert (h.stop_order.trigger, h.stop_order.limit) == (Decimal("186"), Decimal("167.40"))
    trader.on_ticks([Tick(h.token, Decimal("150"), T0 + timedelta(seconds=5))])
    if status is OrderStatus.OPEN:  # triggered while KiteDesk was down and still unfilled: chased
        assert (
            len(gateway.modified) == 1
            and gateway.limits[0] is not None
            and gateway.limits[0] < Decimal("150")
        )
    else:
        assert gateway.modified == []


def test_a_paper_restart_protects_the_position_it_rebuilds_with_a_stop_at_the_paper_gateway(make) -> None:
    trader, gateway, store = make(Mode.PAPER)
    key = trader.ctx.key
    store.fills.record(Fill("F1", "P1", key, Mode.PAPER, "NFO", SYMBOL, Side.BUY, 195, Decimal("200"), T0))
    recover_paper(trader, T0)
    assert trader.holding is not None and trader.holding.quantity == 195
    assert [(i.order_type, i.quantity, i.trigger_price) for i in gateway.placed] == [
        (OrderType.SL, 195, Decimal("186.00"))
    ]


def test_an_entry_an_earlier_run_gave_up_is_watched_for_and_adopted_when_kite_shows_it_after_the_restart(
    make,
) -> None:
    trader, gateway, store = make()
    key = trader.ctx.key
    # The earlier run journalled the entry, lost its reply and gave it up; Kite's book did not show it before the
    # restart, and shows it after.
    intent = trader.intent("NFO", SYMBOL, Side.BUY, 195, "entry", OrderRole.ENTRY)
    store.intents.record(intent, at=T0)
    note = {"intent_id": intent.intent_id, "reason": "lost", "role": OrderRole.ENTRY}
    store.journal.append(key, segment=trader.segment, kind="order_unconfirmed", payload=note, market_time=T0)
    recover_live(trader, Book([]), {}, T0 + timedelta(minutes=2))
    assert trader.holding is None and gateway.placed == []
    late = order(trader, "B9", Side.BUY, 195, OrderType.LIMIT, OrderStatus.COMPLETE, 195, "200", minute=3)
    trader.on_order(late)
    trader.on_fill(Fill("F9", "B9", key, Mode.LIVE, "NFO", SYMBOL, Side.BUY, 195, Decimal("200"), T0))
    assert trader.holding is not None and trader.holding.quantity == 195
    assert [(i.order_type, i.quantity) for i in gateway.placed] == [(OrderType.SL, 195)], "its stop at once"
    assert trader.ctx.risk.trades_today(trader.segment) == 1


def test_an_entry_an_earlier_run_gave_up_that_kite_shows_at_the_restart_is_adopted_by_tag_once(make) -> None:
    trader, gateway, store = make()
    key = trader.ctx.key
    intent = trader.intent("NFO", SYMBOL, Side.BUY, 195, "entry", OrderRole.ENTRY)
    store.intents.record(intent, at=T0)
    note = {"intent_id": intent.intent_id, "reason": "lost", "role": OrderRole.ENTRY}
    store.journal.append(key, segment=trader.segment, kind="order_unconfirmed", payload=note, market_time=T0)
    recover_live(trader, Book([bought(trader)]), {SYMBOL: 195}, T0 + timedelta(minutes=2))
    assert trader.holding is not None and trader.holding.quantity == 195
    assert [(i.order_type, i.quantity) for i in gateway.placed] == [(OrderType.SL, 195)]
    assert trader.orders.given_up == [], "in the book: adopted by the session's tag, not watched for again"


def _adopt_part_sold_stop(make):
    """A LIVE restart finds its stop S1 (195) triggered and part filled (65) while KiteDesk was down: 130 held."""
    trader, gateway, store = make()
    sl = replace(stop(trader, OrderStatus.OPEN, filled=65, price="167.40"), trigger_price=Decimal("186"))
    gateway._orders["S1"] = sl
    recover_live(trader, Book([bought(trader), sl]), {SYMBOL: 130}, T0)
    h = trader.holding
    assert h is not None and h.quantity == 130 and h.stop_order is not None
    assert h.stop_order.order_id == "S1" and h.stop_order.intent.quantity == 130
    return trader, gateway, h


def test_an_adopted_part_filled_stop_resized_later_is_sent_its_earlier_fills_in_its_total(make) -> None:
    trader, gateway, h = _adopt_part_sold_stop(make)
    trader.protection.resize(h, 65)  # 65 more sold in Kite web: 65 held
    # Kite's modify takes the order's total: the 65 it sold before the restart and the 65 it still sells. A total
    # of 65 would end the order with nothing left to sell: the 65 held naked.
    assert gateway.resized == [("S1", 130)]


def test_an_adopted_part_filled_stop_the_exchange_cancels_settles_on_its_own_fills_not_its_earlier_ones(
    make,
) -> None:
    trader, gateway, h = _adopt_part_sold_stop(make)
    stop_order = h.stop_order
    assert stop_order is not None
    # Cancelled with nothing more sold (Kite's filled_quantity still counts the 65 of before the restart).
    trader.on_order(replace(gateway._orders["S1"], status=OrderStatus.CANCELLED, filled_quantity=65))
    assert stop_order.done, "the fills of before the restart are counted already: nothing more to wait for"
    # A triggered stop the exchange cancelled: the 130 held are sold now (before the fix: "waiting for its fills"
    # of 65 that had come before the restart, and the 130 held with no stop).
    assert [(i.role, i.order_type, i.quantity) for i in gateway.placed] == [
        (OrderRole.EXIT, OrderType.MARKET, 130)
    ]
