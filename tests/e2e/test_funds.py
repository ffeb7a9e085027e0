"""Issue 25, funds: a LIVE session on an account with little money (the simulator's `funds`), real kiteconnect
over real sockets. Its snapshot carries the account's funds as the broker's margins API says them, and an entry
needing more premium than the account holds is refused by risk (one INFO line, the segment's risk note) before
any order reaches the broker."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from desktop.broker.profiles import MemorySecretStore
from desktop.broker.sim import SimConfig, Simulator
from desktop.cli.demo import EmbeddedMarket
from desktop.domain import Segment
from desktop.engine import Engine
from tests.e2e.conftest import FEED, START, params, wait_until

FUNDS = Decimal(3000)  # a NIFTY lot's ITM premium is well above ₹3,000


@pytest.fixture
def poor_engine(tmp_path, qapp) -> Iterator[Engine]:
    """The demo's engine on a simulator whose accounts hold ₹3,000 each."""
    engine = Engine(tmp_path / "home", secrets=MemorySecretStore(), feed_options=FEED)
    sim = Simulator(SimConfig(seed=3, speed=120.0, start=START, rate_limits=True, funds=FUNDS)).start()
    try:
        engine.attach_demo(EmbeddedMarket(sim))
        yield engine
    finally:
        engine.close("square_off")
        qapp.processEvents()


def test_a_live_entry_needing_more_than_the_accounts_funds_is_refused_and_the_funds_are_shown(
    poor_engine: Engine, qapp
) -> None:
    sim = poor_engine.simulator
    assert sim is not None
    book = sim.state.accounts["UK9394"].book
    session = poor_engine.open_session("UK9394", "Poor")
    lines: list[tuple[str, str]] = []
    session.sig_log_line.connect(lambda line: lines.append((line.level, line.text)))
    session.start(params(segments=["NIFTY"], lots=1, stop_loss=5, itm_offset=100, mode="LIVE"))

    wait_until(qapp, lambda: session.snapshot().funds is not None, 20, "the account's funds in the snapshot")
    funds = session.snapshot().funds
    assert funds is not None and not funds.paper and funds.error == ""
    assert funds.available == FUNDS and funds.used == 0

    def refused() -> bool:
        seg = session.snapshot().segment(Segment.NIFTY)
        return seg is not None and seg.risk_note.startswith("not enough funds")

    wait_until(qapp, refused, 90, "an entry refused for funds")
    seg = session.snapshot().segment(Segment.NIFTY)
    assert seg is not None and seg.risk_note.endswith("₹3,000.00 available"), seg.risk_note
    needed = Decimal(seg.risk_note.split("needs ₹")[1].split(" ")[0].rstrip(",").replace(",", ""))
    assert needed > FUNDS
    info = [
        text for level, text in lines if level == "INFO" and "entry refused by risk: not enough funds" in text
    ]
    assert info, lines
    # Refused before the broker: no order of this session ever reached it.
    assert [o for o in book.orders.values() if o.tag == session.key.order_tag] == []
    session.stop("square_off")


def test_the_funds_are_fetched_again_after_a_fill_not_a_minute_later(demo_engine: Engine, qapp) -> None:
    session = demo_engine.open_session("UK9394", "Rich")
    session.start(params(segments=["NIFTY"], lots=1, stop_loss=5, itm_offset=100, mode="LIVE"))
    wait_until(qapp, lambda: session.snapshot().funds is not None, 20, "the account's funds in the snapshot")
    before = session.snapshot().funds
    assert before is not None and before.used == 0
    # At 120× a market minute is half a second of ours: the watcher's minute (wall time) is far away, so the
    # premium showing as used within seconds of the entry's fill is the refresh the fill asked for.
    wait_until(qapp, lambda: session.snapshot().fills, 60, "the entry's fill")
    wait_until(
        qapp, lambda: (f := session.snapshot().funds) is not None and f.used > 0, 10, "funds after the fill"
    )
    after = session.snapshot().funds
    assert after is not None and after.available < before.available
    session.stop("square_off")


def test_a_live_entrys_margin_is_checked_from_the_streamed_price_without_asking_kites_quote(
    poor_engine: Engine, qapp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 18: the candidate ITM options are watched ahead, so the margin check reads the option's price as the
    # simulator streams it (exchange-stamped within PRICE_FRESH of the entry's tick), not Kite's /quote/ltp under
    # one quote a second per account. The quote stays the fallback: counted here, never replaced.
    import desktop.engine.session as session_module

    asked: list[str] = []
    quote = session_module._last_price

    def counted(kite, intent):  # type: ignore[no-untyped-def]
        asked.append(intent.tradingsymbol)
        return quote(kite, intent)

    monkeypatch.setattr(session_module, "_last_price", counted)
    session = poor_engine.open_session("UK9394", "Poor")
    session.start(params(segments=["NIFTY"], lots=1, stop_loss=5, itm_offset=100, mode="LIVE"))

    def refused() -> bool:
        seg = session.snapshot().segment(Segment.NIFTY)
        return seg is not None and seg.risk_note.startswith("not enough funds")

    wait_until(qapp, refused, 90, "an entry refused for funds")
    assert asked == [], f"Kite's quote was asked for {asked}: the streamed price was not used"
    session.stop("square_off")
