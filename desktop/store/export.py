"""Trade CSV export: Zerodha Console's tradebook columns first, then KiteDesk's own.

The Console tradebook columns (symbol ... order_execution_time, plus expiry_date in F&O exports),
their order and formats (lower-case buy/sell, quantity and price with six decimals, ISO execution
time, exchange NSE/BSE with segment FO for derivatives) follow real Console exports as documented by
tax and portfolio importers that parse them (e.g. beancount-importers-india's Zerodha importer asserts
this exact header). Tax tools match that header, so it is written exactly, with no BOM by default:
every Console column is ASCII, Excel and LibreOffice open such a file cleanly, and a BOM would make
tools that compare the first line byte for byte reject it. `bom=True` is there for Excel users whose
session labels are not ASCII (Excel reads BOM-less CSV in the ANSI code page).

Cells a spreadsheet could run as a formula (starting with = + - @, tab or CR) get a leading `'`,
except plain numbers such as a negative P&L, which no spreadsheet treats as a formula.
"""

from __future__ import annotations

import codecs
import csv
import os
import re
import tempfile
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from desktop.domain import Mode, Side
from desktop.store.errors import StoreError
from desktop.store.home import logs_dir
from desktop.store.records import TradeRow, require_broker_id

if TYPE_CHECKING:
    from desktop.store.store import Store

CONSOLE_COLUMNS = (
    "symbol",
    "isin",
    "trade_date",
    "exchange",
    "segment",
    "series",
    "trade_type",
    "auction",
    "quantity",
    "price",
    "trade_id",
    "order_id",
    "order_execution_time",
    "expiry_date",
)
KITEDESK_COLUMNS = ("broker_id", "session_label", "mode", "order_tag", "round_trip_pnl")
COLUMNS = CONSOLE_COLUMNS + KITEDESK_COLUMNS

# Kite's exchange -> (Console's exchange, segment). Console files F&O under the cash exchange.
_CONSOLE_EXCHANGE = {
    "NSE": ("NSE", "EQ"),
    "BSE": ("BSE", "EQ"),
    "NFO": ("NSE", "FO"),
    "BFO": ("BSE", "FO"),
    "CDS": ("NSE", "CDS"),
    "BCD": ("BSE", "CDS"),
    "MCX": ("MCX", "COM"),
}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"-?\d+(\.\d+)?")
# Weekly index options: NAME YY M DD STRIKE CE|PE, M = 1..9 or O, N, D (KITE.md).
_WEEKLY = re.compile(r"[A-Z]+(\d{2})([1-9OND])(\d{2})\d+(?:CE|PE)")


def safe_cell(value: str) -> str:
    """`value`, made inert for spreadsheets: a would-be formula gets a leading apostrophe."""
    if value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def weekly_expiry(tradingsymbol: str) -> date | None:
    """The expiry written in a weekly option's symbol (NIFTY2611325000CE -> 2026-01-13), else None."""
    m = _WEEKLY.fullmatch(tradingsymbol)
    if not m:
        return None
    month = {"O": 10, "N": 11, "D": 12}.get(m[2]) or int(m[2])
    try:
        return date(2000 + int(m[1]), month, int(m[3]))
    except ValueError:
        return None


def export_trades(
    store: Store,
    *,
    broker_id: str,
    out: Path,
    session_label: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    mode: Mode | None = None,
    bom: bool = False,
    replace_only_exports: bool = False,
    all_devices: bool = False,
) -> int:
    """Writes one account's trades of one mode (LIVE unless told PAPER) to `out`; returns the rows written.

    Only this computer's trades, unless `all_devices` (then also those the sync pulled from the account's
    other computers).

    The file appears whole or not at all (written beside `out`, then renamed over it). A path inside the
    KiteDesk folder is always refused: the rename would replace the database (or a log, the profiles) with a
    CSV. `replace_only_exports`: an existing `out` is replaced only if it is an earlier export (its first
    line is this header), so a mistyped path never overwrites someone's spreadsheet.
    """
    require_broker_id(broker_id)
    refuse_unsafe_target(Path(out), home=store.home, replace_only_exports=replace_only_exports)
    mode = Mode.LIVE if mode is None else Mode(mode)  # paper trades only when asked: a tax file must not mix
    trades = store.trades.for_account(
        broker_id=broker_id,
        mode=mode,
        date_from=date_from,
        date_to=date_to,
        session_label=session_label,
        device_id=None if all_devices else store.device_id,
    )
    expiries = _ExpiryLookup(store, broker_id)
    rows = [_csv_row(t, expiries) for t in trades]
    _write_atomically(Path(out), rows, bom=bom)
    return len(rows)


def refuse_unsafe_target(out: Path, *, home: Path, replace_only_exports: bool) -> None:
    """Raises StoreError when writing `out` could destroy data: inside the home, or over a foreign file."""
    target = out.resolve()  # through symbolic links: a link named trades.csv may point at the database
    home = Path(home).resolve()
    # None of KiteDesk's own files is a .csv (database, its -wal/-shm, lock, profiles, settings, logs), so a
    # .csv beside them is the trader's; anything else in the folder, or anything under logs/, is ours.
    in_home = target == home or home in target.parents
    inside = in_home and (target.suffix.lower() != ".csv" or logs_dir(home) in target.parents)
    if not inside and out.exists():
        # A hard link to the database has no path inside the home: compare the files themselves.
        own = [p for p in home.iterdir() if p.is_file()] if home.is_dir() else []
        inside = any(_same_file(out, p) for p in own)
    if inside:
        raise StoreError(
            f"cannot write {out}: it is KiteDesk's own data (database, logs, profiles) in {home}; "
            "name a .csv file outside the KiteDesk folder's logs"
        )
    if replace_only_exports and out.is_file() and not _is_an_export(out):
        raise StoreError(
            f"{out} exists and is not a KiteDesk export: give another file name, or add --force to replace it"
        )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _is_an_export(path: Path) -> bool:
    header = ",".join(COLUMNS).encode()
    try:
        with path.open("rb") as f:
            head = f.read(len(codecs.BOM_UTF8) + len(header) + 2)
    except OSError:
        return False
    head = head.removeprefix(codecs.BOM_UTF8)
    return head.startswith(header) and head[len(header) :][:1] in (b"\r", b"\n", b"")


class _ExpiryLookup:
    """Expiry dates from the account's cached instruments of the trade day, else from the symbol."""

    def __init__(self, store: Store, broker_id: str) -> None:
        self._store = store
        self._broker_id = broker_id
        self._by_day: dict[date, dict[tuple[str, str], date]] = {}

    def expiry(self, exchange: str, tradingsymbol: str, day: date) -> date | None:
        """The contract's expiry, or None when neither the cache nor the symbol tells it."""
        if day not in self._by_day:
            dump = self._store.instruments.load(broker_id=self._broker_id, day=day) or []
            self._by_day[day] = {
                (i.exchange, i.tradingsymbol): i.expiry for i in dump if i.expiry is not None
            }
        return self._by_day[day].get((exchange, tradingsymbol)) or weekly_expiry(tradingsymbol)


def _csv_row(trade: TradeRow, expiries: _ExpiryLookup) -> list[str]:
    f = trade.fill
    exchange, segment = _CONSOLE_EXCHANGE.get(f.exchange, (f.exchange, ""))
    day = f.timestamp.date()
    expiry = expiries.expiry(f.exchange, f.tradingsymbol, day) if segment == "FO" else None
    cells = [
        f.tradingsymbol,
        "",  # isin: Console leaves it blank for F&O; KiteDesk does not know equity ISINs
        day.isoformat(),
        exchange,
        segment,
        "EQ" if segment == "EQ" else "",
        "buy" if f.side is Side.BUY else "sell",
        "false",
        f"{f.quantity:.6f}",
        f"{f.price:.6f}",
        f.fill_id,
        f.order_id,
        f.timestamp.replace(microsecond=0).isoformat(),
        "" if expiry is None else expiry.isoformat(),
        f.key.broker_id,
        trade.session_label,
        f.mode.value,
        trade.order_tag,
        "" if trade.round_trip_pnl is None else str(trade.round_trip_pnl),
    ]
    return [safe_cell(c) for c in cells]


def _write_atomically(out: Path, rows: Iterable[list[str]], *, bom: bool) -> None:
    if out.is_dir():
        raise StoreError(f"cannot write {out}: it is a folder; give a file name such as trades.csv")
    folder = out.parent
    if not folder.is_dir():
        raise StoreError(f"cannot write {out}: the folder {folder} does not exist")
    tmp_name = ""
    try:
        with tempfile.NamedTemporaryFile(
            "w",
            encoding="utf-8-sig" if bom else "utf-8",
            newline="",
            dir=folder,
            prefix=".export-",
            suffix=".tmp",
            delete=False,
        ) as tmp:
            tmp_name = tmp.name
            writer = csv.writer(tmp)  # RFC 4180: comma, CRLF line ends, quotes only where needed
            writer.writerow(COLUMNS)
            writer.writerows(rows)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, out)
    except OSError as exc:
        if tmp_name:
            Path(tmp_name).unlink(missing_ok=True)
        raise StoreError(f"cannot write {out}: {exc.strerror or exc}") from exc
