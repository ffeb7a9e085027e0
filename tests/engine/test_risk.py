"""Risk refuses new risk (daily loss, order rate, open positions, halt) and never refuses an exit."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from desktop.domain import Mode, OrderIntent, OrderRole, Segment, SessionKey, Side
from desktop.engine.risk import GlobalKillSwitch, RiskManager

from .builders import at, make_params

KEY = SessionKey("UK9394", "s1")


def intent(reason: str, segment: Segment = Segment.NIFTY) -> OrderIntent:
    """An entry, or an exit worded `reason` (the role is what risk reads)."""
    role = OrderRole.ENTRY if reason == "entry" else OrderRole.EXIT
    side = Side.BUY if role is OrderRole.ENTRY else Side.SELL
    return OrderIntent(
        KEY, segment, Mode.PAPER, "NFO", "NIFTY2611325000CE", side, 65, reason=reason, role=role
    )


def risk(**params) -> RiskManager:
    return RiskManager(make_params(segments=["NIFTY", "BANKNIFTY"], **params))


def test_halted_session_refuses_entries_but_allows_every_exit():
    r = risk()
    r.kill("trader pressed kill")
    refused = r.check(intent("entry"), at(10, 0))
    assert not refused and refused.reason == "session halted (trader pressed kill): only exits are allowed"
    for reason in ("stop_loss", "target", "trailing_stop", "signal_exit", "square_off", "kill"):
        assert r.check(intent(reason), at(10, 0)).allowed
    r.resume()
    assert r.check(intent("entry"), at(10, 1)).allowed


def test_order_rate_refuses_entries_past_the_limit_within_a_market_minute_but_never_exits():
    r = risk(max_orders_per_minute=3, max_open_positions=2)
    assert r.check(intent("entry", Segment.NIFTY), at(10, 0, 0)).allowed
    assert r.check(intent("stop_loss"), at(10, 0, 10)).allowed
    r.record_order(at(10, 0, 20))  # an SL modification counts too
    refused = r.check(intent("entry", Segment.BANKNIFTY), at(10, 0, 30))
    assert refused.reason == "max orders per minute (3) reached"
    assert r.check(intent("square_off"), at(10, 0, 40)).allowed  # over the limit, still allowed
    # Orders at 10:00:00, :10, :20 and :40 fill the window; each leaves it 60 s of market time later.
    assert not r.check(intent("entry", Segment.BANKNIFTY), at(10, 1, 0))  # :10, :20, :40 still inside
    assert not r.check(intent("entry", Segment.BANKNIFTY), at(10, 1, 9))
    assert r.check(intent("entry", Segment.BANKNIFTY), at(10, 1, 10)).allowed  # :10 left: room for one


def test_max_open_positions_counts_open_and_pending_entries():
    r = risk(max_open_positions=1)
    assert r.check(intent("entry", Segment.NIFTY), at(10, 0)).allowed
    assert (
        r.check(intent("entry", Segment.BANKNIFTY), at(10, 0, 1)).reason == "max open positions (1) reached"
    )
    r.on_entry_filled(Segment.NIFTY)
    assert not r.check(intent("entry", Segment.BANKNIFTY), at(10, 1))
    r.on_position_closed(Segment.NIFTY)
    assert r.check(intent("entry", Segment.BANKNIFTY), at(10, 2)).allowed
    assert r.open_positions == 1


def test_a_segment_cannot_enter_twice():
    r = risk(max_open_positions=2)
    assert r.check(intent("entry", Segment.NIFTY), at(10, 0)).allowed
    refused = r.check(intent("entry", Segment.NIFTY), at(10, 0, 5))
    assert refused.reason == "NIFTY already has a position or an entry on its way"


def test_daily_loss_from_realised_plus_unrealised_stops_entries_for_the_day():
    r = risk(max_daily_loss=5000)
    r.update_pnl(Segment.NIFTY, Decimal("-3000"), Decimal(0), at(10, 0))
    r.update_pnl(Segment.BANKNIFTY, Decimal(0), Decimal("-1999.99"), at(10, 0))
    assert r.check(intent("entry"), at(10, 1)).allowed
    r.on_entry_failed(Segment.NIFTY)
    r.update_pnl(Segment.BANKNIFTY, Decimal(0), Decimal("-2000"), at(10, 2))
    assert r.daily_pnl == Decimal("-5000.00") and r.loss_limit_breached
    refused = r.check(intent("entry"), at(10, 3))
    assert (
        refused.reason == "max daily loss ₹5,000.00 reached (at 10:02, P&L −₹5,000.00): no new entries today"
    )
    assert r.check(intent("stop_loss", Segment.BANKNIFTY), at(10, 3)).allowed
    # Unrealised recovering does not re-open the day; the next market day does.
    r.update_pnl(Segment.BANKNIFTY, Decimal(0), Decimal("500"), at(10, 4))
    later = r.check(intent("entry"), at(10, 5))
    assert later.reason == (
        "max daily loss ₹5,000.00 reached (at 10:02, P&L −₹5,000.00; −₹2,500.00 now): no new entries today"
    )
    assert not r.check(intent("entry"), at(10, 5))
    assert r.check(intent("entry"), at(10, 5) + timedelta(days=1)).allowed


def test_an_intent_that_does_not_say_its_role_is_checked_as_an_entry_whatever_its_reason():
    r = risk()
    r.kill()
    unsaid = OrderIntent(
        KEY, Segment.NIFTY, Mode.PAPER, "NFO", "NIFTY2611325000CE", Side.SELL, 65, reason="kill"
    )
    assert unsaid.role is OrderRole.ENTRY and not r.check(unsaid, at(10, 0))


def test_global_kill_switch_halts_every_subscribed_session_even_if_one_callback_fails():
    switch = GlobalKillSwitch()
    a, b = risk(), risk()
    a.attach(switch)

    def broken(reason: str) -> None:
        raise RuntimeError("boom")

    switch.subscribe(broken)
    b.attach(switch)
    errors = switch.trigger("market crash")
    assert len(errors) == 1
    assert a.halted and b.halted and a.halt_reason == "market crash"
    assert a.check(intent("square_off"), at(10, 0)).allowed


def test_session_attaching_after_the_global_kill_starts_halted_and_detached_ones_are_spared():
    switch = GlobalKillSwitch()
    left = risk()
    left.attach(switch)
    left.detach()
    switch.trigger("stop all")
    late = risk()
    late.attach(switch)
    assert late.halted and not left.halted
    switch.reset()
    fresh = risk()
    fresh.attach(switch)
    assert not fresh.halted and late.halted  # re-arming does not resume anyone by itself


def test_the_trade_cap_refuses_a_segments_entries_after_its_filled_trades_of_the_day_until_the_next_day():
    r = risk(max_trades_per_day=2, max_open_positions=2)
    for minute in (0, 10):
        assert r.check(intent("entry"), at(10, minute)).allowed
        r.on_entry_filled(Segment.NIFTY)
        r.on_position_closed(Segment.NIFTY)
    refused = r.check(intent("entry"), at(10, 20))
    assert not refused and refused.reason == "trade cap 2 reached, no more entries today"
    assert r.trades_today(Segment.NIFTY) == 2
    assert r.check(intent("entry", Segment.BANKNIFTY), at(10, 20)).allowed  # the cap is per segment
    assert r.check(intent("entry"), at(10, 0) + timedelta(days=1)).allowed
    assert r.trades_today(Segment.NIFTY) == 0


def test_a_restored_day_keeps_the_trade_cap_and_the_order_rate_of_the_earlier_run():
    r = risk(max_trades_per_day=1, max_orders_per_minute=3, max_open_positions=2)
    sent = [at(10, 0, 5), at(10, 0, 20), at(10, 0, 40), at(9, 50)]  # the last one left the window long ago
    r.restore_day(Segment.NIFTY, 1, sent, at(10, 0, 50))
    assert r.check(intent("entry"), at(10, 0, 50)).reason == "trade cap 1 reached, no more entries today"
    refused = r.check(intent("entry", Segment.BANKNIFTY), at(10, 0, 50))
    assert refused.reason == "max orders per minute (3) reached"
    assert r.check(intent("entry", Segment.BANKNIFTY), at(10, 1, 5)).allowed  # 10:00:05 left the window


def test_reaching_the_daily_loss_limit_is_told_once_so_the_session_can_journal_it():
    told: list[tuple[str, object]] = []
    r = RiskManager(
        make_params(max_daily_loss=1000), on_loss_limit=lambda note, now: told.append((note, now))
    )
    r.update_pnl(Segment.NIFTY, Decimal(0), Decimal("-1000"), at(10, 2))
    r.update_pnl(Segment.NIFTY, Decimal(0), Decimal("-1500"), at(10, 3))
    assert not r.check(intent("entry"), at(10, 4))
    assert told == [("at 10:02, P&L −₹1,000.00", at(10, 2))]


def test_an_option_buy_needing_more_than_the_available_funds_is_refused_with_the_amounts():
    r = risk(max_orders_per_minute=50)
    prices = {"NIFTY2611325000CE": Decimal("150.50")}
    r.set_price_source(lambda i: prices.get(i.tradingsymbol))
    # Funds not known yet (or PAPER): no margin check.
    assert r.check(intent("entry"), at(10, 0)).allowed
    r.on_entry_failed(Segment.NIFTY)
    r.set_funds(Decimal("9000"))  # 150.50 × 65 = 9,782.50 needed
    refused = r.check(intent("entry"), at(10, 1))
    assert not refused
    assert refused.reason == "not enough funds: the entry needs ₹9,782.50, ₹9,000.00 available"
    # An exit is never refused for funds.
    assert r.check(intent("stop_loss"), at(10, 1)).allowed
    # Enough for one entry: it holds its premium back, so a second segment's entry is refused until a refresh.
    r.set_funds(Decimal("15000"))
    assert r.check(intent("entry"), at(10, 2)).allowed
    assert r.available_funds == Decimal("5217.50")
    second = r.check(intent("entry", Segment.BANKNIFTY), at(10, 2))
    assert not second and "₹5,217.50 available" in second.reason
    # A rejected entry gives its funds back; an intent with its own limit price is costed at that price.
    r.on_entry_failed(Segment.NIFTY)
    limit = OrderIntent(KEY, Segment.BANKNIFTY, Mode.LIVE, "NFO", "X", Side.BUY, 100, price=Decimal("149.99"))
    assert r.check(limit, at(10, 3)).allowed
    # A price the session cannot learn leaves the entry to the broker's own margin check.
    r.set_funds(Decimal("1"))
    prices.clear()
    r.on_entry_failed(Segment.BANKNIFTY)
    assert r.check(intent("entry", Segment.BANKNIFTY), at(10, 4)).allowed
