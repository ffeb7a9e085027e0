"""Composition root and command line: `kitedesk` (the window) and `kitedesk COMMAND ...`.

`SUBCOMMANDS` is the one list of commands: the dispatcher, `kitedesk --help`, shell completion and the
README's command list (checked by a test) all read it, so a new command is one line here. A command is
named by where its entry point and its parser live ("module:function"), loaded only when used: `kitedesk
--help` and `kitedesk --version` load neither Qt nor the simulator.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import faulthandler
import importlib
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_DEMO_SPEED = 60.0  # a 1-minute bar every second: charts move and trades come within seconds


@dataclass(frozen=True, slots=True)
class Command:
    """One `kitedesk COMMAND`: its entry point `(argv) -> exit code` and its argparse parser, as
    "module:function" (imported on use), and the line `kitedesk --help` shows for it."""

    entry: str
    parser: str
    summary: str

    def run(self, argv: Sequence[str]) -> int:
        """Runs the command with its own arguments; returns its exit code."""
        return int(_load(self.entry)(argv))

    def build_parser(self) -> argparse.ArgumentParser:
        """The command's parser (for help, completion and the tests that hold them to each other)."""
        parser = _load(self.parser)()
        assert isinstance(parser, argparse.ArgumentParser)
        return parser


SUBCOMMANDS: dict[str, Command] = {
    "sim": Command("desktop.broker.sim.cli:main", "desktop.broker.sim.cli:build_parser", "run the Kite-compatible market and broker simulator"),
    "export": Command("desktop.store.export_cli:main", "desktop.store.export_cli:build_parser", "export an account's trades to CSV"),
    "run": Command("desktop.engine.headless:run", "desktop.engine.headless:build_parser", "run a workspace's sessions without a window"),
    "login": Command("desktop.engine.accounts_cli:login", "desktop.engine.accounts_cli:login_parser", "log a profile in to Kite from a terminal"),
    "profiles": Command("desktop.engine.accounts_cli:profiles", "desktop.engine.accounts_cli:profiles_parser", "list or add broker profiles"),
    "record": Command("desktop.engine.record_cli:main", "desktop.engine.record_cli:build_parser", "record an account's market data without trading"),
    "replay": Command("desktop.engine.replay_cli:main", "desktop.engine.replay_cli:build_parser", "replay a recorded or simulated day through a workspace (PAPER)"),
    "backtest": Command("desktop.engine.backtest_cli:main", "desktop.engine.backtest_cli:build_parser", "sweep parameters over recorded or simulated days"),
    "sync": Command("desktop.sync.cli:main", "desktop.sync.cli:build_parser", "sync accounts' records with a central PostgreSQL"),
    "completion": Command("desktop.app:completion", "desktop.app:completion_parser", "print shell completion for bash, zsh or fish"),
}  # fmt: skip

WINDOW_EXAMPLES = ("kitedesk --demo --speed 10", "kitedesk --home ~/kitedesk-test --theme light")


def _load(ref: str) -> Callable[..., Any]:
    module, _, name = ref.partition(":")
    func = getattr(importlib.import_module(module), name)
    assert callable(func), ref
    return func  # type: ignore[no-any-return]


def version() -> str:
    """The installed package's version (the source's own when run from a frozen build)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version("kitedesk")
    except PackageNotFoundError:
        from desktop import __version__

        return __version__


def commands_help() -> str:
    """The `commands:` section of `kitedesk --help` (the README shows it verbatim)."""
    lines = ["commands:"] + [f"  {name:<11} {cmd.summary}" for name, cmd in SUBCOMMANDS.items()]
    return "\n".join(lines)


def window_parser() -> argparse.ArgumentParser:
    """`kitedesk [options]`: the desktop window; its help is the program's help, commands included."""
    examples = "\n".join(f"  {line}" for line in WINDOW_EXAMPLES)
    p = argparse.ArgumentParser(
        prog="kitedesk",
        usage="kitedesk [options]          (the desktop window)\n       kitedesk COMMAND [options]",
        description="KiteDesk: a desktop trading client for Zerodha Kite Connect. Without a command it opens "
        "the window.",
        epilog=f"{commands_help()}\n\nRun `kitedesk COMMAND --help` for a command's options and an example."
        f"\n\nexamples:\n{examples}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"kitedesk {version()}")
    p.add_argument("--demo", action="store_true", help="run three sessions on the built-in simulator")
    p.add_argument(
        "--speed",
        type=float,
        default=DEFAULT_DEMO_SPEED,
        help="demo market speed, simulated seconds per second (default %(default)g)",
    )
    p.add_argument("--seed", type=int, default=1, help="demo market seed: the same seed, the same prices")
    p.add_argument("--theme", choices=("dark", "light"), help="colour theme (default: the last one used)")
    p.add_argument(
        "--home",
        metavar="DIR",
        help="data folder (default: $KITEDESK_HOME or your user data folder; the demo: a fresh temporary one)",
    )
    return p


def completion_parser() -> argparse.ArgumentParser:
    """The `kitedesk completion` command line."""
    p = argparse.ArgumentParser(
        prog="kitedesk completion",
        description="Print the shell completion script of kitedesk for SHELL.",
        epilog="example: kitedesk completion bash > ~/.local/share/bash-completion/completions/kitedesk\n"
        "(zsh: `source <(kitedesk completion zsh)` in ~/.zshrc; fish: `kitedesk completion fish > "
        "~/.config/fish/completions/kitedesk.fish`)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("shell", choices=("bash", "zsh", "fish"), help="the shell to complete in")
    return p


def completion(argv: Sequence[str]) -> int:
    """The `kitedesk completion SHELL` command."""
    from desktop.completion import script

    args = completion_parser().parse_args(list(argv))
    parsers = {name: (cmd.build_parser(), cmd.summary) for name, cmd in SUBCOMMANDS.items()}
    print(script(args.shell, "kitedesk", window_parser(), parsers), end="")
    return 0


def _unknown(word: str) -> int:
    close = difflib.get_close_matches(word, SUBCOMMANDS, n=1)
    hint = f" Did you mean `kitedesk {close[0]}`?" if close else ""
    print(
        f"kitedesk: {word!r} is not a command.{hint} The commands are: {', '.join(SUBCOMMANDS)}; "
        "`kitedesk --help` says what each does.",
        file=sys.stderr,
    )
    return 2


def _window(argv: Sequence[str]) -> int:
    """The desktop window, on the home this process picks and locks (the engine holds the lock)."""
    from desktop.store.home import resolve_home

    args = window_parser().parse_args(list(argv))
    if args.home or not args.demo:
        home, temporary = resolve_home(args.home), False
    else:  # the demo trades in a fresh folder of its own unless told where
        home, temporary = Path(tempfile.mkdtemp(prefix="kitedesk-demo-")), True
    # What this process writes (database, logs, the window's settings) is its owner's only (issue 16 §11).
    os.umask(0o077)
    from desktop.ui.launch import run_gui

    return run_gui(args, home, temporary)


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
        try:
            return SUBCOMMANDS[args[0]].run(args[1:])
        except KeyboardInterrupt:  # Ctrl-C in a command that does not catch it: its finally blocks have run
            print(f"kitedesk {args[0]}: interrupted", file=sys.stderr)
            return 130
    if args and not args[0].startswith("-"):
        return _unknown(args[0])  # the window takes no words: a typo must not open it (or its help)
    return _window(args)


if __name__ == "__main__":
    sys.exit(main())
