"""EMA seeded from the SMA, exact in Decimal; crossovers only on a real change of side."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from desktop.engine.indicators import EMA, Cross, CrossDetector


def reference_ema(values: list[Fraction], period: int) -> list[Fraction | None]:
    """Textbook EMA in exact fractions: SMA seed, then α = 2/(n+1)."""
    out: list[Fraction | None] = []
    alpha = Fraction(2, period + 1)
    ema: Fraction | None = None
    for i, v in enumerate(values):
        if i + 1 < period:
            out.append(None)
            continue
        ema = sum(values[:period], Fraction(0)) / period if ema is None else ema + alpha * (v - ema)
        out.append(ema)
    return out


def test_ema_matches_the_textbook_definition():
    prices = ["100", "101.5", "99.25", "102", "103.75", "101", "100.5", "104.05", "98.6", "99.9"]
    ema = EMA(4)
    expected = reference_ema([Fraction(p) for p in prices], 4)
    for p, want in zip(prices, expected, strict=True):
        got = ema.update(Decimal(p))
        if want is None:
            assert got is None and not ema.ready
        else:
            assert got is not None and abs(Fraction(got) - want) < Fraction(1, 10**20)


def test_ema_accepts_floats_as_their_written_value():
    a, b = EMA(2), EMA(2)
    for x in (101.1, 99.7, 100.3):
        a.update(x)
        b.update(Decimal(str(x)))
    assert a.value == b.value


def test_ema_period_must_be_whole_and_positive():
    with pytest.raises(ValueError):
        EMA(0)


def test_first_ready_values_set_the_side_without_a_cross():
    c = CrossDetector()
    assert c.update(None, Decimal(1)) is None
    assert c.update(Decimal(2), Decimal(1)) is None
    assert c.side == 1


def test_cross_needs_a_real_change_of_side_and_touching_is_not_one():
    c = CrossDetector()
    c.update(Decimal(1), Decimal(2))
    assert c.update(Decimal(2), Decimal(2)) is None  # touching
    assert c.update(Decimal("1.5"), Decimal(2)) is None  # back below: still no cross
    assert c.update(Decimal(3), Decimal(2)) is Cross.UP
    assert c.update(Decimal(4), Decimal(2)) is None
    assert c.update(Decimal(1), Decimal(2)) is Cross.DOWN
