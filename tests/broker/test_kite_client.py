"""The app's Kite client (`new_kite`): kiteconnect's own class, its order and trade timestamps read without dateutil,
to the same values kiteconnect gives (issue 18: two dateutil parses a fill on the agent's thread at a minute's close)."""

from __future__ import annotations

from datetime import datetime

import dateutil.parser
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kiteconnect import KiteConnect

from desktop.broker.gateway import _ts as order_time
from desktop.broker.kite_client import TIMESTAMP_FIELDS, kite_class, kite_time, new_kite
from desktop.broker.order_lane import OrderLane
from tests.broker.sim.test_sim_exchange_rules import option
from tests.simkit import login, start_sim


@given(st.datetimes(min_value=datetime(1000, 1, 1)), st.sampled_from(" T"))
def test_a_kite_timestamp_is_read_as_dateutil_reads_it(when: datetime, sep: str) -> None:
    text = when.replace(microsecond=0).isoformat(sep)
    assert kite_time(text) == dateutil.parser.parse(text) == when.replace(microsecond=0)


@pytest.mark.parametrize(
    "text", ["08-01-2026 09:43:49", "2026/01/08 09:43:49", "Jan 08 2026 09:43:49", "2026-01-08 09:43:4٩"]
)
def test_any_other_19_character_text_is_left_to_dateutil(text: str) -> None:
    assert kite_time(text) == dateutil.parser.parse(text)


def test_an_impossible_date_fails_as_dateutil_fails() -> None:
    with pytest.raises(dateutil.parser.ParserError):
        dateutil.parser.parse("2026-13-08 09:43:49")
    with pytest.raises(dateutil.parser.ParserError):
        kite_time("2026-13-08 09:43:49")


def test_a_reply_kiteconnect_cannot_format_fails_in_kiteconnects_own_way() -> None:
    kite = kite_class()("UK9394", root="http://127.0.0.1:9")
    with pytest.raises(UnboundLocalError):
        KiteConnect._format_response(kite, "text")
    with pytest.raises(UnboundLocalError):
        kite._format_response("text")


def test_orders_and_trades_read_by_the_apps_client_are_what_kiteconnect_reads() -> None:
    sim = start_sim()
    try:
        plain = login(sim, "UK9394")
        kite = new_kite("UK9394", root=sim.url, timeout=5)
        kite.set_access_token(plain.access_token)
        assert isinstance(kite, KiteConnect) and isinstance(kite.reqsession, OrderLane)
        inst = option(plain, offset=1)
        order_id = plain.place_order(
            variety="regular", exchange="NFO", tradingsymbol=inst["tradingsymbol"], transaction_type="BUY",
            quantity=inst["lot_size"], product="MIS", order_type="MARKET", market_protection=-1, tag="KDtime",
        )  # fmt: skip
        trades = kite.order_trades(order_id)
        assert trades and trades == plain.order_trades(order_id)
        assert kite.orders() == plain.orders()
        assert kite.order_history(order_id) == plain.order_history(order_id)
        stamped = [t[f] for t in trades for f in TIMESTAMP_FIELDS if f in t]
        assert sum(type(v) is datetime for v in stamped) >= 2, stamped  # kiteconnect reads 19 characters only
        kite.reqsession.close()
    finally:
        sim.stop()


def _strptime_ts(value: str) -> datetime | None:  # what the gateway read an order's time with before
    try:
        return datetime.strptime(value[:19], "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None


@given(
    st.one_of(
        st.datetimes(min_value=datetime(1000, 1, 1)).map(lambda d: str(d.replace(microsecond=0))),
        st.text(alphabet="0123456789-: T", min_size=19, max_size=22),
        st.from_regex(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d.{0,6}", fullmatch=True),
    )
)
def test_an_order_updates_time_is_read_as_strptime_reads_it(text: str) -> None:
    assert order_time(text) == _strptime_ts(text)
