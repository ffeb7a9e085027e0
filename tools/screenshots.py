"""Screenshots of the demo for docs/, taken from a real window on an X display (e.g. Xvfb).

    Xvfb :99 -screen 0 1920x1080x24 &
    QT_QPA_PLATFORM=xcb DISPLAY=:99 python tools/screenshots.py [--seconds 45] [--out docs] [--size 1366x768]
    QT_QPA_PLATFORM=xcb DISPLAY=:99 python tools/screenshots.py --sizes --out /tmp/shots

Runs `kitedesk --demo` as the README's first command does, waits until trades have happened, and grabs
the window from the screen (what the X server shows, not a re-render): the first session with its
trades, the LIVE session with its positions, the light theme and the Settings dialog, at `--size`
(the README's pictures are 1366×768). `--sizes` grabs the demo at 1024×700, 1366×768 and 1920×1080
instead (window-WxH.png), to check that the window reads well from a small laptop up.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")

from PySide6.QtCore import QTimer  # noqa: E402
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

    def grab(name: str) -> None:
        app.processEvents()
        screen = window.screen()
        picture = screen.grabWindow(0, window.x(), window.y(), window.frameGeometry().width(),
                                    window.frameGeometry().height())  # fmt: skip
        picture.save(str(out / name))
        print("saved", out / name, f"{picture.width()}x{picture.height()}")

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
        picture.save(str(out / "demo-settings.png"))
        print("saved", out / "demo-settings.png", f"{picture.width()}x{picture.height()}")
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
            (7.0, lambda: (window.set_theme("light"), page(1, "Orders"))),
            (10.0, lambda: grab("demo-light-theme.png")),
            (10.5, lambda: window.set_theme("dark")),
            (11.0, grab_settings),
            (12.0, lambda: window.shutdown("square_off")),
        ]
    for at, action in steps:
        QTimer.singleShot(int((args.seconds + at) * 1000), action)
    QTimer.singleShot(int((args.seconds + 20) * 1000), app.quit)  # shutdown closes the window before this
    app.exec()
    return 0


if __name__ == "__main__":
    sys.exit(main())
