"""Entry point of the frozen app (build_installer.spec): both `KiteDesk` and `kitedesk` run `kitedesk`'s main."""

import multiprocessing
import sys

if __name__ == "__main__":
    # A backtest's worker processes (spawned: `kitedesk backtest`, Tools → Backtest…) start this executable
    # again; freeze_support() makes such a start run the worker (and end) instead of a second KiteDesk.
    multiprocessing.freeze_support()
    from desktop.cli.main import main

    sys.exit(main())
