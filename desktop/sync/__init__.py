"""Optional sync of each account's records to a central PostgreSQL."""
