"""The main window: a tab per session, menus, status bar, the 15 Hz refresh, and state kept between runs."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.domain import Mode
from desktop.engine import (
    OnStop,
    SessionEntry,
    SessionState,
    StrategyParams,
    Workspace,
    WorkspaceError,
    available_strategies,
    load_workspace,
    save_workspace,
)
from desktop.ui.day_view import display_state, state_counts
from desktop.ui.dialogs import ExportDialog, NewSessionDialog
from desktop.ui.login_dialog import LoginDialog
from desktop.ui.menus import build_menus, show_about, show_where
from desktop.ui.notify import Notifier, session_name
from desktop.ui.session_tab import KEEP, SQUARE_OFF, SessionTab, ask_open_position, open_position_lines
from desktop.ui.settings_dialog import SettingsDialog, default_params, recording_choices, retention_days
from desktop.ui.steps import StepQueue
from desktop.ui.tables import fmt_rupees
from desktop.ui.theme import SIMULATION_BANNER_STYLE, THEMES, Theme, apply_theme, pnl_color
from desktop.ui.workers import JobRunner

REFRESH_HZ = 15
STATUS_EVERY = 4  # status-bar totals at REFRESH_HZ / 4
BACKGROUND_EVERY = 3  # one background tab catches up its charts and tables every 3rd tick (5 Hz in all)
FRAME_BUDGET_MS = 6.0  # a tick whose front-tab refresh took longer leaves the background for the next one
SETTINGS_FILE = "kitedesk-ui.ini"
TABS_FILE = "open-tabs.toml"
START_WAIT_S = 2.0  # a workspace's next session starts once the one before has loaded, or after this


class MainWindow(QMainWindow):
    """KiteDesk's window. It shows sessions and forwards commands; the engine owns all trading state."""

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
        self._strategies = self._known_strategies()
        self._closing = False
        self._closed = False
        self._tick = 0
        self._background_turn = 0
        self._background_owed = False
        self._login_dialog: LoginDialog | None = None
        self.setWindowTitle("KiteDesk — simulation" if demo else "KiteDesk")

        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        self.banner = QLabel("SIMULATION — demo accounts on the built-in Kite simulator; no real orders")
        self.banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.banner.setStyleSheet(SIMULATION_BANNER_STYLE)
        self.banner.setVisible(demo)
        lay.addWidget(self.banner)
        self.tabs = QTabWidget()
        self.tabs.setTabsClosable(True)
        self.tabs.setMovable(True)
        self.tabs.setDocumentMode(True)
        self.tabs.tabCloseRequested.connect(self.close_tab)
        self.tabs.tabBarDoubleClicked.connect(self.rename_tab)
        self.tabs.currentChanged.connect(self._front_tab_changed)
        plus = QToolButton()
        plus.setText("+")
        plus.setToolTip("New session (Ctrl+T)")
        plus.clicked.connect(self.new_session)
        self.tabs.setCornerWidget(plus, Qt.Corner.TopRightCorner)
        self.empty_hint = QLabel("No session open. File → New session (Ctrl+T) to trade an account.")
        self.empty_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(self.empty_hint)
        lay.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        build_menus(self)
        self._build_status_bar()
        self.notifier = Notifier(self.settings, self, self.theme)
        self.jobs.sig_busy_changed.connect(self._show_busy)

        self.timer = QTimer(self)
        self.timer.setInterval(1000 // REFRESH_HZ)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()
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

    # ------------------------------------------------------------------ menus and status bar
    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.market_label = QLabel("market —")
        self.running_label = QLabel("0 running")
        self.pnl_label = QLabel("Day P&L —")
        self.sync_label = QLabel("sync: off")
        self.kill_label = QLabel()  # shown while Kill all holds every session halted
        self.kill_label.setVisible(False)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setMaximumWidth(120)
        self.busy.setVisible(False)
        for w in (self.kill_label, self.market_label, self.running_label, self.pnl_label, self.sync_label):
            sb.addPermanentWidget(w)
        sb.addWidget(self.busy)

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
        # Only the tab in front draws charts and tables; the others keep their headers current.
        front = self.current_tab()
        for tab in self.session_tabs():
            if tab is not front:
                tab.drawing = False
        if front is not None and not front.drawing:
            front.stagger_chart_paints()

            # It starts drawing in a step of the window's queue, not in the sweep that lays out and paints
            # the page it comes forward with (a refresh due in that sweep added its charts and tables).
            self.steps.add(front, front.start_drawing)
        # No refresh here: the tab kept up in the background, so this frame only paints it; the next
        # tick (within 1/15 s) brings it fully current.

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
            session, self.theme, self.jobs, self._strategies, steps=self.steps, settings=self.settings
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
        if self._label_taken(user_id, label):
            QMessageBox.warning(self, "New session", _label_taken_text(user_id, label))
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
        if self._label_taken(tab.session.user_id, label):
            QMessageBox.warning(self, "Rename session", _label_taken_text(tab.session.user_id, label))
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

    def _label_taken(self, user_id: str, label: str) -> bool:
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
        accounts = [p.user_id for p in self.engine.profiles()]
        dialog = SettingsDialog(
            self.settings, self.theme.name, Path(self.engine.home()), self._strategies, self,
            recording={a: self.engine.recording(a) for a in accounts},
            disk_used=self.engine.recordings_disk_usage(),
        )  # fmt: skip
        dialog.accepted.connect(lambda: self.set_theme(dialog.theme_name()))
        dialog.accepted.connect(lambda: self.apply_recording(dialog.recording()))
        dialog.setModal(True)
        dialog.show()
        return dialog

    def apply_recording(self, choices: dict[str, bool] | None = None) -> None:
        """Records the market data of the accounts chosen in the settings (or `choices`), kept for the chosen days."""
        accounts = [p.user_id for p in self.engine.profiles()]
        choices = choices if choices is not None else recording_choices(self.settings, accounts)
        days = retention_days(self.settings)
        for account, on in choices.items():
            self.engine.set_recording(account, on, days)

    def export_trades(self) -> ExportDialog:
        """Opens the CSV export dialog for the visible session's account."""
        tab = self.current_tab()
        accounts = [p.user_id for p in self.engine.profiles()]
        today = self.engine.market_time().date()
        mode = Mode.LIVE
        if tab is not None:
            snap = tab.snapshot()
            mode = snap.mode if snap is not None and snap.mode else Mode(tab.form.mode_box.currentText())
        dialog = ExportDialog(
            self.engine,
            self.jobs,
            accounts,
            tab.session.user_id if tab else None,
            tab.label if tab else None,
            today,
            mode,
            self,
        )
        dialog.path.setText(str(Path.home() / f"kitedesk-trades-{today:%Y%m%d}.csv"))
        dialog.show()
        return dialog

    def workspace(self) -> Workspace:
        """The open tabs as a workspace (tabs whose form is not valid are left out)."""
        entries = []
        for tab in self.session_tabs():
            params = tab.form.params() or tab.session.params
            if params is not None:
                entries.append(SessionEntry(tab.session.user_id, tab.label, params, OnStop.SQUARE_OFF))
        return Workspace(tuple(entries))

    def open_workspace(self, path: Path, start: bool = False) -> int:
        """Opens a tab per session of a workspace file; `start` also starts them, LIVE ones only when confirmed in
        the file (`confirm_live = true`; the others open and ask on Start, as any tab).

        The file is read and checked at once (a bad file changes nothing); the tabs then open one per
        event-loop pass, the first one in front, and then the sessions start one per pass: three tabs
        built and started in one pass froze the window for over a second. Returns how many tabs will open.
        """
        ws = load_workspace(path, known_strategies=self._strategies or None, live_needs_confirmation=False)
        known = {p.user_id for p in self.engine.profiles()}
        problems = [
            f"{e.profile} is not an account on this computer: add it with File → Log in / profiles"
            for e in ws.sessions
            if e.profile not in known
        ]
        problems += [
            _label_taken_text(e.profile, e.label)
            for e in ws.sessions
            if self._label_taken(e.profile, e.label)
        ]
        if problems:
            raise WorkspaceError(list(dict.fromkeys(problems)))
        entries = list(ws.sessions)
        opened: list[tuple[SessionTab, StrategyParams]] = []  # tabs to start
        front: SessionTab | None = None
        loading: SessionTab | None = None  # the session started last, while it may still be loading
        waiting_since: float | None = None  # when the next start began waiting for it

        # Every tab is built before any session starts: a session starting (its threads loading instruments
        # and history) makes the GUI thread wait for the GIL, and building a tab meanwhile took two to three
        # times as long. Each tab and each start is a step of the window's StepQueue: one per pass. A session
        # starts once the one before it has loaded (or START_WAIT_S): six agents warming up at once left
        # the GUI thread a sixth of the GIL.
        def step() -> bool:
            nonlocal front, loading, waiting_since
            if self._closing:  # the window began to close meanwhile
                return False
            if entries:
                entry = entries.pop(0)
                try:
                    tab = self.open_session(entry.profile, entry.label, entry.params)
                except Exception as e:  # said, and the other tabs still open
                    self.statusBar().showMessage(f"{entry.profile} · {entry.label} not opened: {e}", 15_000)
                    return bool(entries) or (start and bool(opened))
                if entry.params.mode is not Mode.LIVE or entry.live_confirmed:
                    opened.append((tab, entry.params))
                front = front or tab
                self.tabs.setCurrentIndex(self.tabs.indexOf(front))  # the first one in front
            elif start and opened:
                still_loading = (
                    loading is not None and loading.session.snapshot().state is SessionState.STARTING
                )
                # Also after the window's other queued work (the previous session's panels, its first
                # drawing): a start is 10-20 ms of the GUI thread's own.
                if still_loading or len(self.steps) > 0:
                    waiting_since = waiting_since or time.monotonic()
                    if time.monotonic() - waiting_since < START_WAIT_S:
                        return True  # asked again next pass
                waiting_since = None
                tab, params = opened.pop(0)
                if self.tabs.indexOf(tab) >= 0:  # not closed by the trader in the meantime
                    tab.start_with(params)
                    loading = tab
            return bool(entries) or (start and bool(opened))

        if step():
            self.steps.add(self, step)
        return len(ws.sessions)

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
        path = self._settings_dir / TABS_FILE
        if not path.exists():
            return []
        known = {p.user_id for p in self.engine.profiles()}
        try:
            ws = load_workspace(
                path,
                known_strategies=self._strategies or None,
                live_needs_confirmation=False,
                unique_labels=False,  # an older file may have two alike: the first keeps it, the next get (2), (3)
            )
        except WorkspaceError as e:
            self.statusBar().showMessage(f"last session's tabs not restored: {e.problems[0]}", 10_000)
            return []
        tabs = []
        for entry in (e for e in ws.sessions if e.profile in known):
            label, n = entry.label, 2
            while self._label_taken(entry.profile, label):
                label, n = f"{entry.label} ({n})", n + 1
            tabs.append(self.open_session(entry.profile, label, entry.params))
        return tabs

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
        reason = self.engine.kill_reason()
        if reason is None:
            QMessageBox.information(
                self, "Resume trading", "The Kill all switch is not on: sessions trade as usual."
            )
            return False
        answer = QMessageBox.question(
            self,
            "Resume trading",
            f"Every session was halted by Kill all ({reason}), and any session started since comes up halted.\n\n"
            "Let sessions started from now on trade again? The halted ones stay halted until you restart each.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer != QMessageBox.StandardButton.Yes:
            return False
        self.engine.rearm_kill_switch()
        self._refresh_status()
        return True

    def show_where(self) -> None:
        """Help → where the logs and the data are."""
        show_where(self, self.engine.home(), self.engine.logs_dir())

    def show_about(self) -> None:
        """Help → About."""
        show_about(self)

    # ------------------------------------------------------------------ refresh
    def refresh(self) -> None:
        """The 15 Hz pull: the visible tab shows its session's latest snapshot; totals a few times a second.

        Background tabs keep their charts and tables current in small steps (one tab per few ticks, on a
        tick the front tab left mostly free), so bringing one forward is a paint, not a catch-up.
        """
        if self._closing:
            return
        tab = self.current_tab()
        t0 = time.perf_counter()
        if tab is not None:
            tab.refresh()
        spent_ms = (time.perf_counter() - t0) * 1000
        self._tick += 1
        if self._tick % BACKGROUND_EVERY == 0:
            self._background_owed = True
        if self._background_owed and spent_ms < FRAME_BUDGET_MS:
            self._background_owed = False
            self._catch_up_one_background_tab(tab)
        if self._tick % STATUS_EVERY == 0 or tab is None:
            for other in self.session_tabs():
                if other is not tab:
                    other.flush_logs()  # hidden tabs: their log lines in fewer, larger batches
            self._refresh_status()

    def _catch_up_one_background_tab(self, front: SessionTab | None) -> None:
        others = [t for t in self.session_tabs() if t is not front]
        if not others:
            return
        self._background_turn = (self._background_turn + 1) % len(others)
        other = others[self._background_turn]
        # A step of its own: the front tab's refresh may have been cheap while the charts' updates it
        # queued (one per pass) were not, and a background tab's catch-up ran in the same pass as them.
        self.steps.add(other, other.catch_up_now)

    def _refresh_status(self) -> None:
        words: list[str] = []  # each session's state word, as its header and segments show it
        pnl: dict[Mode, Decimal] = {}  # real money and paper are never added up
        try:
            now: datetime | None = self.engine.market_time()
        except Exception:
            now = None
        for tab in self.session_tabs():
            snap = tab.session.snapshot()
            tab.market_now = now  # the tab's header and segments say "market closed" by the same clock
            words.append(display_state(snap, now))
            self.notifier.observe(tab.session.key, snap, session_name(tab.session.user_id, tab.label))
            if snap.mode is not None:  # None: never started, nothing traded
                pnl[snap.mode] = pnl.get(snap.mode, Decimal(0)) + snap.day_pnl
        self.market_label.setText(f"market {now:%a %d %b %H:%M:%S}" if now else "market —")
        self.running_label.setText(state_counts(words))
        figures = " · ".join(
            f"{mode.value} <span style='color:{pnl_color(self.theme, pnl[mode])}'><b>{fmt_rupees(pnl[mode])}</b></span>"
            for mode in (Mode.LIVE, Mode.PAPER)
            if mode in pnl
        )
        self.pnl_label.setText(f"Day P&L {figures or '—'}")
        self.notifier.show_pnl(pnl)
        reason = self.engine.kill_reason()
        self.kill_label.setVisible(reason is not None)
        if reason is not None:
            self.kill_label.setText(
                f"<span style='color:{self.theme.loss}'><b>ALL HALTED</b></span> by Kill all · "
                "Trading → Resume trading"
            )
            self.kill_label.setToolTip(f"Every session was halted: {reason}")

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

    def shutdown(self, positions: str = KEEP) -> None:
        """Stops the refresh, saves state, and closes the engine on a worker; the window closes when done."""
        if self._closing:
            return
        self._closing = True
        self.timer.stop()
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
        held = open_position_lines(self.session_tabs())
        text = (
            f"Squaring off: {len(held)} position{'s' if len(held) != 1 else ''} still held — "
            + "; ".join(held)
            if held
            else "Squared off: every position is closed; stopping sessions…"
        )
        self.statusBar().showMessage(text)

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


def _label_taken_text(user_id: str, label: str) -> str:
    return (
        f"{user_id} already has a tab labelled {label!r}: each session of an account needs a label of its own"
    )
