"""Shared test helpers (real datastores on loopback: see datastores.py)."""
