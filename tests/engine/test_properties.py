"""Invariants over random market paths: bars stay consistent, the stop only rises, exits fire once."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from desktop.domain import OptionRight
from desktop.engine.bars import BarBuilder
from desktop.engine.strategy.base import ExitPosition, MoveStop
from desktop.engine.strategy.exits import LongOptionExits

from .builders import at, make_params, tick

prices = st.integers(min_value=1, max_value=100_000).map(lambda n: Decimal(n) / 20)  # on the 0.05 tick
offsets = st.integers(min_value=-30, max_value=400)  # seconds, some going backwards


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(offsets, prices), min_size=1, max_size=60))
def test_every_closed_bar_is_consistent_and_in_time_order(path):
    b = BarBuilder()
    t0 = at(10, 0)
    closed = []
    for seconds, price in path:
        bar = b.add_tick(tick(t0 + timedelta(seconds=seconds), price))
        if bar is not None:
            closed.append(bar)
    final = b.flush(t0 + timedelta(hours=1))
    closed += [final] if final else []
    starts = [x.start for x in closed]
    assert starts == sorted(set(starts))
    for bar in closed:
        assert bar.low <= min(bar.open, bar.close) and max(bar.open, bar.close) <= bar.high
        assert bar.start.second == 0 and bar.start.microsecond == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(prices, min_size=1, max_size=80), st.sampled_from(["1", "2.5", "10"]))
def test_trailing_stop_never_falls_and_exit_is_asked_once(path, trail):
    e = LongOptionExits(make_params(stop_loss=20, trailing_stop=trail))
    e.open(OptionRight.CE, "X", 65, Decimal("100"), at(10, 0))
    assert e.state is not None
    last_stop, exits, announced = e.state.stop, 0, []
    for i, price in enumerate(path):
        actions = e.on_price(price, at(10, 1) + timedelta(seconds=i))
        exits += sum(isinstance(a, ExitPosition) for a in actions)
        announced += [a.new_stop for a in actions if isinstance(a, MoveStop)]
        assert e.state.stop >= last_stop
        last_stop = e.state.stop
    assert exits <= 1
    assert announced == sorted(announced) and all(s <= last_stop for s in announced)
