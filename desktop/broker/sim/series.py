"""One instrument on one weekday: its price at every second, its minute bars, volume and open interest.

An index's price is its per-second level (pricing.IndexPaths). An option's price at a second is the
Black–Scholes premium on that second's index level with the time to expiry taken at the start of the
minute: within a minute the premium is then a monotone function of the index level (a call rises with
it, a put falls), so a minute's open, high, low and close are exactly the premiums at the index's first,
highest, lowest and last level of that minute: four evaluations per minute instead of sixty, and every
candle, quote and tick reads the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time

import numpy as np

from desktop.broker.sim.instruments import SimInstrument
from desktop.broker.sim.pricing import (
    INDEX_MODELS,
    MIN_EXPIRY_SECONDS,
    SECONDS_PER_YEAR,
    SESSION_SECONDS,
    IndexDay,
    MarketDay,
    premium_paise,
    premium_paise_array,
    smile_vol,
    years_to_expiry,
)
from desktop.broker.sim.snapshot import mix
from desktop.domain import MARKET_OPEN

MINUTES = SESSION_SECONDS // 60  # 375 minute bars, 09:15 .. 15:29; the last one also holds 15:30:00
MINUTE_STARTS = np.arange(0, SESSION_SECONDS, 60)
MINUTE_ENDS = np.append(MINUTE_STARTS[1:] - 1, SESSION_SECONDS)
_ATM_IV = {m.token: m.atm_iv for m in INDEX_MODELS}
_DAILY_LOTS = {256265: 1_200_000, 260105: 300_000, 265: 800_000}  # lots an ATM near-expiry option trades


def minute_of(second: int) -> int:
    """The minute bar holding a session second (15:30:00 belongs to the 15:29 bar)."""
    return min(second // 60, MINUTES - 1)


@dataclass(frozen=True, slots=True)
class Bars:
    """A whole day's minute bars in paise, with the running day high/low through each minute."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    run_high: np.ndarray
    run_low: np.ndarray
    run_value: np.ndarray  # sum of close x volume through each minute (options), for the average price


class InstrumentDay:
    """One instrument on one weekday; option inputs (volatility, activity, open interest) fixed per day."""

    def __init__(
        self, inst: SimInstrument, day: date, index_day: IndexDay, market_day: MarketDay, seed: int
    ) -> None:
        self.inst = inst
        self.day = day
        self.levels = index_day.levels
        self.is_option = inst.is_option
        self._activity = market_day.activity
        noise = market_day.noise
        self._bars: Bars | None = None
        self._memo: tuple[int, dict[int, int]] = (-1, {})  # (minute, index level -> premium)
        if not inst.is_option:
            self.strike = self.vol = self.seconds_to_expiry = 0.0
            self.is_call = False
            self.daily_lots = self.lot = 0
            self.oi = self.oi_high = self.oi_low = np.zeros(MINUTES, dtype=np.int64)
            return
        assert inst.expiry is not None and inst.underlying_token is not None
        self.strike = float(inst.strike)
        self.is_call = inst.is_call
        self.lot = inst.lot_size
        day_open = self.levels[0] / 100.0
        # Sticky strike: an option's volatility is fixed for the day (a smile around the day's open), so
        # intraday its premium moves with the index through delta and time alone, as a trader expects.
        self.vol = smile_vol(_ATM_IV[inst.underlying_token] * index_day.iv_multiplier, self.strike, day_open)
        expiry_close = datetime.combine(inst.expiry, time(15, 30))
        self.seconds_to_expiry = (expiry_close - datetime.combine(day, MARKET_OPEN)).total_seconds()
        near_money = 0.03 + math.exp(-0.5 * (math.log(self.strike / day_open) / 0.015) ** 2)
        days_left = max((inst.expiry - day).days, 0)
        lots = _DAILY_LOTS[inst.underlying_token] * near_money * (0.2 + 0.8 * math.exp(-days_left / 7.0))
        # Per-option randomness from a hash and the day's shared noise: a numpy generator per option
        # would cost more than pricing it.
        h = mix(seed, inst.instrument_token, day.toordinal())
        self.daily_lots = max(1, int(lots * (0.8 + 0.4 * (h & 0xFFFF) / 0xFFFF)))
        # Open interest: a stable level that drifts a little, minute by minute.
        base = self.daily_lots // 3 + 500
        steps = np.roll(noise[(h >> 16) % noise.shape[0]], (h >> 24) % MINUTES)
        self.oi = np.maximum(base + np.cumsum(steps) * max(1, base // 3000), 1) * self.lot
        self.oi_high = np.maximum.accumulate(self.oi)
        self.oi_low = np.minimum.accumulate(self.oi)

    # ------------------------------------------------------------------ prices
    def premium(self, minute: int, level: int) -> int:
        """The option's premium (paise) in a minute at an index level (paise); memoised for one minute."""
        memo_minute, memo = self._memo  # one read: another thread may swap in another minute's memo
        if memo_minute != minute:
            # Only the current minute's levels repeat (its high, low and last): keep memory flat.
            memo = {}
            self._memo = (minute, memo)
        paise = memo.get(level)
        if paise is None:
            years = years_to_expiry(self.seconds_to_expiry - 60.0 * minute)
            paise = memo[level] = premium_paise(level, self.strike, years, self.vol, self.is_call)
        return paise

    def price(self, second: int) -> int:
        """The price in paise at a second of the session."""
        level = int(self.levels[second])
        return self.premium(minute_of(second), level) if self.is_option else level

    def bars(self) -> Bars:
        """The whole day's minute bars (computed on first use)."""
        bars = self._bars
        if bars is None:
            bars = self._bars = self._build_bars()
        return bars

    def _build_bars(self) -> Bars:
        levels = self.levels
        first, last = levels[MINUTE_STARTS], levels[MINUTE_ENDS]
        top, bottom = np.maximum.reduceat(levels, MINUTE_STARTS), np.minimum.reduceat(levels, MINUTE_STARTS)
        if not self.is_option:
            zero = np.zeros(MINUTES, dtype=np.int64)
            return Bars(
                first, top, bottom, last, np.maximum.accumulate(top), np.minimum.accumulate(bottom), zero
            )
        minutes = np.arange(MINUTES, dtype=np.float64)
        # The same arithmetic as years_to_expiry, so bars and single prices agree bit for bit.
        years = np.maximum(self.seconds_to_expiry - 60.0 * minutes, MIN_EXPIRY_SECONDS) / SECONDS_PER_YEAR
        spots = np.concatenate((first, last, top, bottom))
        premiums = premium_paise_array(spots, self.strike, np.tile(years, 4), self.vol, self.is_call)
        p_first, p_last, at_top, at_bottom = premiums.reshape(4, MINUTES)
        high, low = (
            (at_top, at_bottom) if self.is_call else (at_bottom, at_top)
        )  # a put is dearest at the low
        traded = np.diff(self.volume_at(MINUTE_ENDS), prepend=0)
        return Bars(
            p_first, high, low, p_last, np.maximum.accumulate(high), np.minimum.accumulate(low),
            np.cumsum(p_last * traded),
        )  # fmt: skip

    def partial(self, second: int) -> tuple[int, int, int, int]:
        """OHLC in paise of the minute holding `second`, counting its seconds up to `second` only."""
        minute = minute_of(second)
        seg = self.levels[minute * 60 : second + 1]
        top, bottom, last = int(seg.max()), int(seg.min()), int(seg[-1])
        if not self.is_option:
            return int(seg[0]), top, bottom, last
        at_top, at_bottom = self.premium(minute, top), self.premium(minute, bottom)
        high, low = (at_top, at_bottom) if self.is_call else (at_bottom, at_top)
        return int(self.bars().open[minute]), high, low, self.premium(minute, last)

    def day_so_far(self, second: int) -> tuple[int, int, int, int]:
        """The day's open, high, low and last price in paise counting seconds up to `second`."""
        bars = self.bars()
        minute = minute_of(second)
        _, high, low, last = self.partial(second)
        if minute > 0:
            high, low = max(high, int(bars.run_high[minute - 1])), min(low, int(bars.run_low[minute - 1]))
        return int(bars.open[0]), high, low, last

    def bars_until(self, last: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Minute bars from 09:15 through the bar holding second `last`, that bar cut at `last`."""
        bars = self.bars()
        minute = minute_of(last)
        o, h, lo, c = (a[: minute + 1].copy() for a in (bars.open, bars.high, bars.low, bars.close))
        if last != MINUTE_ENDS[minute]:
            o[-1], h[-1], lo[-1], c[-1] = self.partial(last)
        return o, h, lo, c

    # ------------------------------------------------------------------ activity
    def volume(self, second: int) -> int:
        """Units traded from the open through `second` (0 for an index)."""
        if not self.is_option:
            return 0
        return math.floor(self.daily_lots * float(self._activity[second])) * self.lot

    def volume_at(self, seconds: np.ndarray) -> np.ndarray:
        """volume() over an array of seconds."""
        if not self.is_option:
            return np.zeros(len(seconds), dtype=np.int64)
        return np.floor(self.daily_lots * self._activity[seconds]).astype(np.int64) * self.lot

    def oi_at(self, seconds: np.ndarray) -> np.ndarray:
        """Open interest at an array of seconds (0 for an index)."""
        return self.oi[np.minimum(seconds // 60, MINUTES - 1)]

    def average_price(self, second: int, ltp: int) -> int:
        """Volume-weighted average price (paise) through `second`, by minute; the ltp before any trade."""
        volume = self.volume(second)
        if not volume:
            return ltp
        minute = minute_of(second)
        value = 0
        if minute > 0:
            value = int(self.bars().run_value[minute - 1])
            value += ltp * (volume - self.volume(minute * 60 - 1))
        else:
            value = ltp * volume
        return (value + volume // 2) // volume
