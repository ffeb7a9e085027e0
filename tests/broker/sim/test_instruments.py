"""The simulator's instruments dump, read by the official client's own CSV parser."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime, time, timedelta

import pytest
from kiteconnect import KiteConnect

from desktop.broker.sim.instruments import (
    INSTRUMENTS_CSV_HEADER,
    STRIKES_EACH_SIDE,
    listed_expiries,
    option_tradingsymbol,
)
from desktop.broker.sim.market import Market
from desktop.domain import Segment

SEGMENT_IDS = {"NFO-OPT": 2, "BFO-OPT": 5, "INDICES": 9}
WEEKLY = re.compile(r"^(NIFTY|SENSEX)(\d\d)([1-9OND])(\d\d)(\d+)(CE|PE)$")
MONTHLY = re.compile(
    r"^(NIFTY|BANKNIFTY|SENSEX)(\d\d)(JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)(\d+)(CE|PE)$"
)


@pytest.fixture(scope="module")
def market() -> Market:
    return Market(seed=11, trading_day=date(2026, 1, 8))


@pytest.fixture(scope="module")
def rows(market: Market) -> list[dict]:
    """The dump as `KiteConnect.instruments()` returns it."""
    return KiteConnect("k")._parse_instruments(market.instruments_csv().encode())


def test_dump_starts_with_kites_exact_header(market: Market) -> None:
    assert market.instruments_csv().splitlines()[0] == INSTRUMENTS_CSV_HEADER
    assert INSTRUMENTS_CSV_HEADER == (
        "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,"
        "instrument_type,segment,exchange"
    )


def test_every_row_parses_and_follows_the_token_rule(rows: list[dict], market: Market) -> None:
    assert len(rows) == len(market.instruments)
    for row in rows:
        assert row["instrument_token"] == int(row["exchange_token"]) * 256 + SEGMENT_IDS[row["segment"]]
        assert row["instrument_token"] < 2**32  # fits the tick packet's uint32 field
    assert len({r["instrument_token"] for r in rows}) == len(rows)


def test_no_numeric_cell_is_ever_empty(market: Market) -> None:
    for line in market.instruments_csv().splitlines()[1:]:
        cells = line.split(",")
        for i in (0, 1, 4, 6, 7, 8):
            assert cells[i] != ""


def test_index_rows_match_kites(rows: list[dict]) -> None:
    indices = {r["instrument_token"]: r for r in rows if r["segment"] == "INDICES"}
    assert set(indices) == {256265, 260105, 265}
    assert (indices[256265]["tradingsymbol"], indices[256265]["exchange"]) == ("NIFTY 50", "NSE")
    assert (indices[260105]["tradingsymbol"], indices[260105]["exchange"]) == ("NIFTY BANK", "NSE")
    assert (indices[265]["tradingsymbol"], indices[265]["exchange"]) == ("SENSEX", "BSE")
    for row in indices.values():
        assert row["instrument_type"] == "EQ" and row["expiry"] == ""  # the client leaves an empty expiry


def test_options_carry_2026_lot_sizes_tick_and_exchange(rows: list[dict]) -> None:
    expected = {"NIFTY": (65, "NFO"), "BANKNIFTY": (30, "NFO"), "SENSEX": (20, "BFO")}
    options = [r for r in rows if r["segment"] != "INDICES"]
    assert {r["name"] for r in options} == set(expected)
    for row in options:
        lot, exchange = expected[row["name"]]
        assert (row["lot_size"], row["exchange"], row["tick_size"]) == (lot, exchange, 0.05)
        assert row["segment"] == f"{exchange}-OPT"
        assert row["instrument_type"] in ("CE", "PE")
        assert row["last_price"] >= 0.05  # the previous close


def test_expiry_weekdays_nse_tuesday_bse_thursday(rows: list[dict]) -> None:
    for row in rows:
        if row["segment"] == "NFO-OPT":
            assert row["expiry"].weekday() == 1
        elif row["segment"] == "BFO-OPT":
            assert row["expiry"].weekday() == 3


def test_symbols_are_weekly_or_monthly_by_expiry(rows: list[dict]) -> None:
    for row in rows:
        if row["segment"] == "INDICES":
            continue
        expiry, strike = row["expiry"], int(row["strike"])
        is_monthly = (expiry + timedelta(days=7)).month != expiry.month  # the month's last such weekday
        pattern = MONTHLY if is_monthly else WEEKLY
        match = pattern.match(row["tradingsymbol"])
        assert match, row["tradingsymbol"]
        assert match.group(1) == row["name"] and int(match.group(match.lastindex - 1)) == strike
        assert match.group(match.lastindex) == row["instrument_type"]


def test_each_expiry_lists_the_strikes_around_the_open_both_rights(rows: list[dict], market: Market) -> None:
    t = market.trading_day
    for name, step, token in (("NIFTY", 50, 256265), ("BANKNIFTY", 100, 260105), ("SENSEX", 100, 265)):
        day_open = float(market.last_price(token, datetime.combine(t, time(9, 15))))
        chain = [r for r in rows if r["name"] == name and r["segment"] != "INDICES"]
        for (expiry, right), count in Counter((r["expiry"], r["instrument_type"]) for r in chain).items():
            assert count == 2 * STRIKES_EACH_SIDE + 1, (name, expiry, right)
        strikes = sorted({r["strike"] for r in chain})
        assert all(b - a == step for a, b in zip(strikes, strikes[1:], strict=False))
        assert strikes[STRIKES_EACH_SIDE] == round(day_open / step) * step


def test_expiries_on_a_thursday_in_early_january() -> None:
    day = date(2026, 1, 8)
    assert listed_expiries(Segment.NIFTY, day) == [date(2026, 1, 13), date(2026, 1, 20), date(2026, 1, 27)]
    assert listed_expiries(Segment.BANKNIFTY, day) == [date(2026, 1, 27), date(2026, 2, 24)]
    # Expiry day itself counts.
    assert listed_expiries(Segment.SENSEX, day) == [date(2026, 1, 8), date(2026, 1, 15), date(2026, 1, 29)]


def test_monthly_among_the_two_weeklies_adds_next_months_monthly() -> None:
    day = date(2026, 1, 21)
    assert listed_expiries(Segment.NIFTY, day) == [date(2026, 1, 27), date(2026, 2, 3), date(2026, 2, 24)]
    assert listed_expiries(Segment.SENSEX, day) == [date(2026, 1, 22), date(2026, 1, 29), date(2026, 2, 26)]


def test_banknifty_rolls_to_next_months_after_expiry() -> None:
    assert listed_expiries(Segment.BANKNIFTY, date(2026, 1, 28)) == [date(2026, 2, 24), date(2026, 3, 31)]
    assert listed_expiries(Segment.BANKNIFTY, date(2026, 12, 30)) == [date(2027, 1, 26), date(2027, 2, 23)]


@pytest.mark.parametrize(
    ("name", "expiry", "strike", "right", "symbol"),
    [
        ("NIFTY", date(2026, 1, 13), 25000, "CE", "NIFTY2611325000CE"),
        ("NIFTY", date(2026, 1, 27), 25000, "CE", "NIFTY26JAN25000CE"),
        ("SENSEX", date(2026, 4, 9), 77100, "CE", "SENSEX2640977100CE"),
        ("NIFTY", date(2026, 10, 6), 26000, "PE", "NIFTY26O0626000PE"),
        ("NIFTY", date(2026, 11, 3), 26000, "PE", "NIFTY26N0326000PE"),
        ("SENSEX", date(2026, 12, 3), 85000, "CE", "SENSEX26D0385000CE"),
        ("BANKNIFTY", date(2026, 2, 24), 59000, "PE", "BANKNIFTY26FEB59000PE"),
    ],
)
def test_tradingsymbols_follow_kites_formats(
    name: str, expiry: date, strike: int, right: str, symbol: str
) -> None:
    assert option_tradingsymbol(name, expiry, strike, right) == symbol


def test_exchange_filter_keeps_only_that_exchange(market: Market) -> None:
    for exchange in ("NSE", "BSE", "NFO", "BFO"):
        rows = KiteConnect("k")._parse_instruments(market.instruments_csv(exchange).encode())
        assert rows and {r["exchange"] for r in rows} == {exchange}


def test_find_and_instrument_agree_and_refuse_unknowns(market: Market) -> None:
    inst = market.instruments[5]
    assert market.find(inst.exchange, inst.tradingsymbol) is inst
    assert market.find("nfo", inst.tradingsymbol.lower()) is (inst if inst.exchange == "NFO" else None)
    assert market.instrument(inst.instrument_token) is inst
    assert market.find("NFO", "NIFTY26JAN1CE") is None
    with pytest.raises(KeyError):
        market.instrument(12345)
