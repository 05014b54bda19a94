"""stream() / stream_scalars(): chunked reads through the engine, typed rows, lifetimes."""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Callable

import pytest
from engine_helpers import Backend, Hooks, install_hooks

from asyncsession import exc
from asyncsession.engine import AsyncEngine
from asyncsession.sql import types
from asyncsession.sql.dml import insert
from asyncsession.sql.elements import text
from asyncsession.sql.schema import Column, MetaData, Table
from asyncsession.sql.selectable import select

pytestmark = pytest.mark.anyio

MakeEngine = Callable[..., AsyncEngine]

metadata = MetaData()
things = Table(
    "things",
    metadata,
    Column("id", types.Integer, primary_key=True),
    Column("name", types.String(20)),
    Column("at", types.DateTime(timezone=True)),
    Column("price", types.Numeric(10, 2)),
    Column("data", types.JSON),
)
AT = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)


@pytest.fixture
async def engine(make_engine: MakeEngine) -> AsyncEngine:
    engine = make_engine()
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        rows = [
            {"id": i, "name": f"n{i}", "at": AT, "price": decimal.Decimal("1.50"), "data": [i]}
            for i in range(1, 11)
        ]
        await conn.execute(insert(things), rows)
    return engine


async def test_stream_typed_rows_in_chunks(engine: AsyncEngine) -> None:
    hooks = Hooks()
    install_hooks(engine, hooks)
    await engine.dispose()
    async with engine.connect() as conn:
        stmt = select(things).order_by(things.c.id)
        async with conn.stream(stmt, execution_options={"yield_per": 4}) as result:
            rows = [row async for row in result]
    assert [row.id for row in rows] == list(range(1, 11))
    assert rows[0].at == AT
    assert rows[0].price == decimal.Decimal("1.50")
    assert rows[0].data == [1]
    # 4 + 4 + 2 rows: the short chunk ends the stream without a fourth trip.
    assert hooks.points.count("cursor.fetch") == 3
    assert hooks.points.count("cursor.close") == 1


async def test_stream_scalars_and_partitions(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        stmt = select(things.c.id).order_by(things.c.id)
        async with conn.stream_scalars(stmt) as scalars:
            assert [i async for i in scalars] == list(range(1, 11))
        result = await conn.stream(stmt)
        partitions = [p async for p in result.partitions(3)]
        assert [len(p) for p in partitions] == [3, 3, 3, 1]
        await result.close()


async def test_stream_of_text_has_keys(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        result = await conn.stream(text("SELECT id, name FROM things WHERE id < 3 ORDER BY id"))
        assert list(result.keys()) == ["id", "name"]
        assert [tuple(r) for r in await result.all()] == [(1, "n1"), (2, "n2")]


async def test_postgresql_streams_through_a_server_side_cursor(
    engine: AsyncEngine, backend: Backend
) -> None:
    if backend.name != "postgresql":
        pytest.skip("PostgreSQL only")
    async with engine.connect() as conn:
        result = await conn.stream(select(things.c.id))
        query = "SELECT name FROM pg_cursors WHERE name <> ''"
        cursors = (await conn.exec_driver_sql(query)).scalars().all()
        assert len(cursors) == 1
        assert cursors[0].startswith("asyncsession_cursor_")
        assert len(await result.fetchmany(2)) == 2
        await result.close()
        assert (await conn.exec_driver_sql(query)).all() == []


async def test_no_named_prepared_statements_when_the_cache_is_off(
    engine_factory: MakeEngine, backend: Backend
) -> None:
    if backend.name != "postgresql":
        pytest.skip("PostgreSQL only")
    engine = engine_factory(
        backend.url,
        connect_args={**backend.connect_args, "prepared_statement_cache_size": 0},
    )
    async with engine.connect() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.execute(insert(things), [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
        await conn.execute(select(things).where(things.c.id == 1))
        await conn.exec_driver_sql("SELECT $1::int", (1,))
        async with conn.stream(select(things)) as result:
            await result.all()
        await conn.copy_records("things", ["id", "name"], [(3, "c")])
        prepared = await conn.exec_driver_sql("SELECT count(*) FROM pg_prepared_statements")
        assert prepared.scalar() == 0


async def test_stream_in_autocommit(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        async with conn.stream(select(things.c.id).order_by(things.c.id)) as result:
            assert [row[0] async for row in result] == list(range(1, 11))


async def test_commit_closes_an_open_stream(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        result = await conn.stream(select(things.c.id).order_by(things.c.id))
        assert (await result.fetchone()) is not None
        await conn.commit()
        with pytest.raises(exc.ResourceClosedError, match="transaction or savepoint ended"):
            await result.all()
        assert (await conn.exec_driver_sql("SELECT 1")).scalar() == 1


async def test_savepoint_rollback_closes_streams_opened_inside(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        outer = await conn.stream(select(things.c.id).order_by(things.c.id))
        savepoint = await conn.begin_nested()
        inner = await conn.stream(select(things.c.id))
        await savepoint.rollback()
        with pytest.raises(exc.ResourceClosedError):
            await inner.all()
        assert len(await outer.all()) == 10
        await conn.rollback()


async def test_closing_the_connection_closes_its_streams(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        result = await conn.stream(select(things.c.id))
    with pytest.raises(exc.ResourceClosedError):
        await result.all()
    assert engine.pool.checkedout() == 0


async def test_failing_fetch_closes_the_stream(engine: AsyncEngine, backend: Backend) -> None:
    # The division fails on the row with id 7, in the second chunk.
    stmt = text("SELECT 10 / (7 - id) FROM things ORDER BY id")
    async with engine.connect() as conn:
        result = await conn.stream(stmt, execution_options={"yield_per": 4})
        if backend.name == "sqlite":
            pytest.skip("SQLite returns NULL for a division by zero")
        with pytest.raises(exc.DataError):
            await result.all()
        assert result.closed
        await conn.rollback()
        assert (await conn.exec_driver_sql("SELECT 1")).scalar() == 1


async def test_stream_refuses_executemany(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        with pytest.raises(exc.ArgumentError, match="one dict"):
            await conn.stream(text("SELECT :a"), [{"a": 1}, {"a": 2}])  # type: ignore[arg-type]
