"""Draws KiteDesk's app icon from one source (this script) and writes every size each OS wants.

    python tools/make_icons.py            # rewrites resources/icons/*.png, resources/kitedesk.ico, .icns

The outputs are committed, so a build needs neither this script nor a display. The icon is drawn with
QtGui (already a dependency: no image library to install) on a 1024-px canvas in vector terms, then
rendered afresh at each size (not scaled down from one bitmap, so the small sizes stay sharp).
ICO and ICNS are written here by hand: both are a small header and a table of PNG images, and Qt's own
writers for them are not in PySide6-Essentials.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QImage, QLinearGradient, QPainter, QPainterPath, QPen, QPolygonF

ROOT = Path(__file__).resolve().parent.parent
RESOURCES = ROOT / "resources"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)  # 256 is the largest an .ico holds
# ICNS element types holding PNG data, by pixel size (Apple's icns format: 'ic10' is the 512@2x).
ICNS_TYPES = {16: b"icp4", 32: b"icp5", 64: b"icp6", 128: b"ic07", 256: b"ic08", 512: b"ic09", 1024: b"ic10"}

BACKGROUND_TOP = QColor("#1f3b73")
BACKGROUND_BOTTOM = QColor("#0f1d3a")
KITE = QColor("#f5b82e")
KITE_SHADE = QColor("#d8901a")
UP = QColor("#26a69a")
DOWN = QColor("#ef5350")


def draw(size: int) -> QImage:
    """The icon at `size` px: a kite over a rising candle chart, on a rounded navy square."""
    img = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.scale(size / 1024, size / 1024)  # everything below is in a 1024 x 1024 design space

    grad = QLinearGradient(0, 0, 0, 1024)
    grad.setColorAt(0, BACKGROUND_TOP)
    grad.setColorAt(1, BACKGROUND_BOTTOM)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QBrush(grad))
    p.drawRoundedRect(QRectF(40, 40, 944, 944), 200, 200)

    # Three candles rising left to right (green, red, green): the chart a trader watches.
    for x, body_top, body_bottom, wick_top, wick_bottom, colour in (
        (250, 640, 820, 590, 870, UP),
        (440, 560, 700, 510, 760, DOWN),
        (630, 420, 640, 360, 700, UP),
    ):
        p.setPen(QPen(colour, 26, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        p.drawLine(QPointF(x + 50, wick_top), QPointF(x + 50, wick_bottom))
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(colour)
        p.drawRoundedRect(QRectF(x, body_top, 100, body_bottom - body_top), 18, 18)

    # The kite, top right: a diamond in two shades, with its tail curling down towards the candles.
    top, right, bottom, left = QPointF(760, 120), QPointF(900, 290), QPointF(760, 500), QPointF(620, 290)
    p.setBrush(KITE)
    p.drawPolygon(QPolygonF([top, right, bottom]))
    p.setBrush(KITE_SHADE)
    p.drawPolygon(QPolygonF([top, left, bottom]))
    tail = QPainterPath(bottom)
    tail.cubicTo(QPointF(700, 600), QPointF(860, 640), QPointF(800, 760))
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.setPen(QPen(KITE, 22, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
    p.drawPath(tail)
    p.end()
    return img


def png_bytes(img: QImage) -> bytes:
    """`img` encoded as PNG."""
    data = QByteArray()
    buf = QBuffer(data)
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    if not img.save(buf, "PNG"):
        raise RuntimeError("Qt could not encode a PNG")
    buf.close()
    return bytes(data.data())


def ico_bytes(pngs: dict[int, bytes]) -> bytes:
    """A Windows .ico holding PNG images (valid since Windows Vista; a width or height of 0 means 256)."""
    sizes = sorted(pngs)
    header = struct.pack("<HHH", 0, 1, len(sizes))
    offset = len(header) + 16 * len(sizes)
    entries, images = b"", b""
    for s in sizes:
        data = pngs[s]
        entries += struct.pack("<BBBBHHII", s % 256, s % 256, 0, 0, 1, 32, len(data), offset)
        images += data
        offset += len(data)
    return header + entries + images


def icns_bytes(pngs: dict[int, bytes]) -> bytes:
    """A macOS .icns: the 'icns' magic and total length, then (type, length, PNG) elements."""
    body = b"".join(
        ICNS_TYPES[s] + struct.pack(">I", 8 + len(pngs[s])) + pngs[s] for s in sorted(pngs) if s in ICNS_TYPES
    )
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def main() -> int:
    icons = RESOURCES / "icons"
    icons.mkdir(parents=True, exist_ok=True)
    pngs = {s: png_bytes(draw(s)) for s in sorted({*PNG_SIZES, *ICO_SIZES, *ICNS_TYPES})}
    for s in PNG_SIZES:
        (icons / f"kitedesk-{s}.png").write_bytes(pngs[s])
    (RESOURCES / "kitedesk.ico").write_bytes(ico_bytes({s: pngs[s] for s in ICO_SIZES}))
    (RESOURCES / "kitedesk.icns").write_bytes(icns_bytes({s: pngs[s] for s in ICNS_TYPES}))
    print(
        f"wrote {len(PNG_SIZES)} PNGs to {icons.relative_to(ROOT)}, resources/kitedesk.ico, resources/kitedesk.icns"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
