"""Entry point of the frozen app (build_installer.spec): both `KiteDesk` and `kitedesk` run `kitedesk`'s main."""

import sys

from desktop.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
