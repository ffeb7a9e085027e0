"""The entry point: `kitedesk` (the window, desktop/cli/gui.py) and `kitedesk COMMAND ...`.

desktop/cli is the composition root: its modules alone build the engine with its home, secret store and
clock, and alone know the simulator (desktop/cli/demo.py).

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
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from desktop.cli.gui import DEFAULT_DEMO_SPEED, WINDOW_EXAMPLES

__all__ = ["DEFAULT_DEMO_SPEED", "SUBCOMMANDS", "WINDOW_EXAMPLES", "Command", "main", "window_parser"]


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
    "export": Command("desktop.cli.export:main", "desktop.cli.export:build_parser", "export an account's trades to CSV"),
    "run": Command("desktop.cli.run:run", "desktop.cli.run:build_parser", "run a workspace's sessions without a window"),
    "login": Command("desktop.cli.accounts:login", "desktop.cli.accounts:login_parser", "log a profile in to Kite from a terminal"),
    "profiles": Command("desktop.cli.accounts:profiles", "desktop.cli.accounts:profiles_parser", "list or add broker profiles"),
    "record": Command("desktop.cli.record:main", "desktop.cli.record:build_parser", "record an account's market data without trading"),
    "replay": Command("desktop.cli.replay:main", "desktop.cli.replay:build_parser", "replay a recorded or simulated day through a workspace (PAPER)"),
    "backtest": Command("desktop.cli.backtest:main", "desktop.cli.backtest:build_parser", "sweep parameters over recorded or simulated days"),
    "sync": Command("desktop.sync.cli:main", "desktop.sync.cli:build_parser", "sync accounts' records with a central PostgreSQL"),
    "completion": Command("desktop.cli.main:completion", "desktop.cli.main:completion_parser", "print shell completion for bash, zsh or fish"),
}  # fmt: skip


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
    """`kitedesk [options]`: the desktop window (desktop/cli/gui.py); its help lists the commands."""
    from desktop.cli.gui import window_parser as gui_parser

    return gui_parser(commands_help())


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
    from desktop.cli.gui import window

    return window(argv, commands_help())


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
