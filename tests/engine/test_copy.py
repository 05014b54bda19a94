"""copy_records(): COPY on PostgreSQL, one executemany on SQLite."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from engine_helpers import Backend, Hooks, install_hooks

from asyncsession import exc
from asyncsession.engine import AsyncEngine

pytestmark = pytest.mark.anyio

MakeEngine = Callable[..., AsyncEngine]


async def test_copy_records(make_engine: MakeEngine, backend: Backend) -> None:
    engine = make_engine()
    async with engine.begin() as conn:
        await conn.exec_driver_sql('CREATE TABLE "Bulk" (id INTEGER PRIMARY KEY, "Label" TEXT)')
    hooks = Hooks()
    install_hooks(engine, hooks)
    await engine.dispose()
    records = [(i, f"row {i}") for i in range(5000)]
    async with engine.connect() as conn:
        assert await conn.copy_records("Bulk", ["id", "Label"], records) == 5000
        assert conn.in_transaction()  # autobegun: nothing is visible until commit
        await conn.commit()
    assert hooks.points.count("copy_records") == 1  # one trip for 5000 rows
    async with engine.connect() as conn:
        result = await conn.exec_driver_sql('SELECT count(*), max("Label") FROM "Bulk"')
        assert tuple(result.one()) == (5000, "row 999")


async def test_copy_records_with_schema(make_engine: MakeEngine, backend: Backend) -> None:
    schema = backend.schema if backend.name == "postgresql" else "main"
    engine = make_engine()
    async with engine.begin() as conn:
        await conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        assert await conn.copy_records("t", ["x"], [(1,), (2,)], schema=schema) == 2
        assert (await conn.exec_driver_sql("SELECT sum(x) FROM t")).scalar() == 3


async def test_copy_errors_are_translated(make_engine: MakeEngine) -> None:
    engine = make_engine()
    async with engine.begin() as conn:
        await conn.exec_driver_sql("CREATE TABLE u (id INTEGER PRIMARY KEY)")
    async with engine.connect() as conn:
        with pytest.raises(exc.IntegrityError) as info:
            await conn.copy_records("u", ["id"], [(1,), (1,)])
        assert info.value.statement == "COPY u (id) [2 records]"
        await conn.rollback()
