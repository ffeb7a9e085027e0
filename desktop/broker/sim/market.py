"""The simulator's market: NIFTY 50, NIFTY BANK and SENSEX and their option chains, seeded and reproducible.

Everything a client sees (ticks, quotes, OHLC, candles, the instruments dump) is read from one model
(series.InstrumentDay over pricing.IndexPaths), so all of them agree. Pure Python + numpy: no I/O, no
threads of its own; safe to call from several threads.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import numpy as np

from desktop.broker.sim.instruments import SimInstrument, index_instrument, instruments_csv, option_chain
from desktop.broker.sim.pricing import SESSION_SECONDS, IndexPaths
from desktop.broker.sim.series import InstrumentDay, minute_of
from desktop.broker.sim.snapshot import (
    TICK_PAISE,
    Snapshot,
    build_snapshot,
    candle_rows,
    quote_dict,
    snapshot_packet,
)
from desktop.domain import MARKET_OPEN, Segment

__all__ = ["INTERVAL_MINUTES", "Market", "SimInstrument"]

INTERVAL_MINUTES: dict[str, int | None] = {
    "minute": 1,
    "3minute": 3,
    "5minute": 5,
    "10minute": 10,
    "15minute": 15,
    "30minute": 30,
    "60minute": 60,
    "day": None,
}
_MAX_CANDLE_DAYS = 2000
_DAY_CACHE = 3000  # instrument-days kept (~25 kB each once their bars are built)


@dataclass(frozen=True, slots=True)
class _Where:
    """A moment mapped onto the market: the weekday, the second of its session and the stamp to show."""

    day: date
    second: int  # 0 = 09:15:00 .. SESSION_SECONDS = 15:30:00
    stamp: datetime  # the asked time, to the second


class Market:
    """A seeded, reproducible intraday market for NIFTY 50, NIFTY BANK and SENSEX and their options."""

    def __init__(self, seed: int, trading_day: date) -> None:
        if trading_day.weekday() >= 5:
            raise ValueError(f"{trading_day:%Y-%m-%d} is a {trading_day:%A}: choose a weekday to trade")
        self.seed = int(seed)
        self.trading_day = trading_day
        self._lock = threading.RLock()
        self._paths = IndexPaths(self.seed)
        self._days: dict[tuple[int, date], InstrumentDay] = {}  # insertion ordered: oldest first
        self._prices: dict[int, tuple[date, int, int]] = {}  # token -> (day, second, paise): the hot path
        self._snapshots: dict[int, Snapshot] = {}
        self._packets: dict[tuple[int, str], tuple[datetime, int, bytes]] = {}
        self._last_where: tuple[datetime, _Where] | None = None
        self._csv: dict[str | None, str] = {}
        # Faults (desktop/broker/sim/faults.py): premium gaps as (from, factor) per token, contracts untraded.
        self._gaps: dict[int, list[tuple[datetime, Decimal]]] = {}
        self._untraded: set[int] = set()
        today = self._paths.day(trading_day)
        rows: list[SimInstrument] = []
        for segment in Segment:
            index = index_instrument(segment)
            open_level = Decimal(int(today.indices[index.instrument_token].levels[0])).scaleb(-2)
            rows.append(index)
            rows.extend(option_chain(segment, trading_day, open_level))
        self.instruments: tuple[SimInstrument, ...] = tuple(rows)
        self._by_token = {i.instrument_token: i for i in rows}
        self._by_symbol = {(i.exchange, i.tradingsymbol): i for i in rows}

    # ----------------------------------------------------------------- instruments
    def instrument(self, token: int) -> SimInstrument:
        """The instrument with this token; KeyError if the market does not list it."""
        try:
            return self._by_token[token]
        except KeyError:
            raise KeyError(f"unknown instrument token {token}") from None

    def find(self, exchange: str, tradingsymbol: str) -> SimInstrument | None:
        """The instrument listed as EXCHANGE:TRADINGSYMBOL, or None."""
        return self._by_symbol.get((exchange.upper(), tradingsymbol.upper()))

    def instruments_csv(self, exchange: str | None = None) -> str:
        """Kite's instruments dump (exact header); `last_price` is the previous close. None = all exchanges."""
        key = exchange.upper() if exchange else None
        with self._lock:
            cached = self._csv.get(key)
            if cached is None:
                prev_day = self._previous_day(self.trading_day)
                rows = [
                    (inst, _rupees(self._price(inst, prev_day, SESSION_SECONDS)))
                    for inst in self.instruments
                    if key is None or inst.exchange == key
                ]
                cached = self._csv[key] = instruments_csv(rows)
        return cached

    # ----------------------------------------------------------------- prices
    def last_price(self, token: int, t: datetime) -> Decimal:
        """Last traded price at t (options on the 0.05 tick, >= 0.05; the day's open before 09:15)."""
        where = self._where(t)
        cached = self._prices.get(token)
        if cached is not None and cached[1] == where.second and cached[0] == where.day:
            return _rupees(cached[2])
        paise = self._gapped(token, t, self._price(self.instrument(token), where.day, where.second))
        self._prices[token] = (where.day, where.second, paise)
        return _rupees(paise)

    # ----------------------------------------------------------------- faults
    def gap_premium(self, token: int, percent: Decimal, at: datetime) -> tuple[Decimal, Decimal]:
        """From `at` on, the contract trades `percent` % away from the model (one tick's jump, a gap).

        Ticks, quotes, the LTP and order matching read the gapped price; historical candles keep the model's
        path. Returns the last price just before and just after the jump.
        """
        inst = self.instrument(token)
        if not inst.is_option:
            raise ValueError(f"{inst.tradingsymbol} is an index: only an option's premium can gap")
        factor = 1 + Decimal(percent) / 100
        if factor <= 0:
            raise ValueError("a premium can fall by less than 100 %")
        before = self.last_price(token, at)
        with self._lock:
            self._gaps.setdefault(token, []).append((at.replace(microsecond=0), factor))
            self._forget(token)
        return before, self.last_price(token, at)

    def mark_untraded(self, token: int) -> None:
        """The contract has had no trade today (a deep strike at the open): MARKET orders in it are refused."""
        self.instrument(token)
        self._untraded.add(token)

    def traded_today(self, token: int, t: datetime) -> bool:
        """True once the option has traded today (volume above zero); an index is never "untraded"."""
        inst = self.instrument(token)
        if not inst.is_option:
            return True
        if token in self._untraded:
            return False
        return self._snapshot(inst, self._where(t)).volume > 0

    def _gapped(self, token: int, t: datetime, paise: int) -> int:
        gaps = self._gaps.get(token)
        if not gaps:
            return paise
        factor = Decimal(1)
        for start, f in gaps:
            if t >= start:
                factor *= f
        if factor == 1:
            return paise
        return max(TICK_PAISE, int((paise * factor / TICK_PAISE).to_integral_value()) * TICK_PAISE)

    def _forget(self, token: int) -> None:
        self._prices.pop(token, None)
        self._snapshots.pop(token, None)
        for mode in ("ltp", "quote", "full"):
            self._packets.pop((token, mode), None)

    def bid_ask(self, token: int, t: datetime) -> tuple[Decimal, Decimal]:
        """Best bid and offer at t, tick-aligned around the last price; an index gives (ltp, ltp)."""
        snap = self._snapshot(self.instrument(token), self._where(t))
        return _rupees(snap.bid), _rupees(snap.ask)

    def quote(self, token: int, t: datetime) -> dict[str, Any]:
        """The value Kite's GET /quote gives for this instrument at t (JSON-ready)."""
        inst = self.instrument(token)
        return quote_dict(inst, self._snapshot(inst, self._where(t)))

    def ohlc(self, token: int, t: datetime) -> dict[str, Any]:
        """The value Kite's GET /quote/ohlc gives: last price and the day's OHLC (close = previous day's)."""
        s = self._snapshot(self.instrument(token), self._where(t))
        ohlc = {"open": s.open / 100, "high": s.high / 100, "low": s.low / 100, "close": s.close / 100}
        return {"instrument_token": token, "last_price": s.ltp / 100, "ohlc": ohlc}

    def tick_packet(self, token: int, t: datetime, mode: str) -> bytes:
        """One binary tick packet (no length prefix) for mode "ltp", "quote" or "full"."""
        if mode not in ("ltp", "quote", "full"):
            raise ValueError(f"unknown tick mode {mode!r}: use ltp, quote or full")
        inst = self.instrument(token)
        where = self._where(t)
        cached = self._packets.get((token, mode))
        if cached is not None and cached[0] == where.stamp and cached[1] == where.second:
            return cached[2]
        packet = snapshot_packet(inst, self._snapshot(inst, where), mode)
        self._packets[(token, mode)] = (where.stamp, where.second, packet)
        return packet

    def candles(self, token: int, interval: str, frm: datetime, to: datetime, oi: bool = False) -> list[list]:
        """Historical candles [ts, o, h, l, c, v(, oi)] from frm to `to` (pass the market's now at most)."""
        inst = self.instrument(token)
        if interval not in INTERVAL_MINUTES:
            raise ValueError(
                f"unknown candle interval {interval!r}: use one of {', '.join(INTERVAL_MINUTES)}"
            )
        if to < frm:
            return []
        if (to.date() - frm.date()).days > _MAX_CANDLE_DAYS:
            raise ValueError(f"ask for at most {_MAX_CANDLE_DAYS} days of candles at once")
        rows: list[list] = []
        day = frm.date()
        while day <= to.date():
            if day.weekday() < 5 and to >= datetime.combine(day, MARKET_OPEN):
                rows.extend(self._day_candles(inst, day, INTERVAL_MINUTES[interval], frm, to, oi))
            day += timedelta(days=1)
        return rows

    def _day_candles(
        self, inst: SimInstrument, day: date, minutes: int | None, frm: datetime, to: datetime, oi: bool
    ) -> list[list]:
        series = self._series(inst, day)
        last = self._where(to).second if to.date() == day else SESSION_SECONDS
        o, h, lo, c = series.bars_until(last)
        if minutes is None:
            groups = np.array([0])
            stamps = [datetime.combine(day, time())]
        else:
            session_open = datetime.combine(day, MARKET_OPEN)
            groups = np.arange(0, o.size, minutes)  # first minute bar of each candle
            stamps = [session_open + timedelta(minutes=m) for m in groups.tolist()]
        first_second = groups * 60
        last_second = np.append(first_second[1:] - 1, last)
        before = np.where(first_second > 0, series.volume_at(np.maximum(first_second - 1, 0)), 0)
        rows = candle_rows(
            stamps,
            o[groups],
            np.maximum.reduceat(h, groups),
            np.minimum.reduceat(lo, groups),
            c[np.append(groups[1:] - 1, o.size - 1)],
            series.volume_at(last_second) - before,
            series.oi_at(last_second) if oi else None,
        )
        if minutes is None:
            return rows
        return [row for row, stamp in zip(rows, stamps, strict=True) if stamp >= frm]

    # ----------------------------------------------------------------- the model
    def _where(self, t: datetime) -> _Where:
        """Maps t onto a weekday and a second of its session (a weekend reads as Friday's close)."""
        last = self._last_where
        if last is not None and last[0] == t:
            return last[1]
        day = t.date()
        stamp = t.replace(microsecond=0)
        if day.weekday() >= 5:
            day -= timedelta(days=day.weekday() - 4)
            second = SESSION_SECONDS
        else:
            elapsed = (t - datetime.combine(day, MARKET_OPEN)).total_seconds()
            second = min(max(math.floor(elapsed), 0), SESSION_SECONDS)
        where = _Where(day, second, stamp)
        self._last_where = (t, where)
        return where

    @staticmethod
    def _previous_day(day: date) -> date:
        return day - timedelta(days=3 if day.weekday() == 0 else 1)

    def _series(self, inst: SimInstrument, day: date) -> InstrumentDay:
        """The instrument on a weekday (cached, least recently used dropped first)."""
        key = (inst.instrument_token, day)
        series = self._days.get(key)
        if series is not None:
            return series
        with self._lock:
            series = self._days.get(key)
            if series is None:
                market_day = self._paths.day(day)
                index_day = market_day.indices[inst.underlying_token or inst.instrument_token]
                series = InstrumentDay(inst, day, index_day, market_day, self.seed)
                self._days[key] = series
                if len(self._days) > _DAY_CACHE:
                    self._days.pop(next(iter(self._days)))
            return series

    def _price(self, inst: SimInstrument, day: date, second: int) -> int:
        return self._series(inst, day).price(second)

    def _snapshot(self, inst: SimInstrument, where: _Where) -> Snapshot:
        """Everything a quote or tick says about one instrument at one second (cached for that second)."""
        token = inst.instrument_token
        cached = self._snapshots.get(token)
        if cached is not None and cached.stamp == where.stamp and cached.second == where.second:
            return cached
        day, second = where.day, where.second
        series = self._series(inst, day)
        prev_day = self._previous_day(day)
        day_open, high, low, ltp = series.day_so_far(second)
        if token in self._gaps:  # a gap moves the last price; the day's range stretches to hold it
            ltp = self._gapped(token, where.stamp, ltp)
            high, low = max(high, ltp), min(low, ltp)
        fields: dict[str, Any] = {"ltp": ltp, "open": day_open, "high": high, "low": low}
        fields["close"] = self._price(inst, prev_day, SESSION_SECONDS)
        if inst.is_option:
            minute = minute_of(second)
            fields.update(
                volume=series.volume(second),
                average=series.average_price(second, ltp),
                oi=int(series.oi[minute]),
                oi_high=int(series.oi_high[minute]),
                oi_low=int(series.oi_low[minute]),
                underlying=int(series.levels[second]),
                underlying_close=int(self._series(inst, prev_day).levels[-1]),
            )
        session_open = datetime.combine(day, MARKET_OPEN)
        if where.stamp < session_open:  # before the open the last trade was the previous close
            last_trade = datetime.combine(prev_day, time(15, 30))
        else:
            last_trade = session_open + timedelta(seconds=second)
        snap = build_snapshot(inst, self.seed, day.toordinal(), second, where.stamp, last_trade, fields)
        self._snapshots[token] = snap
        return snap


def _rupees(paise: int) -> Decimal:
    return Decimal(paise).scaleb(-2)
