"""`--sim-day`: a day of the built-in simulator's market as a replay's frames, without recording it first.

The simulator's seeded market (`desktop/broker/sim/market.py`) gives every second of the day's session the packets
its WebSocket server would send: each index in full mode, plus whatever the replay's sessions subscribed (the
option they trade), encoded by the simulator's own frame encoder. The instruments dump and the warm-up candles
come from the same market, so a sim day replays exactly as a recording of that day would.

It lives in the composition root because the engine never imports the simulator: `kitedesk replay` calls it,
and `kitedesk backtest` hands it to the engine's `DaySource` (a module-level function: it crosses into the
sweep's spawned processes by name).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta

from desktop.broker.recording import KIND_BINARY, Frame
from desktop.broker.sim.market import Market
from desktop.broker.sim.ticks import encode_frame, ist_epoch
from desktop.broker.ticks import MODE_FULL
from desktop.domain import MARKET_CLOSE, MARKET_OPEN, Segment
from desktop.engine.replay import DayData, ReplayError, jsonable_candle
from desktop.engine.workspace import Workspace

WARM_UP_DAYS = 4  # calendar days of candles before the day (the warm-up reaches into the previous weekday)


class SimDayFrames:
    """The frames of one simulated day, one a second, for the indices and what the replay subscribed."""

    def __init__(self, market: Market, day: date) -> None:
        self._market = market
        self._day = day
        self._wanted: Callable[[], dict[int, str]] = dict

    def bind(self, wanted: Callable[[], dict[int, str]]) -> None:
        """The replay's subscriptions (token -> mode), read each second."""
        self._wanted = wanted

    def __iter__(self) -> Iterator[Frame]:
        t = datetime.combine(self._day, MARKET_OPEN)
        end = datetime.combine(self._day, MARKET_CLOSE)
        indices = {s.spec.index_token: MODE_FULL for s in Segment}
        while t <= end:
            wanted = {**indices, **self._wanted()}
            packets = [self._market.tick_packet(token, t, mode) for token, mode in sorted(wanted.items())]
            yield Frame(float(ist_epoch(t)), KIND_BINARY, encode_frame(packets))
            t += timedelta(seconds=1)


def sim_day(day: date, workspace: Workspace, seed: int = 1) -> tuple[SimDayFrames, DayData]:
    """The frames and the day's data of simulator day `day` (seed `seed`); ReplayError on a weekend."""
    try:
        market = Market(seed, day)
    except ValueError as exc:
        raise ReplayError(str(exc)) from None
    tokens = {s.spec.index_token for s in Segment}
    frm = datetime.combine(day - timedelta(days=WARM_UP_DAYS), MARKET_OPEN)
    to = datetime.combine(day, MARKET_CLOSE)
    candles = {t: [jsonable_candle(r) for r in market.candles(t, "minute", frm, to)] for t in tokens}
    return SimDayFrames(market, day), DayData(day, market.instruments_csv(), candles)
