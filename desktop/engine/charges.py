"""Zerodha's charges on an executed F&O order: what turns a replay's gross P&L into its net P&L.

Pure arithmetic on `Decimal`, per executed order (Zerodha's brokerage is per executed order, and the other
charges are proportional to turnover, so summing per order is exact to the paisa). Each charge is rounded to the
paisa, as a contract note shows it.

Rates and where they come from (checked in December 2026):
- Brokerage: index and stock options, a flat ₹20 per executed order; futures, ₹20 or 0.03 % of the order's
  turnover, whichever is lower (Zerodha's charges page and its support article "What is the brokerage for
  Futures and Options?"). Options are NOT charged the lower of the two: the flat ₹20 applies however small.
- STT on options, on the sell side only, on the premium: 0.1 % from 1 October 2024 (Finance (No. 2) Act 2024),
  0.15 % from 1 April 2026 (Finance Act 2026, the Union Budget of 1 February 2026). Futures: 0.02 % of the sell
  side from 1 October 2024, 0.05 % from 1 April 2026.
- Exchange transaction charges, both sides, on the premium: NSE options 0.03503 %, BSE (SENSEX, BANKEX)
  options 0.0325 %, the flat rates both exchanges adopted on 1 October 2024 under SEBI's "true to label"
  circular of July 2024. Futures: NSE 0.00173 %, BSE 0. NSE's investor-protection fund charge (IPFT) is not
  included (brokers show it within or beside this line differently).
- SEBI turnover fee: ₹10 per crore (0.0001 %), both sides.
- GST: 18 % of (brokerage + exchange transaction charges + SEBI fee).
- Stamp duty: on the buy side only, options 0.003 % (₹300 per crore), futures 0.002 %, under the Indian Stamp Act
  as amended from 1 July 2020.
Days before 1 October 2024 are charged at the 1 October 2024 rates (older rates are not modelled).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from desktop.domain import Side

_PAISA = Decimal("0.01")
_PCT = Decimal("0.01")
FLAT_BROKERAGE = Decimal(20)
FUTURES_BROKERAGE_RATE = Decimal("0.03") * _PCT
SEBI_RATE = Decimal("0.0001") * _PCT
GST_RATE = Decimal(18) * _PCT
STAMP_RATE = {"option": Decimal("0.003") * _PCT, "future": Decimal("0.002") * _PCT}
EXCHANGE_RATE = {
    ("NSE", "option"): Decimal("0.03503") * _PCT,
    ("BSE", "option"): Decimal("0.0325") * _PCT,
    ("NSE", "future"): Decimal("0.00173") * _PCT,
    ("BSE", "future"): Decimal(0),
}
# STT on the sell side, by the day it applies from (latest first).
STT_SCHEDULE = (
    (date(2026, 4, 1), {"option": Decimal("0.15") * _PCT, "future": Decimal("0.05") * _PCT}),
    (date(2024, 10, 1), {"option": Decimal("0.1") * _PCT, "future": Decimal("0.02") * _PCT}),
)
# Kite's F&O exchanges -> the exchange that charges it.
_EXCHANGE_OF = {"NFO": "NSE", "BFO": "BSE", "NSE": "NSE", "BSE": "BSE"}


@dataclass(frozen=True, slots=True)
class Charges:
    """The charges of one executed order (or a sum of them), in rupees."""

    brokerage: Decimal = Decimal(0)
    stt: Decimal = Decimal(0)
    exchange: Decimal = Decimal(0)
    sebi: Decimal = Decimal(0)
    gst: Decimal = Decimal(0)
    stamp: Decimal = Decimal(0)

    @property
    def total(self) -> Decimal:
        """Everything together."""
        return self.brokerage + self.stt + self.exchange + self.sebi + self.gst + self.stamp

    def __add__(self, other: Charges) -> Charges:
        return Charges(
            self.brokerage + other.brokerage, self.stt + other.stt, self.exchange + other.exchange,
            self.sebi + other.sebi, self.gst + other.gst, self.stamp + other.stamp,
        )  # fmt: skip


def _paise(x: Decimal) -> Decimal:
    return x.quantize(_PAISA, rounding=ROUND_HALF_UP)


def stt_rates(day: date) -> dict[str, Decimal]:
    """The sell-side STT rates (option, future) in force on `day`."""
    for since, rates in STT_SCHEDULE:
        if day >= since:
            return rates
    return STT_SCHEDULE[-1][1]


def order_charges(
    *, exchange: str, side: Side, turnover: Decimal, day: date, instrument: str = "option"
) -> Charges:
    """Zerodha's charges on one executed order of `turnover` rupees (premium × quantity for an option).

    `exchange`: NFO/BFO (or NSE/BSE); `instrument`: "option" or "future". ValueError in words otherwise.
    """
    if instrument not in ("option", "future"):
        raise ValueError(f"instrument must be option or future, not {instrument!r}")
    where = _EXCHANGE_OF.get(exchange.upper())
    if where is None:
        raise ValueError(f"{exchange} is not an F&O exchange KiteDesk charges (NFO, BFO)")
    turnover = Decimal(turnover)
    if turnover < 0:
        raise ValueError("an order's turnover cannot be negative")
    if turnover == 0:
        return Charges()
    if instrument == "option":
        brokerage = FLAT_BROKERAGE
    else:
        brokerage = min(FLAT_BROKERAGE, _paise(turnover * FUTURES_BROKERAGE_RATE))
    stt = _paise(turnover * stt_rates(day)[instrument]) if side is Side.SELL else Decimal(0)
    exchange_fee = _paise(turnover * EXCHANGE_RATE[(where, instrument)])
    sebi = _paise(turnover * SEBI_RATE)
    gst = _paise((brokerage + exchange_fee + sebi) * GST_RATE)
    stamp = _paise(turnover * STAMP_RATE[instrument]) if side is Side.BUY else Decimal(0)
    return Charges(brokerage, stt, exchange_fee, sebi, gst, stamp)
