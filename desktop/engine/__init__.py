"""The engine's public API (what the UI and the app use): sessions, registry, snapshots, parameters.

Import from here, not from the modules: `from desktop.engine import Engine, SessionEngine, parse_params`.
"""

from desktop.broker.errors import LoginFailed
from desktop.domain import StrategyParams
from desktop.engine.engine import Engine
from desktop.engine.params import ParamsError, effective_itm_offset, parse_params
from desktop.engine.registry import EngineRegistry
from desktop.engine.session import SessionEngine, SessionError
from desktop.engine.snapshots import (
    AgentState,
    LogLine,
    ProfileInfo,
    SegmentSnapshot,
    SessionSnapshot,
    SessionState,
    TradeMarker,
)
from desktop.engine.strategy.registry import available_strategies
from desktop.engine.workspace import (
    OnStop,
    SessionEntry,
    Workspace,
    WorkspaceError,
    load_workspace,
    save_workspace,
)

__all__ = [
    "AgentState",
    "Engine",
    "EngineRegistry",
    "LogLine",
    "LoginFailed",
    "OnStop",
    "ParamsError",
    "ProfileInfo",
    "SegmentSnapshot",
    "SessionEngine",
    "SessionEntry",
    "SessionError",
    "SessionSnapshot",
    "SessionState",
    "StrategyParams",
    "TradeMarker",
    "Workspace",
    "WorkspaceError",
    "available_strategies",
    "effective_itm_offset",
    "load_workspace",
    "parse_params",
    "save_workspace",
]
