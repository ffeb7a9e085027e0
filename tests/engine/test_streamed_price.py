"""LIVE margin check from the option's price as the feed streams it (issue 18): no REST quote per entry (Kite takes
one quote a second per account) when the feed holds a fresh price, so the entry is checked on the dispatcher; the
quote is asked only when it does not, and never on the dispatcher."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from desktop.domain import Mode, OptionRight, OrderIntent
from desktop.engine.decisions import ReadyEntry
from desktop.engine.strategy.base import EnterPosition
from tests.engine.traders import T0

asked: list[str] = []  # the symbols whose quote was asked


def _quote(intent: OrderIntent) -> Decimal | None:
    asked.append(intent.tradingsymbol)  # a REST call in the app
    return Decimal("300")


def test_a_fresh_streamed_price_checks_the_margin_without_asking_kite_and_a_missing_one_asks(make) -> None:
    trader, _, _ = make(Mode.LIVE)
    risk = trader.ctx.risk
    streamed: dict[str, Decimal] = {}
    risk.set_price_source(_quote, lambda intent, now: streamed.get(intent.tradingsymbol))
    risk.set_funds(Decimal("30000"))  # 195 units (3 lots of 65): up to ₹153.84 a unit
    asked.clear()
    ready = trader.entries.ready(EnterPosition(OptionRight.CE, "test"), on_dispatcher=True)
    assert isinstance(ready, ReadyEntry) and not ready.checked, "no streamed price: left to the agent's quote"
    assert asked == []
    symbol = ready.intent.tradingsymbol
    streamed[symbol] = Decimal("150")
    assert not risk.asks_price(ready.intent, T0)
    assert risk.check(ready.intent, T0, ask=False), "₹29,250 of ₹30,000: allowed, on the streamed price"
    risk.on_entry_failed(trader.segment)
    streamed[symbol] = Decimal("160")
    refused = risk.check(ready.intent, T0, ask=False)
    assert not refused and "not enough funds" in refused.reason, "₹31,200: refused on the streamed price"
    assert asked == [], "the streamed price was enough: Kite never asked"
    del streamed[symbol]
    assert risk.asks_price(ready.intent, T0)
    assert not risk.check(ready.intent, T0), "no streamed price: Kite's quote (₹300) decides"
    assert asked == [symbol]
    assert risk.check(ready.intent, T0, ask=False), (
        "the dispatcher never asks: unchecked margin, the broker's RMS"
    )
    assert asked == [symbol]


def test_the_options_an_entry_would_buy_are_watched_ahead_and_again_when_the_index_crosses_a_strike(
    make,
) -> None:
    trader, _, _ = make(Mode.LIVE)
    watched: list[list[int]] = []
    trader.ctx.watch_prices = watched.append
    trader.entries.watch_candidates()
    assert watched == [], "funds unknown: no margin check, nothing to watch"
    trader.ctx.risk.set_funds(Decimal("100000"))
    trader.entries.watch_candidates()
    assert len(watched) == 1 and len(watched[0]) == 2  # the call and the put at the ITM offset
    book, at = trader.book, trader.market_time
    assert book is not None and isinstance(at, datetime)
    ce = book.resolve_itm_option(trader.segment, trader.index_price, OptionRight.CE, trader.offset, at.date())
    pe = book.resolve_itm_option(trader.segment, trader.index_price, OptionRight.PE, trader.offset, at.date())
    assert watched[0] == [ce.instrument_token, pe.instrument_token]
    trader.index_price = Decimal("25020")  # the same strike (25012.40 and 25020 both round to 25000)
    trader.entries.watch_candidates()
    assert len(watched) == 1
    trader.index_price = Decimal("25080")  # the next strike: the next options
    trader.entries.watch_candidates()
    assert len(watched) == 2 and watched[1] != watched[0]


def test_a_paper_segment_watches_nothing_for_the_margin_check(make) -> None:
    trader, _, _ = make(Mode.PAPER)
    watched: list[list[int]] = []
    trader.ctx.watch_prices = watched.append
    trader.ctx.risk.set_funds(Decimal("100000"))
    trader.entries.watch_candidates()
    assert watched == []


def test_an_index_swinging_across_a_strikes_edge_watches_each_strike_once(make) -> None:
    # Each watch is a resync of the account's feed (every stream's subscriptions read under their locks, a task on the
    # feed's loop) on the dispatcher's thread. An index jittering around the half-strike between two bands crossed
    # it on nearly every tick: a resync a tick, per segment, for options watched already.
    trader, _, _ = make(Mode.LIVE)
    watched: list[list[int]] = []
    trader.ctx.watch_prices = watched.append
    trader.ctx.risk.set_funds(Decimal("100000"))
    for n in range(20):
        trader.index_price = Decimal("25024.95") if n % 2 else Decimal("25025.05")  # 25000 / 25050 bands
        trader.entries.watch_candidates()
    assert len(watched) == 2 and watched[0] != watched[1], watched


def test_the_options_watched_for_the_margin_check_stay_few_whatever_the_index_does(make) -> None:
    # Watched options are never unwatched, and Kite takes 3000 instruments a connection for every session of the
    # account (a watch list, the options held): past it, an option bought later would get no ticks. An index that
    # runs across many strikes (a wild day, days on end in one run) stops adding candidates at a bound; their
    # margin check asks Kite's quote instead, said once.
    from desktop.engine.entries import MAX_WATCHED_CANDIDATES

    trader, _, _ = make(Mode.LIVE)
    watched: list[int] = []
    trader.ctx.watch_prices = watched.extend
    trader.ctx.risk.set_funds(Decimal("100000"))
    for strike in range(20300, 26800, 50):  # 130 strikes of the test's book
        trader.index_price = Decimal(strike)
        trader.entries.watch_candidates()
    assert 0 < len(watched) <= MAX_WATCHED_CANDIDATES == 64, len(watched)
    assert len(set(watched)) == len(watched)
    text = trader.log.path.read_text(encoding="utf-8")
    assert text.count("no more options are watched for the margin check") == 1


def test_the_feeds_price_is_used_only_when_the_exchange_stamped_it_near_the_entrys_tick_and_it_is_a_price() -> (
    None
):
    # `SessionEngine._streamed_price` against what a feed may hold for the option: stale (its packets stopped), ahead
    # of the entry's tick, without the exchange's time (a quote-mode packet), a zero price, or no packet at all.
    from datetime import timedelta
    from types import SimpleNamespace

    from desktop.broker.ticks import MODE_FULL, QuoteTick
    from desktop.domain import Segment, Side
    from desktop.engine.session import PRICE_FRESH, SessionEngine

    held: dict[int, QuoteTick] = {}
    engine = SimpleNamespace(
        _stream=SimpleNamespace(last_tick=held.get),
        _token_of=lambda exchange, symbol: 7 if (exchange, symbol) == ("NFO", "NIFTY2611324850CE") else None,
    )
    intent = OrderIntent(
        None, Segment.NIFTY, Mode.LIVE, "NFO", "NIFTY2611324850CE", Side.BUY, 195, reason="entry"
    )
    other = OrderIntent(
        None, Segment.NIFTY, Mode.LIVE, "NFO", "NIFTY2611324900CE", Side.BUY, 195, reason="entry"
    )

    def price(last: str, stamped: datetime | None, of: OrderIntent = intent) -> Decimal | None:
        held[7] = QuoteTick(7, MODE_FULL, True, Decimal(last), exchange_timestamp=stamped)
        return SessionEngine._streamed_price(engine, of, T0)  # type: ignore[arg-type]

    assert price("201.5", T0 - timedelta(seconds=1)) == Decimal("201.5")
    assert price("201.5", T0 - PRICE_FRESH) == Decimal("201.5")
    assert price("201.5", T0 - PRICE_FRESH - timedelta(seconds=1)) is None, "stale: Kite's quote"
    assert price("201.5", T0 + PRICE_FRESH + timedelta(seconds=1)) is None, (
        "stamped ahead of the market clock"
    )
    assert price("201.5", None) is None, "no exchange time: not known fresh"
    assert price("0", T0) is None and price("-1", T0) is None, "not a price"
    assert price("201.5", T0, other) is None, "another option's price is never taken for this one's"
    held.clear()
    assert SessionEngine._streamed_price(engine, intent, T0) is None  # type: ignore[arg-type]
