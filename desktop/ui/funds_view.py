"""The funds part of a session tab's header: the account's available and used margin, as the engine last
fetched them (desktop.engine.funds; every minute and after each fill, never on this thread)."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel

from desktop.domain import format_amount
from desktop.engine import Funds

PAPER_TEXT = "Funds: paper"
PAPER_TIP = (
    "A PAPER session's orders block no margin at the broker, so it shows no funds and risk refuses no paper "
    "entry for margin"
)


def funds_text(funds: Funds | None) -> tuple[str, str]:
    """The header's text and tooltip for `funds` (None: not fetched yet, or the session has not started)."""
    if funds is None:
        return "", ""
    if funds.paper:
        return PAPER_TEXT, PAPER_TIP
    text = f"Funds {format_amount(funds.available)} available · {format_amount(funds.used)} used"
    when = f" at {funds.fetched_at:%H:%M:%S}" if funds.fetched_at is not None else ""
    tip = f"Kite equity margins{when}; refreshed every minute and after each fill"
    if funds.error:
        # The amounts are the last good ones (or none): say so on the label, why in the tooltip.
        text = f"{text} (not refreshed)" if funds.fetched_at is not None else "Funds: not known"
        tip = f"The last funds refresh failed: {funds.error}. {tip}"
    return text, tip


class FundsLabel(QLabel):
    """One label in the header; a new text only when the funds changed (a relayout of the row otherwise)."""

    def __init__(self) -> None:
        super().__init__("")
        self.setObjectName("funds_label")

    def show_funds(self, funds: Funds | None) -> None:
        text, tip = funds_text(funds)
        if self.text() != text:
            self.setText(text)
        if self.toolTip() != tip:
            self.setToolTip(tip)
