"""Where KiteDesk keeps its data: one home folder holding `kitedesk.db`, `logs/` and the home's lock.

The home holds an account's trades, orders and broker profiles: it is created readable by its owner only
(folders 0700, files 0600), so another user of the computer cannot read them.

One process per home. Two processes on one home would both take over the same recorded session and
trade it twice (seen: 5 signals became 10 entries and 10 stop-losses). `HomeLock` is an OS file lock on
`home/kitedesk.lock`, held for the process's life; the OS lets it go when the process ends, even on
`kill -9`, so a crash never leaves a stale lock behind. The holder writes its pid and command line into
the file, so a second process is refused with words that name the first.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import stat
import sys
from pathlib import Path
from types import TracebackType

import platformdirs

from desktop.store.errors import StoreError

DB_FILENAME = "kitedesk.db"
LOGS_DIRNAME = "logs"
LOCK_FILENAME = "kitedesk.lock"
HOME_ENV = "KITEDESK_HOME"
APP_NAME = "KiteDesk"
FOLDER_MODE = 0o700
FILE_MODE = 0o600


def resolve_home(cli_home: str | None) -> Path:
    """The home folder: `--home DIR`, else $KITEDESK_HOME, else the platform's user data folder."""
    if cli_home:
        return Path(cli_home).expanduser().resolve()
    env_home = os.environ.get(HOME_ENV, "").strip()
    if env_home:
        return Path(env_home).expanduser().resolve()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def logs_dir(home: Path) -> Path:
    """The folder for log files inside `home` (not created here)."""
    return home / LOGS_DIRNAME


def make_private_folder(folder: Path) -> None:
    """Creates `folder` (and missing parents) readable by its owner only; an existing folder is left as is.

    Only folders made here are narrowed: `--home ~` must not change the mode of the user's own home.
    """
    missing: list[Path] = []
    cursor = Path(folder)
    while not cursor.exists():
        missing.append(cursor)
        if cursor.parent == cursor:
            break
        cursor = cursor.parent
    Path(folder).mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    for made in missing:  # mkdir's mode passes through the umask, which may be wider or narrower
        with contextlib.suppress(OSError):
            made.chmod(FOLDER_MODE)


def create_private_file(path: Path) -> None:
    """Creates `path` empty with mode 0600 when it does not exist (SQLite and logging then write into it)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    try:
        os.chmod(path, FILE_MODE)  # the umask may have narrowed it further; never wider than 0600
    finally:
        os.close(fd)


def narrow_to_owner(*paths: Path) -> None:
    """Takes group and other access away from those of `paths` that exist (a home made by an older version)."""
    for path in paths:
        with contextlib.suppress(OSError):  # missing, or on a read-only disk: nothing to do, nothing to fear
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                path.chmod(mode & 0o700)


class HomeLockedError(StoreError):
    """Another process holds this home's lock; `str(error)` names it (pid and command)."""


def _this_command() -> str:
    argv = list(sys.argv) or ["kitedesk"]
    argv[0] = Path(argv[0]).name or "kitedesk"
    if argv[0] in ("app.py", "__main__.py", "-c", "-m"):
        argv[0] = "kitedesk"  # `python -m desktop.cli ...` is the kitedesk command run from a checkout
    return shlex.join(argv)


class HomeLock:
    """The home's process lock: `HomeLock.acquire(home)` or raise `HomeLockedError`; `release()` on exit.

    fcntl's `flock` on Linux and macOS (per open file, so two opens in one process also exclude each
    other, and closing an unrelated descriptor never drops it, unlike `lockf`); `msvcrt.locking` on
    Windows. No library: the holder's details live in the locked file itself, and `filelock` truncates
    the file before it knows it holds the lock, which would erase them.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, home: Path) -> HomeLock:
        """Takes the lock of `home` (created if missing) for this process, or raises `HomeLockedError`."""
        home = Path(home)
        try:
            make_private_folder(home)
            path = home / LOCK_FILENAME
            # No O_TRUNC: the holder's pid and command stay readable until this process holds the lock.
            fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as exc:
            raise StoreError(
                f"the KiteDesk folder {home} cannot be written to ({exc.strerror or exc}): "
                "make it writable, or use another --home"
            ) from exc
        try:
            locked = _try_lock(fd)
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"cannot lock the KiteDesk folder {home}: {exc.strerror or exc}") from exc
        if not locked:
            holder = _read_holder(path)
            os.close(fd)
            raise HomeLockedError(
                f"KiteDesk is already running on {home} ({holder}): close it first, or use another --home"
            )
        try:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"pid {os.getpid()}: {_this_command()}\n".encode())
        except OSError:
            pass  # the lock is what matters; a home on a full disk still gets it, the words are a courtesy
        return cls(path, fd)

    def release(self) -> None:
        """Lets the lock go (the OS does it too when the process ends). Safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the only descriptor of the open file drops the lock

    @property
    def held(self) -> bool:
        """True until `release`."""
        return self._fd is not None

    def __enter__(self) -> HomeLock:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _read_holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text.splitlines()[0] if text else "another process that has not yet said its pid"


if sys.platform == "win32":  # pragma: no cover - the suite runs on Linux
    import msvcrt

    # Windows locks are mandatory: lock one byte far past the text, so the holder's words stay readable.
    _WIN_LOCK_OFFSET = 0x7FFFFFFF

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        finally:
            os.lseek(fd, 0, os.SEEK_SET)
        return True

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
