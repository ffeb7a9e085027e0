"""The feed's routing table (which tokens it decodes and hands to streams) under concurrent subscriptions."""

from __future__ import annotations

import struct
import threading
import time

import desktop.broker.stream as stream_module
from desktop.broker.ticks import pack_frame
from desktop.domain import SessionKey


class NoLink:
    """An account link that never connects: the routing is all this test needs of the feed."""

    broker_id = "UK9394"
    access_token = None

    class profile:  # noqa: N801 - mimics the attribute
        ws_root = "ws://127.0.0.1:9"
        api_key = "k"

    def add_listener(self, listener) -> None:
        pass

    def remove_listener(self, listener) -> None:
        pass


def test_two_sessions_subscribing_at_once_both_get_their_ticks(monkeypatch) -> None:
    feed = stream_module.AccountFeed(NoLink())  # type: ignore[arg-type]
    a = feed.open_stream(SessionKey("UK9394", "aaaa"))
    b = feed.open_stream(SessionKey("UK9394", "bbbb"))
    got_b: list = []
    b.add_tick_listener(got_b.extend, on_feed_thread=True)
    x, y = 11 * 256 + 2, 22 * 256 + 2
    read, go_on = threading.Event(), threading.Event()
    real_frozenset = frozenset

    def frozen_then_pause(items, *args, **kwargs):  # A has read the streams and is about to publish
        out = real_frozenset(items, *args, **kwargs)
        if threading.current_thread().name == "A":
            read.set()
            go_on.wait(5)
        return out

    monkeypatch.setattr(stream_module, "frozenset", frozen_then_pause, raising=False)
    ta = threading.Thread(target=lambda: a.subscribe([x]), name="A")
    ta.start()
    assert read.wait(5)
    tb = threading.Thread(target=lambda: b.subscribe([y]), name="B")
    tb.start()
    tb.join(0.3)  # B runs now (or waits for A's publish)
    go_on.set()
    ta.join(5)
    tb.join(5)
    try:
        assert sorted(feed._eager) == [x, y]
        feed._on_frame(
            pack_frame([struct.pack(">II", x, 10000), struct.pack(">II", y, 20000)]), time.perf_counter()
        )
        assert [t.instrument_token for t in got_b] == [y]
    finally:
        a.close()
        b.close()


def test_a_frames_delivered_ticks_are_handed_out_before_its_watch_list_is_kept(monkeypatch) -> None:
    """Decide first (issue 18): the feed hands a frame's delivered ticks to the streams before it indexes the frame
    for the watch list and keeps its packets; a watched instrument read meanwhile gives the previous frame's value
    (never an older one), and the frame's own value once the feed is done with it. A frame of a few packets is
    indexed first (the same walk as finding them) but kept after its decisions all the same."""
    feed = stream_module.AccountFeed(NoLink())  # type: ignore[arg-type]
    stream = feed.open_stream(SessionKey("UK9394", "aaaa"))
    index_token, watched = 256265, 0x4F000002
    others = [0x50000002 + 256 * i for i in range(40)]  # a watch list: the frame is too big to walk twice
    stream.subscribe([index_token], "full")
    stream.watch([watched, *others], "full")
    steps: list[str] = []
    read: list = []

    def decide(batch) -> None:  # a segment deciding on the feed's thread
        steps.append("decided")
        read.append(stream.last_tick(watched))

    stream.add_tick_listener(decide, on_feed_thread=True)
    real_index, real_add = stream_module.index_frame, feed._latest.add

    def index_frame(*args):
        steps.append("indexed")
        return real_index(*args)

    def add(index) -> None:
        steps.append("kept")
        real_add(index)

    monkeypatch.setattr(stream_module, "index_frame", index_frame)
    monkeypatch.setattr(feed._latest, "add", add)
    try:
        for rupees, watch_list in ((5, others), (6, others), (7, [])):
            packets = [
                struct.pack(">II", index_token, 100 * (20_000 + rupees)),
                struct.pack(">II", watched, 100 * rupees),
            ]
            packets += [struct.pack(">II", token, 100 * rupees) for token in watch_list]
            feed._on_frame(pack_frame(packets), time.perf_counter())
        assert steps == ["decided", "indexed", "kept"] * 2 + ["decided", "kept"]
        assert read[0] is None and read[1].last_price == 5 and read[2].last_price == 6, (
            "the previous frame's value"
        )
        last = stream.last_tick(watched)
        assert last is not None and last.last_price == 7
    finally:
        stream.close()
