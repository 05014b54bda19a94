"""The minimal blocking view of an AsyncConnection that ``run_sync(fn)`` hands to ``fn``
when the sync facade has not installed its hook (which hands over a full
``asyncsession.sync.Connection`` instead; see ``AsyncConnection.run_sync``).

``fn`` runs in a worker thread (``anyio.to_thread``). Each view method hops
back to the connection's event loop with ``anyio.from_thread.run`` and waits
there for the async method of the same name, run on behalf of the
``run_sync()`` operation that holds the connection. So blocking code, such as
``metadata.create_all(conn)``, drives the same connection and transaction, and
no greenlet is involved. A view is valid only while its ``run_sync()`` runs.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.from_thread

from asyncsession.engine.result import Result, ScalarResult
from asyncsession.sql.compiler import Dialect
from asyncsession.sql.elements import ClauseElement

if TYPE_CHECKING:
    from asyncsession.engine.base import AsyncConnection, AsyncEngine, AsyncTransaction

__all__ = ["SyncConnectionView", "SyncTransactionView"]

_T = TypeVar("_T")


class SyncConnectionView:
    """Blocking ``execute``/``exec_driver_sql``/``scalar``/``scalars``/``commit``/
    ``rollback``/``begin_nested`` on the AsyncConnection running ``run_sync()``."""

    __slots__ = ("_connection",)

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    @property
    def dialect(self) -> Dialect:
        return self._connection.dialect

    @property
    def engine(self) -> AsyncEngine:
        return self._connection.engine

    def _wait(self, fn: Callable[..., Awaitable[_T]], *args: Any, **kwargs: Any) -> _T:
        # A call started after run_sync() was cancelled would not be cancelled
        # itself (anyio delivers a cancellation only to the tasks present when
        # it strikes), so a loop of calls would never end: refuse it here.
        anyio.from_thread.check_cancelled()
        return anyio.from_thread.run(
            functools.partial(self._connection._as_view, fn, *args, **kwargs)
        )

    def execute(
        self,
        statement: ClauseElement,
        parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        *,
        execution_options: Mapping[str, Any] | None = None,
    ) -> Result[Any]:
        return self._wait(
            self._connection.execute, statement, parameters, execution_options=execution_options
        )

    def exec_driver_sql(self, statement: str, parameters: Any = None) -> Result[Any]:
        return self._wait(self._connection.exec_driver_sql, statement, parameters)

    def scalar(self, statement: ClauseElement, parameters: Mapping[str, Any] | None = None) -> Any:
        return self.execute(statement, parameters).scalar()

    def scalars(
        self, statement: ClauseElement, parameters: Mapping[str, Any] | None = None
    ) -> ScalarResult[Any]:
        return self.execute(statement, parameters).scalars()

    def commit(self) -> None:
        self._wait(self._connection.commit)

    def rollback(self) -> None:
        self._wait(self._connection.rollback)

    def in_transaction(self) -> bool:
        return self._connection.in_transaction()

    def begin_nested(self) -> SyncTransactionView:
        """Start a savepoint now; use as ``with view.begin_nested():`` or end it explicitly."""
        transaction = self._wait(self._connection.begin_nested().start)
        return SyncTransactionView(self, transaction)


class SyncTransactionView:
    """A savepoint begun through a :class:`SyncConnectionView`."""

    __slots__ = ("_transaction", "_view")

    def __init__(self, view: SyncConnectionView, transaction: AsyncTransaction) -> None:
        self._view = view
        self._transaction = transaction

    @property
    def is_active(self) -> bool:
        return self._transaction.is_active

    def commit(self) -> None:
        self._view._wait(self._transaction.commit)

    def rollback(self) -> None:
        self._view._wait(self._transaction.rollback)

    def __enter__(self) -> SyncTransactionView:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self._transaction.is_active:
            return
        if exc_type is None:
            self.commit()
        else:
            self.rollback()
