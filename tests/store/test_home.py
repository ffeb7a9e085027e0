"""The home folder: private to its owner (issue 16 §11) and held by one process at a time (issue 16 §4)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.store import DB_FILENAME, Store
from desktop.store.home import HomeLock, HomeLockedError, create_private_file, make_private_folder


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    """A permissive umask, as on many desktops (022 or 002): the modes must not depend on it."""
    previous = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_new_home_and_its_database_are_private(tmp_path: Path, open_umask: None) -> None:
    home = tmp_path / "a" / "home"
    with Store.open(home) as store:
        store.profiles.is_known(broker_id="AB1234")
    assert _mode(home) == 0o700 and _mode(home.parent) == 0o700
    for p in home.iterdir():
        if p.name.startswith(DB_FILENAME):
            assert _mode(p) == 0o600, p


def test_an_older_homes_database_is_made_private_on_open(tmp_path: Path, open_umask: None) -> None:
    home = tmp_path / "home"
    with Store.open(home):
        pass
    (home / DB_FILENAME).chmod(0o644)
    with Store.open(home):
        pass
    assert _mode(home / DB_FILENAME) == 0o600


def test_an_existing_folder_given_as_home_keeps_its_mode(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    make_private_folder(tmp_path)
    assert _mode(tmp_path) == 0o755


def test_private_file_is_created_0600_and_an_existing_one_is_kept(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "f"
    create_private_file(path)
    assert _mode(path) == 0o600 and path.read_bytes() == b""
    path.write_text("kept")
    create_private_file(path)
    assert path.read_text() == "kept"


def test_a_second_lock_on_one_home_is_refused_naming_the_holder(tmp_path: Path) -> None:
    with HomeLock.acquire(tmp_path / "home") as first:
        with pytest.raises(HomeLockedError) as refused:
            HomeLock.acquire(tmp_path / "home")
        assert f"pid {os.getpid()}" in str(refused.value) and str(tmp_path / "home") in str(refused.value)
        assert first.held
    with HomeLock.acquire(tmp_path / "home"):  # released: the next process may take it
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    home = tmp_path / "home"
    code = (
        "import os, sys; from pathlib import Path; from desktop.store.home import HomeLock;"
        f"HomeLock.acquire(Path({str(home)!r})); print('held', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(HomeLockedError, match=f"pid {holder.pid}"):
            HomeLock.acquire(home)
    finally:
        holder.kill()  # as kill -9: no chance to clean up
        holder.wait()
    with HomeLock.acquire(home):
        pass
