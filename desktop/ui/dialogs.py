"""Small dialogs: a new session (account + label) and the CSV export of trades."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from PySide6.QtCore import QDate
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from desktop.domain import Mode
from desktop.engine import ProfileInfo
from desktop.ui.workers import JobRunner


class NewSessionDialog(QDialog):
    """Chooses the account and the tab's label of a new session."""

    def __init__(
        self, profiles: list[ProfileInfo], default_label: str, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("New session")
        lay = QFormLayout(self)
        self.account = QComboBox()
        for p in profiles:
            state = "" if p.logged_in else " (log in first)"
            self.account.addItem(f"{p.user_id} {p.display_name}{state}".strip(), p.user_id)
        self.label = QLineEdit(default_label)
        lay.addRow("Account", self.account)
        lay.addRow("Label", self.label)
        self.manage = QPushButton("Log in / manage profiles…")
        lay.addRow(self.manage)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addRow(buttons)

    def choice(self) -> tuple[str, str]:
        """(user id, label)."""
        return str(self.account.currentData() or ""), self.label.text().strip() or "Session"


def _to_date(q: QDate) -> date:
    return date(q.year(), q.month(), q.day())


class ExportDialog(QDialog):
    """Exports trades to CSV (date range; this session or the whole account) on a worker thread."""

    def __init__(
        self,
        engine: Any,
        jobs: JobRunner,
        accounts: list[str],
        user_id: str | None,
        session_label: str | None,
        today: date,
        mode: Mode = Mode.LIVE,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export trades to CSV")
        self._engine = engine
        self._jobs = jobs
        self._session_label = session_label
        self.exported: int | None = None
        lay = QVBoxLayout(self)
        form = QFormLayout()
        self.account = QComboBox()
        self.account.addItems(accounts)
        if user_id:
            self.account.setCurrentText(user_id)
        form.addRow("Account", self.account)
        scope = QHBoxLayout()
        self.this_session = QRadioButton(
            f"this session ({session_label})" if session_label else "this session"
        )
        self.whole_account = QRadioButton("the whole account")
        self.this_session.setEnabled(session_label is not None)
        (self.this_session if session_label else self.whole_account).setChecked(True)
        scope.addWidget(self.this_session)
        scope.addWidget(self.whole_account)
        form.addRow("Trades of", scope)
        qtoday = QDate(today.year, today.month, today.day)
        self.date_from = QDateEdit(qtoday)
        self.date_to = QDateEdit(qtoday)
        for d in (self.date_from, self.date_to):
            d.setCalendarPopup(True)
            d.setDisplayFormat("yyyy-MM-dd")
        form.addRow("From", self.date_from)
        form.addRow("To", self.date_to)
        # One mode per file: a tax file must never mix paper trades with real ones.
        self.mode = QComboBox()
        self.mode.addItems([Mode.LIVE.value, Mode.PAPER.value])
        self.mode.setCurrentText(mode.value)
        form.addRow("Mode", self.mode)
        file_row = QHBoxLayout()
        self.path = QLineEdit()
        self.path.setPlaceholderText("file.csv")
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._choose_file)
        file_row.addWidget(self.path, 1)
        file_row.addWidget(browse)
        form.addRow("File", file_row)
        lay.addLayout(form)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setVisible(False)
        lay.addWidget(self.progress)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.ActionRole)
        self.export_button.clicked.connect(self.export)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)

    def _choose_file(self) -> None:
        name, _ = QFileDialog.getSaveFileName(self, "Export trades", self.path.text(), "CSV files (*.csv)")
        if name:
            self.path.setText(name)

    def problem(self) -> str:
        """Why the export cannot run yet, in words ('' when it can)."""
        if not self.account.currentText():
            return "choose an account"
        if not self.path.text().strip():
            return "choose a file to write"
        if self.date_from.date() > self.date_to.date():
            return "the start date is after the end date"
        return ""

    def export(self) -> None:
        """Runs the export on a worker; the result or a plain reason comes back into the dialog."""
        problem = self.problem()
        if problem:
            self._set_status(problem, error=True)
            return
        kwargs: dict[str, Any] = {
            "broker_id": self.account.currentText(),
            "out": Path(self.path.text().strip()).expanduser(),
            "session_label": self._session_label if self.this_session.isChecked() else None,
            "date_from": _to_date(self.date_from.date()),
            "date_to": _to_date(self.date_to.date()),
            "mode": Mode(self.mode.currentText()),
        }
        self.export_button.setEnabled(False)
        self.progress.setVisible(True)
        self._set_status("exporting…")
        engine = self._engine
        self._jobs.submit(lambda: engine.export_trades(**kwargs), self._done, self._failed)

    def _done(self, count: object) -> None:
        self.exported = int(count)  # type: ignore[call-overload]
        self.progress.setVisible(False)
        self.export_button.setEnabled(True)
        self._set_status(f"exported {self.exported} trades to {self.path.text()}")

    def _failed(self, exc: BaseException) -> None:
        self.progress.setVisible(False)
        self.export_button.setEnabled(True)
        self._set_status(f"export failed: {exc}", error=True)

    def _set_status(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color:#ff5c5c;" if error else "")


def ask_resume_trading(parent: QWidget, reason: str | None) -> bool:
    """Trading → Resume trading after Kill all (`reason`: why it halted, None when it is off): True when the
    trader lets sessions started from now on trade again; the default is Cancel."""
    if reason is None:
        QMessageBox.information(
            parent, "Resume trading", "The Kill all switch is not on: sessions trade as usual."
        )
        return False
    answer = QMessageBox.question(
        parent,
        "Resume trading",
        f"Every session was halted by Kill all ({reason}), and any session started since comes up halted.\n\n"
        "Let sessions started from now on trade again? The halted ones stay halted until you restart each.",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
        QMessageBox.StandardButton.Cancel,
    )
    return answer == QMessageBox.StandardButton.Yes
