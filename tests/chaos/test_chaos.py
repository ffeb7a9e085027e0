"""The chaos test (issue 16): `kitedesk run` with LIVE and PAPER sessions of two accounts on the simulator, under a
seeded schedule of every fault the simulator has, kill -9 and restarts, a second process on the same home, a locked
database and a full disk; the money-safety invariants are checked against the simulator's books after every step
and at the end, after a final recovery restart (tests/chaos/harness.py says which and how).

The seeded runs are in the default suite (marked `chaos_run`: `pytest -m chaos_run tests/chaos` runs only them):
three seeds of 30 s each, about 45 s a seed with the set-up and the final recovery. The seeds run side by side
(`chaos_reports`): a run spends its time waiting on its market clock and its processes (under a fifth of a core
for the harness, the simulator and `kitedesk run` together), so the three take about 45 s in all, not 120 s, each
with its own simulator, home, tmpfs and processes, and the same faults and checks as alone (measured: the same
fault schedule per seed, no violation, 44 s for the three on the shared 2-core machine under load). Longer ones,
and one seed by hand:

    .venv/bin/python bench/chaos.py --seconds 30 --seed 11 --speed 30 --start 09:20 --fault-gap 3 --verbose
    .venv/bin/python bench/chaos.py --seconds 1800 --seed 1             # the 30-minute soak

A failure prints the run's summary: every invariant broken with its market time, the faults injected and the work
folder (home copy, each run's output, the broker's books as JSON) to look into. The seed fixes the market and the
order of the faults; when each fault lands depends on the machine's pace, so a failure is reproduced by running
the seed again (a few times if need be) and reading the work folder.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal

import pytest

from tests.chaos.harness import ChaosConfig, ChaosReport, broker_realised, cover_timeline, run_chaos

# (seed, market start): the morning, midday, and the last entries before 14:45 with the 15:15 square-off.
CI_SEEDS = [(11, "09:20"), (12, "11:40"), (13, "14:25")]
CI_SECONDS = 30.0  # wall seconds of fault injection per seed (then the final recovery, about 12 s)


def _config(seed: int, start: str) -> ChaosConfig:
    return ChaosConfig(seed=seed, seconds=CI_SECONDS, speed=30.0, start=start, mean_fault_gap_s=3.0)


@pytest.fixture(scope="module")
def chaos_reports(request: pytest.FixtureRequest) -> dict[int, ChaosReport | BaseException]:
    """The chaos runs of the seeds this session selected, side by side (see the module's docstring): each seed's
    report, or what its run raised (that seed's test fails with it, the others stand)."""
    selected = {
        item.callspec.params["seed"]
        for item in request.session.items
        if item.module is request.module and item.originalname == "test_money_stays_safe_under_chaos"
    }
    runs = [(seed, start) for seed, start in CI_SEEDS if seed in selected]
    outcomes: dict[int, ChaosReport | BaseException] = {}
    with ThreadPoolExecutor(max_workers=max(1, len(runs)), thread_name_prefix="chaos-seed") as pool:
        futures = {seed: pool.submit(run_chaos, _config(seed, start)) for seed, start in runs}
        for seed, future in futures.items():
            exc = future.exception()
            outcomes[seed] = exc if exc is not None else future.result()
    return outcomes


@pytest.mark.slow
@pytest.mark.chaos_run
@pytest.mark.timeout(300)
@pytest.mark.parametrize(("seed", "start"), CI_SEEDS, ids=[f"seed{s}" for s, _ in CI_SEEDS])
def test_money_stays_safe_under_chaos(
    seed: int, start: str, chaos_reports: dict[int, ChaosReport | BaseException]
) -> None:
    report = chaos_reports[seed]
    if isinstance(report, BaseException):
        raise report
    summary = report.summary() + f"\nwork folder: {report.work_dir}"
    print(summary)
    assert report.faults, "no fault was injected: the run proves nothing"
    assert report.broker_orders > 0, "no order reached the broker: the run proves nothing\n" + summary
    assert not report.violations, (
        f"invariants broken (reproduce: .venv/bin/python bench/chaos.py --seconds {CI_SECONDS:g} --seed {seed} "
        f"--speed 30 --start {start} --fault-gap 3):\n{summary}"
    )


# -- the checks themselves can fail ------------------------------------------------------------------------------


def _order(
    oid: str, side: str, qty: int, otype: str, status: str, placed: str, updated: str, filled: int = 0
):
    return {
        "order_id": oid, "tag": "KDabc", "tradingsymbol": "NIFTY2611325900CE", "transaction_type": side,
        "quantity": qty, "order_type": otype, "status": status, "filled_quantity": filled,
        "order_timestamp": f"2026-01-08 {placed}", "exchange_update_timestamp": f"2026-01-08 {updated}",
    }  # fmt: skip


def _trade(tid: str, oid: str, side: str, qty: int, price: str, at: str):
    return {
        "trade_id": tid, "order_id": oid, "tradingsymbol": "NIFTY2611325900CE", "transaction_type": side,
        "quantity": qty, "average_price": float(price), "fill_timestamp": f"2026-01-08 {at}",
    }  # fmt: skip


NOW = datetime(2026, 1, 8, 10, 0, 0)


def test_a_position_whose_stop_came_late_or_was_cancelled_is_seen_uncovered() -> None:
    orders = [
        _order("1", "BUY", 130, "MARKET", "COMPLETE", "09:30:00", "09:30:00", 130),
        _order("2", "SELL", 130, "SL-M", "CANCELLED", "09:30:20", "09:40:00"),  # 20 s late, then cancelled
    ]
    trades = [_trade("t1", "1", "BUY", 130, "100", "09:30:00")]
    gaps = cover_timeline(orders, trades, {}, NOW)
    assert [(g.start.strftime("%H:%M:%S"), g.seconds, g.held, g.covered, g.cause) for g in gaps] == [
        ("09:30:00", 20.0, 130, 0, "position_grew"),
        ("09:40:00", 1200.0, 130, 0, "stop_ended"),
    ]


def test_a_position_under_its_stop_until_the_stop_sold_it_is_covered() -> None:
    orders = [
        _order("1", "BUY", 130, "MARKET", "COMPLETE", "09:30:00", "09:30:00", 130),
        _order("2", "SELL", 130, "SL-M", "COMPLETE", "09:30:00", "09:45:00", 130),
    ]
    trades = [
        _trade("t1", "1", "BUY", 130, "100", "09:30:00"),
        _trade("t2", "2", "SELL", 130, "97", "09:45:00"),
    ]
    assert cover_timeline(orders, trades, {}, NOW) == []
    assert broker_realised(trades) == Decimal("-390.00")


def test_a_working_exit_covers_the_position_until_it_sells_it() -> None:
    # The engine cancels the stop and sends the exit; the exit works for 16 s before it fills: covered.
    orders = [
        _order("1", "BUY", 130, "MARKET", "COMPLETE", "09:30:00", "09:30:00", 130),
        _order("2", "SELL", 130, "SL-M", "CANCELLED", "09:30:00", "09:40:00"),
        _order("3", "SELL", 130, "LIMIT", "COMPLETE", "09:40:00", "09:40:16", 130),
    ]
    trades = [
        _trade("t1", "1", "BUY", 130, "100", "09:30:00"),
        _trade("t2", "3", "SELL", 130, "104", "09:40:16"),
    ]
    assert cover_timeline(orders, trades, {}, NOW) == []


def test_an_exit_cancelled_or_refused_with_the_position_still_held_leaves_it_uncovered() -> None:
    orders = [
        _order("1", "BUY", 130, "MARKET", "COMPLETE", "09:30:00", "09:30:00", 130),
        _order("2", "SELL", 130, "SL-M", "CANCELLED", "09:30:00", "09:40:00"),
        _order("3", "SELL", 130, "LIMIT", "CANCELLED", "09:40:00", "09:41:00", 65),  # half, then cancelled
        _order("4", "SELL", 65, "MARKET", "REJECTED", "09:41:00", "09:41:00"),  # refused: never covered
    ]
    trades = [
        _trade("t1", "1", "BUY", 130, "100", "09:30:00"),
        _trade("t2", "3", "SELL", 65, "104", "09:40:30"),
    ]
    gaps = cover_timeline(orders, trades, {}, NOW)
    assert [(g.start.strftime("%H:%M:%S"), g.seconds, g.held, g.covered, g.cause) for g in gaps] == [
        ("09:41:00", 1140.0, 65, 0, "stop_ended"),
    ]


def test_an_exit_beside_a_resting_stop_is_seen_over_covering() -> None:
    # Both could sell: a short position if they did.
    orders = [
        _order("1", "BUY", 65, "MARKET", "COMPLETE", "09:30:00", "09:30:00", 65),
        _order("2", "SELL", 65, "SL-M", "TRIGGER PENDING", "09:30:00", "09:30:00"),
        _order("3", "SELL", 65, "LIMIT", "OPEN", "09:50:00", "09:50:00"),
    ]
    (gap,) = cover_timeline(orders, [_trade("t1", "1", "BUY", 65, "100", "09:30:00")], {}, NOW)
    assert (gap.held, gap.covered, gap.seconds) == (65, 130, 600.0)


def test_the_cover_tolerance_is_five_market_seconds_or_three_real_seconds_at_the_run_speed() -> None:
    from tests.chaos.harness import cover_tolerance

    assert cover_tolerance(1.0) == 5.0
    assert cover_tolerance(30.0) == 90.0  # 3 real seconds at 30x
    assert cover_tolerance(12.3) == pytest.approx(36.9)


def test_a_stop_with_nothing_behind_it_is_seen_over_covering() -> None:
    orders = [_order("2", "SELL", 65, "SL-M", "TRIGGER PENDING", "09:30:00", "09:30:00")]
    (gap,) = cover_timeline(orders, [], {}, NOW)
    assert (gap.held, gap.covered, gap.seconds) == (0, 65, 1800.0)


def test_broker_realised_counts_partial_sales_at_average_cost_each_trip_rounded_once() -> None:
    trades = [
        _trade("t1", "1", "BUY", 65, "100.05", "09:30:00"),
        _trade("t2", "1", "BUY", 65, "100.10", "09:30:01"),
        _trade("t3", "2", "SELL", 45, "101", "09:31:00"),
        _trade("t4", "3", "SELL", 85, "99", "09:32:00"),
    ]
    # cost 6503.25 + 6506.50 = 13009.75; sold 45*101 + 85*99 = 12960: trip -49.75
    assert broker_realised(trades) == Decimal("-49.75")


def test_holding_two_entries_at_once_is_seen() -> None:
    from tests.chaos.harness import max_held

    trades = [
        _trade("t1", "1", "BUY", 65, "100", "09:30:00"),
        _trade("t2", "2", "BUY", 65, "100", "09:30:00"),  # the same signal's entry from a second process
        _trade("t3", "3", "SELL", 130, "101", "09:31:00"),
        _trade("t4", "4", "BUY", 65, "100", "09:32:00"),
    ]
    assert max_held(trades) == {"NIFTY2611325900CE": 130}


def test_a_secret_or_token_in_any_file_of_the_home_is_found(tmp_path) -> None:
    from types import SimpleNamespace

    from tests.chaos.harness import ChaosRun

    run = ChaosRun(ChaosConfig(seed=0, work_dir=tmp_path))
    run.views = {"UK9394": SimpleNamespace(tokens_seen={"tok3nvalue"})}  # type: ignore[dict-item]
    (run.home / "logs").mkdir(parents=True)
    (run.home / "logs" / "clean.log").write_text("nothing to see")
    run._check_secrets()
    assert run.report.violations == []
    (run.home / "logs" / "a.log").write_text("login with secret_A")
    (run.home / "kitedesk.db").write_bytes(b"\x00header tok3nvalue\x00")
    run._check_secrets()
    assert sorted(v.detail.split(" found")[0] for v in run.report.violations) == [
        "API secret of UK9394",
        "access token 0 of UK9394",
    ]


def test_broker_orders_are_matched_to_intents_by_option_side_quantity_and_stop_or_not() -> None:
    from tests.chaos.harness import broker_order_shape, order_shape

    # An entry journalled as MARKET is listed by Kite as a LIMIT (market protection): the same intent.
    entry = _order("1", "BUY", 65, "LIMIT", "COMPLETE", "09:30:00", "09:30:00", 65)
    assert broker_order_shape(entry) == order_shape("NIFTY2611325900CE", "BUY", 65, "MARKET")
    # A stop resized since it was placed is matched by the quantity it was placed with (its history).
    resized = _order("2", "SELL", 65, "SL", "TRIGGER PENDING", "09:30:01", "09:31:00")
    history = [{"quantity": 130, "status": "TRIGGER PENDING"}, {"quantity": 65, "status": "TRIGGER PENDING"}]
    assert broker_order_shape(resized, history) == order_shape("NIFTY2611325900CE", "SELL", 130, "SL")
    # A stop is never taken for an exit of the same size, nor an order for one of another size.
    assert broker_order_shape(resized, history) != order_shape("NIFTY2611325900CE", "SELL", 130, "LIMIT")
    assert broker_order_shape(entry) != order_shape("NIFTY2611325900CE", "BUY", 130, "MARKET")


def test_exit_1_with_one_clear_line_is_accepted_only_after_a_full_disk_or_a_lock(tmp_path) -> None:
    from tests.chaos.harness import ChaosRun, FaultRecord

    run = ChaosRun(ChaosConfig(seed=0, work_dir=tmp_path))
    line = (
        "kitedesk run: the disk is full (or the database reached its size limit); the fill was not saved ..."
    )
    assert not run._clear_storage_exit(1, line)  # no full disk was injected: a failing exit is a violation
    run.report.faults.append(FaultRecord("disk_full", None, NOW))
    assert run._clear_storage_exit(1, "no secure keyring available\n" + line)
    assert not run._clear_storage_exit(1, "Traceback (most recent call last):\n" + line)
    assert not run._clear_storage_exit(2, line)
    assert not run._clear_storage_exit(1, "kitedesk run: stopping UK9394 'x' failed: Kite is not reachable")
    locked = (
        "kitedesk run: the database /h/kitedesk.db stayed locked by another program for about 20.0 s; ..."
    )
    assert not run._clear_storage_exit(1, locked)  # no lock was injected
    run.report.faults.append(FaultRecord("db_lock", None, NOW))
    assert run._clear_storage_exit(1, locked)
    assert not run._clear_storage_exit(1, locked + "\n" + line), "two lines: not one clear line"


def test_market_faults_go_to_an_option_a_session_holds_else_the_one_traded_last(tmp_path) -> None:
    from tests.chaos.harness import ChaosRun

    run = ChaosRun(ChaosConfig(seed=0, work_dir=tmp_path))
    assert run._market_fault_target() is None
    closed = [_order("1", "BUY", 65, "LIMIT", "COMPLETE", "09:30:00", "09:30:00", 65),
              _order("2", "SELL", 65, "SL", "COMPLETE", "09:31:00", "09:31:00", 65)]  # fmt: skip
    trades = [
        _trade("t1", "1", "BUY", 65, "100", "09:30:00"),
        _trade("t2", "2", "SELL", 65, "97", "09:31:00"),
    ]
    for t in trades:
        t["exchange"] = "NFO"
    run.last_books = {"UK9394": (closed, trades)}
    assert run._market_fault_target() == ("NFO", "NIFTY2611325900CE")  # traded last, none held
    held = dict(_order("3", "BUY", 30, "LIMIT", "COMPLETE", "09:40:00", "09:40:00", 30),
                tradingsymbol="BANKNIFTY26JAN59700PE")  # fmt: skip
    bought = dict(_trade("t3", "3", "BUY", 30, "500", "09:40:00"), tradingsymbol="BANKNIFTY26JAN59700PE")
    bought["exchange"] = "NFO"
    run.last_books = {"UK9394": ([*closed, held], [*trades, bought])}
    assert run._market_fault_target() == ("NFO", "BANKNIFTY26JAN59700PE")


def test_a_sale_sent_unjournalled_while_the_store_could_not_write_is_no_duplicate_but_a_sale_twice_is(
    tmp_path,
) -> None:
    from tests.chaos.harness import ChaosRun, FaultRecord, StoreSession

    run = ChaosRun(ChaosConfig(seed=0, work_dir=tmp_path))
    run._now = lambda: NOW  # type: ignore[method-assign]
    symbol = "NIFTY2611325900CE"

    class Store:  # the session's journal: the entry and its first stop
        def rows(self, sql: str, *args: object) -> list[dict[str, object]]:
            if "order_intents" in sql:
                return [
                    {"intent_id": "i1", "tradingsymbol": symbol, "side": "BUY", "quantity": 65, "order_type": "MARKET"},
                    {"intent_id": "i2", "tradingsymbol": symbol, "side": "SELL", "quantity": 65, "order_type": "SL"},
                ]  # fmt: skip
            return [{"order_id": "1", "intent_id": "i1"}, {"order_id": "2", "intent_id": "i2"}]

    sessions = [StoreSession("UK9394", "abc", "x", "LIVE", "running")]
    orders = [
        _order("1", "BUY", 65, "MARKET", "COMPLETE", "09:30:00", "09:30:00", 65),
        _order("2", "SELL", 65, "SL", "CANCELLED", "09:30:01", "09:40:00"),  # the exchange ended the stop
        _order(
            "3", "SELL", 65, "SL", "TRIGGER PENDING", "09:41:00", "09:41:00"
        ),  # its replacement, no intent yet
    ]
    trades = [_trade("t1", "1", "BUY", 65, "100", "09:30:00")]
    run._check_duplicates("UK9394", orders, trades, Store(), sessions)  # type: ignore[arg-type]
    assert run.report.duplicates == 1  # no storage fault: a stop with no intent is one sent twice

    run.report.violations.clear()
    run.report.faults.append(
        FaultRecord("db_lock", None, datetime(2026, 1, 8, 9, 40, 30), datetime(2026, 1, 8, 9, 45))
    )
    run._check_duplicates("UK9394", orders, trades, Store(), sessions)  # type: ignore[arg-type]
    assert run.report.duplicates == 0 and run.report.violations == []  # sent unjournalled to protect: allowed

    # Two sales of the one position, both in the window: excused as unjournalled, caught as a short.
    orders += [_order("4", "SELL", 65, "LIMIT", "COMPLETE", "09:42:00", "09:42:00", 65),
               _order("5", "SELL", 65, "LIMIT", "COMPLETE", "09:42:01", "09:42:01", 65)]  # fmt: skip
    trades += [
        _trade("t4", "4", "SELL", 65, "90", "09:42:00"),
        _trade("t5", "5", "SELL", 65, "90", "09:42:01"),
    ]
    run._check_duplicates("UK9394", orders, trades, Store(), sessions)  # type: ignore[arg-type]
    assert run.report.duplicates == 1
    assert ["sold 65 NIFTY2611325900CE more than it held" in v.detail for v in run.report.violations] == [
        True
    ]
