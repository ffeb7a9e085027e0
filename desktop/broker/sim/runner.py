"""Running a simulator: embedded on a background thread (demo, tests) or in the foreground (CLI)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web

from desktop.broker.sim.faults import apply_fault
from desktop.broker.sim.server import STREAMER_KEY, build_app
from desktop.broker.sim.state import SimAccount, SimConfig, SimState

T = TypeVar("T")


def ws_url_of(rest_url: str) -> str:
    """A simulator's WebSocket URL from its REST root (`http://host:port` → `ws://host:port/ws`)."""
    return "ws" + rest_url.rstrip("/")[len("http") :] + "/ws"


class Simulator:
    """A Kite-compatible simulator on its own event-loop thread; several may run in one process.

    >>> sim = Simulator(SimConfig(speed=60, rate_limits=False)); sim.start()
    >>> kite = KiteConnect("UK9394", root=sim.url); ...; sim.stop()
    """

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.state = SimState(self.config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._app: web.Application | None = None
        self._port: int | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 10.0) -> Simulator:
        """Starts serving on a background thread; returns once the port is open."""
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._open())
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._close())
                loop.close()

        self._thread = threading.Thread(target=run, name=f"kite-sim-{id(self):x}", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("simulator did not start in time")
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Closes every socket and stops the thread."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> Simulator:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _open(self) -> None:
        self._app = build_app(self.state)
        self._runner = web.AppRunner(self._app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def _close(self) -> None:
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await self._runner.cleanup()

    # ------------------------------------------------------------------ addresses
    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("simulator not started")
        return self._port

    @property
    def url(self) -> str:
        """REST root for `KiteConnect(root=...)`."""
        return f"http://{self.config.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """WebSocket URL (without api_key/access_token) for a ticker."""
        return ws_url_of(self.url)

    def login_url(self, api_key: str) -> str:
        return f"{self.url}/connect/login?api_key={api_key}&v=3"

    # ------------------------------------------------------------------ control from Python
    def call(self, func: Callable[[], Coroutine[Any, Any, T]], timeout: float = 10.0) -> T:
        """Runs a coroutine on the simulator's loop and returns its result."""
        if self._loop is None or self._thread is None:
            raise RuntimeError("simulator not started")
        return asyncio.run_coroutine_threadsafe(func(), self._loop).result(timeout)

    def inject_fault(self, fault: dict[str, Any]) -> dict[str, Any]:
        """Applies a fault like POST /_sim/faults does (see desktop.broker.sim.faults)."""
        assert self._app is not None

        async def go() -> dict[str, Any]:
            return await apply_fault(self.state, self._app[STREAMER_KEY], fault)  # type: ignore[index]

        return self.call(go)

    def describe(self) -> dict[str, Any]:
        """The clock and accounts, as GET /_sim/state reports them."""

        async def go() -> dict[str, Any]:
            return self.state.describe()

        return self.call(go)

    def step(self) -> None:
        """Works resting orders and queues ticks at the clock's time now (after `advance`, say)."""
        assert self._app is not None

        async def go() -> None:
            self._app[STREAMER_KEY].step()  # type: ignore[index]

        self.call(go)

    def add_account(self, account: SimAccount) -> None:
        """Registers one more account while running."""

        async def go() -> None:
            self.state.add_account(account)

        self.call(go)
