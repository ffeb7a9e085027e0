"""The demo's wiring: starts the simulator (embedded, in its own process, or one already running) and hands
the engine a `DemoMarket` view of it; picks the demo's home.

Only the composition root (desktop/cli) knows the simulator: the engine gets its clock, its accounts and its
stop through `Engine.attach_demo`, and a memory-only secret store from whoever builds it (the demo's
accounts and tokens never reach the OS keyring).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from desktop.broker.sim import DEMO_ACCOUNTS, SimConfig, Simulator, ws_url_of
from desktop.broker.sim.process import SimProcess
from desktop.domain import MARKET_CLOSE
from desktop.engine.market import DemoLogin
from desktop.store.home import HomeLock

if TYPE_CHECKING:
    from desktop.engine import Engine

DEMO_HOME = "demo"  # the demo's own home, under the data folder: kept after quitting, `--fresh` wipes it

_LOGINS = tuple(DemoLogin(a.user_id, a.api_key, a.user_name, a.api_secret) for a in DEMO_ACCOUNTS)


def demo_home(data_folder: Path) -> Path:
    """The demo's home: a folder of its own under the data folder, so the demo's database, logs and window
    state outlive the window ("Where are my logs" points at files that still exist) and never mix with the
    trader's own accounts (and a demo runs beside a real session: each home has its own lock)."""
    return data_folder / DEMO_HOME


def wipe_demo_home(home: Path) -> None:
    """`--demo --fresh`: removes the demo home's contents before the demo opens it. Refused (HomeLockedError,
    naming the holder) while a KiteDesk runs on it: its files are in use."""
    if not home.exists():
        return
    HomeLock.acquire(home).release()  # raises while another process holds it
    shutil.rmtree(home)


def demo_start_time(today: date | None = None) -> datetime:
    """09:19 of today (or the last weekday): one minute before the entry window opens."""
    day = today or date.today()
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return datetime(day.year, day.month, day.day, 9, 19)


class _ExternalClock:
    """A simulator's market clock read once over HTTP, then run forward locally at its speed."""

    def __init__(self, url: str) -> None:
        state = requests.get(f"{url}/_sim/state", timeout=5).json()["data"]
        self._base = datetime.strptime(state["clock"], "%Y-%m-%d %H:%M:%S")
        self._speed = float(state["speed"])
        self._mono = time.monotonic()

    def now(self) -> datetime:
        t = self._base + timedelta(seconds=(time.monotonic() - self._mono) * self._speed)
        return min(t, datetime.combine(self._base.date(), MARKET_CLOSE))


class EmbeddedMarket:
    """The simulator running in this process (tests reach its state and faults through `handle`)."""

    accounts: Sequence[DemoLogin] = _LOGINS

    def __init__(self, sim: Simulator) -> None:
        self._sim: Simulator | None = sim
        self.url, self.ws_url = sim.url, sim.ws_url
        self._now = sim.state.clock.now

    @property
    def handle(self) -> Simulator | None:
        return self._sim

    def now(self) -> datetime:
        return self._now()

    def stop(self) -> None:
        if self._sim is not None:
            self._sim.stop()
            self._sim = None


class ProcessMarket:
    """The simulator in a child process (sim/process.py): its Python never competes with this process's
    threads for the GIL. Its clock is read once, then run forward here."""

    accounts: Sequence[DemoLogin] = _LOGINS

    def __init__(self, proc: SimProcess) -> None:
        self._proc: SimProcess | None = proc
        self.url, self.ws_url = proc.url, proc.ws_url
        self._clock = _ExternalClock(proc.url)

    @property
    def handle(self) -> SimProcess | None:
        return self._proc

    def now(self) -> datetime:
        return self._clock.now()

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()
            self._proc = None


class RemoteMarket:
    """A simulator already running elsewhere (`kitedesk sim`), e.g. one that must outlive this process: never
    stopped from here."""

    accounts: Sequence[DemoLogin] = _LOGINS
    handle = None

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.ws_url = ws_url_of(self.url)
        self._clock = _ExternalClock(self.url)

    def now(self) -> datetime:
        return self._clock.now()

    def stop(self) -> None:
        pass


def start_market(
    speed: float = 30.0,
    seed: int = 1,
    start: datetime | None = None,
    sim_url: str | None = None,
    separate_process: bool = False,
) -> EmbeddedMarket | ProcessMarket | RemoteMarket:
    """Blocking: the demo market: the one at `sim_url`, else a new simulator (in its own process when
    `separate_process`) at `speed` from market time `start`."""
    if sim_url is not None:
        return RemoteMarket(sim_url)
    if separate_process:
        return ProcessMarket(SimProcess.start(speed=speed, seed=seed, start=start))
    return EmbeddedMarket(Simulator(SimConfig(seed=seed, speed=speed, start=start, rate_limits=True)).start())


def start_demo(
    engine: Engine,
    speed: float = 30.0,
    seed: int = 1,
    start: datetime | None = None,
    sim_url: str | None = None,
    separate_process: bool = False,
) -> None:
    """Blocking: starts the demo market (see `start_market`) and attaches it to `engine`, whose demo accounts
    (UK9394, UK1234) then log in by themselves. The engine stops the market on `close`; a market that fails
    to attach is stopped here. Nothing happens when the engine already has its demo."""
    if engine.demo:
        return
    market = start_market(speed, seed, start, sim_url, separate_process)
    try:
        engine.attach_demo(market)
    except BaseException:
        market.stop()
        raise


def window_demo(speed: float, seed: int, start: datetime | None = None) -> Callable[[Engine], None]:
    """What the window runs on a worker to start its demo: the simulator in a process of its own (in the
    window's, its Python held the GIL the window needs), from `start` (None: one minute before the entry window
    opens, today)."""

    def attach(engine: Engine) -> None:
        begin = start if start is not None else demo_start_time()
        start_demo(engine, speed=speed, seed=seed, start=begin, separate_process=True)

    return attach
