"""`kitedesk record`: records an account's feed without trading; bad input said in words."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from desktop.broker.recording import KIND_BINARY, read_frames
from desktop.broker.ticks import parse_frame
from desktop.cli.record import build_parser, main


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


def test_record_follows_the_index_to_the_strikes_around_it_now(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("desktop.cli.record.RECENTRE_EVERY_S", 0.3)
    out = io.StringIO()
    args = ["--profile", "UK9394", "--instruments", "NIFTY", "--strikes", "0", "--demo", "--speed", "900",
            "--for", "4", "--home", str(tmp_path)]  # fmt: skip
    assert main(args, out=out) == 0, out.getvalue()
    assert (
        "NIFTY moved: now also recording" in out.getvalue()
    )  # an hour of market: NIFTY left its first strike
    [recording] = (tmp_path / "recordings" / "UK9394").glob("*.kdrec")
    options = {
        t.instrument_token
        for f in read_frames(recording)
        if f.kind == KIND_BINARY
        for t in parse_frame(f.data)
    }
    assert len(options - {256265}) > 2  # more than the first ATM call and put
