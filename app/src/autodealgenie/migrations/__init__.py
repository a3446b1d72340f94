"""Versioned, forward-only PostgreSQL migrations: NNNN_name.sql, applied in order by `autodealgenie migrate`."""
