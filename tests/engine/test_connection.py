"""AsyncConnection on both backends: execution, transactions, savepoints, bad input."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Callable

import anyio
import anyio.lowlevel
import pytest
from engine_helpers import Backend, Gate, install_hooks

from asyncsession import exc
from asyncsession.engine import AsyncConnection, AsyncEngine, TransactionState
from asyncsession.sql.elements import bindparam, text

pytestmark = pytest.mark.anyio

MakeEngine = Callable[..., AsyncEngine]


async def make_items(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.exec_driver_sql(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"
        )


async def item_ids(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        result = await conn.exec_driver_sql("SELECT id FROM items ORDER BY id")
        return [row[0] for row in result.all()]


async def test_execute_compiled_statement(make_engine: MakeEngine) -> None:
    engine = make_engine()
    async with engine.connect() as conn:
        result = await conn.execute(
            text("SELECT CAST(:x AS INTEGER) AS a, 'two' AS b").bindparams(x=1)
        )
        rows = result.all()
        assert [tuple(r) for r in rows] == [(1, "two")]
        assert rows[0].a == 1
        assert await conn.scalar(text("SELECT CAST(:v AS INTEGER) AS v"), {"v": 41}) == 41


async def test_exec_driver_sql_and_executemany(make_engine: MakeEngine, backend: Backend) -> None:
    engine = make_engine()
    await make_items(engine)
    async with engine.connect() as conn:
        insert = f"INSERT INTO items (id, name) VALUES ({backend.ps(2)})"
        await conn.exec_driver_sql(insert, (1, "one"))
        result = await conn.exec_driver_sql(insert, [(2, "two"), (3, "three")])
        assert not result.returns_rows
        updated = await conn.exec_driver_sql("UPDATE items SET name = name || '!'")
        assert updated.rowcount == 3
        returned = await conn.exec_driver_sql(
            f"INSERT INTO items (id, name) VALUES ({backend.ps(2)}) RETURNING id",
            [(4, "four"), (5, "five")],
        )
        assert [r[0] for r in returned.all()] == [4, 5]
        await conn.commit()
    assert await item_ids(engine) == [1, 2, 3, 4, 5]


async def test_execute_list_of_dicts_runs_executemany(make_engine: MakeEngine) -> None:
    engine = make_engine()
    await make_items(engine)
    async with engine.begin() as conn:
        stmt = text("INSERT INTO items (id, name) VALUES (:id, :name)")
        await conn.execute(stmt, [{"id": i, "name": f"n{i}"} for i in range(1, 101)])
    assert await item_ids(engine) == list(range(1, 101))


async def test_exec_driver_sql_empty_select_still_has_keys(make_engine: MakeEngine) -> None:
    engine = make_engine()
    await make_items(engine)
    async with engine.connect() as conn:
        result = await conn.exec_driver_sql("SELECT id, name FROM items")
        assert list(result.keys()) == ["id", "name"]
        assert result.all() == []


async def test_autobegin_and_rollback_at_close(make_engine: MakeEngine, backend: Backend) -> None:
    engine = make_engine()
    await make_items(engine)
    async with engine.connect() as conn:
        assert not conn.in_transaction()
        await conn.exec_driver_sql(f"INSERT INTO items VALUES ({backend.ps(2)})", (1, "x"))
        assert conn.in_transaction()
    assert await item_ids(engine) == []
    assert engine.pool.checkedout() == 0


async def test_commit_and_rollback(make_engine: MakeEngine, backend: Backend) -> None:
    engine = make_engine()
    await make_items(engine)
    insert = f"INSERT INTO items VALUES ({backend.ps(2)})"
    async with engine.connect() as conn:
        await conn.exec_driver_sql(insert, (1, "kept"))
        await conn.commit()
        assert not conn.in_transaction()
        await conn.exec_driver_sql(insert, (2, "dropped"))
        await conn.rollback()
        await conn.commit()  # nothing in progress: a no-op
    assert await item_ids(engine) == [1]


async def test_engine_begin_commits_or_rolls_back(
    make_engine: MakeEngine, backend: Backend
) -> None:
    engine = make_engine()
    await make_items(engine)
    insert = f"INSERT INTO items VALUES ({backend.ps(2)})"
    async with engine.begin() as conn:
        await conn.exec_driver_sql(insert, (1, "a"))

    async def fail() -> None:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(insert, (2, "b"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail()
    assert await item_ids(engine) == [1]


async def test_explicit_begin_and_await_forms(make_engine: MakeEngine, backend: Backend) -> None:
    engine = make_engine()
    await make_items(engine)
    conn = await engine.connect()
    try:
        transaction = await conn.begin()
        assert conn.get_transaction() is transaction
        assert transaction.is_active
        await conn.exec_driver_sql(f"INSERT INTO items VALUES ({backend.ps(2)})", (1, "a"))
        await transaction.commit()
        assert transaction.state is TransactionState.COMMITTED
        assert conn.get_transaction() is None
        with pytest.raises(exc.InvalidRequestError, match="committed"):
            await transaction.commit()
        await transaction.rollback()  # ended: a no-op
    finally:
        await conn.close()
    assert await item_ids(engine) == [1]


async def test_begin_when_autobegun_names_the_fix(make_engine: MakeEngine) -> None:
    engine = make_engine()
    async with engine.connect() as conn:
        await conn.exec_driver_sql("SELECT 1")
        with pytest.raises(exc.InvalidRequestError, match=r"autobegun.*begin_nested"):
            await conn.begin()
        assert (await conn.exec_driver_sql("SELECT 2")).scalar() == 2


async def test_savepoints(make_engine: MakeEngine, backend: Backend) -> None:
    engine = make_engine()
    await make_items(engine)
    insert = f"INSERT INTO items VALUES ({backend.ps(2)})"
    async with engine.begin() as conn:
        await conn.exec_driver_sql(insert, (1, "outer"))
        async with conn.begin_nested() as sp1:
            assert conn.in_nested_transaction()
            assert conn.get_nested_transaction() is sp1
            await conn.exec_driver_sql(insert, (2, "kept"))

        async def fail() -> None:
            async with conn.begin_nested():
                await conn.exec_driver_sql(insert, (3, "rolled back"))
                raise RuntimeError

        with pytest.raises(RuntimeError):
            await fail()
        sp = await conn.begin_nested()
        await conn.exec_driver_sql(insert, (4, "rolled back too"))
        await sp.rollback()
        assert sp.state is TransactionState.ROLLED_BACK
        assert not conn.in_nested_transaction()
    assert await item_ids(engine) == [1, 2]


async def test_commit_of_a_savepoint_that_is_not_innermost(make_engine: MakeEngine) -> None:
    engine = make_engine()
    async with engine.connect() as conn:
        outer = await conn.begin_nested()
        inner = await conn.begin_nested()
        with pytest.raises(exc.InvalidRequestError, match=r"sp_1.*sp_2.*innermost first"):
            await outer.commit()
        with pytest.raises(exc.InvalidRequestError, match="innermost first"):
            await outer.rollback()
        # Nothing changed; the connection works and the stack unwinds properly.
        assert (await conn.exec_driver_sql("SELECT 1")).scalar() == 1
        await inner.commit()
        await outer.commit()
        await conn.commit()


async def test_connection_commit_ends_open_savepoints(make_engine: MakeEngine) -> None:
    engine = make_engine()
    async with engine.connect() as conn:
        savepoint = await conn.begin_nested()
        await conn.commit()
        assert savepoint.state is TransactionState.COMMITTED
        assert not conn.in_transaction()


async def test_missing_and_unknown_parameters(make_engine: MakeEngine) -> None:
    engine = make_engine()
    stmt = text("SELECT CAST(:a AS INTEGER) AS a")
    async with engine.connect() as conn:
        with pytest.raises(exc.ArgumentError, match="'a'"):
            await conn.execute(stmt)
        with pytest.raises(exc.ArgumentError, match="'b'"):
            await conn.execute(stmt, {"a": 1, "b": 2})
        assert (await conn.execute(stmt, {"a": 3})).scalar() == 3
        assert conn.get_transaction() is not None
        await conn.commit()


async def test_wrong_parameter_count_for_driver_sql(
    make_engine: MakeEngine, backend: Backend
) -> None:
    engine = make_engine()
    async with engine.connect() as conn:
        with pytest.raises(exc.DBAPIError) as info:
            await conn.exec_driver_sql(f"SELECT {backend.p(1)}, {backend.p(2)}", (1,))
        assert "SELECT" in str(info.value)
        assert not info.value.connection_invalidated
        assert "2" in str(info.value.orig)
        if backend.name == "postgresql":
            # asyncpg checks the count before sending anything: the transaction is fine.
            assert isinstance(info.value, exc.InterfaceError)
        await conn.rollback()
        assert (await conn.exec_driver_sql("SELECT 1")).scalar() == 1


async def test_dict_parameters_on_postgresql_are_refused(
    make_engine: MakeEngine, backend: Backend
) -> None:
    if backend.name != "postgresql":
        pytest.skip("SQLite takes :name parameters with a dict")
    engine = make_engine()
    async with engine.connect() as conn:
        with pytest.raises(exc.ArgumentError, match="positional"):
            await conn.exec_driver_sql("SELECT $1", {"a": 1})


async def test_execute_refuses_strings(make_engine: MakeEngine) -> None:
    engine = make_engine()
    async with engine.connect() as conn:
        with pytest.raises(exc.ArgumentError, match="exec_driver_sql"):
            await conn.execute("SELECT 1")  # type: ignore[arg-type]


async def test_closed_connection(make_engine: MakeEngine) -> None:
    engine = make_engine()
    conn = await engine.connect()
    await conn.close()
    await conn.close()  # idempotent
    assert conn.closed
    with pytest.raises(exc.ResourceClosedError, match=r"closed.*engine.connect\(\)"):
        await conn.exec_driver_sql("SELECT 1")
    with pytest.raises(exc.ResourceClosedError):
        await conn.begin()
    assert engine.pool.checkedout() == 0


async def test_not_started_connection(make_engine: MakeEngine) -> None:
    engine = make_engine()
    conn = engine.connect()
    with pytest.raises(exc.InvalidRequestError, match="not started"):
        await conn.exec_driver_sql("SELECT 1")
    await conn.close()


async def test_integrity_error_is_translated(make_engine: MakeEngine, backend: Backend) -> None:
    engine = make_engine()
    await make_items(engine)
    insert = f"INSERT INTO items VALUES ({backend.ps(2)})"
    async with engine.connect() as conn:
        await conn.exec_driver_sql(insert, (1, "a"))
        with pytest.raises(exc.IntegrityError) as info:
            await conn.exec_driver_sql(insert, (1, "again"))
        error = info.value
        assert error.statement == insert
        assert error.params == (1, "again")
        assert error.orig is error.__cause__
        assert not error.connection_invalidated
        if backend.name == "postgresql":
            assert error.sqlstate == "23505"
        await conn.rollback()


@pytest.mark.parametrize(
    ("sql", "error_class"),
    [
        ("SELEC 1", (exc.ProgrammingError, exc.OperationalError)),
        ("SELECT * FROM no_such_table", (exc.ProgrammingError, exc.OperationalError)),
    ],
)
async def test_sql_errors_are_translated(
    make_engine: MakeEngine, sql: str, error_class: tuple[type[Exception], ...]
) -> None:
    engine = make_engine()
    async with engine.connect() as conn:
        with pytest.raises(error_class):
            await conn.exec_driver_sql(sql)
        await conn.rollback()
        assert (await conn.exec_driver_sql("SELECT 1")).scalar() == 1


async def test_failed_statement_on_postgresql_needs_rollback(
    make_engine: MakeEngine, backend: Backend
) -> None:
    if backend.name != "postgresql":
        pytest.skip("SQLite transactions survive a failed statement")
    engine = make_engine()
    async with engine.connect() as conn:
        with pytest.raises(exc.DataError):
            await conn.exec_driver_sql("SELECT 1 / 0")
        with pytest.raises(exc.InternalError) as info:
            await conn.exec_driver_sql("SELECT 1")
        assert info.value.sqlstate == "25P02"  # in_failed_sql_transaction
        await conn.rollback()
        assert (await conn.exec_driver_sql("SELECT 1")).scalar() == 1


async def test_autocommit(make_engine: MakeEngine, backend: Backend) -> None:
    engine = make_engine()
    await make_items(engine)
    insert = f"INSERT INTO items VALUES ({backend.ps(2)})"
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql(insert, (1, "a"))
        await conn.rollback()  # nothing to roll back: the insert is committed
        with pytest.raises(exc.InvalidRequestError, match="AUTOCOMMIT"):
            await conn.begin_nested()
    assert await item_ids(engine) == [1]
    auto = engine.execution_options(isolation_level="AUTOCOMMIT")
    assert auto.pool is engine.pool
    async with auto.connect() as conn:
        await conn.exec_driver_sql(insert, (2, "b"))
    assert await item_ids(engine) == [1, 2]


async def test_isolation_level_begins_with_it(make_engine: MakeEngine, backend: Backend) -> None:
    if backend.name != "postgresql":
        pytest.skip("SQLite is always serializable")
    engine = make_engine(isolation_level="REPEATABLE READ")
    async with engine.connect() as conn:
        level = (await conn.exec_driver_sql("SHOW transaction_isolation")).scalar()
        assert level == "repeatable read"
        await conn.rollback()
        await conn.execution_options(isolation_level="SERIALIZABLE")
        level = (await conn.exec_driver_sql("SHOW transaction_isolation")).scalar()
        assert level == "serializable"
        with pytest.raises(exc.InvalidRequestError, match="transaction is in progress"):
            await conn.execution_options(isolation_level="READ COMMITTED")


async def test_bad_options(make_engine: MakeEngine, backend: Backend) -> None:
    with pytest.raises(exc.ArgumentError, match="isolation_level"):
        make_engine(isolation_level="SOMETIMES")
    engine = make_engine()
    with pytest.raises(exc.ArgumentError, match="Unknown execution option"):
        engine.execution_options(colour="blue")
    async with engine.connect() as conn:
        with pytest.raises(exc.ArgumentError, match="per statement"):
            await conn.exec_driver_sql(
                "SELECT 1", execution_options={"isolation_level": "AUTOCOMMIT"}
            )


async def test_sqlite_begin_mode_and_foreign_keys(
    sqlite_url: str, engine_factory: MakeEngine
) -> None:
    engine = engine_factory(sqlite_url, connect_args={"begin_mode": "IMMEDIATE"})
    async with engine.begin() as conn:
        assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
        await conn.exec_driver_sql("CREATE TABLE p (id INTEGER PRIMARY KEY)")
        await conn.exec_driver_sql("CREATE TABLE c (p_id INTEGER REFERENCES p (id))")
    async with engine.connect() as conn:
        with pytest.raises(exc.IntegrityError, match="FOREIGN KEY"):
            await conn.exec_driver_sql("INSERT INTO c VALUES (?)", (1,))
    off = engine_factory(sqlite_url, connect_args={"foreign_keys": False})
    async with off.connect() as conn:
        assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 0


async def test_sqlite_named_parameters(sqlite_url: str, engine_factory: MakeEngine) -> None:
    engine = engine_factory(sqlite_url)
    async with engine.connect() as conn:
        assert (await conn.exec_driver_sql("SELECT :a + :b", {"a": 1, "b": 2})).scalar() == 3


async def test_in_memory_sqlite_shares_one_connection(engine_factory: MakeEngine) -> None:
    engine = engine_factory("sqlite+aiosqlite://", pool_timeout=0.2)
    async with engine.begin() as conn:
        await conn.exec_driver_sql("CREATE TABLE t (x)")
        await conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    async with engine.connect() as conn:
        assert (await conn.exec_driver_sql("SELECT x FROM t")).scalar() == 1
        with pytest.raises(exc.TimeoutError, match="single shared connection"):
            async with engine.connect():
                pass


async def test_concurrent_use_is_detected(make_engine: MakeEngine) -> None:
    engine = make_engine()
    gate = Gate("execute SELECT 41")
    install_hooks(engine, gate)
    results: list[object] = []
    async with engine.connect() as conn:
        await conn.exec_driver_sql("SELECT 1")

        async def first() -> None:
            results.append((await conn.exec_driver_sql("SELECT 41")).scalar())

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(exc.ConcurrentUseError, match="busy with exec_driver_sql"):
                await conn.exec_driver_sql("SELECT 2")
            with pytest.raises(exc.ConcurrentUseError, match="busy with exec_driver_sql"):
                await conn.commit()
            with pytest.raises(exc.ConcurrentUseError, match="busy with exec_driver_sql"):
                await conn.close()
            gate.open.set()
        assert results == [41]
        await conn.commit()


async def test_wrong_event_loop(make_engine: MakeEngine) -> None:
    engine = make_engine()
    errors: list[BaseException] = []
    async with engine.connect() as conn:
        await conn.exec_driver_sql("SELECT 1")

        def other_loop() -> None:
            try:
                asyncio.run(conn.exec_driver_sql("SELECT 1"))
            except BaseException as error:
                errors.append(error)

        thread = threading.Thread(target=other_loop)
        thread.start()
        await anyio.to_thread.run_sync(thread.join)
        assert (await conn.exec_driver_sql("SELECT 2")).scalar() == 2
    assert len(errors) == 1
    assert isinstance(errors[0], exc.WrongEventLoopError)
    assert "another event loop" in str(errors[0])


def test_engine_is_not_bound_to_a_loop(sqlite_url: str) -> None:
    from asyncsession.engine import create_async_engine

    engine = create_async_engine(sqlite_url)

    async def work(value: int) -> int:
        async with engine.connect() as conn:
            result: int = (await conn.exec_driver_sql("SELECT ?", (value,))).scalar()
            return result

    assert asyncio.run(work(1)) == 1
    assert asyncio.run(work(2)) == 2  # SQLite connections survive their loop
    asyncio.run(engine.dispose())


def test_postgresql_engine_across_loops(pg_url: str) -> None:
    from asyncsession.engine import create_async_engine

    engine = create_async_engine(pg_url)

    async def work(value: int) -> int:
        try:
            async with engine.connect() as conn:
                result: int = (await conn.exec_driver_sql("SELECT $1::int", (value,))).scalar()
                return result
        finally:
            await engine.dispose()

    assert asyncio.run(work(1)) == 1
    assert asyncio.run(work(2)) == 2


async def test_unclosed_connection_warns_and_frees_its_slot(make_engine: MakeEngine) -> None:
    engine = make_engine()
    conn: AsyncConnection | None = await engine.connect()
    assert engine.pool.checkedout() == 1
    with pytest.warns(ResourceWarning, match="async with engine.connect"):  # noqa: PT031
        del conn
        gc.collect()
    assert engine.pool.checkedout() == 0


async def test_bindparam_values(make_engine: MakeEngine) -> None:
    engine = make_engine()
    stmt = text("SELECT CAST(:n AS INTEGER) AS n").bindparams(bindparam("n", 7))
    async with engine.connect() as conn:
        assert (await conn.execute(stmt)).scalar() == 7
