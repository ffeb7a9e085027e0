"""The engine's Qt import puts Python's own `import` back in place of PySide's feature hook (desktop/engine/qt.py)."""

from __future__ import annotations

import builtins
import re
from pathlib import Path

import pytest

import desktop
from desktop.engine import qt


def test_once_the_engine_has_qt_every_import_is_pythons_own_again() -> None:
    if not hasattr(builtins, "__orig_import__"):
        pytest.skip("this PySide6 installs no import hook")
    assert builtins.__import__ is builtins.__orig_import__
    assert qt.restore_python_import() is False  # nothing left to put back


def test_another_librarys_import_hook_is_never_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = builtins.__import__

    def theirs(name: str, *args: object, **kwargs: object) -> object:
        calls.append(name)
        return original(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", theirs)
    assert qt.restore_python_import() is False
    assert builtins.__import__ is theirs
    import json  # noqa: F401, PLC0415 - the statement under test

    assert calls == ["json"]


def test_pysides_hook_put_back_by_someone_is_removed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = getattr(builtins, "__feature_import__", None)
    if hook is None:
        pytest.skip("this PySide6 installs no import hook")
    monkeypatch.setattr(builtins, "__import__", hook)
    assert qt.restore_python_import() is True
    assert builtins.__import__ is builtins.__orig_import__


def test_no_module_of_ours_opts_in_to_pysides_features() -> None:
    """The hook exists only for `from __feature__ import ...`: with it gone, such a line would switch nothing."""
    statement = re.compile(r"^\s*(from\s+__feature__\s+import|import\s+__feature__)", re.MULTILINE)
    root = Path(desktop.__file__).parent
    users = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if statement.search(p.read_text(encoding="utf-8"))
    ]
    assert users == []
    assert statement.search("x = 1\n    from __feature__ import snake_case\n")  # the pattern finds one
