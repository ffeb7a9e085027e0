"""A segment's start, run on its agent's thread: the day's instruments and indicator warm-up from candles;
and the log handler that hands a session's log lines to the GUI."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from desktop.broker.hub import BrokerHub
from desktop.broker.session import KiteSession
from desktop.engine.snapshots import LogLine
from desktop.engine.trader import SegmentTrader

# Enough 1-minute candles for a 21-bar EMA even right after the open: today's and the previous sessions'.
WARM_UP_DAYS = 4


def load_segment(trader: SegmentTrader, hub: BrokerHub, kite: KiteSession, now: datetime) -> None:
    """Loads the account's instruments of the day (shared per account) and warms the indicators up."""
    book = hub.instrument_book(kite, now.date())
    token = trader.segment.spec.index_token
    candles = kite.historical_data(token, now - timedelta(days=WARM_UP_DAYS), now, "minute")
    trader.load(book, candles, now)


class LogLineHandler(logging.Handler):
    """Passes each formatted (already redacted) line of one segment's log to `sink` as a LogLine."""

    def __init__(self, segment: str, sink: Callable[[LogLine], None]) -> None:
        super().__init__()
        self.segment = segment
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # The logger's redaction filter already blanked secrets out of the message.
            when = getattr(record, "market_time", None)
            stamp = when.strftime("%Y-%m-%d %H:%M:%S") if when else ""
            text = f"{stamp} - {record.name} - {record.levelname} - {record.getMessage()}"
            self.sink(LogLine(self.segment, record.levelname, text, when))
        except Exception:  # a GUI-side problem must never break trading
            self.handleError(record)
