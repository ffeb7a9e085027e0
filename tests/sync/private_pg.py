"""A PostgreSQL cluster of the test's own, in a temporary folder on a free port, that the test may stop
(`-m fast` or `-m immediate`, a crash) and start again without disturbing anyone else's server.

The machine's cluster is shared with other tests running at the same time, so a test that restarts the
server never restarts that one. initdb and the server refuse to run as root: as root they run as the
`postgres` OS user (runuser) in a folder that user owns; otherwise as the current user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

ADMIN = "kd_private_admin"


def find_bin_dir() -> Path | None:
    """The folder with initdb and pg_ctl: $KITEDESK_TEST_PG_BIN when set (only it), else the newest
    /usr/lib/postgresql/N/bin, else the folder of an initdb on PATH."""
    given = os.environ.get("KITEDESK_TEST_PG_BIN")
    if given:
        candidates = [Path(given)]
    else:
        candidates = sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
            reverse=True,
        )
        on_path = shutil.which("initdb")
        if on_path:
            candidates.append(Path(on_path).parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def why_unavailable() -> str | None:
    """Why a private cluster cannot be made here, or None when it can."""
    if find_bin_dir() is None:
        return (
            "no PostgreSQL server binaries (initdb, pg_ctl): set KITEDESK_TEST_PG_BIN or install postgresql"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and there is no `postgres` OS user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root without runuser (the server refuses to run as root)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateCluster:
    """initdb'd on creation; `start()`, `stop(mode)`, `close()` (stops it and removes the folder)."""

    def __init__(self) -> None:
        bin_dir = find_bin_dir()
        assert bin_dir is not None, why_unavailable()
        self._bin = bin_dir
        self._as_postgres = os.geteuid() == 0
        self.dir = Path(tempfile.mkdtemp(prefix="kd-private-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.port = _free_port()
        self.password = secrets.token_urlsafe(18)
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password + "\n", encoding="utf-8")
        if self._as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        pwfile.chmod(0o600)
        self._run(
            "initdb", "-D", str(self.data), "-U", ADMIN, f"--pwfile={pwfile}", "--auth-local=trust",
            "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync", timeout=120,
        )  # fmt: skip
        pwfile.unlink()
        self.stops = 0  # how many times the test stopped it

    @property
    def admin_url(self) -> str:
        return f"postgresql://{ADMIN}:{self.password}@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [str(self._bin / tool), *args]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.dir)
        if done.returncode != 0:
            raise RuntimeError(
                f"{tool} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
            )
        return done

    def start(self) -> None:
        """Starts the server (after a crash it recovers first); returns when it accepts connections."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} "
            "-c fsync=off -c max_connections=60 -c shared_buffers=16MB"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """Stops the server: `fast` (clients cut, clean shutdown) or `immediate` (no shutdown: crash recovery
        on the next start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
        self.stops += 1

    def running(self) -> bool:
        try:
            with psycopg.connect(self.admin_url, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def close(self) -> None:
        """Stops the server if it runs and removes its folder."""
        with contextlib.suppress(Exception):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop")
        for _ in range(3):
            try:
                shutil.rmtree(self.dir)
                return
            except OSError:
                time.sleep(0.2)
