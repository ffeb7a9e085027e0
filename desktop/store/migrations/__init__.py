"""Alembic migrations of the local store, run programmatically by `Store.open` (no alembic.ini)."""
