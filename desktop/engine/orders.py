"""The order lifecycle of one segment: every order its trader sends (or adopts), as an explicit state machine.

    NEW ──place──▶ WORKING ──fill──▶ PART_FILLED
    NEW ──unconfirmed──▶ UNCONFIRMED ──bind──▶ WORKING;   UNCONFIRMED ──give_up──▶ GIVEN_UP ──found──▶ WORKING
    WORKING | PART_FILLED ──cancelling──▶ CANCELLING
    WORKING | PART_FILLED | CANCELLING ──end──▶ ENDED
    WORKING | PART_FILLED | CANCELLING | ENDED ──settle──▶ SETTLED
    (fills are taken in every state from WORKING on, a late one of a settled order too)

An order is sent only once its intent is journalled durably (write-ahead: `send`), save a protective one (a stop, a
sale of a position no stop protects) while the journal cannot be written: sent at once, its intent held and
journalled once the store writes again (`record_intent`); the broker's answer makes
it WORKING under its id, or UNCONFIRMED when the answer was lost (Kite may have it: its first order update makes
it ours, `bind`; none within `ORDER_PATIENCE` and it is GIVEN_UP; Kite's book may lag it longer still: an update
showing it later makes it ours again, `found`, never a position nobody tracks; Kite's book is read at a given-up
entry and again one patience later, and the segment takes no new entry meanwhile: `lost_entry_waits`). CANCELLING: this run's cancel was accepted
(a stop cancelled to exit: its fills before the cancel still count). ENDED: the broker says it ended
(COMPLETE, CANCELLED, REJECTED) and its fills are still on their way. SETTLED: all of it is known (filled in
full, or ended with all its fills in) and acted on, once. A transition the machine does not have raises
`IllegalTransition`: a bug, never papered over.

`Orders` owns the tracked orders of one segment: the durable intent before a send, binding broker orders to
intents (a lost reply, a slice of a sliced order), updates and fills (durable in the store before anything
acts on them, save an entry's: its position is protected before its fill's write), patience (an entry or exit
still working `ORDER_PATIENCE` after it was sent has its rest cancelled) and what a settled order means for the
position. Runs on the segment agent's thread only (a store write it must not wait ~20 s for runs on a thread of
its own or joins the next group commit, waited a second at most: `JournalWrite`, `FillWrite`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from functools import partial
from typing import TYPE_CHECKING

from desktop.broker.errors import AmbiguousOrderFailure, BrokerError, ModificationCapReached
from desktop.broker.exchange_rules import MAX_MODIFICATIONS
from desktop.domain import Fill, Mode, Order, OrderIntent, OrderRole, OrderStatus, rupees
from desktop.store.errors import StoreError, StoreLockedError, StoreWriteError

if TYPE_CHECKING:
    from desktop.engine.context import Holding
    from desktop.engine.trader import SegmentTrader

# An entry or exit still working this long after it was sent (a thin option, a market order held at its
# protection price) has the rest cancelled: a part-filled entry becomes the position, with its stop; an exit
# is asked for again. Market orders normally fill within a second.
ORDER_PATIENCE = timedelta(seconds=30)
# An intent that could not be journalled: the journal is tried again this much later, the pause doubling up to
# JOURNAL_RETRY_MAX while it fails (each try may hold the agent ~20 s on a database another program locked).
JOURNAL_RETRY = timedelta(seconds=5)
JOURNAL_RETRY_MAX = timedelta(seconds=40)
# A sale's intent, and the intents held meanwhile, are written on a thread of their own: the agent waits
# this many real seconds for the write, then goes on without it (a locked database holds a write ~20 s: the stop is
# sent, the position is not left naked that long, and the agent keeps answering its orders and ticks).
JOURNAL_WAIT = 1.0
FINAL_JOURNAL_WAIT = (
    5.0  # a stopping segment waits this long for its held intents' write (`Orders.last_flush`)
)
# LIVE: fills an order update showed that have not come (Kite's trade list lagged, or could not be read) are asked
# for again after this many real seconds, the pause doubling up to FILLS_ASK_MAX while any are owed (a login
# expired for an hour is not asked every few seconds): `Orders.ask_owed_fills`.
FILLS_ASK_EVERY = 5.0
FILLS_ASK_MAX = 60.0


class OrderState(Enum):
    """Where a tracked order is in its lifecycle; only `TrackedOrder`'s transitions change it."""

    NEW = "new"  # built from its intent, not sent yet
    UNCONFIRMED = "unconfirmed"  # sent, the broker's answer lost: no id until an update shows it
    WORKING = "working"  # at the broker under its id, nothing filled yet
    PART_FILLED = "part_filled"  # at the broker, some of it filled
    CANCELLING = "cancelling"  # this run's cancel was accepted; the broker's end is on its way
    ENDED = "ended"  # the broker says it ended; its fills are still coming
    SETTLED = "settled"  # all of it known and acted on
    GIVEN_UP = "given_up"  # unconfirmed, and no update ever showed it: taken as not placed


_S = OrderState
_AT_BROKER = (_S.WORKING, _S.PART_FILLED, _S.CANCELLING)
# transition -> the states it may start from
_FROM: dict[str, tuple[OrderState, ...]] = {
    "place": (_S.NEW,),
    "unconfirmed": (_S.NEW,),
    "bind": (_S.UNCONFIRMED,),
    "fill": (*_AT_BROKER, _S.ENDED, _S.SETTLED),  # a late fill of a settled order is still counted
    "cancelling": _AT_BROKER,
    "end": _AT_BROKER,
    "settle": (*_AT_BROKER, _S.ENDED),
    "give_up": (_S.UNCONFIRMED,),
    "found": (_S.GIVEN_UP,),
}


class IllegalTransition(RuntimeError):
    """An order asked to change state in a way its lifecycle does not have (a bug in the engine)."""


@dataclass(slots=True)
class TrackedOrder:
    """An order this segment sent (or adopted), with what it is for, its state and what filled so far."""

    intent: OrderIntent  # its `role` says what the order is for (entry, exit or stop)
    order_id: str = ""
    status: OrderStatus = OrderStatus.PENDING  # the broker's last word
    filled: int = 0
    value: Decimal = Decimal(0)
    state: OrderState = OrderState.NEW
    path: list[OrderState] = field(default_factory=list)  # the states it left, in order
    sent_at: datetime | None = None  # market time it was placed (None: adopted from an earlier run)
    cancel_asked_at: datetime | None = None  # market time this run last asked the broker to cancel it
    broker_filled: int = 0  # what the broker says filled when it ended: settled once the fills add up to it
    # What the broker says it had filled before this run adopted it (a stop part-filled while KiteDesk was down):
    # those fills are counted already, so neither its fills here nor its left quantity include them, but Kite's
    # figures (its filled_quantity, the total a modify takes) do.
    filled_before: int = 0
    why: str = ""  # the broker's reason when it ended
    pnl: Decimal = Decimal(0)  # realised by this order's fills (sales)
    # A sale (the stop, an exit): the holding it sells, set when it is sent or adopted. Its fills are booked
    # against that holding only, never against a later one in the same option (`HoldingKeeper.sold`).
    sells: Holding | None = None
    # A protective stop (desktop/engine/protection.py): its levels, Kite's count of modifications, and when it
    # was seen triggered (market time) with its chase.
    trigger: Decimal | None = None
    limit: Decimal | None = None
    modifications: int = 0
    triggered_at: datetime | None = None
    chase_at: datetime | None = None
    chases: int = 0
    # An entry found after it was given up when the session no longer takes entries (a kill, the trade cap):
    # why what it bought is sold once it is protected (`Entries.filled`); "" otherwise.
    sell_when_filled: str = ""

    # -- transitions ---------------------------------------------------------------------------------

    def _go(self, transition: str, to: OrderState) -> None:
        if self.state not in _FROM[transition]:
            raise IllegalTransition(
                f"{self.role} order {self.order_id or self.intent.intent_id}: cannot {transition} when "
                f"{self.state.value}"
            )
        if to is not self.state:
            self.path.append(self.state)
            self.state = to

    def place(self, order_id: str, at: datetime | None) -> None:
        """The broker took it under `order_id` (`at` None: adopted from an earlier run, not sent by this one)."""
        self._go("place", _S.WORKING)
        self.order_id, self.sent_at = order_id, at

    def unconfirmed(self, at: datetime) -> None:
        """Sent, but the broker's answer was lost: watched for in its order updates."""
        self._go("unconfirmed", _S.UNCONFIRMED)
        self.sent_at = at

    def bind(self, order_id: str) -> None:
        """An order update showed the unconfirmed order under `order_id`."""
        self._go("bind", _S.WORKING)
        self.order_id = order_id

    def fill(self, quantity: int, price: Decimal) -> None:
        before = self.state
        self._go("fill", _S.PART_FILLED if before is _S.WORKING else before)
        self.filled += quantity
        self.value += price * quantity

    def cancelling(self) -> None:
        """The broker accepted this run's cancel."""
        self._go("cancelling", _S.CANCELLING)

    def end(self, status: OrderStatus, broker_filled: int, why: str) -> None:
        """The broker says it ended with `broker_filled` filled."""
        self._go("end", _S.ENDED)
        self.status, self.broker_filled, self.why = status, broker_filled, why

    def settle(self) -> None:
        self._go("settle", _S.SETTLED)

    def give_up(self, why: str) -> None:
        self._go("give_up", _S.GIVEN_UP)
        self.why = why

    def found(self, order_id: str, at: datetime | None) -> None:
        """An order update showed the order given up under `order_id`: at the broker after all (its patience
        starts again at `at`)."""
        self._go("found", _S.WORKING)
        self.order_id, self.sent_at, self.cancel_asked_at, self.why = order_id, at, None, ""

    # -- what the state says ---------------------------------------------------------------------------

    @property
    def role(self) -> OrderRole:
        """What the order is for: its intent's role (one source, so the two can never disagree)."""
        return self.intent.role

    @property
    def done(self) -> bool:
        """Settled: its fills were acted on (or it ended unfilled, or was given up)."""
        return self.state in (_S.SETTLED, _S.GIVEN_UP)

    @property
    def final(self) -> bool:
        """The broker said it ended (or it was given up)."""
        return self.state in (_S.ENDED, _S.SETTLED, _S.GIVEN_UP)

    @property
    def cancelled_by_us(self) -> bool:
        return self.state is _S.CANCELLING or _S.CANCELLING in self.path

    @property
    def resting(self) -> bool:
        """Still working at the broker, as far as this run knows, and not cancelled by it."""
        return self.state in (_S.UNCONFIRMED, _S.WORKING, _S.PART_FILLED)

    @property
    def complete(self) -> bool:
        """All of it is known: filled in full, or ended with all the fills the broker says it had."""
        return self.filled >= self.intent.quantity or (
            self.state is _S.ENDED and self.filled >= self.broker_filled
        )


@dataclass(frozen=True, slots=True)
class JournalOutage:
    """An intent could not be journalled: the session's halt this segment set, and when to try again."""

    halt: str
    retry_at: datetime | None


@dataclass(slots=True)
class JournalWrite:
    """A journal write on a thread of its own (`Orders._write_aside`): `intents`, then a note at `note_at` (a
    flush of the held intents, `journal_back`) or none (a protective order's own intent, `record_intent`)."""

    intents: list[tuple[OrderIntent, datetime]]
    note_at: datetime | None
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    thread: threading.Thread | None = None
    # A sale's intent queued for the next group commit instead (`Orders._queue_aside`): returns once it is
    # committed, or raises the store's error; asked once `done` is set, when it returns at once.
    outcome: Callable[[], object] | None = None


@dataclass(slots=True)
class FillWrite:
    """A fill's write (`Orders._record_fill`) in the next group commit (`outcome`), or on a thread of its own when
    no store writer leads group commits (tests): a locked database holds it ~20 s."""

    fill: Fill
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    thread: threading.Thread | None = None
    # Queued for the next group commit: returns once it is committed, or raises the store's error; asked once
    # `done` is set, when it returns at once.
    outcome: Callable[[], object] | None = None


class Orders:
    """The tracked orders of one segment (its trader's helper, same thread)."""

    def __init__(self, trader: SegmentTrader) -> None:
        self.t = trader
        self.tracked: dict[str, TrackedOrder] = {}  # order_id (and each slice's id) -> tracked
        self.working: list[TrackedOrder] = []  # entries and exits sent and not done yet (see ORDER_PATIENCE)
        self.seen_fills: set[str] = set()
        # Fills the store refused (disk full, database locked): recorded again, in order, on the next ticks.
        self.unsaved_fills: list[Fill] = []
        # Of those, the entries' fills already acted on (their position opened and protected): recorded, never acted on
        # again (`save_fills`).
        self._acted_unsaved: set[str] = set()
        # The first unsaved fill's write, still running on its own thread (`_record_fill`).
        self._fill_write: FillWrite | None = None
        self._unsaved_said = ""  # the fill whose wait was last logged
        self.order_rows: dict[str, Order] = {}  # latest report of each of our orders, for the GUI
        self.fill_rows: list[Fill] = []
        self.outage: JournalOutage | None = None
        # Protective orders sent while the journal could not be written: (intent, market time), journalled in this
        # order once it writes again (`journal_back`).
        self.held: list[tuple[OrderIntent, datetime]] = []
        self._held_said = False  # the outage's "sent anyway" said
        self._journal_pause = JOURNAL_RETRY
        self._writing: JournalWrite | None = None  # a journal write still running on its own thread
        # Orders given up (their reply lost, no update within ORDER_PATIENCE): Kite's book may show them later.
        self.given_up: list[TrackedOrder] = []
        # An entry was given up: no new entry until Kite's book is read again at this market time (`give_up`).
        self.lost_entry_until: datetime | None = None
        self.last_refusal = ""  # the broker's words when it last refused an order (`send`)
        # An update showed fills (LIVE): some may not come by themselves (`ask_owed_fills`), next asked at this
        # time.monotonic().
        self.fills_maybe_owed = False
        self.next_fills_ask = 0.0
        self._fills_ask_pause = FILLS_ASK_EVERY

    # -- sending -----------------------------------------------------------------------------------

    def record_intent(
        self, intent: OrderIntent, commit: Callable[[], None] | None = None, protective: bool = False
    ) -> bool:
        """The intent made durable (`commit`: with the other intents of its frame, engine/decisions.py); False when
        the store cannot write it: then the session takes no new entries (nothing may be sent that the journal does
        not hold) and a sale whose position a resting stop protects is asked again a little later.

        `protective`: a stop-loss order, or the sale of a position no resting stop protects. It is True (sent)
        even when the journal cannot be written: its intent is held in memory (`held`) and journalled, in order,
        as soon as the store writes again (`journal_back`). A journal that cannot be written must never leave a
        position naked (issue 16, chaos seed 51: a full disk, then a locked database, kept a position with no stop
        for 37 market minutes); the broker's book, read by the session's tag, is what a restart adopts it from.
        Its write waits JOURNAL_WAIT at most (a locked database holds it ~20 s). While any intent is held, later
        ones queue behind it: the journal keeps the order they were sent in."""
        t = self.t
        now = t.market_time
        assert now is not None
        outage = self.outage
        if outage is not None and (protective or not self.journal_back(now)):
            # The journal is known to be down: a protective order is not kept waiting for it; it is held, and
            # journalled after those held before it (`journal_back`, on the next ticks). Anything else is sent only
            # once the journal writes again.
            return self._refused(intent, outage.halt, protective)
        try:
            if intent.role is not OrderRole.ENTRY and commit is None:
                # A sale (a stop, an exit): its position is held, so the agent must not wait ~20 s on a locked
                # database (seed 51 again: a signal exit's write held the agent while the exchange cancelled the
                # stop). An entry waits as before: nothing is held while it is decided.
                self._record_aside(intent, now)
            elif commit is not None:
                commit()
            else:
                t.ctx.store.intents.record(intent, at=now)
        except StoreError as e:
            halt = f"the journal cannot be written ({e})"
            self.outage = JournalOutage(halt, now + JOURNAL_RETRY)
            self._journal_pause = JOURNAL_RETRY
            # Never over a trader's kill switch (or the loss of another segment's journal): its reason stays, so
            # this outage's end (`_flushed`: `lift`) does not end it too.
            t.ctx.risk.halt(halt)
            return self._refused(intent, halt, protective)
        if self.outage is not None:
            self.outage = replace(self.outage, retry_at=None)
        return True

    def _record_aside(self, intent: OrderIntent, now: datetime) -> None:
        """A sale's intent journalled without this thread leading the write, waited for JOURNAL_WAIT at most; raises
        StoreError when it failed or is still waiting (the store busy or locked: it may still land; `journal_back`
        waits for it before it writes again. A protective one is then held and journalled again, which is harmless:
        an intent is saved once; any other is not sent, and one that lands later is an intent never sent). With the
        store writer's leader (`TraderContext.commit_soon`) it joins the next group commit, beside the entries'
        intents and the other segments' sales of the same moment (`_queue_aside`); else a thread of its own."""
        lead = self.t.ctx.commit_soon
        write = (
            self._queue_aside(intent, now, lead)
            if lead is not None
            else self._write_aside([(intent, now)], None)
        )
        if not self._finished(write, JOURNAL_WAIT):
            self._writing = write
            raise StoreLockedError(
                f"the order intent was not saved within {JOURNAL_WAIT:g} s: the database is busy or locked"
            )
        if write.error is not None:
            raise write.error

    def _write_aside(
        self, intents: list[tuple[OrderIntent, datetime]], note_at: datetime | None
    ) -> JournalWrite:
        """Starts `intents` (then a note, when `note_at`) on a thread of its own: a locked database holds a write
        ~20 s, which the agent's thread must not wait (`JOURNAL_WAIT`)."""
        t = self.t
        write = JournalWrite(list(intents), note_at)

        def run() -> None:
            try:
                if write.intents:
                    t.ctx.store.intents.record_all(write.intents)
                if note_at is not None:
                    t.ctx.store.journal.append(
                        t.ctx.key, segment=t.segment, kind="journal_writable", payload={}, market_time=note_at
                    )
            except BaseException as e:  # noqa: BLE001 - handed to the agent's thread (`_finished`'s caller)
                write.error = e
            finally:
                write.done.set()

        write.thread = threading.Thread(target=run, name=f"kitedesk-journal-{t.segment.value}", daemon=True)
        write.thread.start()
        return write

    def _queue_aside(
        self, intent: OrderIntent, now: datetime, lead: Callable[[Callable[[], object]], None]
    ) -> JournalWrite:
        """A sale's intent queued for the next group commit, which `lead` (the store writer's leader) runs: one
        transaction with whatever else waits to be committed then (a frame's entry intents, the other segments'
        sales), no thread started and no fsync of its own (issue 18: a thread and a transaction per sale took
        a sale's intent p50 25 ms at 10 sessions x 3 segments). Raises StoreError when the store refuses it now."""
        store = self.t.ctx.store
        write = JournalWrite([(intent, now)], None)
        write.outcome = store.intents.queue_all(write.intents, then=write.done.set)
        lead(store.commit_waiting)
        return write

    @staticmethod
    def _finished(write: JournalWrite, wait: float) -> bool:
        """True once `write` ended (its `error` says how), waiting `wait` real seconds at most; a failure other
        than the store's is raised (a bug, never papered over)."""
        if not write.done.wait(wait):
            return False
        if (
            write.outcome is not None
        ):  # queued for a group commit (`_queue_aside`): done, so this returns at once
            outcome, write.outcome = write.outcome, None
            try:
                outcome()
            except BaseException as e:  # noqa: BLE001 - the store's error is the caller's; any other raised below
                write.error = e
        else:
            assert write.thread is not None
            write.thread.join()
        if write.error is not None and not isinstance(write.error, StoreError):
            raise write.error
        return True

    def _refused(self, intent: OrderIntent, halt: str, protective: bool) -> bool:
        """An intent the journal did not take (`halt` says why): held and sent when `protective`, else not sent."""
        t = self.t
        assert t.market_time is not None
        if protective:
            self.held.append((intent, t.market_time))
            if not self._held_said:  # once an outage, not on every stop or sale it holds
                self._held_said = True
                t.log.error(
                    "%s: the %s order to %s %d %s is sent anyway to protect the position; it and any other order "
                    "sent meanwhile are journalled once the store writes again; this session takes no new "
                    "entries until then",
                    halt, intent.reason, intent.side.value, intent.quantity, intent.tradingsymbol,
                )  # fmt: skip
            else:
                t.log.warning("the %s order to %s %d %s is sent before it is journalled (%s)", intent.reason,
                              intent.side.value, intent.quantity, intent.tradingsymbol, halt)  # fmt: skip
            return True
        t.log.error(
            "the %s order to %s %d %s cannot be journalled (%s): not sent; any stop-loss order is kept; this "
            "session takes no new entries until the journal can be written",
            intent.reason, intent.side.value, intent.quantity, intent.tradingsymbol, halt,
        )  # fmt: skip
        return False

    def journal_down(self, now: datetime) -> bool:
        """An intent failed to be journalled a moment ago (exits wait: the stop keeps protecting)."""
        return self.outage is not None and self.outage.retry_at is not None and now < self.outage.retry_at

    def journal_back(self, now: datetime, wait: float = JOURNAL_WAIT) -> bool:
        """True when no intent failed, or once the journal writes again (the intents held meanwhile first, in the
        order they were sent, then a note, on a thread of their own: `JOURNAL_WAIT`; tried after JOURNAL_RETRY,
        the pause doubling up to JOURNAL_RETRY_MAX while it fails), and the session's halt this segment set is
        lifted. A disk full for a few seconds must not end the day; while it lasts, no entry (nothing may be sent
        that the journal does not hold). `wait`: real seconds its write is waited for (0 on the account's
        dispatcher: the write is started, its answer comes on a later call)."""
        if self.outage is None:
            return True
        write = self._writing
        if write is not None:  # a write still running from an earlier call: its end first, never two at once
            if not self._finished(write, 0):
                return False
            self._writing = None
            if write.note_at is not None:
                return self._flushed(write, now)
        if self.journal_down(now):
            return False
        write = self._write_aside(self.held, now)
        if not self._finished(write, wait):
            self._writing = write
            return False
        return self._flushed(write, now)

    def last_flush(self, wait: float = FINAL_JOURNAL_WAIT) -> None:
        """The segment is stopping: the intents still held are journalled if the store writes now (waited `wait` real
        seconds at most), else said: they are at Kite, and the next start adopts them by the session's tag."""
        t, now = self.t, self.t.market_time
        if self._fill_write is not None:  # a fill's write still running: its end, then the fills behind it
            self._fill_write.done.wait(wait)
            self.save_fills()
        if self.outage is None or now is None:
            return
        if self._writing is not None:
            self._finished(self._writing, wait)
        self.outage = replace(self.outage, retry_at=None)  # tried now, whatever the pause
        if not self.journal_back(now, wait) and self.held:
            t.log.error(
                "%d order%s sent while the journal could not be written %s not journalled: %s at Kite under this "
                "session's tag, and the next start adopts %s from there",
                len(self.held), "" if len(self.held) == 1 else "s", "is" if len(self.held) == 1 else "are",
                "it is" if len(self.held) == 1 else "they are", "it" if len(self.held) == 1 else "them",
            )  # fmt: skip

    def _flushed(self, write: JournalWrite, now: datetime) -> bool:
        """The end of a flush of the held intents (`journal_back`): the outage over when it wrote all of them."""
        t, outage = self.t, self.outage
        assert outage is not None
        if write.error is not None:
            self.outage = replace(outage, retry_at=now + self._journal_pause)
            self._journal_pause = min(self._journal_pause * 2, JOURNAL_RETRY_MAX)
            return False
        if write.intents:
            del self.held[: len(write.intents)]
            t.log.warning(
                "the journal is written again: the %d order%s sent while it could not be are journalled now",
                len(write.intents), "" if len(write.intents) == 1 else "s",
            )  # fmt: skip
        if self.held:  # more were sent while it wrote: journalled next
            self.outage = replace(outage, retry_at=None)
            return False
        self.outage = None
        self._held_said = False
        self._journal_pause = JOURNAL_RETRY
        if t.ctx.risk.lift(outage.halt):
            t.log.warning("the journal is written again: the session takes new entries again")
        return True

    def send(
        self,
        intent: OrderIntent,
        recorded: bool = False,
        commit: Callable[[], None] | None = None,
        protective: bool = False,
    ) -> TrackedOrder | None:
        """Journal first (durable), then send; None when the gateway refused it or the journal failed (a
        `protective` order is sent then too, its intent held: `record_intent`)."""
        t = self.t
        assert t.market_time is not None
        if not recorded and not self.record_intent(intent, commit, protective):
            return None
        role = intent.role
        tracked = TrackedOrder(intent)
        if role is not OrderRole.ENTRY:
            tracked.sells = t.holding  # a sale is sent for the position held now (an exit, its stop)
        try:
            order = t.ctx.gateway.place(intent)
        except AmbiguousOrderFailure as e:
            # Kite may have it, so it is neither sent again nor taken as refused: its first order update makes it
            # ours (`bind`); `cancel_overdue` gives it up after ORDER_PATIENCE if none comes.
            t.log.error("%s order unconfirmed: %s Watching Kite's order updates for it.", role, e)
            t.journal("order_unconfirmed", {"intent_id": intent.intent_id, "reason": str(e), "role": role})
            tracked.unconfirmed(t.market_time)
            self.working.append(tracked)
            return tracked
        except BrokerError as e:
            t.log.error("%s order not placed: %s", role, e)
            self.last_refusal = str(e)
            t.journal("order_failed", {"intent_id": intent.intent_id, "reason": str(e)})
            return None
        # A note of what was sent, after the send: queued for the store writer, whose wake-up and write must not
        # come between the durable intent and the order.
        t.journal("order_sent", {"intent_id": intent.intent_id, "order_id": order.order_id,
                                 "reason": intent.reason, "role": role})  # fmt: skip
        tracked.place(order.order_id, t.market_time)
        self.track(tracked, t.slices.children(order.order_id))  # an order sent in slices: each is this one
        if role is not OrderRole.STOP:
            self.working.append(tracked)
        return tracked

    def track(self, tracked: TrackedOrder, also: list[str] | None = None) -> None:
        """`tracked` known by its id (and by the ids in `also`: the slices of a sliced order). A sale adopted on
        recovery (a resting stop) sells the position held now."""
        if tracked.sells is None and tracked.role is not OrderRole.ENTRY:
            tracked.sells = self.t.holding
        self.tracked[tracked.order_id] = tracked
        for order_id in also or ():
            self.tracked[order_id] = tracked

    def cancel(self, tracked: TrackedOrder) -> bool:
        """Asks the broker to cancel the rest of `tracked`; False when it refused (or it has no id yet). Counted in
        the order rate (Kite counts a cancel as an order request)."""
        t = self.t
        if not tracked.order_id or tracked.state not in _AT_BROKER:
            return False
        try:
            t.ctx.gateway.cancel(tracked.order_id)
        except BrokerError as e:
            t.log.warning("%s order %s not cancelled: %s", tracked.role, tracked.order_id, e)
            return False
        tracked.cancelling()
        if t.market_time is not None:
            t.ctx.risk.record_order(t.market_time)
        return True

    def modify(
        self,
        tracked: TrackedOrder,
        *,
        quantity: int | None = None,
        price: Decimal | None = None,
        trigger_price: Decimal | None = None,
    ) -> None:
        """Modifies `tracked` at the broker; raises BrokerError when it is not working there, has had Kite's
        `MAX_MODIFICATIONS` (the broker would refuse the next: not sent), or the broker refused. Counted against
        the cap and in the order rate."""
        t = self.t
        if not tracked.order_id or tracked.state not in (_S.WORKING, _S.PART_FILLED):
            raise BrokerError(f"{tracked.role} order {tracked.order_id or '(unconfirmed)'} is not working at the "
                              f"broker ({tracked.state.value})")  # fmt: skip
        if tracked.modifications >= MAX_MODIFICATIONS:
            raise ModificationCapReached(
                f"order {tracked.order_id} has had Kite's {MAX_MODIFICATIONS} modifications"
            )
        try:
            t.ctx.gateway.modify(
                tracked.order_id, quantity=quantity, price=price, trigger_price=trigger_price
            )
        except BrokerError as e:
            if isinstance(
                e, ModificationCapReached
            ):  # an order adopted on recovery: its count here started at 0
                tracked.modifications = MAX_MODIFICATIONS
            raise
        tracked.modifications += 1  # Kite counts every modification of an order
        if quantity is not None:  # what it sells now: its fills settle it against this
            tracked.intent = replace(tracked.intent, quantity=quantity)
        if t.market_time is not None:
            t.ctx.risk.record_order(t.market_time)

    def cancel_by_hand(self, order_id: str) -> TrackedOrder:
        """Cancels one of our working entries or exits (a manual action); its CANCELLED update then settles it as
        any other. The protective stop is never cancelled this way: the position would be left naked (move the
        stop or exit instead). Raises BrokerError when it cannot."""
        t = self.t
        tracked = self.tracked.get(order_id)
        if tracked is None:
            raise BrokerError(f"order {order_id} is not one of this session's {t.segment.value} orders")
        if tracked.role is OrderRole.STOP:
            raise BrokerError(f"order {order_id} is the stop-loss order protecting the position: move the stop or "
                              "exit the position instead")  # fmt: skip
        if not tracked.order_id or tracked.state not in _AT_BROKER:
            raise BrokerError(f"order {order_id} is not working any more ({tracked.state.value})")
        t.ctx.gateway.cancel(tracked.order_id)  # raises when refused; a sliced order: every slice still open
        tracked.cancelling()
        if t.market_time is not None:
            t.ctx.risk.record_order(t.market_time)
        return tracked

    # -- patience -----------------------------------------------------------------------------------

    def cancel_overdue(self, now: datetime) -> None:
        """An entry or exit still working `ORDER_PATIENCE` after it was sent (or after the last cancel asked
        for) has the rest cancelled; its CANCELLED update then settles it (`on_order`). One that ended at the
        broker but whose fills have not all come has them asked for again."""
        t = self.t
        self.working = working = [o for o in self.working if not o.done]
        for tracked in working:
            since = tracked.cancel_asked_at or tracked.sent_at
            if since is None or now - since < ORDER_PATIENCE:
                continue
            tracked.cancel_asked_at = now
            if not tracked.order_id:
                self.give_up(tracked)
                continue
            if tracked.final:
                if any(f.order_id == tracked.order_id for f in self.unsaved_fills):
                    continue  # its fills came and wait for the store (`save_fills`): not asked for again
                t.log.warning(
                    "%s order %s ended %s with %d filled, but %d fills came: asking for them again",
                    tracked.role, tracked.order_id, tracked.status.value, tracked.broker_filled, tracked.filled,
                )  # fmt: skip
                t.ctx.gateway.report_fills(tracked.order_id)
                continue
            t.log.warning(
                "%s order %s still open after %d s (%d of %d filled): cancelling the rest",
                tracked.role, tracked.order_id, (now - tracked.sent_at).total_seconds() if tracked.sent_at else 0,
                tracked.filled, tracked.intent.quantity,
            )  # fmt: skip
            self.cancel(tracked)

    def give_up(self, tracked: TrackedOrder) -> None:
        """An unconfirmed order that no update ever showed: taken as not placed (the trader is told to check)."""
        t = self.t
        t.log.error(
            "%s order never showed in Kite's order updates after %d s: taken as not placed; check the order book "
            "in Kite",
            tracked.role, ORDER_PATIENCE.total_seconds(),
        )  # fmt: skip
        tracked.give_up("never confirmed by Kite")
        self.given_up.append(tracked)
        self._outcome(tracked, t.market_time or datetime.now())
        if tracked.role is OrderRole.ENTRY and t.market_time is not None:
            # Kite shows a given-up entry later only while this segment holds nothing else (one position a
            # segment: see `found`): no new entry until its book was read again one patience from now.
            self.lost_entry_until = t.market_time + ORDER_PATIENCE
            self.read_book("an entry given up")
        h = t.holding
        if tracked.role is OrderRole.STOP and h is not None and h.stop_order is tracked:
            t.protection.protect_rest()

    def read_book(self, why: str) -> None:
        """Kite's order book of the session read again: an order of ours whose updates were lost is reported now
        (as an update: `on_order`, then `found`). A failed read is said; the stream still brings later updates."""
        t = self.t
        try:
            t.ctx.gateway.reconcile()
        except BrokerError as e:
            t.log.warning("Kite's order book not read after %s: %s", why, e)

    def lost_entry_waits(self, now: datetime) -> bool:
        """An entry given up a moment ago may still show at Kite: True while no new entry may go. Once its patience
        has passed, the book is read again and entries go on (a later update still makes it ours: `found`)."""
        until = self.lost_entry_until
        if until is None:
            return False
        if now < until:
            return True
        self.lost_entry_until = None
        self.read_book("the wait for an entry given up")
        return False

    def open_entry(self) -> TrackedOrder | None:
        return next((o for o in self.working if o.role is OrderRole.ENTRY and not o.done), None)

    def open_exit(self) -> TrackedOrder | None:
        return next((o for o in self.working if o.role is OrderRole.EXIT and not o.done), None)

    # -- binding updates to orders --------------------------------------------------------------------

    def claim_slice(self, order: Order) -> TrackedOrder | None:
        """The unconfirmed slice of one of our sliced orders this update is about (see `bind`), or None."""
        t = self.t
        group_id = t.slices.claim(order)
        tracked = self.tracked.get(group_id) if group_id else None
        if tracked is not None:
            self.tracked[order.order_id] = tracked
            t.log.warning("a slice of order %s found in Kite's order updates: %s", group_id, order.order_id)
        return tracked

    def bind(self, order: Order) -> TrackedOrder | None:
        """The unconfirmed order of ours this update is about (same instrument, side and quantity), now
        known by its id; None if none."""
        for tracked in self.working:
            i = tracked.intent
            if (
                tracked.state is OrderState.UNCONFIRMED
                # not by order type: Kite lists a MARKET order with protection as a LIMIT
                and (order.tradingsymbol, order.side, order.quantity) == (i.tradingsymbol, i.side, i.quantity)
            ):
                tracked.bind(order.order_id)
                self.tracked[order.order_id] = tracked
                # A stop rests by design: no patience for it once Kite shows it.
                if tracked.role is OrderRole.STOP:
                    self.working.remove(tracked)
                self.t.log.warning(
                    "%s order %s found in Kite's order updates: it is ours", tracked.role, order.order_id
                )
                return tracked
        return None

    def found(self, order: Order) -> TrackedOrder | None:
        """The order given up (`give_up`) this update is about (same instrument, side and quantity: it carries
        the session's tag), at the broker after all; None if none. It is the session's own, whatever the order of
        events: an entry is ours again (its fills open the position, counted as the day's trade, under its stop at
        once), and one the session no longer wants (a kill, the trade cap, or another position held meanwhile)
        has its rest cancelled, and what it bought is still protected first, then sold. A stop or exit given up
        and shown later is cancelled (it was sent again since: two would sell twice); fills it had still count
        against the position it sells."""
        t = self.t
        tracked = next(
            (
                o
                for o in self.given_up
                if (order.tradingsymbol, order.side, order.quantity)
                == (o.intent.tradingsymbol, o.intent.side, o.intent.quantity)
            ),
            None,
        )
        if tracked is None:
            return None
        self.given_up.remove(tracked)
        role = tracked.role
        if role is OrderRole.ENTRY and (t.holding is not None or self.open_entry() is not None):
            # One position a segment: this order cannot be tracked beside it (see `Entries.filled`'s note).
            t.log.error(
                "entry order %s, given up as not placed, is at Kite after all while this segment holds or buys "
                "another position: cancelling it; anything it bought is NOT tracked or protected by KiteDesk: "
                "check the positions in Kite now",
                order.order_id,
            )  # fmt: skip
            t.journal("order_found_late", {"intent_id": tracked.intent.intent_id, "order_id": order.order_id,
                                           "role": role, "adopted": False})  # fmt: skip
            if not order.status.is_final:
                try:
                    t.ctx.gateway.cancel(order.order_id)
                except BrokerError as e:
                    t.log.error("entry order %s not cancelled: %s", order.order_id, e)
                else:
                    if t.market_time is not None:  # Kite counts a cancel as an order request
                        t.ctx.risk.record_order(t.market_time)
            return None
        tracked.found(order.order_id, t.market_time)
        self.tracked[order.order_id] = tracked
        t.journal("order_found_late", {"intent_id": tracked.intent.intent_id, "order_id": order.order_id,
                                       "role": role, "adopted": True})  # fmt: skip
        t.log.error(
            "%s order %s, given up as not placed, is at Kite after all (%s): it is this session's own, tracked "
            "again",
            role, order.order_id, order.status.value,
        )  # fmt: skip
        if role is not OrderRole.ENTRY:
            if not order.status.is_final:
                self.cancel(tracked)
            return tracked
        self.working.append(tracked)  # its patience starts again: the rest of a slow fill is cancelled
        refusal = "" if t.closing is not None else t.ctx.risk.late_entry_refusal(t.segment, t.market_time)
        if t.halted_entries or refusal:
            tracked.sell_when_filled = refusal or "the session takes no new entries"
            t.log.warning("the late entry order %s is not wanted (%s): its rest cancelled, anything it bought "
                          "protected and sold", order.order_id, tracked.sell_when_filled)  # fmt: skip
            if not order.status.is_final:
                self.cancel(tracked)
        return tracked

    # -- updates and fills ---------------------------------------------------------------------------------
    #
    # An order is settled when the broker says it ended (COMPLETE, CANCELLED, REJECTED) and its fills have come
    # up to the quantity it says filled, in whichever order the two arrive. Sales (exits, the stop) reduce the
    # position fill by fill, so a stop that sold part before it was cancelled still counts.

    def on_order(self, order: Order) -> None:
        """An order update of ours: stored, then acted on (a rejected entry frees the strategy)."""
        t = self.t
        tracked = (
            self.tracked.get(order.order_id)
            or self.claim_slice(order)
            or self.bind(order)
            or self.found(order)
        )
        if tracked is not None and not order.intent_id:
            order = replace(order, intent_id=tracked.intent.intent_id)
        t.ctx.write_later(partial(t.ctx.store.orders.record, order))
        self.order_rows[order.order_id] = order
        t.changed = True
        if order.filled_quantity:  # its fills, read on this thread (LIVE: a REST call; none when all came)
            t.ctx.gateway.report_fills(order.order_id)
            if t.mode is Mode.LIVE and not self.fills_maybe_owed:
                self.fills_maybe_owed, self.next_fills_ask = True, time.monotonic() + FILLS_ASK_EVERY
        if tracked is None or tracked.final:
            return
        order = t.slices.fold(order)  # a slice's update as its whole order's
        tracked.status = order.status
        if tracked.role is OrderRole.STOP:
            t.protection.on_update(tracked, order.status)
        if order.status.is_final:
            complete = order.status is OrderStatus.COMPLETE
            filled = (
                tracked.intent.quantity if complete else max(order.filled_quantity - tracked.filled_before, 0)
            )
            tracked.end(order.status, filled, order.status_message or order.status.value.lower())
            self._settle(tracked, order.timestamp or t.market_time)

    def on_fill(self, fill: Fill) -> None:
        """A fill: durable in the store first, then the position and the strategy learn of it."""
        if fill.fill_id in self.seen_fills or any(f.fill_id == fill.fill_id for f in self.unsaved_fills):
            return
        self.unsaved_fills.append(fill)
        self._act_on_entry_fills()  # before the store's write: a locked database holds it ~20 s
        self.save_fills()

    def save_fills(self) -> None:
        """Records the fills not durable yet, in the order they came (each write on a thread of its own, waited a
        second at most: `_record_fill`), each acted on once recorded. One the store refuses (disk full, database
        locked) waits, with those behind it, and is recorded on the next ticks: never dropped, so its P&L is
        counted once the store writes again. An entry's fill is acted on at once
        all the same, before its write (`_act_on_entry_fills`): the options it bought are at the broker and must
        not wait for the store with no stop-loss order (issue 16: never naked while the journal cannot be written;
        a locked database holds a write ~20 s, a full disk for as long as it lasts)."""
        while self.unsaved_fills:
            fill = self.unsaved_fills[0]
            try:
                self._record_fill(fill)
            except StoreWriteError as e:
                if self._unsaved_said != fill.fill_id:  # once per fill, not once per tick
                    self._unsaved_said = fill.fill_id
                    self.t.log.error("fill %s of order %s not recorded yet (%s): tried again on the next ticks",
                                     fill.fill_id, fill.order_id, e)  # fmt: skip
                return
            del self.unsaved_fills[0]
            if fill.fill_id in self._acted_unsaved:
                self._acted_unsaved.discard(fill.fill_id)  # acted on when it came: recorded now, nothing more
                continue
            self._on_recorded_fill(fill)

    def _record_fill(self, fill: Fill, wait: float = JOURNAL_WAIT) -> None:
        """`fill` made durable, waited `wait` real seconds at most (none when its write is already running: its end
        is looked at on the next ticks); raises StoreWriteError when it failed or still waits. A locked database
        holds a write ~20 s, which the agent must not wait: its orders' updates, a kill, the exchange's cancel of
        the stop are handled meanwhile. A write that lands late is harmless: a fill is saved once.
        With the store writer's leader (`TraderContext.commit_soon`) the write joins the next group commit, beside
        the entries' and sales' intents of the moment (issue 18: a thread started and a transaction of its own
        per fill, ~30 of them at a minute's close); else it runs on a thread of its own."""
        write = self._fill_write
        lead = self.t.ctx.commit_soon
        if (write is None or write.fill is not fill) and lead is not None:
            store = self.t.ctx.store
            write = FillWrite(fill)
            write.outcome = store.fills.queue(fill, then=write.done.set)
            lead(store.commit_waiting)
        elif write is None or write.fill is not fill:
            write = FillWrite(fill)
            store = self.t.ctx.store

            def run() -> None:
                try:
                    store.fills.record(fill)
                except BaseException as e:  # noqa: BLE001 - handed to the agent's thread, below
                    write.error = e
                finally:
                    write.done.set()

            write.thread = threading.Thread(
                target=run, name=f"kitedesk-fill-{self.t.segment.value}", daemon=True
            )
            write.thread.start()
        elif not write.done.is_set():
            wait = 0.0
        if not write.done.wait(wait):
            self._fill_write = write
            raise StoreLockedError(
                f"the fill was not saved within {JOURNAL_WAIT:g} s: the database is busy or locked"
            )
        self._fill_write = None
        if write.outcome is not None:  # committed (or failed): returns at once, or raises the store's error
            write.outcome()
            return
        assert write.thread is not None
        write.thread.join()
        if write.error is not None:
            raise write.error

    def unrecorded_sales(self, h: Holding) -> int:
        """What our own sales of `h` (its stop, an exit) sold in fills that wait for the store: not off the position
        here yet, though the broker's positions show them gone (`OutsideClose.check` must not take them for a sale
        outside KiteDesk)."""
        sold = 0
        for f in self.unsaved_fills:
            tracked = self.tracked.get(f.order_id)
            if tracked is not None and tracked.role is not OrderRole.ENTRY and tracked.sells is h:
                sold += f.quantity
        return sold

    def _act_on_entry_fills(self) -> None:
        """The entries' fills at the head of those waiting for the store, acted on now (in order, each once), before
        they are recorded: the position opened and its stop placed (sent even while the journal cannot be written).
        The broker holds what they bought whatever the store does, and a LIVE restart adopts it from the broker's
        orders of the session's tag. A sale's fill, and any behind it, waits to be recorded: its sale did its work,
        and nothing more is sent while it waits."""
        for fill in self.unsaved_fills:
            if fill.fill_id in self._acted_unsaved:
                continue
            tracked = self.tracked.get(fill.order_id)
            if tracked is None or tracked.role is not OrderRole.ENTRY:
                return
            self._acted_unsaved.add(fill.fill_id)
            self._on_recorded_fill(fill)

    def _on_recorded_fill(self, fill: Fill) -> None:
        t = self.t
        self.seen_fills.add(fill.fill_id)
        self.fill_rows.append(fill)
        t.changed = True
        tracked = self.tracked.get(fill.order_id)
        if tracked is None:
            # Never a fill of our own unconfirmed order (reply lost, no id yet) arriving before its first update:
            # LIVE reads an order's fills only when an update of it has come (`report_fills`, called by this
            # thread once `on_order` bound it), and PAPER (the replay too) never loses a reply: its `place`
            # returns the order's id, and an order's update is emitted before its fill.
            t.log.warning("fill %s of an order this run did not place (%s)", fill.fill_id, fill.order_id)
            return
        tracked.fill(fill.quantity, fill.price)
        if tracked.role is not OrderRole.ENTRY:
            t.keeper.sold(tracked, fill)
        self._settle(tracked, fill.timestamp)

    def _settle(self, tracked: TrackedOrder, t: datetime | None) -> None:
        """Acts on an order once all of it is known: filled in full, or ended with all its fills in."""
        if tracked.done or not tracked.complete:
            return
        tracked.settle()
        self._outcome(tracked, t or self.t.market_time or datetime.now())

    def _outcome(self, tracked: TrackedOrder, t: datetime) -> None:
        """What a settled (or given up) order means: an entry's position, or a failed entry; an exit or stop that
        ended with the position still held leaves the rest protected again."""
        trader = self.t
        h = trader.holding
        if tracked.role is OrderRole.ENTRY:
            if tracked.filled:
                trader.entries.filled(tracked, rupees(tracked.value / tracked.filled), t)
                return
            trader.log.warning("entry order %s %s: %s", tracked.order_id, tracked.status.value, tracked.why)
            trader.ctx.risk.on_entry_failed(trader.segment)
            trader.strategy.on_entry_rejected(tracked.why)
        elif h is None or tracked.sells is not h:
            return  # the sale closed its position (`HoldingKeeper.sold`), or it was let go: none of the one held
        elif tracked.role is OrderRole.EXIT:
            if tracked.filled:
                trader.log.warning(
                    "%s exit order %s ended with %d of %d sold: %d %s still held",
                    h.exit_reason or tracked.intent.reason, tracked.order_id, tracked.filled, tracked.intent.quantity,
                    h.quantity, h.tradingsymbol,
                )  # fmt: skip
                trader.journal("exit_partial", {"order_id": tracked.order_id, "symbol": h.tradingsymbol,
                                                "sold": tracked.filled, "held": h.quantity})  # fmt: skip
            else:
                trader.log.error("exit order %s %s: %s", tracked.order_id, tracked.status.value, tracked.why)
            trader.strategy.on_exit_rejected(tracked.why)
            trader.protection.protect_rest()
            trader.exit_failed(t)
        elif not tracked.cancelled_by_us:  # the broker ended our stop with the position still held
            trader.log.warning(
                "stop-loss order %s %s with %d of %d sold (%s): %d %s still held",
                tracked.order_id, tracked.status.value, tracked.filled, tracked.intent.quantity, tracked.why,
                h.quantity, h.tradingsymbol,
            )  # fmt: skip
            if h.stop_order is tracked:
                trader.protection.on_ended(tracked)

    # -- recovery ----------------------------------------------------------------------------------------

    def show_earlier(self, fills: list[Fill], orders: list[Order]) -> None:
        """The day's fills and orders of this segment from the session's earlier runs, shown before this run's
        (the fills' P&L is already counted: they are known, never acted on again)."""
        self.fill_rows[:0] = fills
        for o in orders:
            self.order_rows.setdefault(o.order_id, o)
        self.t.changed = True

    def fills_owed(self) -> list[str]:
        """LIVE: the orders of ours whose last report shows more filled than the fills that reached this segment
        (recorded, or waiting to be): Kite's trade list lagged the update, or could not be read (an expired login, a
        dropped connection). Their fills are owed: a session that stops owing one is taken over by its next start,
        whose recovery reads them (a chaos soak saw a stop's trade read by no start, never in the session's fills)."""
        if self.t.mode is not Mode.LIVE:
            return []
        have: dict[str, int] = {}
        # An entry's fill acted on before it was recorded is in `fill_rows` already: counted once.
        waiting = [f for f in self.unsaved_fills if f.fill_id not in self._acted_unsaved]
        for f in (*self.fill_rows, *waiting):
            have[f.order_id] = have.get(f.order_id, 0) + f.quantity
        return [oid for oid, o in self.order_rows.items() if o.filled_quantity > have.get(oid, 0)]

    def fills_ask_due(self) -> bool:
        """Fills may be owed and it is time to look (cheap: the dispatcher asks it on every tick)."""
        return self.fills_maybe_owed and time.monotonic() >= self.next_fills_ask

    def ask_owed_fills(self) -> None:
        """LIVE: the fills owed (`fills_owed`) asked for again, with a growing pause while any are: an order that
        ended while no process ran is not followed by any update, so a read of its trades that failed at the start
        (an expired login, a dropped connection) is otherwise never made again in this run."""
        if not self.fills_ask_due():
            return
        owed = self.fills_owed()
        self.fills_maybe_owed = bool(owed)
        self.next_fills_ask = time.monotonic() + self._fills_ask_pause
        self._fills_ask_pause = min(self._fills_ask_pause * 2, FILLS_ASK_MAX) if owed else FILLS_ASK_EVERY
        for order_id in owed:
            self.t.ctx.gateway.report_fills(order_id)

    def know_fills(self, fill_ids: set[str]) -> None:
        """Fills recorded by earlier runs: never acted on again."""
        self.seen_fills |= fill_ids

    def sent_this_run(self) -> set[str]:
        """The ids of the orders this run sent (not adopted)."""
        return {oid for oid, tracked in self.tracked.items() if tracked.sent_at is not None}


def sent_note(sent: TrackedOrder | None) -> str:
    """How a send went, for the log line."""
    if sent is None:
        return "not placed"
    return f"order {sent.order_id} sent" if sent.order_id else "unconfirmed by Kite (watching for it)"
