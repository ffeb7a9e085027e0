"""Alembic environment: runs on the connection `desktop.store.migrate` hands over, inside its transaction."""

from __future__ import annotations

from alembic import context

from desktop.store.schema import metadata

if context.is_offline_mode():
    raise RuntimeError("KiteDesk migrations run online only, from Store.open")

connection = context.config.attributes["connection"]
# render_as_batch: SQLite alters most tables by copying them; batch mode does that for later revisions.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
