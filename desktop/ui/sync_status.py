"""The status bar's `sync:` label: one word for every account that syncs, each account's own line on hover.

The figures come from `Engine.sync_statuses()` (no I/O: each sync thread keeps a snapshot), pulled by the
window's pacer with the other totals a few times a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from PySide6.QtWidgets import QLabel

if TYPE_CHECKING:
    from desktop.ui.theme import Theme

OFF_TIP = "No account syncs with a central database. File → Sync settings… turns it on for a profile."
MAX_CHARS = 90
# The word a trader must see first: an error over an offline account over pending records over the rest.
_RANK = {"error": 0, "offline": 1, "pending": 2, "starting": 3, "synced": 4}


class StatusLike(Protocol):
    """What the label needs of one account's status (desktop.engine's SyncAccountStatus)."""

    @property
    def user_id(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def pending(self) -> int: ...


def sync_summary(statuses: Sequence[StatusLike]) -> tuple[str, str]:
    """(the label's text, its tooltip): `sync: off`, `sync: synced`, `sync: N pending`, `sync: offline — retry
    in 30 s` or the error in words; with several accounts the most urgent one speaks, named, and the pending
    records add up. The tooltip has one line per account."""
    if not statuses:
        return "sync: off", OFF_TIP
    tip = "\n".join(f"{s.user_id}: {s.text}" if s.user_id else s.text for s in statuses)
    worst = min(statuses, key=lambda s: _RANK.get(s.state, 3))
    if worst.state == "synced":
        return "sync: synced", tip
    if worst.state == "pending":
        total = sum(s.pending for s in statuses)
        return f"sync: {total} pending", tip
    if len(statuses) == 1 or not worst.user_id:
        return f"sync: {worst.text}", tip
    return f"sync: {worst.user_id} {worst.text}", tip


def show_sync(label: QLabel, statuses: Sequence[StatusLike], theme: Theme) -> None:
    """Fills the `sync:` label (red while an account cannot sync, so it is not missed)."""
    text, tip = sync_summary(statuses)
    if len(text) > MAX_CHARS:  # a long error in words: its start here, all of it on hover
        text = text[: MAX_CHARS - 1] + "…"
    failing = any(s.state in ("error", "offline") for s in statuses)
    label.setText(text)
    label.setToolTip(tip)
    label.setStyleSheet(f"color:{theme.loss};" if failing else "")
