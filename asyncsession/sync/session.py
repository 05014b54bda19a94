"""The blocking Session, sessionmaker and scoped_session, and ``AsyncSession.run_sync``.

How this works:

* A :class:`Session` wraps an :class:`~asyncsession.AsyncSession`
  (``session.async_session``) and a runner. IO methods are one
  ``runner.call`` of the async method of the same name; methods without IO
  (``add``, ``expire``, ``in_transaction``...) call the async session
  directly. There is one identity map, one transaction: the AsyncSession's.
* Unloaded attributes load on access (as classic SQLAlchemy): a Session
  registers its AsyncSession in ``_runner.drivers`` and installs the implicit
  loader in the threads that use it. Plain AsyncSessions are never
  registered, so async code keeps raising ``UnloadedAttributeError``.
* ``expire_on_commit`` defaults to True here, as SQLAlchemy's blocking
  Session: reading an attribute after ``commit()`` simply loads it again.
* ``await async_session.run_sync(fn)`` (the AsyncSession method calls
  :func:`_run_in_worker`, installed below) runs ``fn`` in an anyio worker
  thread with a Session over the same AsyncSession whose runner hops back to
  the awaiting loop.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import anyio.to_thread

from asyncsession import exc
from asyncsession.engine.base import AsyncConnection, AsyncEngine
from asyncsession.engine.events import Dispatcher
from asyncsession.engine.result import Result
from asyncsession.orm import session as _orm_session
from asyncsession.orm.identity import IdentityMap
from asyncsession.orm.session import AsyncSession, SessionFactory
from asyncsession.orm.state import implicit_loader
from asyncsession.orm.transaction import SessionTransaction as AsyncSessionTransaction
from asyncsession.sync._runner import (
    FACADE,
    Runner,
    WorkerRunner,
    drivers,
    install_loader,
    load_on_access,
)
from asyncsession.sync.engine import Connection, Engine
from asyncsession.sync.result import StreamedResult, StreamedScalarResult

__all__ = ["Session", "SessionTransaction", "scoped_session", "sessionmaker"]

_T = TypeVar("_T")
_S = TypeVar("_S", bound="Session")

_Bind = Engine | Connection | AsyncEngine | AsyncConnection


def _unwrap(bind: _Bind) -> AsyncEngine | AsyncConnection:
    """The async object behind a facade bind (async binds pass through)."""
    if isinstance(bind, Engine):
        return bind.async_engine
    if isinstance(bind, Connection):
        return bind.async_connection
    if isinstance(bind, AsyncEngine):
        FACADE.engines.add(bind)  # its connections will live on the facade loop
    return bind


class Session:
    """The blocking ORM session: ``with Session(engine) as session, session.begin(): ...``

    Arguments as :class:`~asyncsession.AsyncSession` (``bind`` may be an
    :class:`Engine` or :class:`Connection` of this package), except that
    ``expire_on_commit`` defaults to True, as in SQLAlchemy's Session. A
    Session belongs to one thread at a time.
    """

    __slots__ = ("__weakref__", "_runner", "async_session")

    def __init__(
        self,
        bind: _Bind | None = None,
        *,
        binds: Mapping[Any, _Bind] | None = None,
        autoflush: bool = True,
        autobegin: bool = True,
        expire_on_commit: bool = True,
        info: dict[Any, Any] | None = None,
        join_transaction_mode: str = "conditional_savepoint",
        twophase: bool = False,
        _parent_dispatch: Dispatcher | None = None,
    ) -> None:
        async_session = AsyncSession(
            None if bind is None else _unwrap(bind),
            binds=None if binds is None else {key: _unwrap(b) for key, b in binds.items()},
            autoflush=autoflush,
            autobegin=autobegin,
            expire_on_commit=expire_on_commit,
            info=info,
            join_transaction_mode=join_transaction_mode,
            twophase=twophase,
            _parent_dispatch=_parent_dispatch,
        )
        self.async_session = async_session
        self._runner: Runner = FACADE
        drivers[async_session] = FACADE
        install_loader()

    @classmethod
    def _over(cls, async_session: AsyncSession, runner: Runner) -> Session:
        """A Session driving an existing AsyncSession through ``runner`` (which the
        caller registers in ``drivers``)."""
        session = cls.__new__(cls)
        session.async_session = async_session
        session._runner = runner
        return session

    # -- context management ------------------------------------------------------------
    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _dispatcher_for(self, identifier: str) -> Dispatcher:
        return self.async_session._dispatcher_for(identifier)

    # -- options and collections (no IO) -----------------------------------------------
    @property
    def bind(self) -> Engine | Connection | None:
        return self._wrap_bind(self.async_session.bind)

    @property
    def info(self) -> dict[Any, Any]:
        return self.async_session.info

    @property
    def autoflush(self) -> bool:
        return self.async_session.autoflush

    @autoflush.setter
    def autoflush(self, value: bool) -> None:
        self.async_session.autoflush = value

    @property
    def expire_on_commit(self) -> bool:
        return self.async_session.expire_on_commit

    @expire_on_commit.setter
    def expire_on_commit(self, value: bool) -> None:
        self.async_session.expire_on_commit = value

    @property
    def identity_map(self) -> IdentityMap:
        return self.async_session.identity_map

    @property
    def new(self) -> list[Any]:
        """Pending objects, in the order they were added."""
        return self.async_session.new

    @property
    def dirty(self) -> list[Any]:
        """Persistent objects with attribute changes."""
        return self.async_session.dirty

    @property
    def deleted(self) -> list[Any]:
        """Objects marked for deletion at the next flush."""
        return self.async_session.deleted

    @property
    def is_active(self) -> bool:
        return self.async_session.is_active

    @property
    @contextlib.contextmanager
    def no_autoflush(self) -> Iterator[Session]:
        """``with session.no_autoflush:`` queries inside do not flush first."""
        with self.async_session.no_autoflush:
            yield self

    def __contains__(self, obj: object) -> bool:
        return obj in self.async_session

    def __iter__(self) -> Iterator[Any]:
        return iter(self.async_session)

    def is_modified(self, obj: Any) -> bool:
        return self.async_session.is_modified(obj)

    def add(self, obj: Any) -> None:
        """Make a transient object pending (or re-attach a detached one). No IO."""
        self.async_session.add(obj)

    def add_all(self, objects: Iterable[Any]) -> None:
        self.async_session.add_all(objects)

    def expunge(self, obj: Any) -> None:
        self.async_session.expunge(obj)

    def expunge_all(self) -> None:
        self.async_session.expunge_all()

    def expire(self, obj: Any, attribute_names: Iterable[str] | None = None) -> None:
        """Drop loaded values; the next access loads them again."""
        self.async_session.expire(obj, attribute_names)

    def expire_all(self) -> None:
        self.async_session.expire_all()

    def get_bind(self, mapper: Any = None, clause: Any = None) -> Engine | Connection:
        bind = self._wrap_bind(self.async_session.get_bind(mapper, clause))
        assert bind is not None
        return bind

    def _wrap_bind(self, bind: AsyncEngine | AsyncConnection | None) -> Engine | Connection | None:
        if isinstance(bind, AsyncEngine):
            return Engine._for(bind)
        if isinstance(bind, AsyncConnection):
            return Connection(Engine._for(bind.engine), bind, self._runner)
        return None

    # -- transactions --------------------------------------------------------------------
    def in_transaction(self) -> bool:
        return self.async_session.in_transaction()

    def in_nested_transaction(self) -> bool:
        return self.async_session.in_nested_transaction()

    def get_transaction(self) -> SessionTransaction | None:
        txn = self.async_session.get_transaction()
        return None if txn is None else SessionTransaction(self, txn, None)

    def get_nested_transaction(self) -> SessionTransaction | None:
        txn = self.async_session.get_nested_transaction()
        return None if txn is None else SessionTransaction(self, txn, None)

    def begin(self) -> SessionTransaction:
        """Begin the transaction: ``with session.begin():`` commits at the block's end.

        Raises InvalidRequestError when one is already begun (see AsyncSession.begin).
        """
        context = self.async_session.begin()
        txn = self.async_session.get_transaction()
        assert txn is not None
        return SessionTransaction(self, txn, context)

    def begin_nested(self) -> SessionTransaction:
        """Flush and begin a SAVEPOINT now; ``with session.begin_nested():`` releases it
        at the block's end, or rolls it back when the block raises."""
        context = self.async_session.begin_nested()
        txn = self._runner.call(context.__aenter__)
        return SessionTransaction(self, txn, context)

    def flush(self, objects: Sequence[Any] | None = None) -> None:
        """Write pending changes to the database in the current transaction."""
        self._runner.call(self.async_session.flush, objects)

    def prepare(self) -> None:
        """Flush and prepare every connection for two-phase commit (``twophase=True``)."""
        self._runner.call(self.async_session.prepare)

    def commit(self) -> None:
        """Flush, then commit the outermost transaction."""
        self._runner.call(self.async_session.commit)

    def rollback(self) -> None:
        """Roll back the outermost transaction; changed objects are expired."""
        self._runner.call(self.async_session.rollback)

    def close(self) -> None:
        """Roll back any transaction, release connections and detach every object."""
        self._runner.call(self.async_session.close)

    def reset(self) -> None:
        self._runner.call(self.async_session.reset)

    def invalidate(self) -> None:
        self._runner.call(self.async_session.invalidate)

    def connection(
        self,
        bind_arguments: Mapping[str, Any] | None = None,
        execution_options: Mapping[str, Any] | None = None,
        **kw: Any,
    ) -> Connection:
        """The connection of the current transaction (begun if needed); don't close it."""
        async_connection = self._runner.call(
            self.async_session.connection, bind_arguments, execution_options, **kw
        )
        return Connection(Engine._for(async_connection.engine), async_connection, self._runner)

    # -- objects and queries -------------------------------------------------------------
    def delete(self, obj: Any) -> None:
        """Mark a persistent object for deletion at the next flush."""
        self._runner.call(self.async_session.delete, obj)

    def execute(
        self,
        statement: Any,
        params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        *,
        execution_options: Mapping[str, Any] | None = None,
        bind_arguments: Mapping[str, Any] | None = None,
    ) -> Result[Any]:
        """Execute a statement; ORM SELECTs return objects. The Result is buffered."""
        return self._runner.call(
            self.async_session.execute,
            statement,
            params,
            execution_options=execution_options,
            bind_arguments=bind_arguments,
        )

    def scalar(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        return self._runner.call(self.async_session.scalar, statement, params, **kw)

    def scalars(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        return self._runner.call(self.async_session.scalars, statement, params, **kw)

    def stream(
        self,
        statement: Any,
        params: Mapping[str, Any] | None = None,
        *,
        execution_options: Mapping[str, Any] | None = None,
        bind_arguments: Mapping[str, Any] | None = None,
    ) -> StreamedResult[Any]:
        """A result read from a server-side cursor a chunk per call (see
        ``AsyncSession.stream``); ``with session.stream(stmt) as result:`` closes it."""
        result = self._runner.call(
            self.async_session.stream,
            statement,
            params,
            execution_options=execution_options,
            bind_arguments=bind_arguments,
        )
        return StreamedResult._over(result, self._runner)

    def stream_scalars(
        self,
        statement: Any,
        params: Mapping[str, Any] | None = None,
        *,
        execution_options: Mapping[str, Any] | None = None,
        bind_arguments: Mapping[str, Any] | None = None,
    ) -> StreamedScalarResult[Any]:
        """As :meth:`stream`, yielding the first entity or column of each row."""
        result = self._runner.call(
            self.async_session.stream_scalars,
            statement,
            params,
            execution_options=execution_options,
            bind_arguments=bind_arguments,
        )
        return StreamedScalarResult._over(result, self._runner)

    def get(
        self,
        entity: type[_T],
        ident: Any,
        *,
        options: Sequence[Any] = (),
        populate_existing: bool = False,
        with_for_update: Any = None,
        execution_options: Mapping[str, Any] | None = None,
    ) -> _T | None:
        """The object with this primary key: from the identity map, else one SELECT."""
        return self._runner.call(
            self.async_session.get,
            entity,
            ident,
            options=options,
            populate_existing=populate_existing,
            with_for_update=with_for_update,
            execution_options=execution_options,
        )

    def get_one(self, entity: type[_T], ident: Any, **kw: Any) -> _T:
        """As get(); raises NoResultFound when there is no such row."""
        get_one: Callable[..., Awaitable[_T]] = self.async_session.get_one
        return self._runner.call(get_one, entity, ident, **kw)

    def refresh(
        self,
        obj: Any,
        attribute_names: Iterable[str] | None = None,
        with_for_update: Any = None,
    ) -> None:
        """Expire, then reload attributes now (see AsyncSession.refresh)."""
        self._runner.call(self.async_session.refresh, obj, attribute_names, with_for_update)

    def load_relationship(
        self, objects: Iterable[Any], attribute: Any, *, populate_existing: bool = False
    ) -> None:
        """Load relationship ``attribute`` of many objects in one query (see AsyncSession)."""
        self._runner.call(
            self.async_session.load_relationship,
            objects,
            attribute,
            populate_existing=populate_existing,
        )

    def merge(self, obj: _T, load: bool = True, options: Sequence[Any] = ()) -> _T:
        """Copy ``obj``'s state onto the persistent object with its key; return that."""
        return self._runner.call(self.async_session.merge, obj, load, options)

    def __repr__(self) -> str:
        return f"<Session over {self.async_session!r}>"


class SessionTransaction:
    """A Session's transaction or savepoint (what ``begin()``/``begin_nested()`` return).

    As a context manager it ends as the ``async with`` form does: commit (or
    release) when the block succeeded, roll back when it raised.
    """

    __slots__ = ("_context", "async_transaction", "session")

    def __init__(
        self, session: Session, async_transaction: AsyncSessionTransaction, context: Any
    ) -> None:
        self.session = session
        self.async_transaction = async_transaction
        self._context = context

    @property
    def is_active(self) -> bool:
        return self.async_transaction.is_active

    @property
    def nested(self) -> bool:
        return self.async_transaction.nested

    def commit(self) -> None:
        """Release this savepoint, or commit the root (as ``session.commit()``)."""
        self.session._runner.call(self.async_transaction.commit)

    def rollback(self) -> None:
        """Roll back to this savepoint, or roll back the root (as ``session.rollback()``)."""
        self.session._runner.call(self.async_transaction.rollback)

    def __enter__(self) -> SessionTransaction:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._context is not None:
            self.session._runner.call(self._context.__aexit__, exc_type, exc_value, traceback)
        elif self.async_transaction.is_active:
            if exc_type is None:
                self.commit()
            else:
                self.rollback()

    def __repr__(self) -> str:
        kind = "savepoint" if self.nested else "root"
        return f"<SessionTransaction {kind} {self.async_transaction.state.name}>"


class sessionmaker(SessionFactory[_S]):
    """A factory of Sessions with fixed options: ``Session = sessionmaker(engine)``.

    ``Session()`` makes a session; ``with Session.begin() as session:`` makes
    one in a transaction that commits when the block ends. Listeners added to
    the factory apply to every session it makes.
    """

    def __init__(
        self,
        bind: _Bind | None = None,
        *,
        class_: type[_S] = Session,  # type: ignore[assignment]
        **kw: Any,
    ) -> None:
        # The facade Session has no class-level listeners of its own: AsyncSession's apply.
        super().__init__(bind, class_, kw, AsyncSession._dispatcher_for("before_flush"))

    @contextlib.contextmanager
    def begin(self) -> Iterator[_S]:
        with self() as session, session.begin():
            yield session


class scoped_session(Generic[_S]):
    """One Session per scope, by default per thread: ``Session()`` returns it.

    Attributes and methods are proxied to the current scope's session;
    ``Session.remove()`` closes it and forgets it.
    """

    def __init__(
        self, session_factory: sessionmaker[_S], scopefunc: Callable[[], Any] | None = None
    ) -> None:
        self.session_factory = session_factory
        self.scopefunc = scopefunc
        self._local = threading.local()
        self._registry: dict[Any, _S] = {}

    def _current(self) -> _S | None:
        if self.scopefunc is None:
            session: _S | None = getattr(self._local, "session", None)
            return session
        return self._registry.get(self.scopefunc())

    def __call__(self, **kw: Any) -> _S:
        session = self._current()
        if session is None:
            session = self.session_factory(**kw)
            if self.scopefunc is None:
                self._local.session = session
            else:
                self._registry[self.scopefunc()] = session
        elif kw:
            raise exc.InvalidRequestError(
                "This scope already has a session; options can only be given when it is made"
            )
        return session

    def has(self) -> bool:
        return self._current() is not None

    def remove(self) -> None:
        """Close the current scope's session (if any) and forget it."""
        session = self._current()
        if session is None:
            return
        if self.scopefunc is None:
            del self._local.session
        else:
            del self._registry[self.scopefunc()]
        session.close()

    def configure(self, **kw: Any) -> None:
        if self.has():
            raise exc.InvalidRequestError(
                "This scope already has a session; configure() applies to sessions made later"
            )
        self.session_factory.configure(**kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self(), name)


async def _run_in_worker(
    async_session: AsyncSession,
    fn: Callable[..., _T],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> _T:
    """``AsyncSession.run_sync``: ``fn(blocking_session, *args, **kwargs)`` in a worker thread."""
    runner = WorkerRunner()
    view = Session._over(async_session, runner)
    previous = drivers.get(async_session)
    drivers[async_session] = runner

    def work() -> _T:
        runner.thread_id = threading.get_ident()
        implicit_loader.set(load_on_access)  # the worker's own context copy
        return fn(view, *args, **kwargs)

    try:
        return await anyio.to_thread.run_sync(work)
    finally:
        runner.thread_id = None
        if previous is None:
            drivers.pop(async_session, None)
        else:
            drivers[async_session] = previous


_orm_session._run_sync_hook = _run_in_worker
