"""Opening a workspace file: its tabs one per event-loop pass, then its sessions one after another.

Every tab is built before any session starts: a session starting (its threads loading instruments and
history) makes the GUI thread wait for the GIL, and building a tab meanwhile took two to three times as long.
Each tab and each start is a step of the window's StepQueue: one per pass. A session starts once the one
before it has loaded (or START_WAIT_S): six agents warming up at once left the GUI thread a sixth of the GIL.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from desktop.domain import Mode
from desktop.engine import (
    OnStop,
    SessionEntry,
    SessionState,
    StrategyParams,
    Workspace,
    WorkspaceError,
    load_workspace,
)

if TYPE_CHECKING:
    from desktop.ui.main_window import MainWindow
    from desktop.ui.session_tab import SessionTab

START_WAIT_S = 2.0  # a workspace's next session starts once the one before has loaded, or after this


def label_taken_text(user_id: str, label: str) -> str:
    """Why a second tab of an account may not share a label."""
    return (
        f"{user_id} already has a tab labelled {label!r}: each session of an account needs a label of its own"
    )


class WorkspaceStart:
    """The opening of one workspace, as a step of the window's queue: True while tabs remain to open or
    sessions to start. Sessions start only when `start` (LIVE ones only when the file confirmed them)."""

    def __init__(self, window: MainWindow, entries: list[SessionEntry], start: bool) -> None:
        self._window = window
        self._entries = list(entries)
        self._start = start
        self._opened: list[tuple[SessionTab, StrategyParams]] = []  # tabs to start
        self._front: SessionTab | None = None
        self._loading: SessionTab | None = None  # the session started last, while it may still be loading
        self._waiting_since: float | None = None  # when the next start began waiting for it

    def _more(self) -> bool:
        return bool(self._entries) or (self._start and bool(self._opened))

    def step(self) -> bool:
        """Opens the next tab, or else starts the next session once the one before has loaded."""
        window = self._window
        if window.closing:  # the window began to close meanwhile
            return False
        if self._entries:
            entry = self._entries.pop(0)
            try:
                tab = window.open_session(entry.profile, entry.label, entry.params)
            except Exception as e:  # said, and the other tabs still open
                window.statusBar().showMessage(f"{entry.profile} · {entry.label} not opened: {e}", 15_000)
                return self._more()
            if entry.params.mode is not Mode.LIVE or entry.live_confirmed:
                self._opened.append((tab, entry.params))
            self._front = self._front or tab
            window.tabs.setCurrentIndex(window.tabs.indexOf(self._front))  # the first one in front
        elif self._start and self._opened:
            loading = self._loading
            still_loading = loading is not None and loading.session.snapshot().state is SessionState.STARTING
            # Also after the window's other queued work (the previous session's panels, its first
            # drawing): a start is 10-20 ms of the GUI thread's own.
            if still_loading or len(window.steps) > 0:
                self._waiting_since = self._waiting_since or time.monotonic()
                if time.monotonic() - self._waiting_since < START_WAIT_S:
                    return True  # asked again next pass
            self._waiting_since = None
            tab, params = self._opened.pop(0)
            if window.tabs.indexOf(tab) >= 0:  # not closed by the trader in the meantime
                tab.start_with(params)
                self._loading = tab
        return self._more()


def open_workspace(window: MainWindow, path: Path, start: bool = False) -> int:
    """Opens a tab per session of a workspace file; `start` also starts them, LIVE ones only when confirmed in
    the file (`confirm_live = true`; the others open and ask on Start, as any tab).

    The file is read and checked at once (a bad file changes nothing); the tabs then open one per
    event-loop pass, the first one in front, and then the sessions start one per pass: three tabs
    built and started in one pass froze the window for over a second. Returns how many tabs will open.
    """
    strategies = window.strategies
    ws = load_workspace(path, known_strategies=strategies or None, live_needs_confirmation=False)
    known = {p.user_id for p in window.engine.profiles()}
    problems = [
        f"{e.profile} is not an account on this computer: add it with File → Log in / profiles"
        for e in ws.sessions
        if e.profile not in known
    ]
    problems += [
        label_taken_text(e.profile, e.label) for e in ws.sessions if window.label_taken(e.profile, e.label)
    ]
    if problems:
        raise WorkspaceError(list(dict.fromkeys(problems)))
    opening = WorkspaceStart(window, list(ws.sessions), start)
    if opening.step():
        window.steps.add(window, opening.step)
    return len(ws.sessions)


def restore_tabs(window: MainWindow, path: Path) -> list[SessionTab]:
    """Reopens the tabs (not started) of the last run saved at `path`; unknown accounts are skipped."""
    if not path.exists():
        return []
    known = {p.user_id for p in window.engine.profiles()}
    try:
        ws = load_workspace(
            path,
            known_strategies=window.strategies or None,
            live_needs_confirmation=False,
            unique_labels=False,  # an older file may have two alike: the first keeps it, the next get (2), (3)
        )
    except WorkspaceError as e:
        window.statusBar().showMessage(f"last session's tabs not restored: {e.problems[0]}", 10_000)
        return []
    tabs = []
    for entry in (e for e in ws.sessions if e.profile in known):
        label, n = entry.label, 2
        while window.label_taken(entry.profile, label):
            label, n = f"{entry.label} ({n})", n + 1
        tabs.append(window.open_session(entry.profile, label, entry.params))
    return tabs


def workspace_of(tabs: list[SessionTab]) -> Workspace:
    """The open tabs as a workspace (tabs whose form is not valid are left out)."""
    entries = []
    for tab in tabs:
        params = tab.form.params() or tab.session.params
        if params is not None:
            entries.append(SessionEntry(tab.session.user_id, tab.label, params, OnStop.SQUARE_OFF))
    return Workspace(tuple(entries))
