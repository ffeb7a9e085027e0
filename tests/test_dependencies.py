"""No declared dependency goes unused (issue 21): every runtime dependency in pyproject.toml is imported
somewhere under desktop/. Names are matched through the installed distributions' own top-level modules
(PySide6-Essentials provides `PySide6`, tomli-w provides `tomli_w`), not a hand-kept table."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = [Requirement(text) for text in project["dependencies"]]
    return [r for r in reqs if r.marker is None or r.marker.evaluate()]


def _imported_top_level_modules() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "desktop").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name.partition(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.partition(".")[0])
    return found


def test_every_runtime_dependency_is_imported_under_desktop() -> None:
    by_module = importlib.metadata.packages_distributions()
    imported_dists = {
        _normal(dist) for module in _imported_top_level_modules() for dist in by_module.get(module, [])
    }
    unused = [str(r) for r in _runtime_requirements() if _normal(r.name) not in imported_dists]
    assert not unused, f"declared in pyproject.toml but imported nowhere under desktop/: {unused}"


def test_the_check_sees_a_dependency_that_nothing_imports() -> None:
    # The check above must be able to fail: a distribution installed here that desktop/ never imports.
    by_module = importlib.metadata.packages_distributions()
    imported_dists = {_normal(d) for m in _imported_top_level_modules() for d in by_module.get(m, [])}
    assert (
        "pytest" not in imported_dists
        and "sqlalchemy" in imported_dists
        and "pyside6-essentials" in imported_dists
    )
