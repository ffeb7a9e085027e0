"""An ambiguous order failure is never answered by sending the order again (unit level, fake transport)."""

from __future__ import annotations

import pytest

from desktop.broker.errors import AmbiguousOrderFailure
from desktop.broker.gateway import LiveGateway
from desktop.domain import Mode, OrderIntent, OrderType, Segment, SessionKey, Side


class LostReplySession:
    """A KiteSession stand-in whose order replies are lost and whose order book never shows the order."""

    def __init__(self) -> None:
        self.key = SessionKey("UK9394", "s1")
        self.placed = 0

    def orders(self) -> list[dict]:
        return []

    def place_order(self, **params) -> str:
        self.placed += 1
        raise AmbiguousOrderFailure("reply lost", "ReadTimeout")


def test_order_missing_from_the_book_after_a_lost_reply_is_not_sent_again():
    session = LostReplySession()
    gateway = LiveGateway(session, None, lookup_attempts=2, lookup_pause=0.0)  # type: ignore[arg-type]
    intent = OrderIntent(
        session.key,
        Segment.NIFTY,
        Mode.LIVE,
        "NFO",
        "NIFTY2611325900CE",
        Side.BUY,
        65,
        OrderType.MARKET,
        reason="entry",
    )
    with pytest.raises(AmbiguousOrderFailure) as err:
        gateway.place(intent)
    assert session.placed == 1
    assert "will not send it again" in err.value.trader_message
