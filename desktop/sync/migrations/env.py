"""Alembic environment of the central schema: runs on the connection `desktop.sync.central` hands over."""

from __future__ import annotations

from alembic import context

if context.is_offline_mode():
    raise RuntimeError("the central schema is migrated online only, by `kitedesk sync init-central`")

connection = context.config.attributes["connection"]
# The version table lives in the kitedesk schema, apart from anything else the database holds.
context.configure(
    connection=connection,
    target_metadata=None,
    version_table="sync_schema_version",
    version_table_schema="kitedesk",
)
with context.begin_transaction():
    context.run_migrations()
