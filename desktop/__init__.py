"""KiteDesk: a desktop trading client for Zerodha Kite Connect (docs/ARCHITECTURE.md describes the layers)."""

__version__ = "0.1.0"
