"""The store's database: SQLite under the data directory by default, `DATABASE_URL` for PostgreSQL.

`open_store()` gives an engine with the Alembic migrations applied; every process (the API, a
Dagster run reading credentials, the CLI) opens the store this way.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from integration_platform import environment

DATABASE_URL_VARIABLE = "DATABASE_URL"
MIGRATIONS = Path(__file__).with_name("migrations")


def database_url() -> str:
    """`DATABASE_URL`, or `data/platform.sqlite` under `INTEGRATION_PLATFORM_DATA_DIR`."""
    configured = os.environ.get(DATABASE_URL_VARIABLE)
    if configured:
        return normalized_url(configured)
    return f"sqlite:///{environment.data_dir() / 'platform.sqlite'}"


def normalized_url(url: str) -> str:
    """`postgresql://` (what most tools write) means psycopg 3, the driver this project ships."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def create_store_engine(url: str | None = None) -> Engine:
    url = url or database_url()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _create_private(Path(parsed.database))
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _create_private(path: Path) -> None:
    """Create the SQLite file 0600 before SQLite does (it would follow the umask, 0644): it
    holds encrypted credentials and key hashes. SQLite gives its -wal and -shm files the mode
    of the database file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # an existing store keeps its mode
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite_pragmas(connection: Any, _: Any) -> None:
    # WAL: readers never wait for the writer; foreign keys are off by default in SQLite.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (a no-op when it is there already)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def open_store(url: str | None = None) -> sessionmaker[Session]:
    """A session factory on a migrated database."""
    engine = create_store_engine(url)
    migrate(engine)
    return sessionmaker(engine, expire_on_commit=False)
