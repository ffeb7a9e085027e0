"""One parameter spec: every setting of it is parsed, saved, written to the workspace file and read back.

The form's side (a row, label, placeholder and tooltip for every shown setting) is tests/ui/test_params_form.py.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any

import pytest

from desktop.domain import StrategyParams
from desktop.engine.param_spec import FIELDS, ONE_PER_SEGMENT, REQUIRED, example_raw
from desktop.engine.params import KNOWN_FIELDS, params_to_dict, parse_params
from desktop.engine.workspace import (
    SESSION_FIELDS,
    SessionEntry,
    Workspace,
    load_workspace,
    save_workspace,
)

STRATEGIES = ["itm_momentum", "mean_revert"]


def with_example(name: str) -> dict[str, Any]:
    """A valid raw set of parameters with setting `name` at its spec's example."""
    return {**example_raw(), name: next(f.example for f in FIELDS if f.name == name)}


def test_the_spec_and_strategy_params_name_the_same_settings_with_the_same_defaults():
    attrs = {f.name: f for f in fields(StrategyParams)}
    names = [f.name for f in FIELDS]
    assert set(names) - set(attrs) == set(), "settings of the spec without a StrategyParams attribute"
    assert set(attrs) - set(names) == set(), "StrategyParams attributes without a setting in the spec"
    assert names == list(attrs), "the spec lists the settings in StrategyParams' order"
    for spec in FIELDS:
        attr_default = attrs[spec.name].default
        if spec.default is REQUIRED:
            assert attr_default is MISSING, spec.name
        elif spec.default is not ONE_PER_SEGMENT:
            assert attr_default == spec.default, spec.name
    assert not SESSION_FIELDS & {f.name for f in FIELDS}, "a workspace session key hides a setting"
    assert {f.name for f in FIELDS} < KNOWN_FIELDS


def test_the_examples_make_a_valid_set_of_parameters():
    p = parse_params(example_raw())
    assert (p.lots, p.itm_offset) == (1, 100)


@pytest.mark.parametrize("name", [f.name for f in FIELDS])
def test_every_setting_is_parsed_saved_and_round_trips_through_a_workspace_file(tmp_path, name):
    spec = next(f for f in FIELDS if f.name == name)
    p = parse_params(with_example(name), confirm_live=True, known_strategies=STRATEGIES)
    value = getattr(p, name)
    if not spec.required:
        assert value != spec.default_for(p.segments), "the example must differ from the default to be seen"
    saved = params_to_dict(p)
    assert name in saved
    assert parse_params(saved, confirm_live=True) == p
    ws = Workspace((SessionEntry("UK9394", "one", p),))
    save_workspace(tmp_path / "ws.toml", ws)
    assert name in (tmp_path / "ws.toml").read_text(encoding="utf-8")
    again = load_workspace(tmp_path / "ws.toml", live_needs_confirmation=False)
    assert getattr(again.sessions[0].params, name) == value
    assert again == ws
