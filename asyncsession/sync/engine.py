"""The blocking Engine, Connection and Transaction.

How this works:

* Each object wraps its async counterpart (``engine.async_engine``,
  ``connection.async_connection``, ``transaction.async_transaction``) and a
  runner (see ``_runner``). Methods that may do IO are one ``runner.call`` of
  the async method of the same name; the others read the async object
  directly. Nothing is copied: pool, dialect, listeners and transaction state
  are the async objects'.
* As in SQLAlchemy's blocking API, ``engine.connect()`` checks a connection
  out at once and ``connection.begin()`` / ``begin_nested()`` begin at once;
  all three are also context managers.
* An Engine is shared by threads; a Connection belongs to one thread at a time
  (the async connection's conflict detector reports overlapping use).
* ``await async_connection.run_sync(fn)`` hands ``fn`` a Connection over that
  very AsyncConnection (the engine layer calls :func:`_run_in_worker`,
  installed below), whose runner hops back to the awaiting loop.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import anyio.to_thread

from asyncsession.engine import base as _engine_base
from asyncsession.engine.base import (
    AsyncConnection,
    AsyncEngine,
    AsyncTransaction,
    AsyncTwoPhaseTransaction,
)
from asyncsession.engine.create import create_async_engine
from asyncsession.engine.events import Dispatcher
from asyncsession.engine.pool import Pool
from asyncsession.engine.result import AsyncResult, AsyncScalarResult, Result, ScalarResult
from asyncsession.engine.url import URL
from asyncsession.sql.compiler import Dialect
from asyncsession.sql.elements import ClauseElement
from asyncsession.sync._runner import FACADE, ConnectionWorkerRunner, Runner
from asyncsession.sync.result import StreamedResult, StreamedScalarResult

__all__ = ["Connection", "Engine", "Transaction", "create_engine"]

_T = TypeVar("_T")


def create_engine(
    url: str | URL,
    *,
    echo: bool | str = False,
    echo_pool: bool | str = False,
    pool_size: int = 5,
    max_overflow: int = 10,
    pool_timeout: float = 30.0,
    pool_recycle: float = -1,
    pool_pre_ping: bool = False,
    poolclass: type[Pool] | None = None,
    isolation_level: str | None = None,
    connect_args: Mapping[str, Any] | None = None,
    execution_options: Mapping[str, Any] | None = None,
    json_serializer: Callable[[Any], str] | None = None,
    json_deserializer: Callable[[str], Any] | None = None,
) -> Engine:
    """A blocking :class:`Engine` for ``url``; the options are ``create_async_engine``'s.

    No IO happens here. The engine's connections live on the facade's
    background event loop and are closed when the interpreter exits (or by
    ``engine.dispose()``).
    """
    return Engine(
        create_async_engine(
            url,
            echo=echo,
            echo_pool=echo_pool,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout,
            pool_recycle=pool_recycle,
            pool_pre_ping=pool_pre_ping,
            poolclass=poolclass,
            isolation_level=isolation_level,
            connect_args=connect_args,
            execution_options=execution_options,
            json_serializer=json_serializer,
            json_deserializer=json_deserializer,
        )
    )


class Engine:
    """A blocking engine over an :class:`~asyncsession.AsyncEngine`; share it across threads.

    Build one with :func:`create_engine`. ``Engine(async_engine)`` wraps an
    existing AsyncEngine, which from then on must serve the facade only: its
    pooled connections belong to the facade's event loop.
    """

    __slots__ = ("__weakref__", "async_engine")

    def __init__(self, async_engine: AsyncEngine) -> None:
        self.async_engine = async_engine
        FACADE.engines.add(async_engine)
        _ENGINES[id(async_engine)] = self

    @classmethod
    def _unregistered(cls, async_engine: AsyncEngine) -> Engine:
        """A wrapper for ``run_sync()``'s Connection: the engine serves its own loop,
        so the facade must not adopt (or dispose of) it."""
        engine = cls.__new__(cls)
        engine.async_engine = async_engine
        return engine

    @classmethod
    def _for(cls, async_engine: AsyncEngine) -> Engine:
        """The Engine wrapping ``async_engine`` (the existing one while it lives)."""
        engine = _ENGINES.get(id(async_engine))
        if engine is None or engine.async_engine is not async_engine:
            engine = cls(async_engine)
        return engine

    @property
    def url(self) -> URL:
        return self.async_engine.url

    @property
    def pool(self) -> Pool:
        return self.async_engine.pool

    @property
    def dialect(self) -> Dialect:
        return self.async_engine.dialect

    @property
    def name(self) -> str:
        """The dialect name: ``postgresql`` or ``sqlite``."""
        return self.async_engine.name

    @property
    def driver(self) -> str:
        """The driver library: ``asyncpg`` or ``aiosqlite``."""
        return self.async_engine.driver

    @property
    def echo(self) -> bool | str:
        return self.async_engine.echo

    def connect(self) -> Connection:
        """Check a connection out of the pool now; ``with engine.connect() as conn:``."""
        async_connection = self.async_engine.connect()
        FACADE.call(async_connection.start)
        return Connection(self, async_connection)

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        """``with engine.begin() as conn:`` a connection in a transaction that commits
        when the block succeeds and rolls back when it raises."""
        with self.connect() as connection, connection.begin():
            yield connection

    def execute(
        self,
        statement: ClauseElement,
        parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    ) -> Result[Any]:
        """Run one statement in a transaction of its own (committed) and return its Result.

        This makes an Engine a *bind* for ``metadata.create_all(engine)`` and
        ``drop_all(engine)``, which run statement by statement. For several
        statements in one transaction use ``with engine.begin() as conn:``.
        """
        with self.begin() as connection:
            return connection.execute(statement, parameters)

    def dispose(self) -> None:
        """Close the pool's idle connections (see ``AsyncEngine.dispose``)."""
        FACADE.call(self.async_engine.dispose)

    def execution_options(self, **options: Any) -> Engine:
        """A copy whose connections start with ``options`` added (see AsyncEngine)."""
        return Engine(self.async_engine.execution_options(**options))

    def get_execution_options(self) -> Mapping[str, Any]:
        return self.async_engine.get_execution_options()

    def _dispatcher_for(self, identifier: str) -> Dispatcher:
        return self.async_engine._dispatcher_for(identifier)

    def __repr__(self) -> str:
        return f"Engine({self.async_engine.url})"


_ENGINES: weakref.WeakValueDictionary[int, Engine] = weakref.WeakValueDictionary()


class Connection:
    """A blocking connection over a started :class:`~asyncsession.AsyncConnection`.

    Get one with ``engine.connect()`` (or ``session.connection()``); the end
    of a ``with`` block rolls back what was not committed and returns the
    connection to the pool.
    """

    __slots__ = ("_runner", "async_connection", "engine")

    def __init__(
        self, engine: Engine, async_connection: AsyncConnection, _runner: Runner = FACADE
    ) -> None:
        self.engine = engine
        self.async_connection = async_connection
        self._runner = _runner

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def dialect(self) -> Dialect:
        return self.async_connection.dialect

    @property
    def closed(self) -> bool:
        return self.async_connection.closed

    @property
    def invalidated(self) -> bool:
        return self.async_connection.invalidated

    def close(self) -> None:
        """Roll back what is uncommitted and give the connection back to the pool."""
        self._runner.call(self.async_connection.close)

    def invalidate(self) -> None:
        """Terminate the driver connection now (see ``AsyncConnection.invalidate``)."""
        self._runner.call(self.async_connection.invalidate)

    def execute(
        self,
        statement: ClauseElement,
        parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        *,
        execution_options: Mapping[str, Any] | None = None,
    ) -> Result[Any]:
        """Run ``statement``; see ``AsyncConnection.execute``. The Result is buffered."""
        return self._runner.call(
            self.async_connection.execute,
            statement,
            parameters,
            execution_options=execution_options,
        )

    def exec_driver_sql(
        self,
        statement: str,
        parameters: Sequence[Any] | Mapping[str, Any] | Sequence[Sequence[Any]] | None = None,
        *,
        execution_options: Mapping[str, Any] | None = None,
    ) -> Result[Any]:
        """Run SQL text in the driver's parameter style; see ``AsyncConnection``."""
        return self._runner.call(
            self.async_connection.exec_driver_sql,
            statement,
            parameters,
            execution_options=execution_options,
        )

    def scalar(
        self,
        statement: ClauseElement,
        parameters: Mapping[str, Any] | None = None,
        *,
        execution_options: Mapping[str, Any] | None = None,
    ) -> Any:
        """The first column of the first row (None when there is no row)."""
        return self.execute(statement, parameters, execution_options=execution_options).scalar()

    def scalars(
        self,
        statement: ClauseElement,
        parameters: Mapping[str, Any] | None = None,
        *,
        execution_options: Mapping[str, Any] | None = None,
    ) -> ScalarResult[Any]:
        """A ScalarResult over the first column of every row."""
        return self.execute(statement, parameters, execution_options=execution_options).scalars()

    def stream(
        self,
        statement: ClauseElement,
        parameters: Mapping[str, Any] | None = None,
        *,
        execution_options: Mapping[str, Any] | None = None,
    ) -> StreamedResult[Any]:
        """A result read from a server-side cursor a chunk at a time (see
        ``AsyncConnection.stream``); ``with conn.stream(stmt) as result:`` closes it."""
        startable = self.async_connection.stream(
            statement, parameters, execution_options=execution_options
        )
        result: AsyncResult[Any] = self._runner.call(_started, startable)
        return StreamedResult._over(result, self._runner)

    def stream_scalars(
        self,
        statement: ClauseElement,
        parameters: Mapping[str, Any] | None = None,
        *,
        execution_options: Mapping[str, Any] | None = None,
    ) -> StreamedScalarResult[Any]:
        """As :meth:`stream`, yielding the first column of each row."""
        startable = self.async_connection.stream_scalars(
            statement, parameters, execution_options=execution_options
        )
        result: AsyncScalarResult[Any] = self._runner.call(_started, startable)
        return StreamedScalarResult._over(result, self._runner)

    def copy_records(
        self,
        table_name: str,
        columns: Sequence[str],
        records: Sequence[Sequence[Any]],
        *,
        schema: str | None = None,
    ) -> int:
        """Bulk-insert ``records``; see ``AsyncConnection.copy_records``."""
        return self._runner.call(
            self.async_connection.copy_records, table_name, columns, records, schema=schema
        )

    def execution_options(self, **options: Any) -> Connection:
        """Set options on this connection and return it (see AsyncConnection)."""
        self._runner.call(self.async_connection.execution_options, **options)
        return self

    def get_execution_options(self) -> Mapping[str, Any]:
        return self.async_connection.get_execution_options()

    def begin(self) -> Transaction:
        """Begin a transaction now; ``with conn.begin():`` commits at the block's end."""
        transaction = self.async_connection.begin()
        self._runner.call(transaction.start)
        return Transaction(self, transaction)

    def begin_nested(self) -> Transaction:
        """Begin a savepoint now (sends ``SAVEPOINT``); also a context manager."""
        transaction = self.async_connection.begin_nested()
        self._runner.call(transaction.start)
        return Transaction(self, transaction)

    def begin_twophase(self, xid: str | None = None) -> TwoPhaseTransaction:
        """Begin a two-phase transaction now (PostgreSQL); also a context manager."""
        transaction = self.async_connection.begin_twophase(xid)
        self._runner.call(transaction.start)
        return TwoPhaseTransaction(self, transaction)

    def recover_twophase(self) -> list[str]:
        """The ids of the transactions prepared in this database and not yet resolved."""
        return self._runner.call(self.async_connection.recover_twophase)

    def commit_prepared(self, xid: str, recover: bool = False) -> None:
        """``COMMIT PREPARED`` a prepared transaction (see AsyncConnection)."""
        self._runner.call(self.async_connection.commit_prepared, xid, recover)

    def rollback_prepared(self, xid: str, recover: bool = False) -> None:
        """``ROLLBACK PREPARED`` a prepared transaction (see AsyncConnection)."""
        self._runner.call(self.async_connection.rollback_prepared, xid, recover)

    def commit(self) -> None:
        """Commit the transaction in progress, if any (savepoints included)."""
        self._runner.call(self.async_connection.commit)

    def rollback(self) -> None:
        """Roll back the transaction in progress, if any (savepoints included)."""
        self._runner.call(self.async_connection.rollback)

    def in_transaction(self) -> bool:
        return self.async_connection.in_transaction()

    def in_nested_transaction(self) -> bool:
        return self.async_connection.in_nested_transaction()

    def get_transaction(self) -> Transaction | None:
        transaction = self.async_connection.get_transaction()
        return None if transaction is None else Transaction(self, transaction)

    def get_nested_transaction(self) -> Transaction | None:
        transaction = self.async_connection.get_nested_transaction()
        return None if transaction is None else Transaction(self, transaction)

    def __repr__(self) -> str:
        connection = self.async_connection
        state = "closed" if connection.closed else "open"
        return f"<Connection {self.engine.url} {state}>"


async def _started(startable: Awaitable[_T]) -> _T:
    return await startable


class Transaction:
    """A transaction or savepoint of a :class:`Connection`, already begun.

    Leaving a ``with`` block commits when it succeeded and rolls back when it
    raised, exactly as ``async with`` does for the AsyncTransaction.
    """

    __slots__ = ("async_transaction", "connection")

    def __init__(self, connection: Connection, async_transaction: AsyncTransaction) -> None:
        self.connection = connection
        self.async_transaction = async_transaction

    @property
    def is_active(self) -> bool:
        return self.async_transaction.is_active

    @property
    def nested(self) -> bool:
        return self.async_transaction.nested

    def commit(self) -> None:
        """Commit (``COMMIT``, or ``RELEASE SAVEPOINT`` when nested)."""
        self.connection._runner.call(self.async_transaction.commit)

    def rollback(self) -> None:
        """Roll back (``ROLLBACK``, or ``ROLLBACK TO SAVEPOINT``); nothing if it ended."""
        self.connection._runner.call(self.async_transaction.rollback)

    def close(self) -> None:
        """Roll back unless already ended."""
        self.connection._runner.call(self.async_transaction.close)

    def __enter__(self) -> Transaction:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.connection._runner.call(
            self.async_transaction.__aexit__, exc_type, exc_value, traceback
        )

    def __repr__(self) -> str:
        transaction = self.async_transaction
        kind = f"savepoint {transaction.savepoint}" if transaction.nested else "transaction"
        return f"<Transaction {kind} {transaction.state.value}>"


async def _run_in_worker(
    async_connection: AsyncConnection,
    fn: Callable[..., _T],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> _T:
    """``AsyncConnection.run_sync``: ``fn(blocking_connection, *args, **kwargs)`` in a
    worker thread; the connection is the caller's (already marked busy by run_sync)."""
    runner = ConnectionWorkerRunner(async_connection)
    view = Connection(Engine._unregistered(async_connection.engine), async_connection, runner)

    def work() -> _T:
        runner.thread_id = threading.get_ident()
        return fn(view, *args, **kwargs)

    try:
        return await anyio.to_thread.run_sync(work)
    finally:
        runner.thread_id = None


_engine_base._run_sync_hook = _run_in_worker


class TwoPhaseTransaction(Transaction):
    """A two-phase transaction of a :class:`Connection` (see AsyncTwoPhaseTransaction)."""

    __slots__ = ()

    async_transaction: AsyncTwoPhaseTransaction

    @property
    def xid(self) -> str:
        return self.async_transaction.xid

    def prepare(self) -> None:
        """``PREPARE TRANSACTION``; then commit() or rollback() finish it."""
        self.connection._runner.call(self.async_transaction.prepare)
