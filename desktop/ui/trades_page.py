"""The session tab's Trades page: the session's own trades, or with "All computers" the account's trades of
the day from every computer that trades it (those the sync brought from the others), with a Device column.

The account's trades are read from the store on the window's JobRunner (never on the GUI thread), again
every few seconds while the page is shown with the box ticked. They are only shown: trades of another
computer never drive this one's trading.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QCheckBox, QStackedWidget, QVBoxLayout, QWidget

from desktop.domain import Mode
from desktop.ui.tables import Column, SpecTableModel, SpecTableView, fmt_money, fmt_time

if TYPE_CHECKING:
    from desktop.ui.session_tab import SessionTab
    from desktop.ui.workers import JobRunner

RELOAD_MS = 3000
THIS_COMPUTER = "this computer"


class TradesEngine(Protocol):
    """What the page needs of the engine (desktop.engine's public API)."""

    def account_trades(
        self, user_id: str, mode: Mode, day: Any, *, all_devices: bool = False
    ) -> list[Any]: ...
    def device_id(self) -> str: ...
    def market_time(self) -> Any: ...


def device_text(device_id: str, own: str) -> str:
    """ "this computer", or another computer's id shortened (a random id: its first 8 characters say enough)."""
    return THIS_COMPUTER if device_id == own else f"computer {device_id[:8]}"


def all_trade_columns(own_device: str) -> tuple[Column, ...]:
    """The account's trades (TradeRow-like: `fill`, `session_label`, `device_id`), with the Device column."""

    def side(v: Any) -> str:
        return str(getattr(v, "value", v))

    return (
        Column("Time", lambda t: t.fill.timestamp, fmt_time),
        Column("Device", lambda t: device_text(t.device_id, own_device)),
        Column("Session", lambda t: t.session_label),
        Column("Trade id", lambda t: t.fill.fill_id),
        Column("Order id", lambda t: t.fill.order_id),
        Column("Symbol", lambda t: t.fill.tradingsymbol),
        Column("Side", lambda t: t.fill.side, side),
        Column("Qty", lambda t: t.fill.quantity, numeric=True),
        Column("Price", lambda t: t.fill.price, fmt_money, numeric=True),
    )


def trade_row_key(t: Any) -> Hashable:
    """A trade of the account: the broker's trade id within its session (sessions never share one)."""
    return (t.fill.key.session_id, t.fill.fill_id)


class TradesPage(QWidget):
    """The "All computers" box over the session's trades table and the account's (built on first tick)."""

    def __init__(
        self, tab: SessionTab, session_view: SpecTableView, settings: QSettings | None = None
    ) -> None:
        super().__init__()
        self._tab = tab
        self._settings = settings
        self._loading = False
        self.all_model: SpecTableModel | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 2, 0, 0)
        lay.setSpacing(2)
        self.all_computers = QCheckBox("All computers")
        self.all_computers.setToolTip(
            "Also the account's trades of today made on its other computers (brought by the sync), "
            "with a Device column. Shown only: they never drive this computer's trading."
        )
        self.all_computers.toggled.connect(self._toggled)
        lay.addWidget(self.all_computers)
        self.stack = QStackedWidget()
        self.stack.addWidget(session_view)
        lay.addWidget(self.stack, 1)
        self.timer = QTimer(self)
        self.timer.setInterval(RELOAD_MS)
        self.timer.timeout.connect(self.reload)

    def _host(self) -> tuple[TradesEngine, JobRunner] | None:
        # The window that holds the tab has the engine and the job runner; a tab alone (tests) has none.
        window = self.window()
        engine, jobs = getattr(window, "engine", None), getattr(window, "jobs", None)
        return (engine, jobs) if engine is not None and jobs is not None else None

    def _toggled(self, on: bool) -> None:
        if not on:
            self.timer.stop()
            self.stack.setCurrentIndex(0)
            return
        host = self._host()
        if host is None:
            return
        if self.all_model is None:
            engine, _ = host
            self.all_model = SpecTableModel(
                all_trade_columns(engine.device_id()), trade_row_key, self._tab.trades_model.theme
            )
            self.stack.addWidget(SpecTableView(self.all_model, name="all_trades", settings=self._settings))
        self.stack.setCurrentIndex(1)
        self.timer.start()
        self.reload()

    def mode(self) -> Mode:
        """The session's mode (what it traded, else what its form says): paper and live are never mixed."""
        snap = self._tab.pacer.snapshot
        if snap is not None and snap.mode is not None:
            return Mode(snap.mode)
        try:
            return Mode(self._tab.form.mode_box.currentText())
        except ValueError:
            return Mode.PAPER

    def reload(self) -> None:
        """Reads the account's trades of the market day again (off the GUI thread), unless a read is under way
        or the page is hidden."""
        host = self._host()
        if host is None or self._loading or not self.all_computers.isChecked():
            return
        if not self.isVisible() and self.all_model is not None and self.all_model.rowCount() > 0:
            return
        engine, jobs = host
        user_id, mode = self._tab.session.user_id, self.mode()
        self._loading = True
        read: Callable[[], list[Any]] = lambda: engine.account_trades(  # noqa: E731
            user_id, mode, engine.market_time().date(), all_devices=True
        )
        jobs.submit(read, self._show, self._failed)

    def _show(self, rows: list[Any]) -> None:
        self._loading = False
        if self.all_model is not None:
            self.all_model.set_rows(tuple(rows))

    def _failed(self, exc: BaseException) -> None:
        self._loading = False
        self.all_computers.setToolTip(f"The account's trades could not be read: {exc}")
