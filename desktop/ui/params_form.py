"""The session's parameter form: every field validated as the trader types, messages under the field."""

from __future__ import annotations

import re
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.domain import Mode, Segment, StrategyParams
from desktop.engine import ParamsError, format_clock, parse_params

ERROR_COLOUR = "#ff5c5c"  # readable on the dark and the light theme


def _error_label() -> QLabel:
    """A small red label for a validation message. Coloured through its palette, not a style sheet: a
    style sheet per label (sixteen per form) was a third of building a session tab."""
    label = QLabel()
    palette = label.palette()
    palette.setColor(QPalette.ColorRole.WindowText, QColor(ERROR_COLOUR))
    label.setPalette(palette)
    font = label.font()
    font.setPixelSize(11)
    label.setFont(font)
    label.setWordWrap(True)
    return label


# (field, label, placeholder) of the text fields; the first four are always visible.
_MAIN_FIELDS = (
    ("lots", "Lots", "e.g. 1"),
    ("stop_loss", "Stop loss %", "percent of the entry premium, e.g. 5"),
    ("itm_offset", "ITM offset (points)", "e.g. 100"),
)
_MORE_FIELDS = (
    ("fast_ema", "Fast EMA (bars)", "9"),
    ("slow_ema", "Slow EMA (bars)", "21"),
    ("target", "Target %", "optional"),
    ("trailing_stop", "Trailing stop %", "optional"),
    ("entry_start", "Entries from", "09:20"),
    ("entry_end", "Entries until", "14:45"),
    ("square_off", "Square off at", "15:15"),
    ("max_trades_per_day", "Max trades a day", "5"),
    ("max_daily_loss", "Max daily loss ₹", "5000"),
)
_FIELD_ALIASES = {"segment": "segments", "unknown segment": "segments", "entry window": "entry_start"}
# Each setting as a message names it: the form's label, without its unit in brackets.
FIELD_NAMES = {
    "segments": "Segments",
    "lots": "Lots",
    "stop_loss": "Stop loss %",
    "itm_offset": "ITM offset",
    "fast_ema": "Fast EMA",
    "slow_ema": "Slow EMA",
    "target": "Target %",
    "trailing_stop": "Trailing stop %",
    "entry_start": "Entries from",
    "entry_end": "Entries until",
    "square_off": "Square off at",
    "max_trades_per_day": "Max trades a day",
    "max_daily_loss": "Max daily loss ₹",
    "mode": "Mode",
    "strategy": "Strategy",
}
_NAME_RE = re.compile(r"\b(" + "|".join(sorted(FIELD_NAMES, key=len, reverse=True)) + r")\b")
# What a new tab's form starts from (File → Settings… may give others).
DEFAULT_RAW: dict[str, Any] = {"segments": ["NIFTY"], "lots": 1, "stop_loss": 5, "itm_offset": 100}


def in_form_words(problem: str) -> str:
    """A problem as the form words it: "stop_loss is missing" → "Stop loss % is missing"."""
    return _NAME_RE.sub(lambda m: FIELD_NAMES[m.group(1)], problem)


def problem_field(problem: str) -> str:
    """Which form field a ParamsError problem is about ("" when it is about the whole form)."""
    names = [f for f, _, _ in _MAIN_FIELDS + _MORE_FIELDS] + ["segments", "mode", "strategy"]
    for name in sorted(names, key=len, reverse=True):
        if problem.startswith(name):
            return name
    for prefix, name in _FIELD_ALIASES.items():
        if problem.startswith(prefix):
            return name
    return ""


class ParamsForm(QWidget):
    """Segments, lots, stop loss, ITM offset, mode, strategy and optional settings; `params()` when valid."""

    sig_validity_changed = Signal(bool)
    """The form became valid (True) or invalid (False)."""

    def __init__(
        self, strategies: list[str], parent: QWidget | None = None, defaults: StrategyParams | None = None
    ) -> None:
        """Starts from `defaults` (else DEFAULT_RAW): a new tab shows a valid form, never red errors before
        anything was typed."""
        super().__init__(parent)
        self._strategies = strategies
        self._touched: set[str] = set()  # fields changed since the form was filled: their problems show
        self._filling = False  # set_params is writing the fields (not the trader)
        self._reveal_all = False  # Start was asked for: every problem shows
        self._edits: dict[str, QLineEdit] = {}
        self._errors: dict[str, QLabel] = {}
        self._params: StrategyParams | None = None
        self._problems: list[str] = []
        self._kept: dict[str, Any] = {}  # settings the form has no field for, kept from set_params
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        main = QFormLayout()
        outer.addLayout(main)

        # Two to a row: one row of every segment made the form wider than the pane at 1024 px.
        seg_grid = QGridLayout()
        seg_grid.setContentsMargins(0, 0, 0, 0)
        self.segment_boxes: dict[Segment, QCheckBox] = {}
        for i, seg in enumerate(Segment):
            box = QCheckBox(seg.value)
            box.toggled.connect(lambda _on: self._edited("segments"))
            self.segment_boxes[seg] = box
            seg_grid.addWidget(box, i // 2, i % 2)
        main.addRow("Segments", self._with_error("segments", seg_grid))
        for name, label, hint in _MAIN_FIELDS:
            main.addRow(label, self._with_error(name, self._edit(name, hint)))
        self.mode_box = QComboBox()
        self.mode_box.addItems([Mode.PAPER.value, Mode.LIVE.value])
        self.mode_box.setToolTip("PAPER simulates fills at live prices; LIVE sends real orders")
        self.mode_box.currentTextChanged.connect(lambda _t: self._edited("mode"))
        main.addRow("Mode", self._with_error("mode", self.mode_box))

        self.more_button = QToolButton()
        self.more_button.setText("More settings")
        self.more_button.setCheckable(True)
        outer.addWidget(self.more_button)
        self.more = QWidget()
        more = QFormLayout(self.more)
        more.setContentsMargins(0, 0, 0, 0)
        self.strategy_box = QComboBox()
        self.strategy_box.addItems(strategies or ["itm_momentum"])
        self.strategy_box.currentTextChanged.connect(lambda _t: self._edited("strategy"))
        more.addRow("Strategy", self._with_error("strategy", self.strategy_box))
        for name, label, hint in _MORE_FIELDS:
            more.addRow(label, self._with_error(name, self._edit(name, hint)))
        self.more.setVisible(False)
        self.more_button.toggled.connect(self.more.setVisible)
        outer.addWidget(self.more)
        self.general_error = _error_label()
        outer.addWidget(self.general_error)
        self.set_params(defaults if defaults is not None else parse_params(DEFAULT_RAW))

    def _edit(self, name: str, hint: str) -> QLineEdit:
        edit = QLineEdit()
        edit.setPlaceholderText(hint)
        edit.setObjectName(f"param_{name}")
        edit.textChanged.connect(lambda _t, n=name: self._edited(n))
        self._edits[name] = edit
        return edit

    def _with_error(self, name: str, field: QWidget | QHBoxLayout | QGridLayout) -> QWidget:
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(1)
        if isinstance(field, QHBoxLayout | QGridLayout):
            lay.addLayout(field)
        else:
            lay.addWidget(field)
        err = _error_label()
        # Two lines kept for the message whether or not there is one: fields never jump as errors come and go.
        err.setFixedHeight(2 * err.fontMetrics().lineSpacing() + 2)
        err.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        err.setObjectName(f"error_{name}")
        lay.addWidget(err)
        self._errors[name] = err
        return box

    # ------------------------------------------------------------------ reading
    def edit(self, name: str) -> QLineEdit:
        """The text field of one parameter (tests and shortcuts type into it)."""
        return self._edits[name]

    def raw(self) -> dict[str, Any]:
        """The form as the mapping `parse_params` reads; empty optional fields are left out."""
        raw: dict[str, Any] = {"segments": [s.value for s, b in self.segment_boxes.items() if b.isChecked()]}
        for name, edit in self._edits.items():
            text = edit.text().strip()
            if text or name in ("lots", "stop_loss", "itm_offset"):
                raw[name] = text or None
        raw |= self._kept
        raw["mode"] = self.mode_box.currentText()
        raw["strategy"] = self.strategy_box.currentText()
        return raw

    def params(self) -> StrategyParams | None:
        """Validated parameters (LIVE is confirmed separately, on Start), or None while invalid."""
        return self._params

    def problems(self) -> list[str]:
        """Every current problem, in the trader's words (fields named as the form labels them)."""
        return [in_form_words(p) for p in self._problems]

    def reveal_problems(self) -> None:
        """Shows every problem, typed in or not (Start was asked for with an invalid form)."""
        self._reveal_all = True
        self._revalidate()

    def _edited(self, name: str) -> None:
        if not self._filling:
            self._touched.add(name)
        self._revalidate()

    def error_text(self, name: str) -> str:
        """The message shown under field `name` ('' when none)."""
        return self._errors[name].text()

    def _revalidate(self, *_: object) -> None:
        was_valid = self._params is not None
        try:
            self._params = parse_params(
                self.raw(), confirm_live=True, known_strategies=self._strategies or None
            )
            self._problems = []
        except ParamsError as e:
            self._params = None
            self._problems = e.problems
        by_field: dict[str, list[str]] = {}
        for problem in self._problems:
            by_field.setdefault(problem_field(problem), []).append(problem)
        shown = {n: ps for n, ps in by_field.items() if self._reveal_all or n in self._touched or not n}
        for name, label in self._errors.items():
            text = "\n".join(in_form_words(p) for p in shown.get(name, []))
            label.setText(text)
            label.setToolTip(text)  # a message longer than its two lines is read here
        self.general_error.setText("\n".join(in_form_words(p) for p in shown.get("", [])))
        if any(shown.get(name) for name, _, _ in _MORE_FIELDS) or shown.get("strategy"):
            self.more_button.setChecked(True)  # never hide a problem behind a collapsed section
        if was_valid != (self._params is not None):
            self.sig_validity_changed.emit(self._params is not None)

    # ------------------------------------------------------------------ writing
    def set_params(self, p: StrategyParams) -> None:
        """Fills the form from saved parameters (a clean form again: no message until a field is changed)."""
        self._filling = True
        try:
            self._fill(p)
        finally:
            self._filling = False
        self._touched.clear()
        self._reveal_all = False
        self._revalidate()

    def _fill(self, p: StrategyParams) -> None:
        self._kept = {"max_orders_per_minute": p.max_orders_per_minute}
        if p.max_open_positions != len(
            p.segments
        ):  # the default (one per segment) follows the segments ticked
            self._kept["max_open_positions"] = p.max_open_positions
        if p.options:
            self._kept["options"] = dict(p.options)
        for seg, box in self.segment_boxes.items():
            box.setChecked(seg in p.segments)
        values: dict[str, Any] = {
            "lots": p.lots,
            "stop_loss": p.stop_loss,
            "itm_offset": p.itm_offset,
            "fast_ema": p.fast_ema,
            "slow_ema": p.slow_ema,
            "target": p.target,
            "trailing_stop": p.trailing_stop,
            "entry_start": format_clock(p.entry_start),
            "entry_end": format_clock(p.entry_end),
            "square_off": format_clock(p.square_off),
            "max_trades_per_day": p.max_trades_per_day,
            "max_daily_loss": p.max_daily_loss,
        }
        for name, value in values.items():
            self._edits[name].setText("" if value is None else str(value))
        self.mode_box.setCurrentText(p.mode.value)
        if p.strategy in self._strategies:
            self.strategy_box.setCurrentText(p.strategy)

    def set_editable(self, editable: bool) -> None:
        """Locks the form while the session runs (a change needs a stop and a new start)."""
        for w in [*self._edits.values(), *self.segment_boxes.values(), self.mode_box, self.strategy_box]:
            w.setEnabled(editable)
