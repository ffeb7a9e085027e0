"""A container that keeps a busy row of labels from re-laying out (and repainting) the whole window.

Every `QLabel.setText` calls `updateGeometry()`, and Qt passes that up through each layout to the window
(`QLayout::activate` ends with the parent's `updateGeometry()`, "ideally only if sizeHint() changed").
When the request reaches a `QTabWidget`, its `setUpLayout()` calls `update()` on the whole tab widget:
a label changing 15 times a second then repaints the whole window (measured: 8-12 ms per frame).
A `GeometryFence` has no layout: it places its one child by hand, so the request stops here.
"""

from __future__ import annotations

from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QSizePolicy, QWidget


class GeometryFence(QWidget):
    """Holds `child` at the size it is given (a fixed `height`, or any); the child's relayouts stay inside."""

    def __init__(self, child: QWidget, height: int | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.child = child
        child.setParent(self)
        if height is not None:
            self.setFixedHeight(height)
        # Any width (and height, unless fixed): what is inside never changes what the parent lays out.
        vertical = QSizePolicy.Policy.Fixed if height is not None else QSizePolicy.Policy.Ignored
        self.setSizePolicy(QSizePolicy.Policy.Ignored, vertical)
        self.setMinimumSize(0, height or 0)
        child.setGeometry(0, 0, self.width(), self.height())

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt API
        self.child.setGeometry(0, 0, event.size().width(), event.size().height())
        super().resizeEvent(event)
