"""Persistence: SQL (SQLAlchemy + Alembic, the outbox among it), semantic memory, and the gate."""
