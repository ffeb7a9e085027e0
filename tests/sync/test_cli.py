"""`kitedesk sync ...` and `kitedesk export --all-devices` end to end, as a trader and an admin type them."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from desktop.cli.main import main as kitedesk
from desktop.store.store import Store
from desktop.sync.config import SyncConfig
from tests.sync.conftest import Central, MemoryKeyring, trade

pytestmark = pytest.mark.postgres


def _url_printed(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("postgresql://"))


def test_admin_sets_up_two_computers_sync_and_export_all_devices(
    central: Central, tmp_path: Path, memory_keyring: MemoryKeyring, capsys: pytest.CaptureFixture[str]
) -> None:
    admin_password = central.admin_url.split(":")[2].split("@")[0]
    assert kitedesk(["sync", "init-central", "--admin-url", central.admin_url]) == 0
    assert kitedesk(["sync", "add-account", "--admin-url", central.admin_url, "--broker", "UK9394"]) == 0
    url = _url_printed(capsys.readouterr().out)
    password = url.split(":")[2].split("@")[0]
    homes = [tmp_path / "computer1", tmp_path / "computer3"]
    for n, home in enumerate(homes):
        with Store.open(home) as store:
            trade(store, "UK9394", label=f"NIFTY {n}", n_fills=2 + 2 * n)
        assert kitedesk(["sync", "enable", "UK9394", "--url", url, "--home", str(home)]) == 0
        assert kitedesk(["sync", "status", "--home", str(home)]) == 0
        assert "pending" in capsys.readouterr().out
    for home in (*homes, homes[0]):
        assert kitedesk(["sync", "run", "--once", "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert "pushed" in out and password not in out
    for home in homes:
        target = tmp_path / f"{home.name}.csv"
        assert (
            kitedesk(
                [
                    "export",
                    "--broker",
                    "UK9394",
                    "--mode",
                    "PAPER",
                    "--all-devices",
                    "--out",
                    str(target),
                    "--home",
                    str(home),
                ]
            )
            == 0
        )
        with target.open(newline="") as f:
            assert {r["session_label"] for r in csv.DictReader(f)} == {"NIFTY 0", "NIFTY 1"}
    # Secrets: the account password only in the keyring, the admin URL nowhere.
    assert list(memory_keyring.passwords.values()) == [password]
    for home in homes:
        for path in home.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert password.encode() not in data and admin_password.encode() not in data, path
    assert SyncConfig(homes[0]).get("UK9394") is not None
    # Revoked: a clear error, and what is pending stays queued.
    with Store.open(homes[0]) as store:
        trade(store, "UK9394", label="after revoke")
    assert kitedesk(["sync", "remove-account", "--admin-url", central.admin_url, "--broker", "UK9394"]) == 0
    capsys.readouterr()
    assert kitedesk(["sync", "run", "--once", "--home", str(homes[0])]) == 1
    err = capsys.readouterr().err
    assert "pending changes stay queued" in err and password not in err
    assert kitedesk(["sync", "disable", "UK9394", "--home", str(homes[0])]) == 0
    assert memory_keyring.passwords == {}
    assert not SyncConfig(homes[0]).accounts()[0].enabled


def test_bad_input_is_refused_in_words(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert kitedesk(["sync", "enable", "UK9394", "--url", "mysql://x@y/z", "--home", str(tmp_path)]) == 1
    assert "must start with postgresql://" in capsys.readouterr().err
    assert (
        kitedesk(
            ["sync", "add-account", "--admin-url", "postgresql://a:b@127.0.0.1:1/x", "--broker", "UK'; --"]
        )
        == 1
    )
    assert "is not a Kite user id" in capsys.readouterr().err
    assert kitedesk(["sync", "run", "--once", "--home", str(tmp_path / "none")]) == 1
    assert "no KiteDesk database" in capsys.readouterr().err
