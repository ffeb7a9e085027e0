"""Helpers for driving modal dialogs in offscreen Qt tests."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox


def answer_next_message_box(button_text: str, seen: list[str], attempts: int = 200) -> None:
    """When the next QMessageBox opens, record its text in `seen` and click the button named `button_text`."""

    def click(left: int = attempts) -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            if left:
                QTimer.singleShot(10, lambda: click(left - 1))
            return
        seen.append(box.text())
        for button in box.buttons():
            if button.text().replace("&", "") == button_text:
                button.click()
                return
        raise AssertionError(f"no button {button_text!r} in {[b.text() for b in box.buttons()]}")

    QTimer.singleShot(0, click)
