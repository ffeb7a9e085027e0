"""Workspace TOML: the issue's example loads, saving round-trips, bad files name session and field."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from desktop.domain import Mode, Segment
from desktop.engine.workspace import OnStop, Workspace, WorkspaceError, load_workspace, save_workspace

SEED = """
[[session]]
profile = "UK9394"            # broker account (user id)
label = "Computer 1"
segments = ["NIFTY", "BANKNIFTY"]
lots = 1
stop_loss = 5                 # percent
itm_offset = 100              # points
mode = "PAPER"

[[session]]
profile = "UK1234"
label = "Computer 2"
segments = ["NIFTY", "SENSEX"]
lots = 2
stop_loss = 3
itm_offset = 100              # the issue's 50 is off SENSEX's 100-point strike grid
mode = "PAPER"
on_stop = "keep"

[[session]]
profile = "UK9394"
label = "Computer 3"
segments = ["NIFTY", "BANKNIFTY"]
lots = 3
stop_loss = 7
itm_offset = 200              # the issue's 150 is off BANKNIFTY's 100-point strike grid
mode = "LIVE"
confirm_live = true
trailing_stop = 2.5
entry_start = "09:30"
[session.options]
note = "seed scenario"
"""


def write(tmp_path, text: str):
    path = tmp_path / "ws.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_issue_example_loads_with_defaults_and_on_stop_choice(tmp_path):
    ws = load_workspace(write(tmp_path, SEED))
    first, second, third = ws.sessions
    assert (first.profile, first.label, first.on_stop) == ("UK9394", "Computer 1", OnStop.SQUARE_OFF)
    assert first.params.segments == (Segment.NIFTY, Segment.BANKNIFTY) and first.params.stop_loss == Decimal(
        5
    )
    assert second.on_stop is OnStop.KEEP and second.params.lots == 2
    assert third.params.mode is Mode.LIVE and third.params.trailing_stop == Decimal("2.5")
    assert third.params.option("note") == "seed scenario"


def test_saving_and_loading_gives_back_the_same_workspace(tmp_path):
    ws = load_workspace(write(tmp_path, SEED))
    out = tmp_path / "sub" / "saved.toml"
    save_workspace(out, ws)
    assert load_workspace(out) == ws
    assert [p.name for p in out.parent.iterdir()] == ["saved.toml"]  # no temporary file left behind


def test_problems_name_the_session_and_field_and_are_all_reported(tmp_path):
    bad = SEED.replace("lots = 2", "lots = 0").replace("itm_offset = 200", "itm_offset = 75")
    bad = bad.replace('on_stop = "keep"', 'on_stop = "sell"')
    with pytest.raises(WorkspaceError) as info:
        load_workspace(write(tmp_path, bad))
    assert info.value.problems == [
        "session 2 (UK1234 'Computer 2'): on_stop must be \"square_off\" or \"keep\", not 'sell'",
        "session 2 (UK1234 'Computer 2'): lots must be a whole number ≥ 1",
        "session 3 (UK9394 'Computer 3'): itm_offset 75 is not a multiple of NIFTY's strike step 50",
    ]


def test_live_session_without_confirmation_is_refused(tmp_path):
    with pytest.raises(
        WorkspaceError, match=r"session 3 \(UK9394 'Computer 3'\): LIVE mode sends real orders"
    ):
        load_workspace(write(tmp_path, SEED.replace("confirm_live = true\n", "")))


def test_live_is_saved_confirmed_only_when_the_file_confirmed_it(tmp_path):
    # A LIVE tab's parameters carry no confirmation: saved from the window they must not start real orders
    # from a headless run nobody confirmed.
    confirmed = load_workspace(write(tmp_path, SEED))
    live = confirmed.sessions[2]
    assert live.live_confirmed and not confirmed.sessions[0].live_confirmed
    unconfirmed = Workspace((replace(live, live_confirmed=False),))
    save_workspace(tmp_path / "unconfirmed.toml", unconfirmed)
    assert "confirm_live" not in (tmp_path / "unconfirmed.toml").read_text(encoding="utf-8")
    with pytest.raises(WorkspaceError, match="LIVE mode sends real orders"):
        load_workspace(tmp_path / "unconfirmed.toml")
    opened = load_workspace(
        tmp_path / "unconfirmed.toml", live_needs_confirmation=False
    )  # tabs, asked on Start
    assert opened == unconfirmed
    save_workspace(tmp_path / "confirmed.toml", confirmed)
    assert load_workspace(tmp_path / "confirmed.toml").sessions[2].live_confirmed


def test_two_sessions_of_one_account_need_labels_of_their_own(tmp_path):
    # A restart takes each session over by account and label: two alike swapped their kept positions.
    text = SEED.replace('label = "Computer 3"\n', "").replace('label = "Computer 1"\n', "")
    with pytest.raises(WorkspaceError) as info:
        load_workspace(write(tmp_path, text))
    assert info.value.problems == [
        "session 3 (UK9394): session 1 of UK9394 has the label 'UK9394' too: give each its own label"
    ]


def test_missing_profile_and_unknown_strategy_are_reported(tmp_path):
    text = (
        '[[session]]\nsegments = ["NIFTY"]\nlots = 1\nstop_loss = 5\nitm_offset = 0\nstrategy = "scalper"\n'
    )
    with pytest.raises(WorkspaceError) as info:
        load_workspace(write(tmp_path, text), known_strategies=["itm_momentum"])
    assert info.value.problems == [
        "session 1: profile must be the broker account's user id, like UK9394",
        "session 1: unknown strategy 'scalper': choose from itm_momentum",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[session]\nprofile = 1", "ws.toml is not valid TOML"),
        ('title = "x"\n', "the workspace has no sessions: add a [[session]] table"),
        ("version = 9\n[[session]]\n", "workspace version 9 is not supported"),
    ],
)
def test_bad_files_give_plain_messages(tmp_path, text, message):
    with pytest.raises(WorkspaceError) as info:
        load_workspace(write(tmp_path, text))
    assert any(p.startswith(message) for p in info.value.problems)


def test_missing_file_is_a_plain_message(tmp_path):
    with pytest.raises(WorkspaceError, match="workspace file not found"):
        load_workspace(tmp_path / "nope.toml")


def test_issue_offsets_on_the_finest_strike_grid_are_accepted(tmp_path):
    # Issue 5 §8 pairs offset 50 with SENSEX and 150 with BANKNIFTY: NIFTY's 50-point grid decides,
    # the coarser segments round up when trading (params.effective_itm_offset).
    text = SEED.replace("itm_offset = 100              # the issue's", "itm_offset = 50 #")
    text = text.replace("itm_offset = 200              # the issue's", "itm_offset = 150 #")
    ws = load_workspace(write(tmp_path, text))
    assert [s.params.itm_offset for s in ws.sessions] == [100, 50, 150]
    only_sensex = text.replace('segments = ["NIFTY", "SENSEX"]', 'segments = ["SENSEX"]')
    with pytest.raises(WorkspaceError) as info:
        load_workspace(write(tmp_path, only_sensex))
    assert info.value.problems == [
        "session 2 (UK1234 'Computer 2'): itm_offset 50 is not a multiple of SENSEX's strike step 100"
    ]


def test_freeze_quantities_come_from_the_workspace_table_and_the_session_and_bad_ones_are_named(tmp_path):
    path = tmp_path / "ws.toml"
    session = (
        '[[session]]\nprofile = "UK9394"\nsegments = ["NIFTY"]\nlots = 60\nstop_loss = 5\nitm_offset = 100\n'
    )
    path.write_text(
        "[freeze]\nNIFTY = 1755\nBANKNIFTY = 600\n" + session + "[session.freeze]\nnifty = 1300\n"
    )
    params = load_workspace(path).sessions[0].params
    assert params.freeze_overrides == {"NIFTY": 1300, "BANKNIFTY": 600}, "the session's own figure wins"
    save_workspace(path, load_workspace(path))
    assert load_workspace(path).sessions[0].params.freeze_overrides == {"NIFTY": 1300, "BANKNIFTY": 600}
    for table, words in [
        ("NIFTY = 0", "freeze.NIFTY must be a whole number of units from 1 to 100,000"),
        ('NIFTY = "1800"', "freeze.NIFTY must be a whole number of units"),
        ("FINNIFTY = 1800", "freeze.FINNIFTY: unknown index (choose from NIFTY, BANKNIFTY, SENSEX)"),
    ]:
        path.write_text(f"[freeze]\n{table}\n" + session)
        with pytest.raises(WorkspaceError) as e:
            load_workspace(path)
        assert any(words in p for p in e.value.problems), e.value.problems
    path.write_text("freeze = 1800\n" + session)
    with pytest.raises(WorkspaceError, match=r"\[freeze\] must be a table"):
        load_workspace(path)
