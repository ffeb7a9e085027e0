"""Issue 5 §8: the seed's three sessions at once on the simulator (real kiteconnect), and each fault
(strategy exception, UK1234's token expiry, kill switch on session 3) leaves every other session trading."""

from __future__ import annotations

import csv
import re
from decimal import ROUND_HALF_UP, Decimal

import requests

from desktop.broker import exchange_rules as rules
from desktop.domain import Mode, OptionRight, Segment, Side
from desktop.engine import AgentState, Engine, SessionEngine, SessionState, effective_itm_offset
from desktop.engine.strategy.exits import stop_level
from tests.e2e.conftest import start_session, wait_until

LOT = {Segment.NIFTY: 65, Segment.BANKNIFTY: 30, Segment.SENSEX: 20}


def fills(session: SessionEngine) -> int:
    return len(session.snapshot().fills)


def advancing(app, sessions: list[SessionEngine], what: str) -> None:
    """Every session's market time moves on (it is still receiving and processing ticks)."""
    before = [s.snapshot().market_time for s in sessions]
    wait_until(
        app,
        lambda: all(
            s.snapshot().market_time and s.snapshot().market_time > b
            for s, b in zip(sessions, before, strict=True)
        ),
        10,
        what,
    )


def journal(engine: Engine, session: SessionEngine, kind: str) -> list[dict]:
    entries = engine.store.journal.for_session(
        broker_id=session.key.broker_id, session_id=session.key.session_id
    )
    return [dict(e.payload, segment=e.segment, market_time=e.market_time) for e in entries if e.kind == kind]


def check_orders(engine: Engine, session: SessionEngine, lots: int, sl: int, offset: int) -> int:
    """Every order has this session's quantity, strike offset and stop level; returns the entries checked."""
    intents = engine.store.intents.for_session(
        broker_id=session.key.broker_id, session_id=session.key.session_id
    )
    assert intents, f"{session.label} sent no order"
    for intent in intents:
        assert intent.quantity == lots * LOT[intent.segment], (session.label, intent)
        assert intent.tag == session.key.order_tag
    sent = journal(engine, session, "entry_sent")
    for e in sent:
        seg = e["segment"]
        used = effective_itm_offset(offset, seg)
        assert e["itm_offset"] == used
        step = seg.spec.strike_step
        atm = (Decimal(e["spot"]) / step).quantize(Decimal(1), rounding=ROUND_HALF_UP) * step
        expected = atm - used if e["right"] == OptionRight.CE.value else atm + used
        assert Decimal(e["strike"]) == expected, (session.label, e)
    for e in journal(engine, session, "entry_filled"):
        assert Decimal(e["stop"]) == stop_level(Decimal(e["price"]), Decimal(sl)), (session.label, e)
    return len(sent)


def test_seed_sessions_run_isolated_and_survive_each_fault(demo_engine: Engine, qapp, tmp_path) -> None:
    engine = demo_engine
    sim = engine.simulator
    assert sim is not None
    s1 = start_session(
        engine, "UK9394", "Computer 1", segments=["NIFTY", "BANKNIFTY"], lots=1, stop_loss=5, itm_offset=100
    )
    s2 = start_session(
        engine, "UK1234", "Computer 2", segments=["NIFTY", "SENSEX"], lots=2, stop_loss=3, itm_offset=50
    )
    wait_until(
        qapp,
        lambda: s1.state is SessionState.RUNNING and s2.state is SessionState.RUNNING,
        20,
        "sessions 1 and 2 running",
    )
    s3 = start_session(
        engine,
        "UK9394",
        "Computer 3",
        segments=["NIFTY", "BANKNIFTY"],
        lots=3,
        stop_loss=7,
        itm_offset=150,
        mode="LIVE",
    )
    wait_until(qapp, lambda: s3.state is SessionState.RUNNING, 20, "session 3 running")
    # The seed's flaw: the same account on a second device stopped the first. Not here.
    assert s1.state is SessionState.RUNNING
    advancing(qapp, [s1, s2, s3], "every session receiving ticks after session 3 started")
    wait_until(qapp, lambda: all(fills(s) >= 2 for s in (s1, s2, s3)), 40, "every session trading")
    assert "BANKNIFTY: ITM offset 150 → 200 points" in (s3.snapshot().segment(Segment.BANKNIFTY).note)

    # 1. A strategy exception in session 1's NIFTY agent: only that agent fails.
    def boom(bar):
        raise RuntimeError("boom in the strategy")

    agent = s1.agent(Segment.NIFTY)
    agent.run_on_thread(lambda trader: setattr(trader.strategy, "on_bar", boom))
    wait_until(qapp, lambda: agent.state is AgentState.FAILED, 15, "session 1 NIFTY agent failed")
    nifty_log = s1.logs_folder / "live_trader_NIFTY_PAPER_UK9394.log"
    text = nifty_log.read_text(encoding="utf-8")
    assert "Traceback" in text and "RuntimeError: boom in the strategy" in text
    assert s1.agent(Segment.BANKNIFTY).state is AgentState.RUNNING
    assert s1.state is SessionState.RUNNING
    advancing(qapp, [s1, s2, s3], "every session trading on after the strategy exception")

    # 2. UK1234's token expires: only session 2 needs a login; then it resumes.
    sim.inject_fault({"kind": "expire_token", "api_key": "UK1234"})
    wait_until(qapp, lambda: s2.state is SessionState.LOGIN_NEEDED, 15, "session 2 login needed")
    assert s1.state is SessionState.RUNNING and s3.state is SessionState.RUNNING
    advancing(qapp, [s1, s3], "UK9394's sessions trading on while UK1234 is logged out")
    redirect = requests.get(engine.login_url("UK1234"), allow_redirects=False, timeout=5).headers["Location"]
    engine.complete_login("UK1234", redirect)
    wait_until(qapp, lambda: s2.state is SessionState.RUNNING, 15, "session 2 resumed after login")
    advancing(qapp, [s2], "session 2 receiving ticks again after the new login")

    # 3. Kill switch on session 3: it squares off and halts; the others trade on.
    s3.kill("test kill switch")
    wait_until(
        qapp,
        lambda: s3.state is SessionState.HALTED and not s3.has_open_position(),
        15,
        "session 3 flat and halted",
    )
    book = sim.state.accounts["UK9394"].book
    resting = [o for o in book.orders.values() if o.tag == s3.key.order_tag and not o.is_final]
    assert resting == [], "session 3's stop-loss orders must be cancelled by the kill switch"
    entries_at_kill = len(journal(engine, s3, "entry_sent"))
    before = (fills(s1), fills(s2))
    wait_until(
        qapp, lambda: fills(s1) > before[0] or fills(s2) > before[1], 30, "sessions 1 and 2 still trading"
    )
    assert len(journal(engine, s3, "entry_sent")) == entries_at_kill, "a halted session made a new entry"
    assert s1.state is SessionState.RUNNING and s2.state is SessionState.RUNNING

    for session in (s1, s2, s3):
        engine.close_session(session.key, "square_off")

    # Every order carries its own session's quantity, strike offset and stop level.
    assert check_orders(engine, s1, 1, 5, 100) >= 1
    assert check_orders(engine, s2, 2, 3, 50) >= 1
    assert check_orders(engine, s3, 3, 7, 150) >= 1
    # LIVE: the broker's SL orders sat at each entry's stop.
    stops = {Decimal(e["stop"]) for e in journal(engine, s3, "entry_filled")}
    sl_orders = [o for o in book.orders.values() if o.tag == s3.key.order_tag and o.order_type == "SL"]
    assert sl_orders and {Decimal(str(o.trigger_price)) for o in sl_orders} <= stops | _moved(engine, s3)
    assert all(o.transaction_type == Side.SELL.value for o in sl_orders)
    # Well-formed as Kite accepts them: a limit below the trigger, within the exchange's gap cap, on the tick.
    for o in sl_orders:
        trigger, limit = Decimal(str(o.trigger_price)), Decimal(str(o.price))
        assert limit < trigger and rules.sl_gap_refusal(trigger, limit) is None and rules.on_tick(limit)

    # Isolation in queries and exports.
    for broker, other, labels in (
        ("UK9394", "UK1234", {"Computer 1", "Computer 3"}),
        ("UK1234", "UK9394", {"Computer 2"}),
    ):
        rows = [
            *engine.store.trades.for_account(broker_id=broker, mode=Mode.PAPER),
            *engine.store.trades.for_account(broker_id=broker, mode=Mode.LIVE),
        ]
        assert rows and {r.fill.key.broker_id for r in rows} == {broker}
        assert {r.session_label for r in rows} <= labels
        for mode in (Mode.PAPER, Mode.LIVE):
            out = tmp_path / f"{broker}-{mode.value}.csv"
            engine.export_trades(broker_id=broker, out=out, mode=mode)
            content = out.read_text(encoding="utf-8")
            assert other not in content
            for row in csv.DictReader(content.splitlines()):
                assert row["broker_id"] == broker and row["session_label"] in labels

    # Log files as the seed named them, one folder per session, nothing secret inside.
    assert s1.logs_folder != s3.logs_folder
    for session, mode in ((s1, "PAPER"), (s2, "PAPER"), (s3, "LIVE")):
        broker = session.key.broker_id
        for seg in session.params.segments:
            path = session.logs_folder / f"live_trader_{seg.value}_{mode}_{broker}.log"
            assert path.parent.parent == engine.logs_dir()
            lines = path.read_text(encoding="utf-8").splitlines()
            pattern = re.compile(
                rf"^\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d - LiveAgent-{seg.value}-{mode}-{broker} - [A-Z]+ - "
            )
            assert lines and pattern.match(lines[0]), lines[:1]
            text = "\n".join(lines)
            assert "secret_A" not in text and "secret_B" not in text
            for account in sim.state.accounts.values():
                assert not account.access_token or account.access_token not in text


def _moved(engine: Engine, session: SessionEngine) -> set[Decimal]:
    return {Decimal(e["trigger"]) for e in journal(engine, session, "stop_moved")}
