"""In-window notifications ("toasts"): small notices stacked in the window's bottom-right corner, each hiding by
itself after a few seconds (or when clicked).

A desktop without a system tray (a plain X server, some Wayland desktops, offscreen) shows nothing for
QSystemTrayIcon's messages: there the window shows its notifications itself. With a tray, they are shown in the
window too when the setting says so (File → Settings…). They never take the focus or block the window: a trader
typing an order keeps typing.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QMouseEvent
from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout, QWidget

from desktop.ui.theme import Theme

TOAST_MS = 6000  # as long as a tray message stays
MAX_TOASTS = 4  # more at once: the oldest goes
TOAST_WIDTH = 340
MARGIN = 12
BOTTOM_MARGIN = 34  # above the status bar
WARNING_KINDS = ("stop-loss", "rejected", "login", "kill", "unprotected")


class Toast(QFrame):
    """One notice: its title in bold, its text below; a click closes it."""

    def __init__(self, parent: QWidget, title: str, text: str, kind: str, theme: Theme) -> None:
        super().__init__(parent)
        self.setObjectName("toast")
        self.kind = kind
        accent = theme.loss if kind in WARNING_KINDS else theme.highlight
        self.setStyleSheet(
            f"QFrame#toast{{background:{theme.button};border:1px solid {theme.muted};"
            f"border-left:4px solid {accent};border-radius:4px;}}"
            f"QLabel{{color:{theme.text};background:transparent;border:none;}}"
        )
        self.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(10, 6, 10, 8)
        lay.setSpacing(2)
        self.title = QLabel(f"<b>{_escape(title)}</b>")
        self.text = QLabel(_escape(text))
        self.text.setWordWrap(True)
        lay.addWidget(self.title)
        lay.addWidget(self.text)
        self.setFixedWidth(TOAST_WIDTH)
        self.closed: Callable[[], None] | None = None  # called once it closed (its stack closes up)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        super().closeEvent(event)
        if self.closed is not None:
            self.closed()


class ToastStack(QObject):
    """The window's toasts, newest at the bottom, kept in its bottom-right corner as the window resizes."""

    def __init__(self, window: QWidget, theme: Theme, timeout_ms: int = TOAST_MS) -> None:
        super().__init__(window)
        self._window = window
        self._theme = theme
        self._timeout_ms = timeout_ms
        self.toasts: list[Toast] = []
        window.installEventFilter(self)

    def show_notice(self, title: str, text: str, kind: str = "") -> Toast:
        """Shows one notice now; it hides by itself after the timeout."""
        toast = Toast(self._window, title, text, kind, self._theme)
        toast.closed = lambda: QTimer.singleShot(0, self, self.place)  # the others close up (once it is gone)
        self.toasts.append(toast)
        while len(self.toasts) > MAX_TOASTS:
            self.toasts.pop(0).close()
        toast.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        QTimer.singleShot(self._timeout_ms, toast, toast.close)
        toast.show()
        toast.raise_()
        self.place()
        return toast

    def visible(self) -> list[Toast]:
        """The toasts on screen, oldest first."""
        return [t for t in self.toasts if t.isVisible()]

    def set_theme(self, theme: Theme) -> None:
        """New toasts take the theme's colours."""
        self._theme = theme

    def place(self) -> None:
        """Stacks the toasts up from the window's bottom-right corner."""
        self.toasts = [t for t in self.toasts if t.isVisible()]
        y = self._window.height() - BOTTOM_MARGIN
        x = self._window.width() - TOAST_WIDTH - MARGIN
        for toast in reversed(self.toasts):
            toast.adjustSize()
            y -= toast.height()
            toast.move(max(x, 0), max(y, 0))
            toast.raise_()
            y -= 6

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if watched is self._window and event.type() == QEvent.Type.Resize:
            self.place()
        return False


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
