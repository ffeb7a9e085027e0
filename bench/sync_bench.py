"""Central sync figures (issue 19 §5): push and pull rows/s against a local PostgreSQL.

    .venv/bin/python bench/sync_bench.py --admin-url postgresql://ADMIN:PW@127.0.0.1:5432/postgres \
        [--accounts 100] [--rows 10000]

Makes a fresh database (dropped at the end), runs init-central, and one login per account (add-account).
Computer 1 holds every account's rows, written straight into its store with their outbox entries (a third
each orders, fills and journal entries, under one session per account: the rows a trading day makes, made
faster than trading would). Push: every account's outbox through that account's own login, batch by
batch, one transaction each (the same `push_batch` the app runs). Pull: computer 2, a fresh store, pulls
each account's rows through the same logins. Targets on this machine: >= 10,000 rows/s push and
>= 20,000 rows/s pull.

`--engine-seconds N` (default 20; 0 skips it) then runs bench/engine_bench.py in this one run with the sync off
and on (a SyncService inside the engine's process pushing every record the sessions make, as the window
would run it), alternately, `--engine-rounds` times each (default 2), and prints each run's tick-to-intent
figures and the p99 range with the sync off and on: a sync must not show in them.

The push sends each batch by COPY into a temporary table and one INSERT ... ON CONFLICT (desktop/sync/syncer.py).
Figures depend on the machine's load: run it three times and report the range.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from desktop.domain import Mode, SessionKey  # noqa: E402
from desktop.store.database import outbox_row, utc_now  # noqa: E402
from desktop.store.ids import derived_id, random_id  # noqa: E402
from desktop.store.schema import fills, journal, orders, outbox, sessions  # noqa: E402
from desktop.store.store import Store  # noqa: E402
from desktop.sync.central import add_account, init_central  # noqa: E402
from desktop.sync.syncer import database, open_central, pull_batch, push_batch  # noqa: E402

T0 = datetime(2026, 1, 5, 9, 15)


def _seed(store: Store, broker: str, rows: int) -> None:
    """`rows` synced records of one account, with their outbox entries, in one local transaction."""
    key = SessionKey.new(broker)
    dev = store.device_id
    now = utc_now()
    sess = {
        "id": derived_id("session", broker, key.session_id),
        "broker_id": broker,
        "device_id": dev,
        "session_id": key.session_id,
        "label": "bench",
        "params_json": "{}",
        "mode": Mode.PAPER.value,
        "state": "stopped",
        "started_at": T0,
        "stopped_at": None,
        "updated_at_utc": now,
    }
    o_rows, f_rows, j_rows, box = [], [], [], [outbox_row(broker, "sessions", sess["id"])]
    for i in range(rows - 1):
        t = T0 + timedelta(milliseconds=i)
        kind = i % 3
        if kind == 0:
            rid = derived_id("order", broker, key.session_id, f"O{i}")
            o_rows.append(
                {
                    "id": rid,
                    "broker_id": broker,
                    "device_id": dev,
                    "session_id": key.session_id,
                    "order_id": f"O{i}",
                    "intent_id": "",
                    "mode": "PAPER",
                    "exchange": "NFO",
                    "tradingsymbol": "NIFTY2610625000CE",
                    "side": "BUY",
                    "quantity": 65,
                    "order_type": "MARKET",
                    "status": "COMPLETE",
                    "filled_quantity": 65,
                    "average_price": Decimal("101.05"),
                    "price": None,
                    "trigger_price": None,
                    "tag": key.order_tag,
                    "status_message": "",
                    "timestamp": t,
                    "updated_at_utc": now,
                }
            )
            box.append(outbox_row(broker, "orders", rid))
        elif kind == 1:
            rid = derived_id("fill", broker, key.session_id, f"F{i}")
            f_rows.append(
                {
                    "id": rid,
                    "broker_id": broker,
                    "device_id": dev,
                    "session_id": key.session_id,
                    "fill_id": f"F{i}",
                    "order_id": f"O{i - 1}",
                    "mode": "PAPER",
                    "exchange": "NFO",
                    "tradingsymbol": "NIFTY2610625000CE",
                    "side": "BUY",
                    "quantity": 65,
                    "price": Decimal("101.05"),
                    "timestamp": t,
                    "trade_date": t.date(),
                    "tag": key.order_tag,
                }
            )
            box.append(outbox_row(broker, "fills", rid))
        else:
            rid = random_id()
            j_rows.append(
                {
                    "id": rid,
                    "broker_id": broker,
                    "device_id": dev,
                    "session_id": key.session_id,
                    "segment": "NIFTY",
                    "kind": "bar",
                    "payload_json": '{"close": "25010.5"}',
                    "market_time": t,
                    "recorded_at_utc": now,
                }
            )
            box.append(outbox_row(broker, "journal", rid))
    with database(store).write(durable=False, what="bench rows") as conn:
        conn.execute(insert(sessions), [sess])
        for table, values in ((orders, o_rows), (fills, f_rows), (journal, j_rows)):
            if values:
                conn.execute(insert(table), values)
        conn.execute(insert(outbox), box)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--admin-url", required=True, help="a superuser URL (a fresh database is made beside it)")
    p.add_argument("--accounts", type=int, default=100)
    p.add_argument("--rows", type=int, default=10_000, help="rows per account")
    p.add_argument("--engine-seconds", type=float, default=20.0, help="engine bench per run (0: skip)")
    p.add_argument("--engine-sessions", type=int, default=4)
    p.add_argument(
        "--engine-rounds", type=int, default=2, help="engine runs off then on, this many times (a range)"
    )
    args = p.parse_args()

    dbname = f"kd_sync_bench_{secrets.token_hex(4)}"
    base = args.admin_url.rpartition("/")[0]
    with psycopg.connect(args.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    admin_url = f"{base}/{dbname}"
    brokers = [f"BB{n:04d}" for n in range(args.accounts)]
    try:
        init_central(admin_url)
        urls = {b: add_account(admin_url, b) for b in brokers}
        with tempfile.TemporaryDirectory(prefix="kd-sync-bench-") as tmp:
            c1 = Store.open(Path(tmp) / "computer1")
            c2 = Store.open(Path(tmp) / "computer2")
            try:
                t = time.perf_counter()
                for b in brokers:
                    _seed(c1, b, args.rows)
                print(
                    f"seeded {args.accounts} accounts x {args.rows} rows locally in {time.perf_counter() - t:.1f} s"
                )
                total = args.accounts * args.rows
                pushed = _timed_rounds(c1, urls, push_batch)
                pulled = _timed_rounds(c2, urls, pull_batch)
            finally:
                c1.close()
                c2.close()
        with psycopg.connect(admin_url) as conn:
            central_rows = sum(
                int(conn.execute(f"SELECT count(*) FROM kitedesk.{t}").fetchone()[0])  # type: ignore[index]
                for t in ("sessions", "orders", "fills", "journal")
            )
        print(f"central rows: {central_rows} (expected {total})")
        _report("push", pushed[0], pushed[1], 10_000)
        _report("pull", pulled[0], pulled[1], 20_000)
        if args.engine_seconds > 0:
            _engine_runs(admin_url, args.engine_seconds, args.engine_sessions, args.engine_rounds)
        return 0 if central_rows == total and pulled[0] == total else 1
    finally:
        _drop(args.admin_url, dbname, brokers)


# Runs bench/engine_bench.py's main in this process after making every Engine start a SyncService on its store
# (the accounts and URLs come in KD_BENCH_SYNC as JSON; empty: sync off).
_ENGINE_WITH_SYNC = """
import importlib.util, json, os, sys
from desktop.engine.engine import Engine
from desktop.sync.config import AccountSync, SyncConfig, split_url
from desktop.sync.worker import SyncService

urls = json.loads(os.environ.get("KD_BENCH_SYNC") or "{}")
services = []
real_init, real_close = Engine.__init__, Engine.close

def init(self, home, *args, **kwargs):
    real_init(self, home, *args, **kwargs)
    if urls:
        for broker, url in urls.items():
            bare, password = split_url(url)
            SyncConfig(home).save(AccountSync(broker, bare, True))
            os.environ["KITEDESK_SYNC_PASSWORD_" + broker] = password
        service = SyncService(self.store, home, idle_s=0.2)
        service.start()
        services.append(service)

def close(self, *args, **kwargs):
    for service in services:
        service.stop()
        print("sync during the run:", ", ".join(f"{s.broker_id} pushed {s.pushed} ({s.text})" for s in service.statuses()))
    return real_close(self, *args, **kwargs)

Engine.__init__, Engine.close = init, close
spec = importlib.util.spec_from_file_location("engine_bench", sys.argv[1])
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
sys.argv = ["engine_bench.py", *sys.argv[2:]]
sys.exit(bench.main())
"""


def _engine_runs(admin_url: str, seconds: float, sessions: int, rounds: int) -> None:
    from desktop.broker.sim import DEMO_ACCOUNTS

    n_accounts = 2
    brokers = [a.user_id for a in DEMO_ACCOUNTS][:n_accounts]
    urls = {b: add_account(admin_url, b) for b in brokers}
    engine_bench = Path(__file__).resolve().parent / "engine_bench.py"
    args = [str(engine_bench), "--sessions", str(sessions), "--seconds", str(seconds), "--instruments", "200",
            "--accounts", str(n_accounts)]  # fmt: skip
    p99: dict[str, list[float]] = {"sync off": [], "sync on": []}
    # Off and on alternate, so a change in the machine's load falls on both.
    for _ in range(rounds):
        for label, env in (("sync off", ""), ("sync on", json.dumps(urls))):
            done = subprocess.run(
                [sys.executable, "-c", _ENGINE_WITH_SYNC, *args],
                env={**os.environ, "KD_BENCH_SYNC": env, "QT_QPA_PLATFORM": "offscreen"},
                capture_output=True,
                text=True,
                timeout=600,
            )
            wanted = [
                ln for ln in done.stdout.splitlines() if ln.startswith(("tick-to-intent", "sync during"))
            ]
            print(
                f"engine ({label}, {sessions} sessions x 3 segments, {seconds:.0f} s):", *wanted, sep="\n  "
            )
            p99[label] += [float(m) for m in re.findall(r"p99 ([0-9.]+) ms", "\n".join(wanted))]
            if done.returncode != 0:
                print(done.stderr[-2000:])
    for label, values in p99.items():
        if values:
            print(
                f"tick-to-intent p99, {label}: {min(values):.1f}-{max(values):.1f} ms over {len(values)} runs"
            )


def _timed_rounds(store: Store, urls: dict[str, str], step: Any) -> tuple[int, float]:
    rows = 0
    elapsed = 0.0
    for broker, url in urls.items():
        with open_central(url) as conn:  # connecting is not counted: a running sync keeps its connection
            t = time.perf_counter()
            while n := step(store, conn, broker):
                rows += n
            elapsed += time.perf_counter() - t
    return rows, elapsed


def _report(what: str, rows: int, seconds: float, target: int) -> None:
    rate = rows / seconds if seconds else 0.0
    verdict = "meets" if rate >= target else "BELOW"
    print(
        f"{what}: {rows} rows in {seconds:.2f} s = {rate:,.0f} rows/s ({verdict} the {target:,} rows/s target)"
    )


def _drop(admin_url: str, dbname: str, brokers: list[str]) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (dbname,))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(dbname)))
        for (role,) in conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (f"kd\\_%\\_{dbname}",)
        ):
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


if __name__ == "__main__":
    sys.exit(main())
