"""A SegmentTrader on its own for unit tests (the `make` fixture, see conftest.py): the real strategy, risk
manager and store, with a recording gateway in place of the broker."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from desktop.broker.errors import AmbiguousOrderFailure, InputRejected
from desktop.broker.gateway import OrderGateway
from desktop.broker.instruments import InstrumentBook
from desktop.domain import (
    Fill,
    Instrument,
    Mode,
    OptionRight,
    Order,
    OrderIntent,
    OrderRole,
    OrderStatus,
    Segment,
    SessionKey,
)
from desktop.engine.logs import SessionLogs
from desktop.engine.params import parse_params
from desktop.engine.risk import RiskManager
from desktop.engine.strategy.base import EnterPosition
from desktop.engine.strategy.itm_momentum import ItmMomentumStrategy
from desktop.engine.trader import SegmentTrader, TraderContext
from desktop.engine.writer import StoreWriter
from desktop.store import Store

T0 = datetime(2026, 1, 8, 10, 0)
EXPIRY = date(2026, 1, 13)


class RecordingGateway(OrderGateway):
    """Accepts orders and records every call; checks the intent was journaled before it was sent."""

    def __init__(self, key: SessionKey, mode: Mode, store: Store) -> None:
        super().__init__(key, mode)
        self.store = store
        self.placed: list[OrderIntent] = []
        self.modified: list[tuple[str, Decimal | None]] = []
        self.limits: list[Decimal | None] = []  # the limit sent with each of `modified`
        self.cancelled: list[str] = []
        self.resized: list[tuple[str, int]] = []
        self.refuse_cancel = False
        self.refuse_modify = False
        # What the broker's positions show (None: not asked, as paper).
        self.net: int | Exception | None = None
        self.ambiguous_next = False  # the next order reaches Kite but its reply is lost
        # The intents the trader holds to journal later (set by `make`), and the orders sent before their intent
        # was journalled (the journal could not be written).
        self.held: Callable[[], list[OrderIntent]] = list
        self.unjournalled: list[OrderIntent] = []
        self._ids = itertools.count(1)
        self._orders: dict[str, Order] = {}

    def place(self, intent: OrderIntent) -> Order:
        saved = self.store.intents.for_session(broker_id=self.key.broker_id, session_id=self.key.session_id)
        if intent.intent_id not in {i.intent_id for i in saved}:
            # Only a protective order (a stop, a sale) may go before its intent is journalled, and only held by
            # the trader to be journalled once the store writes again (`Orders.record_intent`).
            assert intent.role is not OrderRole.ENTRY, "an entry sent before it was journaled"
            assert intent in self.held(), "sent before it was journaled, and not held to be journalled"
            self.unjournalled.append(intent)
        self.placed.append(intent)
        order = Order(f"O{next(self._ids)}", self.key, self.mode, intent.exchange, intent.tradingsymbol, intent.side,
                      intent.quantity, intent.order_type, OrderStatus.OPEN, price=intent.price, trigger_price=intent.trigger_price,
                      intent_id=intent.intent_id)  # fmt: skip
        self._orders[order.order_id] = order
        if self.ambiguous_next:
            self.ambiguous_next = False
            raise AmbiguousOrderFailure("Kite did not confirm the order.", "ReadTimeout")
        return order

    def modify(
        self,
        order_id: str,
        *,
        trigger_price: Decimal | None = None,
        quantity: int | None = None,
        price: Decimal | None = None,
        **_: object,
    ) -> Order:
        if self.refuse_modify:
            raise InputRejected("Order cannot be modified as it is being processed")
        if quantity is not None:
            self.resized.append((order_id, quantity))
            return self._orders[order_id]
        self.modified.append((order_id, trigger_price))
        self.limits.append(price)
        return self._orders[order_id]

    def cancel(self, order_id: str) -> Order:
        if self.refuse_cancel:
            raise InputRejected("Order cannot be cancelled as it is being processed")
        self.cancelled.append(order_id)
        return self._orders[order_id]

    def orders(self) -> list[Order]:
        return list(self._orders.values())

    book_reads = 0  # Kite's order book read again (`reconcile`)

    def reconcile(self) -> list[Order]:
        self.book_reads += 1
        return self.orders()

    def account_net_quantity(self, exchange: str, tradingsymbol: str) -> int | None:
        if isinstance(self.net, Exception):
            raise self.net
        return self.net


def _book() -> InstrumentBook:
    rows = []
    for seg, name, exch, lot in (
        (Segment.NIFTY, "NIFTY", "NFO", 65),
        (Segment.BANKNIFTY, "BANKNIFTY", "NFO", 30),
    ):
        step = seg.spec.strike_step
        for strike in range(
            20000 if seg is Segment.NIFTY else 59000, 27000 if seg is Segment.NIFTY else 61000, step
        ):
            for right in ("CE", "PE"):
                token = len(rows) + 1000
                rows.append(Instrument(token, token, f"{name}26113{strike}{right}", name, exch, f"{exch}-OPT", right,
                                       EXPIRY, Decimal(strike), lot))  # fmt: skip
    return InstrumentBook(rows, T0.date())


@pytest.fixture
def make(tmp_path: Path):
    stores: list[Store] = []
    logs: list[SessionLogs] = []

    def build(
        mode: Mode = Mode.LIVE, segment: Segment = Segment.NIFTY, store: Store | None = None, **raw: object
    ):
        """`store`: another trader's (a second session of the same store), else a store of its own."""
        params = parse_params(
            {
                "segments": [segment.value],
                "lots": 3,
                "stop_loss": 7,
                "itm_offset": 150,
                "mode": mode.value,
                **raw,
            },
            confirm_live=True,
        )
        key = SessionKey.new("UK9394")
        if store is None:
            store = Store.open(tmp_path / key.session_id)
            stores.append(store)
        store.sessions.record_session(key, label="t", params={}, mode=mode, state="running", started_at=T0)
        gateway = RecordingGateway(key, mode, store)
        ctx = TraderContext(key, "t", params, store, gateway, RiskManager(params), lambda token, seg: None)
        session_logs = SessionLogs(tmp_path, key, "t", mode)
        logs.append(session_logs)
        trader = SegmentTrader(
            ctx, segment, ItmMomentumStrategy(params, segment), session_logs.for_segment(segment)
        )
        gateway.held = lambda: [intent for intent, _ in trader.orders.held]
        trader.load(_book(), [], None)
        trader.market_time = T0
        trader.index_price = Decimal("25012.40") if segment is Segment.NIFTY else Decimal("60040")
        return trader, gateway, store

    yield build
    for store in stores:
        store.close()
    for session_logs in logs:
        session_logs.close()


def fill(
    trader: SegmentTrader, order_id: str, qty: int, price: str, fill_id: str = "F1", at: datetime = T0
) -> None:
    tracked = trader.orders.tracked[order_id]
    i = tracked.intent
    trader.on_fill(
        Fill(fill_id, order_id, i.key, i.mode, i.exchange, i.tradingsymbol, i.side, qty, Decimal(price), at)
    )


def enter(trader: SegmentTrader, gateway: RecordingGateway, price: str = "200") -> OrderIntent:
    trader.strategy.pending_entry = OptionRight.CE  # as after the strategy's own EnterPosition
    trader.act([EnterPosition(OptionRight.CE, "test")])
    entry = gateway.placed[-1]
    fill(trader, "O1", entry.quantity, price)
    return entry


def with_leader(trader: SegmentTrader, store: Store, repository: object) -> tuple[StoreWriter, list[str]]:
    """The trader's waited-for writes go to the store writer's leader and its notes to the writer, as in the app
    (`TraderContext.commit_soon`, `write_later`); returns the writer and the names of the threads that ran a write
    of `repository` (`store.intents` or `store.fills`: its `_writing` traced)."""
    writer = StoreWriter(store.deferred)
    trader.ctx.commit_soon, trader.ctx.write_later = writer.lead, writer.submit
    ran: list[str] = []
    writing = repository._writing  # type: ignore[attr-defined]

    def traced(what: object) -> Callable[[object], object]:
        work = writing(what)

        def run(writes: object) -> object:
            ran.append(threading.current_thread().name)
            return work(writes)

        return run

    repository._writing = traced  # type: ignore[attr-defined]
    return writer, ran
