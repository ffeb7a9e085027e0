"""End-to-end fixtures: a real Engine on the embedded simulator (real kiteconnect, real sockets), fast."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from desktop.broker.profiles import MemorySecretStore
from desktop.cli.demo import start_demo
from desktop.engine import Engine, SessionEngine, parse_params

# A Thursday: NIFTY's weekly expiry (Tuesday) is ahead, SENSEX's (Thursday) is today. 09:26: the demo market's
# (seed 3) first NIFTY signal with the FAST EMAs comes at 09:30, so a test waits 2 s for its first entry at 120x,
# not 5 s from 09:20 (its sessions are up within a market minute); one missed only makes it wait for the next.
START = datetime(2026, 1, 8, 9, 26)
FAST = {"fast_ema": 2, "slow_ema": 5}  # crosses every few minutes: trades within seconds at high speed
FEED = {"silence_timeout": 3.0, "backoff_initial": 0.1, "backoff_max": 0.5}


def wait_until(app: Any, predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Polls `predicate` (processing Qt events) until true; fails the test saying `what` did not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.processEvents()
        if predicate():
            return
        time.sleep(0.05)
    if not predicate():
        pytest.fail(f"timed out after {timeout:.0f} s waiting for: {what}")


def params(**raw: Any):
    """Validated parameters with the fast EMAs, LIVE confirmed when asked for."""
    return parse_params({**FAST, **raw}, confirm_live=True)


def sim_book(engine: Engine, user: str = "UK9394") -> tuple[Any, Any]:
    """The demo engine's simulator and the order book of `user`'s account on it (what Kite web would show)."""
    sim = engine.simulator
    assert sim is not None
    return sim, sim.state.accounts[user].book


def tagged_orders(book, tag: str) -> list[Any]:
    """The simulator book's orders of one session (by its order tag)."""
    return [o for o in book.orders.values() if o.tag == tag]


def resting_stops(book, tag: str) -> list[Any]:
    """The session's stop-loss orders resting at the broker."""
    return [
        o
        for o in tagged_orders(book, tag)
        if o.order_type == "SL" and o.status in ("TRIGGER PENDING", "OPEN")
    ]


def held_at_broker(book, symbol: str) -> int:
    """The account's net quantity of `symbol` at the broker."""
    legs = [leg for leg in book.legs.values() if leg.instrument.tradingsymbol == symbol]
    return sum(leg.buy_quantity - leg.sell_quantity for leg in legs)


def brokers_pnl(book, tag: str, symbol: str) -> Decimal:
    """The session's realised P&L in `symbol` recomputed from the broker's trades of its orders, to the paisa."""
    ours = {o.order_id for o in tagged_orders(book, tag)}
    return sum(
        (
            Decimal(str(t["average_price"])) * t["quantity"] * (1 if t["transaction_type"] == "SELL" else -1)
            for t in book.trades
            if t["order_id"] in ours and t["tradingsymbol"] == symbol
        ),
        Decimal(0),
    ).quantize(Decimal("0.01"))


def start_session(engine: Engine, user: str, label: str, **raw: Any) -> SessionEngine:
    """Opens and starts a session."""
    session = engine.open_session(user, label)
    session.start(params(**raw))
    return session


@pytest.fixture
def demo_engine(tmp_path, qapp) -> Iterator[Engine]:
    """An Engine on the embedded simulator at 120x from START, demo accounts logged in."""
    engine = Engine(tmp_path / "home", secrets=MemorySecretStore(), feed_options=FEED)
    try:
        start_demo(engine, speed=120.0, seed=3, start=START)
        yield engine
    finally:
        engine.close("square_off")
        qapp.processEvents()
