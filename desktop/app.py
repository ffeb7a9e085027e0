"""Composition root and command line: `kitedesk [--demo] | kitedesk sim ... | kitedesk export ...`."""

from __future__ import annotations

import contextlib
import faulthandler
import sys
from collections.abc import Callable, Sequence


def _sim(argv: Sequence[str]) -> int:
    from desktop.broker.sim.cli import main

    return main(argv)


def _export(argv: Sequence[str]) -> int:
    from desktop.store.export_cli import main

    return main(argv)


def _sync(argv: Sequence[str]) -> int:
    from desktop.sync.cli import main

    return main(argv)


def _run(argv: Sequence[str]) -> int:
    from desktop.engine.headless import run

    return run(argv)


def _login(argv: Sequence[str]) -> int:
    from desktop.engine.accounts_cli import login

    return login(argv)


def _profiles(argv: Sequence[str]) -> int:
    from desktop.engine.accounts_cli import profiles

    return profiles(argv)


SUBCOMMANDS: dict[str, tuple[Callable[[Sequence[str]], int], str]] = {
    "sim": (_sim, "run the Kite-compatible market and broker simulator"),
    "export": (_export, "export an account's trades to CSV"),
    "run": (_run, "run a workspace's sessions without a window"),
    "login": (_login, "log a profile in to Kite from a terminal"),
    "profiles": (_profiles, "list or add broker profiles"),
    "sync": (_sync, "sync accounts' records with a central PostgreSQL"),
}


def _gui(argv: Sequence[str]) -> int:
    """The desktop window: `kitedesk [--demo] [--speed X] [--home DIR] [--theme dark|light]`."""
    from desktop.ui.launch import run_gui

    return run_gui(argv)


def _usage() -> str:
    lines = ["usage: kitedesk [--demo] [--speed X] [--home DIR]   (the desktop window)"]
    lines += ["       kitedesk COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines += ["", "Run `kitedesk COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `kitedesk` console script."""
    # A crash in native code (Qt, a driver) would otherwise end the process without a word: the Python
    # stacks of every thread go to stderr. Trading state is in the journal either way.
    if sys.stderr is not None and not faulthandler.is_enabled():
        # A stderr without a file (a windowed launcher) cannot take it.
        with contextlib.suppress(AttributeError, OSError, ValueError):
            faulthandler.enable(all_threads=True)
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMANDS:
        func, _ = SUBCOMMANDS[args[0]]
        return func(args[1:])
    if args and args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    return _gui(args)


if __name__ == "__main__":
    sys.exit(main())
