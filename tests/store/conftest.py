"""Fixtures for store tests: a real SQLite file in tmp_path, and small record factories."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from desktop.domain import Fill, Mode, Order, OrderIntent, OrderStatus, OrderType, Segment, SessionKey, Side
from desktop.store import Store

DAY = datetime(2026, 1, 5, 9, 15)
SYMBOL = "NIFTY2611325000CE"
_counter = itertools.count(1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "home") as s:
        yield s


def new_session(
    store: Store,
    broker_id: str,
    *,
    mode: Mode = Mode.PAPER,
    label: str = "morning",
    session_id: str | None = None,
) -> SessionKey:
    """Records a fresh session of `broker_id` and returns its key."""
    key = SessionKey(broker_id, session_id) if session_id else SessionKey.new(broker_id)
    store.sessions.record_session(
        key,
        label=label,
        params={"lots": 1, "stop_loss": Decimal("20.5")},
        mode=mode,
        state="running",
        started_at=DAY,
    )
    return key


def make_fill(
    key: SessionKey,
    *,
    mode: Mode = Mode.PAPER,
    side: Side = Side.BUY,
    quantity: int = 65,
    price: str = "100.05",
    at: datetime | None = None,
    symbol: str = SYMBOL,
    fill_id: str | None = None,
) -> Fill:
    """A fill of `key` with a unique id."""
    n = next(_counter)
    return Fill(
        fill_id=fill_id or f"F{n}",
        order_id=f"O{n}",
        key=key,
        mode=mode,
        exchange="NFO",
        tradingsymbol=symbol,
        side=side,
        quantity=quantity,
        price=Decimal(price),
        timestamp=at or DAY + timedelta(minutes=n % 300),
    )


def make_intent(key: SessionKey, *, mode: Mode = Mode.PAPER, side: Side = Side.BUY) -> OrderIntent:
    """An entry intent of `key`."""
    return OrderIntent(
        key=key,
        segment=Segment.NIFTY,
        mode=mode,
        exchange="NFO",
        tradingsymbol=SYMBOL,
        side=side,
        quantity=65,
        reason="entry",
    )


def make_order(
    key: SessionKey, intent: OrderIntent, *, status: OrderStatus, order_id: str = "O-1", filled: int = 0
) -> Order:
    """The order placed for `intent`, as the broker reports it."""
    return Order(
        order_id=order_id,
        key=key,
        mode=intent.mode,
        exchange=intent.exchange,
        tradingsymbol=intent.tradingsymbol,
        side=intent.side,
        quantity=intent.quantity,
        order_type=OrderType.MARKET,
        status=status,
        filled_quantity=filled,
        average_price=Decimal("100.05") if filled else Decimal(0),
        tag=key.order_tag,
        timestamp=DAY,
        intent_id=intent.intent_id,
    )
