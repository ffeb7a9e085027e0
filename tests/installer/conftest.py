"""The frozen-app tests run only when asked for with `-m installer` (as `.ci/run` does).

pyproject's addopts deselect them with `-m 'not installer'`, but a `-m` on the command line replaces that
one: without this hook, `pytest -m "not slow"` would build the installer too.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "installer" in (config.getoption("markexpr") or ""):
        return
    frozen = [item for item in items if item.get_closest_marker("installer")]
    if frozen:
        config.hook.pytest_deselected(items=frozen)
        items[:] = [item for item in items if not item.get_closest_marker("installer")]
