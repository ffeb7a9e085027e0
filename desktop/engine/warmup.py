"""Imports what the first window left out, on a thread of its own, once the window is up.

The first window needs no Kite client and no market feed, so `kiteconnect` (with its ticker's twisted and
autobahn stack) and the feed (aiohttp, numpy) are imported when first used (issue 18: first paint). The
first use is a session starting, on the GUI thread: importing them there would stall it for a few hundred
milliseconds once. `import_in_background()` imports them on a daemon thread right after the first paint
instead; a session started before it finished waits for the import (Python's import lock), no longer.
"""

from __future__ import annotations

import importlib
import logging
import threading

log = logging.getLogger(__name__)

LATER_IMPORTS = ("kiteconnect", "desktop.broker.stream")


def import_in_background() -> threading.Thread:
    """Starts (and returns) the daemon thread importing `LATER_IMPORTS`."""

    def run() -> None:
        for name in LATER_IMPORTS:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - the real first use will raise it where it is handled
                log.debug("importing %s ahead of use failed", name, exc_info=True)

    thread = threading.Thread(target=run, name="kitedesk-import-ahead", daemon=True)
    thread.start()
    return thread
