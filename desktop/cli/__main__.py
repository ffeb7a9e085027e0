"""`python -m desktop.cli ...`: the `kitedesk` command run from a checkout."""

import sys

from desktop.cli.main import main

sys.exit(main())
