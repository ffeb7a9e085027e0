"""The sync in the window, against a real PostgreSQL and real stores: File → Sync settings… (test, enable,
a wrong password in words), the status bar's `sync:` label, and the Trades page's "All computers" with the
trades another computer of the account made."""

from __future__ import annotations

import threading
from pathlib import Path

from desktop.broker.profiles import MemorySecretStore
from desktop.engine import Engine, ProfileInfo
from desktop.sync.central import add_account
from desktop.sync.config import SyncConfig
from desktop.ui.main_window import MainWindow
from desktop.ui.sync_dialog import SyncDialog, show_sync_settings
from desktop.ui.trades_page import THIS_COMPUTER, TradesPage
from tests.sync.conftest import T0, Central, MemoryKeyring, trade

BROKER = "UK9394"


def _engine(home: Path) -> Engine:
    engine = Engine(home, secrets=MemorySecretStore(), clock=lambda: T0)
    engine.save_profile(ProfileInfo(BROKER, "kitedemo", "Trader UK9394"), None)
    return engine


def _sync_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("sync-")]


def test_sync_settings_status_bar_and_all_computers(
    qtbot, central: Central, tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    url = add_account(central.admin_url, BROKER)
    password = url.split("@")[0].rsplit(":", 1)[1]

    # Computer 3 of the account trades and syncs (enabled through the engine, as the dialog does).
    other = _engine(tmp_path / "computer3")
    try:
        trade(other.store, BROKER, label="Computer 3")
        other.start_sync()
        assert other.sync_statuses() == []  # not enabled yet: nothing runs
        assert other.enable_sync(BROKER, url).startswith(f"sync of {BROKER} is on")
        qtbot.waitUntil(lambda: [s.text for s in other.sync_statuses()] == ["synced"], timeout=20_000)
    finally:
        other.close()
    assert not _sync_threads()  # close() stopped the sync
    memory_keyring.passwords.clear()  # the next home stands for another computer: a keyring of its own

    engine = _engine(tmp_path / "computer1")
    engine.start_sync()
    window = MainWindow(engine)
    qtbot.addWidget(window)
    try:
        window._refresh_status()
        assert window.sync_label.text() == "sync: off"

        dialog = show_sync_settings(window)
        assert isinstance(dialog, SyncDialog)
        qtbot.waitUntil(lambda: not dialog.busy and dialog.state_label.text() == "off (never set up)")

        # A wrong password: said in words, nothing saved, nothing in the keyring, the password not shown.
        bad = url.replace(f":{password}@", ":not-the-password@")
        dialog.url_edit.setText(bad)
        dialog.enable_button.click()
        qtbot.waitUntil(lambda: not dialog.busy, timeout=15_000)
        assert "refused the password" in dialog.result_label.text()
        assert "not-the-password" not in dialog.result_label.text()
        assert SyncConfig(engine.home()).get(BROKER) is None
        assert memory_keyring.passwords == {}

        # The URL without its password, the password in its own masked field: test, then enable.
        dialog.url_edit.setText(url.replace(f":{password}@", "@"))
        dialog.password_edit.setText(password)
        dialog.test_button.click()
        qtbot.waitUntil(lambda: not dialog.busy, timeout=15_000)
        assert dialog.result_label.text().startswith("connected to postgresql://")
        assert SyncConfig(engine.home()).get(BROKER) is None  # testing changes nothing
        dialog.enable_button.click()
        qtbot.waitUntil(lambda: not dialog.busy and dialog.state_label.text() == "on", timeout=15_000)
        assert password not in dialog.url_edit.text()
        assert dialog.password_edit.text() == ""
        assert list(memory_keyring.passwords.values()) == [password]
        assert password not in (engine.home() / "sync.toml").read_text()

        # The status bar: the account's sync as words, the account named on hover.
        def label_says_synced() -> bool:
            window._refresh_status()
            return window.sync_label.text() == "sync: synced"

        qtbot.waitUntil(label_says_synced, timeout=20_000)
        assert window.sync_label.toolTip() == f"{BROKER}: synced"
        assert all(t.name != "MainThread" for t in _sync_threads())

        # This computer trades too; the Trades page shows the session's, or the account's of every computer.
        trade(engine.store, BROKER, label="Computer 1")
        tab = window.open_session(BROKER, "Computer 1")
        qtbot.waitUntil(lambda: tab.findChild(TradesPage) is not None, timeout=5_000)
        page = tab.findChild(TradesPage)
        assert page is not None
        page.all_computers.setChecked(True)
        assert page.stack.currentIndex() == 1
        model = page.all_model
        assert model is not None
        titles = [model.column_title(c) for c in range(model.columnCount())]
        assert "Device" in titles
        device = titles.index("Device")

        def devices() -> list[str]:
            page.reload()
            return sorted(model.data(model.index(r, device)) for r in range(model.rowCount()))

        theirs = f"computer {other_device(tmp_path)[:8]}"
        qtbot.waitUntil(lambda: devices() == [theirs, theirs, THIS_COMPUTER, THIS_COMPUTER], timeout=20_000)
        page.all_computers.setChecked(False)
        assert page.stack.currentIndex() == 0
        window._refresh_status()
        assert window.sync_label.text() == "sync: synced"  # this computer's new trade went up too

        # Disable: the thread stops, the password is forgotten, the status bar says off.
        dialog.disable_button.click()
        qtbot.waitUntil(lambda: not dialog.busy and dialog.state_label.text() == "off", timeout=15_000)
        assert dialog.result_label.text().startswith(f"sync of {BROKER} is off")
        assert engine.sync_statuses() == []
        assert not _sync_threads()
        assert memory_keyring.passwords == {}
        window._refresh_status()
        assert window.sync_label.text() == "sync: off"
    finally:
        window.close()
        qtbot.waitUntil(lambda: window.closed, timeout=15_000)
    assert not _sync_threads()


def other_device(tmp_path: Path) -> str:
    """Computer 3's device id (its store is closed: read it back)."""
    from desktop.store.store import Store

    with Store.open(tmp_path / "computer3", create=False) as store:
        return store.device_id
