"""Shell completion scripts (bash, zsh, fish) written from the commands' own argparse parsers.

Generated, not kept by hand: an option added to a parser is completed with no other change. The scripts
complete the command word, each command's options and its fixed choices (`completion bash|zsh|fish`,
`profiles add`); anything else falls back to file names (workspaces, CSV files, folders).
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Mapping


def options(parser: argparse.ArgumentParser) -> list[str]:
    """Every option string of `parser` and of its sub-commands (`profiles add --api-key`), in order."""
    found: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += [o for o in options(sub) if o not in found]
        else:
            found += [o for o in action.option_strings if o not in found]
    return found


def choices(parser: argparse.ArgumentParser) -> list[str]:
    """The fixed words a command takes where no option is given (sub-commands, positional choices)."""
    words: list[str] = []
    for action in parser._actions:
        if not action.option_strings and action.choices is not None:
            words += [str(c) for c in action.choices]
    return words


def _helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    found: dict[str, str] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= {k: v for k, v in _helps(sub).items() if k not in found}
        for opt in action.option_strings:
            found.setdefault(opt, (action.help or "").replace("%(default)s", str(action.default)))
    return found


def bash(prog: str, window: argparse.ArgumentParser, commands: Mapping[str, argparse.ArgumentParser]) -> str:
    """A bash script defining `_<prog>` and registering it with `complete`."""
    func = "_" + prog.replace("-", "_")
    cases = []
    for name, parser in commands.items():
        cases.append(
            f"        {name}) opts={shlex.quote(' '.join(options(parser)))}; words={shlex.quote(' '.join(choices(parser)))};;"
        )
    return "\n".join(
        [
            f"# bash completion for {prog}: `{prog} completion bash > ~/.local/share/bash-completion/completions/{prog}`",
            f"{func}() {{",
            '    local cur="${COMP_WORDS[COMP_CWORD]}" opts words',
            '    if [[ ${COMP_CWORD} -eq 1 && ${cur} != -* ]]; then',
            f"        COMPREPLY=($(compgen -W {shlex.quote(' '.join(commands))} -- \"${{cur}}\"))",
            "        return",
            "    fi",
            '    case "${COMP_WORDS[1]}" in',
            *cases,
            f"        *) opts={shlex.quote(' '.join(options(window)))}; words='';;",
            "    esac",
            '    if [[ ${cur} == -* ]]; then',
            '        COMPREPLY=($(compgen -W "${opts}" -- "${cur}"))',
            "    else",
            '        COMPREPLY=($(compgen -W "${words}" -- "${cur}"))',
            "    fi",
            "}",
            f"complete -o default -F {func} {prog}",
            "",
        ]
    )  # fmt: skip


def zsh(prog: str, window: argparse.ArgumentParser, commands: Mapping[str, argparse.ArgumentParser]) -> str:
    """zsh runs the bash script through its bashcompinit layer (add `source <(kitedesk completion zsh)`)."""
    return "\n".join(
        [
            f"#compdef {prog}",
            f"# zsh completion for {prog}: `source <({prog} completion zsh)` in ~/.zshrc",
            "(( $+functions[compdef] )) || { autoload -U +X compinit && compinit }",
            "autoload -U +X bashcompinit && bashcompinit",
            bash(prog, window, commands),
        ]
    )


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_option(prog: str, condition: str, opt: str, help_: str) -> str:
    flag = f"-l {opt[2:]}" if opt.startswith("--") else f"-s {opt[1:]}"
    return f"complete -c {prog} -n {_fish_quote(condition)} {flag} -d {_fish_quote(help_)}"


def fish(
    prog: str,
    window: argparse.ArgumentParser,
    commands: Mapping[str, tuple[argparse.ArgumentParser, str]],
) -> str:
    """A fish script of `complete` lines: the commands first, then each command's options and choices."""
    lines = [
        f"# fish completion for {prog}: `{prog} completion fish > ~/.config/fish/completions/{prog}.fish`"
    ]
    first = "__fish_use_subcommand"
    for name, (_, summary) in commands.items():
        lines.append(f"complete -c {prog} -n {first} -f -a {name} -d {_fish_quote(summary)}")
    for opt, help_ in _helps(window).items():
        lines.append(_fish_option(prog, first, opt, help_))
    for name, (parser, _) in commands.items():
        seen = f"__fish_seen_subcommand_from {name}"
        for word in choices(parser):
            lines.append(f"complete -c {prog} -n {_fish_quote(seen)} -a {word}")
        for opt, help_ in _helps(parser).items():
            lines.append(_fish_option(prog, seen, opt, help_))
    return "\n".join(lines) + "\n"


def script(
    shell: str,
    prog: str,
    window: argparse.ArgumentParser,
    commands: Mapping[str, tuple[argparse.ArgumentParser, str]],
) -> str:
    """The completion script of `prog` for `shell` ("bash", "zsh" or "fish")."""
    if shell == "fish":
        return fish(prog, window, commands)
    parsers = {name: parser for name, (parser, _) in commands.items()}
    return zsh(prog, window, parsers) if shell == "zsh" else bash(prog, window, parsers)
