"""Versioned, forward-only PostgreSQL migrations (NNNN_name.sql), applied by `autodealgenie migrate`."""
