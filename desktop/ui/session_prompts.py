"""What a session tab asks the trader, and the words it asks in: an open position (square off, keep under its
stop loss, or cancel) and the LIVE confirmation naming the account and every segment."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QMessageBox, QWidget

from desktop.domain import Mode, Position, StrategyParams
from desktop.engine import OnStop, SessionSnapshot

if TYPE_CHECKING:
    from desktop.ui.session_tab import SessionTab

SQUARE_OFF, KEEP = OnStop.SQUARE_OFF, OnStop.KEEP  # what stopping does with an open position


def held_positions(snap: SessionSnapshot) -> tuple[Position, ...]:
    """The session's positions: the engine's list, or one row per segment holding an option."""
    if snap.positions:
        return snap.positions
    return tuple(
        Position(
            key=snap.key,
            mode=snap.mode or Mode.PAPER,
            exchange=seg.segment.spec.option_exchange,
            tradingsymbol=seg.option_symbol,
            quantity=seg.quantity,
            average_price=seg.entry_price or Decimal(0),
            last_price=seg.option_price or seg.entry_price or Decimal(0),
            realised_pnl=seg.realised_pnl,
        )
        for seg in snap.segments
        if seg.quantity and seg.option_symbol
    )


def open_position_lines(tabs: Sequence[SessionTab]) -> list[str]:
    """One line per position held: session, symbol, quantity, mode ("UK9394 · Computer 1: NIFTY…CE × 65, LIVE")."""
    lines = []
    for tab in tabs:
        if not tab.session.has_open_position():
            continue
        snap = tab.session.snapshot()
        held = [p for p in held_positions(snap) if p.quantity]
        who = f"{tab.session.user_id} · {tab.label}"
        if not held:  # still starting: it may take over what its last run kept
            lines.append(f"{who}: may take over a position its last run kept")
        lines += [f"{who}: {p.tradingsymbol} × {p.quantity}, {p.mode.value}" for p in held]
    return lines


def ask_open_position(
    parent: QWidget, what: str, starting: bool = False, positions: Sequence[str] = ()
) -> OnStop | None:
    """Asks what to do with an open position: SQUARE_OFF, KEEP (under its stop loss) or None (cancel).
    `starting`: the session is still starting and may be taking over a position its last run kept.
    `positions`: the positions in question, one line each, named in the question."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Open position")
    held = (
        "is still starting and may take over a position its last run kept"
        if starting
        else "has an open position"
    )
    listed = "".join(f"\n  • {line}" for line in positions)
    box.setText(f"{what} {held}.{listed}\n\nSquare it off now, or keep it under its stop loss?")
    square = box.addButton("Square off", QMessageBox.ButtonRole.AcceptRole)
    keep = box.addButton("Keep under stop loss", QMessageBox.ButtonRole.ActionRole)
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(cancel)
    box.exec()
    clicked = box.clickedButton()
    return SQUARE_OFF if clicked is square else KEEP if clicked is keep else None


def live_confirmation_text(user_id: str, label: str, params: StrategyParams) -> str:
    """What the trader confirms before LIVE: the account, the tab and every segment, in words."""
    segments = ", ".join(s.value for s in params.segments)
    return (
        f"Start LIVE trading on account {user_id} ({label})?\n\n"
        f"Segments: {segments}\nLots: {params.lots} · stop loss {params.stop_loss}% · "
        f"ITM offset {params.itm_offset} points\n\nReal orders will be sent to the exchange."
    )


def confirm_live(parent: QWidget, user_id: str, label: str, params: StrategyParams) -> bool:
    """The LIVE confirmation dialog, naming the account and the segments; default is Cancel."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Start LIVE trading?")
    box.setText(live_confirmation_text(user_id, label, params))
    start = box.addButton("Start LIVE", QMessageBox.ButtonRole.AcceptRole)
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(cancel)
    box.exec()
    return box.clickedButton() is start
