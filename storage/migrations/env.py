"""Alembic environment: runs on the connection `storage.db.migrate` hands over."""

from alembic import context
from sqlalchemy import text

from storage.tables import Base

# Any constant: PostgreSQL holds this lock for the migration's transaction so the bot and the
# workers starting together do not race to create the schema.
MIGRATION_LOCK_ID = 727215

connection = context.config.attributes["connection"]
if connection.dialect.name == "postgresql":
    connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})"))
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
