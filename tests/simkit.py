"""Helpers for tests that talk to a running simulator with the real `kiteconnect` client."""

from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import requests
from kiteconnect import KiteConnect

from desktop.broker.sim import SimConfig, Simulator

DEMO_SECRETS = {"UK9394": "secret_A", "UK1234": "secret_B"}
# A Thursday, so NIFTY's weekly (Tuesday) and SENSEX's (Thursday) expiries are both ahead or today.
TEST_START = datetime(2026, 1, 8, 9, 30)
# The demo's market day in tests that count what its sessions trade: the simulator's prices follow its seed AND its
# trading day, so a demo started at "09:20" of today traded on some days and not on others (2026-12-08: no trade in
# the first 15 minutes, a fault test's writes piled up otherwise). A weekday on which they all trade as the tests say.
DEMO_DAY = "2026-12-07"


def demo_start(hh_mm: str) -> str:
    """`--start` for the demo at `hh_mm` of `DEMO_DAY` (never today's market)."""
    return f"{DEMO_DAY}T{hh_mm}"


def start_sim(**overrides) -> Simulator:
    """A started simulator with the demo accounts, rate limits off unless asked for."""
    params = {"seed": 7, "speed": 1.0, "start": TEST_START, "rate_limits": False}
    params.update(overrides)
    return Simulator(SimConfig(**params)).start()


def request_token(sim: Simulator, api_key: str, **extra: str) -> tuple[str, dict[str, list[str]]]:
    """Follows the simulated browser login and returns the request token and the redirect's query."""
    resp = requests.get(
        f"{sim.url}/connect/login",
        params={"api_key": api_key, "v": "3", **extra},
        allow_redirects=False,
        timeout=5,
    )
    assert resp.status_code == 302, resp.text
    query = parse_qs(urlsplit(resp.headers["Location"]).query)
    return query["request_token"][0], query


def login(sim: Simulator, api_key: str = "UK9394", secret: str | None = None) -> KiteConnect:
    """A KiteConnect logged in to the simulator through the whole Kite login flow."""
    kite = KiteConnect(api_key, root=sim.url, timeout=5)
    token, _ = request_token(sim, api_key)
    session = kite.generate_session(token, api_secret=secret or DEMO_SECRETS[api_key])
    kite.set_access_token(session["access_token"])
    return kite


def fault(sim: Simulator, **body) -> dict:
    """Injects a fault over HTTP, as an outside tool would."""
    resp = requests.post(
        f"{sim.url}/_sim/faults",
        data=json.dumps(body),
        timeout=5,
        headers={"Content-Type": "application/json"},
    )
    resp.raise_for_status()
    return resp.json()["data"]


def advance(sim: Simulator, seconds: float) -> None:
    """Moves the market clock forward."""
    requests.post(f"{sim.url}/_sim/clock", json={"advance": seconds}, timeout=5).raise_for_status()
