"""Fixtures of the engine's unit tests."""

from tests.engine.traders import make  # noqa: F401 - a fixture: a SegmentTrader with a recording gateway
