"""The floor under issue 5's tick-to-intent latency: N Python threads woken by the same event, each doing a
bar close's worth of work, on one core, with nothing of KiteDesk in the way.

    /work/venv/bin/python bench/wake_floor.py [--threads 30] [--work-us 15] [--rounds 300] [--no-pin]

At a minute's first index tick every segment agent of every session closes a bar (10 sessions × 3
segments = 30 threads, as in `engine_bench.py`), and the GIL lets one run at a time. This bench is that
moment and nothing else: a poster notifies N threads, each waiting on its own condition as a
`SegmentAgent` does, each spins `--work-us` of Python (the in-process cost of a bar close and an entry
decision) and records how long after the post it finished. The p99 here is the least the engine's p99 can
be with one thread per segment on this interpreter: whatever the engine does beyond it (decoding the
frame, the other threads of the process) only adds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time


class Waiter(threading.Thread):
    """One agent: waits for a post, works `work_s`, records post-to-done."""

    def __init__(self, work_s: float) -> None:
        super().__init__(daemon=True)
        self.cond = threading.Condition()
        self.posted: float | None = None
        self.work_s = work_s
        self.latencies: list[float] = []
        self.done = threading.Event()

    def post(self, at: float) -> None:
        """Wakes the thread (as `SegmentAgent.post_ticks` does)."""
        with self.cond:
            self.posted = at
            self.cond.notify()

    def run(self) -> None:
        while True:
            with self.cond:
                while self.posted is None:
                    self.cond.wait()
                posted, self.posted = self.posted, None
            if posted < 0:
                return
            end = time.perf_counter() + self.work_s
            while time.perf_counter() < end:  # Python work holding the GIL
                pass
            self.latencies.append(time.perf_counter() - posted)
            self.done.set()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=30, help="threads woken together (default 10 × 3 agents)")
    ap.add_argument("--work-us", type=float, default=15.0, help="Python work per thread per wake, µs")
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--switch-interval", type=float, default=0.0005, help="as the Engine sets it")
    ap.add_argument("--no-pin", action="store_true", help="use every core (default: one, as engine_bench)")
    args = ap.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    if not args.no_pin:
        os.sched_setaffinity(0, {cores[0]})
    sys.setswitchinterval(args.switch_interval)
    waiters = [Waiter(args.work_us / 1e6) for _ in range(args.threads)]
    for w in waiters:
        w.start()
    last: list[float] = []
    for _ in range(args.rounds):
        for w in waiters:
            w.done.clear()
        posted = time.perf_counter()
        for w in waiters:
            w.post(posted)
        for w in waiters:
            w.done.wait(5)
        last.append(max(w.latencies[-1] for w in waiters))
        time.sleep(0.02)
    for w in waiters:
        w.post(-1.0)
        w.join(5)
    every = [x * 1000 for w in waiters for x in w.latencies]
    last_ms = [x * 1000 for x in last]
    where = "every core" if args.no_pin else f"one core (CPU {cores[0]})"
    print(f"{args.threads} threads woken together, {args.work_us:g} µs of Python each, {args.rounds} rounds, "
          f"{where}, switch interval {args.switch_interval * 1000:g} ms, Python {sys.version.split()[0]}")  # fmt: skip
    print(f"post-to-done, every thread: p50 {statistics.median(every):.3f} ms, p99 {pct(every, 0.99):.3f} ms, "
          f"max {max(every):.3f} ms")  # fmt: skip
    print(f"post-to-done, the last thread of each round: p50 {statistics.median(last_ms):.3f} ms, "
          f"p99 {pct(last_ms, 0.99):.3f} ms")  # fmt: skip
    print(f"work alone would take {args.threads * args.work_us / 1000:.3f} ms per round")
    return 0


if __name__ == "__main__":
    sys.exit(main())
