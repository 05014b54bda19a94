"""The one small protocol every database driver is adapted to.

The engine never touches asyncpg or aiosqlite directly; it talks to a
:class:`Driver` (one per engine: how to connect, how to begin, how to read the
driver's errors) and to the :class:`DriverConnection` objects it opens.

Rules every adapter keeps:

- Values go in and come out as the driver's plain values; conversions belong to
  the SQL layer's types (``Compiled.construct_params`` / ``result_processors``).
- A :class:`DriverConnection` method raises the driver's own exceptions; the
  engine translates them with :meth:`Driver.translate_error`, which also says
  whether the error means the connection is unusable.
- Transactions are plain SQL (``BEGIN``, ``SAVEPOINT``, ``COMMIT``...) sent
  through :meth:`DriverConnection.execute`, so one transaction implementation
  serves every backend. ``begin_sql`` is the only per-backend piece.
- :meth:`DriverConnection.terminate` never awaits and never raises: it is the
  last resort of every cleanup path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import attrs

from asyncsession import exc

__all__ = [
    "Driver",
    "DriverConnection",
    "DriverCursor",
    "DriverResult",
    "ErrorInfo",
    "parse_bool",
]


@attrs.frozen
class DriverResult:
    """What one execution returned.

    ``keys`` names the columns (empty when the statement returns no rows);
    ``rows`` are tuple-like (tuples, or asyncpg Records: indexable, iterable);
    ``rowcount`` is the number of rows returned when there are rows, else the
    number of rows the statement changed, or -1 when the driver cannot tell.
    """

    keys: tuple[str, ...]
    rows: list[Any]
    rowcount: int


@attrs.frozen
class ErrorInfo:
    """How to present one driver exception.

    ``error_class`` is the :mod:`asyncsession.exc` class to raise;
    ``is_disconnect`` is True when the connection can no longer be used.
    """

    error_class: type[exc.DBAPIError]
    is_disconnect: bool
    sqlstate: str | None = None

    def wrap(
        self, error: BaseException, statement: str | None, params: Any, *, invalidated: bool
    ) -> exc.DBAPIError:
        """The exception to raise ``from error``; its message names the driver's class."""
        return self.error_class(
            f"({type(error).__module__}.{type(error).__qualname__}) {error}",
            statement,
            params,
            error,
            invalidated,
            self.sqlstate,
        )


class DriverCursor(Protocol):
    """An open result being read in chunks (a server-side cursor on PostgreSQL)."""

    async def fetch(self, size: int) -> list[Any]:
        """Up to ``size`` more tuple-like rows; an empty list once the result is exhausted."""
        ...

    async def close(self) -> None:
        """Release the cursor; must be called while its transaction is still open."""
        ...


class DriverConnection(Protocol):
    """One open database connection, as the engine uses it.

    ``raw`` is the driver's own connection object. ``loop_bound`` is True when
    the connection may only be used from the event loop that opened it.
    """

    raw: Any
    loop_bound: bool

    async def execute(
        self, sql: str, params: Sequence[Any], returns_rows: bool | None
    ) -> DriverResult:
        """Run one statement. ``returns_rows=None``: the adapter finds out itself."""
        ...

    async def executemany(
        self, sql: str, params: Sequence[Sequence[Any]], returns_rows: bool | None
    ) -> DriverResult:
        """Run one statement once per parameter set, in as few round trips as possible.

        With ``returns_rows=None`` the adapter finds out whether there are rows.
        """
        ...

    async def open_cursor(
        self, sql: str, params: Sequence[Any], describe: bool
    ) -> tuple[tuple[str, ...], DriverCursor]:
        """Start a statement whose rows are fetched in chunks; returns (keys, cursor).

        The keys are only guaranteed when ``describe`` is True (which may cost a
        round trip); else they may be empty. On PostgreSQL this needs an open
        transaction.
        """
        ...

    async def copy_records(
        self,
        table_name: str,
        columns: Sequence[str],
        records: Sequence[Sequence[Any]],
        schema: str | None,
    ) -> int:
        """Bulk-insert ``records`` into the table; returns the number of rows."""
        ...

    async def ping(self) -> None:
        """Make a round trip; raises the driver's error when the connection is dead."""
        ...

    async def reset(self) -> None:
        """Return to a clean, idle state: close open cursors and roll back any transaction.

        Also waits for a statement interrupted by a cancellation to finish.
        """
        ...

    def in_transaction(self) -> bool:
        """True when the server side holds an open transaction (no IO)."""
        ...

    def interrupt(self) -> None:
        """Ask a statement that may still be running to stop, without waiting (no IO)."""
        ...

    def is_closed(self) -> bool:
        """True once the connection was closed, terminated or lost (no IO)."""
        ...

    async def close(self) -> None:
        """Close gracefully."""
        ...

    def terminate(self) -> None:
        """Close at once without waiting; never raises."""
        ...


class Driver(Protocol):
    """A backend's adapter, configured from one URL (no IO until :meth:`connect`).

    ``dialect_name`` is the SQL dialect (``postgresql``, ``sqlite``);
    ``driver_name`` the library (``asyncpg``, ``aiosqlite``); ``is_memory`` is
    True when every connection would open a new, empty database, so the engine
    must share a single one.
    """

    dialect_name: str
    driver_name: str
    is_memory: bool
    isolation_levels: frozenset[str]

    async def connect(self) -> DriverConnection:
        """Open one connection."""
        ...

    def begin_sql(self, isolation_level: str | None) -> str:
        """The SQL that opens a transaction at ``isolation_level`` (None: the default)."""
        ...

    def translate_error(
        self, error: BaseException, connection: DriverConnection | None
    ) -> ErrorInfo:
        """Classify ``error`` raised by ``connection`` (None while connecting)."""
        ...


def parse_bool(key: str, value: Any) -> bool:
    """Read a boolean option given as a bool or as URL text (true/false, 1/0, yes/no)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes", "on"}:
        return True
    if text in {"false", "0", "no", "off"}:
        return False
    raise exc.ArgumentError(f"Option {key!r} must be true or false, not {value!r}")
