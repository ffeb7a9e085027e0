"""Strategy plug-ins: the interface (base), discovery (registry) and the default ITM momentum strategy."""

from desktop.engine.strategy.base import (
    Action,
    EnterPosition,
    ExitPosition,
    MoveStop,
    PositionState,
    Strategy,
    StrategySnapshot,
)
from desktop.engine.strategy.registry import StrategyNotFound, available_strategies, create_strategy

__all__ = [
    "Action",
    "EnterPosition",
    "ExitPosition",
    "MoveStop",
    "PositionState",
    "Strategy",
    "StrategyNotFound",
    "StrategySnapshot",
    "available_strategies",
    "create_strategy",
]
