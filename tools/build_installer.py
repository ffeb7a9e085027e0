"""Builds the frozen KiteDesk (build_installer.spec) and its download archive, and checks the size budgets.

    pip install -e '.[build]' && python tools/build_installer.py [--no-build]

Writes dist/KiteDesk/ (the one-folder app) and dist/KiteDesk-<version>-linux-x86_64.tar.gz (macOS: -macos-,
a .tar.gz of KiteDesk.app; Windows: a .zip), prints the size on disk and compressed, and exits 1 when either is
over its budget (200 MB on disk, 80 MB compressed: a download a trader does not give up on).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "build_installer.spec"
DIST = ROOT / "dist"
WORK = ROOT / "build" / "installer"
APP_NAME = "KiteDesk"
MB = 1_000_000
DISK_BUDGET = 200 * MB
COMPRESSED_BUDGET = 80 * MB


def version() -> str:
    """The version, from its one home: pyproject.toml."""
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def platform_tag() -> str:
    """`linux-x86_64`, `macos-arm64`, `windows-amd64`..."""
    system = {"darwin": "macos", "win32": "windows"}.get(sys.platform, "linux")
    return f"{system}-{platform.machine().lower()}"


def build() -> Path:
    """Runs PyInstaller on the spec; returns the app folder (or KiteDesk.app on macOS)."""
    cmd = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN"]
    cmd += ["--distpath", str(DIST), "--workpath", str(WORK), str(SPEC)]
    subprocess.run(cmd, check=True, cwd=ROOT)
    return app_path()


def app_path() -> Path:
    """What the archive holds: the folder, or the .app bundle built around it on macOS."""
    bundle = DIST / f"{APP_NAME}.app"
    return bundle if sys.platform == "darwin" else DIST / APP_NAME


def size_on_disk(top: Path) -> int:
    """Bytes the folder takes, as `du` counts them (links not followed, each file once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            blocks = getattr(st, "st_blocks", None)
            total += blocks * 512 if blocks is not None else st.st_size
    return total


def pack(app: Path, ver: str) -> Path:
    """The download: a .tar.gz (a .zip on Windows) whose top folder is `KiteDesk-<version>`."""
    stem = f"{APP_NAME}-{ver}-{platform_tag()}"
    top = f"{APP_NAME}-{ver}" if sys.platform != "darwin" else app.name
    if sys.platform == "win32":
        out = DIST / f"{stem}.zip"
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
            for path in sorted(app.rglob("*")):
                z.write(path, f"{top}/{path.relative_to(app).as_posix()}")
        return out
    out = DIST / f"{stem}.tar.gz"
    # gzip -6: level 9 saves 0.4 MB of 77 and takes 4 times as long (33 s against 9 s here).
    with tarfile.open(out, "w:gz", compresslevel=6) as tar:  # keeps the kitedesk -> KiteDesk link
        tar.add(app, arcname=top)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--no-build", action="store_true", help="pack and check the app already in dist/")
    args = p.parse_args(argv)
    ver = version()
    t0 = time.monotonic()
    if args.no_build:
        app = app_path()
        if not app.exists():
            print(f"build_installer: {app} is not there: run without --no-build first", file=sys.stderr)
            return 1
    else:
        if shutil.which("objdump") is None and sys.platform.startswith("linux"):
            print("build_installer: PyInstaller needs objdump (apt-get install binutils)", file=sys.stderr)
            return 1
        app = build()
    t_build = time.monotonic() - t0
    archive = pack(app, ver)
    t_pack = time.monotonic() - t0 - t_build
    disk, packed = size_on_disk(app), archive.stat().st_size
    print(f"KiteDesk {ver} ({platform_tag()}): {app.relative_to(ROOT)}, {archive.relative_to(ROOT)}")
    print(f"  built in {t_build:.0f} s, packed in {t_pack:.0f} s")
    over = []
    for what, size, budget in (("on disk", disk, DISK_BUDGET), ("compressed", packed, COMPRESSED_BUDGET)):
        verdict = "ok" if size <= budget else "OVER BUDGET"
        print(f"  size {what:<10} {size / MB:7.1f} MB   (budget {budget / MB:.0f} MB: {verdict})")
        if size > budget:
            over.append(what)
    if over:
        print(f"build_installer: the app is over its size budget ({', '.join(over)})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
