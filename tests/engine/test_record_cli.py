"""`kitedesk record`: records an account's feed without trading; bad input said in words."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from desktop.broker.recording import KIND_BINARY, read_frames
from desktop.broker.ticks import parse_frame
from desktop.engine.record_cli import build_parser, main


def test_an_unknown_index_is_refused_in_words(capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--profile", "UK9394", "--instruments", "NIFTY,GOLD"])
    assert "'GOLD' is neither an index" in capsys.readouterr().err


def test_record_on_the_demo_keeps_the_index_its_options_and_the_days_instruments(tmp_path: Path) -> None:
    out = io.StringIO()
    code = main(
        ["--profile", "UK9394", "--instruments", "NIFTY", "--strikes", "1", "--demo", "--speed", "60",
         "--for", "3", "--home", str(tmp_path)],
        out=out,
    )  # fmt: skip
    assert code == 0, out.getvalue()
    folder = tmp_path / "recordings" / "UK9394"
    [recording] = list(folder.glob("*.kdrec"))
    assert (folder / recording.name.replace(".kdrec", ".instruments.csv")).exists()
    tokens = {
        t.instrument_token
        for f in read_frames(recording)
        if f.kind == KIND_BINARY
        for t in parse_frame(f.data)
    }
    assert 256265 in tokens and len(tokens) >= 3  # the index and its options either side
    assert "recording NIFTY and 6 of its options" in out.getvalue()
