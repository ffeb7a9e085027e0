"""The session parameters' one schema: each setting's name, label, kind, bounds, default, unit and help.

`FIELDS` drives everything that reads or writes a session's parameters: parsing and its messages
(`params.parse_params`), saving (`params.params_to_dict`, hence the workspace file) and the form
(`ui/params_form.py`: rows, labels, placeholders, tooltips, filling). A setting is added here, with its typed
attribute on `domain.StrategyParams` (tests/engine/test_param_spec.py checks the two agree), and nowhere else.

Problems carry the field they are about (`Problem.field`), so the form places a message without reading it,
and come in two wordings: the file's, naming the setting by its key as the trader typed it in the workspace
("stop_loss is missing"), and the form's, naming it by its label ("Stop loss % is missing").
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import time
from decimal import Decimal
from typing import Any

from desktop.domain import Mode, Segment

# Kite allows 400 orders a minute per account, shared by every session of that account.
KITE_ORDERS_PER_MINUTE = 400
KITE_ORDERS_PER_DAY = 5000
# Upper bounds, so that a slip of the keyboard (or 1e999999 pasted) is refused in words. One order of more than 100
# lots is sent in slices (each within the index's freeze quantity, desktop/engine/slices.py), up to 4 of them for NIFTY.
MAX_LOTS = 100
MAX_ITM_OFFSET = 5000  # points
MAX_FREEZE_UNITS = 100_000  # a freeze override above this is a slip of the keyboard
MAX_EMA = 500  # bars
MAX_OPEN_POSITIONS = 10
MAX_PERCENT = Decimal(10_000)  # a target of 100x the premium
MAX_DAILY_LOSS = Decimal(1_000_000_000)  # rupees
DEFAULT_STRATEGY = "itm_momentum"
# Zerodha squares off index F&O MIS positions itself at 15:25 (and takes no fresh MIS orders after it): the
# strategy's own square-off must come first, with time for its exit to fill or be chased.
LATEST_SQUARE_OFF = time(15, 20)


class Kind(enum.Enum):
    """How a setting is written and checked."""

    SEGMENTS = "segments"  # one or more index names
    WHOLE = "whole"  # a whole number from `minimum` to `maximum`
    PERCENT = "percent"  # greater than 0, up to `maximum` (excluded when `exclusive_max`)
    AMOUNT = "amount"  # rupees, greater than 0 and at most `maximum`
    CLOCK = "clock"  # a market (IST) time of day, "HH:MM[:SS]", at most `maximum`
    MODE = "mode"  # PAPER or LIVE
    STRATEGY = "strategy"  # an installed strategy's name
    OPTIONS = "options"  # a plug-in strategy's own settings, a table
    FREEZE = "freeze"  # freeze quantities by index, a table of whole numbers of units


class Section(enum.Enum):
    """Where the form shows a setting."""

    MAIN = "main"  # always visible
    MORE = "more"  # under "More settings"
    KEPT = "kept"  # no field: the form keeps the value it was filled with (an account limit, plug-in options)


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


class _OnePerSegment:
    def __repr__(self) -> str:
        return "ONE_PER_SEGMENT"


REQUIRED: Any = _Required()
"""The default of a setting that must be given."""
ONE_PER_SEGMENT: Any = _OnePerSegment()
"""The default of a setting that follows the segments chosen (one open position per segment)."""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One setting of a session: everything the parser, the file and the form need to know about it."""

    name: str  # the key in the workspace file and the StrategyParams attribute
    label: str  # how the form and its messages name it
    kind: Kind
    help: str  # the form's tooltip: what the setting does, in the trader's words
    example: Any  # a valid value as the file holds it; for a required setting the placeholder's "e.g."
    default: Any = None  # REQUIRED, None (optional: no value), ONE_PER_SEGMENT or the value itself
    minimum: Any = None
    maximum: Any = None
    exclusive_max: bool = False  # PERCENT: `maximum` itself is refused
    unit: str = ""  # shown after the label in the form: "ITM offset (points)"
    what: str = "a whole number"  # WHOLE: how a message describes the value
    why: str = ""  # where `maximum` comes from, appended to the message that refuses a larger value
    relative: str = ""  # PERCENT: what the percent is of, " of the entry premium"
    section: Section = Section.MORE

    @property
    def required(self) -> bool:
        """The setting must be given (it has no default)."""
        return self.default is REQUIRED

    @property
    def form_label(self) -> str:
        """The label of the form's row: "ITM offset (points)"."""
        return f"{self.label} ({self.unit})" if self.unit else self.label

    @property
    def placeholder(self) -> str:
        """What an empty field shows: an example when required, else the default it falls back to."""
        if self.required:
            lead = f"percent{self.relative}, " if self.kind is Kind.PERCENT else ""
            return f"{lead}e.g. {self.example}"
        if self.default is None:
            return "optional"
        return to_text(self, self.default)

    def default_for(self, segments: Sequence[Segment]) -> Any:
        """The value used when the setting is not given (None when it has none)."""
        if self.default is ONE_PER_SEGMENT:
            return len(segments) or 1
        return None if self.default is REQUIRED else self.default


def format_clock(t: time) -> str:
    """ "09:20", or "09:20:30" when the seconds matter."""
    return t.strftime("%H:%M:%S" if t.second else "%H:%M")


def _plain_number(d: Decimal) -> int | float | str:
    """An int when whole, a float when it reads back exactly (5.5), else the exact decimal text."""
    if d == d.to_integral_value():
        return int(d)
    f = float(d)
    return f if Decimal(repr(f)) == d else str(d)


def to_plain(spec: FieldSpec, value: Any) -> Any:
    """A parsed value as the workspace file (TOML) and JSON hold it; parsing it gives `value` back."""
    if spec.kind is Kind.SEGMENTS:
        return [s.value for s in value]
    if spec.kind in (Kind.PERCENT, Kind.AMOUNT):
        return _plain_number(value)
    if spec.kind is Kind.CLOCK:
        return format_clock(value)
    if spec.kind is Kind.MODE:
        return value.value
    if spec.kind in (Kind.OPTIONS, Kind.FREEZE):
        return dict(value)
    return value


def to_text(spec: FieldSpec, value: Any) -> str:
    """A parsed value as the form's text field shows it."""
    if spec.kind is Kind.CLOCK:
        return format_clock(value)
    if spec.kind is Kind.SEGMENTS:
        return ", ".join(s.value for s in value)
    if spec.kind is Kind.MODE:
        return str(value.value)
    return str(value)


class Key(str):
    """A setting's key inside a message: the file's wording shows the key, the form's wording its label."""

    __slots__ = ()


class Problem(str):
    """One problem with the parameters. As a str, the file's wording ("stop_loss is missing");
    `.field` is the setting it is about ("" for the whole set) and `.in_form` the form's wording."""

    field: str
    in_form: str

    def __new__(cls, field: str, *parts: str) -> Problem:
        self = super().__new__(cls, "".join(parts))
        self.field = field
        self.in_form = "".join(label_of(p) if isinstance(p, Key) else p for p in parts)
        return self

    def __reduce__(self) -> tuple[Any, ...]:  # pickled (a worker process) as it was built
        return (_rebuild, (self.field, str(self), self.in_form))


def _rebuild(field: str, text: str, in_form: str) -> Problem:
    p = Problem(field, text)
    p.in_form = in_form
    return p


def about(field: str, *rest: str) -> Problem:
    """A problem whose message starts with the setting it is about: about("lots", " must be …")."""
    return Problem(field, Key(field), *rest)


def as_problems(problems: Iterable[str]) -> list[Problem]:
    """Problems as they are; a plain message becomes a problem about the whole set."""
    return [p if isinstance(p, Problem) else Problem("", p) for p in problems]


_PERCENT_CAP: dict[str, Any] = {"maximum": MAX_PERCENT}

FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec(
        "segments",
        "Segments",
        Kind.SEGMENTS,
        "The indices whose options this session trades, each on its own worker",
        example=["NIFTY"],
        default=REQUIRED,
        section=Section.MAIN,
    ),
    FieldSpec(
        "lots",
        "Lots",
        Kind.WHOLE,
        "Lots per entry; the order's quantity is lots × the contract's lot size",
        example=1,
        default=REQUIRED,
        minimum=1,
        maximum=MAX_LOTS,
        why=" (an entry above the freeze quantity is sent in slices; more lots than this is taken for a slip)",
        section=Section.MAIN,
    ),
    FieldSpec(
        "stop_loss",
        "Stop loss %",
        Kind.PERCENT,
        "The stop loss, in percent below the entry premium",
        example=5,
        default=REQUIRED,
        maximum=Decimal(100),
        exclusive_max=True,
        relative=" of the entry premium",
        section=Section.MAIN,
    ),
    FieldSpec(
        "itm_offset",
        "ITM offset",
        Kind.WHOLE,
        "How deep in the money the option is bought, in index points; a multiple of the finest strike step "
        "chosen (coarser segments round it up)",
        example=100,
        default=REQUIRED,
        minimum=0,
        maximum=MAX_ITM_OFFSET,
        unit="points",
        what="a whole number of points",
        why=" points",
        section=Section.MAIN,
    ),
    FieldSpec(
        "mode",
        "Mode",
        Kind.MODE,
        "PAPER simulates fills at live prices; LIVE sends real orders",
        example="LIVE",
        default=Mode.PAPER,  # the safe default: nothing reaches the exchange
        section=Section.MAIN,
    ),
    FieldSpec(
        "strategy",
        "Strategy",
        Kind.STRATEGY,
        "The strategy that decides entries and exits",
        example="mean_revert",
        default=DEFAULT_STRATEGY,
    ),
    FieldSpec(
        "fast_ema",
        "Fast EMA",
        Kind.WHOLE,
        "Bars of the fast moving average (shorter than the slow one)",
        example=5,
        default=9,
        minimum=1,
        maximum=MAX_EMA,
        unit="bars",
        why=" bars",
    ),
    FieldSpec(
        "slow_ema",
        "Slow EMA",
        Kind.WHOLE,
        "Bars of the slow moving average",
        example=30,
        default=21,
        minimum=2,
        maximum=MAX_EMA,
        unit="bars",
        why=" bars",
    ),
    FieldSpec(
        "target",
        "Target %",
        Kind.PERCENT,
        "Take profit at this percent above the entry premium (empty: no target)",
        example=20,
        relative=" above the entry premium",
        **_PERCENT_CAP,
    ),
    FieldSpec(
        "trailing_stop",
        "Trailing stop %",
        Kind.PERCENT,
        "Trail the stop this percent below the highest premium since entry (empty: a fixed stop)",
        example="2.5",
        maximum=Decimal(100),
        exclusive_max=True,
        relative=" below the highest premium",
    ),
    FieldSpec(
        "entry_start",
        "Entries from",
        Kind.CLOCK,
        "No entry before this time (IST), and not before the market opens at 09:15",
        example="09:30",
        default=time(9, 20),
    ),
    FieldSpec(
        "entry_end",
        "Entries until",
        Kind.CLOCK,
        "No entry after this time (IST); before the square-off",
        example="14:00",
        default=time(14, 45),
    ),
    FieldSpec(
        "square_off",
        "Square off at",
        Kind.CLOCK,
        "Open positions are closed at this time (IST), 15:20 at the latest: Zerodha squares off intraday "
        "index options itself from 15:25",
        example="15:00",
        default=time(15, 15),
        maximum=LATEST_SQUARE_OFF,
        why=": Zerodha squares off intraday (MIS) option positions itself from 15:25, with a charge per order",
    ),
    FieldSpec(
        "max_trades_per_day",
        "Max trades a day",
        Kind.WHOLE,
        "No new entry after this many trades in a day",
        example=10,
        default=5,
        minimum=1,
        maximum=KITE_ORDERS_PER_DAY,
        why=" (Kite's orders a day)",
    ),
    FieldSpec(
        "max_daily_loss",
        "Max daily loss ₹",
        Kind.AMOUNT,
        "The session stops entering and squares off when the day's loss (realised + open) reaches this",
        example=2500,
        default=Decimal(5000),
        maximum=MAX_DAILY_LOSS,
    ),
    FieldSpec(
        "max_orders_per_minute",
        "Max orders a minute",
        Kind.WHOLE,
        "Orders this session may send a minute (Kite allows 400 a minute per account, shared by its sessions)",
        example=10,
        default=20,
        minimum=1,
        maximum=KITE_ORDERS_PER_MINUTE,
        why=" (Kite's limit per account)",
        section=Section.KEPT,
    ),
    FieldSpec(
        "max_open_positions",
        "Max open positions",
        Kind.WHOLE,
        "Positions open at once (by default one per segment)",
        example=3,
        default=ONE_PER_SEGMENT,
        minimum=1,
        maximum=MAX_OPEN_POSITIONS,
        section=Section.KEPT,
    ),
    FieldSpec(
        "freeze",
        "Freeze quantities",
        Kind.FREEZE,
        "Units per order for an index's options, when the exchange has changed its freeze quantity since this "
        "version ([session.freeze] or the workspace's [freeze] table: NIFTY = 1800). Larger orders go in slices",
        example={"NIFTY": 1800},
        default=(),
        maximum=MAX_FREEZE_UNITS,
        section=Section.KEPT,
    ),
    FieldSpec(
        "options",
        "Strategy options",
        Kind.OPTIONS,
        "A plug-in strategy's own settings ([session.options] in a workspace file)",
        example={"threshold": 1.5},
        default=(),
        section=Section.KEPT,
    ),
)

BY_NAME: dict[str, FieldSpec] = {f.name: f for f in FIELDS}


def label_of(name: str) -> str:
    """How the form names setting `name` (the name itself when it is not a setting)."""
    spec = BY_NAME.get(name)
    return spec.label if spec is not None else name


def example_raw() -> dict[str, Any]:
    """The required settings at their examples: a valid set of parameters, what a new tab starts from."""
    return {f.name: f.example for f in FIELDS if f.required}
