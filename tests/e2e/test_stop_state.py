"""A stop whose record the store refused, tried again: the session is still recorded as kept (chaos soak seed 9).

Ctrl-C while another program held the database locked: the session's final state ("stopped_keep", a position kept
under its stop) could not be written, the stop raised, and `kitedesk run`'s clean-up stopped the session again. By
then its segments were detached, so the second stop saw no position and recorded "stopped": the next start did not
take the session over, and the fill of its stop, which sold while no process ran, was never counted (a broker trade
of its tag not in its fills, the day's P&L wrong by its amount)."""

from __future__ import annotations

import pytest

from desktop.engine import Engine
from desktop.store import StoreLockedError
from tests.e2e.conftest import params, sim_book, wait_until


def test_a_kept_position_stays_recorded_kept_when_the_first_stop_could_not_save_it(
    demo_engine: Engine, qapp
) -> None:
    _, book = sim_book(demo_engine)
    session = demo_engine.open_session("UK9394", "Computer 3")
    session.start(params(segments=["NIFTY"], lots=1, stop_loss=30, itm_offset=150, mode="LIVE"))
    wait_until(
        qapp,
        lambda: [
            o
            for o in book.orders.values()
            if (o.tag or "").startswith("KD") and o.order_type == "SL" and o.status == "TRIGGER PENDING"
        ],  # fmt: skip
        60,
        "a LIVE position under its stop",
    )
    sessions = session.services.store.sessions
    real_set_state = sessions.set_state
    refused: list[str] = []

    def locked_once(key, state, **kw):  # type: ignore[no-untyped-def]
        if not refused:
            refused.append(state)
            raise StoreLockedError("the session was not saved: the database is locked")
        return real_set_state(key, state, **kw)

    sessions.set_state = locked_once  # type: ignore[method-assign]
    try:
        with pytest.raises(StoreLockedError):
            demo_engine.close_session(session.key, "keep")
        assert refused == ["stopped_keep"]
        demo_engine.close_session(session.key, "keep")  # as `kitedesk run` does once the first stop failed
    finally:
        sessions.set_state = real_set_state  # type: ignore[method-assign]
    assert demo_engine.label_resumes("UK9394", "Computer 3"), "kept: the next tab of this label takes it over"
