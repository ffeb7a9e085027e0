"""Live and paper gateways with the real kiteconnect client against the simulator, under its faults."""

from __future__ import annotations

import threading
import time
from datetime import date
from decimal import Decimal

import pytest

from desktop.broker.errors import InputRejected
from desktop.broker.gateway import LiveGateway
from desktop.broker.instruments import OptionContract
from desktop.broker.paper import PaperGateway
from desktop.domain import (
    Fill,
    Mode,
    OptionRight,
    Order,
    OrderIntent,
    OrderStatus,
    OrderType,
    Segment,
    Side,
    to_tick,
)
from tests.broker.conftest import login, wait_until

TODAY = date(2026, 1, 8)


class Events:
    """Order and fill events a gateway reported."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.orders: list[Order] = []
        self.fills: list[Fill] = []

    def on_order(self, order: Order) -> None:
        with self.lock:
            self.orders.append(order)

    def on_fill(self, fill: Fill) -> None:
        with self.lock:
            self.fills.append(fill)

    def final(self, order_id: str) -> Order | None:
        with self.lock:
            done = [o for o in self.orders if o.order_id == order_id and o.status.is_final]
        return done[-1] if done else None


def option(hub, session) -> OptionContract:
    book = hub.instrument_book(session, TODAY)
    spot = Decimal(str(session.ltp("NSE:NIFTY 50")["NSE:NIFTY 50"]["last_price"]))
    return book.resolve_itm_option(Segment.NIFTY, spot, OptionRight.CE, 100, TODAY)


def intent(session, contract: OptionContract, side: Side = Side.BUY, mode: Mode = Mode.LIVE) -> OrderIntent:
    return OrderIntent(session.key, Segment.NIFTY, mode, contract.exchange, contract.tradingsymbol, side,
                       contract.lot_size, reason="entry")  # fmt: skip


def sim_orders(sim, api_key: str) -> list:
    return list(sim.state.accounts[api_key].book.orders.values())


def test_live_order_is_placed_tagged_tracked_filled_and_exited(hub, sim) -> None:
    profile = login(hub, sim, "UK9394")
    session = hub.open_session(profile)
    stream = hub.open_stream(session)
    gateway = LiveGateway(session, stream)
    seen = Events()
    gateway.add_listener(seen.on_order, seen.on_fill)
    contract = option(hub, session)

    entry = gateway.place(intent(session, contract))
    assert wait_until(lambda: seen.final(entry.order_id) is not None)
    done = seen.final(entry.order_id)
    assert done.status is OrderStatus.COMPLETE and done.filled_quantity == contract.lot_size
    assert isinstance(done.average_price, Decimal) and done.average_price > 0
    assert seen.fills == [], "the stream's delivery thread reads no fills (a REST call)"
    gateway.report_fills(entry.order_id)  # what the segment's agent does on the update, on its own thread
    assert wait_until(lambda: len(seen.fills) >= 1)
    assert sum(f.quantity for f in seen.fills) == contract.lot_size
    assert seen.fills[0].price == done.average_price  # one fill: same exact price

    exit_order = gateway.place(intent(session, contract, Side.SELL))
    assert wait_until(lambda: seen.final(exit_order.order_id) is not None)
    at_broker = sim_orders(sim, "UK9394")
    assert len(at_broker) == 2
    assert all(o.tag == session.key.order_tag and o.market_protection == -1 for o in at_broker)
    stream.close()
    session.close()


def test_order_updates_reach_only_the_session_that_placed_the_order(hub, sim) -> None:
    profile = login(hub, sim, "UK9394")
    s1, s2 = hub.open_session(profile), hub.open_session(profile)
    st1, st2 = hub.open_stream(s1), hub.open_stream(s2)
    g1, g2 = LiveGateway(s1, st1), LiveGateway(s2, st2)
    seen1, seen2 = Events(), Events()
    g1.add_listener(seen1.on_order, seen1.on_fill)
    g2.add_listener(seen2.on_order, seen2.on_fill)
    placed = g1.place(intent(s1, option(hub, s1)))
    assert wait_until(lambda: seen1.final(placed.order_id) is not None)
    assert seen2.orders == [] and seen2.fills == [] and g2.orders() == []
    for s in (st1, st2):
        s.close()
    for s in (s1, s2):
        s.close()


def test_rate_limit_429_backs_off_and_places_exactly_one_order(hub, sim) -> None:
    profile = login(hub, sim, "UK9394")
    session = hub.open_session(profile)
    gateway = LiveGateway(session, None, backoff_initial=0.2)
    contract = option(hub, session)
    sim.inject_fault({"kind": "rate_limit", "api_key": "UK9394", "seconds": 1.0})
    started = time.monotonic()
    order = gateway.place(intent(session, contract))
    assert time.monotonic() - started >= 0.9  # it really waited out the 429s
    at_broker = sim_orders(sim, "UK9394")
    assert [o.order_id for o in at_broker] == [order.order_id]
    session.close()


def test_lost_order_reply_leaves_exactly_one_order_at_the_broker(hub, sim) -> None:
    profile = login(hub, sim, "UK9394")
    session = hub.open_session(profile)
    gateway = LiveGateway(session, None, lookup_pause=0.1)
    contract = option(hub, session)
    earlier = gateway.place(intent(session, contract))  # an older order with the same tag and shape
    for how in ("drop", "503"):
        sim.inject_fault({"kind": "lose_next_order_reply", "api_key": "UK9394", "how": how})
        adopted = gateway.place(intent(session, contract))
        assert sim.state.accounts["UK9394"].lose_next_order_reply is None  # the reply really was lost
        assert adopted.order_id != earlier.order_id
    ids = [o.order_id for o in sim_orders(sim, "UK9394")]
    assert len(ids) == 3 and len(set(ids)) == 3
    assert {o.order_id for o in gateway.orders()} == set(ids)
    session.close()


def test_paper_gateway_fills_at_live_prices_while_the_broker_order_book_stays_empty(hub, sim) -> None:
    profile = login(hub, sim, "UK9394")
    session = hub.open_session(profile)
    stream = hub.open_stream(session)
    book = hub.instrument_book(session, TODAY)
    contract = option(hub, session)
    calls: list[str] = []
    original = session.call
    session.call = lambda kind, method, *a, **k: (calls.append(method), original(kind, method, *a, **k))[1]

    def token_of(exchange: str, symbol: str) -> int | None:
        found = book.by_symbol(exchange, symbol)
        return found.instrument_token if found else None

    paper = PaperGateway(session.key, stream, token_of, slippage=Decimal("0.50"))
    seen = Events()
    paper.add_listener(seen.on_order, seen.on_fill)
    stream.subscribe([contract.instrument_token], "full")
    assert wait_until(lambda: stream.last_price(contract.instrument_token) is not None)
    entry = paper.place(intent(session, contract, mode=Mode.PAPER))
    assert wait_until(lambda: seen.final(entry.order_id) is not None)
    fill = seen.fills[0]
    assert fill.mode is Mode.PAPER and fill.quantity == contract.lot_size
    assert fill.price % Decimal("0.05") == 0

    # Kite refuses a sell stop at or above the market (and SL-M for options): so does PAPER, in the same
    # words, without a call to Kite. A marketable sell limit takes the exit instead.
    ltp = stream.last_price(contract.instrument_token)
    assert ltp is not None

    def exit_order(order_type: OrderType, **prices: Decimal) -> OrderIntent:
        return OrderIntent(
            session.key, Segment.NIFTY, Mode.PAPER, contract.exchange, contract.tradingsymbol, Side.SELL,
            contract.lot_size, order_type=order_type, reason="stop_loss", **prices,  # type: ignore[arg-type]
        )  # fmt: skip

    with pytest.raises(InputRejected, match="Stop loss market orders are not allowed"):
        paper.place(exit_order(OrderType.SL_M, trigger_price=to_tick(ltp * 2)))
    with pytest.raises(InputRejected, match="lower than the last traded price"):
        paper.place(exit_order(OrderType.SL, trigger_price=to_tick(ltp * 2), price=to_tick(ltp * 2) - 1))
    stop = paper.place(exit_order(OrderType.LIMIT, price=to_tick(ltp * Decimal("0.9"))))
    assert wait_until(lambda: seen.final(stop.order_id) is not None)
    assert sim_orders(sim, "UK9394") == []
    assert not {"place_order", "modify_order", "cancel_order"} & set(calls)
    stream.close()
    session.close()


def test_the_sessions_instruments_are_kiteconnects_rows_for_the_whole_dump_and_one_exchange(hub, sim) -> None:
    session = hub.open_session(login(hub, sim, "UK9394"))
    for exchange in (None, "NFO"):
        ours = session.instruments(exchange)
        theirs = session.kite.instruments(exchange)  # kiteconnect's own parser, same dump
        assert ours == theirs and len(ours) > 100
    assert {r["exchange"] for r in session.instruments("NFO")} == {"NFO"}


def test_autoslice_splits_at_the_freeze_answers_like_kite_and_waits_out_a_429(hub, sim) -> None:
    from dataclasses import replace as _replace

    from desktop.broker.errors import BrokerError

    profile = login(hub, sim, "UK9394")
    session = hub.open_session(profile)
    gateway = LiveGateway(session, None, backoff_initial=0.2)
    contract = option(hub, session)
    big = _replace(
        intent(session, contract), quantity=60 * contract.lot_size
    )  # 3,900 NIFTY: 27 + 27 + 6 lots
    sim.inject_fault({"kind": "rate_limit", "api_key": "UK9394", "seconds": 0.5})
    started = time.monotonic()
    children = gateway.place_autoslice(big)
    assert time.monotonic() - started >= 0.4, "Kite's 429 waited out (nothing was placed meanwhile)"
    cap = 1800 - 1800 % contract.lot_size
    assert [why for _, why in children] == ["", "", ""]
    at_broker = {o.order_id: o for o in sim_orders(sim, "UK9394")}
    assert [at_broker[oid].quantity for oid, _ in children] == [cap, cap, 60 * contract.lot_size - 2 * cap]
    assert all(at_broker[oid].tag == session.key.order_tag for oid, _ in children)
    # Kite's own rules: below the freeze, or more than 10 slices, autoslice is an input error; nothing placed.
    for quantity, words in (
        (contract.lot_size, "only for quantities above the freeze"),
        (11 * cap, "allows 10"),
    ):
        with pytest.raises(BrokerError, match=words):
            gateway.place_autoslice(_replace(big, quantity=quantity))
    assert len(sim_orders(sim, "UK9394")) == 3
    # The raw reply has Kite's shape: the parent's order id and the children's.
    raw = session.kite.place_autoslice_order(
        variety="regular", exchange="NFO", tradingsymbol=contract.tradingsymbol, transaction_type="BUY",
        quantity=2 * cap, product="MIS", order_type="MARKET", market_protection=-1, tag=session.key.order_tag,
    )  # fmt: skip
    assert set(raw) == {"order_id", "children"} and [set(c) for c in raw["children"]] == [{"order_id"}] * 2
    session.close()


def test_kites_refusal_of_a_26th_modification_reaches_the_engine_as_the_cap(hub, sim) -> None:
    # After a restart the engine counts an adopted stop's modifications from 0: it knows the stop is at Kite's cap
    # only from the broker's refusal, through the real client and our error mapping (desktop/broker/errors.py).
    from desktop.broker.errors import BrokerError, ModificationCapReached
    from desktop.broker.exchange_rules import MAX_MODIFICATIONS
    from desktop.engine.protection import stop_limit

    profile = login(hub, sim, "UK9394")
    session = hub.open_session(profile)
    stream = hub.open_stream(session)
    gateway = LiveGateway(session, stream)
    seen = Events()
    gateway.add_listener(seen.on_order, seen.on_fill)
    try:
        contract = option(hub, session)
        entry = gateway.place(intent(session, contract))
        assert wait_until(lambda: seen.final(entry.order_id) is not None)
        ltp = Decimal(
            str(session.ltp(f"NFO:{contract.tradingsymbol}")[f"NFO:{contract.tradingsymbol}"]["last_price"])
        )
        trigger = to_tick(ltp * Decimal("0.7"))
        stop = gateway.place(
            OrderIntent(
                session.key,
                Segment.NIFTY,
                Mode.LIVE,
                contract.exchange,
                contract.tradingsymbol,
                Side.SELL,
                contract.lot_size,
                reason="protective_stop",
                order_type=OrderType.SL,
                trigger_price=trigger,
                price=stop_limit(contract.exchange, trigger),
            )  # fmt: skip
        )
        for n in range(MAX_MODIFICATIONS):
            level = trigger - Decimal("0.05") * (n % 2)
            gateway.modify(stop.order_id, trigger_price=level, price=stop_limit(contract.exchange, level))
        with pytest.raises(BrokerError) as refused:
            gateway.modify(stop.order_id, trigger_price=trigger, price=stop_limit(contract.exchange, trigger))
        assert isinstance(refused.value, ModificationCapReached), repr(refused.value)
    finally:
        stream.close()
        session.close()


def test_a_restarted_gateway_reads_the_trades_only_of_orders_whose_fills_were_not_recorded(hub, sim) -> None:
    # A restart's recovery tells the gateway the fills its store holds (issue 16, chaos seed 43): re-reading the trades
    # of every order of the day, one REST call each on the segment's thread, kept a stop the exchange ended waiting.
    profile = login(hub, sim, "UK9394")
    session = hub.open_session(profile)
    before = LiveGateway(session)
    seen = Events()
    before.add_listener(seen.on_order, seen.on_fill)
    contract = option(hub, session)
    bought = before.place(intent(session, contract))
    sold = before.place(intent(session, contract, Side.SELL))
    for order in (bought, sold):
        assert wait_until(lambda o=order: any(x.order_id == o.order_id for x in before.reconcile()
                                               if x.status.is_final))  # fmt: skip
        before.report_fills(order.order_id)
    # The sale filled while no process ran: only the purchase's fills were recorded.
    recorded = [f for f in seen.fills if f.order_id == bought.order_id]
    assert sum(f.quantity for f in recorded) == contract.lot_size

    reads: list[str] = []
    order_trades = session.order_trades

    def counted(order_id: str):
        reads.append(order_id)
        return order_trades(order_id)

    session.order_trades = counted  # type: ignore[method-assign]  # counts the reads, the sim answers them
    after = LiveGateway(session)
    again = Events()
    after.add_listener(again.on_order, again.on_fill)
    after.know_fills(recorded)
    after.know_fills(recorded)  # each segment's recovery tells it: counted once
    assert {o.order_id for o in after.reconcile()} == {bought.order_id, sold.order_id}
    after.report_fills(bought.order_id)
    after.report_fills(sold.order_id)
    assert reads == [sold.order_id]
    assert [f.order_id for f in again.fills] == [sold.order_id] * len(again.fills)
    assert sum(f.quantity for f in again.fills) == contract.lot_size
    session.close()
