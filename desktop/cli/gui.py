"""`kitedesk [--demo [--fresh]] [options]`: the desktop window, wired here (the window only shows what it
is given): the home, the engine with its secret store, and for the demo the simulator."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from desktop.engine import SimDay

DEFAULT_DEMO_SPEED = 60.0  # a 1-minute bar every second: charts move and trades come within seconds

WINDOW_EXAMPLES = (
    "kitedesk --demo --speed 10",
    "kitedesk --demo --fresh",
    "kitedesk --home ~/kitedesk-test --theme light",
)


def window_parser(commands_help: str = "") -> argparse.ArgumentParser:
    """`kitedesk [options]`: the desktop window; its help is the program's help (`commands_help`: the
    command list desktop/cli/main.py builds from its table)."""
    from desktop.cli.main import version

    examples = "\n".join(f"  {line}" for line in WINDOW_EXAMPLES)
    commands = f"{commands_help}\n\nRun `kitedesk COMMAND --help` for a command's options and an example.\n\n"
    p = argparse.ArgumentParser(
        prog="kitedesk",
        usage="kitedesk [options]          (the desktop window)\n       kitedesk COMMAND [options]",
        description="KiteDesk: a desktop trading client for Zerodha Kite Connect. Without a command it opens "
        "the window.",
        epilog=f"{commands if commands_help else ''}examples:\n{examples}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"kitedesk {version()}")
    p.add_argument(
        "--demo",
        action="store_true",
        help="run three sessions on the built-in simulator, in the demo folder DATA/demo (kept after quitting)",
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="with --demo: delete the demo folder first (its trades, logs and window state), without asking",
    )
    p.add_argument(
        "--speed",
        type=float,
        default=DEFAULT_DEMO_SPEED,
        help="demo market speed, simulated seconds per second (default %(default)g)",
    )
    p.add_argument("--seed", type=int, default=1, help="demo market seed: the same seed, the same prices")
    p.add_argument(
        "--start",
        metavar="HH:MM|YYYY-MM-DDTHH:MM",
        help="demo market start: a time of today (or the last weekday) or a day and time (default 09:19, a "
        "minute before the entry window opens); the demo's prices follow its seed and its day",
    )
    p.add_argument("--theme", choices=("dark", "light"), help="colour theme (default: the last one used)")
    p.add_argument(
        "--home",
        metavar="DIR",
        help="data folder DATA (default: $KITEDESK_HOME or your user data folder)",
    )
    return p


def window(argv: Sequence[str], commands_help: str = "") -> int:
    """The desktop window, on the home this process picks and locks (the engine holds the lock)."""
    parser = window_parser(commands_help)
    args = parser.parse_args(list(argv))  # first: `--help` and a bad option load neither Qt nor the simulator
    if args.fresh and not args.demo:
        parser.error("--fresh resets the demo's folder: use it with --demo")
    if args.start is not None and not args.demo:
        parser.error("--start sets the demo market's start: use it with --demo")
    start = None
    if args.start is not None:
        from desktop.broker.sim.start import parse_market_start  # the simulator's: only when asked for

        try:
            start = parse_market_start(args.start)
        except ValueError as e:
            parser.error(f"argument --start: {e}")
    from desktop.broker.profiles import MemorySecretStore
    from desktop.cli.demo import demo_home, window_demo, wipe_demo_home
    from desktop.cli.support import trader_message
    from desktop.engine import Engine
    from desktop.store.home import resolve_home

    data = resolve_home(args.home)
    home = demo_home(data) if args.demo else data
    # What this process writes (database, logs, the window's settings) is its owner's only (issue 16 §11).
    os.umask(0o077)
    if args.fresh:
        try:
            wipe_demo_home(home)
        except Exception as e:  # another KiteDesk on the demo folder, or a file that cannot be removed
            print(f"kitedesk: the demo folder {home} was not reset: {trader_message(e)}", file=sys.stderr)
            return 1

    def open_engine() -> Engine:
        # The demo's accounts and tokens stay in memory: never in the OS keyring.
        return Engine(home, secrets=MemorySecretStore()) if args.demo else Engine(home)

    from desktop.ui.launch import run_gui

    demo = window_demo(args.speed, args.seed, start) if args.demo else None
    return run_gui(open_engine, theme=args.theme, demo=demo, speed=args.speed, sim_days=_sim_days)


def _sim_days() -> SimDay:
    """The simulator's day maker for Tools → Backtest…, imported when a sweep starts (not at the first paint)."""
    from desktop.cli.sim_day import sim_day

    return sim_day
