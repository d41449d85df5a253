"""Alembic migrations for glint's database; applied with ``glint db upgrade``."""
