"""Strategies are found through the `kitedesk.strategies` entry points, the default like any plug-in."""

from __future__ import annotations

import importlib.metadata
import tomllib
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from desktop.domain import Bar, OptionRight, Segment
from desktop.engine.strategy import registry
from desktop.engine.strategy.base import Action, PositionState, Strategy, StrategySnapshot
from desktop.engine.strategy.itm_momentum import ItmMomentumStrategy
from desktop.engine.strategy.registry import (
    StrategyLoadError,
    StrategyNotFound,
    available_strategies,
    create_strategy,
)

from .builders import make_params

ROOT = Path(__file__).resolve().parents[2]


class NeverTrades(Strategy):
    """A minimal third-party strategy used through a fake entry point."""

    name = "never_trades"

    def on_bar(self, bar: Bar) -> list[Action]:
        return []

    def on_option_price(self, price: Decimal, t: datetime) -> list[Action]:
        return []

    def on_fill(
        self, right: OptionRight, tradingsymbol: str, quantity: int, price: Decimal, t: datetime
    ) -> None:
        pass

    def on_entry_rejected(self, reason: str) -> None:
        pass

    def on_exit(self, price: Decimal, t: datetime, reason: str) -> None:
        pass

    @property
    def position(self) -> PositionState | None:
        return None

    def snapshot(self) -> StrategySnapshot:
        return StrategySnapshot(self.name, self.segment, None, (), None, None, None, 0)


NOT_A_STRATEGY = object()


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, **targets: str) -> None:
    eps = [importlib.metadata.EntryPoint(name, value, registry.GROUP) for name, value in targets.items()]

    def entry_points(**kw):
        assert kw == {"group": registry.GROUP}
        return importlib.metadata.EntryPoints(eps)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def test_third_party_strategy_is_discovered_and_created_per_segment(monkeypatch):
    fake_entry_points(
        monkeypatch,
        never_trades=f"{__name__}:NeverTrades",
        itm_momentum="desktop.engine.strategy.itm_momentum:ItmMomentumStrategy",
    )
    assert available_strategies() == ["itm_momentum", "never_trades"]
    params = make_params()
    a = create_strategy("never_trades", params, Segment.NIFTY)
    b = create_strategy("never_trades", params, Segment.NIFTY)
    assert isinstance(a, NeverTrades) and a is not b and a.segment is Segment.NIFTY


def test_unknown_strategy_error_names_the_choices(monkeypatch):
    fake_entry_points(monkeypatch, never_trades=f"{__name__}:NeverTrades")
    with pytest.raises(StrategyNotFound, match=r"unknown strategy 'scalper': choose from never_trades"):
        create_strategy("scalper", make_params(), Segment.NIFTY)


def test_a_registered_object_that_is_not_a_strategy_is_refused(monkeypatch):
    fake_entry_points(monkeypatch, bogus=f"{__name__}:NOT_A_STRATEGY", broken="no_such_module_xyz:Thing")
    with pytest.raises(StrategyLoadError, match="is not a KiteDesk Strategy class"):
        create_strategy("bogus", make_params(), Segment.NIFTY)
    with pytest.raises(StrategyLoadError, match="could not be loaded"):
        create_strategy("broken", make_params(), Segment.NIFTY)


def test_one_name_claimed_by_two_packages_is_refused_rather_than_guessed(monkeypatch):
    eps = [
        importlib.metadata.EntryPoint("dup", f"{__name__}:NeverTrades", registry.GROUP),
        importlib.metadata.EntryPoint(
            "dup", "desktop.engine.strategy.itm_momentum:ItmMomentumStrategy", registry.GROUP
        ),
    ]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: importlib.metadata.EntryPoints(eps))
    with pytest.raises(StrategyLoadError, match="registered by several packages"):
        create_strategy("dup", make_params(), Segment.NIFTY)


def test_default_strategy_is_registered_in_pyproject_like_any_plugin():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    eps = data["project"]["entry-points"]["kitedesk.strategies"]
    assert eps["itm_momentum"] == "desktop.engine.strategy.itm_momentum:ItmMomentumStrategy"


def test_installed_package_exposes_the_default_strategy():
    # Needs the package installed (pip install -e .), as the CI does.
    assert "itm_momentum" in available_strategies()
    assert isinstance(create_strategy("itm_momentum", make_params(), Segment.BANKNIFTY), ItmMomentumStrategy)
