"""Connection pools: a bounded number of slots and a stack of idle connections.

How it works:

- A pool hands out *slots*. ``acquire()`` takes a slot first (waiting, up to
  ``timeout`` seconds, when all are taken; then :class:`~asyncsession.exc.TimeoutError`),
  then fills it with an idle connection or a new one. ``release()`` gives the
  slot back exactly once per ``acquire()``, whatever happens: a freed slot goes
  straight to the longest waiter, so waiting is first come, first served.
- A connection goes back to the idle stack only when it is known clean: no
  transaction open (else it is rolled back first) and no operation left
  half-done by a cancellation (``PoolEntry.uncertain``; reset first). A reset
  that fails or takes longer than :data:`CLEANUP_TIMEOUT` terminates the
  connection instead. Cleanup runs shielded from cancellation.
- Idle connections are reused most-recently-returned first. With ``pre_ping``
  each is pinged at checkout and silently replaced if dead; one older than
  ``recycle`` seconds is closed and replaced; one opened by another event loop
  (asyncpg's are bound to theirs) is dropped.
- Waiters and slots are plain counters and :class:`anyio.Event` objects made
  on demand, so a pool is not tied to any event loop until it is used.

Classes: :class:`QueuePool` (``pool_size`` kept open plus ``max_overflow``
extra), :class:`NullPool` (no pooling; every release closes) and
:class:`StaticPool` (one connection, never closed: in-memory SQLite).
Events: ``connect`` (a new connection), ``checkout``, ``checkin``; listeners get
``(raw_connection, entry)``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import attrs

from asyncsession import exc
from asyncsession.engine.drivers.base import DriverConnection
from asyncsession.engine.events import Dispatcher
from asyncsession.engine.log import POOL_LOGGER, configure_echo

__all__ = [
    "CLEANUP_TIMEOUT",
    "POOL_EVENTS",
    "AsyncAdaptedQueuePool",
    "NullPool",
    "Pool",
    "PoolEntry",
    "QueuePool",
    "StaticPool",
    "run_cleanup",
]

#: Seconds a shielded cleanup (rollback, reset, close) may take before the
#: connection is terminated instead.
CLEANUP_TIMEOUT = 5.0

POOL_EVENTS = frozenset({"connect", "checkout", "checkin"})

Connector = Callable[[], Awaitable[DriverConnection]]


@attrs.define(eq=False, slots=True)
class PoolEntry:
    """One open driver connection and what the pool knows about it.

    ``info`` is free for listeners and the engine to keep per-connection data in.
    ``uncertain`` is set while an operation on the connection may have been
    left half-done (a cancellation struck mid-flight); such a connection is
    reset or terminated before anyone else gets it.
    """

    connection: DriverConnection
    loop: asyncio.AbstractEventLoop
    created_at: float
    generation: int
    info: dict[str, Any] = attrs.Factory(dict)
    checked_out: bool = False
    uncertain: bool = False
    closed: bool = False


async def run_cleanup(
    action: Callable[[], Awaitable[Any]],
) -> tuple[bool, BaseException | None]:
    """Await ``action()`` shielded from cancellation, for at most :data:`CLEANUP_TIMEOUT`.

    Returns ``(completed, pierced)``. ``completed`` is False when the action
    raised an ``Exception`` or ran out of time; the caller then terminates the
    connection. anyio's shield does not stop a native ``Task.cancel()`` (a
    second one, say, from a task group shutting down), so the action runs in a
    task of its own and is waited for to the end even then; ``pierced`` is that
    cancellation, which the caller must raise once its bookkeeping is done.
    """

    async def bounded() -> bool:
        with anyio.move_on_after(CLEANUP_TIMEOUT):
            try:
                await action()
            except Exception:
                POOL_LOGGER.debug("cleanup failed", exc_info=True)
                return False
            return True
        POOL_LOGGER.warning("cleanup did not finish within %s seconds", CLEANUP_TIMEOUT)
        return False

    task = asyncio.ensure_future(bounded())
    pierced: BaseException | None = None
    with anyio.CancelScope(shield=True):
        while not task.done():
            try:
                await asyncio.wait((task,))
            except asyncio.CancelledError as error:
                pierced = error
    return task.result(), pierced


@attrs.define(eq=False, slots=True)
class _Waiter:
    event: anyio.Event
    granted: bool = False


class Pool:
    """The shared machinery; use :class:`QueuePool`, :class:`NullPool` or :class:`StaticPool`.

    ``connector`` opens one driver connection (the engine's, which translates
    driver errors). ``limit`` is the number of slots (None: unbounded) and
    ``idle_capacity`` how many idle connections are kept.
    """

    __slots__ = (
        "_connector",
        "_generation",
        "_idle",
        "_idle_capacity",
        "_in_use",
        "_limit",
        "_log_level",
        "_waiters",
        "dispatch",
        "pre_ping",
        "recycle",
        "timeout",
    )

    def __init__(
        self,
        connector: Connector,
        *,
        limit: int | None,
        idle_capacity: int,
        timeout: float | None = 30.0,
        recycle: float = -1,
        pre_ping: bool = False,
        echo: bool | str = False,
    ) -> None:
        self._connector = connector
        self._limit = limit
        self._idle_capacity = idle_capacity
        self.timeout = timeout
        self.recycle = recycle
        self.pre_ping = pre_ping
        self._idle: deque[PoolEntry] = deque()
        self._waiters: deque[_Waiter] = deque()
        self._in_use = 0
        self._generation = 0
        self.dispatch = Dispatcher(POOL_EVENTS)
        configure_echo(POOL_LOGGER, echo)
        self._log_level = logging.DEBUG if echo == "debug" else logging.INFO

    def _dispatcher_for(self, identifier: str) -> Dispatcher:
        return self.dispatch

    # -- status ---------------------------------------------------------------

    def size(self) -> int:
        """The number of connections kept open when idle."""
        return self._idle_capacity

    def checkedout(self) -> int:
        """The number of slots in use (checked out, or being connected for a checkout)."""
        return self._in_use

    def checkedin(self) -> int:
        """The number of idle connections."""
        return len(self._idle)

    def overflow(self) -> int:
        """Open connections beyond ``size()`` (negative while the pool has room)."""
        return self._in_use + len(self._idle) - self._idle_capacity

    def status(self) -> str:
        """A one-line summary for logs."""
        return (
            f"Pool size: {self.size()}  Connections in pool: {self.checkedin()} "
            f"Current Overflow: {self.overflow()} "
            f"Current Checked out connections: {self.checkedout()}"
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.status()}>"

    # -- checkout -------------------------------------------------------------

    async def acquire(self) -> PoolEntry:
        """Take a slot and a connection for it.

        Raises :class:`~asyncsession.exc.TimeoutError` when no slot frees up
        within ``timeout``, or the engine's translated error when connecting
        fails. Cancelled at any point, it leaves the slot count unchanged.
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        await self._take_slot()
        try:
            return await self._checkout()
        except BaseException:
            self._free_slot()
            raise

    async def _take_slot(self) -> None:
        if self._limit is None or (self._in_use < self._limit and not self._waiters):
            self._in_use += 1
            return
        waiter = _Waiter(anyio.Event())
        self._waiters.append(waiter)
        try:
            with anyio.fail_after(self.timeout):
                await waiter.event.wait()
        except BaseException as error:
            if waiter.granted:
                self._free_slot()
            else:
                self._waiters.remove(waiter)
            if isinstance(error, TimeoutError):
                raise exc.TimeoutError(self._timeout_message()) from None
            raise

    def _timeout_message(self) -> str:
        return (
            f"{type(self).__name__} limit of {self._limit} connection(s) reached; no "
            f"connection became free within the pool timeout of {self.timeout} seconds. "
            "Close connections when done (async with engine.connect() as conn: ...), "
            "or raise pool_size, max_overflow or pool_timeout."
        )

    async def _checkout(self) -> PoolEntry:
        loop = asyncio.get_running_loop()
        entry = None
        while self._idle:
            candidate = self._idle.pop()
            if candidate.connection.is_closed():
                # The driver saw the server or network close it while it was idle.
                POOL_LOGGER.log(self._log_level, "Dropping a connection closed while idle")
                self._terminate(candidate)
            elif candidate.connection.loop_bound and candidate.loop is not loop:
                POOL_LOGGER.log(self._log_level, "Dropping a connection of another event loop")
                self._terminate(candidate)
            elif self._expired(candidate):
                POOL_LOGGER.log(
                    self._log_level, "Recycling a connection older than %s s", self.recycle
                )
                pierced = await self._close(candidate)
                if pierced is not None:
                    raise pierced
            elif self.pre_ping and not await self._ping(candidate):
                continue
            else:
                entry = candidate
                break
        if entry is None:
            entry = await self._open(loop)
        entry.checked_out = True
        if self.dispatch.has("checkout"):
            try:
                await self.dispatch.fire("checkout", entry.connection.raw, entry)
            except BaseException:
                entry.checked_out = False
                self._terminate(entry)
                raise
        return entry

    def _expired(self, entry: PoolEntry) -> bool:
        return self.recycle >= 0 and time.monotonic() - entry.created_at > self.recycle

    async def _ping(self, entry: PoolEntry) -> bool:
        try:
            await entry.connection.ping()
        except Exception:
            POOL_LOGGER.log(
                self._log_level, "Pre-ping failed; replacing the connection", exc_info=True
            )
            self._terminate(entry)
            return False
        except BaseException:
            self._terminate(entry)
            raise
        return True

    async def _open(self, loop: asyncio.AbstractEventLoop) -> PoolEntry:
        connection = await self._connector()
        entry = PoolEntry(connection, loop, time.monotonic(), self._generation)
        POOL_LOGGER.log(self._log_level, "Created a new connection %r", connection.raw)
        if self.dispatch.has("connect"):
            try:
                await self.dispatch.fire("connect", connection.raw, entry)
            except BaseException:
                self._terminate(entry)
                raise
        return entry

    # -- checkin --------------------------------------------------------------

    async def release(self, entry: PoolEntry) -> None:
        """Give ``entry``'s slot back; the connection is kept if clean, else closed.

        Runs shielded from cancellation; calling it again for the same checkout
        does nothing.
        """
        if not entry.checked_out or self.release_nowait(entry):
            return
        entry.checked_out = False
        kept = False
        pierced: BaseException | None = None
        try:
            with anyio.CancelScope(shield=True):
                clean, pierced = await self._make_clean(entry)
                if clean and self.dispatch.has("checkin"):
                    clean, checkin_pierced = await run_cleanup(
                        lambda: self.dispatch.fire("checkin", entry.connection.raw, entry)
                    )
                    pierced = pierced or checkin_pierced
                    if not clean:
                        self._terminate(entry)
                if not entry.closed and self._has_room_for(entry):
                    self._idle.append(entry)
                    kept = True
                else:
                    pierced = await self._close(entry) or pierced
        finally:
            if not kept:
                self._terminate(entry)
            self._free_slot()
        if pierced is not None:
            raise pierced

    def release_nowait(self, entry: PoolEntry) -> bool:
        """Check ``entry`` back in at once when that needs no IO; False if it does.

        It does when the connection must be reset, closed, or handed to a
        ``checkin`` listener: :meth:`release` does that part, shielded. The
        common case, a clean connection going back to a pool with room, is
        bookkeeping only and costs no cancel scope.
        """
        connection = entry.connection
        if (
            not entry.checked_out
            or entry.uncertain
            or entry.closed
            or connection.in_transaction()
            or connection.is_closed()
            or (connection.loop_bound and entry.loop is not asyncio.get_running_loop())
            or not self._has_room_for(entry)
            or self.dispatch.has("checkin")
        ):
            return False
        entry.checked_out = False
        self._idle.append(entry)
        self._free_slot()
        return True

    def discard(self, entry: PoolEntry) -> None:
        """Terminate ``entry``'s connection and give its slot back, without awaiting.

        For invalidation and garbage collection; does nothing for an entry that
        is not checked out.
        """
        if not entry.checked_out:
            return
        entry.checked_out = False
        POOL_LOGGER.log(self._log_level, "Invalidating connection %r", entry.connection.raw)
        self._terminate(entry)
        self._free_slot()

    async def _make_clean(self, entry: PoolEntry) -> tuple[bool, BaseException | None]:
        """Reset ``entry`` if needed: (clean, a cancellation to raise afterwards)."""
        connection = entry.connection
        if connection.is_closed():
            self._terminate(entry)
            return False, None
        if connection.loop_bound and entry.loop is not asyncio.get_running_loop():
            self._terminate(entry)
            return False, None
        if not (entry.uncertain or connection.in_transaction()):
            return True, None
        POOL_LOGGER.log(self._log_level, "Resetting connection %r", connection.raw)
        clean, pierced = await run_cleanup(connection.reset)
        if clean:
            entry.uncertain = False
        else:
            self._terminate(entry)
        return clean, pierced

    def _has_room_for(self, entry: PoolEntry) -> bool:
        return (
            entry.generation == self._generation
            and len(self._idle) < self._idle_capacity
            and not self._expired(entry)
        )

    def _free_slot(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            waiter.granted = True
            waiter.event.set()
            return
        self._in_use -= 1

    # -- closing --------------------------------------------------------------

    async def _close(self, entry: PoolEntry) -> BaseException | None:
        """Close gracefully (else terminate); returns a cancellation to raise afterwards."""
        if entry.closed:
            return None
        connection = entry.connection
        closed = False
        pierced = None
        try:
            if not (connection.loop_bound and entry.loop is not asyncio.get_running_loop()):
                POOL_LOGGER.log(self._log_level, "Closing connection %r", connection.raw)
                closed, pierced = await run_cleanup(connection.close)
        finally:
            if not closed:
                connection.terminate()
            entry.closed = True
        return pierced

    def _terminate(self, entry: PoolEntry) -> None:
        if not entry.closed:
            entry.closed = True
            entry.connection.terminate()

    async def dispose(self) -> None:
        """Close every idle connection; connections checked out now are closed on release.

        Runs shielded; a connection that does not close in time is terminated.
        A cancellation that arrived meanwhile is raised afterwards.
        """
        self._generation += 1
        idle, self._idle = self._idle, deque()
        pierced: BaseException | None = None
        try:
            with anyio.CancelScope(shield=True):
                while idle:
                    pierced = await self._close(idle.pop()) or pierced
        finally:
            for entry in idle:
                self._terminate(entry)
        if pierced is not None:
            raise pierced
        await anyio.lowlevel.checkpoint_if_cancelled()


class QueuePool(Pool):
    """Keeps up to ``pool_size`` idle connections; allows ``max_overflow`` more at once.

    ``max_overflow=-1`` means no limit. Waiters for a slot give up after
    ``timeout`` seconds with :class:`~asyncsession.exc.TimeoutError`.
    """

    __slots__ = ()

    def __init__(
        self,
        connector: Connector,
        *,
        pool_size: int = 5,
        max_overflow: int = 10,
        timeout: float | None = 30.0,
        recycle: float = -1,
        pre_ping: bool = False,
        echo: bool | str = False,
    ) -> None:
        if pool_size < 0 or max_overflow < -1:
            raise exc.ArgumentError(
                f"pool_size must be >= 0 and max_overflow >= -1 (got {pool_size}, {max_overflow})"
            )
        super().__init__(
            connector,
            limit=None if max_overflow == -1 else pool_size + max_overflow,
            idle_capacity=pool_size,
            timeout=timeout,
            recycle=recycle,
            pre_ping=pre_ping,
            echo=echo,
        )


#: SQLAlchemy's name for the asyncio queue pool.
AsyncAdaptedQueuePool = QueuePool


class NullPool(Pool):
    """No pooling: each checkout opens a connection and each release closes it."""

    __slots__ = ()

    def __init__(self, connector: Connector, *, echo: bool | str = False) -> None:
        super().__init__(connector, limit=None, idle_capacity=0, echo=echo)


class StaticPool(Pool):
    """Exactly one connection, kept open for the pool's life (in-memory SQLite).

    One AsyncConnection holds it at a time; another waits up to ``timeout``.
    If the connection is invalidated, the next checkout opens a new one (for
    in-memory SQLite: a new, empty database).
    """

    __slots__ = ()

    def __init__(
        self, connector: Connector, *, timeout: float | None = 30.0, echo: bool | str = False
    ) -> None:
        super().__init__(connector, limit=1, idle_capacity=1, timeout=timeout, echo=echo)

    def _timeout_message(self) -> str:
        return (
            "StaticPool: the engine's single shared connection (an in-memory SQLite "
            "database has exactly one) is held by another AsyncConnection and was not "
            f"released within the pool timeout of {self.timeout} seconds. Close the "
            "other connection first, or use a file database for concurrent connections."
        )
