"""Optional sync of each account's records to a central PostgreSQL (no Qt; see README "Central sync").

For a window: `SyncService(store, home)` starts a worker thread per enabled account; poll `statuses()`
(no I/O) for the status bar (`SyncStatus.text`: `synced`, `N pending`, `offline — retry in 30 s`, or the
error in words) and call `stop()` on the way out. `kitedesk sync ...` is `desktop.sync.cli`.
"""

from desktop.sync.central import SyncError
from desktop.sync.worker import SyncService, SyncStatus, SyncWorker

__all__ = ["SyncError", "SyncService", "SyncStatus", "SyncWorker"]
