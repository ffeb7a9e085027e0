"""`kitedesk login PROFILE` and `kitedesk profiles [add ...]`: accounts from a terminal (a server without a screen).

`login` prints the Kite login URL, then takes whichever comes first: the redirect captured on the
profile's loopback redirect URL, or the redirect address (or the request token) pasted on stdin. Without a
keyring holding the profile's API secret it first asks for it without echo (or reads it from stdin's first
line with `--secret-stdin`); it is then kept in memory for this login only.
`profiles add` asks for the API secret without echo (or reads it from stdin when piped); it goes to the
OS keyring, never to a file.
"""

from __future__ import annotations

import argparse
import getpass
import queue
import sys
import threading
from collections.abc import Sequence
from typing import TextIO

from desktop.broker.errors import BrokerError
from desktop.cli.support import open_engine, trader_message
from desktop.engine import Engine, ProfileInfo
from desktop.store import StoreError


def _engine(command: str, home: str | None) -> Engine | None:
    from desktop.store import resolve_home

    return open_engine(command, resolve_home(home))


def login_parser() -> argparse.ArgumentParser:
    """The `kitedesk login` command line."""
    p = argparse.ArgumentParser(
        prog="kitedesk login",
        description="Log a profile in to Kite from a terminal.",
        epilog="example: kitedesk login AB1234 --timeout 120",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("profile", help="the profile's Kite user id, e.g. AB1234")
    p.add_argument("--home", help="KiteDesk data folder")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the login (default 300)")
    p.add_argument("--no-listen", action="store_true", help="do not listen for the redirect: paste it only")
    p.add_argument(
        "--secret-stdin",
        action="store_true",
        help="read the API secret from stdin's first line (without a keyring it is otherwise asked for, hidden)",
    )
    return p


class _NoSecret(Exception):
    """The API secret was needed and not given; the message says how to give it."""


def _api_secret(engine: Engine, user_id: str, from_stdin: bool) -> str | None:
    """The API secret to log `user_id` in with, or None when the keyring already holds it: read from stdin's
    first line with --secret-stdin, else asked for without echo when nothing holds it (no keyring)."""
    if from_stdin:
        secret = sys.stdin.readline().strip()
        if not secret:
            raise _NoSecret("--secret-stdin: stdin's first line is empty; it must be the API secret")
        return secret
    info = next((p for p in engine.profiles() if p.user_id == user_id), None)
    if info is None or info.has_secret:
        return None  # an unknown profile is refused by the login itself, in its words
    if not sys.stdin.isatty():
        raise _NoSecret(
            f"no API secret of {user_id} is stored (no keyring holds it): run this in a terminal to type it, "
            "or pass it on stdin's first line with --secret-stdin"
        )
    secret = getpass.getpass(f"API secret of {user_id} (not shown; kept in memory for this login only): ")
    if not secret.strip():
        raise _NoSecret("no API secret typed: the login needs it")
    return secret.strip()


def login(argv: Sequence[str], out: TextIO | None = None) -> int:
    """The `kitedesk login` command."""
    out = sys.stdout if out is None else out  # the stream of this call, not of the import
    args = login_parser().parse_args(list(argv))
    engine = _engine("kitedesk login", args.home)
    if engine is None:
        return 1
    try:
        secret = _api_secret(engine, args.profile, args.secret_stdin)
        if secret is not None:
            engine.provide_api_secret(args.profile, secret)
        print(
            f"Open this address, log in to Kite as {args.profile}:\n  {engine.login_url(args.profile)}",
            file=out,
        )
        print(
            "Then wait here, or paste the address Kite redirected to (or the request token):",
            file=out,
            flush=True,
        )
        answers: queue.Queue[tuple[str, str]] = queue.Queue()

        def read_stdin() -> None:
            line = sys.stdin.readline()
            if line.strip():
                answers.put(("pasted", line.strip()))

        # Daemon: a blocked stdin read must never keep the process alive after the login.
        threading.Thread(target=read_stdin, name="kitedesk-login-stdin", daemon=True).start()
        if not args.no_listen:

            def listen() -> None:
                try:
                    answers.put(("token", engine.wait_for_redirect(args.profile, args.timeout)))
                except BrokerError as e:
                    answers.put(("error", e.trader_message))

            threading.Thread(target=listen, name="kitedesk-login-wait", daemon=True).start()
        try:
            kind, value = answers.get(timeout=args.timeout)
        except queue.Empty:
            print("No login arrived in time: try again.", file=sys.stderr)
            return 1
        if kind == "error":
            print(value + " Paste the redirect address instead.", file=sys.stderr)
            kind, value = answers.get(timeout=args.timeout)
        name = engine.complete_login(args.profile, value)
        print(f"Logged in: {name} ({args.profile}).", file=out)
        return 0
    except (BrokerError, StoreError, OSError) as e:
        print(trader_message(e), file=sys.stderr)
        return 1
    except _NoSecret as e:
        print(f"kitedesk login: {e}", file=sys.stderr)
        return 1
    except queue.Empty:
        print("No login arrived in time: try again.", file=sys.stderr)
        return 1
    finally:
        engine.close()


def profiles_parser() -> argparse.ArgumentParser:
    """The `kitedesk profiles [add ...]` command line."""
    example = "example: kitedesk profiles add AB1234 --api-key abcdef123456 --name 'My account'"
    p = argparse.ArgumentParser(
        prog="kitedesk profiles",
        description="List the broker profiles (no action), or add one (`add`).",
        epilog=f"{example}\n(run `kitedesk profiles add --help` for the options of add)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--home", help="KiteDesk data folder")
    sub = p.add_subparsers(dest="action", metavar="{add}")
    add = sub.add_parser(
        "add",
        help="add or update a profile (the API secret is asked for)",
        description="Add or update a profile; the API secret is asked for without echo (or read from stdin).",
        epilog=example,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add.add_argument("user_id", help="Kite user id, e.g. AB1234")
    add.add_argument("--api-key", required=True, help="the app's API key from the Kite developer console")
    add.add_argument("--name", default="", help="a display name")
    add.add_argument(
        "--redirect-url",
        default="http://127.0.0.1:5678/kitedesk/login",
        help="the app's redirect URL, as registered on the Kite developer console (default %(default)s)",
    )
    add.add_argument(
        "--api-root", default="https://api.kite.trade", help="Kite's REST root (default %(default)s)"
    )
    add.add_argument(
        "--login-root", default="https://kite.zerodha.com", help="Kite's login root (default %(default)s)"
    )
    add.add_argument("--home", dest="home_add", help="KiteDesk data folder")
    return p


def profiles(argv: Sequence[str], out: TextIO | None = None) -> int:
    """The `kitedesk profiles [add USER_ID --api-key KEY ...]` command."""
    out = sys.stdout if out is None else out  # the stream of this call, not of the import
    args = profiles_parser().parse_args(list(argv))
    engine = _engine("kitedesk profiles", getattr(args, "home_add", None) or args.home)
    if engine is None:
        return 1
    try:
        if args.action == "add":
            if sys.stdin.isatty():
                secret = getpass.getpass(f"API secret of {args.user_id} (not shown): ")
            else:
                secret = sys.stdin.readline().strip()
            info = ProfileInfo(
                user_id=args.user_id,
                api_key=args.api_key,
                display_name=args.name,
                redirect_url=args.redirect_url,
                api_root=args.api_root,
                login_url_root=args.login_root,
            )
            engine.save_profile(info, secret or None)
            if not secret:
                stored = next((p.has_secret for p in engine.profiles() if p.user_id == args.user_id), False)
                note = (
                    "its API secret stored before is kept"
                    if stored
                    else "no API secret given: add it to log in"
                )
                print(f"Saved profile {args.user_id}; {note}.", file=out)
                return 0
            where = (
                "the OS keyring"
                if engine.secure_secrets()
                else "memory only (no keyring: enter it again next run)"
            )
            print(f"Saved profile {args.user_id}; its API secret is in {where}.", file=out)
            return 0
        rows = engine.profiles()
        if not rows:
            print("No profiles yet: add one with `kitedesk profiles add USER_ID --api-key KEY`.", file=out)
        for info in rows:
            login_state = "logged in" if info.logged_in else "login needed"
            secret = "secret stored" if info.has_secret else "no secret"
            print(f"{info.user_id:<10} {info.display_name or '-':<20} {login_state:<13} {secret}", file=out)
        return 0
    except (BrokerError, StoreError, OSError) as e:
        print(trader_message(e), file=sys.stderr)
        return 1
    finally:
        engine.close()
