"""Prints how long the simulator's market takes to price ~1000 instruments: cold, warm, and per new second.

Run: python bench/sim_market_bench.py [--seed N] [--day 2026-01-08] [--time 14:30:00]
Not a test: timings depend on the machine. The server asks for about 1000 instruments up to 20 times a
second, so a warm second must stay well under 10 ms.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta

from desktop.broker.sim.market import Market


def timed(label: str, fn: Callable[[], object], count: int) -> None:
    """Runs fn once and prints its wall time in total and per call."""
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    print(f"{label:<52} {elapsed * 1000:9.2f} ms  ({elapsed / count * 1e6:7.1f} us per call)")


def main() -> None:
    """Measures last_price, quote and full tick packets over the whole listed market."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--day", type=date.fromisoformat, default=date(2026, 1, 8))
    parser.add_argument("--time", default="14:30:00", help="market time of the measurement, HH:MM:SS")
    args = parser.parse_args()
    now = datetime.combine(args.day, datetime.strptime(args.time, "%H:%M:%S").time())

    start = time.perf_counter()
    market = Market(args.seed, args.day)
    print(f"Market({args.seed}, {args.day}): {len(market.instruments)} instruments in "
          f"{(time.perf_counter() - start) * 1000:.1f} ms")  # fmt: skip
    tokens = [i.instrument_token for i in market.instruments][:1000]
    n = len(tokens)

    timed(
        f"{n} last_price, cold (first use of each option)",
        lambda: [market.last_price(t, now) for t in tokens],
        n,
    )
    timed(f"{n} last_price, warm (same second)", lambda: [market.last_price(t, now) for t in tokens], n)
    later = now + timedelta(seconds=1)
    timed(f"{n} last_price, next second", lambda: [market.last_price(t, later) for t in tokens], n)
    timed(
        f"{n} full tick packets, cold (builds day bars)",
        lambda: [market.tick_packet(t, later, "full") for t in tokens],
        n,
    )
    for k in (2, 3):
        t = now + timedelta(seconds=k)
        timed(
            f"{n} full tick packets, next second (+{k}s)",
            lambda t=t: [market.tick_packet(x, t, "full") for x in tokens],
            n,
        )
    timed(
        f"{n} full tick packets, warm (same second)",
        lambda: [market.tick_packet(x, t, "full") for x in tokens],
        n,
    )
    timed(f"{n} quotes, same second", lambda: [market.quote(x, t) for x in tokens], n)
    option = next(i for i in market.instruments if i.is_option).instrument_token
    timed(
        "5 days of minute candles for one option",
        lambda: market.candles(option, "minute", now - timedelta(days=7), now),
        1,
    )


if __name__ == "__main__":
    main()
