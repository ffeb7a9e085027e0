"""Randomized: 3 computers × 2 accounts recording trades while the sync is killed (-9) at random moments and
the link to PostgreSQL drops and returns; afterwards every local row is central exactly once, and every
central row of an account is on each of its computers.

The trades are written through the store's own repositories (the records a session makes), not by running
the simulator: what is under test is the sync's handling of the outbox, not the trading.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from desktop.store.store import Store
from desktop.sync.central import SYNCED_TABLES, add_account
from desktop.sync.config import PASSWORD_ENV, AccountSync, SyncConfig, split_url
from desktop.sync.syncer import LOCAL_TABLES, database, pending_count
from tests.sync.conftest import Central, trade
from tests.sync.proxy import FlakyLink

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ACCOUNTS = ("UK9394", "UK1234")
COMPUTERS = ("computer1", "computer2", "computer3")


def _local_ids(home: Path, broker: str, *, own_only: bool) -> dict[str, set[str]]:
    with Store.open(home) as store, database(store).read() as conn:
        out = {}
        for name in SYNCED_TABLES:
            table = LOCAL_TABLES[name]
            query = select(table.c.id).where(table.c.broker_id == broker)
            if own_only:
                query = query.where(table.c.device_id == store.device_id)
            out[name] = set(conn.execute(query).scalars())
        return out


def _central_ids(central: Central, broker: str) -> dict[str, set[str]]:
    out = {}
    with central.admin() as conn:
        for name in SYNCED_TABLES:
            rows = conn.execute(f"SELECT id FROM kitedesk.{name} WHERE broker_id = %s", (broker,)).fetchall()
            ids = [r[0] for r in rows]
            assert len(ids) == len(set(ids)), f"{name}: a row is central twice"
            out[name] = set(ids)
    return out


def test_random_kills_and_outages_end_with_every_row_central_once_and_on_every_computer(
    central: Central, tmp_path: Path
) -> None:
    rng = random.Random(int(os.environ.get("KITEDESK_SYNC_SEED", "19")))
    link = FlakyLink(central.host, central.port)
    env: dict[str, Any] = dict(os.environ)
    homes = [tmp_path / c for c in COMPUTERS]
    for broker in ACCOUNTS:
        bare, password = split_url(link.url(add_account(central.admin_url, broker)))
        env[PASSWORD_ENV + broker] = password
        for home in homes:
            Store.open(home).close()
            SyncConfig(home).save(AccountSync(broker, bare, True))
    running: list[subprocess.Popen[bytes]] = []
    try:
        for round_ in range(8):
            for home in homes:
                with Store.open(home) as store:
                    for broker in ACCOUNTS:
                        if rng.random() < 0.7:
                            trade(store, broker, label=f"R{round_}", n_fills=rng.randint(1, 30))
            for home in rng.sample(homes, 2):
                running.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "desktop.cli", "sync", "run", "--home", str(home)],
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            time.sleep(rng.uniform(1.0, 5.0))  # the process needs about 1-2 s to start
            if rng.random() < 0.5:
                link.cut()
                time.sleep(rng.uniform(0.1, 1.0))
                link.restore()
            for proc in running:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
            running.clear()
        # The disturbed runs did sync (the test is not only the calm rounds below).
        assert any(_central_ids(central, b)["fills"] for b in ACCOUNTS)
        # Calm: each computer syncs once to push, then once more to pull what the others pushed after it.
        for _ in range(2):
            for home in homes:
                done = subprocess.run(
                    [sys.executable, "-m", "desktop.cli", "sync", "run", "--once", "--home", str(home)],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert done.returncode == 0, done.stderr
    finally:
        for proc in running:
            proc.kill()
            proc.wait(10)
        link.close()

    for broker in ACCOUNTS:
        central_ids = _central_ids(central, broker)
        for home in homes:
            with Store.open(home) as store:
                assert pending_count(store, broker) == 0
            own = _local_ids(home, broker, own_only=True)
            every = _local_ids(home, broker, own_only=False)
            for name in SYNCED_TABLES:
                assert own[name] <= central_ids[name], (home.name, broker, name)
                assert every[name] == central_ids[name], (home.name, broker, name)
        assert central_ids["fills"], "the run made no trades"
