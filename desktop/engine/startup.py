"""A segment's start, run on its agent's thread: the day's instruments and indicator warm-up from candles;
and the log handler that hands a session's log lines to the GUI."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from desktop.broker import replies
from desktop.broker.hub import BrokerHub
from desktop.broker.ratelimit import CallKind
from desktop.broker.session import KiteSession
from desktop.domain import MARKET_CLOSE, MARKET_OPEN
from desktop.engine.logs import TIME_FORMAT
from desktop.engine.snapshots import LogLine
from desktop.engine.trader import SegmentTrader

# Bars fetched for warm-up: enough for the slow EMA three times over, and two hours for the chart.
MIN_WARM_UP_BARS = 120
_FORMAT = "%Y-%m-%d %H:%M:%S"


def warm_up_start(now: datetime, bars: int) -> datetime:
    """When to fetch candles from so that about `bars` closed 1-minute bars precede `now`, reaching back
    into the previous weekday's session when today's has not lasted that long (holidays not known)."""
    today_open = datetime.combine(now.date(), MARKET_OPEN)
    start = now - timedelta(minutes=bars)
    if start >= today_open:
        return start
    day = now.date() - timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    missing = bars - max(0, int((now - today_open).total_seconds() // 60))
    return datetime.combine(day, MARKET_CLOSE) - timedelta(minutes=missing)


def fetch_candles(kite: KiteSession, token: int, start: datetime, end: datetime) -> list[Any]:
    """Raw 1-minute candles [ts, o, h, l, c, v].

    kiteconnect's `historical_data` parses every timestamp with dateutil (about a millisecond each, holding
    the GIL): thirty agents warming up at once starved every other thread for seconds. The raw payload of the
    same request (`_get`, in the pinned kiteconnect 5.2.2) is parsed by `bars.candle_to_bar` instead."""
    if not hasattr(kite.kite, "_get"):
        return kite.historical_data(token, start, end, "minute")
    data = kite.read(
        CallKind.HISTORICAL,
        replies.candles,  # a malformed reply is asked for again, never a ValueError in the agent's start
        "_get",
        "market.historical",
        url_args={"instrument_token": token, "interval": "minute"},
        params={"from": start.strftime(_FORMAT), "to": end.strftime(_FORMAT), "interval": "minute",
                "continuous": 0, "oi": 0},
    )  # fmt: skip
    return list(data.get("candles", [])) if isinstance(data, dict) else []


def load_segment(trader: SegmentTrader, hub: BrokerHub, kite: KiteSession, now: datetime) -> None:
    """Loads the account's instruments of the day (shared per account) and warms the indicators up."""
    book = hub.instrument_book(kite, now.date())
    bars = max(MIN_WARM_UP_BARS, 3 * trader.ctx.params.slow_ema)
    candles = fetch_candles(kite, trader.segment.spec.index_token, warm_up_start(now, bars), now)
    recorder = hub.recorder(kite.broker_id)
    if recorder is not None:  # a replay of the day warms up from the same candles (broker/recording.py)
        try:
            recorder.keep_candles(now.date(), trader.segment.spec.index_token, candles)
        except (OSError, ValueError) as e:
            # A convenience for a later replay, never a reason not to trade: a start that failed here (a full
            # disk, a file of it torn) left a LIVE position it would have taken over managed by nobody.
            trader.log.warning("the warm-up candles are not kept for a replay of the day: %s", e, at=now)
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
            stamp = when.strftime(TIME_FORMAT) if when else ""
            text = f"{stamp} - {record.name} - {record.levelname} - {record.getMessage()}"
            self.sink(LogLine(self.segment, record.levelname, text, when))
        except Exception:  # a GUI-side problem must never break trading
            self.handleError(record)
