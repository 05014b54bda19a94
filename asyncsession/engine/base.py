"""AsyncEngine, AsyncConnection and AsyncTransaction.

How it works:

- An :class:`AsyncEngine` is a URL, a configured driver, a pool and a dialect.
  Creating one does no IO and binds it to no event loop.
- An :class:`AsyncConnection` holds one pool slot from ``start()`` (``async
  with engine.connect()`` or ``await engine.connect()``) to ``close()``. Every
  public coroutine is one *operation*: it marks the connection busy while it
  runs, so a second task using the connection meanwhile gets
  :class:`~asyncsession.exc.ConcurrentUseError` at once and the first operation
  is unharmed. A connection also refuses to be used from an event loop other
  than the one that started it (:class:`~asyncsession.exc.WrongEventLoopError`).
- Transactions are plain SQL sent through the driver, one implementation for
  every backend (the dialect writes the two-phase commit statements). As in
  SQLAlchemy 2.x, the first statement *autobegins* a logical transaction;
  ``BEGIN`` itself is sent lazily, just before the first statement of each
  transaction (``begin()`` sends nothing), and never in ``AUTOCOMMIT`` mode.
  Savepoints (``begin_nested()``) are ``SAVEPOINT sp_<n>`` / ``RELEASE
  SAVEPOINT`` / ``ROLLBACK TO SAVEPOINT``, strictly innermost first.

Transaction states (:class:`TransactionState`) and what may start from them:

==============  ===========================  =================
method          valid from                   moves to
==============  ===========================  =================
prepare()       ACTIVE                       PREPARED
commit()        ACTIVE, PREPARED             COMMITTED
rollback()      ACTIVE, DEACTIVE, PREPARED   ROLLED_BACK
==============  ===========================  =================

``rollback()`` of an ended transaction does nothing; ``commit()`` of one raises.
DEACTIVE means the server already rolled the transaction back (an operation
was cancelled mid-flight, or the connection was invalidated): every statement
raises :class:`~asyncsession.exc.PendingRollbackError` until ``rollback()``,
which sends nothing, and after which the connection works again (with a fresh
pooled connection if the old one was invalidated).

Two-phase commit (``begin_twophase()``, PostgreSQL only; other databases raise
:class:`~asyncsession.exc.NotSupportedError` before anything is sent):
``prepare()`` sends ``BEGIN`` if nothing was sent yet, then ``PREPARE
TRANSACTION``. The server then holds the work under the transaction's ``xid``,
apart from the connection, which runs no statements until ``commit()``
(``COMMIT PREPARED``) or ``rollback()`` (``ROLLBACK PREPARED``); without
``prepare()`` they are a plain ``COMMIT``/``ROLLBACK``. ``close()`` rolls a
prepared transaction back. The second phase runs shielded from cancellation
(bounded by ``CLEANUP_TIMEOUT``): once every participant is prepared, the
outcome is decided and must not be left half done. A cancelled or failed
``PREPARE`` means "not prepared": the transaction is DEACTIVE, and if the
server did prepare it before the cancellation struck, a shielded cleanup rolls
it back, so no prepared transaction outlives a prepare that did not return.

Faults and cancellation:

- A driver error is translated (``Driver.translate_error``) and raised ``from``
  the original. One that means the connection is unusable *invalidates* it:
  the driver connection is terminated, its pool slot freed at once, and the
  error carries ``connection_invalidated=True``.
- A cancellation (or any BaseException) that interrupts a driver call leaves
  the connection in an unknown state. Before it propagates, a cleanup shielded
  from cancellation and bounded by :data:`~asyncsession.engine.pool.CLEANUP_TIMEOUT`
  interrupts the statement (asyncpg cancels it on the server) and rolls the
  connection back; if that fails or times out, the connection is terminated
  instead. The transaction becomes DEACTIVE. Cancellation is never swallowed.
- ``close()`` always frees the pool slot exactly once; the pool rolls back
  (or terminates) a connection with a transaction still open.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import secrets
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
import attrs

from asyncsession import exc
from asyncsession.engine import pool as pool_module
from asyncsession.engine.drivers.base import Driver, DriverConnection, DriverCursor, DriverResult
from asyncsession.engine.events import Dispatcher, ExceptionContext
from asyncsession.engine.log import ENGINE_LOGGER
from asyncsession.engine.pool import POOL_EVENTS, Pool, PoolEntry, run_cleanup
from asyncsession.engine.result import AsyncResult, AsyncScalarResult, Result, ResultMetaData
from asyncsession.engine.url import URL
from asyncsession.sql.compiler import Compiled, Dialect
from asyncsession.sql.elements import ClauseElement

__all__ = [
    "ENGINE_EVENTS",
    "AsyncConnection",
    "AsyncEngine",
    "AsyncTransaction",
    "AsyncTwoPhaseTransaction",
    "TransactionState",
]

_T = TypeVar("_T")

ENGINE_EVENTS = frozenset({"before_execute", "after_execute", "handle_error"})
_EXECUTION_OPTIONS = frozenset({"isolation_level", "yield_per", "logging_token"})
_EMPTY: Mapping[str, Any] = MappingProxyType({})
_LOGGED_PARAMETER_SETS = 10


class TransactionState(enum.Enum):
    """Where an :class:`AsyncTransaction` is in its life."""

    INACTIVE = "not begun"
    ACTIVE = "active"
    PREPARED = "prepared"
    DEACTIVE = "deactive"
    COMMITTED = "committed"
    ROLLED_BACK = "rolled back"
    CLOSED = "closed"


_ENDED = frozenset(
    {TransactionState.COMMITTED, TransactionState.ROLLED_BACK, TransactionState.CLOSED}
)

# method -> (states it may start from, state it moves to); see the module docstring.
_TRANSITIONS: dict[str, tuple[frozenset[TransactionState], TransactionState]] = {
    "prepare": (frozenset({TransactionState.ACTIVE}), TransactionState.PREPARED),
    "commit": (
        frozenset({TransactionState.ACTIVE, TransactionState.PREPARED}),
        TransactionState.COMMITTED,
    ),
    "rollback": (
        frozenset({TransactionState.ACTIVE, TransactionState.DEACTIVE, TransactionState.PREPARED}),
        TransactionState.ROLLED_BACK,
    ),
}


@attrs.define(eq=False, slots=True)
class AsyncEngine:
    """A factory of connections to one database, with a pool.

    Build one with :func:`~asyncsession.create_async_engine`. ``execution_options()``
    returns a copy that shares the pool and dialect and starts its connections
    with more options. Events: ``before_execute``, ``after_execute``,
    ``handle_error`` and the pool's ``connect``, ``checkout``, ``checkin``.
    """

    url: URL
    pool: Pool
    dialect: Dialect
    echo: bool | str
    _driver: Driver
    _execution_options: Mapping[str, Any] = _EMPTY
    dispatch: Dispatcher = attrs.field(factory=lambda: Dispatcher(ENGINE_EVENTS))

    @property
    def name(self) -> str:
        """The dialect name: ``postgresql`` or ``sqlite``."""
        return self.dialect.name

    @property
    def driver(self) -> str:
        """The driver library: ``asyncpg`` or ``aiosqlite``."""
        return self._driver.driver_name

    def connect(self) -> AsyncConnection:
        """A connection, checked out by ``async with`` or ``await``; no IO until then."""
        return AsyncConnection(self, self._execution_options)

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """``async with engine.begin() as conn:`` a connection in a transaction that
        commits when the block succeeds and rolls back when it raises."""
        async with self.connect() as connection, connection.begin():
            yield connection

    async def dispose(self) -> None:
        """Close the pool's idle connections; checked-out ones close when released.

        The engine stays usable (new connections are opened on demand). Call
        it before the event loop that used the engine ends.
        """
        await self.pool.dispose()

    def execution_options(self, **options: Any) -> AsyncEngine:
        """A copy of this engine whose connections start with ``options`` added.

        The copy shares the pool, the dialect and the listeners of this engine
        (listeners added to the copy stay on the copy). Options:
        ``isolation_level`` (``"AUTOCOMMIT"``, ``"SERIALIZABLE"``, ...),
        ``yield_per`` (rows per chunk when streaming), ``logging_token``.
        """
        _check_options(self._driver, options)
        return attrs.evolve(
            self,
            execution_options=MappingProxyType({**self._execution_options, **options}),
            dispatch=Dispatcher(ENGINE_EVENTS, parent=self.dispatch),
        )

    def get_execution_options(self) -> Mapping[str, Any]:
        """The options connections from this engine start with."""
        return self._execution_options

    def _dispatcher_for(self, identifier: str) -> Dispatcher:
        if identifier in POOL_EVENTS:
            return self.pool.dispatch
        return self.dispatch

    def _result_metadata(self, compiled: Compiled) -> ResultMetaData:
        # A pure function of the compiled statement, so it is kept on it.
        memo = compiled.engine_memo
        metadata: ResultMetaData | None = memo[0]
        if metadata is None:
            metadata = memo[0] = ResultMetaData(compiled.result_keys, compiled.result_processors)
        return metadata

    def __repr__(self) -> str:
        return f"AsyncEngine({self.url})"


def _check_options(driver: Driver, options: Mapping[str, Any]) -> None:
    unknown = set(options) - _EXECUTION_OPTIONS
    if unknown:
        raise exc.ArgumentError(
            f"Unknown execution option(s) {sorted(unknown)}; known: {sorted(_EXECUTION_OPTIONS)}"
        )
    level = options.get("isolation_level")
    if level is not None and level not in driver.isolation_levels:
        raise exc.ArgumentError(
            f"Invalid isolation_level {level!r} for {driver.dialect_name}; valid levels: "
            f"{sorted(driver.isolation_levels)}"
        )


@attrs.define(eq=False, slots=True)
class AsyncTransaction:
    """A transaction (``nested=False``) or a savepoint (``nested=True``) on a connection.

    Start it with ``async with conn.begin():`` / ``await conn.begin()`` (or the
    ``begin_nested()`` forms). Leaving the ``async with`` block commits when
    the block succeeded and rolls back when it raised.
    """

    connection: AsyncConnection
    nested: bool
    state: TransactionState = TransactionState.INACTIVE
    savepoint: str | None = None
    reason: str | None = None

    @property
    def is_active(self) -> bool:
        """True while the transaction may be committed: ACTIVE, or PREPARED (two-phase)."""
        return self.state is TransactionState.ACTIVE or self.state is TransactionState.PREPARED

    async def start(self) -> AsyncTransaction:
        """Begin: registers the transaction (root) or sends ``SAVEPOINT`` (nested)."""
        if self.state is not TransactionState.INACTIVE:
            raise exc.InvalidRequestError(
                f"This transaction was already begun ({self.state.value})"
            )
        if self.nested:
            await self.connection._begin_savepoint(self)
        else:
            await self.connection._begin_root(self)
        return self

    def _start_root_now(self) -> AsyncTransaction:
        """:meth:`start` without its checkpoint, for a caller that has just had one
        (a session beginning on a connection it just checked out)."""
        if self.state is not TransactionState.INACTIVE or self.nested:
            raise exc.InvalidRequestError("_start_root_now() starts a new root transaction")
        self.connection._register_root(self)
        return self

    def __await__(self) -> Generator[Any, None, AsyncTransaction]:
        return self.start().__await__()

    async def __aenter__(self) -> AsyncTransaction:
        if self.state is TransactionState.INACTIVE:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.state in _ENDED:
            return
        if exc_type is not None:
            await self.rollback()
        elif self.state is TransactionState.DEACTIVE:
            reason = self.reason
            await self.rollback()
            raise exc.PendingRollbackError(
                f"The transaction of this 'async with' block was rolled back on the server "
                f"({reason}); nothing in it was committed."
            )
        else:
            await self.commit()

    async def commit(self) -> None:
        """Commit (``COMMIT``, or ``RELEASE SAVEPOINT`` when nested).

        Raises PendingRollbackError when DEACTIVE, InvalidRequestError when the
        transaction already ended or (nested) is not the innermost savepoint.
        """
        self._check_can("commit")
        await self.connection._end_transaction(self, commit=True)

    async def rollback(self) -> None:
        """Roll back (``ROLLBACK``, or ``ROLLBACK TO SAVEPOINT`` when nested).

        Does nothing when the transaction already ended; raises
        InvalidRequestError for a savepoint that is not the innermost.
        """
        if self.state in _ENDED or self.state is TransactionState.INACTIVE:
            await anyio.lowlevel.checkpoint_if_cancelled()
            return
        self._check_can("rollback")
        await self.connection._end_transaction(self, commit=False)

    async def close(self) -> None:
        """Roll back unless already ended (as SQLAlchemy's ``Transaction.close()``)."""
        await self.rollback()

    def _check_can(self, method: str) -> None:
        if self.state in _TRANSITIONS[method][0]:
            return
        what = "savepoint" if self.nested else "transaction"
        if self.state is TransactionState.DEACTIVE:
            raise exc.PendingRollbackError(
                f"Can't {method}: this {what} was rolled back on the server ({self.reason}). "
                "Call rollback() first; then the connection can be used again."
            )
        raise exc.InvalidRequestError(f"Can't {method} this {what}: it is {self.state.value}.")

    def __repr__(self) -> str:
        kind = f"savepoint {self.savepoint}" if self.nested else "transaction"
        return f"<AsyncTransaction {kind} {self.state.value}>"


@attrs.define(eq=False, slots=True)
class AsyncTwoPhaseTransaction(AsyncTransaction):
    """A two-phase transaction, from :meth:`AsyncConnection.begin_twophase` (PostgreSQL).

    An :class:`AsyncTransaction` with an ``xid`` and ``prepare()``. After
    ``prepare()`` the server keeps the work under ``xid`` whatever happens to
    the connection; ``commit()`` then sends ``COMMIT PREPARED`` and
    ``rollback()`` ``ROLLBACK PREPARED``. Without ``prepare()``, ``commit()``
    commits in one phase.
    """

    xid: str = attrs.field(kw_only=True)

    @property
    def is_prepared(self) -> bool:
        """True between a successful ``prepare()`` and the end of the transaction."""
        return self.state is TransactionState.PREPARED

    async def prepare(self) -> None:
        """``PREPARE TRANSACTION`` (after ``BEGIN`` if no statement ran yet).

        Valid when ACTIVE. Savepoints still open become part of the prepared
        transaction. When it fails (a driver error, or a cancellation) the
        transaction is DEACTIVE and nothing stays prepared: call rollback().
        """
        self._check_can("prepare")
        await self.connection._prepare_twophase(self)

    def __repr__(self) -> str:
        return f"<AsyncTwoPhaseTransaction {self.xid!r} {self.state.value}>"


@attrs.define(eq=False, slots=True)
class _StreamSource:
    """Feeds an :class:`AsyncResult` from a driver cursor, as operations of the connection."""

    connection: AsyncConnection
    cursor: DriverCursor
    depth: int
    dead: str | None = None
    open: bool = True
    exhausted: bool = False

    async def fetch_chunk(self, size: int) -> Sequence[Any]:
        connection = self.connection
        if self.dead is not None:
            raise exc.ResourceClosedError(f"This stream can't be read any more: {self.dead}")
        if self.exhausted:
            # The last chunk came back short: the cursor has nothing more.
            await anyio.lowlevel.checkpoint_if_cancelled()
            return []
        connection._enter("fetch from a stream")
        try:
            entry = connection._entry
            assert entry is not None, "a live stream implies a checked-out connection"
            try:
                rows = await connection._call(
                    entry, lambda _: self.cursor.fetch(size), "FETCH (stream)", None
                )
            except BaseException:
                self._kill("a fetch failed or was cancelled")
                raise
        finally:
            connection._busy = None
        self.exhausted = len(rows) < size
        return rows

    async def close(self) -> None:
        if not self.open:
            return
        self.open = False
        connection = self.connection
        connection._streams.discard(self)
        if self.dead is not None:
            return
        self.dead = "it was closed"
        entry = connection._entry
        if entry is None or connection._closed:
            return
        connection._enter("close a stream")
        try:
            with anyio.move_on_after(pool_module.CLEANUP_TIMEOUT):
                await connection._close_cursor(entry, self.cursor)
        finally:
            connection._busy = None

    def _kill(self, reason: str) -> None:
        """Mark dead without IO (its transaction ended, or its connection is gone)."""
        if self.dead is None:
            self.dead = reason
        if self.open:
            self.open = False
            self.connection._streams.discard(self)


class _Startable:
    """``await x`` or ``async with x as result:`` for a coroutine returning a closable result."""

    __slots__ = ("_coroutine_fn", "_result")

    def __init__(self, coroutine_fn: Callable[[], Awaitable[Any]]) -> None:
        self._coroutine_fn = coroutine_fn
        self._result: Any = None

    def __await__(self) -> Generator[Any, None, Any]:
        return self._coroutine_fn().__await__()

    async def __aenter__(self) -> Any:
        self._result = await self._coroutine_fn()
        return self._result

    async def __aexit__(self, *exc_info: object) -> None:
        await self._result.close()


@attrs.define(eq=False, slots=True)
class AsyncConnection:
    """One checked-out database connection; see the module docstring for the rules.

    Use ``async with engine.connect() as conn:``; the block's end rolls back
    whatever was not committed and returns the connection to the pool.
    """

    engine: AsyncEngine
    _options: Mapping[str, Any]
    _entry: PoolEntry | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _started: bool = False
    _closed: bool = False
    _busy: str | None = None
    _transaction: AsyncTransaction | None = None
    _savepoints: list[AsyncTransaction] = attrs.Factory(list)
    _begun: bool = False
    _savepoint_counter: int = 0
    _streams: set[_StreamSource] = attrs.Factory(set)

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> AsyncConnection:
        """Check a connection out of the pool (waits up to ``pool_timeout``)."""
        if self._started:
            raise exc.InvalidRequestError("This AsyncConnection was already started")
        self._loop = asyncio.get_running_loop()
        self._started = True
        self._entry = await self.engine.pool.acquire()
        return self

    def __await__(self) -> Generator[Any, None, AsyncConnection]:
        return self.start().__await__()

    async def __aenter__(self) -> AsyncConnection:
        if not self._started:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closed

    @property
    def invalidated(self) -> bool:
        """True while the connection has no usable driver connection after an invalidation."""
        return self._started and not self._closed and self._entry is None

    @property
    def dialect(self) -> Dialect:
        """The engine's SQL dialect (what compiles this connection's statements)."""
        return self.engine.dialect

    async def close(self) -> None:
        """Roll back what is uncommitted and give the connection back to the pool.

        Idempotent; runs shielded from cancellation (a cancellation that
        arrived meanwhile is raised afterwards).
        """
        if self._closed:
            return
        if not self._started:
            self._closed = True
            return
        self._enter("close")
        self._closed = True
        entry, self._entry = self._entry, None
        pierced: BaseException | None = None
        try:
            transaction = self._transaction
            if isinstance(transaction, AsyncTwoPhaseTransaction) and transaction.is_prepared:
                # The server would keep it (and its locks) after the connection is gone.
                done, pierced = await self._discard_prepared(transaction.xid, entry)
                if not done and entry is not None:
                    entry.uncertain = True
            if self._streams:
                for stream in list(self._streams):
                    stream._kill("its connection was closed")
                if entry is not None:
                    entry.uncertain = True  # have the pool close the driver cursors
            if self._transaction is not None and self._begun:
                self._log("ROLLBACK (connection closed)")
            self._end_all(TransactionState.CLOSED, None)
            if entry is not None:
                await self.engine.pool.release(entry)
        finally:
            self._busy = None
        if pierced is not None:
            raise pierced
        await anyio.lowlevel.checkpoint_if_cancelled()

    def _close_nowait(self) -> bool:
        """Close now when that needs no IO (the usual case after a commit); else False.

        False leaves the connection as it was, for :meth:`close` to finish. The
        session closes its connections this way first, so a commit's release
        costs no cancel scope.
        """
        if self._closed or not self._started:
            self._closed = True
            return True
        transaction = self._transaction
        entry = self._entry
        if (
            self._busy is not None
            or self._streams
            or (self._begun and transaction is not None)
            or (isinstance(transaction, AsyncTwoPhaseTransaction) and transaction.is_prepared)
            or (entry is not None and not self.engine.pool.release_nowait(entry))
        ):
            return False
        self._closed = True
        self._entry = None
        self._end_all(TransactionState.CLOSED, None)
        return True

    async def invalidate(self) -> None:
        """Terminate the driver connection now and free its pool slot.

        An open transaction becomes DEACTIVE (``rollback()`` it); the next
        operation after that checks out a new connection.
        """
        self._enter("invalidate")
        try:
            await anyio.lowlevel.checkpoint_if_cancelled()
            self._invalidate("invalidate() was called")
        finally:
            self._busy = None

    def __del__(self) -> None:
        entry = getattr(self, "_entry", None)
        if entry is None or self._closed:
            return
        warnings.warn(
            f"An AsyncConnection to {self.engine.url} was garbage collected without being "
            "closed; its driver connection was terminated. Use 'async with engine.connect() "
            "as conn:' or 'await conn.close()'.",
            ResourceWarning,
            stacklevel=1,
        )
        self._entry = None
        pool = self.engine.pool
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not loop and loop is not None and not loop.is_closed():
            # Collected in another thread: let the connection's own loop do it.
            loop.call_soon_threadsafe(pool.discard, entry)
        else:
            pool.discard(entry)

    # -- operations guard -------------------------------------------------------

    def _enter(self, operation: str) -> None:
        if self._busy is not None:
            raise exc.ConcurrentUseError(
                f"Can't {operation}: this AsyncConnection is busy with {self._busy} "
                "(in another task). A connection serves one task at a time; give each "
                "task its own connection."
            )
        if self._loop is not asyncio.get_running_loop():
            if not self._started:
                raise exc.InvalidRequestError(
                    f"Can't {operation}: this AsyncConnection was not started; use "
                    "'async with engine.connect() as conn:' or 'conn = await engine.connect()'"
                )
            raise exc.WrongEventLoopError(
                f"Can't {operation}: this AsyncConnection belongs to another event loop than "
                "the running one. Open connections in the loop that uses them."
            )
        if self._closed:
            raise exc.ResourceClosedError(
                f"Can't {operation}: this AsyncConnection is closed. Open a new one with "
                "engine.connect()."
            )
        self._busy = operation

    # -- execution ------------------------------------------------------------

    async def execute(
        self,
        statement: ClauseElement,
        parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        *,
        execution_options: Mapping[str, Any] | None = None,
    ) -> Result[Any]:
        """Run ``statement`` and return its buffered :class:`Result`.

        ``parameters`` is a dict, or a list of dicts to run the statement once
        per dict (executemany). Missing or unknown parameter names raise
        ArgumentError before anything is sent; driver errors are translated
        (see the module docstring). Autobegins a transaction.
        """
        self._enter("execute")
        try:
            return await self._execute(statement, parameters, execution_options)
        finally:
            self._busy = None

    async def _execute(
        self,
        statement: ClauseElement,
        parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
        execution_options: Mapping[str, Any] | None,
    ) -> Result[Any]:
        options = self._merge_options(execution_options)
        dispatch = self.engine.dispatch
        if dispatch.has("before_execute"):
            await dispatch.fire("before_execute", self, statement, parameters, options)
        compiled, args, many = self._compile(statement, parameters)
        dresult = await self._run(compiled.sql, args, many, compiled.driver_returns_rows, options)
        if compiled.result_keys:
            result: Result[Any] = Result(
                self.engine._result_metadata(compiled), dresult.rows, rowcount=dresult.rowcount
            )
        else:
            result = _plain_result(dresult)
        if dispatch.has("after_execute"):
            await dispatch.fire("after_execute", self, statement, parameters, options, result)
        return result

    async def exec_driver_sql(
        self,
        statement: str,
        parameters: Sequence[Any] | Mapping[str, Any] | Sequence[Sequence[Any]] | None = None,
        *,
        execution_options: Mapping[str, Any] | None = None,
    ) -> Result[Any]:
        """Run SQL text in the driver's own parameter style and return a buffered Result.

        Parameters: a tuple of positional values (``?`` on SQLite, ``$1`` on
        PostgreSQL), a dict for SQLite's ``:name`` style, or a list of tuples
        (or dicts) to run the statement once per item. Rows have no result
        processing. Autobegins a transaction.
        """
        self._enter("exec_driver_sql")
        try:
            options = self._merge_options(execution_options)
            dispatch = self.engine.dispatch
            if dispatch.has("before_execute"):
                await dispatch.fire("before_execute", self, statement, parameters, options)
            args, many = self._driver_parameters(parameters)
            result = _plain_result(await self._run(statement, args, many, None, options))
            if dispatch.has("after_execute"):
                await dispatch.fire("after_execute", self, statement, parameters, options, result)
            return result
        finally:
            self._busy = None

    async def scalar(
        self,
        statement: ClauseElement,
        parameters: Mapping[str, Any] | None = None,
        *,
        execution_options: Mapping[str, Any] | None = None,
    ) -> Any:
        """The first column of the first row (None when there is no row)."""
        result = await self.execute(statement, parameters, execution_options=execution_options)
        return result.scalar()

    async def scalars(
        self,
        statement: ClauseElement,
        parameters: Mapping[str, Any] | None = None,
        *,
        execution_options: Mapping[str, Any] | None = None,
    ) -> Any:
        """A ScalarResult over the first column of every row."""
        result = await self.execute(statement, parameters, execution_options=execution_options)
        return result.scalars()

    def stream(
        self,
        statement: ClauseElement,
        parameters: Mapping[str, Any] | None = None,
        *,
        execution_options: Mapping[str, Any] | None = None,
    ) -> _Startable:
        """``await conn.stream(stmt)`` or ``async with conn.stream(stmt) as result:``.

        Returns an :class:`AsyncResult` reading the rows in chunks: a
        server-side cursor on PostgreSQL (declared in the transaction, which is
        autobegun; in AUTOCOMMIT mode the rows are fetched at once), chunked
        fetches on SQLite. The stream must be read before its transaction ends;
        committing or rolling back closes it.
        """
        return _Startable(
            functools.partial(self._stream_operation, statement, parameters, execution_options)
        )

    def stream_scalars(
        self,
        statement: ClauseElement,
        parameters: Mapping[str, Any] | None = None,
        *,
        execution_options: Mapping[str, Any] | None = None,
    ) -> _Startable:
        """As :meth:`stream`, yielding the first column of each row (an AsyncScalarResult)."""

        async def scalars() -> AsyncScalarResult[Any]:
            result = await self._stream_operation(statement, parameters, execution_options)
            return result.scalars()

        return _Startable(scalars)

    async def _stream_operation(
        self,
        statement: ClauseElement,
        parameters: Mapping[str, Any] | None,
        execution_options: Mapping[str, Any] | None,
    ) -> AsyncResult[Any]:
        self._enter("stream")
        try:
            options = self._merge_options(execution_options)
            dispatch = self.engine.dispatch
            if dispatch.has("before_execute"):
                await dispatch.fire("before_execute", self, statement, parameters, options)
            compiled, args, many = self._compile(statement, parameters)
            if many:
                raise exc.ArgumentError(
                    "stream() runs one statement; pass one dict of parameters, not a list"
                )
            entry = await self._ready(options)
            if self._autocommit(options) and self.engine.name == "postgresql":
                # A PostgreSQL cursor lives in a transaction; AUTOCOMMIT has none.
                dresult = await self._run(compiled.sql, args, False, True, options)
                source: Any = _BufferedSource(dresult.rows)
                keys = dresult.keys
            else:
                self._log_statement(compiled.sql, args, False)
                describe = not compiled.result_keys
                keys, cursor = await self._call(
                    entry,
                    lambda conn: conn.open_cursor(compiled.sql, args, describe),
                    compiled.sql,
                    args,
                )
                source = _StreamSource(self, cursor, len(self._savepoints))
                self._streams.add(source)
            if compiled.result_keys:
                metadata = self.engine._result_metadata(compiled)
            else:
                metadata = ResultMetaData(keys, (None,) * len(keys))
            result: AsyncResult[Any] = AsyncResult(metadata, source)
            if "yield_per" in options:
                result.yield_per(options["yield_per"])
            if dispatch.has("after_execute"):
                await dispatch.fire("after_execute", self, statement, parameters, options, result)
            return result
        finally:
            self._busy = None

    async def copy_records(
        self,
        table_name: str,
        columns: Sequence[str],
        records: Sequence[Sequence[Any]],
        *,
        schema: str | None = None,
    ) -> int:
        """Bulk-insert ``records`` (tuples in ``columns`` order) into a table; returns the count.

        PostgreSQL uses ``COPY ... FROM STDIN`` in binary format (asyncpg's
        ``copy_records_to_table``): values must be of the column types exactly,
        and no defaults or RETURNING apply beyond the columns given. SQLite runs
        one executemany INSERT. Autobegins a transaction.
        """
        self._enter("copy_records")
        try:
            options = self._merge_options(None)
            entry = await self._ready(options)
            description = f"COPY {table_name} ({', '.join(columns)}) [{len(records)} records]"
            self._log(description)
            return await self._call(
                entry,
                lambda conn: conn.copy_records(table_name, columns, records, schema),
                description,
                None,
            )
        finally:
            self._busy = None

    async def get_raw_connection(self) -> Any:
        """The driver's own connection object (asyncpg's or aiosqlite's).

        Anything done on it bypasses this connection's transaction tracking;
        it stays owned by this AsyncConnection and is returned to the pool with it.
        """
        self._enter("get_raw_connection")
        try:
            await anyio.lowlevel.checkpoint_if_cancelled()
            return (await self._checked_out()).connection.raw
        finally:
            self._busy = None

    async def run_sync(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run ``fn(sync_connection, *args, **kwargs)`` in a worker thread; return its result.

        ``sync_connection`` is a blocking :class:`asyncsession.sync.Connection`
        over this very connection when ``asyncsession.sync`` is imported (its
        hook, see ``_run_sync_hook``), else the minimal
        :class:`~asyncsession.engine.sync_view.SyncConnectionView`. Either way
        its calls run on this event loop through ``anyio.from_thread``. The
        connection is busy meanwhile; other tasks using it get ConcurrentUseError.
        """
        self._enter("run_sync")
        try:
            hook = _run_sync_hook
            if hook is not None:
                result: _T = await hook(self, fn, args, kwargs)
                return result
            from asyncsession.engine.sync_view import SyncConnectionView

            view = SyncConnectionView(self)
            return await anyio.to_thread.run_sync(functools.partial(fn, view, *args, **kwargs))
        finally:
            self._busy = None

    async def _as_view(self, fn: Callable[..., Awaitable[_T]], *args: Any, **kwargs: Any) -> _T:
        """Run an operation on behalf of the run_sync() that holds this connection."""
        assert self._busy == "run_sync", "only the run_sync() worker may call this"
        self._busy = None
        try:
            return await fn(*args, **kwargs)
        finally:
            self._busy = "run_sync"

    # -- options ----------------------------------------------------------------

    async def execution_options(self, **options: Any) -> AsyncConnection:
        """Set options on this connection (returns it): ``isolation_level`` applies
        from the next transaction and can't change while one is open."""
        _check_options(self.engine._driver, options)
        self._enter("execution_options")
        try:
            await anyio.lowlevel.checkpoint_if_cancelled()
            if (
                "isolation_level" in options
                and self._transaction is not None
                and options["isolation_level"] != self._options.get("isolation_level")
            ):
                raise exc.InvalidRequestError(
                    "Can't change isolation_level while a transaction is in progress; "
                    "commit() or rollback() first"
                )
            self._options = MappingProxyType({**self._options, **options})
            return self
        finally:
            self._busy = None

    def get_execution_options(self) -> Mapping[str, Any]:
        return self._options

    def _merge_options(self, extra: Mapping[str, Any] | None) -> Mapping[str, Any]:
        if not extra:
            return self._options
        if "isolation_level" in extra:
            raise exc.ArgumentError(
                "isolation_level can't be set per statement; use "
                "await conn.execution_options(isolation_level=...) before the transaction"
            )
        _check_options(self.engine._driver, extra)
        return {**self._options, **extra}

    def _autocommit(self, options: Mapping[str, Any]) -> bool:
        return options.get("isolation_level") == "AUTOCOMMIT"

    # -- transactions ---------------------------------------------------------

    def begin(self) -> AsyncTransaction:
        """The transaction to start with ``async with`` or ``await`` (nothing is sent yet).

        Raises InvalidRequestError when a transaction is already in progress
        (perhaps autobegun by an earlier statement).
        """
        return AsyncTransaction(self, nested=False)

    def begin_nested(self) -> AsyncTransaction:
        """A savepoint to start with ``async with`` or ``await`` (sends ``SAVEPOINT``).

        Autobegins the enclosing transaction if there is none.
        """
        return AsyncTransaction(self, nested=True)

    def begin_twophase(self, xid: str | None = None) -> AsyncTwoPhaseTransaction:
        """A two-phase transaction to start with ``async with`` or ``await`` (nothing is sent yet).

        ``xid`` identifies it on the server once prepared (default: a random
        id). Raises NotSupportedError at once when the database has no
        two-phase commit (SQLite), ArgumentError for an ``xid`` it can't take.
        """
        if xid is None:
            xid = f"_asyncsession_{secrets.token_hex(16)}"
        self.dialect.two_phase_sql("PREPARE", xid)  # raises before anything changes
        return AsyncTwoPhaseTransaction(self, nested=False, xid=xid)

    async def recover_twophase(self) -> list[str]:
        """The ids of the transactions prepared in this database and not yet resolved.

        Resolve each with :meth:`commit_prepared` or :meth:`rollback_prepared`,
        from any connection. Begins no transaction.
        """
        sql = self.dialect.recover_two_phase_sql()
        self._enter("recover_twophase")
        try:
            entry = await self._checked_out()
            self._log(sql)
            result = await self._call(entry, lambda conn: conn.execute(sql, (), True), sql, None)
            return [row[0] for row in result.rows]
        finally:
            self._busy = None

    async def commit_prepared(self, xid: str, recover: bool = False) -> None:
        """``COMMIT PREPARED`` a transaction prepared by any connection (see recover_twophase()).

        The statement can't run inside a transaction: with one in progress,
        ``recover=True`` rolls it back first, else InvalidRequestError is
        raised. Runs shielded from cancellation, as the second phase does.
        """
        await self._resolve_prepared("COMMIT", xid, recover)

    async def rollback_prepared(self, xid: str, recover: bool = False) -> None:
        """``ROLLBACK PREPARED`` a transaction prepared by any connection; as commit_prepared()."""
        await self._resolve_prepared("ROLLBACK", xid, recover)

    async def commit(self) -> None:
        """Commit the transaction in progress, if any (savepoints included)."""
        transaction = self._transaction
        if transaction is None:
            await anyio.lowlevel.checkpoint_if_cancelled()
            return
        await transaction.commit()

    async def rollback(self) -> None:
        """Roll back the transaction in progress, if any (savepoints included)."""
        transaction = self._transaction
        if transaction is None:
            await anyio.lowlevel.checkpoint_if_cancelled()
            return
        await transaction.rollback()

    def in_transaction(self) -> bool:
        """True while a transaction (begun or autobegun) is in progress."""
        return self._transaction is not None

    def in_nested_transaction(self) -> bool:
        """True while a savepoint is in progress."""
        return bool(self._savepoints)

    def get_transaction(self) -> AsyncTransaction | None:
        """The transaction in progress, or None."""
        return self._transaction

    def get_nested_transaction(self) -> AsyncTransaction | None:
        """The innermost savepoint in progress, or None."""
        return self._savepoints[-1] if self._savepoints else None

    async def _begin_root(self, transaction: AsyncTransaction) -> None:
        await anyio.lowlevel.checkpoint_if_cancelled()
        self._register_root(transaction)

    def _register_root(self, transaction: AsyncTransaction) -> None:
        """Make ``transaction`` this connection's (nothing is sent: BEGIN waits for a statement)."""
        self._enter("begin")
        try:
            if self._transaction is not None:
                current = self._transaction
                raise exc.InvalidRequestError(
                    f"Can't begin: a transaction is already in progress on this connection "
                    f"({current.state.value}; it may have been autobegun by an earlier "
                    "statement). commit() or rollback() it first, or use begin_nested() for "
                    "a savepoint."
                )
            transaction.state = TransactionState.ACTIVE
            self._transaction = transaction
        finally:
            self._busy = None

    async def _begin_savepoint(self, savepoint: AsyncTransaction) -> None:
        self._enter("begin_nested")
        try:
            options = self._options
            if self._autocommit(options):
                raise exc.InvalidRequestError(
                    "Can't begin a savepoint: this connection is in AUTOCOMMIT mode, "
                    "so there is no transaction to hold it"
                )
            entry = await self._ready(options)
            self._savepoint_counter += 1
            name = f"sp_{self._savepoint_counter}"
            await self._control(entry, f"SAVEPOINT {name}")
            savepoint.savepoint = name
            savepoint.state = TransactionState.ACTIVE
            self._savepoints.append(savepoint)
        finally:
            self._busy = None

    async def _prepare_twophase(self, transaction: AsyncTwoPhaseTransaction) -> None:
        self._enter("prepare")
        try:
            if transaction is not self._transaction:
                raise exc.InvalidRequestError(
                    f"{transaction!r} is not this connection's transaction"
                )
            options = self._options
            if self._autocommit(options):
                raise exc.InvalidRequestError(
                    "Can't prepare: this connection is in AUTOCOMMIT mode, so there is no "
                    "transaction to prepare"
                )
            sql = self.dialect.two_phase_sql("PREPARE", transaction.xid)
            # BEGIN first if nothing was sent: the xid must name a real prepared transaction.
            entry = await self._ready(options)
            await self._close_streams(0)
            # The PREPARE itself is not interrupted (within CLEANUP_TIMEOUT): cut short,
            # it may still complete on the server after a check for it has run. A
            # cancellation that arrives meanwhile is handled once it returned.
            try:
                with (
                    anyio.CancelScope(shield=True),
                    anyio.move_on_after(pool_module.CLEANUP_TIMEOUT) as deadline,
                ):
                    await self._control(entry, sql)
            except exc.DBAPIError as error:
                # PostgreSQL turns a failed PREPARE TRANSACTION into a ROLLBACK.
                self._deactivate(f"PREPARE TRANSACTION failed: {error.orig}")
                raise
            except BaseException:
                await self._forget_interrupted_prepare(transaction)
                raise
            if deadline.cancelled_caught:
                await self._forget_interrupted_prepare(transaction)
                raise exc.OperationalError(
                    f"{sql} did not finish within {pool_module.CLEANUP_TIMEOUT} seconds", sql
                )
            for savepoint in self._savepoints:
                savepoint.state = TransactionState.COMMITTED
            self._savepoints.clear()
            self._begun = False  # the server holds the work apart from this connection now
            transaction.state = TransactionState.PREPARED
            try:
                await anyio.lowlevel.checkpoint_if_cancelled()
            except BaseException:
                # Cancelled while PREPARE ran: nothing may stay prepared (see prepare()).
                done, _ = await self._discard_prepared(transaction.xid, self._entry)
                transaction.state = TransactionState.DEACTIVE
                transaction.reason = "prepare() was cancelled; the prepared work was rolled back"
                if not done:
                    self._invalidate("the cleanup of a cancelled PREPARE TRANSACTION failed")
                    transaction.reason = (
                        f"prepare() was cancelled, and transaction {transaction.xid!r} may "
                        "still be prepared on the server: resolve it with recover_twophase() "
                        "and rollback_prepared()"
                    )
                raise
        finally:
            self._busy = None

    async def _forget_interrupted_prepare(self, transaction: AsyncTwoPhaseTransaction) -> None:
        """A cancelled PREPARE may have finished on the server: roll back what it prepared.

        ``_call`` has already reset (or invalidated) the connection and made the
        transaction DEACTIVE; a prepare that did not return must not leave a
        prepared transaction (and its locks) behind.
        """
        entry = self._entry
        done, _ = await self._discard_prepared(transaction.xid, entry)
        if not done:
            if entry is not None:
                self._invalidate("the cleanup of an interrupted PREPARE TRANSACTION failed")
            transaction.reason = (
                f"PREPARE TRANSACTION was interrupted, and transaction {transaction.xid!r} "
                "may still be prepared on the server: resolve it with recover_twophase() and "
                "rollback_prepared()"
            )

    async def _discard_prepared(
        self, xid: str, entry: PoolEntry | None
    ) -> tuple[bool, BaseException | None]:
        """``ROLLBACK PREPARED`` ``xid`` if the server holds it; shielded and bounded.

        Runs on ``entry`` (which must be outside a transaction) or, when it is
        None, on a connection of its own from the pool: a prepared transaction
        outlives the connection that prepared it. Returns ``run_cleanup``'s
        ``(completed, pierced)``.
        """
        dialect = self.engine.dialect
        pool = self.engine.pool

        async def discard() -> None:
            target = entry if entry is not None else await pool.acquire()
            try:
                connection = target.connection
                listed = await connection.execute(dialect.recover_two_phase_sql(), (), True)
                if any(row[0] == xid for row in listed.rows):
                    sql = dialect.two_phase_sql("ROLLBACK", xid)
                    self._log(sql)
                    await connection.execute(sql, (), False)
            finally:
                if entry is None:
                    await pool.release(target)

        return await run_cleanup(discard)

    async def _resolve_prepared(self, command: str, xid: str, recover: bool) -> None:
        method = f"{command.lower()}_prepared"
        sql = self.dialect.two_phase_sql(command, xid)
        self._enter(method)
        try:
            transaction = self._transaction
            if transaction is not None:
                if not recover or transaction.state is TransactionState.PREPARED:
                    raise exc.InvalidRequestError(
                        f"Can't {method}(): {command} PREPARED can't run inside a transaction, "
                        f"and this connection's transaction is {transaction.state.value}. "
                        "commit() or rollback() it first"
                        + ("" if recover else ", or pass recover=True to roll it back")
                    )
                await self._end_root(transaction, commit=False)
            await self._second_phase(sql)
        finally:
            self._busy = None

    async def _second_phase(self, sql: str) -> None:
        """COMMIT/ROLLBACK PREPARED, shielded from cancellation, bounded by CLEANUP_TIMEOUT.

        A cancellation that arrives meanwhile is raised by the caller's next
        checkpoint. A statement that runs out of time raises OperationalError:
        the transaction may still be prepared on the server.
        """
        with (
            anyio.CancelScope(shield=True),
            anyio.move_on_after(pool_module.CLEANUP_TIMEOUT) as deadline,
        ):
            entry = await self._checked_out()
            await self._control(entry, sql)
        if deadline.cancelled_caught:
            raise exc.OperationalError(
                f"{sql} did not finish within {pool_module.CLEANUP_TIMEOUT} seconds", sql
            )

    async def _end_transaction(self, transaction: AsyncTransaction, *, commit: bool) -> None:
        method = "commit" if commit else "rollback"
        self._enter(method)
        try:
            if transaction.nested:
                await self._end_savepoint(transaction, commit)
            else:
                await self._end_root(transaction, commit)
        finally:
            self._busy = None

    async def _end_savepoint(self, savepoint: AsyncTransaction, commit: bool) -> None:
        if self._savepoints[-1] is not savepoint:
            inner = self._savepoints[self._savepoints.index(savepoint) + 1 :]
            raise exc.InvalidRequestError(
                f"Can't {'commit' if commit else 'roll back'} savepoint {savepoint.savepoint}: "
                f"savepoint(s) {', '.join(str(s.savepoint) for s in inner)} begun inside it "
                "are still active; end them first (innermost first)."
            )
        if savepoint.state is TransactionState.DEACTIVE:
            await anyio.lowlevel.checkpoint_if_cancelled()
            self._savepoints.pop()
            savepoint.state = TransactionState.ROLLED_BACK
            return
        entry = await self._checked_out()
        if commit:
            await self._control(entry, f"RELEASE SAVEPOINT {savepoint.savepoint}")
        else:
            await self._close_streams(len(self._savepoints))
            await self._control(entry, f"ROLLBACK TO SAVEPOINT {savepoint.savepoint}")
        # A failure above leaves the savepoint in place: retry, or end the transaction.
        self._savepoints.pop()
        savepoint.state = _TRANSITIONS["commit" if commit else "rollback"][1]

    async def _end_root(self, transaction: AsyncTransaction, commit: bool) -> None:
        if transaction is not self._transaction:
            raise exc.InvalidRequestError(f"{transaction!r} is not this connection's transaction")
        if transaction.state is TransactionState.DEACTIVE:
            await anyio.lowlevel.checkpoint_if_cancelled()
            self._end_all(TransactionState.ROLLED_BACK, None)
            return
        if isinstance(transaction, AsyncTwoPhaseTransaction) and transaction.is_prepared:
            await self._end_prepared(transaction, commit)
            return
        outcome = TransactionState.CLOSED
        try:
            if self._begun:
                entry = await self._checked_out()
                await self._close_streams(0)
                if commit:
                    try:
                        await self._control(entry, "COMMIT")
                    except exc.DBAPIError:
                        await self._discard_failed_commit()
                        raise
                else:
                    try:
                        await self._control(entry, "ROLLBACK")
                    except exc.DBAPIError:
                        # The server state is unknown after a failed ROLLBACK: never reuse it.
                        self._invalidate("ROLLBACK failed")
                        raise
            else:
                await anyio.lowlevel.checkpoint_if_cancelled()
                self._log("COMMIT (nothing sent)" if commit else "ROLLBACK (nothing sent)")
            outcome = _TRANSITIONS["commit" if commit else "rollback"][1]
        finally:
            self._end_all(outcome, None)

    async def _end_prepared(self, transaction: AsyncTwoPhaseTransaction, commit: bool) -> None:
        """The second phase. It ends the transaction whatever happens: after a
        failure the server may still hold it, and resolving it is the job of
        whoever decides (``recover_twophase()``), never of a later close()."""
        sql = self.dialect.two_phase_sql("COMMIT" if commit else "ROLLBACK", transaction.xid)
        outcome = TransactionState.CLOSED
        try:
            await self._second_phase(sql)
            outcome = _TRANSITIONS["commit" if commit else "rollback"][1]
        except BaseException as error:
            left = (
                f"Transaction {transaction.xid!r} may still be prepared on the server, and it "
                "is no longer this connection's: resolve it with commit_prepared() or "
                "rollback_prepared() (recover_twophase() lists the prepared ones)."
            )
            if isinstance(error, exc.DBAPIError):
                error.add_note(left)
            else:
                # A native Task.cancel() pierces the shield; there is no error to note it on.
                ENGINE_LOGGER.warning("%s was interrupted. %s", sql, left)
            raise
        finally:
            self._end_all(outcome, None)
        await anyio.lowlevel.checkpoint_if_cancelled()

    async def _discard_failed_commit(self) -> None:
        """A COMMIT failed; PostgreSQL has rolled back, SQLite may still be in the transaction."""
        entry = self._entry
        if entry is None or not entry.connection.in_transaction():
            return
        clean, pierced = await run_cleanup(entry.connection.reset)
        if not clean:
            self._invalidate("COMMIT failed and the transaction could not be rolled back")
        if pierced is not None:
            raise pierced

    def _end_all(self, state: TransactionState, reason: str | None) -> None:
        """Forget the transaction and its savepoints, leaving them in ``state``."""
        for savepoint in self._savepoints:
            savepoint.state = state
        self._savepoints.clear()
        if self._transaction is not None:
            self._transaction.state = state
            self._transaction.reason = reason
            self._transaction = None
        self._begun = False
        for stream in list(self._streams):
            stream._kill("its transaction ended")

    def _deactivate(self, reason: str) -> None:
        """The server rolled back (or lost) the transaction: statements must wait for rollback()."""
        if self._begun and self._transaction is not None:
            for transaction in [self._transaction, *self._savepoints]:
                if transaction.state is TransactionState.ACTIVE:
                    transaction.state = TransactionState.DEACTIVE
                    transaction.reason = reason
        self._begun = False
        for stream in list(self._streams):
            stream._kill(reason)

    async def _close_streams(self, depth: int) -> None:
        """Close the driver cursors of streams opened at savepoint depth >= ``depth``."""
        for stream in [s for s in self._streams if s.depth >= depth]:
            stream._kill("its transaction or savepoint ended")
            entry = self._entry
            if entry is not None:
                try:
                    await self._close_cursor(entry, stream.cursor)
                except exc.DBAPIError:
                    if self._entry is None:
                        raise
                    # An aborted transaction refuses CLOSE; ending it closes the cursor anyway.

    async def _close_cursor(self, entry: PoolEntry, cursor: DriverCursor) -> None:
        await self._call(entry, lambda _: cursor.close(), "CLOSE (stream)", None)

    # -- the driver boundary ----------------------------------------------------

    async def _checked_out(self) -> PoolEntry:
        """The pool entry, checking a new one out if the last was invalidated."""
        entry = self._entry
        if entry is None:
            transaction = self._transaction
            if transaction is not None and transaction.state is TransactionState.DEACTIVE:
                raise exc.PendingRollbackError(
                    f"This connection's transaction was rolled back on the server "
                    f"({transaction.reason}). Call rollback() first."
                )
            entry = self._entry = await self.engine.pool.acquire()
        return entry

    async def _ready(self, options: Mapping[str, Any]) -> PoolEntry:
        """The entry to run a statement on, with the transaction begun (autobegin)."""
        transaction = self._transaction
        if transaction is None:
            transaction = self._transaction = AsyncTransaction(
                self, nested=False, state=TransactionState.ACTIVE
            )
        elif transaction.state is TransactionState.PREPARED:
            raise exc.InvalidRequestError(
                f"Can't run statements: this connection's two-phase transaction is prepared "
                f"({transaction!r}); commit() or rollback() it first"
            )
        elif transaction.state is TransactionState.DEACTIVE:
            raise exc.PendingRollbackError(
                f"Can't run statements: this connection's transaction was rolled back on the "
                f"server ({transaction.reason}). Call rollback() first; then the connection "
                "can be used again."
            )
        entry = await self._checked_out()
        if not self._begun and not self._autocommit(options):
            await self._control(
                entry, self.engine._driver.begin_sql(options.get("isolation_level"))
            )
            self._begun = True
        return entry

    async def _control(self, entry: PoolEntry, sql: str) -> None:
        """Send a transaction-control statement."""
        self._log(sql)
        await self._call(entry, lambda conn: conn.execute(sql, (), False), sql, None)

    async def _run(
        self,
        sql: str,
        args: Any,
        many: bool,
        returns_rows: bool | None,
        options: Mapping[str, Any],
    ) -> DriverResult:
        entry = self._entry
        transaction = self._transaction
        if (
            entry is None
            or not self._begun
            or transaction is None
            or transaction.state is not TransactionState.ACTIVE
        ):
            entry = await self._ready(options)
        self._log_statement(sql, args, many)
        if many:
            return await self._call(
                entry, lambda conn: conn.executemany(sql, args, returns_rows), sql, args
            )
        return await self._call(
            entry, lambda conn: conn.execute(sql, args, returns_rows), sql, args
        )

    async def _call(
        self,
        entry: PoolEntry,
        operation: Callable[[DriverConnection], Awaitable[_T]],
        sql: str,
        params: Any,
    ) -> _T:
        """Await one driver call; translate its errors, clean up after interruptions."""
        try:
            return await operation(entry.connection)
        except Exception as error:
            raise await self._translate(entry, error, sql, params) from error
        except BaseException:
            await self._recover(entry)
            raise

    async def _translate(
        self, entry: PoolEntry, error: Exception, sql: str, params: Any
    ) -> exc.DBAPIError:
        info = self.engine._driver.translate_error(error, entry.connection)
        wrapped = info.wrap(error, sql, params, invalidated=info.is_disconnect)
        try:
            dispatch = self.engine.dispatch
            if dispatch.has("handle_error"):
                context = ExceptionContext(self, sql, params, error, wrapped, info.is_disconnect)
                await dispatch.fire("handle_error", context)
        finally:
            if info.is_disconnect:
                self._invalidate(f"the connection was lost: {error}")
        return wrapped

    async def _recover(self, entry: PoolEntry) -> None:
        """After a driver call was interrupted: roll the connection back or terminate it.

        The caller re-raises the interruption; a second cancellation that
        arrived during the reset (``run_cleanup``'s ``pierced``) is one more of
        the same, so it is not raised separately.
        """
        entry.uncertain = True
        connection = entry.connection
        connection.interrupt()
        recovered = False
        try:
            recovered, _ = await run_cleanup(connection.reset)
        finally:
            if recovered:
                entry.uncertain = False
                self._deactivate("an operation was cancelled while it ran")
            else:
                self._invalidate("an operation was cancelled and the connection could not be reset")

    def _invalidate(self, reason: str) -> None:
        entry, self._entry = self._entry, None
        self._deactivate(reason)
        if entry is not None:
            self.engine.pool.discard(entry)

    # -- helpers ----------------------------------------------------------------

    def _compile(
        self,
        statement: ClauseElement,
        parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
    ) -> tuple[Compiled, Any, bool]:
        if not isinstance(statement, ClauseElement):
            raise exc.ArgumentError(
                f"execute() takes a statement object (select(), insert(), text(), ...), not "
                f"{type(statement).__name__}; run SQL strings with exec_driver_sql() or wrap "
                "them in text()"
            )
        if parameters is None or type(parameters) is dict or isinstance(parameters, Mapping):
            many = False
            param_sets: Sequence[Mapping[str, Any]] = () if parameters is None else (parameters,)
        else:
            param_sets = parameters
            many = len(param_sets) > 1
        first = param_sets[0] if param_sets else None
        compiled, extracted = self.engine.dialect.compile(statement, list(first) if first else None)
        if many:
            args: Any = [compiled.construct_params(extracted, p) for p in param_sets]
        else:
            args = compiled.construct_params(extracted, first)
        return compiled, args, many

    def _driver_parameters(self, parameters: Any) -> tuple[Any, bool]:
        if parameters is None:
            return (), False
        if isinstance(parameters, Mapping):
            if self.engine.name == "postgresql":
                raise exc.ArgumentError(
                    "asyncpg takes positional parameters ($1, $2, ...): pass a tuple, not a dict"
                )
            return parameters, False
        if (
            isinstance(parameters, list)
            and parameters
            and all(isinstance(p, (tuple, list, Mapping)) for p in parameters)
        ):
            return parameters, True
        return parameters, False

    def _log(self, message: str) -> None:
        if ENGINE_LOGGER.isEnabledFor(logging.INFO):
            token = self._options.get("logging_token")
            if token:
                ENGINE_LOGGER.info("[%s] %s", token, message)
            else:
                ENGINE_LOGGER.info("%s", message)

    def _log_statement(self, sql: str, args: Any, many: bool) -> None:
        if not ENGINE_LOGGER.isEnabledFor(logging.INFO):
            return
        self._log(sql)
        if many:
            shown = list(args[:_LOGGED_PARAMETER_SETS])
            more = len(args) - len(shown)
            suffix = f" ... displaying {len(shown)} of {len(args)} parameter sets" if more else ""
            self._log(f"[parameters: {shown!r}{suffix}]")
        else:
            self._log(f"[parameters: {tuple(args) if isinstance(args, list) else args!r}]")

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("open" if self._started else "not started")
        return f"<AsyncConnection {self.engine.url} {state}>"


def _plain_result(dresult: DriverResult) -> Result[Any]:
    """A Result for rows without processing (raw SQL), or for no rows."""
    if not dresult.keys:
        return Result(None, (), rowcount=dresult.rowcount)
    keys = dresult.keys
    return Result(
        ResultMetaData(keys, (None,) * len(keys)), dresult.rows, rowcount=dresult.rowcount
    )


class _BufferedSource:
    """An AsyncResult source over rows already fetched."""

    __slots__ = ("_rows",)

    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    async def fetch_chunk(self, size: int) -> Sequence[Any]:
        await anyio.lowlevel.checkpoint_if_cancelled()
        chunk, self._rows = self._rows[:size], self._rows[size:]
        return chunk

    async def close(self) -> None:
        self._rows = []


# Set by asyncsession.sync (the layer above may not be imported from here):
# ``await hook(connection, fn, args, kwargs)`` runs ``AsyncConnection.run_sync``
# with the facade's blocking Connection as ``fn``'s first argument.
_run_sync_hook: Callable[..., Awaitable[Any]] | None = None
