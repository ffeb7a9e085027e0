"""Per-session risk limits and kill switches. Exits are NEVER refused: risk only ever stops new risk.

A `RiskManager` belongs to one session and is shared by that session's segment agents (one thread
each), so it locks. Time is market time passed in by the caller. The rules:
- max daily loss: realised + unrealised P&L of the market day at or below −max_daily_loss refuses
  entries for the rest of that day (a later recovery of unrealised P&L does not re-open it);
- max orders per minute: every order sent (entries, exits, SL orders) counts in a sliding 60-second
  window of market time; an entry that would exceed it is refused, an exit is still allowed;
- max open positions: open positions plus entries on their way;
- max trades per day: filled entries of each segment in the market day (an adopted position counts as the
  trade it was); the cap is the risk manager's, not the strategy's, so every strategy plug-in keeps it and its
  refusal is said in words like every other;
- kill switch (the session's own, or a `GlobalKillSwitch` it subscribed to): halted, exits only,
  until `resume()`;
- margin: once the account's available funds are known (`set_funds`, LIVE only: funds.py), an option buy
  needing more than they hold (premium × quantity, the premium from the intent's price or the session's
  `price_of`) is refused; entries allowed since the last refresh hold their premium back from what is available.
A restart builds a new manager: `restore_day` gives it the day's counters rebuilt from the journal and the
broker's orders (recovery.py) before any entry, so a crash never resets a limit.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from desktop.domain import OrderIntent, Segment, Side, StrategyParams, format_amount, format_rupees, rupees

_WINDOW = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """The answer to one order request: allowed, or refused with a reason a trader understands."""

    allowed: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.allowed


def is_exit(intent: OrderIntent) -> bool:
    """True when the intent closes or protects a position (never refused): its role says so, whatever its reason
    text (a strategy plug-in's `ExitPosition("take_profit")` is an exit like any other)."""
    return not intent.role.adds_risk


class GlobalKillSwitch:
    """One switch that halts every subscribed session; created by the app, never a module global."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[int, Callable[[str], None]] = {}
        self._next_id = 0
        self.reason: str | None = None

    @property
    def triggered(self) -> bool:
        """True after `trigger` until `reset`."""
        return self.reason is not None

    def subscribe(self, on_kill: Callable[[str], None]) -> Callable[[], None]:
        """Calls `on_kill(reason)` on trigger (at once if already triggered); returns an unsubscribe."""
        with self._lock:
            sub_id = self._next_id
            self._next_id += 1
            self._subscribers[sub_id] = on_kill
            reason = self.reason
        if reason is not None:
            on_kill(reason)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers.pop(sub_id, None)

        return unsubscribe

    def trigger(self, reason: str = "global kill switch") -> list[BaseException]:
        """Halts every subscriber; one failing subscriber does not spare the others (errors returned)."""
        with self._lock:
            self.reason = reason
            callbacks = list(self._subscribers.values())
        errors: list[BaseException] = []
        for callback in callbacks:
            try:
                callback(reason)
            except Exception as e:  # keep halting the remaining sessions
                errors.append(e)
        return errors

    def reset(self) -> None:
        """Re-arms the switch; halted sessions stay halted until each resumes."""
        with self._lock:
            self.reason = None


class RiskManager:
    """One session's risk state: daily loss, order rate, open positions, kill switch."""

    def __init__(
        self, params: StrategyParams, on_loss_limit: Callable[[str, datetime], None] | None = None
    ) -> None:
        """`on_loss_limit(note, now)`: told once when the daily loss limit is reached (the session journals it, so
        a restart keeps the day closed even after the P&L came back); called under the lock: it only queues."""
        self._on_loss_limit = on_loss_limit
        self.max_daily_loss = params.max_daily_loss
        self.max_orders_per_minute = params.max_orders_per_minute
        self.max_open_positions = params.max_open_positions
        self.max_trades_per_day = params.max_trades_per_day
        self._lock = threading.Lock()
        self._orders: deque[datetime] = deque()
        self._open: set[Segment] = set()
        self._pending: set[Segment] = set()
        self._realised: dict[Segment, Decimal] = {}
        self._unrealised: dict[Segment, Decimal] = {}
        self._trades: dict[Segment, int] = {}  # filled entries of the market day, per segment
        self._day: date | None = None
        self._loss_breached = False
        self._breach_note = ""  # when the daily loss limit was reached, and the P&L then
        self._halt_reason: str | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._available: Decimal | None = None  # the account's available funds; None: not known (or PAPER)
        self._reserved: dict[Segment, Decimal] = {}  # premium of entries allowed since the last funds refresh
        self._price_of: Callable[[OrderIntent], Decimal | None] = lambda intent: None
        # The option's price as streamed, if fresh at a market time (no I/O): see `set_price_source`.
        self._streamed: Callable[[OrderIntent, datetime], Decimal | None] = lambda intent, now: None

    # -- kill switch -------------------------------------------------------------------------------

    @property
    def halted(self) -> bool:
        """True when the kill switch is on: exits only."""
        return self._halt_reason is not None

    @property
    def halt_reason(self) -> str | None:
        """Why the session is halted, or None."""
        return self._halt_reason

    def kill(self, reason: str = "kill switch") -> None:
        """Halts the session: every entry is refused from now on, exits still pass."""
        with self._lock:
            self._halt_reason = reason

    def halt(self, reason: str) -> bool:
        """Halts the session for `reason`, one the engine sets and lifts itself when it ends (`lift`: the journal
        failing), unless it is halted already: a trader's kill switch (or an earlier halt) keeps its reason, so
        the engine's `lift` never ends it. True if halted now for `reason`."""
        with self._lock:
            if self._halt_reason is not None:
                return False
            self._halt_reason = reason
            return True

    def resume(self) -> None:
        """Lifts the halt (the trader's explicit choice)."""
        with self._lock:
            self._halt_reason = None

    def lift(self, reason: str) -> bool:
        """Lifts the halt only while it is still for `reason` (one the engine set and saw end, e.g. the journal
        failing); a trader's kill or the kill switch that came since stays. True if lifted."""
        with self._lock:
            if self._halt_reason != reason:
                return False
            self._halt_reason = None
            return True

    def attach(self, switch: GlobalKillSwitch) -> None:
        """Subscribes to a global kill switch (halts at once if it is already triggered)."""
        self.detach()
        self._unsubscribe = switch.subscribe(self.kill)

    def detach(self) -> None:
        """Stops listening to the global kill switch (on session close)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # -- checks ------------------------------------------------------------------------------------

    def set_funds(self, available: Decimal | None) -> None:
        """The account's available funds as the broker just said (None: unknown, no margin check). A fresh amount
        already counts the orders sent before it, so what earlier entries held back is let go."""
        with self._lock:
            self._available = available
            self._reserved.clear()

    def set_price_source(
        self,
        price_of: Callable[[OrderIntent], Decimal | None],
        streamed: Callable[[OrderIntent, datetime], Decimal | None] | None = None,
    ) -> None:
        """Where a market entry's premium comes from (the option's last price); None from it: no margin check.
        `streamed(intent, now)`: the price the session's feed holds for the option, when it is fresh at market time
        `now` (never a network call); asked first, so `price_of` (the broker's quote, a REST call under Kite's one
        quote a second per account) is asked only when the feed has no fresh price."""
        self._price_of = price_of
        if streamed is not None:
            self._streamed = streamed

    def check(self, intent: OrderIntent, now: datetime, ask: bool = True) -> RiskDecision:
        """Checks (and on success records) one order at market time `now`. `ask` False: the broker is never asked
        for a price (the account's dispatcher, after `asks_price` said no: funds that became known in between are
        checked from the next entry on)."""
        if is_exit(intent):
            return self.check_exit(now)
        return self.check_entry(intent.segment, now, self._cost(intent, now, ask))

    def asks_price(self, intent: OrderIntent, now: datetime) -> bool:
        """True when checking `intent` at market time `now` would ask the broker for the option's price (a market
        buy while the account's funds are known and the feed holds no fresh price of it): a network call, so the
        account's dispatcher leaves that check to the segment's agent."""
        return (
            intent.side is Side.BUY
            and intent.price is None
            and self._available is not None
            and self._streamed(intent, now) is None
        )

    @property
    def checks_margin(self) -> bool:
        """True while the account's funds are known: a market buy's check wants its option's price."""
        return self._available is not None

    def _cost(self, intent: OrderIntent, now: datetime, ask: bool = True) -> Decimal | None:
        """What a buy needs from the available funds: premium × quantity; None when not known or not asked (a
        sell's margin is the broker's SPAN, which risk does not model: the broker's RMS decides it)."""
        if intent.side is not Side.BUY or self._available is None:
            return None
        price = intent.price
        if price is None:
            price = self._streamed(intent, now)
        if price is None and ask:
            price = self._price_of(intent)
        return None if price is None else price * intent.quantity

    def check_exit(self, now: datetime) -> RiskDecision:
        """Always allowed; the order still counts toward the order rate."""
        with self._lock:
            self._roll_day(now)
            self._record(now)
        return RiskDecision(True)

    def check_entry(self, segment: Segment, now: datetime, cost: Decimal | None = None) -> RiskDecision:
        """Allowed only if no limit is hit; an allowed entry counts as pending for `segment`. `cost`: what it needs
        from the available funds (None: not checked)."""
        with self._lock:
            self._roll_day(now)
            refusal = self._entry_refusal(segment, now) or self._margin_refusal(cost)
            if refusal:
                return RiskDecision(False, refusal)
            self._record(now)
            self._pending.add(segment)
            if cost is not None:
                self._reserved[segment] = cost
            return RiskDecision(True)

    def _margin_refusal(self, cost: Decimal | None) -> str:
        if cost is None or self._available is None:
            return ""
        available = self._available - sum(self._reserved.values(), Decimal(0))
        if cost <= available:
            return ""
        need, left = _amount(cost), _amount(max(available, Decimal(0)))
        return f"not enough funds: the entry needs {need}, {left} available"

    @property
    def available_funds(self) -> Decimal | None:
        """The account's available funds as last told, less what entries allowed since then hold back."""
        with self._lock:
            if self._available is None:
                return None
            return self._available - sum(self._reserved.values(), Decimal(0))

    def record_order(self, now: datetime) -> None:
        """Counts an order the risk check did not see (an SL order modification, a cancel)."""
        with self._lock:
            self._record(now)

    def orders_last_minute(self, now: datetime) -> int:
        """The order requests (placements, modifications, cancels) counted in the minute up to `now`."""
        with self._lock:
            self._prune(now)
            return len(self._orders)

    def late_entry_refusal(self, segment: Segment, now: datetime | None) -> str:
        """Why an entry of `segment` that reached the broker after it was taken as not placed (its reply lost) is no
        longer wanted: the session halted, the daily loss limit reached, or the trade cap reached without it; ""
        when it may stand. Nothing is recorded: it was sent long ago (its order was counted then)."""
        with self._lock:
            if now is not None:
                self._roll_day(now)
            if self._halt_reason is not None:
                return f"session halted ({self._halt_reason})"
            if self._loss_breached:
                return "max daily loss reached"
            if self._trades.get(segment, 0) >= self.max_trades_per_day:
                return f"trade cap {self.max_trades_per_day} reached"
            return ""

    def _entry_refusal(self, segment: Segment, now: datetime) -> str:
        if self._halt_reason is not None:
            return f"session halted ({self._halt_reason}): only exits are allowed"
        pnl = self._pnl()
        if not self._loss_breached and pnl <= -self.max_daily_loss:
            self._mark_loss_breached(pnl, now)
        if self._loss_breached:
            now_note = "" if self._breach_note.endswith(format_rupees(pnl)) else f"; {format_rupees(pnl)} now"
            return (
                f"max daily loss {_amount(self.max_daily_loss)} reached ({self._breach_note}{now_note}): "
                "no new entries today"
            )
        if segment in self._open or segment in self._pending:
            return f"{segment.value} already has a position or an entry on its way"
        trades = self._trades.get(segment, 0)
        if trades >= self.max_trades_per_day:
            return f"trade cap {self.max_trades_per_day} reached, no more entries today"
        busy = len(self._open | self._pending)
        if busy >= self.max_open_positions:
            return f"max open positions ({self.max_open_positions}) reached"
        self._prune(now)
        if len(self._orders) >= self.max_orders_per_minute:
            return f"max orders per minute ({self.max_orders_per_minute}) reached"
        return ""

    # -- position and P&L feedback -----------------------------------------------------------------

    def on_entry_filled(self, segment: Segment) -> None:
        """The pending entry of `segment` became an open position: one more trade of the day."""
        with self._lock:
            self._pending.discard(segment)
            self._open.add(segment)
            self._trades[segment] = self._trades.get(segment, 0) + 1

    def restore_day(
        self, segment: Segment, trades: int, orders_sent: Iterable[datetime], now: datetime
    ) -> None:
        """The day's counters of `segment` from an earlier run (recovery): its filled entries of the day, and when
        its orders of the last minute were sent. Set after the position (if any) was adopted, which counted once
        more: the rebuilt count is the day's whole count."""
        with self._lock:
            self._roll_day(now)
            self._trades[segment] = trades
            self._prune(now)
            sent = sorted(t for t in orders_sent if now - _WINDOW < t <= now)
            self._orders = deque(sorted([*self._orders, *sent]))

    def restore_loss_limit(self, note: str, now: datetime) -> None:
        """The daily loss limit was reached earlier today (a restart): entries stay closed for the day."""
        with self._lock:
            self._roll_day(now)
            if not self._loss_breached:
                self._loss_breached = True
                self._breach_note = note

    def trades_today(self, segment: Segment, now: datetime | None = None) -> int:
        """Filled entries of `segment` in the market day of `now` (what the trade cap counts); 0 on a day the
        manager has not seen yet (its counters roll with the next check)."""
        with self._lock:
            if now is not None and self._day is not None and now.date() > self._day:
                return 0
            return self._trades.get(segment, 0)

    def on_entry_failed(self, segment: Segment) -> None:
        """The pending entry of `segment` was rejected or cancelled: the funds it held back are free again."""
        with self._lock:
            self._pending.discard(segment)
            self._reserved.pop(segment, None)

    def on_position_closed(self, segment: Segment) -> None:
        """The position of `segment` is flat again."""
        with self._lock:
            self._open.discard(segment)
            self._unrealised.pop(segment, None)

    def update_pnl(self, segment: Segment, realised: Decimal, unrealised: Decimal, now: datetime) -> None:
        """The segment's P&L of the day so far (realised total, and unrealised of the open position)."""
        with self._lock:
            self._roll_day(now)
            self._realised[segment] = realised
            self._unrealised[segment] = unrealised
            pnl = self._pnl()
            if not self._loss_breached and pnl <= -self.max_daily_loss:
                self._mark_loss_breached(pnl, now)

    @property
    def daily_pnl(self) -> Decimal:
        """Realised + unrealised P&L of the market day, in rupees."""
        with self._lock:
            return rupees(self._pnl())

    @property
    def loss_limit_breached(self) -> bool:
        """True once the daily loss limit was reached today."""
        return self._loss_breached

    @property
    def open_positions(self) -> int:
        """Open positions plus entries on their way."""
        with self._lock:
            return len(self._open | self._pending)

    # -- internals (lock held) ---------------------------------------------------------------------

    def _pnl(self) -> Decimal:
        return sum(self._realised.values(), Decimal(0)) + sum(self._unrealised.values(), Decimal(0))

    def _record(self, now: datetime) -> None:
        self._prune(now)
        self._orders.append(now)

    def _prune(self, now: datetime) -> None:
        while self._orders and self._orders[0] <= now - _WINDOW:
            self._orders.popleft()

    def _mark_loss_breached(self, pnl: Decimal, now: datetime) -> None:
        # Latched for the day: a later recovery of unrealised P&L does not reopen entries.
        self._loss_breached = True
        self._breach_note = f"at {now:%H:%M}, P&L {format_rupees(pnl)}"
        if self._on_loss_limit is not None:
            self._on_loss_limit(self._breach_note, now)

    def _roll_day(self, now: datetime) -> None:
        day = now.date()
        if self._day is None:
            self._day = day
        elif day > self._day:
            self._day = day
            self._realised.clear()
            self._trades.clear()
            self._loss_breached = False
            self._breach_note = ""


def _amount(value: Decimal) -> str:
    return format_amount(rupees(value))
