"""A fenced row of labels: its texts change without re-laying out (and repainting) the window around it."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QHBoxLayout, QLabel, QTabWidget, QVBoxLayout, QWidget

from desktop.ui.fence import GeometryFence


class _LayoutRequests(QObject):
    """Counts the LayoutRequest events a widget receives (a QTabWidget repaints itself whole on each)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if event.type() == QEvent.Type.LayoutRequest:
            self.count += 1
        return False


def _tabs_with_label(qtbot, fenced: bool) -> tuple[QTabWidget, QLabel, _LayoutRequests]:
    tabs = QTabWidget()
    qtbot.addWidget(tabs)
    page = QWidget()
    lay = QVBoxLayout(page)
    row = QWidget()
    QHBoxLayout(row).addWidget(label := QLabel("last tick 09:30:00"))
    lay.addWidget(GeometryFence(row, 30) if fenced else row)
    lay.addWidget(QWidget(), 1)  # the chart below
    tabs.addTab(page, "session")
    tabs.resize(600, 400)
    tabs.show()
    qtbot.waitExposed(tabs)
    qtbot.wait(50)  # the relayouts of showing it are over
    counter = _LayoutRequests()
    tabs.installEventFilter(counter)
    return tabs, label, counter


def test_a_fenced_label_text_never_reaches_the_tab_widget(qtbot):
    _, label, counter = _tabs_with_label(qtbot, fenced=True)
    for second in range(1, 6):
        label.setText(f"last tick 09:30:{second:02d} and a longer text")
        qtbot.wait(5)
    assert counter.count == 0


def test_an_unfenced_label_text_relays_out_the_tab_widget(qtbot):
    # What the fence is for: without it every new text makes the QTabWidget lay out and repaint itself.
    _, label, counter = _tabs_with_label(qtbot, fenced=False)
    for second in range(1, 6):
        label.setText(f"last tick 09:30:{second:02d} and a longer text")
        qtbot.wait(5)
    assert counter.count >= 1


def test_the_fence_gives_its_child_its_whole_width(qtbot):
    tabs, label, _ = _tabs_with_label(qtbot, fenced=True)
    fence = label.parentWidget().parentWidget()
    assert isinstance(fence, GeometryFence)
    tabs.resize(800, 400)
    qtbot.waitUntil(lambda: fence.child.width() == fence.width() > 600, timeout=2000)
