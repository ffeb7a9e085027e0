"""Strategy discovery through the `kitedesk.strategies` entry-point group.

The default strategy is registered in KiteDesk's own pyproject.toml exactly like a third-party one,
so a plug-in is just an installed package declaring
`[project.entry-points."kitedesk.strategies"] name = "package.module:StrategyClass"`.
Entry points are read once per process (scanning every installed distribution costs ~36 ms, and it ran on
the GUI thread at each session start); installing a plug-in needs a restart, as any import does.
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Callable

from desktop.domain import Segment, StrategyParams
from desktop.engine.strategy.base import Strategy

GROUP = "kitedesk.strategies"


class StrategyNotFound(LookupError):
    """No installed strategy has that name; the message names the choices."""


class StrategyLoadError(RuntimeError):
    """A registered strategy could not be loaded or is not a Strategy."""


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return dict(_discover(importlib.metadata.entry_points))


@functools.lru_cache(maxsize=4)
def _discover(
    entry_points: Callable[..., importlib.metadata.EntryPoints],
) -> dict[str, importlib.metadata.EntryPoint]:
    # Keyed by the lookup function, so a test that swaps it in sees its own entry points.
    found: dict[str, importlib.metadata.EntryPoint] = {}
    clashes: dict[str, set[str]] = {}
    for ep in entry_points(group=GROUP):
        seen = found.get(ep.name)
        if seen is not None and seen.value != ep.value:
            clashes.setdefault(ep.name, {seen.value}).add(ep.value)
        found.setdefault(ep.name, ep)
    for name, targets in clashes.items():
        # Two packages claiming one name: picking either silently could trade the wrong strategy.
        found.pop(name, None)
        found[name] = importlib.metadata.EntryPoint(name, "|".join(sorted(targets)), GROUP)
    return found


def available_strategies() -> list[str]:
    """Names of the installed strategies, sorted."""
    return sorted(_entry_points())


def load_strategy_class(name: str) -> type[Strategy]:
    """The Strategy class registered as `name`."""
    eps = _entry_points()
    ep = eps.get(name)
    if ep is None:
        choices = ", ".join(sorted(eps)) or "none installed"
        raise StrategyNotFound(f"unknown strategy {name!r}: choose from {choices}")
    if "|" in ep.value:
        raise StrategyLoadError(
            f"strategy {name!r} is registered by several packages ({ep.value.replace('|', ', ')})"
        )
    try:
        cls = ep.load()
    except Exception as e:  # any import error of a plug-in becomes one plain message
        raise StrategyLoadError(f"strategy {name!r} ({ep.value}) could not be loaded: {e}") from e
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise StrategyLoadError(f"strategy {name!r} ({ep.value}) is not a KiteDesk Strategy class")
    return cls


def create_strategy(name: str, params: StrategyParams, segment: Segment) -> Strategy:
    """A fresh strategy instance for one segment of one session."""
    return load_strategy_class(name)(params, segment)
