"""Alembic environment: runs on the connection `database.migrate()` hands over."""

from __future__ import annotations

from alembic import context

from integration_platform.clients.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through integration_platform.clients.database.migrate()")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
