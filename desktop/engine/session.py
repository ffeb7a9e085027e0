"""`SessionEngine`: one tab. Owns its KiteSession, MarketStream, order gateway, risk, logs and one
`SegmentAgent` per segment; nothing it does (start, stop, error, token expiry, kill) touches another session.

Threads (who calls what; docs/ARCHITECTURE.md has the whole picture):
- the GUI thread (or `kitedesk run`'s main thread) calls `start`, `rename`, `snapshot` and the read-only
  accessors; `start` returns at once: the durable write of the session's record and the keyring read of the API
  secret are done by its agents' threads (`_prepare`, once, before any segment loads);
- a worker thread calls `stop` and `close` (they wait for the agents: up to a LIVE square-off's 45 s);
- any thread calls `kill` (the global kill switch calls it from whoever pressed it);
- the account feed's thread routes ticks (by instrument token) to the account's dispatcher, which decides them for
  the segments or queues them in their agents' inboxes (engine/dispatch.py), and works the paper orders against
  them; the stream's delivery thread routes order updates and fills (by the option's underlying) into the agents'
  inboxes and reports broker events; agents do the network work.
One control lock (`_control`) guards the session's state and its parts; it is held only for quick changes, never
while waiting for an agent or the network, so a kill never waits behind a stop, and the state's signal is
emitted after it is let go. `snapshot()` merges the agents' last published views: immutable objects, read without
a lock.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from desktop.broker.errors import BrokerUnavailable, LoginNeeded
from desktop.broker.gateway import LiveGateway, OrderGateway, broker_net_positions
from desktop.broker.hub import BrokerHub
from desktop.broker.paper import PaperGateway
from desktop.broker.profiles import Profile, SecretStore
from desktop.broker.session import (
    EVENT_LOGGED_IN,
    EVENT_LOGIN_NEEDED,
    EVENT_TICKS_DROPPED,
    BrokerEvent,
    KiteSession,
)
from desktop.domain import Fill, Mode, Order, OrderIntent, Position, Segment, SessionKey, StrategyParams
from desktop.engine import manual
from desktop.engine.agent import LIVE_SQUARE_OFF_WAIT, Kill, SegmentAgent, StopAgent
from desktop.engine.dispatch import AccountDispatcher, Dispatchers, freeze_long_lived
from desktop.engine.funds import PAPER_FUNDS, Funds, FundsWatcher
from desktop.engine.logs import SessionLogs
from desktop.engine.manual import ManualOutcome
from desktop.engine.params import params_to_dict
from desktop.engine.publisher import Publisher
from desktop.engine.qt import QObject, QThread, Signal
from desktop.engine.recovery import LOSS_LIMIT_REACHED, recover_live, recover_paper
from desktop.engine.risk import GlobalKillSwitch, RiskManager
from desktop.engine.snapshots import AgentState, LogLine, SessionSnapshot, SessionState
from desktop.engine.startup import LogLineHandler, load_segment
from desktop.engine.strategy.registry import create_strategy
from desktop.engine.trader import SegmentTrader, TraderContext
from desktop.engine.workspace import OnStop
from desktop.engine.writer import StoreWriter
from desktop.store import Store, StoreWriteError

if TYPE_CHECKING:  # the feed and its decoder (aiohttp, numpy) are imported when the first stream opens
    from desktop.broker.stream import MarketStream
    from desktop.broker.ticks import QuoteTick, TickBatch

MODE_FULL = "full"  # Kite's full tick mode (desktop.broker.ticks.MODE_FULL, whose module brings numpy)

_UNDERLYING = re.compile(r"^([A-Z]+?)\d")
T = TypeVar("T")
E = TypeVar("E", bound=Exception)
# How long a stop waits for an agent before interrupting it: one squaring off ends by itself within its own wait
# (agent.py: 2.5 s PAPER, 45 s LIVE); one that has not taken the stop yet (still loading, or waiting for a login)
# is interrupted after the short wait.
STOP_WAIT_S = 4.0
# How old (exchange time, against the market time of the entry's tick) the feed's price of an option may be for
# risk's margin check to use it rather than ask Kite's quote: the check is a guard on the funds an entry needs
# (premium x quantity), the broker's own margin check has the last word, and a premium a few seconds old differs
# from the REST quote by less than the reserve a trader keeps; an older one (an option whose packets stopped) is
# not trusted.
PRICE_FRESH = timedelta(seconds=3)
SQUARING_OFF_WAIT_S = LIVE_SQUARE_OFF_WAIT + 5


class SessionError(RuntimeError):
    """A session request a trader can fix (already running, mode change); the message says how."""


@dataclass(slots=True)
class SessionServices:
    """What the Engine lends each session: shared per process, per-account inside the hub."""

    store: Store
    hub: BrokerHub
    secrets: SecretStore
    kill_switch: GlobalKillSwitch
    home: Path
    market_time: Callable[[], datetime]
    writer: StoreWriter
    # The LIVE positions the open sessions of an account (user id) last published: the broker's positions are
    # the account's, and a session checks its own against them (`OutsideClose.account_share`, engine/outside.py).
    account_positions: Callable[[str], list[Position]] = lambda user_id: []
    # Each account's dispatcher (engine/dispatch.py): its feed's thread decides for every segment of its sessions.
    dispatchers: Dispatchers = field(default_factory=Dispatchers)
    # Publishes every running agent's snapshot (engine/publisher.py): no agent is woken only to publish.
    publisher: Publisher = field(default_factory=Publisher)


class SessionEngine(QObject):
    """One tab: one login of one account with its own parameters, agents, orders, logs and risk."""

    sig_state_changed = Signal(str)
    """The session's state changed (a SessionState value)."""
    sig_login_needed = Signal()
    """This session's account must log in again."""
    sig_log_line = Signal(object)
    """A log line was written (a LogLine)."""

    def __init__(
        self, services: SessionServices, profile: Profile, key: SessionKey, label: str, resumed: bool = False
    ) -> None:
        """`resumed`: the session of an earlier run (a kept position or a crash), so its start takes it over."""
        super().__init__()
        self.services = services
        self.profile = profile
        self.key = key
        self.label = label
        self.user_id = key.broker_id
        self.params: StrategyParams | None = None
        # The one control lock: state changes and the session's parts. Never held while waiting (module docstring).
        self._control = threading.Lock()
        self._state_changed = False  # set under the lock, emitted after it (`_emit_state`)
        # The first agent to start writes the session's record and reads the API secret (`_prepare`).
        self._prepare_lock = threading.Lock()
        self._prepared: BaseException | bool = False
        self._agents: dict[Segment, SegmentAgent] = {}
        self._routes: dict[int, SegmentAgent] = {}  # instrument token -> agent (copy-on-write)
        self._kite: KiteSession | None = None
        self._stream: MarketStream | None = None
        self._gateway: OrderGateway | None = None
        self._paper: PaperGateway | None = (
            None  # PAPER: its fills are matched on the feed's thread (`_route_ticks`)
        )
        self._dispatcher: AccountDispatcher | None = None
        self._frozen = False  # its start-up's objects frozen out of the collector's generations (once)
        self._risk: RiskManager | None = None
        # LIVE: the account's funds, fetched on the watcher's own thread (funds.py); kept readable after a stop.
        self._funds: FundsWatcher | None = None
        self._logs: SessionLogs | None = None
        self._unsubscribe_kill: Callable[[], None] | None = None
        self._state = SessionState.IDLE
        # A stop found a position kept or a segment owing its recovery: remembered, so a stop tried again after its
        # record was refused (a locked database) still records it kept, its segments detached by then (`stop`).
        self._kept = False
        # Its start may take over a position (an earlier run's, or this one's kept at a stop): until its agents
        # have started, whether it holds one is not known yet.
        self._may_recover = resumed
        self._recovering = False  # this start may take one over
        self._login_needed = False
        self._message = ""
        self._version = 0
        self._final_views: list[Any] = []  # the agents' last views, kept after a stop
        self.ticks_routed = 0  # every tick this session's stream delivered (diagnostics, bench)

    # -- public API ---------------------------------------------------------------------------------

    def start(self, params: StrategyParams) -> None:
        """Starts one agent per segment with validated `params` (GUI thread); returns at once: the session's record
        (a durable write) and the API secret (a keyring read) are done on the agents' threads, then each loads.
        Raises SessionError when the session runs or stops already, the tab traded the other mode, or the account
        must log in first."""
        close_parts: Callable[[], None] | None = None
        try:
            with self._control:
                self._check_start(params)
                self.params = params
                self._message = ""
                try:
                    self._open(params)
                except Exception:
                    # Nothing half-started may stay behind: no stream thread, no agent (closed after the lock).
                    close_parts = self._detach()
                    self._set_state(SessionState.FAILED)
                    raise
                self._set_state(SessionState.STARTING)
                self._set_state(self._computed_state())  # LOGIN_NEEDED if the feed was refused meanwhile
                self._recovering = self._may_recover
                self._may_recover = True  # the next start of this session recovers what this run leaves
                self._kept = False  # this run's stop says anew what it keeps
                for agent in self._agents.values():
                    agent.start()
                if self._funds is not None:
                    self._funds.start()
        finally:
            if close_parts is not None:
                close_parts()
            self._emit_state()
        # After the lock: a kill switch triggered already calls `kill` at once.
        unsubscribe = self.services.kill_switch.subscribe(self.kill)
        with self._control:
            self._unsubscribe_kill = unsubscribe

    def _check_start(self, params: StrategyParams) -> None:
        if self._state in (
            SessionState.STARTING,
            SessionState.RUNNING,
            SessionState.HALTED,
            SessionState.LOGIN_NEEDED,
        ):
            raise SessionError("the session is running: stop it before starting it with new parameters")
        if self._state is SessionState.STOPPING:
            raise SessionError("the session is stopping: start it again once it has stopped")
        s = self.services
        record = s.store.sessions.get(broker_id=self.key.broker_id, session_id=self.key.session_id)
        if record is not None and record.mode is not params.mode:
            raise SessionError(
                f"this tab traded {record.mode.value}: open a new tab to trade {params.mode.value}"
            )
        if s.hub.account(self.profile).login_needed:
            raise SessionError(f"log in to {self.user_id} first: its Kite login is missing or expired")

    def _open(self, params: StrategyParams) -> None:
        s = self.services
        self._prepared = False
        self._logs = SessionLogs(s.home, self.key, self.label, params.mode, clock=s.market_time)
        self._kite = s.hub.open_session(self.profile, self.key, on_event=self._on_broker_event)
        self._logs.add_secret(self._kite.account.access_token)
        self._login_needed = False
        self._stream = s.hub.open_stream(self._kite)
        self._stream.add_event_listener(self._on_stream_event)
        self._risk = RiskManager(params, on_loss_limit=self._journal_loss_limit)
        self._funds = None
        if params.mode is Mode.LIVE:
            self._gateway = LiveGateway(self._kite, self._stream)
            self._risk.set_price_source(partial(_last_price, self._kite), self._streamed_price)
            self._funds = FundsWatcher(
                partial(self._kite.margins, "equity"), self._on_funds, name=f"funds-{self.key.session_id}"
            )
        else:
            self._gateway = self._paper = PaperGateway(
                self.key,
                self._stream,
                self._token_of,
                clock=s.market_time,
                freeze_overrides=params.freeze_overrides,
                listen=False,  # its prices come from the feed's thread with the decisions (`_route_ticks`)
            )
        self._dispatcher = s.dispatchers.for_account(self.user_id)
        self._frozen = False
        self._gateway.add_listener(on_order=self._route_order, on_fill=self._route_fill)
        self._stream.add_tick_listener(self._route_ticks, on_feed_thread=True)
        ctx = TraderContext(
            self.key, self.label, params, s.store, self._gateway, self._risk, self._watch, s.writer.submit,
            s.writer.lead, s.writer.sends, self._others_holding, self._watch_prices,
        )  # fmt: skip
        self._agents = {}
        self._routes = {}
        for segment in params.segments:
            log = self._logs.for_segment(segment)
            log.logger.addHandler(LogLineHandler(segment.value, self._emit_log_line))
            trader = SegmentTrader(ctx, segment, create_strategy(params.strategy, params, segment), log)
            agent = SegmentAgent(trader, self._startup, self._agent_state_changed, s.publisher)
            agent.dispatched = True
            self._agents[segment] = agent
            self._routes[segment.spec.index_token] = agent
        self._stream.subscribe([seg.spec.index_token for seg in params.segments], MODE_FULL)

    def _prepare(self) -> None:
        """The slow part of a start, done once by the first agent to start (its thread, never the GUI's): the
        session's record made durable (every order intent refers to it) and the API secret read from the keyring
        so the logs never show it. Raises in every agent when it failed: each is marked FAILED, saying why; a store
        that refused the write (a full disk, a locked database) is tried again by each start (`_wait_for_store`)."""
        with self._prepare_lock:
            if isinstance(self._prepared, BaseException):
                raise SessionError(f"the session could not start: {self._prepared}")
            if self._prepared:
                return
            s, params, logs = self.services, self.params, self._logs
            assert params is not None and logs is not None
            try:
                s.store.sessions.record_session(
                    self.key, label=self.label, params=params_to_dict(params), mode=params.mode,
                    state="running", started_at=s.market_time(),
                )  # fmt: skip
                logs.add_secret(s.secrets.api_secret(self.user_id))
            except StoreWriteError:
                raise  # a full disk, a database locked by another program: each agent's start tries again
            except Exception as e:
                self._prepared = e
                raise
            self._prepared = True

    def stop(self, on_stop: OnStop = OnStop.SQUARE_OFF) -> None:
        """Stops this session's agents (`OnStop.SQUARE_OFF` sells open positions first; `OnStop.KEEP` leaves them
        under their stop loss, at the broker in LIVE) and closes its connections. A worker thread: it waits for
        the agents (a LIVE square-off up to 45 s)."""
        try:
            on_stop = OnStop(on_stop)
        except ValueError:
            raise SessionError('on stop, positions are squared off ("square_off") or kept ("keep")') from None
        with self._control:
            agents = list(self._agents.values())
            if not agents and self._state in (SessionState.IDLE, SessionState.STOPPED):
                return
            # A second stop meanwhile (a tab closed while the window quits) waits for the first one's agents and
            # changes nothing of how they stop.
            first = self._state is not SessionState.STOPPING
            self._set_state(SessionState.STOPPING)
            for agent in agents if first else ():
                agent.post_command(StopAgent(on_stop))
        self._emit_state()
        for agent in agents:  # no lock held: a kill meanwhile returns at once (the session is stopping)
            _wait_for_stop(agent)
        # A segment that failed (at its start, or later) may have left a position or fills unrecovered, and one
        # may owe a fill the store refused or a sale of a position let go: its session did not stop cleanly, and
        # the next tab of its label takes it over (`Engine.open_session`), whose recovery counts them.
        kept = self._kept = self._kept or any(
            a.trader.holding is not None or a.state is AgentState.FAILED or a.trader.owes_recovery()
            for a in agents
        )
        with self._control:
            close_parts = self._detach()
        close_parts()  # the stream's thread is joined: never under the lock its events take
        self.services.writer.flush()
        state = "stopped_keep" if kept else "stopped"
        self.services.store.sessions.set_state(self.key, state, stopped_at=self.services.market_time())
        with self._control:
            self._set_state(SessionState.STOPPED)
        self._emit_state()

    def rename(self, label: str) -> None:
        """A new label for this tab. Its record is renamed too (on the store's writer thread): the next tab of this
        label takes this session over when it kept a position or did not stop cleanly (`Engine.open_session`).
        GUI thread."""
        self.label = label
        self.services.writer.submit(partial(self.services.store.sessions.set_label, self.key, label))

    def kill(self, reason: str = "kill switch") -> None:
        """Kill switch: cancel pending entries, square off, halt (exits only) until restarted. Any thread.

        Never waits behind a stop in progress (a LIVE square-off may wait 45 s for its exit): a stop holds the
        control lock only for its quick steps, and a stopping session already cancels entries, squares off and
        ends, so a kill returns at once and a global kill reaches the other sessions now.
        """
        with self._control:
            if self._risk is None or self._state in (SessionState.STOPPING, SessionState.STOPPED):
                return
            self._risk.kill(reason)
            self._message = f"halted: {reason}"
            for agent in self._agents.values():
                agent.post_command(Kill(reason))
            self._set_state(self._computed_state())
        self._emit_state()

    # -- manual actions (desktop/engine/manual.py): any thread; done on the segment agent's thread ----------------

    def exit_position(self, tradingsymbol: str, by: str = "window") -> Future[ManualOutcome]:
        """Sells the held `tradingsymbol` at market now (a MARKET order with market protection, through the session's
        gateway and risk counters, journalled `manual_exit`). The future holds the outcome or a ManualRefused."""
        return self._manual(tradingsymbol, partial(manual.exit_now, symbol=tradingsymbol, by=by))

    def cancel_order(self, tradingsymbol: str, order_id: str, by: str = "window") -> Future[ManualOutcome]:
        """Cancels a working entry or exit of this session (never its protective stop); journalled `manual_cancel`."""
        return self._manual(tradingsymbol, partial(manual.cancel_order, order_id=order_id, by=by))

    def move_stop(
        self, tradingsymbol: str, level: Decimal | str, by: str = "window"
    ) -> Future[ManualOutcome]:
        """Moves the stop of the held `tradingsymbol` to `level` (below the last price, on the tick); the strategy
        keeps it (its trail never lowers it); journalled `manual_stop_move`."""
        return self._manual(
            tradingsymbol, partial(manual.move_stop, symbol=tradingsymbol, level=level, by=by)
        )

    def _manual(
        self, tradingsymbol: str, action: Callable[[SegmentTrader], ManualOutcome]
    ) -> Future[ManualOutcome]:
        agent = self._agent_for_symbol(tradingsymbol)
        if agent is None or agent.state not in (AgentState.RUNNING, AgentState.STOPPING):
            raise SessionError(f"{tradingsymbol}: its segment is not running in this session")
        future: Future[ManualOutcome] = Future()

        def run(trader: SegmentTrader) -> None:
            if not future.set_running_or_notify_cancel():
                return  # the window gave up waiting: nothing is done late
            try:
                future.set_result(action(trader))
            except manual.ManualRefused as e:
                future.set_exception(e)
            except Exception as e:  # anything else is this action's failure, never the agent's
                trader.log.error("manual action failed: %s: %s", type(e).__name__, e)
                future.set_exception(manual.ManualRefused(f"not done: {e}"))

        agent.run_on_thread(run)
        return future

    def live_positions(self) -> list[Position]:
        """The LIVE positions its running segments last published (immutable snapshots, readable from any thread).
        A failed segment's last snapshot is frozen: counted, it would hold a share of the account's position for
        ever, so the account's other sessions would let theirs go."""
        agents = [a for a in list(self._agents.values()) if a.state is not AgentState.FAILED]
        return [p for a in agents for p in a.view.positions if p.mode is Mode.LIVE]

    def _others_holding(self, exchange: str, symbol: str) -> list[tuple[str, int]]:
        return [
            (p.key.session_id, p.quantity)
            for p in self.services.account_positions(self.user_id)
            if p.key != self.key and (p.exchange, p.tradingsymbol) == (exchange, symbol) and p.quantity > 0
        ]

    def has_open_position(self) -> bool:
        """True while any segment holds an option (ask square-off or keep before a restart), and while a session
        that may take one over is still starting: a Stop then must ask, not square off a position it took over.
        Any thread (reads published state)."""
        agents = list(self._agents.values())
        if self._recovering and any(a.state is AgentState.STARTING for a in agents):
            return True
        return any(a.trader.holding is not None for a in agents)

    def resume_after_login(self) -> None:
        """The account logged in again: the session runs on (its feed reconnects by itself). Any thread."""
        with self._control:
            if self._kite is not None and not self._kite.login_needed:
                self._login_needed = False
                self._message = ""
        self._refresh_state()

    def snapshot(self) -> SessionSnapshot:
        """The latest state of the session (cheap, any thread: immutable views, no lock)."""
        views = [a.view for a in list(self._agents.values())] or self._final_views
        segments = tuple(v.snapshot for v in views)
        orders = tuple(o for v in views for o in v.orders)
        fills = tuple(f for v in views for f in v.fills)
        positions = tuple(p for v in views for p in v.positions)
        times = [s.last_tick_time for s in segments if s.last_tick_time is not None]
        return SessionSnapshot(
            key=self.key,
            label=self.label,
            mode=self.params.mode if self.params else None,
            state=self._state,
            market_time=max(times) if times else None,
            segments=segments,
            orders=orders,
            fills=fills,
            positions=positions,
            realised_pnl=sum((s.realised_pnl for s in segments), Decimal(0)),
            unrealised_pnl=sum((s.unrealised_pnl for s in segments), Decimal(0)),
            message=self._message,
            version=self._version,
            bad_time_ticks=stream.bad_time_ticks if (stream := self._stream) is not None else 0,
            malformed_replies=kite.malformed_replies if (kite := self._kite) is not None else 0,
            funds=self.funds,
        )

    @property
    def funds(self) -> Funds | None:
        """The account's funds as last fetched (LIVE), `PAPER_FUNDS` for a PAPER session, None before the first
        answer (any thread: an immutable object)."""
        if self.params is not None and self.params.mode is Mode.PAPER:
            return PAPER_FUNDS
        watcher = self._funds
        return watcher.latest if watcher is not None else None

    @property
    def state(self) -> SessionState:
        """The session's state now (any thread)."""
        return self._state

    @property
    def logs_folder(self) -> Path | None:
        """This session's log folder (after start; any thread)."""
        return self._logs.folder if self._logs else None

    def watch_instruments(self, tokens: list[int], mode: str = MODE_FULL) -> None:
        """Streams instruments this session shows but does not trade (a watch list; the bench's load).

        Their latest values are kept, not delivered tick by tick: `quote(token)` reads one. GUI thread (or the
        bench's), after `start`.
        """
        if self._stream is None:
            raise SessionError("start the session before watching instruments")
        self._stream.watch(tokens, mode)

    def quote(self, token: int) -> QuoteTick | None:
        """The latest tick of a watched or traded instrument, or None (any thread)."""
        return self._stream.last_tick(token) if self._stream is not None else None

    def stream_stats(self) -> tuple[int, int]:
        """(tick batches queued in the agents, ticks the stream dropped for a slow consumer); any thread."""
        queued = sum(a.backlog for a in list(self._agents.values()))
        return queued, self._stream.dropped_ticks if self._stream else 0

    def agent(self, segment: Segment) -> SegmentAgent | None:
        """The agent of one segment (tests and diagnostics; any thread)."""
        return self._agents.get(segment)

    def close(self) -> None:
        """Stops (keeping positions) if still running; used when the tab closes. A worker thread, like `stop`."""
        if self._agents:
            self.stop(OnStop.KEEP)

    # -- agent startup (agent's thread) -------------------------------------------------------------------

    def _startup(self, trader: SegmentTrader) -> None:
        self._wait_for_store(trader)
        kite, gateway = self._kite, self._gateway
        assert kite is not None and gateway is not None
        hub = self.services.hub
        if trader.mode is Mode.LIVE:
            assert isinstance(gateway, LiveGateway)
            # A restart protects a position it takes over first: the day's instruments, the recovery (its stop
            # checked or placed), then the warm-up candles, which the account's segments fetch at Kite's three
            # historical requests a second (seconds at a restart, a position unwatched meanwhile).
            now = self.services.market_time()
            trader.book = self._logged_in(trader, kite, lambda: hub.instrument_book(kite, now.date()))
            trader.market_time = now
            recover_live(trader, gateway, self._broker_positions(kite, trader), now)
        now = self._logged_in(trader, kite, lambda: self._loaded(trader, kite))
        trader.market_time = max(now, trader.market_time or now)
        if trader.mode is not Mode.LIVE:
            recover_paper(trader, now)

    def _loaded(self, trader: SegmentTrader, kite: KiteSession) -> datetime:
        """The day's instruments and the warm-up candles loaded up to now; returns that now."""
        now = self.services.market_time()
        load_segment(trader, self.services.hub, kite, now)
        return now

    @staticmethod
    def _logged_in(trader: SegmentTrader, kite: KiteSession, call: Callable[[], T]) -> T:
        """`call()`, made again once the account is logged in again if it logged out under us. Ends on a stop."""
        while True:
            try:
                return call()
            except LoginNeeded:
                trader.log.warning("Kite login needed before %s can start", trader.segment.value)
                while kite.login_needed and not QThread.currentThread().isInterruptionRequested():
                    time.sleep(0.2)
                if QThread.currentThread().isInterruptionRequested():
                    raise

    def _wait_for_store(self, trader: SegmentTrader) -> None:
        """The session's record made durable (`_prepare`), asked again (with a growing pause) while the store
        refuses to write (a full disk, the database locked by another program): a segment that failed here would
        leave a LIVE position it would have taken over managed by nobody for the rest of the run (a chaos soak saw
        a kept position's stop cancelled by the exchange meanwhile, and the position naked for minutes). Ends on
        a stop."""
        _until_done(
            self._prepare,
            StoreWriteError,
            lambda e, pause: trader.log.warning(
                "the session's record could not be saved before %s starts (%s): trying again in %.0f s",
                trader.segment.value, e, pause,
            ),
        )  # fmt: skip

    @staticmethod
    def _broker_positions(kite: KiteSession, trader: SegmentTrader) -> dict[str, int]:
        """The account's net positions for a LIVE recovery, asked for again (with a growing pause) while Kite
        cannot be reached or keeps sending replies that do not hold what its API says: a read changes nothing at
        the broker, and a segment that failed here would leave its position and the fills since the last run
        unrecovered for the rest of the run (a stop that filled meanwhile never counted). Ends on a stop."""
        return _until_done(
            lambda: broker_net_positions(kite.positions()),
            BrokerUnavailable,
            lambda e, pause: trader.log.warning(
                "the account's positions could not be read before %s starts (%s): asking again in %.0f s",
                trader.segment.value, e.detail or e.trader_message, pause,
            ),
        )  # fmt: skip

    # -- routing (stream / caller threads) ----------------------------------------------------------

    def _route_ticks(self, ticks: TickBatch) -> None:
        """The account feed's thread: the paper gateway's fills of the frame first (queued to the agents before any
        decision on it, as a replay has them), then each segment's ticks to the account's dispatcher, which decides
        them here or queues them for the segment's agent (engine/dispatch.py)."""
        self.ticks_routed += len(ticks)
        paper = self._paper
        if paper is not None:
            paper.match_ticks(ticks)
        routes = self._routes
        batches: dict[int, list[Any]] = {}
        for q in ticks:
            agent = routes.get(q.instrument_token)
            if agent is not None:
                batch = batches.get(id(agent))
                if batch is None:
                    batches[id(agent)] = [agent, q.to_tick()]
                else:
                    batch.append(q.to_tick())
        dispatcher = self._dispatcher
        for batch in batches.values():  # with when the frame arrived: the latency clock starts there
            if dispatcher is None:
                batch[0].post_ticks(batch[1:], ticks.received, ticks.wake_after)
            else:
                dispatcher.hand(batch[0], batch[1:], ticks.received, ticks.wake_after, ticks.wakes)

    def _agent_for_symbol(self, symbol: str) -> SegmentAgent | None:
        m = _UNDERLYING.match(symbol)
        if m is None:
            return None
        try:
            return self._agents.get(Segment(m.group(1)))
        except ValueError:
            return None

    def _route_order(self, order: Order) -> None:
        agent = self._agent_for_symbol(order.tradingsymbol)
        if agent is not None:
            agent.post_order(order)

    def _route_fill(self, fill: Fill) -> None:
        agent = self._agent_for_symbol(fill.tradingsymbol)
        if agent is not None:
            agent.post_fill(fill)
        if (watcher := self._funds) is not None:
            watcher.refresh()  # a fill moves the funds: the header and risk see it within a second, not a minute

    def _on_funds(self, funds: Funds) -> None:
        """A new answer from the funds watcher (its thread): risk checks entries against it from now on."""
        risk = self._risk
        if risk is not None:
            risk.set_funds(funds.available)

    def _watch(self, token: int, segment: Segment) -> None:
        agent = self._agents[segment]
        routes = dict(self._routes)
        routes[token] = agent
        self._routes = routes  # replaced whole: the stream thread reads it without a lock
        if self._stream is not None:
            self._stream.subscribe([token], MODE_FULL)

    def _watch_prices(self, tokens: list[int]) -> None:
        """Options an entry may buy soon: the feed keeps their latest price (full mode: it carries the exchange's
        time), read by risk's margin check instead of a quote over REST (`_streamed_price`). Never unwatched during
        the run: a watched token costs the feed a packet's bytes, the strikes the index visits in a day are a few
        dozen a segment, and Kite takes 3000 instruments a connection."""
        if self._stream is not None:
            self._stream.watch(tokens, MODE_FULL)

    def _streamed_price(self, intent: OrderIntent, now: datetime) -> Decimal | None:
        """The option's last price as the feed holds it, when fresh: its packet stamped by the exchange within
        `PRICE_FRESH` of market time `now` (the feed's clock, as every decision's); None otherwise (not watched, no
        packet yet, a packet without the exchange's time, or an older one), and risk asks Kite's quote instead.
        The same last traded price Kite's `/quote/ltp` answers, read without a REST call under its one quote a
        second per account (any thread; no I/O)."""
        stream = self._stream
        token = self._token_of(intent.exchange, intent.tradingsymbol)
        if stream is None or token is None:
            return None
        tick = stream.last_tick(token)
        stamped = tick.exchange_timestamp if tick is not None else None
        if tick is None or stamped is None or abs(now - stamped) > PRICE_FRESH or tick.last_price <= 0:
            return None
        return tick.last_price

    def _token_of(self, exchange: str, symbol: str) -> int | None:
        agent = self._agent_for_symbol(symbol)
        book = agent.trader.book if agent else None
        ins = book.by_symbol(exchange, symbol) if book else None
        return ins.instrument_token if ins else None

    # -- events ---------------------------------------------------------------------------------------

    def _on_broker_event(self, event: BrokerEvent) -> None:
        if event.kind == EVENT_LOGIN_NEEDED:
            self._login_needed = True
            self._message = event.message or "Kite login expired: log in again"
            self._refresh_state()
            self.sig_login_needed.emit()
        elif event.kind == EVENT_LOGGED_IN:
            if self._logs is not None and self._kite is not None:
                self._logs.add_secret(self._kite.account.access_token)
            self.resume_after_login()

    def _journal_loss_limit(self, note: str, now: datetime) -> None:
        """The daily loss limit was reached: journaled (queued), so a restart keeps the day closed (recovery.py)."""
        s = self.services
        s.writer.submit(partial(s.store.journal.append, self.key, segment=None, kind=LOSS_LIMIT_REACHED,
                                payload={"note": note}, market_time=now))  # fmt: skip

    def _on_stream_event(self, event: BrokerEvent) -> None:
        # The feed kept a hostile exchange time off every clock (broker/tick_times.py): said in each segment's log.
        if event.kind == EVENT_TICKS_DROPPED:
            for agent in list(self._agents.values()):
                agent.trader.log.warning("market data: %s", event.message)

    def _agent_state_changed(self, agent: SegmentAgent) -> None:
        if agent.state is AgentState.FAILED and agent.failure:
            self._message = f"{agent.segment.value} failed: {agent.failure}"
        if (
            agent.state is AgentState.RUNNING
            and not self._frozen
            and all(a.state is not AgentState.STARTING for a in list(self._agents.values()))
        ):
            self._frozen = True
            freeze_long_lived()  # its start-up's objects out of the full collections (engine/dispatch.py)
        self._refresh_state()

    def _emit_log_line(self, line: LogLine) -> None:
        self.sig_log_line.emit(line)

    def _computed_state(self) -> SessionState:
        agents = list(self._agents.values())
        if self._login_needed:
            return SessionState.LOGIN_NEEDED
        if self._risk is not None and self._risk.halted:
            return SessionState.HALTED
        if agents and all(a.state is AgentState.FAILED for a in agents):
            return SessionState.FAILED
        if any(a.state is AgentState.STARTING for a in agents):
            return SessionState.STARTING
        return SessionState.RUNNING

    def _refresh_state(self) -> None:
        """Recomputes the state from its causes (any thread); a stopping or stopped session stays so."""
        with self._control:
            if self._state not in (SessionState.STOPPING, SessionState.STOPPED, SessionState.IDLE):
                self._set_state(self._computed_state())
        self._emit_state()

    def _set_state(self, state: SessionState) -> None:
        """The new state (control lock held); its signal follows once the lock is let go (`_emit_state`)."""
        if state is not self._state:
            self._state_changed = True
        self._state = state
        self._version += 1

    def _emit_state(self) -> None:
        """Signals the state if it changed (after the control lock, so a slot may call back into the session)."""
        with self._control:
            changed, self._state_changed = self._state_changed, False
            state = self._state
        if changed:
            self.sig_state_changed.emit(state.value)

    def _detach(self) -> Callable[[], None]:
        """Takes the session's parts out of it (control lock held); returns what closes them, to be called after
        the lock is let go: closing the stream joins its delivery thread, whose events take the lock."""
        unsubscribe, gateway, stream, kite, logs, funds = (
            self._unsubscribe_kill,
            self._gateway,
            self._stream,
            self._kite,
            self._logs,
            self._funds,
        )
        agents = list(self._agents.values())
        self._final_views = [a.view for a in agents]
        self._agents = {}
        self._routes = {}
        self._unsubscribe_kill = None
        self._gateway = self._stream = self._kite = None
        self._paper = None
        self._risk = None

        def close_parts() -> None:
            if unsubscribe is not None:
                unsubscribe()
            if funds is not None:
                funds.close()  # before the KiteSession it fetches through
            if gateway is not None:
                gateway.close()
            if stream is not None:
                stream.close()
            if kite is not None:
                kite.close()
            if logs is not None:
                logs.close()
            for agent in agents:
                agent.deleteLater()

        return close_parts


def _last_price(kite: KiteSession, intent: OrderIntent) -> Decimal | None:
    """The option's last price, for risk's margin check of a market entry (the agent's thread); None when the
    broker cannot say now: the entry is then left to the broker's own margin check."""
    key = f"{intent.exchange}:{intent.tradingsymbol}"
    try:
        quote = kite.ltp_once(key).get(key)  # asked once: a 429's back-off would hold the entry up
    except Exception:
        return None
    return None if quote is None else Decimal(str(quote["last_price"]))


def _until_done(call: Callable[[], T], errors: type[E], say: Callable[[E, float], None]) -> T:
    """`call`'s answer, asked again on an agent's thread during its start while it raises `errors` (each said
    with the pause before the next try: 0.5 s doubling to 8 s); the error raised once the agent is told to stop."""
    pause = 0.5
    while True:
        try:
            return call()
        except errors as e:
            if QThread.currentThread().isInterruptionRequested():
                raise
            say(e, pause)
            _pause(pause)
            pause = min(pause * 2, 8.0)


def _pause(seconds: float) -> None:
    """Sleeps `seconds` on an agent's thread during its start, ending early when the agent is told to stop."""
    until = time.monotonic() + seconds
    while time.monotonic() < until and not QThread.currentThread().isInterruptionRequested():
        time.sleep(0.1)


def _wait_for_stop(agent: SegmentAgent) -> None:
    """Waits for a stopped agent's thread to end; interrupts it when it overstays (see STOP_WAIT_S)."""
    started = time.monotonic()
    while not agent.wait(100):
        waited = time.monotonic() - started
        if waited >= SQUARING_OFF_WAIT_S or (waited >= STOP_WAIT_S and not agent.squaring_off):
            agent.requestInterruption()
            agent.wait()
            return
