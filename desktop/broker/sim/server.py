"""The simulator's REST routes: Kite Connect v3 as `kiteconnect` 5.2.2 calls it, plus `/_sim/*` controls.

Success is `{"status":"success","data":...}` as application/json; errors use Kite's envelope and
`error_type` names so the official client raises the same exception classes with the same HTTP codes.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aiohttp import web

from desktop.broker.sim.book import SimKiteError, input_error
from desktop.broker.sim.faults import apply_fault
from desktop.broker.sim.state import AccountState, SimState
from desktop.broker.sim.stream import TickStreamer

STATE_KEY: web.AppKey[SimState] = web.AppKey("sim_state", SimState)
STREAMER_KEY: web.AppKey[TickStreamer] = web.AppKey("sim_streamer", TickStreamer)
INTERVALS = ("minute", "3minute", "5minute", "10minute", "15minute", "30minute", "60minute", "day")


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def success(data: Any) -> web.Response:
    """Kite's success envelope."""
    body = json.dumps({"status": "success", "data": data}, default=_json_default)
    return web.Response(text=body, content_type="application/json")


def kite_error(err: SimKiteError) -> web.Response:
    """Kite's error envelope."""
    body = json.dumps({"status": "error", "message": err.message, "error_type": err.error_type, "data": None})
    return web.Response(status=err.status, text=body, content_type="application/json")


@web.middleware
async def kite_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turns every failure into Kite's envelope; an unexpected one is a 500 GeneralException."""
    try:
        return await handler(request)
    except SimKiteError as err:
        return kite_error(err)
    except web.HTTPNotFound:
        return kite_error(SimKiteError(404, "GeneralException", "Route not found"))
    except web.HTTPMethodNotAllowed:
        return kite_error(SimKiteError(405, "GeneralException", "Method not allowed"))
    except web.HTTPException:
        raise
    except Exception as exc:  # a simulator bug must still look like Kite to the client
        return kite_error(SimKiteError(500, "GeneralException", f"Simulator error: {type(exc).__name__}"))


@web.middleware
async def late_order_replies(request: web.Request, handler: Any) -> web.StreamResponse:
    """`SimConfig.order_reply_delay`: an order call's reply (place, modify, cancel) sent that much later, without
    holding up any other request (a network's round trip to Kite, which a local simulator lacks)."""
    resp = await handler(request)
    delay = _state(request).config.order_reply_delay
    if delay > 0 and request.method in ("POST", "PUT", "DELETE") and request.path.startswith("/orders/"):
        await asyncio.sleep(delay)
    return resp


@web.middleware
async def malformed_replies(request: web.Request, handler: Any) -> web.StreamResponse:
    """The `malform_next_reply` fault: a successful reply with a field of its data set to a wrong value."""
    resp = await handler(request)
    header = request.headers.get("Authorization") or ""
    acc = _state(request).accounts.get(header[6:].partition(":")[0]) if header.startswith("token ") else None
    fault = acc.malformed_replies.get(request.path) if acc is not None else None
    if (
        acc is None
        or fault is None
        or not isinstance(resp, web.Response)
        or resp.status != 200
        or resp.content_type != "application/json"
    ):
        return resp
    field, value, times = fault
    if times > 1:
        acc.malformed_replies[request.path] = (field, value, times - 1)
    else:
        del acc.malformed_replies[request.path]
    body = json.loads(resp.text or "{}")
    body["data"] = _malform(body.get("data"), field, value)
    return web.Response(text=json.dumps(body), content_type="application/json")


def _malform(data: Any, field: str, value: Any) -> Any:
    if isinstance(data, dict):
        return {k: value if k == field else _malform(v, field, value) for k, v in data.items()}
    if isinstance(data, list):
        return [_malform(v, field, value) for v in data]
    return data


def _state(request: web.Request) -> SimState:
    return request.app[STATE_KEY]


def _auth(request: web.Request, bucket: str = "other") -> AccountState:
    state = _state(request)
    acc = state.authenticate(request.headers.get("Authorization"))
    state.check_rate(acc, bucket)
    return acc


async def _form(request: web.Request) -> dict[str, str]:
    data = await request.post()
    return {k: str(v) for k, v in data.items()}


# ---------------------------------------------------------------------- login and session
async def connect_login(request: web.Request) -> web.Response:
    """The browser login page: here it logs in at once and redirects like Kite does after a login."""
    state = _state(request)
    api_key = request.query.get("api_key", "")
    if request.query.get("v") not in (None, "3"):
        raise input_error("Invalid API version: use v=3.")
    acc, token = state.issue_request_token(api_key)
    params = [("request_token", token), ("action", "login"), ("type", "login"), ("status", "success")]
    params += parse_qsl(request.query.get("redirect_params", ""), keep_blank_values=True)
    parts = urlsplit(acc.redirect_url)
    query = urlencode(parse_qsl(parts.query, keep_blank_values=True) + params)
    raise web.HTTPFound(urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment)))


async def session_token(request: web.Request) -> web.Response:
    """POST /session/token: request_token + checksum → access token (kite-mocks/generate_session.json)."""
    state = _state(request)
    form = await _form(request)
    acc = state.redeem_request_token(
        form.get("api_key", ""), form.get("request_token", ""), form.get("checksum", "")
    )
    data = _profile(acc) | {
        "api_key": acc.account.api_key,
        "access_token": acc.access_token,
        "public_token": acc.public_token,
        "refresh_token": "",
        "enctoken": "",
        "silo": "",
        "login_time": (acc.login_time or state.clock.now()).strftime("%Y-%m-%d %H:%M:%S"),
    }
    return success(data)


async def session_logout(request: web.Request) -> web.Response:
    """DELETE /session/token: invalidates the access token, as a logout does."""
    state = _state(request)
    acc = state.accounts.get(request.query.get("api_key", ""))
    token = request.query.get("access_token", "")
    if acc is None or acc.access_token is None or acc.access_token != token:
        raise SimKiteError(403, "TokenException", "Incorrect `api_key` or `access_token`.")
    acc.access_token = None
    await request.app[STREAMER_KEY].close_account(acc, clean=True)
    return success(True)


def _profile(acc: AccountState) -> dict[str, Any]:
    name = acc.account.user_name or f"Sim Trader {acc.user_id}"
    return {
        "user_id": acc.user_id,
        "user_type": "individual",
        "email": f"{acc.user_id.lower()}@sim.invalid",
        "user_name": name,
        "user_shortname": name.split()[0],
        "broker": "ZERODHA",
        "exchanges": ["NSE", "NFO", "BFO", "CDS", "BSE", "MCX", "BCD", "MF"],
        "products": ["CNC", "NRML", "MIS", "BO", "CO"],
        "order_types": ["MARKET", "LIMIT", "SL", "SL-M"],
        "avatar_url": None,
        "meta": {"demat_consent": "physical"},
    }


async def user_profile(request: web.Request) -> web.Response:
    return success(_profile(_auth(request)))


async def user_margins(request: web.Request) -> web.Response:
    acc = _auth(request)
    margins = acc.book.margins(_state(request).clock.now())
    segment = request.match_info.get("segment")
    if segment is None:
        return success(margins)
    if segment not in margins:
        raise input_error(f"Invalid segment: {segment}. Use equity or commodity.")
    return success(margins[segment])


# ---------------------------------------------------------------------- orders
async def orders_list(request: web.Request) -> web.Response:
    acc = _auth(request)
    return success([o.as_kite() for o in acc.book.orders.values()])


async def order_place(request: web.Request) -> web.Response:
    state = _state(request)
    acc = _auth(request, "orders")
    form = await _form(request)
    lag = acc.next_order_lag if acc.lose_next_order_reply else None
    if lag is not None:  # Kite's book lags the order: it appears (and is worked) `lag` market seconds later
        acc.next_order_lag, acc.lose_next_order_reply = None, None
        acc.lagging_orders.append(
            (state.clock.now() + timedelta(seconds=lag), form, request.match_info["variety"])
        )
        raise SimKiteError(
            503, "NetworkException", "Gateway timed out. The order may or may not have been placed."
        )
    if form.get("autoslice") == "true":  # kiteconnect's place_autoslice_order
        sliced = acc.book.place_autoslice(form, request.match_info["variety"], state.clock.now())
        order_id = None
    else:
        order_id = acc.book.place(form, request.match_info["variety"], state.clock.now()).order_id
    lost = acc.lose_next_order_reply
    if lost:
        acc.lose_next_order_reply = None
        if lost == "drop" and request.transport is not None:
            request.transport.abort()  # the order stands, the reply never arrives
            raise SimKiteError(503, "NetworkException", "Connection dropped")
        raise SimKiteError(
            503, "NetworkException", "Gateway timed out. The order may or may not have been placed."
        )
    return success({"order_id": order_id} if order_id is not None else sliced)


async def order_modify(request: web.Request) -> web.Response:
    state = _state(request)
    acc = _auth(request, "orders")
    form = await _form(request)
    order = acc.book.modify(request.match_info["order_id"], form, state.clock.now())
    return success({"order_id": order.order_id})


async def order_cancel(request: web.Request) -> web.Response:
    state = _state(request)
    acc = _auth(request, "orders")
    order = acc.book.cancel(request.match_info["order_id"], state.clock.now())
    return success({"order_id": order.order_id})


async def order_history(request: web.Request) -> web.Response:
    acc = _auth(request)
    return success(list(acc.book.get(request.match_info["order_id"]).history))


async def order_trades(request: web.Request) -> web.Response:
    acc = _auth(request)
    return success(acc.book.order_trades(request.match_info["order_id"]))


async def trades_list(request: web.Request) -> web.Response:
    acc = _auth(request)
    return success(list(acc.book.trades))


async def positions(request: web.Request) -> web.Response:
    acc = _auth(request)
    return success(acc.book.positions(_state(request).clock.now()))


# ---------------------------------------------------------------------- market data
async def instruments(request: web.Request) -> web.Response:
    _auth(request)
    exchange = request.match_info.get("exchange")
    csv_text = _state(request).market.instruments_csv(exchange.upper() if exchange else None)
    return web.Response(text=csv_text, content_type="text/csv")


def _resolve_instrument_keys(state: SimState, keys: list[str]) -> dict[str, int]:
    resolved: dict[str, int] = {}
    for key in keys:
        if key.isdigit():
            if int(key) in {i.instrument_token for i in state.market.instruments}:
                resolved[key] = int(key)
            continue
        exchange, _, symbol = key.partition(":")
        inst = state.market.find(exchange.upper(), symbol)
        if inst is not None:
            resolved[key] = inst.instrument_token
    return resolved


async def _quote_like(request: web.Request, kind: str, limit: int) -> web.Response:
    state = _state(request)
    _auth(request, "quote")
    keys = request.query.getall("i", [])
    if not keys:
        raise input_error("No instruments given: pass one or more `i=EXCHANGE:TRADINGSYMBOL`.")
    if len(keys) > limit:
        raise input_error(f"Too many instruments: at most {limit} per request.")
    now = state.clock.now()
    data: dict[str, Any] = {}
    for key, token in _resolve_instrument_keys(state, keys).items():
        if kind == "quote":
            data[key] = state.market.quote(token, now)
        elif kind == "ohlc":
            data[key] = state.market.ohlc(token, now)
        else:
            data[key] = {"instrument_token": token, "last_price": float(state.market.last_price(token, now))}
    return success(data)


async def quote(request: web.Request) -> web.Response:
    return await _quote_like(request, "quote", 500)


async def quote_ohlc(request: web.Request) -> web.Response:
    return await _quote_like(request, "ohlc", 1000)


async def quote_ltp(request: web.Request) -> web.Response:
    return await _quote_like(request, "ltp", 1000)


def _parse_when(text: str, name: str) -> datetime:
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise input_error(f"Invalid `{name}` date: {text!r}.")


async def historical(request: web.Request) -> web.Response:
    state = _state(request)
    _auth(request, "historical")
    interval = request.match_info["interval"]
    if interval not in INTERVALS:
        raise input_error(f"Invalid interval: {interval}.")
    try:
        token = int(request.match_info["token"])
        state.market.instrument(token)
    except (ValueError, KeyError):
        raise input_error("Invalid token.") from None
    frm = _parse_when(request.query.get("from", ""), "from")
    to = _parse_when(request.query.get("to", ""), "to")
    if frm > to:
        raise input_error("Invalid date range: `from` is after `to`.")
    to = min(to, state.clock.now())
    oi = request.query.get("oi") in ("1", "true")
    candles = state.market.candles(token, interval, frm, to, oi=oi) if frm <= to else []
    return success({"candles": candles})


# ---------------------------------------------------------------------- simulator controls
async def sim_state(request: web.Request) -> web.Response:
    return success(_state(request).describe())


async def sim_faults(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise input_error(
            'The fault must be a JSON object like {"kind": "drop_ws", "api_key": "K"}.'
        ) from None
    applied = await apply_fault(_state(request), request.app[STREAMER_KEY], body)
    return success(applied)


async def sim_clock(request: web.Request) -> web.Response:
    """POST /_sim/clock {"speed": X} or {"advance": SECONDS}: steer the market clock."""
    state = _state(request)
    try:
        body = await request.json()
        if "speed" in body:
            state.clock.set_speed(float(body["speed"]))
        if "advance" in body:
            state.clock.advance(float(body["advance"]))
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise input_error(f"Bad clock request: {exc}") from None
    return success(state.describe())


def build_app(state: SimState) -> web.Application:
    """The aiohttp application serving one simulator's state."""
    app = web.Application(middlewares=[kite_errors, malformed_replies, late_order_replies])
    app[STATE_KEY] = state
    app[STREAMER_KEY] = TickStreamer(state)
    r = app.router
    r.add_get("/connect/login", connect_login)
    r.add_post("/session/token", session_token)
    r.add_delete("/session/token", session_logout)
    r.add_get("/user/profile", user_profile)
    r.add_get("/user/margins", user_margins)
    r.add_get("/user/margins/{segment}", user_margins)
    r.add_get("/orders", orders_list)
    r.add_post("/orders/{variety}", order_place)
    r.add_put("/orders/{variety}/{order_id}", order_modify)
    r.add_delete("/orders/{variety}/{order_id}", order_cancel)
    r.add_get("/orders/{order_id}", order_history)
    r.add_get("/orders/{order_id}/trades", order_trades)
    r.add_get("/trades", trades_list)
    r.add_get("/portfolio/positions", positions)
    r.add_get("/instruments", instruments)
    r.add_get("/instruments/historical/{token}/{interval}", historical)
    r.add_get("/instruments/{exchange}", instruments)
    r.add_get("/quote", quote)
    r.add_get("/quote/ohlc", quote_ohlc)
    r.add_get("/quote/ltp", quote_ltp)
    r.add_get("/ws", app[STREAMER_KEY].handle)
    r.add_get("/_sim/state", sim_state)
    r.add_post("/_sim/faults", sim_faults)
    r.add_post("/_sim/clock", sim_clock)
    app.on_startup.append(lambda app: app[STREAMER_KEY].start())
    app.on_shutdown.append(lambda app: app[STREAMER_KEY].shutdown())
    return app
