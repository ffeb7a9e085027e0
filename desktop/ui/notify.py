"""Desktop notifications of what a trader must not miss, and a tray icon with the day's P&L.

A fill, a stop-loss hit, a rejected order, an expired login and a kill each raise one notification
(QSystemTrayIcon's message; a beep too when sounds are on). Without a system tray (nothing would show), or when
the setting asks for it too, the window shows it as a toast in its corner (desktop/ui/toast.py). They are found by comparing each session's new
snapshot with the one seen before, so a notification needs nothing from the engine but its snapshots; the
first snapshot of a session is only remembered (a restart does not replay the day's fills).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from PySide6.QtCore import QObject, QSettings, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QApplication, QMenu, QSystemTrayIcon, QWidget

from desktop.domain import Mode, OrderStatus, OrderType, format_rupees
from desktop.engine import SessionSnapshot, SessionState
from desktop.ui.theme import Theme
from desktop.ui.toast import ToastStack

NOTIFY_KEY, SOUND_KEY = "notifications/enabled", "notifications/sound"
IN_WINDOW_KEY = (
    "notifications/in_window"  # shown in the window as well as by the tray (without a tray: always)
)
_STOP_TYPES = (OrderType.SL, OrderType.SL_M)
MESSAGE_MS = 6000


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification: what happened (title) and its details (text)."""

    kind: str  # "fill", "stop-loss", "rejected", "login", "kill", "unprotected"
    title: str
    text: str


def notices_between(before: SessionSnapshot, after: SessionSnapshot, who: str) -> list[Notice]:
    """What happened from `before` to `after` that a trader is told about; `who` names the session."""
    found: list[Notice] = []
    seen_fills = {f.fill_id for f in before.fills}
    orders = {o.order_id: o for o in after.orders}
    for fill in after.fills:
        if fill.fill_id in seen_fills:
            continue
        order = orders.get(fill.order_id)
        what = f"{fill.side.value} {fill.tradingsymbol} × {fill.quantity} @ {fill.price:,.2f}"
        if order is not None and order.order_type in _STOP_TYPES:
            found.append(Notice("stop-loss", f"Stop loss hit · {who}", what))
        else:
            found.append(Notice("fill", f"Filled · {who}", what))
    was = {o.order_id: o.status for o in before.orders}
    for order in after.orders:
        if order.status is OrderStatus.REJECTED and was.get(order.order_id) is not OrderStatus.REJECTED:
            reason = order.status_message or "no reason given"
            text = f"{order.side.value} {order.tradingsymbol} × {order.quantity}: {reason}"
            found.append(Notice("rejected", f"Order rejected · {who}", text))
    protected_before = {s.segment: str(getattr(s, "protection", "") or "") for s in before.segments}
    for seg in after.segments:  # read with a default: an engine without the field raises nothing here
        protection = str(getattr(seg, "protection", "") or "")
        if protection.upper().startswith("UNPROTECTED") and protected_before.get(seg.segment) != protection:
            found.append(
                Notice("unprotected", f"Position unprotected · {who}", f"{seg.segment.value}: {protection}")
            )
    if after.state is not before.state:
        if after.state is SessionState.LOGIN_NEEDED:
            text = after.message or "the login expired: log in again to resume trading"
            found.append(Notice("login", f"Login expired · {who}", text))
        elif after.state is SessionState.HALTED:
            found.append(Notice("kill", f"Halted · {who}", after.message or "kill switch: no new entries"))
    return found


def pnl_icon(total: Decimal | None, theme: Theme) -> QIcon:
    """The tray icon: a "K" on green (day in profit), red (in loss) or grey (flat or nothing traded)."""
    colour = theme.muted if not total else theme.profit if total > 0 else theme.loss
    pixmap = QPixmap(32, 32)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(QColor(colour))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.drawRoundedRect(1, 1, 30, 30, 7, 7)
    font = QFont()
    font.setBold(True)
    font.setPixelSize(22)
    painter.setFont(font)
    painter.setPen(QColor("#ffffff"))
    painter.drawText(pixmap.rect(), Qt.AlignmentFlag.AlignCenter, "K")
    painter.end()
    return QIcon(pixmap)


class Notifier(QObject):
    """Turns sessions' snapshots into notifications, and keeps the tray icon's P&L; settings in `settings`."""

    def __init__(self, settings: QSettings, window: QWidget, theme: Theme) -> None:
        super().__init__(window)
        self._settings = settings
        self._window = window
        self._theme = theme
        self._seen: dict[object, SessionSnapshot] = {}
        self.shown: list[Notice] = []  # every notification raised (shown or not: the setting may be off)
        self.tray: QSystemTrayIcon | None = None
        self.toasts = ToastStack(window, theme)
        self._tip = ""
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.tray = QSystemTrayIcon(pnl_icon(None, theme), self)
            self.tray.setToolTip("KiteDesk")
            menu = QMenu(window)
            menu.addAction("Show KiteDesk", self.bring_back)
            self.tray.setContextMenu(menu)
            self.tray.activated.connect(lambda _reason: self.bring_back())
            self.tray.show()

    @property
    def enabled(self) -> bool:
        """Notifications are on (File → Settings…)."""
        return setting_flag(self._settings.value(NOTIFY_KEY, True))

    @property
    def in_window(self) -> bool:
        """Notifications show in the window: always without a tray, else when the setting asks for it."""
        return self.tray is None or setting_flag(self._settings.value(IN_WINDOW_KEY, False))

    @property
    def sound(self) -> bool:
        """A beep comes with each notification."""
        return setting_flag(self._settings.value(SOUND_KEY, False))

    def bring_back(self) -> None:
        """The tray icon was clicked: the window comes back in front."""
        self._window.showNormal()
        self._window.raise_()
        self._window.activateWindow()

    def observe(self, key: object, snap: SessionSnapshot, who: str) -> list[Notice]:
        """Compares `snap` with the session's last one seen and raises what happened in between."""
        before = self._seen.get(key)
        self._seen[key] = snap
        if before is None or before is snap:
            return []
        found = notices_between(before, snap, who)
        for notice in found:
            self.notify(notice)
        return found

    def forget(self, key: object) -> None:
        """The session's tab closed."""
        self._seen.pop(key, None)

    def notify(self, notice: Notice) -> None:
        """Shows one notification (when on), with a beep when sounds are on."""
        self.shown.append(notice)
        if not self.enabled:
            return
        if self.tray is not None:
            icon = (
                QSystemTrayIcon.MessageIcon.Warning
                if notice.kind in ("stop-loss", "rejected", "login", "kill", "unprotected")
                else QSystemTrayIcon.MessageIcon.Information
            )
            self.tray.showMessage(notice.title, notice.text, icon, MESSAGE_MS)
        if self.in_window:
            self.toasts.show_notice(notice.title, notice.text, notice.kind)
        if self.sound:
            QApplication.beep()

    def show_pnl(self, pnl: dict[Mode, Decimal]) -> str:
        """The tray icon's colour and tooltip follow the day's P&L (LIVE and PAPER apart); returns the tip."""
        figures = " · ".join(
            f"{m.value} {format_rupees(pnl[m])}" for m in (Mode.LIVE, Mode.PAPER) if m in pnl
        )
        tip = f"KiteDesk — day P&L {figures or '—'}"
        if tip != self._tip:
            self._tip = tip
            if self.tray is not None:
                # Real money decides the colour when there is any.
                self.tray.setIcon(pnl_icon(pnl.get(Mode.LIVE, pnl.get(Mode.PAPER)), self._theme))
                self.tray.setToolTip(tip)
        return tip

    def set_theme(self, theme: Theme) -> None:
        """Recolours the tray icon."""
        self._theme = theme
        self.toasts.set_theme(theme)
        self._tip = ""


def setting_flag(value: object) -> bool:
    """A QSettings boolean (an INI file gives it back as the text "true" or "false")."""
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes", "on")
    return bool(value)


def session_name(user_id: str, label: str) -> str:
    """How a notification names a session."""
    return f"{user_id} · {label}"
