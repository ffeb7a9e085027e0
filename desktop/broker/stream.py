"""Market data: one `AccountFeed` (WebSocket) per account, one `MarketStream` per session over it.

Why our own asyncio client and not `KiteTicker`: see `desktop/broker/ticks.py`'s docstring. Each feed
runs its own event loop on its own thread ("kitedesk-feed-<account>"), so closing one account's feed
touches nothing else. The feed subscribes the union of its streams' instruments (the richest mode any
stream asked for), reconnects with exponential backoff and resubscribes, reconnects a connection that
has been silent for `silence_timeout` seconds (Kite sends a heartbeat every second), reports a 403 at
the upgrade as "login needed" to its `AccountLink`, and rebuilds the connection with the new token after
a login. Ticks go to every stream subscribed to the instrument; order updates go only to the stream
whose session tag the order carries. Each stream delivers on its own thread
("kitedesk-stream-<session>"), order updates before queued ticks, so a slow consumer never slows the
feed or another session.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import aiohttp
import numpy as np

from desktop.broker.errors import LoginNeeded, scrub, translate
from desktop.broker.frames import FRAMES
from desktop.broker.session import (
    EVENT_STREAM_CONNECTED,
    EVENT_STREAM_DISCONNECTED,
    EVENT_TICKS_DROPPED,
    AccountLink,
    BrokerEvent,
    EventSink,
)
from desktop.broker.tick_times import TickTimeGuard
from desktop.broker.ticks import (
    MODE_FULL,
    MODE_LTP,
    MODE_QUOTE,
    MODES,
    FrameIndex,
    LatestPackets,
    QuoteTick,
    TickBatch,
    find_packets,
    index_frame,
    index_if_small,
    parse_packet,
    parse_packet_at,
    parse_text,
)
from desktop.domain import SessionKey

log = logging.getLogger(__name__)

_MODE_RANK = {MODE_LTP: 0, MODE_QUOTE: 1, MODE_FULL: 2}
_END_OF_SOCKET = (
    aiohttp.WSMsgType.CLOSE,
    aiohttp.WSMsgType.CLOSING,
    aiohttp.WSMsgType.CLOSED,
    aiohttp.WSMsgType.ERROR,
)
MAX_TICKS_QUEUED = 20_000  # per stream; beyond it the oldest ticks are dropped (orders never are)

TickListener = Callable[[TickBatch], None]
OrderListener = Callable[[dict[str, Any]], None]


class FrameRecorder(Protocol):
    """What a feed hands every raw frame to (`desktop.broker.recording.FeedRecorder`); must never block."""

    def frame(self, data: bytes) -> None: ...

    def text(self, message: str) -> None: ...


class MarketStream:
    """One session's view of its account's feed: its own subscriptions, ticks and order updates.

    Threads. Its owner (the session, on the GUI thread at start and a worker at stop) adds and removes listeners,
    subscribes and closes it; an agent subscribes the option it bought (`subscribe`, any thread: under its lock).
    The feed's thread offers it ticks and order updates; its own delivery thread ("kitedesk-stream-<session>")
    calls the listeners, order updates first. A listener runs on that delivery thread (or, for a tick listener
    added `on_feed_thread`, on the feed's thread), so it only routes: no REST call, no wait. `last_tick`,
    `last_price`, `connected` and the counters are read from any thread.
    """

    def __init__(self, feed: AccountFeed, key: SessionKey, on_event: EventSink | None = None) -> None:
        self.key = key
        self._feed = feed
        self._lock = threading.Condition()
        self.wanted: dict[int, str] = {}  # token -> mode; read by the feed under its own lock
        self.delivered: set[int] = set()  # the wanted tokens whose every tick goes to the listeners
        self._last: dict[int, QuoteTick] = {}  # the latest delivered tick of each delivered token
        self._decoded: dict[int, tuple[bytes, QuoteTick | None]] = {}  # watched tokens: packet -> its tick
        self._ticks: collections.deque[TickBatch] = collections.deque()
        self._orders: collections.deque[dict[str, Any]] = collections.deque()
        self._events: collections.deque[BrokerEvent] = collections.deque()
        self._tick_listeners: list[TickListener] = []
        self._direct_listeners: tuple[TickListener, ...] = ()  # run on the feed's thread
        self._order_listeners: list[OrderListener] = []
        self._event_listeners: list[EventSink] = [on_event] if on_event is not None else []
        self.dropped_ticks = 0
        # Ticks of its instruments the feed dropped for an exchange time far from the market clock (tick_times).
        self.bad_time_ticks = 0
        self._closed = False
        self._thread = threading.Thread(target=self._dispatch, name=f"kitedesk-stream-{key.session_id[:8]}")
        self._thread.start()

    # Consumer side -------------------------------------------------------------------------
    def add_tick_listener(self, listener: TickListener, on_feed_thread: bool = False) -> None:
        """`listener(ticks)` runs for each batch of delivered ticks: on this stream's delivery thread, or
        with `on_feed_thread` on the account feed's thread as the frame arrives (one thread switch less
        between the wire and a strategy), for a listener that only hands ticks on and never blocks."""
        with self._lock:
            if on_feed_thread:
                self._direct_listeners = (*self._direct_listeners, listener)
            else:
                self._tick_listeners.append(listener)

    def add_order_listener(self, listener: OrderListener) -> None:
        """`listener(update)` runs on the delivery thread for each order update carrying this session's tag."""
        with self._lock:
            self._order_listeners.append(listener)

    def add_event_listener(self, listener: EventSink) -> None:
        """`listener(event)` runs on the delivery thread when the feed connects or drops."""
        with self._lock:
            self._event_listeners.append(listener)

    def remove_tick_listener(self, listener: TickListener) -> None:
        """Stops delivering ticks to `listener`."""
        with self._lock:
            if listener in self._tick_listeners:
                self._tick_listeners.remove(listener)
            self._direct_listeners = tuple(x for x in self._direct_listeners if x != listener)

    def remove_order_listener(self, listener: OrderListener) -> None:
        """Stops delivering order updates to `listener`."""
        with self._lock:
            if listener in self._order_listeners:
                self._order_listeners.remove(listener)

    def remove_event_listener(self, listener: EventSink) -> None:
        """Stops delivering feed events to `listener`."""
        with self._lock:
            if listener in self._event_listeners:
                self._event_listeners.remove(listener)

    def subscribe(self, tokens: Iterable[int], mode: str = MODE_QUOTE, deliver: bool = True) -> None:
        """Adds instruments to this stream (in `mode`); other streams are unaffected.

        With `deliver` every tick of them goes to the tick listeners. Without it (`watch`) the stream only
        keeps their latest value for `last_tick`, decoded when asked: a watch list of a thousand
        instruments costs the feed almost nothing (never the reverse: watching a delivered token keeps
        its delivery).
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        with self._lock:
            for token in tokens:
                self.wanted[int(token)] = mode
                if deliver:
                    self.delivered.add(int(token))
        self._feed.resync()

    def watch(self, tokens: Iterable[int], mode: str = MODE_QUOTE) -> None:
        """Subscribes instruments whose latest value is read on demand (`last_tick`), not delivered."""
        self.subscribe(tokens, mode, deliver=False)

    def set_mode(self, mode: str, tokens: Iterable[int]) -> None:
        """Changes the mode of already subscribed instruments."""
        with self._lock:
            self.wanted.update({int(t): mode for t in tokens if int(t) in self.wanted})
        self._feed.resync()

    def unsubscribe(self, tokens: Iterable[int]) -> None:
        """Removes instruments from this stream only."""
        with self._lock:
            for token in tokens:
                self.wanted.pop(int(token), None)
                self.delivered.discard(int(token))
                self._last.pop(int(token), None)
                self._decoded.pop(int(token), None)
        self._feed.resync()

    def subscriptions(self) -> dict[int, str]:
        """This stream's instruments and modes."""
        with self._lock:
            return dict(self.wanted)

    def last_tick(self, token: int) -> QuoteTick | None:
        """The latest tick of a subscribed or watched `token`, or None (not subscribed, none yet)."""
        with self._lock:
            if token not in self.wanted:
                return None
            if token in self.delivered:
                return self._last.get(token)
            packet = self._feed.latest_packet(token)
            if packet is None:
                return None
            cached = self._decoded.get(token)
            if cached is not None and cached[0] == packet:
                return cached[1]
            tick = parse_packet(packet)
            self._decoded[token] = (packet, tick)
            return tick

    def last_price(self, token: int) -> Decimal | None:
        """The latest traded price of `token`, or None before its first tick."""
        tick = self.last_tick(token)
        return tick.last_price if tick else None

    @property
    def connected(self) -> bool:
        """True while the account's feed is connected."""
        return self._feed.connected

    def close(self) -> None:
        """Detaches from the feed and stops this stream's thread; other streams keep streaming."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._lock.notify_all()
        self._feed.detach(self)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    # Feed side (called on the feed's thread) --------------------------------------------------
    def _offer_ticks(self, ticks: TickBatch) -> None:
        with self._lock:
            delivered, last = self.delivered, self._last
            mine = TickBatch(
                ticks.received, [t for t in ticks if t.instrument_token in delivered], ticks.wakes
            )
            if not mine or self._closed:
                return
            for t in mine:
                last[t.instrument_token] = t
            direct = self._direct_listeners
            queued = bool(self._tick_listeners)
            if queued:
                self._ticks.append(mine)
                while len(self._ticks) > MAX_TICKS_QUEUED:
                    self._ticks.popleft()
                    self.dropped_ticks += 1
        for listener in direct:
            try:
                listener(mine)
            except Exception:  # a consumer's bug must not end the feed
                log.exception("stream %s: listener failed", self.key.session_id[:8])
        if queued:
            mine.wake_after(self._wake_delivery)

    def _wake_delivery(self) -> None:
        with self._lock:
            self._lock.notify()

    def _offer_order(self, update: dict[str, Any]) -> None:
        with self._lock:
            if not self._closed:
                self._orders.append(update)
                self._lock.notify()

    def _offer_event(self, kind: str, message: str = "") -> None:
        with self._lock:
            if not self._closed and self._event_listeners:
                self._events.append(BrokerEvent(kind, self.key, message))
                self._lock.notify()

    # Delivery thread ---------------------------------------------------------------------------
    def _dispatch(self) -> None:
        while True:
            with self._lock:
                while not (self._closed or self._orders or self._events or self._ticks):
                    self._lock.wait()
                if self._closed:
                    return
                # Order updates and events first: they must not queue behind market data.
                if self._orders:
                    item: Any = ("order", self._orders.popleft(), list(self._order_listeners))
                elif self._events:
                    item = ("event", self._events.popleft(), list(self._event_listeners))
                else:
                    item = ("ticks", self._ticks.popleft(), list(self._tick_listeners))
            _kind, payload, listeners = item
            for listener in listeners:
                try:
                    listener(payload)
                except Exception:  # a consumer's bug must not end delivery (vn.py's lesson)
                    log.exception("stream %s: listener failed", self.key.session_id[:8])


class AccountFeed:
    """One account's WebSocket connection shared by its sessions' streams; runs its own loop thread."""

    def __init__(
        self,
        account: AccountLink,
        silence_timeout: float = 10.0,
        backoff_initial: float = 0.2,
        backoff_max: float = 10.0,
        connect_timeout: float = 10.0,
        on_closed: Callable[[AccountFeed], None] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """`clock`: the market clock a tick's exchange time is checked against (`TickTimeGuard`)."""
        self.account = account
        self.broker_id = account.broker_id
        self.silence_timeout = silence_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._connect_timeout = connect_timeout
        self._on_closed = on_closed
        self._lock = threading.Lock()
        self._routing_lock = threading.Lock()
        self._streams: list[MarketStream] = []
        self._server_modes: dict[int, str] = {}
        # The latest packet of every subscribed token (raw: decoded by whoever reads it), the tokens some
        # stream wants delivered tick by tick, and how many streams want each token (sorted numpy arrays,
        # each replaced whole: the feed reads them without a lock).
        self._latest = LatestPackets()
        self._frames = 0
        self._eager: frozenset[int] = frozenset()
        self._fanout: tuple[np.ndarray, np.ndarray] = (np.empty(0, np.uint32), np.empty(0, np.int64))
        self.packets_received = 0  # tick packets off the wire (bench and diagnostics)
        self.ticks_to_streams = 0  # the same counted once per stream subscribed to them
        self._times = TickTimeGuard(account.broker_id, clock)  # a tick stamped in 2106 never reaches a stream
        # Every raw frame off the wire goes to it, when set (broker/recording.py: the frame is only queued here).
        self.recorder: FrameRecorder | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._connected = False
        self._closing = False
        self.connections = 0  # how many times a connection opened (tests and diagnostics)
        self._loop = asyncio.new_event_loop()
        self._wake: asyncio.Event | None = None
        self._sync_lock = asyncio.Lock()
        self._main_task: asyncio.Task[None] | None = None
        self._conn_task: asyncio.Task[bool] | None = None
        self._thread = threading.Thread(target=self._run_loop, name=f"kitedesk-feed-{self.broker_id}")
        account.add_listener(self._account_changed)
        self._thread.start()

    @property
    def connected(self) -> bool:
        """True while the WebSocket is open."""
        return self._connected

    def open_stream(self, key: SessionKey, on_event: EventSink | None = None) -> MarketStream:
        """A new stream for session `key` (which must belong to this feed's account)."""
        if key.broker_id != self.broker_id:
            raise ValueError("a stream's session must belong to the feed's account")
        with self._lock:
            if self._closing:
                raise RuntimeError("feed is closing")
            stream = MarketStream(self, key, on_event)
            self._streams.append(stream)
            # Under the lock that _serve also takes: the stream hears "connected" exactly once.
            if self._connected:
                stream._offer_event(EVENT_STREAM_CONNECTED)
        return stream

    def detach(self, stream: MarketStream) -> None:
        """Removes a stream; the feed closes itself once its last stream has gone."""
        with self._lock:
            if stream in self._streams:
                self._streams.remove(stream)
            last = not self._streams and not self._closing
        if last:
            self.close()
        else:
            self.resync()

    def latest_packet(self, token: int) -> bytes | None:
        """The raw latest packet of `token` (any thread; `parse_packet` decodes it)."""
        return self._latest.get(token)

    def resync(self) -> None:
        """Brings the server's subscriptions in line with the streams' (thread-safe)."""
        self._refresh_routing()
        if not self._closing:
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(lambda: self._loop.create_task(self._sync()))

    def close(self) -> None:
        """Closes the connection and joins the feed's thread."""
        with self._lock:
            already, self._closing = self._closing, True
        if not already:
            self.account.remove_listener(self._account_changed)
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop)
            if self._on_closed is not None:
                self._on_closed(self)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    @property
    def closing(self) -> bool:
        """True once the feed is shutting down: open a new one instead."""
        return self._closing

    # Account events (any thread) -----------------------------------------------------------------
    def _account_changed(self, token: str | None) -> None:
        # A new login (or a lost one): drop the connection built on the old token and start over.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._restart_connection)

    def _restart_connection(self) -> None:
        if self._conn_task is not None:
            self._conn_task.cancel()
        self._poke()

    def _stop(self) -> None:
        if self._main_task is not None:
            self._main_task.cancel()

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # The loop thread -------------------------------------------------------------------------------
    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._main_task = self._loop.create_task(self._run())
            with contextlib.suppress(asyncio.CancelledError):
                self._loop.run_until_complete(self._main_task)
        finally:
            self._loop.close()

    async def _run(self) -> None:
        self._wake = asyncio.Event()
        backoff = self._backoff_initial
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self._connect_timeout, sock_connect=self._connect_timeout
        )
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while not self._closing:
                token = self.account.access_token
                if token is None:
                    await self._sleep(1.0)  # until a login (or close) pokes us
                    continue
                self._conn_task = asyncio.get_running_loop().create_task(self._connect_once(http, token))
                try:
                    opened = await self._conn_task
                except asyncio.CancelledError:
                    if self._closing or self._main_task is None or self._main_task.cancelling():
                        raise
                    opened = True  # restarted on purpose (new login): reconnect at once
                    backoff = self._backoff_initial
                    continue
                finally:
                    self._conn_task = None
                    self._disconnected()
                if opened:
                    backoff = self._backoff_initial
                if self._closing:
                    break
                await self._sleep(backoff)
                backoff = min(self._backoff_max, backoff * 2)

    async def _connect_once(self, http: aiohttp.ClientSession, token: str) -> bool:
        """One connection's life; True if it opened. Never raises except on cancellation."""
        url = f"{self.account.profile.ws_root}?api_key={self.account.profile.api_key}&access_token={token}"
        try:
            async with http.ws_connect(url, autoping=True, heartbeat=None, max_msg_size=0) as ws:
                await self._serve(ws)
                return True
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified here, never crashes the feed
            err = translate(exc, secrets=(token,))
            if isinstance(err, LoginNeeded):
                log.info("feed %s: Kite refused the token: %s", self.broker_id, scrub(err.detail, (token,)))
                self.account.mark_login_needed(token)
            else:
                log.info("feed %s: connection failed: %s", self.broker_id, scrub(err.detail, (token,)))
            return False

    async def _sleep(self, seconds: float) -> None:
        assert self._wake is not None
        if not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), seconds)
        # Cleared after waking, not before sleeping, so a poke that came early is never lost.
        self._wake.clear()

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._server_modes = {}
        self.connections += 1
        await self._sync()
        with self._lock:
            self._connected = True
            for stream in self._streams:
                stream._offer_event(EVENT_STREAM_CONNECTED)
        while not self._closing:
            try:
                # The watchdog: Kite sends at least a heartbeat a second; silence means a dead link.
                msg = await asyncio.wait_for(ws.receive(), self.silence_timeout)
            except TimeoutError:
                log.info("feed %s: silent for %.0f s, reconnecting", self.broker_id, self.silence_timeout)
                return
            recorder = self.recorder
            if msg.type == aiohttp.WSMsgType.BINARY:
                if recorder is not None:
                    recorder.frame(msg.data)
                self._on_frame(msg.data, time.perf_counter())
            elif msg.type == aiohttp.WSMsgType.TEXT:
                if recorder is not None:
                    recorder.text(msg.data)
                self._on_text(msg.data)
            elif msg.type in _END_OF_SOCKET:
                return

    def _disconnected(self) -> None:
        was, self._connected = self._connected, False
        self._ws = None  # `async with ws_connect` has closed it
        self._server_modes = {}
        if was and not self._closing:
            for stream in self._stream_list():
                stream._offer_event(EVENT_STREAM_DISCONNECTED, "market data connection lost: reconnecting")

    def _on_frame(self, frame: bytes, received: float) -> None:
        # Decide first, then keep the rest (issue 18): the packets some stream wants delivered (the indices the
        # segments decide on, their held options) are found without indexing the frame, decoded and handed out
        # while the process's FRAMES is held (no garbage collection starts; what waits for the frames of the
        # moment, broker/frames.py, runs after); only then is every packet found and kept as its token's latest
        # (the watch list, read on demand), still on this thread and before the next frame. A reader of the watch
        # list meanwhile gets the previous frame's value: never one older than before.
        self._frames += 1
        small = index_if_small(
            frame, self._frames
        )  # a few packets: indexed once, the same walk as finding them
        FRAMES.hold()
        try:
            self._hand_out(frame, received, small)
        finally:
            FRAMES.release()
        FRAMES.after_deciding()  # the other accounts' frames of the moment are decided before this one is kept
        self._keep(small if small is not None else index_frame(frame, self._frames))

    def _hand_out(self, frame: bytes, received: float, small: FrameIndex | None) -> None:
        """Decodes the frame's delivered packets (`find_packets`) and hands them to every stream."""
        spans = find_packets(frame, self._eager) if small is None else small.spans_of(self._eager)
        if not spans:
            return
        wakes: list[Callable[[], None]] = []
        batch = TickBatch(received, wakes=wakes)
        now = self._times.market_time()
        for start, length in spans:
            tick = parse_packet_at(frame, start, length)
            if tick is None:
                continue
            if self._times.accept(tick, now):
                batch.append(tick)
            else:
                self._count_bad_time(tick.instrument_token, self._times.take_note())
        for stream in self._stream_list():
            stream._offer_ticks(batch)
        for wake in wakes:  # every stream has its part: now wake whoever asked
            wake()

    def _keep(self, index: FrameIndex) -> None:
        """Every packet of the frame kept as its token's latest (`latest_packet`), after its decisions."""
        if not len(index):
            return
        self._latest.add(index)
        self.packets_received += len(index)
        fan, counts = self._fanout
        self.ticks_to_streams += index.deliveries(fan, counts)

    @property
    def bad_time_ticks(self) -> int:
        """Ticks dropped for an exchange time far from the market clock, or going back (`TickTimeGuard`)."""
        return self._times.dropped

    def _count_bad_time(self, token: int, note: str) -> None:
        for stream in self._stream_list():
            if token in stream.delivered:
                stream.bad_time_ticks += 1
                if note:  # now and then: the session writes it in its own log
                    stream._offer_event(EVENT_TICKS_DROPPED, note)

    def _refresh_routing(self) -> None:
        # One at a time: two sessions subscribing at once must not publish in the reverse order of reading,
        # or the later publish (an older read) would drop the other's instruments.
        with self._routing_lock:
            eager: set[int] = set()
            for stream in self._stream_list():
                with stream._lock:
                    eager |= stream.delivered
            # Replaced whole: the feed reads it without a lock.
            self._eager = frozenset(eager)

    def _stream_list(self) -> list[MarketStream]:
        with self._lock:
            return list(self._streams)

    def _on_text(self, payload: str) -> None:
        msg = parse_text(payload)
        if msg is None:
            return
        if msg.kind == "order" and isinstance(msg.data, dict):
            tag = msg.data.get("tag")
            tags = msg.data.get("tags") or []
            routed = False
            for stream in self._stream_list():
                if stream.key.order_tag == tag or stream.key.order_tag in tags:
                    stream._offer_order(msg.data)
                    routed = True
            if not routed:
                log.debug("feed %s: order update for another client or session ignored", self.broker_id)
        elif msg.kind == "error":
            log.warning("feed %s: Kite says: %s", self.broker_id, scrub(str(msg.data)))

    def _desired_modes(self) -> dict[int, str]:
        desired: dict[int, str] = {}
        fanout: dict[int, int] = {}
        for stream in self._stream_list():
            with stream._lock:
                wanted = dict(stream.wanted)
            for token, mode in wanted.items():
                fanout[token] = fanout.get(token, 0) + 1
                if token not in desired or _MODE_RANK[mode] > _MODE_RANK[desired[token]]:
                    desired[token] = mode
        tokens = sorted(fanout)  # only counts ticks_to_streams
        self._fanout = (np.array(tokens, np.uint32), np.array([fanout[t] for t in tokens], np.int64))
        return desired

    async def _sync(self) -> None:
        async with self._sync_lock:  # one diff at a time: sends interleave at every await
            await self._sync_locked()

    async def _sync_locked(self) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            return
        desired = self._desired_modes()
        current = self._server_modes
        gone = [t for t in current if t not in desired]
        new = [t for t in desired if t not in current]
        by_mode: dict[str, list[int]] = {}
        for token, mode in desired.items():
            if current.get(token) != mode:
                by_mode.setdefault(mode, []).append(token)
        try:
            if gone:
                await ws.send_str(json.dumps({"a": "unsubscribe", "v": gone}))
            if new:
                await ws.send_str(json.dumps({"a": "subscribe", "v": new}))
            for mode, tokens in by_mode.items():
                await ws.send_str(json.dumps({"a": "mode", "v": [mode, tokens]}))
        except (ConnectionError, RuntimeError, aiohttp.ClientError):
            return  # the reader notices the broken socket and reconnects; the next connect resyncs
        self._server_modes = desired
        for token in gone:  # nobody wants it any more: a later subscriber must not get a stale price
            self._latest.forget(token)
