"""Our tick parser agrees with KiteTicker's own parser, field by field, with exact prices and IST times."""

from __future__ import annotations

import base64
import struct
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kiteconnect import KiteTicker

from desktop.broker.ticks import (
    IST,
    FrameIndex,
    LatestPackets,
    QuoteTick,
    TickBatch,
    find_packets,
    index_frame,
    pack_frame,
    parse_frame,
    parse_packet,
    parse_text,
    split_packets,
)

MOCKS = Path("/work/shared/kite-mocks")


def kite_parse(frame: bytes) -> list[dict[str, Any]]:
    return KiteTicker("key", "token")._parse_binary(frame)


def as_ist(local_naive: datetime | None) -> datetime | None:
    """KiteTicker gives machine-local naive times; the same instant as naive IST."""
    return None if local_naive is None else local_naive.astimezone(IST).replace(tzinfo=None)


def assert_same(ours: QuoteTick, theirs: dict[str, Any]) -> None:
    assert ours.instrument_token == theirs["instrument_token"]
    assert ours.mode == theirs["mode"] and ours.tradable == theirs["tradable"]
    assert isinstance(ours.last_price, Decimal)
    assert float(ours.last_price) == theirs["last_price"]
    if "ohlc" in theirs:
        for k in ("open", "high", "low", "close"):
            assert float(getattr(ours, k)) == theirs["ohlc"][k], k
    if "volume_traded" in theirs:
        assert ours.last_traded_quantity == theirs["last_traded_quantity"]
        assert float(ours.average_traded_price) == theirs["average_traded_price"]
        assert ours.volume_traded == theirs["volume_traded"]
        assert ours.total_buy_quantity == theirs["total_buy_quantity"]
        assert ours.total_sell_quantity == theirs["total_sell_quantity"]
    if "exchange_timestamp" in theirs:
        assert ours.exchange_timestamp == as_ist(theirs["exchange_timestamp"])
    if "depth" in theirs:
        assert ours.last_trade_time == as_ist(theirs["last_trade_time"])
        assert (ours.oi, ours.oi_day_high, ours.oi_day_low) == (
            theirs["oi"],
            theirs["oi_day_high"],
            theirs["oi_day_low"],
        )
        for side, levels in (("buy", ours.buy_depth), ("sell", ours.sell_depth)):
            assert len(levels) == len(theirs["depth"][side]) == 5
            for mine, ref in zip(levels, theirs["depth"][side], strict=True):
                assert (mine.quantity, float(mine.price), mine.orders) == (
                    ref["quantity"],
                    ref["price"],
                    ref["orders"],
                )


def mock_packet(name: str) -> bytes:
    return base64.b64decode((MOCKS / name).read_text())


@pytest.mark.parametrize("name", ["ticker_full.packet", "ticker_quote.packet"])
def test_official_captures_parse_exactly_like_kiteticker(name: str) -> None:
    frame = pack_frame([mock_packet(name)])
    ours, theirs = parse_frame(frame), kite_parse(frame)
    assert len(ours) == len(theirs) == 1
    assert_same(ours[0], theirs[0])


def test_quote_capture_values_are_exact_decimals() -> None:
    (tick,) = parse_frame(pack_frame([mock_packet("ticker_quote.packet")]))
    assert tick.instrument_token == 408065
    assert tick.last_price == Decimal("1573.15")
    assert tick.close == Decimal("1567.8")
    assert tick.to_tick().last_price == Decimal("1573.15")


def test_full_capture_timestamp_is_ist_wall_clock_whatever_the_machine_zone() -> None:
    packet = mock_packet("ticker_full.packet")
    (epoch,) = struct.unpack_from(">I", packet, 60)
    (tick,) = parse_frame(pack_frame([packet]))
    # epoch seconds counted from 1970-01-01 05:30 IST, independent of the machine's TZ setting
    assert tick.exchange_timestamp == datetime(1970, 1, 1, 5, 30) + timedelta(seconds=epoch)
    assert tick.exchange_timestamp.tzinfo is None


def test_currency_and_commodity_segments_use_their_divisors() -> None:
    cds = struct.pack(">II", (1234 << 8) | 3, 745_012_500)  # CDS: 1e7
    bcd = struct.pack(">II", (99 << 8) | 6, 745_012)  # BCD: 1e4
    ours = parse_frame(pack_frame([cds, bcd]))
    assert [t.last_price for t in ours] == [Decimal("74.50125"), Decimal("74.5012")]
    for mine, ref in zip(ours, kite_parse(pack_frame([cds, bcd])), strict=True):
        assert_same(mine, ref)


def test_heartbeat_and_truncated_frames_yield_nothing_broken() -> None:
    assert parse_frame(b"\x00") == []
    whole = pack_frame([mock_packet("ticker_quote.packet")])
    assert split_packets(whole[:-3]) == []


def test_index_packets_are_not_tradable() -> None:
    packet = struct.pack(">7I", 256265, 2598740, 2600000, 2590000, 2595000, 2591000, 0)
    (tick,) = parse_frame(pack_frame([packet]))
    assert tick.tradable is False and tick.high == Decimal("26000") and tick.open == Decimal("25950")


def test_text_frames_parse_order_updates_and_ignore_garbage() -> None:
    msg = parse_text('{"type":"order","data":{"order_id":"1","tag":"KDabc"}}')
    assert msg is not None and msg.kind == "order" and msg.data["tag"] == "KDabc"
    assert parse_text("not json") is None
    assert parse_text("[1,2]") is None


u32 = st.integers(min_value=0, max_value=2**32 - 1)
packet_strategy = st.one_of(
    st.tuples(u32, st.binary(min_size=n - 4, max_size=n - 4)).map(lambda t: struct.pack(">I", t[0]) + t[1])
    for n in (8, 28, 32, 44, 184)
)
# KiteTicker itself crashes on packets under 4 bytes, so the comparison keeps to 4 and more.
odd_packet = st.binary(min_size=4, max_size=60).filter(lambda b: len(b) not in (8, 28, 32, 44))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(packet_strategy, odd_packet), min_size=0, max_size=6))
def test_generated_frames_parse_exactly_like_kiteticker(packets: list[bytes]) -> None:
    frame = pack_frame(packets)
    ours, theirs = parse_frame(frame), kite_parse(frame)
    assert len(ours) == len(theirs)
    for mine, ref in zip(ours, theirs, strict=True):
        assert_same(mine, ref)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=80))
def test_arbitrary_bytes_never_crash_the_parser(frame: bytes) -> None:
    assert all(isinstance(t, QuoteTick) for t in parse_frame(frame))


def by_token(index: FrameIndex) -> dict[int, bytes]:
    """Every packet of an indexed frame by token (a token twice keeps its later packet), in frame order."""
    return {int(t): index.packet(i) for i, t in enumerate(index.tokens)}


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(packet_strategy, odd_packet), min_size=0, max_size=6, unique_by=lambda p: p[:4]))
def test_split_packets_by_token_decode_to_exactly_what_the_full_parse_gives(packets: list[bytes]) -> None:
    frame = pack_frame(packets)
    split = by_token(index_frame(frame))
    decoded = [parse_packet(p) for p in split.values()]
    assert [t for t in decoded if t is not None] == parse_frame(frame)
    assert all(token == t.instrument_token for token, t in zip(split, decoded, strict=True) if t is not None)


def test_a_token_twice_in_one_frame_keeps_its_later_packet_and_truncation_keeps_what_is_whole() -> None:
    first = struct.pack(">II", 1317282306, 100_00)
    later = struct.pack(">II", 1317282306, 101_00)
    other = struct.pack(">II", 256265, 250_000_00)
    frame = pack_frame([first, other, later])
    assert by_token(index_frame(frame)) == {1317282306: later, 256265: other}
    assert by_token(index_frame(frame[:-3])) == {1317282306: first, 256265: other}
    assert by_token(index_frame(b"\x00")) == {}


def reference_index(frame: bytes) -> list[tuple[int, bytes]]:
    """What `index_frame` must find, by the packet-by-packet walk of `split_packets`."""
    return [(int.from_bytes(p[:4], "big"), p) for p in split_packets(frame) if len(p) in (8, 28, 32, 44, 184)]


def indexed(frame: bytes) -> list[tuple[int, bytes]]:
    index = index_frame(frame)
    return [(int(t), index.packet(i)) for i, t in enumerate(index.tokens)]


# Runs of equal-length packets (as a feed sends them), lengths the protocol defines and some it does not.
runs = st.lists(
    st.tuples(
        st.sampled_from([8, 28, 32, 44, 184, 0, 3, 6, 40, 200]), st.integers(min_value=1, max_value=70)
    ),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(runs, st.randoms(use_true_random=False), st.integers(min_value=0, max_value=400), st.booleans())
def test_index_frame_finds_exactly_the_packets_the_walk_finds(plan, rnd, cut, short_count) -> None:
    packets = [rnd.randbytes(length) for length, count in plan for _ in range(count)]
    frame = pack_frame(packets)
    if short_count and packets:  # a count smaller than the packets present: only that many are read
        frame = struct.pack(">H", len(packets) // 2) + frame[2:]
    if cut:  # a truncated frame keeps what is whole
        frame = frame[: max(0, len(frame) - cut)]
    assert indexed(frame) == reference_index(frame)


def test_a_frame_of_many_short_runs_is_walked_to_the_end() -> None:
    packets = [struct.pack(">I", i) + bytes(4 if i % 2 else 24) for i in range(200)]  # 8, 28, 8, 28, ...
    frame = pack_frame(packets)
    assert len(index_frame(frame)) == 200
    assert indexed(frame) == reference_index(frame)


def test_positions_of_finds_the_wanted_tokens_in_frame_order() -> None:
    packets = [struct.pack(">II", token, 1) for token in (5, 9, 7, 9, 11)]
    index = index_frame(pack_frame(packets))
    assert list(index.positions_of(np.array([7, 9], np.uint32))) == [1, 2, 3]
    assert list(index.positions_of(np.array([], np.uint32))) == []
    assert index.last_position(9) == 3 and index.last_position(4) is None


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=12), max_size=32),
    st.lists(st.integers(min_value=1, max_value=12), unique=True),
    st.integers(min_value=0, max_value=12),
)
def test_a_small_frames_python_lists_answer_as_its_numpy_columns_do(frame_tokens, wanted, probe) -> None:
    """Frames of a few packets carry their columns as lists too (`listed`, speed); every question asked of the
    index gets the same answer from the lists as from the numpy arrays."""
    small = index_frame(pack_frame([struct.pack(">II", t, i) for i, t in enumerate(frame_tokens)]), 3)
    assert small.listed is not None
    plain = FrameIndex(small.frame, small.tokens, small.starts, small.lengths, small.seq)  # numpy only
    tokens = np.array(sorted(wanted), np.uint32)
    counts = np.array([t * 10 + 1 for t in sorted(wanted)], np.int64)
    assert list(small.positions_of(tokens)) == plain.positions_of(tokens).tolist()
    assert small.deliveries(tokens, counts) == plain.deliveries(tokens, counts)
    assert small.last_position(probe) == plain.last_position(probe)
    assert [small.packet(i) for i in range(len(small))] == [plain.packet(i) for i in range(len(plain))]
    other = index_frame(pack_frame([struct.pack(">II", t, 0) for t in frame_tokens[::-1]]))
    assert small.same_tokens(other) == plain.same_tokens(other) == (frame_tokens == frame_tokens[::-1])
    # the remembered set and counts belong to the array they were made from, not to a later array at its id
    assert list(small.positions_of(np.array([probe], np.uint32))) == [
        i for i, t in enumerate(frame_tokens) if t == probe
    ]


def frame_of(seq: int, prices: dict[int, int]) -> FrameIndex:
    return index_frame(pack_frame([struct.pack(">II", t, p) for t, p in prices.items()]), seq)


def test_latest_packets_keep_each_tokens_newest_packet_across_frames_and_after_they_leave() -> None:
    latest = LatestPackets(depth=2)
    latest.add(frame_of(1, {1: 100, 2: 200}))
    latest.add(frame_of(2, {1: 101}))
    latest.add(frame_of(3, {1: 102, 3: 300}))  # frame 1 leaves: token 2 is in no newer frame, so it is kept
    latest.add(frame_of(4, {1: 103}))
    assert latest.get(1) == struct.pack(">II", 1, 103)
    assert latest.get(2) == struct.pack(">II", 2, 200)
    assert latest.get(3) == struct.pack(">II", 3, 300)
    assert latest.get(4) is None


def test_a_forgotten_token_has_no_latest_packet_until_a_newer_frame_brings_one() -> None:
    latest = LatestPackets(depth=2)
    latest.add(frame_of(1, {1: 100, 2: 200}))
    latest.add(frame_of(2, {2: 201}))
    latest.forget(1)
    assert latest.get(1) is None  # frame 1 is still kept, but not as token 1's latest
    latest.add(frame_of(3, {2: 202}))  # frame 1 leaves: its packet of the forgotten token is not kept
    latest.add(frame_of(4, {2: 203}))
    assert latest.get(1) is None
    latest.add(frame_of(5, {1: 105}))
    assert latest.get(1) == struct.pack(">II", 1, 105)


def test_a_forgotten_tokens_cutoff_is_dropped_once_every_frame_it_hid_has_left() -> None:
    latest = LatestPackets(depth=2)
    latest.add(frame_of(1, {1: 100, 2: 200}))
    for token in range(1, 1001):  # a day of subscribing and unsubscribing: the cutoffs must not pile up
        latest.forget(token)
    latest.add(frame_of(2, {2: 201}))
    assert latest.get(1) is None and len(latest._forgotten) == 1000  # frame 1 is still kept: still hidden
    latest.add(frame_of(3, {2: 202}))  # frame 1 leaves
    assert latest.get(1) is None and latest._forgotten == {}
    latest.add(frame_of(4, {1: 104}))
    assert latest.get(1) == struct.pack(">II", 1, 104)
    latest.forget(1)  # the newest frame (4) carries token 1: it stays hidden while frame 4 is kept
    latest.add(frame_of(5, {2: 205}))
    assert latest.get(1) is None and latest._forgotten == {1: 4}


def test_wake_after_runs_at_once_without_a_collector_and_later_with_one() -> None:
    woken: list[str] = []
    TickBatch(0.0).wake_after(lambda: woken.append("now"))
    assert woken == ["now"]
    wakes: list = []
    TickBatch(0.0, wakes=wakes).wake_after(lambda: woken.append("later"))
    assert woken == ["now"] and len(wakes) == 1
    wakes[0]()
    assert woken == ["now", "later"]


def test_a_parsed_tick_is_an_ordinary_frozen_quote_tick_equal_to_one_built_the_usual_way() -> None:
    """The parser builds ticks through a mutable twin and a class assignment (speed): what comes out must be
    indistinguishable from `QuoteTick(...)`: same type, equal, same hash, frozen; its `to_tick` likewise."""
    import dataclasses

    from desktop.domain import Tick

    stamp = 1_767_585_600  # 2026-01-05 09:30 IST
    head = struct.pack(">16I", 12_345_678, 10_050, 75, 10_010, 1_500, 300, 200, 9_900, 10_100, 9_800, 9_950,
                       stamp - 2, 42, 50, 40, stamp)  # fmt: skip
    tick = parse_packet(head + bytes(120))
    assert tick is not None and type(tick) is QuoteTick
    usual = QuoteTick(12_345_678, "full", True, Decimal("100.5"), 75, Decimal("100.1"), 1_500, 300, 200,
                      Decimal("99"), Decimal("101"), Decimal("98"), Decimal("99.5"),
                      datetime(2026, 1, 5, 9, 29, 58), 42, 50, 40, datetime(2026, 1, 5, 9, 30), bytes(120))  # fmt: skip
    assert tick == usual and hash(tick) == hash(usual) and repr(tick) == repr(usual)
    with pytest.raises(dataclasses.FrozenInstanceError):
        tick.last_price = Decimal(1)  # type: ignore[misc]
    small = Tick(12_345_678, Decimal("100.5"), datetime(2026, 1, 5, 9, 30), 1_500, 42)
    assert type(tick.to_tick()) is Tick and tick.to_tick() == small and hash(tick.to_tick()) == hash(small)
    with pytest.raises(dataclasses.FrozenInstanceError):
        tick.to_tick().oi = 1  # type: ignore[misc]
    index = parse_packet(struct.pack(">8I", 256_265, 2_500_000, 2_510_000, 2_490_000, 2_495_000, 2_480_000, 0,
                                     stamp))  # fmt: skip
    assert index == QuoteTick(256_265, "full", False, Decimal(25_000), high=Decimal(25_100), low=Decimal(24_900),
                              open=Decimal(24_950), close=Decimal(24_800),
                              exchange_timestamp=datetime(2026, 1, 5, 9, 30))  # fmt: skip


def test_remembered_prices_are_the_exact_division_in_every_segment() -> None:
    """Prices are remembered per segment's divisor (a CDS price of 1e7 units is not an NSE price of 100)."""
    nse, cds = 256_265, (1 << 8) | 3  # the low byte is the segment
    for raw in (1, 10_050, 74_501_250, 0):
        assert parse_packet(struct.pack(">II", nse, raw)).last_price == Decimal(raw) / 100  # type: ignore[union-attr]
        assert parse_packet(struct.pack(">II", cds, raw)).last_price == Decimal(raw) / 10_000_000  # type: ignore[union-attr]
        assert parse_packet(struct.pack(">II", nse, raw)).last_price == Decimal(raw) / 100  # type: ignore[union-attr]


@pytest.mark.parametrize("count", [1, 31, 32, 33, 64])
def test_small_and_large_frames_are_indexed_alike_around_the_python_walks_limit(count: int) -> None:
    """Frames of up to 32 packets are walked in Python, longer ones with numpy: both find what the walk finds,
    whole and truncated, with packets of a length the protocol does not define left out."""
    packets = [struct.pack(">II", 1000 + i, i) + bytes(24 if i % 3 == 0 else 176 if i % 3 == 1 else 0)
               for i in range(count)]  # fmt: skip
    packets.insert(count // 2, b"\x00" * 7)  # an undefined length
    frame = struct.pack(">H", count + 1) + pack_frame(packets)[2:]
    for cut in (0, 1, 40):
        part = frame[: len(frame) - cut]
        assert indexed(part) == reference_index(part)
        index = index_frame(part)
        assert index.tokens.dtype == np.uint32 and index.starts.dtype == index.lengths.dtype == np.int64


def found_by_index(frame: bytes, wanted: set[int]) -> list[tuple[int, int]]:
    """What `find_packets` must find: the packets `index_frame` finds for the wanted tokens, in frame order."""
    index = index_frame(frame)
    return index.spans(index.positions_of(np.array(sorted(wanted), np.uint32)))


@settings(max_examples=300, deadline=None)
@given(
    runs,
    st.randoms(use_true_random=False),
    st.integers(min_value=0, max_value=400),
    st.booleans(),
    st.integers(min_value=0, max_value=6),
)
def test_find_packets_finds_exactly_what_the_index_finds_for_the_wanted_tokens(
    plan, rnd, cut, short_count, picks
):
    """Runs of mixed modes and undefined lengths, a count smaller than the packets, a truncated frame: the packets
    found without indexing are the index's, and a wanted token's bytes inside another packet are never taken for
    a packet (each packet here also carries some wanted token in its data)."""
    tokens = [rnd.choice([256265, 260105, 265, 0x4F2A1E03, 0x4F2B1E03, 0x0000E903]) for _ in range(8)]
    packets = []
    for length, count in plan:
        for _ in range(count):
            body = bytearray(rnd.randbytes(length))
            if length >= 4:
                body[:4] = rnd.choice(tokens).to_bytes(4, "big")
            if length >= 12:  # a wanted token where a price would be: not a packet of that token
                body[8:12] = rnd.choice(tokens).to_bytes(4, "big")
            packets.append(bytes(body))
    frame = pack_frame(packets)
    if short_count and packets:
        frame = struct.pack(">H", len(packets) // 2) + frame[2:]
    if cut:
        frame = frame[: max(0, len(frame) - cut)]
    wanted = set(rnd.sample(tokens, min(picks, len(tokens))))
    assert find_packets(frame, frozenset(wanted)) == found_by_index(frame, wanted)
    assert index_frame(frame).spans_of(frozenset(wanted)) == found_by_index(frame, wanted)  # lists or numpy


def test_find_packets_in_a_frame_of_mixed_modes_steps_over_a_corrupt_length() -> None:
    """Index packets (32 bytes) among full option packets (184), an LTP packet, a packet of a length the protocol
    does not define (skipped as the walk skips it), then more packets: each wanted packet is found, in order."""
    index_packet = struct.pack(">8I", 256265, 2_500_000, 0, 0, 0, 0, 0, 1_767_844_800)
    options = [struct.pack(">I", 0x4F000003 + i * 256) + bytes(180) for i in range(100)]
    odd = struct.pack(">I", 256265) + bytes(36)  # 40 bytes: not a packet of the protocol
    ltp = struct.pack(">II", 265, 77_000)
    frame = pack_frame([*options[:40], index_packet, odd, *options[40:], ltp, index_packet])
    got = find_packets(frame, frozenset({256265, 265, 0x4F000003 + 70 * 256}))
    assert [(length, int.from_bytes(frame[s : s + 4], "big")) for s, length in got] == [
        (32, 256265), (184, 0x4F000003 + 70 * 256), (8, 265), (32, 256265)
    ]  # fmt: skip
    assert got == found_by_index(frame, {256265, 265, 0x4F000003 + 70 * 256})
    assert find_packets(frame, frozenset()) == [] and find_packets(b"\x00", frozenset({265})) == []
    many_runs = pack_frame(
        [index_packet if i % 2 else options[i % 100] for i in range(300)]
    )  # walked at the end
    assert find_packets(many_runs, frozenset({256265})) == found_by_index(many_runs, {256265})
    assert len(find_packets(many_runs, frozenset({256265}))) == 150
