"""The default strategy on hand-made closed bars: entries, exits, window, trade limit, square-off."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from desktop.domain import OptionRight, Segment
from desktop.engine.strategy.base import EnterPosition, ExitPosition
from desktop.engine.strategy.itm_momentum import ItmMomentumStrategy

from .builders import DAY, at, flat_bar, make_params

D = Decimal
# With fast 2 / slow 3 EMAs, a flat run then one sharp bar puts the fast line on the move's side,
# and each ±40-point swing after that flips it: crosses land exactly where the tests put them.
WARM_DOWN = [100, 100, 100, 99]  # ends with fast below slow
WARM_UP = [100, 100, 100, 101]  # ends with fast above slow


def strategy(warm: list[int] | None = None, **params: Any) -> ItmMomentumStrategy:
    s = ItmMomentumStrategy(make_params(fast_ema=2, slow_ema=3, **params), Segment.NIFTY)
    if warm is not None:
        s.warm_up([flat_bar(at(9, 15) + timedelta(minutes=i), c) for i, c in enumerate(warm)])
    return s


def bar_at(s: ItmMomentumStrategy, start: datetime, close: Any) -> list:
    return s.on_bar(flat_bar(start, close))


def fill(s: ItmMomentumStrategy, right: OptionRight, price: str = "200", t: datetime | None = None) -> None:
    s.on_fill(right, f"NIFTY26113{right.value}", 65, D(price), t or at(10, 0, 5))


def test_up_cross_on_a_closed_bar_enters_the_call():
    s = strategy(WARM_DOWN)
    actions = bar_at(s, at(10, 0), 120)
    assert len(actions) == 1 and isinstance(actions[0], EnterPosition)
    assert actions[0].right is OptionRight.CE


def test_down_cross_enters_the_put():
    s = strategy(WARM_UP)
    (action,) = bar_at(s, at(10, 0), 60)
    assert isinstance(action, EnterPosition) and action.right is OptionRight.PE


def test_warm_up_never_trades_and_first_ready_bar_only_sets_the_side():
    s = strategy()
    seen = [bar_at(s, at(10, i), c) for i, c in enumerate([100, 100, 120, 125, 130])]
    assert seen == [[], [], [], [], []]
    assert s.fast.ready and s.slow.ready


def test_no_entry_before_or_after_the_entry_window():
    early = strategy(WARM_DOWN)
    assert bar_at(early, at(9, 18), 120) == []  # closes 09:19, before 09:20
    first = strategy(WARM_DOWN)
    assert len(bar_at(first, at(9, 19), 120)) == 1  # closes 09:20: inside
    last = strategy(WARM_DOWN)
    assert len(bar_at(last, at(14, 44), 120)) == 1  # closes 14:45: inside
    late = strategy(WARM_DOWN)
    assert bar_at(late, at(14, 45), 120) == []  # closes 14:46: outside


def test_one_position_at_a_time_while_an_entry_is_on_its_way_or_held():
    s = strategy(WARM_DOWN)
    assert len(bar_at(s, at(10, 0), 120)) == 1
    assert bar_at(s, at(10, 1), 60) == []  # down-cross while the CE entry is pending: ignored
    assert bar_at(s, at(10, 2), 120) == []  # up-cross again: still pending
    assert s.snapshot().pending == "entry"


def test_opposite_signal_exits_and_reverses_on_the_next_bar_if_the_trend_holds():
    s = strategy(WARM_DOWN)
    bar_at(s, at(10, 0), 120)
    fill(s, OptionRight.CE)
    assert bar_at(s, at(10, 1), 80) == [ExitPosition("signal_exit")]
    assert bar_at(s, at(10, 2), 75) == []  # exit not filled yet: no second position
    s.on_exit(D("190"), at(10, 2, 30), "signal_exit")
    (action,) = bar_at(s, at(10, 3), 70)
    assert isinstance(action, EnterPosition) and action.right is OptionRight.PE
    assert action.reason.startswith("reversal")


def test_reversal_is_dropped_when_the_trend_turned_back():
    s = strategy(WARM_DOWN)
    bar_at(s, at(10, 0), 120)
    fill(s, OptionRight.CE)
    bar_at(s, at(10, 1), 80)
    s.on_exit(D("190"), at(10, 1, 30), "signal_exit")
    (action,) = bar_at(s, at(10, 2), 120)  # crossed back up: a fresh call signal, not the put
    assert action.right is OptionRight.CE and action.reason.startswith("signal")


def test_no_reversal_after_a_stop_loss_exit():
    s = strategy(WARM_DOWN)
    bar_at(s, at(10, 0), 120)
    fill(s, OptionRight.CE)
    bar_at(s, at(10, 1), 80)
    s.on_exit(D("180"), at(10, 1, 30), "stop_loss")  # the stop hit before the signal exit filled
    assert bar_at(s, at(10, 2), 75) == []


def test_it_counts_the_days_trades_and_leaves_the_cap_to_risk_then_counts_again_the_next_day():
    # The cap is the risk manager's (risk.py): there a refusal is logged and shown, and a restart rebuilds it.
    s = strategy(WARM_DOWN, max_trades_per_day=2)
    swings = [120, 80, 120, 80, 120, 80]  # six crosses: a signal, then a signal exit and a reversal, ...
    entries = 0
    for i, close in enumerate(swings):
        for action in bar_at(s, at(10, 2 * i), close):
            if isinstance(action, EnterPosition):
                entries += 1
                fill(s, action.right, t=at(10, 2 * i, 5))
            elif isinstance(action, ExitPosition):
                s.on_exit(D("200"), at(10, 2 * i, 5), action.reason)
        s.on_clock(at(10, 2 * i + 1))
    assert entries > 2 and s.trades_today == entries
    tomorrow = DAY + timedelta(days=1)
    bar_at(s, tomorrow.replace(hour=10), 120)
    assert s.trades_today == 0


def test_square_off_at_1515_market_time_from_option_ticks():
    s = strategy(WARM_DOWN)
    fill(s, OptionRight.CE, t=at(14, 30))
    assert s.on_option_price(D("210"), at(15, 14, 59)) == []
    assert s.on_option_price(D("210"), at(15, 15, 0)) == [ExitPosition("square_off")]
    assert s.on_option_price(D("150"), at(15, 15, 1)) == []  # asked once; the agent is exiting


def test_square_off_without_option_ticks_from_the_clock_or_the_closing_bar():
    by_clock = strategy(WARM_DOWN)
    fill(by_clock, OptionRight.CE, t=at(14, 0))
    assert by_clock.on_clock(at(15, 14)) == []
    assert by_clock.on_clock(at(15, 15)) == [ExitPosition("square_off")]
    by_bar = strategy(WARM_DOWN)
    fill(by_bar, OptionRight.CE, t=at(14, 0))
    assert bar_at(by_bar, at(15, 14), 100) == [ExitPosition("square_off")]  # the bar closes at 15:15


def test_stop_loss_exit_at_the_exact_decimal_level():
    s = strategy(WARM_DOWN, stop_loss=5)
    fill(s, OptionRight.CE, price="200")
    assert s.position is not None and s.position.stop == D("190.00")
    assert s.on_option_price(D("190.05"), at(10, 1)) == []
    assert s.on_option_price(D("190.00"), at(10, 2)) == [ExitPosition("stop_loss")]


def test_entry_rejected_lets_the_next_signal_enter():
    s = strategy(WARM_DOWN)
    bar_at(s, at(10, 0), 120)
    s.on_entry_rejected("insufficient margin")
    (action,) = bar_at(s, at(10, 1), 60)
    assert action.right is OptionRight.PE and s.trades_today == 0


def test_a_failed_exit_is_asked_again_on_the_next_price():
    s = strategy(WARM_DOWN)
    fill(s, OptionRight.CE, price="200")
    assert s.on_option_price(D("189"), at(10, 1)) == [ExitPosition("stop_loss")]
    assert s.on_option_price(D("188"), at(10, 1, 1)) == []
    s.on_exit_rejected("network")
    assert s.on_option_price(D("188"), at(10, 1, 2)) == [ExitPosition("stop_loss")]


def test_snapshot_shows_indicators_signal_position_and_stop():
    s = strategy(WARM_DOWN)
    bar_at(s, at(10, 0), 120)
    fill(s, OptionRight.CE, price="200")
    snap = s.snapshot()
    assert snap.indicator("fast_ema") == s.fast.value and snap.indicator("slow_ema") == s.slow.value
    assert snap.indicator("fast_ema") > snap.indicator("slow_ema")
    assert snap.signal == "UP 10:01"
    assert snap.position is not None and snap.position.stop == D("190.00") and snap.pending is None
    assert snap.trades_today == 1 and snap.segment is Segment.NIFTY
