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
        _place_splitter(widget)
    for child in widget.findChildren(QWidget, options=Qt.FindChildOption.FindDirectChildrenOnly):
        if not child.isWindow() and not child.isHidden():
            delivered += _settle(child)
    return delivered


def _place_splitter(splitter: QSplitter) -> None:
    """A splitter places its children only while it is shown, and in the frame that shows it again squeezes
    them to a few pixels before giving them their sizes (two resizes each). Sizes set here place them now.

    A pane the splitter never placed (a size of 0, and never given a geometry: no `WA_Resized`) gets room:
    the panes share the splitter by their stretch factors. A pane the trader collapsed (placed, size 0)
    stays collapsed.
    """
    sizes = splitter.sizes()
    panes = [splitter.widget(i) for i in range(splitter.count())]
    unplaced = [
        size == 0 and pane is not None and not pane.testAttribute(Qt.WidgetAttribute.WA_Resized)
        for size, pane in zip(sizes, panes, strict=True)
    ]
    if any(unplaced):
        horizontal = splitter.orientation() == Qt.Orientation.Horizontal
        weights = [
            _stretch(pane, horizontal) if pane is not None and (new or size > 0) else 0
            for size, pane, new in zip(sizes, panes, unplaced, strict=True)
        ]
        extent = splitter.width() if horizontal else splitter.height()
        room = max(0, extent - splitter.handleWidth() * (splitter.count() - 1))
        sizes = [room * w // sum(weights) for w in weights]
    splitter.setSizes(sizes)


def _stretch(pane: QWidget, horizontal: bool) -> int:
    policy = pane.sizePolicy()  # QSplitter.setStretchFactor sets the stretch here
    return (policy.horizontalStretch() if horizontal else policy.verticalStretch()) or 1
