"""A segment's entries: the strategy's `EnterPosition` made into an order of the right option, through risk.

`ready` resolves the in-the-money option, the quantity and the intent and asks risk (on the account's dispatcher
a check that would ask the broker for a price is left to the agent); `send` checks the segment's own order
state again (the dispatcher may have decided on a view a tick old), journals the intent durably and sends the
order; `filled` opens the position and has its stop placed at once. What risk refused last is kept for the
panel (`risk_note`), and the bench's latency probes are told of each entry (`observer`, probes.py).
Runs as its trader's helper on whichever thread runs the trader (trader.py): `ready` also on the dispatcher.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from desktop.broker.errors import BrokerError
from desktop.domain import Mode, OptionRight, OrderRole, Side
from desktop.engine.decisions import ReadyEntry
from desktop.engine.orders import JOURNAL_WAIT, ORDER_PATIENCE, TrackedOrder, sent_note
from desktop.engine.params import order_quantity
from desktop.engine.probes import EntryObserver

if TYPE_CHECKING:
    from desktop.engine.strategy.base import EnterPosition
    from desktop.engine.trader import SegmentTrader


# Options one segment watches for risk's margin check (`watch_candidates`), at most: 32 strikes' call and put. They stay
# watched for the run, and Kite takes 3000 instruments a connection for every session of the account (their watch
# lists, the options they hold: an option bought past the cap would get no ticks). A day's index visits a few dozen
# strikes at most; past the bound an entry's margin check asks Kite's quote, as before the options were watched.
MAX_WATCHED_CANDIDATES = 64


class Entries:
    """The entry path of one segment (its trader's helper, same thread)."""

    def __init__(self, trader: SegmentTrader) -> None:
        self.t = trader
        self.risk_note: tuple[date, str] | None = None  # (market day, why) of the last entry risk refused
        self.observer: EntryObserver | None = None  # latency probes (bench); None in the app
        # The index prices for which the options an entry would buy are watched already (`watch_candidates`).
        self._watched_band: tuple[Decimal, Decimal] | None = None
        # Every (strike, day) whose options were watched: watched for the run, never asked again (`watch_candidates`).
        self._watched_strikes: set[tuple[Decimal, date]] = set()
        self._watched_tokens: set[int] = set()  # their options, MAX_WATCHED_CANDIDATES at most
        self._watched_full = False  # the bound reached (said once)

    def enter(self, action: EnterPosition) -> None:
        """An entry decided and sent on this thread (the agent handling its ticks itself)."""
        ready = self.ready(action)
        if ready is not None:
            self.send(ready)

    def watch_candidates(self) -> None:
        """LIVE, while risk checks margins: the options an entry would buy at the index price now (the call and the
        put at the ITM offset) are watched by the session's feed, so the margin check reads their price as streamed
        (`RiskManager.set_price_source`) and an entry is checked on the dispatcher, not after a REST quote under
        Kite's one quote a second per account (issue 18: 30 segments on 4 accounts deciding on one tick waited
        seconds for it). Cheap when the index stays within the strike already watched (every batch calls it)."""
        t = self.t
        price, band = t.index_price, self._watched_band
        if band is not None and price is not None and band[0] <= price < band[1]:
            return
        if t.mode is not Mode.LIVE or price is None or t.book is None or t.market_time is None:
            return
        if not t.ctx.risk.checks_margin:
            return
        step = Decimal(t.segment.spec.strike_step)
        atm = (price / step).quantize(Decimal(1), rounding=ROUND_HALF_UP) * step
        self._watched_band = (atm - step / 2, atm + step / 2)
        seen = (atm, t.market_time.date())
        if seen in self._watched_strikes:
            return  # back to a strike watched already (an index swinging across a half-strike): no resync
        self._watched_strikes.add(seen)
        tokens = []
        for right in (OptionRight.CE, OptionRight.PE):
            try:
                contract = t.book.resolve_itm_option(t.segment, price, right, t.offset, t.market_time.date())
            except (BrokerError, ValueError):
                continue  # said when an entry asks for it
            if contract.instrument_token not in self._watched_tokens:
                tokens.append(contract.instrument_token)
        if len(self._watched_tokens) + len(tokens) > MAX_WATCHED_CANDIDATES:
            if tokens and not self._watched_full:
                self._watched_full = True
                t.log.warning(
                    "no more options are watched for the margin check: this segment watches %d already (Kite "
                    "takes 3000 instruments a connection); an entry's margin is checked with Kite's quote instead",
                    len(self._watched_tokens),
                )
            return
        if tokens:
            self._watched_tokens.update(tokens)
            t.ctx.watch_prices(tokens)

    def ready(self, action: EnterPosition, on_dispatcher: bool = False) -> ReadyEntry | None:
        """The entry up to its risk check: the option, the quantity, the intent; None when refused (said, and the
        strategy told). `on_dispatcher`: a check that would ask the broker for a price is left to the agent."""
        t = self.t
        now = t.market_time
        assert now is not None and t.book is not None
        if t.halted_entries or t.holding is not None or t.orders.open_entry() is not None:
            t.strategy.on_entry_rejected("an entry or position is already on its way")
            return None
        if t.orders.lost_entry_until is not None and (on_dispatcher or t.orders.lost_entry_waits(now)):
            # (the dispatcher never reads Kite's book: the agent does, on its next ticks: `after_ticks`)
            t.log.info("entry skipped: the entry given up at %s may still be at Kite (Kite's order book is read "
                       "again at %s)", (t.orders.lost_entry_until - ORDER_PATIENCE).strftime("%H:%M:%S"),
                       t.orders.lost_entry_until.strftime("%H:%M:%S"))  # fmt: skip
            t.strategy.on_entry_rejected("an entry given up may still be at Kite")
            return None
        # The account's dispatcher never waits for the store (the feed's thread: every segment behind it).
        if not t.orders.journal_back(now, wait=0.0 if on_dispatcher else JOURNAL_WAIT):
            t.strategy.on_entry_rejected("the journal cannot be written")
            return None
        if t.index_price is None:
            t.strategy.on_entry_rejected("no index price yet")
            return None
        try:
            contract = t.book.resolve_itm_option(t.segment, t.index_price, action.right, t.offset, now.date())
            qty = order_quantity(t.ctx.params.lots, contract.lot_size)
        except (BrokerError, ValueError) as e:
            t.log.warning("entry skipped: %s", e)
            t.strategy.on_entry_rejected(str(e))
            return None
        intent = t.intent(contract.exchange, contract.tradingsymbol, Side.BUY, qty, "entry", OrderRole.ENTRY)
        ready = ReadyEntry(action, contract, intent, checked=False)
        if on_dispatcher and t.ctx.risk.asks_price(intent, now):
            return ready  # the margin check asks Kite for the option's price: on the agent's thread
        return ready if self.risk_check(ready, ask=not on_dispatcher) else None

    def risk_check(self, ready: ReadyEntry, ask: bool = True) -> bool:
        """Risk's check of the entry (it counts the order when passed); a refusal is said once and noted. `ask`
        False: never a network call (the dispatcher)."""
        t = self.t
        now = t.market_time
        assert now is not None
        decision = t.ctx.risk.check(ready.intent, now, ask)
        if not decision:
            # One line a refusal, and the panel's note until an entry passes again (a limit hit in silence
            # left the trader guessing why nothing traded).
            t.log.info("entry refused by risk: %s", decision.reason)
            self.risk_note = (now.date(), decision.reason)
            t.strategy.on_entry_rejected(decision.reason)
            return False
        self.risk_note = None
        ready.checked = True
        if self.observer is not None:
            self.observer.entry_decided(t.batch_posted, t.batch_handed, t.batch_picked)
        return True

    def send(self, ready: ReadyEntry) -> None:
        """Sends an entry made ready by `ready` (here or on the dispatcher): the segment's own order state is
        checked again first, as the dispatcher may have decided on a view a tick old; a second entry is never
        sent because of that."""
        try:
            self._send(ready)
        finally:
            if ready.sent is not None:  # its frame's other work (the background notes) may go now
                ready.sent()

    def _send(self, ready: ReadyEntry) -> None:
        t = self.t
        now = t.market_time
        assert now is not None
        if t.holding is not None or t.orders.open_entry() is not None:
            # Risk counted it (the dispatcher's check) only if it saw the segment free: an entry of ours is on its
            # way or held, and risk's count of it must stay.
            t.log.warning(
                "an entry decided on a view a tick old is not sent: an entry or position is on its way"
            )
            t.strategy.on_entry_rejected("an entry or position is already on its way")
            return
        if t.halted_entries:
            if ready.checked:
                t.ctx.risk.on_entry_failed(t.segment)
            t.strategy.on_entry_rejected("an entry or position is already on its way")
            return
        if not ready.checked and not self.risk_check(ready):
            return
        action, contract, intent, qty = ready.action, ready.contract, ready.intent, ready.intent.quantity
        t.keeper.contract = contract
        # The order goes out first (its intent journaled durably before): the note, the log line and the option's
        # subscription come after, holding up neither it nor the other agents deciding on the same tick.
        sent = t.orders.send(intent, commit=ready.commit)
        if ready.sent is not None:
            ready.sent()  # sent: its frame's other work may go now
            ready.sent = None
        if sent and self.observer is not None:
            self.observer.entry_sent(t.batch_posted)
        t.journal(
            "entry_sent",
            {"intent_id": intent.intent_id, "symbol": contract.tradingsymbol, "qty": qty, "lot_size": contract.lot_size,
             "spot": str(t.index_price), "strike": str(contract.strike), "right": action.right.value,
             "itm_offset": t.offset, "reason": action.reason, "placed": bool(sent)},
        )  # fmt: skip
        t.log.info("Entry signal (%s): BUY %d %s (spot %s, strike %s, ITM offset %d): %s", action.reason, qty,
                   contract.tradingsymbol, t.index_price, contract.strike, t.offset, sent_note(sent))  # fmt: skip
        if not sent:
            t.ctx.risk.on_entry_failed(t.segment)
            t.strategy.on_entry_rejected("the entry order failed")
            return
        t.ctx.watch_option(contract.instrument_token, t.segment)
        if t.index_price is not None:
            t.chart.mark(now, t.index_price, "entry", f"BUY {contract.tradingsymbol}")

    def filled(self, tracked: TrackedOrder, price: Decimal, at: datetime) -> None:
        """The entry settled with fills: the position, its stop at once (LIVE at Kite, PAPER at the paper gateway:
        one protection path), and sold at once when a kill or square-off came first."""
        t, i = self.t, tracked.intent
        t.keeper.open(i.exchange, i.tradingsymbol, tracked.filled, price, at, tracked.value)
        t.keeper.save(at)
        stop = t.strategy.position.stop if t.strategy.position else None
        t.log.info("Entry filled: %d %s at %s, stop %s", tracked.filled, i.tradingsymbol, price, stop)
        t.journal("entry_filled", {"symbol": i.tradingsymbol, "qty": tracked.filled, "price": str(price),
                                   "stop": str(stop)})  # fmt: skip
        t.protection.place(stop)  # protected first, whatever follows
        if t.closing is not None:
            t.log.warning("the entry filled after its cancel (%s): selling it", t.closing.reason)
            t.exit(t.closing.reason)
        elif tracked.sell_when_filled:  # an entry found at Kite after it was given up, no longer wanted
            t.log.warning("the late entry filled (%s): selling it", tracked.sell_when_filled)
            t.exit("late_entry")
