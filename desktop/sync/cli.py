"""`kitedesk sync ...`: set up the central database, bind accounts to it, and run the sync headless."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from desktop.store.errors import StoreError
from desktop.store.home import resolve_home
from desktop.store.store import Store
from desktop.sync.accounts import disable_account, enable_account
from desktop.sync.central import SyncError, add_account, check_broker_id, init_central, redact, remove_account
from desktop.sync.config import SyncConfig
from desktop.sync.syncer import pending_count
from desktop.sync.worker import SyncService, SyncWorker, stop_all

_PROG = "kitedesk sync"


def build_parser() -> argparse.ArgumentParser:
    """The `kitedesk sync` command line."""
    p = argparse.ArgumentParser(
        prog=_PROG,
        description="Sync each account's records with a central PostgreSQL.",
        epilog="example: kitedesk sync enable UK9394 --url 'postgresql://kd_uk9394:PASSWORD@db.example:5432/kitedesk'\n"
        "example: kitedesk sync run --once",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def home(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--home", metavar="DIR", help="KiteDesk folder (default $KITEDESK_HOME or the user data folder)"
        )

    sp = sub.add_parser(
        "init-central",
        help="create or migrate the central schema (admin)",
        epilog="example: kitedesk sync init-central --admin-url postgresql://postgres@db.example/kitedesk",
    )
    sp.add_argument(
        "--admin-url",
        required=True,
        metavar="URL",
        help="a PostgreSQL URL of a role that may create roles; never stored",
    )
    for name, text in (
        ("add-account", "create a login for one account and print its URL once (admin)"),
        ("remove-account", "revoke an account's login (admin)"),
    ):
        sp = sub.add_parser(
            name,
            help=text,
            epilog=f"example: kitedesk sync {name} --admin-url postgresql://postgres@db.example/kitedesk --broker UK9394",
        )
        sp.add_argument("--admin-url", required=True, metavar="URL", help="never stored")
        sp.add_argument("--broker", required=True, metavar="USER_ID", help="the Kite user id, e.g. UK9394")
    sp = sub.add_parser(
        "enable",
        help="sync a profile's records to the URL add-account printed",
        epilog="example: kitedesk sync enable UK9394 --url 'postgresql://kd_uk9394:PASSWORD@db.example/kitedesk'",
    )
    sp.add_argument("profile", metavar="USER_ID")
    sp.add_argument("--url", required=True, metavar="URL", help="postgresql://LOGIN:PASSWORD@HOST:PORT/DB")
    home(sp)
    sp = sub.add_parser(
        "disable",
        help="stop syncing a profile (its password is forgotten)",
        epilog="example: kitedesk sync disable UK9394",
    )
    sp.add_argument("profile", metavar="USER_ID")
    home(sp)
    sp = sub.add_parser(
        "status",
        help="each account's sync setting and pending changes",
        epilog="example: kitedesk sync status",
    )
    home(sp)
    sp = sub.add_parser(
        "run",
        help="sync the enabled accounts without a window (a VPS)",
        epilog="example: kitedesk sync run --once --home ~/kitedesk",
    )
    sp.add_argument("--once", action="store_true", help="push and pull everything once, then exit")
    home(sp)
    return p


def main(argv: Sequence[str]) -> int:
    """Runs one sync command; 0 on success, 1 when it failed (the message says why), 2 for bad arguments."""
    try:
        args = build_parser().parse_args(list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return int(_COMMANDS[args.command](args))
    except (SyncError, StoreError) as exc:
        print(f"{_PROG} {args.command}: {exc}", file=sys.stderr)
        return 1


def _init_central(args: argparse.Namespace) -> int:
    revision = init_central(args.admin_url)
    print(f"the central schema is at revision {revision}")
    return 0


def _add_account(args: argparse.Namespace) -> int:
    url = add_account(args.admin_url, args.broker)
    print(
        f"login for {check_broker_id(args.broker)} created. Its URL (shown only now; the password is stored nowhere):"
    )
    print(url)
    print(
        f"on each computer of this account: kitedesk sync enable {check_broker_id(args.broker)} --url 'URL'"
    )
    return 0


def _remove_account(args: argparse.Namespace) -> int:
    broker = check_broker_id(args.broker)
    if remove_account(args.admin_url, broker):
        print(f"the login of {broker} is revoked (its rows stay in the central database)")
    else:
        print(f"{broker} had no login in this central database")
    return 0


def _enable(args: argparse.Namespace) -> int:
    print(enable_account(resolve_home(args.home), args.profile, args.url))
    return 0


def _disable(args: argparse.Namespace) -> int:
    print(disable_account(resolve_home(args.home), args.profile))
    return 0


def _status(args: argparse.Namespace) -> int:
    home = resolve_home(args.home)
    accounts = SyncConfig(home).accounts()
    if not accounts:
        print("sync: off (no account set up; see `kitedesk sync enable --help`)")
        return 0
    store = _open_store(home)
    with store:
        for a in accounts:
            pending = pending_count(store, a.broker_id)
            print(f"{a.broker_id:<10} {'on ' if a.enabled else 'off'}  {pending} pending  {redact(a.url)}")
    return 0


def _workers(store: Store, home: Any) -> list[SyncWorker]:
    service = SyncService(store, home)
    if service.problems:
        raise SyncError("; ".join(service.problems.values()))
    return service.workers


def _run(args: argparse.Namespace) -> int:
    home = resolve_home(args.home)
    with _open_store(home) as store:
        workers = _workers(store, home)
        if not workers:
            print("sync: no account is enabled (see `kitedesk sync enable --help`)", file=sys.stderr)
            return 1
        if args.once:
            failed = 0
            for w in workers:
                try:
                    pushed, pulled = w.run_once()
                except SyncError as exc:
                    failed += 1
                    print(f"{w.broker_id}: {exc}; the pending changes stay queued", file=sys.stderr)
                    continue
                print(f"{w.broker_id}: pushed {pushed}, pulled {pulled}, {w.status().pending} pending")
            return 1 if failed else 0
        return _run_forever(workers)


def _run_forever(workers: list[SyncWorker]) -> int:
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for w in workers:
            w.start()
        shown: dict[str, str] = {}
        while not stop.wait(1.0):
            for w in workers:
                st = w.status()
                line = st.state if st.state in ("offline", "error") else st.text
                if shown.get(w.broker_id) != line:
                    shown[w.broker_id] = line
                    print(f"{w.broker_id}: {st.text}", flush=True)
    finally:
        stop_all(workers)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _open_store(home: Any) -> Store:
    return Store.open(home, create=False)


_COMMANDS = {
    "init-central": _init_central,
    "add-account": _add_account,
    "remove-account": _remove_account,
    "enable": _enable,
    "disable": _disable,
    "status": _status,
    "run": _run,
}
