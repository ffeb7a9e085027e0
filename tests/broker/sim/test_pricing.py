"""The price model: Black–Scholes premiums and the seeded index paths."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest

from desktop.broker.sim.pricing import (
    INDEX_MODELS,
    SESSION_SECONDS,
    IndexPaths,
    black_scholes,
    black_scholes_array,
    norm_cdf,
    premium_paise,
    premium_paise_array,
    smile_vol,
    weekday_from_number,
    weekday_number,
)


def test_black_scholes_matches_textbook_values() -> None:
    # Hull's classic example: S=K=100, T=1, sigma=20 %, r=5 % gives 10.4506 (call) and 5.5735 (put).
    assert black_scholes(100.0, 100.0, 1.0, 0.2, 0.05, True) == pytest.approx(10.4506, abs=1e-4)
    assert black_scholes(100.0, 100.0, 1.0, 0.2, 0.05, False) == pytest.approx(5.5735, abs=1e-4)
    assert norm_cdf(0.0) == 0.5 and norm_cdf(1.959963984540054) == pytest.approx(0.975, abs=1e-12)


def test_put_call_parity_holds_for_the_formula() -> None:
    for spot, strike, years in (
        (26_000.0, 25_500.0, 0.02),
        (59_000.0, 61_000.0, 0.1),
        (85_000.0, 85_000.0, 0.001),
    ):
        call = black_scholes(spot, strike, years, 0.13, 0.065, True)
        put = black_scholes(spot, strike, years, 0.13, 0.065, False)
        assert call - put == pytest.approx(spot - strike * math.exp(-0.065 * years), abs=1e-6)


def test_array_premiums_equal_single_premiums_bit_for_bit() -> None:
    # Candles come from the array path, ticks from the scalar one: they must never differ by a tick.
    rng = np.random.default_rng(5)
    spots = rng.integers(2_000_000, 9_000_000, 3000)
    years = rng.uniform(300, 40 * 86_400, 3000) / (365 * 86_400)
    for is_call in (True, False):
        as_array = premium_paise_array(spots, 26_000.0, years, 0.14, is_call)
        one_by_one = [
            premium_paise(int(s), 26_000.0, float(y), 0.14, is_call)
            for s, y in zip(spots, years, strict=True)
        ]
        assert as_array.tolist() == one_by_one
        floats = black_scholes_array(spots / 100.0, 26_000.0, years, 0.14, 0.065, is_call)
        assert floats.tolist() == [
            black_scholes(s / 100.0, 26_000.0, y, 0.14, 0.065, is_call)
            for s, y in zip(spots, years, strict=True)
        ]


def test_premiums_sit_on_the_tick_and_never_below_it() -> None:
    far_otm = premium_paise(2_600_000, 40_000.0, 0.001, 0.12, True)
    assert far_otm == 5
    atm = premium_paise(2_600_000, 26_000.0, 0.02, 0.12, True)
    assert atm % 5 == 0 and atm > 5


def test_smile_is_mild_and_skewed_to_lower_strikes() -> None:
    atm = smile_vol(0.12, 26_000.0, 26_000.0)
    low, high = smile_vol(0.12, 24_500.0, 26_000.0), smile_vol(0.12, 27_500.0, 26_000.0)
    assert atm == pytest.approx(0.12)
    assert low > high > atm * 0.95
    assert low < atm * 1.15


def test_weekday_numbers_count_weekdays_from_the_anchor() -> None:
    assert weekday_number(date(2026, 1, 1)) == 0
    assert weekday_number(date(2026, 1, 2)) == 1
    assert weekday_number(date(2026, 1, 5)) == 2  # the weekend does not count
    assert weekday_number(date(2025, 12, 31)) == -1
    for n in (-400, -1, 0, 3, 777):
        assert weekday_number(weekday_from_number(n)) == n
    with pytest.raises(ValueError, match="weekend"):
        weekday_number(date(2026, 1, 3))


def test_index_paths_are_reproducible_and_seed_dependent() -> None:
    day = date(2026, 3, 4)
    a, b, c = IndexPaths(1).day(day), IndexPaths(1).day(day), IndexPaths(2).day(day)
    for model in INDEX_MODELS:
        assert np.array_equal(a.indices[model.token].levels, b.indices[model.token].levels)
        assert not np.array_equal(a.indices[model.token].levels, c.indices[model.token].levels)
        assert a.indices[model.token].levels.size == SESSION_SECONDS + 1


def test_days_chain_yesterdays_close_into_todays_close_field() -> None:
    paths = IndexPaths(3)
    friday, monday = paths.day(date(2026, 2, 6)), paths.day(date(2026, 2, 9))
    for model in INDEX_MODELS:
        assert monday.indices[model.token].prev_close == friday.indices[model.token].levels[-1]


def test_levels_and_volatility_are_realistic_for_2026() -> None:
    paths = IndexPaths(4)
    days = [weekday_from_number(n) for n in range(0, 120)]
    closes = np.array(
        [[paths.day(d).indices[m.token].levels[-1] / 100 for m in INDEX_MODELS] for d in days], dtype=float
    )
    annual_vol = np.std(np.diff(np.log(closes), axis=0), axis=0) * math.sqrt(252)
    for k, model in enumerate(INDEX_MODELS):
        assert 0.08 < annual_vol[k] < 0.20, (model.token, annual_vol[k])
        assert (
            0.75 * model.anchor_level < closes[:, k].min() and closes[:, k].max() < 1.25 * model.anchor_level
        )
    # NIFTY and SENSEX move together, as they do.
    returns = np.diff(np.log(closes), axis=0)
    assert np.corrcoef(returns[:, 0], returns[:, 2])[0, 1] > 0.8


def test_day_activity_is_a_cumulative_share_ending_at_one() -> None:
    activity = IndexPaths(5).day(date(2026, 1, 8)).activity
    assert activity.size == SESSION_SECONDS + 1
    assert np.all(np.diff(activity) > 0) and activity[-1] == pytest.approx(1.0)
    assert activity[0] > 0  # the opening trades
