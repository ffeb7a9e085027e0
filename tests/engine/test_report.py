"""A replay's summary and equity curve from export-format trades: round trips, win rate, gross and net P&L."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from desktop.engine.report import equity_csv, summarise, summary_csv, summary_lines
from desktop.store.export import COLUMNS


def _trades(*rows: tuple[str, str, str, str, str, str, str, str]) -> str:
    out = io.StringIO()
    w = csv.DictWriter(out, COLUMNS, restval="")
    w.writeheader()
    for label, symbol, side, qty, price, order, when, pnl in rows:
        w.writerow({"symbol": symbol, "trade_date": when[:10], "exchange": "NSE", "segment": "FO", "trade_type": side,
                    "quantity": qty, "price": price, "order_id": order, "order_execution_time": when,
                    "session_label": label, "round_trip_pnl": pnl})  # fmt: skip
    return out.getvalue()


def test_round_trips_win_rate_and_net_pnl_after_charges_per_session() -> None:
    text = _trades(
        ("A", "NIFTY26D0824100CE", "buy", "65", "127.70", "1", "2026-12-07T09:21:04", ""),
        ("A", "NIFTY26D0824100CE", "sell", "65", "120.55", "2", "2026-12-07T09:24:19", "-464.75"),
        ("B", "NIFTY26D0824300PE", "buy", "65", "100", "3", "2026-12-07T09:30:00", ""),
        # one order filled in two parts: one brokerage
        ("B", "NIFTY26D0824300PE", "sell", "30", "110", "4", "2026-12-07T09:40:00", ""),
        ("B", "NIFTY26D0824300PE", "sell", "35", "110", "4", "2026-12-07T09:40:00", "650"),
    )
    (a, b), curve = summarise(text)
    assert (a.label, a.round_trips, a.wins, a.win_rate, a.gross) == (
        "A",
        1,
        0,
        Decimal(0),
        Decimal("-464.75"),
    )
    assert a.charges.total == Decimal("27.30") + Decimal("38.60")  # worked out in test_charges.py
    assert a.net == Decimal("-464.75") - Decimal("65.90")
    assert (b.round_trips, b.wins, b.win_rate, b.gross) == (1, 1, Decimal(100), Decimal(650))
    assert b.charges.brokerage == Decimal(40)  # two executed orders, however many fills
    assert [p.net for p in curve if p.label == "A"] == [Decimal("-27.30"), Decimal("-530.65")]
    assert "A,1,0,0.0,-464.75,40" in summary_csv([a, b])
    assert equity_csv(curve).splitlines()[0] == "time,session_label,gross_pnl,charges,net_pnl"
    assert summary_lines([a])[0].startswith("'A': 1 round trips, win rate 0.0%, gross −₹464.75")


def test_no_trades_no_sessions() -> None:
    assert summarise(_trades()) == ([], [])
