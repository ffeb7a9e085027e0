"""The parameter form shows every problem under its field while the trader types."""

from __future__ import annotations

from decimal import Decimal

import pytest
from PySide6.QtWidgets import QLabel

from desktop.domain import Mode, Segment
from desktop.engine.param_spec import FIELDS, Kind, Section, example_raw
from desktop.engine.params import ParamsError, parse_params
from desktop.ui.params_form import ParamsForm
from tests.ui.fakes import paper_params


def _form(qtbot) -> ParamsForm:
    form = ParamsForm(["itm_momentum"])
    qtbot.addWidget(form)
    form.set_params(paper_params())
    return form


def test_valid_parameters_give_strategy_params(qtbot):
    form = _form(qtbot)
    params = form.params()
    assert params is not None
    assert params.segments == (Segment.NIFTY, Segment.BANKNIFTY)
    assert params.lots == 1 and params.stop_loss == Decimal(5) and params.itm_offset == 100
    assert params.mode is Mode.PAPER
    assert form.problems() == []


def test_fractional_lots_show_a_message_under_lots(qtbot):
    form = _form(qtbot)
    form.edit("lots").setText("1.5")
    assert form.params() is None
    assert form.error_text("lots") == "Lots must be a whole number ≥ 1"
    assert form.error_text("stop_loss") == ""


def test_offset_off_the_nifty_grid_is_explained_under_itm_offset(qtbot):
    form = _form(qtbot)
    form.edit("itm_offset").setText("75")
    assert "not a multiple of NIFTY's strike step 50" in form.error_text("itm_offset")


def test_no_segment_chosen_is_shown_under_segments(qtbot):
    form = _form(qtbot)
    for box in form.segment_boxes.values():
        box.setChecked(False)
    assert form.params() is None
    assert "Segments must list at least one of" in form.error_text("segments")


def test_problem_in_a_hidden_setting_opens_the_more_section(qtbot):
    form = _form(qtbot)
    form.show()
    assert not form.more.isVisible()
    form.edit("fast_ema").setText("30")
    assert "Fast EMA (30) must be shorter than Slow EMA (21)" in form.error_text("fast_ema")
    assert form.more.isVisible()


def test_fixing_a_field_clears_its_message_and_signals_validity(qtbot):
    form = _form(qtbot)
    changes: list[bool] = []
    form.sig_validity_changed.connect(changes.append)
    form.edit("stop_loss").setText("150")
    assert "Stop loss % must be a percent between 0 and 100" in form.error_text("stop_loss")
    form.edit("stop_loss").setText("7")
    assert form.error_text("stop_loss") == ""
    assert changes == [False, True]
    assert form.params() is not None and form.params().stop_loss == Decimal(7)


def problem_field(**changes: object) -> str:
    """The field of the one problem `changes` make to valid parameters (problems carry it: no text matched)."""
    raw = {"segments": ["NIFTY"], "lots": 1, "stop_loss": 5, "itm_offset": 100, **changes}
    with pytest.raises(ParamsError) as info:
        parse_params(raw)
    [problem] = info.value.problems
    return problem.field


def test_problems_map_to_their_fields():
    assert problem_field(max_trades_per_day=0) == "max_trades_per_day"
    assert problem_field(entry_start="10:00", entry_end="09:30") == "entry_start"
    assert problem_field(segments=["FINNIFTY"]) == "segments"
    assert problem_field(something_about_the_whole_form=1) == ""


def test_a_restored_forms_open_positions_limit_follows_the_segments_unless_it_was_set(qtbot):
    form = ParamsForm(["itm_momentum"])
    qtbot.addWidget(form)
    form.set_params(parse_params({"segments": ["NIFTY"], "lots": 1, "stop_loss": 5, "itm_offset": 100}))
    form.segment_boxes[Segment.BANKNIFTY].setChecked(True)
    assert form.params().max_open_positions == 2, "one position per segment, as a fresh form"
    raw = {
        "segments": ["NIFTY", "BANKNIFTY"],
        "lots": 1,
        "stop_loss": 5,
        "itm_offset": 100,
        "max_open_positions": 1,
    }
    form.set_params(parse_params(raw))
    form.segment_boxes[Segment.SENSEX].setChecked(True)
    assert form.params().max_open_positions == 1, "a limit the trader set is kept"


def test_a_new_form_starts_from_the_defaults_with_no_message(qtbot):
    form = ParamsForm(["itm_momentum"])
    qtbot.addWidget(form)
    assert form.params() is not None, "a new tab can start at once"
    assert form.edit("stop_loss").text() == "5" and form.edit("lots").text() == "1"
    assert all(
        form.error_text(name) == "" for name in ("segments", "lots", "stop_loss", "itm_offset", "mode")
    )


def test_problems_show_as_fields_are_edited_named_as_the_form_labels_them(qtbot):
    form = ParamsForm(["itm_momentum"])
    qtbot.addWidget(form)
    form.edit("stop_loss").setText("")
    assert form.error_text("stop_loss").startswith("Stop loss % is missing")
    assert "stop_loss" not in " ".join(form.problems())
    assert form.error_text("lots") == ""


def test_a_problem_in_a_field_never_typed_in_shows_when_start_is_asked_for(qtbot):
    form = ParamsForm(["itm_momentum"])
    qtbot.addWidget(form)
    form.set_params(paper_params())
    form._filling = True  # as a restored tab whose saved value is no longer valid
    form.edit("itm_offset").setText("75")
    form._filling = False
    assert form.params() is None and form.error_text("itm_offset") == ""
    form.reveal_problems()
    assert "ITM offset 75 is not a multiple of NIFTY's strike step 50" in form.error_text("itm_offset")


def test_fields_do_not_move_as_messages_come_and_go(qtbot):
    form = ParamsForm(["itm_momentum"])
    qtbot.addWidget(form)
    form.show()
    qtbot.waitExposed(form)
    where = {
        n: form.edit(n).mapTo(form, form.edit(n).rect().topLeft())
        for n in ("lots", "stop_loss", "itm_offset")
    }
    form.edit("lots").setText("0")
    form.edit("stop_loss").setText("150")
    qtbot.wait(10)
    assert form.error_text("lots") and form.error_text("stop_loss")
    assert {n: form.edit(n).mapTo(form, form.edit(n).rect().topLeft()) for n in where} == where


@pytest.mark.parametrize("spec", FIELDS, ids=[f.name for f in FIELDS])
def test_every_setting_of_the_spec_is_in_the_form_labelled_and_filled_from_it(qtbot, spec):
    # Adding a setting to param_spec.FIELDS is enough: it gets its row (or is kept) and round-trips here.
    form = ParamsForm(["itm_momentum", "mean_revert"])
    qtbot.addWidget(form)
    labels = {w.text(): w for w in form.findChildren(QLabel)}
    if spec.section is Section.KEPT:
        assert spec.form_label not in labels, "a kept setting has no row"
    else:
        assert labels[spec.form_label].toolTip() == spec.help
        if spec.kind in (Kind.WHOLE, Kind.PERCENT, Kind.AMOUNT, Kind.CLOCK):
            assert form.edit(spec.name).placeholderText() == spec.placeholder
            assert form.edit(spec.name).toolTip() == spec.help
    raw = {**example_raw(), spec.name: spec.example}
    p = parse_params(raw, confirm_live=True, known_strategies=["itm_momentum", "mean_revert"])
    form.set_params(p)
    assert form.params() == p, "the form gives back every setting it was filled with"
    assert spec.name in form.raw()


def test_the_form_says_how_many_lots_one_order_carries_before_it_is_sliced(qtbot):
    form = _form(qtbot)
    for seg, box in form.segment_boxes.items():
        box.setChecked(seg is Segment.NIFTY)
    assert form.lots_note.text() == "NIFTY: 27 lots per order; larger entries are sent in slices"
    form.segment_boxes[Segment.BANKNIFTY].setChecked(True)
    assert form.lots_note.text() == (
        "NIFTY: 27 lots per order; BANKNIFTY: 20 lots per order; larger entries are sent in slices"
    )
    # A session's own freeze quantity (kept from its workspace entry) is what the note counts with.
    form.set_params(parse_params({**example_raw(), "segments": ["NIFTY"], "freeze": {"NIFTY": 1300}}))
    assert form.lots_note.text() == "NIFTY: 20 lots per order; larger entries are sent in slices"
    assert form.params() is not None and form.params().freeze_overrides == {"NIFTY": 1300}
