"""Issue 5 §8: under a fast-signal stress (EMAs 1/2: a cross on almost every bar) no order goes beyond the
session's risk limits: orders per minute, daily loss, open positions across segments."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from desktop.engine import Engine, SessionEngine, parse_params
from tests.e2e.conftest import wait_until

STRESS = {"lots": 1, "stop_loss": 2, "itm_offset": 0, "fast_ema": 1, "slow_ema": 2, "max_trades_per_day": 20}
# One segment: its journal order is the order its risk checks ran in, so the limits can be checked exactly.
SINGLE = {"segments": ["NIFTY"], "max_orders_per_minute": 2, "max_daily_loss": 600}
# Two segments (two threads) sharing one open-position slot.
SHARED = {"segments": ["NIFTY", "BANKNIFTY"], "max_open_positions": 1, "max_daily_loss": 100000}


def _journal(engine: Engine, session: SessionEngine) -> list:
    key = session.key
    return engine.store.journal.for_session(broker_id=key.broker_id, session_id=key.session_id)


def _log_text(session: SessionEngine) -> str:
    return "".join(p.read_text(encoding="utf-8") for p in session.logs_folder.glob("*.log"))


def test_fast_signals_never_break_the_risk_limits(demo_engine: Engine, qapp) -> None:
    single = demo_engine.open_session("UK9394", "Stress single")
    single.start(parse_params({**STRESS, **SINGLE}))
    shared = demo_engine.open_session("UK1234", "Stress shared")
    shared.start(parse_params({**STRESS, **SHARED}))
    wait_until(
        qapp,
        # The single session stops entering either by a risk refusal or by its trade cap, whichever first.
        lambda: single.logs_folder and shared.logs_folder and "max open positions" in _log_text(shared)
        and ("refused by risk" in _log_text(single) or _log_text(single).count("Entry filled") >= 20),
        90,
        "the risk managers refusing entries",
    )  # fmt: skip
    start = single.snapshot().market_time
    # Twenty more market minutes of stress, whatever the limits let through.
    wait_until(
        qapp, lambda: single.snapshot().market_time >= start + timedelta(minutes=20), 40, "20 more minutes"
    )
    for session in (single, shared):
        demo_engine.close_session(session.key, "square_off")

    entries = _journal(demo_engine, single)
    sends = [(e.market_time, e.payload["reason"]) for e in entries if e.kind == "order_sent"]
    assert sum(reason == "entry" for _, reason in sends) >= 2
    for i, (t, reason) in enumerate(sends):
        if reason == "entry":  # exits are never refused; an entry only fits under the limit
            in_window = [s for s in sends[: i + 1] if s[0] > t - timedelta(minutes=1)]
            assert len(in_window) <= SINGLE["max_orders_per_minute"], (t, in_window)
    realised, breached = Decimal(0), False
    for e in entries:
        if e.kind == "entry_sent":
            assert not breached, "an entry after the daily loss limit was reached"
        elif e.kind == "exit_filled":
            realised += Decimal(e.payload["pnl"])
            breached = breached or realised <= -SINGLE["max_daily_loss"]

    open_now, most = 0, 0
    for e in _journal(demo_engine, shared):
        if e.kind == "entry_filled":
            open_now += 1
        elif e.kind == "exit_filled":
            open_now -= 1
        most = max(most, open_now)
    assert most == SHARED["max_open_positions"], "two segments held positions at once over a limit of one"
