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

LIVE orders (`engine_bench.py --peer vnpy --live`: `run_vnpy_peer(..., orders="requests" | "lane")`): the peer then
also SENDS each entry to the same simulator, as a vn.py-based Kite gateway would, and lives with what follows:
- The option: KiteDesk's own `InstrumentBook.resolve_itm_option` (the account's book of the day, fetched once before
  the run) at the index price of the tick that closed the bar, KiteDesk's effective ITM offset and lot size: the same
  contract KiteDesk's entry would buy. Resolving it runs on the engine's thread, as the decision.
- The order: a MARKET BUY (`market_protection=-1`, product MIS, the peer stream's tag) with kiteconnect's
  `place_order`, put on the account gateway's own thread pool (`PeerGateway`: a `ThreadPoolExecutor` of `workers`
  threads per account, as vn.py's `RestClient` runs its requests on a `ThreadPool` of its own; `workers=1` is what
  vnpy_rest's `RestClient` does today: it applies its one `_run` loop to the pool, so one thread drains the queue).
  Each account has its own Kite client: stock `KiteConnect` (its `requests` session shared by the pool's threads)
  with `orders="requests"`, or KiteDesk's `new_kite` (kiteconnect over `OrderLane`'s kept-alive connections,
  one per thread) with `orders="lane"`: the transport held equal to KiteDesk's. Kite's per-account
  limits are respected with KiteDesk's own `AccountLimiter` (10 orders/s, 400/min; the simulator runs without its own).
- No durable write of the intent before the order: a vn.py gateway has none (KiteDesk pays one group commit per
  frame), unless `durable=True` (`engine_bench.py --peer-durable`, below). No margin check, no protective stop-loss order after the fill (KiteDesk places one at Kite for every entry), no
  journal: the peer's path is the lighter one.
- Order updates: processed from the WebSocket, as a vn.py gateway turns Kite's postbacks into `eOrder` events and
  a strategy learns its fills from them (and as KiteDesk's sessions do): the peer's stream gets the updates carrying
  its tag (the same feed code routes them), its listener puts one event per update in the same `EventEngine`, and
  the handler of that order (matched by order id, from the reply or, when the update came first, once the reply is
  in) tells the strategy: a COMPLETE BUY is `on_fill` (at the update's average price: no read of the trades, which
  KiteDesk does), a COMPLETE SELL `on_exit`, a REJECTED or CANCELLED one `on_entry_rejected` / `on_exit_rejected`.
  Without them the peer would hold forever after its first entry and send nothing more: it must exit what it holds
  (a MARKET SELL of it) on its next signal (EMAs 1/2: the next cross, the strategy's `signal_exit`), so the
  simulator's fills and updates keep coming on its feeds as on KiteDesk's, and the next entry (the reversal) follows.
  Option ticks are not subscribed: the strategy's stop and target on the option's price are not run (KiteDesk's are).
- Measured for each entry (BUY), from the frame's arrival at the feed: to the first write of its HTTP request (a
  wrapper of `http.client.HTTPConnection.send`, which urllib3 writes through, and one of `OrderLane`'s
  `LaneConnection.send`, which writes a request whole, on the pool's thread) and to its reply read (`place_order` returned). The decision latency is kept as in decisions only.
- Accounts: `engine_bench.py` gives each peer run accounts of its own, of the same number as KiteDesk's, so every run
  starts on empty order books at the simulator.
- Durable intents (`durable=<file>`, printed as "peer lane+durable"): the plain-SQLite floor under KiteDesk's group
  commit. The peer then writes the intent of every order it decides (entries and the exits that sell them: KiteDesk
  commits both before sending) durably before the order is handed to its pool: a handler's `send` only adds the
  order to its account's pending list; the feed's listener puts one more event after each frame's ticks
  (`ePeerFrame.<account>`), and its handler, on the event engine's thread, commits that frame's pending intents of
  that account in ONE transaction (`BEGIN IMMEDIATE`, one `executemany` INSERT, `COMMIT`) on a plain `sqlite3`
  connection (WAL, `synchronous=FULL`: on disk when COMMIT returns; one file in the run's temp home, a table with
  an order intent's columns: id, account, exchange, symbol, side, qty, tag, market time, wall time), and only then
  queues the frame's orders. A failed commit sends none of them (each is refused to its strategy). No order id or
  status is written after the reply, no outbox, no journal: only the write-ahead intent. The frame's other
  accounts' events and the commit share the engine's one thread, as KiteDesk's dispatcher does not (its commit
  runs on a segment's worker): the floor is the commit's cost on the path, not a better thread layout.
  `durable_scope="all"` ("peer lane+durable-all"): one transaction for every account's intents decided before it
  (the frame-end event goes back to the queue's end once, so the other accounts' ticks of the same second, already
  queued, are decided first): one fsync per burst, not one per account each holding the engine's thread.
- At the end no new entry is taken, the pools finish, and every account is made flat again (its open peer orders
  cancelled, every long MIS position sold), so KiteDesk's run that follows starts on flat accounts.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from desktop.broker.order_lane import LaneConnection
from desktop.broker.ratelimit import AccountLimiter, CallKind
from desktop.broker.ticks import TickBatch
from desktop.domain import OptionRight, Segment
from desktop.engine.chart import IndexChart
from desktop.engine.params import effective_itm_offset, order_quantity, parse_params
from desktop.engine.strategy.base import EnterPosition, ExitPosition
from desktop.engine.strategy.itm_momentum import ItmMomentumStrategy

INSTALL = "pip install --no-deps vnpy==4.5.0"
TRANSPORTS = ("requests", "lane")  # stock kiteconnect (requests), kiteconnect over KiteDesk's OrderLane
EVENT_REPLY = "ePeerReply"  # a place_order's reply (or failure), from a gateway's pool thread
EVENT_ORDER = "ePeerOrder"  # an order update from the WebSocket (the peer stream's delivery thread)
DURABLE_NAMES = {"account": "+durable", "all": "+durable-all"}  # the durable peers' columns
EVENT_FRAME = "ePeerFrame"  # durable: after a frame's ticks of an account (`ePeerFrame.<account>`)


@dataclass
class PeerOrderFigures:
    """What the peer's LIVE orders measured (`orders=` given)."""

    transport: str
    workers: int
    # entries: from the frame's arrival to the first write of the HTTP request, and to the reply read
    to_http_ms: list[float] = field(default_factory=list)
    to_reply_ms: list[float] = field(default_factory=list)
    orders_sent: int = 0  # every order the gateways sent in the window (entries and exits)
    entries_filled: int = 0
    exits_filled: int = 0
    refused: list[str] = field(default_factory=list)  # failures and rejections, as said
    flattened: int = 0  # positions sold (and open orders cancelled) at the end
    still_open: int = 0  # long positions left after the end's sales (should be 0)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # the pool threads' counts
    durable: str | None = (
        None  # "account" / "all": the intents committed (see `run_vnpy_peer`) before the orders
    )
    commit_ms: list[float] = field(default_factory=list)  # durable: wall time of each frame's commit
    commit_cpu_ms: list[float] = field(default_factory=list)  # durable: the engine thread's CPU in it
    intents_committed: int = 0  # durable: intents written in the window (entries and exits)

    @property
    def name(self) -> str:
        """The column's name: "peer lane", "peer lane+durable"."""
        return f"peer {self.transport}{'' if self.durable is None else DURABLE_NAMES[self.durable]}"


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
    orders: PeerOrderFigures | None = None  # LIVE orders sent (None: decisions only)
    waited_ms_per_s: float = (
        0.0  # the process's threads runnable but waiting for a CPU (Linux schedstat), per second
    )
    load: tuple[float, float] = (0.0, 0.0)  # the machine's load average at the window's start and end


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


_placing = threading.local()  # the HTTP writes of the entry a pool thread is placing (`_install_write_stamp`)


def _install_write_stamp() -> Callable[[], None]:
    """Stamps the first write of each entry's HTTP request on the thread placing it; returns the undo."""
    send = http.client.HTTPConnection.send

    def sending(self: Any, data: Any) -> Any:
        writes = getattr(_placing, "writes", None)
        if writes is not None and not writes:
            writes.append(time.perf_counter())
        return send(self, data)

    http.client.HTTPConnection.send = sending  # type: ignore[method-assign]
    lane_send = LaneConnection.send

    def lane_sending(self: Any, *a: Any, **kw: Any) -> Any:
        sent = lane_send(self, *a, **kw)  # the lane writes a request whole, in one send
        writes = getattr(_placing, "writes", None)
        if writes is not None and not writes:
            writes.append(time.perf_counter())
        return sent

    LaneConnection.send = lane_sending  # type: ignore[method-assign]

    def undo() -> None:
        http.client.HTTPConnection.send = send  # type: ignore[method-assign]
        LaneConnection.send = lane_send  # type: ignore[method-assign]

    return undo


class DurableIntents:
    """The durable peer's write-ahead record: one plain `sqlite3` connection (WAL, synchronous=FULL) used only on the
    event engine's thread; `commit` writes a group of intents in one transaction and returns once it is on disk."""

    def __init__(self, path: Path) -> None:
        # Opened on the bench's thread, then used only on the engine's (closed after it stopped).
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS order_intents (id TEXT PRIMARY KEY, account TEXT NOT NULL, exchange TEXT "
            "NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL, qty INTEGER NOT NULL, tag TEXT NOT NULL, "
            "market_time TEXT, created_at REAL NOT NULL)"
        )

    def commit(self, rows: list[tuple[Any, ...]]) -> None:
        """All of `rows` durable, or none (raised)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.executemany("INSERT INTO order_intents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            self.conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")
            raise

    def count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM order_intents").fetchone()[0])

    def close(self) -> None:
        self.conn.close()


class PeerGateway:
    """One account's Kite gateway as vn.py would write it: `send` (on the engine's thread) only queues the order on
    the gateway's own thread pool, whose threads call kiteconnect's `place_order` under the account's rate limit and
    put the reply (or failure) back into the event engine (`EVENT_REPLY`). With `durable` (the durable peer), `send`
    only adds the order to the frame's pending list; `end_frame` (the engine's thread, after the frame's ticks of this
    account) commits their intents in one transaction, then queues them."""

    def __init__(
        self, account: str, kite: Any, tag: str, limiter: AccountLimiter, workers: int, put: Callable[[Any], None],
        figures: PeerOrderFigures, durable: DurableIntents | None = None,
    ) -> None:  # fmt: skip
        self.durable = durable
        self.pending: list[tuple[Any, ...]] = []  # durable: this frame's orders (as `send`'s arguments)
        self.account = account
        self.kite = kite
        self.tag = tag
        self.limiter = limiter
        self.put = put
        self.figures = figures
        self.closing = False  # the run's window is over: no new entries
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"peer-rest-{account}")

    def send(
        self, handler: Any, side: str, exchange: str, symbol: str, qty: int, received: float | None
    ) -> None:
        """Queues a MARKET order; `received` (the frame's arrival) for an entry, None for an exit. Once the run's
        pool is shut (its end) nothing more is sent: the end's `flatten` sells what is held. Durable: the order
        waits for its frame's commit (`end_frame`)."""
        if self.durable is not None:
            self.pending.append((handler, side, exchange, symbol, qty, received))
            return
        with contextlib.suppress(RuntimeError):  # shut down
            self.pool.submit(self._place, handler, side, exchange, symbol, qty, received)

    def end_frame(self, event: Any) -> None:
        """Durable: the frame's intents of this account committed in one transaction, then its orders queued (the
        engine's thread: the next event waits for the disk, as a plain SQLite loop does)."""
        commit_then_send([self])

    def _place(
        self, handler: Any, side: str, exchange: str, symbol: str, qty: int, received: float | None
    ) -> None:
        from vnpy.event import Event

        writes: list[float] = []
        try:
            self.limiter.acquire(CallKind.ORDER)
            _placing.writes = writes
            try:
                order_id = self.kite.place_order(
                    variety="regular", exchange=exchange, tradingsymbol=symbol, transaction_type=side,
                    quantity=qty, product="MIS", order_type="MARKET", validity="DAY", tag=self.tag,
                    market_protection=-1,
                )  # fmt: skip
            finally:
                _placing.writes = None
            done = time.perf_counter()
            with self.figures.lock:  # (the two lists pair up by index)
                self.figures.orders_sent += 1
                if received is not None and writes and not self.closing:
                    self.figures.to_http_ms.append((writes[0] - received) * 1000)
                    self.figures.to_reply_ms.append((done - received) * 1000)
            self.put(Event(EVENT_REPLY, (handler, side, str(order_id), None)))
        except Exception as e:  # noqa: BLE001 - a refusal is the strategy's to hear, as in vn.py's on_error
            self.figures.refused.append(f"{side} {symbol}: {type(e).__name__}: {e}")
            self.put(Event(EVENT_REPLY, (handler, side, None, f"{type(e).__name__}: {e}")))

    def flatten(self) -> tuple[int, int]:
        """After the run (its pool finished): the peer's open orders cancelled, every long MIS position of the
        account sold at market; returns (orders cancelled + positions sold, long positions left after it)."""
        done = 0
        for o in self.kite.orders():
            if o.get("tag") == self.tag and o.get("status") in ("OPEN", "TRIGGER PENDING"):
                self.limiter.acquire(CallKind.ORDER)
                self.kite.cancel_order(variety="regular", order_id=o["order_id"])
                done += 1
        for _ in range(3):
            held = [
                p for p in self.kite.positions()["net"] if p["product"] == "MIS" and int(p["quantity"]) > 0
            ]
            if not held:
                return done, 0
            for p in held:
                self.limiter.acquire(CallKind.ORDER)
                self.kite.place_order(
                    variety="regular", exchange=p["exchange"], tradingsymbol=p["tradingsymbol"],
                    transaction_type="SELL", quantity=int(p["quantity"]), product="MIS", order_type="MARKET",
                    validity="DAY", tag=self.tag, market_protection=-1,
                )  # fmt: skip
                done += 1
            time.sleep(1.0)
        held = [p for p in self.kite.positions()["net"] if p["product"] == "MIS" and int(p["quantity"]) > 0]
        return done, len(held)


def commit_then_send(gateways: list[PeerGateway]) -> None:
    """Durable: the pending orders of `gateways` (all sharing one `DurableIntents`) have their intents committed in
    ONE transaction, then each is queued on its gateway's pool; none is sent if the commit failed."""
    orders = [(g, o) for g in gateways for o in g.pending]
    for g in gateways:
        g.pending = []
    if not orders or gateways[0].durable is None:
        return
    figures = gateways[0].figures
    now = time.time()
    rows = [
        (uuid.uuid4().hex, g.account, exchange, symbol, side, qty, g.tag,
         handler.now.isoformat() if handler.now is not None else None, now)
        for g, (handler, side, exchange, symbol, qty, _) in orders
    ]  # fmt: skip
    t0, c0 = time.perf_counter(), time.thread_time()
    try:
        gateways[0].durable.commit(rows)
    except Exception as e:  # noqa: BLE001 - no order without its intent on disk
        error = f"the intent was not saved: {type(e).__name__}: {e}"
        for _, (handler, side, _, symbol, _, _) in orders:
            figures.refused.append(f"{side} {symbol}: {error}")
            handler.replied(side, error)
        return
    wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
    if not gateways[0].closing:
        with figures.lock:
            figures.commit_ms.append(wall * 1000)
            figures.commit_cpu_ms.append(cpu * 1000)
            figures.intents_committed += len(rows)
    for g, (handler, side, exchange, symbol, qty, received) in orders:
        with contextlib.suppress(RuntimeError):  # shut down
            g.pool.submit(g._place, handler, side, exchange, symbol, qty, received)  # noqa: SLF001


class LiveSegmentHandler(SegmentHandler):
    """A segment that trades: each entry decided is a MARKET BUY of KiteDesk's ITM option through its account's
    `PeerGateway`; the next signal while holding (the opposite cross) sells it; order updates move it on."""

    def __init__(
        self, params: Any, segment: Segment, probe: list[float], gateway: PeerGateway, book: Any
    ) -> None:
        super().__init__(params, segment, probe)
        self.gateway = gateway
        self.book = book
        self.lots = params.lots
        self.offset = effective_itm_offset(params.itm_offset, segment)
        self.now: datetime | None = None
        # sent: (right, exchange, symbol, quantity)
        self.entry: tuple[OptionRight, str, str, int] | None = None
        self.held: tuple[str, str, int] | None = None  # filled: (exchange, symbol, quantity)
        self.exiting = False

    def __call__(self, event: Any) -> None:
        tick, received = event.data
        self.ticks += 1
        try:
            if tick.exchange_timestamp is not None:
                self.now = tick.exchange_timestamp
            closed = self.chart.add_tick(tick)
            if closed is None:
                return
            for action in self.strategy.on_bar(closed):
                if isinstance(action, EnterPosition):
                    self._enter(action, tick.last_price, received)
                elif isinstance(action, ExitPosition):
                    self._exit()
        except Exception as e:  # noqa: BLE001 - reported, as a failed agent is
            self.failure = f"{type(e).__name__}: {e}"

    def _enter(self, action: EnterPosition, spot: Decimal, received: float) -> None:
        if self.gateway.closing or self.now is None:
            self.strategy.on_entry_rejected("bench: the window is over")
            return
        self.probe.append(time.perf_counter() - received)  # decided: as in decisions only
        contract = self.book.resolve_itm_option(
            self.segment, spot, action.right, self.offset, self.now.date()
        )
        qty = order_quantity(self.lots, contract.lot_size)
        self.entry = (action.right, contract.exchange, contract.tradingsymbol, qty)
        self.gateway.send(self, "BUY", contract.exchange, contract.tradingsymbol, qty, received)

    def _exit(self) -> None:
        if self.held is None or self.exiting:
            return
        self.exiting = True
        exchange, symbol, qty = self.held
        self.gateway.send(self, "SELL", exchange, symbol, qty, None)

    # Order outcomes (the engine's thread, from `OrderRouter`)
    def replied(self, side: str, error: str) -> None:
        """The order failed before Kite took it."""
        self.ended(side, "REJECTED", error)

    def ended(self, side: str, status: str, data: Any) -> None:
        """A final update of one of its orders: COMPLETE (`data` the update), REJECTED or CANCELLED."""
        now = self.now or datetime.now()
        if side == "BUY":
            entry, self.entry = self.entry, None
            if status == "COMPLETE" and entry is not None:
                right, exchange, symbol, _ = entry
                qty, price = int(data["filled_quantity"]), Decimal(str(data["average_price"]))
                self.held = (exchange, symbol, qty)
                self.gateway.figures.entries_filled += 1
                self.strategy.on_fill(right, symbol, qty, price, now)
            else:
                self.strategy.on_entry_rejected(f"{status}")
        else:
            self.exiting = False
            if status == "COMPLETE":
                self.held = None
                self.gateway.figures.exits_filled += 1
                self.strategy.on_exit(Decimal(str(data["average_price"])), now, "signal_exit")
            else:
                self.strategy.on_exit_rejected(f"{status}")


class OrderRouter:
    """On the engine's thread (vn.py's OmsEngine's place): replies and WebSocket order updates to their handler, by
    order id. An update that came before its order's reply waits for the reply."""

    FINAL = ("COMPLETE", "REJECTED", "CANCELLED")

    def __init__(self) -> None:
        self.by_id: dict[str, tuple[LiveSegmentHandler, str]] = {}
        self.early: dict[str, list[dict[str, Any]]] = {}
        self.updates = 0

    def on_reply(self, event: Any) -> None:
        handler, side, order_id, error = event.data
        if order_id is None:
            handler.replied(side, error)
            return
        self.by_id[order_id] = (handler, side)
        for update in self.early.pop(order_id, ()):
            self._apply(order_id, update)

    def on_order(self, event: Any) -> None:
        update = event.data
        self.updates += 1
        order_id = str(update.get("order_id"))
        if order_id in self.by_id:
            self._apply(order_id, update)
        else:
            self.early.setdefault(order_id, []).append(update)

    def _apply(self, order_id: str, update: dict[str, Any]) -> None:
        status = str(update.get("status"))
        if status in self.FINAL:
            handler, side = self.by_id.pop(order_id)
            handler.ended(side, status, update)
            if status == "REJECTED":
                handler.gateway.figures.refused.append(f"{side}: {update.get('status_message')}")


def run_vnpy_peer(
    engine: Any,
    users: list[str],
    raw_params: dict[str, Any],
    sessions: int,
    extra: list[int],
    mode: str,
    seconds: float,
    settle: float = 3.0,
    orders: str | None = None,
    workers: int = 3,
    durable: Path | None = None,
    durable_scope: str = "account",
) -> PeerFigures:
    """Runs the peer for `seconds` on the accounts `users` (logged in on `engine.hub`) and returns its figures.
    `orders`: None decides only (each entry refused, as `--no-orders`); "requests" or "lane" sends each entry to the
    simulator as a LIVE order with that transport, `workers` threads per account (see the module docstring).
    `durable` (with `orders`): the SQLite file the peer commits each frame's intents to before sending them, in one
    transaction per frame and account (`durable_scope="account"`), or (`"all"`) in one transaction for every account's
    intents decided before it: an account's frame-end event is put back once at the queue's end, so the events already
    queued (the other accounts' ticks of the same second) are decided first, then one commit takes them all."""
    from vnpy.event import Event, EventEngine  # the bench's extra only

    if orders is not None and orders not in TRANSPORTS:
        raise ValueError(f"orders must be one of {TRANSPORTS}, not {orders!r}")
    if durable is not None and orders is None:
        raise ValueError("a durable peer sends orders: give `orders`")
    params = parse_params(raw_params)
    event_engine = EventEngine(interval=1)
    probe: list[float] = []
    handlers: list[SegmentHandler] = []
    used = users[: min(len(users), sessions)]  # session i is on account i % len(users), as in engine_bench
    index_tokens = sorted({s.spec.index_token for s in params.segments})
    wanted = set(index_tokens)
    put = event_engine.put
    if durable_scope not in DURABLE_NAMES:
        raise ValueError(f"durable_scope must be one of {tuple(DURABLE_NAMES)}, not {durable_scope!r}")
    figures = (
        PeerOrderFigures(orders, workers, durable=durable_scope if durable is not None else None)
        if orders is not None
        else None
    )
    intents = DurableIntents(durable) if durable is not None else None
    router = OrderRouter()
    gateways: dict[str, PeerGateway] = {}

    def listener(account: str) -> Callable[[TickBatch], None]:
        frame_end = f"{EVENT_FRAME}.{account}"

        def on_ticks(batch: TickBatch) -> None:  # the feed's thread: a vn.py gateway's on_tick
            received = batch.received
            put_any = False
            for q in batch:
                token = q.instrument_token
                if token in wanted:
                    put(Event(f"eTick.{account}.{token}", (q.to_tick(), received)))
                    put_any = True
            if put_any and intents is not None:  # durable: the frame's intents are committed after its ticks
                put(Event(frame_end, received))

        return on_ticks

    def end_burst(event: Any) -> None:  # durable_scope "all": the engine's thread
        if event.data is not None:  # first seen: back of the queue, after what is queued now
            put(Event(event.type, None))
            return
        commit_then_send(list(gateways.values()))

    def on_order(update: dict[str, Any]) -> None:  # the stream's delivery thread: a gateway's on_order
        put(Event(EVENT_ORDER, update))

    def add_handlers(book_of: dict[str, Any] | None) -> None:
        for session in range(sessions):
            account = used[session % len(used)]
            for segment in params.segments:
                h = (
                    LiveSegmentHandler(params, segment, probe, gateways[account], book_of[account])
                    if book_of is not None
                    else SegmentHandler(params, segment, probe)
                )
                handlers.append(h)
                # A session's segment gets its own account's ticks, as a KiteDesk session does (one event type per
                # account and instrument: a handler fed every account's copy of each tick did 4x the work at 4
                # accounts).
                event_engine.register(f"eTick.{account}.{segment.spec.index_token}", h)

    if figures is None:
        add_handlers(None)
    kite_sessions, streams = [], []
    undo_stamp = _install_write_stamp() if figures is not None else None
    event_engine.start()
    try:
        for user in used:
            profile = engine._profile(user)  # noqa: SLF001 - demo accounts too
            ks = engine.hub.open_session(profile)
            stream = engine.hub.open_stream(ks)
            stream.add_tick_listener(listener(user), on_feed_thread=True)
            stream.subscribe(index_tokens, "full")
            if extra:
                stream.watch(extra, mode)
            kite_sessions.append(ks)
            streams.append(stream)
            if figures is not None:
                stream.add_order_listener(on_order)
                gateways[user] = PeerGateway(
                    user, _kite(figures.transport, profile, engine.hub.account(profile).access_token),
                    ks.key.order_tag, AccountLimiter(user), workers, put, figures, intents,
                )  # fmt: skip
                if intents is not None:
                    end = gateways[user].end_frame if durable_scope == "account" else end_burst
                    event_engine.register(f"{EVENT_FRAME}.{user}", end)
        time.sleep(settle)  # connected, subscriptions settled
        if figures is not None:
            # The day's instruments of each account (KiteDesk's book, cached: its sessions reuse it), for the day of
            # the market's ticks; then the trading handlers, which see their first bars before the window opens.
            books: dict[str, Any] = {}
            for user, ks, stream in zip(used, kite_sessions, streams, strict=True):
                tick = stream.last_tick(index_tokens[0])
                day = tick.exchange_timestamp.date() if tick and tick.exchange_timestamp else None
                assert day is not None, f"no index tick on {user}'s feed after {settle} s"
                books[user] = engine.hub.instrument_book(ks, day)
            event_engine.register(EVENT_REPLY, router.on_reply)
            event_engine.register(EVENT_ORDER, router.on_order)
            add_handlers(books)
            time.sleep(settle)
        probe.clear()
        if figures is not None:  # counted from here on, as KiteDesk's
            with figures.lock:
                figures.to_http_ms.clear()
                figures.to_reply_ms.clear()
                figures.orders_sent = figures.entries_filled = figures.exits_filled = 0
                figures.refused.clear()
                figures.commit_ms.clear()
                figures.commit_cpu_ms.clear()
                figures.intents_committed = 0
        ticks0 = sum(h.ticks for h in handlers)
        feeds = [f for f in (engine.hub.feed(user) for user in used) if f is not None]
        wire0 = sum(f.packets_received for f in feeds)
        queue = event_engine._queue  # noqa: SLF001 - the backlog is the queue's length
        cpu0 = time.process_time()
        wait0, load0 = _runqueue_wait_s(), os.getloadavg()[0]
        t0 = time.monotonic()
        backlog: list[int] = []
        while time.monotonic() - t0 < seconds:
            time.sleep(1.0)
            backlog.append(queue.qsize())
        elapsed = time.monotonic() - t0
        cpu = time.process_time() - cpu0
        waited, load1 = _runqueue_wait_s() - wait0, os.getloadavg()[0]
        latencies = [x * 1000 for x in probe]
        ticks = sum(h.ticks for h in handlers) - ticks0
        wire = sum(f.packets_received for f in feeds) - wire0
        if figures is not None:
            for g in gateways.values():
                g.closing = True  # no new entries; what is on its way finishes
            for g in gateways.values():
                g.pool.shutdown(wait=True)
            time.sleep(1.0)  # the last fills' updates
            for g in gateways.values():
                done, left = g.flatten()
                figures.flattened += done
                figures.still_open += left
    finally:
        for g in gateways.values():
            g.pool.shutdown(wait=True)
        for stream in streams:
            stream.close()
        for ks in kite_sessions:
            ks.close()
        event_engine.stop()
        if intents is not None:
            intents.close()
        if undo_stamp is not None:
            undo_stamp()
    return PeerFigures(
        seconds=elapsed,
        latencies_ms=latencies,
        cpu_pct=cpu / elapsed * 100,
        backlog_max=max(backlog, default=0),
        backlog_last=backlog[-1] if backlog else 0,
        ticks_handled=ticks,
        wire_per_s=wire / elapsed,
        handler_failures=[f"{h.segment.value}: {h.failure}" for h in handlers if h.failure],
        orders=figures,
        waited_ms_per_s=waited / elapsed * 1000,
        load=(load0, load1),
    )


def _runqueue_wait_s() -> float:
    """Seconds this process's threads have spent runnable but waiting for a CPU (Linux schedstat), summed."""
    total = 0
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):  # a thread that just ended
            total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


def _kite(transport: str, profile: Any, access_token: str | None) -> Any:
    """The account's own Kite client for the peer's orders: stock kiteconnect, or KiteDesk's (over OrderLane)."""
    if transport == "lane":
        from desktop.broker.kite_client import new_kite as make
    else:
        from kiteconnect import KiteConnect as make
    kite = make(profile.api_key, root=profile.api_root, timeout=7, debug=False)
    kite.set_access_token(access_token)
    return kite
