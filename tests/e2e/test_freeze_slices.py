"""Orders above the exchange's freeze quantity (real kiteconnect, the strict simulator, LIVE): the entry goes out
in slices (Kite's autoslice), the position is protected by stop-loss orders that each stay within the freeze and
together cover exactly what is held, the exit sells it all, and the session's P&L equals the broker's trades."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from desktop.broker import exchange_rules as rules
from desktop.engine import Engine
from tests.e2e.conftest import (
    brokers_pnl,
    held_at_broker,
    params,
    resting_stops,
    sim_book,
    tagged_orders,
    wait_until,
)


@pytest.mark.parametrize(("index", "lots", "freeze"), [("NIFTY", 60, 1800), ("BANKNIFTY", 25, 600)])
def test_an_entry_above_the_freeze_is_sliced_protected_exactly_and_exited_with_the_brokers_pnl(
    demo_engine: Engine, qapp, index: str, lots: int, freeze: int
) -> None:
    sim, book = sim_book(demo_engine)
    assert rules.freeze_quantity(index) == freeze
    session = demo_engine.open_session("UK9394", "Computer 3")
    session.start(params(segments=[index], lots=lots, stop_loss=7, itm_offset=0, mode="LIVE"))
    tag = session.key.order_tag
    segment = session.params.segments[0]  # type: ignore[union-attr]

    def entries():
        return [o for o in tagged_orders(book, tag) if o.transaction_type == "BUY"]

    wait_until(
        qapp, lambda: entries() and all(o.status == "COMPLETE" for o in entries()), 90, "a sliced entry"
    )
    lot = entries()[0].instrument.lot_size
    symbol = entries()[0].instrument.tradingsymbol
    cap = freeze - freeze % lot
    assert len(entries()) > 1 and all(o.quantity <= cap for o in entries()), "each slice within the freeze"
    assert sum(o.quantity for o in entries()) == lots * lot
    agent = session.agent(segment)
    assert agent is not None
    agent.run_on_thread(lambda trader: setattr(trader.strategy, "on_bar", lambda bar: []))

    def covered() -> bool:
        stops = resting_stops(book, tag)
        return (
            sum(o.quantity - o.filled_quantity for o in stops) == held_at_broker(book, symbol) == lots * lot
        )

    wait_until(qapp, covered, 30, "stops covering exactly the held quantity")
    stops = resting_stops(book, tag)
    assert len(stops) > 1 and all(o.quantity <= cap for o in stops), (
        "one stop per slice, each within the freeze"
    )
    wait_until(
        qapp, lambda: session.snapshot().segments[0].quantity == lots * lot, 10, "held as one position"
    )

    agent.run_on_thread(lambda trader: trader.exit("manual"))
    wait_until(qapp, lambda: held_at_broker(book, symbol) == 0, 60, "the whole position sold")
    wait_until(qapp, lambda: not resting_stops(book, tag), 20, "no stop left resting")
    broker = brokers_pnl(book, tag, symbol)
    wait_until(
        qapp, lambda: session.snapshot().realised_pnl == broker, 20, f"the session's P&L = broker's {broker}"
    )
    session.stop("square_off")


SLICED_WORKSPACE = """
[[session]]
profile = "UK9394"
label = "Computer 3"
segments = ["NIFTY"]
lots = 60
stop_loss = 20
itm_offset = 0
mode = "LIVE"
confirm_live = true
fast_ema = 2
slow_ema = 5
on_stop = "square_off"
"""


@pytest.mark.slow
@pytest.mark.parametrize("stop_lost", [False, True], ids=["all-stop-slices", "one-stop-slice-missing"])
def test_kill_9_with_a_sliced_live_position_recovers_stops_covering_exactly_the_held_quantity(
    tmp_path, stop_lost: bool
) -> None:
    import signal

    from tests.e2e.test_recovery import BEFORE_THE_SIGNAL, _poll, _run
    from tests.simkit import login, start_sim

    sim = start_sim(speed=60.0, start=BEFORE_THE_SIGNAL, seed=5)
    ws = tmp_path / "ws.toml"
    ws.write_text(SLICED_WORKSPACE, encoding="utf-8")
    home = tmp_path / "home"
    book = sim.state.accounts["UK9394"].book
    first = second = None
    try:
        first = _run(ws, sim.url, home, tmp_path / "first.out")

        def protected():
            orders = [o for o in book.orders.values() if (o.tag or "").startswith("KD")]
            bought = [o for o in orders if o.transaction_type == "BUY" and o.status == "COMPLETE"]
            held = sum(o.filled_quantity * (1 if o.transaction_type == "BUY" else -1) for o in orders)
            stops = [o for o in orders if o.order_type == "SL" and o.status == "TRIGGER PENDING"]
            return (bought, stops) if held == 3900 and sum(o.quantity for o in stops) == 3900 else None

        bought, stops = _poll(
            protected, 60, "a sliced LIVE entry under sliced stops", first, tmp_path / "first.out"
        )
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert len(bought) == 3 and len(stops) == 3 and all(o.quantity <= 1755 for o in stops)
        tag = bought[0].tag
        if stop_lost:  # as if the run died between placing its stop slices: one is not at the broker
            login(sim).cancel_order("regular", stops[-1].order_id)

        second = _run(ws, sim.url, home, tmp_path / "second.out")
        logs = list((home / "logs").glob("*/live_trader_NIFTY_LIVE_UK9394.log"))
        assert len(logs) == 1
        word = "replacing them" if stop_lost else "kept the 3 stop-loss orders"
        _poll(lambda: word in logs[0].read_text(encoding="utf-8"), 40, word, second, tmp_path / "second.out")

        told = "trade of 5 today"  # recovery's count of the day's trades, written after the stops are handled
        _poll(lambda: told in logs[0].read_text(encoding="utf-8"), 20, told, second, tmp_path / "second.out")
        text = logs[0].read_text(encoding="utf-8")
        assert "1 trade of 5 today" in text, "a sliced entry is one trade, not one per slice"
        if stop_lost:
            # The two left are cancelled before a new set is placed: never more stops than held at the broker.
            new = lambda: [  # noqa: E731
                o for o in book.orders.values()
                if o.tag == tag and o.order_type == "SL" and o.order_id not in {s.order_id for s in stops}
            ]  # fmt: skip
            _poll(lambda: sum(o.quantity for o in new()) == 3900, 30, "new stops covering 3,900", second)
            assert all(book.orders[s.order_id].status == "CANCELLED" for s in stops)
            first_new = min(o.placed_at for o in new())
            assert all(book.orders[s.order_id].updated_at <= first_new for s in stops[:-1])
            assert len(new()) == 3 and all(o.quantity <= 1755 for o in new())
        else:
            kept = f"kept the 3 stop-loss orders {', '.join(o.order_id for o in stops)}"
            assert kept in text, "the same three orders adopted as the position's stop"
            assert not [o for o in book.orders.values() if o.tag == tag and o.order_type == "SL"
                        and o.order_id not in {s.order_id for s in stops}], "no second set of stops"  # fmt: skip

        second.send_signal(signal.SIGINT)
        assert second.wait(60) == 0, (tmp_path / "second.out").read_text(errors="replace")[-2000:]
        mine = [o for o in book.orders.values() if o.tag == tag]
        assert all(o.is_final for o in mine), "every order of the session is settled after the clean stop"
        assert sum(o.filled_quantity * (1 if o.transaction_type == "BUY" else -1) for o in mine) == 0
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
        sim.stop()


@pytest.mark.parametrize(
    ("fault", "held"),
    [
        ({"kind": "reject_next_order"}, 1755 + 390),  # the first slice refused by the broker's RMS
        ({"kind": "fill_part_of_next_order", "quantity": 650}, 650 + 1755 + 390),  # the rest cancelled
        ({"kind": "lose_next_order_reply", "how": "drop"}, 3900),  # the autoslice reply lost: found by tag
    ],
    ids=["rejected-slice", "part-filled-slice", "lost-reply"],
)
def test_a_sliced_entry_meeting_a_fault_holds_what_the_broker_holds_under_stops_covering_exactly_that(
    demo_engine: Engine, qapp, fault: dict, held: int, caplog
) -> None:
    caplog.set_level("WARNING", logger="desktop.broker.gateway")
    sim, book = sim_book(demo_engine)
    sim.inject_fault({**fault, "api_key": "UK9394"})
    session = demo_engine.open_session("UK9394", "Computer 3")
    lines: list[str] = []
    session.sig_log_line.connect(lambda line: lines.append(line.text))
    session.start(params(segments=["NIFTY"], lots=60, stop_loss=7, itm_offset=0, mode="LIVE"))
    tag = session.key.order_tag
    segment = session.params.segments[0]  # type: ignore[union-attr]

    def entries():
        return [o for o in tagged_orders(book, tag) if o.transaction_type == "BUY"]

    wait_until(
        qapp, lambda: len(entries()) >= 3 and all(o.is_final for o in entries()), 90, "the sliced entry"
    )
    agent = session.agent(segment)
    assert agent is not None
    agent.run_on_thread(lambda trader: setattr(trader.strategy, "on_bar", lambda bar: []))
    symbol = entries()[0].instrument.tradingsymbol
    assert len(entries()) == 3, "one entry, sent once: nothing placed twice after the lost reply"
    assert held_at_broker(book, symbol) == held
    if fault["kind"] == "lose_next_order_reply":
        assert "autoslice reply lost; found orders" in caplog.text, "Kite's autoslice, its reply found by tag"

    def covered() -> bool:
        stops = resting_stops(book, tag)
        return sum(o.quantity - o.filled_quantity for o in stops) == held

    wait_until(qapp, covered, 60, f"stops covering exactly the {held} held")
    assert all(o.quantity <= 1755 for o in resting_stops(book, tag))
    wait_until(
        qapp, lambda: session.snapshot().segments[0].quantity == held, 10, "the session holds the same"
    )
    assert session.snapshot().segments[0].trades_today == 1, "a sliced entry is one trade"

    agent.run_on_thread(lambda trader: trader.exit("manual"))
    wait_until(qapp, lambda: held_at_broker(book, symbol) == 0, 60, "the whole position sold")
    wait_until(qapp, lambda: not resting_stops(book, tag), 20, "no stop left resting")
    broker = brokers_pnl(book, tag, symbol)
    wait_until(
        qapp, lambda: session.snapshot().realised_pnl == broker, 20, f"the session's P&L = broker's {broker}"
    )
    session.stop("square_off")


def test_a_sliced_position_partly_sold_in_kite_web_has_its_stops_resized_together_to_what_is_left(
    demo_engine: Engine, qapp
) -> None:
    sim, book = sim_book(demo_engine)
    session = demo_engine.open_session("UK9394", "Computer 3")
    session.start(params(segments=["NIFTY"], lots=60, stop_loss=30, itm_offset=0, mode="LIVE"))
    tag = session.key.order_tag
    agent = session.agent(session.params.segments[0])  # type: ignore[union-attr]
    assert agent is not None

    def stops_cover(quantity: int) -> bool:
        return sum(o.quantity - o.filled_quantity for o in resting_stops(book, tag)) == quantity

    wait_until(qapp, lambda: stops_cover(3900), 90, "a sliced position under its sliced stops")
    agent.run_on_thread(lambda trader: setattr(trader.strategy, "on_bar", lambda bar: []))
    symbol = resting_stops(book, tag)[0].instrument.tradingsymbol
    form = {"exchange": "NFO", "tradingsymbol": symbol, "transaction_type": "SELL", "quantity": "1300",
            "product": "MIS", "order_type": "MARKET", "market_protection": "-1"}  # fmt: skip

    async def sell_in_kite_web():  # type: ignore[no-untyped-def]
        # Kite blocks margin for a sale beyond what the pending stops leave: an account with funds for it.
        book.opening_balance += Decimal(10_000_000)
        return book.place(form, "regular", sim.state.clock.now())  # no tag: not KiteDesk's

    sold = sim.call(sell_in_kite_web)
    assert sold.status == "COMPLETE", sold.status_message
    for _sighting in range(2):  # the check runs every 30 s and acts on its second sighting: made due now
        agent.run_on_thread(lambda t: setattr(t.outside, "next_check", 0.0))
        qapp.processEvents()
        wait_until(qapp, lambda: agent.backlog == 0, 5, "checked")
        time.sleep(0.3)
    wait_until(qapp, lambda: stops_cover(2600), 10, "the stops resized together to the 2,600 left")
    assert sorted(o.quantity for o in resting_stops(book, tag)) == [845, 1755], "each within the freeze"
    wait_until(qapp, lambda: session.snapshot().segments[0].quantity == 2600, 5, "the session holds 2,600")
    agent.run_on_thread(lambda trader: trader.exit("manual"))
    wait_until(qapp, lambda: held_at_broker(book, symbol) == 0, 60, "the rest sold")
    wait_until(qapp, lambda: not resting_stops(book, tag), 20, "no stop left resting")
    session.stop("square_off")
