"""A session's log panel: the latest lines, filtered by segment and level, appended in batches."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from PySide6.QtGui import QFont
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from desktop.engine import LogLine

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
MAX_LINES = 5000
ALL = "all"
SESSION = "session"


class LogPanel(QWidget):
    """Shows LogLines; `add_lines` is cheap (the main window's refresh timer calls it with a batch)."""

    def __init__(self, segments: Iterable[str] = (), parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._lines: deque[LogLine] = deque(maxlen=MAX_LINES)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Segment"))
        self.segment_box = QComboBox()
        self.segment_box.addItems([ALL, SESSION])
        bar.addWidget(self.segment_box)
        bar.addWidget(QLabel("Level ≥"))
        self.level_box = QComboBox()
        self.level_box.addItems(LEVELS)
        self.level_box.setCurrentText("INFO")
        bar.addWidget(self.level_box)
        bar.addStretch(1)
        lay.addLayout(bar)
        self.view = QPlainTextEdit()
        self.view.setReadOnly(True)
        self.view.setMaximumBlockCount(MAX_LINES)
        self.view.setFont(QFont("monospace", 9))
        self.view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        lay.addWidget(self.view)
        # Lines are seen from their start: QPlainTextEdit's cursor follows the end of the appended text,
        # and showing the panel (or an append) scrolls that cursor into view, so a long last line pushed
        # every line's start out of sight. Sideways moves are the trader's own, not the cursor's.
        self._sideways_by_hand = False
        sideways = self.view.horizontalScrollBar()
        sideways.actionTriggered.connect(self._sideways_moved_by_hand)
        sideways.valueChanged.connect(self._keep_line_starts)
        self.set_segments(segments)
        self.segment_box.currentTextChanged.connect(self._rerender)
        self.level_box.currentTextChanged.connect(self._rerender)

    def _sideways_moved_by_hand(self, _action: int) -> None:
        self._sideways_by_hand = True

    def _keep_line_starts(self, value: int) -> None:
        if value and not self._sideways_by_hand:
            self.view.horizontalScrollBar().setValue(0)

    def set_segments(self, segments: Iterable[str]) -> None:
        """The segment choices of the filter (the session's segments)."""
        current = self.segment_box.currentText()
        known = {self.segment_box.itemText(i) for i in range(self.segment_box.count())}
        for seg in segments:
            if seg not in known:
                self.segment_box.addItem(seg)
        self.segment_box.setCurrentText(current)

    def _shown(self, line: LogLine) -> bool:
        seg = self.segment_box.currentText()
        if seg == SESSION and line.segment:
            return False
        if seg not in (ALL, SESSION) and line.segment != seg:
            return False
        level = line.level.upper()
        floor = LEVELS.index(self.level_box.currentText())
        return (LEVELS.index(level) if level in LEVELS else len(LEVELS)) >= floor

    def add_lines(self, lines: Iterable[LogLine]) -> None:
        """Keeps the lines and appends those passing the filter."""
        shown = []
        for line in lines:
            self._lines.append(line)
            if line.segment and self.segment_box.findText(line.segment) < 0:
                self.set_segments([line.segment])
            if self._shown(line):
                shown.append(line.text)
        if shown:
            self.view.appendPlainText("\n".join(shown))

    def visible_text(self) -> str:
        """What the panel shows now."""
        return self.view.toPlainText()

    def _rerender(self, *_: object) -> None:
        self.view.setPlainText("\n".join(line.text for line in self._lines if self._shown(line)))
        self.view.moveCursor(self.view.textCursor().MoveOperation.End)
