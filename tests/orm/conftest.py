"""Fixtures the ORM tests share.

- ``connect_args``: what an engine for ``db_url`` needs so that unqualified
  tables go in the test's own PostgreSQL schema (``pg_schema``); nothing on
  SQLite. A test module's ``engine`` fixture passes it to
  ``create_async_engine`` and creates its own model's tables.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def connect_args(db_url: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """PostgreSQL: unqualified tables go in the test's own schema."""
    if db_url.startswith("postgresql"):
        schema = request.getfixturevalue("pg_schema")
        return {"server_settings": {"search_path": schema}}
    return {}
