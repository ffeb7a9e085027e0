"""Equity curves as a PNG, drawn with numpy and written with zlib: no plotting library in a backtest's worker.

Every curve is drawn in grey, the highlighted one (the best net P&L) on top in orange, over a dashed zero line; the
x axis is the fills' times in order (days joined, nights left out), the y axis spans every curve. The file has no
text: which curve is which is in `results.csv` and `equity.csv` beside it.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

BACKGROUND = (255, 255, 255)
AXIS = (160, 160, 160)
OTHERS = (150, 150, 150)
HIGHLIGHT = (230, 120, 20)
MARGIN = 20


def draw_curves(
    curves: Sequence[Sequence[tuple[str, float]]], highlight: int | None, width: int = 900, height: int = 500
) -> np.ndarray:
    """An RGB image (height × width × 3, uint8) of `curves` ((time, value) points each), curve `highlight` on top."""
    img = np.full((height, width, 3), BACKGROUND, np.uint8)
    times = sorted({t for curve in curves for t, _ in curve})
    values = [v for curve in curves for _, v in curve] + [0.0]
    if not times:
        return img
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    x_of = {t: MARGIN + (width - 2 * MARGIN - 1) * (i / max(1, len(times) - 1)) for i, t in enumerate(times)}

    def y_of(v: float) -> float:
        return MARGIN + (height - 2 * MARGIN - 1) * (hi - v) / span

    img[MARGIN, MARGIN : width - MARGIN] = AXIS
    img[height - MARGIN - 1, MARGIN : width - MARGIN] = AXIS
    zero = round(y_of(0.0))
    img[zero, MARGIN : width - MARGIN : 8] = AXIS  # dashed
    img[zero, MARGIN + 1 : width - MARGIN : 8] = AXIS
    order = [i for i in range(len(curves)) if i != highlight] + ([highlight] if highlight is not None else [])
    for i in order:
        points = [(x_of[t], y_of(v)) for t, v in curves[i]]
        colour, thick = (HIGHLIGHT, 2) if i == highlight else (OTHERS, 1)
        for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
            _line(img, x0, y0, x1, y0, colour, thick)  # a step: the P&L holds until the next fill
            _line(img, x1, y0, x1, y1, colour, thick)
    return img


def _line(
    img: np.ndarray, x0: float, y0: float, x1: float, y1: float, colour: tuple[int, int, int], thick: int
) -> None:
    n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.rint(np.linspace(x0, x1, n)).astype(int)
    ys = np.rint(np.linspace(y0, y1, n)).astype(int)
    for d in range(thick):
        img[np.clip(ys + d, 0, img.shape[0] - 1), np.clip(xs, 0, img.shape[1] - 1)] = colour


def write_png(path: Path, img: np.ndarray) -> None:
    """Writes an RGB uint8 image as a PNG (8-bit truecolour, no filter)."""
    height, width, _ = img.shape
    raw = b"".join(b"\x00" + img[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )
    Path(path).write_bytes(png)


def read_png(path: Path) -> np.ndarray:
    """Reads back a PNG written by `write_png` (tests)."""
    data = Path(path).read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    pos, width, height, idat = 8, 0, 0, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, 1 + width * 3)
    return raw[:, 1:].reshape(height, width, 3)
