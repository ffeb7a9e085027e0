"""Qt for the engine: PySide6's QtCore, with Python's own `import` put back in place of PySide's hook.

Importing QtCore replaces `builtins.__import__` with PySide's `__feature_import__`, there only to let a module opt
in to `from __feature__ import snake_case, true_property`. It then runs a Python function on every `import`
statement of the process, even of a module imported long ago, and so on every import the C library makes on
our behalf (`datetime.strftime` and `time.strptime` import `time` and `_strptime` on each call, `uuid.uuid5`
imports `hashlib`). Measured here: an `import json` of a loaded module costs 2.0 µs through the hook against
0.17 µs without it, a `strftime` 5.1 against 1.7 µs; a LIVE run of 10 sessions x 3 segments made about 1,500
such imports a second, all holding the interpreter lock (issue 18: the minute's close is CPU-bound under it).

KiteDesk never uses `__feature__` (tests/engine/test_qt_import.py checks the sources), so once QtCore is
imported the standard import is put back (`builtins.__orig_import__`, kept there by PySide itself). Only when
the hook installed is PySide's own, untouched: another library's import hook is never removed. What is lost is
only what `from __feature__ import ...` would switch on: the statement still runs, and switches nothing."""

from __future__ import annotations

import builtins

from PySide6.QtCore import QObject, QThread, Signal


def restore_python_import() -> bool:
    """Puts Python's own `__import__` back if PySide's feature hook is the one in place; True if it did."""
    hook = getattr(builtins, "__feature_import__", None)
    original = getattr(builtins, "__orig_import__", None)
    if hook is None or original is None or builtins.__import__ is not hook:
        return False
    builtins.__import__ = original
    return True


restore_python_import()

__all__ = ["QObject", "QThread", "Signal", "restore_python_import"]
