"""Parse and validate a session's parameters (from a workspace file or the UI form) into StrategyParams.

Each setting is read as its entry in `param_spec.FIELDS` says (kind, bounds, default); then the rules that
join settings (strike grid, EMA order, the day's timetable) are checked. Every problem is collected, so the
trader sees all of them at once in one `ParamsError`, each problem naming its field (`Problem.field`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from datetime import time
from decimal import Decimal, InvalidOperation
from typing import Any

from desktop.domain import MARKET_CLOSE, MARKET_OPEN, Mode, Segment, StrategyParams
from desktop.engine.param_spec import (
    DEFAULT_STRATEGY,
    FIELDS,
    KITE_ORDERS_PER_DAY,
    KITE_ORDERS_PER_MINUTE,
    LATEST_SQUARE_OFF,
    MAX_DAILY_LOSS,
    MAX_EMA,
    MAX_ITM_OFFSET,
    MAX_LOTS,
    MAX_OPEN_POSITIONS,
    MAX_PERCENT,
    FieldSpec,
    Key,
    Kind,
    Problem,
    about,
    as_problems,
    format_clock,
    to_plain,
)

__all__ = [
    "DEFAULT_STRATEGY",
    "KITE_ORDERS_PER_DAY",
    "KITE_ORDERS_PER_MINUTE",
    "KNOWN_FIELDS",
    "LATEST_SQUARE_OFF",
    "MAX_DAILY_LOSS",
    "MAX_EMA",
    "MAX_ITM_OFFSET",
    "MAX_LOTS",
    "MAX_OPEN_POSITIONS",
    "MAX_PERCENT",
    "REQUIRED_FIELDS",
    "ParamsError",
    "Problem",
    "effective_itm_offset",
    "format_clock",
    "itm_offset_note",
    "order_quantity",
    "params_to_dict",
    "parse_params",
]

REQUIRED_FIELDS = tuple(f.name for f in FIELDS if f.required)
# `confirm_live` is not a parameter: a person's confirmation, read from the file, never kept in StrategyParams.
KNOWN_FIELDS = frozenset({f.name for f in FIELDS} | {"confirm_live"})
_TIME_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


class ParamsError(ValueError):
    """Invalid session parameters; `.problems` lists every problem in words a trader understands.

    Each is a `Problem`: a str in the file's words, with `.field` and `.in_form` (the form's words).
    """

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems: list[Problem] = as_problems(problems)


def order_quantity(lots: int, lot_size: int) -> int:
    """Units to order: lots × the contract's lot size (read from the instruments dump)."""
    if isinstance(lots, bool) or not isinstance(lots, int) or lots < 1:
        raise ParamsError([about("lots", " must be a whole number ≥ 1")])
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


class _Reader:
    """Reads each setting from the raw mapping as its spec says, recording one problem per bad setting."""

    def __init__(
        self, raw: Mapping[str, Any], live_ok: bool, known_strategies: Collection[str] | None
    ) -> None:
        self.raw = raw
        self.live_ok = live_ok
        self.known_strategies = known_strategies
        self.problems: list[Problem] = []
        self.segments: tuple[Segment, ...] = ()

    def read(self, f: FieldSpec) -> Any:
        """The setting's value, its default when absent, or None (with a problem) when unusable."""
        value = self.raw.get(f.name)
        if f.kind is Kind.SEGMENTS:
            self.segments = self._segments(f, value)
            return self.segments
        if value is None:
            if f.required:
                self.problems.append(self._missing(f))
            return f.default_for(self.segments)
        reader = getattr(self, f"_{f.kind.value}")
        return reader(f, value)

    def _missing(self, f: FieldSpec) -> Problem:
        if f.kind is Kind.WHOLE:
            return about(f.name, f" is missing ({f.what} ≥ {f.minimum})")
        if f.kind is Kind.PERCENT:
            return about(f.name, f" is missing ({f.placeholder})")
        return about(f.name, " is missing")

    def _segments(self, f: FieldSpec, raw: Any) -> tuple[Segment, ...]:
        choices = ", ".join(s.value for s in Segment)
        if raw is None:
            self.problems.append(about(f.name, f" is missing: choose one or more of {choices}"))
            return ()
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, list | tuple) or not items:
            self.problems.append(about(f.name, f" must list at least one of {choices}"))
            return ()
        chosen: list[Segment] = []
        for item in items:
            try:
                seg = item if isinstance(item, Segment) else Segment.parse(str(item))
            except ValueError as e:
                self.problems.append(Problem(f.name, str(e)))
                continue
            if seg in chosen:
                self.problems.append(Problem(f.name, f"segment {seg.value} is listed twice"))
            else:
                chosen.append(seg)
        return tuple(chosen)

    def _whole(self, f: FieldSpec, value: Any) -> int | None:
        """A whole number from `minimum` to `maximum` (`why` tells the trader where the maximum comes from)."""
        d = _decimal(value)
        if (
            d is not None and d > f.maximum
        ):  # before any int(): 1e999999 would take the thread for half a minute
            shown = f" {value}" if isinstance(value, int) else ""
            self.problems.append(about(f.name, f"{shown} is too large: at most {f.maximum}{f.why}"))
            return None
        n = _whole(value) if d is None or d >= f.minimum else None  # no int() of -1e999999 either
        if n is None or n < f.minimum:
            self.problems.append(about(f.name, f" must be {f.what} ≥ {f.minimum}"))
            return None
        return n

    def _percent(self, f: FieldSpec, value: Any) -> Decimal | None:
        d = _decimal(value)
        upper: Decimal = f.maximum
        if f.exclusive_max:
            bound = f"between 0 and {upper} (exclusive)"
            bad = d is None or d <= 0 or d >= upper
        else:
            bound = f"greater than 0 and at most {upper}"
            bad = d is None or d <= 0 or d > upper
        if bad or d is None:
            self.problems.append(about(f.name, f" must be a percent {bound}{f.relative}, not {value!r}"))
            return None
        return Decimal(int(d)) if d == d.to_integral_value() else d

    def _amount(self, f: FieldSpec, value: Any) -> Decimal | None:
        d = _decimal(value)
        if d is None or d <= 0 or d > f.maximum:
            self.problems.append(
                about(
                    f.name,
                    f" must be an amount in rupees greater than 0 and at most {f.maximum:,}, not {value!r}",
                )
            )
            return None
        return d

    def _clock(self, f: FieldSpec, value: Any) -> time | None:
        t = _clock(value)
        if t is None:
            self.problems.append(about(f.name, f' must be a time of day like "09:20", not {value!r}'))
        return t

    def _mode(self, f: FieldSpec, value: Any) -> Mode | None:
        try:
            mode = Mode(str(value).strip().upper())
        except ValueError:
            self.problems.append(about(f.name, f" must be PAPER or LIVE, not {value!r}"))
            return None
        if mode is Mode.LIVE and not self.live_ok:
            self.problems.append(
                Problem(f.name, "LIVE mode sends real orders: confirm it explicitly (confirm_live = true)")
            )
            return None
        return mode

    def _strategy(self, f: FieldSpec, value: Any) -> str | None:
        if not isinstance(value, str) or not _NAME_RE.match(value.strip()):
            self.problems.append(
                about(f.name, f" must be a strategy name like {DEFAULT_STRATEGY!r}, not {value!r}")
            )
            return None
        name = value.strip()
        if self.known_strategies is not None and name not in self.known_strategies:
            choices = ", ".join(sorted(self.known_strategies)) or "none installed"
            self.problems.append(Problem(f.name, f"unknown strategy {name!r}: choose from {choices}"))
        return name

    def _freeze(self, f: FieldSpec, value: Any) -> tuple[tuple[str, int], ...] | None:
        if not value:
            return ()
        if not isinstance(value, Mapping):
            self.problems.append(
                about(f.name, " must be a table of index names and units, like NIFTY = 1800")
            )
            return None
        known = ", ".join(s.value for s in Segment)
        out: dict[str, int] = {}
        for name, units in value.items():
            index = str(name).strip().upper()
            if index not in {s.value for s in Segment}:
                self.problems.append(Problem(f.name, f"freeze.{name}: unknown index (choose from {known})"))
            elif isinstance(units, bool) or not isinstance(units, int) or not 0 < units <= f.maximum:
                self.problems.append(
                    Problem(
                        f.name,
                        f"freeze.{name} must be a whole number of units from 1 to {f.maximum:,} "
                        f"(the exchange's freeze quantity), not {units!r}",
                    )
                )
            else:
                out[index] = units
        return tuple(sorted(out.items()))

    def _options(self, f: FieldSpec, value: Any) -> tuple[tuple[str, Any], ...] | None:
        if not value:
            return ()  # an empty table (or an empty value from a form) is no options
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            self.problems.append(about(f.name, " must be a table of named settings for the strategy"))
            return None
        for name, option in value.items():
            if not _plain_option(option):
                self.problems.append(
                    Problem(
                        f.name,
                        f"options.{name} must be text, true/false, a finite number or a list of them, "
                        f"not {option!r}",
                    )
                )
        return tuple(sorted(value.items()))


def _joint_problems(v: Mapping[str, Any]) -> list[Problem]:
    """The rules that join settings: the strike grid, the EMAs' order, the day's timetable."""
    problems: list[Problem] = []
    segments, itm_offset = v["segments"], v["itm_offset"]
    if itm_offset is not None and segments:
        # The finest grid decides; coarser segments round the offset up (see effective_itm_offset).
        finest = min(segments, key=lambda s: s.spec.strike_step)
        step = finest.spec.strike_step
        if itm_offset % step:
            problems.append(
                about("itm_offset", f" {itm_offset} is not a multiple of {finest.value}'s strike step {step}")
            )
    fast, slow = v["fast_ema"], v["slow_ema"]
    if fast is not None and slow is not None and fast >= slow:
        problems.append(about("fast_ema", f" ({fast}) must be shorter than ", Key("slow_ema"), f" ({slow})"))

    entry_start, entry_end, square_off = v["entry_start"], v["entry_end"], v["square_off"]
    if entry_start and entry_end and entry_start >= entry_end:
        problems.append(
            Problem(
                "entry_start",
                f"entry window start {format_clock(entry_start)} must be before its end {format_clock(entry_end)}",
            )
        )
    if entry_start and entry_start < MARKET_OPEN:
        problems.append(
            about("entry_start", f" {format_clock(entry_start)} is before the market opens (09:15)")
        )
    if entry_end and square_off and entry_end >= square_off:
        problems.append(
            about(
                "entry_end",
                f" {format_clock(entry_end)} must be before the square-off time {format_clock(square_off)}",
            )
        )
    outside = bool(square_off and not (MARKET_OPEN < square_off <= MARKET_CLOSE))
    if outside:
        problems.append(
            about("square_off", f" {format_clock(square_off)} must be within market hours (09:15–15:30)")
        )
    for (
        f
    ) in FIELDS:  # a time's latest allowed, from the spec (a square-off outside market hours is told above)
        t = v[f.name]
        if (
            f.kind is Kind.CLOCK
            and f.maximum is not None
            and t
            and t > f.maximum
            and not (outside and f.name == "square_off")
        ):
            problems.append(
                about(
                    f.name,
                    f" {format_clock(t)} is too late{f.why}; use {format_clock(f.maximum)} or earlier",
                )
            )
    return problems


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
    live_ok = confirm_live is True or raw.get("confirm_live") is True
    reader = _Reader(raw, live_ok, known_strategies)
    problems = reader.problems
    for name in sorted(set(raw) - KNOWN_FIELDS):
        problems.append(Problem("", f"unknown setting {name!r}"))
    values = {f.name: reader.read(f) for f in FIELDS}
    problems.extend(_joint_problems(values))
    if problems:
        raise ParamsError(problems)
    unset = [f.name for f in FIELDS if values[f.name] is None and f.default is not None]
    assert not unset, f"parameters left unset without a problem: {unset}"
    return StrategyParams(**values)


def _plain_option(value: Any) -> bool:
    """A strategy setting that is saved and read back as it is (JSON and TOML): no inf, NaN, dates or tables."""
    if isinstance(value, list | tuple):
        return all(_plain_option(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str | int)  # bool is an int


def params_to_dict(params: StrategyParams, confirm_live: bool = False) -> dict[str, Any]:
    """A plain mapping that `parse_params` turns back into an equal StrategyParams (for saving).

    LIVE parameters are written with `confirm_live = true` only when `confirm_live` says a person confirmed them
    for this file: parameters do not carry a confirmation, and a LIVE mode merely selected must not become one.
    Settings without a value (an optional target) and empty plug-in options are left out.
    """
    out: dict[str, Any] = {}
    for f in FIELDS:
        value = getattr(params, f.name)
        if value is None or (f.kind in (Kind.OPTIONS, Kind.FREEZE) and not value):
            continue
        out[f.name] = to_plain(f, value)
        if f.kind is Kind.MODE and value is Mode.LIVE and confirm_live:
            out["confirm_live"] = True
    return out
