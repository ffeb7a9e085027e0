"""A Kite Connect v3 compatible market and broker simulator (REST + WebSocket) for the demo and the tests.

The official `kiteconnect` client talks to it unchanged: `KiteConnect(api_key, root=sim.url)` and a
ticker pointed at `sim.ws_url`. Several simulators may run in one process.
"""

from desktop.broker.sim.runner import Simulator, ws_url_of
from desktop.broker.sim.state import DEMO_ACCOUNTS, SimAccount, SimConfig

__all__ = ["DEMO_ACCOUNTS", "SimAccount", "SimConfig", "Simulator", "ws_url_of"]
