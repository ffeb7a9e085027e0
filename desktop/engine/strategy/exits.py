"""Exit rules of a long option position: stop loss, optional target, trailing stop, square-off.

Shared by the default strategy and available to plug-ins. Levels are Decimal rupees on the 0.05 tick:
- stop   = entry × (1 − stop_loss %), rounded UP to the tick, so the planned loss never exceeds
           stop_loss % (a stop that would round onto the entry goes one tick below it);
- target = entry × (1 + target %), rounded UP to the tick (at least the asked profit);
- trail  = highest price since entry × (1 − trailing_stop %), rounded UP; the stop is the higher of
           the two and only ever rises.
A price at or below the stop exits ("stop_loss", or "trailing_stop" once the trail has lifted it); a
price at or above the target exits ("target"); market time at or past the square-off time exits
("square_off"). After an exit is asked for, nothing more is asked until the agent reports the outcome.

Kite allows 25 modifications per order, so the resting SL order is not moved on every tick: a MoveStop
is issued when the stop has risen by at least a fifth of the trailing distance (≥ one tick) since the
last one, and at most MAX_STOP_MOVES times per position. The exit decision itself always uses the
exact current stop.

A stop the trader moves by hand (`manual_stop`) becomes the position's stop: the exit decision uses it and the
trail never lowers it. Raised above the trail, it holds until the trail (from the highest price since entry)
passes it by the usual step, and the trail raises it from there. Lowered below the trail, the trail would raise
it back on the next tick, undoing the trader's choice: so the trailing is paused for that position, and the
returned note says so (it goes to the log and the journal).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import ROUND_CEILING, Decimal

from desktop.domain import PAISA, TICK_SIZE, OptionRight, StrategyParams
from desktop.engine.strategy.base import Action, ExitPosition, MoveStop, PositionState

MAX_STOP_MOVES = 20  # below Kite's 25 modifications per order, leaving room for manual fixes
HUNDRED = Decimal(100)


def ceil_tick(value: Decimal, tick: Decimal = TICK_SIZE) -> Decimal:
    """`value` rounded up to the next tick."""
    return ((value / tick).to_integral_value(rounding=ROUND_CEILING) * tick).quantize(PAISA)


def stop_level(entry: Decimal, stop_loss_pct: Decimal) -> Decimal:
    """The initial stop for a long entry at `entry`."""
    stop = ceil_tick(entry * (1 - stop_loss_pct / HUNDRED))
    return stop if stop < entry else (entry - TICK_SIZE).quantize(PAISA)


def target_level(entry: Decimal, target_pct: Decimal) -> Decimal:
    """The profit target for a long entry at `entry`."""
    return ceil_tick(entry * (1 + target_pct / HUNDRED))


def trailing_level(high: Decimal, trailing_pct: Decimal) -> Decimal:
    """The trailing stop under the highest price `high`."""
    return ceil_tick(high * (1 - trailing_pct / HUNDRED))


class LongOptionExits:
    """Tracks one long option position at a time and decides its exits."""

    def __init__(self, params: StrategyParams) -> None:
        self.params = params
        self.state: PositionState | None = None
        self.exit_pending = False
        self.broker_stop: Decimal | None = None  # last level announced (the resting SL order's)
        self.stop_moves = 0
        self._initial_stop = Decimal(0)
        self._move_step = TICK_SIZE
        self.trail_paused = False  # a manual stop below the trail: no trailing for this position

    def open(
        self, right: OptionRight, tradingsymbol: str, quantity: int, price: Decimal, t: datetime
    ) -> PositionState:
        """Starts tracking a filled entry; the returned state carries the stop to protect it with."""
        stop = self._initial_stop = stop_level(price, self.params.stop_loss)
        if self.params.trailing_stop is not None:
            stop = max(stop, trailing_level(price, self.params.trailing_stop))
            self._move_step = max(TICK_SIZE, ceil_tick(price * self.params.trailing_stop / HUNDRED / 5))
        target = target_level(price, self.params.target) if self.params.target is not None else None
        self.state = PositionState(
            right=right,
            tradingsymbol=tradingsymbol,
            quantity=quantity,
            entry_price=price,
            entered_at=t,
            stop=stop,
            target=target,
            high_water=price,
            last_price=price,
        )
        self.exit_pending = False
        self.broker_stop = stop
        self.stop_moves = 0
        self.trail_paused = False
        return self.state

    def manual_stop(self, level: Decimal) -> str:
        """The trader moved the stop (the broker's order already moved) to `level`: it is the stop from now on (see
        the module docstring). Returns a note for the log about the trailing."""
        state = self.state
        if state is None:
            return ""
        self.state = replace(state, stop=level)
        self.broker_stop = level
        if self.params.trailing_stop is None:
            return ""
        trail = trailing_level(state.high_water, self.params.trailing_stop)
        if level < trail:
            self.trail_paused = True
            return (f"trailing stop paused for this position: the stop {level} is below the trail {trail}, "
                    "which would raise it back at once")  # fmt: skip
        self.trail_paused = False
        return f"trailing stop goes on: it raises the stop again once the trail passes {level}"

    def close(self) -> None:
        """The position is gone (exit filled, or closed outside the strategy)."""
        self.state = None
        self.exit_pending = False
        self.broker_stop = None
        self.trail_paused = False

    def exit_rejected(self) -> None:
        """The exit order failed: the next price may ask again."""
        self.exit_pending = False

    def on_clock(self, t: datetime) -> list[Action]:
        """Square-off by market time, even without option ticks."""
        if self.state is None or self.exit_pending:
            return []
        if t.time() >= self.params.square_off:
            self.exit_pending = True
            return [ExitPosition("square_off")]
        return []

    def on_price(self, price: Decimal, t: datetime) -> list[Action]:
        """One option price: square-off, stop, target, or a higher trailing stop."""
        state = self.state
        if state is None or self.exit_pending:
            return []
        exits = self.on_clock(t)
        if exits:
            return exits
        high = max(state.high_water, price)
        stop = state.stop
        if self.params.trailing_stop is not None and not self.trail_paused:
            stop = max(stop, trailing_level(high, self.params.trailing_stop))
        state = self.state = replace(state, high_water=high, stop=stop, last_price=price)
        if price <= stop:
            self.exit_pending = True
            return [ExitPosition("stop_loss" if stop <= self._initial_stop else "trailing_stop")]
        if state.target is not None and price >= state.target:
            self.exit_pending = True
            return [ExitPosition("target")]
        if (
            self.broker_stop is not None
            and stop - self.broker_stop >= self._move_step
            and self.stop_moves < MAX_STOP_MOVES
        ):
            self.broker_stop = stop
            self.stop_moves += 1
            return [MoveStop(stop)]
        return []
