"""The day's instruments dump as an `InstrumentBook`, a per-account daily cache, and ITM option lookup.

Rows come from `KiteConnect.instruments()` (dicts with floats and dates) or straight from the CSV
(all strings); both become `desktop.domain.Instrument` with exact Decimal strikes and tick sizes.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Protocol

from desktop.broker.errors import InputRejected
from desktop.domain import Instrument, OptionRight, Segment

_log = logging.getLogger(__name__)
_NAME_FROM_SYMBOL = re.compile(r"^([A-Z&-]+?)\d")


class ContractNotFound(InputRejected):
    """No listed contract matches the request (wrong strike, no expiry left, instruments not loaded)."""


@dataclass(frozen=True, slots=True)
class OptionContract:
    """The option a session will trade: what an order needs plus its lot size."""

    tradingsymbol: str
    instrument_token: int
    exchange: str
    expiry: date
    strike: Decimal
    right: OptionRight
    lot_size: int


def _decimal(value: Any) -> Decimal:
    if isinstance(value, float):
        return Decimal(repr(value))
    try:
        return Decimal(str(value).strip() or "0")
    except InvalidOperation:
        return Decimal(0)


def _expiry(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value or "").strip()
    return date.fromisoformat(text[:10]) if len(text) >= 10 else None


def parse_instruments_csv(data: bytes | str) -> list[dict[str, Any]]:
    """The rows of an instruments dump as kiteconnect 5.2.2's `_parse_instruments` returns them (numbers
    converted, a 10-character expiry as a date), about twenty times faster.

    kiteconnect parses each expiry with dateutil (~0.1 ms a row, holding the GIL): a thousand rows held
    it for 130 ms while the window opened its sessions, and a real account's dump has tens of thousands.
    Kite writes expiries as YYYY-MM-DD, which `date.fromisoformat` reads; anything else goes to dateutil.
    """
    text = data.decode("utf-8").strip() if isinstance(data, bytes) else data
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        row_: dict[str, Any] = row
        row_["instrument_token"] = int(row["instrument_token"])
        row_["last_price"] = float(row["last_price"])
        row_["strike"] = float(row["strike"])
        row_["tick_size"] = float(row["tick_size"])
        row_["lot_size"] = int(row["lot_size"])
        expiry = row["expiry"]
        if len(expiry) == 10:
            try:
                row_["expiry"] = date.fromisoformat(expiry)
            except ValueError:
                import dateutil.parser  # kiteconnect's own dependency; only for an unusual date

                row_["expiry"] = dateutil.parser.parse(expiry).date()
        rows.append(row_)
    return rows


def instrument_from_row(row: Mapping[str, Any]) -> Instrument:
    """One instruments-dump row (parsed by kiteconnect or raw CSV strings) as an `Instrument`."""
    symbol = str(row["tradingsymbol"])
    name = str(row.get("name") or "").strip().strip('"')
    if not name:
        # Derivative rows of some dumps leave `name` empty: the underlying prefixes the symbol.
        match = _NAME_FROM_SYMBOL.match(symbol)
        name = match.group(1) if match else symbol
    return Instrument(
        instrument_token=int(row["instrument_token"]),
        exchange_token=int(row.get("exchange_token") or 0),
        tradingsymbol=symbol,
        name=name,
        exchange=str(row["exchange"]),
        segment=str(row.get("segment") or ""),
        instrument_type=str(row.get("instrument_type") or ""),
        expiry=_expiry(row.get("expiry")),
        strike=_decimal(row.get("strike", 0)),
        lot_size=int(float(row.get("lot_size") or 1)),
        tick_size=_decimal(row.get("tick_size", "0.05")),
    )


class InstrumentBook:
    """One day's instruments of one account, indexed for token lookup and option resolution."""

    def __init__(self, instruments: Iterable[Instrument], as_of: date) -> None:
        self.as_of = as_of
        self._by_token: dict[int, Instrument] = {}
        self._by_symbol: dict[tuple[str, str], Instrument] = {}
        # (name, exchange, right) -> expiry -> strike -> instrument
        self._options: dict[tuple[str, str, str], dict[date, dict[Decimal, Instrument]]] = {}
        for ins in instruments:
            self._by_token[ins.instrument_token] = ins
            self._by_symbol[(ins.exchange, ins.tradingsymbol)] = ins
            if ins.instrument_type in ("CE", "PE") and ins.expiry is not None:
                chain = self._options.setdefault((ins.name, ins.exchange, ins.instrument_type), {})
                chain.setdefault(ins.expiry, {})[ins.strike] = ins

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]], as_of: date) -> InstrumentBook:
        """A book from `KiteConnect.instruments()` rows (or csv.DictReader rows)."""
        return cls((instrument_from_row(r) for r in rows), as_of)

    def __len__(self) -> int:
        return len(self._by_token)

    def instruments(self) -> Iterable[Instrument]:
        """Every instrument of the book, in the dump's order."""
        return self._by_token.values()

    def by_token(self, instrument_token: int) -> Instrument | None:
        """The instrument with this token, or None."""
        return self._by_token.get(instrument_token)

    def by_symbol(self, exchange: str, tradingsymbol: str) -> Instrument | None:
        """The instrument `exchange:tradingsymbol`, or None."""
        return self._by_symbol.get((exchange, tradingsymbol))

    def expiries(self, underlying: Segment, right: OptionRight) -> list[date]:
        """Listed expiries of `underlying`'s `right` options, earliest first."""
        spec = underlying.spec
        return sorted(self._options.get((spec.name, spec.option_exchange, right.value), {}))

    def resolve_itm_option(
        self, underlying: Segment, spot: Decimal, right: OptionRight, itm_offset: int, as_of: date
    ) -> OptionContract:
        """The `itm_offset`-points in-the-money option of the nearest expiry on or after `as_of`."""
        spec = underlying.spec
        step = spec.strike_step
        if isinstance(itm_offset, bool) or not isinstance(itm_offset, int) or itm_offset < 0:
            raise InputRejected("ITM offset must be a whole number of points ≥ 0")
        if itm_offset % step:
            raise InputRejected(f"ITM offset must be a multiple of {spec.name}'s strike step {step} points")
        try:
            spot = Decimal(spot)
        except (InvalidOperation, TypeError, ValueError):
            raise InputRejected(f"{spec.name} spot price must be a number, got {spot!r}") from None
        if not spot.is_finite() or spot <= 0:
            raise InputRejected(f"{spec.name} spot price must be a positive number, got {spot}")
        atm = (spot / step).quantize(Decimal(1), rounding=ROUND_HALF_UP) * step
        strike = atm - itm_offset if right is OptionRight.CE else atm + itm_offset
        chain = self._options.get((spec.name, spec.option_exchange, right.value), {})
        upcoming = [e for e in sorted(chain) if e >= as_of]
        if not upcoming:
            raise ContractNotFound(
                f"no {spec.name} {right.value} options expiring on or after {as_of.isoformat()} "
                f"on {spec.option_exchange} in today's instruments"
            )
        expiry = upcoming[0]
        ins = chain[expiry].get(strike)
        if ins is None:
            raise ContractNotFound(
                f"no {spec.name} {right.value} at {strike:f} expiring on or after {as_of.isoformat()} "
                f"in today's instruments (nearest expiry {expiry.isoformat()})"
            )
        return OptionContract(
            tradingsymbol=ins.tradingsymbol,
            instrument_token=ins.instrument_token,
            exchange=ins.exchange,
            expiry=expiry,
            strike=ins.strike,
            right=right,
            lot_size=ins.lot_size,
        )


class DumpStore(Protocol):
    """Where the day's dump is kept (the local store's instruments cache)."""

    def save(self, *, broker_id: str, day: date, instruments: Iterable[Instrument]) -> int: ...


class InstrumentCache:
    """Instrument books per (account, day), fetched once; the caller owns it (never a module global).

    Two sessions of one account asking at once trigger one fetch: the second waits for the first. With a
    `dumps` store, each day's dump is also kept on disk, where the trade export finds every contract's
    expiry (a monthly symbol does not spell it). A restart still fetches afresh: the exchange lists new
    strikes during a day that moves a lot, and a demo's strikes follow its seed.
    """

    def __init__(self, dumps: DumpStore | None = None) -> None:
        self._dumps = dumps
        self._lock = threading.Lock()
        self._books: dict[tuple[str, date], InstrumentBook] = {}
        self._fetch_locks: dict[tuple[str, date], threading.Lock] = {}

    def book(
        self, broker_id: str, day: date, fetch: Callable[[], Iterable[Mapping[str, Any]]]
    ) -> InstrumentBook:
        """The book of `broker_id` for `day`, calling `fetch()` (e.g. `session.instruments`) on a miss."""
        key = (broker_id, day)
        with self._lock:
            cached = self._books.get(key)
            if cached is not None:
                return cached
            fetch_lock = self._fetch_locks.setdefault(key, threading.Lock())
        with fetch_lock:
            with self._lock:
                cached = self._books.get(key)
            if cached is not None:
                return cached
            book = self._fetched(broker_id, day, fetch)
            with self._lock:
                self._books[key] = book
                # Yesterday's books of this account are stale: drop them.
                for old in [k for k in self._books if k[0] == broker_id and k[1] != day]:
                    del self._books[old]
                self._fetch_locks.pop(key, None)
            return book

    def _fetched(
        self, broker_id: str, day: date, fetch: Callable[[], Iterable[Mapping[str, Any]]]
    ) -> InstrumentBook:
        book = InstrumentBook.from_rows(fetch(), day)
        if self._dumps is not None:
            try:
                self._dumps.save(broker_id=broker_id, day=day, instruments=_tradable_here(book))
            except Exception as exc:  # trading goes on without the copy; the export then lacks some expiries
                _log.warning("could not keep the instruments of %s for %s: %s", broker_id, day, exc)
        return book

    def put(self, broker_id: str, book: InstrumentBook) -> None:
        """Stores a book loaded elsewhere (e.g. from the local database)."""
        with self._lock:
            self._books[(broker_id, book.as_of)] = book


def _tradable_here(book: InstrumentBook) -> list[Instrument]:
    """The indices KiteDesk trades and their option chains: what an export or a replay of the day needs.

    A real account's dump has ~100,000 rows; these are a few thousand, so a year of days stays small.
    """
    names = {s.spec.name for s in Segment}
    tokens = {s.spec.index_token for s in Segment}
    return [i for i in book.instruments() if i.name in names or i.instrument_token in tokens]
