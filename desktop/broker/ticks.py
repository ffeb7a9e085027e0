"""Kite's WebSocket tick protocol: binary frames → `QuoteTick` / `desktop.domain.Tick`, and text frames.

Design decision (issue 3 §3): KiteDesk speaks the ticker protocol with its own asyncio client
(`aiohttp`, one event-loop thread per account feed; see `stream.py`) instead of `KiteTicker`, because:
- `KiteTicker` runs on Twisted's process-global reactor: any ticker's `stop()` stops it for every
  session in the process, and it can never be restarted (`ReactorNotRestartable`). Closing one tab
  must never silence another.
- Its `subscribe`/`set_mode`/`close` write to the socket from the caller's thread, which Twisted does
  not allow; our feed marshals every command onto its own loop.
- Since 5.0.1 it sends no pings, so it cannot notice a silent connection; we need our own watchdog and
  our own reconnect that rebuilds the URL with a new access token after a re-login.
- It turns prices into floats and timestamps into machine-local time; we need exact `Decimal` prices
  and IST wall-clock times whatever the machine's time zone.
So this module parses frames itself. `tests/broker/test_ticks.py` checks it field by field against
`KiteTicker._parse_binary` on the official captures and on hypothesis-generated frames.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import numpy as np

from desktop.domain import Tick

IST = timezone(timedelta(hours=5, minutes=30), "IST")

MODE_LTP = "ltp"
MODE_QUOTE = "quote"
MODE_FULL = "full"
MODES = (MODE_LTP, MODE_QUOTE, MODE_FULL)

# Segment ids in the low byte of an instrument token (KITE.md).
SEG_CDS, SEG_BCD, SEG_NCO, SEG_INDICES = 3, 6, 12, 9
_HUNDRED = Decimal(100)
_ZERO = Decimal(0)
_DIVISORS = {SEG_CDS: Decimal(10_000_000), SEG_BCD: Decimal(10_000), SEG_NCO: Decimal(10_000)}

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


def price_divisor(instrument_token: int) -> Decimal:
    """Paise → rupees (100) for most segments; CDS 1e7; BCD and NCO 1e4."""
    return _DIVISORS.get(instrument_token & 0xFF, _HUNDRED)


def ist_from_epoch(seconds: int) -> datetime:
    """An exchange epoch timestamp as a naive IST wall-clock datetime (never machine-local time)."""
    return datetime.fromtimestamp(seconds, IST).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class DepthLevel:
    """One level of market depth."""

    quantity: int
    price: Decimal
    orders: int


@dataclass(frozen=True, slots=True)
class QuoteTick:
    """Everything one tick packet carries; fields absent from its mode stay at their defaults."""

    instrument_token: int
    mode: str
    tradable: bool
    last_price: Decimal
    last_traded_quantity: int = 0
    average_traded_price: Decimal = Decimal(0)
    volume_traded: int = 0
    total_buy_quantity: int = 0
    total_sell_quantity: int = 0
    open: Decimal = Decimal(0)
    high: Decimal = Decimal(0)
    low: Decimal = Decimal(0)
    close: Decimal = Decimal(0)
    last_trade_time: datetime | None = None
    oi: int = 0
    oi_day_high: int = 0
    oi_day_low: int = 0
    exchange_timestamp: datetime | None = None
    # The 120 depth bytes of a full packet, decoded only when asked for: most consumers never look at
    # depth, and decoding it up front was most of the parsing cost (issue 5's 30,000 ticks/s).
    depth_bytes: bytes = field(default=b"", repr=False)

    @property
    def buy_depth(self) -> tuple[DepthLevel, ...]:
        """Five bid levels, best first (empty below full mode)."""
        return _decode_depth(self.depth_bytes, self.instrument_token)[:5]

    @property
    def sell_depth(self) -> tuple[DepthLevel, ...]:
        """Five offer levels, best first (empty below full mode)."""
        return _decode_depth(self.depth_bytes, self.instrument_token)[5:]

    def to_tick(self) -> Tick:
        """The engine's small tick type."""
        # Positionally, in Tick's field order (instrument_token, last_price, exchange_timestamp, volume, oi):
        # keywords cost more than the rest of the call.
        tick: Any = _TickBuilder(
            self.instrument_token, self.last_price, self.exchange_timestamp, self.volume_traded, self.oi
        )
        tick.__class__ = Tick  # frozen from here on (see `_fast_frozen`)
        return tick  # type: ignore[no-any-return]


def _fast_frozen(cls: type) -> type:
    """A mutable twin of the frozen, slotted dataclass `cls` (same fields, defaults and slot layout) whose
    instances the parser turns into `cls` instances by assigning `__class__`.

    Python 3.11 builds a frozen dataclass through `object.__setattr__` field by field: a 19-field `QuoteTick`
    cost about 2 µs, more than decoding its packet, for every tick of every frame (issue 24's replay
    throughput). The twin's plain `__init__` and the class assignment (allowed between classes of the same
    slot layout, checked here once) cost a tenth of that. What comes out is an ordinary `cls`: frozen,
    equal to and hashing like one built the usual way (tests/broker/test_ticks.py checks it).
    """
    fields = [
        (f.name, f.type, dataclasses.field(default=f.default, default_factory=f.default_factory))
        for f in dataclasses.fields(cls)
    ]
    twin = dataclasses.make_dataclass("_Building" + cls.__name__, fields, slots=True, eq=False)
    if twin.__slots__ != cls.__slots__ or twin.__basicsize__ != cls.__basicsize__:  # type: ignore[attr-defined]
        raise TypeError(f"{cls.__name__}: the twin's slots differ, the class assignment would fail")
    return twin


class _Rupees(dict[int, Decimal]):
    """Paise (or the segment's price unit) → rupees, remembered: a frame repeats most prices (each packet's
    open, high, low and close, and last prices that move a tick at a time), and a `Decimal` division costs
    about ten dictionary look-ups. Bounded: emptied when it holds `limit` prices. The division is exact
    (at most ten digits), so the thread's decimal context cannot change a remembered value."""

    def __init__(self, divisor: Decimal, limit: int = 1 << 15) -> None:
        super().__init__()
        self.divisor = divisor
        self.limit = limit

    def __missing__(self, raw: int) -> Decimal:
        value = Decimal(raw) / self.divisor
        if len(self) >= self.limit:
            self.clear()
        self[raw] = value
        return value


_RUPEES = {seg: _Rupees(div) for seg, div in _DIVISORS.items()}
_RUPEES_DEFAULT = _Rupees(_HUNDRED)


def split_packets(frame: bytes) -> list[bytes]:
    """The packets of a binary frame; a heartbeat (1 byte) or a truncated frame yields what is whole."""
    if len(frame) < 2:
        return []
    (count,) = _U16.unpack_from(frame, 0)
    return [frame[start : start + length] for start, length in _walk(frame, 2, count)]


def _walk(frame: bytes, pos: int, count: int) -> Iterator[tuple[int, int]]:
    """(start, length) of up to `count` whole packets from `pos` on, packet by packet."""
    n = len(frame)
    for _ in range(count):
        if pos + 2 > n:
            return
        (length,) = _U16.unpack_from(frame, pos)
        start, pos = pos + 2, pos + 2 + length
        if pos > n:
            return
        yield start, length


_DEPTH = struct.Struct(">" + "IIHxx" * 10)
_HEAD = {n: struct.Struct(f">{n // 4}I") for n in (8, 28, 32, 44)}
_HEAD[184] = struct.Struct(">16I")


def _decode_depth(raw: bytes, token: int) -> tuple[DepthLevel, ...]:
    if not raw:
        return ()
    div = price_divisor(token)
    v = _DEPTH.unpack(raw)
    return tuple(DepthLevel(v[i], Decimal(v[i + 1]) / div, v[i + 2]) for i in range(0, 30, 3))


@functools.lru_cache(maxsize=4096)
def ist_cached(seconds: int) -> datetime:
    """`ist_from_epoch`, remembered: every packet of a frame carries the same second, so it is converted
    once (a pure function of an immutable result, safe to share between threads)."""
    return ist_from_epoch(seconds)


_QuoteTickBuilder = _fast_frozen(QuoteTick)
_TickBuilder = _fast_frozen(Tick)
_TICK_FIELDS = ("instrument_token", "last_price", "exchange_timestamp", "volume", "oi")
if tuple(f.name for f in dataclasses.fields(Tick)) != _TICK_FIELDS:
    raise TypeError("Tick's fields changed: QuoteTick.to_tick passes them by position")


def parse_packet(packet: bytes) -> QuoteTick | None:
    """One packet as a QuoteTick, or None for a length the protocol does not define."""
    return parse_packet_at(packet, 0, len(packet))


def parse_packet_at(frame: bytes, start: int, n: int) -> QuoteTick | None:
    """The packet of length `n` at `start` of `frame` as a QuoteTick, or None for a length the protocol does not
    define: `parse_packet` without copying the packet out of its frame first (the feed decodes a frame's packets
    where they lie, `FrameIndex.spans`)."""
    head = _HEAD.get(n)
    if head is None:
        return None
    u = head.unpack_from(frame, start)
    token = u[0]
    rupees = _RUPEES.get(token & 0xFF, _RUPEES_DEFAULT)
    tradable = (token & 0xFF) != SEG_INDICES
    tick: Any
    # Every field positionally (keywords cost about a microsecond more a tick); the defaults as QuoteTick has them.
    if n == 184:  # full mode, what a session trades on: first
        tick = _QuoteTickBuilder(
            token, MODE_FULL, tradable, rupees[u[1]], u[2], rupees[u[3]], u[4], u[5], u[6], rupees[u[7]],
            rupees[u[8]], rupees[u[9]], rupees[u[10]], ist_cached(u[11]), u[12], u[13], u[14], ist_cached(u[15]),
            frame[start + 64 : start + 184],
        )  # fmt: skip
    elif n == 8:
        tick = _QuoteTickBuilder(
            token, MODE_LTP, tradable, rupees[u[1]], 0, _ZERO, 0, 0, 0, _ZERO, _ZERO, _ZERO, _ZERO, None, 0, 0, 0,
            None, b"",
        )  # fmt: skip
    elif n in (28, 32):
        # Index packets: high, low, open, close (in that order), then the change we recompute anyway.
        tick = _QuoteTickBuilder(
            token, MODE_QUOTE if n == 28 else MODE_FULL, tradable, rupees[u[1]], 0, _ZERO, 0, 0, 0,
            rupees[u[4]], rupees[u[2]], rupees[u[3]], rupees[u[5]], None, 0, 0, 0,
            ist_cached(u[7]) if n == 32 else None, b"",
        )  # fmt: skip
    else:  # 44: quote mode
        tick = _QuoteTickBuilder(
            token, MODE_QUOTE, tradable, rupees[u[1]], u[2], rupees[u[3]], u[4], u[5], u[6], rupees[u[7]],
            rupees[u[8]], rupees[u[9]], rupees[u[10]], None, 0, 0, 0, None, b"",
        )  # fmt: skip
    tick.__class__ = QuoteTick  # frozen from here on (see `_fast_frozen`)
    return tick  # type: ignore[no-any-return]


_KNOWN_LENGTHS = frozenset(_HEAD)
_RUN_PROBE = 64  # packets checked at once for a run of equal lengths
_MAX_RUNS = 32  # runs looked for with numpy before the rest of the frame is walked packet by packet
_SMALL_FRAME = 32  # packets: a frame of at most this many is walked in Python (`_index_small`)


class FrameIndex:
    """Where a frame's tick packets are, without decoding them: token, start and length of each, in frame
    order (numpy arrays), and `seq`, the frame's number on its feed. Packets of a length the protocol does
    not define are left out, as `parse_frame` leaves them out. Never changed once made.

    A frame of a few packets (`_index_small`) carries the three columns as Python lists (`listed`) and makes
    the numpy arrays only if one is asked for (most such frames never are): a handful of numpy calls per frame
    cost more than the work itself there (a replay's frames hold a session's few instruments), so the methods
    below answer from the lists when they have them.
    """

    __slots__ = ("frame", "seq", "listed", "_tokens", "_starts", "_lengths")

    def __init__(
        self,
        frame: bytes,
        tokens: np.ndarray | None,
        starts: np.ndarray | None,
        lengths: np.ndarray | None,
        seq: int = 0,
        listed: tuple[list[int], list[int], list[int]] | None = None,  # tokens, starts, lengths
    ) -> None:
        """The arrays may be None only with `listed`: they are made from it when first asked for."""
        if listed is None and (tokens is None or starts is None or lengths is None):
            raise ValueError("a frame index needs its numpy columns or its lists")
        self.frame, self.seq, self.listed = frame, seq, listed
        self._tokens, self._starts, self._lengths = tokens, starts, lengths

    @property
    def tokens(self) -> np.ndarray:
        """The packets' instrument tokens (uint32)."""
        if self._tokens is None:
            assert self.listed is not None
            self._tokens = np.array(self.listed[0], np.uint32)
        return self._tokens

    @property
    def starts(self) -> np.ndarray:
        """Where each packet starts in `frame` (int64)."""
        if self._starts is None:
            assert self.listed is not None
            self._starts = np.array(self.listed[1], np.int64)
        return self._starts

    @property
    def lengths(self) -> np.ndarray:
        """Each packet's length (int64)."""
        if self._lengths is None:
            assert self.listed is not None
            self._lengths = np.array(self.listed[2], np.int64)
        return self._lengths

    def __len__(self) -> int:
        listed = self.listed
        return len(listed[0]) if listed is not None else len(self.tokens)

    def packet(self, i: int) -> bytes:
        """The raw packet at position `i`."""
        listed = self.listed
        if listed is not None:
            start = listed[1][i]
            return self.frame[start : start + listed[2][i]]
        start = int(self.starts[i])
        return self.frame[start : start + int(self.lengths[i])]

    def spans(self, positions: Iterable[int]) -> list[tuple[int, int]]:
        """(start, length) in `frame` of the packets at `positions` (`parse_packet_at` decodes them in place)."""
        listed = self.listed
        if listed is not None:
            starts, lengths = listed[1], listed[2]
            return [(starts[i], lengths[i]) for i in positions]
        return [(int(self.starts[i]), int(self.lengths[i])) for i in positions]

    def spans_of(self, wanted: frozenset[int]) -> list[tuple[int, int]]:
        """(start, length) of the packets whose token is in `wanted`, in frame order (`find_packets` of the frame)."""
        listed = self.listed
        if listed is not None:
            starts, lengths = listed[1], listed[2]
            return [(starts[i], lengths[i]) for i, token in enumerate(listed[0]) if token in wanted]
        if not wanted:
            return []
        return self.spans(self.positions_of(np.array(sorted(wanted), np.uint32)))

    def positions_of(self, tokens_sorted: np.ndarray) -> np.ndarray | list[int]:
        """Positions (frame order) of the packets whose token is in `tokens_sorted` (sorted, unique, and never
        changed in place: the feed replaces its arrays whole)."""
        listed = self.listed
        if listed is not None:
            wanted = _as_set(tokens_sorted)
            return [i for i, token in enumerate(listed[0]) if token in wanted]
        if not len(tokens_sorted) or not len(self.tokens):
            return np.empty(0, np.int64)
        at = np.minimum(np.searchsorted(tokens_sorted, self.tokens), len(tokens_sorted) - 1)
        return np.flatnonzero(tokens_sorted[at] == self.tokens)

    def last_position(self, token: int) -> int | None:
        """Position of `token`'s last packet in this frame, or None."""
        listed = self.listed
        if listed is not None:
            tokens = listed[0]
            for i in range(len(tokens) - 1, -1, -1):
                if tokens[i] == token:
                    return i
            return None
        hits = np.flatnonzero(self.tokens == token)
        return int(hits[-1]) if len(hits) else None

    def same_tokens(self, other: FrameIndex) -> bool:
        """True when `other` holds packets of the same tokens in the same order."""
        if self.listed is not None and other.listed is not None:
            return self.listed[0] == other.listed[0]
        return len(self.tokens) == len(other.tokens) and bool(np.array_equal(self.tokens, other.tokens))

    def deliveries(self, tokens_sorted: np.ndarray, counts: np.ndarray) -> int:
        """The sum, over this frame's packets, of `counts[k]` where `tokens_sorted[k]` is the packet's token
        (how many streams get each packet; tokens not listed count 0). Arrays as in `positions_of`."""
        if not len(tokens_sorted):
            return 0
        if self.listed is not None:
            get = _as_counts(tokens_sorted, counts).get
            return sum([get(token, 0) for token in self.listed[0]])
        at = np.minimum(np.searchsorted(tokens_sorted, self.tokens), len(tokens_sorted) - 1)
        return int(counts[at][tokens_sorted[at] == self.tokens].sum())


# The feed's sorted token arrays as a set and a dict, worked out once per array (arrays are replaced whole, never
# changed in place; the array itself is kept beside its id so a new array at a reused id is not mistaken for it).
_SETS: dict[int, tuple[np.ndarray, frozenset[int]]] = {}
_COUNTS: dict[int, tuple[np.ndarray, np.ndarray, dict[int, int]]] = {}
_REMEMBERED = 16


def _as_set(tokens_sorted: np.ndarray) -> frozenset[int]:
    hit = _SETS.get(id(tokens_sorted))
    if hit is not None and hit[0] is tokens_sorted:
        return hit[1]
    wanted = frozenset(tokens_sorted.tolist())
    if len(_SETS) >= _REMEMBERED:
        _SETS.clear()
    _SETS[id(tokens_sorted)] = (tokens_sorted, wanted)
    return wanted


def _as_counts(tokens_sorted: np.ndarray, counts: np.ndarray) -> dict[int, int]:
    hit = _COUNTS.get(id(tokens_sorted))
    if hit is not None and hit[0] is tokens_sorted and hit[1] is counts:
        return hit[2]
    per_token = dict(zip(tokens_sorted.tolist(), counts.tolist(), strict=True))
    if len(_COUNTS) >= _REMEMBERED:
        _COUNTS.clear()
    _COUNTS[id(tokens_sorted)] = (tokens_sorted, counts, per_token)
    return per_token


def index_frame(frame: bytes, seq: int = 0) -> FrameIndex:
    """Finds a binary frame's packets: what the feed does with every frame before deciding what to decode.

    A frame is a count, then packets each prefixed with its length, so finding them is a walk; walked in
    Python it cost about 1 µs a packet, 1-2 ms for a frame of a thousand instruments, on the feed's thread
    with the GIL held while every agent waited for the frame (issue 5). A frame mostly repeats one packet
    length (every instrument in one mode), so the walk goes by runs: it guesses the next packets have the
    length of the one it stands on and checks all their length prefixes at once with numpy, stopping at
    the first that differs. A frame of many short runs is walked packet by packet after `_MAX_RUNS` runs.
    A truncated frame keeps what is whole, as `split_packets` does.
    """
    n = len(frame)
    if n < 2:
        return _empty_index(frame, seq)
    (count,) = _U16.unpack_from(frame, 0)
    if count <= _SMALL_FRAME:
        return _index_small(frame, count, seq)
    buf = np.frombuffer(frame, np.uint8)
    starts: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    pos, done, runs = 2, 0, 0
    while done < count and pos + 2 <= n and runs < _MAX_RUNS:
        (length,) = _U16.unpack_from(frame, pos)
        step = length + 2
        fit = min(count - done, (n - pos) // step)  # whole packets left if all were this long
        if fit == 0:
            break
        k = _run_length(buf, pos, step, length, fit)
        if length in _KNOWN_LENGTHS:
            starts.append(np.arange(pos + 2, pos + 2 + k * step, step, dtype=np.int64))
            lengths.append(np.full(k, length, np.int64))
        pos += k * step
        done += k
        runs += 1
    if done < count:  # many short runs: the rest packet by packet
        rest = [
            (start, length) for start, length in _walk(frame, pos, count - done) if length in _KNOWN_LENGTHS
        ]
        starts.append(np.array([start for start, _ in rest], np.int64))
        lengths.append(np.array([length for _, length in rest], np.int64))
    if not starts:
        return _empty_index(frame, seq)
    at = np.concatenate(starts)
    return FrameIndex(frame, _tokens_at(buf, at), at, np.concatenate(lengths), seq)


def index_if_small(frame: bytes, seq: int = 0) -> FrameIndex | None:
    """`index_frame` of a frame of at most `_SMALL_FRAME` packets, else None: for a frame that small, finding its
    packets is the same walk as `find_packets`, so the feed indexes it once, before its decisions (a replay's frames
    carry a session's few instruments: walked twice, they cost issue 24's throughput a tenth)."""
    if len(frame) < 2 or _U16.unpack_from(frame, 0)[0] > _SMALL_FRAME:
        return None
    return index_frame(frame, seq)


def find_packets(frame: bytes, wanted: frozenset[int]) -> list[tuple[int, int]]:
    """(start, length) of the packets of the `wanted` tokens in `frame`, in frame order: exactly the packets
    `index_frame(frame).positions_of(...)` finds for them (lengths the protocol does not define left out, a
    truncated frame keeping what is whole), without indexing the rest of the frame.

    What the feed does first with every frame, before any decision (issue 18): a frame carries a thousand
    watched instruments and the few packets some segment decides on (indices, held options); indexing them all
    with numpy cost 0.1-0.3 ms on a cold core before the first decision. Here the frame's length prefixes are
    checked a run of equal lengths at a time with bytes operations (a strided slice of the prefixes' bytes,
    `lstrip` to count the leading ones that match: C loops, no numpy), and within a run only the packets
    whose token's second-lowest byte matches a wanted token's are looked at (`bytes.find` on a strided slice of
    that byte), each confirmed by its whole token at a packet start. Never assumes a length: Kite mixes modes
    in one frame, and a length the protocol does not define is stepped over as the walk does. After
    `_MAX_RUNS` runs the rest is walked packet by packet."""
    n = len(frame)
    if n < 2 or not wanted:
        return []
    count = _U16.unpack_from(frame, 0)[0]
    u16, u32, known = _U16.unpack_from, _U32.unpack_from, _KNOWN_LENGTHS
    out: list[tuple[int, int]] = []
    pos, done, runs = 2, 0, 0
    if count > _SMALL_FRAME:
        keys = _second_bytes(wanted)
        while done < count and pos + 2 <= n and runs < _MAX_RUNS:
            length = u16(frame, pos)[0]
            step = length + 2
            fit = min(count - done, (n - pos) // step)  # whole packets left if all were this long
            if fit == 0:
                break
            k = 1
            if fit > 1:  # how many of the next packets have this length too (their prefixes' two bytes)
                end = pos + fit * step
                hi = frame[pos + step : end : step]
                lo = frame[pos + step + 1 : end : step]
                k += min(
                    len(hi) - len(hi.lstrip(_BYTE[length >> 8])),
                    len(lo) - len(lo.lstrip(_BYTE[length & 0xFF])),
                )
            if length in known:
                first = pos + 2  # the run's first packet (its token is its first four bytes)
                if k < 4:
                    out += [
                        (s, length)
                        for s in range(first, first + k * step, step)
                        if u32(frame, s)[0] in wanted
                    ]
                else:
                    column = frame[
                        first + 2 : first + k * step : step
                    ]  # each packet's token's second-lowest byte
                    for key, tokens in keys:
                        i = column.find(key)
                        while i >= 0:
                            s = first + i * step
                            if u32(frame, s)[0] in tokens:
                                out.append((s, length))
                            i = column.find(key, i + 1)
                    if len(keys) > 1:
                        out.sort()
            pos += k * step
            done += k
            runs += 1
    for _ in range(count - done):  # a small frame, or many short runs: packet by packet (`_walk`, inlined)
        if pos + 2 > n:
            break
        length = u16(frame, pos)[0]
        start, pos = pos + 2, pos + 2 + length
        if pos > n:
            break
        if length in known and u32(frame, start)[0] in wanted:
            out.append((start, length))
    return out


_BYTE = [bytes((b,)) for b in range(256)]


@functools.lru_cache(maxsize=64)
def _second_bytes(wanted: frozenset[int]) -> tuple[tuple[bytes, frozenset[int]], ...]:
    """The wanted tokens grouped by their second-lowest byte (what `find_packets` searches a run's column for)."""
    groups: dict[int, set[int]] = {}
    for token in wanted:
        groups.setdefault((token >> 8) & 0xFF, set()).add(token)
    return tuple((_BYTE[b], frozenset(tokens)) for b, tokens in sorted(groups.items()))


def _index_small(frame: bytes, count: int, seq: int) -> FrameIndex:
    """`index_frame` of a frame of a few packets, walked in Python: a handful of numpy calls cost more than
    the walk itself there (a replay's frames carry a session's few instruments: issue 24's throughput)."""
    tokens: list[int] = []
    starts: list[int] = []
    lengths: list[int] = []
    u16, u32, known = _U16.unpack_from, _U32.unpack_from, _KNOWN_LENGTHS
    pos, n = 2, len(frame)
    for _ in range(count):  # `_walk`, inlined
        if pos + 2 > n:
            break
        length = u16(frame, pos)[0]
        start, pos = pos + 2, pos + 2 + length
        if pos > n:
            break
        if length in known:  # every known length holds the 4-byte token
            tokens.append(u32(frame, start)[0])
            starts.append(start)
            lengths.append(length)
    return FrameIndex(frame, None, None, None, seq, (tokens, starts, lengths))


def _run_length(buf: np.ndarray, pos: int, step: int, length: int, fit: int) -> int:
    """How many packets from `pos` on (at most `fit`, at least 1) have the length `length`."""
    hi, lo = length >> 8, length & 0xFF
    checked = 1
    probe = min(fit, _RUN_PROBE)
    while checked < fit:
        first, end = pos + checked * step, pos + probe * step
        bad = np.flatnonzero((buf[first:end:step] != hi) | (buf[first + 1 : end + 1 : step] != lo))
        if len(bad):
            return checked + int(bad[0])
        checked, probe = probe, fit
    return checked


def _tokens_at(buf: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The big-endian uint32 (instrument token) at each packet start."""
    b = [buf[starts + i].astype(np.uint32) for i in range(4)]
    return (b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]


def _empty_index(frame: bytes, seq: int) -> FrameIndex:
    none = np.empty(0, np.int64)
    return FrameIndex(frame, np.empty(0, np.uint32), none, none, seq)


class LatestPackets:
    """The latest raw packet of every token a feed has seen, any thread may read (`get`).

    Copying each of a thousand packets out of every frame cost the feed about as much as walking it, so
    the last `depth` frames are kept whole with their index, and a frame that leaves them gives up a copy
    only of the packets no newer frame carries (usually none: each frame has every instrument).
    """

    def __init__(self, depth: int = 4) -> None:
        self._lock = threading.Lock()
        self._depth = depth
        self._frames: collections.deque[FrameIndex] = collections.deque()
        self._older: dict[int, bytes] = {}
        self._forgotten: dict[int, int] = {}  # token -> seq of the newest frame when it was forgotten

    def add(self, index: FrameIndex) -> None:
        """Keeps `index`'s packets as the latest of their tokens (the feed's thread)."""
        if not len(index):
            return
        with self._lock:
            self._frames.append(index)
            if len(self._frames) <= self._depth:
                return
            gone = self._frames.popleft()
            self._keep_older(gone)
            if self._forgotten:  # a cutoff older than every kept frame has nothing left to hide
                oldest = self._frames[0].seq
                self._forgotten = {t: seq for t, seq in self._forgotten.items() if seq >= oldest}

    def _keep_older(self, gone: FrameIndex) -> None:
        """Copies out the packets of a leaving frame that no kept frame carries (under the lock)."""
        newest = self._frames[-1]
        if gone.same_tokens(newest):
            return
        newer = np.concatenate([f.tokens for f in self._frames])
        for i in np.flatnonzero(~np.isin(gone.tokens, newer)):
            token = int(gone.tokens[i])
            if self._forgotten.get(token, -1) < gone.seq:
                self._older[token] = gone.packet(int(i))

    def get(self, token: int) -> bytes | None:
        """The latest packet of `token`, or None."""
        with self._lock:
            cutoff = self._forgotten.get(token, -1)
            for index in reversed(self._frames):
                if index.seq <= cutoff:
                    return None
                i = index.last_position(token)
                if i is not None:
                    return index.packet(i)
            return self._older.get(token)

    def forget(self, token: int) -> None:
        """Drops `token`'s packets: nobody wants it, and a later subscriber must not get a stale price."""
        with self._lock:
            self._older.pop(token, None)
            if self._frames:
                self._forgotten[token] = self._frames[-1].seq
            else:
                self._forgotten.pop(token, None)


class TickBatch(list[QuoteTick]):
    """Ticks of one frame, with the moment (`time.perf_counter()`) the frame arrived (latency probes).

    `wakes`, when the frame's reader provides it, collects wake-ups a consumer asks for while the frame is
    being handed out (`wake_after`); the reader runs them once every consumer has its part. Waking thirty
    agents one by one while handing the frame on made each woken agent fight the reader for the GIL, so
    the last sessions got the frame late (issue 5's tick-to-intent); now they all get it first.
    """

    __slots__ = ("received", "wakes")

    def __init__(
        self, received: float, ticks: Iterable[QuoteTick] = (), wakes: list[Callable[[], None]] | None = None
    ) -> None:
        super().__init__(ticks)
        self.received = received
        self.wakes = wakes

    def wake_after(self, wake: Callable[[], None]) -> None:
        """Runs `wake()` once the whole frame has been handed out, or now if nobody collects wake-ups."""
        if self.wakes is None:
            wake()
        else:
            self.wakes.append(wake)


def parse_frame(frame: bytes) -> list[QuoteTick]:
    """Every tick in one binary frame, in order; unknown packet lengths are skipped as KiteTicker does."""
    ticks = []
    for packet in split_packets(frame):
        tick = parse_packet(packet)
        if tick is not None:
            ticks.append(tick)
    return ticks


@dataclass(frozen=True, slots=True)
class TextMessage:
    """A server text frame: kind is 'order', 'error' or 'message'; data is its payload."""

    kind: str
    data: Any


def parse_text(payload: str | bytes) -> TextMessage | None:
    """A server text frame, or None when it is not the JSON object the protocol defines."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("type"), str):
        return None
    return TextMessage(doc["type"], doc.get("data"))


def pack_frame(packets: list[bytes]) -> bytes:
    """A binary frame holding `packets` (for the simulator-free tests and replay)."""
    out = [_U16.pack(len(packets))]
    for p in packets:
        out.append(_U16.pack(len(p)))
        out.append(p)
    return b"".join(out)
