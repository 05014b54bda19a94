"""The session's transaction: a declared state machine plus the rollback snapshot.

How this works:

* :class:`TxState` lists the states; ``TRANSITIONS`` says, for every public
  operation, the states it may start from and the state it moves to. One
  function, :func:`check_transition`, enforces the table, so an illegal call
  fails naming the operation and the current state. It does no IO and is
  tested without a database.
* While a coroutine of the session runs, the session records the operation
  *in progress*; a second task entering meanwhile gets ``ConcurrentUseError``
  at once (see ``session.py``). That is the conflict detector; nothing queues.
* A :class:`SessionTransaction` is the root transaction or a savepoint
  (``nested``). It owns the connections it began and remembers what happened
  inside it, so a rollback can restore SQLAlchemy's outcome: objects that
  became persistent inside it turn transient again, objects deleted inside it
  are restored, objects changed inside it are expired, and primary key changes
  are undone in the identity map.
* ``await level.commit()`` / ``await level.rollback()`` (the object that
  ``begin()`` and ``begin_nested()`` return) hand over to the session, which
  does the IO: a savepoint is released or rolled back (with any savepoints
  still open inside it), the root acts as ``session.commit()``/``rollback()``.
* A session bound to a connection that is already in a transaction joins it
  as ``join_transaction_mode`` says (:func:`join_mode`): in a savepoint of its
  own, or in the connection's transaction itself, through a
  :class:`JoinedTransaction` that decides what the session's commit, rollback
  and close do to a transaction the session did not begin.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

import anyio.lowlevel

from asyncsession import exc

if TYPE_CHECKING:
    from asyncsession.orm.state import InstanceState


class TxState(enum.Enum):
    ACTIVE = "active"
    PREPARED = "prepared"
    COMMITTED = "committed"
    DEACTIVE = "deactive"
    CLOSED = "closed"


_ANY = frozenset(TxState)
_OPEN = frozenset({TxState.ACTIVE})

# operation -> (states it may start from, state it ends in; None = unchanged)
TRANSITIONS: dict[str, tuple[frozenset[TxState], TxState | None]] = {
    "execute": (_OPEN, None),
    "flush": (_OPEN, None),
    "connection": (_OPEN, None),
    "begin_nested": (_OPEN, None),
    "prepare": (_OPEN, TxState.PREPARED),
    "commit": (frozenset({TxState.ACTIVE, TxState.PREPARED}), TxState.COMMITTED),
    "rollback": (frozenset({TxState.ACTIVE, TxState.PREPARED, TxState.DEACTIVE}), TxState.CLOSED),
    "close": (_ANY, TxState.CLOSED),
    "fail": (_OPEN, TxState.DEACTIVE),
}


def check_transition(operation: str, state: TxState, error: BaseException | None = None) -> None:
    """Raise unless ``operation`` may start in ``state``.

    A DEACTIVE transaction (an earlier error) raises ``PendingRollbackError``
    naming that error; other illegal calls raise ``IllegalStateChangeError``.
    """
    allowed, _ = TRANSITIONS[operation]
    if state in allowed:
        return
    if state is TxState.DEACTIVE:
        original = f" Original error: {type(error).__name__}: {error}" if error else ""
        raise exc.PendingRollbackError(
            f"Can't {operation}: this session's transaction was rolled back after an earlier "
            f"error or cancellation (state: DEACTIVE). Call `await session.rollback()` first."
            f"{original}"
        )
    raise exc.IllegalStateChangeError(
        f"Can't {operation}: the transaction is {state.name}; {operation}() may only be "
        f"called when it is {' or '.join(sorted(s.name for s in allowed))}"
    )


JOIN_TRANSACTION_MODES = frozenset(
    {"conditional_savepoint", "create_savepoint", "rollback_only", "control_fully"}
)


def join_mode(mode: str, in_savepoint: bool) -> str:
    """The mode in effect for a connection found in a transaction (SQLAlchemy's rules).

    ``conditional_savepoint`` (the default) means ``create_savepoint`` when the
    connection is inside a savepoint, else ``rollback_only``: a savepoint is only
    assumed to work where the caller already uses one.
    """
    if mode == "conditional_savepoint":
        return "create_savepoint" if in_savepoint else "rollback_only"
    return mode


class JoinedTransaction:
    """A connection's transaction (or its innermost savepoint) that the session joined.

    ``control_fully``: the session's commit commits it, rollback and close roll
    it back. ``rollback_only``: commit leaves it alone (the flushed rows stay
    in it, for its owner to commit), rollback rolls it back, close leaves it
    alone.
    """

    __slots__ = ("commits", "transaction")

    def __init__(self, transaction: Any, commits: bool) -> None:
        self.transaction = transaction
        self.commits = commits

    @property
    def is_active(self) -> bool:
        return bool(self.transaction.is_active)

    async def commit(self) -> None:
        if self.commits:
            await self.transaction.commit()
        else:
            await anyio.lowlevel.checkpoint_if_cancelled()

    async def rollback(self) -> None:
        await self.transaction.rollback()

    async def close(self) -> None:
        if self.commits:
            await self.transaction.rollback()
        else:
            await anyio.lowlevel.checkpoint_if_cancelled()

    def __repr__(self) -> str:
        mode = "control_fully" if self.commits else "rollback_only"
        return f"<JoinedTransaction {mode} {self.transaction!r}>"


def target_state(operation: str, current: TxState) -> TxState:
    _, target = TRANSITIONS[operation]
    return current if target is None else target


class SessionTransaction:
    """One level of the session's transaction: the root, or a SAVEPOINT."""

    __slots__ = (
        "connections",
        "deleted",
        "dirty",
        "error",
        "inserted",
        "key_switches",
        "nested",
        "origin",
        "parent",
        "pending",
        "session",
        "state",
    )

    def __init__(
        self, session: Any, parent: SessionTransaction | None, nested: bool, origin: str
    ) -> None:
        self.session = session
        self.parent = parent
        self.nested = nested
        self.origin = origin  # "autobegin", "begin" or "begin_nested"
        self.state = TxState.ACTIVE
        self.error: BaseException | None = None
        # bind -> (AsyncConnection, its AsyncTransaction, we opened the connection)
        self.connections: dict[Any, tuple[Any, Any, bool]] = {}
        # Snapshot of what happened inside this level, for rollback.
        self.pending: dict[InstanceState, None] = {}  # added (pending) while this level ran
        self.inserted: dict[InstanceState, None] = {}  # made persistent by a flush here
        self.deleted: dict[InstanceState, None] = {}  # deleted by a flush here
        self.dirty: set[InstanceState] = set()  # updated by a flush here
        self.key_switches: dict[InstanceState, tuple[Any, ...]] = {}  # state -> key before

    @property
    def root(self) -> SessionTransaction:
        txn = self
        while txn.parent is not None:
            txn = txn.parent
        return txn

    @property
    def is_active(self) -> bool:
        return self.state is TxState.ACTIVE

    async def commit(self) -> None:
        """Release this savepoint, or commit the root (as ``session.commit()``)."""
        await self.session._end_level(self, commit=True)

    async def rollback(self) -> None:
        """Roll back to this savepoint, or roll back the root (as ``session.rollback()``)."""
        await self.session._end_level(self, commit=False)

    def check(self, operation: str) -> None:
        check_transition(operation, self.state, self.error)

    def move(self, operation: str) -> None:
        self.state = target_state(operation, self.state)

    def fail(self, error: BaseException) -> None:
        """Deactivate this level and every level above it after an error."""
        txn: SessionTransaction | None = self
        while txn is not None:
            if txn.state is TxState.ACTIVE or txn.state is TxState.PREPARED:
                txn.state = TxState.DEACTIVE
                txn.error = error
            txn = txn.parent

    def merge_into_parent(self) -> None:
        """A released savepoint's history becomes its parent's."""
        parent = self.parent
        assert parent is not None
        parent.pending.update(self.pending)
        parent.inserted.update(self.inserted)
        parent.deleted.update(self.deleted)
        parent.dirty |= self.dirty
        for state, old in self.key_switches.items():
            parent.key_switches.setdefault(state, old)

    def __repr__(self) -> str:
        kind = "savepoint" if self.nested else "root"
        return f"<SessionTransaction {kind} {self.state.name}>"
