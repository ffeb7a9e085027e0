"""The chaos harness (issue 16): the simulator and `kitedesk run` as real processes, a seeded schedule of faults,
and the money-safety invariants checked against the simulator's books after every step and at the end.

One implementation for both `tests/chaos/test_chaos.py` (a short seeded run in CI) and `bench/chaos.py` (a soak).
Plain Python (no Qt here): the engine runs in its own `kitedesk run` process, which this harness kills with
SIGKILL, restarts, starves of its disk and locks out of its database, while reading the broker's side through
the real `kiteconnect` client, as an outside observer of the account would.

What is checked (each check can fail; none is skipped silently):
(a) protection: every LIVE position at the broker (per session tag and option, rebuilt from the broker's trades)
    is covered by that tag's working sell orders, whose pending quantity sums to exactly the held quantity. Cover
    is a resting SL/SL-M sell (the stop), or a working exit: a LIMIT/MARKET sell of the tag open at the broker
    (the engine cancels the stop and sends the exit; until the exit fills, it is what sells the position). A
    mismatch lasting longer than the cover tolerance outside fault windows is counted in naked-seconds (and
    over-covered-seconds: a stop with nothing behind it would sell short). The tolerance is
    max(COVER_GRACE_S market seconds, COVER_GRACE_REAL_S real seconds at the run's speed): the engine's reply
    to a fill (journal the stop's intent, then place it) takes real time, which at 30x market speed on a loaded
    machine is many market seconds; the summary prints it.
(b) exactly once: every broker order of a session's tag is one of its journalled intents, no intent is at the
    broker twice, and no (option, side, type) has more broker orders than journalled intents.
(c) P&L: each session's realised P&L in its store equals the P&L recomputed from the broker's trades of its tag
    (LIVE), or from its own durable fills (PAPER), to the paisa. Checked at the end, after a final recovery: the
    last run is stopped (Ctrl-C), the market goes on with no process for a moment (a kept position's stop may
    fill then, as after any kill), the market clock is then slowed to a crawl (nothing more trades) and
    `kitedesk run` is started once more: its recovery must count every fill since the last process exited;
    after a settle period it is stopped and the books are compared.
(d) isolation and secrets: repository queries by broker_id return only that account's rows, every LIVE order
    the store holds for an account is in that account's book and not in the other's, and no API secret or
    access token is in any file of the home (or the run's output).
(e) risk: no segment of a session has more filled entries in the day than its `max_trades_per_day`, across
    restarts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from kiteconnect import KiteConnect

from desktop.broker.sim import DEMO_ACCOUNTS
from desktop.broker.sim.faults import FAULT_KINDS, MARKET_FAULTS
from desktop.broker.sim.process import SimProcess

REPO = Path(__file__).resolve().parents[2]
DAY = datetime(2026, 1, 8)  # a Thursday: NIFTY's weekly expiry is ahead, SENSEX's is today
COVER_GRACE_S = 5.0  # market seconds a position may be uncovered (entry filled, stop on its way)...
COVER_GRACE_REAL_S = 3.0  # ...or real seconds, whichever is longer (cover_tolerance): a loaded 2-core machine
FINAL_GAP_S = 2.0  # real seconds the market runs with no process before the final recovery
FINAL_SPEED = 0.01  # the market clock's speed during the final recovery: nothing trades (one step per 100 s)
SETTLE_S = 2.0  # real seconds the final recovery runs after all its sessions are up, before it is stopped
FAULT_GRACE_S = 30.0  # market seconds after a fault ends (or a one-shot fault hits) before nakedness counts
PAISA = Decimal("0.01")
STOP_TYPES = ("SL", "SL-M")
# A sell of a tag that is not a stop is an exit (Kite lists a MARKET order sent with protection as a LIMIT).
EXIT_TYPES = ("LIMIT", "MARKET")
RESTING = ("TRIGGER PENDING", "OPEN", "PUT ORDER REQ RECEIVED", "VALIDATION PENDING", "OPEN PENDING",
           "MODIFY PENDING", "MODIFY VALIDATION PENDING", "CANCEL PENDING")  # fmt: skip
STORAGE_FAULTS = ("db_lock", "disk_full")
# Faults the harness makes itself, beside the simulator's (desktop/broker/sim/faults.py).
HARNESS_FAULTS = ("kill9", "restart", "db_lock", "disk_full", "second_process")
SECRETS = {a.user_id: a.api_secret for a in DEMO_ACCOUNTS}
_SEGMENT_RE = re.compile(r"^([A-Z]+?)\d")
_STATUS_RE = re.compile(r"^\[(\d\d:\d\d:\d\d)\] (\w+) '([^']*)' (LIVE|PAPER) (\w+) \|")


def cover_tolerance(speed: float) -> float:
    """Market seconds a position may differ from its cover before it counts: COVER_GRACE_S market seconds, or
    COVER_GRACE_REAL_S real seconds at `speed` when that is longer (at 30x, 5 market seconds are 0.17 real s)."""
    return max(COVER_GRACE_S, COVER_GRACE_REAL_S * speed)


def rupees(d: Decimal) -> Decimal:
    """To the paisa, as the engine rounds."""
    return d.quantize(PAISA, rounding=ROUND_HALF_UP)


def segment_of(symbol: str) -> str:
    m = _SEGMENT_RE.match(symbol)
    return m.group(1) if m else symbol


def _ts(text: Any) -> datetime | None:
    if isinstance(text, datetime):
        return text
    if isinstance(text, str) and len(text) >= 19:
        return datetime.strptime(text[:19], "%Y-%m-%d %H:%M:%S")
    return None


# ------------------------------------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class SessionSpec:
    """One `[[session]]` of the chaos workspace."""

    profile: str
    label: str
    mode: str
    segments: tuple[str, ...]
    max_trades_per_day: int
    lots: int = 1
    stop_loss: int = 3
    itm_offset: int = 100
    on_stop: str = "keep"

    def toml(self) -> str:
        segs = ", ".join(f'"{s}"' for s in self.segments)
        lines = [
            "[[session]]",
            f'profile = "{self.profile}"',
            f'label = "{self.label}"',
            f"segments = [{segs}]",
            f"lots = {self.lots}",
            f"stop_loss = {self.stop_loss}",
            f"itm_offset = {self.itm_offset}",
            f'mode = "{self.mode}"',
            f'on_stop = "{self.on_stop}"',
            "fast_ema = 2",
            "slow_ema = 3",
            f"max_trades_per_day = {self.max_trades_per_day}",
        ]
        if self.mode == "LIVE":
            lines.append("confirm_live = true")
        return "\n".join(lines) + "\n"


# LIVE and PAPER sessions of both demo accounts. One LIVE session has a tight trade limit (restarts must not
# reset it); LIVE ones keep their positions on a clean stop, so a restart takes them over under their stops.
DEFAULT_SESSIONS = (
    SessionSpec("UK9394", "chaos live A", "LIVE", ("NIFTY", "BANKNIFTY"), 40, on_stop="keep"),
    SessionSpec("UK9394", "chaos paper A", "PAPER", ("NIFTY", "SENSEX"), 3, on_stop="square_off"),
    SessionSpec("UK1234", "chaos live B", "LIVE", ("NIFTY", "SENSEX"), 3, lots=2, on_stop="keep"),
    SessionSpec("UK1234", "chaos paper B", "PAPER", ("BANKNIFTY",), 40, on_stop="square_off"),
)


@dataclass(frozen=True)
class ChaosConfig:
    """A chaos run: seed, wall-clock length, market speed and start, how often faults come."""

    seed: int
    seconds: float = 60.0
    speed: float = 30.0
    start: str = "09:20"
    step_s: float = 1.0  # wall seconds between invariant checks
    mean_fault_gap_s: float = 4.0  # wall seconds between injected faults, on average
    sessions: tuple[SessionSpec, ...] = DEFAULT_SESSIONS
    tmpfs_mb: int = 96  # the home's own small disk (full-disk fault); 0: no tmpfs, no full-disk fault
    # Partial fills of a quantity that is not a lot multiple (defect 9). An exchange fills F&O orders in lots, so
    # such a position can be neither protected nor sold: off by default, as no fix can make (a) hold after one.
    odd_partial_fills: bool = False
    kinds: tuple[str, ...] | None = None  # only these faults (HARNESS_FAULTS and the simulator's); None: all
    work_dir: Path | None = None
    quiet: bool = True


# ------------------------------------------------------------------------------------------------ results


@dataclass
class Violation:
    """One invariant broken: which, where, and what was seen."""

    invariant: str
    detail: str
    market_time: str = ""
    key: str = ""  # one interval seen at several steps is one violation, with its latest length

    def __str__(self) -> str:
        at = f" [{self.market_time}]" if self.market_time else ""
        return f"({self.invariant}){at} {self.detail}"


@dataclass
class FaultRecord:
    """A fault injected: kind, account, market times it started and ended (its window)."""

    kind: str
    account: str | None
    start: datetime
    end: datetime | None = None
    detail: str = ""
    one_shot: bool = False  # its window is placed where it hit (the first order placed after it)
    process_from: datetime | None = (
        None  # the run process restarted for it from then: a window for all accounts
    )


@dataclass
class ChaosReport:
    """What a run did and found."""

    seed: int
    faults: list[FaultRecord] = field(default_factory=list)
    restarts: int = 0
    kills: int = 0
    violations: list[Violation] = field(default_factory=list)
    naked_seconds: float = 0.0
    over_covered_seconds: float = 0.0
    naked_seconds_in_faults: float = 0.0
    duplicates: int = 0
    pnl_mismatches: int = 0
    rss_mb: list[tuple[float, float]] = field(default_factory=list)  # (wall seconds since start, MB)
    # pid, MB after its start-up (6th sample), last MB, seconds between the two (one sample per step)
    rss_per_process: list[tuple[int, float, float, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)  # every mismatch longer than the grace, excused or not
    pnl: list[str] = field(default_factory=list)
    broker_orders: int = 0
    broker_trades: int = 0
    market_span: str = ""
    cover_tolerance_s: float = COVER_GRACE_S  # market seconds (cover_tolerance of the run's speed)
    speed: float = 0.0
    final_recovery: str = ""  # what the final recovery restart did
    work_dir: str = ""
    full_disk: bool = False

    def fault_counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for f in self.faults:
            counts[f.kind] += 1
        return dict(sorted(counts.items()))

    def add(self, v: Violation) -> None:
        for i, x in enumerate(self.violations):
            if (v.key and x.key == v.key) or (x.invariant, x.detail) == (v.invariant, v.detail):
                self.violations[i] = v
                return
        self.violations.append(v)

    def summary(self) -> str:
        lines = [
            f"seed {self.seed}: market {self.market_span}, {self.broker_orders} broker orders, "
            f"{self.broker_trades} broker trades",
            f"faults injected: {sum(self.fault_counts().values())} {self.fault_counts()}",
            f"restarts: {self.restarts} (kill -9: {self.kills}); then the final recovery: {self.final_recovery}",
            f"cover: a LIVE position counts as covered by its resting stop (SL/SL-M) or a working exit (a LIMIT/MARKET "
            f"sell of its tag open at the broker); a mismatch counts when longer than {self.cover_tolerance_s:g} "
            f"market-s = max({COVER_GRACE_S:g} market-s, {COVER_GRACE_REAL_S:g} real-s at speed {self.speed:g})",
            f"naked-seconds (outside fault windows): {self.naked_seconds:.0f}; over-covered-seconds: "
            f"{self.over_covered_seconds:.0f}; naked-seconds inside fault windows: {self.naked_seconds_in_faults:.0f}",
            f"duplicates: {self.duplicates}; P&L mismatches: {self.pnl_mismatches}",
        ]
        if self.rss_per_process:
            # The longest-lived few (a soak restarts the run process a hundred times).
            longest = sorted(self.rss_per_process, key=lambda r: -r[3])[:4]
            growth = ", ".join(f"pid {p}: {a:.0f}→{b:.0f} MB in {s:.0f} s" for p, a, b, s in longest)
            lines.append(
                f"memory (RSS after start-up→last sample, the {len(longest)} longest-lived of "
                f"{len(self.rss_per_process)} run processes): {growth}"
            )
        lines += [f"  cover {u}" for u in self.uncovered]
        lines += [f"  P&L {p}" for p in self.pnl]
        lines += [f"  note: {n}" for n in self.notes]
        lines.append(f"violations: {len(self.violations)}")
        lines += [f"  {v}" for v in self.violations]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ the broker side


class BrokerView:
    """One account's books at the simulator, read with the real kiteconnect client (logs in again when told)."""

    def __init__(self, sim_url: str, user_id: str) -> None:
        self.sim_url = sim_url
        self.user_id = user_id
        self.kite = KiteConnect(user_id, root=sim_url, timeout=10)
        self.tokens_seen: set[str] = set()
        self.paused_until = 0.0  # monotonic: no reads (a fault the run process should meet is waiting)
        self.consumed: list[str] = []  # faults this reader met itself
        self.login()

    def login(self) -> None:
        resp = requests.get(
            f"{self.sim_url}/connect/login",
            params={"api_key": self.user_id, "v": "3"},
            allow_redirects=False,
            timeout=10,
        )
        token = parse_qs(urlsplit(resp.headers["Location"]).query)["request_token"][0]
        session = self.kite.generate_session(token, api_secret=SECRETS[self.user_id])
        self.kite.set_access_token(session["access_token"])
        self.tokens_seen.add(session["access_token"])

    def _call(self, what: str) -> Any:
        for attempt in range(8):
            wait = self.paused_until - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                return getattr(self.kite, what)()
            except Exception as exc:  # noqa: BLE001 - every failure is retried, and named when it persists
                name = type(exc).__name__
                self.consumed.append(f"{what}: {name}: {exc}")
                if name == "TokenException":
                    self.login()
                else:
                    time.sleep(min(0.3 * (attempt + 1), 2.0))
        raise RuntimeError(f"the simulator's {what} of {self.user_id} could not be read")

    def books(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(orders, trades) of the account now."""
        return self._call("orders"), self._call("trades")

    def history(self, order_id: str) -> list[dict[str, Any]]:
        for _ in range(5):
            try:
                return self.kite.order_history(order_id)
            except Exception as exc:  # noqa: BLE001
                if type(exc).__name__ == "TokenException":
                    self.login()
                time.sleep(0.3)
        return []


def sim_clock(sim_url: str) -> datetime:
    state = requests.get(f"{sim_url}/_sim/state", timeout=10).json()["data"]
    return datetime.strptime(state["clock"], "%Y-%m-%d %H:%M:%S")


# ------------------------------------------------------------------------------------------------ the run process


class RunProcess:
    """`kitedesk run WORKSPACE --sim-url URL --home HOME` as a child process, its output in a file."""

    def __init__(self, workspace: Path, sim_url: str, home: Path, out: Path, index: int) -> None:
        env = dict(
            os.environ,
            QT_QPA_PLATFORM="offscreen",
            PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
            PYTHONUNBUFFERED="1",
        )
        self.out_path = out.with_name(f"{out.stem}.{index}.out")
        self.err_path = out.with_name(f"{out.stem}.{index}.err")
        self._out = open(self.out_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in wait()
        self._err = open(self.err_path, "w", encoding="utf-8")  # noqa: SIM115
        cmd = [sys.executable, "-m", "desktop.cli", "run", str(workspace), "--sim-url", sim_url]
        cmd += ["--home", str(home), "--every", "0.5"]
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=self._err, cwd=REPO, env=env)
        self.pid = self.proc.pid
        self.started = time.monotonic()
        self.rss: list[float] = []

    def alive(self) -> bool:
        return self.proc.poll() is None

    def sample_rss(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    mb = int(line.split()[1]) / 1024
                    self.rss.append(mb)
                    return mb
        except OSError:
            return None
        return None

    def statuses(self) -> dict[tuple[str, str], str]:
        """The last state printed for each (account, label)."""
        out: dict[tuple[str, str], str] = {}
        with contextlib.suppress(OSError):
            for line in self.out_path.read_text(encoding="utf-8", errors="replace").splitlines():
                m = _STATUS_RE.match(line)
                if m:
                    out[(m.group(2), m.group(3))] = m.group(5)
        return out

    def kill9(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self.wait(10)

    def interrupt(self, timeout: float) -> int | None:
        """Ctrl-C: the run stops its sessions as the workspace says; SIGKILL if it overstays `timeout`."""
        if self.alive():
            os.kill(self.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None

    def wait(self, timeout: float) -> int | None:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        for f in (self._out, self._err):
            with contextlib.suppress(Exception):
                f.close()
        return code

    def stderr_text(self) -> str:
        with contextlib.suppress(OSError):
            return self.err_path.read_text(encoding="utf-8", errors="replace")
        return ""


# ------------------------------------------------------------------------------------------------ the home's store


@dataclass
class StoreSession:
    broker_id: str
    session_id: str
    label: str
    mode: str
    state: str
    stopped_at: datetime | None = None

    @property
    def tag(self) -> str:
        return "KD" + self.session_id.replace("-", "")[:18]


class StoreReader:
    """Reads the home's SQLite file directly (read-only, no lock held between reads)."""

    def __init__(self, db_path: Path) -> None:
        self.path = db_path

    @contextlib.contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        conn.row_factory = sqlite3.Row
        try:
            yield conn
        finally:
            conn.close()

    def rows(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        if not self.path.exists():
            return []
        for attempt in range(20):
            try:
                with self._conn() as conn:
                    return list(conn.execute(sql, args))
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []
                time.sleep(0.25 * (attempt + 1))
        raise RuntimeError(f"the home's database could not be read: {sql}")

    def sessions(self) -> list[StoreSession]:
        return [
            StoreSession(
                r["broker_id"], r["session_id"], r["label"], r["mode"], r["state"], _ts(r["stopped_at"])
            )
            for r in self.rows("SELECT broker_id, session_id, label, mode, state, stopped_at FROM sessions")
        ]


# ------------------------------------------------------------------------------------------------ invariants


def _broker_by_tag(
    orders: list[dict[str, Any]], trades: list[dict[str, Any]]
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    by_id = {str(o["order_id"]): o for o in orders}
    orders_by_tag: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for o in orders:
        orders_by_tag[str(o.get("tag") or "")].append(o)
    trades_by_tag: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in trades:
        parent = by_id.get(str(t["order_id"])) or {}
        trades_by_tag[str(parent.get("tag") or "")].append(t)
    return orders_by_tag, trades_by_tag


def broker_realised(trades: list[dict[str, Any]]) -> Decimal:
    """Realised P&L of one tag's trades, as the engine counts it: per option, round trip by round trip at
    average cost, each trip rounded once to the paisa (an open trip counts what was sold of it)."""
    total = Decimal(0)
    per_symbol: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in sorted(trades, key=lambda t: (str(t["fill_timestamp"]), str(t["trade_id"]))):
        per_symbol[str(t["tradingsymbol"])].append(t)
    for rows in per_symbol.values():
        held, cost, trip = 0, Decimal(0), Decimal(0)
        for t in rows:
            qty = int(t["quantity"])
            price = Decimal(str(t["average_price"]))
            if t["transaction_type"] == "BUY":
                if held < 0:  # a short: not something the engine ever holds; counted as cash flow
                    trip -= price * qty
                    held += qty
                    continue
                held += qty
                cost += price * qty
            else:
                sold = min(qty, held) if held > 0 else 0
                if sold:
                    share = cost if sold == held else cost * sold / held
                    cost -= share
                    held -= sold
                    trip += price * sold - share
                if qty > sold:  # sold more than held: short
                    trip += price * (qty - sold)
                    held -= qty - sold
                if held == 0:
                    total += rupees(trip)
                    trip, cost = Decimal(0), Decimal(0)
        if trip:
            total += rupees(trip)
    return total


def order_shape(symbol: str, side: str, quantity: Any, order_type: str) -> tuple[str, str, int, str]:
    """What ties a broker order to the intent it was sent for: option, side, quantity placed, and whether it is a
    stop. Not the order type itself: Kite lists a MARKET order sent with market protection as a LIMIT at the
    protected price, and the engine's own bind of an unconfirmed order matches the same way (`Orders.bind`). A
    stop (SL/SL-M) is never listed as anything else, so stops and other orders are still told apart."""
    return symbol, side, int(quantity), "stop" if order_type in STOP_TYPES else "order"


def broker_order_shape(
    order: dict[str, Any], history: list[dict[str, Any]] | None = None
) -> tuple[str, str, int, str]:
    """A broker order's shape, with the quantity it was placed with (its first history entry when it was
    modified since: the engine resizes a resting stop to what is held)."""
    placed = next((int(h["quantity"]) for h in history or [] if h.get("quantity")), None)
    return order_shape(
        str(order["tradingsymbol"]), str(order["transaction_type"]),
        placed if placed is not None else order["quantity"], str(order["order_type"]),
    )  # fmt: skip


def max_held(trades: list[dict[str, Any]]) -> dict[str, int]:
    """The most held of each option at any moment, from one tag's trades."""
    held: dict[str, int] = defaultdict(int)
    most: dict[str, int] = defaultdict(int)
    for t in sorted(trades, key=lambda t: (str(t["fill_timestamp"]), str(t["trade_id"]))):
        symbol = str(t["tradingsymbol"])
        held[symbol] += int(t["quantity"]) * (1 if t["transaction_type"] == "BUY" else -1)
        most[symbol] = max(most[symbol], held[symbol])
    return dict(most)


def least_held(trades: list[dict[str, Any]]) -> dict[str, int]:
    """The least held of each option at any moment, from one tag's trades: below 0, it sold more than it held."""
    held: dict[str, int] = defaultdict(int)
    least: dict[str, int] = defaultdict(int)
    for t in sorted(trades, key=lambda t: (str(t["fill_timestamp"]), str(t["trade_id"]))):
        symbol = str(t["tradingsymbol"])
        held[symbol] += int(t["quantity"]) * (1 if t["transaction_type"] == "BUY" else -1)
        least[symbol] = min(least[symbol], held[symbol])
    return dict(least)


def fills_realised(fills: list[sqlite3.Row]) -> Decimal:
    rows = [
        {
            "tradingsymbol": f["tradingsymbol"],
            "quantity": f["quantity"],
            "average_price": f["price"],
            "transaction_type": f["side"],
            "fill_timestamp": str(f["timestamp"]),
            "trade_id": f["fill_id"],
        }
        for f in fills
    ]
    return broker_realised(rows)


@dataclass
class CoverInterval:
    tag: str
    symbol: str
    start: datetime
    end: datetime
    held: int
    covered: int
    # "stop_ended": a position that was covered lost (part of) its stop with nothing sold; else "position_grew"
    cause: str = "position_grew"

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def covers(order: dict[str, Any]) -> bool:
    """A sell that covers a held position while it works at the broker: a stop (SL/SL-M) resting, or an exit
    (LIMIT/MARKET) open. The engine only ever buys options, so every sell of a tag is one of the two."""
    return order["transaction_type"] == "SELL" and order["order_type"] in (*STOP_TYPES, *EXIT_TYPES)


def cover_timeline(
    orders: list[dict[str, Any]],
    trades: list[dict[str, Any]],
    histories: dict[str, list[dict[str, Any]]],
    now: datetime,
) -> list[CoverInterval]:
    """Intervals (market time) where a tag's position in an option differs from the quantity its working sells
    cover: resting stops and working exits (`covers`)."""
    by_id = {str(o["order_id"]): o for o in orders}
    events: dict[tuple[str, str], list[tuple[datetime, int, int]]] = defaultdict(list)  # (t, d_held, d_cover)
    for t in trades:
        o = by_id.get(str(t["order_id"]))
        if o is None or not str(o.get("tag") or "").startswith("KD"):
            continue
        when = _ts(t["fill_timestamp"]) or now
        qty = int(t["quantity"])
        sign = 1 if t["transaction_type"] == "BUY" else -1
        key = (str(o["tag"]), str(t["tradingsymbol"]))
        events[key].append((when, sign * qty, 0))
        if covers(o):
            events[key].append((when, 0, -qty))  # what a stop or an exit sells no longer covers
    for o in orders:
        tag = str(o.get("tag") or "")
        if not tag.startswith("KD") or not covers(o):
            continue
        if o["status"] == "REJECTED":  # refused at placement: it never covered anything
            continue
        key = (tag, str(o["tradingsymbol"]))
        placed = _ts(o["order_timestamp"]) or now
        # The quantity it rests with over time: from its history when it was modified, else as it is now.
        steps = histories.get(str(o["order_id"])) or [dict(o, status="TRIGGER PENDING")]
        current = 0
        for s in steps:
            if s.get("status") in ("COMPLETE", "CANCELLED", "REJECTED"):
                break
            qty = int(s.get("quantity") or 0)
            if qty != current:
                when = placed if current == 0 else (_ts(s.get("exchange_update_timestamp")) or placed)
                events[key].append((when, 0, qty - current))
                current = qty
        if o["status"] in ("COMPLETE", "CANCELLED"):
            # what it sold was taken off at each of its fills; the unfilled rest stops covering at its end
            rest = current - int(o.get("filled_quantity") or 0)
            if rest:
                events[key].append((_ts(o.get("exchange_update_timestamp")) or now, 0, -rest))
    out: list[CoverInterval] = []
    for (tag, symbol), evs in events.items():
        evs.sort(key=lambda e: e[0])
        held = cover = 0
        bad_since: datetime | None = None
        bad_state = (0, 0)
        i = 0
        cause = ""
        while i < len(evs):
            at = evs[i][0]
            before = (held, cover)
            while i < len(evs) and evs[i][0] == at:  # everything at one market second at once
                held += evs[i][1]
                cover += evs[i][2]
                i += 1
            bad = (held > 0 or cover > 0) and held != cover
            if bad and bad_since is None:
                bad_since, bad_state = at, (held, cover)
                was_covered = before[0] > 0 and before[0] == before[1]
                cause = (
                    "stop_ended" if was_covered and held >= before[0] and cover < held else "position_grew"
                )
            elif not bad and bad_since is not None:
                out.append(CoverInterval(tag, symbol, bad_since, at, *bad_state, cause))
                bad_since = None
        if bad_since is not None:
            out.append(CoverInterval(tag, symbol, bad_since, max(now, bad_since), *bad_state, cause))
    return out


def _overlap(a0: datetime, a1: datetime, windows: list[tuple[datetime, datetime]]) -> float:
    """Seconds of [a0, a1) inside the union of `windows`."""
    spans = sorted((max(a0, w0), min(a1, w1)) for w0, w1 in windows if w1 > a0 and w0 < a1)
    total, cur0, cur1 = 0.0, None, None
    for s0, s1 in spans:
        if cur1 is None or s0 > cur1:
            if cur0 is not None and cur1 is not None:
                total += (cur1 - cur0).total_seconds()
            cur0, cur1 = s0, s1
        else:
            cur1 = max(cur1, s1)
    if cur0 is not None and cur1 is not None:
        total += (cur1 - cur0).total_seconds()
    return total


# ------------------------------------------------------------------------------------------------ the run


class ChaosRun:
    """One seeded chaos run: start everything, inject faults, check after every step, stop, check at the end."""

    def __init__(self, config: ChaosConfig) -> None:
        self.cfg = config
        self.rng = random.Random(config.seed)
        self.report = ChaosReport(
            seed=config.seed, cover_tolerance_s=cover_tolerance(config.speed), speed=config.speed
        )
        base = config.work_dir or Path(tempfile.mkdtemp(prefix=f"kitedesk-chaos-{config.seed}-"))
        self.dir = Path(base)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.report.work_dir = str(self.dir)
        self.home = self.dir / "home"
        self.workspace = self.dir / "chaos_workspace.toml"
        self.sim: SimProcess | None = None
        self.run: RunProcess | None = None
        self.runs: list[RunProcess] = []
        self.views: dict[str, BrokerView] = {}
        self.mounted = False
        self._filler: Path | None = None
        self._lock_thread: threading.Thread | None = None
        self._lock_stop = threading.Event()
        self.t0 = 0.0
        self.last_books: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
        self._histories: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(dict)
        self._restart_at: float | None = None
        self._pending_restart_fault: FaultRecord | None = None
        self._timed_ends: list[tuple[float, FaultRecord, str]] = []  # (monotonic end, fault, what to undo)
        self.final_phase = False
        self._dups: dict[str, int] = {}
        self._kill_on_restart = True

    # -- lifecycle ---------------------------------------------------------------------------------

    def log(self, text: str) -> None:
        if not self.cfg.quiet:
            print(f"[chaos {time.monotonic() - self.t0:6.1f}s] {text}", flush=True)

    def execute(self) -> ChaosReport:
        """Runs the whole chaos run; always cleans up (processes, mounts)."""
        self.t0 = time.monotonic()
        try:
            self._setup()
            self._drive()
            self._finish()
        finally:
            self._cleanup()
        return self.report

    def _setup(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if self.cfg.tmpfs_mb > 0:
            done = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={self.cfg.tmpfs_mb}m", "tmpfs", str(self.home)],
                capture_output=True, text=True,
            )  # fmt: skip
            self.mounted = done.returncode == 0
            if not self.mounted:
                self.report.notes.append(
                    "full-disk fault NOT injected: mounting a tmpfs for the home was refused "
                    f"({done.stderr.strip() or done.returncode}); run as root to include it"
                )
        self.report.full_disk = self.mounted
        self.workspace.write_text(
            "version = 1\n\n" + "\n".join(s.toml() for s in self.cfg.sessions), encoding="utf-8"
        )
        hh, mm = (int(x) for x in self.cfg.start.split(":"))
        self.sim = SimProcess.start(
            speed=self.cfg.speed, seed=self.cfg.seed, start=DAY.replace(hour=hh, minute=mm)
        )
        self.market_start = sim_clock(self.sim.url)
        for user in sorted({s.profile for s in self.cfg.sessions}):
            self.views[user] = BrokerView(self.sim.url, user)
        self._start_run()

    def _start_run(self) -> None:
        assert self.sim is not None
        self.run = RunProcess(self.workspace, self.sim.url, self.home, self.dir / "run", len(self.runs))
        self.runs.append(self.run)
        self.log(f"run process {self.run.pid} started")

    def _now(self) -> datetime:
        assert self.sim is not None
        return sim_clock(self.sim.url)

    def _drive(self) -> None:
        cfg = self.cfg
        deadline = self.t0 + cfg.seconds
        next_fault = time.monotonic() + 8.0 + self.rng.expovariate(1 / cfg.mean_fault_gap_s)
        while time.monotonic() < deadline:
            step_end = time.monotonic() + cfg.step_s
            self._end_timed_faults()
            self._restart_if_due()
            if time.monotonic() >= next_fault and self._restart_at is None:
                self._inject_random()
                next_fault = time.monotonic() + self.rng.expovariate(1 / cfg.mean_fault_gap_s)
            if self.run is not None:
                mb = self.run.sample_rss()
                if mb is not None:
                    self.report.rss_mb.append((time.monotonic() - self.t0, mb))
                if not self.run.alive() and self._restart_at is None:
                    code = self.run.wait(1)
                    text = self.run.stderr_text()
                    err = text.strip().splitlines()
                    # A start while another program keeps the database locked (or the disk full) may end at once
                    # with one clear line: it cannot record, so it does not trade. Noted; any other exit is a
                    # violation.
                    if not self._clear_storage_exit(code, text, "at its start"):
                        self.report.add(Violation(
                            "run", f"`kitedesk run` exited by itself with code {code}: {err[-1] if err else ''}",
                            str(self._now()),
                        ))  # fmt: skip
                    self._restart_at = time.monotonic() + 1.0
            self.check_step()
            time.sleep(max(0.0, step_end - time.monotonic()))
        # Every fault ends before the final stop: the run must be able to stop cleanly.
        for end in list(self._timed_ends):
            self._end_fault(end)
        self._timed_ends.clear()
        if self._restart_at is not None:
            self._restart_at = time.monotonic()
            self._restart_if_due()

    def _finish(self) -> None:
        """Stops the run (Ctrl-C) and lets the market go on with no process for FINAL_GAP_S (a kept position's stop
        may fill then, as after any kill); then the final recovery: the market clock slowed to a crawl (nothing
        trades from then on), `kitedesk run` started once more, which must count every fill since the last process
        exited, a settle period, Ctrl-C; then the books are checked once more. Without it a stop that filled
        after the last process stopped reads as a P&L mismatch, though the next start would count it."""
        self.final_phase = True
        if self.run is not None:
            self._wait_running(30.0)
            self._final_stop()
        self._end_second_processes()
        time.sleep(FINAL_GAP_S)
        assert self.sim is not None
        clock = requests.post(f"{self.sim.url}/_sim/clock", json={"speed": FINAL_SPEED}, timeout=10)
        clock.raise_for_status()
        began = time.monotonic()
        self._start_run()
        up = self._wait_running(90.0)
        if not up:  # no fault is active any more: a segment that fails to start here manages nothing
            self.report.add(Violation(
                "recovery", "the final restart (no fault active) had not all sessions running after 90 s",
                str(self._now()),
            ))  # fmt: skip
        settled = self._settle(60.0)
        self.check_step()
        self._final_stop()
        self.report.final_recovery = (
            f"restarted at market speed {FINAL_SPEED:g}, "
            + ("all sessions running" if up else "NOT all sessions running after 90 s")
            + f", {'every LIVE trade in its store' if settled else 'LIVE trades still missing from the store'}"
            + f" after {time.monotonic() - began:.0f} s, then stopped"
        )
        self.check_step(final=True)
        books = {u: {"orders": o, "trades": t} for u, (o, t) in self.last_books.items()}
        (self.dir / "broker_books.json").write_text(
            json.dumps(books, indent=1, default=str), encoding="utf-8"
        )
        faults = [dataclasses.asdict(f) for f in self.report.faults]
        (self.dir / "faults.json").write_text(json.dumps(faults, indent=1, default=str), encoding="utf-8")
        self.check_final()
        now = self._now()
        self.report.market_span = f"{self.market_start:%H:%M:%S}→{now:%H:%M:%S}"
        for r in self.runs:
            if r.rss:
                first = min(len(r.rss) - 1, 5)
                span = (len(r.rss) - 1 - first) * self.cfg.step_s
                self.report.rss_per_process.append((r.pid, r.rss[first], r.rss[-1], span))

    def _final_stop(self) -> None:
        """Ctrl-C to the run process: it must end with 0 (or one clear line after a full disk)."""
        assert self.run is not None
        code = self.run.interrupt(120.0)
        if code != 0 and not self._clear_storage_exit(code, self.run.stderr_text()):
            err = self.run.stderr_text().strip().splitlines()
            self.report.add(Violation(
                "run", f"`kitedesk run` ended with {code} on Ctrl-C: {err[-1] if err else '(no message)'}",
            ))  # fmt: skip
        self.log(f"run process {self.run.pid} stopped")
        self.run = None

    def _missing_live_fills(self) -> int:
        """Broker trades of a LIVE session's tag not yet in that session's fills (recovery has not counted)."""
        store = StoreReader(self.home / "kitedesk.db")
        sessions = store.sessions()
        missing = 0
        for user, view in self.views.items():
            orders, trades = view.books()
            _, trades_by_tag = _broker_by_tag(orders, trades)
            for s in sessions:
                if s.broker_id != user or s.mode != "LIVE":
                    continue
                have = {
                    r["fill_id"]
                    for r in store.rows(
                        "SELECT fill_id FROM fills WHERE broker_id=? AND session_id=?", user, s.session_id
                    )
                }
                missing += len({str(t["trade_id"]) for t in trades_by_tag.get(s.tag, [])} - have)
        return missing

    def _settle(self, timeout: float) -> bool:
        """At least SETTLE_S real seconds, then until every LIVE trade at the broker is in its session's fills (or
        `timeout`): the final recovery has counted what filled while no process ran. False if it had not."""
        time.sleep(SETTLE_S)
        end = time.monotonic() + timeout
        while True:
            if self._missing_live_fills() == 0:
                return True
            if time.monotonic() >= end or self.run is None or not self.run.alive():
                return False
            time.sleep(0.5)

    def _cleanup(self) -> None:
        self._lock_stop.set()
        if self._lock_thread is not None:
            self._lock_thread.join(10)
        for r in self.runs:
            with contextlib.suppress(Exception):
                r.kill9()
        if self._filler is not None:
            with contextlib.suppress(OSError):
                self._filler.unlink()
        if self.sim is not None:
            self.sim.stop()
        if self.mounted:
            # Keep what the run left for a post-mortem: copied off the tmpfs before it goes.
            with contextlib.suppress(Exception):
                subprocess.run(["cp", "-a", str(self.home), str(self.dir / "home-copy")], check=False)
            subprocess.run(["umount", "-l", str(self.home)], check=False)

    def _wait_running(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        want = {(s.profile, s.label) for s in self.cfg.sessions}
        while time.monotonic() < end:
            if self.run is None or not self.run.alive():
                return False
            st = self.run.statuses()
            if want <= set(st) and all(st[k] in ("running", "halted") for k in want):
                return True
            time.sleep(0.2)
        return False

    # -- faults ------------------------------------------------------------------------------------

    def _sim_fault(self, body: dict[str, Any]) -> dict[str, Any]:
        assert self.sim is not None
        return self.sim.inject_fault(body)

    def _inject_random(self) -> None:
        rng = self.rng
        kinds = [k for k in FAULT_KINDS]
        kinds += ["kill9", "kill9", "restart", "db_lock", "second_process"]
        if self.mounted:
            kinds.append("disk_full")
        if self.cfg.kinds is not None:
            kinds = [k for k in kinds if k in self.cfg.kinds]
        kind = rng.choice(kinds)
        account = rng.choice(sorted(self.views))
        now = self._now()
        speed = self.cfg.speed
        rec = FaultRecord(kind, account, now)
        body: dict[str, Any] = {"kind": kind, "api_key": account}
        if kind == "expire_token":
            self._sim_fault(body)
            self.views[account].login()  # the reader logs in again; the run needs a restart (a new login)
            rec.detail = "token expired; the run logs in again on its restart"
            self._schedule_restart(rec, rng.uniform(2.0, 5.0), kill=rng.random() < 0.5)
        elif kind in ("stall_ws", "rate_limit"):
            seconds = round(rng.uniform(1.0, 4.0), 1)
            body["seconds"] = seconds
            self._sim_fault(body)
            rec.detail = f"{seconds} s"
            if kind == "rate_limit":
                self.views[account].paused_until = time.monotonic() + seconds
            self._timed_ends.append((time.monotonic() + seconds, rec, ""))
        elif kind == "fill_part_of_next_order":
            # UK1234 trades 2 lots (NIFTY 130, SENSEX 40): 65 leaves a NIFTY order one lot filled and fills a
            # SENSEX one in full; UK9394's orders are one lot, so only an odd part can cut them.
            if self.cfg.odd_partial_fills:
                qty = rng.choice([65, 45, 13])
            else:
                body["api_key"] = rec.account = "UK1234"
                qty = 65
            body["quantity"] = qty
            self._sim_fault(body)
            rec.detail, rec.one_shot = f"{qty} units", True
        elif kind == "lose_next_order_reply":
            body["how"] = rng.choice(["drop", "503"])
            self._sim_fault(body)
            rec.detail, rec.one_shot = body["how"], True
        elif kind == "fail_next_request":
            body["error_type"] = rng.choice(
                ["NetworkException", "DataException", "GeneralException", "OrderException", "InputException"]
            )
            self.views[account].paused_until = time.monotonic() + 3.0  # let the run meet it, not the reader
            self._sim_fault(body)
            rec.detail = body["error_type"]
            rec.end = now + timedelta(seconds=3.0 * speed)
        elif kind in ("reject_next_order", "drop_ws"):
            self._sim_fault(body)
            rec.one_shot = kind == "reject_next_order"
            if kind == "drop_ws":
                rec.end = now
        elif kind == "kill9":
            rec.account = None
            self._schedule_restart(rec, rng.uniform(0.0, 3.0), kill=True, now_kill=True)
        elif kind == "restart":
            rec.account = None
            self._schedule_restart(rec, rng.uniform(0.0, 2.0), kill=False, now_kill=True)
        elif kind == "db_lock":
            rec.account = None
            seconds = round(rng.uniform(3.0, 25.0), 1)
            rec.detail = f"{seconds} s exclusive lock"
            self._hold_db_lock(seconds)
            self._timed_ends.append((time.monotonic() + seconds, rec, ""))
        elif kind == "disk_full":
            rec.account = None
            seconds = round(rng.uniform(2.0, 10.0), 1)
            rec.detail = f"{seconds} s"
            self._fill_disk()
            self._timed_ends.append((time.monotonic() + seconds, rec, "disk"))
        elif kind == "second_process":
            rec.account = None
            seconds = round(rng.uniform(3.0, 8.0), 1)
            rec.detail = f"a second `kitedesk run` on the same home for {seconds} s"
            assert self.sim is not None
            second = RunProcess(self.workspace, self.sim.url, self.home, self.dir / "second", len(self.runs))
            self.runs.append(second)
            self._timed_ends.append((time.monotonic() + seconds, rec, f"kill:{second.pid}"))
        elif kind == "malform_next_reply":
            # Kite's positions reply with "quantity": "lots" (defect 7): validated at the broker layer, retried.
            # Positions only: this harness never reads them, so the run process is the one that meets it.
            body.update(path="/portfolio/positions", times=rng.randint(1, 3))
            self._sim_fault(body)
            rec.detail, rec.end = f"positions reply malformed {body['times']} time(s)", now
        elif kind in MARKET_FAULTS:
            # A market event on an option the sessions hold (else one they traded): its premium gaps down through
            # the stops (-25 %, -55 %), or it counts as not traded today (MARKET orders in it refused).
            target = self._market_fault_target()
            if target is None:
                self.report.notes.append(
                    f"{kind} at {now:%H:%M:%S} not injected: no option held or traded yet"
                )
                return
            exchange, symbol = target
            body = {"kind": kind, "exchange": exchange, "tradingsymbol": symbol}
            if kind == "gap_premium":
                body["percent"] = rng.choice([-25, -55])
            answer = self._sim_fault(body)
            rec.account = None  # every account sees it
            rec.detail = f"{symbol}" + (
                f" {body['percent']} % ({answer.get('before')} → {answer.get('after')})"
                if "percent" in body
                else ""
            )
            rec.end = now
        else:  # a fault the simulator learnt after this harness was written: tried with no parameters
            try:
                self._sim_fault(body)
            except requests.HTTPError as exc:
                self.report.notes.append(
                    f"the simulator's fault {kind} was not injected (it needs parameters): {exc}"
                )
                return
            rec.one_shot = "next" in kind
            rec.end = None if rec.one_shot else now
        self.report.faults.append(rec)
        self.log(f"fault {kind} {rec.account or ''} {rec.detail}")

    def _market_fault_target(self) -> tuple[str, str] | None:
        """(exchange, option) for a market fault: one a KiteDesk session holds at the broker now, else the one
        traded last; None before any trade."""
        held: dict[tuple[str, str], int] = defaultdict(int)
        last: list[tuple[str, tuple[str, str]]] = []
        for user in sorted(self.last_books):
            orders, trades = self.last_books[user]
            by_id = {str(o["order_id"]): o for o in orders}
            for t in trades:
                o = by_id.get(str(t["order_id"])) or {}
                if not str(o.get("tag") or "").startswith("KD"):
                    continue
                key = (str(t.get("exchange") or o.get("exchange") or "NFO"), str(t["tradingsymbol"]))
                held[key] += int(t["quantity"]) * (1 if t["transaction_type"] == "BUY" else -1)
                last.append((str(t["fill_timestamp"]), key))
        holding = sorted(k for k, q in held.items() if q > 0)
        if holding:
            return self.rng.choice(holding)
        return max(last)[1] if last else None

    def _schedule_restart(self, rec: FaultRecord, delay: float, kill: bool, now_kill: bool = False) -> None:
        if now_kill:
            self._stop_run(kill)
            rec.detail = (rec.detail + " " if rec.detail else "") + ("kill -9" if kill else "Ctrl-C")
            self._restart_at = time.monotonic() + delay
        else:
            self._restart_at = time.monotonic() + delay
            self._kill_on_restart = kill
        self._pending_restart_fault = rec

    def _stop_run(self, kill: bool) -> None:
        if self.run is None:
            return
        if kill:
            self.run.kill9()
            self.report.kills += 1
        else:
            code = self.run.interrupt(120.0)
            if code not in (0, None) and not self._clear_storage_exit(code, self.run.stderr_text()):
                err = self.run.stderr_text().strip().splitlines()
                self.report.add(Violation(
                    "run", f"`kitedesk run` ended with {code} on Ctrl-C: {err[-1] if err else '(no message)'}",
                    str(self._now()),
                ))  # fmt: skip
        self.log(f"run process {self.run.pid} {'killed' if kill else 'stopped'}")
        self.run = None

    def _clear_storage_exit(self, code: int | None, stderr: str, when: str = "on Ctrl-C") -> bool:
        """Issue 16 §10: Ctrl-C after a full disk, or while another program keeps the database locked, may end
        `kitedesk run` with exit 1 and one clear line (no traceback) saying so: what it could not save is said, and
        the next start takes the session over. Noted, not a violation; any other failing exit is one."""
        if code != 1 or "Traceback" in stderr:
            return False
        said = [line for line in stderr.strip().splitlines() if line.startswith("kitedesk run:")]
        if len(said) != 1:
            return False
        kinds = {f.kind for f in self.report.faults}
        full = "disk_full" in kinds and any(w in said[0] for w in ("disk", "record"))
        locked = "db_lock" in kinds and "locked by another program" in said[0]
        if not (full or locked):
            return False
        why = "the full disk" if full else "a database lock"
        self.report.notes.append(f"`kitedesk run` ended with 1 {when} after {why}: {said[0]}")
        return True

    def _restart_if_due(self) -> None:
        if self._restart_at is None or time.monotonic() < self._restart_at:
            return
        rec = self._pending_restart_fault
        if rec is not None and rec.process_from is None:
            rec.process_from = self._now()
        if self.run is not None:
            self._stop_run(self._kill_on_restart)
        self._end_second_processes()
        self._restart_at = None
        self._start_run()
        self.report.restarts += 1
        if self._wait_running(60.0):
            pass
        else:
            self.report.notes.append(
                f"a restart at {self._now():%H:%M:%S} had not all sessions running after 60 s"
            )
        if rec is not None:
            rec.end = self._now()
            self._pending_restart_fault = None

    def _end_second_processes(self) -> None:
        """A second `kitedesk run` injected while the run process runs ends before the run process is started
        again: left alive, it would take the home's lock in the gap (the product's one-process-per-home lock
        working as it should) and the restarted run would be refused, read as a run that failed."""
        for item in [e for e in self._timed_ends if e[2].startswith("kill:")]:
            self._timed_ends.remove(item)
            self._end_fault(item)

    def _end_timed_faults(self) -> None:
        now = time.monotonic()
        for item in [e for e in self._timed_ends if e[0] <= now]:
            self._timed_ends.remove(item)
            self._end_fault(item)

    def _end_fault(self, item: tuple[float, FaultRecord, str]) -> None:
        _, rec, what = item
        if rec.kind == "db_lock":
            self._lock_stop.set()
            if self._lock_thread is not None:
                self._lock_thread.join(10)
        if what == "disk" and self._filler is not None:
            with contextlib.suppress(OSError):
                self._filler.unlink()
            self._filler = None
        if what.startswith("kill:"):
            pid = int(what.split(":")[1])
            for r in self.runs:
                if r.pid == pid:
                    r.kill9()
        rec.end = self._now()

    def _hold_db_lock(self, seconds: float) -> None:
        db = self.home / "kitedesk.db"
        self._lock_stop = threading.Event()
        stop = self._lock_stop
        got = threading.Event()

        def hold() -> None:
            try:
                conn = sqlite3.connect(str(db), timeout=10, isolation_level=None)
                conn.execute("BEGIN EXCLUSIVE")
                got.set()
                stop.wait(seconds + 1)
                conn.execute("ROLLBACK")
                conn.close()
            except sqlite3.Error as exc:
                self.report.notes.append(f"the database lock could not be taken: {exc}")
                got.set()

        self._lock_thread = threading.Thread(target=hold, name="chaos-db-lock", daemon=True)
        self._lock_thread.start()
        got.wait(15)

    def _fill_disk(self) -> None:
        self._filler = self.home / "chaos-filler.bin"
        chunk = b"\0" * (1 << 20)
        with contextlib.suppress(OSError), open(self._filler, "wb") as f:
            while True:
                f.write(chunk)
                f.flush()
        with contextlib.suppress(OSError), open(self._filler, "ab") as f:  # the last few KB too
            while True:
                f.write(b"\0" * 4096)
                f.flush()

    # -- checks ------------------------------------------------------------------------------------

    def _fault_windows(
        self, account: str, orders: list[dict[str, Any]], storage: bool = True
    ) -> list[tuple[datetime, datetime]]:
        grace = timedelta(seconds=max(FAULT_GRACE_S, 3.0 * self.cfg.speed))
        now = self._now()
        placed = sorted((_ts(o["order_timestamp"]) or now) for o in orders)
        out = []
        for f in self.report.faults:
            if f.process_from is not None and (storage or f.kind not in STORAGE_FAULTS):
                out.append(
                    (f.process_from, (f.end or now) + grace)
                )  # the restart stops every account's session
            if f.account not in (None, account) or (not storage and f.kind in STORAGE_FAULTS):
                continue
            start = f.start
            if f.one_shot:  # it hits the first order placed after it
                hit = next((t for t in placed if t >= f.start), None)
                if hit is None:
                    continue
                start = hit
                end = hit
            else:
                end = f.end or now
            out.append((start, end + grace))
        return out

    def check_step(self, final: bool = False) -> None:
        """(a), (b) and (e) against the books now."""
        store = StoreReader(self.home / "kitedesk.db")
        sessions = store.sessions()
        now = self._now()
        naked = over = in_faults = 0.0
        uncovered: list[str] = []
        tolerance = self.report.cover_tolerance_s
        for user, view in self.views.items():
            orders, trades = view.books()
            self.last_books[user] = (orders, trades)
            hist = self._histories[user]
            for o in orders:  # modified orders: the quantity they were placed with is in their history
                if o.get("modified") and str(o.get("tag") or "").startswith("KD"):
                    oid = str(o["order_id"])
                    if oid not in hist or o["status"] not in ("COMPLETE", "CANCELLED", "REJECTED"):
                        hist[oid] = view.history(oid)
            windows = self._fault_windows(user, orders)
            # Write-ahead may hold a new stop back while the store cannot write, but nothing excuses taking a stop
            # away from a position the store cannot then sell (issue 16, defect 3).
            windows_stop_ended = self._fault_windows(user, orders, storage=False)
            for iv in cover_timeline(orders, trades, hist, now):
                if iv.seconds <= tolerance:
                    continue
                excused = _overlap(
                    iv.start, iv.end, windows_stop_ended if iv.cause == "stop_ended" else windows
                )
                outside = iv.seconds - excused
                uncovered.append(
                    f"{user} {iv.tag} {iv.symbol}: held {iv.held}, stops {iv.covered} ({iv.cause}) from {iv.start:%H:%M:%S} "
                    f"for {iv.seconds:.0f} s ({excused:.0f} s in fault windows)"
                )
                if iv.held > iv.covered:
                    naked += max(0.0, outside)
                    in_faults += excused
                else:
                    over += max(0.0, outside)
                if outside > tolerance:
                    what = "uncovered" if iv.held > iv.covered else "over-covered (a stop would sell short)"
                    if iv.cause == "stop_ended":
                        what += " after its stop ended with nothing sold"
                    self.report.add(Violation(
                        "a", f"{user} {iv.tag} {iv.symbol}: held {iv.held}, resting stops {iv.covered}: {what} "
                        f"from {iv.start:%H:%M:%S} for {iv.seconds:.0f} s ({excused:.0f} s of it in fault windows)",
                        f"{iv.start:%H:%M:%S}", key=f"a {user} {iv.tag} {iv.symbol} {iv.start}",
                    ))  # fmt: skip
            self._check_duplicates(user, orders, trades, store, sessions, hist)
            self._check_trade_limits(user, orders, trades, store, sessions)
        self.report.uncovered = uncovered
        self.report.naked_seconds = naked
        self.report.over_covered_seconds = over
        self.report.naked_seconds_in_faults = in_faults

    def _session_specs(self) -> dict[tuple[str, str], SessionSpec]:
        return {(s.profile, s.label): s for s in self.cfg.sessions}

    def _check_duplicates(self, user: str, orders: list[dict[str, Any]], trades: list[dict[str, Any]],
                          store: StoreReader, sessions: list[StoreSession],
                          histories: dict[str, list[dict[str, Any]]] | None = None) -> None:  # fmt: skip
        orders_by_tag, trades_by_tag = _broker_by_tag(orders, trades)
        dups = 0
        now = self._now()
        grace = timedelta(seconds=max(FAULT_GRACE_S, 3.0 * self.cfg.speed))
        storage = [(f.start, (f.end or now) + grace) for f in self.report.faults if f.kind in STORAGE_FAULTS]
        placed_at = {str(o["order_id"]): _ts(o["order_timestamp"]) or now for o in orders}
        for s in sessions:
            if s.broker_id != user or s.mode != "LIVE":
                continue
            at_broker = orders_by_tag.get(s.tag, [])
            if not at_broker:
                continue
            intents = store.rows(
                "SELECT intent_id, tradingsymbol, side, quantity, order_type FROM order_intents "
                "WHERE broker_id=? AND session_id=?", user, s.session_id,
            )  # fmt: skip
            recorded = {
                r["order_id"]: r["intent_id"]
                for r in store.rows(
                    "SELECT order_id, intent_id FROM orders WHERE broker_id=? AND session_id=?",
                    user,
                    s.session_id,
                )
            }
            per_intent: dict[str, list[str]] = defaultdict(list)
            for o in at_broker:
                intent = recorded.get(str(o["order_id"]))
                if intent:
                    per_intent[intent].append(str(o["order_id"]))
            for intent, ids in per_intent.items():
                if len(ids) > 1:
                    dups += len(ids) - 1
                    self.report.add(Violation("b", f"{user} '{s.label}': intent {intent} is at the broker "
                                                   f"{len(ids)} times: orders {', '.join(ids)}"))  # fmt: skip
            shapes: dict[tuple[str, str, int, str], int] = defaultdict(int)
            for r in intents:
                shapes[order_shape(r["tradingsymbol"], r["side"], r["quantity"], r["order_type"])] += 1
            broker_shapes: dict[tuple[str, str, int, str], list[str]] = defaultdict(list)
            for o in at_broker:
                broker_shapes[broker_order_shape(o, (histories or {}).get(str(o["order_id"])))].append(
                    str(o["order_id"])
                )
            for shape, ids in broker_shapes.items():
                if len(ids) > shapes.get(shape, 0):
                    # A sale (a stop, or the sale of a position no stop protects) is sent unjournalled while the
                    # store cannot write (issue 16 defect 3: never naked for want of a journal), and journalled once
                    # it writes: one a kill -9 caught first stays unjournalled. It is excused here when placed in a
                    # storage fault's window; a second sale of one position is still caught, as a short below and as
                    # an over-covered position in (a).
                    unjournalled = sum(
                        1 for oid in ids
                        if shape[1] == "SELL" and any(w0 <= placed_at[oid] <= w1 for w0, w1 in storage)
                    )  # fmt: skip
                    extra = max(0, len(ids) - shapes.get(shape, 0) - unjournalled)
                    if not extra:
                        continue
                    dups += extra
                    self.report.add(Violation(
                        "b", f"{user} '{s.label}' ({s.tag}): {len(ids)} broker orders {shape[1]} {shape[2]} "
                        f"{shape[0]} ({shape[3]}) but {shapes.get(shape, 0)} such intents journalled "
                        f"(orders {', '.join(ids)})", key=f"b {s.session_id} {shape}",
                    ))  # fmt: skip
            for symbol, least in least_held(trades_by_tag.get(s.tag, [])).items():
                if least < 0:
                    dups += 1
                    self.report.add(Violation(
                        "b", f"{user} '{s.label}' ({s.tag}) sold {-least} {symbol} more than it held: a sale sent "
                        "twice", key=f"b short {s.session_id} {symbol}",
                    ))  # fmt: skip
            # One entry per segment at a time: holding more than one entry's quantity is an entry sent twice
            # (e.g. two processes driving one session), whatever the journal says.
            for symbol, most in max_held(trades_by_tag.get(s.tag, [])).items():
                entry = max(
                    (int(o["quantity"]) for o in at_broker
                     if o["tradingsymbol"] == symbol and o["transaction_type"] == "BUY"),
                    default=0,
                )  # fmt: skip
                if most > entry:
                    dups += 1
                    self.report.add(Violation(
                        "b", f"{user} '{s.label}' ({s.tag}) held {most} {symbol} at once, more than one entry of "
                        f"{entry}: an entry was sent twice", key=f"b {s.session_id} {symbol}",
                    ))  # fmt: skip
        self._dups[user] = dups
        self.report.duplicates = sum(self._dups.values())

    def _check_trade_limits(self, user: str, orders: list[dict[str, Any]], trades: list[dict[str, Any]],
                            store: StoreReader, sessions: list[StoreSession]) -> None:  # fmt: skip
        specs = self._session_specs()
        orders_by_tag, _ = _broker_by_tag(orders, trades)
        for s in sessions:
            spec = specs.get((s.broker_id, s.label))
            if s.broker_id != user or spec is None:
                continue
            entries: dict[str, set[str]] = defaultdict(set)
            if s.mode == "LIVE":
                for o in orders_by_tag.get(s.tag, []):
                    if o["transaction_type"] == "BUY" and int(o.get("filled_quantity") or 0) > 0:
                        entries[segment_of(str(o["tradingsymbol"]))].add(str(o["order_id"]))
            else:
                for f in store.rows(
                    "SELECT order_id, tradingsymbol FROM fills WHERE broker_id=? AND session_id=? AND side='BUY'",
                    user, s.session_id,
                ):  # fmt: skip
                    entries[segment_of(f["tradingsymbol"])].add(f["order_id"])
            for seg, ids in entries.items():
                if len(ids) > spec.max_trades_per_day:
                    self.report.add(Violation(
                        "e", f"{user} '{s.label}' {s.mode} {seg}: {len(ids)} filled entries today, "
                        f"max_trades_per_day = {spec.max_trades_per_day}", key=f"e {s.session_id} {seg}",
                    ))  # fmt: skip

    def check_final(self) -> None:
        """(c) and (d), once the run has stopped and everything it wrote is in."""
        store = StoreReader(self.home / "kitedesk.db")
        sessions = store.sessions()
        mismatches = 0
        n_orders = n_trades = 0
        for user in self.views:
            orders, trades = self.last_books[user]
            n_orders += len(orders)
            n_trades += len(trades)
            _, trades_by_tag = _broker_by_tag(orders, trades)
            for s in sessions:
                if s.broker_id != user:
                    continue
                fills = store.rows(
                    "SELECT fill_id, order_id, tradingsymbol, side, quantity, price, timestamp FROM fills "
                    "WHERE broker_id=? AND session_id=? ORDER BY timestamp, fill_id", user, s.session_id,
                )  # fmt: skip
                stored = self._stored_realised(store, s)
                if s.mode == "LIVE":
                    tagged = trades_by_tag.get(s.tag, [])
                    if s.state == "stopped_keep" and s.stopped_at is not None:
                        # Its stop may fill after the session stopped keeping the position: no process is there to
                        # count it; the next start of the session does (recovery).
                        later = [
                            t for t in tagged if (_ts(t["fill_timestamp"]) or s.stopped_at) > s.stopped_at
                        ]
                        if later:
                            self.report.notes.append(
                                f"{user} '{s.label}' {s.tag}: {len(later)} trade(s) of its tag filled after it "
                                f"stopped keeping its position ({s.stopped_at:%H:%M:%S}): not expected in its store"
                            )
                        tagged = [t for t in tagged if t not in later]
                    expected = broker_realised(tagged)
                    source = "broker trades of its tag"
                    broker_ids = {str(t["trade_id"]) for t in tagged}
                    missing = sorted(broker_ids - {f["fill_id"] for f in fills})
                    if missing:
                        self.report.add(Violation(
                            "c", f"{user} '{s.label}' ({s.tag}): {len(missing)} broker trade(s) of its tag not in "
                            f"its fills: {', '.join(missing[:8])}",
                        ))  # fmt: skip
                else:
                    expected = fills_realised(fills)
                    source = "its own fills"
                self.report.pnl.append(
                    f"{user} '{s.label}' {s.mode} {s.session_id[:8]}: store ₹{stored} vs ₹{expected} ({source})"
                )
                if stored != expected:
                    mismatches += 1
                    self.report.add(Violation(
                        "c", f"{user} '{s.label}' {s.mode} ({s.tag}): realised P&L in its store ₹{stored}, "
                        f"recomputed from {source} ₹{expected} (difference ₹{stored - expected})",
                    ))  # fmt: skip
        self.report.pnl_mismatches = mismatches
        self.report.broker_orders, self.report.broker_trades = n_orders, n_trades
        self._check_isolation(store, sessions)
        self._check_secrets()

    @staticmethod
    def _stored_realised(store: StoreReader, s: StoreSession) -> Decimal:
        """The day's realised P&L the session last wrote: each segment writes its running total with its latest
        position row (positions.realised_pnl), so the newest row of each segment holds that segment's total."""
        rows = store.rows(
            "SELECT tradingsymbol, realised_pnl, updated_at_utc FROM positions WHERE broker_id=? AND session_id=? "
            "ORDER BY updated_at_utc", s.broker_id, s.session_id,
        )  # fmt: skip
        latest: dict[str, Decimal] = {}
        for r in rows:
            latest[segment_of(r["tradingsymbol"])] = Decimal(r["realised_pnl"])
        return sum(latest.values(), Decimal(0))

    def _check_isolation(self, store: StoreReader, sessions: list[StoreSession]) -> None:
        from desktop.store import Store

        users = sorted(self.views)
        try:
            repo = Store.open(self.home, verify=False)
        except Exception as exc:  # noqa: BLE001
            self.report.add(Violation("d", f"the home's store could not be opened after the run: {exc}"))
            return
        try:
            for user in users:
                for s in repo.sessions.list_sessions(broker_id=user):
                    if s.key.broker_id != user:
                        self.report.add(Violation("d", f"sessions of {user} list {s.key} of another account"))
                    for f in repo.fills.for_session(broker_id=user, session_id=s.key.session_id):
                        if f.key.broker_id != user:
                            self.report.add(Violation("d", f"fills of {user} hold {f.key.broker_id}'s fill"))
                    for p in repo.positions.for_session(broker_id=user, session_id=s.key.session_id):
                        if p.key.broker_id != user:
                            self.report.add(Violation("d", f"positions of {user} hold {p.key.broker_id}'s"))
                for mode in ("LIVE", "PAPER"):
                    from desktop.domain import Mode

                    for t in repo.trades.for_account(broker_id=user, mode=Mode(mode)):
                        if t.fill.key.broker_id != user:
                            self.report.add(Violation("d", f"trades of {user} list {t.fill.key.broker_id}'s"))
        finally:
            repo.close()
        # Every LIVE order the store holds for an account is in that account's book, never in another's.
        for user in users:
            own = {str(o["order_id"]) for o in self.last_books[user][0]}
            others = {str(o["order_id"]) for u in users if u != user for o in self.last_books[u][0]}
            for r in store.rows("SELECT order_id FROM orders WHERE broker_id=? AND mode='LIVE'", user):
                oid = r["order_id"]
                if oid in others or oid not in own:
                    where = "another account's book" if oid in others else "no book of this account"
                    self.report.add(Violation("d", f"{user}'s stored LIVE order {oid} is in {where}"))

    def _check_secrets(self) -> None:
        needles = {f"API secret of {u}": s for u, s in SECRETS.items() if u in self.views}
        for user, view in self.views.items():
            for i, tok in enumerate(sorted(view.tokens_seen)):
                needles[f"access token {i} of {user}"] = tok
        files = [p for p in self.home.rglob("*") if p.is_file()]
        files += [p for r in self.runs for p in (r.out_path, r.err_path)]
        for path in files:
            if path.name == "chaos-filler.bin":
                continue
            with contextlib.suppress(OSError):
                data = path.read_bytes()
                for what, needle in needles.items():
                    if needle.encode() in data:
                        self.report.add(Violation("d", f"{what} found in {path}"))


def run_chaos(config: ChaosConfig) -> ChaosReport:
    """Runs one seeded chaos run and returns its report."""
    return ChaosRun(config).execute()


def report_json(report: ChaosReport) -> str:
    data = dataclasses.asdict(report)
    return json.dumps(data, default=str, indent=1)
