"""The parameter form shows every problem under its field while the trader types."""

from __future__ import annotations

from decimal import Decimal

from desktop.domain import Mode, Segment
from desktop.engine.params import parse_params
from desktop.ui.params_form import ParamsForm, problem_field
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
    assert form.error_text("lots") == "lots must be a whole number ≥ 1"
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
    assert "segments" in form.error_text("segments")


def test_problem_in_a_hidden_setting_opens_the_more_section(qtbot):
    form = _form(qtbot)
    form.show()
    assert not form.more.isVisible()
    form.edit("fast_ema").setText("30")
    assert "fast_ema (30) must be shorter than slow_ema (21)" in form.error_text("fast_ema")
    assert form.more.isVisible()


def test_fixing_a_field_clears_its_message_and_signals_validity(qtbot):
    form = _form(qtbot)
    changes: list[bool] = []
    form.sig_validity_changed.connect(changes.append)
    form.edit("stop_loss").setText("150")
    assert "stop_loss must be a percent between 0 and 100" in form.error_text("stop_loss")
    form.edit("stop_loss").setText("7")
    assert form.error_text("stop_loss") == ""
    assert changes == [False, True]
    assert form.params() is not None and form.params().stop_loss == Decimal(7)


def test_problems_map_to_their_fields():
    assert problem_field("max_trades_per_day must be a whole number ≥ 1") == "max_trades_per_day"
    assert problem_field("entry window start 10:00 must be before its end 09:30") == "entry_start"
    assert problem_field("unknown segment 'FINNIFTY': choose from NIFTY, BANKNIFTY, SENSEX") == "segments"
    assert problem_field("something about the whole form") == ""


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
