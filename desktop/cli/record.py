"""`kitedesk record --profile P --instruments NIFTY,BANKNIFTY [--strikes N] [--for SECONDS]`: record an account's
market data without trading (a VPS can record all day; `kitedesk replay` plays it back).

It subscribes each index in full mode and the calls and puts of its nearest expiry `--strikes` strikes either
side of the index's first price (what an ITM strategy would trade), plus any instrument tokens named, and
records every frame into `<home>/recordings/<profile>/<day>.kdrec` beside the day's instruments dump. The
profile must be logged in (`kitedesk login`); `--demo`/`--sim-url` record the simulator's demo account.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import TextIO

from desktop.broker.errors import InputRejected
from desktop.broker.instruments import InstrumentBook
from desktop.broker.profiles import MemorySecretStore
from desktop.broker.recording import DEFAULT_RETENTION_DAYS, day_file, format_bytes, recordings_dir
from desktop.broker.ticks import MODE_FULL
from desktop.cli.support import open_engine, trader_message
from desktop.domain import OptionRight, Segment, SessionKey

FIRST_PRICE_WAIT_S = 15.0
RECENTRE_EVERY_S = 30.0  # wall seconds between looks at where the index is now


def build_parser() -> argparse.ArgumentParser:
    """The `kitedesk record` command line."""
    p = argparse.ArgumentParser(
        prog="kitedesk record",
        description="Record an account's market data (every WebSocket frame) without trading.",
        epilog="example: kitedesk record --profile AB1234 --instruments NIFTY,BANKNIFTY --strikes 15",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--profile", required=True, help="the broker account (user id) whose feed to record")
    p.add_argument(
        "--instruments",
        required=True,
        type=_instruments,
        help="comma-separated indices (" + ", ".join(s.value for s in Segment) + ") and/or instrument tokens",
    )
    p.add_argument(
        "--strikes",
        type=int,
        default=10,
        help="option strikes recorded either side of each index (default 10)",
    )
    p.add_argument(
        "--for", dest="duration", type=float, help="stop after this many seconds (default: Ctrl-C)"
    )
    p.add_argument(
        "--retention",
        type=int,
        default=DEFAULT_RETENTION_DAYS,
        help="days of recordings kept (default %(default)s)",
    )
    p.add_argument("--demo", action="store_true", help="record the embedded simulator's demo account")
    p.add_argument("--sim-url", help="record a running simulator's demo account (e.g. http://127.0.0.1:5000)")
    p.add_argument(
        "--speed", type=float, default=30.0, help="demo market speed (simulated seconds per second)"
    )
    p.add_argument("--home", help="KiteDesk data folder (default: $KITEDESK_HOME or the user data folder)")
    return p


def _instruments(text: str) -> tuple[list[Segment], list[int]]:
    segments: list[Segment] = []
    tokens: list[int] = []
    for word in (w.strip() for w in text.split(",") if w.strip()):
        if word.isdigit():
            tokens.append(int(word))
            continue
        try:
            segments.append(Segment(word.upper()))
        except ValueError:
            names = ", ".join(s.value for s in Segment)
            raise argparse.ArgumentTypeError(f"{word!r} is neither an index ({names}) nor a token") from None
    if not segments and not tokens:
        raise argparse.ArgumentTypeError("name at least one index or instrument token")
    return segments, tokens


def option_tokens(book: InstrumentBook, segment: Segment, spot: Decimal, strikes: int) -> list[int]:
    """The nearest expiry's calls and puts `strikes` strikes either side of `spot` (those listed)."""
    tokens = []
    for right in (OptionRight.CE, OptionRight.PE):
        for offset in range(0, strikes + 1):
            for sign in (1, -1) if offset else (1,):
                try:
                    contract = book.resolve_itm_option(
                        segment, spot + sign * offset * segment.spec.strike_step, right, 0, book.as_of
                    )
                except InputRejected:  # not listed (the chain's edge)
                    continue
                tokens.append(contract.instrument_token)
    return sorted(set(tokens))


def main(argv: Sequence[str], out: TextIO | None = None) -> int:
    """The `kitedesk record` command; returns its exit status."""
    out = sys.stdout if out is None else out  # the stream of this call, not of the import
    from desktop.store import resolve_home

    args = build_parser().parse_args(list(argv))
    if args.strikes < 0 or args.retention < 1:
        print("kitedesk record: --strikes must be 0 or more and --retention at least 1 day", file=sys.stderr)
        return 2
    demo = args.demo or bool(args.sim_url)
    engine = open_engine("kitedesk record", resolve_home(args.home), MemorySecretStore() if demo else None)
    if engine is None:
        return 1
    stop = False

    def request_stop(*_: object) -> None:
        nonlocal stop
        stop = True

    previous = signal.signal(signal.SIGINT, request_stop)
    kite = stream = None
    path = None
    try:
        if demo:
            from desktop.cli.demo import start_demo  # the simulator, loaded only for a demo

            start_demo(engine, speed=args.speed, sim_url=args.sim_url)
        if not engine.is_logged_in(args.profile):
            print(
                f"kitedesk record: log {args.profile} in first (kitedesk login {args.profile})",
                file=sys.stderr,
            )
            return 1
        engine.set_recording(args.profile, True, args.retention)
        profile = engine.profile(args.profile)
        kite = engine.hub.open_session(profile, SessionKey.new(args.profile))
        stream = engine.hub.open_stream(kite)
        segments, tokens = args.instruments
        book = engine.hub.instrument_book(kite, engine.market_time().date())
        stream.subscribe([s.spec.index_token for s in segments] + tokens, MODE_FULL)
        deadline = time.monotonic() + FIRST_PRICE_WAIT_S
        pending = list(segments)
        recorded: dict[Segment, set[int]] = {}
        started = next_recentre = time.monotonic()
        while not stop and (args.duration is None or time.monotonic() - started < args.duration):
            for segment in list(pending):
                spot = stream.last_price(segment.spec.index_token)
                if spot is not None:
                    options = option_tokens(book, segment, spot, args.strikes)
                    stream.subscribe(options, MODE_FULL)
                    recorded[segment] = set(options)
                    print(f"recording {segment.value} and {len(options)} of its options", file=out)
                    pending.remove(segment)
                elif time.monotonic() > deadline:
                    print(
                        f"kitedesk record: no {segment.value} price yet: recording the index only", file=out
                    )
                    pending.remove(segment)
            if time.monotonic() >= next_recentre:
                # The index moves during the day: the strikes around it now are recorded too (none dropped).
                next_recentre = time.monotonic() + RECENTRE_EVERY_S
                for segment, tokens_of in recorded.items():
                    spot = stream.last_price(segment.spec.index_token)
                    new = set(option_tokens(book, segment, spot, args.strikes)) - tokens_of if spot else set()
                    if new:
                        stream.subscribe(sorted(new), MODE_FULL)
                        tokens_of |= new
                        print(
                            f"{segment.value} moved: now also recording {len(new)} more of its options",
                            file=out,
                        )
            time.sleep(0.2)
        path = day_file(recordings_dir(engine.home()) / args.profile, engine.market_time().date())
        return 0
    except Exception as exc:  # one plain line, never a traceback
        print(f"kitedesk record: {trader_message(exc)}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, previous)
        if stream is not None:
            stream.close()
        if kite is not None:
            kite.close()
        try:
            engine.close()
        finally:
            if path is not None and path.exists():
                print(f"recorded into {path} ({format_bytes(path.stat().st_size)})", file=out)
