"""Persistence: SQL (SQLAlchemy + Alembic), memory and audio blobs."""
