"""settle_hidden: a page built behind another tab is laid out before the click that shows it."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSplitter, QTabWidget, QVBoxLayout, QWidget

from desktop.ui.layout import settle_hidden


class _Probe(QLabel):
    """Counts its resize events."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.resizes: list[tuple[int, int]] = []

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        self.resizes.append(event.size().toTuple())
        super().resizeEvent(event)


def _window(qtbot) -> tuple[QTabWidget, QWidget, QSplitter]:
    tabs = QTabWidget()
    qtbot.addWidget(tabs)
    tabs.resize(1200, 800)
    front = QWidget()
    QVBoxLayout(front).addWidget(QLabel("front"))
    page = QWidget()
    outer = QSplitter(Qt.Orientation.Vertical)
    holder = QWidget()  # as the session tab holds its segments' splitter
    inner = QSplitter(Qt.Orientation.Horizontal)
    QVBoxLayout(holder).addWidget(inner)
    outer.addWidget(holder)
    outer.addWidget(QLabel("tables"))
    outer.setStretchFactor(0, 3)
    outer.setStretchFactor(1, 1)
    QVBoxLayout(page).addWidget(outer)
    tabs.addTab(front, "front")
    tabs.addTab(page, "page")
    tabs.setCurrentIndex(1)  # a new tab is shown once, still empty
    tabs.show()
    qtbot.waitExposed(tabs)
    tabs.setCurrentIndex(0)
    return tabs, page, inner


def _add_panels(inner: QSplitter) -> list[_Probe]:
    probes = []
    for name in ("NIFTY", "BANKNIFTY"):
        panel = QWidget()
        probe = _Probe(name)
        probe.setMinimumHeight(220)
        QVBoxLayout(panel).addWidget(probe, 1)
        inner.addWidget(panel)
        probes.append(probe)
    return probes


def test_a_page_settled_while_hidden_is_shown_without_a_single_resize(qtbot):
    tabs, page, inner = _window(qtbot)
    probes = _add_panels(inner)  # built behind the front tab
    qtbot.wait(10)
    page.setGeometry(page.parentWidget().contentsRect())
    assert settle_hidden(page) > 0
    settled = [p.size().toTuple() for p in probes]
    assert all(w > 400 and h > 400 for w, h in settled)  # the real size: side by side, most of the height
    assert [p.resizes[-1] for p in probes] == settled  # told so now (a chart rescales in its resize event)
    for p in probes:
        p.resizes.clear()
    tabs.setCurrentIndex(1)
    qtbot.wait(20)
    assert [p.resizes for p in probes] == [[], []]  # the click that shows it lays nothing out
    assert [p.size().toTuple() for p in probes] == settled


def test_without_settling_the_click_that_shows_the_page_resizes_each_panel_again(qtbot):
    # What settle_hidden saves: the same page shown without it.
    tabs, page, inner = _window(qtbot)
    probes = _add_panels(inner)
    qtbot.wait(10)
    tabs.setCurrentIndex(1)
    qtbot.wait(20)
    assert all(len(p.resizes) >= 1 for p in probes)


def test_a_pane_the_trader_collapsed_stays_collapsed(qtbot):
    tabs, page, inner = _window(qtbot)
    outer = inner.parentWidget().parentWidget()  # holder, then the splitter over the tables
    tabs.setCurrentIndex(1)
    outer.setSizes([outer.height(), 0])  # the trader drags the tables away
    tabs.setCurrentIndex(0)
    probes = _add_panels(inner)  # new panels, built behind the front tab
    qtbot.wait(10)
    settle_hidden(page)
    assert outer.sizes()[1] == 0  # still collapsed
    assert all(p.width() > 400 for p in probes)  # the new panels were given room
