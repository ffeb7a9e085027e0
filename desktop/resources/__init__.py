"""Files shipped with KiteDesk (package data): the demo workspace; find them with `resource_path`."""

from __future__ import annotations

import sys
from pathlib import Path

APP_ICON = "kitedesk-256.png"


def resource_path(name: str) -> Path:
    """The installed path of a shipped file, e.g. resource_path("demo_workspace.toml")."""
    return Path(__file__).with_name(name)


def app_icon_file() -> str:
    """The app icon (made by tools/make_icons.py into the top-level resources/), or "" where none is found.

    Looked for in the frozen app (build_installer.spec bundles resources/icons), in a source checkout, and in
    a pip install's data folder (pyproject's data-files); without it the window keeps the platform's icon.
    """
    places = [
        Path(__file__).resolve().parents[2] / "resources" / "icons",
        Path(sys.prefix) / "share" / "kitedesk",
    ]
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        places.insert(0, Path(frozen) / "resources" / "icons")
    return next((str(p / APP_ICON) for p in places if (p / APP_ICON).is_file()), "")
