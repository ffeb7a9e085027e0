"""The engine's public API (what the UI and the app use): sessions, registry, snapshots, parameters.

Import from here, not from the modules: `from desktop.engine import Engine, SessionEngine, parse_params`.
The Qt-hosting classes (Engine, EngineRegistry, SessionEngine) load on first use, so that importing the
plain-Python parts (strategy, risk, bars, params) for a replay or backtest never loads Qt.
"""

from typing import TYPE_CHECKING, Any

from desktop.broker.errors import LoginFailed
from desktop.broker.recording import DEFAULT_RETENTION_DAYS, format_bytes
from desktop.domain import StrategyParams
from desktop.engine.funds import Funds
from desktop.engine.manual import ManualOutcome, ManualRefused, parse_stop_level
from desktop.engine.market import DemoLogin, DemoMarket
from desktop.engine.param_spec import (
    FIELDS,
    FieldSpec,
    Kind,
    Problem,
    Section,
    example_raw,
    to_plain,
    to_text,
)
from desktop.engine.params import (
    ParamsError,
    effective_itm_offset,
    format_clock,
    params_to_dict,
    parse_params,
)
from desktop.engine.slices import slicing_note
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
from desktop.engine.warmup import import_in_background
from desktop.engine.workspace import (
    OnStop,
    SessionEntry,
    Workspace,
    WorkspaceError,
    load_workspace,
    save_workspace,
)

if TYPE_CHECKING:
    from desktop.engine.backtest import (
        BacktestError,
        ComboResult,
        DaySource,
        SimDay,
        SweepStopped,
        combinations,
        params_with,
        parse_days,
        run_sweep,
        sweep_problems,
    )
    from desktop.engine.engine import Engine
    from desktop.engine.registry import EngineRegistry
    from desktop.engine.session import SessionEngine, SessionError
    from desktop.engine.sync_facade import SyncAccountStatus, SyncSettings

_QT_HOSTED = {
    "Engine": "desktop.engine.engine",
    "EngineRegistry": "desktop.engine.registry",
    "SessionEngine": "desktop.engine.session",
    "SessionError": "desktop.engine.session",
    # Plain Python, loaded on first use too: the backtest brings the replay (the feed, the store), the sync the
    # PostgreSQL client; the first window needs neither.
    **dict.fromkeys(
        (
            "BacktestError",
            "ComboResult",
            "DaySource",
            "SimDay",
            "SweepStopped",
            "combinations",
            "params_with",
            "parse_days",
            "run_sweep",
            "sweep_problems",
        ),
        "desktop.engine.backtest",
    ),
    "SyncAccountStatus": "desktop.engine.sync_facade",
    "SyncSettings": "desktop.engine.sync_facade",
}


def __getattr__(name: str) -> Any:
    module = _QT_HOSTED.get(name)
    if module is None:
        raise AttributeError(f"module 'desktop.engine' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "BacktestError",
    "ComboResult",
    "DaySource",
    "SimDay",
    "SweepStopped",
    "combinations",
    "params_with",
    "parse_days",
    "run_sweep",
    "sweep_problems",
    "import_in_background",
    "to_text",
    "to_plain",
    "example_raw",
    "Section",
    "Problem",
    "Kind",
    "FieldSpec",
    "FIELDS",
    "DEFAULT_RETENTION_DAYS",
    "AgentState",
    "DemoLogin",
    "DemoMarket",
    "Engine",
    "EngineRegistry",
    "Funds",
    "LogLine",
    "LoginFailed",
    "ManualOutcome",
    "ManualRefused",
    "parse_stop_level",
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
    "SyncAccountStatus",
    "SyncSettings",
    "TradeMarker",
    "Workspace",
    "WorkspaceError",
    "available_strategies",
    "format_bytes",
    "effective_itm_offset",
    "format_clock",
    "load_workspace",
    "params_to_dict",
    "parse_params",
    "slicing_note",
    "save_workspace",
]
