"""Replay: a recorded day (or a simulator day) through the same engine, deterministically, without a window.

What runs is what runs live: the recorded frames go through the account feed's own frame handling
(`AccountFeed._on_frame`: `broker/ticks.py`'s parser, the tick-time guard), the sessions' `MarketStream`s,
`SessionEngine`s, `SegmentAgent`s, the strategy, risk and the `PaperGateway` (a LIVE session is replayed as PAPER,
and the replay says so). Only three things are swapped:
- the connection: `ReplayFeed` is an `AccountFeed` that never connects; the driver hands it each recorded frame;
- the REST calls a session makes at its start: `RecordedKite` answers the instruments dump and the warm-up
  candles from the files kept beside the recording (broker/recording.py);
- the clock: market time is the latest exchange time of the frames delivered so far.

Determinism: live, agents act on a frame concurrently. Here the driver delivers one frame, then gives each
agent a turn in session and segment order and waits until its inbox is empty (`Lockstep`, engine/lockstep.py);
the paper gateway matches orders on the feed's (the driver's) thread as the frame is delivered, before the
agents' turns. Same recording and workspace, byte-identical orders and trades files.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import heapq
import io
import struct
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from desktop.broker.hub import BrokerHub
from desktop.broker.instruments import InstrumentCache, parse_instruments_csv
from desktop.broker.profiles import MemorySecretStore, Profile
from desktop.broker.recording import (
    INSTRUMENTS_SUFFIX,
    KIND_BINARY,
    Frame,
    RecordingError,
    day_of,
    read_candles,
    read_frames,
)
from desktop.broker.stream import AccountFeed
from desktop.broker.ticks import ist_cached
from desktop.domain import Mode, Order, SessionKey
from desktop.engine.agent import StopAgent
from desktop.engine.lockstep import Lockstep
from desktop.engine.risk import GlobalKillSwitch
from desktop.engine.session import SessionEngine, SessionServices
from desktop.engine.snapshots import AgentState
from desktop.engine.workspace import OnStop, SessionEntry, Workspace
from desktop.engine.writer import StoreWriter
from desktop.store import Store
from desktop.store.export import export_trades

START_WAIT_S = 60.0  # an agent's start (instruments, warm-up) reads local files: a minute is plenty
_NAMESPACE = uuid.UUID("6f0d7c2e-3b8a-4c55-9a57-6b1e2a4c9d10")


class ReplayError(ValueError):
    """A replay that cannot run; the message says why in a trader's words."""


class ReplayClock:
    """Market time driven by the frames: the latest exchange time delivered (never going back)."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        """The market time now."""
        return self._now

    def advance(self, t: datetime) -> None:
        """Moves the clock to `t` if later."""
        if t > self._now:
            self._now = t


_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_STAMP_AT = {184: 60, 32: 28}  # packet length -> offset of its exchange timestamp (full and index full modes)


def frame_time(frame: Frame) -> datetime | None:
    """The latest exchange time in a binary frame (None: a heartbeat, LTP or quote packets, a text message).

    Read straight from the packets' timestamp fields (KITE.md's layouts), without decoding the ticks: the feed
    decodes them once more as it is handed the frame."""
    data = frame.data
    if frame.kind != KIND_BINARY or len(data) < 4:
        return None
    (count,) = _U16.unpack_from(data, 0)
    pos, n, latest = 2, len(data), 0
    u16, u32, stamp_at = _U16.unpack_from, _U32.unpack_from, _STAMP_AT.get
    for _ in range(count):
        if pos + 2 > n:
            break
        length = u16(data, pos)[0]
        start, pos = pos + 2, pos + 2 + length
        if pos > n:
            break
        at = stamp_at(length)
        if at is not None:
            stamp = u32(data, start + at)[0]
            if stamp > latest:
                latest = stamp
    return ist_cached(latest) if latest else None


# What a session's start asks Kite, answered from the recording ---------------------------------------------


@dataclass(frozen=True, slots=True)
class DayData:
    """What a replayed day's sessions load at their start: the instruments dump and the warm-up candles."""

    day: date
    instruments_csv: str
    candles: dict[int, list[list[Any]]]


def day_data(recording: Path) -> DayData:
    """The instruments and candles kept beside `recording`; ReplayError when the dump is missing."""
    day = day_of(recording)
    dump = Path(recording).with_name(day.isoformat() + INSTRUMENTS_SUFFIX)
    if not dump.exists():
        raise ReplayError(
            f"{dump.name} is missing beside the recording: without that day's instruments a replay cannot "
            "resolve the same option contracts"
        )
    return DayData(day, dump.read_text(encoding="utf-8"), read_candles(recording))


def jsonable_candle(row: list[Any]) -> list[Any]:
    """A candle row as JSON keeps it: its time as "YYYY-MM-DD HH:MM:SS" (the warm-up reads either)."""
    return [v.strftime("%Y-%m-%d %H:%M:%S") if isinstance(v, datetime) else v for v in row]


@dataclass(frozen=True, slots=True)
class AccountFrame(Frame):
    """A recorded frame with the account whose feed received it (the recording's folder name)."""

    account: str = ""


def recorded_day(recordings: Sequence[Path]) -> tuple[Iterator[Frame], DayData, set[str]]:
    """The frames of one day's recordings (one per account, merged in the order they arrived), the day's data and
    the accounts recorded. ReplayError in words for recordings of different days or a missing one."""
    for path in recordings:
        if not Path(path).is_file():
            raise ReplayError(f"{path} does not exist")
    days = sorted({day_of(p) for p in recordings})
    if len(days) != 1:
        raise ReplayError("the recordings are of different days: " + ", ".join(d.isoformat() for d in days))
    datas = [day_data(p) for p in recordings]
    candles: dict[int, dict[str, list[Any]]] = {}
    for d in datas:
        for token, rows in d.candles.items():
            candles.setdefault(token, {}).update({str(r[0]): r for r in rows})
    merged = {token: [rows[k] for k in sorted(rows)] for token, rows in candles.items()}
    accounts = [Path(p).parent.name for p in recordings]
    streams = [_account_frames(p, account) for p, account in zip(recordings, accounts, strict=True)]
    frames = heapq.merge(*streams, key=lambda f: f.received)
    return frames, DayData(days[0], datas[0].instruments_csv, merged), set(accounts)


def _account_frames(recording: Path, account: str) -> Iterator[AccountFrame]:
    for f in recorded_frames(recording):
        yield AccountFrame(f.received, f.kind, f.data, account)


def _candle_time(value: Any) -> datetime:
    return datetime.fromisoformat(str(value)[:19].replace("T", " "))


class RecordedKite:
    """The few `KiteConnect` calls a PAPER session's start makes, answered from a `DayData` (no network)."""

    def __init__(self, data: DayData, api_key: str, **_: Any) -> None:
        self._data = data
        self._user_id = api_key  # replay profiles use the account id as their API key
        self.access_token: str | None = None

    def set_access_token(self, token: str | None) -> None:
        """As KiteConnect."""
        self.access_token = token

    def set_session_expiry_hook(self, hook: Callable[[], None]) -> None:
        """A replay's login never expires."""

    def generate_session(self, request_token: str, api_secret: str) -> dict[str, Any]:
        """The replay's login."""
        return {"access_token": "replay", "user_id": self._user_id}

    def _get(
        self, route: str, url_args: dict[str, Any] | None = None, params: dict[str, Any] | None = None
    ) -> Any:
        if route.startswith("market.instruments"):
            return self._data.instruments_csv
        if route == "market.historical" and url_args is not None and params is not None:
            start, end = _candle_time(params["from"]), _candle_time(params["to"])
            rows = self._data.candles.get(int(url_args["instrument_token"]), [])
            return {"candles": [r for r in rows if start <= _candle_time(r[0]) <= end]}
        raise ReplayError(f"a replay cannot answer {route}: only PAPER sessions replay")


class ReplayFeed(AccountFeed):
    """An account feed that never connects: the replay driver hands it each recorded frame."""

    # `resync`s counted: a generated day asks what is subscribed again only after one.
    subscriptions_changed = 0

    def resync(self) -> None:
        """As the feed's (its streams' subscriptions changed), counted."""
        self.subscriptions_changed += 1
        super().resync()

    async def _run(self) -> None:
        self._connected = True
        while not self._closing:
            await asyncio.sleep(3600)  # until close() cancels it


class ReplayHub(BrokerHub):
    """A broker hub whose feeds are `ReplayFeed`s."""

    feed_class = ReplayFeed


# The driver ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    """When to start and end (market time of day), and how fast (None: as fast as it goes)."""

    start: datetime | None = None
    end: datetime | None = None
    speed: float | None = None


@dataclass(slots=True)
class ReplayResult:
    """What a replay did: its sessions' orders and trades, and notes a trader should read."""

    orders: list[tuple[str, Order]]  # (session label, order)
    trades_csv: str  # the export's columns, ids numbered in order
    notes: list[str]
    frames: int = 0
    ticks: int = 0
    seconds: float = 0.0


class Replay:
    """Runs a workspace's sessions over a stream of recorded frames; `run()` once."""

    def __init__(
        self,
        workspace: Workspace,
        frames: Iterable[Frame],
        data: DayData,
        options: ReplayOptions | None = None,
        log: Callable[[str], None] = lambda line: None,
        recorded_accounts: Iterable[str] = (),
    ) -> None:
        """`recorded_accounts`: the accounts with a recording of their own among `frames` (`AccountFrame`s): each
        account's frames go to its own sessions, and to the sessions of accounts not recorded."""
        self.recorded_accounts = set(recorded_accounts)
        self.workspace = workspace
        self._frames = frames
        self._data = data
        self.options = options or ReplayOptions()
        self._log = log
        self.notes: list[str] = []

    def run(self) -> ReplayResult:
        """Replays every frame; returns the orders and trades (the replay's own store is thrown away)."""
        from PySide6.QtCore import QCoreApplication

        QCoreApplication.instance() or QCoreApplication([])  # QThread agents; no window, no event loop
        started = time.perf_counter()
        frames = self._window(iter(self._frames))
        first = next(frames, None)
        if first is None:
            raise ReplayError("the recording holds no market data in the chosen time window")
        first_frame, first_time = first
        assert first_time is not None  # the window starts at a frame with an exchange time
        with tempfile.TemporaryDirectory(prefix="kitedesk-replay-") as tmp:
            home = Path(tmp)
            store = Store.open(home)
            clock = ReplayClock(first_time)
            writer = StoreWriter(store.deferred)
            hub = ReplayHub(
                MemorySecretStore(),
                instruments=InstrumentCache(store.instruments),
                kite_factory=lambda api_key, **kw: RecordedKite(self._data, api_key, **kw),
                clock=clock.now,
            )
            services = SessionServices(store, hub, hub.secrets, GlobalKillSwitch(), home, clock.now, writer)
            gate = Lockstep()
            sessions: list[tuple[SessionEntry, SessionEngine]] = []
            count = ticks = 0
            try:
                for index, entry in enumerate(self.workspace.sessions):
                    sessions.append((entry, self._start(index, entry, services, gate)))
                self._wait_started([s for _, s in sessions], gate)
                by_profile = {
                    p: f for p in sorted({e.profile for e, _ in sessions}) if (f := hub.feed(p)) is not None
                }
                feeds = list(by_profile.values())
                own = {p: [f] for p, f in by_profile.items() if p in self.recorded_accounts}
                shared = [f for p, f in by_profile.items() if p not in self.recorded_accounts]
                bind = getattr(self._frames, "bind", None)
                if bind is not None:  # a generated day (sim_day.py) sends what the sessions subscribed
                    bind(_Subscribed(feeds))
                pace = _Pace(self.options.speed, first_time).wait if self.options.speed else None
                agents = [a for _, s in sessions for a in _agents(s)]
                turn = gate.handle_here
                for frame, t in _chain([(first_frame, first_time)], frames):
                    if t is not None:
                        clock.advance(t)
                        if pace is not None:
                            pace(clock.now())
                    targets = own.get(getattr(frame, "account", ""), []) + shared if own else shared
                    for feed in targets:
                        if frame.kind == KIND_BINARY:
                            feed._on_frame(frame.data, time.perf_counter())
                        else:
                            feed._on_text(frame.text)
                    count += 1
                    for agent in agents:
                        turn(agent)
                ticks = sum(s.ticks_routed for _, s in sessions)
                self._stop_all(sessions, gate)
                writer.flush()
                orders = [(e.label, o) for e, s in sessions for o in s.snapshot().orders]
                self._note_unrecorded(orders, feeds)
                trades = _trades_csv(store, home, sorted({e.profile for e, _ in sessions}))
            finally:
                gate.release()
                for _, session in sessions:
                    session.stop(
                        OnStop.KEEP
                    )  # already stopped: nothing; after a failure: nothing left running
                hub.close()
                writer.close()
                store.close()
        return ReplayResult(orders, trades, self.notes, count, ticks, time.perf_counter() - started)

    def _note_unrecorded(self, orders: list[tuple[str, Order]], feeds: list[AccountFeed]) -> None:
        """Says which traded contracts the recording holds no price of: their orders could never fill."""
        tokens = {(r["exchange"], r["tradingsymbol"]): int(r["instrument_token"])
                  for r in parse_instruments_csv(self._data.instruments_csv)}  # fmt: skip
        missing = sorted(
            {o.tradingsymbol for _, o in orders
             if all(f.latest_packet(tokens.get((o.exchange, o.tradingsymbol), -1)) is None for f in feeds)}
        )  # fmt: skip
        for symbol in missing:
            self.notes.append(f"the recording holds no market data of {symbol}: its orders could not fill")

    def _window(self, frames: Iterator[Frame]) -> Iterator[tuple[Frame, datetime | None]]:
        """The frames from the first one at or after `start` (with an exchange time) up to `end`."""
        start, end = self.options.start, self.options.end
        begun = False
        for frame in frames:
            t = frame_time(frame)
            if not begun:
                if t is None or (start is not None and t < start):
                    continue
                begun = True
            if end is not None and t is not None and t > end:
                return
            yield frame, t

    def _start(
        self, index: int, entry: SessionEntry, services: SessionServices, gate: Lockstep
    ) -> SessionEngine:
        params = entry.params
        if params.mode is Mode.LIVE:
            params = dataclasses.replace(params, mode=Mode.PAPER)
            self.notes.append(f"{entry.profile} {entry.label!r} traded LIVE: replayed as PAPER")
        profile = Profile(
            entry.profile, entry.profile, entry.label, api_root="replay://", ws_root="replay://"
        )
        services.secrets.set_api_secret(profile.user_id, "replay")
        if services.hub.account(profile).login_needed:
            services.hub.login(profile, "replay")
        # The same session key on every run: order tags, and so the orders file, stay the same.
        key = SessionKey(entry.profile, uuid.uuid5(_NAMESPACE, f"{index}/{entry.label}").hex)
        session = SessionEngine(services, profile, key, entry.label)
        session.start(params)
        for agent in _agents(session):
            agent.lockstep = gate
        # Paper fills are matched as the frame is delivered, on the driver's thread (the feed's), before the
        # decisions on it and the agents' turns: the session does so live too (SessionEngine._route_ticks).
        return session

    def _wait_started(self, sessions: list[SessionEngine], gate: Lockstep) -> None:
        deadline = time.monotonic() + START_WAIT_S
        agents = [a for s in sessions for a in _agents(s)]
        while any(a.state is AgentState.STARTING for a in agents):
            if time.monotonic() > deadline:
                raise ReplayError("the sessions did not start within a minute")
            time.sleep(0.01)
        failed = [f"{a.segment.value}: {a.failure}" for a in agents if a.state is AgentState.FAILED]
        if failed:
            raise ReplayError("a session could not start: " + "; ".join(failed))
        for agent in agents:  # one turn each: from here on every agent handles its inbox on its turns only
            gate.run(agent)

    def _stop_all(self, sessions: list[tuple[SessionEntry, SessionEngine]], gate: Lockstep) -> None:
        """Ends the day: each agent stops on its turn (square-off at the last price, or kept per `on_stop`)."""
        for entry, session in sessions:
            for agent in _agents(session):
                agent.post_command(StopAgent(entry.on_stop))
                gate.run(agent)
                agent.wait(5000)
        gate.release()
        for entry, session in sessions:
            session.stop(entry.on_stop)
            held = [p for p in session.snapshot().positions if p.quantity]
            for p in held:
                self.notes.append(f"{entry.label!r} ended holding {p.quantity} {p.tradingsymbol} (kept)")


class _Subscribed:
    """What the replay's feeds subscribe (token -> mode), as a generated day asks every second: worked out again
    only after a feed's subscriptions changed (`ReplayFeed.resync`; under the lockstep nothing subscribes while
    the day makes its next frame)."""

    def __init__(self, feeds: list[AccountFeed]) -> None:
        self._feeds = feeds
        self._seen: tuple[int, ...] | None = None
        self._modes: dict[int, str] = {}

    def __call__(self) -> dict[int, str]:
        seen = tuple(getattr(f, "subscriptions_changed", -1) for f in self._feeds)
        if seen != self._seen or -1 in seen:
            self._modes = {t: m for f in self._feeds for t, m in f._desired_modes().items()}
            self._seen = seen
        return dict(self._modes)


def _agents(session: SessionEngine) -> list[Any]:
    return (
        [a for seg in session.params.segments if (a := session.agent(seg)) is not None]
        if session.params
        else []
    )


def _chain(
    head: list[tuple[Frame, datetime | None]], rest: Iterator[tuple[Frame, datetime | None]]
) -> Iterator[tuple[Frame, datetime | None]]:
    yield from head
    yield from rest


class _Pace:
    """Sleeps so market time runs `speed` times wall time (None: no sleeping)."""

    def __init__(self, speed: float | None, start: datetime) -> None:
        self._speed = speed
        self._start = start
        self._wall = time.monotonic()

    def wait(self, now: datetime) -> None:
        if not self._speed:
            return
        due = self._wall + (now - self._start).total_seconds() / self._speed
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def _trades_csv(store: Store, home: Path, profiles: list[str]) -> str:
    """The replay's PAPER trades in the export's columns, oldest first; the paper gateway's order and fill ids
    (random per run) numbered in order instead, so two runs give the same bytes."""
    rows: list[list[str]] = []
    header: list[str] = []
    for profile in profiles:
        out = home / f"trades-{profile}.csv"
        export_trades(store, broker_id=profile, out=out, mode=Mode.PAPER)
        with out.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader)
            rows.extend(reader)
    if not header:
        return ""
    col = {name: i for i, name in enumerate(header)}
    ids = (col["trade_id"], col["order_id"])
    rows.sort(key=lambda r: [r[col["order_execution_time"]]] + [c for i, c in enumerate(r) if i not in ids])
    order_ids: dict[str, str] = {}
    for n, row in enumerate(rows, 1):
        row[col["trade_id"]] = f"R{n:06d}"
        row[col["order_id"]] = order_ids.setdefault(row[col["order_id"]], f"RO{len(order_ids) + 1:06d}")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


ORDER_COLUMNS = (
    "session_label", "order", "time", "exchange", "tradingsymbol", "side", "quantity", "order_type", "price",
    "trigger_price", "status", "filled_quantity", "average_price", "status_message",
)  # fmt: skip


def orders_csv(orders: list[tuple[str, Order]]) -> str:
    """The replay's orders, by time then session; numbered in that order (the paper ids are random per run)."""

    def cells(label: str, o: Order) -> list[str]:
        return [
            label, "", o.timestamp.isoformat(sep=" ") if o.timestamp else "", o.exchange, o.tradingsymbol,
            o.side.value, str(o.quantity), o.order_type.value, _num(o.price), _num(o.trigger_price),
            o.status.value, str(o.filled_quantity), _num(o.average_price), o.status_message,
        ]  # fmt: skip

    rows = sorted(cells(label, o) for label, o in orders)
    rows.sort(key=lambda r: (r[2], r[0]))
    for n, row in enumerate(rows, 1):
        row[1] = str(n)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(ORDER_COLUMNS)
    writer.writerows(rows)
    return buffer.getvalue()


def _num(value: Decimal | None) -> str:
    return "" if value is None else f"{value:f}"


def recorded_frames(recording: Path) -> Iterator[Frame]:
    """The frames of a recording file; ReplayError in words for a file that is none."""
    try:
        yield from read_frames(recording)
    except (RecordingError, OSError) as exc:
        raise ReplayError(str(exc)) from None


def market_times(day: date, start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    """`--from`/`--to` HH:MM on the replayed day as datetimes."""

    def at(text: str | None) -> datetime | None:
        if text is None:
            return None
        try:
            hh, mm = (int(x) for x in text.split(":"))
            return datetime.combine(day, datetime.min.time()) + timedelta(hours=hh, minutes=mm)
        except ValueError:
            raise ReplayError(f"a time of day is HH:MM, such as 09:30, not {text!r}") from None

    return at(start), at(end)
