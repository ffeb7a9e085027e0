"""`kitedesk sim`: run the simulator in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation

from aiohttp import web

from desktop.broker.sim.server import build_app
from desktop.broker.sim.start import START_FORMATS, START_HELP, parse_market_start
from desktop.broker.sim.state import (
    DEFAULT_FUNDS,
    DEFAULT_REDIRECT_URL,
    DEMO_ACCOUNTS,
    SimAccount,
    SimConfig,
    SimState,
)


def _start(text: str) -> datetime:
    try:
        return parse_market_start(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--speed {text!r}: a number greater than 0 (1 = real time)")
    return value


def _funds(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal(-1)
    if value < 0:
        raise argparse.ArgumentTypeError(f"--funds {text!r}: an amount in rupees, 0 or more")
    return value


def _account(text: str) -> SimAccount:
    try:
        return SimAccount.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kitedesk sim",
        description="A Kite Connect compatible market and broker simulator.",
        epilog="example: kitedesk sim --port 8765 --speed 60 --start 09:15 --seed 7",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    p.add_argument(
        "--account",
        action="append",
        type=_account,
        metavar="API_KEY:API_SECRET[:USER_ID]",
        help="an account (repeatable); default: demo accounts UK9394:secret_A and UK1234:secret_B",
    )
    p.add_argument("--seed", type=int, default=1, help="market seed: the same seed gives the same prices")
    p.add_argument("--speed", type=_speed, default=1.0, help="simulated seconds per real second")
    p.add_argument(
        "--start",
        type=_start,
        default=None,
        metavar=START_FORMATS.replace(" or ", "|"),
        help=START_HELP,
    )
    p.add_argument(
        "--redirect-url",
        default=DEFAULT_REDIRECT_URL,
        help="where the login redirects with the request token",
    )
    p.add_argument(
        "--funds", type=_funds, default=DEFAULT_FUNDS, help="opening balance of each account in rupees"
    )
    p.add_argument(
        "--no-rate-limits", action="store_true", help="do not enforce Kite's per-account rate limits"
    )
    p.add_argument(
        "--order-reply-delay",
        type=float,
        default=0.0,
        metavar="MS",
        help="answer order calls (place, modify, cancel) this many milliseconds late: a network round trip "
        "to Kite (benches)",
    )
    p.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop when the process that started this one ends (the window's demo uses it)",
    )
    return p


async def _watch_parent(stop: asyncio.Event) -> None:
    """Sets `stop` once this process's parent has ended (it is then adopted by another process)."""
    parent = os.getppid()
    while not stop.is_set():
        await asyncio.sleep(0.5)
        if os.getppid() != parent:
            stop.set()


async def _serve(config: SimConfig, exit_with_parent: bool = False) -> None:
    state = SimState(config)
    # Ctrl-C stops it from here on, before the address is printed: a caller that reads the address and then
    # interrupts must get a clean stop, never an interrupted start.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(build_app(state), handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    port = int(runner.addresses[0][1])
    print(
        f"KiteDesk simulator: market time {state.clock.now():%Y-%m-%d %H:%M:%S} IST, speed x{config.speed:g}, seed {config.seed}"
    )
    print(f"  REST      http://{config.host}:{port}/")
    print(f"  WebSocket ws://{config.host}:{port}/ws")
    print(
        f"  Login     http://{config.host}:{port}/connect/login?api_key=<API_KEY>&v=3  -> {config.redirect_url}"
    )
    for acc in config.accounts:
        print(f"  Account   api_key {acc.api_key}  user_id {acc.user_id or acc.api_key}")
    print("Ctrl-C stops it.", flush=True)
    watcher = asyncio.create_task(_watch_parent(stop)) if exit_with_parent else None
    try:
        await stop.wait()
    finally:
        if watcher is not None:
            watcher.cancel()
        print("Stopping the simulator...", flush=True)
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """Parses the command line and serves until Ctrl-C."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    config = SimConfig(
        accounts=tuple(args.account) if args.account else DEMO_ACCOUNTS,
        seed=args.seed,
        speed=args.speed,
        start=args.start,
        redirect_url=args.redirect_url,
        funds=args.funds,
        rate_limits=not args.no_rate_limits,
        order_reply_delay=max(0.0, args.order_reply_delay) / 1000,
        host=args.host,
        port=args.port,
    )
    try:
        asyncio.run(_serve(config, exit_with_parent=args.exit_with_parent))
    except KeyboardInterrupt:  # Ctrl-C is how a foreground simulator is meant to stop
        return 0
    except ValueError as exc:  # e.g. a --start on a weekend
        print(f"kitedesk sim: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"kitedesk sim: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr
        )
        return 2
    return 0
