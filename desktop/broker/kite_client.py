"""`new_kite`: a `kiteconnect.KiteConnect`, with kiteconnect imported when the first client is made.

Importing kiteconnect imports its WebSocket ticker and with it twisted and autobahn (about a third of a second
here), which KiteDesk never uses (its feed is `stream.py`). The first window needs no Kite client, so the
modules that make clients take this factory by default instead of the class.
"""

from __future__ import annotations

from typing import Any


def new_kite(*args: Any, **kwargs: Any) -> Any:
    """`KiteConnect(*args, **kwargs)`, its order calls sent through an `OrderLane` (order_lane.py)."""
    from kiteconnect import KiteConnect

    from desktop.broker.order_lane import with_order_lane

    return with_order_lane(KiteConnect(*args, **kwargs))
