"""A command prints to the standard output of the moment it runs, not the one of when it was imported.

`kitedesk` is also called in-process (the window's tools, the tests): a stream bound as a default argument at
import time is whatever `sys.stdout` was then, and once that stream is closed every later call failed with
"I/O operation on closed file" before doing anything (seen when a replay ran after the headless tests).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

# Imported at collection, as a long-lived process would: sys.stdout is swapped below, after the import.
from desktop.cli import accounts, backtest, record, replay, run
from desktop.cli.main import main


def test_profiles_prints_to_the_stdout_of_the_call_even_after_the_one_at_import_is_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = io.StringIO()
    monkeypatch.setattr(sys, "stdout", now)
    code = main(["profiles", "--home", str(tmp_path / "home")])
    assert code == 0
    assert "No profiles yet" in now.getvalue()


@pytest.mark.parametrize(
    "command",
    [accounts.login, accounts.profiles, backtest.main, record.main, replay.main, run.run],
    ids=lambda f: f"{f.__module__}.{f.__name__}",
)
def test_no_command_binds_a_stream_at_import(command) -> None:
    """Each command takes its streams when called (a default of None), so a closed import-time stream is never used."""
    import inspect

    for name in ("out", "err"):
        param = inspect.signature(command).parameters.get(name)
        if param is not None:
            assert param.default is None, (
                f"{command.__module__}.{command.__name__}'s {name} is bound at import"
            )
