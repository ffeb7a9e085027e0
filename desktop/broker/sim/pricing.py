"""The simulator's price model: seeded per-second index paths and Black–Scholes option premiums.

Index levels: every weekday's close is chained from a fixed anchor (2026-01-01) by seeded daily log
returns (an overnight gap plus an intraday move), so any day can be rebuilt on its own, in any process,
from (seed, day) alone. Within a day the level is a Brownian bridge, second by second, from the day's
open to its close, with a U-shaped intraday volatility. The three indices share a market factor, so
they move together as they do in reality. Holidays are not modelled: every weekday trades.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date

import numpy as np

ANCHOR_DAY = date(2026, 1, 1)
SESSION_SECONDS = 22_500  # 09:15:00 .. 15:30:00; a day has SESSION_SECONDS + 1 per-second prices
RISK_FREE_RATE = 0.065
SECONDS_PER_YEAR = 365.0 * 86_400.0
MIN_EXPIRY_SECONDS = 300.0  # floor on time to expiry: an option is never priced as already expired
TRADING_DAYS_PER_YEAR = 252
_GAP_VARIANCE_SHARE = 0.2  # share of the daily variance that arrives overnight
_BLOCK = 256  # weekdays of daily returns drawn from one generator


@dataclass(frozen=True, slots=True)
class IndexModel:
    """How one index moves: its level on the anchor day, its yearly volatility and market correlation."""

    token: int
    anchor_level: float
    annual_vol: float
    market_beta: float  # correlation of its shocks with the shared market factor
    atm_iv: float  # implied volatility of its at-the-money options on a calm day


INDEX_MODELS: tuple[IndexModel, ...] = (
    IndexModel(256265, 26_000.0, 0.12, 0.97, 0.115),  # NIFTY 50
    IndexModel(260105, 59_000.0, 0.14, 0.85, 0.13),  # NIFTY BANK
    IndexModel(265, 85_000.0, 0.12, 0.97, 0.12),  # SENSEX
)


@dataclass(frozen=True, slots=True)
class IndexDay:
    """One weekday of one index: per-second levels in paise and the previous close."""

    day: date
    token: int
    levels: np.ndarray  # int64 paise, SESSION_SECONDS + 1 values from 09:15:00 to 15:30:00
    prev_close: int  # paise: the previous weekday's close, Kite's `close` field
    iv_multiplier: float  # this day's implied-volatility level relative to a calm day


@dataclass(frozen=True, slots=True)
class MarketDay:
    """Every index of one weekday plus the shared trading activity curve."""

    day: date
    indices: dict[int, IndexDay]
    activity: np.ndarray  # float64 cumulative share of the day's volume traded by each second (last = 1)
    noise: np.ndarray  # int64 (64, 375) small steps in [-3, 3]: options draw their open-interest drift here


def weekday_number(day: date) -> int:
    """Signed count of weekdays from the anchor day (0) to `day`; weekends are rejected."""
    if day.weekday() >= 5:
        raise ValueError(f"{day:%Y-%m-%d} is a {day:%A}: the market does not trade on weekends")
    return (
        int(np.busday_count(ANCHOR_DAY, day)) if day >= ANCHOR_DAY else -int(np.busday_count(day, ANCHOR_DAY))
    )


def weekday_from_number(n: int) -> date:
    """The weekday `n` weekdays from the anchor (inverse of weekday_number)."""
    return np.busday_offset(ANCHOR_DAY, n, roll="forward").astype(date)


def _intraday_weights() -> np.ndarray:
    # Variance per second: high after the open and before the close, calm at midday (a U shape).
    x = np.linspace(-1.0, 1.0, SESSION_SECONDS)
    return 0.7 + 0.9 * x**4 + 0.6 * np.exp(-(x + 1.0) * 40.0)


class IndexPaths:
    """Seeded, reproducible per-second levels of the three indices for any weekday (cached per day)."""

    def __init__(self, seed: int, cache_days: int = 12) -> None:
        self._seed = int(seed) % (1 << 64)  # any int works; negative seeds map to distinct entropy
        self._blocks: dict[int, np.ndarray] = {}
        self._days: OrderedDict[date, MarketDay] = OrderedDict()  # oldest built first
        self._cache_days = cache_days
        weights = _intraday_weights()
        self._var_share = np.concatenate(([0.0], np.cumsum(weights) / weights.sum()))
        self._sd_share = np.sqrt(weights / weights.sum())
        self._weights = weights

    def _block(self, b: int) -> np.ndarray:
        """Daily log returns of weekdays [256b, 256b + 256): shape (256, 2 [gap, intraday], 3 indices)."""
        block = self._blocks.get(b)
        if block is None:
            rng = np.random.default_rng([self._seed, 0xDA1, b + (1 << 32)])
            z = rng.standard_normal((_BLOCK, 2, 4))  # last axis: market factor, then one per index
            out = np.empty((_BLOCK, 2, len(INDEX_MODELS)))
            for k, model in enumerate(INDEX_MODELS):
                daily_sd = model.annual_vol / math.sqrt(TRADING_DAYS_PER_YEAR)
                mixed = (
                    model.market_beta * z[:, :, 0] + math.sqrt(1.0 - model.market_beta**2) * z[:, :, k + 1]
                )
                out[:, 0, k] = mixed[:, 0] * daily_sd * math.sqrt(_GAP_VARIANCE_SHARE)
                out[:, 1, k] = mixed[:, 1] * daily_sd * math.sqrt(1.0 - _GAP_VARIANCE_SHARE)
            block = self._blocks[b] = out
        return block

    def _returns(self, lo: int, hi: int) -> np.ndarray:
        """Daily (gap, intraday) log returns of weekdays lo..hi inclusive, shape (hi - lo + 1, 2, 3)."""
        if hi < lo:
            return np.zeros((0, 2, len(INDEX_MODELS)))
        parts = []
        for b in range(lo // _BLOCK, hi // _BLOCK + 1):
            start = max(lo, b * _BLOCK) - b * _BLOCK
            stop = min(hi, b * _BLOCK + _BLOCK - 1) - b * _BLOCK + 1
            parts.append(self._block(b)[start:stop])
        return np.concatenate(parts)

    def _close_log(self, n: int) -> np.ndarray:
        """log(close / anchor level) of weekday n for every index."""
        if n >= 0:
            return self._returns(1, n).sum(axis=(0, 1))
        return -self._returns(n + 1, 0).sum(axis=(0, 1))

    def day(self, day: date) -> MarketDay:
        """The per-second levels of every index on `day` (a weekday)."""
        cached = self._days.get(day)
        if cached is not None:
            return cached
        built = self._build_day(weekday_number(day), day)
        self._days[day] = built
        while len(self._days) > self._cache_days:
            self._days.popitem(last=False)
        return built

    def _build_day(self, n: int, day: date) -> MarketDay:
        prev_log = self._close_log(n - 1)
        close_log = self._close_log(n)
        gaps = self._returns(n, n)[0, 0]  # overnight log move of each index
        rng = np.random.default_rng([self._seed, 0x5EC, n + (1 << 32)])
        z = rng.standard_normal((4, SESSION_SECONDS))
        iv_z = rng.standard_normal(len(INDEX_MODELS))
        indices: dict[int, IndexDay] = {}
        for k, model in enumerate(INDEX_MODELS):
            open_log = prev_log[k] + gaps[k]
            intraday_sd = (
                model.annual_vol / math.sqrt(TRADING_DAYS_PER_YEAR) * math.sqrt(1 - _GAP_VARIANCE_SHARE)
            )
            shocks = model.market_beta * z[0] + math.sqrt(1.0 - model.market_beta**2) * z[k + 1]
            walk = np.concatenate(([0.0], np.cumsum(shocks * self._sd_share * intraday_sd)))
            # Brownian bridge: pin the walk's end to the day's close, spreading the correction in
            # proportion to the variance already elapsed.
            bridge = walk - self._var_share * (walk[-1] - (close_log[k] - open_log))
            levels = np.rint(model.anchor_level * np.exp(open_log + bridge) * 100.0).astype(np.int64)
            # Open and close come from the chain by one formula, so yesterday's close is today's `close`.
            levels[0] = _level_paise(model, open_log)
            levels[-1] = _level_paise(model, close_log[k])
            indices[model.token] = IndexDay(
                day=day,
                token=model.token,
                levels=levels,
                prev_close=_level_paise(model, prev_log[k]),
                iv_multiplier=math.exp(0.12 * float(iv_z[k])),
            )
        # Volume follows activity: busier at the open and close and when the market moves.
        activity = np.empty(SESSION_SECONDS + 1)
        activity[1:] = self._weights * (0.5 + np.abs(z[0]))
        activity[0] = activity[1:].mean() * 150.0  # the opening trades
        cumulative = np.cumsum(activity)
        noise = rng.integers(-3, 4, (64, SESSION_SECONDS // 60))
        return MarketDay(day=day, indices=indices, activity=cumulative / cumulative[-1], noise=noise)


_SQRT_HALF = math.sqrt(0.5)


def _black_scholes(spot, strike, years, vol, rate, is_call, sqrt, log, exp, erf):  # type: ignore[no-untyped-def]
    # Written once for floats and arrays: the same operations in the same order, and the same libm
    # calls (math.log/exp/erf) in both, so a premium is bit-for-bit the same whichever way it is asked.
    sd = vol * sqrt(years)
    d1 = (log(spot / strike) + (rate + 0.5 * vol * vol) * years) / sd
    d2 = d1 - sd
    discounted = strike * exp(-rate * years)
    if is_call:
        return spot * (0.5 * (1.0 + erf(d1 * _SQRT_HALF))) - discounted * (0.5 * (1.0 + erf(d2 * _SQRT_HALF)))
    return discounted * (0.5 * (1.0 + erf(-d2 * _SQRT_HALF))) - spot * (0.5 * (1.0 + erf(-d1 * _SQRT_HALF)))


def _level_paise(model: IndexModel, log_move: float) -> int:
    return round(model.anchor_level * math.exp(float(log_move)) * 100.0)


def norm_cdf(x: float) -> float:
    """Standard normal cumulative distribution, from math.erf."""
    return 0.5 * (1.0 + math.erf(x * _SQRT_HALF))


def black_scholes(spot: float, strike: float, years: float, vol: float, rate: float, is_call: bool) -> float:
    """European option premium on a non-dividend index (Black–Scholes, with math.erf)."""
    return _black_scholes(spot, strike, years, vol, rate, is_call, math.sqrt, math.log, math.exp, math.erf)


def _elementwise(fn):  # type: ignore[no-untyped-def]
    def _apply(values: np.ndarray) -> np.ndarray:
        return np.fromiter(map(fn, values.tolist()), dtype=np.float64, count=values.size)

    return _apply


def _exp_of_repeats(values: np.ndarray) -> np.ndarray:
    # exp(-r * years) sees one value per minute many times over: call math.exp once per distinct value.
    distinct, where = np.unique(values, return_inverse=True)
    return np.fromiter(map(math.exp, distinct.tolist()), dtype=np.float64, count=distinct.size)[where]


_ARRAY_LOG, _ARRAY_ERF = _elementwise(math.log), _elementwise(math.erf)


def black_scholes_array(
    spot: np.ndarray, strike: float, years: np.ndarray, vol: float, rate: float, is_call: bool
) -> np.ndarray:
    """black_scholes over arrays of spot levels and times to expiry; equal to it bit for bit."""
    return _black_scholes(
        spot, strike, years, vol, rate, is_call, np.sqrt, _ARRAY_LOG, _exp_of_repeats, _ARRAY_ERF
    )


def premium_paise(spot_paise: int, strike: float, years: float, vol: float, is_call: bool) -> int:
    """An option's premium in paise on the 0.05 tick (never below one tick) at an index level in paise."""
    premium = black_scholes(spot_paise / 100.0, strike, years, vol, RISK_FREE_RATE, is_call)
    return max(round(premium * 20.0), 1) * 5  # round() and np.rint both round half to even


def premium_paise_array(
    spot_paise: np.ndarray, strike: float, years: np.ndarray, vol: float, is_call: bool
) -> np.ndarray:
    """premium_paise over arrays; equal to it element by element."""
    premiums = black_scholes_array(spot_paise / 100.0, strike, years, vol, RISK_FREE_RATE, is_call)
    return np.maximum(np.rint(premiums * 20.0), 1.0).astype(np.int64) * 5


def years_to_expiry(seconds_left: float) -> float:
    """Seconds to the 15:30 expiry as a year fraction, floored at a few minutes."""
    return max(seconds_left, MIN_EXPIRY_SECONDS) / SECONDS_PER_YEAR


def smile_vol(atm_vol: float, strike: float, reference: float) -> float:
    """Implied volatility with a mild smile and skew: lower strikes a little dearer, as in index options."""
    m = math.log(strike / reference)
    return atm_vol * (1.0 - 0.8 * m + 6.0 * m * m)
