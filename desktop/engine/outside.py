"""A position closed outside KiteDesk (in Kite web or the app): seen at the broker, and never sold twice.

A LIVE sell of the held option sells at most what the account's positions show (`sellable`), so a position
closed outside never becomes a short one. While holding, the positions are read every `BROKER_CHECK_EVERY`
seconds (`check`): a position gone from the broker is let go with its stop cancelled (triggered, it would sell
short), and one partly gone is held at what is left with its stop resized. The account's positions are the
account's, not one session's: sessions of one account holding the same option share it (`account_share`).
Runs on the segment agent's thread only, as its trader's helper.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING

from desktop.broker.errors import BrokerError
from desktop.domain import Mode

if TYPE_CHECKING:
    from desktop.engine.context import Holding
    from desktop.engine.trader import SegmentTrader

# LIVE, while holding: how often (real seconds: it is a REST call, under Kite's rate limits) the account's
# positions are read to see whether the position was closed outside KiteDesk.
BROKER_CHECK_EVERY = 30.0


class OutsideClose:
    """The broker's view of one segment's position (its trader's helper, same thread)."""

    def __init__(self, trader: SegmentTrader) -> None:
        self.t = trader
        self.next_check = 0.0  # time.monotonic() of the next check that the broker still holds it
        self._short_seen: tuple[str, int, int] | None = None  # (symbol, held, at broker) seen once
        self._unread_said = False  # "positions not read before selling" said, not again until they are read

    def due(self) -> bool:
        """A check is due (LIVE, holding, no exit of ours on its way); the next one is then a while away."""
        t = self.t
        if t.mode is not Mode.LIVE or t.holding is None or t.orders.open_exit() is not None:
            return False
        if time.monotonic() < self.next_check:
            return False
        self.next_check = time.monotonic() + BROKER_CHECK_EVERY
        return True

    def sellable(self, h: Holding, now: datetime, stop_first: bool = False) -> int | None:
        """How much a LIVE sell of the held option may sell: what this segment holds, but never more than the
        account holds at the broker. A position closed in Kite web or the app must not become a short option
        position. None when the broker shows none: the position is let go (nothing to sell). `stop_first`: when
        the broker shows less than held, our resting stop is cancelled first; a refused cancel means the stop is
        what sold it (None: its fills close the position and count)."""
        t = self.t
        try:
            net = t.ctx.gateway.account_net_quantity(h.exchange, h.tradingsymbol)
        except BrokerError as e:
            # Said once until the positions are read again: an expired login made every try of a sale say it twice,
            # every few seconds, for half an hour (chaos seed 51).
            if not self._unread_said:
                self._unread_said = True
                t.log.warning("positions not read before selling %s (%s): selling the %d held (not said again "
                              "until they are read)", h.tradingsymbol, e, h.quantity)  # fmt: skip
            return h.quantity
        if self._unread_said:
            self._unread_said = False
            t.log.info("the account's positions are read again")
        if net is None or net >= h.quantity:
            return h.quantity
        stop = h.stop_order
        if stop_first and stop is not None and stop.resting and not t.protection.cancel(h):
            t.log.info("the broker shows %d of the %d %s held and the stop-loss order %s could not be cancelled: "
                       "it is selling; waiting for its fills", max(net, 0), h.quantity, h.tradingsymbol,
                       stop.order_id)  # fmt: skip
            t.strategy.on_exit_rejected("the stop-loss order is selling")
            return None
        t.journal("broker_holds_less", {"symbol": h.tradingsymbol, "held": h.quantity, "at_broker": net})
        if net > 0:
            t.log.error(
                "the broker shows only %d of the %d %s held (sold outside KiteDesk, or fills not reported yet): "
                "selling %d",
                net, h.quantity, h.tradingsymbol, net,
            )  # fmt: skip
            return net
        t.log.error(
            "the broker shows no %s position (closed outside KiteDesk?): nothing sold, the position is let go; "
            "its P&L is not counted here",
            h.tradingsymbol,
        )
        self.let_go(h, now)
        return None

    def let_go(self, h: Holding, now: datetime) -> None:
        """The position is no longer at the broker: its stop cancelled (triggered, it would sell short), flat."""
        if h.stop_order is not None and h.stop_order.resting:
            self.t.protection.cancel(h)
        self.t.keeper.gone(h, now)

    def check(self, now: datetime) -> None:
        """LIVE, while holding: does the account still hold it? A position sold in Kite web or the app leaves our
        stop-loss order resting, and triggered it would sell short. Acts only when two checks in a row (a
        `BROKER_CHECK_EVERY` apart) see less than held, so a stop's fills on their way are not taken for it."""
        t, h = self.t, self.t.holding
        assert h is not None
        if t.orders.unrecorded_sales(h):
            # Our own stop or exit sold some and its fills wait for the store (a full disk, a locked database): the
            # broker shows them gone, and taken for a sale outside KiteDesk the position would be cut here and then
            # again by those fills once recorded, the rest left at the broker unprotected. Checked once they are.
            self._short_seen = None
            return
        try:
            net = t.ctx.gateway.account_net_quantity(h.exchange, h.tradingsymbol)
        except BrokerError as e:
            t.log.debug("positions not read (%s): checked again later", e)
            return
        account = net
        if net is not None:
            net = self.account_share(h, net)
        if net is None or net >= h.quantity:
            self._short_seen = None
            return
        shared = "" if net == account else f" (the account holds {account}, held first by its other sessions)"
        if self._short_seen != (h.tradingsymbol, h.quantity, net):
            self._short_seen = (h.tradingsymbol, h.quantity, net)
            return  # seen once: maybe our own stop's fills not reported yet
        self._short_seen = None
        t.journal(
            "broker_holds_less",
            {"symbol": h.tradingsymbol, "held": h.quantity, "at_broker": net, "account": account},
        )
        if net <= 0:
            t.log.error(
                "the broker shows no %s position any more for this session%s (closed outside KiteDesk?): the "
                "position is let go and its stop-loss order cancelled; its P&L is not counted here",
                h.tradingsymbol, shared,
            )  # fmt: skip
            self.let_go(h, now)
            return
        t.log.error(
            "the broker shows only %d of the %d %s held for this session%s (sold outside KiteDesk?): holding %d, "
            "stop-loss order resized; the P&L of the rest is not counted here",
            net, h.quantity, h.tradingsymbol, shared, net,
        )  # fmt: skip
        h.keep_only(net)
        t.keeper.save(now)
        t.protection.resize(h, net)

    def account_share(self, h: Holding, net: int) -> int:
        """What of the account's `net` at the broker this session may count as its own. Sessions of one account
        holding the same option take it in the order of their session ids, so that together their stops never
        cover more than the account holds (a sale in Kite web of a jointly held option is anybody's)."""
        me = self.t.ctx.key.session_id
        before = sum(qty for sid, qty in self.t.ctx.others_holding(h.exchange, h.tradingsymbol) if sid < me)
        return max(0, net - before)
