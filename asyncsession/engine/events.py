"""Events: ``listen(target, "name", fn)`` and ``@listens_for(target, "name")``.

A target (engine, pool, later the ORM's sessions) owns one :class:`Dispatcher`
per group of event names and says which one holds a name through
``_dispatcher_for(name)``. An engine, for instance, hands pool events
(``connect``, ``checkout``, ``checkin``) to its pool's dispatcher.

Rules:

- A listener is a plain function or a coroutine function; coroutine listeners
  are awaited in turn, in the order they were added, after the parent's.
- A dispatcher may have a parent (an engine made by ``execution_options()``
  has its origin's), whose listeners run first; adding to a child never
  changes the parent.
- An exception raised by a listener propagates to the code that fired the
  event (``handle_error`` listeners may raise a different exception this way).
- Firing an event nobody listens to costs one dict lookup.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import attrs

from asyncsession import exc

__all__ = [
    "Dispatcher",
    "ExceptionContext",
    "contains",
    "listen",
    "listens_for",
    "remove",
]

_F = TypeVar("_F", bound=Callable[..., Any])


class _EventTarget(Protocol):
    def _dispatcher_for(self, identifier: str) -> Dispatcher: ...


class Dispatcher:
    """The listeners of one target for a fixed set of event names."""

    __slots__ = ("_listeners", "names", "parent", "sync_only")

    def __init__(
        self,
        names: frozenset[str],
        parent: Dispatcher | None = None,
        sync_only: frozenset[str] = frozenset(),
    ) -> None:
        self.names = names
        self.parent = parent
        # Events fired from plain (non-async) code, with fire_sync(): their listeners
        # must be plain functions.
        self.sync_only = sync_only
        self._listeners: dict[str, list[Callable[..., Any]]] = {}

    def _check(self, identifier: str) -> None:
        if identifier not in self.names:
            raise exc.ArgumentError(
                f"No event named {identifier!r} here; known events: {sorted(self.names)}"
            )

    def add(self, identifier: str, fn: Callable[..., Any]) -> None:
        self._check(identifier)
        if identifier in self.sync_only and inspect.iscoroutinefunction(fn):
            raise exc.ArgumentError(
                f"{identifier!r} fires in plain (non-async) code, such as session.add() "
                f"beginning a transaction: its listeners must be plain functions, and "
                f"{getattr(fn, '__qualname__', fn)!r} is a coroutine function"
            )
        self._listeners.setdefault(identifier, []).append(fn)

    def remove(self, identifier: str, fn: Callable[..., Any]) -> None:
        self._check(identifier)
        listeners = self._listeners.get(identifier, [])
        if fn not in listeners:
            raise exc.InvalidRequestError(f"{fn!r} is not listening to {identifier!r} here")
        listeners.remove(fn)
        if not listeners:
            del self._listeners[identifier]

    def contains(self, identifier: str, fn: Callable[..., Any]) -> bool:
        self._check(identifier)
        return fn in self._listeners.get(identifier, ())

    def listeners(self, identifier: str) -> list[Callable[..., Any]]:
        """Every listener for ``identifier``, the parent's first."""
        own = self._listeners.get(identifier, [])
        if self.parent is None:
            return own
        return self.parent.listeners(identifier) + own

    def has(self, identifier: str) -> bool:
        """True when firing ``identifier`` would call anything."""
        return identifier in self._listeners or (
            self.parent is not None and self.parent.has(identifier)
        )

    def fire_sync(self, identifier: str, *args: Any) -> None:
        """Call every listener of an event fired from plain code (``sync_only``)."""
        for fn in self.listeners(identifier):
            result = fn(*args)
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()
                raise exc.InvalidRequestError(
                    f"A listener of {identifier!r} returned an awaitable; the event fires "
                    "in plain (non-async) code, so nothing would await it"
                )

    async def fire(self, identifier: str, *args: Any) -> None:
        """Call every listener with ``args``, awaiting the coroutine ones."""
        for fn in self.listeners(identifier):
            result = fn(*args)
            if inspect.isawaitable(result):
                await result


@attrs.define(eq=False, slots=True)
class ExceptionContext:
    """What a ``handle_error`` listener receives.

    ``original_exception`` is the driver's exception, ``wrapped_exception`` the
    :mod:`asyncsession.exc` error about to be raised; ``is_disconnect`` says the
    connection was found unusable (it is invalidated after the listeners ran).
    """

    connection: Any
    statement: str | None
    parameters: Any
    original_exception: BaseException
    wrapped_exception: exc.DBAPIError
    is_disconnect: bool


def listen(target: _EventTarget, identifier: str, fn: Callable[..., Any]) -> None:
    """Call ``fn`` (a function or coroutine function) whenever ``identifier`` fires on ``target``.

    Raises :class:`~asyncsession.exc.ArgumentError` naming the known events when
    ``target`` has no event ``identifier``.
    """
    _dispatcher(target, identifier).add(identifier, fn)


def listens_for(target: _EventTarget, identifier: str) -> Callable[[_F], _F]:
    """Decorator form of :func:`listen`."""

    def decorate(fn: _F) -> _F:
        listen(target, identifier, fn)
        return fn

    return decorate


def remove(target: _EventTarget, identifier: str, fn: Callable[..., Any]) -> None:
    """Stop calling ``fn``; raises InvalidRequestError when it was not listening."""
    _dispatcher(target, identifier).remove(identifier, fn)


def contains(target: _EventTarget, identifier: str, fn: Callable[..., Any]) -> bool:
    """True when ``fn`` listens to ``identifier`` on ``target`` itself."""
    return _dispatcher(target, identifier).contains(identifier, fn)


def _dispatcher(target: Any, identifier: str) -> Dispatcher:
    dispatcher_for = getattr(target, "_dispatcher_for", None)
    if dispatcher_for is None:
        raise exc.ArgumentError(f"{target!r} does not take event listeners")
    dispatcher: Dispatcher = dispatcher_for(identifier)
    return dispatcher
