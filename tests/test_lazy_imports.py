"""The first window starts without what it does not use (issue 18: first paint ≤ 0.8 s, bench/first_paint.py).

Each of these is a large import that the window of a normal start (no demo, no session opened yet) never
needs: kiteconnect brings its ticker's twisted/autobahn stack, the charts bring pyqtgraph and numpy, the
feed aiohttp and numpy, the demo's simulator an aiohttp server, and Alembic is needed only to change the
schema. Checked in a fresh interpreter, as the app starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from desktop.broker.ticks import MODE_FULL
from desktop.engine import session as engine_session
from desktop.store.migrate import head_revision, known_head

NOT_FOR_THE_FIRST_WINDOW = (
    "kiteconnect",
    "twisted",
    "autobahn",
    "pyqtgraph",
    "numpy",
    "aiohttp",
    "requests",
    "alembic",
    "desktop.broker.sim",
    "desktop.broker.stream",
    "desktop.ui.chart",
)

_PROBE = """
import json, sys
from pathlib import Path
from PySide6.QtWidgets import QApplication
app = QApplication([])
from desktop.ui.launch import run_gui  # what `kitedesk` imports for the window
from desktop.engine import Engine
from desktop.ui.main_window import MainWindow
engine = Engine(Path(sys.argv[1]))  # a later start: the database exists
window = MainWindow(engine)
window.show()
app.processEvents()
print(json.dumps(sorted(sys.modules)))
window.close()
engine.close("keep")
"""


def test_the_first_window_imports_none_of_the_heavy_modules(tmp_path: Path) -> None:
    env = dict(
        os.environ, QT_QPA_PLATFORM="offscreen", PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring"
    )
    home = str(tmp_path / "home")
    first = 'import sys; from desktop.engine import Engine; Engine(sys.argv[1]).close("keep")'
    subprocess.run([sys.executable, "-c", first, home], env=env, timeout=120, check=True)  # the first start
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, home],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    heavy = sorted({m for m in loaded for h in NOT_FOR_THE_FIRST_WINDOW if m == h or m.startswith(h + ".")})
    assert heavy == []


def test_the_migration_head_read_without_alembic_is_alembics() -> None:
    assert known_head() == head_revision()


def test_the_session_engines_full_mode_is_the_feeds() -> None:
    assert engine_session.MODE_FULL == MODE_FULL


_AFTER_PAINT = """
import sys, threading, time
from pathlib import Path
from PySide6.QtWidgets import QApplication
app = QApplication([])
from desktop.engine import Engine
from desktop.ui.main_window import MainWindow
from desktop.ui.warmup import import_after_first_paint
engine = Engine(Path(sys.argv[1]))
window = MainWindow(engine)
window.show()
import_after_first_paint(window)
before = "desktop.ui.chart" in sys.modules
deadline = time.monotonic() + 60
while time.monotonic() < deadline and not all(m in sys.modules for m in ("desktop.ui.chart", "kiteconnect", "desktop.broker.stream")):
    app.processEvents()
    time.sleep(0.01)
for t in threading.enumerate():
    if t.name == "kitedesk-import-ahead":
        t.join(60)
print(before, all(m in sys.modules for m in ("desktop.ui.chart", "kiteconnect", "desktop.broker.stream")))
window.close()
engine.close("keep")
"""


def test_what_the_first_window_left_out_is_imported_once_it_painted(tmp_path: Path) -> None:
    env = dict(
        os.environ, QT_QPA_PLATFORM="offscreen", PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring"
    )
    out = subprocess.run(
        [sys.executable, "-c", _AFTER_PAINT, str(tmp_path / "home")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "False True"  # not before the paint; all of it after
