"""Simulator figures: full-mode ticks/s streamed over loopback to 3 accounts x 1000 instruments, and REST
round-trip p50/p99 of place_order through the official client.

    .venv/bin/python bench/sim_bench.py [--seconds 10] [--speed 100] [--orders 300]

The simulator runs in its own process (`python -m desktop.broker.sim`), as a real Kite would be another
machine; the readers run here on asyncio and count packets from each frame's header.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import struct
import subprocess
import sys
import time
from urllib.parse import parse_qs, urlsplit

import aiohttp
import requests
from kiteconnect import KiteConnect

ACCOUNTS = [("BENCH1", "s1"), ("BENCH2", "s2"), ("BENCH3", "s3")]


def start_sim(speed: float) -> tuple[subprocess.Popen, str]:
    args = [
        sys.executable,
        "-m",
        "desktop.broker.sim",
        "--port",
        "0",
        "--speed",
        str(speed),
        "--start",
        "2026-01-08T09:15",
        "--no-rate-limits",
        "--funds",
        "100000000",
    ]
    for key, secret in ACCOUNTS:
        args += ["--account", f"{key}:{secret}"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.search(r"REST\s+(http://\S+)/", line)
        if m:
            return proc, m.group(1)
    raise RuntimeError("simulator did not start")


def login(root: str, key: str, secret: str) -> KiteConnect:
    kite = KiteConnect(key, root=root, timeout=10)
    resp = requests.get(f"{root}/connect/login", params={"api_key": key, "v": "3"}, allow_redirects=False)
    token = parse_qs(urlsplit(resp.headers["Location"]).query)["request_token"][0]
    kite.set_access_token(kite.generate_session(token, api_secret=secret)["access_token"])
    return kite


async def read_ticks(
    url: str, tokens: list[int], seconds: float, counts: list[int], bytes_in: list[int]
) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(url, max_msg_size=0) as ws:
        await ws.send_json({"a": "subscribe", "v": tokens})
        await ws.send_json({"a": "mode", "v": ["full", tokens]})
        # Skip the first second (subscription warm-up), then count.
        warm_until = time.monotonic() + 1.0
        end = warm_until + seconds
        while time.monotonic() < end:
            try:
                msg = await ws.receive(timeout=max(0.01, end - time.monotonic()))
            except TimeoutError:
                break
            if msg.type != aiohttp.WSMsgType.BINARY or len(msg.data) < 2:
                continue
            if time.monotonic() >= warm_until:
                counts.append(struct.unpack_from(">H", msg.data)[0])
                bytes_in.append(len(msg.data))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--speed", type=float, default=100.0)
    ap.add_argument("--orders", type=int, default=300)
    args = ap.parse_args()
    proc, root = start_sim(args.speed)
    try:
        kites = [login(root, k, s) for k, s in ACCOUNTS]
        rows = kites[0].instruments()
        options = [r for r in rows if r["instrument_type"] in ("CE", "PE")]
        tokens = [r["instrument_token"] for r in rows][:1000]
        print(
            f"simulator at {root}, speed x{args.speed:g}, {len(rows)} instruments, subscribing {len(tokens)} per account"
        )

        async def stream() -> list[list[int]]:
            per_account: list[list[int]] = [[] for _ in kites]
            sizes: list[list[int]] = [[] for _ in kites]
            ws_root = root.replace("http://", "ws://") + "/ws"
            await asyncio.gather(
                *[
                    read_ticks(
                        f"{ws_root}?api_key={k.api_key}&access_token={k.access_token}",
                        tokens,
                        args.seconds,
                        per_account[i],
                        sizes[i],
                    )
                    for i, k in enumerate(kites)
                ]
            )
            return per_account + sizes

        result = asyncio.run(stream())
        counts, sizes = result[:3], result[3:]
        total = sum(sum(c) for c in counts)
        print(
            f"ticks streamed: {total} full-mode ticks in {args.seconds:g} s = {total / args.seconds:,.0f} ticks/s "
            f"({', '.join(f'{sum(c) / args.seconds:,.0f}' for c in counts)} per account), "
            f"{sum(sum(s) for s in sizes) / args.seconds / 1e6:.1f} MB/s"
        )

        kite = kites[0]
        opt = options[len(options) // 2]
        latencies = []
        for _ in range(args.orders):
            t0 = time.perf_counter()
            kite.place_order(
                variety="regular",
                exchange=opt["exchange"],
                tradingsymbol=opt["tradingsymbol"],
                transaction_type="BUY",
                quantity=opt["lot_size"],
                product="MIS",
                order_type="LIMIT",
                price=0.05,
                tag="bench",
            )
            latencies.append((time.perf_counter() - t0) * 1000)
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        print(
            f"place_order round trip over {len(latencies)} orders: p50 {statistics.median(latencies):.2f} ms, "
            f"p99 {p99:.2f} ms, max {latencies[-1]:.2f} ms"
        )
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
