"""Pools: slots, waiting, overflow, recycle, pre-ping, invalidation, dispose, events."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import anyio
import asyncpg
import pytest
from engine_helpers import Backend, pg_backends, wait_for_server

from asyncsession import exc
from asyncsession.engine import AsyncEngine, NullPool, StaticPool, event

pytestmark = pytest.mark.anyio

MakeEngine = Callable[..., AsyncEngine]


async def test_bounded_pool_times_out(make_engine: MakeEngine) -> None:
    engine = make_engine(pool_size=1, max_overflow=0, pool_timeout=0.05)
    async with engine.connect():
        with pytest.raises(exc.TimeoutError, match=r"pool timeout of 0\.05 seconds"):
            await engine.connect()
        assert engine.pool.checkedout() == 1
    assert engine.pool.checkedout() == 0


async def test_waiters_are_served_in_order(make_engine: MakeEngine) -> None:
    engine = make_engine(pool_size=1, max_overflow=0)
    order: list[str] = []
    holder = await engine.connect()

    async def wait(name: str) -> None:
        async with engine.connect():
            order.append(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait, "first")
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(wait, "second")
        await anyio.wait_all_tasks_blocked()
        assert engine.pool.checkedout() == 1
        await holder.close()
    assert order == ["first", "second"]
    assert engine.pool.checkedout() == 0


async def test_cancelled_waiter_leaves_the_count_alone(make_engine: MakeEngine) -> None:
    engine = make_engine(pool_size=1, max_overflow=0)
    holder = await engine.connect()
    with anyio.CancelScope() as scope:

        async def waiter() -> None:
            async with engine.connect():
                pytest.fail("must not get a connection")

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            scope.cancel()
    assert engine.pool.checkedout() == 1
    await holder.close()
    assert engine.pool.checkedout() == 0
    async with engine.connect() as conn:
        assert (await conn.exec_driver_sql("SELECT 1")).scalar() == 1


async def test_slot_granted_to_a_waiter_that_is_then_cancelled_is_passed_on(
    make_engine: MakeEngine,
) -> None:
    engine = make_engine(pool_size=1, max_overflow=0)
    holder = await engine.connect()
    got: list[str] = []

    async def second() -> None:
        async with engine.connect():
            got.append("second")

    # A native task: Task.cancel() strikes even after the awaited event was set.
    first = asyncio.create_task(engine.connect().start())
    await anyio.wait_all_tasks_blocked()
    async with anyio.create_task_group() as tg:
        tg.start_soon(second)
        await anyio.wait_all_tasks_blocked()
        await holder.close()  # hands the slot to `first`...
        first.cancel()  # ...which is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await first
    assert got == ["second"]
    assert engine.pool.checkedout() == 0


async def test_overflow_connections_are_closed_on_release(make_engine: MakeEngine) -> None:
    engine = make_engine(pool_size=1, max_overflow=1)
    pool = engine.pool
    assert (pool.size(), pool.checkedout(), pool.overflow()) == (1, 0, -1)
    first = await engine.connect()
    second = await engine.connect()
    assert (pool.checkedout(), pool.overflow()) == (2, 1)
    assert "Current Checked out connections: 2" in pool.status()
    await first.close()
    await second.close()
    assert (pool.checkedout(), pool.checkedin(), pool.overflow()) == (0, 1, 0)


async def test_unbounded_overflow(make_engine: MakeEngine) -> None:
    engine = make_engine(pool_size=1, max_overflow=-1)
    connections = [await engine.connect() for _ in range(4)]
    assert engine.pool.checkedout() == 4
    for conn in connections:
        await conn.close()


async def test_idle_connections_are_reused(make_engine: MakeEngine) -> None:
    engine = make_engine()
    async with engine.connect() as conn:
        first = await conn.get_raw_connection()
    async with engine.connect() as conn:
        assert await conn.get_raw_connection() is first


async def test_recycle_replaces_old_connections(make_engine: MakeEngine) -> None:
    engine = make_engine(pool_recycle=0)
    async with engine.connect() as conn:
        first = await conn.get_raw_connection()
    async with engine.connect() as conn:
        assert await conn.get_raw_connection() is not first
    assert engine.pool.checkedin() == 0  # too old to be kept


async def test_null_pool(make_engine: MakeEngine) -> None:
    engine = make_engine(poolclass=NullPool)
    async with engine.connect() as conn:
        first = await conn.get_raw_connection()
    assert engine.pool.checkedin() == 0
    async with engine.connect() as conn:
        assert await conn.get_raw_connection() is not first
    with pytest.raises(exc.ArgumentError, match="pool_size=3 does not apply to NullPool"):
        make_engine(poolclass=NullPool, pool_size=3)
    with pytest.raises(exc.ArgumentError, match="pool_pre_ping"):
        make_engine(poolclass=StaticPool, pool_pre_ping=True)


async def test_dispose(make_engine: MakeEngine) -> None:
    engine = make_engine()
    held = await engine.connect()
    async with engine.connect():
        pass
    assert engine.pool.checkedin() == 1
    await engine.dispose()
    assert engine.pool.checkedin() == 0
    await held.close()
    assert engine.pool.checkedin() == 0  # from before the dispose: closed, not kept
    async with engine.connect() as conn:  # still usable
        assert (await conn.exec_driver_sql("SELECT 1")).scalar() == 1


async def test_pool_events(make_engine: MakeEngine) -> None:
    engine = make_engine()
    seen: list[tuple[str, Any]] = []

    @event.listens_for(engine, "connect")
    async def on_connect(raw: Any, entry: Any) -> None:
        entry.info["tag"] = "mine"
        seen.append(("connect", raw))

    def on_checkout(raw: Any, entry: Any) -> None:
        seen.append(("checkout", entry.info["tag"]))

    event.listen(engine.pool, "checkout", on_checkout)
    event.listen(engine, "checkin", lambda raw, entry: seen.append(("checkin", None)))
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
    async with engine.connect():
        pass
    assert seen == [
        ("connect", raw),
        ("checkout", "mine"),
        ("checkin", None),
        ("checkout", "mine"),
        ("checkin", None),
    ]
    assert event.contains(engine, "checkout", on_checkout)
    event.remove(engine, "checkout", on_checkout)
    assert not event.contains(engine, "checkout", on_checkout)
    with pytest.raises(exc.ArgumentError, match="known events"):
        event.listen(engine, "no_such_event", on_checkout)


async def test_failing_connect_listener_releases_the_slot(make_engine: MakeEngine) -> None:
    engine = make_engine()

    def refuse(raw: Any, entry: Any) -> None:
        raise RuntimeError("refused")

    event.listen(engine, "connect", refuse)
    with pytest.raises(RuntimeError, match="refused"):
        await engine.connect()
    assert engine.pool.checkedout() == 0
    event.remove(engine, "connect", refuse)
    async with engine.connect():
        pass


async def test_connect_errors_are_translated(engine_factory: MakeEngine) -> None:
    engine = engine_factory("postgresql+asyncpg://nobody@127.0.0.1:1/nothing?timeout=2")
    with pytest.raises(exc.OperationalError) as info:
        await engine.connect()
    assert isinstance(info.value.orig, OSError)
    assert engine.pool.checkedout() == 0


async def test_bad_driver_options_fail_at_create(engine_factory: MakeEngine) -> None:
    with pytest.raises(exc.ArgumentError, match="Unknown PostgreSQL URL option"):
        engine_factory("postgresql+asyncpg://u@h/d?colour=blue")
    with pytest.raises(exc.ArgumentError, match="Unknown SQLite connect_args key"):
        engine_factory("sqlite+aiosqlite://", connect_args={"colour": "blue"})
    with pytest.raises(exc.ArgumentError, match="begin_mode"):
        engine_factory("sqlite+aiosqlite://", connect_args={"begin_mode": "LATER"})
    with pytest.raises(exc.ArgumentError, match="Can't load a driver"):
        engine_factory("mysql+aiomysql://u@h/d")


# -- connections the server kills ------------------------------------------------


async def kill_backend(monitor: asyncpg.Connection, pid: int) -> None:
    assert await monitor.fetchval("SELECT pg_terminate_backend($1)", pid)

    async def gone() -> bool:
        return not await monitor.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid
        )

    await wait_for_server(gone, f"backend {pid} to exit")


async def backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        pid: int = (await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar()
        await conn.rollback()
        return pid


async def test_pre_ping_replaces_a_dead_idle_connection(
    make_engine: MakeEngine, backend: Backend, pg_monitor: asyncpg.Connection
) -> None:
    if backend.name != "postgresql":
        pytest.skip("only a server can kill a connection")
    engine = make_engine(pool_pre_ping=True)
    pid = await backend_pid(engine)
    await kill_backend(pg_monitor, pid)
    assert await backend_pid(engine) != pid
    assert engine.pool.checkedin() == 1


async def test_idle_connection_closed_by_the_server_is_replaced(
    make_engine: MakeEngine, backend: Backend, pg_monitor: asyncpg.Connection
) -> None:
    if backend.name != "postgresql":
        pytest.skip("only a server can kill a connection")
    engine = make_engine()  # no pre-ping: the pool sees the driver's closed flag
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
    pid = await backend_pid(engine)
    await kill_backend(pg_monitor, pid)

    async def driver_saw_it() -> bool:
        return bool(raw.is_closed())

    # The FATAL message and the end of the socket reach asyncpg separately.
    await wait_for_server(driver_saw_it, "asyncpg to see the socket close")
    assert await backend_pid(engine) != pid


async def test_killed_connection_in_a_transaction(
    make_engine: MakeEngine, backend: Backend, pg_monitor: asyncpg.Connection
) -> None:
    if backend.name != "postgresql":
        pytest.skip("only a server can kill a connection")
    engine = make_engine()
    async with engine.connect() as conn:
        pid = (await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar()
        await kill_backend(pg_monitor, pid)
        with pytest.raises(exc.OperationalError) as info:
            await conn.exec_driver_sql("SELECT 1")
        assert info.value.connection_invalidated
        assert conn.invalidated
        assert engine.pool.checkedout() == 0  # freed at once, not at close
        with pytest.raises(exc.PendingRollbackError, match="rollback"):
            await conn.exec_driver_sql("SELECT 1")
        await conn.rollback()
        assert (await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar() != pid
    assert engine.pool.checkedout() == 0


async def test_killed_connection_in_use(
    make_engine: MakeEngine, backend: Backend, pg_monitor: asyncpg.Connection
) -> None:
    if backend.name != "postgresql":
        pytest.skip("only a server can kill a connection")
    engine = make_engine()
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        pid = (await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar()
        await kill_backend(pg_monitor, pid)
        with pytest.raises(exc.OperationalError) as info:
            await conn.exec_driver_sql("SELECT 1")
        assert info.value.connection_invalidated
        # No transaction was open: the next statement simply reconnects.
        assert (await conn.exec_driver_sql("SELECT 2")).scalar() == 2
    assert [state for _, state, _ in await pg_backends(pg_monitor, str(backend.app_name))] == [
        "idle"
    ]


async def test_invalidate(make_engine: MakeEngine) -> None:
    engine = make_engine()
    async with engine.connect() as conn:
        first = await conn.get_raw_connection()
        await conn.exec_driver_sql("SELECT 1")
        await conn.invalidate()
        assert engine.pool.checkedout() == 0
        with pytest.raises(exc.PendingRollbackError, match="invalidate"):
            await conn.exec_driver_sql("SELECT 1")
        await conn.rollback()
        assert await conn.get_raw_connection() is not first
