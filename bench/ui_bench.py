"""GUI responsiveness during the demo: event-loop stalls, refresh and chart redraw times, memory.

Runs `kitedesk --demo` (real Engine, embedded simulator, the seed's three sessions) for --seconds
(default 60), offscreen unless a display is set, cycling the visible tab so every chart draws.
A 5 ms precise QTimer measures its own lateness: that lateness is how long the GUI thread was busy.
Each stall over 50 ms is split into the GUI thread's own CPU, its wait for a CPU (other processes or
threads had both cores: Linux schedstat) and the rest, where it was blocked (the GIL held by an engine
thread, or a lock). `--events` also times every GUI-thread event (Python-level, ~10 % overhead) and prints
the slowest kinds, to find what to fix.

    python bench/ui_bench.py [--seconds 60] [--speed 60] [--events]
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")

from PySide6.QtCore import QEvent, QObject, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from desktop.broker.profiles import MemorySecretStore  # noqa: E402
from desktop.cli.demo import window_demo  # noqa: E402
from desktop.cli.main import DEFAULT_DEMO_SPEED  # noqa: E402
from desktop.engine import Engine  # noqa: E402
from desktop.ui.launch import start_demo  # noqa: E402
from desktop.ui.main_window import MainWindow  # noqa: E402
from desktop.ui.theme import apply_theme  # noqa: E402
from desktop.ui.warmup import import_after_first_paint  # noqa: E402

PROBE_MS = 5


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _runqueue_wait_s() -> float:
    """Seconds this thread has waited for a CPU while runnable (Linux schedstat; 0 elsewhere)."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


class _EventTimes:
    """CPU time of each top-level GUI-thread event, by kind (event type -> receiver class and parent)."""

    def __init__(self) -> None:
        self.cpu_ms: dict[str, list[float]] = collections.defaultdict(list)
        # The latest events over 1 ms of wall time: (ended at perf_counter, CPU ms, wall ms, kind).
        self.recent: collections.deque[tuple[float, float, float, str]] = collections.deque(maxlen=200)
        self.measuring = False
        self._depth = 0
        self._main = threading.get_ident()

    def timed(self, notify: Any, receiver: QObject, event: QEvent) -> bool:
        if not self.measuring or threading.get_ident() != self._main:
            return bool(notify(receiver, event))
        self._depth += 1
        kind = self._kind(receiver, event) if self._depth == 1 else ""  # before: a step leaves the queue
        c0, w0 = time.thread_time(), time.perf_counter()
        try:
            return bool(notify(receiver, event))
        finally:
            self._depth -= 1
            if self._depth == 0:
                cpu = (time.thread_time() - c0) * 1000
                w1 = time.perf_counter()
                if cpu > 1.0:
                    self.cpu_ms[kind].append(cpu)
                if (w1 - w0) * 1000 > 1.0:
                    self.recent.append((w1, cpu, (w1 - w0) * 1000, kind))

    def between(self, t0: float, t1: float) -> list[tuple[float, float, str]]:
        """(CPU ms, wall ms, kind) of the events over 1 ms that ended after t0 and by t1."""
        return [(cpu, wall, kind) for end, cpu, wall, kind in self.recent if t0 < end <= t1]

    @staticmethod
    def _kind(receiver: QObject, event: QEvent) -> str:
        names = []
        obj: Any = receiver
        for _ in range(2):
            try:
                names.append(type(obj).__name__)
                obj = obj.parent()
            except (RuntimeError, AttributeError):
                break
            if obj is None:
                break
        jobs = getattr(receiver.parent(), "_jobs", None) if isinstance(receiver, QTimer) else None
        if jobs:  # the window's StepQueue: name the step that runs
            step = jobs[0][1]
            names[0] += f"[{getattr(step, '__qualname__', None) or getattr(step, 'func', step).__qualname__}]"
        return f"{event.type().name} -> {' < '.join(names)}"


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _line(name: str, values: list[float]) -> str:
    if not values:
        return f"{name:<32} no samples"
    return (
        f"{name:<32} n={len(values):>6}  p50={_pct(values, 0.5):7.2f} ms  p99={_pct(values, 0.99):7.2f} ms  "
        f"max={max(values):7.2f} ms  mean={statistics.fmean(values):6.2f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    """Runs the bench and prints its figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--speed", type=float, default=DEFAULT_DEMO_SPEED)
    ap.add_argument("--events", action="store_true", help="also time every GUI-thread event (slower)")
    ap.add_argument(
        "--switch-interval", type=float, help="sys.setswitchinterval (seconds) to try instead of the Engine's"
    )
    args = ap.parse_args(argv)
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)  # the Engine only ever lowers it

    event_times = _EventTimes()
    if args.events:

        class TimedApplication(QApplication):
            def notify(self, receiver: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
                return event_times.timed(super().notify, receiver, event)

        app: QApplication = TimedApplication([sys.argv[0]])
    else:
        app = QApplication([sys.argv[0]])
    load_start = os.getloadavg()[0]
    rss_start = _rss_mb()
    home = Path(tempfile.mkdtemp(prefix="kitedesk-bench-"))
    engine = Engine(home, secrets=MemorySecretStore())
    window = MainWindow(engine, demo=True)
    apply_theme(app, window.theme)
    window.resize(1500, 920)
    window.show()
    import_after_first_paint(window)  # as `kitedesk` does (desktop/ui/launch.py)

    stalls: list[float] = []
    big_stalls: list[tuple[float, float]] = []  # (seconds into the run, stall ms)
    refresh_ms: list[float] = []
    # The GUI thread's own CPU time during each stall: a stall much longer than it was spent waiting (for
    # the GIL held by engine threads, or for a CPU taken by other processes), not drawing.
    stall_cpu: list[float] = []
    stall_runqueue: list[float] = []  # ... and its wait for a CPU (other processes or threads ran)
    last = [time.perf_counter()]
    last_cpu = [time.thread_time()]
    last_wait = [_runqueue_wait_s()]
    measuring = [False]

    opening_ms: list[tuple[float, float]] = []
    stall_events: list[list[tuple[float, float, str]]] = []  # with --events: what ran in each stall

    def probe() -> None:
        now, cpu, wait = time.perf_counter(), time.thread_time(), _runqueue_wait_s()
        if not measuring[0] and not started[0] and window.session_tabs():
            # the tabs are being opened: (pass ms, GUI-thread CPU ms in it)
            opening_ms.append((max(0.0, (now - last[0]) * 1000 - PROBE_MS), (cpu - last_cpu[0]) * 1000))
        if measuring[0]:
            stall = max(0.0, (now - last[0]) * 1000 - PROBE_MS)
            stalls.append(stall)
            if stall > 50:
                big_stalls.append((now - started[0], stall))
                stall_events.append(event_times.between(last[0], now))
                stall_cpu.append((cpu - last_cpu[0]) * 1000)
                stall_runqueue.append((wait - last_wait[0]) * 1000)
        last[0], last_cpu[0], last_wait[0] = now, cpu, wait

    probe_timer = QTimer()
    probe_timer.setTimerType(Qt.TimerType.PreciseTimer)
    probe_timer.setInterval(PROBE_MS)
    probe_timer.timeout.connect(probe)
    probe_timer.start()

    original_refresh = window.refresh

    def timed_refresh() -> None:
        t0 = time.perf_counter()
        original_refresh()
        refresh_ms.append((time.perf_counter() - t0) * 1000)

    window.timer.timeout.disconnect()
    window.timer.timeout.connect(timed_refresh)

    started = [0.0]
    load_end = [float("nan")]

    def begin() -> None:
        started[0] = time.perf_counter()
        # The first interval starts here: what ran before (the pass that opened the tabs) is timed apart.
        last[0], last_cpu[0], last_wait[0] = started[0], time.thread_time(), _runqueue_wait_s()
        measuring[0] = True
        event_times.measuring = True

    switches: list[float] = []

    def cycle_tabs() -> None:
        if window.tabs.count():
            switches.append(time.perf_counter() - started[0])
            window.tabs.setCurrentIndex((window.tabs.currentIndex() + 1) % window.tabs.count())

    def finish() -> None:
        measuring[0] = False
        event_times.measuring = False
        load_end[0] = os.getloadavg()[0]
        probe_timer.stop()
        window.shutdown("keep")  # keep positions: no question asked

    t_launch = time.perf_counter()
    start_demo(window, window_demo(args.speed, 1), args.speed)
    first_trade: list[float] = []

    def watch_trades() -> None:
        if not first_trade and any(t.session.snapshot().fills for t in window.session_tabs()):
            first_trade.append(time.perf_counter() - t_launch)

    # Measure once the three sessions are open (the simulator start and logins are not GUI work).
    def wait_sessions() -> None:
        if len(window.session_tabs()) == 3:
            begin()
            QTimer.singleShot(int(args.seconds * 1000), finish)
        else:
            QTimer.singleShot(100, wait_sessions)

    QTimer.singleShot(100, wait_sessions)
    tab_timer = QTimer()
    tab_timer.timeout.connect(cycle_tabs)
    tab_timer.start(5000)  # the first visit of each tab creates its charts
    trade_timer = QTimer()
    trade_timer.timeout.connect(watch_trades)
    trade_timer.start(200)
    app.exec()
    tab_timer.stop()
    trade_timer.stop()
    window.jobs.wait(10_000)
    rss_end = _rss_mb()

    chart_ms: list[float] = []
    bars_drawn = 0
    for tab in window.session_tabs() or []:
        for panel in tab._segment_panels.values():
            chart_ms += list(panel.chart.update_ms)
            if panel.chart.ready:  # a chart still being built has no candles yet
                bars_drawn += panel.chart.candles.bars_drawn
    # Tabs are gone after shutdown; the charts were collected by the window's children above when present.
    measured = time.perf_counter() - started[0] if started[0] else 0.0
    print(
        f"KiteDesk UI bench: demo at {args.speed:g}x, 3 sessions, {measured:.0f} s measured, Qt {os.environ['QT_QPA_PLATFORM']}"
    )
    print(
        f"{'load average (1 min)':<32} {load_start:.2f} at start, {load_end[0]:.2f} at the end ({os.cpu_count()} CPUs)"
    )
    print(_line(f"event-loop stall ({PROBE_MS} ms probe)", stalls))
    over = sum(1 for s in stalls if s > 50)
    where = ", ".join(f"{ms:.0f} ms at {t:.1f} s" for t, ms in big_stalls[:10])
    print(f"{'stalls over 50 ms':<32} {over}" + (f" ({where})" if where else ""))
    if stall_cpu:
        busy = sum(1 for c in stall_cpu if c > 50)
        print(
            f"{'  GUI-thread CPU in them':<32} max {max(stall_cpu):.0f} ms, median "
            f"{statistics.median(stall_cpu):.0f} ms; {busy} with over 50 ms of CPU (the rest waited)"
        )
        blocked = [
            max(0.0, st + PROBE_MS - c - w)
            for (_, st), c, w in zip(big_stalls, stall_cpu, stall_runqueue, strict=True)
        ]
        print(
            f"{'  waiting for a CPU / blocked':<32} max {max(stall_runqueue):.0f} / {max(blocked):.0f} ms, median "
            f"{statistics.median(stall_runqueue):.0f} / {statistics.median(blocked):.0f} ms (blocked: GIL or a lock)"
        )
    # A tab switch is a click: its first frame draws a whole tab. Separate it from the steady state.
    steady = [ms for t, ms in big_stalls if not any(0 <= t - sw <= 1.0 for sw in switches)]
    print(
        f"{'  of which not after a tab switch':<32} {len(steady)}"
        + (f" (max {max(steady):.0f} ms)" if steady else "")
        + f"; tab switches: {len(switches)}"
    )
    if opening_ms:
        worst, worst_cpu = max(opening_ms)
        print(
            f"{'while the tabs opened':<32} longest event-loop pass {worst:.0f} ms, {worst_cpu:.0f} ms of it "
            "GUI-thread CPU (before the measured part)"
        )
    print(_line("refresh (15 Hz pull + draw)", refresh_ms))
    print(_line("chart update_from", chart_ms))
    print(f"{'bar pictures recorded':<32} {bars_drawn}")
    print(f"{'first trade after launch':<32} {first_trade[0]:.1f} s" if first_trade else "no trade seen")
    print(f"{'memory (RSS)':<32} start {rss_start:.0f} MB, end {rss_end:.0f} MB")
    for (t, ms), events in zip(big_stalls, stall_events, strict=True):
        if events:
            print(f"  events over 1 ms in the {ms:.0f} ms stall at {t:.1f} s (CPU / wall ms):")
            for cpu, wall, kind in events:
                print(f"    {cpu:5.1f} / {wall:5.1f}  {kind}")
    if args.events:
        print("slowest GUI-thread events (CPU, with the timing's own overhead), by worst case:")
        worst = sorted(event_times.cpu_ms.items(), key=lambda kv: -max(kv[1]))[:12]
        for kind, values in worst:
            print(
                f"  {kind[:58]:<58} n={len(values):>5}  p99={_pct(values, 0.99):6.1f}  max={max(values):6.1f} ms"
            )
    shutil.rmtree(home, ignore_errors=True)  # the run's home (its feed recordings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
