"""The main window: a tab per session, menus, status bar, and state kept between runs.

When each thing is shown (the 15 Hz refresh and its frame budget) is decided in `desktop.ui.pacing`; opening
a workspace, tab after tab and start after start, in `desktop.ui.workspace_start`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
)

from desktop.domain import Mode
from desktop.engine import (
    OnStop,
    SessionState,
    StrategyParams,
    Workspace,
    WorkspaceError,
    available_strategies,
    save_workspace,
)
from desktop.ui.dialogs import ExportDialog, NewSessionDialog, ask_resume_trading
from desktop.ui.login_dialog import LoginDialog
from desktop.ui.menus import build_menus, show_about, show_where
from desktop.ui.notify import Notifier
from desktop.ui.pacing import WindowPacer
from desktop.ui.session_prompts import KEEP, SQUARE_OFF, ask_open_position, open_position_lines
from desktop.ui.session_tab import SessionTab
from desktop.ui.settings_dialog import SettingsDialog, apply_recording, default_params, open_settings
from desktop.ui.steps import StepQueue
from desktop.ui.theme import THEMES, Theme, apply_theme
from desktop.ui.window_chrome import build_central, build_status_bar, show_square_off_progress
from desktop.ui.workers import JobRunner
from desktop.ui.workspace_start import label_taken_text, open_workspace, restore_tabs, workspace_of

SETTINGS_FILE = "kitedesk-ui.ini"
TABS_FILE = "open-tabs.toml"


class MainWindow(QMainWindow):
    """KiteDesk's window. It shows sessions and forwards commands; the engine owns all trading state."""

    market_label: QLabel  # the status bar's parts (desktop.ui.window_chrome.build_status_bar)
    running_label: QLabel
    pnl_label: QLabel
    sync_label: QLabel
    kill_label: QLabel
    busy: QProgressBar

    def __init__(self, engine: Any, demo: bool = False, settings_dir: Path | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.demo = demo
        self.jobs = JobRunner(self)
        self.steps = StepQueue(parent=self)  # construction work (tabs, panels, starts): one step per pass
        self._settings_dir = Path(settings_dir or engine.home())
        self._settings_dir.mkdir(parents=True, exist_ok=True)
        self.settings = QSettings(str(self._settings_dir / SETTINGS_FILE), QSettings.Format.IniFormat)
        self.theme: Theme = THEMES.get(str(self.settings.value("theme", "dark")), THEMES["dark"])
        self.strategies = self._known_strategies()
        self._closing = False
        self._closed = False
        self._login_dialog: LoginDialog | None = None
        self.setWindowTitle("KiteDesk — simulation" if demo else "KiteDesk")

        self.banner, self.tabs, self.empty_hint = build_central(self, demo)
        build_menus(self)
        build_status_bar(self)
        self.notifier = Notifier(self.settings, self, self.theme)
        self.jobs.sig_busy_changed.connect(self._show_busy)

        self.pacer = WindowPacer(self, self.steps)
        self.timer = self.pacer.timer
        geometry = self.settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)  # type: ignore[arg-type]
        else:
            self.resize(1500, 920)
        self._update_empty_hint()
        self.apply_recording()  # the accounts chosen in File → Settings… are recorded from the start

    def _known_strategies(self) -> list[str]:
        try:
            return list(available_strategies())
        except Exception:
            return ["itm_momentum"]

    # ------------------------------------------------------------------ status bar
    def _show_busy(self, n: int) -> None:
        self.busy.setVisible(n > 0)
        self.busy.setToolTip(f"{n} background task(s) running")

    # ------------------------------------------------------------------ tabs
    def session_tabs(self) -> list[SessionTab]:
        """The open session tabs, left to right."""
        return [w for i in range(self.tabs.count()) if isinstance(w := self.tabs.widget(i), SessionTab)]

    def current_tab(self) -> SessionTab | None:
        """The visible session tab."""
        w = self.tabs.currentWidget()
        return w if isinstance(w, SessionTab) else None

    def on_current_tab(self, method: Callable[[SessionTab], Any]) -> None:
        """Calls `method(tab)` on the visible session tab, if any (menu actions and shortcuts)."""
        tab = self.current_tab()
        if tab is not None:
            method(tab)

    def _front_tab_changed(self, _index: int = -1) -> None:
        self.pacer.front_tab_changed()

    def step_tab(self, step: int) -> None:
        """Brings the next (+1) or previous (-1) tab to the front."""
        if self.tabs.count():
            self.tabs.setCurrentIndex((self.tabs.currentIndex() + step) % self.tabs.count())

    def _update_empty_hint(self) -> None:
        self.empty_hint.setVisible(self.tabs.count() == 0)
        self.tabs.setVisible(self.tabs.count() > 0)

    def open_session(self, user_id: str, label: str, params: StrategyParams | None = None) -> SessionTab:
        """Opens a tab for a new session of `user_id` (parameters pre-filled, not started)."""
        session = self.engine.open_session(user_id, label)
        tab = SessionTab(
            session, self.theme, self.jobs, self.strategies, steps=self.steps, settings=self.settings
        )
        if params is not None:
            tab.form.set_params(params)
        tab.sig_login_requested.connect(self.show_login)
        tab.sig_label_changed.connect(lambda text, t=tab: self._retitle(t, text))
        index = self.tabs.addTab(tab, f"{user_id} · {label}")
        self.tabs.setCurrentIndex(index)
        self._front_tab_changed()
        if not self._logged_in(user_id):
            tab.login_banner_text.setText(f"{user_id} is not logged in: log in before starting.")
            tab.login_banner.setVisible(True)
        self._update_empty_hint()
        return tab

    def _logged_in(self, user_id: str) -> bool:
        try:
            return bool(self.engine.is_logged_in(user_id))
        except Exception:
            return False

    def _retitle(self, tab: SessionTab, label: str) -> None:
        index = self.tabs.indexOf(tab)
        if index >= 0:
            self.tabs.setTabText(index, f"{tab.session.user_id} · {label}")

    def new_session(self) -> SessionTab | None:
        """Asks for the account and label, then opens the tab (logging in first when needed)."""
        profiles = self.engine.profiles()
        if not profiles:
            self.show_login()
            return None
        used = {tab.label for tab in self.session_tabs()}
        default = next(f"Session {n}" for n in range(1, len(used) + 2) if f"Session {n}" not in used)
        dialog = NewSessionDialog(profiles, default, self)

        def manage_profiles() -> None:
            dialog.reject()
            self.show_login()

        dialog.manage.clicked.connect(manage_profiles)
        if dialog.exec() != NewSessionDialog.DialogCode.Accepted:
            return None
        user_id, label = dialog.choice()
        if not user_id:
            return None
        if self.label_taken(user_id, label):
            QMessageBox.warning(self, "New session", label_taken_text(user_id, label))
            return None
        try:
            return self.open_session(user_id, label, self.default_params())
        except Exception as e:
            QMessageBox.warning(self, "New session", f"Could not open a session of {user_id}: {e}")
            return None

    def close_tab(self, index: int) -> bool:
        """Closes a tab: asks first if it holds a position, then stops its session on a worker."""
        tab = self.tabs.widget(index)
        if not isinstance(tab, SessionTab):
            return False
        positions = SQUARE_OFF
        if tab.session.has_open_position():
            starting = tab.session.snapshot().state is SessionState.STARTING
            choice = ask_open_position(self, f"{tab.session.user_id} · {tab.label}", starting)
            if choice is None:
                return False
            positions = choice
        self.tabs.removeTab(index)
        tab.hide()
        self._update_empty_hint()
        key = tab.session.key
        self.notifier.forget(key)
        engine = self.engine

        def closed(_: object = None) -> None:
            tab.deleteLater()

        def failed(exc: BaseException) -> None:
            tab.deleteLater()
            self.statusBar().showMessage(f"closing {key.broker_id} · {tab.label}: {exc}", 10_000)

        self.jobs.submit(lambda: engine.close_session(key, positions), closed, failed)
        return True

    def rename_tab(self, index: int) -> None:
        """Renames a tab's label."""
        tab = self.tabs.widget(index)
        if not isinstance(tab, SessionTab):
            return
        text, ok = QInputDialog.getText(self, "Rename session", "Label:", text=tab.label)
        label = text.strip()
        if not ok or not label or label == tab.label:
            return
        if self.label_taken(tab.session.user_id, label):
            QMessageBox.warning(self, "Rename session", label_taken_text(tab.session.user_id, label))
            return
        if self.engine.label_resumes(tab.session.user_id, label):
            QMessageBox.warning(
                self,
                "Rename session",
                f"{tab.session.user_id}'s session {label!r} kept a position or did not stop cleanly: open a new tab "
                f"labelled {label!r} to take it over, and give this one another label",
            )
            return
        tab.set_label(label)

    def label_taken(self, user_id: str, label: str) -> bool:
        """Another open tab of `user_id` has `label`: a restart, which finds a session by its account and label,
        would give each the other's kept position."""
        return any(t.session.user_id == user_id and t.label == label for t in self.session_tabs())

    # ------------------------------------------------------------------ login, export, workspace
    def show_login(self, user_id: str | None = None) -> LoginDialog:
        """Opens the login and profiles dialog (not modal: the window keeps refreshing)."""
        if self._login_dialog is None:
            self._login_dialog = LoginDialog(self.engine, self.jobs, user_id, self)
            self._login_dialog.sig_logged_in.connect(self._account_logged_in)
        else:
            self._login_dialog.reload(user_id)
        self._login_dialog.show()
        self._login_dialog.raise_()
        return self._login_dialog

    def _account_logged_in(self, user_id: str, name: str) -> None:
        for tab in self.session_tabs():
            if tab.session.user_id == user_id:
                tab.login_completed()
        self.statusBar().showMessage(f"{user_id} logged in ({name})", 8000)

    def default_params(self) -> StrategyParams:
        """What a new tab's form starts from (File → Settings…)."""
        return default_params(self.settings)

    def show_settings(self) -> SettingsDialog:
        """File → Settings…: applied when the trader presses OK."""
        return open_settings(self)

    def apply_recording(self, choices: dict[str, bool] | None = None) -> None:
        """Records the market data of the accounts chosen in the settings (or `choices`), kept for the chosen days."""
        apply_recording(self.engine, self.settings, choices)

    def export_trades(self) -> ExportDialog:
        """Opens the CSV export dialog for the visible session's account."""
        tab, today = self.current_tab(), self.engine.market_time().date()
        accounts = [p.user_id for p in self.engine.profiles()]
        snap = tab.snapshot() if tab is not None else None
        mode = snap.mode if snap is not None and snap.mode else Mode.LIVE
        if tab is not None and (snap is None or not snap.mode):  # never started: the mode its form shows
            mode = Mode(tab.form.mode_box.currentText())
        user_id, label = (tab.session.user_id, tab.label) if tab is not None else (None, None)
        dialog = ExportDialog(self.engine, self.jobs, accounts, user_id, label, today, mode, self)
        dialog.path.setText(str(Path.home() / f"kitedesk-trades-{today:%Y%m%d}.csv"))
        dialog.show()
        return dialog

    def workspace(self) -> Workspace:
        """The open tabs as a workspace (tabs whose form is not valid are left out)."""
        return workspace_of(self.session_tabs())

    def open_workspace(self, path: Path, start: bool = False) -> int:
        """Opens a workspace file's tabs, and with `start` starts them (desktop.ui.workspace_start)."""
        return open_workspace(self, path, start)

    def open_workspace_dialog(self) -> None:
        """File → Open workspace."""
        name, _ = QFileDialog.getOpenFileName(self, "Open workspace", str(self.engine.home()), "*.toml")
        if not name:
            return
        try:
            self.open_workspace(Path(name))
        except WorkspaceError as e:
            QMessageBox.warning(
                self, "Open workspace", "This workspace cannot be used:\n\n" + "\n".join(e.problems)
            )
        except Exception as e:
            QMessageBox.warning(self, "Open workspace", f"Could not open the workspace: {e}")

    def save_workspace_dialog(self) -> None:
        """File → Save workspace."""
        name, _ = QFileDialog.getSaveFileName(self, "Save workspace", str(self.engine.home()), "*.toml")
        if name:
            try:
                save_workspace(Path(name), self.workspace())
            except (OSError, WorkspaceError) as e:
                QMessageBox.warning(self, "Save workspace", f"Could not save: {e}")

    def restore_tabs(self) -> list[SessionTab]:
        """Reopens the tabs (not started) of the last run; unknown accounts are skipped."""
        return restore_tabs(self, self._settings_dir / TABS_FILE)

    # ------------------------------------------------------------------ view
    def set_theme(self, name: str) -> None:
        """Switches between the dark and the light theme."""
        self.theme = THEMES[name]
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_theme(app, self.theme)
        for tab in self.session_tabs():
            tab.set_theme(self.theme)
        self.notifier.set_theme(self.theme)
        self.settings.setValue("theme", name)

    def toggle_theme(self) -> None:
        """Dark ↔ light."""
        self.set_theme("light" if self.theme.name == "dark" else "dark")

    def kill_all(self) -> None:
        """The global kill switch (every session cancels, squares off and halts)."""
        engine = self.engine
        self.jobs.submit_now(lambda: engine.kill_all("global kill switch (menu)"))

    def rearm_kill_switch(self) -> bool:
        """Trading → Resume trading after Kill all: sessions started from now on trade again (asked first)."""
        if not ask_resume_trading(self, self.engine.kill_reason()):
            return False
        self.engine.rearm_kill_switch()
        self._refresh_status()
        return True

    def show_where(self) -> None:
        """Help → where the logs and the data are."""
        show_where(self, self.engine.home(), self.engine.logs_dir(), self.engine.secrets_location())

    def show_about(self) -> None:
        """Help → About."""
        show_about(self)

    # ------------------------------------------------------------------ refresh
    def refresh(self) -> None:
        """One tick of the 15 Hz refresh (desktop.ui.pacing.WindowPacer)."""
        self.pacer.refresh()

    def _refresh_status(self) -> None:
        """The status bar's totals from every session's latest snapshot (desktop.ui.pacing.WindowPacer)."""
        self.pacer.refresh_status()

    @property
    def closing(self) -> bool:
        """The window began to close: nothing more is refreshed or started."""
        return self._closing

    # ------------------------------------------------------------------ shutdown
    def save_state(self) -> None:
        """Remembers geometry, theme, and the open tabs with their parameters."""
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("theme", self.theme.name)
        self.settings.sync()
        if not self.demo:
            # The tabs are a convenience; never block quitting on them.
            with contextlib.suppress(OSError, WorkspaceError):
                ws = self.workspace()
                if ws.sessions:
                    save_workspace(self._settings_dir / TABS_FILE, ws)
                else:  # nothing open: start empty next time (an empty workspace file is not valid)
                    (self._settings_dir / TABS_FILE).unlink(missing_ok=True)

    def shutdown(self, positions: OnStop = KEEP) -> None:
        """Stops the refresh, saves state, and closes the engine on a worker; the window closes when done."""
        if self._closing:
            return
        self._closing = True
        self.pacer.stop()
        self.save_state()
        self.setEnabled(False)
        self.statusBar().showMessage("Stopping sessions…")
        self.busy.setVisible(True)
        engine = self.engine
        progress = QTimer(self)
        if positions == SQUARE_OFF:
            # Squaring off may wait for exits (a LIVE exit up to 45 s): the status bar says what is still held.
            progress.setInterval(250)
            progress.timeout.connect(self._show_square_off_progress)
            progress.start()
            self._show_square_off_progress()

        def finished(_: object = None) -> None:
            progress.stop()
            self._closed = True
            self.close()

        def failed(exc: BaseException) -> None:
            self.statusBar().showMessage(f"stopping: {exc}")
            finished()

        self.jobs.submit(lambda: engine.close(positions), finished, failed)

    def _show_square_off_progress(self) -> None:
        show_square_off_progress(self.statusBar(), open_position_lines(self.session_tabs()))

    @property
    def closed(self) -> bool:
        """The engine has been closed and the window may go."""
        return self._closed

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        if self._closed:
            self.jobs.wait(5000)
            event.accept()
            return
        event.ignore()
        if self._closing:
            return
        positions = KEEP
        held = open_position_lines(self.session_tabs())
        if held:
            what = "A session" if len(held) == 1 else f"{len(held)} positions: at least one session"
            choice = ask_open_position(self, what, positions=held)
            if choice is None:
                return
            positions = choice
        self.shutdown(positions)
