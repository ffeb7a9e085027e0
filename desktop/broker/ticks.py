"""Kite's WebSocket tick protocol: binary frames → `QuoteTick` / `desktop.domain.Tick`, and text frames.

Design decision (issue 3 §3): KiteDesk speaks the ticker protocol with its own asyncio client
(`aiohttp`, one event-loop thread per account feed; see `stream.py`) instead of `KiteTicker`, because:
- `KiteTicker` runs on Twisted's process-global reactor: any ticker's `stop()` stops it for every
  session in the process, and it can never be restarted (`ReactorNotRestartable`). Closing one tab
  must never silence another.
- Its `subscribe`/`set_mode`/`close` write to the socket from the caller's thread, which Twisted does
  not allow; our feed marshals every command onto its own loop.
- Since 5.0.1 it sends no pings, so it cannot notice a silent connection; we need our own watchdog and
  our own reconnect that rebuilds the URL with a new access token after a re-login.
- It turns prices into floats and timestamps into machine-local time; we need exact `Decimal` prices
  and IST wall-clock times whatever the machine's time zone.
So this module parses frames itself. `tests/broker/test_ticks.py` checks it field by field against
`KiteTicker._parse_binary` on the official captures and on hypothesis-generated frames.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from desktop.domain import Tick

IST = timezone(timedelta(hours=5, minutes=30), "IST")

MODE_LTP = "ltp"
MODE_QUOTE = "quote"
MODE_FULL = "full"
MODES = (MODE_LTP, MODE_QUOTE, MODE_FULL)

# Segment ids in the low byte of an instrument token (KITE.md).
SEG_CDS, SEG_BCD, SEG_NCO, SEG_INDICES = 3, 6, 12, 9
_HUNDRED = Decimal(100)
_DIVISORS = {SEG_CDS: Decimal(10_000_000), SEG_BCD: Decimal(10_000), SEG_NCO: Decimal(10_000)}

_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")


def price_divisor(instrument_token: int) -> Decimal:
    """Paise → rupees (100) for most segments; CDS 1e7; BCD and NCO 1e4."""
    return _DIVISORS.get(instrument_token & 0xFF, _HUNDRED)


def ist_from_epoch(seconds: int) -> datetime:
    """An exchange epoch timestamp as a naive IST wall-clock datetime (never machine-local time)."""
    return datetime.fromtimestamp(seconds, IST).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class DepthLevel:
    """One level of market depth."""

    quantity: int
    price: Decimal
    orders: int


@dataclass(frozen=True, slots=True)
class QuoteTick:
    """Everything one tick packet carries; fields absent from its mode stay at their defaults."""

    instrument_token: int
    mode: str
    tradable: bool
    last_price: Decimal
    last_traded_quantity: int = 0
    average_traded_price: Decimal = Decimal(0)
    volume_traded: int = 0
    total_buy_quantity: int = 0
    total_sell_quantity: int = 0
    open: Decimal = Decimal(0)
    high: Decimal = Decimal(0)
    low: Decimal = Decimal(0)
    close: Decimal = Decimal(0)
    last_trade_time: datetime | None = None
    oi: int = 0
    oi_day_high: int = 0
    oi_day_low: int = 0
    exchange_timestamp: datetime | None = None
    buy_depth: tuple[DepthLevel, ...] = field(default=())
    sell_depth: tuple[DepthLevel, ...] = field(default=())

    def to_tick(self) -> Tick:
        """The engine's small tick type."""
        return Tick(
            instrument_token=self.instrument_token,
            last_price=self.last_price,
            exchange_timestamp=self.exchange_timestamp,
            volume=self.volume_traded,
            oi=self.oi,
        )


def split_packets(frame: bytes) -> list[bytes]:
    """The packets of a binary frame; a heartbeat (1 byte) or a truncated frame yields what is whole."""
    if len(frame) < 2:
        return []
    (count,) = _U16.unpack_from(frame, 0)
    packets: list[bytes] = []
    pos = 2
    for _ in range(count):
        if pos + 2 > len(frame):
            break
        (length,) = _U16.unpack_from(frame, pos)
        start, pos = pos + 2, pos + 2 + length
        if pos > len(frame):
            break
        packets.append(frame[start:pos])
    return packets


def parse_packet(packet: bytes) -> QuoteTick | None:
    """One packet as a QuoteTick, or None for a length the protocol does not define."""
    n = len(packet)
    if n not in (8, 28, 32, 44, 184):
        return None
    u = [_U32.unpack_from(packet, i)[0] for i in range(0, min(n, 64), 4)]
    token = u[0]
    div = price_divisor(token)
    tradable = (token & 0xFF) != SEG_INDICES

    def px(i: int) -> Decimal:
        return Decimal(u[i]) / div

    if n == 8:
        return QuoteTick(token, MODE_LTP, tradable, px(1))
    if n in (28, 32):
        # Index packets: high, low, open, close (in that order), then the change we recompute anyway.
        return QuoteTick(
            token,
            MODE_QUOTE if n == 28 else MODE_FULL,
            tradable,
            px(1),
            high=px(2),
            low=px(3),
            open=px(4),
            close=px(5),
            exchange_timestamp=ist_from_epoch(u[7]) if n == 32 else None,
        )
    common: dict[str, Any] = dict(
        last_traded_quantity=u[2],
        average_traded_price=px(3),
        volume_traded=u[4],
        total_buy_quantity=u[5],
        total_sell_quantity=u[6],
        open=px(7),
        high=px(8),
        low=px(9),
        close=px(10),
    )
    if n == 44:
        return QuoteTick(token, MODE_QUOTE, tradable, px(1), **common)
    levels = []
    for p in range(64, 184, 12):
        qty, price = struct.unpack_from(">II", packet, p)
        (orders,) = _U16.unpack_from(packet, p + 8)
        levels.append(DepthLevel(qty, Decimal(price) / div, orders))
    return QuoteTick(
        token,
        MODE_FULL,
        tradable,
        px(1),
        **common,
        last_trade_time=ist_from_epoch(u[11]),
        oi=u[12],
        oi_day_high=u[13],
        oi_day_low=u[14],
        exchange_timestamp=ist_from_epoch(u[15]),
        buy_depth=tuple(levels[:5]),
        sell_depth=tuple(levels[5:]),
    )


def parse_frame(frame: bytes) -> list[QuoteTick]:
    """Every tick in one binary frame, in order; unknown packet lengths are skipped as KiteTicker does."""
    ticks = []
    for packet in split_packets(frame):
        tick = parse_packet(packet)
        if tick is not None:
            ticks.append(tick)
    return ticks


@dataclass(frozen=True, slots=True)
class TextMessage:
    """A server text frame: kind is 'order', 'error' or 'message'; data is its payload."""

    kind: str
    data: Any


def parse_text(payload: str | bytes) -> TextMessage | None:
    """A server text frame, or None when it is not the JSON object the protocol defines."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("type"), str):
        return None
    return TextMessage(doc["type"], doc.get("data"))


def pack_frame(packets: list[bytes]) -> bytes:
    """A binary frame holding `packets` (for the simulator-free tests and replay)."""
    out = [_U16.pack(len(packets))]
    for p in packets:
        out.append(_U16.pack(len(p)))
        out.append(p)
    return b"".join(out)
