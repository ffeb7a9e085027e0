"""File → Settings…: theme, notifications and sounds, the parameters a new tab starts from, the data folder, and
which accounts' market data is recorded (for `kitedesk replay`), for how many days, and the disk it takes.

Everything is kept in the window's settings file (QSettings, INI). New tabs always start in PAPER: LIVE is
chosen in the tab itself, where Start asks for the confirmation that names the account.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.domain import Mode, StrategyParams
from desktop.engine import DEFAULT_RETENTION_DAYS, ParamsError, format_bytes, params_to_dict, parse_params
from desktop.ui.notify import IN_WINDOW_KEY, NOTIFY_KEY, SOUND_KEY, setting_flag
from desktop.ui.params_form import DEFAULT_RAW, ParamsForm

DEFAULTS_KEY = "defaults/params"  # JSON of the parameters a new tab starts from
RECORD_KEY = "recording/{}"  # per account: record its market data (off unless chosen)
RETENTION_KEY = "recording/retention_days"


def recording_choices(settings: QSettings, accounts: list[str]) -> dict[str, bool]:
    """Which of `accounts` the trader chose to record (off by default)."""
    return {a: setting_flag(settings.value(RECORD_KEY.format(a), False)) for a in accounts}


def retention_days(settings: QSettings) -> int:
    """Days of recordings kept (the saved value, else DEFAULT_RETENTION_DAYS)."""
    try:
        days = int(str(settings.value(RETENTION_KEY, DEFAULT_RETENTION_DAYS)))
    except ValueError:
        return DEFAULT_RETENTION_DAYS
    return days if days >= 1 else DEFAULT_RETENTION_DAYS


def default_params(settings: QSettings) -> StrategyParams:
    """The parameters a new tab starts from: the saved ones when they are still valid, else DEFAULT_RAW."""
    text = settings.value(DEFAULTS_KEY)
    if isinstance(text, str) and text:
        try:
            raw = json.loads(text)
            if isinstance(raw, dict):
                raw.pop("confirm_live", None)
                return parse_params(raw | {"mode": Mode.PAPER.value})
        except (ValueError, ParamsError):
            pass  # a damaged or outdated entry: the built-in defaults
    return parse_params(DEFAULT_RAW)


def save_default_params(settings: QSettings, params: StrategyParams) -> None:
    """Keeps `params` (in PAPER) as what new tabs start from."""
    settings.setValue(DEFAULTS_KEY, json.dumps(params_to_dict(replace(params, mode=Mode.PAPER))))


class SettingsDialog(QDialog):
    """The settings a trader sets once; OK saves them and `applied` says so."""

    def __init__(
        self,
        settings: QSettings,
        theme_name: str,
        data_folder: Path,
        strategies: list[str],
        parent: QWidget | None = None,
        recording: dict[str, bool] | None = None,
        disk_used: dict[str, int] | None = None,
    ) -> None:
        """`recording`: each account and whether its market data is recorded now; `disk_used`: bytes per account
        (None: measured on a worker, shown by `show_disk_used` when it comes)."""
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self._settings = settings
        self.applied = False
        lay = QVBoxLayout(self)
        general = QFormLayout()
        self.theme_box = QComboBox()
        self.theme_box.addItem("Dark", "dark")
        self.theme_box.addItem("Light", "light")
        self.theme_box.setCurrentIndex(max(self.theme_box.findData(theme_name), 0))
        general.addRow("Theme", self.theme_box)
        self.notify_box = QCheckBox(
            "Notify me of fills, stop-loss hits, rejections, expired logins and kills"
        )
        self.notify_box.setChecked(setting_flag(settings.value(NOTIFY_KEY, True)))
        self.sound_box = QCheckBox("Beep with each notification")
        self.sound_box.setChecked(setting_flag(settings.value(SOUND_KEY, False)))
        self.in_window_box = QCheckBox("Show them in the window too (always, when the desktop has no tray)")
        self.in_window_box.setChecked(setting_flag(settings.value(IN_WINDOW_KEY, False)))
        for box in (self.sound_box, self.in_window_box):
            self.notify_box.toggled.connect(box.setEnabled)
            box.setEnabled(self.notify_box.isChecked())
        general.addRow("Notifications", self.notify_box)
        general.addRow("", self.in_window_box)
        general.addRow("Sounds", self.sound_box)
        folder_row = QHBoxLayout()
        self.data_folder = QLineEdit(str(data_folder))
        self.data_folder.setReadOnly(True)
        open_button = QPushButton("Open")
        open_button.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(data_folder))))
        folder_row.addWidget(self.data_folder, 1)
        folder_row.addWidget(open_button)
        general.addRow("Data folder", folder_row)
        lay.addLayout(general)

        group = QGroupBox("New tabs start with")
        group_lay = QVBoxLayout(group)
        self.defaults_form = ParamsForm(strategies, defaults=default_params(settings))
        self.defaults_form.mode_box.setEnabled(False)  # always PAPER: LIVE is chosen in the tab
        self.defaults_form.mode_box.setToolTip("New tabs always start in PAPER; choose LIVE in the tab")
        scroll = QScrollArea()
        scroll.setWidget(self.defaults_form)
        scroll.setWidgetResizable(True)
        scroll.setMinimumHeight(260)
        group_lay.addWidget(scroll)
        group_lay.addWidget(QLabel("New tabs always start in PAPER: choose LIVE in the tab itself."))
        lay.addWidget(group, 1)

        record_group = QGroupBox("Record market data (for kitedesk replay and backtests)")
        record_lay = QFormLayout(record_group)
        self._recordings_dir = data_folder / "recordings"
        self.record_boxes: dict[str, QCheckBox] = {}
        for account, on in (recording or {}).items():
            box = QCheckBox()
            box.setChecked(on)
            self.record_boxes[account] = box
            record_lay.addRow(box)
        self.retention_box = QSpinBox()
        self.retention_box.setRange(1, 3650)
        self.retention_box.setSuffix(" days")
        self.retention_box.setValue(retention_days(settings))
        record_lay.addRow("Keep recordings for", self.retention_box)
        self.total_used = QLabel()
        record_lay.addRow(self.total_used)
        self.show_disk_used(disk_used)
        lay.addWidget(record_group)

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        self.defaults_form.sig_validity_changed.connect(
            lambda ok: self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok)
        )
        lay.addWidget(self.buttons)
        self.resize(560, 640)

    def show_disk_used(self, used: dict[str, int] | None, note: str = "measuring…") -> None:
        """The bytes of recordings per account (None: `note` instead, while they are measured or when they could
        not be)."""
        for account, box in self.record_boxes.items():
            size = note if used is None else format_bytes(used.get(account, 0))
            box.setText(f"{account} (recordings: {size})")
        total = note if used is None else format_bytes(sum(used.values()))
        self.total_used.setText(f"Total: {total} in {self._recordings_dir}")

    def recording(self) -> dict[str, bool]:
        """Each account and whether to record its market data."""
        return {a: box.isChecked() for a, box in self.record_boxes.items()}

    def theme_name(self) -> str:
        """The theme chosen."""
        return str(self.theme_box.currentData())

    def save(self) -> None:
        """Saves and closes; refused in words while the default parameters are not valid."""
        params = self.defaults_form.params()
        if params is None:
            self.defaults_form.reveal_problems()
            return
        self._settings.setValue(NOTIFY_KEY, self.notify_box.isChecked())
        self._settings.setValue(SOUND_KEY, self.sound_box.isChecked())
        self._settings.setValue(IN_WINDOW_KEY, self.in_window_box.isChecked())
        self._settings.setValue("theme", self.theme_name())
        save_default_params(self._settings, params)
        for account, box in self.record_boxes.items():
            self._settings.setValue(RECORD_KEY.format(account), box.isChecked())
        self._settings.setValue(RETENTION_KEY, self.retention_box.value())
        self._settings.sync()
        self.applied = True
        self.accept()


def open_settings(window: Any) -> SettingsDialog:
    """File → Settings… of the main window `window`: on OK its theme is set and the chosen recording applied. The
    recordings' disk use is measured on the window's job pool (a walk of every account's folder: never on the
    window's thread) and shown when it comes."""
    engine = window.engine
    accounts = [p.user_id for p in engine.profiles()]
    dialog = SettingsDialog(
        window.settings, window.theme.name, Path(engine.home()), window.strategies, window,
        recording={a: engine.recording(a) for a in accounts},
    )  # fmt: skip
    window.jobs.submit(
        engine.recordings_disk_usage,
        dialog.show_disk_used,
        lambda e: dialog.show_disk_used(None, "not readable"),
    )
    dialog.accepted.connect(lambda: window.set_theme(dialog.theme_name()))
    dialog.accepted.connect(lambda: window.apply_recording(dialog.recording()))
    dialog.setModal(True)
    dialog.show()
    return dialog


def apply_recording(engine: Any, settings: QSettings, choices: dict[str, bool] | None = None) -> None:
    """Records the market data of the accounts chosen in the settings (or `choices`), kept for the chosen days."""
    accounts = [p.user_id for p in engine.profiles()]
    choices = choices if choices is not None else recording_choices(settings, accounts)
    days = retention_days(settings)
    for account, on in choices.items():
        engine.set_recording(account, on, days)
