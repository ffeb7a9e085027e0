"""The option order rules of Kite and the exchanges, one test per rule (the simulator and PAPER read them)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from desktop.broker import exchange_rules as rules
from desktop.broker.exchange_rules import OptionOrder, order_refusal


@pytest.mark.parametrize("exchange", ["NFO", "BFO"])
def test_sl_m_is_refused_for_options_on_nfo_and_bfo(exchange: str) -> None:
    assert rules.order_type_refusal(exchange, "SL-M") == rules.SL_M_REFUSED
    assert "stop-loss limit (SL)" in rules.SL_M_REFUSED
    order = OptionOrder(exchange, "SELL", "SL-M", trigger_price=D("90"))
    assert order_refusal(order, D("100")) == rules.SL_M_REFUSED
    for accepted in ("SL", "LIMIT", "MARKET"):
        assert rules.order_type_refusal(exchange, accepted) is None


def test_prices_must_be_on_the_005_tick() -> None:
    assert rules.tick_refusal("price", D("100.05")) is None
    assert "tick size 0.05" in (rules.tick_refusal("price", D("100.07")) or "")
    assert rules.tick_floor(D("100.09")) == D("100.05") and rules.tick_ceiling(D("100.01")) == D("100.05")
    assert rules.tick_floor(D("0.01")) == D("0.05")  # never below one tick
    order = OptionOrder("NFO", "BUY", "LIMIT", price=D("100.02"))
    assert "tick size" in (order_refusal(order, D("100")) or "")


@pytest.mark.parametrize(
    ("trigger", "limit", "refused"),
    [
        (D("50"), D("40"), False),  # ₹10 below a ₹50 trigger: the flat cap, at its edge
        (D("50"), D("39.95"), True),
        (D("30"), D("20"), False),
        (D("30"), D("19.95"), True),
        (D("50.05"), D("40.05"), False),  # above ₹50 the cap is 20 % (10.01): 10.00 passes
        (D("100"), D("80"), False),  # 20 % of 100
        (D("100"), D("79.95"), True),
        (D("200"), D("160"), False),
        (D("200"), D("159.95"), True),
    ],
)
def test_sl_gap_cap_is_10_rupees_up_to_50_then_20_percent(trigger: D, limit: D, refused: bool) -> None:
    message = rules.sl_gap_refusal(trigger, limit)
    assert (message is not None) is refused
    if refused:
        assert "permissible range" in message
    assert (
        order_refusal(OptionOrder("NFO", "SELL", "SL", limit, trigger), trigger + 5) is not None
    ) is refused


def test_sell_stop_trigger_at_or_above_ltp_is_refused_and_buy_stop_symmetric() -> None:
    assert rules.trigger_refusal("SELL", D("99.95"), D("100")) is None
    assert "lower than the last traded price" in (rules.trigger_refusal("SELL", D("100"), D("100")) or "")
    assert rules.trigger_refusal("SELL", D("101"), D("100")) is not None
    assert rules.trigger_refusal("BUY", D("100.05"), D("100")) is None
    assert "higher than the last traded price" in (rules.trigger_refusal("BUY", D("100"), D("100")) or "")
    assert rules.trigger_refusal("SELL", D("100"), None) is None  # nothing known to compare with
    stop = OptionOrder("NFO", "SELL", "SL", D("95"), D("100"))
    assert order_refusal(stop, D("100")) is not None
    assert order_refusal(stop, D("100.05")) is None
    # Once triggered the trigger is history: a modification of the live limit is not compared with the LTP.
    assert order_refusal(stop, D("96"), triggered=True) is None


def test_nse_lpp_is_40_percent_above_50_rupees_and_20_rupees_below() -> None:
    assert rules.lpp_band("NFO", D("100")) == (D("60"), D("140"))
    assert rules.lpp_band("NFO", D("50")) == (D("30"), D("70"))
    assert rules.lpp_band("NFO", D("10")) == (D("0.05"), D("30"))
    assert rules.lpp_refusal("NFO", D("60"), D("100")) is None
    assert "limit price protection" in (rules.lpp_refusal("NFO", D("59.95"), D("100")) or "")
    assert rules.lpp_refusal("NFO", D("140.05"), D("100")) is not None
    assert order_refusal(OptionOrder("NFO", "BUY", "LIMIT", price=D("0.05")), D("100")) is not None


def test_bse_lpp_is_60_percent_at_least_30_rupees() -> None:
    assert rules.lpp_band("BFO", D("100")) == (D("40"), D("160"))
    assert rules.lpp_band("BFO", D("20")) == (D("0.05"), D("50"))  # 60 % of 20 is 12: the ₹30 floor wins
    assert rules.lpp_refusal("BFO", D("45"), D("100")) is None  # NSE's 40 % would refuse it
    assert rules.lpp_refusal("NFO", D("45"), D("100")) is not None
    assert rules.lpp_refusal("BFO", D("39.95"), D("100")) is not None


def test_triggered_sl_outside_lpp_gets_the_cancel_message() -> None:
    assert rules.lpp_cancel_message("NFO", D("90"), D("100")) is None
    message = rules.lpp_cancel_message("NFO", D("90"), D("50"))  # the premium gapped down to 50
    assert message is not None and message.startswith("Cancelled by the exchange")


def test_zerodha_refuses_option_limit_sells_more_than_half_below_an_ltp_of_100_or_more() -> None:
    assert rules.zerodha_sell_limit_refusal("SELL", D("100"), D("200")) is None
    assert "50%" in (rules.zerodha_sell_limit_refusal("SELL", D("99.95"), D("200")) or "")
    assert rules.zerodha_sell_limit_refusal("SELL", D("40"), D("99.95")) is None  # LTP below ₹100
    assert rules.zerodha_sell_limit_refusal("BUY", D("10"), D("200")) is None
    # On BSE the 60 % LPP band lets 45 through; Zerodha's own rule still refuses it.
    assert order_refusal(OptionOrder("BFO", "SELL", "LIMIT", price=D("95")), D("200")) is not None
    assert order_refusal(OptionOrder("BFO", "SELL", "LIMIT", price=D("100")), D("200")) is None


def test_market_becomes_a_limit_at_the_protected_price_inside_lpp() -> None:
    assert rules.protected_price("NFO", "BUY", D("100"), 5) == D("105")
    assert rules.protected_price("NFO", "SELL", D("100"), 5) == D("95")
    assert rules.protected_price("NFO", "BUY", D("100"), -1) == D("120")  # automatic: 20 %
    assert rules.protected_price("NFO", "SELL", D("20"), -1) == D("10")  # automatic: at least ₹10
    assert rules.protected_price("NFO", "BUY", D("100"), 100) == D("140")  # kept inside LPP
    assert rules.protected_price("NFO", "SELL", D("10"), 100) == D("0.05")
    assert rules.protected_price("NFO", "BUY", D("33.33"), 3) == D("34.30")  # on the tick, not beyond


def test_market_in_a_contract_not_traded_today_is_refused() -> None:
    assert rules.market_refusal(traded_today=True) is None
    assert "17181" in (rules.market_refusal(traded_today=False) or "")
    order = OptionOrder("NFO", "BUY", "MARKET")
    assert order_refusal(order, D("100"), traded_today=False) == rules.UNTRADED_MARKET_REFUSED
    assert order_refusal(order, D("100")) is None


def test_freeze_quantities_come_from_one_table_with_their_circular_and_can_be_overridden() -> None:
    assert rules.freeze_quantity("NIFTY") == 1800
    assert rules.freeze_quantity("BANKNIFTY") == 600
    assert rules.freeze_quantity("SENSEX") == 1000
    assert rules.FREEZE_LIMITS["BANKNIFTY"].source == "NSE F&O circular of 30 January 2026"
    assert rules.FREEZE_LIMITS["SENSEX"].as_of is None  # configuration, no source
    assert rules.freeze_quantity("NIFTY", {"NIFTY": 1755}) == 1755
    assert rules.freeze_quantity("UNKNOWN") is None
    assert rules.freeze_refusal("BANKNIFTY", 600) is None
    assert rules.freeze_refusal("BANKNIFTY", 630) == "Quantity 630 exceeds the freeze limit of 600."
    assert rules.freeze_refusal("BANKNIFTY", 630, {"BANKNIFTY": 900}) is None


def test_non_option_exchanges_are_left_to_kite() -> None:
    assert order_refusal(OptionOrder("NSE", "SELL", "SL-M", trigger_price=D("90")), D("100")) is None


def test_kite_allows_25_modifications_per_order() -> None:
    assert rules.modification_refusal(0) is None and rules.modification_refusal(24) is None
    assert "25" in (rules.modification_refusal(25) or "")
