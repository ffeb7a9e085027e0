"""What the engine shows the outside world: immutable snapshots a GUI or a headless run reads at its own pace.

Agents publish a new snapshot object whenever something changes; readers take the latest one (a plain
attribute read, no lock, no signal per tick). Bars are shared between snapshots: the closed-bar tuple is
replaced only when a bar closes, so `bars_version` tells a chart whether anything but the forming bar moved.
Prices are Decimal: convert to float only to draw.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from desktop.domain import Bar, Fill, Mode, Order, Position, Segment, SessionKey
from desktop.engine.funds import Funds

if TYPE_CHECKING:
    from desktop.engine.trader import SegmentTrader


class AgentState(enum.StrEnum):
    """Life of one segment agent."""

    STARTING = "starting"  # thread up, instruments and history loading
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"  # its strategy raised: only this agent stops, the reason is in `failure`


class SessionState(enum.StrEnum):
    """Life of one session (one tab)."""

    IDLE = "idle"  # opened, never started
    STARTING = "starting"
    RUNNING = "running"
    HALTED = "halted"  # kill switch or daily loss: exits only
    LOGIN_NEEDED = "login_needed"  # the account's token expired; resumes after a new login
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class TradeMarker:
    """An entry or exit drawn on the index chart at the index price of that moment."""

    time: datetime
    index_price: Decimal
    kind: str  # "entry" or "exit"
    label: str  # e.g. "BUY NIFTY2611325900CE @ 182.35" or "SL 172.10"


@dataclass(frozen=True, slots=True)
class SegmentSnapshot:
    """One segment agent as the GUI draws it."""

    segment: Segment
    state: AgentState
    failure: str | None = None
    last_tick_time: datetime | None = None
    bars: tuple[Bar, ...] = ()  # closed 1-minute bars of the index, oldest first (history included)
    bars_version: int = 0  # bumps when `bars` changes (a bar closed or history loaded)
    forming_bar: Bar | None = None  # the current, still-changing bar
    fast_ema: tuple[Decimal | None, ...] = ()  # one value per closed bar, aligned with `bars`
    slow_ema: tuple[Decimal | None, ...] = ()
    signal: str | None = None  # last signal, e.g. "UP 10:31"
    markers: tuple[TradeMarker, ...] = ()
    option_symbol: str | None = None  # the held option
    quantity: int = 0
    entry_price: Decimal | None = None
    stop_price: Decimal | None = None
    target_price: Decimal | None = None
    option_price: Decimal | None = None
    realised_pnl: Decimal = Decimal(0)
    unrealised_pnl: Decimal = Decimal(0)
    trades_today: int = 0  # filled entries of the market day (what the trade cap counts)
    note: str = ""
    # Why risk refused the last entry today, e.g. "trade cap 5 reached, no more entries today".
    risk_note: str = ""
    # The held position's protection when it needs a trader's eye: "stop triggered, chasing" while a triggered
    # stop is being chased, "UNPROTECTED: <why>" while no stop-loss order protects it; "" otherwise.
    protection: str = ""


@dataclass(frozen=True, slots=True)
class SessionSnapshot:
    """One session (tab) at one moment."""

    key: SessionKey
    label: str
    mode: Mode | None
    state: SessionState
    market_time: datetime | None = None
    segments: tuple[SegmentSnapshot, ...] = ()
    orders: tuple[Order, ...] = ()
    fills: tuple[Fill, ...] = ()
    positions: tuple[Position, ...] = ()
    realised_pnl: Decimal = Decimal(0)
    unrealised_pnl: Decimal = Decimal(0)
    message: str = ""  # why halted / failed / login needed, in a trader's words
    version: int = 0  # bumps on every new snapshot of this session
    # Ticks of its instruments the feed dropped for an exchange time far from the market clock (or going back).
    bad_time_ticks: int = 0
    malformed_replies: int = 0  # Kite replies and order updates that did not hold what the API says
    # The account's funds (LIVE: fetched every minute and after each fill; PAPER: `Funds.paper`); None: not yet.
    funds: Funds | None = None

    @property
    def day_pnl(self) -> Decimal:
        return self.realised_pnl + self.unrealised_pnl

    def segment(self, segment: Segment) -> SegmentSnapshot | None:
        return next((s for s in self.segments if s.segment is segment), None)


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of a session's log, for the GUI's log panel (already redacted)."""

    segment: str  # a segment name, or "" for the session itself
    level: str  # DEBUG, INFO, WARNING, ERROR
    text: str  # the formatted line as written to the file
    market_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class ProfileInfo:
    """A broker account as the login dialog shows it (no secrets)."""

    user_id: str
    api_key: str
    display_name: str = ""
    redirect_url: str = "http://127.0.0.1:5000/kite/callback"
    api_root: str = "https://api.kite.trade"
    login_url_root: str = "https://kite.zerodha.com"
    logged_in: bool = False
    has_secret: bool = False
    tags: tuple[str, ...] = field(default_factory=tuple)  # e.g. ("demo",)


def note_of_day(note: tuple[date, str] | None, now: datetime | None) -> str:
    """Risk's last refusal while it is about today (a new day lifts the trade cap and the daily loss limit)."""
    return note[1] if note is not None and now is not None and note[0] == now.date() else ""


def segment_snapshot(t: SegmentTrader, state: AgentState, failure: str | None = None) -> SegmentSnapshot:
    """The segment of trader `t` as the GUI draws it (immutable; bars shared until one closes). On the thread
    that runs the trader (its agent's)."""
    s, h, chart = t.strategy.snapshot(), t.holding, t.chart
    pos, protection = s.position, t.protection.status()
    return SegmentSnapshot(
        segment=t.segment, state=state, failure=failure, last_tick_time=t.market_time,
        bars=chart.bars, bars_version=chart.version, forming_bar=chart.forming, fast_ema=chart.fast_ema,
        slow_ema=chart.slow_ema, signal=s.signal, markers=tuple(chart.markers),
        option_symbol=h.tradingsymbol if h else None, quantity=h.quantity if h else 0,
        entry_price=h.entry_price if h else None, stop_price=pos.stop if pos else None,
        target_price=pos.target if pos else None, option_price=h.last_price if h else None,
        realised_pnl=t.realised, unrealised_pnl=t.unrealised,
        trades_today=t.ctx.risk.trades_today(t.segment, t.market_time),
        note="; ".join(n for n in (protection, t.note) if n),
        risk_note=note_of_day(t.entries.risk_note, t.market_time), protection=protection,
    )  # fmt: skip
