"""run_sync(): blocking code in a worker thread drives the same connection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from engine_helpers import Backend

from asyncsession import exc
from asyncsession.engine import AsyncEngine, SyncConnectionView
from asyncsession.engine import base as engine_base
from asyncsession.sql import types
from asyncsession.sql.dml import insert
from asyncsession.sql.schema import Column, MetaData, Table
from asyncsession.sql.selectable import select

pytestmark = pytest.mark.anyio

MakeEngine = Callable[..., AsyncEngine]

metadata = MetaData()
notes = Table(
    "notes",
    metadata,
    Column("id", types.Integer, primary_key=True),
    Column("body", types.String(50)),
)


async def test_create_all_and_blocking_calls(make_engine: MakeEngine) -> None:
    engine = make_engine()
    threads: list[int] = []

    def work(conn: SyncConnectionView, body: str) -> list[Any]:
        threads.append(threading.get_ident())
        metadata.create_all(conn)
        conn.execute(insert(notes), [{"id": 1, "body": body}, {"id": 2, "body": "two"}])
        with conn.begin_nested():
            conn.execute(insert(notes), {"id": 3, "body": "kept"})
        savepoint = conn.begin_nested()
        conn.execute(insert(notes), {"id": 4, "body": "dropped"})
        savepoint.rollback()
        assert conn.in_transaction()
        assert conn.dialect is engine.dialect
        return list(conn.scalars(select(notes.c.id).order_by(notes.c.id)))

    async with engine.begin() as conn:
        assert await conn.run_sync(work, "one") == [1, 2, 3]
    assert threads[0] != threading.get_ident()
    async with engine.connect() as conn:
        assert (await conn.scalar(select(notes.c.body).where(notes.c.id == 1))) == "one"


async def test_errors_propagate_and_the_connection_stays_usable(
    make_engine: MakeEngine, backend: Backend
) -> None:
    engine = make_engine()

    def fail(conn: SyncConnectionView) -> None:
        conn.exec_driver_sql("SELECT * FROM no_such_table")

    async with engine.connect() as conn:
        with pytest.raises(exc.DBAPIError, match="no_such_table"):
            await conn.run_sync(fail)
        await conn.rollback()
        assert (await conn.exec_driver_sql("SELECT 1")).scalar() == 1


async def test_other_tasks_are_refused_meanwhile(make_engine: MakeEngine) -> None:
    engine = make_engine()
    inside = threading.Event()
    release = threading.Event()

    def hold(conn: SyncConnectionView) -> int:
        inside.set()
        release.wait(10)
        result: int = conn.exec_driver_sql("SELECT 7").scalar()
        return result

    async with engine.connect() as conn, anyio.create_task_group() as tg:
        results: list[int] = []

        async def run() -> None:
            results.append(await conn.run_sync(hold))

        tg.start_soon(run)
        await anyio.to_thread.run_sync(inside.wait)
        with pytest.raises(exc.ConcurrentUseError, match="busy with run_sync"):
            await conn.exec_driver_sql("SELECT 1")
        release.set()
    assert results == [7]


async def test_cancelling_run_sync(make_engine: MakeEngine) -> None:
    engine = make_engine()
    started = threading.Event()
    calls: list[str] = []

    def loop_forever(conn: SyncConnectionView) -> None:
        started.set()
        while True:  # each call hops to the event loop, where the cancel lands
            conn.exec_driver_sql("SELECT 1")
            calls.append("select")

    async with engine.connect() as conn:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(conn.run_sync, loop_forever)
                await anyio.to_thread.run_sync(started.wait)
                scope.cancel()
        assert scope.cancelled_caught
        # The cancel struck in or between the worker's calls: either way the
        # run_sync() is over and rollback() makes the connection usable.
        count = len(calls)
        await conn.rollback()
        assert (await conn.exec_driver_sql("SELECT 2")).scalar() == 2
        assert len(calls) == count  # the worker stopped
    assert engine.pool.checkedout() == 0


async def test_without_the_facade_fn_gets_the_minimal_view(
    make_engine: MakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # asyncsession.sync installs a hook that hands over its blocking Connection;
    # without it (the facade not imported) run_sync() falls back to SyncConnectionView.
    monkeypatch.setattr(engine_base, "_run_sync_hook", None)
    engine = make_engine()

    def work(conn: Any) -> tuple[type, int]:
        return type(conn), conn.exec_driver_sql("SELECT 5").scalar()

    async with engine.connect() as conn:
        assert await conn.run_sync(work) == (SyncConnectionView, 5)


async def test_a_hook_receives_the_busy_connection(
    make_engine: MakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[Any, ...]] = []

    async def hook(conn: Any, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        seen.append((conn, conn._busy, fn, args, kwargs))
        return "from the hook"

    monkeypatch.setattr(engine_base, "_run_sync_hook", hook)
    engine = make_engine()
    async with engine.connect() as conn:
        assert await conn.run_sync(len, 1, two=2) == "from the hook"
        assert seen == [(conn, "run_sync", len, (1,), {"two": 2})]
        assert (await conn.exec_driver_sql("SELECT 1")).scalar() == 1  # not busy any more
