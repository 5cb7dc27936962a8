"""Opening the survey's database (:func:`open_store`): SQLite in the data directory by default (foreign keys on, WAL
journal, a busy timeout so concurrent raters wait instead of failing, the file private to its owner), any SQLAlchemy
URL through ``DATABASE_URL`` instead (PostgreSQL works: nothing is SQLite-only). A database made by an earlier version
is brought up to date when it is opened: missing tables are created and missing columns added
(:func:`add_missing_columns`); nothing is ever dropped. The tables themselves are :mod:`survey.db`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.schema import CreateColumn

from sr_app.data_dir import data_dir_from_env
from survey.db import GOLD, Base, SourceImage, Store
from survey.private_files import create_private_file, private_dir

DATABASE_URL_ENV = "DATABASE_URL"
DATABASE_FILE = "sr-lab.db"
#: How long a SQLite writer waits for another one before giving up, in milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 15_000


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite connections get foreign keys, WAL and a busy timeout."""
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def open_store(data_dir: str | Path | None = None, database_url: str | None = None) -> Store:
    """Open (creating if needed) the survey store.

    Args:
        data_dir: folder for the stimuli (and the SQLite file); default :func:`data_dir_from_env`.
        database_url: SQLAlchemy URL; default ``$DATABASE_URL``, else ``sqlite:///<data_dir>/sr-lab.db``.
    """
    folder = private_dir(data_dir_from_env(data_dir))
    url = database_url or os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{folder / DATABASE_FILE}"
    _create_private_sqlite_file(url)
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    if "source_images.role" in add_missing_columns(engine):
        _roles_from_gold_flags(engine)
    return Store(engine, folder)


def _roles_from_gold_flags(engine: Engine) -> None:
    """Give the gold images of a database made before image roles existed (which marked them with a ``gold`` column,
    no longer mapped and left in place) the role :data:`GOLD`."""
    if "gold" in {column["name"] for column in inspect(engine).get_columns(SourceImage.__tablename__)}:
        with engine.begin() as connection:
            connection.execute(text(f"UPDATE source_images SET role = '{GOLD}' WHERE gold"))


def _create_private_sqlite_file(url: str) -> None:
    """Create the file of SQLite database ``url`` empty and private (:func:`create_private_file`) if it does not exist
    (SQLite would create it readable by everyone, and gives its journal files the database file's mode)."""
    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return  # another database, one in memory, or a URI SQLite parses itself
    path = Path(database)
    private_dir(path.parent)
    with contextlib.suppress(FileExistsError), create_private_file(path):
        pass


def add_missing_columns(engine: Engine) -> list[str]:
    """Add to the database every column of :class:`Base`'s tables that it lacks (``ALTER TABLE ... ADD COLUMN``, which
    SQLite and PostgreSQL both run), so that a database made by an earlier version keeps working; return them as
    ``table.column``. Each column added this way has a server default, which fills it in the existing rows."""
    inspector = inspect(engine)
    missing = []
    for table in Base.metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        missing += [column for column in table.columns if column.name not in present]
    with engine.begin() as connection:
        for column in missing:
            if column.server_default is None and not column.nullable:
                raise RuntimeError(f"{column.table.name}.{column.name} needs a server default to be added to old data")
            definition = CreateColumn(column).compile(dialect=engine.dialect)
            connection.execute(text(f"ALTER TABLE {column.table.name} ADD COLUMN {definition}"))
    return [f"{column.table.name}.{column.name}" for column in missing]
