"""`kitedesk --demo` end to end: the real Engine and its embedded simulator, three sessions in one window."""

from __future__ import annotations

import pytest

from desktop.broker.profiles import MemorySecretStore
from desktop.cli.demo import window_demo
from desktop.cli.main import window_parser
from desktop.domain import Mode
from desktop.engine import Engine, SessionState
from desktop.ui.launch import start_demo
from desktop.ui.main_window import MainWindow
from tests.ui.qtkit import answer_next_message_box

SPEED = 120.0


@pytest.mark.slow
def test_demo_runs_three_isolated_sessions_that_trade_and_stop_cleanly(qtbot, qtlog, tmp_path):
    engine = Engine(tmp_path, secrets=MemorySecretStore())
    window = MainWindow(engine, demo=True)
    qtbot.addWidget(window)
    window.show()
    try:
        start_demo(window, window_demo(SPEED, 1), SPEED)
        qtbot.waitUntil(lambda: len(window.session_tabs()) == 3, timeout=20_000)
        tabs = window.session_tabs()
        assert [(t.session.user_id, t.label) for t in tabs] == [
            ("UK9394", "Computer 1"),
            ("UK1234", "Computer 2"),
            ("UK9394", "Computer 3"),
        ]
        assert [t.badge.text() for t in tabs] == ["PAPER", "PAPER", "LIVE"]
        assert len({t.session.key for t in tabs}) == 3
        assert window.banner.isVisible()

        qtbot.waitUntil(
            lambda: all(t.session.snapshot().state is SessionState.RUNNING for t in tabs), timeout=20_000
        )
        for i, tab in enumerate(tabs):  # only the visible tab refreshes: visit each one
            window.tabs.setCurrentIndex(i)
            qtbot.waitUntil(
                lambda tab=tab: (
                    all(p.ready and p.chart.candles.bars for p in tab._segment_panels.values())
                    and len(tab._segment_panels) == 2
                ),
                timeout=10_000,
            )
        qtbot.waitUntil(lambda: any(t.session.snapshot().fills for t in tabs), timeout=40_000)

        window._refresh_status()
        assert window.running_label.text() == "3 running / 3"
        for tab in tabs:
            snap = tab.session.snapshot()
            assert all(o.key == tab.session.key for o in snap.orders)  # each tab sees only its own orders
            assert all(f.key == tab.session.key for f in snap.fills)
            assert snap.mode is (Mode.LIVE if tab.label == "Computer 3" else Mode.PAPER)

        traded = next(t for t in tabs if t.session.snapshot().fills)
        window.tabs.setCurrentWidget(traded)
        qtbot.waitUntil(lambda: traded.trades_model.rowCount() > 0, timeout=5000)
        dialog = window.export_trades()
        out = tmp_path / "demo.csv"
        dialog.path.setText(str(out))
        dialog.whole_account.setChecked(True)
        dialog.export()
        qtbot.waitUntil(lambda: dialog.exported is not None, timeout=10_000)
        assert dialog.exported >= 1 and out.read_text(encoding="utf-8").count("\n") >= 2
        dialog.close()

        # Closing one tab stops only that session; the other two keep trading.
        second = tabs[1]
        answer_next_message_box("Square off", [])  # only asked if it holds a position
        assert window.close_tab(window.tabs.indexOf(second))
        qtbot.waitUntil(lambda: len(engine.sessions()) == 2, timeout=20_000)
        assert second.session.key not in {s.key for s in engine.sessions()}
        before = [t.session.snapshot().market_time for t in (tabs[0], tabs[2])]
        qtbot.waitUntil(
            lambda: all(
                t.session.snapshot().market_time != b for t, b in zip((tabs[0], tabs[2]), before, strict=True)
            ),
            timeout=10_000,
        )
        assert all(t.session.snapshot().state is SessionState.RUNNING for t in (tabs[0], tabs[2]))

    finally:
        answer_next_message_box("Keep under stop loss", [])  # only asked if a position is still open
        window.close()
        qtbot.waitUntil(lambda: window.closed, timeout=30_000)
    assert engine.simulator is None and engine.sessions() == []
    # Threads were stopped in order: Qt said nothing about threads or objects destroyed while running.
    noisy = [r.message for r in qtlog.records if "propagateSizeHints" not in r.message]
    assert not [m for m in noisy if "QThread" in m or "Destroyed" in m or "thread" in m.lower()], noisy


def test_command_line_defaults_to_an_accelerated_demo():
    args = window_parser().parse_args(["--demo"])
    assert args.demo and args.speed > 1
    args = window_parser().parse_args(["--demo", "--speed", "10", "--home", "/tmp/x"])
    assert args.speed == 10 and args.home == "/tmp/x"


@pytest.mark.slow
def test_expired_login_shows_the_banner_and_the_dialog_resumes_only_that_account(qtbot, tmp_path):
    import requests

    engine = Engine(tmp_path, secrets=MemorySecretStore())
    window = MainWindow(engine, demo=True)
    qtbot.addWidget(window)
    window.show()
    start_demo(window, window_demo(SPEED, 1), SPEED)
    try:
        qtbot.waitUntil(lambda: len(window.session_tabs()) == 3, timeout=20_000)
        tabs = window.session_tabs()
        qtbot.waitUntil(
            lambda: all(t.session.snapshot().state is SessionState.RUNNING for t in tabs), timeout=20_000
        )
        engine.simulator.inject_fault({"kind": "expire_token", "api_key": "UK1234"})
        second = tabs[1]
        qtbot.waitUntil(lambda: second.login_banner.isVisibleTo(second), timeout=15_000)
        assert [t.login_banner.isVisibleTo(t) for t in tabs] == [False, True, False]  # only UK1234's tab

        window.tabs.setCurrentWidget(second)
        second.login_button.click()  # opens the login dialog on UK1234
        dialog = window._login_dialog
        assert dialog is not None and dialog.user_id.text() == "UK1234"
        # The simulated Kite login page redirects at once; paste the address it redirects to.
        redirect = requests.get(engine.login_url("UK1234"), allow_redirects=False, timeout=5).headers[
            "Location"
        ]
        dialog.pasted.setText(redirect)
        dialog.use_pasted()
        qtbot.waitUntil(lambda: not dialog.working, timeout=15_000)
        assert dialog.status.text().startswith("Logged in:"), dialog.status.text()
        qtbot.waitUntil(lambda: second.session.snapshot().state is SessionState.RUNNING, timeout=15_000)
        window.refresh()
        assert not second.login_banner.isVisibleTo(second)
        dialog.close()
    finally:
        answer_next_message_box("Keep under stop loss", [])
        window.close()
        qtbot.waitUntil(lambda: window.closed, timeout=30_000)
