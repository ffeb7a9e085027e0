"""The segment panel says why risk refused the last entry (issue 25), beside the segment's own note."""

from __future__ import annotations

import re

from desktop.domain import Segment
from desktop.engine.snapshots import AgentState, SegmentSnapshot
from desktop.ui.segment_panel import SegmentPanel
from desktop.ui.theme import DARK


def test_the_panel_shows_risks_refusal_first_and_drops_it_when_it_is_lifted(qtbot) -> None:
    panel = SegmentPanel(Segment.SENSEX, DARK)
    qtbot.addWidget(panel)
    offset = "ITM offset 150 rounded up to 200 (SENSEX strikes are 100 apart)"
    refused = SegmentSnapshot(Segment.SENSEX, AgentState.RUNNING, trades_today=5, note=offset,
                              risk_note="trade cap 5 reached, no more entries today")  # fmt: skip
    panel.show_snapshot(refused)
    assert _plain(panel.note.text()) == f"trade cap 5 reached, no more entries today · {offset}"
    assert panel.note.toolTip() == panel.note.text()
    panel.show_snapshot(SegmentSnapshot(Segment.SENSEX, AgentState.RUNNING, note=offset))
    assert _plain(panel.note.text()) == offset


def _plain(rich: str) -> str:
    """The note as the trader reads it (the panel colours the risk note with a span)."""
    return re.sub(r"<[^>]+>", "", rich)
