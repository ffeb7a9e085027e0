"""Where KiteDesk keeps its data: one home folder holding `kitedesk.db` and `logs/`."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

DB_FILENAME = "kitedesk.db"
LOGS_DIRNAME = "logs"
HOME_ENV = "KITEDESK_HOME"
APP_NAME = "KiteDesk"


def resolve_home(cli_home: str | None) -> Path:
    """The home folder: `--home DIR`, else $KITEDESK_HOME, else the platform's user data folder."""
    if cli_home:
        return Path(cli_home).expanduser().resolve()
    env_home = os.environ.get(HOME_ENV, "").strip()
    if env_home:
        return Path(env_home).expanduser().resolve()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def logs_dir(home: Path) -> Path:
    """The folder for log files inside `home` (not created here)."""
    return home / LOGS_DIRNAME
