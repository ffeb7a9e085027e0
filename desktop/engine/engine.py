"""`Engine`: one per process, built by the composition root (desktop/cli). Opens the store, profiles and the
broker hub on the home, the secret store and the clock it is given, and hands out `SessionEngine`s through
its `EngineRegistry`. `attach_demo()` takes a running demo market (desktop/cli/demo.py starts the simulator)
and logs its accounts in by themselves. Blocking calls (logins) are documented as such: run them off the GUI
thread.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from desktop.broker.errors import InputRejected, LoginFailed
from desktop.broker.frames import FRAMES
from desktop.broker.hub import BrokerHub
from desktop.broker.instruments import InstrumentCache
from desktop.broker.login import LoopbackListener, login_url, parse_request_token, request_token_by_redirect
from desktop.broker.profiles import MemorySecretStore as MemorySecretStore  # re-exported: its old home
from desktop.broker.profiles import Profile, ProfileBook, SecretStore, now_ist
from desktop.broker.recording import DEFAULT_RETENTION_DAYS, FeedRecorder, disk_usage, recordings_dir
from desktop.domain import Mode, Position, SessionKey
from desktop.engine.market import DemoMarket
from desktop.engine.registry import EngineRegistry
from desktop.engine.risk import GlobalKillSwitch
from desktop.engine.session import SessionEngine, SessionServices
from desktop.engine.snapshots import ProfileInfo
from desktop.engine.workspace import OnStop
from desktop.engine.writer import StoreWriter
from desktop.store import Store, logs_dir
from desktop.store.export import export_trades
from desktop.store.home import HomeLock
from desktop.store.records import TradeRow

if TYPE_CHECKING:  # desktop.sync brings alembic and psycopg: imported when the sync is first used
    from desktop.engine.sync_facade import SyncAccountStatus, SyncFacade, SyncSettings

PROFILES_FILE = "profiles.toml"
# States of a recorded session that a new tab of the same account and label takes over (crash, kept position, a
# segment that failed).
_RESUMABLE = ("running", "stopped_keep")


def ist_wall_clock() -> datetime:
    """The engine's clock outside a demo: IST wall-clock time (naive, as market times are)."""
    return now_ist().replace(tzinfo=None)


class DemoSecretsError(RuntimeError):
    """A demo market was attached to an engine whose secrets go to the OS keyring."""


# Thirty agents, the feeds and the store share one GIL. A thread woken by a tick waits for whichever
# thread holds it for up to the switch interval (5 ms by default) before CPython makes it let go; with
# 0.5 ms a woken agent starts within about that, at the price of more switches between busy threads
# (measured: 15 threads woken at once beside one busy thread, p50 5.7 ms at 5 ms, 1.2 ms at 0.5 ms).
GIL_SWITCH_INTERVAL = 0.0005


class Engine:
    """The process's engine: store, profiles, secrets, broker hub, global kill switch, open sessions.

    Threads. Built, and `open_session`, `sessions`, `profiles`, `market_time`, `label_resumes`, `home` and
    `logs_dir` called, on the GUI thread (or `kitedesk run`'s main thread). Work that waits is called from a
    worker (the window's job pool): `save_profile` (a keyring write), `complete_login`, `wait_for_redirect`
    (network), `export_trades`, `close_session` (waits for the session's agents) and `close` (closes every
    session on a pool of its own, then the hub and the store). `kill_all` is any thread: it only signals each
    session, which never waits behind a stop.
    """

    def __init__(
        self,
        home: Path,
        secrets: SecretStore | None = None,
        feed_options: dict[str, float] | None = None,
        clock: Callable[[], datetime] = ist_wall_clock,
    ) -> None:
        """`home`: the data folder (locked for the engine's life); `secrets`: where API secrets and tokens
        live (the OS keyring by default; a demo passes a memory-only store); `clock`: the market time until a
        demo market is attached (which brings its own)."""
        self._home = Path(home)
        self._clock = clock
        # Process-wide, and only ever lowered: the engine's threads are what this process is for.
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL))
        # One process per home, for the engine's life: two engines on one home would both take over the
        # same session and trade it twice. Refused with the holder's pid and command (HomeLockedError).
        self._home_lock = HomeLock.acquire(self._home)
        try:
            self.store = Store.open(self._home)
            try:
                self.profile_book = ProfileBook(self._home / PROFILES_FILE)
            except BaseException:
                self.store.close()
                raise
        except BaseException:
            self._home_lock.release()
            raise
        self.secrets = secrets or SecretStore()
        # The feeds drop ticks stamped far from this clock (broker/tick_times.py): market time is the engine's.
        self.hub = BrokerHub(
            self.secrets,
            feed_options=feed_options,
            clock=self.market_time,
            instruments=InstrumentCache(self.store.instruments),
        )
        self.kill_switch = GlobalKillSwitch()
        self.registry = EngineRegistry()
        self._market: DemoMarket | None = None
        self._demo_profiles: dict[str, Profile] = {}
        self._recorders: dict[str, FeedRecorder] = {}
        self._closing: list[FeedRecorder] = []  # recorders switched off, writing their last block
        self.writer = StoreWriter(self.store.deferred)
        self._services = SessionServices(
            self.store, self.hub, self.secrets, self.kill_switch, self._home, self.market_time, self.writer,
            self._live_positions,
        )  # fmt: skip
        self._sync_facade: SyncFacade | None = None  # made on first use; started by `start_sync`

    # -- demo -----------------------------------------------------------------------------------------

    def attach_demo(self, market: DemoMarket) -> None:
        """Blocking: trades on `market` (a simulator the composition root started) from now on: its clock
        becomes the engine's, its demo accounts are logged in by themselves. The engine stops it on `close`.

        Refused (DemoSecretsError) when this engine's secrets go to the OS keyring: the demo's accounts and
        tokens must never reach it, so a demo engine is built with a memory-only secret store.
        """
        if self._market is not None:
            return
        if self.secrets.secure:
            raise DemoSecretsError(
                "the demo's accounts must not reach the OS keyring: open the engine with a memory secret store"
            )
        self._market = market
        self._clock = market.now
        for account in market.accounts:
            profile = Profile(
                account.user_id, account.api_key, account.user_name,
                api_root=market.url, login_url_root=market.url, ws_root=market.ws_url,
            )  # fmt: skip
            self._demo_profiles[profile.user_id] = profile
            self.secrets.set_api_secret(profile.user_id, account.api_secret)
            self.hub.login(profile, request_token_by_redirect(profile))
            self.set_recording(profile.user_id, True)  # a demo day can be replayed (kitedesk replay)

    # -- recording the wire (broker/recording.py) ------------------------------------------------------

    def set_recording(
        self, user_id: str, enabled: bool, retention_days: int = DEFAULT_RETENTION_DAYS
    ) -> None:
        """Records (or stops recording) the account's market-data feed into `<home>/recordings/<user_id>/`,
        one file per market day; days older than `retention_days` are deleted."""
        current = self._recorders.get(user_id)
        if enabled and current is not None and current.retention_days == retention_days:
            return  # already recorded so
        recorder = None
        folder = recordings_dir(self._home) / user_id
        if enabled:
            # The one it replaces (or one switched off a moment ago, still writing): its last frames go first.
            previous = current or next((r for r in reversed(self._closing) if r.folder == folder), None)
            recorder = FeedRecorder(
                folder,
                clock=self.market_time,
                instruments=lambda day: self.store.instruments.load(broker_id=user_id, day=day),
                retention_days=retention_days,
                after=previous,
                pause=FRAMES.wait_quiet,  # it compresses while no account feed is deciding a frame
            )
            self._recorders[user_id] = recorder
        else:
            self._recorders.pop(user_id, None)
        old = self.hub.set_recorder(user_id, recorder)
        if old is not None:
            # Not waited for: this is the window's thread, and the recorder's own thread writes its last block
            # (a slow or full disk must not freeze the window). `close` waits for every one.
            old.close(wait=False)
            self._closing = [r for r in self._closing if not r.join(0)] + [old]

    def recording(self, user_id: str) -> bool:
        """True while the account's feed is being recorded."""
        return user_id in self._recorders

    def recordings_disk_usage(self) -> dict[str, int]:
        """Bytes of recordings per account in this home (the settings window shows them)."""
        return disk_usage(self._home)

    @property
    def demo(self) -> bool:
        """True when running on a simulator with its demo accounts."""
        return bool(self._demo_profiles)

    @property
    def sim_url(self) -> str | None:
        """The demo market's REST root, or None."""
        return self._market.url if self._market is not None else None

    @property
    def simulator(self) -> object | None:
        """The demo's simulator when this process started it (embedded or in its own process), or None."""
        return self._market.handle if self._market is not None else None

    def market_time(self) -> datetime:
        """The engine's clock: the demo market's time once one is attached, else the clock it was given."""
        return self._clock()

    # -- profiles and login -----------------------------------------------------------------------------

    def profile(self, user_id: str) -> Profile:
        """The account's profile (a demo one included); InputRejected in words when unknown."""
        return self._profile(user_id)

    def _profile(self, user_id: str) -> Profile:
        profile = self._demo_profiles.get(user_id)
        return profile if profile is not None else self.profile_book.get(user_id)

    def profiles(self) -> list[ProfileInfo]:
        """Every known account (demo ones tagged "demo"), without secrets."""
        out = []
        demo = list(self._demo_profiles.values())
        for p in demo + [p for p in self.profile_book.all() if p.user_id not in self._demo_profiles]:
            out.append(
                ProfileInfo(
                    user_id=p.user_id,
                    api_key=p.api_key,
                    display_name=p.display_name,
                    redirect_url=p.redirect_url,
                    api_root=p.api_root,
                    login_url_root=p.login_url_root,
                    logged_in=self.is_logged_in(p.user_id),
                    has_secret=self.secrets.api_secret(p.user_id) is not None,
                    tags=("demo",) if p.user_id in self._demo_profiles else (),
                )
            )
        return out

    def save_profile(self, info: ProfileInfo, api_secret: str | None) -> None:
        """Adds or updates a profile; the API secret goes to the keyring (never to a file)."""
        profile = Profile(
            info.user_id.strip(),
            info.api_key.strip(),
            info.display_name,
            api_root=info.api_root,
            login_url_root=info.login_url_root,
            redirect_url=info.redirect_url,
        )
        self.profile_book.save(profile)
        if api_secret:
            self.secrets.set_api_secret(profile.user_id, api_secret)
        self.store.profiles.save(
            broker_id=profile.user_id, user_name=info.display_name, api_key=profile.api_key
        )

    def login_url(self, user_id: str) -> str:
        """The Kite login page of the account."""
        return login_url(self._profile(user_id))

    def wait_for_redirect(self, user_id: str, timeout: float = 180.0) -> str:
        """Blocking: listens on the profile's loopback redirect URL and returns the request token."""
        listener = LoopbackListener(self._profile(user_id).redirect_url).start()
        return listener.wait(timeout)

    def complete_login(self, user_id: str, request_token_or_url: str) -> str:
        """Blocking: exchanges the request token (or pasted redirect URL); returns the account's name."""
        try:
            profile = self._profile(user_id)
        except InputRejected as e:
            raise LoginFailed(e.trader_message) from None
        self.hub.login(profile, parse_request_token(request_token_or_url))
        for session in self.registry.sessions(user_id):
            session.resume_after_login()
        return profile.display_name or profile.user_id

    def is_logged_in(self, user_id: str) -> bool:
        """True when the account has a valid access token for today."""
        try:
            return not self.hub.account(self._profile(user_id)).login_needed
        except InputRejected:
            return False

    def secure_secrets(self) -> bool:
        """False when secrets live in memory only (no OS keyring): they must be entered each run."""
        return self.secrets.secure

    def secrets_location(self) -> str:
        """Where the API secrets really are (the keyring, or this process's memory), in a sentence for Help."""
        return self.secrets.location

    def provide_api_secret(self, user_id: str, api_secret: str) -> None:
        """Gives the API secret of a known profile for this run (asked for by `kitedesk login` when no keyring
        holds it); it goes where the engine's secrets go, never to a file. InputRejected when unknown/empty."""
        self._profile(user_id)
        self.secrets.set_api_secret(user_id, api_secret)

    # -- sessions ---------------------------------------------------------------------------------------

    def open_session(self, user_id: str, label: str) -> SessionEngine:
        """A new tab of `user_id`; it takes over the last session of the same label if that one did not
        stop cleanly (crash) or kept a position, so its open position and orders are recovered on start."""
        profile = self._profile(user_id)
        resumed = self._resumable_key(user_id, label)
        key = resumed or SessionKey.new(user_id)
        session = SessionEngine(self._services, profile, key, label, resumed=resumed is not None)
        self.registry.add(session)
        return session

    def _live_positions(self, user_id: str) -> list[Position]:
        return [p for session in self.registry.sessions(user_id) for p in session.live_positions()]

    def label_resumes(self, user_id: str, label: str) -> bool:
        """A new tab of `user_id` labelled `label` would take over an earlier session (a kept position, a crash):
        a tab renamed to it would hide that session from every later tab."""
        return self._resumable_key(user_id, label) is not None

    def _resumable_key(self, user_id: str, label: str) -> SessionKey | None:
        records = self.store.sessions.list_sessions(broker_id=user_id, label=label)
        for record in reversed(records):
            if record.key in self.registry:
                continue
            return record.key if record.state in _RESUMABLE else None
        return None

    def close_session(self, key: SessionKey, on_stop: OnStop = OnStop.SQUARE_OFF) -> None:
        """Stops the session (positions squared off or kept, as `on_stop` says) and forgets it. Blocks until its
        agents end (up to a LIVE square-off's wait): call it from a worker thread, never the GUI's."""
        session = self.registry.get(key)
        if session is None:
            return
        session.stop(on_stop)
        self.registry.remove(key)
        session.deleteLater()

    def sessions(self) -> list[SessionEngine]:
        """Open sessions in the order they were opened."""
        return self.registry.sessions()

    def kill_all(self, reason: str) -> None:
        """The global kill switch: every session cancels, squares off and halts; so does every session started
        after it, until `rearm_kill_switch`."""
        self.kill_switch.trigger(reason)

    def kill_reason(self) -> str | None:
        """Why the global kill switch was triggered, or None while it is armed."""
        return self.kill_switch.reason

    def rearm_kill_switch(self) -> None:
        """Sessions started from now on trade again; the halted ones stay halted until each is restarted."""
        self.kill_switch.reset()

    def export_trades(
        self,
        *,
        broker_id: str,
        out: Path,
        session_label: str | None = None,
        date_from: date | None = None,
        date_to: date | None = None,
        mode: Mode | None = None,
    ) -> int:
        """Writes one account's trades to CSV; returns the number of rows."""
        return export_trades(
            self.store, broker_id=broker_id, out=out, session_label=session_label,
            date_from=date_from, date_to=date_to, mode=mode,
        )  # fmt: skip

    # -- central sync (desktop/engine/sync_facade.py) ----------------------------------------------------

    @property
    def _sync(self) -> SyncFacade:
        if self._sync_facade is None:
            from desktop.engine.sync_facade import SyncFacade

            self._sync_facade = SyncFacade(self.store, self._home)
        return self._sync_facade

    def start_sync(self) -> None:
        """Starts a sync thread per account enabled for sync (`kitedesk sync enable`, File → Sync settings…);
        none enabled: nothing runs. The threads never touch the sessions: a stalled central database delays
        no tick and no order. Stopped by `close`."""
        self._sync.start()

    def sync_statuses(self) -> list[SyncAccountStatus]:
        """Each syncing account's status for the status bar (no I/O: cheap on the GUI thread)."""
        return self._sync_facade.statuses() if self._sync_facade is not None else []

    def sync_settings(self, user_id: str) -> SyncSettings:
        """The account's sync setting on this computer (the URL without its password)."""
        return self._sync.settings(user_id)

    def test_sync(self, user_id: str, url: str, password: str = "") -> str:
        """Blocking: tries the central database once with `url` (and `password`, if given apart, else the
        URL's or the stored one); a sentence, or SyncError saying what is wrong."""
        return self._sync.test(user_id, url, password)

    def enable_sync(self, user_id: str, url: str, password: str = "") -> str:
        """Blocking: tests the connection first, then keeps the password in the keyring (never a file) and
        syncs the account from now on; SyncError, nothing changed, when the test fails."""
        return self._sync.enable(user_id, url, password)

    def disable_sync(self, user_id: str) -> str:
        """Blocking: stops syncing the account and forgets its password (what was sent stays central)."""
        return self._sync.disable(user_id)

    def account_trades(
        self, user_id: str, mode: Mode, day: date, *, all_devices: bool = False
    ) -> list[TradeRow]:
        """The account's trades of `day` in `mode`, oldest first: this computer's only, or with `all_devices`
        also those the sync brought from its other computers (`device_id` says whose)."""
        return self._sync.account_trades(user_id, mode, day, all_devices)

    def device_id(self) -> str:
        """This computer's id in the store (the trades table's Device column says "this computer" for it)."""
        return self.store.device_id

    def home(self) -> Path:
        """The KiteDesk home folder."""
        return self._home

    def logs_dir(self) -> Path:
        """Where the sessions' log folders are."""
        return logs_dir(self._home)

    def close(self, on_stop: OnStop = OnStop.KEEP) -> None:
        """Stops every session (positions kept under their stops unless told otherwise), then the broker hub, the
        store and the demo simulator.

        The sessions stop side by side: a LIVE square-off may wait up to 45 s for its exit, and one after another
        they added up. The first error of any, if one raised, is raised once all have stopped.
        """
        sessions = self.registry.sessions()
        with ThreadPoolExecutor(
            max_workers=max(1, len(sessions)), thread_name_prefix="kitedesk-close"
        ) as pool:
            done = [pool.submit(self.close_session, s.key, on_stop) for s in sessions]
        errors = [e for e in (f.exception() for f in done) if e is not None]
        try:
            if self._sync_facade is not None:
                self._sync_facade.stop()  # before the store closes: a worker acknowledges its batch in the store
            self.hub.close()
            for user_id in list(self._recorders):
                self.set_recording(user_id, False)
            for recorder in self._closing:
                recorder.close()  # waits for its last block (the recorder says in the log if it cannot)
            self._closing.clear()
            self.writer.close()
            self.store.close()
            if self._market is not None:
                self._market.stop()
                self._market = None
        finally:
            self._home_lock.release()  # last: nothing of this engine writes to the home after it
        if errors:
            raise errors[0]
