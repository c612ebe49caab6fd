"""PostgreSQL for the tests: the server at 127.0.0.1:5432 (as CI has it; `DATABASE_URL` names
another), in databases and schemas of their own with unique names, dropped when done, so that
pytest processes running at once never share one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import URL, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from integration_platform.clients.database import DATABASE_URL_VARIABLE, normalized_url

DEFAULT_SERVER_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CONNECT_TIMEOUT_SECONDS = 5


def server_url() -> URL:
    """`DATABASE_URL` when it names a PostgreSQL database, else the local server as `postgres`."""
    configured = os.environ.get(DATABASE_URL_VARIABLE)
    if configured and make_url(normalized_url(configured)).get_backend_name() == "postgresql":
        return make_url(normalized_url(configured))
    return make_url(DEFAULT_SERVER_URL)


def _admin_engine(url: URL) -> Engine:
    return create_engine(
        url,
        isolation_level="AUTOCOMMIT",  # create / drop database refuse to run in a transaction
        poolclass=NullPool,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
    )


def _did_not_answer(server: URL, error: OperationalError) -> str:
    reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
    return (
        f"PostgreSQL at {server.host}:{server.port or 5432} did not answer as user "
        f"{server.username!r} ({reason}). The store tests run against SQLite and PostgreSQL: "
        "start PostgreSQL there (CI's has trust auth for user postgres), or set "
        f"{DATABASE_URL_VARIABLE}=postgresql://USER@HOST:PORT/DB to use another server (USER "
        "needs CREATEDB); `pytest -k 'not postgresql'` runs the SQLite variants alone."
    )


@contextmanager
def scratch_database(purpose: str) -> Iterator[URL]:
    """A new database (`ip_test_<purpose>_<random>`) on the server; dropped at the end, with
    whatever connections to it are still open."""
    server = server_url()
    name = f"ip_test_{purpose}_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine(server)
    refused = None
    try:
        with admin.connect() as connection:
            connection.execute(text(f'create database "{name}"'))
    except OperationalError as error:
        refused = _did_not_answer(server, error)
    if refused:  # failed here, not in the except block: the message alone, no traceback
        admin.dispose()
        pytest.fail(refused, pytrace=False)
    try:
        yield server.set(database=name)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()


@contextmanager
def scratch_schema(database: URL) -> Iterator[str]:
    """A new schema in `database`, as a URL whose connections find their tables there. At the
    end every other connection to the database is closed (a test's undisposed engines would
    pile up to the server's connection limit) and the schema is dropped."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine(database)
    with admin.connect() as connection:
        connection.execute(text(f'create schema "{schema}"'))
    url = database.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(
                text(
                    "select pg_terminate_backend(pid) from pg_stat_activity"
                    " where datname = :name and pid <> pg_backend_pid()"
                ),
                {"name": database.database},
            )
            connection.execute(text(f'drop schema "{schema}" cascade'))
        admin.dispose()
