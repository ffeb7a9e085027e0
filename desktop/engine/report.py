"""A replay's results from its trades (the export's columns): a summary per session and the equity curve.

Gross P&L is the round trips' P&L as the export gives it; net P&L takes Zerodha's charges off (engine/charges.py),
computed per executed order: an order's fills share one brokerage. The equity curve is each session's net P&L
after each of its fills, in time order.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from desktop.domain import Side, format_rupees
from desktop.engine.charges import Charges, order_charges

# The export writes Console's exchange (NSE/BSE) with segment FO; charges want the F&O exchange.
_FO = {"NSE": "NFO", "BSE": "BFO"}


@dataclass(slots=True)
class SessionSummary:
    """One session's day (or days): round trips, wins, gross and net P&L, and the charges in detail."""

    label: str
    round_trips: int = 0
    wins: int = 0
    gross: Decimal = Decimal(0)
    charges: Charges = field(default_factory=Charges)

    @property
    def net(self) -> Decimal:
        """Gross P&L less every charge."""
        return self.gross - self.charges.total

    @property
    def win_rate(self) -> Decimal:
        """Winning round trips as a percentage (0 without any)."""
        if not self.round_trips:
            return Decimal(0)
        return (Decimal(100) * self.wins / self.round_trips).quantize(Decimal("0.1"))


@dataclass(frozen=True, slots=True)
class EquityPoint:
    """A session's running P&L after one fill."""

    time: str
    label: str
    gross: Decimal
    charges: Decimal

    @property
    def net(self) -> Decimal:
        """Running gross less running charges."""
        return self.gross - self.charges


def summarise(trades_csv: str) -> tuple[list[SessionSummary], list[EquityPoint]]:
    """Summaries (in order of each session's first trade) and the equity curve, from export-format trades."""
    rows = list(csv.DictReader(io.StringIO(trades_csv)))
    rows.sort(key=lambda r: r["order_execution_time"])  # stable: the file's order within a second
    summaries: dict[str, SessionSummary] = {}
    charged: set[tuple[str, str]] = set()
    turnover: dict[tuple[str, str], Decimal] = {}
    for r in rows:
        key = (r["session_label"], r["order_id"])
        turnover[key] = turnover.get(key, Decimal(0)) + Decimal(r["quantity"]) * Decimal(r["price"])
    curve: list[EquityPoint] = []
    for r in rows:
        label = r["session_label"]
        s = summaries.setdefault(label, SessionSummary(label))
        key = (label, r["order_id"])
        if key not in charged:  # the whole order's charges on its first fill
            charged.add(key)
            s.charges = s.charges + order_charges(
                exchange=_FO.get(r["exchange"], r["exchange"]),
                side=Side.BUY if r["trade_type"] == "buy" else Side.SELL,
                turnover=turnover[key],
                day=date.fromisoformat(r["trade_date"]),
            )
        if r["round_trip_pnl"]:
            pnl = Decimal(r["round_trip_pnl"])
            s.round_trips += 1
            s.wins += pnl > 0
            s.gross += pnl
        curve.append(EquityPoint(r["order_execution_time"], label, s.gross, s.charges.total))
    return list(summaries.values()), curve


SUMMARY_COLUMNS = (
    "session_label", "round_trips", "wins", "win_rate_pct", "gross_pnl", "brokerage", "stt", "exchange_charges",
    "sebi_fee", "gst", "stamp_duty", "total_charges", "net_pnl",
)  # fmt: skip


def summary_csv(summaries: Iterable[SessionSummary]) -> str:
    """The summaries as CSV, one row per session."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(SUMMARY_COLUMNS)
    for s in summaries:
        c = s.charges
        w.writerow([s.label, s.round_trips, s.wins, s.win_rate, s.gross, c.brokerage, c.stt, c.exchange, c.sebi,
                    c.gst, c.stamp, c.total, s.net])  # fmt: skip
    return out.getvalue()


def equity_csv(curve: Iterable[EquityPoint]) -> str:
    """The equity curve as CSV: time, session, running gross, charges and net P&L."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(("time", "session_label", "gross_pnl", "charges", "net_pnl"))
    for p in curve:
        w.writerow([p.time, p.label, p.gross, p.charges, p.net])
    return out.getvalue()


def summary_lines(summaries: Iterable[SessionSummary]) -> list[str]:
    """One line per session for the terminal."""
    return [
        f"{s.label!r}: {s.round_trips} round trips, win rate {s.win_rate}%, gross {format_rupees(s.gross)}, "
        f"charges ₹{s.charges.total:,.2f}, net {format_rupees(s.net)}"
        for s in summaries
    ]
