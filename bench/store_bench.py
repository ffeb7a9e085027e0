"""Store figures: CPU per hot write, durable journal commits per second, and reading one account's day from
1,000,000 fills.

Run: `python bench/store_bench.py [--rows 1000000] [--accounts 200] [--home DIR]`. Building the big
database takes about a minute; it is not part of the test suite. The fills are written straight into
the `fills` table in large batches (the bench measures reads, not 1,000,000 fsyncs).

CPU per hot write is the calling thread's CPU time (`time.thread_time`, user and system) for one write in
its own transaction, as an agent entering a position makes them: the intent, the fill, journal entries,
order updates and the position. Under the GIL that is time no other thread of the process runs Python.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from desktop.domain import (
    Fill,
    Mode,
    Order,
    OrderIntent,
    OrderStatus,
    OrderType,
    Position,
    Segment,
    SessionKey,
    Side,
)
from desktop.store import Store
from desktop.store.ids import derived_id

DAY0 = date(2026, 1, 5)
DAYS = 20
SYMBOLS = [f"NIFTY26113{25000 + 50 * k}{right}" for k in range(20) for right in ("CE", "PE")]


def _dt(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's SQLite DateTime text


def build(store: Store, rows: int, accounts: int) -> list[SessionKey]:
    """Fills `rows` fills over `accounts` accounts x DAYS days, one LIVE session per account-day."""
    rng = random.Random(7)
    keys = []
    for a in range(accounts):
        for d in range(DAYS):
            key = SessionKey(f"AC{a:04d}", f"s{a:04d}d{d:02d}")
            store.sessions.record_session(
                key,
                label=f"day {d}",
                params={},
                mode=Mode.LIVE,
                state="stopped",
                started_at=datetime(2026, 1, 5),
            )
            keys.append(key)
    per_session = rows // len(keys)
    sql = (
        "INSERT INTO fills (id, broker_id, device_id, session_id, fill_id, order_id, mode, exchange, tradingsymbol,"
        " side, quantity, price, timestamp, trade_date, tag) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
    )
    batch: list[tuple[object, ...]] = []
    for i, key in enumerate(keys):
        day = DAY0 + timedelta(days=i % DAYS)
        start = datetime.combine(day, datetime.min.time()).replace(hour=9, minute=15)
        for n in range(per_session):
            at = start + timedelta(seconds=n * 20)
            fill_id = f"{i}-{n}"
            batch.append(
                (
                    derived_id("fill", key.broker_id, key.session_id, fill_id),
                    key.broker_id,
                    store.device_id,
                    key.session_id,
                    fill_id,
                    f"o{i}-{n // 2}",
                    "LIVE",
                    "NFO",
                    rng.choice(SYMBOLS),
                    "BUY" if n % 2 == 0 else "SELL",
                    65,
                    f"{rng.randint(2000, 30000) / 100:.2f}",
                    _dt(at),
                    day.isoformat(),
                    key.order_tag,
                )
            )
        if len(batch) >= 50_000 or i == len(keys) - 1:
            with store._db.write(durable=False, what="bench fills") as conn:
                conn.exec_driver_sql(sql, batch)
            batch = []
    return keys


def journal_commits_per_second(store: Store, key: SessionKey, count: int) -> float:
    """Sequential durable (synchronous=FULL) journal appends per second."""
    t0 = time.perf_counter()
    for n in range(count):
        store.journal.append(
            key,
            segment=Segment.NIFTY,
            kind="tick",
            payload={"n": n, "ltp": "101.05"},
            market_time=datetime(2026, 1, 5),
        )
    return count / (time.perf_counter() - t0)


def cpu_per_write(store: Store, key: SessionKey, count: int) -> dict[str, float]:
    """Median CPU seconds of one write of each hot kind, `count` writes each, one transaction each."""
    at = datetime(2026, 1, 5, 10, 0)
    symbol = SYMBOLS[0]
    writes: dict[str, Callable[[int], object]] = {
        "order intent (durable)": lambda n: store.intents.record(
            OrderIntent(key, Segment.NIFTY, Mode.PAPER, "NFO", symbol, Side.BUY, 65, reason="entry"), at=at
        ),
        "fill (durable)": lambda n: store.fills.record(
            Fill(f"F{n}", f"O{n}", key, Mode.PAPER, "NFO", symbol, Side.BUY, 65, Decimal("101.05"), at)
        ),
        "journal entry (durable)": lambda n: store.journal.append(
            key, segment=Segment.NIFTY, kind="order_sent", payload={"n": n, "role": "entry"}, market_time=at
        ),
        "order update": lambda n: store.orders.record(
            Order(
                f"O{n}",
                key,
                Mode.PAPER,
                "NFO",
                symbol,
                Side.BUY,
                65,
                OrderType.MARKET,
                OrderStatus.COMPLETE,
                65,
                Decimal("101.05"),
                timestamp=at,
            )
        ),
        "position": lambda n: store.positions.upsert(
            Position(key, Mode.PAPER, "NFO", symbol, 65, Decimal("101.05"))
        ),
    }
    figures = {}
    for name, write in writes.items():
        cpu = []
        for n in range(count):
            t0 = time.thread_time()
            write(n)
            cpu.append(time.thread_time() - t0)
        figures[name] = statistics.median(cpu)
    return figures


def main(argv: list[str]) -> int:
    """Builds the database and prints the figures."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--accounts", type=int, default=200)
    p.add_argument("--journal", type=int, default=500, help="durable journal appends to time")
    p.add_argument("--home", type=Path, help="where to build (default: a temporary folder, deleted after)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kitedesk-bench-") as tmp:
        home = args.home or Path(tmp)
        with Store.open(home) as store:
            key = SessionKey("JOURNAL1", "bench")
            store.sessions.record_session(
                key,
                label="bench",
                params={},
                mode=Mode.PAPER,
                state="running",
                started_at=datetime(2026, 1, 5),
            )
            for name, cpu in cpu_per_write(store, key, args.journal).items():
                print(f"CPU per {name}: {cpu * 1e6:.0f} µs (median of {args.journal}, one transaction each)")
            rate = journal_commits_per_second(store, key, args.journal)
            print(
                f"durable journal commits: {rate:,.0f} per second ({args.journal} sequential appends, FULL sync)"
            )
            t0 = time.perf_counter()
            build(store, args.rows, args.accounts)
            print(
                f"built {args.rows:,} fills of {args.accounts} accounts x {DAYS} days in {time.perf_counter() - t0:.1f} s"
            )
        size_mb = (home / "kitedesk.db").stat().st_size / 1e6
        t0 = time.perf_counter()
        store = Store.open(home)
        print(f"open with quick_check: {time.perf_counter() - t0:.2f} s ({size_mb:,.0f} MB)")
        store.close()
        t0 = time.perf_counter()
        store = Store.open(home, verify=False)
        print(f"open without quick_check: {time.perf_counter() - t0:.3f} s")
        with store:
            timings, count = [], 0
            for trial in range(20):
                account, day = f"AC{trial * 7 % args.accounts:04d}", DAY0 + timedelta(days=trial % DAYS)
                t0 = time.perf_counter()
                trades = store.trades.for_account(
                    broker_id=account, mode=Mode.LIVE, date_from=day, date_to=day
                )
                timings.append(time.perf_counter() - t0)
                count = len(trades)
                assert all(t.fill.key.broker_id == account for t in trades)
            print(
                f"one account's day ({count} trades with round-trip P&L) from {args.rows:,} rows: "
                f"median {statistics.median(timings) * 1000:.1f} ms, max {max(timings) * 1000:.1f} ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
