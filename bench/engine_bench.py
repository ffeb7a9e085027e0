"""Engine figures (issue 5 §9): N sessions × 3 segments on the simulator, each session also streaming
1000 instruments in full mode; prints ticks/s processed, tick-to-intent latency and memory per session.

    /work/venv/bin/python bench/engine_bench.py [--sessions 10] [--instruments 1000] [--seconds 30] [--speed 60]

The simulator runs in its own process (as Kite is another machine). Sessions take turns on `--accounts`
accounts (the two demo ones, then made-up ones), so each account's feed carries the union of its sessions'
instruments and fans ticks out to each session's stream. The simulator builds each second's packets once and
sends them on every account's connection: its own CPU (about 125 µs a full-mode packet) limits one account
to about 8 frames of 1000 instruments a second, and more accounts bring more ticks to the process.

Strategy: EMAs 1/2 (a signal on almost every bar) so entries, and so latency samples, are plentiful.
Latency is measured from the moment the WebSocket frame carrying the tick arrived at the account's feed
(before its packets are found) to the moment the entry intent passed the risk check (before the journal's
fsync): it includes finding the packets, the decode, the session's routing, the agent's queue, bars,
strategy and risk; not the kernel's socket buffer. It is printed in three parts: the feed's thread until the
batch is in the agent's inbox, the wait until the agent's thread takes it (its wake-up and the GIL shared
with every other thread), and the agent's own work. Tick-to-order-sent adds the intent's durable write and
the paper gateway's acceptance.

`--no-orders` decides entries (and measures them) but sends none: the floor under tick-to-intent with no order
traffic, journal writes or fills in the process (issue 5: that floor alone is above 2 ms at 10 × 3).

`--live` runs the sessions in LIVE mode against the simulator: entries go out with kiteconnect's place_order over
HTTP, after risk's margin check (which asks the simulator for the option's price under the account's REST rate
limits: with EMAs 1/2 deciding on every bar, that limiter, not the engine, paces LIVE entries). Without it the
orders go to the paper gateway, which is the default figure.

`--trace-orders` stamps each entry along its path (decided, its frame's group commit queued, its transaction begun,
committed, the agent running the decision, the intent known durable, the gateway called, accepted) and prints the
time between each two stamps (p50 / p90 / p99 / max), the CPU the agents spent on each kind of work they were handed,
the group commits (wall and CPU) and the exits' intent writes: where tick-to-order-sent goes.

LIVE at 10 × 3 meets Kite's per-account limits (10 orders/s, 1 quote/s) when 4 accounts carry 30 segments that all
trade on every bar (EMAs 1/2 at speed 60: a bar a second): one account per session keeps each account under its
limits (3 segments: about 6 order requests a second), and fewer watched instruments keep the simulator's one core
(about 125 µs a full-mode packet, sent on every account's connection) from being the bottleneck:

    python bench/engine_bench.py --live --accounts 10 --instruments 200 --sessions 10 --segments 3 --seconds 20

`--peer vnpy` first runs the same load through vn.py 4.5's `EventEngine` (one thread draining a queue, 30
handlers at 10 × 3 running KiteDesk's own bar, EMA and strategy code: see `bench/vnpy_peer.py`) for the same
number of seconds on the same accounts and subscriptions, then KiteDesk, and prints both side by side with
KiteDesk / peer ratios. vn.py lives in the bench's environment only: `pip install --no-deps vnpy==4.5.0`
(its own requirements pin another PySide6 and need TA-Lib's C library; `vnpy.event` needs only the
standard library). Decisions only (`--no-orders`) is the comparable decision figure: the peer sends no orders then.

    python bench/engine_bench.py --peer vnpy --no-orders --sessions 10 --segments 3 --seconds 20

`--peer vnpy --live` (issue 18's LIVE target, tick-to-order-sent p50 3 ms, p99 10 ms at 10 × 3): the peer SENDS its
entries too, as LIVE orders to the same simulator, each account with its own Kite client, as a vn.py-based Kite
gateway would (bench/vnpy_peer.py says exactly what it does and does not do): a MARKET BUY of the ITM option KiteDesk's
entry would buy (KiteDesk's own instrument book and strike logic), placed with kiteconnect's `place_order` from the
account gateway's own thread pool (`--peer-workers`, 3 by default) under Kite's per-account limits (KiteDesk's
limiter: 10 orders/s), the held option sold at market on the next signal, fills and order updates taken from the
WebSocket. It runs once per transport (`--peer-orders`, both by default): stock kiteconnect (requests), then kiteconnect
over KiteDesk's `OrderLane` (the transport held equal), each for `--seconds`; then KiteDesk (`--peer-last`: KiteDesk
first, its sessions squared off, then the peer; alternate the two orders between runs, the machine's load changes).
Each of the three runs trades accounts of its own (the simulator is started with three times `--accounts`; the peer's
are recorded where KiteDesk's are): the simulator's work per order grows with the account's order book, so a run on
accounts another run traded first would be slowed by the other's orders. With `--sim-url` all share the accounts.
It prints, for entries only, from the frame's arrival at the account's feed: tick-to-decision, tick-to-HTTP-request-
written (the first write of the request on the socket), tick-to-order-sent (its reply read) and the part between the
two (the simulator's: the same server for both), p50 / p90 / p99 / max, for KiteDesk and each peer, with KiteDesk /
peer ratios. The peer has no durable intent write (vn.py has none; KiteDesk commits each frame's intents before it
sends), no margin check and no stop-loss order after its fills.

    python bench/engine_bench.py --peer vnpy --live --accounts 10 --instruments 200 --sessions 10 --segments 3 --seconds 20
    python bench/engine_bench.py --peer vnpy --live --accounts 1 --instruments 200 --sessions 1 --segments 3 --seconds 20

`--peer-durable` (with `--peer vnpy --live`): each transport's peer runs twice, as above and then durable (a column of
its own, "peer lane+durable", on accounts of its own): the durable peer commits the intents of each frame's orders
(entries and exits) of an account in one SQLite transaction (a plain `sqlite3` connection, WAL, synchronous=FULL, on a
file in the run's temp home), on the event engine's thread, before any of them is handed to its pool: the plain
SQLite loop's floor under tick-to-order-sent with the intent durable first, as KiteDesk's is (bench/vnpy_peer.py).
It also prints the durable peer's commits (wall and CPU per commit, intents per commit). `--peer-durable-all` adds
one more durable run ("peer lane+durable-all"): one transaction for the intents of all accounts decided on one burst
of frames (the frame-end event is put back at the queue's end once, so the other accounts' ticks already queued are
decided first), not one per account each blocking the engine's thread for its fsync.

    python bench/engine_bench.py --peer vnpy --live --peer-orders lane --peer-durable --accounts 10 --instruments 200 --sessions 10 --segments 3 --seconds 20

Several processes on one simulator (what one process per account would do with the same load):

    python bench/engine_bench.py --serve-sim --accounts 4          # prints the simulator's URL, runs until Ctrl-C
    python bench/engine_bench.py --sim-url URL --accounts 2 --sessions 5 &
    python bench/engine_bench.py --sim-url URL --accounts 2 --first-account 2 --sessions 5

The 1000 extra instruments are a watch list (`SessionEngine.watch_instruments`): every packet is found in
the frame and kept as the instrument's latest value (readable with `SessionEngine.quote`), decoded only
when read. The feed does that after the frame's decisions (decide first: `find_packets` finds only the
delivered packets before them), so it is not in the tick-to-intent figures, KiteDesk's or the peer's; its CPU is. The figures count ticks off the wire and the same counted once per session subscribed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")

import requests  # noqa: E402
from kiteconnect import KiteConnect  # noqa: E402
from PySide6.QtCore import QCoreApplication  # noqa: E402

from desktop.broker.login import request_token_by_redirect  # noqa: E402
from desktop.broker.order_lane import LaneConnection  # noqa: E402
from desktop.broker.profiles import (
    MemorySecretStore,  # noqa: E402
    Profile,  # noqa: E402
)
from desktop.broker.sim import DEMO_ACCOUNTS, ws_url_of  # noqa: E402
from desktop.cli.demo import start_demo  # noqa: E402
from desktop.engine import Engine, SessionEngine, SessionState, parse_params  # noqa: E402
from desktop.engine.probes import LatencyProbe  # noqa: E402

PARAMS = {
    "segments": ["NIFTY", "BANKNIFTY", "SENSEX"],
    "lots": 1,
    "stop_loss": 2,
    "itm_offset": 100,
    "fast_ema": 1,
    "slow_ema": 2,
    "max_trades_per_day": 1000,
    "max_daily_loss": 100_000_000,
    "max_orders_per_minute": 400,
    "max_open_positions": 3,
}


def accounts(count: int) -> list[tuple[str, str]]:
    """(user id, API secret) of the simulator's accounts: the two demo ones, then made-up ones."""
    made_up = [(f"UK{9000 + i}", f"secret_{i}") for i in range(max(0, count - len(DEMO_ACCOUNTS)))]
    return [(a.user_id, a.api_secret) for a in DEMO_ACCOUNTS][:count] + made_up


def start_sim(
    speed: float, cpus: set[int] | None, users: list[tuple[str, str]], order_reply_delay: float = 0.0
) -> tuple[subprocess.Popen[str], str]:
    """`order_reply_delay` (ms): order calls answered that late (a network round trip to Kite); the simulator is
    then this checkout's, whatever PYTHONPATH says (an A/B run against an older build uses the same simulator)."""
    args = [sys.executable, "-m", "desktop.broker.sim", "--port", "0", "--speed", str(speed)]
    args += ["--start", "2026-01-08T09:20", "--no-rate-limits", "--exit-with-parent"]
    env = None
    if order_reply_delay:
        args += ["--order-reply-delay", str(order_reply_delay)]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for user, secret in users:
        args += ["--account", f"{user}:{secret}:{user}"]
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, preexec_fn=pin, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.search(r"REST\s+(http://\S+)/", line)
        if m:
            return proc, m.group(1)
    raise RuntimeError("simulator did not start")


def option_tokens(url: str, count: int) -> list[int]:
    kite = KiteConnect("UK9394", root=url, timeout=10)
    resp = requests.get(f"{url}/connect/login", params={"api_key": "UK9394", "v": "3"}, allow_redirects=False)
    token = resp.headers["Location"].split("request_token=")[1].split("&")[0]
    kite.set_access_token(kite.generate_session(token, api_secret="secret_A")["access_token"])
    rows = kite.instruments("NFO") + kite.instruments("BFO")
    return [int(r["instrument_token"]) for r in rows if r["instrument_type"] in ("CE", "PE")][:count]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def runqueue_wait_s() -> float:
    """Seconds our threads have spent runnable but waiting for a CPU (Linux schedstat), summed."""
    total = 0
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):  # a thread that just ended
            total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


class GcTrace:
    """Garbage collections while the bench measures (`--trace-slow`): (start, end, generation), perf_counter."""

    def __init__(self) -> None:
        self.events: list[tuple[float, float, int]] = []
        self.others: list[tuple[float, float, str]] = []  # other spans of work (start, end, what)
        self._start: tuple[float, int] | None = None

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._start = (now, info["generation"])
        elif self._start is not None:
            self.events.append((self._start[0], now, self._start[1]))
            self._start = None


class TracingProbe(LatencyProbe):
    """A `LatencyProbe` that also keeps when each entry's frame arrived and which segment decided (`--trace-slow`)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.at: list[float] = []

    def entry_decided(self, posted: float, handed: float, picked: float) -> None:
        super().entry_decided(posted, handed, picked)
        self.at.append(posted)


class OrderTrace:
    """Where tick-to-order-sent goes (`--trace-orders`): stamps (`time.perf_counter()`) of each entry along its path,
    by intent id, from wrappers the bench puts around the engine's methods (the app measures nothing itself)."""

    STAGES = (
        ("frame", "decided", "frame arrived → decided (feed thread: decode, route, bars, strategy, risk)"),
        ("decided", "queued", "decided → its frame's group commit queued (other segments, other frames)"),
        ("queued", "writing", "queued → its transaction begins (the committer's wake-up and turn)"),
        ("writing", "committed", "the transaction: its rows, COMMIT, fsync"),
        ("committed", "woken", "committed → the agent runs the decision (wake-up, GIL)"),
        ("woken", "recorded", "agent → the intent known durable (record_intent)"),
        ("recorded", "placing", "durable → the gateway called (Entries/Orders' own work)"),
        ("placing", "placed", "the gateway's place (paper: book; LIVE: limiter, HTTP round trip)"),
        (
            "placing",
            "http",
            "LIVE: the gateway called → its HTTP request written (limiter, kiteconnect, requests)",
        ),
        ("http", "placed", "LIVE: then until the reply is read (the simulator, the round trip)"),
        ("frame", "http", "LIVE: tick-to-HTTP-request-written"),
        ("frame", "placed", "tick-to-order-sent"),
    )

    def __init__(self) -> None:
        self.stamps: dict[str, dict[str, float]] = {}
        self.exits: list[float] = []  # exits: record_intent's wall time each (agent thread)
        self.batches: list[tuple[float, float, int, bool]] = []  # group commits: wall, CPU, writes, durable
        self.kinds: dict[str, int] = {}  # the writes committed with order intents, by kind
        self.cpu: dict[str, list[float]] = {}  # CPU of the agents' work, by what they were handed
        self.installed = False

    def stamp(self, intent_id: str, stage: str, at: float | None = None) -> None:
        if self.installed:
            self.stamps.setdefault(intent_id, {}).setdefault(stage, time.perf_counter() if at is None else at)

    def install(self) -> None:
        """Wraps the methods on the entry's path (class level: every session)."""
        from desktop.broker.gateway import LiveGateway
        from desktop.broker.paper import PaperGateway
        from desktop.domain import OrderRole
        from desktop.engine.agent import Decided, SegmentAgent
        from desktop.engine.decisions import FrameCommit, ReadyEntry
        from desktop.engine.entries import Entries
        from desktop.engine.orders import Orders

        trace = self
        risk_check = Entries.risk_check

        def checked(self: Any, ready: Any, *a: Any, **kw: Any) -> bool:
            ok = risk_check(self, ready, *a, **kw)
            if ok:
                trace.stamp(ready.intent.intent_id, "frame", self.t.batch_posted)
                trace.stamp(ready.intent.intent_id, "decided")
            return ok

        Entries.risk_check = checked  # type: ignore[method-assign]
        from desktop.store.orders import IntentRepository

        writing = IntentRepository._writing

        def writes(self: Any, intents: Any) -> Any:
            work = writing(self, intents)

            def run(w: Any) -> Any:
                for intent, _ in intents:
                    trace.stamp(intent.intent_id, "writing")
                return work(w)

            return run

        IntentRepository._writing = writes  # type: ignore[method-assign]
        from desktop.store.database import Database

        commit_batch = Database._commit_batch

        def batch(self: Any, jobs: Any, *a: Any, **kw: Any) -> Any:
            t, c = time.perf_counter(), time.thread_time()
            left = commit_batch(self, jobs, *a, **kw)
            jobs = jobs[: len(jobs) - len(left or ())]
            if trace.installed and any(j.what == "order intent" for j in jobs):
                for j in jobs:
                    trace.kinds[j.what] = trace.kinds.get(j.what, 0) + 1
            if trace.installed:
                durable = any(j.durable for j in jobs)
                trace.batches.append((time.perf_counter() - t, time.thread_time() - c, len(jobs), durable))
            return left

        Database._commit_batch = batch  # type: ignore[method-assign]
        start, done = FrameCommit.start, FrameCommit._done

        def started(self: Any) -> None:
            self._traced = [i.intent_id for i, _ in self._waiting]
            for intent_id in self._traced:
                trace.stamp(intent_id, "queued")
            start(self)

        def finished(self: Any) -> None:
            for intent_id in getattr(self, "_traced", ()):
                trace.stamp(intent_id, "committed")
            done(self)

        FrameCommit.start, FrameCommit._done = started, finished  # type: ignore[method-assign]
        handle = SegmentAgent._handle

        def handled(self: Any, item: Any) -> None:
            kind = type(item).__name__
            if isinstance(item, Decided):
                for action in item.decision.actions:
                    if isinstance(action, ReadyEntry):
                        trace.stamp(action.intent.intent_id, "woken")
                kind = "+".join(type(a).__name__ for a in item.decision.actions) or "after ticks"
            c = time.thread_time()
            try:
                handle(self, item)
            finally:
                if trace.installed:
                    trace.cpu.setdefault(kind, []).append(time.thread_time() - c)

        SegmentAgent._handle = handled  # type: ignore[method-assign]
        record = Orders.record_intent

        def recorded(self: Any, intent: Any, *a: Any, **kw: Any) -> bool:
            t = time.perf_counter()
            ok = record(self, intent, *a, **kw)
            if intent.role is OrderRole.ENTRY:
                trace.stamp(intent.intent_id, "recorded")
            elif trace.installed:
                trace.exits.append(time.perf_counter() - t)
            return ok

        Orders.record_intent = recorded  # type: ignore[method-assign]
        placing = stamp_request_writes(trace)
        for cls in (PaperGateway, LiveGateway):
            place = cls.place

            def placed(self: Any, intent: Any, _place: Any = place) -> Any:
                if intent.role is not OrderRole.ENTRY:
                    return _place(self, intent)
                trace.stamp(intent.intent_id, "placing")
                placing.intent_id = intent.intent_id
                try:
                    order = _place(self, intent)
                finally:
                    placing.intent_id = None
                trace.stamp(intent.intent_id, "placed")
                return order

            cls.place = placed  # type: ignore[method-assign]
        self.installed = True

    def print(self) -> None:
        rows = list(self.stamps.values())
        print(f"where tick-to-order-sent goes ({sum('placed' in r for r in rows)} entries sent; "
              "ms between stamps, p50 / p90 / p99 / max):")  # fmt: skip
        for a, b, what in self.STAGES:
            xs = [(r[b] - r[a]) * 1000 for r in rows if a in r and b in r]
            if xs:
                print(f"  {statistics.median(xs):7.3f} {pct(xs, 0.9):7.3f} {pct(xs, 0.99):7.3f} {max(xs):8.3f}"
                      f"  n={len(xs):<4} {what}")  # fmt: skip
        for durable in (True, False):
            xs = [b for b in self.batches if b[3] is durable]
            if xs:
                wall, cpu = [b[0] * 1000 for b in xs], [b[1] * 1000 for b in xs]
                print(f"  group commits ({'durable' if durable else 'background'}): {len(xs)}, "
                      f"{statistics.mean([b[2] for b in xs]):.1f} writes each; wall p50 {statistics.median(wall):.3f} "
                      f"p99 {pct(wall, 0.99):.3f} ms, CPU p50 {statistics.median(cpu):.3f} p99 {pct(cpu, 0.99):.3f} ms")  # fmt: skip
        for kind, xs in sorted(self.cpu.items(), key=lambda kv: -sum(kv[1])):
            print(f"  agents' CPU on {kind}: {len(xs)}, mean {statistics.mean(xs) * 1000:.3f} ms, "
                  f"p99 {pct(xs, 0.99) * 1000:.3f} ms, {sum(xs) / len(xs) * 1000 * 30:.1f} ms per 30 of them")  # fmt: skip
        if self.kinds:
            print(
                "  writes in the group commits that held an intent: "
                + ", ".join(f"{k} {n}" for k, n in sorted(self.kinds.items(), key=lambda kv: -kv[1]))
            )
        if self.exits:
            xs = [x * 1000 for x in self.exits]
            print(f"  exits' record_intent on the agent: {len(xs)}, p50 {statistics.median(xs):.3f} ms, "
                  f"p99 {pct(xs, 0.99):.3f} ms")  # fmt: skip


def stamp_request_writes(trace: OrderTrace) -> Any:
    """Stamps "http" for the entry whose place call runs on a thread (the returned thread-local's `intent_id`, set by
    the caller's wrapper of `place`) once its HTTP request is written: at the first `http.client` send (requests),
    or when the order lane's `LaneConnection.send` has written it whole."""
    import http.client
    import threading

    placing = threading.local()
    send = http.client.HTTPConnection.send

    def sending(self: Any, data: Any) -> Any:
        intent_id = getattr(placing, "intent_id", None)
        if intent_id is not None:
            trace.stamp(intent_id, "http")  # the first write of its request (headers and body)
        return send(self, data)

    http.client.HTTPConnection.send = sending  # type: ignore[method-assign]
    lane_send = LaneConnection.send

    def lane_sending(self: Any, *a: Any, **kw: Any) -> Any:
        sent = lane_send(self, *a, **kw)  # the request written whole, in one send
        intent_id = getattr(placing, "intent_id", None)
        if intent_id is not None:
            trace.stamp(intent_id, "http")
        return sent

    LaneConnection.send = lane_sending  # type: ignore[method-assign]
    return placing


def install_sent_stamps(trace: OrderTrace) -> None:
    """`--peer vnpy --live` without `--trace-orders`: only the stamps the side-by-side needs of KiteDesk's entries (the
    frame's arrival, the gateway called, its HTTP request first written, its reply read), so as few wrappers as
    possible sit on KiteDesk's path. The same stamps as `OrderTrace.install`'s, read by `sent_figures`."""
    from desktop.broker.gateway import LiveGateway
    from desktop.domain import OrderRole
    from desktop.engine.entries import Entries

    risk_check = Entries.risk_check

    def checked(self: Any, ready: Any, *a: Any, **kw: Any) -> bool:
        ok = risk_check(self, ready, *a, **kw)
        if ok:
            trace.stamp(ready.intent.intent_id, "frame", self.t.batch_posted)
        return ok

    Entries.risk_check = checked  # type: ignore[method-assign]
    placing = stamp_request_writes(trace)
    place = LiveGateway.place

    def placed(self: Any, intent: Any) -> Any:
        if intent.role is not OrderRole.ENTRY:
            return place(self, intent)
        trace.stamp(intent.intent_id, "placing")
        placing.intent_id = intent.intent_id
        try:
            order = place(self, intent)
        finally:
            placing.intent_id = None
        trace.stamp(intent.intent_id, "placed")
        return order

    LiveGateway.place = placed  # type: ignore[method-assign]
    trace.installed = True


def sent_figures(trace: OrderTrace) -> tuple[list[float], list[float]]:
    """KiteDesk's entries: ms from the frame's arrival to the first write of the HTTP request, and to the reply read."""
    rows = [r for r in trace.stamps.values() if "frame" in r and "placed" in r and "http" in r]
    return (
        [(r["http"] - r["frame"]) * 1000 for r in rows],
        [(r["placed"] - r["frame"]) * 1000 for r in rows],
    )


def print_slowest(observers: list[Any], gcs: GcTrace, count: int) -> None:
    """The `count` slowest entries, each with the collections that ran between its frame's arrival and its intent."""
    samples = [
        (d[0], at, o.name)
        for o in observers
        if isinstance(o, TracingProbe)
        for d, at in zip(o.decided, o.at, strict=True)
    ]
    samples.sort(reverse=True)
    by_gen = {g: [e - s for s, e, gg in gcs.events if gg == g] for g in (0, 1, 2)}
    print(
        "garbage collections while measured: "
        + ", ".join(
            f"gen {g}: {len(xs)} (max {max(xs) * 1000:.2f} ms, total {sum(xs) * 1000:.1f} ms)"
            for g, xs in by_gen.items()
            if xs
        )
    )
    print(f"slowest {count} entries (latency, frame arrival, segment; collections overlapping):")
    for latency, at, name in samples[:count]:
        end = at + latency
        overlap = [f"gen{g} {(e - s) * 1000:.2f} ms" for s, e, g in gcs.events if s < end and e > at]
        overlap += [f"{what} {(e - s) * 1000:.2f} ms" for s, e, what in gcs.others if s < end and e > at]
        print(f"  {latency * 1000:7.3f} ms  at {at:.4f}  {name:20} {', '.join(overlap) or '-'}")
    if samples:
        latency, at, _ = samples[0]
        print("  what ran around the slowest (start and end relative to its frame's arrival, ms):")
        for s, e, what in sorted(gcs.others):
            if s < at + latency + 0.002 and e > at - 0.005:
                print(f"    {(s - at) * 1000:8.2f} {(e - at) * 1000:8.2f}  {what}")


def thread_cpu() -> dict[int, float]:
    """Seconds on a CPU of each of our threads (Linux schedstat), by native thread id."""
    out = {}
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):  # a thread that just ended
            out[int(task.name)] = int((task / "schedstat").read_text().split()[0]) / 1e9
    return out


def print_thread_cpu(before: dict[int, float], elapsed: float, names: dict[int, str] | None = None) -> None:
    """CPU % of a core per kind of thread since `before` (`--trace-slow`)."""
    import threading

    after = thread_cpu()
    names = {
        **{t.native_id: t.name for t in threading.enumerate() if t.native_id is not None},
        **(names or {}),
    }
    kinds: dict[str, float] = {}
    for tid, cpu in after.items():
        name = re.sub(r"-[0-9a-f]{8}(-\w+)?$|-UK\d+$|-\d+$", "", names.get(tid, "?"))
        kinds[name] = kinds.get(name, 0.0) + cpu - before.get(tid, 0.0)
    print(
        "CPU % of a core by thread: "
        + ", ".join(
            f"{k} {v / elapsed * 100:.1f}"
            for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])
            if v / elapsed > 0.0005
        )
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def print_side_by_side(
    latencies: list[float],
    cpu_pct: float,
    backlog: tuple[int, int],
    wire_per_s: float,
    peer: Any,
    args: argparse.Namespace,
) -> None:
    """KiteDesk's tick-to-intent beside the peer's tick-to-decision, with KiteDesk / peer ratios."""

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b > 0 else "n/a"

    def fig(xs: list[float], q: float) -> float:
        if not xs:
            return float("nan")
        return statistics.median(xs) if q == 0.5 else pct(xs, q)

    p = peer.latencies_ms
    print()
    print(f"side by side: {args.sessions} sessions × {args.segments} segments, {args.seconds:g} s each, "
          f"{'decisions only' if args.no_orders else 'KiteDesk with orders (the peer never orders)'}")  # fmt: skip
    print(f"{'':28}{'KiteDesk':>12}{'vn.py peer':>12}{'ratio':>8}")
    print(f"{'ticks off the wire per s':28}{wire_per_s:>12,.0f}{peer.wire_per_s:>12,.0f}")
    print(f"{'decisions measured':28}{len(latencies):>12}{len(p):>12}")
    for name, q in (("tick-to-decision p50 ms", 0.5), ("tick-to-decision p99 ms", 0.99)):
        a, b = fig(latencies, q), fig(p, q)
        print(f"{name:28}{a:>12.3f}{b:>12.3f}{ratio(a, b):>8}")
    print(f"{'CPU % of a core':28}{cpu_pct:>12.1f}{peer.cpu_pct:>12.1f}{ratio(cpu_pct, peer.cpu_pct):>8}")
    # The simulator's pace differs between the two runs on a shared machine: CPU per tick off the wire compares them.
    mine, theirs = (
        pct_ / 100 / wire * 1e6 if wire > 0 else float("nan")
        for pct_, wire in ((cpu_pct, wire_per_s), (peer.cpu_pct, peer.wire_per_s))
    )
    print(f"{'CPU µs per tick off the wire':28}{mine:>12.2f}{theirs:>12.2f}{ratio(mine, theirs):>8}")
    print(f"{'backlog last / max':28}{f'{backlog[0]} / {backlog[1]}':>12}"
          f"{f'{peer.backlog_last} / {peer.backlog_max}':>12}")  # fmt: skip
    print(
        "  (KiteDesk's backlog counts tick batches queued to agents, the peer's events queued to its engine)"
    )
    if peer.handler_failures:
        print("FAILED peer handlers:", ", ".join(peer.handler_failures))


def print_live_side_by_side(
    latencies: list[float],
    sent: tuple[list[float], list[float]],
    cpu_pct: float,
    wire_per_s: float,
    peers: list[Any],
    args: argparse.Namespace,
    waited: tuple[float, float, float] = (float("nan"), float("nan"), float("nan")),
) -> None:
    """LIVE (`--peer vnpy --live`): KiteDesk's tick-to-order-sent beside the peer's, for each peer transport, with
    KiteDesk / peer ratios. Entries (BUY orders) only, ms from the frame's arrival at the account's feed."""

    def fig(xs: list[float], q: float) -> float:
        if not xs:
            return float("nan")
        return statistics.median(xs) if q == 0.5 else pct(xs, q)

    names = [p.orders.name for p in peers]
    cols = ["KiteDesk", *names]
    cw = max(16, *(len(c) + 2 for c in cols))  # the figures' columns
    width = max(12, *(len(n) - 5 + 4 for n in names))  # the ratio columns: "KD/lane+durable"
    print()
    print(f"side by side, LIVE: {args.sessions} sessions × {args.segments} segments on {args.accounts} accounts, "
          f"{args.seconds:g} s each; entries only, ms from the frame's arrival (peer: vn.py EventEngine, "
          f"{peers[0].orders.workers} sending threads per account)")  # fmt: skip
    print(
        f"{'':32}" + "".join(f"{c:>{cw}}" for c in cols) + "".join(f"{'KD/' + n[5:]:>{width}}" for n in names)
    )
    print(
        f"{'ticks off the wire per s':32}{wire_per_s:>{cw},.0f}"
        + "".join(f"{p.wire_per_s:>{cw},.0f}" for p in peers)
    )
    print(
        f"{'entries sent (replies read)':32}{len(sent[1]):>{cw}}"
        + "".join(f"{len(p.orders.to_reply_ms):>{cw}}" for p in peers)
    )
    print(f"{'CPU % of a core':32}{cpu_pct:>{cw}.1f}" + "".join(f"{p.cpu_pct:>{cw}.1f}" for p in peers))
    # The machine is shared: how long the process's threads waited for a CPU, and the load, in each window.
    print(
        f"{'threads waited for a CPU ms/s':32}{waited[0]:>{cw}.0f}"
        + "".join(f"{p.waited_ms_per_s:>{cw}.0f}" for p in peers)
    )
    print(f"{'machine load start → end':32}{f'{waited[1]:.1f} → {waited[2]:.1f}':>{cw}}"
          + "".join(f"{f'{p.load[0]:.1f} → {p.load[1]:.1f}':>{cw}}" for p in peers))  # fmt: skip
    rows = [("tick-to-decision", latencies, [p.latencies_ms for p in peers])]
    rows.append(("tick-to-HTTP-request-written", sent[0], [p.orders.to_http_ms for p in peers]))
    rows.append(("tick-to-order-sent (reply read)", sent[1], [p.orders.to_reply_ms for p in peers]))

    # The part after the request is written is the simulator's (its one core also streams every feed) and the
    # loopback round trip: the same server for both, and a floor under tick-to-order-sent that no client lowers.
    def reply(http: list[float], replied: list[float]) -> list[float]:
        return [b - a for a, b in zip(http, replied, strict=True)]

    peer_replies = [reply(p.orders.to_http_ms, p.orders.to_reply_ms) for p in peers]
    rows.append(("  HTTP written → reply read", reply(*sent), peer_replies))
    for what, mine, theirs in rows:
        for label, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)):
            a = fig(mine, q) if q < 1.0 else max(mine, default=float("nan"))
            bs = [fig(t, q) if q < 1.0 else max(t, default=float("nan")) for t in theirs]
            ratios = "".join(f"{a / b:>{width}.2f}" if b > 0 else f"{'n/a':>{width}}" for b in bs)
            print(f"{what + ' ' + label:32}{a:>{cw}.3f}" + "".join(f"{b:>{cw}.3f}" for b in bs) + ratios)
    for p in peers:
        o = p.orders
        if o.durable:
            n = len(o.commit_ms)
            per = o.intents_committed / n if n else float("nan")
            print(f"  {o.name}: {n} frame commits in the window ({o.intents_committed} intents, {per:.2f} a commit), "
                  f"wall ms p50 {fig(o.commit_ms, 0.5):.3f} / p99 {fig(o.commit_ms, 0.99):.3f} / max "
                  f"{max(o.commit_ms, default=float('nan')):.3f}, CPU ms p50 {fig(o.commit_cpu_ms, 0.5):.3f} / "
                  f"p99 {fig(o.commit_cpu_ms, 0.99):.3f}")  # fmt: skip
        print(f"  {o.name}: {o.orders_sent} orders sent in all (entries and exits), entries filled "
              f"{o.entries_filled}, exits filled {o.exits_filled}; made flat at the end: {o.flattened} "
              f"orders, {o.still_open} positions left; refused {len(o.refused)}"
              f"{': ' + '; '.join(o.refused[:3]) if o.refused else ''}")  # fmt: skip
        if p.handler_failures:
            print(f"  FAILED {o.name} handlers:", ", ".join(p.handler_failures))
    print("  (KiteDesk: risk's margin check, the intent's durable group commit, its own rate limiter, a stop-loss "
          "order after each fill; the peer: none of those but the rate limiter, +durable: the intents' commit per "
          "frame too; see bench/vnpy_peer.py)")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--segments", type=int, default=3, choices=[1, 2, 3], help="segments per session")
    ap.add_argument(
        "--peer",
        choices=["vnpy"],
        help="also run the same load through vn.py's EventEngine and print both with ratios (bench extra)",
    )
    ap.add_argument(
        "--peer-orders",
        choices=["requests", "lane", "both"],
        default="both",
        help="with --peer vnpy --live: the peer's transport for its LIVE orders: stock kiteconnect (requests), "
        "kiteconnect over KiteDesk's OrderLane, or both (two peer runs, before KiteDesk's)",
    )
    ap.add_argument(
        "--peer-durable",
        action="store_true",
        help="with --peer vnpy --live: each transport's peer also runs durable (its own column, '+durable'): each "
        "frame's intents committed in one SQLite transaction (WAL, synchronous=FULL) before its orders are queued",
    )
    ap.add_argument(
        "--peer-durable-all",
        action="store_true",
        help="with --peer vnpy --live: each transport's peer also runs durable with ONE commit for all accounts' "
        "intents of a burst (its own column, '+durable-all'), the group commit across accounts",
    )
    ap.add_argument(
        "--peer-workers",
        type=int,
        default=3,
        help="with --peer vnpy --live: threads per account sending the peer's orders (vn.py RestClient's pool; "
        "1 is what vnpy_rest's RestClient drains its queue with today)",
    )
    ap.add_argument(
        "--peer-last",
        action="store_true",
        help="run the peer after KiteDesk (its sessions stopped first), not before: alternate the order between "
        "runs on a machine whose load changes",
    )
    ap.add_argument("--instruments", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--speed", type=float, default=60.0)
    ap.add_argument(
        "--order-reply-delay",
        type=float,
        default=0.0,
        metavar="MS",
        help="the simulator answers order calls this many ms late: the network's round trip to Kite, which a local "
        "simulator lacks (a session's segments placing at once wait for each other's replies only if that costs)",
    )
    ap.add_argument(
        "--accounts",
        type=int,
        default=4,
        help="broker accounts the sessions take turns on (each has its own feed, so the simulator's frames "
        "reach the process once per account: 4 give about 30,000 ticks/s from one simulator core)",
    )
    ap.add_argument(
        "--mode", default="full", choices=["full", "quote", "ltp"], help="mode of the extra instruments"
    )
    ap.add_argument(
        "--switch-interval", type=float, help="sys.setswitchinterval (seconds) to try, default Python's"
    )
    ap.add_argument("--ema", default="1,2", help="fast,slow EMA periods (1,2: a signal on almost every bar)")
    ap.add_argument(
        "--no-pin",
        action="store_true",
        help="share every core between the simulator and KiteDesk (default: each on a core of its own, "
        "as if the exchange were another machine)",
    )
    ap.add_argument(
        "--no-orders",
        action="store_true",
        help="entries are decided (and measured) but never sent: the floor under tick-to-intent with no order "
        "traffic, journal writes or fills in the process",
    )
    ap.add_argument(
        "--live",
        action="store_true",
        help="sessions in LIVE mode: each entry is sent to the simulator with kiteconnect's place_order over HTTP "
        "(tick-to-order-sent then includes the REST round trip), not accepted by the paper gateway",
    )
    ap.add_argument(
        "--trace-slow",
        type=int,
        default=0,
        help="print this many slowest entries with the garbage collections that overlapped them",
    )
    ap.add_argument(
        "--trace-orders",
        action="store_true",
        help="stamp each entry along its path (decided, commit queued, committed, agent woken, durable, gateway "
        "called, accepted) and print where tick-to-order-sent goes",
    )
    ap.add_argument(
        "--no-record",
        action="store_true",
        help="the demo accounts' feeds are not recorded (they are by default, as in the demo)",
    )
    ap.add_argument("--first-account", type=int, default=0, help="sessions use the accounts from this one on")
    ap.add_argument("--sim-url", help="use this running simulator (it must know the accounts used)")
    ap.add_argument(
        "--serve-sim", action="store_true", help="only run the simulator (for --sim-url), until Ctrl-C"
    )
    args = ap.parse_args()
    params = {**PARAMS, "segments": PARAMS["segments"][: args.segments]}  # type: ignore[index]
    fast, slow = (int(x) for x in args.ema.split(","))
    params.update(fast_ema=fast, slow_ema=slow)
    if args.peer == "vnpy":
        try:
            import vnpy.event  # noqa: F401
        except ImportError:
            print(
                "--peer vnpy needs vn.py in this environment: pip install --no-deps vnpy==4.5.0",
                file=sys.stderr,
            )
            return 2
    cores = sorted(os.sched_getaffinity(0))
    sim_cpus: set[int] | None = None
    if not args.no_pin and len(cores) >= 2:
        sim_cpus = set(cores[1:])
        os.sched_setaffinity(0, {cores[0]})
        where = "started elsewhere" if args.sim_url else f"to CPU {', '.join(map(str, sim_cpus))}"
        print(f"KiteDesk pinned to CPU {cores[0]}, the simulator {where}")
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    app = QCoreApplication([])
    users = accounts(args.first_account + args.accounts)[args.first_account :]
    # LIVE with orders: the peer sends its entries too, with each transport asked for (one run each), each run on
    # accounts of its own (the ones after KiteDesk's): every run starts on empty order books at the simulator, whose
    # work per order grows with the account's book (a run after another would be slowed by the other's orders).
    live_peer = args.peer == "vnpy" and args.live and not args.no_orders
    transports: list[str | None] = [None]
    durables: list[str | None] = [
        None
    ]  # per peer run: the durable scope (the intents committed before the orders)
    if live_peer:
        transports = ["requests", "lane"] if args.peer_orders == "both" else [args.peer_orders]
        kinds: list[str | None] = [None]
        kinds += ["account"] if args.peer_durable else []
        kinds += ["all"] if args.peer_durable_all else []
        durables = [k for _ in transports for k in kinds]
        transports = [t for t in transports for _ in kinds]
    elif args.peer_durable or args.peer_durable_all:
        print("--peer-durable needs --peer vnpy --live (with orders)", file=sys.stderr)
        return 2
    fresh = live_peer and not args.sim_url
    span = args.first_account + args.accounts * (1 + len(transports) if fresh else 1)
    peer_users = [
        accounts(span)[args.first_account + args.accounts * (k + 1) :][: args.accounts] if fresh else users
        for k in range(len(transports))
    ]
    # `start_demo` logs in every demo account, so the simulator knows them all, also when fewer are used.
    known = accounts(max(span, len(DEMO_ACCOUNTS)))
    if args.serve_sim:
        sim, url = start_sim(args.speed, sim_cpus, known, args.order_reply_delay)
        print(f"simulator for {len(known)} accounts at {url} (Ctrl-C ends it)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            sim.wait()
        sim.terminate()
        return 0
    sim, url = (
        (None, args.sim_url)
        if args.sim_url
        else start_sim(args.speed, sim_cpus, known, args.order_reply_delay)
    )
    home = Path(tempfile.mkdtemp(prefix="kitedesk-bench-"))
    engine = Engine(home, secrets=MemorySecretStore())
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)  # again: the engine only ever lowers it to its own
    print(f"GIL switch interval {sys.getswitchinterval() * 1000:g} ms")
    sessions: list[SessionEngine] = []
    try:
        extra = option_tokens(url, args.instruments)
        start_demo(engine, sim_url=url)
        if args.no_record:
            for account in DEMO_ACCOUNTS:
                engine.set_recording(account.user_id, False)
        demo_ids = {a.user_id for a in DEMO_ACCOUNTS}
        for user, secret in [
            u for u in {*users, *(u for us in peer_users for u in us)} if u[0] not in demo_ids
        ]:
            profile = Profile(user, user, user, api_root=url, login_url_root=url, ws_root=ws_url_of(url))
            engine.profile_book.save(profile)
            engine.secrets.set_api_secret(user, secret)
            engine.hub.login(profile, request_token_by_redirect(profile))
        for own in peer_users if fresh else ():
            # The peer's accounts are recorded where KiteDesk's are (the demo ones, unless --no-record): the same
            # feed work on both sides.
            for (mine, _), (theirs, _) in zip(users, own, strict=True):
                if mine in demo_ids and not args.no_record:
                    engine.set_recording(theirs, True)
        peers: list[Any] = []

        def run_peers() -> None:
            from vnpy_peer import run_vnpy_peer

            for k, (transport, durable, own) in enumerate(zip(transports, durables, peer_users, strict=True)):
                peers.append(
                    run_vnpy_peer(
                        engine, [u for u, _ in own], params, args.sessions, extra, args.mode, args.seconds,
                        orders=transport, workers=args.peer_workers,
                        durable=home / f"peer-intents-{k}.sqlite" if durable else None,
                        durable_scope=durable or "account",
                    )
                )  # fmt: skip
                app.processEvents()

        if args.peer == "vnpy" and not args.peer_last:
            run_peers()
        peer = peers[0] if peers else None
        rss0 = rss_mb()
        for i in range(args.sessions):
            session = engine.open_session(users[i % len(users)][0], f"Bench {i}")
            session.start(
                parse_params({**params, "mode": "LIVE"} if args.live else params, confirm_live=args.live)
            )
            if args.no_orders:
                # Measurement only: the entry is refused as if the broker had (the strategy is freed). Posted
                # before the agents start: commands go before the first tick, so no entry is ever sent (one
                # sent before would leave its segment holding, deciding nothing more, for the whole run).
                for seg in session.params.segments:  # type: ignore[union-attr]
                    agent = session.agent(seg)
                    assert agent is not None
                    agent.run_on_thread(
                        lambda trader: setattr(trader.orders, "send", lambda intent, **kw: None)
                    )
            if extra:
                session.watch_instruments(extra, args.mode)
            sessions.append(session)
        started = time.monotonic()
        deadline = started + 120
        while time.monotonic() < deadline and not all(s.state is SessionState.RUNNING for s in sessions):
            app.processEvents()
            time.sleep(0.1)
        print(f"all sessions running after {time.monotonic() - started:.1f} s: "
              f"{sum(s.state is SessionState.RUNNING for s in sessions)}/{len(sessions)}")  # fmt: skip
        agents = [a for s in sessions for a in (s.agent(seg) for seg in s.params.segments) if a is not None]  # type: ignore[union-attr]
        time.sleep(3)  # subscriptions settle
        if args.peer_last or fresh:
            # The first sessions on their accounts (no peer ran on them before): their start-up (the feeds, the day's
            # instruments, warm-up) is done before the window opens, as the peer's is before its own.
            settled = time.monotonic() + 15
            while time.monotonic() < settled and sum(q for q, _ in (s.stream_stats() for s in sessions)) > 0:
                app.processEvents()
                time.sleep(0.5)
            time.sleep(3)
        gcs = GcTrace()
        for a in agents:  # the probes count from here on, as the peer's do
            probe_of = (lambda name: lambda trader: setattr(trader.entries, "observer", TracingProbe(name)))(
                f"{a.trader.ctx.key.session_id[:8]}/{a.segment.value}"
            )
            a.run_on_thread(probe_of)
        order_trace = OrderTrace()
        if args.trace_orders:
            order_trace.install()
        elif args.peer == "vnpy" and args.live and not args.no_orders:
            install_sent_stamps(order_trace)
        agent_names: dict[int, str] = {}
        publishes: list[float] = []
        cpu_costs: dict[str, list[float]] = {}
        if args.trace_slow:
            from desktop.engine.agent import SegmentAgent

            def timed(publish: Any) -> Any:
                def run(self: Any) -> None:
                    t = time.thread_time()
                    publish(self)
                    publishes.append(time.thread_time() - t)

                return run

            SegmentAgent._publish = timed(SegmentAgent._publish)  # type: ignore[method-assign]
            from desktop.broker.recording import FeedRecorder

            def spans(write: Any) -> Any:
                def run(self: Any) -> None:
                    t = time.perf_counter()
                    try:
                        write(self)
                    finally:
                        gcs.others.append((t, time.perf_counter(), "recorder"))

                return run

            FeedRecorder._write_pending = spans(FeedRecorder._write_pending)  # type: ignore[method-assign]
            from desktop.broker.stream import AccountFeed
            from desktop.engine.writer import StoreWriter
            from desktop.store.database import Database

            def span_of(cls: Any, name: str, what: str) -> None:
                fn = getattr(cls, name)

                def run(self: Any, *a: Any, **kw: Any) -> Any:
                    t, c = time.perf_counter(), time.thread_time()
                    try:
                        return fn(self, *a, **kw)
                    finally:
                        end = time.perf_counter()
                        if end - t > 0.0005:
                            cpu = (time.thread_time() - c) * 1000
                            gcs.others.append((t, end, f"{what}[cpu {cpu:.1f}]"))

                setattr(cls, name, run)

            from desktop.engine.dispatch import AccountDispatcher
            from desktop.engine.entries import Entries
            from desktop.engine.trader import SegmentTrader

            def cpu_of(cls: Any, name: str) -> None:
                fn = getattr(cls, name)
                costs = cpu_costs.setdefault(f"{cls.__name__}.{name}", [])

                def run(self: Any, *a: Any, **kw: Any) -> Any:
                    c = time.thread_time()
                    try:
                        return fn(self, *a, **kw)
                    finally:
                        costs.append(time.thread_time() - c)

                setattr(cls, name, run)

            cpu_of(Entries, "ready")
            cpu_of(SegmentTrader, "decide")
            cpu_of(AccountFeed, "_on_frame")
            import desktop.broker.stream as stream_module
            from desktop.broker.stream import MarketStream
            from desktop.broker.ticks import FrameIndex, LatestPackets

            for fname in ("index_frame", "parse_packet_at"):
                orig = getattr(stream_module, fname)
                costs_fn = cpu_costs.setdefault(fname, [])

                def run_fn(*a: Any, _orig: Any = orig, _costs: Any = costs_fn) -> Any:
                    c = time.thread_time()
                    try:
                        return _orig(*a)
                    finally:
                        _costs.append(time.thread_time() - c)

                setattr(stream_module, fname, run_fn)
            cpu_of(LatestPackets, "add")
            cpu_of(FrameIndex, "deliveries")
            cpu_of(FrameIndex, "positions_of")
            cpu_of(MarketStream, "_offer_ticks")
            from desktop.engine.session import SessionEngine

            cpu_of(SessionEngine, "_route_ticks")
            cpu_of(AccountDispatcher, "hand")
            span_of(AccountFeed, "_on_frame", "feed")
            span_of(SegmentAgent, "_handle", "agent")
            span_of(SegmentAgent, "tend", "publish")
            span_of(StoreWriter, "_write", "writer")
            span_of(Database, "_commit_batch", "commit")
            import gc
            import threading

            gc.callbacks.append(gcs)
            for a in agents:
                a.run_on_thread(lambda trader: agent_names.__setitem__(threading.get_native_id(), "agent"))
        rss1 = rss_mb()
        feeds = [f for f in (engine.hub.feed(user) for user, _ in users) if f is not None]
        wire0 = sum(f.packets_received for f in feeds)
        fan0 = sum(f.ticks_to_streams for f in feeds)
        routed0 = sum(s.ticks_routed for s in sessions)
        agent0 = sum(a.ticks_processed for a in agents)
        cpu0 = time.process_time()
        threads0 = thread_cpu()
        wait0 = runqueue_wait_s()
        load0 = os.getloadavg()[0]
        t0 = time.monotonic()
        samples = []
        while time.monotonic() - t0 < args.seconds:
            app.processEvents()
            time.sleep(1.0)
            stats = [s.stream_stats() for s in sessions]
            samples.append((sum(q for q, _ in stats), sum(d for _, d in stats)))
        elapsed = time.monotonic() - t0
        cpu = time.process_time() - cpu0
        waited = runqueue_wait_s() - wait0
        load1 = os.getloadavg()[0]
        routed = sum(s.ticks_routed for s in sessions) - routed0
        wire = sum(f.packets_received for f in feeds) - wire0
        fanned = sum(f.ticks_to_streams for f in feeds) - fan0
        probe = extra[len(extra) // 2] if extra else None
        quote = sessions[0].quote(probe) if probe is not None else None
        processed = sum(a.ticks_processed for a in agents) - agent0
        observers = [a.trader.entries.observer for a in agents]
        probes = [x for o in observers if isinstance(o, LatencyProbe) for x in o.decided]
        latencies = [total * 1000 for total, _, _ in probes]
        inbox = [picked * 1000 for _, picked, _ in probes]
        handed = [h * 1000 for _, _, h in probes]
        failed = [f"{s.label}/{a.segment.value}" for s in sessions for a in agents if a.failure]
        print(f"sessions {args.sessions} × {args.segments} segments, {len(extra)} extra instruments each ({args.mode} mode), "
              f"EMAs {args.ema}, sim speed {args.speed}, {elapsed:.0f} s measured")  # fmt: skip
        print(
            f"ticks received off the wire by the process ({len(feeds)} account feeds): {wire / elapsed:,.0f}/s"
        )
        print(f"ticks to sessions (each counted once per session subscribed): {fanned / elapsed:,.0f}/s")
        print(f"ticks decoded and routed to segment agents (index + held options): {routed / elapsed:,.0f}/s, "
              f"processed by them: {processed / elapsed:,.0f}/s")  # fmt: skip
        print(f"a watched instrument's latest value, read on demand: {quote.instrument_token if quote else None} "
              f"at {quote.last_price if quote else None}, {quote.exchange_timestamp if quote else None}")  # fmt: skip
        print(f"process CPU: {cpu / elapsed * 100:.0f}% of one core; its threads waited for a CPU "
              f"{waited / elapsed * 1000:.0f} ms per second in all (machine load {load0:.1f} → {load1:.1f})")  # fmt: skip
        print(f"agent backlog (tick batches queued) per second: first {samples[0][0]}, last {samples[-1][0]}, "
              f"max {max(q for q, _ in samples)}")  # fmt: skip
        print(f"ticks dropped by streams for slow consumers: {samples[-1][1] - samples[0][1]} during the run")
        dispatchers = {id(d): d for s in sessions if (d := s._dispatcher) is not None}.values()  # noqa: SLF001
        moved = [m for d in dispatchers for m in d.moved]
        print(f"account dispatchers: {sum(d.decisions for d in dispatchers)} decide calls since the start, "
              f"{sum(d.cpu_s for d in dispatchers):.2f} s of CPU; segments moved to their own thread (a decision "
              f"over its budget): {len(moved)}{': ' + '; '.join(moved) if moved else ''}")  # fmt: skip
        if latencies:
            print(
                f"tick-to-intent latency over {len(latencies)} entries: p50 {statistics.median(latencies):.3f} ms, "
                f"p99 {pct(latencies, 0.99):.3f} ms, max {max(latencies):.3f} ms"
            )
            waits = [p - h for p, h in zip(inbox, handed, strict=True)]
            own = [t - p for t, p in zip(latencies, inbox, strict=True)]
            for what, xs in (
                ("from the frame's arrival to the batch in the agent's inbox (feed thread)", handed),
                ("then until the agent took it (wake-up, GIL, other threads)", waits),
                ("then the agent's own part (bars, strategy, risk)", own),
            ):
                print(f"  {what}: p50 {statistics.median(xs):.3f} ms, p99 {pct(xs, 0.99):.3f} ms")
            sent = [x * 1000 for o in observers if isinstance(o, LatencyProbe) for x in o.sent]
            if sent and not args.no_orders:
                print(
                    f"tick-to-order-sent (intent committed to disk, then accepted by "
                    f"{'the simulator over HTTP' if args.live else 'the paper gateway'}) over "
                    f"{len(sent)} entries: p50 {statistics.median(sent):.3f} ms, p99 {pct(sent, 0.99):.3f} ms"
                )
        else:
            print("tick-to-intent latency: no entries in the window")
        print(f"memory: {rss0:.0f} MB before sessions, {rss1:.0f} MB with them: "
              f"{(rss1 - rss0) / args.sessions:.1f} MB per session")  # fmt: skip
        if failed:
            print("FAILED agents:", ", ".join(failed))
        if args.trace_slow:
            print_slowest(observers, gcs, args.trace_slow)
            print_thread_cpu(threads0, elapsed, agent_names)
            import gc

            frozen = gc.get_freeze_count()
            gc.unfreeze()
            print(f"objects frozen out of the collector: {frozen:,}; a full collection now finds {gc.collect():,} "
                  f"unreachable (what the freezes kept, with what the run left since)")  # fmt: skip
            for what, costs in cpu_costs.items():
                if costs:
                    print(f"{what}: {len(costs) / elapsed:.0f}/s, CPU µs mean {statistics.mean(costs) * 1e6:.0f}, "
                          f"p99 {pct(costs, 0.99) * 1e6:.0f}, max {max(costs) * 1e6:.0f}")  # fmt: skip
            if publishes:
                print(f"snapshots published: {len(publishes) / elapsed:.0f}/s, "
                      f"{statistics.mean(publishes) * 1e6:.1f} µs of CPU each (mean)")  # fmt: skip
        if args.trace_orders:
            order_trace.installed = False
            order_trace.print()
        if args.peer_last and args.peer == "vnpy":
            # KiteDesk's sessions stop first (squared off, side by side as `Engine.close` does): the peer then
            # trades flat accounts with nothing of KiteDesk's running beside it.
            from concurrent.futures import ThreadPoolExecutor

            from desktop.engine import OnStop

            order_trace.installed = False
            with ThreadPoolExecutor(max_workers=len(sessions)) as pool:
                list(pool.map(lambda s: engine.close_session(s.key, OnStop.SQUARE_OFF), sessions))
            app.processEvents()
            run_peers()
            peer = peers[0] if peers else None
        if peer is not None and peer.orders is not None:
            order_trace.installed = False
            live = sent_figures(order_trace)
            print_live_side_by_side(
                latencies, live, cpu / elapsed * 100, wire / elapsed, peers, args,
                (waited / elapsed * 1000, load0, load1),
            )  # fmt: skip
        elif peer is not None:
            backlog = (samples[-1][0], max(q for q, _ in samples))
            print_side_by_side(latencies, cpu / elapsed * 100, backlog, wire / elapsed, peer, args)
        return 0
    finally:
        engine.close("square_off")
        if sim is not None:
            sim.terminate()
            sim.wait(10)
        shutil.rmtree(home, ignore_errors=True)  # its feed recordings: ~0.5 GB a 10 x 3 run


if __name__ == "__main__":
    sys.exit(main())
