"""The binary tick encoder against the official client's own parser (`KiteTicker._parse_binary`)."""

from __future__ import annotations

import base64
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kiteconnect import KiteTicker

from desktop.broker.sim.ticks import (
    HEARTBEAT,
    encode_frame,
    encode_full_packet,
    encode_index_packet,
    encode_ltp_packet,
    encode_quote_packet,
    ist_epoch,
)

MOCKS = Path("/work/shared/kite-mocks")
U32 = st.integers(0, 2**32 - 1)
U16 = st.integers(0, 2**16 - 1)
# Epochs the client can turn into a datetime on any platform (1971 .. 2100).
EPOCH = st.integers(31_536_000, 4_102_444_800)
# Tokens of segments whose prices are in paise (NSE 1, NFO 2, BSE 4, BFO 5) and of indices (9).
TRADABLE_TOKEN = st.builds(
    lambda x, seg: (x << 8) | seg, st.integers(0, 2**24 - 1), st.sampled_from([1, 2, 4, 5])
)
INDEX_TOKEN = st.builds(lambda x: (x << 8) | 9, st.integers(0, 2**24 - 1))
DEPTH = st.lists(st.tuples(U32, U32, U16), min_size=10, max_size=10)


@pytest.fixture(scope="module")
def ticker() -> KiteTicker:
    """A real KiteTicker, never connected: only its parser is used."""
    return KiteTicker("api_key", "access_token")


def parse(ticker: KiteTicker, frame: bytes) -> list[dict]:
    return ticker._parse_binary(frame)


def client_time(epoch: int) -> datetime:
    # The client turns epochs into naive local datetimes; compare in the same terms.
    return datetime.fromtimestamp(epoch)


@given(token=TRADABLE_TOKEN | INDEX_TOKEN, ltp=U32)
def test_ltp_packet_parses_to_token_and_price(ticker: KiteTicker, token: int, ltp: int) -> None:
    (tick,) = parse(ticker, encode_frame([encode_ltp_packet(token, ltp)]))
    assert tick["mode"] == "ltp"
    assert tick["instrument_token"] == token
    assert tick["last_price"] == ltp / 100
    assert tick["tradable"] is ((token & 0xFF) != 9)


@given(token=INDEX_TOKEN, prices=st.tuples(U32, U32, U32, U32, U32), change=st.integers(-(2**31), 2**31 - 1))
def test_index_quote_packet_parses_to_ohlc(
    ticker: KiteTicker, token: int, prices: tuple, change: int
) -> None:
    ltp, high, low, open_, close = prices
    packet = encode_index_packet(token, ltp, high, low, open_, close, change, None)
    assert len(packet) == 28
    (tick,) = parse(ticker, encode_frame([packet]))
    assert tick["mode"] == "quote" and tick["tradable"] is False
    assert tick["instrument_token"] == token
    assert tick["last_price"] == ltp / 100
    assert tick["ohlc"] == {"high": high / 100, "low": low / 100, "open": open_ / 100, "close": close / 100}


@given(token=INDEX_TOKEN, ltp=U32, close=U32, ts=EPOCH)
def test_index_full_packet_carries_the_exchange_timestamp(
    ticker: KiteTicker, token: int, ltp: int, close: int, ts: int
) -> None:
    packet = encode_index_packet(token, ltp, ltp, ltp, ltp, close, ltp - close, ts)
    assert len(packet) == 32
    (tick,) = parse(ticker, encode_frame([packet]))
    assert tick["mode"] == "full"
    assert tick["exchange_timestamp"] == client_time(ts)
    assert tick["ohlc"]["close"] == close / 100


QUOTE_FIELDS = st.tuples(TRADABLE_TOKEN, U32, U32, U32, U32, U32, U32, U32, U32, U32, U32)


def assert_quote_fields(tick: dict, fields: tuple) -> None:
    token, ltp, qty, avg, volume, buy, sell, open_, high, low, close = fields
    assert tick["instrument_token"] == token
    assert tick["last_price"] == ltp / 100
    assert tick["last_traded_quantity"] == qty
    assert tick["average_traded_price"] == avg / 100
    assert tick["volume_traded"] == volume
    assert tick["total_buy_quantity"] == buy
    assert tick["total_sell_quantity"] == sell
    assert tick["ohlc"] == {"open": open_ / 100, "high": high / 100, "low": low / 100, "close": close / 100}


@given(fields=QUOTE_FIELDS)
def test_quote_packet_parses_every_field(ticker: KiteTicker, fields: tuple) -> None:
    packet = encode_quote_packet(*fields)
    assert len(packet) == 44
    (tick,) = parse(ticker, encode_frame([packet]))
    assert tick["mode"] == "quote" and tick["tradable"] is True
    assert_quote_fields(tick, fields)


@given(fields=QUOTE_FIELDS, times=st.tuples(EPOCH, EPOCH), oi=st.tuples(U32, U32, U32), depth=DEPTH)
def test_full_packet_parses_every_field_and_depth(
    ticker: KiteTicker, fields: tuple, times: tuple, oi: tuple, depth: list
) -> None:
    last_trade, exchange_ts = times
    packet = encode_full_packet(
        *fields,
        last_trade_time=last_trade,
        oi=oi[0],
        oi_day_high=oi[1],
        oi_day_low=oi[2],
        exchange_ts=exchange_ts,
        depth=depth,
    )
    assert len(packet) == 184
    (tick,) = parse(ticker, encode_frame([packet]))
    assert tick["mode"] == "full"
    assert_quote_fields(tick, fields)
    assert tick["last_trade_time"] == client_time(last_trade)
    assert tick["exchange_timestamp"] == client_time(exchange_ts)
    assert (tick["oi"], tick["oi_day_high"], tick["oi_day_low"]) == oi
    expected = [{"quantity": q, "price": p / 100, "orders": o} for q, p, o in depth]
    assert tick["depth"]["buy"] == expected[:5]
    assert tick["depth"]["sell"] == expected[5:]


@given(
    ltps=st.lists(st.tuples(TRADABLE_TOKEN | INDEX_TOKEN, U32), min_size=0, max_size=30),
    quotes=st.lists(QUOTE_FIELDS, max_size=10),
    indices=st.lists(st.tuples(INDEX_TOKEN, U32, EPOCH), max_size=10),
)
def test_frame_of_mixed_packets_parses_in_order(
    ticker: KiteTicker, ltps: list, quotes: list, indices: list
) -> None:
    packets = [encode_ltp_packet(t, p) for t, p in ltps]
    packets += [encode_quote_packet(*q) for q in quotes]
    packets += [encode_index_packet(t, p, p, p, p, p, 0, ts) for t, p, ts in indices]
    ticks = parse(ticker, encode_frame(packets))
    assert [t["mode"] for t in ticks] == ["ltp"] * len(ltps) + ["quote"] * len(quotes) + ["full"] * len(
        indices
    )
    tokens = [t for t, _ in ltps] + [q[0] for q in quotes] + [t for t, _, _ in indices]
    assert [t["instrument_token"] for t in ticks] == tokens


def test_heartbeat_is_one_byte_and_parses_to_no_ticks(ticker: KiteTicker) -> None:
    assert HEARTBEAT == b"\x00"
    assert parse(ticker, HEARTBEAT) == []


def test_full_packet_refuses_a_depth_without_ten_levels() -> None:
    with pytest.raises(ValueError, match="10 depth levels"):
        encode_full_packet(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, depth=[(1, 2, 3)] * 5)


def test_ist_epoch_reads_a_naive_time_as_india_standard_time() -> None:
    assert ist_epoch(datetime(1970, 1, 1, 5, 30)) == 0
    assert ist_epoch(datetime(2026, 1, 8, 9, 15, 0, 999_999)) == 1_767_843_900
    with pytest.raises(ValueError):
        ist_epoch(datetime.fromisoformat("2026-01-08T09:15:00+05:30"))


def load_capture(name: str) -> bytes:
    return base64.b64decode((MOCKS / name).read_text())


def test_real_full_capture_reencodes_to_the_same_bytes(ticker: KiteTicker) -> None:
    captured = load_capture("ticker_full.packet")
    (tick,) = parse(ticker, encode_frame([captured]))
    paise = lambda rupees: round(rupees * 100)  # noqa: E731
    ohlc = tick["ohlc"]
    rebuilt = encode_full_packet(
        tick["instrument_token"],
        paise(tick["last_price"]),
        tick["last_traded_quantity"],
        paise(tick["average_traded_price"]),
        tick["volume_traded"],
        tick["total_buy_quantity"],
        tick["total_sell_quantity"],
        paise(ohlc["open"]),
        paise(ohlc["high"]),
        paise(ohlc["low"]),
        paise(ohlc["close"]),
        last_trade_time=int(tick["last_trade_time"].timestamp()),
        oi=tick["oi"],
        oi_day_high=tick["oi_day_high"],
        oi_day_low=tick["oi_day_low"],
        exchange_ts=int(tick["exchange_timestamp"].timestamp()),
        depth=[
            (d["quantity"], paise(d["price"]), d["orders"])
            for d in tick["depth"]["buy"] + tick["depth"]["sell"]
        ],
    )
    assert rebuilt == captured


def test_real_quote_capture_reencodes_to_the_same_bytes(ticker: KiteTicker) -> None:
    captured = load_capture("ticker_quote.packet")
    (tick,) = parse(ticker, encode_frame([captured]))
    paise = lambda rupees: round(rupees * 100)  # noqa: E731
    ohlc = tick["ohlc"]
    rebuilt = encode_quote_packet(
        tick["instrument_token"],
        paise(tick["last_price"]),
        tick["last_traded_quantity"],
        paise(tick["average_traded_price"]),
        tick["volume_traded"],
        tick["total_buy_quantity"],
        tick["total_sell_quantity"],
        paise(ohlc["open"]),
        paise(ohlc["high"]),
        paise(ohlc["low"]),
        paise(ohlc["close"]),
    )
    assert rebuilt == captured
