"""One simulated account: its order book, fills, positions and funds, as Kite's RMS and exchange would keep them.

Everything here runs on the simulator's event-loop thread; nothing is shared between accounts except the
market (read-only prices) and the simulator-wide order/trade id counters, which only guarantee uniqueness.
Kite's behaviour copied: an accepted order walks PUT ORDER REQ RECEIVED → VALIDATION PENDING → OPEN PENDING
→ OPEN / TRIGGER PENDING → COMPLETE; RMS refusals (funds) are REJECTED orders, not HTTP errors; input
mistakes are `InputException`s. What Kite and the exchanges refuse for options (SL-M, an SL gap above the
cap, a stop on the wrong side of the LTP, limits outside price protection, freeze quantities, ...) comes
from `desktop.broker.exchange_rules`, the module PAPER reads too, and is refused as Kite refuses it. Every
working order is a limit: a MARKET order becomes a protected LIMIT, a triggered SL works at its own limit
(or is cancelled when that limit is outside price protection at the trigger).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from desktop.broker import exchange_rules as rules
from desktop.broker.sim.market import Market, SimInstrument

ZERO = Decimal(0)
SHORT_OPTION_MARGIN = Decimal("0.12")  # of the underlying's notional, a rough SPAN+exposure stand-in
PRODUCTS = ("MIS", "NRML")
ORDER_TYPES = ("MARKET", "LIMIT", "SL", "SL-M")
VALIDITIES = ("DAY", "IOC")
MARKET_PROTECTION_MESSAGE = (
    "Market orders without market protection are not allowed via API. "
    "Please set market protection or use a Limit order."
)


AUTOSLICE_MAX = 10  # Kite's autoslice makes at most this many orders


class SimKiteError(Exception):
    """An error the simulator answers with Kite's envelope: HTTP status, error_type and message."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


def input_error(message: str) -> SimKiteError:
    """A 400 InputException, what Kite answers to a malformed request."""
    return SimKiteError(400, "InputException", message)


def _ts(t: datetime | None) -> str | None:
    return t.strftime("%Y-%m-%d %H:%M:%S") if t else None


class IdSource:
    """Kite-like numeric ids (YYMMDD + sequence), unique within one simulator across all accounts."""

    def __init__(self, day_prefix: str, start: int) -> None:
        self._prefix = day_prefix
        self._seq = itertools.count(start)

    def next(self) -> str:
        return f"{self._prefix}{next(self._seq):09d}"


@dataclass
class SimOrder:
    """A live order of one account, with its full status history."""

    order_id: str
    user_id: str
    instrument: SimInstrument
    variety: str
    transaction_type: str
    order_type: str
    product: str
    validity: str
    quantity: int
    price: Decimal
    trigger_price: Decimal
    market_protection: int
    tag: str | None
    placed_at: datetime
    status: str = "PUT ORDER REQ RECEIVED"
    status_message: str | None = None
    filled_quantity: int = 0
    average_price: Decimal = ZERO
    cancelled_quantity: int = 0
    exchange_order_id: str | None = None
    exchange_timestamp: datetime | None = None
    updated_at: datetime | None = None
    modified: bool = False
    modifications: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    fill_cap: int | None = None  # fill_part_of_next_order: fills stop here and the rest stays open

    @property
    def is_final(self) -> bool:
        return self.status in ("COMPLETE", "CANCELLED", "REJECTED")

    @property
    def pending_quantity(self) -> int:
        return 0 if self.is_final else self.quantity - self.filled_quantity

    def as_kite(self) -> dict[str, Any]:
        """The order as Kite's GET /orders lists it."""
        return {
            "placed_by": self.user_id,
            "order_id": self.order_id,
            "exchange_order_id": self.exchange_order_id,
            "parent_order_id": None,
            "status": self.status,
            "status_message": self.status_message,
            "status_message_raw": self.status_message,
            "order_timestamp": _ts(self.placed_at),
            "exchange_update_timestamp": _ts(self.updated_at),
            "exchange_timestamp": _ts(self.exchange_timestamp),
            "variety": self.variety,
            "modified": self.modified,
            "exchange": self.instrument.exchange,
            "tradingsymbol": self.instrument.tradingsymbol,
            "instrument_token": self.instrument.instrument_token,
            "order_type": self.order_type,
            "transaction_type": self.transaction_type,
            "validity": self.validity,
            "validity_ttl": 0,
            "product": self.product,
            "quantity": self.quantity,
            "disclosed_quantity": 0,
            "price": float(self.price),
            "trigger_price": float(self.trigger_price),
            "average_price": float(self.average_price),
            "filled_quantity": self.filled_quantity,
            "pending_quantity": self.pending_quantity,
            "cancelled_quantity": self.cancelled_quantity,
            "market_protection": self.market_protection,
            "meta": {},
            "tag": self.tag,
            "tags": [self.tag] if self.tag else [],
            "guid": f"sim{self.order_id}",
        }

    def as_postback(self, api_key: str) -> dict[str, Any]:
        """The order update Kite pushes on the WebSocket (kite-mocks/postback.json)."""
        data = self.as_kite()
        data["user_id"] = self.user_id
        data["unfilled_quantity"] = self.pending_quantity
        data["app_id"] = 0
        checksum_src = f"{self.order_id}{_ts(self.updated_at) or ''}{api_key}"
        data["checksum"] = hashlib.sha256(checksum_src.encode()).hexdigest()
        return data


@dataclass
class PositionLeg:
    """Buy and sell totals of one contract and product; P&L derives from them and the last price."""

    instrument: SimInstrument
    product: str
    buy_quantity: int = 0
    buy_value: Decimal = ZERO
    sell_quantity: int = 0
    sell_value: Decimal = ZERO

    @property
    def quantity(self) -> int:
        return self.buy_quantity - self.sell_quantity

    def as_kite(self, last_price: Decimal, close_price: Decimal) -> dict[str, Any]:
        qty = self.quantity
        buy_price = self.buy_value / self.buy_quantity if self.buy_quantity else ZERO
        sell_price = self.sell_value / self.sell_quantity if self.sell_quantity else ZERO
        pnl = (self.sell_value - self.buy_value) + qty * last_price
        matched = min(self.buy_quantity, self.sell_quantity)
        realised = (sell_price - buy_price) * matched if matched else ZERO
        average = buy_price if qty > 0 else sell_price if qty < 0 else ZERO
        value = self.sell_value - self.buy_value
        return {
            "tradingsymbol": self.instrument.tradingsymbol,
            "exchange": self.instrument.exchange,
            "instrument_token": self.instrument.instrument_token,
            "product": self.product,
            "quantity": qty,
            "overnight_quantity": 0,
            "multiplier": 1,
            "average_price": round(float(average), 4),
            "close_price": float(close_price),
            "last_price": float(last_price),
            "value": float(value),
            "pnl": round(float(pnl), 2),
            "m2m": round(float(pnl), 2),
            "unrealised": round(float(pnl - realised), 2),
            "realised": round(float(realised), 2),
            "buy_quantity": self.buy_quantity,
            "buy_price": round(float(buy_price), 4),
            "buy_value": float(self.buy_value),
            "buy_m2m": float(self.buy_value),
            "sell_quantity": self.sell_quantity,
            "sell_price": round(float(sell_price), 4),
            "sell_value": float(self.sell_value),
            "sell_m2m": float(self.sell_value),
            "day_buy_quantity": self.buy_quantity,
            "day_buy_price": round(float(buy_price), 4),
            "day_buy_value": float(self.buy_value),
            "day_sell_quantity": self.sell_quantity,
            "day_sell_price": round(float(sell_price), 4),
            "day_sell_value": float(self.sell_value),
        }


OrderListener = Callable[[SimOrder], None]


class AccountBook:
    """Orders, trades, positions and funds of one simulated account."""

    def __init__(
        self,
        user_id: str,
        funds: Decimal,
        market: Market,
        order_ids: IdSource,
        trade_ids: IdSource,
        on_order_update: OrderListener,
        freeze_overrides: Mapping[str, int] | None = None,
    ) -> None:
        self.user_id = user_id
        self._freeze_overrides = dict(freeze_overrides or {})
        self.opening_balance = funds
        self._market = market
        self._order_ids = order_ids
        self._trade_ids = trade_ids
        self._on_order_update = on_order_update
        self.orders: dict[str, SimOrder] = {}
        self.trades: list[dict[str, Any]] = []
        self._trades_by_order: dict[str, list[dict[str, Any]]] = {}
        self.legs: dict[tuple[int, str], PositionLeg] = {}
        self.reject_next = False
        self.part_fill_next: int | None = None

    # ------------------------------------------------------------------ placing
    def place(self, form: dict[str, str], variety: str, now: datetime) -> SimOrder:
        """Validates like Kite's API, then accepts the order and lets the exchange work it at `now`."""
        if variety != "regular":
            raise input_error(f"Invalid variety: {variety}. The simulator supports regular orders.")
        instrument = self._instrument_of(form)
        side = form.get("transaction_type", "").upper()
        if side not in ("BUY", "SELL"):
            raise input_error("Invalid `transaction_type`.")
        order_type = form.get("order_type", "").upper()
        if order_type not in ORDER_TYPES:
            raise input_error("Invalid `order_type`.")
        refusal = rules.order_type_refusal(instrument.exchange, order_type)
        if refusal:  # SL-M for an option: Kite blocks it before anything else is looked at
            raise input_error(refusal)
        product = form.get("product", "").upper()
        if product not in PRODUCTS:
            raise input_error(f"Invalid `product` {product or '(missing)'} for F&O: use MIS or NRML.")
        validity = (form.get("validity") or "DAY").upper()
        if validity not in VALIDITIES:
            raise input_error("Invalid `validity`.")
        quantity = self._quantity(form.get("quantity"), instrument)
        price = self._price(form.get("price"), "price", required=order_type in ("LIMIT", "SL"))
        trigger = self._price(
            form.get("trigger_price"), "trigger_price", required=order_type in ("SL", "SL-M")
        )
        protection = self._market_protection(form.get("market_protection"), order_type)
        tag = form.get("tag") or None
        if tag is not None and (len(tag) > 20 or not tag.isalnum()):
            raise input_error("Invalid `tag`: alphanumeric, at most 20 characters.")
        if not self._market_open(now):
            raise input_error("Markets are closed right now. Try again between 09:15 and 15:30.")
        token = instrument.instrument_token
        ltp = self._market.last_price(token, now)
        self._check_rules(
            instrument,
            side,
            order_type,
            price,
            trigger,
            ltp,
            traded_today=self._market.traded_today(token, now),
        )
        if order_type == "MARKET":
            # Kite turns a protected MARKET order into a LIMIT at the protected price, and lists it so.
            price = rules.protected_price(instrument.exchange, side, ltp, protection)
            order_type = "LIMIT"

        order = SimOrder(
            order_id=self._order_ids.next(),
            user_id=self.user_id,
            instrument=instrument,
            variety=variety,
            transaction_type=side,
            order_type=order_type,
            product=product,
            validity=validity,
            quantity=quantity,
            price=price,
            trigger_price=trigger,
            market_protection=protection,
            tag=tag,
            placed_at=now,
            updated_at=now,
        )
        if self.part_fill_next is not None:
            order.fill_cap, self.part_fill_next = min(self.part_fill_next, quantity), None
        self.orders[order.order_id] = order
        self._record(order, now, notify=False)
        self._transition(order, "VALIDATION PENDING", now, notify=False)
        if self.reject_next:
            self.reject_next = False
            self._reject(order, now, "RMS:Rule: Order rejected by the simulator's reject_next_order fault")
            return order
        shortfall = self._margin_shortfall(order, now)
        if shortfall is not None:
            required, available = shortfall
            self._reject(
                order,
                now,
                f"RMS:Margin Exceeds, Required:{required:.2f}, Available:{available:.2f} "
                "for entity account-" + self.user_id + " across exchange across segment "
                "across product",
            )
            return order
        self._transition(order, "OPEN PENDING", now, notify=False)
        order.exchange_order_id = self._order_ids.next()
        order.exchange_timestamp = now
        resting = "TRIGGER PENDING" if order_type in ("SL", "SL-M") else "OPEN"
        self._transition(order, resting, now)
        self.work(order, now)
        return order

    def place_autoslice(self, form: dict[str, str], variety: str, now: datetime) -> dict[str, Any]:
        """Kite's autoslice (`autoslice=true` on POST /orders/{variety}): an order above the freeze quantity split
        into orders of whole lots each at most the freeze, at most `AUTOSLICE_MAX` of them; one at or below the
        freeze is an input error. Answers {"order_id": parent, "children": [{"order_id"} | {"error": {...}}]}:
        each child is validated and placed on its own, so one may be refused while the others stand."""
        instrument = self._instrument_of(form)
        try:
            qty = int(str(form.get("quantity")))
        except (TypeError, ValueError):
            raise input_error("Invalid `quantity`.") from None
        freeze = rules.freeze_quantity(instrument.name, self._freeze_overrides)
        if freeze is None or qty <= freeze:
            raise input_error(f"Autoslice is only for quantities above the freeze limit of {freeze}.")
        if qty % instrument.lot_size:
            raise input_error(f"Quantity should be a multiple of the lot size {instrument.lot_size}.")
        cap = freeze - freeze % instrument.lot_size
        full, rest = divmod(qty, cap)
        sizes = [cap] * full + ([rest] if rest else [])
        if len(sizes) > AUTOSLICE_MAX:
            raise input_error(
                f"Quantity {qty} needs {len(sizes)} slices of at most {cap}: autoslice allows {AUTOSLICE_MAX}."
            )
        children: list[dict[str, Any]] = []
        for size in sizes:
            try:
                order = self.place({**form, "quantity": str(size)}, variety, now)
            except SimKiteError as e:
                children.append({"error": {"code": e.status, "error_type": e.error_type, "message": e.message,
                                           "data": None}})  # fmt: skip
            else:
                children.append({"order_id": order.order_id})
        return {"order_id": self._order_ids.next(), "children": children}

    def modify(self, order_id: str, form: dict[str, str], now: datetime) -> SimOrder:
        """Changes price, trigger, quantity or type of an open order, as Kite allows.

        Every field is checked before any is applied: a refused modification leaves the order untouched.
        """
        order = self.get(order_id)
        if order.is_final:
            raise input_error(
                f"Order cannot be modified as it is being processed or is {order.status.lower()}."
            )
        refusal = rules.modification_refusal(order.modifications)
        if refusal:
            raise input_error(refusal)
        quantity = order.quantity
        if form.get("quantity"):
            quantity = self._quantity(form["quantity"], order.instrument)
        order_type = order.order_type
        if form.get("order_type"):
            order_type = form["order_type"].upper()
            if order_type not in ORDER_TYPES:
                raise input_error("Invalid `order_type`.")
        price = self._price(form["price"], "price", required=True) if form.get("price") else order.price
        trigger = order.trigger_price
        if form.get("trigger_price"):
            trigger = self._price(form["trigger_price"], "trigger_price", required=True)
        refusal = rules.order_type_refusal(order.instrument.exchange, order_type)
        if refusal:
            raise input_error(refusal)
        if order_type in ("LIMIT", "SL") and not price:
            raise input_error("Missing `price`.")
        if order_type in ("SL", "SL-M") and not trigger:
            raise input_error("Missing `trigger_price`.")
        protection = order.market_protection
        if order_type == "MARKET":
            protection = self._market_protection(
                form.get("market_protection") or str(protection or ""), order_type
            )
        # A stop that has already triggered stays OPEN; one that has not (or a LIMIT made a stop) waits.
        triggered = order.order_type == "SL" and order.status == "OPEN"
        token = order.instrument.instrument_token
        ltp = self._market.last_price(token, now)
        self._check_rules(
            order.instrument, order.transaction_type, order_type, price, trigger, ltp,
            triggered=triggered and order_type == "SL", traded_today=self._market.traded_today(token, now),
        )  # fmt: skip
        if order_type == "MARKET":
            price = rules.protected_price(order.instrument.exchange, order.transaction_type, ltp, protection)
            order_type = "LIMIT"
        status = "TRIGGER PENDING" if order_type == "SL" and not triggered else "OPEN"
        order.quantity, order.order_type, order.price = quantity, order_type, price
        order.trigger_price, order.market_protection = trigger, protection
        order.modified = True
        order.modifications += 1
        self._transition(order, "MODIFY PENDING", now, notify=False)
        self._transition(order, status, now)
        self.work(order, now)
        return order

    def cancel(self, order_id: str, now: datetime) -> SimOrder:
        """Cancels an open order's pending quantity."""
        order = self.get(order_id)
        if order.is_final:
            raise input_error(
                f"Order cannot be cancelled as it is being processed or is {order.status.lower()}."
            )
        self._transition(order, "CANCEL PENDING", now, notify=False)
        order.cancelled_quantity = order.quantity - order.filled_quantity
        self._transition(order, "CANCELLED", now)
        return order

    def get(self, order_id: str) -> SimOrder:
        """This account's order, or Kite's "not found" — never another account's."""
        order = self.orders.get(order_id)
        if order is None:
            raise SimKiteError(400, "InputException", "Couldn't find that `order_id`.")
        return order

    # ------------------------------------------------------------------ the exchange
    def work_all(self, now: datetime) -> None:
        """Matches every resting order against the prices at `now`."""
        for order in list(self.orders.values()):
            if not order.is_final:
                self.work(order, now)

    def work(self, order: SimOrder, now: datetime) -> None:
        """Triggers and fills one order if the market at `now` allows."""
        token = order.instrument.instrument_token
        ltp = self._market.last_price(token, now)
        bid, ask = self._market.bid_ask(token, now)
        buy = order.transaction_type == "BUY"
        if order.status == "TRIGGER PENDING":
            triggered = ltp >= order.trigger_price if buy else ltp <= order.trigger_price
            if not triggered:
                return
            # The triggered stop reaches the exchange's book as a limit order: limit price protection is
            # checked now, against the price of the moment, and a limit outside it is cancelled.
            cancelled = (
                rules.lpp_cancel_message(order.instrument.exchange, order.price, ltp)
                if rules.is_option_exchange(order.instrument.exchange)
                else None
            )
            if cancelled:
                order.status_message = cancelled
                order.cancelled_quantity = order.quantity - order.filled_quantity
                self._transition(order, "CANCELLED", now)
                return
            self._transition(order, "OPEN", now)
        if order.status != "OPEN":
            return
        touch = ask if buy else bid
        # Every working option order is a limit here (a MARKET one became a protected LIMIT, SL-M is
        # refused): it fills only at its limit or better, so a premium that gaps through it leaves it open.
        if (buy and touch <= order.price) or (not buy and touch >= order.price):
            # An incoming marketable limit takes the touch; a resting one is hit at its own limit.
            fresh = order.updated_at == now
            self._fill(order, touch if fresh else order.price, now)
        elif order.validity == "IOC":
            order.cancelled_quantity = order.quantity - order.filled_quantity
            self._transition(order, "CANCELLED", now)

    def _fill(self, order: SimOrder, price: Decimal, now: datetime) -> None:
        qty = (order.fill_cap if order.fill_cap is not None else order.quantity) - order.filled_quantity
        if qty <= 0:
            return  # a thin book: the rest waits (fill_part_of_next_order)
        trade = {
            "trade_id": self._trade_ids.next(),
            "order_id": order.order_id,
            "exchange": order.instrument.exchange,
            "tradingsymbol": order.instrument.tradingsymbol,
            "instrument_token": order.instrument.instrument_token,
            "product": order.product,
            "average_price": float(price),
            "quantity": qty,
            "exchange_order_id": order.exchange_order_id,
            "transaction_type": order.transaction_type,
            "fill_timestamp": _ts(now),
            "order_timestamp": now.strftime("%H:%M:%S"),
            "exchange_timestamp": _ts(now),
        }
        self.trades.append(trade)
        self._trades_by_order.setdefault(order.order_id, []).append(trade)
        filled_value = order.average_price * order.filled_quantity + price * qty
        order.filled_quantity += qty
        order.average_price = filled_value / order.filled_quantity
        leg = self.legs.setdefault(
            (order.instrument.instrument_token, order.product), PositionLeg(order.instrument, order.product)
        )
        if order.transaction_type == "BUY":
            leg.buy_quantity += qty
            leg.buy_value += price * qty
        else:
            leg.sell_quantity += qty
            leg.sell_value += price * qty
        if order.filled_quantity < order.quantity:
            order.updated_at = now
            self._record(order, now, notify=True)  # still OPEN, part filled: Kite sends an update
            return
        self._transition(order, "COMPLETE", now)

    # ------------------------------------------------------------------ reports
    def order_trades(self, order_id: str) -> list[dict[str, Any]]:
        self.get(order_id)
        return list(self._trades_by_order.get(order_id, []))

    def positions(self, now: datetime) -> dict[str, list[dict[str, Any]]]:
        rows = []
        for leg in self.legs.values():
            token = leg.instrument.instrument_token
            close = Decimal(str(self._market.ohlc(token, now)["ohlc"]["close"]))
            rows.append(leg.as_kite(self._market.last_price(token, now), close))
        return {"net": rows, "day": [dict(r) for r in rows]}

    def margins(self, now: datetime) -> dict[str, Any]:
        """Equity margins: premium paid comes off the balance, premium received and realised P&L go back."""
        bought = sum((leg.buy_value for leg in self.legs.values()), ZERO)
        sold = sum((leg.sell_value for leg in self.legs.values()), ZERO)
        blocked = self._short_margin_blocked(now)
        realised = sum((Decimal(str(p["realised"])) for p in self.positions(now)["net"]), ZERO)
        premium = bought - sold
        debits = max(premium, ZERO) + blocked
        live_balance = self.opening_balance - premium - blocked
        equity: dict[str, Any] = {
            "enabled": True,
            "net": float(live_balance),
            "available": {
                "adhoc_margin": 0,
                "cash": float(self.opening_balance),
                "opening_balance": float(self.opening_balance),
                "live_balance": float(live_balance),
                "collateral": 0,
                "intraday_payin": 0,
            },
            "utilised": {
                "debits": float(debits),
                "exposure": 0,
                "m2m_realised": float(realised),
                "m2m_unrealised": 0,
                "option_premium": float(max(premium, ZERO)),
                "payout": 0,
                "span": float(blocked),
                "holding_sales": 0,
                "turnover": 0,
                "liquid_collateral": 0,
                "stock_collateral": 0,
                "delivery": 0,
            },
        }
        commodity = {
            "enabled": False,
            "net": 0,
            "available": {k: 0 for k in equity["available"]},
            "utilised": {k: 0 for k in equity["utilised"]},
        }
        return {"equity": equity, "commodity": commodity}

    # ------------------------------------------------------------------ internals
    def _instrument_of(self, form: dict[str, str]) -> SimInstrument:
        exchange = form.get("exchange", "").upper()
        symbol = form.get("tradingsymbol", "")
        if not exchange or not symbol:
            raise input_error("Missing `exchange` or `tradingsymbol`.")
        instrument = self._market.find(exchange, symbol)
        if instrument is None:
            raise input_error(f"Invalid `tradingsymbol`: {exchange}:{symbol} is not in today's instruments.")
        if instrument.segment == "INDICES":
            raise input_error(f"{symbol} is an index and cannot be traded.")
        return instrument

    def _quantity(self, raw: str | None, instrument: SimInstrument) -> int:
        try:
            qty = int(str(raw))
        except (TypeError, ValueError):
            raise input_error("Invalid `quantity`.") from None
        if qty <= 0:
            raise input_error("Quantity should be greater than zero.")
        if qty % instrument.lot_size:
            raise input_error(f"Quantity should be a multiple of the lot size {instrument.lot_size}.")
        refusal = rules.freeze_refusal(instrument.name, qty, self._freeze_overrides)
        if refusal:
            raise input_error(refusal)
        return qty

    @staticmethod
    def _price(raw: str | None, name: str, required: bool) -> Decimal:
        if raw in (None, ""):
            if required:
                raise input_error(f"Missing `{name}`.")
            return ZERO
        try:
            value = Decimal(str(raw))
        except ArithmeticError:
            raise input_error(f"Invalid `{name}`.") from None
        if not value.is_finite() or value < 0 or (required and value == 0):
            raise input_error(f"Invalid `{name}`.")
        if (value * 20) % 1:
            raise input_error(f"`{name}` {value} is not a multiple of the tick size 0.05.")
        return value

    @staticmethod
    def _market_protection(raw: str | None, order_type: str) -> int:
        if order_type not in ("MARKET", "SL-M"):
            return 0
        if raw in (None, ""):
            raise input_error(MARKET_PROTECTION_MESSAGE)
        try:
            value = int(str(raw))
        except ValueError:
            raise input_error("Invalid `market_protection`.") from None
        if value == 0:
            raise input_error(MARKET_PROTECTION_MESSAGE)
        if value != -1 and not 1 <= value <= 100:
            raise input_error("`market_protection` must be -1 (automatic) or 1 to 100 percent.")
        return value

    @staticmethod
    def _check_rules(
        instrument: SimInstrument,
        side: str,
        order_type: str,
        price: Decimal,
        trigger: Decimal,
        ltp: Decimal,
        *,
        triggered: bool = False,
        traded_today: bool = True,
    ) -> None:
        """Kite's and the exchange's option rules (desktop/broker/exchange_rules.py): InputException if broken."""
        order = rules.OptionOrder(instrument.exchange, side, order_type, price or None, trigger or None)
        refusal = rules.order_refusal(order, ltp, triggered=triggered, traded_today=traded_today)
        if refusal:
            raise input_error(refusal)

    @staticmethod
    def _market_open(now: datetime) -> bool:
        minutes = now.hour * 60 + now.minute
        return now.weekday() < 5 and 9 * 60 + 15 <= minutes < 15 * 60 + 30

    def _net_quantity(self, token: int, product: str) -> int:
        leg = self.legs.get((token, product))
        return leg.quantity if leg else 0

    def _margin_shortfall(self, order: SimOrder, now: datetime) -> tuple[Decimal, Decimal] | None:
        token = order.instrument.instrument_token
        held = self._net_quantity(token, order.product)
        pending_same_side = sum(
            o.pending_quantity
            for o in self.orders.values()
            if o is not order
            and not o.is_final
            and o.instrument.instrument_token == token
            and o.transaction_type == order.transaction_type
        )
        if order.transaction_type == "BUY":
            closing = max(0, -held - pending_same_side)
            opening_qty = max(0, order.quantity - closing)
            _, ask = self._market.bid_ask(token, now)
            unit = order.price if order.order_type in ("LIMIT", "SL") else ask
            required = unit * opening_qty
        else:
            closing = max(0, held - pending_same_side)
            opening_qty = max(0, order.quantity - closing)
            spot = self._market.last_price(order.instrument.underlying_token or token, now)
            required = spot * opening_qty * SHORT_OPTION_MARGIN
        if required == 0:
            return None
        available = Decimal(str(self.margins(now)["equity"]["net"])) - self._pending_buy_premium(order, now)
        return (required, available) if required > available else None

    def _pending_buy_premium(self, exclude: SimOrder, now: datetime) -> Decimal:
        total = ZERO
        for o in self.orders.values():
            if o is exclude or o.is_final or o.transaction_type != "BUY":
                continue
            unit = (
                o.price
                if o.order_type in ("LIMIT", "SL")
                else self._market.bid_ask(o.instrument.instrument_token, now)[1]
            )
            total += unit * o.pending_quantity
        return total

    def _short_margin_blocked(self, now: datetime) -> Decimal:
        blocked = ZERO
        for leg in self.legs.values():
            if leg.quantity < 0:
                spot = self._market.last_price(
                    leg.instrument.underlying_token or leg.instrument.instrument_token, now
                )
                blocked += spot * -leg.quantity * SHORT_OPTION_MARGIN
        return blocked

    def _reject(self, order: SimOrder, now: datetime, message: str) -> None:
        order.status_message = message
        order.cancelled_quantity = 0
        self._transition(order, "REJECTED", now)

    def _transition(self, order: SimOrder, status: str, now: datetime, notify: bool = True) -> None:
        order.status = status
        order.updated_at = now
        self._record(order, now, notify)

    def _record(self, order: SimOrder, now: datetime, notify: bool) -> None:
        order.history.append(order.as_kite())
        if notify:
            self._on_order_update(order)
