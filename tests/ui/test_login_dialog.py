"""The login dialog: profiles with the secret going to the engine (keyring), browser or pasted login, reasons."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtGui import QDesktopServices, QGuiApplication

from desktop.engine import LoginFailed
from desktop.ui.login_dialog import NEW_PROFILE, LoginDialog
from desktop.ui.workers import JobRunner
from tests.ui.fakes import FakeEngine


@pytest.fixture
def dialog(qtbot, tmp_path):
    engine = FakeEngine(tmp_path)
    jobs = JobRunner()
    d = LoginDialog(engine, jobs, "UK1234")
    qtbot.addWidget(d)
    yield d, engine, jobs
    jobs.wait()


def test_pasted_redirect_url_logs_in_on_a_worker_and_shows_the_name(qtbot, dialog):
    d, engine, jobs = dialog
    got: list[tuple[str, str]] = []
    d.sig_logged_in.connect(lambda uid, name: got.append((uid, name)))
    d.pasted.setText("http://127.0.0.1:5000/kite/callback?request_token=abc&action=login&status=success")
    d.use_pasted()
    assert d.working and d.progress.isVisibleTo(d)
    qtbot.waitUntil(lambda: not d.working, timeout=3000)
    assert got == [("UK1234", "Demo B")]
    assert d.status.text() == "Logged in: Demo B (UK1234)"
    assert ("complete_login", ("UK1234", d_pasted_url())) in engine.calls
    assert engine.call_threads["complete_login"] != threading.current_thread().name


def d_pasted_url() -> str:
    return "http://127.0.0.1:5000/kite/callback?request_token=abc&action=login&status=success"


def test_failed_login_shows_the_plain_reason(qtbot, dialog):
    d, engine, _ = dialog
    engine.login_error = LoginFailed("the request token has expired: log in again")
    d.pasted.setText("abc")
    d.use_pasted()
    qtbot.waitUntil(lambda: not d.working, timeout=3000)
    assert d.status.text() == "Login failed: the request token has expired: log in again"
    assert "Traceback" not in d.status.text()
    assert d.login_button.isEnabled()


def test_browser_login_opens_kite_and_waits_for_the_redirect_off_the_gui_thread(qtbot, dialog, monkeypatch):
    d, engine, _ = dialog
    opened: list[str] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toString()) or True)
    d.login_with_browser()
    qtbot.waitUntil(lambda: not d.working, timeout=3000)
    assert opened and opened[0].startswith("https://kite.zerodha.com/connect/login") and "key_b" in opened[0]
    assert engine.call_threads["wait_for_redirect"] != threading.current_thread().name
    assert ("complete_login", ("UK1234", "tok123")) in engine.calls
    assert "Logged in" in d.status.text()


def test_new_profile_secret_goes_to_the_engine_and_is_not_kept_in_the_form(qtbot, dialog):
    d, engine, _ = dialog
    d.profile_box.setCurrentIndex(d.profile_box.findText(NEW_PROFILE))
    d.user_id.setText("AB1234")
    d.api_key.setText("kkey")
    d.api_secret.setText("s3cret")
    assert d.save_profile()
    assert engine.secrets["AB1234"] == "s3cret"
    saved = [c[1] for c in engine.calls if c[0] == "save_profile"][-1]
    assert saved.user_id == "AB1234" and "s3cret" not in repr(saved)
    assert d.api_secret.text() == ""
    assert d.profile_box.currentData() == "AB1234"
    assert "stored" in d.api_secret.placeholderText()


def test_profile_without_secret_is_refused_in_words(qtbot, dialog):
    d, engine, _ = dialog
    d.profile_box.setCurrentIndex(d.profile_box.findText(NEW_PROFILE))
    d.user_id.setText("AB 12!")
    assert not d.save_profile()
    assert d.status.text().startswith("user id must be your Kite user id")
    d.user_id.setText("AB1234")
    d.api_key.setText("kkey")
    assert not d.save_profile()
    assert d.status.text().startswith("API secret is missing")
    assert not [c for c in engine.calls if c[0] == "save_profile"]


def test_the_login_url_and_its_copy_button_are_there_from_the_first_second(qtbot, dialog):
    d, _, _ = dialog
    assert d.login_url.text() == "https://kite.zerodha.com/connect/login?v=3&api_key=key_b"
    assert d.copy_url_button.isEnabled()
    d.copy_url_button.click()
    assert QGuiApplication.clipboard().text() == d.login_url.text()
    d.profile_box.setCurrentIndex(d.profile_box.findText(NEW_PROFILE))
    assert d.login_url.text() == "" and not d.copy_url_button.isEnabled()


def test_a_pasted_redirect_works_while_the_browser_login_is_still_awaited(qtbot, dialog, monkeypatch):
    d, engine, jobs = dialog
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: True)
    release = threading.Event()

    def slow_redirect(user_id: str, timeout: float = 180.0) -> str:
        release.wait(5)  # no browser on this machine: nothing comes back for minutes
        raise TimeoutError("timed out")

    engine.wait_for_redirect = slow_redirect  # type: ignore[method-assign]
    got: list[tuple[str, str]] = []
    d.sig_logged_in.connect(lambda uid, name: got.append((uid, name)))
    d.login_with_browser()
    assert d.working and d.pasted.isEnabled() and d.use_pasted_button.isEnabled()
    assert not d.login_button.isEnabled()
    d.pasted.setText(d_pasted_url())
    d.use_pasted()
    qtbot.waitUntil(lambda: bool(got), timeout=3000)
    assert got == [("UK1234", "Demo B")] and d.status.text() == "Logged in: Demo B (UK1234)"
    release.set()  # the browser's wait gives up later: its failure is not shown over the login
    qtbot.wait(200)
    assert d.status.text() == "Logged in: Demo B (UK1234)" and not d.working
    assert d.login_button.isEnabled()
