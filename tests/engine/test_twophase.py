"""Two-phase commit on the engine: begin_twophase(), prepare(), COMMIT/ROLLBACK PREPARED,
recover_twophase(), and what happens when a prepare fails or is cancelled.

PostgreSQL only (``pg_twophase`` fails the test when the server has prepared
transactions disabled, and fails it at teardown if it left one behind); SQLite
must refuse every two-phase operation before anything changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from asyncsession import exc
from asyncsession.engine import (
    AsyncConnection,
    AsyncEngine,
    AsyncTwoPhaseTransaction,
    TransactionState,
)

pytestmark = pytest.mark.anyio

MakeEngine = Callable[..., AsyncEngine]
CancelAt = Callable[[str, str, Callable[[], object]], None]


@pytest.fixture
async def engine(pg_url: str, pg_twophase: str, engine_factory: MakeEngine) -> AsyncEngine:
    engine = engine_factory(pg_url, connect_args={"server_settings": {"search_path": pg_twophase}})
    async with engine.begin() as conn:
        await conn.exec_driver_sql("CREATE TABLE items (id INTEGER PRIMARY KEY)")
    return engine


async def item_ids(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        result = await conn.exec_driver_sql("SELECT id FROM items ORDER BY id")
        return [row[0] for row in result.all()]


async def prepared(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return await conn.recover_twophase()


async def test_prepare_then_commit(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        transaction = await conn.begin_twophase("order-1")
        assert isinstance(transaction, AsyncTwoPhaseTransaction)
        assert transaction.xid == "order-1"
        await conn.exec_driver_sql("INSERT INTO items VALUES (1)")
        await transaction.prepare()
        assert transaction.state is TransactionState.PREPARED
        assert transaction.is_prepared
        assert transaction.is_active
        assert conn.in_transaction()
        # Held by the server apart from the connection: listed, not yet visible.
        assert await prepared(engine) == ["order-1"]
        assert await conn.recover_twophase() == ["order-1"]
        assert await item_ids(engine) == []
        with pytest.raises(
            exc.InvalidRequestError, match=r"is prepared .*; commit\(\) or rollback\(\) it first"
        ):
            await conn.exec_driver_sql("SELECT 1")
        with pytest.raises(
            exc.InvalidRequestError, match=r"is prepared .*; commit\(\) or rollback\(\) it first"
        ):
            await conn.begin_nested()
        with pytest.raises(exc.InvalidRequestError, match="Can't prepare this transaction"):
            await transaction.prepare()
        await transaction.commit()
        assert transaction.state is TransactionState.COMMITTED
        assert not conn.in_transaction()
        assert await item_ids(engine) == [1]
        assert await prepared(engine) == []
        # The connection works on: the next statement autobegins an ordinary transaction.
        await conn.exec_driver_sql("INSERT INTO items VALUES (2)")
        await conn.commit()
    assert await item_ids(engine) == [1, 2]


async def test_prepare_then_rollback(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        transaction = await conn.begin_twophase()
        assert transaction.xid.startswith("_asyncsession_")
        await conn.exec_driver_sql("INSERT INTO items VALUES (1)")
        await transaction.prepare()
        await transaction.rollback()
        assert transaction.state is TransactionState.ROLLED_BACK
        await transaction.rollback()  # ended: nothing more to do
    assert await item_ids(engine) == []
    assert await prepared(engine) == []


async def test_random_ids_differ(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert conn.begin_twophase().xid != conn.begin_twophase().xid


async def test_commit_without_prepare_is_one_phase(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        transaction = await conn.begin_twophase()
        await conn.exec_driver_sql("INSERT INTO items VALUES (1)")
        await transaction.commit()
        assert transaction.state is TransactionState.COMMITTED
    assert await item_ids(engine) == [1]
    assert await prepared(engine) == []


async def prepare_and_fail(conn: AsyncConnection, transaction: AsyncTwoPhaseTransaction) -> None:
    async with transaction:
        await conn.exec_driver_sql("INSERT INTO items VALUES (2)")
        await transaction.prepare()
        raise RuntimeError("abort")


async def test_async_with_block_commits_the_prepared_transaction(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        async with conn.begin_twophase() as transaction:
            await conn.exec_driver_sql("INSERT INTO items VALUES (1)")
            await transaction.prepare()
        assert transaction.state is TransactionState.COMMITTED
        failing = conn.begin_twophase()
        with pytest.raises(RuntimeError, match="abort"):
            await prepare_and_fail(conn, failing)
        assert failing.state is TransactionState.ROLLED_BACK
    assert await item_ids(engine) == [1]
    assert await prepared(engine) == []


async def test_prepare_with_nothing_sent_prepares_an_empty_transaction(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as conn:
        transaction = await conn.begin_twophase("empty")
        await transaction.prepare()
        assert await prepared(engine) == ["empty"]  # the id names a real prepared transaction
        await transaction.commit()
    assert await prepared(engine) == []


async def test_savepoints_become_part_of_the_prepared_transaction(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        transaction = await conn.begin_twophase()
        savepoint = await conn.begin_nested()
        await conn.exec_driver_sql("INSERT INTO items VALUES (1)")
        await transaction.prepare()
        assert savepoint.state is TransactionState.COMMITTED
        assert not conn.in_nested_transaction()
        await transaction.commit()
    assert await item_ids(engine) == [1]


async def test_close_rolls_back_a_prepared_transaction(engine: AsyncEngine) -> None:
    conn = await engine.connect()
    transaction = await conn.begin_twophase()
    await conn.exec_driver_sql("INSERT INTO items VALUES (1)")
    await transaction.prepare()
    await conn.close()
    assert transaction.state is TransactionState.CLOSED
    assert await prepared(engine) == []
    assert await item_ids(engine) == []
    assert engine.pool.checkedout() == 0


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
async def test_recover_and_resolve_from_another_connection(
    engine: AsyncEngine, outcome: str
) -> None:
    # The coordinator prepared, then lost its connection: the server keeps the transaction.
    coordinator = await engine.connect()
    transaction = await coordinator.begin_twophase("in-doubt")
    await coordinator.exec_driver_sql("INSERT INTO items VALUES (1)")
    await transaction.prepare()
    await coordinator.invalidate()
    assert transaction.state is TransactionState.PREPARED

    async with engine.connect() as recovery:
        assert await recovery.recover_twophase() == ["in-doubt"]
        assert not recovery.in_transaction()  # listing begins no transaction
        if outcome == "commit":
            await recovery.commit_prepared("in-doubt")
        else:
            await recovery.rollback_prepared("in-doubt")
        assert await recovery.recover_twophase() == []
    assert await item_ids(engine) == ([1] if outcome == "commit" else [])

    # Closing the coordinator finds nothing left to roll back.
    await coordinator.close()
    assert await item_ids(engine) == ([1] if outcome == "commit" else [])
    assert engine.pool.checkedout() == 0


async def test_commit_prepared_inside_a_transaction(engine: AsyncEngine) -> None:
    async with engine.connect() as coordinator:
        transaction = await coordinator.begin_twophase("x1")
        await coordinator.exec_driver_sql("INSERT INTO items VALUES (1)")
        await transaction.prepare()
        with pytest.raises(
            exc.InvalidRequestError, match="commit\\(\\) or rollback\\(\\) it first"
        ):
            await coordinator.commit_prepared("x1", recover=True)  # its own prepared one
        async with engine.connect() as other:
            await other.exec_driver_sql("SELECT 1")  # autobegins
            with pytest.raises(exc.InvalidRequestError, match="pass recover=True"):
                await other.commit_prepared("x1")
            assert await prepared(engine) == ["x1"]  # nothing was sent
            await other.commit_prepared("x1", recover=True)
            assert not other.in_transaction()
        assert await item_ids(engine) == [1]
        # The coordinator's own second phase now finds the transaction gone.
        with pytest.raises(exc.ProgrammingError, match="does not exist") as failure:
            await transaction.commit()
        assert "recover_twophase()" in "".join(failure.value.__notes__)
        assert transaction.state is TransactionState.CLOSED
        assert not coordinator.in_transaction()


async def test_unknown_id(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        with pytest.raises(exc.ProgrammingError, match="does not exist"):
            await conn.rollback_prepared("never-prepared")
        assert not conn.in_transaction()


async def test_a_failed_prepare_rolls_back(engine: AsyncEngine) -> None:
    async with engine.connect() as first, engine.connect() as second:
        taken = await first.begin_twophase("same")
        await first.exec_driver_sql("INSERT INTO items VALUES (1)")
        await taken.prepare()

        transaction = await second.begin_twophase("same")
        await second.exec_driver_sql("INSERT INTO items VALUES (2)")
        with pytest.raises(exc.DBAPIError, match="already in use"):
            await transaction.prepare()
        # PostgreSQL turned the failed PREPARE into a ROLLBACK.
        assert transaction.state is TransactionState.DEACTIVE
        with pytest.raises(exc.PendingRollbackError, match="PREPARE TRANSACTION failed"):
            await second.exec_driver_sql("SELECT 1")
        await transaction.rollback()
        await second.exec_driver_sql("INSERT INTO items VALUES (3)")
        await second.commit()

        await taken.rollback()
    assert await item_ids(engine) == [3]
    assert await prepared(engine) == []


@pytest.mark.parametrize(
    "xid",
    ["", "x" * 200, "nul\x00byte"],
    ids=["empty", "too-long", "nul"],
)
async def test_bad_ids_are_refused_before_anything_is_sent(engine: AsyncEngine, xid: str) -> None:
    async with engine.connect() as conn:
        with pytest.raises(exc.ArgumentError, match="two-phase transaction id"):
            conn.begin_twophase(xid)
        with pytest.raises(exc.ArgumentError, match="two-phase transaction id"):
            await conn.commit_prepared(xid)
        assert not conn.in_transaction()


async def test_quotes_and_backslashes_in_ids(engine: AsyncEngine) -> None:
    xid = "it's a \\ test"
    async with engine.connect() as conn:
        transaction = await conn.begin_twophase(xid)
        await conn.exec_driver_sql("INSERT INTO items VALUES (1)")
        await transaction.prepare()
        assert await prepared(engine) == [xid]
        await transaction.commit()
    assert await item_ids(engine) == [1]


async def test_autocommit_has_nothing_to_prepare(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        transaction = await conn.begin_twophase()
        with pytest.raises(exc.InvalidRequestError, match="AUTOCOMMIT"):
            await transaction.prepare()
        assert transaction.state is TransactionState.ACTIVE
        await transaction.rollback()
    assert await prepared(engine) == []


async def test_sqlite_refuses_two_phase_commit(sqlite_url: str, engine_factory: MakeEngine) -> None:
    engine = engine_factory(sqlite_url)
    async with engine.connect() as conn:
        with pytest.raises(exc.NotSupportedError, match="sqlite database has no two-phase"):
            conn.begin_twophase()
        with pytest.raises(exc.NotSupportedError, match="need PostgreSQL"):
            await conn.recover_twophase()
        with pytest.raises(exc.NotSupportedError):
            await conn.commit_prepared("x")
        with pytest.raises(exc.NotSupportedError):
            await conn.rollback_prepared("x")
        assert not conn.in_transaction()
        await conn.exec_driver_sql("SELECT 1")  # the connection is unharmed


# -- cancellation ----------------------------------------------------------------------------


@pytest.fixture
def cancel_at(monkeypatch: pytest.MonkeyPatch) -> CancelAt:
    """``cancel_at(prefix, mode, cancel)``: call ``cancel`` (a scope's, or a task's for a
    native cancellation) at the first driver call whose SQL starts with ``prefix``,
    before it is sent or after the server ran it."""
    original = AsyncConnection._call
    armed: dict[str, Any] = {}

    async def _call(
        self: AsyncConnection,
        entry: Any,
        operation: Callable[[Any], Awaitable[Any]],
        sql: str,
        params: Any,
    ) -> Any:
        if not armed or not sql.startswith(armed["prefix"]):
            return await original(self, entry, operation, sql, params)
        mode, cancel = armed.pop("mode"), armed.pop("cancel")
        armed.clear()

        async def interrupted(driver_connection: Any) -> Any:
            if mode == "before":
                cancel()
                await anyio.lowlevel.checkpoint()
            result = await operation(driver_connection)
            if mode == "after":
                cancel()
                await anyio.lowlevel.checkpoint()
            return result

        return await original(self, entry, interrupted, sql, params)

    def arm(prefix: str, mode: str, cancel: Callable[[], object]) -> None:
        armed.update(prefix=prefix, mode=mode, cancel=cancel)

    monkeypatch.setattr(AsyncConnection, "_call", _call)
    return arm


@pytest.mark.parametrize("mode", ["before", "after"])
async def test_cancelled_prepare_leaves_nothing_prepared(
    engine: AsyncEngine, cancel_at: CancelAt, mode: str
) -> None:
    async with engine.connect() as conn:
        transaction = await conn.begin_twophase("cancelled")
        await conn.exec_driver_sql("INSERT INTO items VALUES (1)")
        with anyio.CancelScope() as scope:
            cancel_at("PREPARE", mode, scope.cancel)
            await transaction.prepare()
        assert scope.cancelled_caught  # the cancellation propagated
        # "after": the server had prepared it; the shielded cleanup rolled it back.
        assert await prepared(engine) == []
        assert transaction.state is TransactionState.DEACTIVE
        with pytest.raises(exc.PendingRollbackError, match="cancelled"):
            await conn.exec_driver_sql("SELECT 1")
        await transaction.rollback()
        await conn.exec_driver_sql("INSERT INTO items VALUES (2)")
        await conn.commit()
    assert await item_ids(engine) == [2]
    assert engine.pool.checkedout() == 0


@pytest.mark.parametrize("mode", ["before", "after"])
async def test_natively_cancelled_prepare_leaves_nothing_prepared(
    engine: AsyncEngine, cancel_at: CancelAt, mode: str
) -> None:
    """A native Task.cancel() (it pierces anyio's shields): the cleanup still finishes."""
    async with engine.connect() as conn:
        transaction = await conn.begin_twophase("native")
        await conn.exec_driver_sql("INSERT INTO items VALUES (1)")
        task = asyncio.ensure_future(transaction.prepare())
        cancel_at("PREPARE", mode, task.cancel)
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await prepared(engine) == []
        assert transaction.state is TransactionState.DEACTIVE
        await transaction.rollback()
    assert await item_ids(engine) == []
    assert engine.pool.checkedout() == 0


@pytest.mark.parametrize("mode", ["before", "after"])
@pytest.mark.parametrize("outcome", ["commit", "rollback"])
async def test_second_phase_finishes_despite_a_cancellation(
    engine: AsyncEngine,
    cancel_at: CancelAt,
    mode: str,
    outcome: str,
) -> None:
    async with engine.connect() as conn:
        transaction = await conn.begin_twophase()
        await conn.exec_driver_sql("INSERT INTO items VALUES (1)")
        await transaction.prepare()
        with anyio.CancelScope() as scope:
            cancel_at(f"{outcome.upper()} PREPARED", mode, scope.cancel)
            await (transaction.commit() if outcome == "commit" else transaction.rollback())
        assert scope.cancelled_caught  # raised once the second phase was done
        expected = (
            TransactionState.COMMITTED if outcome == "commit" else TransactionState.ROLLED_BACK
        )
        assert transaction.state is expected
        assert not conn.in_transaction()
    assert await item_ids(engine) == ([1] if outcome == "commit" else [])
    assert await prepared(engine) == []
    assert engine.pool.checkedout() == 0
