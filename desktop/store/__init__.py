"""The local store: broker-scoped SQLite repositories, journal, migrations and CSV export."""
