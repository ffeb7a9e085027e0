"""KiteDesk: a desktop trading client for Zerodha Kite Connect (see DESIGN.md for the layers)."""

__version__ = "0.1.0"
