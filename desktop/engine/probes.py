"""Latency probes of a segment's entries (bench/engine_bench.py): an observer injected into a trader's entry path
(`Entries.observer`, entries.py), told when an entry is decided and when its order is sent. The trader measures
nothing itself; with no observer (the app) it only skips two calls."""

from __future__ import annotations

import time
from typing import Protocol


class EntryObserver(Protocol):
    def entry_decided(self, posted: float, handed: float, picked: float) -> None:
        """An entry passed risk; the tick batch that led to it was posted, handed to the agent and taken from
        its inbox at these `time.perf_counter()` readings."""

    def entry_sent(self, posted: float) -> None:
        """Its order was accepted by the gateway (the intent journalled durably first)."""


class LatencyProbe:
    """Each entry's tick-to-intent latency (with the part until the agent took the batch and the part until the
    batch was handed to it) and tick-to-order-sent latency, seconds from the frame's arrival."""

    def __init__(self) -> None:
        self.decided: list[tuple[float, float, float]] = []
        self.sent: list[float] = []

    def entry_decided(self, posted: float, handed: float, picked: float) -> None:
        self.decided.append((time.perf_counter() - posted, picked - posted, handed - posted))

    def entry_sent(self, posted: float) -> None:
        self.sent.append(time.perf_counter() - posted)
