"""One instrument at one market second, and the shapes Kite sends it in: quote dicts, tick packets, candles.

The market computes prices; this module adds what a real book shows around them (spread, five levels
of depth, quantities) from a seeded hash of (seed, token, day, second), so they are reproducible too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from desktop.broker.sim.instruments import SimInstrument
from desktop.broker.sim.ticks import (
    DepthLevel,
    encode_full_packet,
    encode_index_packet,
    encode_ltp_packet,
    encode_quote_packet,
    ist_epoch,
)

TICK_PAISE = 5
DEPTH_PER_SIDE = 5
_EMPTY_LEVEL: DepthLevel = (0, 0, 0)
_NO_DEPTH: tuple[DepthLevel, ...] = (_EMPTY_LEVEL,) * DEPTH_PER_SIDE
_M64 = (1 << 64) - 1
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def mix(*values: int) -> int:
    """A 64-bit hash of integers (splitmix64 steps): cheap, stable across processes."""
    x = 0x9E3779B97F4A7C15
    for v in values:
        x = ((x ^ (v & _M64)) * 0xBF58476D1CE4E5B9) & _M64
        x ^= x >> 29
        x = (x * 0x94D049BB133111EB) & _M64
        x ^= x >> 32
    return x


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a quote or a tick says about one instrument at one second; prices in paise."""

    token: int
    n: int  # weekday number of the day
    second: int  # second of the session (0 = 09:15:00)
    stamp: datetime  # exchange timestamp shown
    last_trade: datetime
    ltp: int
    open: int
    high: int
    low: int
    close: int  # the previous day's close, as Kite's `close`
    average: int
    volume: int
    last_quantity: int
    buy_quantity: int
    sell_quantity: int
    oi: int
    oi_high: int
    oi_low: int
    bid: int
    ask: int
    bids: tuple[DepthLevel, ...]  # (quantity, price, orders), best first
    asks: tuple[DepthLevel, ...]
    lower_circuit: int
    upper_circuit: int


def build_snapshot(
    inst: SimInstrument,
    seed: int,
    n: int,
    second: int,
    stamp: datetime,
    last_trade: datetime,
    fields: dict[str, Any],
) -> Snapshot:
    """A snapshot from the market's prices (`fields`), adding the book around them for an option."""
    ltp, close = fields["ltp"], fields["close"]
    common = dict(
        token=inst.instrument_token,
        n=n,
        second=second,
        stamp=stamp,
        last_trade=last_trade,
        ltp=ltp,
        open=fields["open"],
        high=fields["high"],
        low=fields["low"],
        close=close,
    )
    if not inst.is_option:
        # Indices have no book: Kite shows zero quantities, no depth and no circuit limits.
        return Snapshot(
            **common, average=0, volume=0, last_quantity=0, buy_quantity=0, sell_quantity=0, oi=0,
            oi_high=0, oi_low=0, bid=ltp, ask=ltp, bids=_NO_DEPTH, asks=_NO_DEPTH, lower_circuit=0,
            upper_circuit=0,
        )  # fmt: skip
    lot = inst.lot_size
    h = mix(seed, inst.instrument_token, n, second)
    bid, ask = _spread(inst, ltp, fields["underlying"], h)
    band = round(fields["underlying_close"] * 0.10 / TICK_PAISE) * TICK_PAISE
    return Snapshot(
        **common,
        average=fields["average"],
        volume=fields["volume"],
        last_quantity=lot * (1 + h % 10),
        buy_quantity=lot * (400 + (h >> 8) % 4000),
        sell_quantity=lot * (400 + (h >> 20) % 4000),
        oi=fields["oi"],
        oi_high=fields["oi_high"],
        oi_low=fields["oi_low"],
        bid=bid,
        ask=ask,
        bids=_depth_side(bid, -TICK_PAISE, lot, mix(h, 1)),
        asks=_depth_side(ask, TICK_PAISE, lot, mix(h, 2)),
        lower_circuit=max(TICK_PAISE, close - band),
        upper_circuit=close + band,
    )


def _spread(inst: SimInstrument, ltp: int, underlying: int, h: int) -> tuple[int, int]:
    """Best bid and ask in paise: a tick or two near the money, wider for far (cheap) strikes."""
    far = abs(math.log(float(inst.strike) * 100.0 / underlying))
    ticks = 1 + min(5, int(far / 0.015)) + (1 if ltp >= 50_000 else 0) + (h >> 40) % 2
    below = (h >> 44) % (ticks + 1)  # where the last trade sat inside the spread
    bid = max(TICK_PAISE, ltp - below * TICK_PAISE)
    return bid, bid + ticks * TICK_PAISE


def _depth_side(best: int, step: int, lot: int, h: int) -> tuple[DepthLevel, ...]:
    # One 64-bit hash feeds all five levels: 6 bits of lots and 5 of orders each.
    levels: list[DepthLevel] = []
    for i in range(DEPTH_PER_SIDE):
        price = best + i * step
        if price < TICK_PAISE:
            levels.append(_EMPTY_LEVEL)
            continue
        bits = h >> (11 * i)
        lots = 1 + i * 4 + (bits & 63)
        levels.append((lots * lot, price, 1 + ((bits >> 6) & 31) % min(lots, 25)))
    return tuple(levels)


def _rupees(paise: int) -> float:
    return paise / 100


def _depth_json(levels: Sequence[DepthLevel]) -> list[dict[str, Any]]:
    return [{"price": _rupees(p), "quantity": q, "orders": o} for q, p, o in levels]


def quote_dict(inst: SimInstrument, s: Snapshot) -> dict[str, Any]:
    """The per-instrument value of Kite's GET /quote (JSON-ready: floats and ints, time strings)."""
    return {
        "instrument_token": inst.instrument_token,
        "timestamp": s.stamp.strftime(_TIME_FORMAT),
        "last_trade_time": s.last_trade.strftime(_TIME_FORMAT),
        "last_price": _rupees(s.ltp),
        "last_quantity": s.last_quantity,
        "buy_quantity": s.buy_quantity,
        "sell_quantity": s.sell_quantity,
        "volume": s.volume,
        "average_price": _rupees(s.average),
        "oi": s.oi,
        "oi_day_high": s.oi_high,
        "oi_day_low": s.oi_low,
        "net_change": _rupees(s.ltp - s.close),
        "lower_circuit_limit": _rupees(s.lower_circuit),
        "upper_circuit_limit": _rupees(s.upper_circuit),
        "ohlc": {
            "open": _rupees(s.open),
            "high": _rupees(s.high),
            "low": _rupees(s.low),
            "close": _rupees(s.close),
        },
        "depth": {"buy": _depth_json(s.bids), "sell": _depth_json(s.asks)},
    }


def snapshot_packet(inst: SimInstrument, s: Snapshot, mode: str) -> bytes:
    """The binary tick packet of a snapshot in mode ltp, quote or full (index packets for indices)."""
    token = inst.instrument_token
    if mode == "ltp":
        return encode_ltp_packet(token, s.ltp)
    if not inst.is_option:
        ts = ist_epoch(s.stamp) if mode == "full" else None
        return encode_index_packet(token, s.ltp, s.high, s.low, s.open, s.close, s.ltp - s.close, ts)
    quote = (token, s.ltp, s.last_quantity, s.average, s.volume, s.buy_quantity, s.sell_quantity)
    ohlc = (s.open, s.high, s.low, s.close)
    if mode == "quote":
        return encode_quote_packet(*quote, *ohlc)
    return encode_full_packet(
        *quote,
        *ohlc,
        last_trade_time=ist_epoch(s.last_trade),
        oi=s.oi,
        oi_day_high=s.oi_high,
        oi_day_low=s.oi_low,
        exchange_ts=ist_epoch(s.stamp),
        depth=s.bids + s.asks,
    )


def candle_rows(
    stamps: Sequence[datetime],
    opens: np.ndarray,
    highs: np.ndarray,
    lows: np.ndarray,
    closes: np.ndarray,
    volumes: np.ndarray,
    ois: np.ndarray | None,
) -> list[list]:
    """Kite candle rows `[ts, o, h, l, c, v(, oi)]` from per-candle arrays (prices in paise)."""
    rows: list[list] = []
    for i, stamp in enumerate(stamps):
        row: list = [
            stamp.strftime("%Y-%m-%dT%H:%M:%S+0530"),
            _rupees(int(opens[i])),
            _rupees(int(highs[i])),
            _rupees(int(lows[i])),
            _rupees(int(closes[i])),
            int(volumes[i]),
        ]
        if ois is not None:
            row.append(int(ois[i]))
        rows.append(row)
    return rows
