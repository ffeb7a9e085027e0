"""PaperGateway unit tests: fills, slippage, limit and stop triggers on ticks, cancels, plain errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal

import pytest

from desktop.broker.errors import InputRejected
from desktop.broker.paper import PaperGateway
from desktop.broker.stream import MarketStream
from desktop.broker.ticks import MODE_LTP, MODE_QUOTE, QuoteTick, TickBatch
from desktop.domain import Fill, Mode, Order, OrderIntent, OrderStatus, OrderType, Segment, SessionKey, Side
from tests.broker.conftest import wait_until

TOKEN = 1317282306
KEY = SessionKey("UK9394", "a" * 32)


class NoFeed:
    """The transport side a MarketStream needs, with no socket behind it (unit level only)."""

    connected = True

    def resync(self) -> None:
        pass

    def detach(self, stream: MarketStream) -> None:
        pass


@pytest.fixture
def stream() -> Iterator[MarketStream]:
    s = MarketStream(NoFeed(), KEY)  # type: ignore[arg-type]
    yield s
    s.close()


def tick(price: str, second: int = 0) -> QuoteTick:
    return QuoteTick(
        TOKEN, MODE_LTP, True, Decimal(price), exchange_timestamp=datetime(2026, 1, 8, 10, 0, second)
    )


def push(stream: MarketStream, *prices: str) -> None:
    for i, p in enumerate(prices):
        stream._offer_ticks(TickBatch(0.0, [tick(p, i)]))


class Seen:
    def __init__(self, gw: PaperGateway) -> None:
        self.orders: list[Order] = []
        self.fills: list[Fill] = []
        self.lock = threading.Lock()
        gw.add_listener(self.orders.append, self.fills.append)

    def status(self, order_id: str) -> OrderStatus | None:
        mine = [o for o in list(self.orders) if o.order_id == order_id]
        return mine[-1].status if mine else None


def intent(side: Side = Side.BUY, order_type: OrderType = OrderType.MARKET, **kw: object) -> OrderIntent:
    return OrderIntent(KEY, Segment.NIFTY, Mode.PAPER, "NFO", "NIFTY2611326450CE", side, 65, order_type, **kw)  # type: ignore[arg-type]


def gateway(stream: MarketStream, slippage: str = "0") -> PaperGateway:
    return PaperGateway(
        KEY, stream, lambda ex, sym: TOKEN if sym == "NIFTY2611326450CE" else None, Decimal(slippage)
    )


def test_market_buy_fills_at_last_price_plus_slippage_rounded_to_tick(stream: MarketStream) -> None:
    stream.subscribe([TOKEN])
    push(stream, "101.02")
    assert wait_until(lambda: stream.last_price(TOKEN) is not None)
    gw = gateway(stream, "0.50")
    seen = Seen(gw)
    order = gw.place(intent())
    assert seen.status(order.order_id) is OrderStatus.COMPLETE
    assert seen.fills[0].price == Decimal("101.50")  # 101.52 rounded to the 0.05 tick
    assert seen.fills[0].timestamp == datetime(2026, 1, 8, 10, 0, 0)  # market time, not the PC's


def test_market_sell_slips_down(stream: MarketStream) -> None:
    stream.subscribe([TOKEN])
    push(stream, "100.00")
    assert wait_until(lambda: stream.last_price(TOKEN) is not None)
    gw = gateway(stream, "0.25")
    seen = Seen(gw)
    gw.place(intent(Side.SELL))
    assert seen.fills[0].price == Decimal("99.75")


def test_market_order_without_a_price_yet_fills_on_the_first_tick(stream: MarketStream) -> None:
    gw = gateway(stream)
    seen = Seen(gw)
    order = gw.place(intent())
    assert TOKEN in stream.subscriptions()  # it subscribed the contract itself
    assert seen.status(order.order_id) is OrderStatus.OPEN
    push(stream, "88.40")
    assert wait_until(lambda: seen.status(order.order_id) is OrderStatus.COMPLETE)
    assert seen.fills[0].price == Decimal("88.40")


def test_sell_stop_triggers_only_when_the_price_falls_to_it(stream: MarketStream) -> None:
    gw = gateway(stream)
    seen = Seen(gw)
    # A stop-loss limit (SL-M is refused for options): trigger 95, limit 93.
    stop = gw.place(intent(Side.SELL, OrderType.SL, trigger_price=Decimal("95"), price=Decimal("93")))
    push(stream, "99", "97.5", "96")
    assert wait_until(lambda: stream.last_price(TOKEN) == Decimal("96"))
    assert seen.status(stop.order_id) is OrderStatus.TRIGGER_PENDING and seen.fills == []
    push(stream, "94.85")
    assert wait_until(lambda: seen.status(stop.order_id) is OrderStatus.COMPLETE)
    assert seen.fills[0].price == Decimal("94.85")


def test_sell_limit_target_fills_at_its_price_or_better(stream: MarketStream) -> None:
    gw = gateway(stream)
    seen = Seen(gw)
    target = gw.place(intent(Side.SELL, OrderType.LIMIT, price=Decimal("120")))
    push(stream, "110", "119.95")
    assert wait_until(lambda: stream.last_price(TOKEN) == Decimal("119.95"))
    assert seen.fills == []
    push(stream, "121.30")
    assert wait_until(lambda: seen.status(target.order_id) is OrderStatus.COMPLETE)
    assert seen.fills[0].price == Decimal("121.30")


def test_cancelled_stop_never_fills(stream: MarketStream) -> None:
    gw = gateway(stream)
    seen = Seen(gw)
    stop = gw.place(intent(Side.SELL, OrderType.SL, trigger_price=Decimal("95"), price=Decimal("93")))
    assert gw.cancel(stop.order_id).status is OrderStatus.CANCELLED
    push(stream, "90")
    assert wait_until(lambda: stream.last_price(TOKEN) == Decimal("90"))
    assert seen.fills == []
    with pytest.raises(InputRejected, match="already cancelled"):
        gw.cancel(stop.order_id)


def test_trailing_a_stop_by_modify_moves_its_trigger(stream: MarketStream) -> None:
    gw = gateway(stream)
    seen = Seen(gw)
    stop = gw.place(intent(Side.SELL, OrderType.SL, trigger_price=Decimal("90"), price=Decimal("88")))
    gw.modify(stop.order_id, trigger_price=Decimal("98"), price=Decimal("96"))  # the limit moves with it
    push(stream, "97.90")
    assert wait_until(lambda: seen.status(stop.order_id) is OrderStatus.COMPLETE)


def test_a_stop_changed_to_market_fills_on_the_next_tick(stream: MarketStream) -> None:
    gw = gateway(stream)
    seen = Seen(gw)
    stop = gw.place(intent(Side.SELL, OrderType.SL, trigger_price=Decimal("90"), price=Decimal("88")))
    gw.modify(stop.order_id, order_type=OrderType.MARKET)
    push(stream, "99.00")
    assert wait_until(lambda: seen.status(stop.order_id) is OrderStatus.COMPLETE)
    assert seen.fills[0].price == Decimal("99.00")


def test_a_market_buy_never_fills_at_zero_it_is_rejected_in_a_contract_not_traded_yet(
    stream: MarketStream,
) -> None:
    gw = gateway(stream)
    seen = Seen(gw)
    order = gw.place(intent())  # no price known yet: accepted, decided on the first tick
    push(stream, "0")  # an option with no trade yet: the exchange takes no MARKET order in it
    assert wait_until(lambda: seen.status(order.order_id) is OrderStatus.REJECTED)
    assert "17181" in seen.orders[-1].status_message and seen.fills == []
    with pytest.raises(InputRejected, match="not traded today"):  # known at placement: refused at once
        gw.place(intent())


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (dict(quantity=0), "whole number ≥ 1"),
        (dict(order_type=OrderType.LIMIT), "needs a price"),
        (dict(order_type=OrderType.SL_M), "needs a trigger price"),
    ],
)
def test_invalid_orders_get_a_plain_message(stream: MarketStream, bad: dict, message: str) -> None:
    fields = {"side": Side.BUY, "order_type": OrderType.MARKET} | bad
    qty = fields.pop("quantity", 65)
    wrong = OrderIntent(KEY, Segment.NIFTY, Mode.PAPER, "NFO", "NIFTY2611326450CE", quantity=qty, **fields)
    with pytest.raises(InputRejected, match=message):
        gateway(stream).place(wrong)


def test_unknown_contract_and_foreign_session_are_refused(stream: MarketStream) -> None:
    gw = gateway(stream)
    with pytest.raises(InputRejected, match="not in today's instruments"):
        gw.place(OrderIntent(KEY, Segment.NIFTY, Mode.PAPER, "NFO", "NOPE", Side.BUY, 65))
    other = SessionKey("UK9394", "b" * 32)
    with pytest.raises(InputRejected, match="another session"):
        gw.place(OrderIntent(other, Segment.NIFTY, Mode.PAPER, "NFO", "NIFTY2611326450CE", Side.BUY, 65))


# The rules Kite and the exchanges apply (desktop/broker/exchange_rules.py), rehearsed in PAPER --------------
def any_contract_gateway(stream: MarketStream, **kw: object) -> PaperGateway:
    return PaperGateway(KEY, stream, lambda ex, sym: TOKEN, **kw)  # type: ignore[arg-type]


def priced(stream: MarketStream, price: str) -> None:
    stream.subscribe([TOKEN])
    push(stream, price)
    assert wait_until(lambda: stream.last_price(TOKEN) == Decimal(price))


def sell_stop(trigger: str, limit: str, **kw: object) -> OrderIntent:
    return intent(Side.SELL, OrderType.SL, trigger_price=Decimal(trigger), price=Decimal(limit), **kw)


@pytest.mark.parametrize(
    ("segment", "exchange", "symbol"),
    [(Segment.NIFTY, "NFO", "NIFTY2611326450CE"), (Segment.SENSEX, "BFO", "SENSEX2611582000CE")],
)
def test_paper_refuses_sl_m_for_options_on_nfo_and_bfo(
    stream: MarketStream, segment: Segment, exchange: str, symbol: str
) -> None:
    gw = any_contract_gateway(stream)
    stop = OrderIntent(
        KEY, segment, Mode.PAPER, exchange, symbol, Side.SELL, 20, OrderType.SL_M, trigger_price=Decimal("90")
    )
    with pytest.raises(InputRejected, match="Stop loss market orders are not allowed for option contracts"):
        gw.place(stop)
    assert gw.orders() == []


def test_paper_refuses_an_sl_gap_above_the_cap_on_placement_and_modification(stream: MarketStream) -> None:
    priced(stream, "45")
    gw = gateway(stream)
    with pytest.raises(InputRejected, match="permissible range"):  # trigger ≤ ₹50: at most ₹10
        gw.place(sell_stop("40", "29.95"))
    stop = gw.place(sell_stop("40", "30"))
    assert stop.status is OrderStatus.TRIGGER_PENDING
    with pytest.raises(InputRejected, match="permissible range"):  # trailing the trigger alone: gap 14
        gw.modify(stop.order_id, trigger_price=Decimal("44"))
    assert gw.orders()[-1].trigger_price == Decimal("40")  # untouched
    moved = gw.modify(stop.order_id, trigger_price=Decimal("44"), price=Decimal("34"))
    assert (moved.trigger_price, moved.price) == (Decimal("44"), Decimal("34"))
    priced(stream, "200")
    with pytest.raises(InputRejected, match="permissible range"):  # above ₹50: 20 % of the trigger
        gw.place(sell_stop("150", "119.95"))
    assert gw.place(sell_stop("150", "120")).status is OrderStatus.TRIGGER_PENDING


def test_paper_refuses_a_sell_stop_at_or_above_the_ltp(stream: MarketStream) -> None:
    priced(stream, "100")
    gw = gateway(stream)
    seen = Seen(gw)
    for trigger in ("100", "101"):
        with pytest.raises(InputRejected, match="lower than the last traded price"):
            gw.place(sell_stop(trigger, "95"))
    with pytest.raises(InputRejected, match="higher than the last traded price"):
        gw.place(intent(Side.BUY, OrderType.SL, trigger_price=Decimal("100"), price=Decimal("101")))
    assert seen.fills == [] and gw.orders() == []  # nothing rested, nothing filled at once


def test_paper_refuses_limits_outside_limit_price_protection(stream: MarketStream) -> None:
    priced(stream, "100")
    gw = gateway(stream)
    with pytest.raises(InputRejected, match="limit price protection"):
        gw.place(intent(Side.BUY, OrderType.LIMIT, price=Decimal("59.95")))
    with pytest.raises(InputRejected, match="limit price protection"):
        gw.place(intent(Side.SELL, OrderType.LIMIT, price=Decimal("140.05")))
    assert gw.place(intent(Side.BUY, OrderType.LIMIT, price=Decimal("60"))).status is OrderStatus.OPEN


def test_paper_refuses_an_option_limit_sell_more_than_half_below_an_ltp_of_100(stream: MarketStream) -> None:
    priced(stream, "200")
    gw = any_contract_gateway(stream)
    far = OrderIntent(
        KEY,
        Segment.SENSEX,
        Mode.PAPER,
        "BFO",
        "SENSEX2611582000CE",
        Side.SELL,
        20,
        OrderType.LIMIT,
        price=Decimal("95"),
    )  # fmt: skip  (BSE's 60 % band lets 95 through; Zerodha's own rule does not)
    with pytest.raises(InputRejected, match="more than 50% below"):
        gw.place(far)


def test_paper_stop_that_the_premium_gaps_through_rests_open_at_its_limit(stream: MarketStream) -> None:
    priced(stream, "100")
    gw = gateway(stream)
    seen = Seen(gw)
    stop = gw.place(sell_stop("95", "93"))
    push(stream, "80")  # one tick from 100 to 80: triggered, its limit 93 inside LPP (48–112)
    assert wait_until(lambda: seen.status(stop.order_id) is OrderStatus.OPEN)
    push(stream, "92.95")
    assert wait_until(lambda: stream.last_price(TOKEN) == Decimal("92.95"))
    assert seen.fills == [] and seen.status(stop.order_id) is OrderStatus.OPEN  # only at 93 or better
    push(stream, "93.40")
    assert wait_until(lambda: seen.status(stop.order_id) is OrderStatus.COMPLETE)
    assert seen.fills[0].price == Decimal("93.40")


def test_paper_stop_triggered_with_its_limit_outside_lpp_is_cancelled(stream: MarketStream) -> None:
    priced(stream, "100")
    gw = gateway(stream)
    seen = Seen(gw)
    stop = gw.place(sell_stop("95", "93"))
    push(stream, "50")  # the premium halves in one tick: 93 is outside 30–70
    assert wait_until(lambda: seen.status(stop.order_id) is OrderStatus.CANCELLED)
    assert "limit price protection" in seen.orders[-1].status_message
    assert seen.fills == []


def test_paper_market_order_becomes_a_limit_at_the_protected_price(stream: MarketStream) -> None:
    priced(stream, "100")
    gw = gateway(stream, "0.50")
    seen = Seen(gw)
    order = gw.place(intent())
    assert (order.order_type, order.price) == (OrderType.LIMIT, Decimal("120"))  # automatic: 20 %
    assert seen.status(order.order_id) is OrderStatus.COMPLETE
    assert seen.fills[0].price == Decimal("100.50")


def test_paper_market_order_in_a_contract_with_no_volume_today_is_refused(stream: MarketStream) -> None:
    stream.subscribe([TOKEN])
    untraded = QuoteTick(TOKEN, MODE_QUOTE, True, Decimal("12.40"), volume_traded=0)
    stream._offer_ticks(TickBatch(0.0, [untraded]))
    assert wait_until(lambda: stream.last_price(TOKEN) == Decimal("12.40"))
    gw = gateway(stream)
    with pytest.raises(InputRejected, match="17181"):
        gw.place(intent())
    assert gw.place(intent(Side.BUY, OrderType.LIMIT, price=Decimal("12"))).status is OrderStatus.OPEN


def test_paper_refuses_an_order_above_the_freeze_quantity(stream: MarketStream) -> None:
    gw = gateway(stream)
    big = OrderIntent(KEY, Segment.NIFTY, Mode.PAPER, "NFO", "NIFTY2611326450CE", Side.BUY, 1820)
    with pytest.raises(InputRejected, match="exceeds the freeze limit of 1800"):
        gw.place(big)
    smaller = gateway_with_freeze(stream, {"NIFTY": 650})
    with pytest.raises(InputRejected, match="freeze limit of 650"):
        smaller.place(OrderIntent(KEY, Segment.NIFTY, Mode.PAPER, "NFO", "NIFTY2611326450CE", Side.BUY, 715))


def gateway_with_freeze(stream: MarketStream, overrides: dict[str, int]) -> PaperGateway:
    return PaperGateway(KEY, stream, lambda ex, sym: TOKEN, freeze_overrides=overrides)


def test_paper_refuses_the_26th_modification_of_an_order(stream: MarketStream) -> None:
    priced(stream, "100")
    gw = gateway(stream)
    stop = gw.place(sell_stop("90", "85"))
    for i in range(25):
        gw.modify(stop.order_id, trigger_price=Decimal(90 + i % 2), price=Decimal(85 + i % 2))
    with pytest.raises(InputRejected, match="Maximum allowed order modifications"):
        gw.modify(stop.order_id, trigger_price=Decimal("92"), price=Decimal("87"))
    assert gw.cancel(stop.order_id).status is OrderStatus.CANCELLED


def test_a_gateway_fed_by_its_owner_wakes_no_delivery_thread_and_fills_on_the_ticks_it_is_handed(
    stream: MarketStream,
) -> None:
    gw = PaperGateway(KEY, stream, lambda ex, sym: TOKEN, listen=False)
    seen = Seen(gw)
    assert stream._tick_listeners == [], (
        "no listener: the stream's delivery thread is not woken for its prices"
    )
    gw.match_ticks([tick("88.40")])  # no open order: nothing to work
    order = gw.place(intent())
    assert seen.status(order.order_id) is OrderStatus.OPEN
    push(stream, "88.40")  # the stream alone does not fill it
    time.sleep(0.05)
    assert seen.status(order.order_id) is OrderStatus.OPEN
    gw.match_ticks([tick("88.45", 1)])  # the session's feed-thread route hands it the frame
    assert seen.status(order.order_id) is OrderStatus.COMPLETE and seen.fills[0].price == Decimal("88.45")
