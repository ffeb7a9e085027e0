"""Issue 16, defect 1 on the simulator (real kiteconnect): a LIVE session whose tight stops fire often, with the
broker's SL and the strategy's own stop on the same ticks. Every fill of the session's own orders counts: its
realised P&L equals the P&L of the broker's trades of its tag, to the paisa."""

from __future__ import annotations

from decimal import Decimal

from desktop.engine import Engine
from tests.e2e.conftest import params, sim_book, wait_until


def test_a_live_session_stopped_out_again_and_again_counts_every_fill_of_its_own_orders(
    demo_engine: Engine, qapp
) -> None:
    sim, book = sim_book(demo_engine, "UK1234")
    session = demo_engine.open_session("UK1234", "Stops")
    lines: list[str] = []
    session.sig_log_line.connect(lambda line: lines.append(line.text))
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

    def broker() -> tuple[bool, Decimal]:
        """Whether the tag holds nothing at the broker and buys nothing, and the P&L of its trades."""
        ours = {o.order_id for o in book.orders.values() if o.tag == tag}
        buying = [
            o
            for o in book.orders.values()
            if o.tag == tag and o.transaction_type == "BUY" and o.status == "OPEN"
        ]
        trades = [t for t in list(book.trades) if t["order_id"] in ours]
        held: dict[str, int] = {}
        for t in trades:
            sign = 1 if t["transaction_type"] == "BUY" else -1
            held[t["tradingsymbol"]] = held.get(t["tradingsymbol"], 0) + sign * t["quantity"]
        pnl = sum(
            Decimal(str(t["average_price"])) * t["quantity"] * (1 if t["transaction_type"] == "SELL" else -1)
            for t in trades
        )
        return not any(held.values()) and not buying, Decimal(pnl).quantize(Decimal("0.01"))

    def settled() -> bool:
        # Between two trades (flat at the broker), every fill of the session's own orders is in its P&L.
        flat, pnl = broker()
        return exits() >= 6 and flat and session.snapshot().realised_pnl == pnl

    wait_until(qapp, settled, 90, "six sales, and the session's P&L equal to its trades' at the broker")
    session.stop("square_off")
    # Every stop and every trail of it was well formed (limit with trigger, on the tick, inside the gap cap and
    # LPP); the only refusal allowed is the market's race, a premium that fell through the stop level between the
    # entry's fill and its stop (the position is then sold at once).
    malformed = ("permissible range", "price protection", "tick size", "not allowed", "modifications")
    refused = [line for line in lines if ("stop order not placed" in line or "stop-loss order not modified" in line)
               and any(words in line for words in malformed)]  # fmt: skip
    assert refused == [], refused
