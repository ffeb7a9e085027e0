"""`python -m desktop.broker.sim ...`: the same as `kitedesk sim ...`."""

import sys

from desktop.broker.sim.cli import main

sys.exit(main(sys.argv[1:]))
