"""`--sim-day`: a day of the built-in simulator's market as a replay's frames, without recording it first.

The simulator's seeded market (`desktop/broker/sim/market.py`) gives every second of the day's session the packets
its WebSocket server would send: each index in full mode, plus whatever the replay's sessions subscribed (the
option they trade), encoded by the simulator's own frame encoder. The instruments dump and the warm-up candles
come from the same market, so a sim day replays exactly as a recording of that day would.

It lives in the composition root because the engine never imports the simulator: `kitedesk replay` calls it,
and `kitedesk backtest` hands it to the engine's `DaySource` (a module-level function: it crosses into the
sweep's spawned processes by name).

A process keeps the days it made (`_DayCache`): the simulator's model costs about 30 µs a packet, three quarters
of a whole-day job's time when every job made its day again, while a sweep replays the same few days once per
combination. A packet is a pure function of (seed, day, instrument, second, mode) here (no fault is ever set on
these markets), so a packet made once is the packet every later replay of that day gets: the frames, and so the
trades, are byte for byte those of a day made afresh (tests/engine/test_backtest.py checks it). Bounded by
`CACHE_BYTES` of packets per process (`_DayCache` says how).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta

from desktop.broker.recording import KIND_BINARY, Frame
from desktop.broker.sim.market import Market
from desktop.broker.sim.pricing import SESSION_SECONDS
from desktop.broker.sim.ticks import encode_frame, ist_epoch
from desktop.broker.ticks import MODE_FULL
from desktop.domain import MARKET_CLOSE, MARKET_OPEN, Segment
from desktop.engine.replay import DayData, ReplayError, jsonable_candle
from desktop.engine.workspace import Workspace

WARM_UP_DAYS = 4  # calendar days of candles before the day (the warm-up reaches into the previous weekday)


# Memory for packets kept per process, counted as below (a whole day of a sweep's sessions takes about 100 MB).
CACHE_BYTES = 768 << 20
STALE_S = 600.0  # a day no replay asked for in this long is dropped (a Dask worker outlives its sweeps)
_PACKET_COST = 41  # bytes a kept packet costs beyond its length (the bytes object's header, its list slot)


class _Day:
    """One simulated day of a process: its market, its data and the packets made so far, by (token, mode) and
    second of the session (`keep` False: made each time, kept nowhere)."""

    def __init__(self, market: Market, data: DayData, keep: bool = True) -> None:
        self.market = market
        self.data = data
        self.keep = keep
        self.columns: dict[tuple[int, str], list[bytes | None]] = {}
        self.size = 0  # bytes the packets kept take
        self.used = time.monotonic()  # when a replay last asked for it

    def packet(self, token: int, mode: str, second: int, t: datetime) -> bytes:
        """The packet of `token` in `mode` at `t` (second `second` of the session), made on first use."""
        column = self.columns.get((token, mode))
        if column is None:
            if not self.keep:
                return self.market.tick_packet(token, t, mode)
            column = self.columns[(token, mode)] = [None] * (SESSION_SECONDS + 1)
            self.size += 8 * len(column)
        packet = column[second]
        if packet is None:
            packet = column[second] = self.market.tick_packet(token, t, mode)
            self.size += len(packet) + _PACKET_COST
        return packet


class _DayCache:
    """The days this process made. Past `limit` bytes no further day is kept (made for each replay as before):
    a sweep asks for its days in turn, one combination after another, and dropping the least recently used day
    to keep the next one would drop each day just before it is asked for again. A day unused for `stale_s` is
    dropped. Any thread (a Dask worker runs tasks on several): days are looked up and dropped under the lock;
    two threads filling one day may make one packet twice, the same bytes."""

    def __init__(self, limit: int, stale_s: float = STALE_S) -> None:
        self.limit = limit
        self.stale_s = stale_s
        self._lock = threading.Lock()
        self._days: dict[tuple[int, date], _Day] = {}

    def day(self, seed: int, day: date) -> _Day:
        """The day (made now if this process has not kept it); ReplayError on a weekend."""
        key = (seed, day)
        now = time.monotonic()
        with self._lock:
            for k in [k for k, d in self._days.items() if now - d.used > self.stale_s]:
                del self._days[k]
            kept = self._days.get(key)
            full = sum(d.size for d in self._days.values()) >= self.limit
        if kept is None:
            made = _make_day(seed, day, keep=not full)
            if not made.keep:
                return made
            with self._lock:
                kept = self._days.setdefault(key, made)
        kept.used = now
        return kept

    def clear(self) -> None:
        """Forgets every day (tests)."""
        with self._lock:
            self._days.clear()


_CACHE = _DayCache(CACHE_BYTES)


def forget_days() -> None:
    """Drops the days this process keeps (a bench timing a sweep from scratch, tests)."""
    _CACHE.clear()


def _make_day(seed: int, day: date, keep: bool = True) -> _Day:
    try:
        market = Market(seed, day)
    except ValueError as exc:
        raise ReplayError(str(exc)) from None
    tokens = {s.spec.index_token for s in Segment}
    frm = datetime.combine(day - timedelta(days=WARM_UP_DAYS), MARKET_OPEN)
    to = datetime.combine(day, MARKET_CLOSE)
    candles = {t: [jsonable_candle(r) for r in market.candles(t, "minute", frm, to)] for t in tokens}
    return _Day(market, DayData(day, market.instruments_csv(), candles), keep)


class SimDayFrames:
    """The frames of one simulated day, one a second, for the indices and what the replay subscribed."""

    def __init__(self, day: _Day) -> None:
        self._day = day
        self._wanted: Callable[[], dict[int, str]] = dict

    def bind(self, wanted: Callable[[], dict[int, str]]) -> None:
        """The replay's subscriptions (token -> mode), read each second."""
        self._wanted = wanted

    def __iter__(self) -> Iterator[Frame]:
        day = self._day
        t = datetime.combine(day.data.day, MARKET_OPEN)
        end = datetime.combine(day.data.day, MARKET_CLOSE)
        indices = {s.spec.index_token: MODE_FULL for s in Segment}
        second = 0
        while t <= end:
            wanted = {**indices, **self._wanted()}
            packets = [day.packet(token, mode, second, t) for token, mode in sorted(wanted.items())]
            yield Frame(float(ist_epoch(t)), KIND_BINARY, encode_frame(packets))
            t += timedelta(seconds=1)
            second += 1


def sim_day(day: date, workspace: Workspace, seed: int = 1) -> tuple[SimDayFrames, DayData]:
    """The frames and the day's data of simulator day `day` (seed `seed`); ReplayError on a weekend. Made once
    per process (see the module docstring): a sweep's later combinations replay the packets the first made."""
    kept = _CACHE.day(seed, day)
    return SimDayFrames(kept), kept.data
