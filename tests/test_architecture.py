"""The layering of DESIGN.md, enforced: a broken import-linter contract fails the suite."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    result = subprocess.run([exe, str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_lint_is_clean():
    exe = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    result = subprocess.run(
        [exe, "check", "desktop", "tests", "bench"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _qt_widget_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found += [n for n in names if n.startswith(("PySide6.QtWidgets", "PySide6.QtGui"))]
    return found


def test_only_ui_imports_qtwidgets_or_qtgui():
    offenders = []
    for path in (ROOT / "desktop").rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("desktop/ui/"):
            continue
        offenders += [f"{rel}: {name}" for name in _qt_widget_imports(path)]
    assert not offenders, "QtWidgets/QtGui outside desktop/ui:\n" + "\n".join(offenders)


def test_widget_import_check_sees_a_widget_import(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text("from PySide6 import QtCore\nfrom PySide6.QtWidgets import QLabel\n")
    assert _qt_widget_imports(sample) == ["PySide6.QtWidgets", "PySide6.QtWidgets.QLabel"]


def test_mypy_is_clean_on_every_layer_ui_included():
    exe = shutil.which("mypy") or str(Path(sys.executable).with_name("mypy"))
    result = subprocess.run(
        [exe], cwd=ROOT, capture_output=True, text=True
    )  # files from pyproject [tool.mypy]
    assert result.returncode == 0, result.stdout + result.stderr
