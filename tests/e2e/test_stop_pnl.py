"""Issue 16, defect 1 on the simulator (real kiteconnect): a LIVE session whose tight stops fire often, with the
broker's SL and the strategy's own stop on the same ticks. Every fill of the session's own orders counts: its
realised P&L equals the P&L of the broker's trades of its tag, to the paisa."""

from __future__ import annotations

import time
from decimal import Decimal

from desktop.engine import Engine
from tests.e2e.conftest import params, sim_book, wait_until


def test_a_live_session_stopped_out_again_and_again_counts_every_fill_of_its_own_orders(
    demo_engine: Engine, qapp
) -> None:
    sim, book = sim_book(demo_engine, "UK1234")
    session = demo_engine.open_session("UK1234", "Stops")
    session.start(
        params(
            segments=["NIFTY", "SENSEX"],
            lots=1,
            stop_loss=3,
            itm_offset=150,
            fast_ema=2,
            slow_ema=3,
            mode="LIVE",
        )
    )
    tag = session.key.order_tag

    def exits() -> int:
        return sum(
            1
            for o in book.orders.values()
            if o.tag == tag and o.transaction_type == "SELL" and o.filled_quantity
        )

    wait_until(qapp, lambda: exits() >= 6, 150, "six sales (stops, exits) by the session")
    session.stop("square_off")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the last fills' events
        qapp.processEvents()
        time.sleep(0.05)
    ours = {o.order_id for o in book.orders.values() if o.tag == tag}
    trades = [t for t in book.trades if t["order_id"] in ours]
    held: dict[str, int] = {}
    for t in trades:
        held[t["tradingsymbol"]] = held.get(t["tradingsymbol"], 0) + t["quantity"] * (
            1 if t["transaction_type"] == "BUY" else -1
        )
    assert all(q == 0 for q in held.values()), f"flat at the broker: {held}"
    broker = sum(
        Decimal(str(t["average_price"])) * t["quantity"] * (1 if t["transaction_type"] == "SELL" else -1)
        for t in trades
    ).quantize(Decimal("0.01"))
    assert session.snapshot().realised_pnl == broker
