"""`BrokerHub`: what the composition root owns for the broker layer, and the only place where
sessions of one account meet (its `AccountLink`, rate limiter, market feed and instruments).

Nothing here is a module global: two hubs in one process (two test cases, say) share nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from desktop.broker.instruments import InstrumentBook, InstrumentCache
from desktop.broker.kite_client import new_kite
from desktop.broker.login import complete_login
from desktop.broker.profiles import AccessGrant, Profile, SecretStore
from desktop.broker.ratelimit import AccountLimiters
from desktop.broker.recording import FeedRecorder
from desktop.broker.session import AccountLink, EventSink, KiteSession
from desktop.domain import SessionKey

if TYPE_CHECKING:  # the feed (aiohttp, numpy) is imported when the first stream opens
    from desktop.broker.stream import AccountFeed, MarketStream


class BrokerHub:
    """Per-account shared pieces, keyed by broker id; thread-safe."""

    # None: the live AccountFeed (imported with the first stream); a replay's hub feeds recorded frames instead
    # (engine/replay.py).
    feed_class: type[AccountFeed] | None = None

    def __init__(
        self,
        secrets: SecretStore,
        limiters: AccountLimiters | None = None,
        instruments: InstrumentCache | None = None,
        feed_options: dict[str, float] | None = None,
        kite_factory: Callable[..., Any] = new_kite,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """`clock`: the market clock the feeds check ticks' exchange times against (broker/tick_times.py)."""
        self.secrets = secrets
        self.limiters = limiters or AccountLimiters()
        self.instruments = instruments or InstrumentCache()
        self._feed_options = feed_options or {}
        self._kite_factory = kite_factory
        self._clock = clock
        self._lock = threading.Lock()
        self._accounts: dict[str, AccountLink] = {}
        self._feeds: dict[str, AccountFeed] = {}
        self._recorders: dict[str, FeedRecorder] = {}  # accounts whose feed is recorded (broker/recording.py)

    def account(self, profile: Profile) -> AccountLink:
        """The link shared by every session of `profile`'s account.

        A profile edited in a way that keeps its connection (its name, its redirect URL) keeps the link, so the
        sessions running on it get the next login's token; a new API key or server makes a new link.
        """
        with self._lock:
            link = self._accounts.get(profile.user_id)
            if link is None or _connection(link.profile) != _connection(profile):
                link = AccountLink(profile, self.secrets)
                self._accounts[profile.user_id] = link
            elif link.profile != profile:
                link.profile = profile
            return link

    def login(self, profile: Profile, request_token: str) -> AccessGrant:
        """Completes a login and hands the new token to every session and the feed of that account."""
        grant = complete_login(profile, request_token, self.secrets, kite_factory=self._kite_factory)
        self.account(profile).logged_in(grant)
        return grant

    def open_session(
        self,
        profile: Profile,
        key: SessionKey | None = None,
        on_event: EventSink | None = None,
        timeout: float = 7.0,
    ) -> KiteSession:
        """A new session (own KiteConnect) of `profile`'s account."""
        key = key or SessionKey.new(profile.user_id)
        return KiteSession(
            key,
            self.account(profile),
            self.limiters.for_account(profile.user_id),
            on_event=on_event,
            timeout=timeout,
            kite_factory=self._kite_factory,
        )

    def open_stream(self, session: KiteSession, on_event: EventSink | None = None) -> MarketStream:
        """A new market stream for `session`, over its account's (possibly new) feed."""
        from desktop.broker.stream import AccountFeed

        with self._lock:
            for _ in range(3):
                feed = self._feeds.get(session.broker_id)
                if feed is None or feed.closing:
                    feed = (self.feed_class or AccountFeed)(
                        session.account, on_closed=self._feed_closed, clock=self._clock, **self._feed_options
                    )
                    feed.recorder = self._recorders.get(session.broker_id)
                    self._feeds[session.broker_id] = feed
                try:
                    return feed.open_stream(session.key, on_event)
                except RuntimeError:  # it closed between the check and the open: make a new one
                    self._feeds.pop(session.broker_id, None)
        raise RuntimeError("could not open a market stream")

    def set_recorder(self, broker_id: str, recorder: FeedRecorder | None) -> FeedRecorder | None:
        """Records the account's feed into `recorder` from now on (None: stops); returns the one it replaced
        (its owner closes it)."""
        with self._lock:
            old = self._recorders.pop(broker_id, None)
            if recorder is not None:
                self._recorders[broker_id] = recorder
            feed = self._feeds.get(broker_id)
            if feed is not None:
                feed.recorder = recorder
        return old

    def recorder(self, broker_id: str) -> FeedRecorder | None:
        """The account's recorder, or None when its feed is not recorded."""
        with self._lock:
            return self._recorders.get(broker_id)

    def _feed_closed(self, feed: AccountFeed) -> None:
        with self._lock:
            if self._feeds.get(feed.broker_id) is feed:
                del self._feeds[feed.broker_id]

    def feed(self, broker_id: str) -> AccountFeed | None:
        """The account's live feed, if any stream is open (diagnostics and tests)."""
        with self._lock:
            return self._feeds.get(broker_id)

    def instrument_book(self, session: KiteSession, day: date) -> InstrumentBook:
        """The day's instruments of the session's account, fetched once per account per day."""
        return self.instruments.book(session.broker_id, day, session.instruments)

    def close(self) -> None:
        """Closes every feed (sessions and streams are closed by their owners first)."""
        with self._lock:
            feeds = list(self._feeds.values())
        for feed in feeds:
            feed.close()


def _connection(profile: Profile) -> tuple[str, str, str]:
    """What a running session's Kite client and feed are built from."""
    return profile.api_key, profile.api_root, profile.ws_root
