"""Cancellation and faults: the invariants hold whichever await a cancel strikes.

After every cancellation:

1. the pool slot is freed exactly once (``engine.pool.checkedout() == 0``);
2. every pooled connection is clean (no transaction, no half-done operation)
   or was terminated;
3. on PostgreSQL, no backend of the test is left running a statement or
   ``idle in transaction``;
4. the cancellation propagated, and the engine still works.

The fault-injection test runs a workload once to count its driver awaits, then
once per await, cancelling at exactly that one: through an anyio cancel scope
before the driver call starts, through a scope while it is in flight, and with
a native ``Task.cancel()`` while it is in flight. The "native-twice" style
cancels the task a second time when the cleanup resets the connection; a
native cancel pierces the shield, so that forces the terminate path.
The workload touches every kind of await: connect, BEGIN, statements,
executemany, savepoints (released and rolled back), a stream (open, fetches,
close), COMMIT, the close of an overflow connection, a pre-ping and the reset
of a connection returned inside a transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import asyncpg
import pytest
from engine_helpers import (
    Backend,
    Hooks,
    assert_pg_clean,
    install_hooks,
    pg_backends,
    wait_for_server,
)

from asyncsession import exc
from asyncsession.engine import AsyncEngine, pool
from asyncsession.sql.elements import text

pytestmark = pytest.mark.anyio

MakeEngine = Callable[..., AsyncEngine]


class CancelAt(Hooks):
    """Cancels at the ``target``-th driver await (1-based) once armed."""

    def __init__(self) -> None:
        super().__init__()
        self.target = 0
        self.style = ""
        self.scope: anyio.CancelScope | None = None
        self.task: asyncio.Task[Any] | None = None
        self.hit: str | None = None
        self.cancelled_again = False

    def arm(self, target: int, style: str) -> None:
        self.points = []
        self.target = target
        self.style = style
        self.hit = None
        self.cancelled_again = False

    async def point(self, name: str) -> None:
        await super().point(name)
        if self.hit and self.style == "native-twice" and name == "reset":
            assert self.task is not None
            self.cancelled_again = True
            self.task.cancel()
            return
        if len(self.points) != self.target:
            return
        self.hit = name
        if self.style.startswith("native"):
            assert self.task is not None
            self.task.cancel()
            return
        assert self.scope is not None
        self.scope.cancel()
        if self.style == "before":
            await anyio.lowlevel.checkpoint()


async def workload(engine: AsyncEngine, backend: Backend) -> None:
    insert = f"INSERT INTO items VALUES ({backend.ps(2)})"
    async with engine.connect() as conn:
        await conn.exec_driver_sql(insert, (1, "a"))
        async with conn.begin_nested():
            await conn.exec_driver_sql(insert, (2, "b"))
        savepoint = await conn.begin_nested()
        await conn.exec_driver_sql(insert, (5, "undone"))
        await savepoint.rollback()
        await conn.exec_driver_sql(insert, [(3, "c"), (4, "d")])
        stream = conn.stream(
            text("SELECT id FROM items ORDER BY id"), execution_options={"yield_per": 3}
        )
        async with stream as result:
            assert [row[0] async for row in result] == [1, 2, 3, 4]
        await conn.commit()
        async with engine.begin() as other:  # the pool's overflow connection
            await other.exec_driver_sql("UPDATE items SET name = 'z' WHERE id = 1")
    # `conn` found the pool full and was closed; this checkout pre-pings `other`,
    # and returning it inside a transaction makes the pool reset it.
    async with engine.connect() as conn:
        await conn.exec_driver_sql("SELECT 1")


async def check_invariants(
    engine: AsyncEngine, backend: Backend, monitor: asyncpg.Connection | None, context: str
) -> None:
    assert engine.pool.checkedout() == 0, context
    for entry in engine.pool._idle:
        assert not entry.closed, context
        assert not entry.uncertain, context
        assert not entry.connection.in_transaction(), context
    if monitor is not None:
        await assert_pg_clean(monitor, str(backend.app_name))
    async with engine.connect() as conn:
        rows = (await conn.exec_driver_sql("SELECT id, name FROM items ORDER BY id")).all()
        ids = [r[0] for r in rows]
        assert ids in ([], [1, 2, 3, 4]), context
        assert not rows or rows[0][1] in ("a", "z"), context
        await conn.exec_driver_sql("DELETE FROM items")
        await conn.commit()


@pytest.fixture
def monitor(backend: Backend, request: pytest.FixtureRequest) -> asyncpg.Connection | None:
    if backend.name != "postgresql":
        return None
    connection: asyncpg.Connection = request.getfixturevalue("pg_monitor")
    return connection


@pytest.mark.parametrize("style", ["before", "during", "native", "native-twice"])
async def test_cancel_at_every_await(
    make_engine: MakeEngine,
    backend: Backend,
    monitor: asyncpg.Connection | None,
    style: str,
) -> None:
    engine = make_engine(pool_size=1, max_overflow=1, pool_pre_ping=True)
    async with engine.begin() as conn:
        await conn.exec_driver_sql("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    hooks = CancelAt()
    install_hooks(engine, hooks)

    # Every run starts from an empty pool, so the awaits are the same each time.
    await engine.dispose()
    hooks.arm(0, style)
    await workload(engine, backend)
    total = len(hooks.points)
    for kind in ("connect", "executemany", "cursor.fetch", "close", "ping", "reset"):
        assert kind in hooks.points, hooks.points
    assert total >= 20, hooks.points
    await check_invariants(engine, backend, monitor, "dry run")

    for target in range(1, total + 1):
        await engine.dispose()
        hooks.arm(target, style)
        if style.startswith("native"):
            hooks.task = asyncio.create_task(workload(engine, backend))
            with pytest.raises(asyncio.CancelledError):
                await hooks.task
        else:
            with anyio.CancelScope() as hooks.scope:
                await workload(engine, backend)
            assert hooks.scope.cancelled_caught, f"cancel at {hooks.hit} was swallowed"
        context = f"cancelled ({style}) at await {target}/{total}: {hooks.hit}"
        assert hooks.hit is not None, context
        hooks.arm(0, style)
        await check_invariants(engine, backend, monitor, context)


async def test_cleanup_that_overruns_its_deadline_terminates(
    make_engine: MakeEngine,
    backend: Backend,
    monitor: asyncpg.Connection | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class StuckReset(Hooks):
        async def point(self, name: str) -> None:
            await super().point(name)
            if name == "reset":
                await anyio.sleep_forever()

    monkeypatch.setattr(pool, "CLEANUP_TIMEOUT", 0.05)
    engine = make_engine()
    hooks = StuckReset()
    install_hooks(engine, hooks)
    with anyio.CancelScope() as scope:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
            scope.cancel()
            await conn.exec_driver_sql("SELECT 2")
    assert scope.cancelled_caught
    assert "reset" in hooks.points
    assert engine.pool.checkedout() == 0
    assert engine.pool.checkedin() == 0  # terminated, not pooled
    if monitor is not None:
        await wait_for_server(
            lambda: _no_backends(monitor, str(backend.app_name)), "terminated backend to exit"
        )


async def test_cancel_during_dispose_still_closes_everything(
    make_engine: MakeEngine, backend: Backend, monitor: asyncpg.Connection | None
) -> None:
    class CancelOnClose(Hooks):
        scope: anyio.CancelScope

        async def point(self, name: str) -> None:
            await super().point(name)
            if name == "close":
                self.scope.cancel()

    engine = make_engine()
    hooks = CancelOnClose()
    install_hooks(engine, hooks)
    connections = [await engine.connect() for _ in range(3)]
    for conn in connections:
        await conn.exec_driver_sql("SELECT 1")
        await conn.close()
    assert engine.pool.checkedin() == 3
    with anyio.CancelScope() as hooks.scope:
        await engine.dispose()
    assert hooks.scope.cancelled_caught
    assert hooks.points.count("close") == 3
    assert engine.pool.checkedin() == 0
    if monitor is not None:
        await wait_for_server(
            lambda: _no_backends(monitor, str(backend.app_name)), "closed backends to exit"
        )


async def _no_backends(monitor: asyncpg.Connection, app_name: str) -> bool:
    return not await pg_backends(monitor, app_name)


# -- long statements ---------------------------------------------------------------

LONG_SQLITE = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
)


async def _statement_running(backend: Backend, monitor: asyncpg.Connection | None) -> None:
    """Return once the long statement runs (PostgreSQL: seen by the server)."""
    if monitor is None:
        await anyio.wait_all_tasks_blocked()
        return

    async def running() -> bool:
        return any(
            state == "active" and "pg_sleep" in query
            for _, state, query in await pg_backends(monitor, str(backend.app_name))
        )

    await wait_for_server(running, "pg_sleep to start")


def _long_sql(backend: Backend) -> str:
    return LONG_SQLITE if backend.name == "sqlite" else "SELECT pg_sleep(60)"


async def _assert_clean_after(
    engine: AsyncEngine, backend: Backend, monitor: asyncpg.Connection | None
) -> None:
    assert engine.pool.checkedout() == 0
    if monitor is not None:
        await assert_pg_clean(monitor, str(backend.app_name))
    async with engine.connect() as conn:
        assert (await conn.exec_driver_sql("SELECT 1")).scalar() == 1


@pytest.mark.parametrize("in_transaction", [False, True])
async def test_cancel_scope_stops_a_long_statement(
    make_engine: MakeEngine,
    backend: Backend,
    monitor: asyncpg.Connection | None,
    in_transaction: bool,
) -> None:
    engine = make_engine()
    with anyio.fail_after(20):  # the statement itself would run for 60 s or forever
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                async with engine.connect() as conn:
                    if not in_transaction:
                        await conn.execution_options(isolation_level="AUTOCOMMIT")
                    await conn.exec_driver_sql(_long_sql(backend))

            tg.start_soon(run)
            await _statement_running(backend, monitor)
            tg.cancel_scope.cancel()
    await _assert_clean_after(engine, backend, monitor)


@pytest.mark.parametrize("how", ["wait_for", "timeout", "fail_after"])
async def test_timeouts_stop_a_long_statement(
    make_engine: MakeEngine, backend: Backend, monitor: asyncpg.Connection | None, how: str
) -> None:
    engine = make_engine()
    async with engine.connect() as conn:
        await conn.exec_driver_sql("SELECT 1")  # autobegun: the cancel hits a transaction
        statement = conn.exec_driver_sql(_long_sql(backend))
        with pytest.raises(TimeoutError):  # noqa: PT012 - each branch is one statement
            if how == "wait_for":
                await asyncio.wait_for(statement, 0.3)
            elif how == "timeout":
                async with asyncio.timeout(0.3):
                    await statement
            else:
                with anyio.fail_after(0.3):
                    await statement
        with pytest.raises(exc.PendingRollbackError, match="cancelled"):
            await conn.exec_driver_sql("SELECT 1")
        await conn.rollback()
        assert (await conn.exec_driver_sql("SELECT 2")).scalar() == 2
    await _assert_clean_after(engine, backend, monitor)


async def test_task_group_failure_cancels_a_long_statement(
    make_engine: MakeEngine, backend: Backend, monitor: asyncpg.Connection | None
) -> None:
    engine = make_engine()

    async def run() -> None:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(_long_sql(backend))

    with pytest.raises(ExceptionGroup) as info:  # noqa: PT012 - the group is the subject
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                await _statement_running(backend, monitor)
                raise RuntimeError("sibling failed")
    assert info.group_contains(RuntimeError, match="sibling failed")
    await _assert_clean_after(engine, backend, monitor)


async def test_cancel_in_a_savepoint_leaves_a_deactive_transaction(
    make_engine: MakeEngine, backend: Backend, monitor: asyncpg.Connection | None
) -> None:
    engine = make_engine()
    async with engine.connect() as conn:
        with anyio.move_on_after(0.3):
            async with conn.begin_nested():
                await conn.exec_driver_sql(_long_sql(backend))
        transaction = conn.get_transaction()
        assert transaction is not None
        assert not transaction.is_active
        with pytest.raises(exc.PendingRollbackError, match="rollback"):
            await conn.commit()
        await conn.rollback()
        assert not conn.in_transaction()
        assert (await conn.exec_driver_sql("SELECT 1")).scalar() == 1
    await _assert_clean_after(engine, backend, monitor)


async def test_leaving_a_block_whose_transaction_was_cancelled_inside(
    make_engine: MakeEngine, backend: Backend
) -> None:
    engine = make_engine()
    async with engine.connect() as conn:

        async def block() -> None:
            async with conn.begin():
                with anyio.move_on_after(0.3):
                    await conn.exec_driver_sql(_long_sql(backend))

        with pytest.raises(exc.PendingRollbackError, match="nothing in it was committed"):
            await block()
        assert not conn.in_transaction()
        assert (await conn.exec_driver_sql("SELECT 1")).scalar() == 1
