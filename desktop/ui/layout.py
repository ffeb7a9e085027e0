"""`settle_hidden`: lays out a widget that is not shown, ahead of the frame that shows it.

Qt lays out a hidden widget only when it is shown: a layout asked to update while its widget is hidden waits,
and a hidden widget given a new geometry gets its resize event when it is shown (`WA_PendingResizeEvent`).
A session tab built in the background (its segment panels and charts) was therefore laid out, and its charts
resized three times over (a default size, a zero width, the real size), in the click that brought it forward:
20 ms of the GUI thread in that one frame, each chart resize rescaling its plots and axes (measured, issue 6).

`settle_hidden` does here what Qt does when it shows the widget (QWidgetPrivate's
`sendPendingMoveAndResizeEvents` and each layout's `activate`), so that the frame that shows the tab has
nothing left to lay out.
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QSize, Qt
from PySide6.QtGui import QMoveEvent, QResizeEvent
from PySide6.QtWidgets import QSplitter, QWidget

_PENDING_MOVE = Qt.WidgetAttribute.WA_PendingMoveEvent
_PENDING_RESIZE = Qt.WidgetAttribute.WA_PendingResizeEvent


def settle_hidden(widget: QWidget) -> int:
    """Lays out `widget` and its children at its current size (give it the size it will be shown at first) and delivers their pending move and resize
    events, from the top down, as showing it would. Returns how many resize events were delivered.

    Only for a widget that is not visible: a visible one is laid out by Qt as it goes. Children hidden on
    purpose (`isHidden`) are left alone, as Qt leaves them when it shows their parent.
    """
    if widget.isVisible():
        return 0
    return _settle(widget)


def _settle(widget: QWidget) -> int:
    delivered = 0
    if widget.testAttribute(_PENDING_MOVE):
        widget.setAttribute(_PENDING_MOVE, False)
        QCoreApplication.sendEvent(widget, QMoveEvent(widget.pos(), widget.pos()))
    if widget.testAttribute(_PENDING_RESIZE):
        widget.setAttribute(_PENDING_RESIZE, False)
        QCoreApplication.sendEvent(widget, QResizeEvent(widget.size(), QSize()))
        delivered += 1
    layout = widget.layout()
    if layout is not None:
        layout.activate()  # places the children (their own resize events are pending: delivered below)
    if isinstance(widget, QSplitter) and widget.count():
        # A splitter places its children only while it is shown, and in the frame that shows it again
        # squeezes them to a few pixels before giving them their sizes (two resizes each). Sizes set here
        # place them now; children never placed yet (a size of 0) share the room by their stretch factors.
        sizes = widget.sizes()
        if 0 in sizes:
            horizontal = widget.orientation() == Qt.Orientation.Horizontal
            weights = []
            for i in range(widget.count()):
                child = widget.widget(i)
                policy = (
                    child.sizePolicy() if child is not None else None
                )  # setStretchFactor sets the stretch
                stretch = (
                    0
                    if policy is None
                    else policy.horizontalStretch()
                    if horizontal
                    else policy.verticalStretch()
                )
                weights.append(stretch or 1)
            room = max(
                0,
                (widget.width() if horizontal else widget.height())
                - widget.handleWidth() * (widget.count() - 1),
            )
            sizes = [room * w // sum(weights) for w in weights]
        widget.setSizes(sizes)
    for child in widget.findChildren(QWidget, options=Qt.FindChildOption.FindDirectChildrenOnly):
        if not child.isWindow() and not child.isHidden():
            delivered += _settle(child)
    return delivered
