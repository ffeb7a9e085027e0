"""An account's funds as a session shows them and risk checks entries against: Kite's equity margins.

A LIVE session keeps one `FundsWatcher`: its own thread (never the GUI's, never an agent's) asks the broker for the
equity margins every minute and again after each fill (`refresh`), through the session's rate-limited KiteSession
whose reply check (replies.margins) has already vouched for the amounts. Each answer goes to the session's risk
manager (`RiskManager.set_funds`) and into the session's snapshot. A PAPER session asks nothing: paper orders
block no margin at the broker, so its funds read "paper" and risk refuses no paper entry for margin.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from desktop.domain import rupees

REFRESH_S = 60.0  # the header's funds are at most a minute old (and fresh after a fill)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Funds:
    """An account's equity funds at one moment: what is still available for new orders, and what is in use."""

    available: Decimal  # Kite's equity "net": what a new order can still use
    used: Decimal  # Kite's equity utilised "debits": premium paid and margin blocked
    fetched_at: datetime | None = None  # wall-clock time of the answer
    error: str = ""  # why the last refresh failed (the amounts are then the last good ones)
    paper: bool = False  # a PAPER session: no margin is used at the broker


PAPER_FUNDS = Funds(available=Decimal(0), used=Decimal(0), paper=True)


def funds_from_margins(doc: dict[str, Any], when: datetime | None = None) -> Funds:
    """The equity segment of GET /user/margins (whole, or /user/margins/equity) as `Funds`."""
    equity = doc.get("equity", doc) if "net" not in doc else doc
    utilised = equity.get("utilised") or {}
    used = utilised.get("debits", 0)
    return Funds(
        available=rupees(Decimal(str(equity["net"]))), used=rupees(Decimal(str(used))), fetched_at=when
    )


class FundsWatcher:
    """Fetches an account's funds on its own thread every `interval_s` seconds and whenever `refresh` asks."""

    def __init__(
        self,
        fetch: Callable[[], dict[str, Any]],
        on_funds: Callable[[Funds], None],
        interval_s: float = REFRESH_S,
        name: str = "funds",
    ) -> None:
        """`fetch`: the margins call (KiteSession.margins); `on_funds`: told each new `Funds` (from this thread)."""
        self._fetch = fetch
        self._on_funds = on_funds
        self._interval_s = interval_s
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.latest: Funds | None = None  # replaced whole: read without a lock

    def start(self) -> None:
        self._thread.start()

    def refresh(self) -> None:
        """Asks for a fetch now (after a fill); any thread, returns at once."""
        self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        """Stops the thread and waits for it (a fetch in flight ends within the session's HTTP timeout)."""
        self._stopped.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._fetch_once()
            self._wake.wait(self._interval_s)
            self._wake.clear()

    def _fetch_once(self) -> None:
        try:
            funds = funds_from_margins(self._fetch(), datetime.now())
        except Exception as e:  # a failed refresh keeps the last amounts and says why; the next one retries
            log.warning("funds refresh failed: %s", e)
            last = self.latest
            funds = Funds(last.available if last else Decimal(0), last.used if last else Decimal(0),
                          last.fetched_at if last else None, error=str(e) or type(e).__name__)  # fmt: skip
            if last is None:
                self.latest = funds
                return  # nothing known yet: risk keeps checking no margin
        self.latest = funds
        if self._stopped.is_set():
            return
        self._on_funds(funds)
