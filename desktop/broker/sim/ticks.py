"""Kite's binary WebSocket tick protocol, server side: packets and frames exactly as `KiteTicker` parses them.

Layouts (KITE.md): big-endian, prices in paise. A frame is a uint16 packet count followed by, per packet,
a uint16 length and the packet; the packet kind is told apart by its length (8, 28, 32, 44, 184).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import datetime, timedelta

HEARTBEAT: bytes = b"\x00"
"""A 1-byte frame: Kite sends it when there is nothing else to say; the client ignores it."""

LTP_PACKET_LEN = 8
INDEX_QUOTE_PACKET_LEN = 28
INDEX_FULL_PACKET_LEN = 32
QUOTE_PACKET_LEN = 44
FULL_PACKET_LEN = 184
DEPTH_LEVELS = 10  # 5 bids then 5 offers

_LTP = struct.Struct(">II")
_INDEX_QUOTE = struct.Struct(">IIIIIII")
_INDEX_FULL = struct.Struct(">IIIIIIII")
_QUOTE = struct.Struct(">IIIIIIIIIII")
_FULL_HEAD = struct.Struct(">IIIIIIIIIIIIIIII")
_DEPTH = struct.Struct(">" + "IIHxx" * 10)  # 10 x (quantity, price, orders, 2 pad bytes)
_COUNT = struct.Struct(">H")

_IST_OFFSET = timedelta(hours=5, minutes=30)
_UNIX_EPOCH = datetime(1970, 1, 1)

DepthLevel = tuple[int, int, int]
"""One depth entry as (quantity, price_paise, orders)."""


def encode_frame(packets: Sequence[bytes]) -> bytes:
    """One binary frame: uint16 count, then per packet uint16 length + packet, big-endian."""
    if len(packets) > 0xFFFF:
        raise ValueError(f"a frame holds at most 65535 packets, not {len(packets)}")
    parts = [_COUNT.pack(len(packets))]
    for packet in packets:
        parts.append(_COUNT.pack(len(packet)))
        parts.append(packet)
    return b"".join(parts)


def encode_ltp_packet(token: int, ltp_paise: int) -> bytes:
    """The 8-byte LTP-mode packet."""
    return _LTP.pack(token, ltp_paise)


def encode_index_packet(
    token: int,
    ltp_paise: int,
    high: int,
    low: int,
    open_: int,
    close: int,
    change: int,
    ts_epoch: int | None,
) -> bytes:
    """An index packet: 28 bytes (quote mode) or 32 with the exchange timestamp (full mode).

    `change` (ltp - close, paise) is the only field that can be negative: the client ignores it, so it is
    written as 32-bit two's complement rather than refused.
    """
    change &= 0xFFFFFFFF
    if ts_epoch is None:
        return _INDEX_QUOTE.pack(token, ltp_paise, high, low, open_, close, change)
    return _INDEX_FULL.pack(token, ltp_paise, high, low, open_, close, change, ts_epoch)


def encode_quote_packet(
    token: int,
    ltp_paise: int,
    last_quantity: int,
    average_price: int,
    volume: int,
    buy_quantity: int,
    sell_quantity: int,
    open_: int,
    high: int,
    low: int,
    close: int,
) -> bytes:
    """The 44-byte quote-mode packet of a tradable instrument (prices in paise)."""
    return _QUOTE.pack(
        token,
        ltp_paise,
        last_quantity,
        average_price,
        volume,
        buy_quantity,
        sell_quantity,
        open_,
        high,
        low,
        close,
    )


def encode_full_packet(
    token: int,
    ltp_paise: int,
    last_quantity: int,
    average_price: int,
    volume: int,
    buy_quantity: int,
    sell_quantity: int,
    open_: int,
    high: int,
    low: int,
    close: int,
    last_trade_time: int,
    oi: int,
    oi_day_high: int,
    oi_day_low: int,
    exchange_ts: int,
    depth: Sequence[DepthLevel],
) -> bytes:
    """The 184-byte full-mode packet: the quote fields, times, OI and 10 depth levels (5 bids, 5 offers).

    `depth` holds exactly 10 (quantity, price_paise, orders) entries, bids first, best first.
    """
    if len(depth) != DEPTH_LEVELS:
        raise ValueError(f"a full packet carries exactly {DEPTH_LEVELS} depth levels, not {len(depth)}")
    head = _FULL_HEAD.pack(
        token,
        ltp_paise,
        last_quantity,
        average_price,
        volume,
        buy_quantity,
        sell_quantity,
        open_,
        high,
        low,
        close,
        last_trade_time,
        oi,
        oi_day_high,
        oi_day_low,
        exchange_ts,
    )
    return head + _DEPTH.pack(*[value for level in depth for value in level])


def ist_epoch(t: datetime) -> int:
    """Unix seconds of a naive IST wall-clock time (sub-second part dropped)."""
    if t.tzinfo is not None:
        raise ValueError("ist_epoch expects a naive IST wall-clock datetime")
    return int((t - _IST_OFFSET - _UNIX_EPOCH) // timedelta(seconds=1))


def restamp_packet(packet: bytes, epoch: int) -> bytes:
    """`packet` with `epoch` as its exchange timestamp (a fault's hostile frame); a packet without one unchanged."""
    stamp = struct.pack(">I", epoch)
    if len(packet) == INDEX_FULL_PACKET_LEN:
        return packet[:28] + stamp
    if len(packet) == FULL_PACKET_LEN:
        return packet[:60] + stamp + packet[64:]
    return packet
