"""The session's parameter form: every field validated as the trader types, messages under the field."""

from __future__ import annotations

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
from desktop.engine import (
    FIELDS,
    FieldSpec,
    Kind,
    ParamsError,
    Problem,
    Section,
    example_raw,
    parse_params,
    slicing_note,
    to_plain,
    to_text,
)

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


# The form's rows, from the one parameter spec: a field added there shows here.
_SHOWN = tuple(f for f in FIELDS if f.section is not Section.KEPT)
_KEPT = tuple(f for f in FIELDS if f.section is Section.KEPT)
_TEXT_KINDS = (Kind.WHOLE, Kind.PERCENT, Kind.AMOUNT, Kind.CLOCK)
# What a new tab's form starts from (File → Settings… may give others).
DEFAULT_RAW: dict[str, Any] = example_raw()


def in_form_words(problem: str) -> str:
    """A problem as the form words it: "stop_loss is missing" → "Stop loss % is missing"."""
    return problem.in_form if isinstance(problem, Problem) else problem


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
        self._problems: list[Problem] = []
        self._kept: dict[str, Any] = {}  # settings the form has no field for, as set_params gave them
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        main = QFormLayout()
        outer.addLayout(main)
        self.more_button = QToolButton()
        self.more_button.setText("More settings")
        self.more_button.setCheckable(True)
        outer.addWidget(self.more_button)
        self.more = QWidget()
        more = QFormLayout(self.more)
        more.setContentsMargins(0, 0, 0, 0)
        self.segment_boxes: dict[Segment, QCheckBox] = {}
        self.lots_note = QLabel()  # under Lots: the lots one order carries before it is sent in slices
        self.lots_note.setObjectName("lots_note")
        self.lots_note.setWordWrap(True)
        self.mode_box = QComboBox()
        self.strategy_box = QComboBox()
        for spec in _SHOWN:
            label = QLabel(spec.form_label)
            label.setToolTip(spec.help)
            rows = main if spec.section is Section.MAIN else more
            rows.addRow(label, self._with_error(spec.name, self._field(spec)))
        self.more.setVisible(False)
        self.more_button.toggled.connect(self.more.setVisible)
        outer.addWidget(self.more)
        self.general_error = _error_label()
        outer.addWidget(self.general_error)
        self.set_params(defaults if defaults is not None else parse_params(DEFAULT_RAW))

    def _field(self, spec: FieldSpec) -> QWidget | QGridLayout:
        """The input of one setting, as its kind asks: tick boxes, a choice or a text field."""
        name = spec.name
        if spec.kind is Kind.SEGMENTS:
            # Two to a row: one row of every segment made the form wider than the pane at 1024 px.
            grid = QGridLayout()
            grid.setContentsMargins(0, 0, 0, 0)
            for i, seg in enumerate(Segment):
                box = QCheckBox(seg.value)
                box.setToolTip(spec.help)
                box.toggled.connect(lambda _on, n=name: self._edited(n))
                self.segment_boxes[seg] = box
                grid.addWidget(box, i // 2, i % 2)
            return grid
        if spec.kind in (Kind.MODE, Kind.STRATEGY):
            combo = self.mode_box if spec.kind is Kind.MODE else self.strategy_box
            items = [m.value for m in Mode] if spec.kind is Kind.MODE else self._strategies or [spec.default]
            combo.addItems(items)
            combo.setToolTip(spec.help)
            combo.currentTextChanged.connect(lambda _t, n=name: self._edited(n))
            return combo
        if spec.kind not in _TEXT_KINDS:
            raise TypeError(f"the form has no field for {spec.kind} ({name}): keep it (Section.KEPT)")
        edit = self._edit(name, spec.placeholder)
        edit.setToolTip(spec.help)
        return edit

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
        if name == "lots":  # the exchange's freeze: how many lots one order carries before it is sliced
            lay.addWidget(self.lots_note)
        lay.addWidget(err)
        self._errors[name] = err
        return box

    # ------------------------------------------------------------------ reading
    def edit(self, name: str) -> QLineEdit:
        """The text field of one parameter (tests and shortcuts type into it)."""
        return self._edits[name]

    def raw(self) -> dict[str, Any]:
        """The form as the mapping `parse_params` reads; empty optional fields are left out."""
        raw: dict[str, Any] = {}
        for spec in _SHOWN:
            if spec.kind is Kind.SEGMENTS:
                raw[spec.name] = [s.value for s, b in self.segment_boxes.items() if b.isChecked()]
            elif spec.kind is Kind.MODE:
                raw[spec.name] = self.mode_box.currentText()
            elif spec.kind is Kind.STRATEGY:
                raw[spec.name] = self.strategy_box.currentText()
            else:
                text = self._edits[spec.name].text().strip()
                if text or spec.required:
                    raw[spec.name] = text or None  # a required one left empty is "missing"
        return raw | self._kept

    def params(self) -> StrategyParams | None:
        """Validated parameters (LIVE is confirmed separately, on Start), or None while invalid."""
        return self._params

    def problems(self) -> list[str]:
        """Every current problem, in the trader's words (fields named as the form labels them)."""
        return [p.in_form for p in self._problems]

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
        by_field: dict[str, list[Problem]] = {}
        for problem in self._problems:  # a setting without a field of its own is told under the form
            by_field.setdefault(problem.field if problem.field in self._errors else "", []).append(problem)
        shown = {n: ps for n, ps in by_field.items() if self._reveal_all or n in self._touched or not n}
        for name, label in self._errors.items():
            text = "\n".join(p.in_form for p in shown.get(name, []))
            label.setText(text)
            label.setToolTip(text)  # a message longer than its two lines is read here
        self.general_error.setText("\n".join(p.in_form for p in shown.get("", [])))
        if any(shown.get(f.name) for f in _SHOWN if f.section is Section.MORE):
            self.more_button.setChecked(True)  # never hide a problem behind a collapsed section
        chosen = [seg.value for seg, box in self.segment_boxes.items() if box.isChecked()]
        freeze = self._kept.get("freeze")
        self.lots_note.setText(slicing_note(chosen, dict(freeze) if isinstance(freeze, dict) else None))
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
        # A kept setting at its default is not kept: the default (one position per segment) follows the form.
        self._kept = {
            f.name: to_plain(f, getattr(p, f.name))
            for f in _KEPT
            if getattr(p, f.name) != f.default_for(p.segments)
        }
        for spec in _SHOWN:
            value = getattr(p, spec.name)
            if spec.kind is Kind.SEGMENTS:
                for seg, box in self.segment_boxes.items():
                    box.setChecked(seg in value)
            elif spec.kind is Kind.MODE:
                self.mode_box.setCurrentText(value.value)
            elif spec.kind is Kind.STRATEGY:
                if value in self._strategies:
                    self.strategy_box.setCurrentText(value)
            else:
                self._edits[spec.name].setText("" if value is None else to_text(spec, value))

    def set_editable(self, editable: bool) -> None:
        """Locks the form while the session runs (a change needs a stop and a new start)."""
        for w in [*self._edits.values(), *self.segment_boxes.values(), self.mode_box, self.strategy_box]:
            w.setEnabled(editable)
