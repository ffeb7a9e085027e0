"""PySide6 6.12.0 on Python < 3.12 drops a reference to None on every Qt call that returns nothing.

Thousands of such calls later the interpreter frees None and crashes. This test fails on such a build.
"""

from __future__ import annotations

import sys

import pytest

QtCore = pytest.importorskip("PySide6.QtCore")


def test_qt_calls_returning_nothing_keep_none_refcount(qapp):
    obj = QtCore.QObject()
    timer = QtCore.QTimer()
    before = sys.getrefcount(None)
    for i in range(2000):
        obj.setObjectName(f"n{i}")  # returns None
        timer.setInterval(i % 50 + 1)  # returns None
        obj.setProperty("x", i)  # returns bool
    after = sys.getrefcount(None)
    # Other code may create or drop a handful of None references; a buggy build loses thousands.
    assert abs(after - before) < 100, f"None refcount moved by {after - before} over 4000 void Qt calls"


def test_installed_pyside_is_not_the_broken_release():
    import PySide6

    version = tuple(int(p) for p in PySide6.__version__.split(".")[:3])
    if sys.version_info < (3, 12):
        assert version != (6, 12, 0), "PySide6 6.12.0 corrupts None's refcount on Python < 3.12"
