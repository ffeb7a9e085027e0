"""Malformed replies from Kite (issue 16, defect 7) with the real kiteconnect client against the simulator: each
is logged, counted and asked for again at the broker layer, and never reaches a caller as a ValueError."""

from __future__ import annotations

import logging

import pytest

from desktop.broker import replies
from desktop.broker.errors import BrokerError, MalformedReply
from desktop.broker.gateway import LiveGateway
from desktop.domain import Side
from tests.broker.conftest import login, wait_until
from tests.broker.test_gateway_sim import Events, intent, option, sim_orders
from tests.simkit import fault


def _holding(hub, sim):
    """A session of UK9394 whose account holds one lot of a NIFTY option (bought through the gateway)."""
    profile = login(hub, sim, "UK9394")
    session = hub.open_session(profile)
    session.MALFORMED_PAUSE = 0.01
    gateway = LiveGateway(session)
    contract = option(hub, session)
    gateway.place(intent(session, contract))
    assert wait_until(lambda: gateway.account_net_quantity(contract.exchange, contract.tradingsymbol))
    return session, gateway, contract


def test_one_malformed_positions_reply_is_logged_counted_and_asked_again(hub, sim, caplog) -> None:
    session, gateway, contract = _holding(hub, sim)
    fault(sim, kind="malform_next_reply", api_key="UK9394", path="/portfolio/positions")  # "quantity": "lots"
    with caplog.at_level(logging.WARNING, logger="desktop.broker.session"):
        held = gateway.account_net_quantity(contract.exchange, contract.tradingsymbol)
    assert held == contract.lot_size
    assert session.malformed_replies == 1
    assert (
        "positions: Kite's reply does not hold what its API says (net[0].quantity 'lots' is not a whole number)"
        in (caplog.text)
    )
    session.close()


def test_replies_malformed_every_time_end_in_a_broker_error_never_a_value_error(hub, sim) -> None:
    session, gateway, contract = _holding(hub, sim)
    fault(sim, kind="malform_next_reply", api_key="UK9394", path="/portfolio/positions", times=3)
    with pytest.raises(MalformedReply) as caught:
        gateway.account_net_quantity(contract.exchange, contract.tradingsymbol)
    assert isinstance(caught.value, BrokerError) and session.malformed_replies == 3
    assert gateway.account_net_quantity(contract.exchange, contract.tradingsymbol) == contract.lot_size
    fault(
        sim,
        kind="malform_next_reply",
        api_key="UK9394",
        path="/orders",
        field="transaction_type",
        value="HOLD",
    )
    assert [o.side for o in gateway.reconcile()] == [Side.BUY]  # read again: the second reply is sound
    assert session.malformed_replies == 4
    session.close()


def test_an_order_reply_without_an_order_id_is_resolved_by_tag_and_placed_once(hub, sim) -> None:
    profile = login(hub, sim, "UK9394")
    session = hub.open_session(profile)
    gateway = LiveGateway(session, lookup_pause=0.05)
    contract = option(hub, session)
    fault(
        sim, kind="malform_next_reply", api_key="UK9394", path="/orders/regular", field="order_id", value=""
    )
    order = gateway.place(intent(session, contract))
    at_broker = sim_orders(sim, "UK9394")
    assert [o.order_id for o in at_broker] == [order.order_id], "found by its tag, never sent twice"
    assert session.malformed_replies == 1
    session.close()


def test_a_malformed_order_update_is_counted_and_the_order_book_read_instead(hub, sim) -> None:
    profile = login(hub, sim, "UK9394")
    session = hub.open_session(profile)
    stream = hub.open_stream(session)
    try:
        gateway = LiveGateway(session, stream)
        seen = Events()
        gateway.add_listener(seen.on_order, seen.on_fill)
        placed = gateway.place(intent(session, option(hub, session)))
        assert wait_until(lambda: seen.final(placed.order_id) is not None)
        gateway.report_fills(placed.order_id)  # as the segment's agent does on the update
        before = len(seen.orders)
        gateway._on_update({"order_id": placed.order_id, "tradingsymbol": "X", "status": "COMPLETE",
                            "quantity": "lots", "tag": session.key.order_tag})  # fmt: skip  # as the stream hands it on
        assert session.malformed_replies == 1 and len(seen.orders) == before  # nothing false was reported
    finally:
        stream.close()
        session.close()


@pytest.mark.parametrize(
    ("check", "reply", "problem"),
    [
        (replies.positions, {"net": [{"tradingsymbol": "X", "quantity": "lots"}]},
         "net[0].quantity 'lots' is not a whole number"),
        (replies.positions, {"net": {"tradingsymbol": "X"}}, "positions.net is not a list of rows"),
        (replies.orders, [{"order_id": "1", "tradingsymbol": "X", "status": "OPEN", "order_type": "ICEBERG"}],
         "orders[0].order_type 'ICEBERG' is not one of"),
        (replies.trades, [{"trade_id": "T", "quantity": 0, "average_price": 1}], "is not a fill's quantity"),
        (replies.trades, [{"trade_id": "T", "quantity": 65, "average_price": "NaN"}], "is not a price"),
        (replies.margins, {"equity": {"net": "much", "available": {}}}, "margins.equity.net 'much' is not a price"),
        (replies.profile, {"user_name": "no id"}, "profile.user_id None is not a name or an id"),
        (replies.quotes, {"NSE:NIFTY 50": {"last_price": None}}, "is not a price"),
        (replies.candles, {"candles": [["2026-01-08T09:15:00+0530", 1, 2, 3]]}, "candles[0] is not a candle"),
    ],
)  # fmt: skip
def test_each_kind_of_reply_names_the_field_that_is_wrong(check, reply, problem) -> None:
    with pytest.raises(replies.ReplyInvalid, match=problem.replace("[", r"\[").replace("]", r"\]")):
        check(reply)


def test_sound_replies_pass_as_they_are() -> None:
    rows = [{"order_id": 1, "tradingsymbol": "X", "status": "COMPLETE", "transaction_type": "SELL",
             "order_type": "SL-M", "quantity": "65", "filled_quantity": 65.0, "average_price": 101.35, "tag": None}]  # fmt: skip
    assert replies.orders(rows) is rows
    assert (
        replies.positions({"net": [{"tradingsymbol": "X", "quantity": -65}], "day": []})["net"][0]["quantity"]
        == -65
    )
    assert replies.whole("-65") == -65 and replies.whole(None) == 0


def test_ltp_once_asks_once_where_ltp_backs_off_and_asks_again_after_a_429(hub, sim) -> None:
    """Risk's margin check asks an option's price on the entry's way: a 429 makes it fail at once (no check, the
    broker's own decides) instead of holding the entry up through the read's back-off."""
    import time

    from desktop.broker.errors import RateLimited

    session = hub.open_session(login(hub, sim, "UK9394"))
    key = "NSE:NIFTY 50"
    assert session.ltp_once(key)[key]["last_price"] > 0  # the reply is checked like `ltp`'s
    fault(sim, kind="fail_next_request", api_key="UK9394", error_type="NetworkException", status=429)
    time.sleep(1.05)  # the account's quote rate (1 a second) lets the next one go at once
    started = time.monotonic()
    with pytest.raises(RateLimited):
        session.ltp_once(key)
    assert time.monotonic() - started < 0.4  # no back-off pause (the first is 0.5 s)
    fault(sim, kind="fail_next_request", api_key="UK9394", error_type="NetworkException", status=429)
    assert session.ltp(key)[key]["last_price"] > 0  # `ltp` waits and asks again
    session.close()


def test_ltp_once_never_waits_for_the_accounts_quote_rate(hub, sim) -> None:
    """Kite allows one quote a second per account. Three segments' entries on one bar used to queue for it (the
    third waited 2 s before its market order went); the margin check's price is not worth that wait: with no
    quote slot free now, ltp_once fails at once and the broker's own margin check decides."""
    import time

    from desktop.broker.errors import RateLimited

    session = hub.open_session(login(hub, sim, "UK9394"))
    key = "NSE:NIFTY 50"
    time.sleep(1.05)  # nothing else of this account asked for a quote in the last second
    assert session.ltp_once(key)[key]["last_price"] > 0
    started = time.monotonic()
    with pytest.raises(RateLimited):
        session.ltp_once(key)  # the second within the second
    assert time.monotonic() - started < 0.3  # refused at once, not after the ~1 s wait for the slot
    session.close()
