"""What the terminal commands (`kitedesk run`, `login`, `profiles`) share: opening the engine on a home, and
turning a failure into the one line a trader reads instead of a traceback (issue 16 §10)."""

from __future__ import annotations

import errno
import sys
from pathlib import Path

from desktop.broker.errors import BrokerError
from desktop.broker.profiles import SecretStore
from desktop.engine.engine import Engine
from desktop.store import StoreError, StoreFullError, StoreLockedError, StoreWriteError

# The OS errors a trader meets on a home, in words that say what to do about them (the OS's own words follow).
_PLAIN_OS_ERRORS = {
    errno.ENOSPC: "the disk is full",
    errno.EFBIG: "a file of the home reached its size limit",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the disk is read-only",
}
_DISK_FULL = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


def trader_message(exc: BaseException) -> str:
    """The plain words of `exc`: our errors carry them; an OS error says what it could not do, and where."""
    if isinstance(exc, BrokerError):
        return exc.trader_message
    if isinstance(exc, OSError) and exc.strerror:
        said = exc.strerror if exc.filename is None else f"{exc.strerror}: {exc.filename}"
        plain = _PLAIN_OS_ERRORS.get(exc.errno or 0)
        return f"{plain} ({said})" if plain else said
    return str(exc) or type(exc).__name__


def open_engine(command: str, home: Path, secrets: SecretStore | None = None) -> Engine | None:
    """The engine of `home` (holding its lock), or None once one line on stderr has said why not.

    The reasons a trader meets: another KiteDesk process holds the home, the database is locked by another
    program, damaged, or on a read-only disk, the profiles file cannot be read.
    """
    try:
        return Engine(home, secrets=secrets)
    except (StoreError, BrokerError, OSError) as exc:
        print(f"{command}: {trader_message(exc)}", file=sys.stderr)
        return None


class Problems:
    """The failures of one command, printed once each at its end.

    A full disk makes every write fail the same way while it lasts (the store pauses on its first write failure,
    a log file or a recording cannot be flushed), and so does a database another program keeps locked: that cause is
    said once, not once per session that then fails to stop (a chaos run's Ctrl-C printed a full disk four times).
    """

    def __init__(self, command: str, engine: Engine) -> None:
        self._command = command
        self._engine = engine
        self._lines: list[str] = []
        self._storage_failed = False
        self._disk_full: OSError | None = None
        self._locked: StoreLockedError | None = None

    def add(self, exc: BaseException, what: str = "") -> None:
        """Records a failure; `what` names what failed (e.g. "stopping AB1234 'Morning'")."""
        if isinstance(exc, StoreWriteError) and self._engine.store.write_failure is not None:
            self._storage_failed = True
            return
        if isinstance(exc, StoreLockedError):  # every write met the same lock: said once, whatever it held up
            self._locked = self._locked or exc
            return
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            self._disk_full = self._disk_full or exc
            return
        line = f"{what} failed: {trader_message(exc)}" if what else trader_message(exc)
        if line not in self._lines:
            self._lines.append(line)

    def lines(self) -> list[str]:
        """What to print, cause of a storage failure first."""
        lines = list(self._lines)
        failure = self._engine.store.write_failure
        said_full = False
        if self._storage_failed and failure is not None:
            lines.insert(0, str(failure))
            said_full = isinstance(failure, StoreFullError)
        if self._disk_full is not None and not said_full:
            lines.insert(0, trader_message(self._disk_full))
        if self._locked is not None:
            lines.insert(0, str(self._locked))
        return [f"{self._command}: {line}" for line in lines]
