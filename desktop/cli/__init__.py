"""The composition root: the `kitedesk` command line (main.py and one module per command).

Only this package builds an `Engine` (with its home, secret store and clock) and only it imports the
simulator (demo.py); the engine, the window and the store are handed what they need.
"""
