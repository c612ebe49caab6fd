"""Alembic migrations of the client store (applied by database.migrate())."""
