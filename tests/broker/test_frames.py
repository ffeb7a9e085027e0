"""`FRAMES` (broker/frames.py): while an account feed hands out a frame, no garbage collection starts, the work
waiting for the frames of the moment waits, and background work pauses (briefly)."""

from __future__ import annotations

import gc
import struct
import threading
import time
from collections.abc import Iterator

import pytest

import desktop.broker.frames as frames_module
import desktop.broker.stream as stream_module
from desktop.broker.frames import FRAMES, QuietFrames
from desktop.broker.ticks import TickBatch, pack_frame
from desktop.domain import SessionKey
from tests.broker.test_stream_routing import NoLink


@pytest.fixture(autouse=True)
def _collector_on() -> Iterator[None]:
    yield
    gc.enable()


def test_no_collection_starts_and_after_work_waits_while_a_feed_hands_out_a_frame() -> None:
    feed = stream_module.AccountFeed(NoLink())  # type: ignore[arg-type]
    stream = feed.open_stream(SessionKey("UK9394", "aaaa"))
    token = 11 * 256 + 2
    seen: list[tuple[bool, int]] = []
    ran: list[str] = []

    def listener(batch: TickBatch) -> None:  # a session's decisions, on the feed's thread
        seen.append((gc.isenabled(), len(ran)))
        batch.wake_after(lambda: FRAMES.after(lambda: ran.append("woken")))

    stream.add_tick_listener(listener, on_feed_thread=True)
    stream.subscribe([token])
    try:
        assert gc.isenabled()
        feed._on_frame(pack_frame([struct.pack(">II", token, 10000)]), time.perf_counter())
        assert seen == [(False, 0)], "the decisions ran with the collector held off"
        assert ran == ["woken"] and gc.isenabled(), "the frame handed out: the work ran, collections on again"
        FRAMES.hold()  # another account's frame of the same moment, still being handed out
        try:
            feed._on_frame(pack_frame([struct.pack(">II", token, 10100)]), time.perf_counter())
            assert ran == ["woken"] and not gc.isenabled(), "waits for the other account's frame"
        finally:
            FRAMES.release()
        assert ran == ["woken", "woken"] and gc.isenabled()
    finally:
        stream.close()


def test_a_collector_switched_off_elsewhere_stays_off_and_a_hold_never_released_is_forgotten() -> None:
    quiet = QuietFrames()
    gc.disable()  # someone else's choice
    quiet.hold()
    quiet.release()
    assert not gc.isenabled(), "not switched on by frames that did not switch it off"
    gc.enable()
    ran: list[int] = []
    quiet.hold()  # a frame whose release never comes (its feed's thread failed in between)
    quiet.after(lambda: ran.append(1))
    assert not gc.isenabled() and ran == []
    quiet._since -= QuietFrames.STALE_S + 0.1
    quiet.hold()
    assert quiet.stale == 1 and ran == [1], "the stale hold forgotten, its waiting work run"
    assert not gc.isenabled(), "the new frame holds it"
    quiet.release()
    assert gc.isenabled()
    quiet.release()  # the lost frame's release, late: changes nothing
    assert gc.isenabled()


def test_work_that_raises_after_a_frame_is_logged_and_the_rest_still_runs(caplog) -> None:
    quiet = QuietFrames()
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("a broken wake-up")

    quiet.hold()
    for work in (broken, lambda: ran.append("the other agent")):
        quiet.after(work)
    quiet.release()
    assert ran == ["the other agent"]
    assert "work after a frame failed" in caplog.text


def test_background_work_waits_for_the_frames_being_handed_out_but_never_long() -> None:
    quiet = QuietFrames()
    assert quiet.wait_quiet(0.0), "no frame: at once"
    quiet.hold()
    started = time.monotonic()
    assert not quiet.wait_quiet(0.05), "a frame being handed out: waited for, up to the timeout"
    assert time.monotonic() - started >= 0.04
    releaser = threading.Timer(0.05, quiet.release)
    releaser.start()
    assert quiet.wait_quiet(5.0), "the frame handed out: goes on"
    releaser.join()
    quiet.hold()  # never released
    quiet._since -= QuietFrames.STALE_S + 0.1
    started = time.monotonic()
    quiet.wait_quiet(5.0)
    assert time.monotonic() - started < 1.0, "a stale hold is not waited for"


def another_feed_hands_out_a_frame(quiet: QuietFrames) -> None:
    """Another account's feed (another thread) hands out a frame: from now on the CPU is worth offering."""
    other = threading.Thread(target=lambda: (quiet.hold(), quiet.release()))
    other.start()
    other.join(5)


def test_work_after_a_frame_waits_for_a_frame_another_feed_took_while_the_cpu_was_offered(
    monkeypatch,
) -> None:
    """The last frame of the moment released, the CPU is offered first (`os.sched_yield`) to a feed waiting to take
    its frame; one that took it meanwhile hands its frame out before the work (the frame's commit, the agents'
    wake-ups) runs: side effects never compete with a frame of the same moment still being decided."""
    quiet = QuietFrames()
    ran: list[str] = []
    taken: list[int] = []

    def another_feed_takes_its_frame() -> None:
        if not taken:
            taken.append(1)
            quiet.hold()

    monkeypatch.setattr(frames_module, "_YIELD", another_feed_takes_its_frame)
    quiet.hold()  # alone so far (one account, a replay): nothing is offered, the work runs at once
    quiet.after(lambda: ran.append("alone"))
    quiet.release()
    assert taken == [] and ran == ["alone"]
    ran.clear()
    another_feed_hands_out_a_frame(quiet)
    quiet.hold()
    quiet.after(lambda: ran.append("commit"))
    quiet.release()
    assert taken == [1] and ran == [], "offered first; the other feed took its frame: the work waits for it"
    quiet.after(lambda: ran.append("its own"))
    quiet.release()
    assert ran == ["commit", "its own"], "once the other frame is handed out: in order"
    quiet.hold()
    quiet.release()  # no work waiting: nothing offered
    assert taken == [1]


def test_a_feed_keeps_its_frame_once_the_other_feeds_have_handed_theirs_out(monkeypatch) -> None:
    """`after_deciding`: the CPU is offered, then the feed waits (at most the timeout) for the frames being handed
    out by other feeds before it goes on with what no decision waits for (its watch list)."""
    quiet = QuietFrames()
    offered: list[int] = []
    monkeypatch.setattr(frames_module, "_YIELD", lambda: offered.append(1))
    assert quiet.after_deciding(5.0) and offered == [], (
        "alone (one account, a replay): at once, nothing offered"
    )
    taken, release = threading.Event(), threading.Event()

    def other_feed() -> None:  # another account's feed, handing out a frame
        quiet.hold()
        taken.set()
        release.wait(5)
        time.sleep(0.05)
        quiet.release()

    other = threading.Thread(target=other_feed)
    other.start()
    assert taken.wait(5)
    started = time.monotonic()
    release.set()
    assert quiet.after_deciding(5.0) and offered == [1]
    assert 0.04 <= time.monotonic() - started < 2.0, "waited for the other frame, not for the timeout"
    other.join(5)


def test_frames_are_decided_one_at_a_time_and_a_stuck_one_is_not_waited_for_long(monkeypatch) -> None:
    """A feed taking its frame while another feed's is being handed out waits for it (the first frame's decisions
    are not shared out with the second's), counted as being handed out meanwhile; never longer than `TURN_WAIT_S`."""
    quiet = QuietFrames()
    steps: list[str] = []
    monkeypatch.setattr(frames_module, "TURN_WAIT_S", 2.0)  # a loaded machine must not make B give up waiting
    quiet.hold()  # feed A's frame
    second = threading.Thread(target=lambda: (quiet.hold(), steps.append("B decides"), quiet.release()))
    second.start()
    deadline = time.monotonic() + 5
    while quiet._open < 2 and not steps and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(0.005)  # B would decide now, were it not waiting
    steps.append("A decided")
    assert quiet._open == 2, "B's frame counts as being handed out while it waits"
    quiet.release()
    second.join(5)
    assert steps == ["A decided", "B decides"]
    monkeypatch.setattr(frames_module, "TURN_WAIT_S", 0.05)
    quiet.hold()  # a frame whose feed never goes on
    started = time.monotonic()
    other = threading.Thread(target=lambda: (quiet.hold(), quiet.release()))
    other.start()
    other.join(5)
    assert time.monotonic() - started < frames_module.TURN_WAIT_S + 0.5, "waited at most TURN_WAIT_S"
    quiet.release()
