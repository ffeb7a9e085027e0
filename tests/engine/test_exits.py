"""Stop, target and trailing levels are exact Decimals on the 0.05 tick; the trail only rises."""

from __future__ import annotations

from decimal import Decimal

from desktop.domain import OptionRight
from desktop.engine.strategy.base import ExitPosition, MoveStop
from desktop.engine.strategy.exits import (
    MAX_STOP_MOVES,
    LongOptionExits,
    stop_level,
    target_level,
    trailing_level,
)

from .builders import at, make_params

D = Decimal


def test_stop_is_rounded_up_to_the_tick_so_the_loss_never_exceeds_the_percent():
    assert stop_level(D("200"), D("5")) == D("190.00")
    assert stop_level(D("123.45"), D("7")) == D("114.85")  # 114.8085 → next tick up
    assert stop_level(D("0.05"), D("5")) == D("0.00")  # would round onto the entry: one tick below


def test_target_and_trailing_levels_are_on_the_tick():
    assert target_level(D("200"), D("10")) == D("220.00")
    assert target_level(D("123.45"), D("12.5")) == D("138.90")  # 138.88125 → 138.90
    assert trailing_level(D("250"), D("4")) == D("240.00")


def exits(**params) -> LongOptionExits:
    e = LongOptionExits(make_params(**params))
    e.open(OptionRight.CE, "NIFTY2611325000CE", 65, D("200"), at(10, 0))
    return e


def test_target_exit_at_the_exact_level():
    e = exits(target=10)
    assert e.state is not None and e.state.target == D("220.00")
    assert e.on_price(D("219.95"), at(10, 1)) == []
    assert e.on_price(D("220.00"), at(10, 2)) == [ExitPosition("target")]


def test_trailing_stop_ratchets_up_only_and_exits_as_trailing_stop():
    e = exits(stop_loss=10, trailing_stop=5)
    assert e.state is not None and e.state.stop == D("190.00")  # max(180 stop loss, 190 trail)
    assert e.on_price(D("210"), at(10, 1)) == [MoveStop(D("199.50"))]
    assert e.on_price(D("205"), at(10, 2)) == []
    assert e.state.stop == D("199.50")  # a lower price never lowers the stop
    assert e.on_price(D("199.55"), at(10, 3)) == []
    assert e.on_price(D("199.50"), at(10, 4)) == [ExitPosition("trailing_stop")]


def test_small_trail_moves_are_batched_and_capped_below_kites_25_modifications():
    e = exits(stop_loss=10, trailing_stop=5)
    # The step is a fifth of the 5 % trailing distance on a 200 entry: 2.00 of stop rise.
    assert e.on_price(D("201"), at(10, 1)) == []  # stop 190.95: only 0.95 above the last announced
    moves = [a for p in range(203, 400) for a in e.on_price(D(p), at(10, 2))]
    assert all(isinstance(a, MoveStop) for a in moves)
    assert len(moves) == MAX_STOP_MOVES
    stops = [a.new_stop for a in moves]
    assert stops == sorted(stops) and len(set(stops)) == len(stops)
    assert e.state is not None and e.state.stop == D("379.05")  # the exact stop keeps trailing: 399 × 0.95


def test_without_trailing_stop_the_stop_never_moves():
    e = exits(stop_loss=5)
    assert e.on_price(D("300"), at(10, 1)) == []
    assert e.state is not None and e.state.stop == D("190.00")
