"""The exception hierarchy of asyncsession.

Every error the library raises derives from :class:`AsyncSessionError`. Names
follow SQLAlchemy's where the concept is the same, so ``except IntegrityError``
ports unchanged::

    AsyncSessionError
    ├── ArgumentError                 bad arguments or declarations, found before IO
    │   └── NoReferenceError
    │       ├── NoReferencedTableError
    │       └── NoReferencedColumnError
    ├── CompileError                  a statement that cannot become SQL
    │   └── UnsupportedCompilationError
    ├── InvalidRequestError           an operation that is illegal in the current state
    │   ├── NoResultFound
    │   ├── MultipleResultsFound
    │   ├── ResourceClosedError       you closed it
    │   ├── PendingRollbackError      a failed transaction awaits rollback()
    │   ├── ConcurrentUseError        two tasks used one session or connection at once
    │   ├── UnloadedAttributeError    async code touched an attribute that is not loaded
    │   ├── IllegalStateChangeError   a method called in a state it may not start from
    │   └── WrongEventLoopError       a connection used from a loop it does not belong to
    ├── TimeoutError                  no pool slot within pool_timeout
    ├── CircularDependencyError       the flush found a cycle it cannot break
    ├── StaleDataError                a versioned UPDATE/DELETE matched the wrong row count
    └── StatementError                a statement failed; carries .statement and .params
        └── DBAPIError                the driver raised; carries .orig
            ├── InterfaceError
            └── DatabaseError
                ├── DataError
                ├── OperationalError  (broken connections: connection_invalidated=True)
                ├── IntegrityError
                ├── InternalError
                ├── ProgrammingError
                └── NotSupportedError

Warnings (``warnings.warn`` categories, not errors)::

    RuntimeWarning
    └── StaleDataWarning              an unversioned DELETE matched fewer rows than expected

Every exception pickles (``__reduce__`` keeps the constructor arguments).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "ArgumentError",
    "AsyncSessionError",
    "CircularDependencyError",
    "CompileError",
    "ConcurrentUseError",
    "DBAPIError",
    "DataError",
    "DatabaseError",
    "IllegalStateChangeError",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "InvalidRequestError",
    "MultipleResultsFound",
    "NoReferenceError",
    "NoReferencedColumnError",
    "NoReferencedTableError",
    "NoResultFound",
    "NotSupportedError",
    "OperationalError",
    "PendingRollbackError",
    "ProgrammingError",
    "ResourceClosedError",
    "StaleDataError",
    "StaleDataWarning",
    "StatementError",
    "TimeoutError",
    "UnloadedAttributeError",
    "UnsupportedCompilationError",
    "WrongEventLoopError",
]


class AsyncSessionError(Exception):
    """The root of every error asyncsession raises."""


class ArgumentError(AsyncSessionError):
    """An argument, declaration or construct is invalid; raised before any IO."""


class NoReferenceError(ArgumentError):
    """A foreign key names something that cannot be found."""


class NoReferencedTableError(NoReferenceError):
    """A foreign key names a table the metadata does not hold."""

    def __init__(self, message: str, table_name: str) -> None:
        super().__init__(message)
        self.table_name = table_name

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.args[0], self.table_name))


class NoReferencedColumnError(NoReferenceError):
    """A foreign key names a column its table does not have."""

    def __init__(self, message: str, table_name: str, column_name: str) -> None:
        super().__init__(message)
        self.table_name = table_name
        self.column_name = column_name

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.args[0], self.table_name, self.column_name))


class CompileError(AsyncSessionError):
    """A statement cannot be turned into SQL for the dialect at hand."""


class UnsupportedCompilationError(CompileError):
    """The dialect has no rendering for this construct."""


class InvalidRequestError(AsyncSessionError):
    """The operation is not valid in the current state of the object."""


class NoResultFound(InvalidRequestError):
    """A result that had to hold a row held none."""


class MultipleResultsFound(InvalidRequestError):
    """A result that had to hold at most one row held more."""


class ResourceClosedError(InvalidRequestError):
    """The object (connection, result, session) was closed by its owner."""


class PendingRollbackError(InvalidRequestError):
    """A transaction failed and must be rolled back before it can be used again."""


class ConcurrentUseError(InvalidRequestError):
    """Two tasks used one session or connection at the same time."""


class UnloadedAttributeError(InvalidRequestError):
    """Async code read an attribute whose value is not loaded; no IO was done."""


class IllegalStateChangeError(InvalidRequestError):
    """A method was called in a state it may not start from."""


class WrongEventLoopError(InvalidRequestError):
    """A connection was used from an event loop other than the one that opened it."""


class TimeoutError(AsyncSessionError):
    """No pool slot became free within ``pool_timeout`` seconds."""


class CircularDependencyError(AsyncSessionError):
    """The flush found a dependency cycle it cannot break."""

    def __init__(self, message: str, cycle: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.cycle = tuple(cycle)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.args[0], self.cycle))


class StaleDataError(AsyncSessionError):
    """An UPDATE or DELETE matched a different number of rows than expected."""


class StaleDataWarning(RuntimeWarning):
    """A DELETE without a version check matched fewer rows than it deleted objects.

    Another transaction deleted some rows first; the outcome (the rows are
    gone) is the one asked for, so this warns instead of raising, as SQLAlchemy.
    """


class StatementError(AsyncSessionError):
    """Executing a statement failed.

    ``statement`` is the SQL that was sent (or would have been) and ``params``
    its parameters; ``orig`` the underlying exception, if any.
    """

    def __init__(
        self,
        message: str,
        statement: str | None = None,
        params: Any = None,
        orig: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.statement = statement
        self.params = params
        self.orig = orig

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.args[0], self.statement, self.params, self.orig))

    def __str__(self) -> str:
        text = str(self.args[0]) if self.args else ""
        if self.statement is not None:
            text += f"\n[SQL: {self.statement}]"
            if self.params:
                text += f"\n[parameters: {self.params!r}]"
        return text


class DBAPIError(StatementError):
    """The database driver raised; ``orig`` is the driver's exception.

    ``connection_invalidated`` is True when the error meant the connection was
    unusable and it was discarded rather than returned to the pool.
    ``sqlstate`` is the SQLSTATE code when the driver reports one.
    """

    def __init__(
        self,
        message: str,
        statement: str | None = None,
        params: Any = None,
        orig: BaseException | None = None,
        connection_invalidated: bool = False,
        sqlstate: str | None = None,
    ) -> None:
        super().__init__(message, statement, params, orig)
        self.connection_invalidated = connection_invalidated
        self.sqlstate = sqlstate

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            type(self),
            (
                self.args[0],
                self.statement,
                self.params,
                self.orig,
                self.connection_invalidated,
                self.sqlstate,
            ),
        )


class InterfaceError(DBAPIError):
    """The driver's interface, not the database, failed."""


class DatabaseError(DBAPIError):
    """The database reported an error."""


class DataError(DatabaseError):
    """A value was out of range or of the wrong form for its column."""


class OperationalError(DatabaseError):
    """The database could not run the operation (lost connection, lock timeout...)."""


class IntegrityError(DatabaseError):
    """A constraint (unique, foreign key, not null, check) was violated."""


class InternalError(DatabaseError):
    """The database reported an internal inconsistency."""


class ProgrammingError(DatabaseError):
    """The SQL was wrong: syntax error, unknown table or column, wrong arity."""


class NotSupportedError(DatabaseError):
    """The database does not support the requested operation."""
