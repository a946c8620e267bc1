"""Alembic environment: always handed a live connection by :mod:`db.schema`."""

from __future__ import annotations

from alembic import context

from db.models import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `analytics init-db`, which supplies the connection")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
