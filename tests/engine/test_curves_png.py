"""Equity curves as a PNG without a plotting library: the pixels say where the curves went."""

from __future__ import annotations

from pathlib import Path

from desktop.engine.curves_png import HIGHLIGHT, OTHERS, draw_curves, read_png, write_png


def test_the_best_curve_is_drawn_in_orange_over_the_others_and_the_file_reads_back(tmp_path: Path) -> None:
    rising = [("09:30", 0.0), ("10:00", 100.0), ("10:30", 200.0)]
    falling = [("09:30", 0.0), ("10:00", -100.0), ("10:30", -200.0)]
    img = draw_curves([falling, rising], highlight=1, width=200, height=120)
    write_png(tmp_path / "equity.png", img)
    back = read_png(tmp_path / "equity.png")
    assert back.shape == (120, 200, 3) and (back == img).all()
    orange = (back == HIGHLIGHT).all(axis=2)
    grey = (back == OTHERS).all(axis=2)
    # the rising curve ends at the top right, the falling one at the bottom right
    assert orange[:40, 150:].any() and not orange[80:, :].any()
    assert grey[80:, 150:].any() and not grey[:40, :].any()


def test_no_curves_give_an_empty_picture(tmp_path: Path) -> None:
    img = draw_curves([], highlight=None, width=50, height=40)
    assert (img == 255).all()
