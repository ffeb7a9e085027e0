"""The status bar's `sync:` words: one summary for all accounts, each account's line on hover."""

from __future__ import annotations

import time

from desktop.engine.sync_facade import SyncAccountStatus
from desktop.sync.worker import SyncStatus
from desktop.ui.sync_status import MAX_CHARS, OFF_TIP, show_sync, sync_summary
from desktop.ui.theme import DARK


def _status(broker: str, state: str, **kw: object) -> SyncAccountStatus:
    s = SyncStatus(broker, state, **kw)  # type: ignore[arg-type]
    return SyncAccountStatus(broker, s.state, s.text, s.pending)


def test_no_account_syncs_says_off():
    assert sync_summary([]) == ("sync: off", OFF_TIP)


def test_synced_pending_and_per_account_tooltip():
    text, tip = sync_summary([_status("UK9394", "synced"), _status("UK1234", "synced")])
    assert text == "sync: synced"
    assert tip == "UK9394: synced\nUK1234: synced"
    text, tip = sync_summary(
        [_status("UK9394", "pending", pending=3), _status("UK1234", "pending", pending=4)]
    )
    assert text == "sync: 7 pending"
    assert tip == "UK9394: 3 pending\nUK1234: 4 pending"


def test_offline_names_the_account_and_its_retry():
    offline = _status("UK1234", "offline", pending=5, retry_at=time.monotonic() + 30)
    text, tip = sync_summary([_status("UK9394", "synced"), offline])
    assert text == "sync: UK1234 offline — retry in 30 s"
    assert tip == "UK9394: synced\nUK1234: offline — retry in 30 s"
    assert sync_summary([offline])[0] == "sync: offline — retry in 30 s"


def test_an_error_speaks_first_in_words_and_is_red(qtbot):
    from PySide6.QtWidgets import QLabel

    words = "the central database refused the password (wrong, or the account's access was revoked)"
    error = _status("UK9394", "error", error=words)
    text, _ = sync_summary([_status("UK1234", "offline", retry_at=time.monotonic() + 5), error])
    assert text == f"sync: UK9394 {words}"
    label = QLabel()
    qtbot.addWidget(label)
    show_sync(label, [error], DARK)
    assert label.text().startswith("sync: the central database refused the password")
    assert len(label.text()) <= MAX_CHARS
    assert label.toolTip() == f"UK9394: {words}"
    assert DARK.loss in label.styleSheet()
    show_sync(label, [_status("UK9394", "synced")], DARK)
    assert label.text() == "sync: synced"
    assert label.styleSheet() == ""
