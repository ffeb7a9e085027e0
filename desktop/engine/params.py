"""Parse and validate a session's parameters (from a workspace file or the UI form) into StrategyParams.

Every problem is collected, so the trader sees all of them at once in one `ParamsError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from datetime import time
from decimal import Decimal, InvalidOperation
from typing import Any

from desktop.domain import MARKET_CLOSE, MARKET_OPEN, Mode, Segment, StrategyParams

# Zerodha squares off index F&O MIS positions itself at 15:25 (and takes no fresh MIS orders after it): the
# strategy's own square-off must come first, with time for its exit to fill or be chased.
LATEST_SQUARE_OFF = time(15, 20)

# Kite allows 400 orders a minute per account, shared by every session of that account.
KITE_ORDERS_PER_MINUTE = 400
KITE_ORDERS_PER_DAY = 5000
# Upper bounds, so that a slip of the keyboard (or 1e999999 pasted) is refused in words. One order of more than 100
# lots is above every index's freeze quantity (NIFTY 1800 units = 27 lots), so the exchange would refuse it anyway.
MAX_LOTS = 100
MAX_ITM_OFFSET = 5000  # points
MAX_EMA = 500  # bars
MAX_OPEN_POSITIONS = 10
MAX_PERCENT = Decimal(10_000)  # a target of 100x the premium
MAX_DAILY_LOSS = Decimal(1_000_000_000)  # rupees
DEFAULT_STRATEGY = "itm_momentum"

REQUIRED_FIELDS = ("segments", "lots", "stop_loss", "itm_offset")
KNOWN_FIELDS = frozenset(
    {
        *REQUIRED_FIELDS,
        "mode",
        "confirm_live",
        "strategy",
        "fast_ema",
        "slow_ema",
        "target",
        "trailing_stop",
        "entry_start",
        "entry_end",
        "square_off",
        "max_trades_per_day",
        "max_daily_loss",
        "max_orders_per_minute",
        "max_open_positions",
        "options",
    }
)
_TIME_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


class ParamsError(ValueError):
    """Invalid session parameters; `.problems` lists every problem in words a trader understands."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


def order_quantity(lots: int, lot_size: int) -> int:
    """Units to order: lots × the contract's lot size (read from the instruments dump)."""
    if isinstance(lots, bool) or not isinstance(lots, int) or lots < 1:
        raise ParamsError(["lots must be a whole number ≥ 1"])
    if isinstance(lot_size, bool) or not isinstance(lot_size, int) or lot_size < 1:
        raise ParamsError([f"the contract's lot size {lot_size!r} is not a whole number ≥ 1"])
    return lots * lot_size


def effective_itm_offset(offset: int, segment: Segment) -> int:
    """The ITM offset used for `segment`: `offset` rounded UP to its strike step ("at least this deep").

    E.g. 150 points on BANKNIFTY (strikes 100 apart) → 200; on NIFTY (50 apart) → 150.
    """
    step = segment.spec.strike_step
    return -(-int(offset) // step) * step


def itm_offset_note(offset: int, segment: Segment) -> str:
    """A line for the log and the snapshot when the offset had to be rounded up, else ''."""
    used = effective_itm_offset(offset, segment)
    if used == offset:
        return ""
    step = segment.spec.strike_step
    return f"{segment.value}: ITM offset {offset} → {used} points (strikes {step} apart)"


def _decimal(value: Any) -> Decimal | None:
    """A Decimal from an int, float, str or Decimal; None for anything else (bools included)."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, Decimal):
            d = value
        elif isinstance(value, float):
            d = Decimal(repr(value))  # 5.1 stays 5.1, not 5.0999999...
        elif isinstance(value, int | str):
            d = Decimal(str(value).strip())
        else:
            return None
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def _whole(value: Any) -> int | None:
    """An int from a whole number (1, "1", 1.0); None when the value is not one."""
    d = _decimal(value)
    if d is None or d != d.to_integral_value():
        return None
    return int(d)


def _clock(value: Any) -> time | None:
    """A time of day from a datetime.time or "HH:MM[:SS]"."""
    if isinstance(value, time):
        return value.replace(tzinfo=None, microsecond=0)
    if isinstance(value, str):
        m = _TIME_RE.match(value)
        if m:
            hh, mm, ss = int(m[1]), int(m[2]), int(m[3] or 0)
            if hh < 24 and mm < 60 and ss < 60:
                return time(hh, mm, ss)
    return None


def format_clock(t: time) -> str:
    """ "09:20", or "09:20:30" when the seconds matter."""
    return t.strftime("%H:%M:%S" if t.second else "%H:%M")


class _Collector:
    """Reads fields from the raw mapping and records one message per bad field."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw
        self.problems: list[str] = []

    def whole(
        self,
        name: str,
        default: int | None,
        minimum: int,
        maximum: int,
        what: str = "a whole number",
        why: str = "",
    ) -> int | None:
        """A whole number from `minimum` to `maximum` (`why` tells the trader where the maximum comes from)."""
        if name not in self.raw or self.raw[name] is None:
            if default is None:
                self.problems.append(f"{name} is missing ({what} ≥ {minimum})")
            return default
        value = self.raw[name]
        d = _decimal(value)
        if (
            d is not None and d > maximum
        ):  # before any int(): 1e999999 would take the thread for half a minute
            shown = f" {value}" if isinstance(value, int) else ""
            self.problems.append(f"{name}{shown} is too large: at most {maximum}{why}")
            return None
        n = _whole(value) if d is None or d >= minimum else None  # no int() of -1e999999 either
        if n is None or n < minimum:
            self.problems.append(f"{name} must be {what} ≥ {minimum}")
            return None
        return n

    def percent(
        self, name: str, default: Decimal | None, upper: Decimal | None, hint: str = ""
    ) -> Decimal | None:
        if name not in self.raw or self.raw[name] is None:
            return default
        d = _decimal(self.raw[name])
        bound = (
            f"between 0 and {upper} (exclusive)"
            if upper is not None
            else f"greater than 0 and at most {MAX_PERCENT}"
        )
        if d is None or d <= 0 or (upper is not None and d >= upper) or d > MAX_PERCENT:
            self.problems.append(f"{name} must be a percent {bound}{hint}, not {self.raw[name]!r}")
            return None
        return Decimal(int(d)) if d == d.to_integral_value() else d

    def clock(self, name: str, default: time) -> time | None:
        if name not in self.raw or self.raw[name] is None:
            return default
        t = _clock(self.raw[name])
        if t is None:
            self.problems.append(f'{name} must be a time of day like "09:20", not {self.raw[name]!r}')
        return t


def _segments(raw: Any, problems: list[str]) -> tuple[Segment, ...]:
    if raw is None:
        problems.append("segments is missing: choose one or more of NIFTY, BANKNIFTY, SENSEX")
        return ()
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple) or not items:
        problems.append("segments must list at least one of NIFTY, BANKNIFTY, SENSEX")
        return ()
    chosen: list[Segment] = []
    for item in items:
        try:
            seg = item if isinstance(item, Segment) else Segment.parse(str(item))
        except ValueError as e:
            problems.append(str(e))
            continue
        if seg in chosen:
            problems.append(f"segment {seg.value} is listed twice")
        else:
            chosen.append(seg)
    return tuple(chosen)


def _mode(raw: Any, confirm_live: bool, problems: list[str]) -> Mode | None:
    if raw is None:
        return Mode.PAPER  # the safe default: nothing reaches the exchange
    try:
        mode = Mode(str(raw).strip().upper())
    except ValueError:
        problems.append(f"mode must be PAPER or LIVE, not {raw!r}")
        return None
    if mode is Mode.LIVE and confirm_live is not True:
        problems.append("LIVE mode sends real orders: confirm it explicitly (confirm_live = true)")
        return None
    return mode


def parse_params(
    raw: Mapping[str, Any],
    *,
    confirm_live: bool = False,
    known_strategies: Collection[str] | None = None,
) -> StrategyParams:
    """Validated StrategyParams from a mapping, or ParamsError listing every problem.

    LIVE mode needs `confirm_live=True` (the argument or a `confirm_live = true` entry).
    With `known_strategies`, an unknown strategy name is reported with the choices.
    """
    if not isinstance(raw, Mapping):
        raise ParamsError(["parameters must be a table of named settings"])
    c = _Collector(raw)
    problems = c.problems
    for name in sorted(set(raw) - KNOWN_FIELDS):
        problems.append(f"unknown setting {name!r}")

    segments = _segments(raw.get("segments"), problems)
    lots = c.whole(
        "lots", None, 1, MAX_LOTS, why=" (one order that big is above every index's freeze quantity)"
    )
    stop_loss = c.percent("stop_loss", None, Decimal(100), " of the entry premium")
    if "stop_loss" not in raw or raw["stop_loss"] is None:
        problems.append("stop_loss is missing (percent of the entry premium, e.g. 5)")

    itm_offset = c.whole("itm_offset", None, 0, MAX_ITM_OFFSET, "a whole number of points", " points")
    if itm_offset is not None and segments:
        # The finest grid decides; coarser segments round the offset up (see effective_itm_offset).
        finest = min(segments, key=lambda s: s.spec.strike_step)
        step = finest.spec.strike_step
        if itm_offset % step:
            problems.append(
                f"itm_offset {itm_offset} is not a multiple of {finest.value}'s strike step {step}"
            )

    live_ok = confirm_live is True or raw.get("confirm_live") is True
    mode = _mode(raw.get("mode"), live_ok, problems)

    strategy = raw.get("strategy", DEFAULT_STRATEGY)
    if not isinstance(strategy, str) or not _NAME_RE.match(strategy.strip()):
        problems.append(f"strategy must be a strategy name like {DEFAULT_STRATEGY!r}, not {strategy!r}")
        strategy = None
    else:
        strategy = strategy.strip()
        if known_strategies is not None and strategy not in known_strategies:
            choices = ", ".join(sorted(known_strategies)) or "none installed"
            problems.append(f"unknown strategy {strategy!r}: choose from {choices}")

    fast = c.whole("fast_ema", 9, 1, MAX_EMA, why=" bars")
    slow = c.whole("slow_ema", 21, 2, MAX_EMA, why=" bars")
    if fast is not None and slow is not None and fast >= slow:
        problems.append(f"fast_ema ({fast}) must be shorter than slow_ema ({slow})")
    target = c.percent("target", None, None, " above the entry premium")
    trailing = c.percent("trailing_stop", None, Decimal(100), " below the highest premium")

    entry_start = c.clock("entry_start", time(9, 20))
    entry_end = c.clock("entry_end", time(14, 45))
    square_off = c.clock("square_off", time(15, 15))
    if entry_start and entry_end and entry_start >= entry_end:
        problems.append(
            f"entry window start {format_clock(entry_start)} must be before its end {format_clock(entry_end)}"
        )
    if entry_start and entry_start < MARKET_OPEN:
        problems.append(f"entry_start {format_clock(entry_start)} is before the market opens (09:15)")
    if entry_end and square_off and entry_end >= square_off:
        problems.append(
            f"entry_end {format_clock(entry_end)} must be before the square-off time {format_clock(square_off)}"
        )
    if square_off and not (MARKET_OPEN < square_off <= MARKET_CLOSE):
        problems.append(f"square_off {format_clock(square_off)} must be within market hours (09:15–15:30)")
    elif square_off and square_off > LATEST_SQUARE_OFF:
        problems.append(
            f"square_off {format_clock(square_off)} is too late: Zerodha squares off intraday (MIS) option "
            f"positions itself from 15:25, with a charge per order; use {format_clock(LATEST_SQUARE_OFF)} or earlier"
        )

    max_trades = c.whole("max_trades_per_day", 5, 1, KITE_ORDERS_PER_DAY, why=" (Kite's orders a day)")
    max_loss = Decimal(5000)
    if raw.get("max_daily_loss") is not None:
        d = _decimal(raw["max_daily_loss"])
        if d is None or d <= 0 or d > MAX_DAILY_LOSS:
            problems.append(
                f"max_daily_loss must be an amount in rupees greater than 0 and at most {MAX_DAILY_LOSS:,}, "
                f"not {raw['max_daily_loss']!r}"
            )
        else:
            max_loss = d
    max_orders = c.whole(
        "max_orders_per_minute", 20, 1, KITE_ORDERS_PER_MINUTE, why=" (Kite's limit per account)"
    )
    max_open = c.whole("max_open_positions", len(segments) or 1, 1, MAX_OPEN_POSITIONS)

    options_raw = raw.get("options") or {}
    if not isinstance(options_raw, Mapping) or not all(isinstance(k, str) for k in options_raw):
        problems.append("options must be a table of named settings for the strategy")
        options_raw = {}
    for name, value in options_raw.items():
        if not _plain_option(value):
            problems.append(
                f"options.{name} must be text, true/false, a finite number or a list of them, not {value!r}"
            )

    if problems:
        raise ParamsError(problems)
    assert lots is not None and stop_loss is not None and itm_offset is not None and mode is not None
    assert fast is not None and slow is not None and max_trades is not None and max_orders is not None
    assert entry_start and entry_end and square_off and max_open is not None and isinstance(strategy, str)
    return StrategyParams(
        segments=segments,
        lots=lots,
        stop_loss=stop_loss,
        itm_offset=itm_offset,
        mode=mode,
        strategy=strategy,
        fast_ema=fast,
        slow_ema=slow,
        target=target,
        trailing_stop=trailing,
        entry_start=entry_start,
        entry_end=entry_end,
        square_off=square_off,
        max_trades_per_day=max_trades,
        max_daily_loss=max_loss,
        max_orders_per_minute=max_orders,
        max_open_positions=max_open,
        options=tuple(sorted(options_raw.items())),
    )


def _plain_option(value: Any) -> bool:
    """A strategy setting that is saved and read back as it is (JSON and TOML): no inf, NaN, dates or tables."""
    if isinstance(value, list | tuple):
        return all(_plain_option(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str | int)  # bool is an int


def _plain_number(d: Decimal) -> int | float | str:
    """An int when whole, a float when it reads back exactly (5.5), else the exact decimal text."""
    if d == d.to_integral_value():
        return int(d)
    f = float(d)
    return f if Decimal(repr(f)) == d else str(d)


def params_to_dict(params: StrategyParams, confirm_live: bool = False) -> dict[str, Any]:
    """A plain mapping that `parse_params` turns back into an equal StrategyParams (for saving).

    LIVE parameters are written with `confirm_live = true` only when `confirm_live` says a person confirmed them
    for this file: parameters do not carry a confirmation, and a LIVE mode merely selected must not become one.
    """
    out: dict[str, Any] = {
        "segments": [s.value for s in params.segments],
        "lots": params.lots,
        "stop_loss": _plain_number(params.stop_loss),
        "itm_offset": params.itm_offset,
        "mode": params.mode.value,
    }
    if params.mode is Mode.LIVE and confirm_live:
        out["confirm_live"] = True
    out |= {
        "strategy": params.strategy,
        "fast_ema": params.fast_ema,
        "slow_ema": params.slow_ema,
        "entry_start": format_clock(params.entry_start),
        "entry_end": format_clock(params.entry_end),
        "square_off": format_clock(params.square_off),
        "max_trades_per_day": params.max_trades_per_day,
        "max_daily_loss": _plain_number(params.max_daily_loss),
        "max_orders_per_minute": params.max_orders_per_minute,
        "max_open_positions": params.max_open_positions,
    }
    if params.target is not None:
        out["target"] = _plain_number(params.target)
    if params.trailing_stop is not None:
        out["trailing_stop"] = _plain_number(params.trailing_stop)
    if params.options:
        out["options"] = dict(params.options)
    return out
