"""Files shipped with KiteDesk (package data): the demo workspace; find them with `resource_path`."""

from __future__ import annotations

from pathlib import Path


def resource_path(name: str) -> Path:
    """The installed path of a shipped file, e.g. resource_path("demo_workspace.toml")."""
    return Path(__file__).with_name(name)
