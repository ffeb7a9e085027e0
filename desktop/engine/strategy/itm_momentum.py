"""The default strategy: buy the ITM option in the direction of a fast/slow EMA cross of the index.

- Signal: on each CLOSED 1-minute index bar, the fast EMA crossing above the slow EMA asks for the
  ITM call (CE), crossing below asks for the ITM put (PE). The first bar with both EMAs ready only
  sets the side: a session started mid-trend waits for a real cross.
- One position at a time; entries only when the bar's close time (start + 1 minute) is inside the
  entry window [entry_start, entry_end]. It counts its filled entries of the market day (`trades_today`),
  but the cap, max_trades_per_day, is the risk manager's (risk.py): there a refusal is logged and shown,
  and a restart rebuilds the day's count from the journal and the broker.
- Exits (exits.py): stop loss, optional target, trailing stop, square-off at the square-off time.
- The opposite cross exits ("signal_exit"). The reverse position is NOT opened on that same bar (the
  exit must fill first: one position at a time); on the next closed bar after the exit filled, if the
  fast EMA is still on the new side, the other option is bought ("reversal"), window and risk
  permitting. A cross back in between cancels the reversal and is a signal of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal

from desktop.domain import Bar, OptionRight, Segment, StrategyParams
from desktop.engine.indicators import EMA, Cross, CrossDetector
from desktop.engine.strategy.base import (
    Action,
    EnterPosition,
    ExitPosition,
    PositionState,
    Strategy,
    StrategySnapshot,
)
from desktop.engine.strategy.exits import LongOptionExits

_BAR = timedelta(minutes=1)


class ItmMomentumStrategy(Strategy):
    """EMA-cross momentum on the index, traded with ITM options (the seed's strategy)."""

    name = "itm_momentum"

    def __init__(self, params: StrategyParams, segment: Segment) -> None:
        super().__init__(params, segment)
        self.fast = EMA(params.fast_ema)
        self.slow = EMA(params.slow_ema)
        self.cross = CrossDetector()
        self.exits = LongOptionExits(params)
        self.pending_entry: OptionRight | None = None
        self.pending_reversal: OptionRight | None = None
        self.trades_today = 0
        self.last_signal: str | None = None
        self.market_time: datetime | None = None
        self._day: date | None = None

    # -- market data -------------------------------------------------------------------------------

    def warm_up(self, bars: Sequence[Bar]) -> None:
        """Feeds historical closes to the EMAs; crosses seen here never trade."""
        for bar in bars:
            self.cross.update(self.fast.update(bar.close), self.slow.update(bar.close))

    def on_bar(self, bar: Bar) -> list[Action]:
        """Signals from one closed index bar."""
        closed_at = bar.start + _BAR
        self._advance(closed_at)
        cross = self.cross.update(self.fast.update(bar.close), self.slow.update(bar.close))
        wanted: OptionRight | None = None
        if cross is not None:
            wanted = OptionRight.CE if cross is Cross.UP else OptionRight.PE
            self.last_signal = f"{cross.value} {closed_at:%H:%M}"

        state = self.exits.state
        if state is not None:
            actions = self.exits.on_clock(closed_at)
            if (
                not actions
                and wanted is not None
                and wanted is not state.right
                and not self.exits.exit_pending
            ):
                self.exits.exit_pending = True
                self.pending_reversal = wanted
                actions = [ExitPosition("signal_exit")]
            return actions
        if self.pending_entry is not None:
            return []

        reason = "signal"
        if wanted is None and self.pending_reversal is not None and self._side_is(self.pending_reversal):
            wanted, reason = self.pending_reversal, "reversal"
        self.pending_reversal = None
        if wanted is None or not self._may_enter(closed_at):
            return []
        self.pending_entry = wanted
        return [
            EnterPosition(
                wanted, f"{reason}: fast EMA crossed {'above' if wanted is OptionRight.CE else 'below'}"
            )
        ]

    def on_option_price(self, price: Decimal, t: datetime) -> list[Action]:
        """Exits and stop moves from one price of the held option."""
        self._advance(t)
        return self.exits.on_price(price, t)

    def on_clock(self, t: datetime) -> list[Action]:
        """Square-off when market time reaches it without option ticks."""
        self._advance(t)
        return self.exits.on_clock(t)

    # -- order outcomes ----------------------------------------------------------------------------

    def on_fill(
        self, right: OptionRight, tradingsymbol: str, quantity: int, price: Decimal, t: datetime
    ) -> None:
        """The entry filled (or a recovered position is adopted): counts a trade, sets the stop."""
        self._advance(t)
        self.pending_entry = None
        self.pending_reversal = None
        self.trades_today += 1
        self.exits.open(right, tradingsymbol, quantity, price, t)

    def on_entry_rejected(self, reason: str) -> None:
        """The entry did not happen: flat again, the next signal may enter."""
        self.pending_entry = None

    def on_exit(self, price: Decimal, t: datetime, reason: str) -> None:
        """The position is closed; a reversal stays armed only after a signal exit."""
        self._advance(t)
        self.exits.close()
        if reason != "signal_exit":
            self.pending_reversal = None

    def on_exit_rejected(self, reason: str) -> None:
        """The exit failed: the next price or bar may ask again."""
        self.exits.exit_rejected()

    def on_stop_moved(self, level: Decimal, t: datetime) -> str:
        """The trader moved the stop by hand: it is the stop from now on (exits.py says how the trail treats it)."""
        self._advance(t)
        return self.exits.manual_stop(level)

    # -- state -------------------------------------------------------------------------------------

    @property
    def position(self) -> PositionState | None:
        """The held option with its stop, or None."""
        return self.exits.state

    def snapshot(self) -> StrategySnapshot:
        """EMAs, last signal, position and stop for the GUI."""
        pending = "entry" if self.pending_entry is not None else "exit" if self.exits.exit_pending else None
        return StrategySnapshot(
            strategy=self.name,
            segment=self.segment,
            market_time=self.market_time,
            indicators=(("fast_ema", self.fast.value), ("slow_ema", self.slow.value)),
            signal=self.last_signal,
            position=self.exits.state,
            pending=pending,
            trades_today=self.trades_today,
        )

    def _advance(self, t: datetime) -> None:
        """Moves market time forward; a new market day resets the trade count."""
        if self.market_time is None or t > self.market_time:
            self.market_time = t
        if self._day != t.date():
            if self._day is not None and t.date() < self._day:
                return  # a stale timestamp from yesterday does not roll the day back
            self._day = t.date()
            self.trades_today = 0

    def _side_is(self, right: OptionRight) -> bool:
        return self.cross.side == (1 if right is OptionRight.CE else -1)

    def _may_enter(self, t: datetime) -> bool:
        p = self.params
        return p.entry_start <= t.time() <= p.entry_end
