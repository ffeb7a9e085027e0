"""Faults the simulator injects on request, so that recovery paths are tested against a real socket.

Kinds (JSON body of POST /_sim/faults, or `Simulator.inject_fault` from Python):
- expire_token {api_key}: the access token dies (REST 403 TokenException); the account's sockets close.
- drop_ws {api_key}: the account's sockets are dropped without a close frame.
- stall_ws {api_key, seconds}: the sockets stay open but send nothing, not even heartbeats.
- rate_limit {api_key, seconds}: every REST call of the account answers 429 NetworkException.
- reject_next_order {api_key}: the next order is accepted, then REJECTED by "RMS".
- fill_part_of_next_order {api_key, quantity}: the next order fills only `quantity` (a thin book); the rest
  stays OPEN until it is cancelled.
- lose_next_order_reply {api_key, how: "drop" | "503", appear_after?}: the next order is placed, but its HTTP
  reply is lost: the connection drops (default) or a 503 NetworkException comes back instead of the order id.
  `appear_after` (market seconds): Kite's order book lags the order that long (it is neither listed, worked nor
  sent as an update until then), so a lookup by tag right after the lost reply does not find it.
- fail_next_request {api_key, error_type, message?, status?}: the account's next REST call fails with that
  Kite error (status defaults to the one Kite uses for the type), to test every exception class.
- malform_next_reply {api_key, path, field?, value?, times?}: the account's next `times` (default 1)
  successful replies to `path` (e.g. "/portfolio/positions") have every `field` (default "quantity") in
  their data set to `value` (default "lots"): a reply Kite's client accepts but that does not hold what
  the API says.
- stamp_next_frame {api_key, epoch?}: the next tick frame to the account's sockets carries `epoch` (Unix
  seconds, default 4294967295: 2106-02-07) as every packet's exchange timestamp: a hostile frame.

Market faults (every account sees them; no api_key needed):
- gap_premium {tradingsymbol, exchange?, percent}: the contract's premium jumps by `percent` % (negative:
  falls) in one tick, from the market's now on: a stop-loss limit the premium gaps through stays unfilled,
  or is cancelled when its limit falls outside limit price protection. Resting orders are worked at once.
- no_trade_today {tradingsymbol, exchange?}: the contract counts as not traded today, so MARKET orders in
  it are refused (exchange reject 17181).
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from desktop.broker.sim.book import SimKiteError, input_error

if TYPE_CHECKING:
    from desktop.broker.sim.market import SimInstrument
    from desktop.broker.sim.state import SimState
    from desktop.broker.sim.stream import TickStreamer

FAULT_KINDS = (
    "expire_token",
    "drop_ws",
    "stall_ws",
    "rate_limit",
    "reject_next_order",
    "fill_part_of_next_order",
    "lose_next_order_reply",
    "fail_next_request",
    "malform_next_reply",
    "stamp_next_frame",
    "gap_premium",
    "no_trade_today",
)
MARKET_FAULTS = ("gap_premium", "no_trade_today")
# What Kite answers for each error type it names (KITE.md, "Exceptions").
ERROR_STATUS = {
    "TokenException": 403,
    "PermissionException": 403,
    "InputException": 400,
    "OrderException": 500,
    "DataException": 502,
    "NetworkException": 503,
    "GeneralException": 500,
    "MarginException": 400,
    "HoldingException": 400,
    "UserException": 400,
}


def _seconds(body: dict[str, Any]) -> float:
    try:
        seconds = float(body["seconds"])
    except (KeyError, TypeError, ValueError):
        raise input_error(f'{body.get("kind")} needs "seconds": a number > 0.') from None
    if seconds <= 0:
        raise input_error(f'{body.get("kind")} needs "seconds": a number > 0.')
    return seconds


async def apply_fault(state: SimState, streamer: TickStreamer, body: Any) -> dict[str, Any]:
    """Applies one fault; returns what it touched. Bad requests raise InputException."""
    if not isinstance(body, dict):
        raise input_error('A fault is a JSON object with "kind" and "api_key".')
    kind = body.get("kind")
    if kind not in FAULT_KINDS:
        raise input_error(f"Unknown fault kind {kind!r}: choose from {', '.join(FAULT_KINDS)}.")
    if kind in MARKET_FAULTS:
        return _apply_market_fault(state, kind, body)
    acc = state.account(str(body.get("api_key", "")))
    result: dict[str, Any] = {"kind": kind, "api_key": acc.account.api_key}
    if kind == "expire_token":
        acc.access_token = None
        result["sockets_closed"] = await streamer.close_account(acc, clean=True)
    elif kind == "drop_ws":
        result["sockets_dropped"] = await streamer.close_account(acc, clean=False)
    elif kind == "stall_ws":
        result["sockets_stalled"] = streamer.stall_account(acc, _seconds(body))
    elif kind == "rate_limit":
        acc.rate_limited_until = time.monotonic() + _seconds(body)
    elif kind == "reject_next_order":
        acc.book.reject_next = True
    elif kind == "fill_part_of_next_order":
        try:
            quantity = int(body["quantity"])
        except (KeyError, TypeError, ValueError):
            raise input_error('fill_part_of_next_order needs "quantity": a whole number > 0.') from None
        if quantity <= 0:
            raise input_error('fill_part_of_next_order needs "quantity": a whole number > 0.')
        acc.book.part_fill_next = quantity
        result["quantity"] = quantity
    elif kind == "lose_next_order_reply":
        how = str(body.get("how", "drop"))
        if how not in ("drop", "503"):
            raise input_error('lose_next_order_reply: "how" is "drop" or "503".')
        acc.lose_next_order_reply = how
        result["how"] = how
        if "appear_after" in body:
            try:
                lag = float(body["appear_after"])
            except (TypeError, ValueError):
                lag = -1.0
            if lag <= 0:
                raise input_error('lose_next_order_reply: "appear_after" is a number of seconds > 0.')
            acc.next_order_lag = lag
            result["appear_after"] = lag
    elif kind == "fail_next_request":
        error_type = str(body.get("error_type", ""))
        if error_type not in ERROR_STATUS:
            raise input_error(f"fail_next_request: error_type is one of {', '.join(ERROR_STATUS)}.")
        status = int(body.get("status") or ERROR_STATUS[error_type])
        message = str(body.get("message") or f"Simulated {error_type}")
        acc.fail_next_request = SimKiteError(status, error_type, message)
        result["error_type"] = error_type
    elif kind == "malform_next_reply":
        path = str(body.get("path", ""))
        times = body.get("times", 1)
        if not path.startswith("/") or not isinstance(times, int) or times < 1:
            raise input_error('malform_next_reply needs "path" (e.g. "/portfolio/positions"), "times" ≥ 1.')
        field = str(body.get("field", "quantity"))
        acc.malformed_replies[path] = (field, body.get("value", "lots"), times)
        result.update(path=path, field=field, times=times)
    elif kind == "stamp_next_frame":
        epoch = body.get("epoch", 0xFFFFFFFF)
        if not isinstance(epoch, int) or not 0 <= epoch <= 0xFFFFFFFF:
            raise input_error('stamp_next_frame: "epoch" is a whole number of seconds that fits 32 bits.')
        acc.stamp_next_frame = epoch
        result["epoch"] = epoch
    return result


def _contract_of(state: SimState, kind: str, body: dict[str, Any]) -> SimInstrument:
    symbol = str(body.get("tradingsymbol", ""))
    exchange = str(body.get("exchange") or ("BFO" if symbol.upper().startswith("SENSEX") else "NFO"))
    inst = state.market.find(exchange, symbol)
    if inst is None or not inst.is_option:
        raise input_error(f'{kind} needs "tradingsymbol" of an option in today\'s instruments: {symbol!r}.')
    return inst


def _apply_market_fault(state: SimState, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    inst = _contract_of(state, kind, body)
    result: dict[str, Any] = {"kind": kind, "exchange": inst.exchange, "tradingsymbol": inst.tradingsymbol}
    if kind == "no_trade_today":
        state.market.mark_untraded(inst.instrument_token)
        return result
    try:
        percent = Decimal(str(body["percent"]))
    except (KeyError, ArithmeticError):
        raise input_error(
            'gap_premium needs "percent": a number above -100 (negative: the premium falls).'
        ) from None
    if not percent.is_finite() or percent <= -100 or percent == 0:
        raise input_error('gap_premium needs "percent": a number above -100 (negative: the premium falls).')
    now = state.clock.now().replace(microsecond=0)
    before, after = state.market.gap_premium(inst.instrument_token, percent, now)
    for acc in state.accounts.values():  # the jump is one tick: resting orders meet the new price at once
        acc.book.work_all(now)
    result.update(percent=float(percent), before=float(before), after=float(after))
    return result
