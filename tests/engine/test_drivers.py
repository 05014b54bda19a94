"""Driver adapters: option parsing, error tables, native values, SQLite interrupts."""

from __future__ import annotations

import datetime
import decimal
import pickle
import sqlite3
import threading
import uuid
from collections.abc import Callable

import anyio
import asyncpg
import pytest

from asyncsession import exc
from asyncsession.engine import AsyncEngine, make_url
from asyncsession.engine.drivers import load_driver
from asyncsession.engine.drivers.postgresql import PGDriver, _rowcount
from asyncsession.engine.drivers.sqlite import SQLiteDriver

MakeEngine = Callable[..., AsyncEngine]


def pg_driver(url: str, **connect_args: object) -> PGDriver:
    driver = load_driver(make_url(url), connect_args)
    assert isinstance(driver, PGDriver)
    return driver


def test_postgresql_url_options() -> None:
    driver = pg_driver(
        "postgresql+asyncpg://u:p@h:5433/d?prepared_statement_cache_size=0"
        "&sslmode=require&application_name=app&timeout=3"
    )
    assert driver.connect_kwargs == {
        "host": "h",
        "port": 5433,
        "user": "u",
        "password": "p",
        "database": "d",
        "ssl": "require",
        "server_settings": {"application_name": "app"},
        "timeout": 3.0,
        "statement_cache_size": 0,
    }


def test_postgresql_connect_args_pass_through() -> None:
    context = object()
    driver = pg_driver(
        "postgresql+asyncpg://u@h/d?application_name=app",
        ssl=context,
        server_settings={"search_path": "s"},
        prepared_statement_cache_size=10,
    )
    kwargs = driver.connect_kwargs
    assert kwargs["ssl"] is context
    assert kwargs["server_settings"] == {"application_name": "app", "search_path": "s"}
    assert kwargs["statement_cache_size"] == 10


def test_postgresql_begin_sql() -> None:
    driver = pg_driver("postgresql+asyncpg://u@h/d")
    assert driver.begin_sql(None) == "BEGIN"
    assert driver.begin_sql("SERIALIZABLE") == "BEGIN ISOLATION LEVEL SERIALIZABLE"


@pytest.mark.parametrize(
    ("status", "count"),
    [("INSERT 0 5", 5), ("UPDATE 3", 3), ("DELETE 0", 0), ("SELECT 2", 2), ("BEGIN", -1)],
)
def test_rowcount_from_status(status: str, count: int) -> None:
    assert _rowcount(status) == count


@pytest.mark.parametrize(
    ("error", "error_class", "disconnect"),
    [
        (asyncpg.UniqueViolationError("dup"), exc.IntegrityError, False),
        (asyncpg.UndefinedTableError("no table"), exc.ProgrammingError, False),
        (asyncpg.DivisionByZeroError("div"), exc.DataError, False),
        (asyncpg.SerializationError("retry"), exc.OperationalError, False),
        (asyncpg.QueryCanceledError("cancelled"), exc.OperationalError, False),
        (asyncpg.AdminShutdownError("killed"), exc.OperationalError, True),
        (asyncpg.ConnectionDoesNotExistError("gone"), exc.OperationalError, True),
        (asyncpg.FeatureNotSupportedError("no"), exc.NotSupportedError, False),
        (asyncpg.InFailedSQLTransactionError("aborted"), exc.InternalError, False),
        (asyncpg.exceptions.DataError("bad arg"), exc.DataError, False),
        (asyncpg.exceptions.InternalClientError("state"), exc.OperationalError, True),
        (asyncpg.exceptions.InterfaceError("misuse"), exc.InterfaceError, False),
        (ConnectionResetError("reset"), exc.OperationalError, True),
        (RuntimeError("other"), exc.DBAPIError, False),
    ],
)
def test_postgresql_error_table(
    error: BaseException, error_class: type[exc.DBAPIError], disconnect: bool
) -> None:
    info = pg_driver("postgresql+asyncpg://u@h/d").translate_error(error, None)
    assert info.error_class is error_class
    assert info.is_disconnect is disconnect
    if isinstance(error, asyncpg.PostgresError):
        assert info.sqlstate == error.sqlstate


@pytest.mark.parametrize(
    ("error", "error_class", "disconnect"),
    [
        (sqlite3.IntegrityError("UNIQUE constraint failed"), exc.IntegrityError, False),
        (sqlite3.OperationalError("no such table: t"), exc.OperationalError, False),
        (sqlite3.ProgrammingError("Incorrect number of bindings"), exc.ProgrammingError, False),
        (
            sqlite3.ProgrammingError("Cannot operate on a closed database."),
            exc.ProgrammingError,
            True,
        ),
        (sqlite3.DataError("too big"), exc.DataError, False),
        (sqlite3.DatabaseError("malformed"), exc.DatabaseError, False),
        (ValueError("Connection closed"), exc.OperationalError, True),
    ],
)
def test_sqlite_error_table(
    error: BaseException, error_class: type[exc.DBAPIError], disconnect: bool
) -> None:
    driver = load_driver(make_url("sqlite+aiosqlite://"), {})
    info = driver.translate_error(error, None)
    assert info.error_class is error_class
    assert info.is_disconnect is disconnect
    assert info.sqlstate is None


def test_sqlite_options() -> None:
    driver = load_driver(
        make_url("sqlite+aiosqlite:///file:mem1?mode=memory&cache=shared&uri=true&timeout=1"),
        {"begin_mode": "exclusive"},
    )
    assert isinstance(driver, SQLiteDriver)
    assert driver.database == "file:mem1?mode=memory&cache=shared"
    assert driver.is_memory
    assert driver.timeout == 1.0
    assert driver.begin_sql(None) == "BEGIN EXCLUSIVE"
    assert not load_driver(make_url("sqlite+aiosqlite:///x.db"), {}).is_memory


def test_wrapped_errors_pickle() -> None:
    error = exc.IntegrityError("dup", "INSERT", (1,), None, True, "23505")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.statement, copy.params, copy.connection_invalidated, copy.sqlstate) == (
        "INSERT",
        (1,),
        True,
        "23505",
    )


@pytest.mark.anyio
async def test_what_asyncpg_returns_natively(engine_factory: MakeEngine, pg_url: str) -> None:
    """The values the SQL layer's result processors receive from asyncpg."""
    engine = engine_factory(pg_url)
    sql = (
        "SELECT 1.5::numeric, '{\"a\": 1}'::json, '{\"a\": 1}'::jsonb, "
        "'2024-01-02 03:04:05+00'::timestamptz, '2024-01-02 03:04:05'::timestamp, "
        "gen_random_uuid(), '1 day'::interval, ARRAY[1, 2], 'x'::bytea"
    )
    async with engine.connect() as conn:
        row = (await conn.exec_driver_sql(sql)).one()
    numeric, json, jsonb, aware, naive, uid, interval, array, blob = row
    assert numeric == decimal.Decimal("1.5")
    assert (json, jsonb) == ('{"a": 1}', '{"a": 1}')
    assert aware == datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    assert naive == datetime.datetime(2024, 1, 2, 3, 4, 5)
    assert isinstance(uid, uuid.UUID)
    assert interval == datetime.timedelta(days=1)
    assert array == [1, 2]
    assert blob == b"x"


ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


@pytest.mark.anyio
async def test_sqlite_interrupt_skips_a_statement_that_has_not_started(sqlite_url: str) -> None:
    """sqlite3's interrupt() misses a statement still queued; the call token does not."""
    connection = await load_driver(make_url(sqlite_url), {}).connect()
    try:
        blocker = threading.Event()
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(connection._call, blocker.wait)  # the thread is busy
                await anyio.wait_all_tasks_blocked()
                scope = anyio.CancelScope()

                async def endless() -> None:
                    with scope:
                        await connection.execute(ENDLESS, (), None)

                tg.start_soon(endless)
                await anyio.wait_all_tasks_blocked()  # ENDLESS is queued behind
                scope.cancel()
                connection.interrupt()  # what the engine does after a cancel
                blocker.set()
            await connection.ping()  # runs only once ENDLESS was skipped
    finally:
        await connection.close()


@pytest.mark.anyio
async def test_sqlite_interrupt_stops_a_running_statement(sqlite_url: str) -> None:
    connection = await load_driver(make_url(sqlite_url), {}).connect()
    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(connection.execute, ENDLESS, (), None)
                while connection._calls.active is None:  # noqa: ASYNC110 - set by the worker thread
                    await anyio.sleep(0.001)
                tg.cancel_scope.cancel()
            connection.interrupt()
            await connection.ping()
    finally:
        await connection.close()
