"""What Kite and the exchanges accept for index OPTION orders: one module, read by the simulator and PAPER.

The simulator (`desktop.broker.sim.book`) and the paper gateway (`desktop.broker.paper`) both ask these
functions, so a test on the simulator and a PAPER day meet the same refusals a LIVE account meets. Each rule
is a pure function that returns the refusal in words (or None when the order passes); the caller turns it
into its own error (an InputException on the simulator, `InputRejected` at the paper gateway). Every rule
names its source; docs/KITE-RULES.md lists them for a reader who does not read code.

Prices are Decimal rupees. "Reference price" for limit price protection is the contract's last traded
price here: the exchanges compute it from recent trades, and the LTP is the nearest thing a client sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

TICK = Decimal("0.05")  # tick size of NSE and BSE index options (the instruments dump's tick_size)
OPTION_EXCHANGES = ("NFO", "BFO")  # index options trade on NSE F&O (NFO) and BSE F&O (BFO)
BSE_EXCHANGES = ("BFO",)

# ---------------------------------------------------------------------------------------------- SL-M
# NSE withdrew stop-loss-market orders for index and stock options on 27 September 2021 (the exchange
# answers reject 16052, "function not available"); BSE discontinued SL-M in all its segments. Zerodha's
# Kite blocks such an order itself, before it reaches the exchange, with an input error.
SL_M_REFUSED = (
    "Stop loss market orders are not allowed for option contracts. "
    "Place a stop-loss limit (SL) order instead."
)


def is_option_exchange(exchange: str) -> bool:
    """True for the F&O exchanges whose contracts this app trades (index options)."""
    return exchange.upper() in OPTION_EXCHANGES


def order_type_refusal(exchange: str, order_type: str) -> str | None:
    """SL-M is refused for options on NFO and BFO (NSE since Sept 2021, BSE in every segment)."""
    if order_type.upper() == "SL-M" and is_option_exchange(exchange):
        return SL_M_REFUSED
    return None


# ---------------------------------------------------------------------------------------------- tick
def on_tick(price: Decimal) -> bool:
    """True when the price is a whole number of 0.05 ticks (exchange tick size for index options)."""
    return price % TICK == 0


def tick_refusal(name: str, price: Decimal) -> str | None:
    """Kite refuses a price or trigger that is not on the contract's tick size."""
    return None if on_tick(price) else f"`{name}` {price} is not a multiple of the tick size {TICK}."


def tick_floor(price: Decimal) -> Decimal:
    """The price rounded down to a tick (never below one tick)."""
    return max((price / TICK).to_integral_value(ROUND_FLOOR) * TICK, TICK)


def tick_ceiling(price: Decimal) -> Decimal:
    """The price rounded up to a tick."""
    return max((price / TICK).to_integral_value(ROUND_CEILING) * TICK, TICK)


# ---------------------------------------------------------------------------------------------- SL gap
# NSE caps the gap between an option SL order's trigger and its limit: at most ₹10 when the trigger is
# ₹50 or less, at most 20 % of the trigger above ₹50. It is checked on placement and on every modification
# (Zerodha support calls a refusal "beyond the exchange permissible range for SL"). No BSE figure was found:
# the same cap is applied to BFO options, the stricter choice. A trailing stop that
# moves only its trigger widens the gap until a modification is refused: send the limit with the trigger.
SL_GAP_SMALL_PREMIUM = Decimal(50)
SL_GAP_FLAT = Decimal(10)
SL_GAP_PERCENT = Decimal(20)


def sl_gap_cap(trigger: Decimal) -> Decimal:
    """The widest trigger-to-limit gap the exchange accepts for an option SL with this trigger."""
    if trigger <= SL_GAP_SMALL_PREMIUM:
        return SL_GAP_FLAT
    return trigger * SL_GAP_PERCENT / 100


def sl_gap_refusal(trigger: Decimal, price: Decimal) -> str | None:
    """An option SL whose |trigger − limit| is above the cap is refused (placement and modification)."""
    cap = sl_gap_cap(trigger)
    if abs(trigger - price) <= cap:
        return None
    return (
        f"Trigger price {trigger} and limit price {price} are {abs(trigger - price)} apart: beyond the "
        f"exchange permissible range for SL orders in options (at most {cap.quantize(Decimal('0.01'))})."
    )


# ---------------------------------------------------------------------------------------------- trigger
def trigger_refusal(side: str, trigger: Decimal, ltp: Decimal | None) -> str | None:
    """A sell stop's trigger must be below the LTP (a buy stop's above it); Kite refuses one that is not.

    Such a stop would trigger at once: Kite refuses it rather than fill it; exit at once instead.
    No LTP known (a contract not traded yet in PAPER) leaves nothing to compare.
    """
    if ltp is None:
        return None
    if side.upper() == "SELL" and trigger >= ltp:
        return (
            f"Trigger price {trigger} for a stop-loss sell order must be lower than the last traded "
            f"price {ltp}."
        )
    if side.upper() == "BUY" and trigger <= ltp:
        return (
            f"Trigger price {trigger} for a stop-loss buy order must be higher than the last traded "
            f"price {ltp}."
        )
    return None


def trigger_limit_side_refusal(side: str, trigger: Decimal, price: Decimal) -> str | None:
    """A sell SL's limit is at or below its trigger (a buy SL's at or above): Kite's own input check."""
    if side.upper() == "BUY" and trigger > price:
        return "Trigger price for stoploss buy orders should be less than price."
    if side.upper() == "SELL" and trigger < price:
        return "Trigger price for stoploss sell orders should be higher than price."
    return None


# ---------------------------------------------------------------------------------------------- LPP
# Limit price protection. NSE (F&O circulars on LPP): an option limit more than 40 % away from the
# reference price when the premium is above ₹50, or more than ₹20 away when it is ₹50 or less, is refused.
# BSE: 60 % of the reference price, and never narrower than ₹30. For an SL order the check happens when it
# triggers (it then reaches the order book as a limit order): outside the band, the exchange CANCELS it.
NSE_LPP_SMALL_PREMIUM = Decimal(50)
NSE_LPP_PERCENT = Decimal(40)
NSE_LPP_FLAT = Decimal(20)
BSE_LPP_PERCENT = Decimal(60)
BSE_LPP_FLOOR = Decimal(30)


def lpp_band(exchange: str, reference: Decimal) -> tuple[Decimal, Decimal]:
    """The lowest and highest limit the exchange accepts around a reference price (on the tick)."""
    if exchange.upper() in BSE_EXCHANGES:
        width = max(reference * BSE_LPP_PERCENT / 100, BSE_LPP_FLOOR)
    elif reference > NSE_LPP_SMALL_PREMIUM:
        width = reference * NSE_LPP_PERCENT / 100
    else:
        width = NSE_LPP_FLAT
    return tick_ceiling(reference - width), tick_floor(reference + width)


def lpp_refusal(exchange: str, price: Decimal, reference: Decimal | None) -> str | None:
    """A limit outside the limit price protection band is refused (no reference known: no check)."""
    if reference is None or reference <= 0:
        return None
    low, high = lpp_band(exchange, reference)
    if low <= price <= high:
        return None
    return (
        f"Limit price {price} is outside the exchange's limit price protection range {low}–{high} "
        f"around the reference price {reference}."
    )


def lpp_cancel_message(exchange: str, price: Decimal, reference: Decimal) -> str | None:
    """Why a triggered SL is cancelled by the exchange: its limit is outside LPP at trigger time."""
    low, high = lpp_band(exchange, reference)
    if low <= price <= high:
        return None
    return (
        f"Cancelled by the exchange: the triggered stop-loss order's limit {price} is outside the limit "
        f"price protection range {low}–{high} (reference price {reference})."
    )


# ---------------------------------------------------------------------------------------------- Zerodha
# Zerodha's risk system refuses an option limit SELL priced more than 50 % below the LTP when the LTP is
# ₹100 or more (a fat-finger guard; it matters on BSE, whose LPP band is wider than 50 %).
ZERODHA_SELL_LTP_FLOOR = Decimal(100)
ZERODHA_SELL_MAX_BELOW = Decimal("0.5")


def zerodha_sell_limit_refusal(side: str, price: Decimal, ltp: Decimal | None) -> str | None:
    """A limit sell more than 50 % below an LTP of ₹100 or more is refused by Zerodha's RMS."""
    if side.upper() != "SELL" or ltp is None or ltp < ZERODHA_SELL_LTP_FLOOR:
        return None
    if price >= ltp * ZERODHA_SELL_MAX_BELOW:
        return None
    return (
        f"Limit sell price {price} is more than 50% below the last traded price {ltp}: "
        "Zerodha blocks such option orders. Use a price closer to the market."
    )


# ---------------------------------------------------------------------------------------------- MARKET
# Since April 2026 a MARKET order through the API must carry market_protection (Kite refuses it without
# one). Kite converts it into a LIMIT order at the protected price (LTP plus the protection for a buy, minus
# for a sell; the order book then lists it as LIMIT) and the exchange's LPP still applies to that limit.
# What cannot fill at once rests OPEN at that limit. -1 asks Kite to choose the protection; the simulator and
# PAPER use the exchange's own mark-up band for index options for it: 20 % of the LTP, at least ₹10.
# An option with no trade yet that day takes no MARKET order at all (NSE reject 17181).
AUTO_PROTECTION_PERCENT = Decimal(20)
AUTO_PROTECTION_FLAT = Decimal(10)
UNTRADED_MARKET_REFUSED = (
    "Market orders are not allowed in a contract that has not traded today "
    "(exchange reject 17181). Place a limit order."
)


def protected_price(exchange: str, side: str, ltp: Decimal, market_protection: int) -> Decimal:
    """The limit a MARKET order becomes: LTP ± protection, on the tick, kept inside the LPP band."""
    if market_protection == -1:
        width = max(ltp * AUTO_PROTECTION_PERCENT / 100, AUTO_PROTECTION_FLAT)
    else:
        width = ltp * Decimal(market_protection) / 100
    low, high = lpp_band(exchange, ltp)
    if side.upper() == "BUY":
        return min(tick_floor(ltp + width), high)
    return max(tick_ceiling(ltp - width), low)


def market_refusal(traded_today: bool) -> str | None:
    """A MARKET order in an option with no trade yet today is refused."""
    return None if traded_today else UNTRADED_MARKET_REFUSED


# ---------------------------------------------------------------------------------------------- modifications
# Kite allows at most 25 modifications of one order (Kite Connect's documented limits); the 26th is refused.
# A stop that trails or chases must stay within them, or cancel and place a new order.
MAX_MODIFICATIONS = 25
MODIFICATIONS_EXCEEDED = (
    f"Maximum allowed order modifications exceeded: Kite allows {MAX_MODIFICATIONS} per order. "
    "Cancel it and place a new order."
)


def modification_refusal(done: int) -> str | None:
    """The next modification of an order already modified `done` times is refused past Kite's 25."""
    return MODIFICATIONS_EXCEEDED if done >= MAX_MODIFICATIONS else None


# ---------------------------------------------------------------------------------------------- freeze
@dataclass(frozen=True, slots=True)
class FreezeLimit:
    """The most units one order of an underlying's options may carry, and where that figure comes from."""

    underlying: str
    units: int
    source: str
    as_of: date | None


# The exchanges revise these often and Kite has no API for them: keep them here, in one table, with the
# circular they come from, and let settings override them (freeze_quantity's `overrides`).
FREEZE_LIMITS: Mapping[str, FreezeLimit] = {
    "NIFTY": FreezeLimit("NIFTY", 1800, "NSE F&O circular of 30 January 2026", date(2026, 1, 30)),
    "BANKNIFTY": FreezeLimit("BANKNIFTY", 600, "NSE F&O circular of 30 January 2026", date(2026, 1, 30)),
    # No published source was found for SENSEX: 1,000 units (50 lots of 20) is configuration, not a fact.
    "SENSEX": FreezeLimit("SENSEX", 1000, "configuration: no BSE circular found", None),
}


# Lot sizes of the January 2026 series (NSE and BSE circulars). Orders always read the lot size from the day's
# instruments dump; these serve only where no dump is at hand (the parameter form's note on slicing).
USUAL_LOT_SIZES: Mapping[str, int] = {"NIFTY": 65, "BANKNIFTY": 30, "SENSEX": 20}


def freeze_quantity(underlying: str, overrides: Mapping[str, int] | None = None) -> int | None:
    """The freeze quantity (units) of an underlying's options: an override first, then the table."""
    name = underlying.upper()
    if overrides and name in overrides:
        return int(overrides[name])
    limit = FREEZE_LIMITS.get(name)
    return limit.units if limit else None


def freeze_refusal(underlying: str, quantity: int, overrides: Mapping[str, int] | None = None) -> str | None:
    """An order above the underlying's freeze quantity is refused by the exchange."""
    freeze = freeze_quantity(underlying, overrides)
    if freeze is None or quantity <= freeze:
        return None
    return f"Quantity {quantity} exceeds the freeze limit of {freeze}."


# ---------------------------------------------------------------------------------------------- whole
@dataclass(frozen=True, slots=True)
class OptionOrder:
    """The fields of an option order (new, or as it would be after a modification) the rules read."""

    exchange: str
    side: str  # "BUY" | "SELL"
    order_type: str  # "MARKET" | "LIMIT" | "SL" | "SL-M"
    price: Decimal | None = None  # the limit (LIMIT, SL)
    trigger_price: Decimal | None = None  # SL


def order_refusal(
    order: OptionOrder,
    ltp: Decimal | None,
    *,
    triggered: bool = False,
    traded_today: bool = True,
) -> str | None:
    """The first rule a new or modified option order breaks, in Kite's order of checks, or None.

    `triggered`: the order is an SL that has already triggered (a modification of a live limit): its trigger
    is no longer compared with the LTP, its limit is checked against LPP instead. The gap cap still applies.
    """
    if not is_option_exchange(order.exchange):
        return None
    refusal = order_type_refusal(order.exchange, order.order_type)
    if refusal:
        return refusal
    price, trigger = order.price, order.trigger_price
    for name, value in (("price", price), ("trigger_price", trigger)):
        if value is not None and value > 0 and (refusal := tick_refusal(name, value)):
            return refusal
    if order.order_type in ("LIMIT", "SL") and price is None:
        return f"A {order.order_type} order needs a limit price."
    if order.order_type == "SL" and trigger is None:
        return "An SL order needs a trigger price."
    if order.order_type == "SL" and price is not None and trigger is not None:
        refusal = trigger_limit_side_refusal(order.side, trigger, price) or sl_gap_refusal(trigger, price)
        if refusal:
            return refusal
        if not triggered:
            return trigger_refusal(order.side, trigger, ltp)
    if order.order_type == "LIMIT" or (order.order_type == "SL" and triggered):
        assert price is not None
        return lpp_refusal(order.exchange, price, ltp) or (
            zerodha_sell_limit_refusal(order.side, price, ltp) if order.order_type == "LIMIT" else None
        )
    if order.order_type == "MARKET":
        return market_refusal(traded_today)
    return None
