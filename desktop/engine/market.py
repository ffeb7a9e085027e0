"""What the engine needs of a demo market, whoever built it: `DemoMarket`.

The engine does not know the simulator. The composition root (desktop/cli/demo.py) starts one (embedded,
in its own process, or already running at a URL) and hands the engine this view of it: the accounts to log
in with, the market clock and how to stop it. So the engine's clock and accounts are given to it, never
chosen by it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class DemoLogin:
    """One demo account of a market: what a profile and its login need (the secret goes to memory only)."""

    user_id: str
    api_key: str
    user_name: str
    api_secret: str

    def __repr__(self) -> str:  # the secret never reaches a log line through a repr
        return f"DemoLogin(user_id={self.user_id!r}, api_key={self.api_key!r})"


class DemoMarket(Protocol):
    """A running Kite-compatible market with demo accounts (the simulator, seen from the engine)."""

    @property
    def url(self) -> str:
        """The REST root (also the login root)."""
        ...

    @property
    def ws_url(self) -> str:
        """The ticker's WebSocket root."""
        ...

    @property
    def accounts(self) -> Sequence[DemoLogin]:
        """The demo accounts, logged in by the engine when it attaches the market."""
        ...

    @property
    def handle(self) -> object | None:
        """The simulator object itself when this process owns it (tests inject faults through it), else None."""
        ...

    def now(self) -> datetime:
        """The market's clock (naive IST)."""
        ...

    def stop(self) -> None:
        """Stops the market if this process started it; idempotent."""
        ...
