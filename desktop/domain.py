"""Value types shared by every layer: small, immutable, no I/O.

Money is exact: prices are `Decimal` rupees quantised to the paisa; floats exist only for drawing.
Times are IST wall-clock naive datetimes, as Kite sends them (DESIGN.md: the engine's time is market
time, never `datetime.now()`).
"""

from __future__ import annotations

import enum
import random
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

PAISA = Decimal("0.01")
TICK_SIZE = Decimal("0.05")
MARKET_OPEN = time(9, 15)
MARKET_CLOSE = time(15, 30)

# Intent ids are drawn at the moment a strategy decides, on the agent's thread, while 30 agents may want the
# GIL. `uuid.uuid4()` reads os.urandom, a system call that lets go of the GIL, and under that contention the
# agent waited to get it back (issue 5's tick-to-intent). A generator seeded once from os.urandom gives ids
# just as unique (122 random bits, a different seed per process) without a system call. They name
# records; they are no secret.
_IDS = random.Random()


def new_id() -> str:
    """A random version-4 UUID as 32 hex digits, drawn without a system call."""
    return uuid.UUID(int=_IDS.getrandbits(128), version=4).hex


def rupees(value: Any) -> Decimal:
    """An exact rupee amount rounded to the paisa, from an int, str, float or Decimal."""
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, float):
        d = Decimal(repr(value))
    else:
        d = Decimal(str(value))
    return d.quantize(PAISA, rounding=ROUND_HALF_UP)


def format_rupees(value: Decimal | None) -> str:
    """A signed rupee amount as a trader reads it, the one format of the window and of headless output:
    +₹1,234.50 / −₹464.75 / ₹0.00 (a real minus sign before the ₹, never "₹-464.75"); blank when unknown."""
    if value is None:
        return ""
    sign = "+" if value > 0 else "\u2212" if value < 0 else ""
    return f"{sign}₹{group_indian(abs(value))}"


def format_amount(value: Decimal) -> str:
    """An amount held or allowed (funds, a limit) in the one money format, without the "+" a gain gets: ₹5,000.00."""
    return format_rupees(value).removeprefix("+")


def group_indian(value: Decimal) -> str:
    """An amount in paise with Indian digit grouping, as Kite shows money: 12,34,567.50 (thousands, then lakhs and
    crores in pairs of digits); a negative zero shows as 0.00."""
    text = f"{value + 0:.2f}"
    sign, text = ("-", text[1:]) if text.startswith("-") and text != "-0.00" else ("", text.lstrip("-"))
    whole, paise = text.split(".")
    head, last3 = whole[:-3], whole[-3:]
    pairs = [head[max(i - 2, 0) : i] for i in range(len(head), 0, -2)][::-1]
    return sign + ",".join([*pairs, last3]) + "." + paise


def to_tick(value: Any, tick: Decimal = TICK_SIZE) -> Decimal:
    """A price rounded to the nearest tick (0.05 for index options)."""
    d = (
        value
        if isinstance(value, Decimal)
        else Decimal(repr(value) if isinstance(value, float) else str(value))
    )
    return ((d / tick).quantize(Decimal(1), rounding=ROUND_HALF_UP) * tick).quantize(PAISA)


class Mode(enum.StrEnum):
    """PAPER fills are simulated at live prices; LIVE sends real orders to the broker."""

    PAPER = "PAPER"
    LIVE = "LIVE"


@dataclass(frozen=True, slots=True)
class SegmentSpec:
    """What KiteDesk knows about one tradable index: where its options trade and how they step."""

    name: str  # option name in the instruments dump: NIFTY, BANKNIFTY, SENSEX
    index_symbol: str  # the index's tradingsymbol: "NIFTY 50", "NIFTY BANK", "SENSEX"
    index_exchange: str  # NSE or BSE (the index itself, segment "INDICES")
    index_token: int  # instrument_token of the index
    option_exchange: str  # NFO or BFO
    strike_step: int  # points between listed strikes
    expiry_weekday: int  # Monday = 0: NSE index options expire Tuesday, BSE Thursday


class Segment(enum.StrEnum):
    """A market segment a session can trade: one index and its options."""

    NIFTY = "NIFTY"
    BANKNIFTY = "BANKNIFTY"
    SENSEX = "SENSEX"

    @property
    def spec(self) -> SegmentSpec:
        return _SEGMENT_SPECS[self]

    @classmethod
    def parse(cls, text: str) -> Segment:
        """The segment named by `text` (case-insensitive), or ValueError naming the choices."""
        key = str(text).strip().upper()
        try:
            return cls(key)
        except ValueError:
            choices = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown segment {text!r}: choose from {choices}") from None


_SEGMENT_SPECS: dict[Segment, SegmentSpec] = {
    Segment.NIFTY: SegmentSpec("NIFTY", "NIFTY 50", "NSE", 256265, "NFO", 50, 1),
    Segment.BANKNIFTY: SegmentSpec("BANKNIFTY", "NIFTY BANK", "NSE", 260105, "NFO", 100, 1),
    Segment.SENSEX: SegmentSpec("SENSEX", "SENSEX", "BSE", 265, "BFO", 100, 3),
}


class OptionRight(enum.StrEnum):
    """CE is a call, PE a put."""

    CE = "CE"
    PE = "PE"


class Side(enum.StrEnum):
    """Kite's transaction_type."""

    BUY = "BUY"
    SELL = "SELL"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(enum.StrEnum):
    """Kite's order_type."""

    MARKET = "MARKET"
    LIMIT = "LIMIT"
    SL = "SL"
    SL_M = "SL-M"


class OrderStatus(enum.StrEnum):
    """Kite's order statuses that KiteDesk acts on; anything else is transient."""

    OPEN = "OPEN"
    COMPLETE = "COMPLETE"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    TRIGGER_PENDING = "TRIGGER PENDING"
    PENDING = "PENDING"  # any transient state (PUT ORDER REQ RECEIVED, VALIDATION PENDING, ...)

    @property
    def is_final(self) -> bool:
        return self in (OrderStatus.COMPLETE, OrderStatus.CANCELLED, OrderStatus.REJECTED)

    @classmethod
    def from_kite(cls, status: str) -> OrderStatus:
        """Maps Kite's status text; unknown transient states become PENDING."""
        try:
            return cls(status)
        except ValueError:
            return cls.PENDING


class OrderRole(enum.StrEnum):
    """What an order is for: risk reads this, never the reason text (a strategy plug-in names its exits as it
    likes). Only an ENTRY adds risk; every other role closes or protects a position and is never refused."""

    ENTRY = "entry"  # buys an option to open a position
    EXIT = (
        "exit"  # sells the held option (a strategy's exit, a stop-loss hit seen on a tick, square-off, kill)
    )
    STOP = "stop"  # the protective stop-loss order resting at the broker (or the paper gateway)

    @property
    def adds_risk(self) -> bool:
        """True for an entry: the only role risk may refuse."""
        return self is OrderRole.ENTRY


@dataclass(frozen=True, slots=True)
class SessionKey:
    """One tab: one login of one account. Two tabs of one account are two keys."""

    broker_id: str
    session_id: str

    @classmethod
    def new(cls, broker_id: str) -> SessionKey:
        return cls(broker_id, uuid.uuid4().hex)

    @property
    def order_tag(self) -> str:
        """The Kite order tag that names this session (alphanumeric, 20 characters at most)."""
        return "KD" + self.session_id.replace("-", "")[:18]


@dataclass(frozen=True, slots=True)
class Instrument:
    """One row of Kite's instruments dump."""

    instrument_token: int
    exchange_token: int
    tradingsymbol: str
    name: str
    exchange: str
    segment: str
    instrument_type: str  # EQ, FUT, CE, PE
    expiry: date | None = None
    strike: Decimal = Decimal(0)
    lot_size: int = 1
    tick_size: Decimal = TICK_SIZE


@dataclass(frozen=True, slots=True)
class Tick:
    """One market-data update for one instrument, in exchange time."""

    instrument_token: int
    last_price: Decimal
    exchange_timestamp: datetime | None = None
    volume: int = 0
    oi: int = 0


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLC candle starting at `start` (exchange time)."""

    start: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int = 0


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """What a session decided to send, journaled before anything is sent."""

    key: SessionKey
    segment: Segment
    mode: Mode
    exchange: str
    tradingsymbol: str
    side: Side
    quantity: int
    order_type: OrderType = OrderType.MARKET
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    product: str = "MIS"
    # Why, in words for the journal and the log (entry, stop_loss, target, square_off, kill, or a plug-in's own).
    reason: str = ""
    intent_id: str = field(default_factory=new_id)
    # What it is for: risk reads this. An intent that does not say is an entry, the side risk checks.
    role: OrderRole = OrderRole.ENTRY

    @property
    def tag(self) -> str:
        return self.key.order_tag


@dataclass(frozen=True, slots=True)
class Order:
    """An order as the broker (or the paper gateway) reports it."""

    order_id: str
    key: SessionKey
    mode: Mode
    exchange: str
    tradingsymbol: str
    side: Side
    quantity: int
    order_type: OrderType
    status: OrderStatus
    filled_quantity: int = 0
    average_price: Decimal = Decimal(0)
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    tag: str = ""
    status_message: str = ""
    timestamp: datetime | None = None
    intent_id: str = ""


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution (a Kite trade)."""

    fill_id: str
    order_id: str
    key: SessionKey
    mode: Mode
    exchange: str
    tradingsymbol: str
    side: Side
    quantity: int
    price: Decimal
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class Position:
    """A session's net position in one contract."""

    key: SessionKey
    mode: Mode
    exchange: str
    tradingsymbol: str
    quantity: int  # signed: > 0 long
    average_price: Decimal
    last_price: Decimal = Decimal(0)
    realised_pnl: Decimal = Decimal(0)

    @property
    def unrealised_pnl(self) -> Decimal:
        return rupees((self.last_price - self.average_price) * self.quantity)


@dataclass(frozen=True, slots=True)
class StrategyParams:
    """A session's validated parameters (build with desktop.engine.params.parse_params).

    Percentages are plain percent numbers (5 means 5 %); times are market (IST) times of day.
    """

    segments: tuple[Segment, ...]
    lots: int
    stop_loss: Decimal  # percent of the entry premium, 0 < x < 100
    itm_offset: int  # points in the money, a multiple of every chosen segment's strike step
    mode: Mode = Mode.PAPER
    strategy: str = "itm_momentum"
    fast_ema: int = 9
    slow_ema: int = 21
    target: Decimal | None = None  # percent above the entry premium
    trailing_stop: Decimal | None = None  # percent below the highest premium since entry
    entry_start: time = time(9, 20)
    entry_end: time = time(14, 45)
    square_off: time = time(15, 15)
    max_trades_per_day: int = 5
    max_daily_loss: Decimal = Decimal(5000)  # rupees, realised + unrealised
    max_orders_per_minute: int = 20
    max_open_positions: int = 1
    # Freeze quantities (units per order) that override desktop/broker/exchange_rules.py's table for this session:
    # sorted (underlying, units) pairs. The exchanges revise them and Kite has no API for them.
    freeze: tuple[tuple[str, int], ...] = ()
    # Settings a plug-in strategy understands and KiteDesk does not: sorted (name, value) pairs.
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def freeze_overrides(self) -> dict[str, int]:
        """The session's freeze quantities by underlying (empty: the table's own figures)."""
        return dict(self.freeze)

    def option(self, name: str, default: Any = None) -> Any:
        """A plug-in strategy's own setting, or `default` when the session did not set it."""
        for key, value in self.options:
            if key == name:
                return value
        return default
