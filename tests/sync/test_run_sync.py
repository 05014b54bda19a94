"""``await session.run_sync(fn)`` and ``await conn.run_sync(fn)`` with legacy blocking helpers."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.to_thread
import pytest

from asyncsession import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    UnloadedAttributeError,
    create_async_engine,
    exc,
    func,
    insert,
    select,
    sync,
)
from tests.orm.models import Base, User
from tests.sync.conftest import connect_args

pytestmark = pytest.mark.anyio


@pytest.fixture
async def async_engine(
    db_url: str, schema: str | None, app_name: str
) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(db_url, connect_args=connect_args(schema, app_name))
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    try:
        yield engine
        assert engine.pool.checkedout() == 0
    finally:
        await engine.dispose()


def legacy_report(session: sync.Session, prefix: str) -> tuple[list[str], int]:
    """A blocking helper written for SQLAlchemy's Session, unchanged."""
    Base.metadata.create_all(session.connection())  # checkfirst: the tables exist
    session.add_all([User(id=1, name=f"{prefix}ann"), User(id=2, name=f"{prefix}bob", bio="b")])
    session.flush()
    with session.begin_nested():
        session.add(User(id=3, name=f"{prefix}cid"))
    bob = session.get_one(User, 2)
    session.expire(bob)
    report = [user.name for user in session.scalars(select(User).order_by(User.id))]
    report.append(bob.bio)  # deferred: an implicit load, allowed here
    return report, threading.get_ident()


async def test_session_run_sync_with_a_legacy_helper(async_engine: AsyncEngine) -> None:
    async with AsyncSession(async_engine) as session:
        report, thread = await session.run_sync(legacy_report, "x-")
        assert report == ["x-ann", "x-bob", "x-cid", "b"]
        assert thread != threading.get_ident()
        await session.commit()
        bob = await session.get(User, 2)
        assert bob is not None
        session.expire(bob)
        with pytest.raises(UnloadedAttributeError):
            _ = bob.name  # back in async code: explicit loads only
        assert await bob.awaitable_attrs.name == "x-bob"
        assert await session.scalar(select(func.count()).select_from(User)) == 3


async def test_errors_inside_run_sync_keep_their_type(async_engine: AsyncEngine) -> None:
    def insert_twice(session: sync.Session) -> None:
        session.add(User(id=1, name="one"))
        session.flush()
        session.add(User(id=1, name="again"))
        session.flush()

    async with AsyncSession(async_engine) as session:
        with pytest.raises(exc.IntegrityError):
            await session.run_sync(insert_twice)
        await session.rollback()
        assert await session.scalar(select(func.count()).select_from(User)) == 0


async def test_the_loop_never_loads_implicitly_while_the_worker_may(
    async_engine: AsyncEngine,
) -> None:
    inside = threading.Event()
    release = threading.Event()
    seen: list[str] = []

    def worker(session: sync.Session, user: User) -> None:
        inside.set()
        assert release.wait(30)
        seen.append(user.name)  # the worker thread loads

    async with AsyncSession(async_engine) as session:
        user = User(id=1, name="ann")
        session.add(user)
        await session.commit()
        session.expire(user)
        async with anyio.create_task_group() as tg:
            tg.start_soon(session.run_sync, worker, user)
            await anyio.to_thread.run_sync(inside.wait)
            with pytest.raises(UnloadedAttributeError):
                _ = user.name  # a task on the awaiting loop: no implicit load
            release.set()
        assert seen == ["ann"]


async def test_the_view_belongs_to_the_worker_thread(async_engine: AsyncEngine) -> None:
    views: list[sync.Session] = []
    errors: list[BaseException] = []

    def use_from_another_thread(session: sync.Session) -> None:
        views.append(session)

        def other() -> None:
            try:
                session.flush()
            except BaseException as error:
                errors.append(error)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(30)

    async with AsyncSession(async_engine) as session:
        await session.run_sync(use_from_another_thread)
    assert isinstance(errors[0], exc.InvalidRequestError)
    assert "only the thread running that function" in str(errors[0])
    with pytest.raises(exc.InvalidRequestError, match="run_sync"):
        views[0].flush()  # run_sync() is over


def legacy_load(conn: sync.Connection, rows: list[dict[str, Any]]) -> int:
    """A blocking helper written for SQLAlchemy's Connection, unchanged."""
    Base.metadata.create_all(conn)
    conn.execute(insert(User.__table__), rows)
    with conn.begin_nested():
        conn.execute(insert(User.__table__), {"id": 99, "name": "savepoint"})
    count: int = conn.scalar(select(func.count()).select_from(User.__table__))
    return count


async def test_connection_run_sync_with_a_legacy_helper(async_engine: AsyncEngine) -> None:
    rows = [{"id": i, "name": f"u{i}"} for i in range(1, 4)]
    async with async_engine.begin() as conn:
        assert await conn.run_sync(legacy_load, rows) == 4
    async with async_engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(User.__table__)) == 4


def facade_work(conn: sync.Connection, owner: AsyncConnection) -> list[int]:
    """Uses what only the facade's Connection has: transactions, streams, options."""
    assert isinstance(conn, sync.Connection)
    assert conn.async_connection is owner
    assert conn.in_transaction()
    savepoint = conn.begin_nested()
    conn.execute(insert(User.__table__), {"id": 50, "name": "dropped"})
    savepoint.rollback()
    assert conn.get_nested_transaction() is None
    with conn.stream_scalars(select(User.id).order_by(User.id)) as ids:
        assert ids.yield_per(2).fetchmany() == [1, 2]
        streamed = [1, 2, *ids]
    assert conn.exec_driver_sql("SELECT 3").scalar() == 3
    return streamed


async def test_connection_run_sync_hands_over_the_facade_connection(
    async_engine: AsyncEngine,
) -> None:
    rows = [{"id": i, "name": f"u{i}"} for i in range(1, 6)]
    async with async_engine.begin() as conn:
        await conn.execute(insert(User.__table__), rows)
        assert await conn.run_sync(facade_work, conn) == [1, 2, 3, 4, 5]
        # run_sync() is over: the connection is the caller's again.
        assert await conn.scalar(select(func.count()).select_from(User.__table__)) == 5


async def test_the_facade_connection_belongs_to_the_worker_thread(
    async_engine: AsyncEngine,
) -> None:
    views: list[sync.Connection] = []
    errors: list[BaseException] = []

    def use_from_another_thread(conn: sync.Connection) -> None:
        views.append(conn)

        def other() -> None:
            try:
                conn.exec_driver_sql("SELECT 1")
            except BaseException as error:
                errors.append(error)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(30)

    async with async_engine.connect() as conn:
        await conn.run_sync(use_from_another_thread)
        assert (await conn.exec_driver_sql("SELECT 1")).scalar() == 1
    assert isinstance(errors[0], exc.InvalidRequestError)
    assert "only the thread running that function" in str(errors[0])
    with pytest.raises(exc.InvalidRequestError, match="run_sync"):
        views[0].exec_driver_sql("SELECT 1")  # run_sync() is over
    # The async engine was not adopted by the facade loop (it serves its own).
    from asyncsession.sync._runner import FACADE

    assert async_engine not in FACADE.engines
