"""How the code finds its parts when frozen (fast unit tests: part of the default suite)."""

from __future__ import annotations

import sys
from pathlib import Path

from desktop.broker.sim.process import sim_command
from desktop.resources import APP_ICON, app_icon_file

ROOT = Path(__file__).resolve().parents[2]


def test_simulator_runs_as_python_module_when_not_frozen() -> None:
    assert sim_command() == [sys.executable, "-m", "desktop.broker.sim"]


def test_frozen_app_starts_simulator_with_its_console_binary(monkeypatch, tmp_path: Path) -> None:
    (tmp_path / "KiteDesk").write_bytes(b"")
    (tmp_path / "kitedesk").write_bytes(b"")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "KiteDesk"))
    assert sim_command() == [str(tmp_path / "kitedesk"), "sim"]


def test_frozen_app_on_case_insensitive_systems_uses_kitedesk_cli(monkeypatch, tmp_path: Path) -> None:
    (tmp_path / "KiteDesk.exe").write_bytes(b"")
    (tmp_path / "kitedesk-cli.exe").write_bytes(b"")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "KiteDesk.exe"))
    assert sim_command() == [str(tmp_path / "kitedesk-cli.exe"), "sim"]


def test_window_icon_comes_from_the_checkouts_resources() -> None:
    assert Path(app_icon_file()) == ROOT / "resources" / "icons" / APP_ICON


def test_frozen_window_icon_comes_from_the_bundle(monkeypatch, tmp_path: Path) -> None:
    icons = tmp_path / "resources" / "icons"
    icons.mkdir(parents=True)
    (icons / APP_ICON).write_bytes(b"png")
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert Path(app_icon_file()) == icons / APP_ICON


def test_icons_are_committed_in_every_size() -> None:
    sizes = {int(p.stem.rsplit("-", 1)[1]) for p in (ROOT / "resources" / "icons").glob("kitedesk-*.png")}
    assert sizes == {16, 24, 32, 48, 64, 128, 256, 512}
    assert (ROOT / "resources" / "kitedesk.ico").read_bytes()[:4] == b"\0\0\1\0"
    assert (ROOT / "resources" / "kitedesk.icns").read_bytes()[:4] == b"icns"
