"""Engines, sessions and schema migrations."""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x48656172  # PostgreSQL advisory lock key ("Hear")

log = logging.getLogger(__name__)
# Alembic says two lines on every start and one per revision: `migrate` says one, when it did.
logging.getLogger("alembic").setLevel(logging.WARNING)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets the web chat read while a worker writes; SQLite leaves foreign keys off by default.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`; idempotent.

    A bot and its worker start together and both migrate: unserialised, on a new database all but
    one failed with "table users already exists" (7 of 8 tries with three processes). They take
    turns on a lock, and the later ones find the schema current.
    """
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    with sqlite_file_lock(engine, "migrate"), engine.begin() as connection:
        if connection.dialect.name == "postgresql":  # held until this transaction ends
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = connection
        before = MigrationContext.configure(connection).get_current_revision()
        command.upgrade(config, revision)
        after = MigrationContext.configure(connection).get_current_revision()
    if after != before:
        log.info("database schema migrated from %s to %s", before or "empty", after)


@contextmanager
def sqlite_file_lock(engine: Engine, name: str) -> Iterator[None]:
    """On SQLite, one holder at a time across every process on the host (SQLite has no row
    locks, and one database file means one host); elsewhere nothing."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.{name}-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
