"""The one line a terminal command prints for an OS error (issue 16 §10): what a trader can act on, then the
OS's own words and the file, never a traceback."""

from __future__ import annotations

import errno
import os

from desktop.cli.support import trader_message


def test_a_full_disk_says_so_in_plain_words() -> None:
    # Ctrl-C of a chaos run on a full disk printed only "kitedesk run: No space left on device".
    said = trader_message(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert said == "the disk is full (No space left on device)"


def test_the_file_is_named_after_the_os_words() -> None:
    said = trader_message(OSError(errno.EROFS, os.strerror(errno.EROFS), "/home/t/.kitedesk/kitedesk.db"))
    assert said == "the disk is read-only (Read-only file system: /home/t/.kitedesk/kitedesk.db)"


def test_other_os_errors_keep_their_own_words() -> None:
    said = trader_message(PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/home/t/.kitedesk"))
    assert said == "Permission denied: /home/t/.kitedesk"
    assert trader_message(OSError("no errno")) == "no errno"
