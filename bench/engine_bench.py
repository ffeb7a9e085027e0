"""Engine figures (issue 5 §9): N sessions × 3 segments on the simulator, each session also streaming
1000 instruments in full mode; prints ticks/s processed, tick-to-intent latency and memory per session.

    /work/venv/bin/python bench/engine_bench.py [--sessions 10] [--instruments 1000] [--seconds 30] [--speed 60]

The simulator runs in its own process (as Kite is another machine). Sessions take turns on `--accounts`
accounts (the two demo ones, then made-up ones), so each account's feed carries the union of its sessions'
instruments and fans ticks out to each session's stream. The simulator builds each second's packets once and
sends them on every account's connection: its own CPU (about 125 µs a full-mode packet) limits one account
to about 8 frames of 1000 instruments a second, and more accounts bring more ticks to the process.

Strategy: EMAs 1/2 (a signal on almost every bar) so entries, and so latency samples, are plentiful.
Latency is measured from the moment the WebSocket frame carrying the tick arrived at the account's feed
(before its packets are found) to the moment the entry intent passed the risk check (before the journal's
fsync): it includes finding the packets, the decode, the session's routing, the agent's queue, bars,
strategy and risk; not the kernel's socket buffer. It is printed in three parts: the feed's thread until the
batch is in the agent's inbox, the wait until the agent's thread takes it (its wake-up and the GIL shared
with every other thread), and the agent's own work. Tick-to-order-sent adds the intent's durable write and
the paper gateway's acceptance.

`--no-orders` decides entries (and measures them) but sends none: the floor under tick-to-intent with no order
traffic, journal writes or fills in the process (issue 5: that floor alone is above 2 ms at 10 × 3).

Several processes on one simulator (what one process per account would do with the same load):

    python bench/engine_bench.py --serve-sim --accounts 4          # prints the simulator's URL, runs until Ctrl-C
    python bench/engine_bench.py --sim-url URL --accounts 2 --sessions 5 &
    python bench/engine_bench.py --sim-url URL --accounts 2 --first-account 2 --sessions 5

The 1000 extra instruments are a watch list (`SessionEngine.watch_instruments`): every packet is found in
the frame and kept as the instrument's latest value (readable with `SessionEngine.quote`), decoded only
when read. The figures count ticks off the wire and the same counted once per session subscribed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")

import requests  # noqa: E402
from kiteconnect import KiteConnect  # noqa: E402
from PySide6.QtCore import QCoreApplication  # noqa: E402

from desktop.broker.login import request_token_by_redirect  # noqa: E402
from desktop.broker.profiles import Profile  # noqa: E402
from desktop.broker.sim import DEMO_ACCOUNTS, ws_url_of  # noqa: E402
from desktop.engine import Engine, SessionEngine, SessionState, parse_params  # noqa: E402
from desktop.engine.engine import MemorySecretStore  # noqa: E402

PARAMS = {
    "segments": ["NIFTY", "BANKNIFTY", "SENSEX"],
    "lots": 1,
    "stop_loss": 2,
    "itm_offset": 100,
    "fast_ema": 1,
    "slow_ema": 2,
    "max_trades_per_day": 1000,
    "max_daily_loss": 100_000_000,
    "max_orders_per_minute": 400,
    "max_open_positions": 3,
}


def accounts(count: int) -> list[tuple[str, str]]:
    """(user id, API secret) of the simulator's accounts: the two demo ones, then made-up ones."""
    made_up = [(f"UK{9000 + i}", f"secret_{i}") for i in range(max(0, count - len(DEMO_ACCOUNTS)))]
    return [(a.user_id, a.api_secret) for a in DEMO_ACCOUNTS][:count] + made_up


def start_sim(
    speed: float, cpus: set[int] | None, users: list[tuple[str, str]]
) -> tuple[subprocess.Popen[str], str]:
    args = [sys.executable, "-m", "desktop.broker.sim", "--port", "0", "--speed", str(speed)]
    args += ["--start", "2026-01-08T09:20", "--no-rate-limits", "--exit-with-parent"]
    for user, secret in users:
        args += ["--account", f"{user}:{secret}:{user}"]
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, preexec_fn=pin)
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.search(r"REST\s+(http://\S+)/", line)
        if m:
            return proc, m.group(1)
    raise RuntimeError("simulator did not start")


def option_tokens(url: str, count: int) -> list[int]:
    kite = KiteConnect("UK9394", root=url, timeout=10)
    resp = requests.get(f"{url}/connect/login", params={"api_key": "UK9394", "v": "3"}, allow_redirects=False)
    token = resp.headers["Location"].split("request_token=")[1].split("&")[0]
    kite.set_access_token(kite.generate_session(token, api_secret="secret_A")["access_token"])
    rows = kite.instruments("NFO") + kite.instruments("BFO")
    return [int(r["instrument_token"]) for r in rows if r["instrument_type"] in ("CE", "PE")][:count]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def runqueue_wait_s() -> float:
    """Seconds our threads have spent runnable but waiting for a CPU (Linux schedstat), summed."""
    total = 0
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):  # a thread that just ended
            total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--instruments", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--speed", type=float, default=60.0)
    ap.add_argument(
        "--accounts",
        type=int,
        default=4,
        help="broker accounts the sessions take turns on (each has its own feed, so the simulator's frames "
        "reach the process once per account: 4 give about 30,000 ticks/s from one simulator core)",
    )
    ap.add_argument(
        "--mode", default="full", choices=["full", "quote", "ltp"], help="mode of the extra instruments"
    )
    ap.add_argument(
        "--switch-interval", type=float, help="sys.setswitchinterval (seconds) to try, default Python's"
    )
    ap.add_argument("--ema", default="1,2", help="fast,slow EMA periods (1,2: a signal on almost every bar)")
    ap.add_argument(
        "--no-pin",
        action="store_true",
        help="share every core between the simulator and KiteDesk (default: each on a core of its own, "
        "as if the exchange were another machine)",
    )
    ap.add_argument(
        "--no-orders",
        action="store_true",
        help="entries are decided (and measured) but never sent: the floor under tick-to-intent with no order "
        "traffic, journal writes or fills in the process",
    )
    ap.add_argument("--first-account", type=int, default=0, help="sessions use the accounts from this one on")
    ap.add_argument("--sim-url", help="use this running simulator (it must know the accounts used)")
    ap.add_argument(
        "--serve-sim", action="store_true", help="only run the simulator (for --sim-url), until Ctrl-C"
    )
    args = ap.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    sim_cpus: set[int] | None = None
    if not args.no_pin and len(cores) >= 2:
        sim_cpus = set(cores[1:])
        os.sched_setaffinity(0, {cores[0]})
        where = "started elsewhere" if args.sim_url else f"to CPU {', '.join(map(str, sim_cpus))}"
        print(f"KiteDesk pinned to CPU {cores[0]}, the simulator {where}")
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    app = QCoreApplication([])
    users = accounts(args.first_account + args.accounts)[args.first_account :]
    # `start_demo` logs in every demo account, so the simulator knows them all, also when fewer are used.
    known = accounts(max(args.first_account + args.accounts, len(DEMO_ACCOUNTS)))
    if args.serve_sim:
        sim, url = start_sim(args.speed, sim_cpus, known)
        print(f"simulator for {len(known)} accounts at {url} (Ctrl-C ends it)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            sim.wait()
        sim.terminate()
        return 0
    sim, url = (None, args.sim_url) if args.sim_url else start_sim(args.speed, sim_cpus, known)
    home = Path(tempfile.mkdtemp(prefix="kitedesk-bench-"))
    engine = Engine(home, secrets=MemorySecretStore())
    sessions: list[SessionEngine] = []
    try:
        extra = option_tokens(url, args.instruments)
        engine.start_demo(sim_url=url)
        for user, secret in [u for u in users if u[0] not in {a.user_id for a in DEMO_ACCOUNTS}]:
            profile = Profile(user, user, user, api_root=url, login_url_root=url, ws_root=ws_url_of(url))
            engine.profile_book.save(profile)
            engine.secrets.set_api_secret(user, secret)
            engine.hub.login(profile, request_token_by_redirect(profile))
        rss0 = rss_mb()
        for i in range(args.sessions):
            session = engine.open_session(users[i % len(users)][0], f"Bench {i}")
            fast, slow = (int(x) for x in args.ema.split(","))
            session.start(parse_params({**PARAMS, "fast_ema": fast, "slow_ema": slow}))
            if extra:
                session.watch_instruments(extra, args.mode)
            sessions.append(session)
        started = time.monotonic()
        deadline = started + 120
        while time.monotonic() < deadline and not all(s.state is SessionState.RUNNING for s in sessions):
            app.processEvents()
            time.sleep(0.1)
        print(f"all sessions running after {time.monotonic() - started:.1f} s: "
              f"{sum(s.state is SessionState.RUNNING for s in sessions)}/{len(sessions)}")  # fmt: skip
        agents = [a for s in sessions for a in (s.agent(seg) for seg in s.params.segments) if a is not None]  # type: ignore[union-attr]
        for a in agents:
            if args.no_orders:  # measurement only: the entry is refused as if the broker had (strategy freed)
                a.run_on_thread(lambda trader: setattr(trader, "_send", lambda intent, recorded=False: None))
            a.run_on_thread(
                lambda trader: (setattr(trader, "latency_probe", []), setattr(trader, "sent_probe", [])),
            )
        time.sleep(3)  # subscriptions settle
        rss1 = rss_mb()
        feeds = [f for f in (engine.hub.feed(user) for user, _ in users) if f is not None]
        wire0 = sum(f.packets_received for f in feeds)
        fan0 = sum(f.ticks_to_streams for f in feeds)
        routed0 = sum(s.ticks_routed for s in sessions)
        agent0 = sum(a.ticks_processed for a in agents)
        cpu0 = time.process_time()
        wait0 = runqueue_wait_s()
        load0 = os.getloadavg()[0]
        t0 = time.monotonic()
        samples = []
        while time.monotonic() - t0 < args.seconds:
            app.processEvents()
            time.sleep(1.0)
            stats = [s.stream_stats() for s in sessions]
            samples.append((sum(q for q, _ in stats), sum(d for _, d in stats)))
        elapsed = time.monotonic() - t0
        cpu = time.process_time() - cpu0
        waited = runqueue_wait_s() - wait0
        load1 = os.getloadavg()[0]
        routed = sum(s.ticks_routed for s in sessions) - routed0
        wire = sum(f.packets_received for f in feeds) - wire0
        fanned = sum(f.ticks_to_streams for f in feeds) - fan0
        probe = extra[len(extra) // 2] if extra else None
        quote = sessions[0].quote(probe) if probe is not None else None
        processed = sum(a.ticks_processed for a in agents) - agent0
        probes = [x for a in agents for x in (a.trader.latency_probe or [])]
        latencies = [total * 1000 for total, _, _ in probes]
        inbox = [picked * 1000 for _, picked, _ in probes]
        handed = [h * 1000 for _, _, h in probes]
        failed = [f"{s.label}/{a.segment.value}" for s in sessions for a in agents if a.failure]
        print(f"sessions {args.sessions} × 3 segments, {len(extra)} extra instruments each ({args.mode} mode), "
              f"EMAs {args.ema}, sim speed {args.speed}, {elapsed:.0f} s measured")  # fmt: skip
        print(
            f"ticks received off the wire by the process ({len(feeds)} account feeds): {wire / elapsed:,.0f}/s"
        )
        print(f"ticks to sessions (each counted once per session subscribed): {fanned / elapsed:,.0f}/s")
        print(f"ticks decoded and routed to segment agents (index + held options): {routed / elapsed:,.0f}/s, "
              f"processed by them: {processed / elapsed:,.0f}/s")  # fmt: skip
        print(f"a watched instrument's latest value, read on demand: {quote.instrument_token if quote else None} "
              f"at {quote.last_price if quote else None}, {quote.exchange_timestamp if quote else None}")  # fmt: skip
        print(f"process CPU: {cpu / elapsed * 100:.0f}% of one core; its threads waited for a CPU "
              f"{waited / elapsed * 1000:.0f} ms per second in all (machine load {load0:.1f} → {load1:.1f})")  # fmt: skip
        print(f"agent backlog (tick batches queued) per second: first {samples[0][0]}, last {samples[-1][0]}, "
              f"max {max(q for q, _ in samples)}")  # fmt: skip
        print(f"ticks dropped by streams for slow consumers: {samples[-1][1] - samples[0][1]} during the run")
        if latencies:
            print(
                f"tick-to-intent latency over {len(latencies)} entries: p50 {statistics.median(latencies):.3f} ms, "
                f"p99 {pct(latencies, 0.99):.3f} ms, max {max(latencies):.3f} ms"
            )
            waits = [p - h for p, h in zip(inbox, handed, strict=True)]
            own = [t - p for t, p in zip(latencies, inbox, strict=True)]
            for what, xs in (
                ("from the frame's arrival to the batch in the agent's inbox (feed thread)", handed),
                ("then until the agent took it (wake-up, GIL, other threads)", waits),
                ("then the agent's own part (bars, strategy, risk)", own),
            ):
                print(f"  {what}: p50 {statistics.median(xs):.3f} ms, p99 {pct(xs, 0.99):.3f} ms")
            sent = [x * 1000 for a in agents for x in (a.trader.sent_probe or [])]
            if sent and not args.no_orders:
                print(
                    f"tick-to-order-sent (intent committed to disk, then accepted by the paper gateway) over "
                    f"{len(sent)} entries: p50 {statistics.median(sent):.3f} ms, p99 {pct(sent, 0.99):.3f} ms"
                )
        else:
            print("tick-to-intent latency: no entries in the window")
        print(f"memory: {rss0:.0f} MB before sessions, {rss1:.0f} MB with them: "
              f"{(rss1 - rss0) / args.sessions:.1f} MB per session")  # fmt: skip
        if failed:
            print("FAILED agents:", ", ".join(failed))
        return 0
    finally:
        engine.close("square_off")
        if sim is not None:
            sim.terminate()
            sim.wait(10)


if __name__ == "__main__":
    sys.exit(main())
