"""AsyncSession.stream() / stream_scalars() of ORM-enabled selects, on both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from asyncsession import AsyncEngine, AsyncSession, ResourceClosedError, event, select
from tests.orm.models import Address, User, engine_for, is_pg

pytestmark = pytest.mark.anyio


@pytest.fixture
def schema(db_url: str, request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("pg_schema") if is_pg(db_url) else None


@pytest.fixture
async def engine(db_url: str, schema: str | None) -> AsyncIterator[AsyncEngine]:
    async with engine_for(db_url, schema) as engine:
        async with AsyncSession(engine) as session:
            for i in range(1, 8):
                user = User(id=i, name=f"u{i}")
                session.add(user)
                session.add(Address(id=i, user_id=i, email_address=f"u{i}@example.com"))
            await session.commit()
        yield engine


@pytest.fixture
def fetches(engine: AsyncEngine) -> list[str]:
    """The SQL of every statement the engine executes from now on."""
    seen: list[str] = []

    def record(conn: Any, statement: Any, parameters: Any, options: Any) -> None:
        seen.append(str(statement))

    event.listen(engine, "before_execute", record)
    return seen


async def test_stream_entities_are_identity_mapped(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as session:
        known = await session.get(User, 3)
        result = await session.stream(select(User).order_by(User.id))
        assert list(result.keys()) == ["User"]
        users = [row[0] async for row in result]
        assert [u.id for u in users] == list(range(1, 8))
        assert users[2] is known
        assert await session.get(User, 5) is users[4]
        assert users[4] in session


async def test_stream_joined_entities(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as session:
        result = await session.stream(
            select(User, Address).join(Address, Address.user_id == User.id).order_by(User.id)
        )
        rows = await result.all()
        assert len(rows) == 7
        user, address = rows[0]
        assert (user.id, address.email_address) == (1, "u1@example.com")
        assert await session.get(Address, 1) is address
        assert rows[0].User is user


async def test_stream_keeps_pending_changes(engine: AsyncEngine) -> None:
    async with AsyncSession(engine, autoflush=False) as session:
        user = await session.get(User, 2)
        assert user is not None
        user.name = "changed"
        streamed = await (await session.stream_scalars(select(User).order_by(User.id))).all()
        assert streamed[1] is user
        assert user.name == "changed"
        populated = await session.stream_scalars(
            select(User).where(User.id == 2), execution_options={"populate_existing": True}
        )
        assert await populated.one() is user
        assert user.name == "u2"


@pytest.mark.parametrize("how", ["option", "statement", "method"])
async def test_stream_chunks_with_yield_per(engine: AsyncEngine, how: str) -> None:
    async with AsyncSession(engine) as session:
        statement = select(User).order_by(User.id)
        if how == "option":
            result = await session.stream(statement, execution_options={"yield_per": 3})
        elif how == "statement":
            result = await session.stream(statement.execution_options(yield_per=3))
        else:
            result = (await session.stream(statement)).yield_per(3)
        scalars = result.scalars()
        sizes = [len(part) async for part in scalars.partitions()]
        assert sizes == [3, 3, 1]


async def test_stream_hydrates_chunk_by_chunk(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as session:
        result = await session.stream_scalars(
            select(User).order_by(User.id), execution_options={"yield_per": 2}
        )
        first = await result.fetchmany()
        assert [u.id for u in first] == [1, 2]
        in_map = sorted(key[1][0] for key in session.identity_map)
        assert in_map == [1, 2]
        assert [u.id for u in await result.all()] == [3, 4, 5, 6, 7]


async def test_stream_scalars_yields_objects(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as session:
        result = await session.stream_scalars(select(User).where(User.id > 5).order_by(User.id))
        users = [u async for u in result]
        assert [type(u) for u in users] == [User, User]
        assert [u.name for u in users] == ["u6", "u7"]


async def test_stream_columns_still_work(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as session:
        result = await session.stream(select(User.id, User.name).order_by(User.id))
        assert (await result.first()) == (1, "u1")


async def test_stream_autoflushes_first(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as session:
        session.add(User(id=50, name="new"))
        ids = [u.id async for u in await session.stream_scalars(select(User).order_by(User.id))]
        assert ids[-1] == 50


async def test_session_is_free_between_fetches(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as session:
        result = await session.stream_scalars(select(User), execution_options={"yield_per": 2})
        await result.fetchmany()
        # Between fetches the session is free, as with a Core stream.
        assert await session.get(User, 1) is not None
        await result.close()


async def test_stream_ends_with_transaction(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as session:
        result = await session.stream_scalars(select(User), execution_options={"yield_per": 2})
        await result.fetchmany()
        await session.commit()
        with pytest.raises(ResourceClosedError):
            await result.all()


@pytest.mark.parametrize("close_result", [True, False])
async def test_cancelled_stream_leaks_no_connection(
    engine: AsyncEngine, close_result: bool
) -> None:
    session = AsyncSession(engine)
    seen: list[int] = []
    with anyio.CancelScope() as scope:
        result = await session.stream_scalars(
            select(User).order_by(User.id), execution_options={"yield_per": 2}
        )
        async for user in result:
            seen.append(user.id)
            if len(seen) == 3:
                scope.cancel()
                await anyio.lowlevel.checkpoint()
    assert scope.cancelled_caught
    assert seen == [1, 2, 3]
    if close_result:
        await result.close()
    await session.close()
    assert engine.pool.checkedout() == 0
    # The session is usable afterwards.
    async with session:
        assert await session.get(User, 4) is not None
    assert engine.pool.checkedout() == 0


async def test_stream_cancelled_during_fetch_leaks_no_connection(engine: AsyncEngine) -> None:
    session = AsyncSession(engine)
    result = await session.stream_scalars(
        select(User).order_by(User.id), execution_options={"yield_per": 2}
    )
    await result.fetchmany()
    with anyio.CancelScope() as scope:
        scope.cancel()
        await result.fetchmany()
    assert scope.cancelled_caught
    await session.close()
    assert engine.pool.checkedout() == 0
