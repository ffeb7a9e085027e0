"""After the first paint: import what the window left out, so the first session or chart does not stall.

The charts (pyqtgraph, numpy) are imported with the first chart, the Kite client and the market feed with
the first session (issue 18: the first window paints without them). Once the main window has painted, the
engine imports the client and the feed on a thread of its own, and the next pass of the event loop imports
the charts here, on the GUI thread (Qt's widgets are not to be touched from another thread): one stall of a
few hundred milliseconds just after start, not in the middle of opening the first session.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QWidget

from desktop.engine import import_in_background


class _AfterFirstPaint(QObject):
    def __init__(self, window: QWidget, then: Callable[[], None] | None) -> None:
        super().__init__(window)
        self._then = then

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Paint:
            watched.removeEventFilter(self)
            QTimer.singleShot(0, _import_the_rest)
            if self._then is not None:
                QTimer.singleShot(0, self._then)
        return False


def _import_the_rest() -> None:
    import_in_background()
    importlib.import_module("desktop.ui.chart")


def import_after_first_paint(window: QWidget, then: Callable[[], None] | None = None) -> None:
    """Imports the charts, the Kite client and the feed once `window` has painted for the first time, then
    calls `then` (the engine's sync start: it brings the PostgreSQL client)."""
    hook = _AfterFirstPaint(window, then)  # owned by the window
    window.installEventFilter(hook)
