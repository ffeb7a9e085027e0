"""The peer for `engine_bench.py --peer vnpy`: the same tick stream through vn.py 4.5's `EventEngine`.

vn.py is installed in the bench's environment only (never an app dependency):

    .venv/bin/pip install --no-deps vnpy==4.5.0

`--no-deps` because vn.py's own requirements pin PySide6 6.8.2.1 (beside this app's PySide6-Essentials) and
need TA-Lib's C library; `vnpy.event` imports only the standard library, so nothing else is needed.

What the peer runs, per account (the same accounts, feeds and subscriptions as KiteDesk's sessions: the
segments' indices in full mode, delivered, plus the extra instruments watched): KiteDesk's own `AccountFeed`
receives each frame and decodes the index packets on its thread (so the wire side is identical), and a
listener on that thread puts one vn.py `Event` per index tick into one `EventEngine`, as a vn.py gateway's
`on_tick` does (event type `eTick.<account>.<token>`: each session's segments get their own account's ticks, as
KiteDesk's do; until issue 18's second round every handler got every account's copy of each tick, four times
the handler calls at four accounts). The engine's one thread drains the queue and calls the handlers registered
for that type: one per session × segment, each running KiteDesk's own
`IndexChart` (the `BarBuilder` and the two `EMA`s the agent keeps) and `ItmMomentumStrategy` on the tick.
An `EnterPosition` is the decision: its latency is `time.perf_counter()` minus the moment the frame arrived
at the feed (the same clock start as KiteDesk's tick-to-intent), then the entry is refused as
`--no-orders` refuses it (`on_entry_rejected`), so the next cross decides again. The option resolution and
the risk check that KiteDesk's figure also includes are not on the peer's path: the peer is, if anything,
given a lighter decision.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from desktop.broker.ticks import TickBatch
from desktop.domain import Segment
from desktop.engine.chart import IndexChart
from desktop.engine.params import parse_params
from desktop.engine.strategy.base import EnterPosition
from desktop.engine.strategy.itm_momentum import ItmMomentumStrategy

INSTALL = "pip install --no-deps vnpy==4.5.0"


@dataclass
class PeerFigures:
    """What one peer run measured (the same figures `engine_bench.py` prints for KiteDesk)."""

    seconds: float
    latencies_ms: list[float]
    cpu_pct: float
    backlog_max: int
    backlog_last: int
    ticks_handled: int
    wire_per_s: float  # ticks received off the wire by the process, per second (as KiteDesk's figure)
    handler_failures: list[str] = field(default_factory=list)


class SegmentHandler:
    """One session's segment as a vn.py event handler: KiteDesk's bars, EMAs and strategy on each index tick."""

    def __init__(self, params: Any, segment: Segment, probe: list[float]) -> None:
        self.segment = segment
        self.chart = IndexChart(segment.spec.index_token, params.fast_ema, params.slow_ema)
        self.strategy = ItmMomentumStrategy(params, segment)
        self.probe = probe
        self.ticks = 0
        self.failure: str | None = None

    def __call__(self, event: Any) -> None:
        tick, received = event.data
        self.ticks += 1
        try:
            closed = self.chart.add_tick(tick)
            if closed is None:
                return
            for action in self.strategy.on_bar(closed):
                if isinstance(action, EnterPosition):
                    self.probe.append(time.perf_counter() - received)
                    self.strategy.on_entry_rejected("bench: decisions only")
        except Exception as e:  # noqa: BLE001 - reported, as a failed agent is
            self.failure = f"{type(e).__name__}: {e}"


def run_vnpy_peer(
    engine: Any,
    users: list[str],
    raw_params: dict[str, Any],
    sessions: int,
    extra: list[int],
    mode: str,
    seconds: float,
    settle: float = 3.0,
) -> PeerFigures:
    """Runs the peer for `seconds` on the accounts `users` (logged in on `engine.hub`) and returns its figures."""
    from vnpy.event import Event, EventEngine  # the bench's extra only

    params = parse_params(raw_params)
    event_engine = EventEngine(interval=1)
    probe: list[float] = []
    handlers: list[SegmentHandler] = []
    used = users[: min(len(users), sessions)]  # session i is on account i % len(users), as in engine_bench
    for session in range(sessions):
        account = used[session % len(used)]
        for segment in params.segments:
            h = SegmentHandler(params, segment, probe)
            handlers.append(h)
            # A session's segment gets its own account's ticks, as a KiteDesk session does (one event type per
            # account and instrument: a handler fed every account's copy of each tick did 4x the work at 4 accounts).
            event_engine.register(f"eTick.{account}.{segment.spec.index_token}", h)
    index_tokens = sorted({s.spec.index_token for s in params.segments})
    wanted = set(index_tokens)
    put = event_engine.put

    def listener(account: str) -> Callable[[TickBatch], None]:
        def on_ticks(batch: TickBatch) -> None:  # the feed's thread: a vn.py gateway's on_tick
            received = batch.received
            for q in batch:
                token = q.instrument_token
                if token in wanted:
                    put(Event(f"eTick.{account}.{token}", (q.to_tick(), received)))

        return on_ticks

    kite_sessions, streams = [], []
    event_engine.start()
    try:
        for user in used:
            ks = engine.hub.open_session(engine._profile(user))  # noqa: SLF001 - demo accounts too
            stream = engine.hub.open_stream(ks)
            stream.add_tick_listener(listener(user), on_feed_thread=True)
            stream.subscribe(index_tokens, "full")
            if extra:
                stream.watch(extra, mode)
            kite_sessions.append(ks)
            streams.append(stream)
        time.sleep(settle)  # connected, subscriptions settled
        probe.clear()
        ticks0 = sum(h.ticks for h in handlers)
        feeds = [f for f in (engine.hub.feed(user) for user in used) if f is not None]
        wire0 = sum(f.packets_received for f in feeds)
        queue = event_engine._queue  # noqa: SLF001 - the backlog is the queue's length
        cpu0 = time.process_time()
        t0 = time.monotonic()
        backlog: list[int] = []
        while time.monotonic() - t0 < seconds:
            time.sleep(1.0)
            backlog.append(queue.qsize())
        elapsed = time.monotonic() - t0
        cpu = time.process_time() - cpu0
        latencies = [x * 1000 for x in probe]
        ticks = sum(h.ticks for h in handlers) - ticks0
        wire = sum(f.packets_received for f in feeds) - wire0
    finally:
        for stream in streams:
            stream.close()
        for ks in kite_sessions:
            ks.close()
        event_engine.stop()
    return PeerFigures(
        seconds=elapsed,
        latencies_ms=latencies,
        cpu_pct=cpu / elapsed * 100,
        backlog_max=max(backlog, default=0),
        backlog_last=backlog[-1] if backlog else 0,
        ticks_handled=ticks,
        wire_per_s=wire / elapsed,
        handler_failures=[f"{h.segment.value}: {h.failure}" for h in handlers if h.failure],
    )
