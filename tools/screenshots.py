"""Screenshots of the demo for docs/, taken from a real window on an X display (e.g. Xvfb).

    Xvfb :99 -screen 0 1920x1080x24 &
    QT_QPA_PLATFORM=xcb DISPLAY=:99 python tools/screenshots.py [--seconds 45] [--out docs] [--size 1366x768]
    QT_QPA_PLATFORM=xcb DISPLAY=:99 python tools/screenshots.py --sizes --out /tmp/shots

Runs `kitedesk --demo` as the README's first command does, waits until trades have happened, and grabs
the window from the screen (what the X server shows, not a re-render): the first session with its
trades, the LIVE session with its positions, the second session in the light theme, the funds header of the
LIVE session, the Settings dialog, and a fill's notification (on a desktop without a system tray, as Xvfb is, it
is the window's own toast), at `--size` (the README's pictures are 1366×768). Pictures are saved with a 256-colour
palette (a third of the size; the window's flat colours survive it). Toasts are closed before the other pictures. `--sizes` grabs the demo at 1024×700, 1366×768 and 1920×1080
instead (window-WxH.png), to check that the window reads well from a small laptop up.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")

from PySide6.QtCore import Qt, QTimer  # noqa: E402
from PySide6.QtGui import QImage, QPixmap  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from desktop.broker.profiles import MemorySecretStore  # noqa: E402
from desktop.cli.demo import window_demo  # noqa: E402
from desktop.engine import Engine  # noqa: E402
from desktop.ui.launch import start_demo  # noqa: E402
from desktop.ui.main_window import MainWindow  # noqa: E402
from desktop.ui.theme import apply_theme  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=45.0, help="demo time before the first picture")
    ap.add_argument("--out", default="docs")
    ap.add_argument("--size", default="1366x768", help="window size WxH of the pictures (default 1366x768)")
    ap.add_argument("--sizes", action="store_true", help="grab the demo at 1024x700, 1366x768 and 1920x1080")
    args = ap.parse_args()
    if os.environ.get("QT_QPA_PLATFORM", "") in ("offscreen", "minimal"):
        print("needs a real display: QT_QPA_PLATFORM=xcb DISPLAY=:99", file=sys.stderr)
        return 2
    width, height = (int(v) for v in args.size.lower().split("x"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication([sys.argv[0]])
    window = MainWindow(
        Engine(Path(tempfile.mkdtemp(prefix="kitedesk-shots-")), secrets=MemorySecretStore()), demo=True
    )
    apply_theme(app, window.theme)
    window.resize(width, height)
    window.move(0, 0)
    window.show()
    start_demo(window, window_demo(60.0, 1), 60.0)

    def save(picture: QPixmap, name: str) -> None:
        image = picture.toImage().convertToFormat(
            QImage.Format.Format_Indexed8, Qt.ImageConversionFlag.ThresholdDither
        )
        image.save(str(out / name), "PNG", 0)
        size = (out / name).stat().st_size
        print("saved", out / name, f"{image.width()}x{image.height()}", f"{size // 1024} KB")

    def close_toasts() -> None:
        for toast in window.notifier.toasts.visible():
            toast.close()
        app.processEvents()

    def grab(name: str, keep_toasts: bool = False, height: int | None = None) -> None:
        if not keep_toasts:
            close_toasts()
        app.processEvents()
        screen = window.screen()
        picture = screen.grabWindow(0, window.x(), window.y(), window.frameGeometry().width(),
                                    height or window.frameGeometry().height())  # fmt: skip
        save(picture, name)

    def grab_header(name: str) -> None:
        """The LIVE tab's header: account, badge, state, funds and day P&L (the tab bar above it)."""
        tab = window.session_tabs()[window.tabs.currentIndex()]
        bottom = tab.funds_label.mapTo(window, tab.funds_label.rect().bottomLeft()).y() + 12
        grab(name, height=bottom + (window.frameGeometry().height() - window.height()))

    def grab_notification(deadline: float) -> None:
        """Waits for the next fill's toast (the demo trades every few seconds), then grabs it."""
        toasts = window.notifier.toasts.visible()
        if any(t.kind in ("fill", "stop-loss") for t in toasts):
            QTimer.singleShot(300, lambda: (grab("demo-notification.png", keep_toasts=True),
                                            window.shutdown("square_off")))  # fmt: skip
        elif time.monotonic() > deadline:
            print("no fill notification came: demo-notification.png not taken", file=sys.stderr)
            window.shutdown("square_off")
        else:
            QTimer.singleShot(200, lambda: grab_notification(deadline))

    def wait_for_fill() -> None:
        page(0, "Positions")
        close_toasts()
        grab_notification(time.monotonic() + 60)

    def page(tab_index: int, bottom: str) -> None:
        window.tabs.setCurrentIndex(tab_index)
        tab = window.session_tabs()[tab_index]
        for i in range(tab.bottom_tabs.count()):
            if tab.bottom_tabs.tabText(i) == bottom:
                tab.bottom_tabs.setCurrentIndex(i)

    def grab_settings() -> None:
        dialog = window.show_settings()
        dialog.move(window.x() + 120, window.y() + 60)
        app.processEvents()
        picture = dialog.screen().grabWindow(0, dialog.x(), dialog.y(), dialog.frameGeometry().width(),
                                             dialog.frameGeometry().height())  # fmt: skip
        save(picture, "demo-settings.png")
        dialog.reject()

    if args.sizes:
        steps = [(0.0, lambda: page(0, "Trades"))]
        for k, (w, h) in enumerate(((1024, 700), (1366, 768), (1920, 1080))):
            steps.append((1.0 + 4 * k, lambda w=w, h=h: window.resize(w, h)))
            steps.append((4.0 + 4 * k, lambda w=w, h=h: grab(f"window-{w}x{h}.png")))
        steps.append((13.0, lambda: window.shutdown("square_off")))
    else:
        steps = [
            (0.0, lambda: page(0, "Trades")),
            (3.0, lambda: grab("demo-trades.png")),
            (3.5, lambda: page(2, "Positions")),
            (6.5, lambda: grab("demo-live-session.png")),
            (6.7, lambda: grab_header("demo-funds-header.png")),
            (7.0, lambda: (window.set_theme("light"), page(1, "Orders"))),
            (10.0, lambda: grab("demo-light-theme.png")),
            (10.5, lambda: window.set_theme("dark")),
            (11.0, grab_settings),
            (12.0, wait_for_fill),  # then the window shuts down
        ]

    # One after another: each step is timed from the end of the one before, so a slow grab (a loaded machine) never
    # lets the next step's timer run inside it (a picture of the wrong tab or theme).
    def run_step(i: int) -> None:
        steps[i][1]()
        if i + 1 < len(steps):
            QTimer.singleShot(int((steps[i + 1][0] - steps[i][0]) * 1000), lambda: run_step(i + 1))

    QTimer.singleShot(int((args.seconds + steps[0][0]) * 1000), lambda: run_step(0))
    QTimer.singleShot(int((args.seconds + 90) * 1000), app.quit)  # shutdown closes the window before this
    app.exec()
    return 0


if __name__ == "__main__":
    sys.exit(main())
