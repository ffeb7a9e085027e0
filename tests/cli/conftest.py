"""Helpers for running `kitedesk` as a real process, the way a trader's terminal does."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from desktop.resources import resource_path
from tests.simkit import demo_start

DEMO_WORKSPACE = str(resource_path("demo_workspace.toml"))
# Printed by the keyring library's check on a machine without a keyring, before any command runs.
KEYRING_NOTICE = "no secure keyring available"


def kitedesk_env() -> dict[str, str]:
    """The environment of a test's `kitedesk` process: headless Qt, no real keyring."""
    return dict(
        os.environ, QT_QPA_PLATFORM="offscreen", PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring"
    )


def kitedesk_cmd(*args: str) -> list[str]:
    """The command line of `kitedesk ARGS...` run from this checkout."""
    return [sys.executable, "-m", "desktop.cli", *args]


def run_kitedesk(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Runs `kitedesk ARGS...` to its end."""
    return subprocess.run(
        kitedesk_cmd(*args), capture_output=True, text=True, timeout=timeout, env=kitedesk_env()
    )


def said(stderr: str) -> list[str]:
    """The lines a command wrote to stderr, without the keyring library's notice."""
    return [line for line in stderr.splitlines() if line.strip() and KEYRING_NOTICE not in line]


def snapshot(home: Path) -> dict[str, bytes]:
    """Every file of `home` and its bytes (to show that a refused command changed nothing)."""
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}


def demo_run_args(home: Path, *extra: str) -> Sequence[str]:
    """`kitedesk run` of the shipped demo workspace on the embedded simulator."""
    return (
        "run",
        DEMO_WORKSPACE,
        "--demo",
        "--speed",
        "120",
        "--start",
        demo_start("09:20"),
        "--home",
        str(home),
        *extra,
    )
