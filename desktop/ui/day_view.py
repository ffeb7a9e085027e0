"""What a session's snapshot means to a trader on screen: one state word for every place that shows a state,
the day's positions (closed ones kept, as Kite keeps them for the day) and the day's summary after the close.

Plain functions over snapshots, no widgets: the header, the segment panels, the status bar and the positions
table all call them, so they cannot disagree (after a kill the header said "halted" while the segments said
"running" and the status bar counted three running).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from desktop.domain import MARKET_CLOSE, Mode, Position, Side, format_rupees, rupees
from desktop.engine import AgentState, SegmentSnapshot, SessionSnapshot, SessionState

MARKET_CLOSED = "market closed"
# Words of a session's states as the window shows them (the engine's values are identifiers).
_STATE_WORDS = {SessionState.LOGIN_NEEDED: "login needed"}
# States of a segment agent that say more than the session's own state: they are shown as they are.
_OWN_SEGMENT_STATES = (AgentState.STARTING, AgentState.STOPPING, AgentState.STOPPED, AgentState.FAILED)


def market_closed(snap: SessionSnapshot, now: datetime | None = None) -> bool:
    """The market's clock (`now`, else the session's last tick) is at or past the close (15:30): the last tick
    of the day may come before 15:30 while the clock stands at it."""
    times = [t for t in (snap.market_time, now) if t is not None]
    return bool(times) and max(times).time() >= MARKET_CLOSE


def display_state(snap: SessionSnapshot, now: datetime | None = None) -> str:
    """The one word for the session's state: "running", "halted", "market closed", "login needed"…"""
    if snap.state is SessionState.RUNNING and market_closed(snap, now):
        return MARKET_CLOSED
    return _STATE_WORDS.get(snap.state, snap.state.value)


def segment_display_state(session_word: str, seg: SegmentSnapshot) -> str:
    """A segment's state word: its own when it is starting, stopping, stopped or failed, else the session's
    (a running agent of a halted session only exits: it is "halted", not "running")."""
    if seg.state in _OWN_SEGMENT_STATES:
        return seg.state.value
    return session_word


def state_counts(words: list[str]) -> str:
    """The status bar's count of sessions by state: "2 running · 1 halted / 3" (tabs never started are only in
    the total)."""
    counts = Counter(w for w in words if w != "idle")
    if not counts:
        return f"0 running / {len(words)}"
    order = ["running", "starting", "halted", MARKET_CLOSED, "login needed", "stopping", "stopped", "idle"]
    ranked = sorted(counts, key=lambda w: order.index(w) if w in order else len(order))
    return " · ".join(f"{counts[w]} {w}" for w in ranked) + f" / {len(words)}"


_Book = dict[tuple[str, str], tuple[int, Decimal]]


def _books(snap: SessionSnapshot) -> tuple[_Book, _Book, dict[tuple[str, str], Decimal]]:
    """Per contract: (quantity, value) bought, (quantity, value) sold, and the last fill's price."""
    bought: _Book = {}
    sold: _Book = {}
    last: dict[tuple[str, str], Decimal] = {}
    for f in snap.fills:
        where = (f.exchange, f.tradingsymbol)
        book = bought if f.side is Side.BUY else sold
        qty, value = book.get(where, (0, Decimal(0)))
        book[where] = (qty + f.quantity, value + f.price * f.quantity)
        last[where] = f.price
    return bought, sold, last


def _contract_realised(p: Position, bought: _Book, sold: _Book) -> Position:
    """An open row's realised P&L for its own contract (what was sold of it, at its average cost), as Kite's
    positions show it; the engine's row carries its segment's whole day."""
    where = (p.exchange, p.tradingsymbol)
    bq, bv = bought.get(where, (0, Decimal(0)))
    sq, sv = sold.get(where, (0, Decimal(0)))
    if not bq or sq > bq:
        return p  # no fills of it (or a short): the engine's figure
    realised = rupees(sv - sq * (bv / bq)) if sq else Decimal(0)
    return p if realised == p.realised_pnl else replace(p, realised_pnl=realised)


def _closed_positions(
    snap: SessionSnapshot,
    held: set[tuple[str, str]],
    books: tuple[_Book, _Book, dict[tuple[str, str], Decimal]],
) -> list[Position]:
    """Contracts traded today and no longer held, from the day's fills: quantity 0, realised P&L of the day."""
    bought, sold, last = books
    rows = []
    for where in bought.keys() | sold.keys():
        (bq, bv), (sq, sv) = bought.get(where, (0, Decimal(0))), sold.get(where, (0, Decimal(0)))
        if where in held or bq != sq:
            continue  # still held (the engine's row), or a part still out: not closed
        rows.append(
            Position(
                key=snap.key,
                mode=snap.mode or Mode.PAPER,
                exchange=where[0],
                tradingsymbol=where[1],
                quantity=0,
                average_price=rupees(bv / bq) if bq else Decimal(0),
                last_price=last[where],
                realised_pnl=rupees(sv - bv),
            )
        )
    return sorted(rows, key=lambda p: p.tradingsymbol)


def day_positions(open_rows: tuple[Position, ...], snap: SessionSnapshot) -> tuple[Position, ...]:
    """The open positions, then today's closed ones (quantity 0), each with its own contract's realised P&L."""
    held = {(p.exchange, p.tradingsymbol) for p in open_rows}
    books = _books(snap)
    opened = tuple(_contract_realised(p, books[0], books[1]) for p in open_rows)
    return opened + tuple(_closed_positions(snap, held, books))


def day_summary(snap: SessionSnapshot) -> str:
    """The day in one line, shown after the close: trades, realised P&L, and what is still held."""
    trades = sum(s.trades_today for s in snap.segments)
    held = [s for s in snap.segments if s.quantity and s.option_symbol]
    text = f"Day's summary: {trades} trade{'s' if trades != 1 else ''} · realised {format_rupees(snap.realised_pnl)}"
    text += f" · day P&L {format_rupees(snap.day_pnl)}"
    if held:
        text += " · still held: " + ", ".join(f"{s.option_symbol} × {s.quantity}" for s in held)
    return text
