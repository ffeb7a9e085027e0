"""Faults against a real PostgreSQL: outages, a killed sync, a schema of another version, a bad password."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop.domain import Mode
from desktop.store.store import Store
from desktop.sync import central as central_module
from desktop.sync.central import SyncError, add_account, remove_account
from desktop.sync.config import PASSWORD_ENV, AccountSync, SyncConfig, split_url
from desktop.sync.syncer import pending_count, sync_once
from desktop.sync.worker import SyncWorker
from tests.sync.conftest import Central, open_home, trade
from tests.sync.private_pg import PrivateCluster
from tests.sync.proxy import FlakyLink

pytestmark = pytest.mark.postgres


def _central_count(central: Central, table: str = "fills") -> int:
    with central.admin() as conn:
        row = conn.execute(f"SELECT count(*), count(DISTINCT id) FROM kitedesk.{table}").fetchone()
    assert row is not None and row[0] == row[1], "a row is central twice"
    return int(row[0])


def _local_count(store: Store, broker: str) -> int:
    return len(store.trades.for_account(broker_id=broker, mode=Mode.PAPER))


@pytest.fixture
def link(central: Central) -> Iterator[FlakyLink]:
    flaky = FlakyLink(central.host, central.port)
    yield flaky
    flaky.close()


def _wait(predicate, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_postgres_down_at_start_and_mid_run_loses_nothing_and_catches_up(
    central: Central, homes: dict[str, Store], tmp_path: Path, link: FlakyLink
) -> None:
    url = link.url(add_account(central.admin_url, "UK9394"))
    store = open_home(homes, tmp_path, "c1")
    link.cut()  # down at start
    trade(store, "UK9394", n_fills=10)
    worker = SyncWorker(store, "UK9394", url, idle_s=0.1)
    worker.start()
    try:
        assert _wait(lambda: worker.status().state == "offline", 10)
        st = worker.status()
        assert st.pending > 0 and "cannot be reached" in st.error and "retry in" in st.text
        link.restore()
        assert _wait(lambda: worker.status().state == "synced", 30), worker.status()
        # Mid-run: the link drops while new records keep coming (the queue grows, then drains).
        for round_ in range(3):
            trade(store, "UK9394", n_fills=20, label=f"R{round_}")
            link.cut()
            trade(store, "UK9394", n_fills=20, label=f"R{round_}b")
            assert _wait(lambda: worker.status().state == "offline", 15), worker.status()
            assert pending_count(store, "UK9394") > 0
            link.restore()
        assert _wait(lambda: worker.status().state == "synced" and pending_count(store, "UK9394") == 0, 60)
    finally:
        worker.stop()
    assert _central_count(central) == 130 == _local_count(store, "UK9394")


# The sync, killed with SIGKILL at a chosen point of a batch: inside the central transaction
# (after some rows were sent, before COMMIT), or after its second COMMIT but before the local cursor moved.
_KILLABLE = """
import os, signal, sys
import psycopg
from desktop.sync import syncer
from desktop.sync.cli import main

where, calls = sys.argv[2], [0]
if where == "in_transaction":
    real = psycopg.Cursor.execute
    def execute(self, query, *args, **kwargs):
        result = real(self, query, *args, **kwargs)
        if str(query).startswith("INSERT INTO kitedesk."):
            calls[0] += 1
            if calls[0] == 9:  # in the second batch (the first covers all seven tables): its COMMIT not sent
                os.kill(os.getpid(), signal.SIGKILL)
        return result
    psycopg.Cursor.execute = execute
else:
    real_ack = syncer.acknowledge
    def acknowledge(*args):
        calls[0] += 1
        if calls[0] == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        real_ack(*args)
    syncer.acknowledge = acknowledge
sys.exit(main(["run", "--once", "--home", sys.argv[1]]))
"""


@pytest.mark.parametrize("where", ["in_transaction", "after_commit"])
def test_kill_9_of_the_sync_mid_batch_then_a_restart_stores_every_row_once(
    central: Central, tmp_path: Path, where: str
) -> None:
    url = add_account(central.admin_url, "UK9394")
    home = tmp_path / "c1"
    with Store.open(home) as store:
        for i in range(30):
            trade(store, "UK9394", n_fills=40, label=f"S{i}")
        total = pending_count(store, "UK9394")
    bare, password = split_url(url)
    SyncConfig(home).save(AccountSync("UK9394", bare, True))
    env = {**os.environ, PASSWORD_ENV + "UK9394": password}
    killed = subprocess.run(
        [sys.executable, "-c", _KILLABLE, str(home), where],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with Store.open(home) as store:
        left = pending_count(store, "UK9394")
    assert 0 < left < total  # it died part-way, with batches both sent and not
    sent = _central_count(central)
    assert (0 < sent < 1200) if where == "in_transaction" else sent > 0
    done = subprocess.run(
        [sys.executable, "-m", "desktop.cli", "sync", "run", "--once", "--home", str(home)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    with Store.open(home) as store:
        assert pending_count(store, "UK9394") == 0
        assert _central_count(central) == 1200 == _local_count(store, "UK9394")
    assert _central_count(central, "journal") == 30
    assert password not in done.stdout + done.stderr


def test_a_newer_central_schema_is_refused_in_words_and_nothing_is_written(
    central: Central, homes: dict[str, Store], tmp_path: Path
) -> None:
    url = add_account(central.admin_url, "UK9394")
    store = open_home(homes, tmp_path, "c1")
    trade(store, "UK9394")
    pending = pending_count(store, "UK9394")
    with central.admin() as conn:
        conn.execute("UPDATE kitedesk.sync_schema_version SET version_num = 'c9999'")
    with pytest.raises(SyncError, match="newer than this KiteDesk.*update KiteDesk.*nothing was written"):
        sync_once(store, url, "UK9394")
    assert pending_count(store, "UK9394") == pending and _central_count(central) == 0
    with pytest.raises(SyncError, match="newer than this KiteDesk knows"):
        central_module.init_central(central.admin_url)


def test_an_older_central_schema_is_refused_in_words(
    central: Central, homes: dict[str, Store], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = add_account(central.admin_url, "UK9394")
    store = open_home(homes, tmp_path, "c1")
    trade(store, "UK9394")
    # This KiteDesk as if built one revision later than the server's schema.
    monkeypatch.setattr(central_module, "head_revision", lambda: "c0002")
    with pytest.raises(SyncError, match=r"older than this KiteDesk.*init-central.*nothing was written"):
        sync_once(store, url, "UK9394")
    assert pending_count(store, "UK9394") > 0 and _central_count(central) == 0


def test_no_central_schema_is_refused_in_words(
    empty_database: Central, homes: dict[str, Store], tmp_path: Path
) -> None:
    store = open_home(homes, tmp_path, "c1")
    trade(store, "UK9394")
    with pytest.raises(SyncError, match="has no KiteDesk schema"):
        sync_once(store, empty_database.admin_url, "UK9394")


def test_a_wrong_or_revoked_password_is_a_clear_error_and_the_outbox_is_kept(
    central: Central, homes: dict[str, Store], tmp_path: Path
) -> None:
    url = add_account(central.admin_url, "UK9394")
    store = open_home(homes, tmp_path, "c1")
    trade(store, "UK9394")
    pending = pending_count(store, "UK9394")
    bare, password = split_url(url)
    wrong = url.replace(password, "not-the-password")
    with pytest.raises(SyncError, match="refused the password") as err:
        sync_once(store, wrong, "UK9394")
    assert "not-the-password" not in str(err.value) and password not in str(err.value)
    assert pending_count(store, "UK9394") == pending
    assert remove_account(central.admin_url, "UK9394")
    with pytest.raises(SyncError, match="refused the password|access was removed"):
        sync_once(store, url, "UK9394")
    assert pending_count(store, "UK9394") == pending and _central_count(central) == 0


def test_the_sync_service_reports_each_enabled_account_and_why_one_cannot_start(
    central: Central, homes: dict[str, Store], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from desktop.sync import SyncService

    url = add_account(central.admin_url, "UK9394")
    store = open_home(homes, tmp_path, "c1")
    bare, password = split_url(url)
    config = SyncConfig(store.home)
    config.save(AccountSync("UK9394", bare, True))
    config.save(AccountSync("UK1234", bare.replace("uk9394", "uk1234"), True))
    config.save(AccountSync("UK0001", bare, False))
    monkeypatch.setenv(PASSWORD_ENV + "UK9394", password)
    trade(store, "UK9394", n_fills=3)
    service = SyncService(store, store.home, idle_s=0.1)
    assert [w.broker_id for w in service.workers] == ["UK9394"]
    service.start()
    try:
        assert _wait(lambda: service.statuses()[0].state == "synced", 20), service.statuses()
    finally:
        service.stop()
    synced, missing = service.statuses()
    assert synced.text == "synced" and synced.pushed > 0
    assert missing.broker_id == "UK1234" and missing.state == "error" and "no password" in missing.error
    assert password not in repr(service.workers[0])


def test_a_real_postgres_restart_mid_run_loses_nothing(
    private_central: Central, private_pg: PrivateCluster, homes: dict[str, Store], tmp_path: Path
) -> None:
    # The test's own cluster: the machine's server is shared with other tests and is never restarted.
    url = add_account(private_central.admin_url, "UK9394")
    store = open_home(homes, tmp_path, "c1")
    trade(store, "UK9394", n_fills=10)
    worker = SyncWorker(store, "UK9394", url, idle_s=0.1)
    worker.start()
    try:
        assert _wait(lambda: worker.status().state == "synced", 20), worker.status()
        private_pg.stop("fast")
        try:
            trade(store, "UK9394", n_fills=20, label="while down")
            assert _wait(lambda: worker.status().state in ("offline", "error"), 15), worker.status()
            assert pending_count(store, "UK9394") > 0
        finally:
            private_pg.start()
        assert _wait(lambda: worker.status().state == "synced" and pending_count(store, "UK9394") == 0, 60)
        # A crash of the server (no shutdown, recovery on start) in the middle of the next records.
        trade(store, "UK9394", n_fills=15, label="before the crash")
        private_pg.stop("immediate")
        trade(store, "UK9394", n_fills=15, label="while crashed")
        private_pg.start()
        assert _wait(lambda: worker.status().state == "synced" and pending_count(store, "UK9394") == 0, 60)
    finally:
        worker.stop()
    assert _central_count(private_central) == 60 == _local_count(store, "UK9394")


def test_stopping_the_sync_is_prompt_while_the_central_server_hangs_mid_batch(
    central: Central,
    homes: dict[str, Store],
    tmp_path: Path,
    link: FlakyLink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from desktop.sync import SyncService

    store = open_home(homes, tmp_path, "c1")
    config = SyncConfig(store.home)
    for broker in ("UK9394", "UK1234"):
        bare, password = split_url(link.url(add_account(central.admin_url, broker)))
        config.save(AccountSync(broker, bare, True))
        monkeypatch.setenv(PASSWORD_ENV + broker, password)
        trade(store, broker, n_fills=2)
    service = SyncService(store, store.home, idle_s=0.1)
    service.start()
    try:
        assert _wait(lambda: [s.state for s in service.statuses()] == ["synced", "synced"], 20)
        link.freeze()  # the server hangs with both connections open
        for broker in ("UK9394", "UK1234"):
            trade(store, broker, n_fills=40, label="while hung")
        for w in service.workers:
            w.sync_now()
        time.sleep(1.0)  # both threads now wait inside a batch for a reply that never comes
        assert _central_count(central) == 4 and all(w._thread.is_alive() for w in service.workers)
        t0 = time.monotonic()
        service.stop()
        took = time.monotonic() - t0
    finally:
        service.stop()
        link.restore()
    assert not [t for t in threading.enumerate() if t.name.startswith("sync-")], "a sync thread still runs"
    assert took < 5.0, f"stop took {took:.1f} s"
    # Nothing of the interrupted batches was acknowledged: the next sync sends them.
    url = add_account(central.admin_url, "UK9394")
    assert pending_count(store, "UK9394") > 0
    sync_once(store, url, "UK9394")
    assert _central_count(central) == 2 + 2 + 40


def test_kitedesk_sync_run_ends_promptly_on_sigterm_while_the_server_hangs(
    central: Central, tmp_path: Path, link: FlakyLink
) -> None:
    home = tmp_path / "vps"
    Store.open(home).close()
    env = dict(os.environ, PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring", PYTHONUNBUFFERED="1")
    for broker in ("UK9394", "UK1234"):
        bare, password = split_url(link.url(add_account(central.admin_url, broker)))
        SyncConfig(home).save(AccountSync(broker, bare, True))
        env[PASSWORD_ENV + broker] = password
    out = tmp_path / "sync-run.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "desktop.cli", "sync", "run", "--home", str(home)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        assert _wait(lambda: out.read_text().count(": synced") >= 2, 30), out.read_text()
        link.freeze()
        with Store.open(home) as store:
            for broker in ("UK9394", "UK1234"):
                trade(store, broker, n_fills=40, label="while hung")
        time.sleep(3.0)  # past the workers' 2 s idle wait: both now wait inside a batch for the hung server
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        link.restore()
    assert code == 0, out.read_text()
    assert took < 6.0, f"kitedesk sync run took {took:.1f} s to stop"
