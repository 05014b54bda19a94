"""Fixtures shared by the whole suite.

Async tests run on anyio's pytest plugin, asyncio backend only; mark them with
``@pytest.mark.anyio`` (or ``pytestmark = pytest.mark.anyio`` for a module).

Databases:

- ``sqlite_url``: a fresh SQLite file per test, always available.
- ``pg_url``: the PostgreSQL server named by ``ASYNCSESSION_TEST_PG_URL``
  (``postgresql+asyncpg://user@host:port/db``). Unset: the test is skipped. Set
  but the server does not accept a connection: the test fails, because a
  configured database that is down is a broken environment, not an optional one.
  Tests that use it get the ``postgresql`` marker, so ``-m "not postgresql"``
  leaves them out.
- ``pg_dsn``: the same server as a plain asyncpg DSN (``postgresql://...``).
- ``pg_schema``: an empty schema ``t_<random hex>`` created for the test and
  dropped with CASCADE afterwards. Tests put their tables in it, either by
  qualifying them (``MetaData(schema=pg_schema)``) or with
  ``SET search_path TO <schema>`` on their connection; the URL cannot carry a
  search_path. Nothing a test creates there outlives it.
- ``db_url``: runs the test once per backend (ids ``sqlite``, ``postgresql``).
- ``pg_twophase``: ``pg_schema`` on a server with prepared transactions enabled
  (two-phase commit). A server with ``max_prepared_transactions = 0`` (the
  PostgreSQL default) fails the test, saying how to enable them: CI's
  ``.ci/run`` does. At teardown, prepared transactions the test left behind are
  rolled back (they hold locks that would block dropping the schema) and the
  test errors, naming them: leaving one is a bug.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

PG_URL_ENV = "ASYNCSESSION_TEST_PG_URL"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def asyncpg_dsn(url: str) -> str:
    """``postgresql+asyncpg://...`` -> ``postgresql://...`` (what asyncpg accepts)."""
    scheme, sep, rest = url.partition("://")
    return scheme.partition("+")[0] + sep + rest


def _connect_error(dsn: str) -> BaseException | None:
    """Try one asyncpg connection; return the error, or None if it worked.

    It runs in a thread of its own so its event loop never meets the one the
    anyio plugin keeps for the tests.
    """
    errors: list[BaseException] = []

    async def connect() -> None:
        connection = await asyncpg.connect(dsn, timeout=10)
        await connection.close()

    def probe() -> None:
        try:
            asyncio.run(connect())
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=probe, name="pg-probe")
    thread.start()
    thread.join()
    return errors[0] if errors else None


@pytest.fixture(scope="session")
def pg_url() -> str:
    url = os.environ.get(PG_URL_ENV)
    if not url:
        pytest.skip(f"{PG_URL_ENV} is not set")
    error = _connect_error(asyncpg_dsn(url))
    if error is not None:
        shown = re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", url)
        pytest.fail(
            f"{PG_URL_ENV}={shown} is set but PostgreSQL did not accept a connection: "
            f"{type(error).__name__}: {error}. Check the server and the URL (.ci/run "
            f"starts the local server), or unset {PG_URL_ENV} to skip the PostgreSQL tests.",
            pytrace=False,
        )
    return url


@pytest.fixture(scope="session")
def pg_dsn(pg_url: str) -> str:
    return asyncpg_dsn(pg_url)


@pytest.fixture
async def pg_schema(pg_dsn: str, anyio_backend: str) -> AsyncIterator[str]:
    # Depending on anyio_backend lets sync tests use this async fixture too.
    name = f"t_{secrets.token_hex(6)}"
    connection = await asyncpg.connect(pg_dsn)
    try:
        await connection.execute(f"CREATE SCHEMA {name}")
        try:
            yield name
        finally:
            await connection.execute(f"DROP SCHEMA {name} CASCADE")
    finally:
        await connection.close()


PREPARED_TRANSACTIONS_QUERY = (
    "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()"
)


@pytest.fixture
async def pg_twophase(pg_dsn: str, pg_schema: str, anyio_backend: str) -> AsyncIterator[str]:
    connection = await asyncpg.connect(pg_dsn)
    try:
        setting = int(await connection.fetchval("SHOW max_prepared_transactions"))
        if setting == 0:
            pytest.fail(
                "This PostgreSQL server has max_prepared_transactions = 0, so two-phase "
                "commit (PREPARE TRANSACTION) can't be tested. Run .ci/run, which enables it, "
                "or run `ALTER SYSTEM SET max_prepared_transactions = 10` as a superuser and "
                "restart the server.",
                pytrace=False,
            )
        before = {row[0] for row in await connection.fetch(PREPARED_TRANSACTIONS_QUERY)}
        yield pg_schema
        left = [
            row[0]
            for row in await connection.fetch(PREPARED_TRANSACTIONS_QUERY)
            if row[0] not in before
        ]
        for gid in left:
            await connection.execute("ROLLBACK PREPARED '" + gid.replace("'", "''") + "'")
        assert not left, f"the test left prepared transactions behind: {left}"
    finally:
        await connection.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def db_url(request: pytest.FixtureRequest) -> str:
    fixture = "pg_url" if request.param == "postgresql" else "sqlite_url"
    url: str = request.getfixturevalue(fixture)
    return url


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "pg_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgresql)
