"""`kitedesk export`: one account's trades to a CSV file, from the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from desktop.domain import Mode
from desktop.store.errors import StoreError
from desktop.store.export import export_trades
from desktop.store.home import resolve_home
from desktop.store.store import Store


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: use YYYY-MM-DD, e.g. 2026-01-05") from None


def _mode(text: str) -> Mode:
    try:
        return Mode(text.strip().upper())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a mode: use PAPER or LIVE") from None


def build_parser() -> argparse.ArgumentParser:
    """The `kitedesk export` command line."""
    p = argparse.ArgumentParser(
        prog="kitedesk export",
        description="Export one account's trades to a CSV file (Zerodha Console tradebook columns first).",
        epilog="example: kitedesk export --broker AB1234 --from 2026-01-01 --to 2026-03-31 --out trades.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--broker", required=True, metavar="USER_ID", help="the Kite user id of the account")
    p.add_argument("--session-label", metavar="LABEL", help="only the sessions with this label")
    p.add_argument("--from", dest="date_from", type=_day, metavar="YYYY-MM-DD", help="first trade day")
    p.add_argument("--to", dest="date_to", type=_day, metavar="YYYY-MM-DD", help="last trade day")
    p.add_argument("--mode", type=_mode, metavar="PAPER|LIVE", help="which trades (default LIVE; never both)")
    p.add_argument("--out", required=True, type=Path, metavar="FILE.csv", help="the CSV file to write")
    p.add_argument(
        "--home", metavar="DIR", help="KiteDesk folder (default $KITEDESK_HOME or the user data folder)"
    )
    p.add_argument(
        "--bom", action="store_true", help="start the file with a UTF-8 BOM (older Excel, non-ASCII labels)"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace FILE.csv even if it is not an earlier KiteDesk export (never a file of the KiteDesk folder)",
    )
    p.add_argument(
        "--all-devices",
        action="store_true",
        help="also the trades the sync brought from the account's other computers",
    )
    return p


def main(argv: Sequence[str]) -> int:
    """Runs the export; returns 0 on success, 1 when it could not export, 2 for bad arguments."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:  # argparse has printed the message and usage
        return exc.code if isinstance(exc.code, int) else 2
    if args.date_from and args.date_to and args.date_from > args.date_to:
        print(f"kitedesk export: --from {args.date_from} is after --to {args.date_to}", file=sys.stderr)
        return 2
    mode = args.mode or Mode.LIVE
    try:
        with Store.open(resolve_home(args.home), create=False) as store:
            if not store.profiles.is_known(broker_id=args.broker):
                print(f"kitedesk export: no account {args.broker!r} in {store.path}", file=sys.stderr)
                return 1
            if args.session_label is not None and not store.sessions.list_sessions(
                broker_id=args.broker, label=args.session_label, all_devices=args.all_devices
            ):
                print(
                    f"kitedesk export: {args.broker} has no session labelled {args.session_label!r}",
                    file=sys.stderr,
                )
                return 1
            rows = export_trades(
                store,
                broker_id=args.broker,
                out=args.out,
                session_label=args.session_label,
                date_from=args.date_from,
                date_to=args.date_to,
                mode=mode,
                bom=args.bom,
                replace_only_exports=not args.force,
                all_devices=args.all_devices,
            )
    except StoreError as exc:
        print(f"kitedesk export: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {rows} {mode.value} trade(s) of {args.broker} to {args.out}")
    if rows == 0 and args.mode is None:
        print("paper trades are exported only when asked: add --mode PAPER", file=sys.stderr)
    return 0
