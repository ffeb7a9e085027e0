"""The strategy core runs without Qt, so a replay or backtest needs no event loop (DESIGN.md)."""

from __future__ import annotations

import subprocess
import sys

PLAIN = [
    "desktop.engine.params",
    "desktop.engine.bars",
    "desktop.engine.indicators",
    "desktop.engine.strategy",
    "desktop.engine.strategy.itm_momentum",
    "desktop.engine.risk",
    "desktop.engine.workspace",
    "desktop.engine.logs",
    "desktop.engine.bar_backtest",
]


def test_strategy_risk_bars_and_logs_import_without_loading_qt():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in PLAIN)
        + "print(sorted(m for m in sys.modules if m.startswith('PySide6')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
