"""`kitedesk run WORKSPACE.toml [--demo] [--speed X] [--start HH:MM] [--for SECONDS] [--home DIR]`: a workspace
without a window.

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
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, TextIO

from desktop.broker.profiles import MemorySecretStore
from desktop.broker.sim.start import START_FORMATS, START_HELP, parse_market_start
from desktop.cli.demo import start_demo
from desktop.cli.support import Problems, open_engine
from desktop.domain import format_rupees
from desktop.engine.engine import Engine
from desktop.engine.session import SessionEngine
from desktop.engine.snapshots import SessionSnapshot
from desktop.engine.strategy.registry import available_strategies
from desktop.engine.workspace import SessionEntry, Workspace, WorkspaceError, load_workspace

if TYPE_CHECKING:
    from PySide6.QtCore import QCoreApplication


def build_parser() -> argparse.ArgumentParser:
    """The `kitedesk run` command line."""
    p = argparse.ArgumentParser(
        prog="kitedesk run",
        description="Run a workspace's sessions without a window.",
        epilog="example: kitedesk run workspace.toml --demo --speed 60 --start 09:20 --for 600",
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    p.add_argument(
        "--start", type=_market_start, metavar=START_FORMATS.replace(" or ", "|"), help="demo " + START_HELP
    )
    p.add_argument("--for", dest="duration", type=_seconds, help="stop after this many seconds")
    p.add_argument("--every", type=_seconds, default=2.0, help="seconds between status lines (default 2)")
    p.add_argument("--home", help="KiteDesk data folder (default: $KITEDESK_HOME or the user data folder)")
    return p


def _market_start(text: str) -> datetime:
    try:
        return parse_market_start(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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


def run(argv: Sequence[str], out: TextIO | None = None) -> int:
    """The `kitedesk run` command; returns the exit status (1 when anything failed, said in one line each)."""
    out = sys.stdout if out is None else out  # the stream of this call, not of the import
    from PySide6.QtCore import QCoreApplication

    from desktop.store import resolve_home

    args = build_parser().parse_args(list(argv))
    try:
        workspace = load_workspace(args.workspace, known_strategies=available_strategies())
    except WorkspaceError as e:
        print("The workspace cannot be used:\n  " + "\n  ".join(e.problems), file=sys.stderr)
        return 2
    stop_requested = False

    def request_stop(*_: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    # Ctrl-C asks for an orderly stop from here to the end, also while the sessions are stopping: a second
    # Ctrl-C must never break a square-off half way with a traceback.
    previous = signal.signal(signal.SIGINT, request_stop)
    try:
        app = QCoreApplication.instance() or QCoreApplication([])
        demo = args.demo or bool(args.sim_url)
        engine = open_engine("kitedesk run", resolve_home(args.home), MemorySecretStore() if demo else None)
        if engine is None:
            return 1
        problems = Problems("kitedesk run", engine)
        engine.start_sync()  # the accounts enabled for sync, each on a thread of its own; stopped by close()
        started: list[tuple[SessionEntry, SessionEngine]] = []
        code = 0
        try:
            code = _trade(args, workspace, engine, started, lambda: stop_requested, app, out)
        except Exception as e:  # a trader sees one plain line; the sessions' logs hold the details
            problems.add(e)
        finally:
            for entry, session in started:  # after a failure, those started still stop as the workspace says
                try:
                    engine.close_session(session.key, entry.on_stop)
                except Exception as e:  # the others still stop, and the engine still closes
                    problems.add(e, f"stopping {entry.profile} {entry.label!r}")
            try:
                engine.close()
            except Exception as e:
                problems.add(e)
            app.processEvents()
        lines = problems.lines()
        for line in lines:
            print(line, file=sys.stderr)
        return 1 if lines else code
    finally:
        signal.signal(signal.SIGINT, previous)


def _trade(
    args: argparse.Namespace,
    workspace: Workspace,
    engine: Engine,
    started: list[tuple[SessionEntry, SessionEngine]],
    stop_requested: Callable[[], bool],
    app: QCoreApplication,
    out: TextIO,
) -> int:
    """Starts the sessions, prints their status until Ctrl-C or `--for`, then stops them (emptying `started`)."""
    if stop_requested():  # Ctrl-C while the home was still being opened
        return 0
    if args.demo or args.sim_url:
        start_demo(engine, speed=args.speed, seed=args.seed, start=args.start, sim_url=args.sim_url)
    missing = sorted({e.profile for e in workspace.sessions if not engine.is_logged_in(e.profile)})
    if missing:
        for user in missing:
            print(f"{user} is not logged in: run `kitedesk login {user}` first", file=sys.stderr)
        return 2
    for entry in workspace.sessions:
        if stop_requested():
            break
        session = engine.open_session(entry.profile, entry.label)
        started.append((entry, session))
        session.start(entry.params)
        print(f"started {entry.profile} {entry.label!r} {entry.params.mode.value}", file=out, flush=True)
    deadline = time.monotonic() + args.duration if args.duration is not None else None
    next_status = 0.0
    while not stop_requested() and (deadline is None or time.monotonic() < deadline):
        app.processEvents()
        if time.monotonic() >= next_status:
            for _, session in started:
                print(status_line(session.snapshot()), file=out, flush=True)
            next_status = time.monotonic() + args.every
        time.sleep(0.05)
    print("stopping...", file=out, flush=True)
    while started:
        entry, session = started[0]
        engine.close_session(session.key, entry.on_stop)
        started.pop(0)
        print(status_line(session.snapshot()), file=out, flush=True)
    return 0
