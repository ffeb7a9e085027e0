"""`SimProcess`: the simulator in a child process of its own (`python -m desktop.broker.sim`).

The window's demo runs it this way. In-process, the simulator's market and server (Python, a thread of
their own) shared the GIL with the GUI thread: while three sessions started, the window waited up to
100-250 ms at a time for the simulator's and the agents' Python to let go of it. A real Kite is another
machine; a child process is the closest to that on one machine. The child exits when it is stopped,
and by itself if this process dies (`--exit-with-parent`), so no simulator outlives its window.
"""

from __future__ import annotations

import contextlib
import queue
import re
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from desktop.broker.sim.runner import ws_url_of

_REST = re.compile(r"REST\s+(http://\S+?)/?\s*$")
CONSOLE_NAMES = ("kitedesk-cli.exe", "kitedesk-cli", "kitedesk")


def sim_command() -> list[str]:
    """`python -m desktop.broker.sim`; in the frozen app (no Python to run `-m`), its console binary's `sim`."""
    if not getattr(sys, "frozen", False):
        return [sys.executable, "-m", "desktop.broker.sim"]
    # build_installer.spec puts the console binary beside the window's: `kitedesk` on Linux, `kitedesk-cli`
    # where file names ignore case. Both run desktop.cli.main's main, which has the `sim` command.
    folder = Path(sys.executable).parent
    console = next((folder / n for n in CONSOLE_NAMES if (folder / n).is_file()), Path(sys.executable))
    return [str(console), "sim"]


class SimStartError(RuntimeError):
    """The simulator's process did not start; the message says why."""


class SimProcess:
    """A running simulator process: its REST and WebSocket addresses, faults over HTTP, `stop()`."""

    def __init__(self, proc: subprocess.Popen[str], url: str, reader: threading.Thread) -> None:
        self._proc = proc
        self.url = url
        self.ws_url = ws_url_of(url)
        self._reader = reader

    @classmethod
    def start(
        cls,
        *,
        speed: float,
        seed: int = 1,
        start: datetime | None = None,
        rate_limits: bool = True,
        timeout: float = 30.0,
    ) -> SimProcess:
        """Starts `python -m desktop.broker.sim` on a free local port; returns once it serves."""
        args = [*sim_command(), "--port", "0", "--exit-with-parent"]
        args += ["--speed", repr(float(speed)), "--seed", str(seed)]
        if start is not None:
            args += ["--start", start.strftime("%Y-%m-%dT%H:%M")]
        if not rate_limits:
            args.append("--no-rate-limits")
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()
        stdout = proc.stdout

        def read() -> None:  # also keeps the pipe drained for as long as the child runs
            for line in stdout:
                lines.put(line)
            lines.put(None)

        reader = threading.Thread(target=read, name="sim-process-output", daemon=True)
        reader.start()
        said: list[str] = []
        try:
            while True:
                try:
                    line = lines.get(timeout=timeout)
                except queue.Empty:
                    raise SimStartError(f"the simulator did not start within {timeout:g} s") from None
                if line is None:
                    raise SimStartError(f"the simulator stopped at start: {''.join(said).strip()[-500:]}")
                said.append(line)
                m = _REST.search(line)
                if m:
                    return cls(proc, m.group(1), reader)
        except BaseException:  # not started (or interrupted): no child left behind
            proc.kill()
            proc.wait(5)
            raise

    def inject_fault(self, fault: dict[str, Any]) -> dict[str, Any]:
        """Applies a fault (see desktop.broker.sim.faults) through POST /_sim/faults."""
        resp = requests.post(f"{self.url}/_sim/faults", json=fault, timeout=10)
        resp.raise_for_status()
        return dict(resp.json().get("data", {}))

    @property
    def running(self) -> bool:
        """The child process is still alive."""
        return self._proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Stops the child (SIGTERM, then SIGKILL after `timeout`) and its output reader."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        with contextlib.suppress(Exception):
            self._reader.join(5)
