"""The workspace file (issue 5 §7): the sessions to run, as TOML, opened by `kitedesk run` and the GUI.

```toml
[[session]]
profile = "UK9394"            # broker account (user id)
label = "Computer 1"
segments = ["NIFTY", "BANKNIFTY"]
lots = 1
stop_loss = 5                 # percent
itm_offset = 100              # points
mode = "PAPER"                # "LIVE" also needs confirm_live = true to start from this file
on_stop = "square_off"        # or "keep": what stopping the session does with an open position
fast_ema = 9                  # optional settings: every one is in desktop.engine.param_spec.FIELDS
square_off = "15:15"          # 15:20 at the latest (Zerodha squares off intraday options from 15:25)
[session.options]             # optional settings of a plug-in strategy
[session.freeze]              # optional: units per order, when the exchange revised its freeze quantity
NIFTY = 1800                  # (a top-level [freeze] table sets it for every session)
```
Every problem in the file is reported at once, each naming the session and the field. A session's parameters
are read and written by `params.parse_params` and `params.params_to_dict`, both driven by the parameter spec, so
a setting added to the spec is in the file with no change here; `SESSION_FIELDS` are the session's own keys.
"""

from __future__ import annotations

import enum
import os
import re
import tempfile
import tomllib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from desktop.domain import StrategyParams
from desktop.engine.params import ParamsError, params_to_dict, parse_params

_PROFILE_RE = re.compile(r"^[A-Za-z0-9]{2,20}$")
SESSION_FIELDS = frozenset({"profile", "label", "on_stop"})
TOP_LEVEL_FIELDS = frozenset({"session", "version", "freeze"})
VERSION = 1


class OnStop(enum.StrEnum):
    """What stopping a session does with its open positions."""

    SQUARE_OFF = "square_off"
    KEEP = "keep"  # keep them under their stop loss (the LIVE SL order stays at the broker)


class WorkspaceError(ValueError):
    """A workspace file that cannot be used; `.problems` lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True, slots=True)
class SessionEntry:
    """One session of a workspace: which account, its tab label, its parameters."""

    profile: str
    label: str
    params: StrategyParams
    on_stop: OnStop = OnStop.SQUARE_OFF
    # LIVE confirmed in the file (`confirm_live = true`): only then may it start without asking. The GUI never
    # writes it: a LIVE tab is confirmed on Start, and a headless run needs a person to confirm it in the file.
    live_confirmed: bool = False


@dataclass(frozen=True, slots=True)
class Workspace:
    """The sessions of one workspace file, in file order."""

    sessions: tuple[SessionEntry, ...]


def _session_name(index: int, table: dict[str, Any]) -> str:
    profile, label = table.get("profile"), table.get("label")
    parts = [f"session {index}"]
    if isinstance(profile, str) and profile:
        parts.append(profile)
    if isinstance(label, str) and label:
        parts.append(repr(label))
    return " ".join(parts) if len(parts) == 1 else f"{parts[0]} ({' '.join(parts[1:])})"


def parse_workspace(
    data: dict[str, Any],
    known_strategies: Collection[str] | None = None,
    *,
    live_needs_confirmation: bool = True,
    unique_labels: bool = True,
) -> Workspace:
    """A Workspace from parsed TOML data, or WorkspaceError listing every problem.

    A LIVE session without `confirm_live = true` is a problem unless `live_needs_confirmation` is False (the GUI
    opening tabs, which ask on Start); each entry says whether its LIVE was confirmed in the file. Two sessions of
    one account with one label are a problem unless `unique_labels` is False (the window's own tabs file, written
    before labels had to differ: it tells them apart itself).
    """
    problems = [
        f"unknown top-level setting {k!r} (expected [[session]] tables)"
        for k in sorted(set(data) - TOP_LEVEL_FIELDS)
    ]
    version = data.get("version", VERSION)
    if version != VERSION:
        problems.append(
            f"workspace version {version!r} is not supported (this KiteDesk reads version {VERSION})"
        )
    shared_freeze = data.get(
        "freeze", {}
    )  # [freeze]: every session's freeze quantities (units), NIFTY = 1800
    if not isinstance(shared_freeze, dict):
        problems.append("[freeze] must be a table of index names and units, like NIFTY = 1800")
    tables = data.get("session")
    if not isinstance(tables, list) or not tables:
        raise WorkspaceError([*problems, "the workspace has no sessions: add a [[session]] table"])
    sessions: list[SessionEntry] = []
    labelled: dict[tuple[str, str], int] = {}  # (profile, label) -> the session that has it
    for index, table in enumerate(tables, start=1):
        if not isinstance(table, dict):
            problems.append(f"session {index} must be a [[session]] table")
            continue
        where = _session_name(index, table)
        mine: list[str] = []
        profile = table.get("profile")
        if not isinstance(profile, str) or not _PROFILE_RE.match(profile):
            mine.append("profile must be the broker account's user id, like UK9394")
        label = table.get("label", profile if isinstance(profile, str) else "")
        if not isinstance(label, str):
            mine.append("label must be text")
        elif isinstance(profile, str) and unique_labels:
            # A restart finds each session's kept position and orders by its account and label: two alike would
            # take over each other's.
            other = labelled.setdefault((profile, label), index)
            if other != index:
                mine.append(
                    f"session {other} of {profile} has the label {label!r} too: give each its own label"
                )
        on_stop_raw = table.get("on_stop", OnStop.SQUARE_OFF.value)
        try:
            on_stop = OnStop(str(on_stop_raw).strip().lower())
        except ValueError:
            mine.append(f'on_stop must be "square_off" or "keep", not {on_stop_raw!r}')
            on_stop = OnStop.SQUARE_OFF
        params: StrategyParams | None = None
        try:
            raw = {k: v for k, v in table.items() if k not in SESSION_FIELDS}
            if isinstance(shared_freeze, dict) and isinstance(raw.get("freeze", {}), dict):
                raw["freeze"] = {**shared_freeze, **raw.get("freeze", {})}  # the session's own figure wins
            params = parse_params(
                raw, confirm_live=not live_needs_confirmation, known_strategies=known_strategies
            )
        except ParamsError as e:
            mine.extend(e.problems)
        problems.extend(f"{where}: {p}" for p in mine)
        if not mine and params is not None:
            confirmed = table.get("confirm_live") is True
            sessions.append(SessionEntry(str(profile), str(label), params, on_stop, confirmed))
    if problems:
        raise WorkspaceError(problems)
    return Workspace(tuple(sessions))


def load_workspace(
    path: str | os.PathLike[str],
    known_strategies: Collection[str] | None = None,
    *,
    live_needs_confirmation: bool = True,
    unique_labels: bool = True,
) -> Workspace:
    """Reads and validates a workspace file (see `parse_workspace`)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkspaceError([f"workspace file not found: {p}"]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise WorkspaceError([f"cannot read workspace file {p}: {e}"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise WorkspaceError([f"{p.name} is not valid TOML: {e}"]) from None
    return parse_workspace(
        data, known_strategies, live_needs_confirmation=live_needs_confirmation, unique_labels=unique_labels
    )


def workspace_to_dict(workspace: Workspace) -> dict[str, Any]:
    """Plain data that `parse_workspace` reads back into an equal Workspace."""
    sessions = []
    for entry in workspace.sessions:
        table: dict[str, Any] = {"profile": entry.profile, "label": entry.label}
        table |= params_to_dict(entry.params, confirm_live=entry.live_confirmed)
        table["on_stop"] = entry.on_stop.value
        sessions.append(table)
    return {"version": VERSION, "session": sessions}


def save_workspace(path: str | os.PathLike[str], workspace: Workspace) -> None:
    """Writes the workspace atomically (a crash never leaves half a file)."""
    p = Path(path)
    payload = tomli_w.dumps(workspace_to_dict(workspace))
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
