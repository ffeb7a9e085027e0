"""`kitedesk run WORKSPACE.toml [--demo] [--speed X] [--for SECONDS] [--home DIR]`: a workspace without a window.

Starts every session of the workspace, prints one status line per session every `--every` seconds, and
on Ctrl-C (or after `--for` seconds) stops them in order, squaring off or keeping positions as each
session's `on_stop` says. `--demo` runs the embedded simulator with its demo accounts; `--sim-url`
uses a simulator already running (`kitedesk sim`), e.g. one that must outlive this process.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TextIO

from desktop.domain import format_rupees
from desktop.engine.engine import Engine, MemorySecretStore
from desktop.engine.session import SessionEngine
from desktop.engine.snapshots import SessionSnapshot
from desktop.engine.strategy.registry import available_strategies
from desktop.engine.workspace import OnStop, SessionEntry, WorkspaceError, load_workspace


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kitedesk run", description="Run a workspace's sessions without a window."
    )
    p.add_argument("workspace", help="the workspace file (TOML)")
    p.add_argument("--demo", action="store_true", help="trade on the embedded simulator's demo accounts")
    p.add_argument(
        "--sim-url", help="trade on a running simulator's demo accounts (e.g. http://127.0.0.1:5000)"
    )
    p.add_argument(
        "--speed", type=float, default=30.0, help="demo market speed (simulated seconds per second)"
    )
    p.add_argument("--seed", type=int, default=1, help="demo market seed")
    p.add_argument("--start", help='demo market start time "HH:MM" (default 09:15 today)')
    p.add_argument("--for", dest="duration", type=_seconds, help="stop after this many seconds")
    p.add_argument("--every", type=_seconds, default=2.0, help="seconds between status lines (default 2)")
    p.add_argument("--home", help="KiteDesk data folder (default: $KITEDESK_HOME or the user data folder)")
    return p


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds greater than 0, not {text!r}")
    return value


def status_line(snap: SessionSnapshot) -> str:
    """One line for a session: time, account, label, mode, state, each segment's position, day P&L."""
    t = snap.market_time.strftime("%H:%M:%S") if snap.market_time else "--:--:--"
    parts = []
    for seg in snap.segments:
        what: str
        if seg.state.value in ("failed", "starting", "stopped"):
            what = str(seg.state.value)
        elif seg.option_symbol:
            what = f"{seg.quantity} {seg.option_symbol} @ {seg.entry_price} stop {seg.stop_price}"
        else:
            what = "flat"
        parts.append(f"{seg.segment.value}: {what} ({seg.trades_today} trades)")
    mode = snap.mode.value if snap.mode else "-"
    line = f"[{t}] {snap.key.broker_id} {snap.label!r} {mode} {snap.state.value} | " + " | ".join(parts)
    line += f" | P&L {format_rupees(snap.day_pnl)}"
    return line + (f" | {snap.message}" if snap.message else "")


def _demo_start(text: str | None) -> datetime | None:
    if not text:
        return None
    from desktop.broker.sim.state import default_start

    hh, mm = (int(x) for x in text.split(":"))
    return default_start().replace(hour=hh, minute=mm)


def run(argv: Sequence[str], out: TextIO = sys.stdout) -> int:
    """The `kitedesk run` command; returns the exit status."""
    from PySide6.QtCore import QCoreApplication

    from desktop.store import resolve_home

    args = _parser().parse_args(list(argv))
    try:
        workspace = load_workspace(args.workspace, known_strategies=available_strategies())
    except WorkspaceError as e:
        print("The workspace cannot be used:\n  " + "\n  ".join(e.problems), file=sys.stderr)
        return 2
    app = QCoreApplication.instance() or QCoreApplication([])
    demo = args.demo or bool(args.sim_url)
    engine = Engine(resolve_home(args.home), secrets=MemorySecretStore() if demo else None)
    stop_requested = False

    def request_stop(*_: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    previous = signal.signal(signal.SIGINT, request_stop)
    started: list[tuple[SessionEntry, SessionEngine]] = []
    try:
        if demo:
            engine.start_demo(
                speed=args.speed, seed=args.seed, start=_demo_start(args.start), sim_url=args.sim_url
            )
        missing = sorted({e.profile for e in workspace.sessions if not engine.is_logged_in(e.profile)})
        if missing:
            for user in missing:
                print(f"{user} is not logged in: run `kitedesk login {user}` first", file=sys.stderr)
            return 2
        for entry in workspace.sessions:
            session = engine.open_session(entry.profile, entry.label)
            session.start(entry.params)
            started.append((entry, session))
            print(f"started {entry.profile} {entry.label!r} {entry.params.mode.value}", file=out, flush=True)
        deadline = time.monotonic() + args.duration if args.duration is not None else None
        next_status = 0.0
        while not stop_requested and (deadline is None or time.monotonic() < deadline):
            app.processEvents()
            if time.monotonic() >= next_status:
                for _, session in started:
                    print(status_line(session.snapshot()), file=out, flush=True)
                next_status = time.monotonic() + args.every
            time.sleep(0.05)
        print("stopping...", file=out, flush=True)
        for entry, session in started:
            engine.close_session(session.key, _positions(entry))
            print(status_line(session.snapshot()), file=out, flush=True)
        return 0
    except Exception as e:  # a trader sees one plain line; the sessions' logs hold the details
        print(f"kitedesk run failed: {e}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, previous)
        for entry, session in started:  # after a failure, those started still stop as the workspace says
            try:
                engine.close_session(session.key, _positions(entry))
            except Exception as e:  # the others still stop, and the engine still closes
                print(f"stopping {entry.profile} {entry.label!r} failed: {e}", file=sys.stderr)
        engine.close()
        app.processEvents()


def _positions(entry: SessionEntry) -> str:
    return "keep" if entry.on_stop is OnStop.KEEP else "square_off"
