"""Which days Tools → Backtest… replays: the simulator's, whose day maker the composition root hands the window.

The UI never imports the simulator (desktop/cli/sim_day.py makes its days), so `kitedesk` gives the window a
function that returns the day maker (`provide_sim_days`); the backtest dialog finds it among the window's children.
Light on purpose: the first window imports this module, and neither the engine's backtest nor the simulator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

if TYPE_CHECKING:
    from desktop.engine import SimDay


class BacktestDays(QObject):
    """The simulator's day maker, as `sim_day()` returns it: called when a sweep starts, on the sweep's thread
    (importing the simulator takes most of a second)."""

    def __init__(self, sim_day: Callable[[], SimDay], parent: QObject) -> None:
        super().__init__(parent)
        self.setObjectName("backtest_days")
        self.sim_day = sim_day


def provide_sim_days(window: QObject, sim_day: Callable[[], SimDay]) -> None:
    """Lets Tools → Backtest… of `window` replay the simulator's days (made by `sim_day()`)."""
    BacktestDays(sim_day, window)


def sim_days_of(window: QObject) -> Callable[[], SimDay] | None:
    """The day maker given to `window`, or None when it was given none."""
    days = window.findChild(BacktestDays)
    return days.sim_day if isinstance(days, BacktestDays) else None
