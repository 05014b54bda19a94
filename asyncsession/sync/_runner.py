"""Runners: how a blocking call waits for a coroutine, and implicit loading.

How this works:

* A *runner* turns one coroutine call into a blocking call. Every object of
  the facade holds one, and each of its IO methods is one
  ``runner.call(async_method, *args)``: the same async object does the work.
* :data:`FACADE` runs calls on the facade loop: one asyncio event loop per
  process, in a daemon thread behind an anyio blocking portal. It starts at
  the first call and stops at interpreter exit (``atexit``), after disposing
  of the engines it served; a forked child starts its own. Calling it from the
  loop's own thread raises at once, since the call would wait for itself.
  Calling it from a thread that runs another event loop (a notebook) is fine.
* The portal (``anyio.from_thread.start_blocking_portal``) owns the loop
  thread's life. Calls do not go through ``portal.call`` but are one
  ``call_soon_threadsafe`` that starts a task, and the caller waits on a plain
  lock its task releases: one thread hop each way instead of two, no
  task-group spawn, no Future machinery. Measured here, a portal call costs
  about 150 us, this about 30 us; the facade's target (within 1.5x of the
  async API) needs the difference. Each call runs inside an anyio
  ``CancelScope`` so that an interruption cancels it the anyio way:
  ``Task.cancel()`` would pierce the async layer's shielded cleanup.
* :class:`WorkerRunner` serves ``await session.run_sync(fn)``: ``fn`` runs in
  an anyio worker thread, and each call hops back to the event loop that
  awaits ``run_sync`` (``anyio.from_thread``). Only that worker thread may use
  it. :class:`ConnectionWorkerRunner` does the same for
  ``await conn.run_sync(fn)``, each call on behalf of the run_sync() that
  holds the connection (``AsyncConnection._as_view``).
* Implicit loads: the ORM calls the ``implicit_loader`` context variable (if
  set) when code reads an unloaded attribute. The facade sets it to
  :func:`load_on_access` in the threads that use it. That function loads only
  attributes of objects whose session is driven by a runner (``drivers``), and
  only from a thread that may block on that runner; anything else (async code,
  plain AsyncSessions, detached objects) gets exactly the
  ``UnloadedAttributeError`` it would get without the loader.
  The runners reset the variable for the hop, so the tasks that carry out a
  call never see it.
* A KeyboardInterrupt (or any exception) raised in the waiting thread, say by
  a signal handler, cancels the running coroutine, waits until its cleanup
  (rollback, connection release: the async layer's guarantees) is over, then
  propagates in the caller. Errors of the call itself propagate with their
  own type; their traceback runs from the caller's frames into the coroutine's.
"""

from __future__ import annotations

import _thread
import asyncio
import atexit
import contextlib
import contextvars
import os
import threading
import weakref
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

import anyio
import anyio.from_thread
from anyio.from_thread import BlockingPortal

from asyncsession import exc
from asyncsession.engine.pool import CLEANUP_TIMEOUT
from asyncsession.orm.state import InstanceState, implicit_loader

if TYPE_CHECKING:
    from asyncsession.engine.base import AsyncConnection, AsyncEngine
    from asyncsession.orm.session import AsyncSession

__all__ = [
    "FACADE",
    "ConnectionWorkerRunner",
    "FacadeRunner",
    "Runner",
    "WorkerRunner",
    "drivers",
    "install_loader",
]

_T = TypeVar("_T")
_P = ParamSpec("_P")


class Runner(Protocol):
    """Runs a coroutine function to completion for a blocking caller."""

    def call(
        self, fn: Callable[_P, Awaitable[_T]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _T: ...

    def may_block(self) -> bool:
        """True when the current thread may wait on this runner."""
        ...


class _Call:
    """One facade call: its task and outcome, and a lock its caller waits on.

    Created in the caller's thread. On the loop, :meth:`start` runs it as a
    task and :meth:`run` records the outcome and releases the lock as its
    last step (not in a done-callback, which would cost a loop iteration).
    """

    __slots__ = ("cancelled", "error", "finished", "result", "scope", "task", "waiter")

    def __init__(self) -> None:
        self.waiter = _thread.allocate_lock()
        self.waiter.acquire()
        self.task: asyncio.Task[None] | None = None
        self.scope: anyio.CancelScope | None = None
        self.cancelled = False
        self.finished = False
        self.result: Any = None
        self.error: BaseException | None = None

    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        """On the loop: run the call as a task (kept here: the loop holds tasks weakly)."""
        self.task = loop.create_task(self.run(fn, args, kwargs))

    async def run(
        self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        try:
            # An anyio scope, not Task.cancel(): the async layer's shielded cleanup holds.
            with anyio.CancelScope() as scope:
                self.scope = scope
                if self.cancelled:
                    scope.cancel()
                self.result = await fn(*args, **kwargs)
            if scope.cancelled_caught:
                self.error = _CallCancelled()
        except BaseException as error:
            self.error = error
            if not isinstance(error, Exception):
                raise  # the loop's own cancellation (shutdown) or an exit request
        finally:
            self.finished = True  # before the release: see FacadeRunner.call
            self.waiter.release()

    def cancel(self) -> None:
        """On the loop: cancel the call, or have it cancel itself when it starts."""
        self.cancelled = True
        if self.scope is not None:
            self.scope.cancel()

    def outcome(self) -> Any:
        error = self.error
        if error is None:
            return self.result
        try:
            raise error
        finally:  # no cycle through this frame's traceback
            self.error = error = None


class _CallCancelled(Exception):
    """A facade call ended by its caller's interruption (the caller raises that instead)."""


async def _invoke(
    fn: Callable[..., Awaitable[_T]], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> _T:
    return await fn(*args, **kwargs)


def _loop_thread_ready() -> tuple[int, asyncio.AbstractEventLoop]:
    threading.current_thread().name = "asyncsession-sync-loop"
    return threading.get_ident(), asyncio.get_running_loop()


async def _dispose_all(engines: list[AsyncEngine]) -> None:
    for engine in engines:
        # At exit, one engine whose server went away must not keep the others open.
        with contextlib.suppress(Exception), anyio.move_on_after(CLEANUP_TIMEOUT):
            await engine.dispose()


class FacadeRunner:
    """The process-wide facade loop (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._portal: BlockingPortal | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._thread_id: int | None = None
        self._stopped = False
        self._atexit_registered = False
        # Engines whose pooled connections live on this loop: closed at exit.
        self.engines: weakref.WeakSet[AsyncEngine] = weakref.WeakSet()

    @property
    def thread_id(self) -> int | None:
        """The loop thread's identifier, or None before the first call."""
        return self._thread_id

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                if self._stopped:
                    raise exc.InvalidRequestError(
                        "The sync facade's event loop has shut down (the interpreter is "
                        "exiting); no more blocking calls can run."
                    )
                portal_cm = anyio.from_thread.start_blocking_portal("asyncio")
                portal = portal_cm.__enter__()
                self._thread_id, loop = portal.call(_loop_thread_ready)
                self._portal_cm = portal_cm
                self._portal = portal
                self._loop = loop
                if not self._atexit_registered:
                    atexit.register(self.shutdown)
                    self._atexit_registered = True
            return self._loop

    def may_block(self) -> bool:
        return threading.get_ident() != self._thread_id

    def call(self, fn: Callable[_P, Awaitable[_T]], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run ``fn(*args, **kwargs)`` on the facade loop and wait for its outcome."""
        loop = self._loop
        if loop is None:
            loop = self._start()
        if threading.get_ident() == self._thread_id:
            name = getattr(fn, "__qualname__", repr(fn))
            raise exc.InvalidRequestError(
                f"Can't make the blocking call {name}() on the sync facade's own event-loop "
                "thread (from an event listener or other async code running there): it would "
                "wait for itself. Async code must use the async API: await the AsyncSession "
                "(session.async_session) or AsyncConnection (connection.async_connection)."
            )
        install_loader()
        call = _Call()
        loop.call_soon_threadsafe(call.start, loop, fn, args, kwargs, context=_clean_context())
        try:
            call.waiter.acquire()
        except BaseException:
            # Interrupted (a signal handler raised). Unless the call is over (the
            # interruption may surface just after the acquire), cancel it and wait
            # until its cleanup is done.
            if not call.finished:
                loop.call_soon_threadsafe(call.cancel)
                call.waiter.acquire()
            raise
        outcome: _T = call.outcome()
        return outcome

    def shutdown(self) -> None:
        """Dispose of the engines this loop served, then stop it (registered with atexit)."""
        with self._lock:
            portal, portal_cm = self._portal, self._portal_cm
            self._portal = self._portal_cm = self._loop = None
            self._thread_id = None
            self._stopped = True
        if portal is None or portal_cm is None:
            return
        try:
            engines = list(self.engines)
            if engines:
                portal.call(_dispose_all, engines)
        finally:
            try:
                portal.call(portal.stop, True)  # cancel what other threads left running
            finally:
                portal_cm.__exit__(None, None, None)

    def _forget_after_fork(self) -> None:
        # The loop thread does not exist in a forked child; its connections are the
        # parent's. Start afresh (a new loop at the first call).
        self._lock = threading.Lock()
        self._portal = self._portal_cm = self._loop = None
        self._thread_id = None
        self.engines = weakref.WeakSet()


FACADE = FacadeRunner()
os.register_at_fork(after_in_child=FACADE._forget_after_fork)


class WorkerRunner:
    """Serves one ``run_sync()``: calls from its worker thread run on the awaiting loop."""

    __slots__ = ("thread_id",)

    def __init__(self) -> None:
        self.thread_id: int | None = None

    def may_block(self) -> bool:
        return threading.get_ident() == self.thread_id

    def call(self, fn: Callable[_P, Awaitable[_T]], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        if not self.may_block():
            raise exc.InvalidRequestError(
                "This blocking Session was handed to a run_sync() function; only the thread "
                "running that function may use it, and only while run_sync() runs."
            )
        return _clean_context().run(anyio.from_thread.run, _invoke, fn, args, kwargs)


class ConnectionWorkerRunner:
    """Serves one ``AsyncConnection.run_sync()``: calls from its worker thread run on
    the awaiting loop, each on behalf of the run_sync() that holds the connection."""

    __slots__ = ("connection", "thread_id")

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection
        self.thread_id: int | None = None

    def may_block(self) -> bool:
        return threading.get_ident() == self.thread_id

    def call(self, fn: Callable[_P, Awaitable[_T]], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        if not self.may_block():
            raise exc.InvalidRequestError(
                "This blocking Connection was handed to a run_sync() function; only the "
                "thread running that function may use it, and only while run_sync() runs."
            )
        # A call started after run_sync() was cancelled would not be cancelled
        # itself (anyio cancels only the tasks present when it strikes), so a
        # loop of calls would never end: refuse it here.
        anyio.from_thread.check_cancelled()
        as_view = self.connection._as_view
        result: _T = _clean_context().run(
            anyio.from_thread.run, _invoke, as_view, (fn, *args), kwargs
        )
        return result


def _clean_context() -> contextvars.Context:
    """The caller's context without the implicit loader, for the tasks a call starts."""
    context = contextvars.copy_context()
    context.run(implicit_loader.set, None)
    return context


# The runner that drives each session used through the facade or run_sync().
drivers: weakref.WeakKeyDictionary[AsyncSession, Runner] = weakref.WeakKeyDictionary()


def install_loader() -> None:
    """Let the current thread (context) load unloaded attributes of driven sessions."""
    if implicit_loader.get() is not load_on_access:
        implicit_loader.set(load_on_access)


def load_on_access(state: InstanceState, key: str) -> Any:
    """The implicit loader: load ``key`` of ``state`` now if blocking is allowed here."""
    session = state.session
    runner = drivers.get(session) if session is not None else None
    if runner is None or not runner.may_block():
        # Exactly what happens without this loader, so that code which never used
        # the facade behaves the same in a thread that did (detached objects too).
        raise state.unloaded_error(key)
    runner.call(_load_attribute, session, state, key)
    return state.dict[key]


async def _load_attribute(session: AsyncSession, state: InstanceState, key: str) -> None:
    with session._operation("load"):
        if key not in state.dict:
            await session._load_attributes(state, [key], None, refresh=False)
