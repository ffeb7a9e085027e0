"""The `kitedesk` command line says what it does (issue 21): unknown commands refused in words, every
option of every command in its help with an example, one market-start format, shell completion,
`--version`, and the README's command list kept equal to `kitedesk --help`."""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
from datetime import date, datetime
from importlib.metadata import version
from pathlib import Path

import pytest

from desktop.broker.sim.start import parse_market_start
from desktop.cli import main as app
from desktop.cli.main import SUBCOMMANDS, Command, window_parser
from tests.cli.conftest import demo_run_args, kitedesk_cmd, kitedesk_env, run_kitedesk
from tests.simkit import demo_start

ROOT = Path(__file__).resolve().parent.parent


def _every_parser() -> dict[str, argparse.ArgumentParser]:
    parsers = {"kitedesk": window_parser()}
    for name, cmd in SUBCOMMANDS.items():
        parsers[f"kitedesk {name}"] = cmd.build_parser()
    for prog, parser in list(parsers.items()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers |= {f"{prog} {sub}": p for sub, p in action.choices.items()}
    return parsers


# -- unknown commands -----------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["frobnicate", "--help"], ["rewind", "day.toml"], ["rnu", "ws.toml"]])
def test_an_unknown_command_is_refused_in_words_with_the_command_list(argv: list[str]) -> None:
    done = run_kitedesk(*argv, timeout=60)
    assert done.returncode == 2 and done.stdout == "", (done.returncode, done.stdout)
    assert f"{argv[0]!r} is not a command" in done.stderr and "Traceback" not in done.stderr
    for name in SUBCOMMANDS:
        assert name in done.stderr
    if argv[0] == "rnu":
        assert "Did you mean `kitedesk run`?" in done.stderr


# -- help --------------------------------------------------------------------------------------------------


def test_every_option_of_every_command_is_in_its_help_with_an_example() -> None:
    parsers = _every_parser()
    assert set(parsers) >= {"kitedesk", "kitedesk profiles add"} | {f"kitedesk {n}" for n in SUBCOMMANDS}
    for prog, parser in parsers.items():
        text = parser.format_help()
        for action in parser._actions:
            for opt in action.option_strings:
                assert opt in text, (prog, opt)
            if action.option_strings and not isinstance(action, argparse._HelpAction):
                assert action.help and action.help != argparse.SUPPRESS, (prog, action.option_strings)
        examples = [line for line in text.splitlines() if line.strip().startswith(("example:", "kitedesk "))]
        command = prog.removesuffix(" add")
        assert any(command in line for line in examples), (prog, text)


def test_the_programs_help_shows_the_windows_options_and_the_commands() -> None:
    done = run_kitedesk("--help", timeout=60)
    assert done.returncode == 0
    for opt in ("--demo", "--speed", "--seed", "--theme", "--home", "--version"):
        assert opt in done.stdout
    for name, cmd in SUBCOMMANDS.items():
        assert re.search(rf"^  {name}\s+{re.escape(cmd.summary)}$", done.stdout, re.M), name


def test_the_windows_demo_start_is_checked_before_anything_opens(tmp_path) -> None:
    home = tmp_path / "home"
    alone = run_kitedesk("--start", "09:20", "--home", str(home), timeout=60)
    assert alone.returncode == 2 and "use it with --demo" in alone.stderr
    bad = run_kitedesk("--demo", "--start", "25:61", "--home", str(home), timeout=60)
    assert bad.returncode == 2 and "argument --start" in bad.stderr
    assert not home.exists()  # refused before any folder was made


def test_the_windows_demo_starts_its_market_where_asked(monkeypatch) -> None:
    from datetime import datetime

    from desktop.cli import demo

    started: list[datetime] = []
    monkeypatch.setattr(demo, "start_demo", lambda engine, **kw: started.append(kw["start"]))
    demo.window_demo(60.0, 1, datetime(2026, 12, 7, 9, 19))(None)  # type: ignore[arg-type]
    demo.window_demo(60.0, 1)(None)  # type: ignore[arg-type]
    assert started == [datetime(2026, 12, 7, 9, 19), demo.demo_start_time()]


def test_version() -> None:
    done = run_kitedesk("--version", timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"kitedesk {version('kitedesk')}"


def test_a_new_command_is_one_entry_of_the_table(monkeypatch, capsys) -> None:
    monkeypatch.setitem(
        SUBCOMMANDS, "hello", Command("tests.test_app:_hello", "tests.test_app:_hello_parser", "say hello")
    )
    assert app.main(["hello", "--name", "Asha"]) == 7
    assert capsys.readouterr().out == "hello Asha\n"
    assert "  hello       say hello" in window_parser().format_help()
    assert app.main(["completion", "bash"]) == 0
    assert "hello) opts='-h --help --name'" in capsys.readouterr().out


def _hello_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kitedesk hello", epilog="example: kitedesk hello --name Asha")
    p.add_argument("--name", help="who")
    return p


def _hello(argv: list[str]) -> int:
    print(f"hello {_hello_parser().parse_args(argv).name}")
    return 7


# -- one market-start format -----------------------------------------------------------------------------


def test_a_market_start_is_hh_mm_or_a_full_date_and_time() -> None:
    friday = date(2026, 1, 9)
    assert parse_market_start("09:20", today=friday) == datetime(2026, 1, 9, 9, 20)
    assert parse_market_start("09:20", today=date(2026, 1, 10)) == datetime(2026, 1, 9, 9, 20)  # a Saturday
    assert parse_market_start("2026-01-08T14:05") == datetime(2026, 1, 8, 14, 5)
    for bad in ("9.20", "25:00", "tomorrow", "2026-01-08 09:20", ""):
        with pytest.raises(ValueError, match="HH:MM or YYYY-MM-DDTHH:MM"):
            parse_market_start(bad)


@pytest.mark.parametrize("command", ["run", "sim"])
def test_run_and_sim_take_both_spellings_of_the_start(command: str) -> None:
    parser = SUBCOMMANDS[command].build_parser()
    head = ["ws.toml"] if command == "run" else []
    full = parser.parse_args([*head, "--start", "2026-01-08T09:20"]).start
    short = parser.parse_args([*head, "--start", "09:20"]).start
    assert full == datetime(2026, 1, 8, 9, 20) and (short.hour, short.minute) == (9, 20)
    assert "HH:MM" in parser.format_help() and "YYYY-MM-DDTHH:MM" in parser.format_help()


@pytest.mark.parametrize("command", ["run", "sim"])
def test_a_bad_start_is_refused_in_words(command: str, tmp_path: Path) -> None:
    head = ["ws.toml"] if command == "run" else []
    done = run_kitedesk(command, *head, "--start", "9.20", timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "use HH:MM or YYYY-MM-DDTHH:MM" in done.stderr


def test_sim_starts_at_an_hh_mm_start() -> None:
    proc = subprocess.Popen(
        kitedesk_cmd("sim", "--port", "0", "--start", "10:05"),
        stdout=subprocess.PIPE,
        text=True,
        env=kitedesk_env(),
    )
    try:
        assert proc.stdout is not None
        assert re.search(r"market time \d{4}-\d\d-\d\d 10:05:", proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


@pytest.mark.slow
def test_run_trades_from_a_full_date_start(tmp_path: Path) -> None:
    args = [
        a if a != demo_start("09:20") else "2026-01-08T10:00"
        for a in demo_run_args(tmp_path / "home", "--for", "2")
    ]
    done = run_kitedesk(*args, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"^\[10:0\d:\d\d\] UK9394 'Computer 1' PAPER", done.stdout, re.M), done.stdout[-2000:]


# -- shell completion ------------------------------------------------------------------------------------


def _complete_in_bash(script: str, *words: str) -> list[str]:
    line = " ".join(words)
    program = (
        f'{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; _kitedesk; echo "${{COMPREPLY[*]}}"'
    )
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_commands_options_and_choices() -> None:
    done = run_kitedesk("completion", "bash", timeout=60)
    assert done.returncode == 0
    script = done.stdout
    assert _complete_in_bash(script, "kitedesk", "ex") == ["export"]
    assert _complete_in_bash(script, "kitedesk", "run", "--st") == ["--start"]
    assert _complete_in_bash(script, "kitedesk", "--th") == ["--theme"]
    assert _complete_in_bash(script, "kitedesk", "profiles", "a") == ["add"]
    assert _complete_in_bash(script, "kitedesk", "completion", "") == ["bash", "zsh", "fish"]
    assert set(_complete_in_bash(script, "kitedesk", "export", "--f")) == {"--from", "--force"}


def test_zsh_and_fish_scripts_cover_every_command_and_option() -> None:
    zsh = run_kitedesk("completion", "zsh", timeout=60)
    fish = run_kitedesk("completion", "fish", timeout=60)
    assert zsh.returncode == fish.returncode == 0
    assert zsh.stdout.startswith("#compdef kitedesk") and "bashcompinit" in zsh.stdout
    for name, cmd in SUBCOMMANDS.items():
        quoted = cmd.summary.replace("'", "\\'")  # fish's single-quote escape
        assert f"-a {name} -d '{quoted}'" in fish.stdout
    for prog, parser in _every_parser().items():
        name = prog.split()[1] if " " in prog else None
        where = f"__fish_seen_subcommand_from {name}'" if name else "__fish_use_subcommand'"
        for action in parser._actions:
            for opt in action.option_strings:
                flag = f"-l {opt[2:]}" if opt.startswith("--") else f"-s {opt[1:]}"
                assert f"{where} {flag} -d" in fish.stdout, (prog, opt)
    if shutil.which("fish"):
        check = subprocess.run(["fish", "--no-execute"], input=fish.stdout, capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
    if shutil.which("zsh"):
        check = subprocess.run(["zsh", "-n"], input=zsh.stdout, capture_output=True, text=True)
        assert check.returncode == 0, check.stderr


def test_a_bad_shell_is_refused() -> None:
    done = run_kitedesk("completion", "powershell", timeout=60)
    assert done.returncode == 2 and "invalid choice" in done.stderr


# -- the README --------------------------------------------------------------------------------------------


def test_the_readmes_command_list_is_kitedesk_help() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Commands", 1)[1]
    block = re.search(r"```text\n(commands:\n.*?)```", section, re.S)
    assert block, "README.md has no ```text block with the commands under ## Commands"
    done = run_kitedesk("--help", timeout=60)
    assert block.group(1).rstrip("\n") in done.stdout
    listed = re.findall(r"^  (\S+)", block.group(1), re.M)
    assert listed == list(SUBCOMMANDS)


def test_help_version_and_a_bad_option_load_neither_qt_nor_the_simulator() -> None:
    code = (
        "import sys\n"
        "from desktop.cli.main import main\n"
        "for argv in (['--help'], ['--version'], ['--fresh'], ['--theme', 'pink']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('LOADED', sorted(m for m in sys.modules if m.startswith(('PySide6', 'desktop.broker.sim'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=kitedesk_env()
    )
    assert "LOADED []" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
