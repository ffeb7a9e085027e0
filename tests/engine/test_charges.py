"""Zerodha's F&O charges, worked by hand from the published rates (see desktop/engine/charges.py)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from desktop.domain import Side
from desktop.engine.charges import Charges, order_charges

D = Decimal


def test_an_nse_option_buy_pays_flat_brokerage_exchange_sebi_gst_and_stamp_but_no_stt() -> None:
    # 65 x 127.70 = 8,300.50 of premium: exchange 0.03503 % = 2.9077 -> 2.91; SEBI 0.0083 -> 0.01;
    # GST 18 % of (20 + 2.91 + 0.01) = 4.1256 -> 4.13; stamp 0.003 % = 0.249 -> 0.25
    c = order_charges(exchange="NFO", side=Side.BUY, turnover=D("8300.50"), day=date(2026, 12, 7))
    assert c == Charges(
        brokerage=D(20), stt=D(0), exchange=D("2.91"), sebi=D("0.01"), gst=D("4.13"), stamp=D("0.25")
    )
    assert c.total == D("27.30")


def test_an_option_sell_pays_stt_on_the_premium_at_the_rate_of_its_day() -> None:
    # 65 x 120.55 = 7,835.75: STT 0.15 % from 1 April 2026 = 11.7536 -> 11.75, 0.1 % before = 7.8358 -> 7.84
    after = order_charges(exchange="NFO", side=Side.SELL, turnover=D("7835.75"), day=date(2026, 4, 1))
    before = order_charges(exchange="NFO", side=Side.SELL, turnover=D("7835.75"), day=date(2026, 3, 31))
    assert (after.stt, before.stt) == (D("11.75"), D("7.84"))
    assert (
        after.stamp == 0 and after.exchange == D("2.74") and after.gst == D("4.10")
    )  # 18 % of 22.75 = 4.095
    assert after.total == D("38.60")


def test_bse_options_pay_bses_exchange_rate_and_options_never_get_the_lower_brokerage() -> None:
    c = order_charges(exchange="BFO", side=Side.SELL, turnover=D("7835.75"), day=date(2026, 12, 7))
    assert c.exchange == D("2.55")  # 0.0325 % = 2.5466
    small = order_charges(exchange="NFO", side=Side.BUY, turnover=D(100), day=date(2026, 12, 7))
    assert small.brokerage == D(20)  # flat ₹20 per executed option order, however small


def test_futures_pay_the_lower_of_20_rupees_and_0_03_percent() -> None:
    small = order_charges(
        exchange="NFO", side=Side.BUY, turnover=D(50_000), day=date(2026, 12, 7), instrument="future"
    )
    large = order_charges(
        exchange="NFO", side=Side.BUY, turnover=D(1_000_000), day=date(2026, 12, 7), instrument="future"
    )
    assert (small.brokerage, large.brokerage) == (D(15), D(20))


def test_bad_input_is_refused_in_words() -> None:
    with pytest.raises(ValueError, match="not an F&O exchange"):
        order_charges(exchange="MCX", side=Side.BUY, turnover=D(1), day=date(2026, 1, 5))
    with pytest.raises(ValueError, match="cannot be negative"):
        order_charges(exchange="NFO", side=Side.BUY, turnover=D(-1), day=date(2026, 1, 5))
    assert order_charges(exchange="NFO", side=Side.BUY, turnover=D(0), day=date(2026, 1, 5)).total == 0
