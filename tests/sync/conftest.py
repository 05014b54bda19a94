"""Fixtures for the sync facade tests.

- ``schema``: the ``pg_schema`` on PostgreSQL, None on SQLite.
- ``app_name``: a per-test PostgreSQL ``application_name``, so a test can find
  its own backends in ``pg_stat_activity``.
- ``engine``: a facade Engine on ``db_url`` with the canonical model's tables
  (created through the facade: ``metadata.create_all(engine)``); at teardown
  it checks that no pool slot leaked and disposes the engine.

The tests themselves are plain blocking functions, as a script would be.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from asyncsession import sync
from tests.orm.models import Base, is_pg


@pytest.fixture
def schema(db_url: str, request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("pg_schema") if is_pg(db_url) else None


@pytest.fixture
def app_name() -> str:
    return f"astest_sync_{secrets.token_hex(4)}"


def connect_args(schema: str | None, app_name: str) -> dict[str, Any]:
    if schema is None:
        return {}
    return {"server_settings": {"search_path": schema, "application_name": app_name}}


@pytest.fixture
def engine(db_url: str, schema: str | None, app_name: str) -> Iterator[sync.Engine]:
    engine = sync.create_engine(db_url, connect_args=connect_args(schema, app_name))
    Base.metadata.create_all(engine)
    try:
        yield engine
        assert engine.pool.checkedout() == 0, "a test leaked a pooled connection"
    finally:
        engine.dispose()
