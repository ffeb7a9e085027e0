"""Pick or create a profile, store its API secret in the keyring, and log in (browser or pasted URL/token)."""

from __future__ import annotations

from typing import Any, Protocol

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.engine import ProfileInfo
from desktop.ui.workers import JobRunner

NEW_PROFILE = "New profile…"
REDIRECT_WAIT_S = 180.0


class LoginEngine(Protocol):
    """The part of desktop.engine.Engine the login dialog uses."""

    def profiles(self) -> list[ProfileInfo]: ...
    def save_profile(self, info: ProfileInfo, api_secret: str | None) -> None: ...
    def login_url(self, user_id: str) -> str: ...
    def wait_for_redirect(self, user_id: str, timeout: float = ...) -> str: ...
    def complete_login(self, user_id: str, request_token_or_url: str) -> str: ...
    def secure_secrets(self) -> bool: ...


def plain_reason(exc: BaseException) -> str:
    """A trader-readable reason for a failed login (the exception's own message; never a traceback)."""
    text = str(exc).strip()
    if isinstance(exc, TimeoutError) or "timed out" in text.lower():
        return "no answer from the browser in time: try again, or paste the redirect URL below"
    return text or "the login did not complete"


class LoginDialog(QDialog):
    """Profiles and login. Blocking work (waiting for the redirect, exchanging the token) runs on `jobs`."""

    sig_logged_in = Signal(str, str)
    """An account logged in: (user id, account name)."""

    def __init__(
        self, engine: LoginEngine, jobs: JobRunner, user_id: str | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Kite login and profiles")
        self.setMinimumWidth(520)
        self._engine = engine
        self._jobs = jobs
        self._working = False  # a pasted login is being completed
        self._waiting_browser = False  # waiting for the browser's redirect (a paste still works meanwhile)
        self._attempt = 0  # bumps with each login begun: a late answer of an earlier one is dropped
        lay = QVBoxLayout(self)
        self.profile_box = QComboBox()
        lay.addWidget(self.profile_box)
        form = QFormLayout()
        self.user_id = QLineEdit()
        self.user_id.setPlaceholderText("Kite user id, e.g. AB1234")
        self.api_key = QLineEdit()
        self.api_secret = QLineEdit()
        self.api_secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.redirect_url = QLineEdit()
        self.display_name = QLineEdit()
        form.addRow("User id", self.user_id)
        form.addRow("API key", self.api_key)
        form.addRow("API secret", self.api_secret)
        form.addRow("Redirect URL", self.redirect_url)
        form.addRow("Name", self.display_name)
        lay.addLayout(form)
        # The login page's address from the first second: a machine with no browser opens it elsewhere.
        url_row = QHBoxLayout()
        self.login_url = QLineEdit()
        self.login_url.setReadOnly(True)
        self.login_url.setObjectName("login_url")
        self.login_url.setPlaceholderText("save the profile to get its login URL")
        self.copy_url_button = QPushButton("Copy")
        self.copy_url_button.setToolTip("Copy the login URL, to open it in any browser")
        self.copy_url_button.clicked.connect(self.copy_login_url)
        url_row.addWidget(QLabel("Login URL"))
        url_row.addWidget(self.login_url, 1)
        url_row.addWidget(self.copy_url_button)
        lay.addLayout(url_row)
        self.keyring_note = QLabel("")
        self.keyring_note.setWordWrap(True)
        lay.addWidget(self.keyring_note)
        row = QHBoxLayout()
        self.save_button = QPushButton("Save profile")
        self.login_button = QPushButton("Log in with browser")
        self.login_button.setDefault(True)
        row.addWidget(self.save_button)
        row.addWidget(self.login_button)
        lay.addLayout(row)
        paste = QHBoxLayout()
        self.pasted = QLineEdit()
        self.pasted.setPlaceholderText("…or paste the redirect URL or the request_token here")
        self.use_pasted_button = QPushButton("Use")
        paste.addWidget(self.pasted, 1)
        paste.addWidget(self.use_pasted_button)
        lay.addLayout(paste)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # busy indicator: the wait has no known length
        self.progress.setVisible(False)
        lay.addWidget(self.progress)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        close = QPushButton("Close")
        close.clicked.connect(self.reject)
        lay.addWidget(close)

        self.save_button.clicked.connect(self.save_profile)
        self.login_button.clicked.connect(self.login_with_browser)
        self.use_pasted_button.clicked.connect(self.use_pasted)
        self.profile_box.currentIndexChanged.connect(self._show_profile)
        self._profiles: list[ProfileInfo] = []
        self.reload(user_id)
        secure = True
        try:
            secure = engine.secure_secrets()
        except Exception:
            secure = False
        self.keyring_note.setText(
            "The API secret is stored in your system keyring, never in a file."
            if secure
            else "No system keyring found: the API secret is kept in memory only until KiteDesk quits."
        )

    # ------------------------------------------------------------------ profiles
    def reload(self, select: str | None = None) -> None:
        """Re-reads the profiles from the engine and selects `select` when given."""
        self._profiles = self._engine.profiles()
        self.profile_box.blockSignals(True)
        self.profile_box.clear()
        for p in self._profiles:
            state = "logged in" if p.logged_in else "not logged in"
            name = f" — {p.display_name}" if p.display_name else ""
            demo = " [demo]" if "demo" in p.tags else ""
            self.profile_box.addItem(f"{p.user_id}{name} ({state}){demo}", p.user_id)
        self.profile_box.addItem(NEW_PROFILE, "")
        self.profile_box.blockSignals(False)
        index = self.profile_box.findData(select) if select else 0
        self.profile_box.setCurrentIndex(max(index, 0))
        self._show_profile()

    def _current(self) -> ProfileInfo | None:
        uid = self.profile_box.currentData()
        return next((p for p in self._profiles if p.user_id == uid), None)

    def _show_profile(self, *_: Any) -> None:
        p = self._current()
        default = ProfileInfo(user_id="", api_key="")
        p = p or default
        self.user_id.setText(p.user_id)
        self.user_id.setReadOnly(bool(p.user_id))
        self.api_key.setText(p.api_key)
        self.api_secret.clear()
        self.api_secret.setPlaceholderText("stored — leave empty to keep" if p.has_secret else "API secret")
        self.redirect_url.setText(p.redirect_url)
        self.display_name.setText(p.display_name)
        self._show_login_url(p.user_id)

    def _show_login_url(self, user_id: str) -> None:
        url = ""
        if user_id:
            try:
                url = self._engine.login_url(user_id)
            except Exception:  # a profile that cannot log in yet: the field says how to get one
                url = ""
        self.login_url.setText(url)
        self.copy_url_button.setEnabled(bool(url))

    def copy_login_url(self) -> None:
        """Puts the login URL on the clipboard."""
        QGuiApplication.clipboard().setText(self.login_url.text())
        self._set_status(
            "Login URL copied: open it in a browser, log in, then paste the address it ends on below"
        )

    def _form_problem(self) -> str:
        uid = self.user_id.text().strip()
        if not uid.isalnum() or not 2 <= len(uid) <= 20:
            return "user id must be your Kite user id, letters and digits only (e.g. AB1234)"
        if not self.api_key.text().strip():
            return "API key is missing (from your Kite Connect app's page)"
        current = self._current()
        if not self.api_secret.text() and not (current and current.has_secret):
            return "API secret is missing (from your Kite Connect app's page)"
        if not self.redirect_url.text().strip().startswith(("http://", "https://")):
            return "redirect URL must start with http:// or https:// (as set in your Kite Connect app)"
        return ""

    def save_profile(self) -> bool:
        """Saves the form (the secret goes to the keyring through the engine); False with a reason if invalid."""
        problem = self._form_problem()
        if problem:
            self._set_status(problem, error=True)
            return False
        current = self._current()
        base = current or ProfileInfo(user_id="", api_key="")
        info = ProfileInfo(
            user_id=self.user_id.text().strip(),
            api_key=self.api_key.text().strip(),
            display_name=self.display_name.text().strip(),
            redirect_url=self.redirect_url.text().strip(),
            api_root=base.api_root,
            login_url_root=base.login_url_root,
        )
        if current is not None and "demo" in current.tags:
            return True  # the demo's accounts live in memory; nothing to save
        try:
            self._engine.save_profile(info, self.api_secret.text() or None)
        except Exception as e:
            self._set_status(f"could not save the profile: {e}", error=True)
            return False
        self.api_secret.clear()
        self.reload(info.user_id)
        self._set_status(f"profile {info.user_id} saved")
        return True

    # ------------------------------------------------------------------ login
    def login_with_browser(self) -> None:
        """Opens Kite's login page and waits for the redirect on a worker thread; pasting still works meanwhile."""
        if self._working or self._waiting_browser or not self.save_profile():
            return
        uid = self.user_id.text().strip()
        try:
            url = self._engine.login_url(uid)
        except Exception as e:
            self._set_status(plain_reason(e), error=True)
            return
        QDesktopServices.openUrl(QUrl(url))
        self.login_url.setText(url)
        self.copy_url_button.setEnabled(True)
        self._set_status(
            f"Log in to Kite in your browser; waiting for the redirect to {self.redirect_url.text()}… "
            "(no browser opened? copy the login URL above, and paste the address it ends on below)"
        )
        engine = self._engine
        self._waiting_browser = True
        self._begin(
            lambda: engine.complete_login(uid, engine.wait_for_redirect(uid, REDIRECT_WAIT_S)),
            uid,
            detached=True,
        )

    def use_pasted(self) -> None:
        """Completes the login with a pasted redirect URL or request token."""
        text = self.pasted.text().strip()
        if not text:
            self._set_status(
                "paste the address the browser showed after the login, or its request_token", True
            )
            return
        if self._working:
            return
        if not self._waiting_browser and not self.save_profile():
            return  # (while the browser is awaited the profile was saved when it began)
        uid = self.user_id.text().strip()
        engine = self._engine
        self._set_status("logging in…")
        self._waiting_browser = False  # the pasted address wins; the browser's late answer is dropped
        self._working = True
        self._begin(lambda: engine.complete_login(uid, text), uid)

    def _begin(self, fn: Any, uid: str, detached: bool = False) -> None:
        self._attempt += 1
        attempt = self._attempt
        self.progress.setVisible(True)
        self._update_buttons()
        submit = self._jobs.submit_detached if detached else self._jobs.submit
        submit(
            fn,
            lambda name: self._logged_in(attempt, uid, str(name)),
            lambda exc: self._failed(attempt, exc),
        )

    def _update_buttons(self) -> None:
        busy = self._working or self._waiting_browser
        self.login_button.setEnabled(not busy)
        self.save_button.setEnabled(not busy)
        self.use_pasted_button.setEnabled(not self._working)  # a paste works while the browser is awaited

    def _end(self) -> None:
        self._working = False
        self._waiting_browser = False
        self.progress.setVisible(False)
        self._update_buttons()

    def _logged_in(self, attempt: int, uid: str, name: str) -> None:
        if attempt != self._attempt:
            return  # an earlier attempt (the browser's) answered after a pasted login
        self._end()
        self.pasted.clear()
        self.reload(uid)
        self._set_status(f"Logged in: {name} ({uid})")
        self.sig_logged_in.emit(uid, name)

    def _failed(self, attempt: int, exc: BaseException) -> None:
        if attempt != self._attempt:
            return
        self._end()
        self._set_status(f"Login failed: {plain_reason(exc)}", error=True)

    def _set_status(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color:#ff5c5c;" if error else "")

    @property
    def working(self) -> bool:
        """A login is in progress (a pasted one, or a wait for the browser)."""
        return self._working or self._waiting_browser
