"""The simulator's WebSocket: Kite's tick protocol at `/ws`, order updates, and the exchange's heartbeat.

One `TickStreamer` per simulator. A pacing loop advances the exchange (resting orders are matched at the
new market time) and hands each connection one binary frame per simulated second it has not seen yet.
Every connection has its own writer task and bounded queue: a slow reader loses ticks (as on Kite), never
order updates, and never slows the other connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import WSMsgType, web

from desktop.broker.sim.book import SimKiteError, SimOrder
from desktop.broker.sim.state import AccountState, SimState
from desktop.broker.sim.ticks import HEARTBEAT, encode_frame, restamp_packet

log = logging.getLogger(__name__)

MAX_TOKENS_PER_CONNECTION = 3000
MAX_CONNECTIONS_PER_KEY = 3
HEARTBEAT_AFTER_S = 1.0
TICK_QUEUE_LIMIT = 8  # frames waiting for a slow reader before ticks are dropped
MODES = ("ltp", "quote", "full")


@dataclass(eq=False)
class Connection:
    """One WebSocket client of one account."""

    account: AccountState
    ws: web.WebSocketResponse
    request: web.Request
    modes: dict[int, str] = field(default_factory=dict)
    queue: asyncio.Queue[tuple[str, Any]] = field(default_factory=asyncio.Queue)
    last_second: datetime | None = None
    last_sent: float = field(default_factory=time.monotonic)
    stalled_until: float = 0.0
    ticks_queued: int = 0

    def enqueue_ticks(self, frame: bytes) -> None:
        if self.ticks_queued >= TICK_QUEUE_LIMIT:
            return  # a slow reader misses ticks, as on Kite
        self.ticks_queued += 1
        self.queue.put_nowait(("ticks", frame))


class TickStreamer:
    """Serves `/ws` and paces the market for every connection of one simulator."""

    def __init__(self, state: SimState) -> None:
        self._state = state
        self._connections: set[Connection] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pacer: asyncio.Task[None] | None = None
        self._last_step: datetime | None = None
        state.order_listeners.append(self._order_updated)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._pacer = asyncio.get_running_loop().create_task(self._pace(), name="sim-pacer")

    async def shutdown(self) -> None:
        if self._pacer:
            self._pacer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pacer
        for conn in list(self._connections):
            await self._close(conn, clean=True, code=1001, message=b"simulator shutting down")
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # ------------------------------------------------------------------ the socket
    async def handle(self, request: web.Request) -> web.StreamResponse:
        """GET /ws?api_key=..&access_token=..: 403 at the upgrade for a bad token, as Kite."""
        api_key = request.query.get("api_key", "")
        acc = self._state.check_ws_token(api_key, request.query.get("access_token", ""))
        if acc is None:
            return web.Response(status=403, text="Invalid api_key or access_token", content_type="text/plain")
        if len(acc.sockets) >= MAX_CONNECTIONS_PER_KEY:
            return web.Response(
                status=429,
                text="Maximum WebSocket connections per api_key reached",
                content_type="text/plain",
            )
        ws = web.WebSocketResponse(autoping=True, max_msg_size=4 * 1024 * 1024)
        await ws.prepare(request)
        conn = Connection(acc, ws, request)
        acc.sockets.add(conn)
        self._connections.add(conn)
        writer = asyncio.get_running_loop().create_task(self._write(conn), name=f"sim-ws-writer-{api_key}")
        self._tasks.add(writer)
        writer.add_done_callback(self._tasks.discard)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_client_message(conn, msg.data)
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self._forget(conn)
            writer.cancel()
        return ws

    def _on_client_message(self, conn: Connection, text: str) -> None:
        try:
            msg = json.loads(text)
            self._apply(conn, msg["a"], msg["v"])
        except (ValueError, KeyError, TypeError, IndexError):
            # A malformed message is answered, never allowed to kill the connection's reader.
            self._send_error(
                conn,
                'Invalid message: expected {"a": "subscribe"|"unsubscribe", "v": [tokens]} '
                'or {"a": "mode", "v": [mode, [tokens]]}',
            )

    def _apply(self, conn: Connection, action: Any, value: Any) -> None:
        if action == "subscribe":
            tokens = [int(t) for t in value]
            known = {i.instrument_token for i in self._state.market.instruments}
            for token in tokens:
                if token not in known:
                    continue
                if token not in conn.modes and len(conn.modes) >= MAX_TOKENS_PER_CONNECTION:
                    self._send_error(
                        conn, f"Subscription limit of {MAX_TOKENS_PER_CONNECTION} instruments reached"
                    )
                    break
                conn.modes.setdefault(token, "quote")
            conn.last_second = None  # new tokens get a tick at once
        elif action == "unsubscribe":
            for token in [int(t) for t in value]:
                conn.modes.pop(token, None)
        elif action == "mode":
            mode, tokens = value[0], [int(t) for t in value[1]]
            if mode not in MODES:
                self._send_error(conn, f"Invalid mode {mode!r}")
                return
            for token in tokens:
                if token in conn.modes:
                    conn.modes[token] = mode
            conn.last_second = None
        else:
            self._send_error(conn, f"Unknown action {action!r}")

    def _send_error(self, conn: Connection, text: str) -> None:
        conn.queue.put_nowait(("text", json.dumps({"type": "error", "data": text})))

    async def _write(self, conn: Connection) -> None:
        while True:
            kind, payload = await conn.queue.get()
            while conn.stalled_until > time.monotonic():
                await asyncio.sleep(min(0.05, conn.stalled_until - time.monotonic()))
            if kind == "ticks":
                conn.ticks_queued -= 1
            try:
                if kind == "text":
                    await conn.ws.send_str(payload)
                else:
                    await conn.ws.send_bytes(payload)
            except (ConnectionError, RuntimeError):
                return
            conn.last_sent = time.monotonic()

    def _forget(self, conn: Connection) -> None:
        conn.account.sockets.discard(conn)
        self._connections.discard(conn)

    async def _close(self, conn: Connection, clean: bool, code: int = 1000, message: bytes = b"") -> None:
        self._forget(conn)
        if clean:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(code=code, message=message), timeout=1.0)
        elif conn.request.transport is not None:
            conn.request.transport.abort()

    # ------------------------------------------------------------------ controls used by faults
    async def close_account(self, acc: AccountState, clean: bool) -> int:
        """Closes every socket of one account (cleanly, or by dropping TCP); returns how many."""
        conns = list(acc.sockets)
        for conn in conns:
            await self._close(conn, clean=clean, code=1000, message=b"session expired" if clean else b"")
        return len(conns)

    def stall_account(self, acc: AccountState, seconds: float) -> int:
        until = time.monotonic() + seconds
        for conn in acc.sockets:
            conn.stalled_until = until
        return len(acc.sockets)

    @staticmethod
    def _place_lagging(acc: AccountState, now: datetime) -> None:
        """Orders whose lost reply Kite's book lagged (faults.py, `appear_after`) reach the book once due."""
        due = [o for o in acc.lagging_orders if o[0] <= now]
        if not due:
            return
        acc.lagging_orders = [o for o in acc.lagging_orders if o[0] > now]
        for _, form, variety in due:
            try:
                acc.book.place(form, variety, now)
            except SimKiteError as e:  # refused now (market closed): as Kite would reject it
                log.warning("a lagging order was not placed: %s", e)

    # ------------------------------------------------------------------ order updates
    def _order_updated(self, api_key: str, order: SimOrder) -> None:
        acc = self._state.accounts[api_key]
        if not acc.sockets:
            return
        text = json.dumps({"type": "order", "data": order.as_postback(api_key)})
        for conn in acc.sockets:
            conn.queue.put_nowait(("text", text))

    # ------------------------------------------------------------------ pacing
    def _interval(self) -> float:
        # One frame per simulated second, at most 20 frames a real second.
        return max(0.05, min(1.0, 1.0 / self._state.clock.speed))

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            # A fixed rate, not a fixed pause: the time a step takes is not added to every cycle.
            deadline = max(deadline + self._interval(), loop.time())
            await asyncio.sleep(deadline - loop.time())
            try:
                self.step()
            except Exception:  # never let one bad step kill the market for everyone
                log.exception("simulator step failed")

    def step(self) -> None:
        """Advances the exchange to the clock's time and queues ticks and heartbeats."""
        state = self._state
        now = state.clock.now()
        second = now.replace(microsecond=0)
        if self._last_step is None or second > self._last_step:
            self._last_step = second
            for acc in state.accounts.values():
                self._place_lagging(acc, second)
                acc.book.work_all(second)
        market_open = state.clock.is_open(second)
        packets: dict[tuple[int, str], bytes] = {}
        real_now = time.monotonic()
        stamped: list[AccountState] = []
        for conn in list(self._connections):
            if conn.stalled_until > real_now:
                continue
            if market_open and conn.modes and (conn.last_second is None or second > conn.last_second):
                conn.last_second = second
                batch = []
                for token, mode in conn.modes.items():
                    key = (token, mode)
                    packet = packets.get(key)
                    if packet is None:
                        packet = packets[key] = state.market.tick_packet(token, second, mode)
                    batch.append(packet)
                epoch = conn.account.stamp_next_frame
                if epoch is not None:  # a fault: this frame's exchange timestamps are hostile
                    batch = [restamp_packet(p, epoch) for p in batch]
                    stamped.append(conn.account)
                conn.enqueue_ticks(encode_frame(batch))
            elif real_now - conn.last_sent >= HEARTBEAT_AFTER_S and conn.queue.empty():
                conn.enqueue_ticks(HEARTBEAT)
        for acc in stamped:
            acc.stamp_next_frame = None
