"""File → Sync settings…: one profile's central database (URL, test connection, enable or disable).

Everything that touches the central database or the keyring (reading the setting, testing, enabling,
disabling) runs on the window's JobRunner, never on the GUI thread: an unreachable server takes seconds to
say so. The password has a field of its own, masked; the URL add-account printed may also carry it. It goes
to the keyring through the engine, never to a file, and is never shown again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from desktop.ui.main_window import MainWindow
    from desktop.ui.workers import JobRunner

URL_HINT = "postgresql://LOGIN@HOST:5432/DATABASE"


class SyncEngine(Protocol):
    """What the dialog needs of the engine (desktop.engine's public API)."""

    def sync_settings(self, user_id: str) -> Any: ...
    def test_sync(self, user_id: str, url: str, password: str = "") -> str: ...
    def enable_sync(self, user_id: str, url: str, password: str = "") -> str: ...
    def disable_sync(self, user_id: str) -> str: ...


class SyncDialog(QDialog):
    """One profile at a time: its URL (without password), a password field, and Test / Enable / Disable."""

    def __init__(
        self,
        engine: SyncEngine,
        jobs: JobRunner,
        user_ids: Sequence[str],
        current: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Sync settings")
        self._engine = engine
        self._jobs = jobs
        self._busy = False
        lay = QVBoxLayout(self)
        lay.addWidget(
            QLabel(
                "Sync a profile's records with a central PostgreSQL (its other computers see its trades).\n"
                "Use the URL `kitedesk sync add-account` printed for this account."
            )
        )
        form = QFormLayout()
        self.profile_box = QComboBox()
        self.profile_box.addItems(list(user_ids))
        if current is not None and current in user_ids:
            self.profile_box.setCurrentText(current)
        self.url_edit = QLineEdit()
        self.url_edit.setPlaceholderText(URL_HINT)
        self.password_edit = QLineEdit()
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.state_label = QLabel("")
        form.addRow("Profile", self.profile_box)
        form.addRow("Central database URL", self.url_edit)
        form.addRow("Password", self.password_edit)
        form.addRow("Sync", self.state_label)
        lay.addLayout(form)
        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)
        lay.addWidget(self.result_label)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.test_button = QPushButton("Test connection")
        self.enable_button = QPushButton("Enable sync")
        self.disable_button = QPushButton("Disable sync")
        for b in (self.test_button, self.enable_button, self.disable_button):
            buttons.addButton(b, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.test_button.clicked.connect(self.test_connection)
        self.enable_button.clicked.connect(self.enable)
        self.disable_button.clicked.connect(self.disable)
        self.profile_box.currentTextChanged.connect(lambda _t: self.load())
        self.resize(560, 0)
        self.load()

    @property
    def user_id(self) -> str:
        """The profile shown."""
        return self.profile_box.currentText()

    def load(self) -> None:
        """Reads the profile's setting (off the GUI thread: the keyring may be slow to answer)."""
        user_id = self.user_id
        if not user_id:
            self._show_buttons()
            self.state_label.setText("no profile: add one with File → Log in / profiles…")
            return
        self._run(lambda: self._engine.sync_settings(user_id), self._show_settings, "")

    def _show_settings(self, settings: Any) -> None:
        if settings.user_id != self.user_id:
            return  # another profile was chosen meanwhile: its own load is on its way
        self.url_edit.setText(settings.url)
        self.password_edit.clear()
        self.password_edit.setPlaceholderText(
            "stored (leave empty to keep it)" if settings.has_password else "the login's password"
        )
        if not settings.url:
            self.state_label.setText("off (never set up)")
        else:
            self.state_label.setText("on" if settings.enabled else "off")

    def test_connection(self) -> None:
        """Connects once with what the fields say; says in words whether it works."""
        user_id, url, password = self._fields()
        if url:
            self._run(lambda: self._engine.test_sync(user_id, url, password), self._say, "Testing…")

    def enable(self) -> None:
        """Tests the connection, then turns the profile's sync on (nothing changes when the test fails)."""
        user_id, url, password = self._fields()
        if url:
            self._run(lambda: self._engine.enable_sync(user_id, url, password), self._changed, "Enabling…")

    def disable(self) -> None:
        """Turns the profile's sync off and forgets its password."""
        user_id = self.user_id
        if user_id:
            self._run(lambda: self._engine.disable_sync(user_id), self._changed, "Disabling…")

    def _fields(self) -> tuple[str, str, str]:
        url = self.url_edit.text().strip()
        if not url:
            self._say(f"Enter the central database URL ({URL_HINT}).", error=True)
        return self.user_id, url, self.password_edit.text()

    def _changed(self, text: str) -> None:
        self._say(text)
        self.load()

    def _say(self, text: str, error: bool = False) -> None:
        self.result_label.setText(text)
        self.result_label.setStyleSheet("color:#c62828;" if error else "")

    def _run(self, fn: Callable[[], Any], done: Callable[[Any], None], doing: str) -> None:
        self._busy = True
        self._show_buttons()
        if doing:
            self._say(doing)

        def finished(value: Any) -> None:
            self._busy = False
            self._show_buttons()
            done(value)

        def failed(exc: BaseException) -> None:
            self._busy = False
            self._show_buttons()
            self._say(str(exc) or type(exc).__name__, error=True)

        self._jobs.submit(fn, finished, failed)

    def _show_buttons(self) -> None:
        ready = not self._busy and bool(self.user_id)
        for b in (self.test_button, self.enable_button, self.disable_button):
            b.setEnabled(ready)
        self.profile_box.setEnabled(not self._busy)

    @property
    def busy(self) -> bool:
        """A test, change or read is under way."""
        return self._busy


def show_sync_settings(w: MainWindow) -> SyncDialog:
    """File → Sync settings…, on the profile of the tab in front (non-modal: trading goes on)."""
    tab = w.current_tab()
    dialog = SyncDialog(
        w.engine,
        w.jobs,
        [p.user_id for p in w.engine.profiles()],
        current=tab.session.user_id if tab is not None else None,
        parent=w,
    )
    dialog.setModal(False)
    dialog.show()
    return dialog
