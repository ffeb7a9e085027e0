"""Session parameters: every bad field gets its own trader-readable message, all reported together."""

from __future__ import annotations

from datetime import time
from decimal import Decimal

import pytest

from desktop.domain import Mode, Segment
from desktop.engine.params import (
    ParamsError,
    effective_itm_offset,
    itm_offset_note,
    order_quantity,
    params_to_dict,
    parse_params,
)

GOOD = {"segments": ["NIFTY", "BANKNIFTY"], "lots": 1, "stop_loss": 5, "itm_offset": 100}


def problems_of(**changes: object) -> list[str]:
    raw = {**GOOD, **changes}
    raw = {k: v for k, v in raw.items() if v is not ...}
    with pytest.raises(ParamsError) as info:
        parse_params(raw)
    return info.value.problems


def test_seed_parameters_parse_with_documented_defaults():
    p = parse_params(GOOD)
    assert p.segments == (Segment.NIFTY, Segment.BANKNIFTY)
    assert (p.lots, p.stop_loss, p.itm_offset, p.mode) == (1, Decimal(5), 100, Mode.PAPER)
    assert (p.fast_ema, p.slow_ema, p.target, p.trailing_stop) == (9, 21, None, None)
    assert (p.entry_start, p.entry_end, p.square_off) == (time(9, 20), time(14, 45), time(15, 15))
    assert (p.max_trades_per_day, p.max_daily_loss, p.max_orders_per_minute) == (5, Decimal(5000), 20)
    assert p.max_open_positions == 2  # one per chosen segment


@pytest.mark.parametrize("lots", [0, -1, 1.5, "two", True, None])
def test_lots_must_be_a_whole_number_of_at_least_one(lots):
    expected = "lots is missing (a whole number ≥ 1)" if lots is None else "lots must be a whole number ≥ 1"
    assert expected in problems_of(lots=lots)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "lots",
            101,
            "lots 101 is too large: at most 100 (an entry above the freeze quantity is sent in slices; more lots than this is taken for a slip)",
        ),
        ("lots", "1e999999", "lots is too large: at most 100"),
        ("lots", "-1e999999", "lots must be a whole number ≥ 1"),
        ("itm_offset", "-1e999999", "itm_offset must be a whole number of points ≥ 0"),
        ("itm_offset", 5050, "itm_offset 5050 is too large: at most 5000 points"),
        ("fast_ema", "1e999999", "fast_ema is too large: at most 500 bars"),
        ("slow_ema", 501, "slow_ema 501 is too large: at most 500 bars"),
        (
            "max_trades_per_day",
            5001,
            "max_trades_per_day 5001 is too large: at most 5000 (Kite's orders a day)",
        ),
        ("max_open_positions", 11, "max_open_positions 11 is too large: at most 10"),
        ("target", "1e999999", "target must be a percent greater than 0 and at most 10000"),
        (
            "max_daily_loss",
            "1e999999",
            "max_daily_loss must be an amount in rupees greater than 0 and at most",
        ),
    ],
)
def test_numbers_have_bounds_and_huge_ones_are_refused_at_once(field, value, message):
    # "1e999999" pasted into a field was accepted, after 34 s of the window's thread turning it into an int.
    problems = problems_of(**{field: value})
    assert any(p.startswith(message) for p in problems), problems


def test_lots_given_as_text_from_the_form_is_accepted():
    assert parse_params({**GOOD, "lots": " 3 "}).lots == 3


@pytest.mark.parametrize("stop_loss", [0, 100, -2, "x", 150])
def test_stop_loss_must_be_a_percent_strictly_between_0_and_100(stop_loss):
    assert any(
        p.startswith("stop_loss must be a percent between 0 and 100")
        for p in problems_of(stop_loss=stop_loss)
    )


def test_missing_stop_loss_is_named():
    assert any(p.startswith("stop_loss is missing") for p in problems_of(stop_loss=...))


def test_fractional_stop_loss_from_toml_float_is_exact():
    assert parse_params({**GOOD, "stop_loss": 5.1}).stop_loss == Decimal("5.1")


def test_itm_offset_must_fit_the_finest_strike_step_of_the_session():
    problems = problems_of(segments=["NIFTY", "BANKNIFTY"], itm_offset=75)
    assert problems == ["itm_offset 75 is not a multiple of NIFTY's strike step 50"]
    assert parse_params({**GOOD, "segments": ["NIFTY"], "itm_offset": 50}).itm_offset == 50
    # NIFTY sets the grid: 150 is fine with BANKNIFTY too (BANKNIFTY rounds it up to 200).
    assert parse_params({**GOOD, "itm_offset": 150}).itm_offset == 150
    assert "itm_offset 50 is not a multiple of BANKNIFTY's strike step 100" in problems_of(
        segments=["BANKNIFTY"], itm_offset=50
    )


def test_effective_itm_offset_rounds_up_to_each_segments_strike_step():
    assert effective_itm_offset(150, Segment.BANKNIFTY) == 200
    assert effective_itm_offset(50, Segment.SENSEX) == 100
    assert effective_itm_offset(150, Segment.NIFTY) == 150
    assert effective_itm_offset(0, Segment.BANKNIFTY) == 0
    assert (
        itm_offset_note(150, Segment.BANKNIFTY)
        == "BANKNIFTY: ITM offset 150 → 200 points (strikes 100 apart)"
    )
    assert itm_offset_note(150, Segment.NIFTY) == ""


def test_negative_itm_offset_is_refused():
    assert "itm_offset must be a whole number of points ≥ 0" in problems_of(itm_offset=-100)


def test_segments_unknown_duplicate_or_empty_are_refused():
    assert "unknown segment 'FINNIFTY': choose from NIFTY, BANKNIFTY, SENSEX" in problems_of(
        segments=["FINNIFTY"]
    )
    assert "segment NIFTY is listed twice" in problems_of(segments=["NIFTY", "nifty"])
    assert "segments must list at least one of NIFTY, BANKNIFTY, SENSEX" in problems_of(segments=[])


def test_live_mode_needs_explicit_confirmation():
    msg = "LIVE mode sends real orders: confirm it explicitly (confirm_live = true)"
    assert msg in problems_of(mode="LIVE")
    assert msg in problems_of(mode="live", confirm_live="yes")  # only a real true confirms
    assert parse_params({**GOOD, "mode": "LIVE"}, confirm_live=True).mode is Mode.LIVE
    assert parse_params({**GOOD, "mode": "LIVE", "confirm_live": True}).mode is Mode.LIVE


def test_unknown_mode_is_refused():
    assert "mode must be PAPER or LIVE, not 'DEMO'" in problems_of(mode="DEMO")


def test_fast_ema_must_be_shorter_than_slow():
    assert "fast_ema (21) must be shorter than slow_ema (9)" in problems_of(fast_ema=21, slow_ema=9)


def test_entry_window_and_square_off_must_be_in_order_and_in_market_hours():
    assert "entry window start 14:00 must be before its end 10:00" in problems_of(
        entry_start="14:00", entry_end="10:00"
    )
    assert "entry_end 15:20 must be before the square-off time 15:15" in problems_of(entry_end="15:20")
    assert "square_off 15:45 must be within market hours (09:15–15:30)" in problems_of(square_off="15:45")
    assert (
        "square_off 15:21 is too late: Zerodha squares off intraday (MIS) option positions itself from 15:25, "
        "with a charge per order; use 15:20 or earlier"
    ) in problems_of(square_off="15:21")
    assert parse_params({**GOOD, "square_off": "15:20"}).square_off == time(15, 20)
    assert "entry_start must be a time of day like \"09:20\", not '9h'" in problems_of(entry_start="9h")


def test_square_off_comes_before_zerodhas_own_at_15_25():
    assert (
        "square_off 15:21 is too late: Zerodha squares off intraday (MIS) option positions itself from 15:25, "
        "with a charge per order; use 15:20 or earlier"
    ) in problems_of(square_off="15:21")
    assert parse_params({**GOOD, "square_off": "15:20"}).square_off == time(15, 20)
    assert not [p for p in problems_of(square_off="15:45") if "too late" in p], "outside market hours says so"


def test_each_problem_names_its_field_as_data_and_in_the_forms_words():
    with pytest.raises(ParamsError) as info:
        parse_params({**GOOD, "stop_loss": None, "fast_ema": 30, "entry_start": "14:50", "bogus": 1})
    by_field = {p.field: (str(p), p.in_form) for p in info.value.problems}
    assert by_field["stop_loss"] == (
        "stop_loss is missing (percent of the entry premium, e.g. 5)",
        "Stop loss % is missing (percent of the entry premium, e.g. 5)",
    )
    assert by_field["fast_ema"] == (
        "fast_ema (30) must be shorter than slow_ema (21)",
        "Fast EMA (30) must be shorter than Slow EMA (21)",
    )
    assert by_field["entry_start"][0] == "entry window start 14:50 must be before its end 14:45"
    assert by_field[""] == ("unknown setting 'bogus'", "unknown setting 'bogus'")


def test_optional_target_and_trailing_stop_are_checked_when_given():
    assert any(p.startswith("target must be a percent greater than 0") for p in problems_of(target=0))
    assert any(
        p.startswith("trailing_stop must be a percent between 0 and 100")
        for p in problems_of(trailing_stop=100)
    )
    p = parse_params({**GOOD, "target": 20, "trailing_stop": "2.5"})
    assert (p.target, p.trailing_stop) == (Decimal(20), Decimal("2.5"))


def test_risk_limits_are_checked():
    assert "max_orders_per_minute 500 is too large: at most 400 (Kite's limit per account)" in problems_of(
        max_orders_per_minute=500
    )
    assert "max_trades_per_day must be a whole number ≥ 1" in problems_of(max_trades_per_day=0)
    assert any(
        p.startswith("max_daily_loss must be an amount in rupees") for p in problems_of(max_daily_loss=-10)
    )
    assert "max_open_positions must be a whole number ≥ 1" in problems_of(max_open_positions=0)


def test_a_misspelt_setting_is_reported_not_ignored():
    assert "unknown setting 'stoploss'" in problems_of(stoploss=5)


def test_every_problem_is_reported_at_once():
    problems = problems_of(lots=0, stop_loss=0, itm_offset=75, mode="LIVE")
    assert len(problems) >= 4  # lots, stop_loss, the strike step, LIVE confirmation


def test_unknown_strategy_names_the_installed_choices():
    with pytest.raises(ParamsError) as info:
        parse_params({**GOOD, "strategy": "scalper"}, known_strategies=["itm_momentum", "mean_revert"])
    assert info.value.problems == ["unknown strategy 'scalper': choose from itm_momentum, mean_revert"]


def test_params_survive_a_round_trip_through_plain_data():
    p = parse_params(
        {
            **GOOD,
            "mode": "LIVE",
            "stop_loss": "7.25",
            "target": 30,
            "entry_start": "09:30:30",
            "options": {"k": 2},
        },
        confirm_live=True,
    )
    assert "confirm_live" not in params_to_dict(p), "a LIVE mode is not a confirmation"
    assert parse_params(params_to_dict(p), confirm_live=True) == p
    assert parse_params(params_to_dict(p, confirm_live=True)) == p
    assert p.option("k") == 2 and p.option("missing", 7) == 7


def test_order_quantity_is_lots_times_the_contracts_lot_size():
    assert order_quantity(3, 65) == 195
    with pytest.raises(ParamsError, match="lots must be a whole number ≥ 1"):
        order_quantity(0, 65)
    with pytest.raises(ParamsError):
        order_quantity(1, 0)


@pytest.mark.parametrize("value", [float("inf"), float("nan"), [1.0, float("-inf")], {"a": 1}, time(9, 20)])
def test_strategy_options_that_cannot_be_saved_are_refused_at_once(value):
    # An inf in a workspace loaded, then Start failed with "Out of range float values are not JSON compliant".
    problems = problems_of(options={"threshold": value})
    assert [
        p for p in problems if p.startswith("options.threshold must be text, true/false, a finite number")
    ]


def test_plain_strategy_options_are_kept():
    options = {"threshold": 1.5, "name": "x", "on": True, "levels": [1, 2.5]}
    assert dict(parse_params({**GOOD, "options": options}).options) == options
