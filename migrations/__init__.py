"""Alembic migrations for the curator library (installed as ``curator.migrations``)."""
