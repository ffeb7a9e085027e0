"""A small stand-in for desktop.engine's public API, for widget unit tests (the demo test uses the real one)."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from desktop.domain import Bar, Fill, Mode, Order, Segment, SessionKey, StrategyParams
from desktop.engine.funds import Funds
from desktop.engine.manual import ManualOutcome
from desktop.engine.snapshots import (
    AgentState,
    ProfileInfo,
    SegmentSnapshot,
    SessionSnapshot,
    SessionState,
)

T0 = datetime(2026, 1, 8, 9, 15)


def make_bars(n: int, start: datetime = T0, base: int = 25900) -> tuple[Bar, ...]:
    """`n` one-minute bars drifting up and down around `base`."""
    bars = []
    for i in range(n):
        o = Decimal(base + (i % 7) * 3 - (i % 5) * 2)
        c = o + Decimal((-1) ** i * 4)
        bars.append(Bar(start + timedelta(minutes=i), o, max(o, c) + 2, min(o, c) - 2, c))
    return tuple(bars)


class FakeSession(QObject):
    """Records the commands it gets; its snapshot is whatever the test sets."""

    sig_state_changed = Signal(str)
    sig_login_needed = Signal()
    sig_log_line = Signal(object)

    def __init__(self, user_id: str, label: str) -> None:
        super().__init__()
        self.key = SessionKey.new(user_id)
        self.user_id = user_id
        self.label = label
        self.params: StrategyParams | None = None
        self.calls: list[tuple[str, Any]] = []
        self.call_threads: list[str] = []
        self.holding = False
        self.state = SessionState.IDLE
        self.segments: tuple[SegmentSnapshot, ...] = ()
        self.version = 0
        self.message = ""
        self.market_time: datetime | None = None
        self.fills: tuple[Fill, ...] = ()
        self.orders: tuple[Order, ...] = ()
        self.realised = Decimal(0)
        self.funds: Funds | None = None

    def rename(self, label: str) -> None:
        self._record("rename", label)
        self.label = label

    def _record(self, name: str, arg: Any) -> None:
        self.calls.append((name, arg))
        self.call_threads.append(threading.current_thread().name)

    def start(self, params: StrategyParams) -> None:
        self._record("start", params)
        self.params = params
        self.segments = tuple(
            SegmentSnapshot(seg, AgentState.RUNNING, bars=make_bars(30), bars_version=1)
            for seg in params.segments
        )
        self._set(SessionState.RUNNING)

    def stop(self, positions: str = "square_off") -> None:
        self._record("stop", positions)
        self.holding = self.holding and positions == "keep"
        self._set(SessionState.STOPPED)

    def kill(self, reason: str = "kill switch") -> None:
        self._record("kill", reason)
        self._set(SessionState.HALTED)

    def has_open_position(self) -> bool:
        return self.holding

    # Manual actions: each is recorded and answered with `manual_answer` (an outcome's text, or an exception).
    manual_answer: str | Exception = "done"

    def _manual(self, name: str, arg: Any) -> Future[ManualOutcome]:
        self._record(name, arg)
        future: Future[ManualOutcome] = Future()
        if isinstance(self.manual_answer, Exception):
            future.set_exception(self.manual_answer)
        else:
            future.set_result(ManualOutcome(self.manual_answer))
        return future

    def exit_position(self, tradingsymbol: str) -> Future[ManualOutcome]:
        return self._manual("exit_position", tradingsymbol)

    def cancel_order(self, tradingsymbol: str, order_id: str) -> Future[ManualOutcome]:
        return self._manual("cancel_order", (tradingsymbol, order_id))

    def move_stop(self, tradingsymbol: str, level: Decimal) -> Future[ManualOutcome]:
        return self._manual("move_stop", (tradingsymbol, level))

    def resume_after_login(self) -> None:
        self._record("resume_after_login", None)
        if self.state is SessionState.LOGIN_NEEDED:
            self._set(SessionState.RUNNING)

    def _set(self, state: SessionState) -> None:
        self.state = state
        self.version += 1
        self.sig_state_changed.emit(state.value)

    def snapshot(self) -> SessionSnapshot:
        pnl = Decimal("125.50") if self.holding else Decimal(0)
        return SessionSnapshot(
            key=self.key,
            label=self.label,
            mode=self.params.mode if self.params else None,
            state=self.state,
            segments=self.segments,
            unrealised_pnl=pnl,
            realised_pnl=self.realised,
            market_time=self.market_time,
            fills=self.fills,
            orders=self.orders,
            version=self.version,
            message=self.message,
            funds=self.funds,
        )

    def hold(self, symbol: str = "NIFTY2611325900CE") -> None:
        """Pretend the first segment bought an option."""
        self.holding = True
        first = self.segments[0]
        self.segments = (
            replace(
                first,
                option_symbol=symbol,
                quantity=65,
                entry_price=Decimal("182.35"),
                option_price=Decimal("184.20"),
                stop_price=Decimal("173.25"),
                unrealised_pnl=Decimal("120.25"),
            ),
            *self.segments[1:],
        )
        self.version += 1


class FakeEngine:
    """Profiles, logins and sessions in memory; every call is recorded with its thread's name."""

    def __init__(self, home: Path) -> None:
        self._home = home
        self.calls: list[tuple[str, Any]] = []
        self.call_threads: dict[str, str] = {}
        self._profiles: dict[str, ProfileInfo] = {
            "UK9394": ProfileInfo("UK9394", "key_a", "Demo A", logged_in=True, has_secret=True),
            "UK1234": ProfileInfo("UK1234", "key_b", "Demo B", logged_in=True, has_secret=True),
        }
        self.secrets: dict[str, str] = {}
        self.recorded: set[str] = set()  # accounts whose market data is recorded
        self.opened: list[FakeSession] = []
        self.login_error: Exception | None = None
        self.exported_rows = 7
        self.closed = False
        self.killed: str | None = None
        self.resumable: set[tuple[str, str]] = (
            set()
        )  # (account, label) of earlier sessions a new tab takes over

    def _record(self, name: str, arg: Any = None) -> None:
        self.calls.append((name, arg))
        self.call_threads[name] = threading.current_thread().name

    # The sync facade: no account syncs unless a test sets `sync_status` (SyncAccountStatus-like objects).
    sync_status: list[Any] = []

    def start_sync(self) -> None:
        self._record("start_sync")

    def sync_statuses(self) -> list[Any]:
        return list(self.sync_status)

    def device_id(self) -> str:
        return "this-device"

    def account_trades(self, user_id: str, mode: Mode, day: date, *, all_devices: bool = False) -> list[Any]:
        self._record("account_trades", (user_id, mode, day, all_devices))
        return []

    def home(self) -> Path:
        return self._home

    def recording(self, user_id: str) -> bool:
        return user_id in self.recorded

    def set_recording(self, user_id: str, enabled: bool, retention_days: int = 30) -> None:
        self._record("set_recording", (user_id, enabled, retention_days))
        if enabled:
            self.recorded.add(user_id)
        else:
            self.recorded.discard(user_id)

    def recordings_disk_usage(self) -> dict[str, int]:
        return {"UK9394": 3 * 1024 * 1024}

    def logs_dir(self) -> Path:
        return self._home / "logs"

    def market_time(self) -> datetime:
        return datetime(2026, 1, 8, 10, 30)

    def profiles(self) -> list[ProfileInfo]:
        return list(self._profiles.values())

    def save_profile(self, info: ProfileInfo, api_secret: str | None) -> None:
        self._record("save_profile", info)
        if api_secret:
            self.secrets[info.user_id] = api_secret
        has = info.user_id in self.secrets or self._profiles.get(info.user_id, info).has_secret
        self._profiles[info.user_id] = replace(info, has_secret=has)

    def secure_secrets(self) -> bool:
        return True

    def secrets_location(self) -> str:
        return "API secrets are in this process's memory only (no system keyring was found)."

    def login_url(self, user_id: str) -> str:
        return f"https://kite.zerodha.com/connect/login?v=3&api_key={self._profiles[user_id].api_key}"

    def wait_for_redirect(self, user_id: str, timeout: float = 180.0) -> str:
        self._record("wait_for_redirect", user_id)
        return "tok123"

    def complete_login(self, user_id: str, request_token_or_url: str) -> str:
        self._record("complete_login", (user_id, request_token_or_url))
        if self.login_error is not None:
            raise self.login_error
        self._profiles[user_id] = replace(self._profiles[user_id], logged_in=True)
        return self._profiles[user_id].display_name or user_id

    def is_logged_in(self, user_id: str) -> bool:
        return self._profiles[user_id].logged_in

    def open_session(self, user_id: str, label: str) -> FakeSession:
        session = FakeSession(user_id, label)
        self.opened.append(session)
        return session

    def close_session(self, key: SessionKey, positions: str = "square_off") -> None:
        self._record("close_session", (key, positions))

    def sessions(self) -> list[FakeSession]:
        return list(self.opened)

    def kill_all(self, reason: str) -> None:
        self._record("kill_all", reason)
        self.killed = reason

    def label_resumes(self, user_id: str, label: str) -> bool:
        return (user_id, label) in self.resumable

    def kill_reason(self) -> str | None:
        return self.killed

    def rearm_kill_switch(self) -> None:
        self._record("rearm_kill_switch")
        self.killed = None

    def export_trades(self, **kwargs: Any) -> int:
        self._record("export_trades", kwargs)
        Path(kwargs["out"]).write_text("trade_id\n", encoding="utf-8")
        return self.exported_rows

    def close(self, positions: str = "keep") -> None:
        self._record("close", positions)
        self.closed = True


def paper_params(**overrides: Any) -> StrategyParams:
    """NIFTY + BANKNIFTY, 1 lot, SL 5 %, offset 100, PAPER."""
    base = dict(segments=(Segment.NIFTY, Segment.BANKNIFTY), lots=1, stop_loss=Decimal(5), itm_offset=100)
    return StrategyParams(**(base | overrides))


TODAY = date(2026, 1, 8)
LIVE = Mode.LIVE
