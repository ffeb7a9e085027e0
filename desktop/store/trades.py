"""Trades as a trader sees them: fills with their session's label, order tag and round-trip P&L."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, select, text

from desktop.domain import Fill, Mode, Side, rupees
from desktop.store.database import Database
from desktop.store.errors import StoreError
from desktop.store.fills import fill_from_row
from desktop.store.records import TradeRow, require_broker_id, require_session_id
from desktop.store.schema import fills, sessions

_FillKey = tuple[str, str]  # (session_id, fill_id)


def round_trip_pnl(ordered_fills: Iterable[Fill]) -> dict[_FillKey, Decimal]:
    """Gross realised P&L of each round trip (flat to flat), keyed by the fill that closes it.

    Fills must come oldest first. A fill that flips the position (long 50, sell 100) closes one trip
    and opens the next with its remainder. Exact: the P&L of a trip is its net cash flow.
    """
    position: dict[tuple[str, str, str], int] = {}
    cash: dict[tuple[str, str, str], Decimal] = {}
    result: dict[_FillKey, Decimal] = {}
    for f in ordered_fills:
        contract = (f.key.session_id, f.exchange, f.tradingsymbol)
        held = position.get(contract, 0)
        flow = cash.get(contract, Decimal(0))
        step = 1 if f.side is Side.BUY else -1
        qty = f.quantity
        if held != 0 and (held > 0) != (step > 0):
            closing = min(qty, abs(held))
            flow -= step * closing * f.price
            held += step * closing
            qty -= closing
            if held == 0:
                result[(f.key.session_id, f.fill_id)] = rupees(flow)
                flow = Decimal(0)
        held += step * qty
        flow -= step * qty * f.price
        position[contract], cash[contract] = held, flow
    return result


class TradeRepository:
    """An account's or a session's trades, for the trades table and the CSV export."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def for_account(
        self,
        *,
        broker_id: str,
        mode: Mode,
        date_from: date | None = None,
        date_to: date | None = None,
        session_label: str | None = None,
        device_id: str | None = None,
    ) -> list[TradeRow]:
        """An account's PAPER or LIVE trades between two days (inclusive), oldest first; only those one
        computer made when `device_id` is given (rows pulled by the sync carry their own device)."""
        require_broker_id(broker_id)
        if not isinstance(mode, Mode):
            raise StoreError("choose PAPER or LIVE: paper and live trades are never listed together")
        if date_from is not None and date_to is not None and date_from > date_to:
            raise StoreError(f"the start day {date_from} is after the end day {date_to}")
        query = _joined().where(fills.c.broker_id == broker_id, fills.c.mode == mode.value)
        if date_from is not None:
            query = query.where(fills.c.trade_date >= date_from)
        if date_to is not None:
            query = query.where(fills.c.trade_date <= date_to)
        if session_label is not None:
            query = query.where(sessions.c.label == session_label)
        if device_id is not None:
            query = query.where(fills.c.device_id == device_id)
        with self._db.read() as conn:
            rows = conn.execute(query).all()
            session_ids = sorted({r.session_id for r in rows})
            # A round trip may have opened before `date_from`: replay each session's whole history.
            # Sessions are disjoint, so chunks (SQLite caps bound parameters) can simply be joined.
            history: list[Any] = []
            for start in range(0, len(session_ids), 500):
                history += conn.execute(
                    select(fills)
                    .where(
                        fills.c.broker_id == broker_id,
                        fills.c.session_id.in_(session_ids[start : start + 500]),
                    )
                    .order_by(fills.c.timestamp, text("fills.rowid"))
                ).all()
        return _trade_rows(rows, [fill_from_row(r) for r in history])

    def for_session(self, *, broker_id: str, session_id: str) -> list[TradeRow]:
        """One session's trades, oldest first."""
        require_broker_id(broker_id)
        require_session_id(session_id)
        query = _joined().where(fills.c.broker_id == broker_id, fills.c.session_id == session_id)
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return _trade_rows(rows, [fill_from_row(r) for r in rows])


def _joined() -> Select[Any]:
    return (
        select(fills, sessions.c.label)
        .join(
            sessions,
            (sessions.c.broker_id == fills.c.broker_id) & (sessions.c.session_id == fills.c.session_id),
        )
        .order_by(fills.c.timestamp, text("fills.rowid"))
    )


def _trade_rows(rows: Sequence[Any], history: Sequence[Fill]) -> list[TradeRow]:
    pnl = round_trip_pnl(history)
    out = []
    for r in rows:
        fill = fill_from_row(r)
        out.append(
            TradeRow(
                fill, r.label, r.tag, pnl.get((fill.key.session_id, fill.fill_id)), device_id=r.device_id
            )
        )
    return out
