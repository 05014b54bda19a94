"""PostgreSQL through asyncpg.

How statements run:

- A compiled statement that returns rows goes through ``Connection.fetch``,
  one that does not through ``Connection.execute`` (its status text gives the
  row count). Both use asyncpg's statement cache: one round trip when cached.
- Raw SQL whose shape is unknown (``exec_driver_sql``) is prepared first
  (``Connection.prepare``) to learn its columns, then run: two round trips.
- Streaming declares an SQL cursor (``DECLARE ... NO SCROLL CURSOR FOR``) and
  reads it with ``FETCH FORWARD n``; it needs an open transaction, and it
  creates no named prepared statement of its own.
- ``prepared_statement_cache_size=0`` becomes asyncpg's
  ``statement_cache_size=0``: every statement is then an unnamed prepared
  statement, which is what PgBouncer's transaction mode needs.

What asyncpg returns natively (the SQL layer's types convert from these):
int2/int4/int8 -> int, numeric -> Decimal, float4/float8 -> float, text/varchar
-> str, bool -> bool, bytea -> bytes, date -> date, time -> time, timestamp ->
naive datetime, timestamptz -> aware datetime (UTC), interval -> timedelta, uuid
-> asyncpg's UUID (a ``uuid.UUID`` subclass), json/jsonb -> str, arrays -> list,
enums -> str. Parameters must already be of these types (str for json/jsonb).

Cancellation: when the awaiting task is cancelled, asyncpg itself sends a
cancel request to the server and makes the next call on the connection wait
until the server has answered, so :meth:`PGConnection.reset` after a cancel
finds the protocol idle.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from asyncsession import exc
from asyncsession.engine.drivers.base import DriverResult, ErrorInfo
from asyncsession.engine.url import URL

__all__ = ["PGConnection", "PGCursor", "PGDriver"]

_URL_OPTIONS = frozenset(
    {
        "prepared_statement_cache_size",
        "ssl",
        "sslmode",
        "application_name",
        "timeout",
        "command_timeout",
    }
)

# SQLSTATE class (first two characters) -> error class, as the DB-API drivers map them.
_SQLSTATE_CLASSES: dict[str, type[exc.DBAPIError]] = {
    "0A": exc.NotSupportedError,
    "08": exc.OperationalError,
    "20": exc.ProgrammingError,
    "21": exc.ProgrammingError,
    "22": exc.DataError,
    "23": exc.IntegrityError,
    "24": exc.InternalError,
    "25": exc.InternalError,
    "26": exc.OperationalError,
    "27": exc.OperationalError,
    "28": exc.OperationalError,
    "2B": exc.InternalError,
    "2D": exc.InternalError,
    "2F": exc.InternalError,
    "34": exc.OperationalError,
    "38": exc.InternalError,
    "39": exc.InternalError,
    "3B": exc.InternalError,
    "3D": exc.ProgrammingError,
    "3F": exc.ProgrammingError,
    "40": exc.OperationalError,
    "42": exc.ProgrammingError,
    "44": exc.ProgrammingError,
    "53": exc.OperationalError,
    "54": exc.OperationalError,
    "55": exc.OperationalError,
    "57": exc.OperationalError,
    "58": exc.OperationalError,
    "F0": exc.InternalError,
    "HV": exc.OperationalError,
    "P0": exc.InternalError,
    "XX": exc.InternalError,
}
# admin_shutdown (pg_terminate_backend), crash_shutdown, cannot_connect_now.
_DISCONNECT_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})
_COUNTED_COMMANDS = frozenset(
    {"INSERT", "UPDATE", "DELETE", "SELECT", "MERGE", "COPY", "MOVE", "FETCH"}
)

_cursor_names = itertools.count(1)


def _rowcount(status: str) -> int:
    """``INSERT 0 5`` -> 5, ``UPDATE 3`` -> 3, ``CREATE TABLE`` -> -1."""
    words = status.split()
    if len(words) >= 2 and words[0] in _COUNTED_COMMANDS and words[-1].isdigit():
        return int(words[-1])
    return -1


class PGCursor:
    """An SQL cursor declared in the current transaction."""

    __slots__ = ("_name", "_raw")

    def __init__(self, raw: Any, name: str) -> None:
        self._raw = raw
        self._name = name

    async def fetch(self, size: int) -> list[Any]:
        records: list[Any] = await self._raw.fetch(f"FETCH FORWARD {size:d} FROM {self._name}")
        return records

    async def close(self) -> None:
        await self._raw.execute(f"CLOSE {self._name}")


class PGConnection:
    """One asyncpg connection."""

    __slots__ = ("raw",)

    loop_bound = True

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    async def execute(
        self, sql: str, params: Sequence[Any], returns_rows: bool | None
    ) -> DriverResult:
        raw = self.raw
        if returns_rows:
            records = await raw.fetch(sql, *params)
            keys = tuple(records[0].keys()) if records else ()
            return DriverResult(keys, records, len(records))
        if returns_rows is False:
            return DriverResult((), [], _rowcount(await raw.execute(sql, *params)))
        statement = await raw.prepare(sql)
        attributes = statement.get_attributes()
        records = await statement.fetch(*params)
        if attributes:
            return DriverResult(tuple(a.name for a in attributes), records, len(records))
        return DriverResult((), [], _rowcount(statement.get_statusmsg() or ""))

    async def executemany(
        self, sql: str, params: Sequence[Sequence[Any]], returns_rows: bool | None
    ) -> DriverResult:
        if returns_rows is None:
            returns_rows = bool((await self.raw.prepare(sql)).get_attributes())
        if returns_rows:
            records = await self.raw.fetchmany(sql, params)
            keys = tuple(records[0].keys()) if records else ()
            return DriverResult(keys, records, len(records))
        await self.raw.executemany(sql, params)
        return DriverResult((), [], -1)

    async def open_cursor(
        self, sql: str, params: Sequence[Any], describe: bool
    ) -> tuple[tuple[str, ...], PGCursor]:
        keys: tuple[str, ...] = ()
        if describe:
            keys = tuple(a.name for a in (await self.raw.prepare(sql)).get_attributes())
        name = f"asyncsession_cursor_{next(_cursor_names)}"
        await self.raw.execute(f"DECLARE {name} NO SCROLL CURSOR FOR {sql}", *params)
        return keys, PGCursor(self.raw, name)

    async def copy_records(
        self,
        table_name: str,
        columns: Sequence[str],
        records: Sequence[Sequence[Any]],
        schema: str | None,
    ) -> int:
        status = await self.raw.copy_records_to_table(
            table_name, records=records, columns=list(columns), schema_name=schema
        )
        return _rowcount(status)

    async def ping(self) -> None:
        await self.raw.execute("SELECT 1")

    async def reset(self) -> None:
        # Outside a transaction the server only warns; asyncpg drops the notice.
        await self.raw.execute("ROLLBACK")

    def in_transaction(self) -> bool:
        return not self.raw.is_closed() and bool(self.raw.is_in_transaction())

    def interrupt(self) -> None:
        """Nothing to do: asyncpg already sent the server a cancel request."""

    def is_closed(self) -> bool:
        return bool(self.raw.is_closed())

    async def close(self) -> None:
        await self.raw.close()

    def terminate(self) -> None:
        # RuntimeError: the connection's event loop is already closed; the socket goes with it.
        with contextlib.suppress(RuntimeError):
            self.raw.terminate()


class PGDriver:
    """Opens asyncpg connections for one ``postgresql+asyncpg://`` URL.

    URL query keys: ``prepared_statement_cache_size`` (int; 0 = no named prepared
    statements), ``ssl`` / ``sslmode`` (asyncpg's ``ssl`` values),
    ``application_name``, ``timeout`` (connect timeout), ``command_timeout``.
    ``connect_args`` go to ``asyncpg.connect`` unchanged (``ssl=SSLContext``,
    ``server_settings={...}``, ...), except ``prepared_statement_cache_size``,
    which is read as above.
    """

    dialect_name = "postgresql"
    driver_name = "asyncpg"
    is_memory = False
    isolation_levels = frozenset(
        {"AUTOCOMMIT", "READ COMMITTED", "READ UNCOMMITTED", "REPEATABLE READ", "SERIALIZABLE"}
    )

    def __init__(self, url: URL, connect_args: Mapping[str, Any]) -> None:
        unknown = set(url.query) - _URL_OPTIONS
        if unknown:
            raise exc.ArgumentError(
                f"Unknown PostgreSQL URL option(s) {sorted(unknown)}; accepted: "
                f"{sorted(_URL_OPTIONS)}. Pass anything else asyncpg.connect() takes "
                "through create_async_engine(connect_args={...})."
            )
        query = url.query
        kwargs: dict[str, Any] = {
            "host": url.host,
            "port": url.port,
            "user": url.username,
            "password": url.password,
            "database": url.database,
        }
        if "ssl" in query or "sslmode" in query:
            kwargs["ssl"] = query.get("ssl", query.get("sslmode"))
        if "application_name" in query:
            kwargs["server_settings"] = {"application_name": query["application_name"]}
        for key in ("timeout", "command_timeout"):
            if key in query:
                kwargs[key] = float(query[key])
        cache_size = query.get("prepared_statement_cache_size")
        args = dict(connect_args)
        cache_size = args.pop("prepared_statement_cache_size", cache_size)
        if cache_size is not None:
            kwargs["statement_cache_size"] = int(cache_size)
        if "server_settings" in args and "server_settings" in kwargs:
            args["server_settings"] = {**kwargs["server_settings"], **args["server_settings"]}
        kwargs.update(args)
        self.connect_kwargs = {k: v for k, v in kwargs.items() if v is not None}

    async def connect(self) -> PGConnection:
        return PGConnection(await asyncpg.connect(**self.connect_kwargs))

    def begin_sql(self, isolation_level: str | None) -> str:
        if isolation_level is None:
            return "BEGIN"
        return f"BEGIN ISOLATION LEVEL {isolation_level}"

    def translate_error(self, error: BaseException, connection: Any) -> ErrorInfo:
        closed = connection is not None and connection.is_closed()
        if isinstance(error, asyncpg.PostgresError):
            sqlstate = error.sqlstate or ""
            error_class = _SQLSTATE_CLASSES.get(sqlstate[:2], exc.DatabaseError)
            disconnect = (
                closed
                or sqlstate.startswith("08")
                or sqlstate in _DISCONNECT_SQLSTATES
                or isinstance(error, asyncpg.exceptions.FatalPostgresError)
            )
            return ErrorInfo(error_class, disconnect, sqlstate or None)
        if isinstance(error, asyncpg.exceptions.DataError):
            # Bad parameter values, found by asyncpg before anything was sent.
            return ErrorInfo(exc.DataError, closed)
        if isinstance(error, asyncpg.exceptions.InternalClientError):
            # The protocol is in a state asyncpg did not expect (for instance the
            # server's FATAL message on pg_terminate_backend arrived while idle):
            # the connection is broken and never reused.
            return ErrorInfo(exc.OperationalError, True)
        if isinstance(error, asyncpg.exceptions.InterfaceError):
            # "connection is closed": the server or the network closed it.
            return ErrorInfo(exc.OperationalError if closed else exc.InterfaceError, closed)
        if isinstance(error, OSError):
            # Refused, reset or timed-out sockets (TimeoutError is an OSError).
            return ErrorInfo(exc.OperationalError, True)
        return ErrorInfo(exc.DBAPIError, closed)
