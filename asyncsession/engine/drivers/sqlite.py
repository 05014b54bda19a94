"""SQLite through aiosqlite.

aiosqlite runs one worker thread per connection and a queue of functions for
it. Each operation here is ONE plain function queued on that thread
(``aiosqlite.Connection._execute``): execute, read the description, fetch
every row and read the row count happen in a single trip, and so does a whole
executemany.

Rules:

- The sqlite3 connection is opened with ``isolation_level=None`` so the sqlite3
  module never begins or commits on its own; the engine sends ``BEGIN`` (or
  ``BEGIN IMMEDIATE`` / ``BEGIN EXCLUSIVE``, per ``begin_mode``) itself.
- ``PRAGMA foreign_keys=ON`` runs in the same trip as the connect, unless
  ``foreign_keys=False``. ``timeout`` is SQLite's busy timeout in seconds.
- The thread is not bound to an event loop, so these connections may be
  reused by a later loop (``loop_bound = False``). It is a daemon thread: an
  engine that was never disposed does not hang the interpreter at exit.
- A queued function cannot be taken back. Each call carries a token; when the
  awaiting task is cancelled, :meth:`SQLiteConnection.interrupt` marks the
  last call's token. A marked call that has not started yet is skipped, and
  one that is running is stopped by a progress handler that checks the token
  every few hundred SQLite VM steps (``sqlite3.Connection.interrupt`` alone
  would miss a statement that starts just after it). The next queued call
  (the engine's cleanup) then runs on the same thread.

Options (``connect_args`` or URL query): ``timeout`` (float, 5.0),
``begin_mode`` (DEFERRED, IMMEDIATE or EXCLUSIVE), ``foreign_keys`` (true),
``cached_statements`` (int), ``uri`` (true: the database is a ``file:`` URI and
the URL's other query keys are URI parameters).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import aiosqlite

from asyncsession import exc
from asyncsession.engine.drivers.base import DriverResult, ErrorInfo, parse_bool
from asyncsession.engine.url import URL

__all__ = ["SQLiteConnection", "SQLiteCursor", "SQLiteDriver"]

_T = TypeVar("_T")

_OPTIONS = frozenset({"timeout", "begin_mode", "foreign_keys", "cached_statements", "uri"})
_BEGIN_MODES = frozenset({"DEFERRED", "IMMEDIATE", "EXCLUSIVE"})
_AIOSQLITE_CLOSED = frozenset({"Connection closed", "no active connection"})
# SQLite VM instructions between two looks at the interrupt token.
_PROGRESS_STEPS = 500

# sqlite3's exception classes, most specific first (they all derive from sqlite3.Error).
_ERROR_TABLE: tuple[tuple[type[BaseException], type[exc.DBAPIError]], ...] = (
    (sqlite3.IntegrityError, exc.IntegrityError),
    (sqlite3.ProgrammingError, exc.ProgrammingError),
    (sqlite3.OperationalError, exc.OperationalError),
    (sqlite3.DataError, exc.DataError),
    (sqlite3.InternalError, exc.InternalError),
    (sqlite3.NotSupportedError, exc.NotSupportedError),
    (sqlite3.DatabaseError, exc.DatabaseError),
    (sqlite3.InterfaceError, exc.InterfaceError),
    (sqlite3.Error, exc.DBAPIError),
)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class SQLiteCursor:
    """A statement read in chunks with ``fetchmany`` (one trip per chunk)."""

    __slots__ = ("_connection", "_cursor")

    def __init__(self, connection: SQLiteConnection, cursor: sqlite3.Cursor) -> None:
        self._connection = connection
        self._cursor = cursor

    async def fetch(self, size: int) -> list[Any]:
        return await self._connection._call(self._cursor.fetchmany, size)

    async def close(self) -> None:
        self._connection._cursors.discard(self._cursor)
        await self._connection._call(self._cursor.close)


class _Token:
    """Marks one queued call as interrupted."""

    __slots__ = ("interrupted",)

    def __init__(self) -> None:
        self.interrupted = False


class _Calls:
    """The latest call queued (set on the event loop) and the one running (on the thread)."""

    __slots__ = ("active", "last")

    def __init__(self) -> None:
        self.last = _Token()
        self.active: _Token | None = None

    def progress(self) -> int:
        """SQLite's progress handler: non-zero aborts the running statement."""
        active = self.active
        return 1 if active is not None and active.interrupted else 0


class SQLiteConnection:
    """One aiosqlite connection and its sqlite3 connection (used only on its thread)."""

    __slots__ = ("_calls", "_closed", "_cursors", "_sqlite", "raw")

    loop_bound = False

    def __init__(
        self, raw: aiosqlite.Connection, sqlite: sqlite3.Connection, calls: _Calls
    ) -> None:
        self.raw = raw
        self._sqlite = sqlite
        self._calls = calls
        self._cursors: set[sqlite3.Cursor] = set()
        self._closed = False

    async def _call(self, fn: Callable[..., _T], *args: Any) -> _T:
        calls = self._calls
        token = calls.last = _Token()

        def run() -> list[_T]:
            if token.interrupted:
                raise sqlite3.OperationalError("interrupted before it started")
            calls.active = token
            try:
                return [fn(*args)]
            finally:
                calls.active = None

        # aiosqlite's queue-a-function-on-my-thread primitive (untyped upstream).
        run_on_thread: Any = self.raw._execute
        # The result comes in a box that is emptied here: aiosqlite's worker thread
        # keeps its last result referenced until the next call, and with a box
        # that is an empty list, not every row of the last query.
        box: list[_T] = await run_on_thread(run)
        return box.pop()

    async def execute(
        self, sql: str, params: Sequence[Any], returns_rows: bool | None
    ) -> DriverResult:
        return await self._call(_execute, self._sqlite, sql, params)

    async def executemany(
        self, sql: str, params: Sequence[Sequence[Any]], returns_rows: bool | None
    ) -> DriverResult:
        return await self._call(_executemany, self._sqlite, sql, params, returns_rows)

    async def open_cursor(
        self, sql: str, params: Sequence[Any], describe: bool
    ) -> tuple[tuple[str, ...], SQLiteCursor]:
        keys, cursor = await self._call(_open_cursor, self._sqlite, sql, params)
        self._cursors.add(cursor)
        return keys, SQLiteCursor(self, cursor)

    async def copy_records(
        self,
        table_name: str,
        columns: Sequence[str],
        records: Sequence[Sequence[Any]],
        schema: str | None,
    ) -> int:
        table = _quote(table_name) if schema is None else f"{_quote(schema)}.{_quote(table_name)}"
        sql = (
            f"INSERT INTO {table} ({', '.join(_quote(c) for c in columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})"
        )
        result = await self._call(_executemany, self._sqlite, sql, records, False)
        return result.rowcount

    async def ping(self) -> None:
        await self._call(_execute, self._sqlite, "SELECT 1", ())

    async def reset(self) -> None:
        cursors, self._cursors = self._cursors, set()
        await self._call(_reset, self._sqlite, cursors)

    def in_transaction(self) -> bool:
        return not self._closed and self._sqlite.in_transaction

    def interrupt(self) -> None:
        self._calls.last.interrupted = True

    def is_closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        self._closed = True
        await self.raw.close()

    def terminate(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._calls.last.interrupted = True
        cursors, self._cursors = self._cursors, set()
        _stop_without_waiting(self.raw, cursors)


def _stop_without_waiting(raw: aiosqlite.Connection, cursors: set[sqlite3.Cursor]) -> None:
    """Queue "roll back, close the sqlite3 connection, end the thread" behind what is queued.

    ``aiosqlite.Connection.stop()`` would close and stop, but it also creates
    a future on the running loop that the thread completes later; if the loop
    is closed by then, the thread dies with an exception. So queue the work
    with no future (aiosqlite 0.22 internals: ``_tx``, ``_running``,
    ``_connection``). The explicit rollback releases the database locks at
    once: a bare close can leave them held while a statement is unfinalized.
    """
    raw._running = False

    def close_and_stop() -> object:
        connection = raw._connection
        raw._connection = None
        if connection is not None:
            try:
                _reset(connection, cursors)
            finally:
                connection.close()
        return aiosqlite.core._STOP_RUNNING_SENTINEL

    raw._tx.put_nowait((None, close_and_stop))


def _execute(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> DriverResult:
    cursor = conn.execute(sql, params)
    try:
        description = cursor.description
        if description is None:
            return DriverResult((), [], cursor.rowcount)
        rows = cursor.fetchall()
        return DriverResult(tuple(d[0] for d in description), rows, len(rows))
    finally:
        cursor.close()


def _executemany(
    conn: sqlite3.Connection,
    sql: str,
    params: Sequence[Sequence[Any]],
    returns_rows: bool | None,
) -> DriverResult:
    cursor = conn.cursor()
    try:
        if returns_rows is None and params:
            # Run the first set alone: its description tells whether rows come back.
            cursor.execute(sql, params[0])
            returns_rows = cursor.description is not None
            first_rows = cursor.fetchall()
            params = params[1:]
            done = 1
        else:
            first_rows, done = [], 0
        if not returns_rows:
            rowcount = cursor.rowcount if done else 0
            if params:
                cursor.executemany(sql, params)
                rowcount += cursor.rowcount
            return DriverResult((), [], rowcount)
        # sqlite3's executemany does not return the rows of RETURNING.
        keys = tuple(d[0] for d in cursor.description) if done else ()
        rows: list[Any] = first_rows
        for one in params:
            cursor.execute(sql, one)
            if not keys:
                keys = tuple(d[0] for d in cursor.description)
            rows.extend(cursor.fetchall())
        return DriverResult(keys, rows, len(rows))
    finally:
        cursor.close()


def _open_cursor(
    conn: sqlite3.Connection, sql: str, params: Sequence[Any]
) -> tuple[tuple[str, ...], sqlite3.Cursor]:
    cursor = conn.cursor()
    try:
        cursor.execute(sql, params)
    except BaseException:
        cursor.close()
        raise
    description = cursor.description or ()
    return tuple(d[0] for d in description), cursor


def _reset(conn: sqlite3.Connection, cursors: set[sqlite3.Cursor]) -> None:
    for cursor in cursors:
        cursor.close()
    if conn.in_transaction:
        conn.execute("ROLLBACK")


class SQLiteDriver:
    """Opens aiosqlite connections for one ``sqlite+aiosqlite://`` URL."""

    dialect_name = "sqlite"
    driver_name = "aiosqlite"
    isolation_levels = frozenset({"SERIALIZABLE", "AUTOCOMMIT"})

    def __init__(self, url: URL, connect_args: Mapping[str, Any]) -> None:
        options: dict[str, Any] = {}
        uri_params: dict[str, str] = {}
        uri = parse_bool("uri", connect_args.get("uri", url.query.get("uri", False)))
        for key, value in url.query.items():
            if key in _OPTIONS:
                options[key] = value
            elif uri:
                uri_params[key] = value
            else:
                raise exc.ArgumentError(
                    f"Unknown SQLite URL option {key!r}; accepted: {sorted(_OPTIONS)} "
                    "(with uri=true, other keys are passed on as file: URI parameters)"
                )
        for key, value in connect_args.items():
            if key not in _OPTIONS:
                raise exc.ArgumentError(
                    f"Unknown SQLite connect_args key {key!r}; accepted: {sorted(_OPTIONS)}"
                )
            options[key] = value

        database = url.database or ":memory:"
        if uri_params:
            database += "?" + "&".join(f"{k}={v}" for k, v in uri_params.items())
        self.database = database
        self.uri = uri
        self.timeout = float(options.get("timeout", 5.0))
        self.foreign_keys = parse_bool("foreign_keys", options.get("foreign_keys", True))
        self.cached_statements = int(options.get("cached_statements", 128))
        begin_mode = str(options.get("begin_mode", "DEFERRED")).upper()
        if begin_mode not in _BEGIN_MODES:
            raise exc.ArgumentError(
                f"begin_mode must be one of {sorted(_BEGIN_MODES)}, not {begin_mode!r}"
            )
        self.begin_mode = begin_mode
        self.is_memory = database == ":memory:" or (uri and "mode=memory" in database)

    async def connect(self) -> SQLiteConnection:
        opened: list[sqlite3.Connection] = []
        calls = _Calls()

        def connector() -> sqlite3.Connection:
            conn = sqlite3.connect(
                self.database,
                timeout=self.timeout,
                isolation_level=None,
                uri=self.uri,
                cached_statements=self.cached_statements,
            )
            try:
                conn.set_progress_handler(calls.progress, _PROGRESS_STEPS)
                if self.foreign_keys:
                    conn.execute("PRAGMA foreign_keys=ON")
            except BaseException:
                conn.close()
                raise
            opened.append(conn)
            return conn

        raw = aiosqlite.Connection(connector, iter_chunk_size=64)
        # A forgotten connection must not keep the interpreter from exiting;
        # SQLite's journal makes an exit mid-transaction safe.
        raw._thread.daemon = True
        await raw
        return SQLiteConnection(raw, opened[0], calls)

    def begin_sql(self, isolation_level: str | None) -> str:
        return "BEGIN" if self.begin_mode == "DEFERRED" else f"BEGIN {self.begin_mode}"

    def translate_error(self, error: BaseException, connection: Any) -> ErrorInfo:
        closed = connection is not None and connection.is_closed()
        if isinstance(error, sqlite3.Error):
            error_class = next(cls for base, cls in _ERROR_TABLE if isinstance(error, base))
            # "Cannot operate on a closed database." means this connection is gone.
            disconnect = closed or (
                isinstance(error, sqlite3.ProgrammingError) and "closed database" in str(error)
            )
            return ErrorInfo(error_class, disconnect)
        if isinstance(error, ValueError) and str(error) in _AIOSQLITE_CLOSED:
            # aiosqlite's own errors once its thread or sqlite3 connection is gone.
            return ErrorInfo(exc.OperationalError, True)
        return ErrorInfo(exc.DBAPIError, closed)
