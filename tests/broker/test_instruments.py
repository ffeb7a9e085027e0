"""Instrument rows → Instrument, the daily cache, and ITM option resolution."""

from __future__ import annotations

import threading
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kiteconnect import KiteConnect

from desktop.broker.errors import InputRejected
from desktop.broker.instruments import (
    ContractNotFound,
    InstrumentBook,
    InstrumentCache,
    instrument_from_row,
    parse_instruments_csv,
)
from desktop.domain import OptionRight, Segment

MOCKS = Path("/work/shared/kite-mocks")


def option_row(name: str, exchange: str, expiry: date, strike: int, right: str, token: int, lot: int) -> dict:
    """A row as kiteconnect.instruments() returns it (floats and a date)."""
    return {
        "instrument_token": token,
        "exchange_token": token // 256,
        "tradingsymbol": f"{name}{expiry:%y}{expiry.month}{expiry:%d}{strike}{right}",
        "name": name,
        "last_price": 0.0,
        "expiry": expiry,
        "strike": float(strike),
        "tick_size": 0.05,
        "lot_size": lot,
        "instrument_type": right,
        "segment": f"{exchange}-OPT",
        "exchange": exchange,
    }


def nifty_rows() -> list[dict[str, Any]]:
    rows = []
    token = 10_000_002
    for expiry in (date(2026, 1, 13), date(2026, 1, 6), date(2026, 1, 20)):
        for strike in range(25700, 26101, 50):
            for right in ("CE", "PE"):
                rows.append(option_row("NIFTY", "NFO", expiry, strike, right, token, 65))
                token += 256
    # a SENSEX chain on BFO and a stray NIFTY row on the wrong exchange
    rows.append(option_row("SENSEX", "BFO", date(2026, 1, 8), 77100, "CE", 900_005, 20))
    rows.append(option_row("NIFTY", "BFO", date(2026, 1, 7), 25900, "CE", 900_261, 65))
    return rows


@pytest.fixture
def book() -> InstrumentBook:
    return InstrumentBook.from_rows(nifty_rows(), date(2026, 1, 7))


def test_call_is_itm_below_spot_on_the_nearest_expiry_not_past(book: InstrumentBook) -> None:
    c = book.resolve_itm_option(Segment.NIFTY, Decimal("25987.40"), OptionRight.CE, 100, date(2026, 1, 7))
    assert (c.strike, c.expiry, c.exchange, c.lot_size) == (Decimal(25900), date(2026, 1, 13), "NFO", 65)
    assert c.tradingsymbol == "NIFTY2611325900CE"
    assert book.by_token(c.instrument_token).tradingsymbol == c.tradingsymbol


def test_put_is_itm_above_spot(book: InstrumentBook) -> None:
    c = book.resolve_itm_option(Segment.NIFTY, Decimal("25962.60"), OptionRight.PE, 50, date(2026, 1, 7))
    assert c.strike == Decimal(26000) and c.right is OptionRight.PE


def test_atm_rounds_half_up_to_the_strike_step(book: InstrumentBook) -> None:
    c = book.resolve_itm_option(Segment.NIFTY, Decimal("25925"), OptionRight.CE, 0, date(2026, 1, 7))
    assert c.strike == Decimal(25950)


def test_expiry_on_the_day_itself_is_still_eligible(book: InstrumentBook) -> None:
    c = book.resolve_itm_option(Segment.NIFTY, Decimal(25900), OptionRight.CE, 0, date(2026, 1, 13))
    assert c.expiry == date(2026, 1, 13)


def test_missing_strike_names_segment_strike_and_date(book: InstrumentBook) -> None:
    with pytest.raises(ContractNotFound) as info:
        book.resolve_itm_option(Segment.NIFTY, Decimal(26100), OptionRight.PE, 500, date(2026, 1, 8))
    assert "no NIFTY PE at 26600 expiring on or after 2026-01-08 in today's instruments" in str(info.value)


def test_no_expiry_left_is_a_clear_error(book: InstrumentBook) -> None:
    with pytest.raises(ContractNotFound, match="on or after 2026-02-01"):
        book.resolve_itm_option(Segment.NIFTY, Decimal(25900), OptionRight.CE, 0, date(2026, 2, 1))


def test_sensex_resolves_on_bfo(book: InstrumentBook) -> None:
    c = book.resolve_itm_option(Segment.SENSEX, Decimal("77182"), OptionRight.CE, 100, date(2026, 1, 7))
    assert (c.exchange, c.strike, c.lot_size) == ("BFO", Decimal(77100), 20)


@pytest.mark.parametrize(("offset", "message"), [(75, "multiple of NIFTY's strike step 50"), (-50, "≥ 0")])
def test_offsets_off_the_strike_grid_are_refused(book: InstrumentBook, offset: int, message: str) -> None:
    with pytest.raises(InputRejected, match=message):
        book.resolve_itm_option(Segment.NIFTY, Decimal(25900), OptionRight.CE, offset, date(2026, 1, 7))


def test_official_mock_dump_parsed_by_kiteconnect_resolves_banknifty() -> None:
    rows = KiteConnect("k")._parse_instruments((MOCKS / "instruments_all.csv").read_bytes())
    book = InstrumentBook.from_rows(rows, date(2018, 1, 1))
    assert len(book) == len(rows)
    c = book.resolve_itm_option(Segment.BANKNIFTY, Decimal("23648.2"), OptionRight.CE, 100, date(2018, 1, 1))
    assert (c.tradingsymbol, c.instrument_token, c.lot_size) == ("BANKNIFTY18JAN23500CE", 12073986, 40)
    p = book.resolve_itm_option(Segment.BANKNIFTY, Decimal("23480"), OptionRight.PE, 100, date(2017, 11, 1))
    assert (p.tradingsymbol, p.expiry) == ("BANKNIFTY17NOV23600PE", date(2017, 11, 30))


def test_raw_csv_rows_give_exact_decimal_strike_and_tick() -> None:
    row = {
        "instrument_token": "12073986", "exchange_token": "47164", "tradingsymbol": "BANKNIFTY18JAN23500CE",
        "name": "", "last_price": "2528.4", "expiry": "2018-01-25", "strike": "23500.0", "tick_size": "0.0025",
        "lot_size": "40", "instrument_type": "CE", "segment": "NFO-OPT", "exchange": "NFO",
    }  # fmt: skip
    ins = instrument_from_row(row)
    assert ins.name == "BANKNIFTY"
    assert ins.strike == Decimal(23500) and ins.tick_size == Decimal("0.0025")
    assert ins.expiry == date(2018, 1, 25)


def test_cache_fetches_once_per_account_per_day_even_when_asked_concurrently() -> None:
    cache = InstrumentCache()
    calls: list[str] = []
    gate = threading.Event()

    def fetch() -> list[dict[str, Any]]:
        calls.append("A")
        gate.wait(1)
        return nifty_rows()

    results: list[InstrumentBook] = []
    threads = [threading.Thread(target=lambda: results.append(cache.book("UK9394", date(2026, 1, 7), fetch)))
               for _ in range(3)]  # fmt: skip
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert calls == ["A"]
    assert results[0] is results[1] is results[2]
    other = cache.book("UK1234", date(2026, 1, 7), nifty_rows)
    assert other is not results[0]
    cache.book("UK9394", date(2026, 1, 8), fetch)
    assert len(calls) == 2


@pytest.mark.parametrize(
    "spot", [Decimal("NaN"), float("nan"), float("inf"), Decimal("-Infinity"), "abc", 0, -5]
)
def test_spot_that_is_not_a_positive_number_is_a_plain_input_error(
    book: InstrumentBook, spot: object
) -> None:
    with pytest.raises(InputRejected, match="spot price must be a"):
        book.resolve_itm_option(Segment.NIFTY, spot, OptionRight.CE, 100, date(2026, 1, 7))  # type: ignore[arg-type]


def test_zero_offset_is_the_at_the_money_strike_for_both_rights(book: InstrumentBook) -> None:
    call = book.resolve_itm_option(Segment.NIFTY, Decimal("25912.5"), OptionRight.CE, 0, date(2026, 1, 7))
    put = book.resolve_itm_option(Segment.NIFTY, Decimal("25912.5"), OptionRight.PE, 0, date(2026, 1, 7))
    assert call.strike == put.strike == Decimal(25900)
    assert (call.right, put.right) == (OptionRight.CE, OptionRight.PE)
    assert call.tradingsymbol != put.tradingsymbol and call.expiry == put.expiry == date(2026, 1, 13)


@pytest.mark.parametrize("name", ["instruments_all.csv", "instruments_nse.csv"])
def test_our_dump_parser_gives_exactly_kiteconnects_rows(name: str) -> None:
    raw = (MOCKS / name).read_bytes()
    ours = parse_instruments_csv(raw)
    theirs = KiteConnect("k")._parse_instruments(raw)
    assert ours == theirs and len(ours) > 50
    dated = [r for r in ours if r["expiry"]]
    assert all(isinstance(r["expiry"], date) for r in dated)  # converted, not left as text


def test_an_unusual_ten_character_expiry_still_parses_like_kiteconnect() -> None:
    raw = (MOCKS / "instruments_all.csv").read_text().splitlines()
    header, row = raw[0], raw[1].split(",")
    row[5] = "13/01/2026"  # not ISO: dateutil reads it, as kiteconnect would
    text = "\n".join([header, ",".join(row)])
    assert parse_instruments_csv(text) == KiteConnect("k")._parse_instruments(text.encode())
    assert parse_instruments_csv(text)[0]["expiry"] == date(2026, 1, 13)
