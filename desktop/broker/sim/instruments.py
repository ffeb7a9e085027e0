"""The simulator's instruments: the three indices and their option chains, as Kite's instruments dump has them.

Tokens follow Kite's rule `instrument_token = exchange_token * 256 + segment id` (NFO 2, BFO 5,
indices 9). Option exchange tokens are derived from (name, expiry week, strike, right), so one contract
keeps its token across days and processes.
"""

from __future__ import annotations

import calendar
import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from desktop.domain import Segment

INSTRUMENTS_CSV_HEADER = (
    "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,"
    "instrument_type,segment,exchange"
)
SEGMENT_IDS = {"NSE": 1, "NFO": 2, "BSE": 4, "BFO": 5, "INDICES": 9}
OPTION_TICK = Decimal("0.05")
STRIKES_EACH_SIDE = 32  # 1,043 instruments a day: the 1000-instrument benches fit
LOT_SIZES = {Segment.NIFTY: 65, Segment.BANKNIFTY: 30, Segment.SENSEX: 20}
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_WEEKLY_MONTH_CODES = "123456789OND"
_TOKEN_EPOCH = date(2020, 1, 6)  # a Monday; expiry weeks are counted from it
_NAME_CODES = {Segment.NIFTY: 0, Segment.BANKNIFTY: 1, Segment.SENSEX: 0}  # SENSEX lives in BFO alone


@dataclass(frozen=True, slots=True)
class SimInstrument:
    """One row of the simulator's instruments dump."""

    instrument_token: int
    exchange_token: int
    tradingsymbol: str
    name: str
    exchange: str
    segment: str  # "INDICES", "NFO-OPT", "BFO-OPT"
    instrument_type: str  # "EQ" for the indices (as Kite's dump), "CE", "PE"
    expiry: date | None
    strike: Decimal
    lot_size: int
    tick_size: Decimal
    underlying_token: int | None  # the index token for an option, None for an index

    @property
    def is_option(self) -> bool:
        """True for a CE or PE contract."""
        return self.underlying_token is not None

    @property
    def is_call(self) -> bool:
        """True for a CE contract."""
        return self.instrument_type == "CE"


def last_weekday_of_month(year: int, month: int, weekday: int) -> date:
    """The last given weekday (Monday = 0) of a month: the monthly expiry."""
    last = date(year, month, calendar.monthrange(year, month)[1])
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def monthly_expiries(trading_day: date, weekday: int, count: int) -> list[date]:
    """The next `count` monthly expiries on or after the trading day."""
    year, month = trading_day.year, trading_day.month
    out: list[date] = []
    while len(out) < count:
        expiry = last_weekday_of_month(year, month, weekday)
        if expiry >= trading_day:
            out.append(expiry)
        year, month = _next_month(year, month)
    return out


def weekly_expiries(trading_day: date, weekday: int, count: int) -> list[date]:
    """The next `count` weekly expiries on or after the trading day (the expiry day itself counts)."""
    first = trading_day + timedelta(days=(weekday - trading_day.weekday()) % 7)
    return [first + timedelta(weeks=i) for i in range(count)]


def listed_expiries(segment: Segment, trading_day: date) -> list[date]:
    """Expiries listed on a day: two weeklies plus the monthly (NIFTY, SENSEX); two monthlies (BANKNIFTY)."""
    weekday = segment.spec.expiry_weekday
    if segment is Segment.BANKNIFTY:
        return monthly_expiries(trading_day, weekday, 2)
    weeklies = weekly_expiries(trading_day, weekday, 2)
    monthlies = monthly_expiries(trading_day, weekday, 2)
    expiries = set(weeklies) | {monthlies[0]}
    if monthlies[0] in weeklies:
        expiries.add(monthlies[1])
    return sorted(expiries)


def is_monthly_expiry(expiry: date) -> bool:
    """True when no later same weekday falls in the expiry's month."""
    return (expiry + timedelta(weeks=1)).month != expiry.month


def option_tradingsymbol(name: str, expiry: date, strike: int, right: str) -> str:
    """Kite's tradingsymbol: monthly `NIFTY26JAN25000CE`, weekly `NIFTY2611325000CE`."""
    yy = f"{expiry.year % 100:02d}"
    if is_monthly_expiry(expiry):
        return f"{name}{yy}{_MONTHS[expiry.month - 1]}{strike}{right}"
    return f"{name}{yy}{_WEEKLY_MONTH_CODES[expiry.month - 1]}{expiry.day:02d}{strike}{right}"


def option_exchange_token(segment: Segment, expiry: date, strike: int, right: str) -> int:
    """A stable exchange token below 2**24 (so the instrument token fits Kite's uint32 tick field)."""
    week = (expiry - _TOKEN_EPOCH).days // 7
    steps = strike // segment.spec.strike_step
    if not (0 <= week < 1024 and 0 < steps < 4096):
        raise ValueError(f"cannot number {segment.value} {expiry} {strike}: outside the simulator's range")
    # steps > 0 keeps the token non-zero; the largest value stays below 2**24.
    return ((week * 2 + _NAME_CODES[segment]) * 4096 + steps) * 2 + (right == "PE")


def index_instrument(segment: Segment) -> SimInstrument:
    """The index row of a segment (not tradable, segment INDICES, type EQ as in Kite's dump)."""
    spec = segment.spec
    return SimInstrument(
        instrument_token=spec.index_token,
        exchange_token=spec.index_token >> 8,
        tradingsymbol=spec.index_symbol,
        name=spec.index_symbol,
        exchange=spec.index_exchange,
        segment="INDICES",
        instrument_type="EQ",
        expiry=None,
        strike=Decimal(0),
        lot_size=0,
        tick_size=Decimal(0),
        underlying_token=None,
    )


def option_chain(segment: Segment, trading_day: date, open_level: Decimal) -> list[SimInstrument]:
    """CE and PE contracts of every listed expiry, strikes within ±STRIKES_EACH_SIDE steps of the day's open."""
    spec = segment.spec
    step = spec.strike_step
    atm = int((open_level / step).to_integral_value()) * step
    exchange = spec.option_exchange
    seg_id = SEGMENT_IDS[exchange]
    rows: list[SimInstrument] = []
    for expiry in listed_expiries(segment, trading_day):
        for strike in range(atm - STRIKES_EACH_SIDE * step, atm + STRIKES_EACH_SIDE * step + 1, step):
            for right in ("CE", "PE"):
                exchange_token = option_exchange_token(segment, expiry, strike, right)
                rows.append(
                    SimInstrument(
                        instrument_token=exchange_token * 256 + seg_id,
                        exchange_token=exchange_token,
                        tradingsymbol=option_tradingsymbol(spec.name, expiry, strike, right),
                        name=spec.name,
                        exchange=exchange,
                        segment=f"{exchange}-OPT",
                        instrument_type=right,
                        expiry=expiry,
                        strike=Decimal(strike),
                        lot_size=LOT_SIZES[segment],
                        tick_size=OPTION_TICK,
                        underlying_token=spec.index_token,
                    )
                )
    return rows


def _number(value: Decimal) -> str:
    # Kite writes floats such as 0.0 and 25000.0; a numeric cell is never empty.
    return repr(float(value))


def instruments_csv(rows: Iterable[tuple[SimInstrument, Decimal]]) -> str:
    """Kite's instruments dump for (instrument, last price) rows, with its exact header."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    buf.write(INSTRUMENTS_CSV_HEADER + "\n")
    for inst, last_price in rows:
        writer.writerow(
            [
                inst.instrument_token,
                inst.exchange_token,
                inst.tradingsymbol,
                inst.name,
                _number(last_price),
                inst.expiry.isoformat() if inst.expiry else "",
                _number(inst.strike),
                _number(inst.tick_size),
                inst.lot_size,
                inst.instrument_type,
                inst.segment,
                inst.exchange,
            ]
        )
    return buf.getvalue()
