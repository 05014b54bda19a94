"""Fixtures for the engine tests.

- ``backend``: one :class:`Backend` per database (parametrized like ``db_url``),
  with a per-test PostgreSQL ``application_name`` and schema (``search_path``),
  so a test can watch its own backends in ``pg_stat_activity``.
- ``make_engine``: builds engines for the backend and, at teardown, checks that
  no pool slot leaked and disposes them.
- ``pg_monitor``: a separate asyncpg connection to look at the server with.

Helpers shared by the test modules live in ``engine_helpers.py``.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from engine_helpers import Backend

from asyncsession.engine import AsyncEngine, create_async_engine


@pytest.fixture
def backend(db_url: str, request: pytest.FixtureRequest) -> Backend:
    if db_url.startswith("sqlite"):
        return Backend("sqlite", db_url, {})
    schema: str = request.getfixturevalue("pg_schema")
    app_name = f"astest_{secrets.token_hex(4)}"
    settings = {"application_name": app_name, "search_path": schema}
    return Backend("postgresql", db_url, {"server_settings": settings}, app_name, schema)


@pytest.fixture
async def engine_factory(anyio_backend: str) -> AsyncIterator[Callable[..., AsyncEngine]]:
    """``engine_factory(url, **kwargs)``: create_async_engine, checked and disposed at teardown."""
    engines: list[AsyncEngine] = []

    def make(url: str, **kwargs: Any) -> AsyncEngine:
        engine = create_async_engine(url, **kwargs)
        engines.append(engine)
        return engine

    yield make
    leaked = [engine.pool.status() for engine in engines if engine.pool.checkedout()]
    for engine in engines:
        await engine.dispose()
    assert not leaked, f"pool slots leaked: {leaked}"


@pytest.fixture
def make_engine(
    backend: Backend, engine_factory: Callable[..., AsyncEngine]
) -> Callable[..., AsyncEngine]:
    """``make_engine(**kwargs)``: an engine for ``backend`` (its connect_args by default)."""

    def make(**kwargs: Any) -> AsyncEngine:
        kwargs.setdefault("connect_args", backend.connect_args)
        return engine_factory(backend.url, **kwargs)

    return make


@pytest.fixture
async def pg_monitor(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(pg_dsn)
    try:
        yield connection
    finally:
        await connection.close()
