"""A container that keeps a busy row of labels from re-laying out (and repainting) the whole window.

Every `QLabel.setText` calls `updateGeometry()`, and Qt passes that up through each layout to the window
(`QLayout::activate` ends with the parent's `updateGeometry()`, "ideally only if sizeHint() changed").
When the request reaches a `QTabWidget`, its `setUpLayout()` calls `update()` on the whole tab widget:
a label changing 15 times a second then repaints the whole window (measured: 8-12 ms per frame).
A `GeometryFence` has no layout: it places its one child by hand, so the request stops here.

Only for widgets that are shown with their parent (a row of labels): Qt delivers a hidden widget's resize
when it is shown, so the child of a hidden fence keeps its first size until then (a log appended to at
that size scrolls sideways).
"""

from __future__ import annotations

from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QSizePolicy, QWidget


class GeometryFence(QWidget):
    """Holds `child` at a fixed height and the width it is given; the child's relayouts stay inside it."""

    def __init__(self, child: QWidget, height: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.child = child
        child.setParent(self)
        self.setFixedHeight(height)
        # Any width: the labels inside claim none, so a text never changes what the parent lays out.
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(0)
        child.setGeometry(0, 0, self.width(), height)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt API
        self.child.setGeometry(0, 0, event.size().width(), event.size().height())
        super().resizeEvent(event)
