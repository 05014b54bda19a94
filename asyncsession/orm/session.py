"""AsyncSession: identity map, unit of work and transactions, every IO an ``await``.

How this works:

* The session holds the identity map (persistent objects), ``_new`` (pending
  objects, in add order) and ``_deleted`` (objects marked for deletion), and a
  stack of :class:`~asyncsession.orm.transaction.SessionTransaction` levels:
  the root transaction (begun automatically on first use, as SQLAlchemy's
  autobegin) and any savepoints.
* Methods that never touch the database are plain functions (``add``,
  ``expunge``, ``expire``); methods that may are coroutines. Every coroutine
  enters the session's conflict detector: while one runs, another task
  calling in gets ``ConcurrentUseError`` at once, naming the operation in
  progress. The first operation is unharmed.
* A flush plans (pure, ``orm.unitofwork``), then awaits the plan on the
  transaction's connection. Objects move between collections only after the
  plan succeeded. A failure or cancellation deactivates the transaction:
  everything but ``rollback()``/``close()`` then raises ``PendingRollbackError``
  naming the original error.
* Rollback restores SQLAlchemy's outcome from the transaction's snapshot (see
  ``orm.transaction``). Rollback, close and connection release run shielded
  from cancellation with a deadline; the engine terminates a connection whose
  cleanup cannot finish, so no pool slot leaks.
"""

from __future__ import annotations

import contextlib
import itertools
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Generic, Self, TypeVar, overload

import anyio
import anyio.lowlevel

from asyncsession import exc
from asyncsession.engine.base import AsyncConnection, AsyncEngine
from asyncsession.engine.events import Dispatcher
from asyncsession.engine.result import AsyncResult, AsyncScalarResult, Result, ResultMetaData
from asyncsession.orm import loading, strategies
from asyncsession.orm import strategy_options as so
from asyncsession.orm._gcpause import paused
from asyncsession.orm.dependency import sync_relationships
from asyncsession.orm.identity import IdentityMap
from asyncsession.orm.mapper import mapper_for_table
from asyncsession.orm.relationships import (
    MANYTOMANY,
    ONETOMANY,
    RelationshipProperty,
    ensure_configured,
    members,
    relationship_history,
    set_committed,
)
from asyncsession.orm.state import NO_VALUE, InstanceState, instance_state
from asyncsession.orm.transaction import (
    JOIN_TRANSACTION_MODES,
    JoinedTransaction,
    SessionTransaction,
    TxState,
    join_mode,
)
from asyncsession.orm.unitofwork import (
    FlushOutcome,
    execute_flush,
    keys_to_order_deletes,
    plan_flush,
)
from asyncsession.sql.dml import Delete, Update
from asyncsession.sql.elements import ClauseElement, bindparam
from asyncsession.sql.selectable import Select, select

_T = TypeVar("_T")
_S = TypeVar("_S", bound="AsyncSession")
# Execution options stream() passes on to the engine; the rest are the ORM's.
_ENGINE_STREAM_OPTIONS = frozenset({"yield_per", "logging_token"})

SESSION_EVENTS = frozenset(
    {
        "before_flush",
        "after_flush",
        "after_flush_postexec",
        "after_begin",
        "before_commit",
        "after_commit",
        "after_rollback",
        "after_soft_rollback",
        "after_transaction_create",
        "after_transaction_end",
        "do_orm_execute",
    }
)

# Fired from plain code: a transaction begins on add() or on changing an object.
SYNC_SESSION_EVENTS = frozenset({"after_transaction_create"})

_CLEANUP_TIMEOUT = 5.0
_session_ids = itertools.count(1)
_sessions: weakref.WeakValueDictionary[int, AsyncSession] = weakref.WeakValueDictionary()


class _Dispatch:
    """``event.listen(AsyncSession, ...)`` on the class, or on one session."""

    def __get__(self, instance: Any, owner: type) -> Callable[[str], Dispatcher]:
        if instance is None:
            dispatcher = owner.__dict__.get("_class_dispatch")
            if dispatcher is None:
                parent = None
                for base in owner.__mro__[1:]:
                    parent = base.__dict__.get("_class_dispatch")
                    if parent is not None:
                        break
                dispatcher = Dispatcher(SESSION_EVENTS, parent, SYNC_SESSION_EVENTS)
                owner._class_dispatch = dispatcher  # type: ignore[attr-defined]
            return lambda name: dispatcher
        return lambda name: instance._dispatch


class ORMExecuteState:
    """What a ``do_orm_execute`` listener receives."""

    __slots__ = ("execution_options", "parameters", "session", "statement")

    def __init__(
        self,
        session: AsyncSession,
        statement: Any,
        parameters: Any,
        execution_options: Mapping[str, Any],
    ) -> None:
        self.session = session
        self.statement = statement
        self.parameters = parameters
        self.execution_options = execution_options

    @property
    def is_select(self) -> bool:
        return isinstance(self.statement, Select)


class AsyncSession:
    """The async ORM session. ``async with AsyncSession(engine) as session: ...``

    Options as SQLAlchemy's: ``autoflush`` (flush before queries),
    ``autobegin`` (begin on first use), ``expire_on_commit`` (default False,
    the recommended setting for async code), ``binds`` (per class/table
    engines), ``info``, ``join_transaction_mode`` for a session bound to a
    connection that is already in a transaction (``conditional_savepoint``,
    ``create_savepoint``, ``rollback_only``, ``control_fully``), and
    ``twophase`` (PostgreSQL): every connection of a transaction is prepared
    before any is committed.
    """

    _dispatcher_for = _Dispatch()
    _class_dispatch: Dispatcher | None = None

    def __init__(
        self,
        bind: AsyncEngine | AsyncConnection | None = None,
        *,
        binds: Mapping[Any, AsyncEngine | AsyncConnection] | None = None,
        autoflush: bool = True,
        autobegin: bool = True,
        expire_on_commit: bool = False,
        info: dict[Any, Any] | None = None,
        join_transaction_mode: str = "conditional_savepoint",
        twophase: bool = False,
        _parent_dispatch: Dispatcher | None = None,
    ) -> None:
        if join_transaction_mode not in JOIN_TRANSACTION_MODES:
            raise exc.ArgumentError(
                f"join_transaction_mode must be one of {', '.join(sorted(JOIN_TRANSACTION_MODES))}"
                f"; got {join_transaction_mode!r}"
            )
        if twophase:
            for target in (bind, *(binds or {}).values()):
                if target is not None and not target.dialect.supports_two_phase:
                    raise exc.NotSupportedError(
                        f"AsyncSession(twophase=True) needs two-phase commit, which "
                        f"{target.dialect.name} does not have ({target!r}); use PostgreSQL"
                    )
        self.bind = bind
        self._binds: dict[Any, Any] = dict(binds or {})
        self.autoflush = autoflush
        self.autobegin = autobegin
        self.expire_on_commit = expire_on_commit
        self.info: dict[Any, Any] = info if info is not None else {}
        self.join_transaction_mode = join_transaction_mode
        self.twophase = twophase
        self.identity_map = IdentityMap()
        # get()'s row loaders, by id of their plan (kept alive here): see _orm_rows().
        self._kept_loaders: dict[int, tuple[loading.ORMPlan, loading.RowLoader]] = {}
        self._new: dict[InstanceState, Any] = {}
        self._deleted: dict[InstanceState, Any] = {}
        self._transaction: SessionTransaction | None = None
        self._busy: str | None = None
        self._flushing = False
        self._no_autoflush = 0
        self.hash_key = next(_session_ids)
        _sessions[self.hash_key] = self
        class_dispatch = type(self)._dispatcher_for("before_flush")
        self._dispatch = Dispatcher(
            SESSION_EVENTS, _parent_dispatch or class_dispatch, SYNC_SESSION_EVENTS
        )

    # -- context management --------------------------------------------------------
    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- the conflict detector -----------------------------------------------------
    def _operation(self, name: str) -> _Operation:
        """Mark the session busy with ``name`` for the ``with`` block; raise
        ConcurrentUseError if it already is (another task is inside)."""
        return _Operation(self, name)

    def _check_not_busy(self, name: str) -> None:
        if self._busy is not None and not self._flushing:
            raise exc.ConcurrentUseError(
                f"Can't {name}(): this session is busy with {self._busy}() in another task"
            )

    # -- collections ---------------------------------------------------------------
    @property
    def new(self) -> list[Any]:
        """Pending objects, in the order they were added."""
        return list(self._new.values())

    @property
    def deleted(self) -> list[Any]:
        """Objects marked for deletion at the next flush."""
        return list(self._deleted.values())

    @property
    def dirty(self) -> list[Any]:
        """Persistent objects with attribute changes (net of changes set back)."""
        out = []
        for state in list(self.identity_map.modified):
            obj = state.obj_ref()
            if obj is not None and state not in self._deleted and state.changed_keys():
                out.append(obj)
        return out

    def __contains__(self, obj: object) -> bool:
        """True for pending and persistent objects (not for ones deleted in a flush)."""
        state = instance_state(obj)
        return state.session is self and not state._deleted

    def __iter__(self) -> Iterator[Any]:
        return iter([*self._new.values(), *self.identity_map.values()])

    def is_modified(self, obj: Any) -> bool:
        """True when ``obj`` has attribute changes that a flush would write."""
        return bool(instance_state(obj).changed_keys())

    # -- adding and removing ----------------------------------------------------------
    def add(self, obj: Any) -> None:
        """Make a transient object pending (or re-attach a detached one). No IO."""
        self._check_not_busy("add")
        state = instance_state(obj)
        self._attach(state, obj)
        if state.mapper.relationships:
            self._cascade_save(obj)

    def _cascade_add(self, state: InstanceState, obj: Any) -> None:
        """save-update cascade from an attribute event: attach ``obj`` and what it holds."""
        self._attach(state, obj)
        if state.mapper.relationships:
            self._cascade_save(obj)

    def _cascade_save(self, obj: Any) -> None:
        """Attach the objects reachable from ``obj`` along loaded save-update relationships."""
        stack = [obj]
        while stack:
            current = stack.pop()
            d = current.__dict__
            for key in _save_update_keys(instance_state(current).mapper):
                value = d.get(key)
                if value is None:
                    continue
                for item in members(value):
                    istate = instance_state(item)
                    if istate.session is None and not istate._deleted:
                        self._attach(istate, item)
                        stack.append(item)

    def add_all(self, objects: Iterable[Any]) -> None:
        for obj in objects:
            self.add(obj)

    def _attach(self, state: InstanceState, obj: Any) -> None:
        if state.session is self:
            return
        if state.session is not None:
            raise exc.InvalidRequestError(
                f"{_describe(state)} is already attached to another session "
                f"({state.session!r}); expunge it there first, or merge() it here"
            )
        if state._deleted:
            raise exc.InvalidRequestError(
                f"{_describe(state)} was deleted in a flush; it can't be added again"
            )
        if self._transaction is None and self.autobegin:
            # As SQLAlchemy: attaching an object autobegins (no IO yet), so a
            # rollback() before any IO still expunges what was added.
            self._begin("autobegin")
        if state._ident is None:  # no identity key (state.key is None)
            state.session = self
            self._new[state] = obj
            if self._transaction is not None:
                self._transaction.pending[state] = None
        else:
            # First, so that a clash with another object of the same key leaves
            # this one detached.
            self.identity_map.add(state)
            state.session = self

    def expunge(self, obj: Any) -> None:
        """Detach one object from this session (pending ones become transient)."""
        state = instance_state(obj)
        if state.session is not self:
            raise exc.InvalidRequestError(f"{_describe(state)} is not in this session")
        self._detach(state)
        for other in self._related(obj, "expunge"):
            if other.session is self:
                self._detach(other)

    def _related(self, obj: Any, cascade: str) -> list[InstanceState]:
        """States reachable from ``obj`` along loaded relationships with ``cascade``."""
        out: list[InstanceState] = []
        seen = {id(obj)}
        stack = [obj]
        while stack:
            current = stack.pop()
            state = instance_state(current)
            d = current.__dict__
            for prop in state.mapper.relationships.values():
                if cascade not in prop.cascade:
                    continue
                for item in members(d.get(prop.key, NO_VALUE)):
                    if id(item) not in seen:
                        seen.add(id(item))
                        out.append(instance_state(item))
                        stack.append(item)
        return out

    def expunge_all(self) -> None:
        """Detach every object; the transaction (if any) stays."""
        for state in list(self._new):
            self._detach(state)
        for state in self.identity_map.clear():
            state.session = None
        for state in list(self._deleted):
            state.session = None
        self._deleted.clear()

    def _detach(self, state: InstanceState) -> None:
        self._new.pop(state, None)
        self._deleted.pop(state, None)
        self.identity_map.remove(state)
        state.session = None
        # An object deleted in a flush and then expunged stays out of the
        # session: a rollback must not bring it back.
        txn = self._transaction
        while txn is not None:
            txn.deleted.pop(state, None)
            txn = txn.parent

    async def delete(self, obj: Any) -> None:
        """Mark a persistent object for deletion at the next flush.

        Raises InvalidRequestError for an object that is not persistent here.
        """
        with self._operation("delete"):
            state = instance_state(obj)
            if state.key is None:
                raise exc.InvalidRequestError(f"{_describe(state)} is not persisted")
            if state.session is None:
                self._attach(state, obj)
            elif state.session is not self:
                raise exc.InvalidRequestError(f"{_describe(state)} is attached to another session")
            elif self._transaction is None and self.autobegin:
                self._begin("autobegin")  # as add(): a rollback() undoes the mark
            self._deleted[state] = obj
            if state.mapper.relationships:
                # Along loaded relationships now; the flush loads the rest, batched.
                await self._cascade_delete([state], load=False)

    async def _cascade_delete(self, states: list[InstanceState], load: bool = True) -> None:
        """Mark what ``states`` cascade their delete to, loading unloaded members first.

        One batched query per relationship and level: the members a delete
        cascade, a foreign key to clear or an association row to delete needs.
        ``passive_deletes`` leaves unloaded members to the database.
        """
        queue = states
        seen = {id(s) for s in states}
        while queue:
            to_load: dict[RelationshipProperty[Any], list[InstanceState]] = {}
            for state in queue if load else ():
                ensure_configured(state.mapper)
                d = state.dict
                for prop in state.mapper.relationships.values():
                    if prop.viewonly or prop.key in d or state.key is None:
                        continue
                    if prop.passive_deletes or prop.is_write_only:
                        continue  # left to the database (ON DELETE)
                    if "delete" in prop.cascade or prop.direction in (ONETOMANY, MANYTOMANY):
                        to_load.setdefault(prop, []).append(state)
            for prop, group in to_load.items():
                await self._load_relationship(prop, group, context=so.PLAIN_CONTEXT)
            next_queue: list[InstanceState] = []
            for state in queue:
                d = state.dict
                for prop in state.mapper.relationships.values():
                    if "delete" not in prop.cascade:
                        continue
                    for item in list(members(d.get(prop.key, NO_VALUE))):
                        istate = instance_state(item)
                        if id(istate) in seen:
                            continue
                        seen.add(id(istate))
                        if istate.key is None:
                            # As SQLAlchemy: a pending member stays pending (and is
                            # inserted); only rows that exist are deleted.
                            continue
                        if istate._deleted or istate in self._deleted:
                            continue
                        if istate.session is None:
                            self._attach(istate, item)
                        self._deleted[istate] = item
                        next_queue.append(istate)
            queue = next_queue

    def _orphans(self) -> list[InstanceState]:
        """Members removed from a delete-orphan relationship and not given another parent."""
        removed: dict[int, tuple[InstanceState, RelationshipProperty[Any], Any]] = {}
        kept: set[tuple[int, RelationshipProperty[Any]]] = set()
        # Only persistent objects: a pending one's collections started empty (nothing
        # removed from them has a row to lose), and a pending object removed from a
        # delete-orphan collection left the session at once (orphan_removed()).
        for state in list(self.identity_map.modified):
            committed = state.committed_state
            for prop in state.mapper.relationships.values():
                if "delete-orphan" not in prop.cascade:
                    continue
                if committed and prop.key in committed:
                    history = relationship_history(state, prop)
                    for item in history.deleted:
                        istate = instance_state(item)
                        removed[id(istate)] = (istate, prop, state.obj_ref())
                for item in members(state.dict.get(prop.key, NO_VALUE)):
                    kept.add((id(item), prop))
            if committed:
                self._orphaned_by_many_to_one(state, committed, removed)
        out = []
        for istate, prop, owner in removed.values():
            obj = istate.obj_ref()
            if obj is None or (id(obj), prop) in kept or istate.session is not self:
                continue
            back = prop.back
            if back is not None and not back.uselist:
                parent = obj.__dict__.get(back.key, NO_VALUE)
                if parent is not NO_VALUE and parent is not None and parent is not owner:
                    continue  # moved to another parent
            out.append(istate)
        return out

    @staticmethod
    def _orphaned_by_many_to_one(
        state: InstanceState,
        committed: dict[str, Any],
        removed: dict[int, tuple[InstanceState, RelationshipProperty[Any], Any]],
    ) -> None:
        """``child.parent = None`` (or another parent) while ``parent.children`` is not
        loaded: ``state`` left its known old parent's delete-orphan collection too."""
        for prop in state.mapper.relationships.values():
            back = prop.back
            if back is None or prop.uselist or prop.key not in committed:
                continue
            if "delete-orphan" not in back.cascade:
                continue
            for old in relationship_history(state, prop).deleted:
                removed.setdefault(id(state), (state, back, old))

    async def _prepare_flush(self) -> None:
        """Cascades a flush needs: save-update sweep, orphans, delete (with their loads)."""
        for state, obj in list(self._new.items()):
            if state.mapper.relationships:
                self._cascade_save(obj)
        for state in list(self.identity_map.modified):
            obj = state.obj_ref()
            if obj is not None and state.mapper.relationships:
                self._cascade_save(obj)
        doomed: list[InstanceState] = []
        for state in self._orphans():
            obj = state.obj_ref()
            if state.key is None:
                self._detach(state)
            elif state not in self._deleted and not state._deleted:
                self._deleted[state] = obj
                doomed.append(state)
        pending_cascade = [s for s in self._deleted if s.mapper.relationships and s not in doomed]
        await self._cascade_delete(doomed + pending_cascade)

    async def _load_relationship(
        self,
        prop: RelationshipProperty[Any],
        states: Sequence[InstanceState],
        populate_existing: bool = False,
        context: so.LoadContext | None = None,
        overwrite_members: bool = False,
    ) -> None:
        """Load ``prop`` for ``states`` with one IN query per chunk of parents.

        ``context`` holds the loader options for the members (their own eager
        loads, columns); by default the relationships' defaults apply.
        ``overwrite_members`` is the ``populate_existing`` of the members' rows.
        """
        ensure_configured(prop.parent)
        if not populate_existing:
            states = [s for s in states if prop.key not in s.dict]
        if not states:
            return
        for state in states:
            # The join columns of an expired object: loaded first (with the rest of
            # what expired), as refresh(obj, [key]) does.
            d = state.dict
            missing = [k for k in prop.local_keys if k not in d and k not in state.mapper.pk_keys]
            if missing and state.key is not None:
                await self._load_columns(state, missing, None, refresh=False)
        need, known = strategies.batch_keys(prop, states)
        rows: list[tuple[Any, ...]] = []
        if need:
            options = {"autoflush": False, "populate_existing": overwrite_members}
            for statement in strategies.batch_statements(prop, [k for _, k in need]):
                if context is not None:
                    statement = statement.options(context)
                rows.extend(await self._select_objects(statement, options))
        # A refresh (populate_existing) reloads what the database has, as SQLAlchemy's.
        changed = (
            [*self._new, *self.identity_map.modified]
            if prop.back is not None and not populate_existing
            else ()
        )
        strategies.populate(prop, need, known, rows, populate_existing, changed)

    async def _select_objects(
        self, statement: Select, options: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        """Rows of objects of an ORM SELECT the session runs for itself (no autoflush)."""
        plan = loading.prepare_select(statement)
        assert plan is not None
        if self._dispatch.has("do_orm_execute"):
            await self._dispatch.fire(
                "do_orm_execute", ORMExecuteState(self, statement, None, options)
            )
        txn = self._current("execute")
        with _io(txn):
            conn = await self._connection_for(txn, self.get_bind(clause=statement))
            rows = await self._orm_rows(conn, plan, None, options)
        if plan.joined_collections:
            # Joined collections of the members repeat their rows: each row once,
            # as unique() does.
            seen: set[tuple[Any, ...]] = set()
            unique = []
            for row in rows:
                mark = (id(row[0]), *row[1:])
                if mark not in seen:
                    seen.add(mark)
                    unique.append(row)
            rows = unique
        return rows

    async def _orm_rows(
        self,
        conn: AsyncConnection,
        plan: loading.ORMPlan,
        params: Any,
        options: Mapping[str, Any],
        keep_loader: bool = False,
    ) -> list[tuple[Any, ...]]:
        """Execute ``plan`` and load its rows into objects, eager loads included.

        ``keep_loader``: ``plan`` lives as long as its mapper (get()'s), so its
        row loader is kept for this session when it holds no per-load state.
        """
        raw = await conn.execute(plan.statement, params)
        populate_existing = bool(options.get("populate_existing"))
        if keep_loader and not populate_existing:
            kept = self._kept_loaders.get(id(plan))
            if kept is None:
                loader = loading.row_loader(plan, self, self.identity_map)
                if loader.stateless and not plan.joined_collections:
                    self._kept_loaders[id(plan)] = (plan, loader)
            else:
                loader = kept[1]
        else:
            loader = loading.row_loader(plan, self, self.identity_map, populate_existing)
        objects = loader(raw.raw_values())
        if loader.post:
            await self._post_load(loader.take_post(), populate_existing)
        return objects

    async def _post_load(self, work: loading.PostWork, populate_existing: bool) -> None:
        """The selectin loads of freshly loaded objects: one IN query per relationship level
        (per chunk of 500 parents); deeper levels run inside the nested queries."""
        for level, objects in work:
            states = [instance_state(obj) for obj in objects]
            for prop, context in level.selectin:
                await self._load_relationship(
                    prop, states, populate_existing, context, overwrite_members=populate_existing
                )

    # -- expiry ----------------------------------------------------------------------
    def expire(self, obj: Any, attribute_names: Iterable[str] | None = None) -> None:
        """Drop loaded values (and unflushed changes) so the next load fetches them."""
        state = instance_state(obj)
        if state.session is not self or state.key is None:
            raise exc.InvalidRequestError(f"{_describe(state)} is not persistent in this session")
        if attribute_names is not None:
            names = list(attribute_names)
            unknown = [n for n in names if n not in state.mapper.attrs]
            if unknown:
                raise exc.InvalidRequestError(
                    f"{state.mapper.class_.__name__} has no attribute(s) {unknown}"
                )
            state.expire(names)
        else:
            # What it holds along refresh-expire relationships, before they are dropped.
            related = self._related(obj, "refresh-expire") if state.mapper.relationships else ()
            state.expire()
            for other in related:
                if other.session is not self:
                    continue
                if other.key is not None:
                    other.expire()
                else:  # as SQLAlchemy: a pending object reached by the cascade leaves
                    self._detach(other)

    def expire_all(self) -> None:
        for state in self.identity_map.states():
            state.expire()

    # -- binds and connections ---------------------------------------------------------
    def get_bind(self, mapper: Any = None, clause: Any = None) -> AsyncEngine | AsyncConnection:
        """The engine or connection for a mapper/class/table (``binds``), else ``bind``."""
        if self._binds:
            candidates: list[Any] = []
            if mapper is not None:
                m = loading.mapper_of(mapper) or mapper
                cls = getattr(m, "class_", None)
                if cls is not None:
                    candidates.extend(cls.__mro__)
                table = getattr(m, "local_table", None)
                if table is not None:
                    candidates.append(table)
            if clause is not None:
                table = getattr(clause, "table", None)
                if table is not None:
                    candidates.append(table)
                for entity in getattr(clause, "_entities", ()):
                    m = loading.mapper_of(entity)
                    if m is not None:
                        candidates.extend(m.class_.__mro__)
                        candidates.append(m.local_table)
            for candidate in candidates:
                found = self._binds.get(candidate)
                if found is not None:
                    return found  # type: ignore[no-any-return]
        if self.bind is None:
            raise exc.InvalidRequestError(
                "This session is not bound to an engine: pass AsyncSession(engine) or binds={...}"
            )
        return self.bind

    def _begin(self, origin: str) -> SessionTransaction:
        txn = SessionTransaction(self, None, False, origin)
        for state in self._new:
            txn.pending[state] = None
        self._transaction = txn
        if self._dispatch.has("after_transaction_create"):
            self._dispatch.fire_sync("after_transaction_create", self, txn)
        return txn

    def _current(self, operation: str) -> SessionTransaction:
        txn = self._transaction
        if txn is None:
            if not self.autobegin:
                raise exc.InvalidRequestError(
                    f"Can't {operation}: autobegin is off and no transaction was begun; "
                    "use `async with session.begin():`"
                )
            txn = self._begin("autobegin")
        elif txn.state is TxState.ACTIVE:
            return txn  # every operation asking for the current transaction may start here
        txn.check(operation)
        return txn

    async def _connection_for(self, txn: SessionTransaction, bind: Any) -> AsyncConnection:
        root = txn.root
        found = root.connections.get(bind)
        if found is None:
            fresh_root = not root.connections
            if isinstance(bind, AsyncConnection):
                conn = bind
                if conn.in_transaction():
                    ctx = await _join_transaction(self, conn)
                else:
                    ctx = await (conn.begin_twophase() if self.twophase else conn.begin())
                root.connections[bind] = (conn, ctx, False)
            else:
                conn = await bind.connect()
                try:
                    if self.twophase:
                        ctx = await conn.begin_twophase()
                    else:  # connect() was the checkpoint
                        ctx = conn.begin()._start_root_now()
                except BaseException:
                    with anyio.CancelScope(shield=True):
                        await conn.close()
                    raise
                root.connections[bind] = (conn, ctx, True)
            if fresh_root and self._dispatch.has("after_begin"):
                await self._dispatch.fire("after_begin", self, root, conn)
            found = root.connections[bind]
        connection: AsyncConnection = found[0]
        return connection

    async def connection(
        self,
        bind_arguments: Mapping[str, Any] | None = None,
        execution_options: Mapping[str, Any] | None = None,
        **kw: Any,
    ) -> AsyncConnection:
        """The connection of the current transaction (begun if needed)."""
        with self._operation("connection"):
            txn = self._current("connection")
            bind = self.get_bind(**dict(bind_arguments or {}))
            with _io(txn):
                conn = await self._connection_for(txn, bind)
            if execution_options:
                await conn.execution_options(**execution_options)
            return conn

    # -- transactions -----------------------------------------------------------------
    def in_transaction(self) -> bool:
        return self._transaction is not None

    def in_nested_transaction(self) -> bool:
        txn = self._transaction
        return txn is not None and txn.nested

    def get_transaction(self) -> SessionTransaction | None:
        txn = self._transaction
        return txn.root if txn is not None else None

    def get_nested_transaction(self) -> SessionTransaction | None:
        txn = self._transaction
        return txn if txn is not None and txn.nested else None

    def begin(self) -> _TransactionContext:
        """Begin the root transaction: ``async with session.begin(): ...`` commits at the end."""
        if self._transaction is not None:
            if (
                self._transaction.origin == "autobegin"
                and not self._transaction.connections
                and self._transaction.parent is None
            ):
                self._transaction.origin = "begin"
            else:
                raise exc.InvalidRequestError(
                    "A transaction is already begun on this session; use begin_nested() for "
                    "a savepoint, or commit()/rollback() first"
                )
        else:
            self._begin("begin")
        assert self._transaction is not None
        return _TransactionContext(self, self._transaction)

    def begin_nested(self) -> _NestedContext:
        """Begin a SAVEPOINT: ``async with session.begin_nested(): ...``.

        Awaiting the result (or entering it) flushes and emits the SAVEPOINT.
        """
        return _NestedContext(self)

    async def _start_nested(self) -> SessionTransaction:
        with self._operation("begin_nested"):
            parent = self._current("begin_nested")
            await self._flush_inner(parent)
            txn = SessionTransaction(self, parent, True, "begin_nested")
            try:
                bind = self.get_bind()
                await self._connection_for(parent, bind)
                root = parent.root
                for key, (conn, _ctx, _owned) in list(root.connections.items()):
                    savepoint = await conn.begin_nested()
                    txn.connections[key] = (conn, savepoint, False)
            except BaseException as err:
                parent.fail(err)
                raise
            self._transaction = txn
            if self._dispatch.has("after_transaction_create"):
                self._dispatch.fire_sync("after_transaction_create", self, txn)
            return txn

    async def flush(self, objects: Sequence[Any] | None = None) -> None:
        """Write pending changes to the database in the current transaction."""
        with self._operation("flush"):
            txn = self._current("flush")
            await self._flush_inner(txn, objects)

    def _has_changes(self) -> bool:
        if self._new or self._deleted:
            return True
        return any(s.changed_keys() for s in list(self.identity_map.modified))

    async def _flush_inner(
        self, txn: SessionTransaction, objects: Sequence[Any] | None = None
    ) -> None:
        if self._flushing or not (self._new or self._deleted or self.identity_map.modified):
            return  # nothing to flush or settle (the autoflush of most queries)
        if self._has_changes():
            self._flushing = True
            try:
                await self._do_flush(txn, objects)
            except BaseException as err:
                txn.fail(err)
                if not txn.nested and isinstance(err, Exception):
                    await _rollback_joined(txn)
                raise
            finally:
                self._flushing = False
        if objects is None:
            # As SQLAlchemy: a flush settles every modified object, also those
            # whose changes were set back (their history starts afresh), and a
            # rollback of this level expires them as it does updated ones.
            for state in list(self.identity_map.modified):
                if state not in self._deleted and not state.changed_keys():
                    state.commit_all()
                    txn.dirty.add(state)

    async def _do_flush(self, txn: SessionTransaction, objects: Sequence[Any] | None) -> None:
        dispatch = self._dispatch
        if dispatch.has("before_flush"):
            await dispatch.fire("before_flush", self, None, objects)
        if objects is None:
            new = list(self._new)
            deleted = list(self._deleted)
            modified = self.identity_map.modified
            dirty = [s for s in modified if s not in self._deleted] if deleted else list(modified)
        else:
            only = {id(instance_state(o)) for o in objects}
            new = [s for s in self._new if id(s) in only]
            deleted = [s for s in self._deleted if id(s) in only]
            dirty = [
                s
                for s in list(self.identity_map.modified)
                if s not in self._deleted and id(s) in only
            ]
        if not (new or deleted or dirty):
            return
        for state in new:
            lost = state.expired_attributes and state.expired_attributes - state.dict.keys()
            if lost:
                # Expired, then rolled back to transient: the values are gone, and
                # inserting NULLs or defaults in their place would lose data silently.
                raise exc.InvalidRequestError(
                    f"Can't flush pending {_describe(state)}: its attribute(s) "
                    f"{sorted(lost)} were expired, so their values are unknown. Set them "
                    "again, or expunge() the object."
                )
        dependencies = None
        if objects is None and any(
            s.mapper.relationships for group in (new, dirty, deleted) for s in group
        ):
            await self._prepare_flush()
            new = list(self._new)
            deleted = list(self._deleted)
            dirty = [s for s in list(self.identity_map.modified) if s not in self._deleted]
            with paused(len(new) + len(dirty) + len(deleted)):
                dependencies = sync_relationships(new, dirty, deleted)
        for state in deleted:
            # As the rest of the flush: what the plan needs and is expired gets loaded.
            missing = [k for k in keys_to_order_deletes(state.mapper) if k not in state.dict]
            if missing:
                await self._load_columns(state, missing, None, refresh=False)
        bind = self.get_bind(mapper=(new or dirty or deleted)[0].mapper)
        conn = await self._connection_for(txn, bind)
        await self._fire_mapper_events("before", conn, new, dirty, deleted)
        with paused(len(new) + len(dirty) + len(deleted)):
            plan = plan_flush(new, dirty, deleted, conn.dialect, dependencies)
        outcome = await execute_flush(plan, conn)
        # Success: move the states. No await from here on.
        with paused(len(plan.states)):
            # Held until the after_flush events ran: unmodified objects are only weakly
            # held by the identity map.
            flushed = self._settle_flush(outcome, txn, dirty, dependencies is not None)
        await self._fire_mapper_events(
            "after", conn, list(outcome.inserted), list(outcome.updated), list(outcome.deleted)
        )
        if dispatch.has("after_flush"):
            await dispatch.fire("after_flush", self, None)
        if dispatch.has("after_flush_postexec"):
            await dispatch.fire("after_flush_postexec", self, None)
        del flushed

    def _settle_flush(
        self,
        outcome: FlushOutcome,
        txn: SessionTransaction,
        dirty: list[InstanceState],
        relationships: bool,
    ) -> list[Any]:
        """Move the states after a successful flush; returns the inserted objects."""
        flushed = []
        identity_map = self.identity_map
        new_pop = self._new.pop
        txn_inserted = txn.inserted
        txn_pending_pop = txn.pending.pop
        for state in outcome.inserted:
            flushed.append(new_pop(state, None))
            ident = state._ident  # execute_flush() gave it its identity
            assert ident is not None
            # The INSERT succeeded, so an object still mapped under this key has
            # no row (one left over from a rollback): as SQLAlchemy, it was deleted.
            leftover = identity_map.states_of(state.mapper.class_).get(ident)
            if leftover is not None and leftover is not state and leftover() is not None:
                self._remove_newly_deleted(leftover, txn)
            identity_map.add(state)
            txn_inserted[state] = None
            txn_pending_pop(state, None)
        for change in outcome.key_changes:
            txn.key_switches.setdefault(change.state, change.old_key)
            self.identity_map.replace_key(change.state, change.new_key)
        txn.dirty.update(outcome.updated)
        for state in outcome.deleted:
            self._deleted.pop(state, None)
            self.identity_map.remove(state)
            state._deleted = True
            txn.deleted[state] = None
        if relationships:
            # Objects whose only changes were to relationships: flushed too.
            for state in dirty:
                if state.modified and not state._deleted:
                    state.commit_all()
                    txn.dirty.add(state)
        return flushed

    async def _fire_mapper_events(
        self,
        when: str,
        conn: AsyncConnection,
        new: Sequence[InstanceState],
        dirty: Sequence[InstanceState],
        deleted: Sequence[InstanceState],
    ) -> None:
        for kind, states in (("insert", new), ("update", dirty), ("delete", deleted)):
            if not states:
                continue
            name = f"{when}_{kind}"
            listened: dict[Any, bool] = {}  # per mapper: one look at its listeners
            for state in states:
                mapper = state.mapper
                fire = listened.get(mapper)
                if fire is None:
                    dispatch = getattr(mapper, "dispatch", None)
                    fire = listened[mapper] = dispatch is not None and dispatch.has(name)
                if fire:
                    await mapper.dispatch.fire(name, mapper, conn, state.obj_ref())

    async def commit(self) -> None:
        """Flush, then commit the outermost transaction (releasing savepoints)."""
        with self._operation("commit"):
            txn = self._transaction
            if txn is None:
                if not self.autobegin:
                    raise exc.InvalidRequestError("No transaction is begun")
                txn = self._begin("autobegin")
            await self._commit_root(txn.root)

    async def prepare(self) -> None:
        """Prepare the transaction for two-phase commit (``twophase=True`` sessions only).

        Flushes, then sends ``PREPARE TRANSACTION`` on every connection of the
        outermost transaction, which moves from ACTIVE to PREPARED; after it
        only ``commit()`` (``COMMIT PREPARED`` on each) and ``rollback()``
        (``ROLLBACK PREPARED``) are valid. Raises InvalidRequestError when the
        session is not two-phase or a savepoint is in progress. When a prepare
        fails or is cancelled, the whole transaction is rolled back (shielded),
        also on the connections already prepared, and the error is raised.
        """
        with self._operation("prepare"):
            txn = self._transaction
            if txn is None:
                if not self.autobegin:
                    raise exc.InvalidRequestError("No transaction is begun")
                txn = self._begin("autobegin")
            if not self.twophase or txn.nested:
                raise exc.InvalidRequestError(
                    "Can't prepare(): "
                    + (
                        "this session was not made with twophase=True"
                        if not self.twophase
                        else "a savepoint is in progress; prepare() acts on the outermost "
                        "transaction only: release or roll back the savepoint first"
                    )
                )
            txn.check("prepare")
            await _prepare_root(self, txn)

    async def _commit_root(self, root: SessionTransaction) -> None:
        current = self._transaction
        assert current is not None
        current.check("commit")
        root.check("commit")
        if self.twophase:
            await _commit_twophase(self, current)
            return
        dispatch = self._dispatch
        if dispatch.has("before_commit"):
            await dispatch.fire("before_commit", self)
        await self._flush_inner(current)
        try:
            # Release savepoints innermost first, then commit the root.
            await _release_savepoints(current)
            for _conn, ctx, _owned in root.connections.values():
                if ctx is not None and ctx.is_active:
                    await ctx.commit()
        except BaseException as err:
            root.fail(err)
            self._transaction = current
            raise
        await self._committed(root)

    async def _committed(self, root: SessionTransaction) -> None:
        root.state = TxState.COMMITTED
        self._transaction = None
        for state in list(root.deleted):
            state.session = None
        if self.expire_on_commit:
            self.expire_all()
        await self._close_connections(root)
        if self._dispatch.has("after_commit"):
            await self._dispatch.fire("after_commit", self)
        await self._end(root)

    async def rollback(self) -> None:
        """Roll back the outermost transaction and restore SQLAlchemy's object outcome."""
        with self._operation("rollback"):
            txn = self._transaction
            if txn is None:
                return
            await self._rollback_root(txn)

    async def _rollback_root(self, current: SessionTransaction) -> None:
        root = current.root
        txn: SessionTransaction | None = current
        while txn is not None:
            self._restore(txn, expire_all=not txn.nested)
            txn.state = TxState.CLOSED
            txn = txn.parent
        self._transaction = None
        with anyio.CancelScope(shield=True):
            await self._rollback_connections(root)
            if self._dispatch.has("after_rollback"):
                await self._dispatch.fire("after_rollback", self)
            await self._end(root)

    async def _rollback_connections(self, root: SessionTransaction, closing: bool = False) -> None:
        for conn, ctx, owned in list(root.connections.values()):
            with anyio.move_on_after(_CLEANUP_TIMEOUT):
                try:
                    if ctx is not None and ctx.is_active:
                        # close() differs from rollback() for a joined "rollback_only" transaction.
                        await (ctx.close() if closing else ctx.rollback())
                except exc.DBAPIError:
                    pass  # the engine has invalidated the connection; it is released below
            if owned:
                await conn.close()
        root.connections.clear()

    async def _close_connections(self, root: SessionTransaction) -> None:
        # Connections that go back to the pool without IO need no cancel scope.
        rest = [
            c for c, _ctx, owned in root.connections.values() if owned and not c._close_nowait()
        ]
        if rest:
            with anyio.CancelScope(shield=True):
                for conn in rest:
                    await conn.close()
        root.connections.clear()

    async def _end(self, txn: SessionTransaction) -> None:
        if self._dispatch.has("after_transaction_end"):
            await self._dispatch.fire("after_transaction_end", self, txn)

    def _remove_newly_deleted(self, state: InstanceState, txn: SessionTransaction) -> None:
        """``state``'s row is found gone: it is deleted now (a rollback restores it)."""
        self.identity_map.remove(state)
        self._deleted.pop(state, None)
        state._deleted = True
        txn.deleted[state] = None

    def _restore(self, txn: SessionTransaction, expire_all: bool) -> None:
        """Undo a transaction level's effects on the objects (SQLAlchemy's outcome)."""
        for state in list(txn.pending):
            if state in self._new:
                self._detach(state)
        for state in list(txn.inserted):
            self.identity_map.remove(state)
            self._new.pop(state, None)
            state.key = None
            state.session = None
            state._deleted = False  # also if deleted since, and expunged: transient now
        for state, old_key in txn.key_switches.items():
            if state.key is None:
                continue
            if state.session is self:
                self.identity_map.replace_key(state, old_key)
            else:
                state.key = old_key  # expunged since: its row has the old key again
        for state in list(txn.deleted):
            state._deleted = False
            if state.key is None:
                continue  # inserted in this transaction too: transient now (above)
            state.session = self
            if state.obj_ref() is not None:
                self.identity_map.add(state)
        # Deletions marked and not flushed are undone too (at any level, as
        # SQLAlchemy does): the rows were never deleted.
        self._deleted.clear()
        if expire_all:
            for state in self.identity_map.states():
                state.expire()
        else:
            # What a flush here updated, and what was changed here and not flushed;
            # rows deleted here are back as they were, so their objects stay loaded.
            changed = txn.dirty | set(self.identity_map.modified)
            for state in changed:
                if state.session is self and state.key is not None:
                    state.expire()
        for state in txn.key_switches:
            if state.key is not None:
                state.expire()  # also when expunged: its loaded key is not its row's

    async def _end_level(self, txn: SessionTransaction, commit: bool) -> None:
        """``commit()``/``rollback()`` of the SessionTransaction ``txn``."""
        current = self._transaction
        chain: list[SessionTransaction] = []
        level = current
        while level is not None:
            chain.append(level)
            level = level.parent
        if txn not in chain:
            if commit:
                raise exc.InvalidRequestError(
                    f"Can't commit {txn!r}: it already ended (state: {txn.state.name})"
                )
            return
        if not txn.nested:
            await (self.commit() if commit else self.rollback())
            return
        if commit:
            if current is not txn:
                raise exc.InvalidRequestError(
                    "Can't release this savepoint: a savepoint begun inside it is still open; "
                    "commit or roll back that one first"
                )
            await _release_savepoint(self, txn)
            return
        for level in chain[: chain.index(txn) + 1]:  # innermost first
            await _rollback_savepoint(self, level)

    async def close(self) -> None:
        """Roll back any transaction, release connections and detach every object.

        The session can be used again afterwards. Runs shielded from cancellation.
        """
        if self._busy is not None:
            raise exc.ConcurrentUseError(
                f"Can't close(): this session is busy with {self._busy}() in another task"
            )
        txn = self._transaction
        if txn is not None:
            with anyio.CancelScope(shield=True):
                self._transaction = None
                await self._rollback_connections(txn.root, closing=True)
                await self._end(txn.root)
        self.expunge_all()

    async def reset(self) -> None:
        """Like close(): the session starts afresh."""
        await self.close()

    async def invalidate(self) -> None:
        """Invalidate the transaction's connections (they are not reused), then close."""
        txn = self._transaction
        if txn is not None:
            for conn, _ctx, _owned in list(txn.root.connections.values()):
                await conn.invalidate()
        await self.close()

    # -- queries ---------------------------------------------------------------------
    async def execute(
        self,
        statement: Any,
        params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        *,
        execution_options: Mapping[str, Any] | None = None,
        bind_arguments: Mapping[str, Any] | None = None,
    ) -> Result[Any]:
        """Execute a statement; ORM-enabled SELECTs return objects (buffered)."""
        with self._operation("execute"):
            return await self._execute(statement, params, execution_options or {}, bind_arguments)

    async def _execute(
        self,
        statement: Any,
        params: Any,
        options: Mapping[str, Any],
        bind_arguments: Mapping[str, Any] | None,
    ) -> Result[Any]:
        if not isinstance(statement, ClauseElement):
            raise exc.ArgumentError(
                f"execute() takes a statement (select(), insert(), text(), ...), not "
                f"{type(statement).__name__}"
            )
        options = (
            {**statement.get_execution_options(), **options}
            if hasattr(statement, "get_execution_options")
            else dict(options)
        )
        if self._dispatch.has("do_orm_execute"):
            await self._dispatch.fire(
                "do_orm_execute", ORMExecuteState(self, statement, params, options)
            )
        # Planning is pure: bad loader options fail here, before any SQL (autoflush too).
        plan = loading.prepare_select(statement) if isinstance(statement, Select) else None
        txn = self._current("execute")
        if self.autoflush and not self._no_autoflush and options.get("autoflush", True):
            await self._flush_inner(txn)
        bind = self.get_bind(clause=statement, **dict(bind_arguments or {}))
        with _io(txn):
            conn = await self._connection_for(txn, bind)
            if plan is not None:
                return await self._execute_orm_select(conn, plan, params, options)
            if isinstance(statement, (Update, Delete)):
                return await self._execute_orm_dml(conn, statement, params, options)
            return await conn.execute(statement, params)

    async def _execute_orm_select(
        self, conn: AsyncConnection, plan: loading.ORMPlan, params: Any, options: Mapping[str, Any]
    ) -> Result[Any]:
        objects = await self._orm_rows(conn, plan, params, options)
        metadata = ResultMetaData(plan.keys, (None,) * len(plan.keys))
        result: Result[Any] = Result(metadata, objects)
        if plan.needs_unique:
            result._require_unique()
        return result

    async def _execute_orm_dml(
        self,
        conn: AsyncConnection,
        statement: Update | Delete,
        params: Any,
        options: Mapping[str, Any],
    ) -> Result[Any]:
        sync = options.get("synchronize_session", "auto")
        if sync not in ("auto", "evaluate", "fetch", False, None):
            raise exc.ArgumentError(
                f"synchronize_session must be 'auto', 'evaluate', 'fetch' or False; got {sync!r}"
            )
        table = statement.table
        mapper = mapper_for_table(table)
        if not sync or mapper is None or statement._returning or isinstance(params, list):
            return await conn.execute(statement, params)
        pk_cols = list(mapper.primary_key)
        result = await conn.execute(statement.returning(*pk_cols), params)
        pks = [tuple(row) for row in result.all()]
        if isinstance(statement, Delete):
            txn = self._transaction
            assert txn is not None
            for pk in pks:
                state = self.identity_map.get_state(mapper.identity_key_from_primary_key(pk))
                if state is not None:
                    self.identity_map.remove(state)
                    state._deleted = True
                    self._deleted.pop(state, None)
                    # As a flush's delete: detached at commit, restored by a rollback.
                    txn.deleted[state] = None
        else:
            updated = [mapper.key_for_column(c) for c in statement._values]
            keys = [k for k in updated if k is not None]
            for pk in pks:
                state = self.identity_map.get_state(mapper.identity_key_from_primary_key(pk))
                if state is not None:
                    state.expire(keys)
        return Result(None, [], rowcount=len(pks))

    async def scalar(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        result = await self.execute(statement, params, **kw)
        return result.scalar()

    async def scalars(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        result = await self.execute(statement, params, **kw)
        return result.scalars()

    async def stream(
        self,
        statement: Any,
        params: Mapping[str, Any] | None = None,
        *,
        execution_options: Mapping[str, Any] | None = None,
        bind_arguments: Mapping[str, Any] | None = None,
    ) -> AsyncResult[Any]:
        """A streamed result over a server-side cursor on the transaction's connection.

        ORM-enabled SELECTs (``select(User)``, ``select(User, Address).join(...)``)
        yield identity-mapped objects, built chunk by chunk as the rows arrive
        (``yield_per`` sets the chunk size). Read the stream before the
        transaction ends: commit, rollback and close end it.
        """
        with self._operation("stream"):
            if not isinstance(statement, ClauseElement):
                raise exc.ArgumentError(
                    f"stream() takes a statement (select(), text(), ...), not "
                    f"{type(statement).__name__}"
                )
            options = (
                {**statement.get_execution_options(), **(execution_options or {})}
                if hasattr(statement, "get_execution_options")
                else dict(execution_options or {})
            )
            plan = (
                loading.prepare_select(statement, stream=True)
                if isinstance(statement, Select)
                else None
            )
            txn = self._current("execute")
            if self.autoflush and not self._no_autoflush and options.get("autoflush", True):
                await self._flush_inner(txn)
            bind = self.get_bind(clause=statement, **dict(bind_arguments or {}))
            # The ORM's own options (populate_existing, autoflush) stay here.
            engine_options = {k: v for k, v in options.items() if k in _ENGINE_STREAM_OPTIONS}
            with _io(txn):
                conn = await self._connection_for(txn, bind)
                if plan is None:
                    core: AsyncResult[Any] = await conn.stream(
                        statement, params, execution_options=engine_options
                    )
                    return core
                rows: AsyncResult[Any] = await conn.stream(
                    plan.statement, params, execution_options=engine_options
                )
            populate_existing = bool(options.get("populate_existing"))
            load = loading.row_loader(plan, self, self.identity_map, populate_existing)
            metadata = ResultMetaData(plan.keys, (None,) * len(plan.keys))
            source = _ORMStreamSource(rows, load, self, populate_existing)
            result: AsyncResult[Any] = AsyncResult(metadata, source)
            if "yield_per" in options:
                result.yield_per(options["yield_per"])
            return result

    async def stream_scalars(
        self,
        statement: Any,
        params: Mapping[str, Any] | None = None,
        *,
        execution_options: Mapping[str, Any] | None = None,
        bind_arguments: Mapping[str, Any] | None = None,
    ) -> AsyncScalarResult[Any]:
        """As :meth:`stream`, yielding the first entity or column of each row."""
        result = await self.stream(
            statement, params, execution_options=execution_options, bind_arguments=bind_arguments
        )
        return result.scalars()

    # -- get / refresh / merge --------------------------------------------------------
    async def get(
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
        with self._operation("get"):
            mapper = _mapper(entity)
            pk = mapper.normalize_pk(ident)
            key = mapper.identity_key_from_primary_key(pk)
            state = self.identity_map.get_state(key)
            if state is not None and not populate_existing and with_for_update is None:
                obj = state.obj_ref()
                if state._deleted:
                    return None
                # Deferred keys stay unloaded after an expire; only the others need a load.
                expired = state.expired_attributes
                if obj is not None and not (expired and expired - mapper.deferred_keys):
                    return obj  # type: ignore[no-any-return]
            plan, names = _get_plan(mapper, with_for_update, tuple(options))
            txn = self._current("execute")
            if self.autoflush and not self._no_autoflush:
                await self._flush_inner(txn)
            overwrite = populate_existing or with_for_update is not None
            with _io(txn):
                conn = await self._connection_for(txn, self.get_bind(mapper=mapper))
                objects = await self._orm_rows(
                    conn,
                    plan,
                    dict(zip(names, pk, strict=True)),
                    _POPULATE if overwrite else _NO_OPTIONS,
                    keep_loader=not options,
                )
            if not objects and state is not None and state.obj_ref() is not None:
                if not populate_existing and with_for_update is None:
                    # As SQLAlchemy: an expired object whose row is gone was deleted.
                    self._remove_newly_deleted(state, txn)
                return None
            return objects[0][0] if objects else None

    async def get_one(self, entity: type[_T], ident: Any, **kw: Any) -> _T:
        obj = await self.get(entity, ident, **kw)
        if obj is None:
            raise exc.NoResultFound(f"No {entity.__name__} with primary key {ident!r} was found")
        return obj

    async def refresh(
        self,
        obj: Any,
        attribute_names: Iterable[str] | None = None,
        with_for_update: Any = None,
    ) -> None:
        """Expire, then reload attributes (all loaded-by-default ones, or these).

        As SQLAlchemy: the attributes are expired first, dropping their unflushed
        changes, so they stay expired if the row is gone (InvalidRequestError).
        Unlike SQLAlchemy, refresh() does not autoflush: unflushed changes of
        other attributes survive a partial refresh, unflushed.
        """
        with self._operation("refresh"):
            state = instance_state(obj)
            if state.session is not self or state.key is None:
                raise exc.InvalidRequestError(
                    f"Can't refresh {_describe(state)}: it is not persistent in this session"
                )
            names = None if attribute_names is None else list(attribute_names)
            unknown = [n for n in names or () if n not in state.mapper.attrs]
            if unknown:
                raise exc.InvalidRequestError(
                    f"{state.mapper.class_.__name__} has no attribute(s) {unknown} to refresh"
                )
            self._current("execute")
            state.expire(names)
            await self._load_attributes(state, names, with_for_update, refresh=True)

    async def _load_attributes(
        self,
        state: InstanceState,
        attribute_names: Iterable[str] | None,
        with_for_update: Any,
        refresh: bool,
    ) -> None:
        mapper = state.mapper
        relationships: list[RelationshipProperty[Any]] = []
        if mapper.relationships:
            ensure_configured(mapper)
            if attribute_names is None:
                relationships = [
                    p
                    for p in mapper.relationships.values()
                    if p.lazy in ("selectin", "joined", "subquery")
                ]
            else:
                attribute_names = list(attribute_names)
                relationships = [
                    mapper.relationships[n] for n in attribute_names if n in mapper.relationships
                ]
                attribute_names = [n for n in attribute_names if n not in mapper.relationships]
                if not attribute_names:
                    # Only relationships: load columns just when their keys are needed
                    # (a primary key is known from the identity), as SQLAlchemy.
                    needed = {k for p in relationships for k in p.local_keys}
                    attribute_names = [
                        k for k in needed if k not in state.dict and k not in mapper.pk_keys
                    ]
                    if not attribute_names:
                        for prop in relationships:
                            await self._load_relationship(prop, [state], populate_existing=refresh)
                        return
        await self._load_columns(state, attribute_names, with_for_update, refresh)
        for prop in relationships:
            await self._load_relationship(prop, [state], populate_existing=refresh)

    async def _load_columns(
        self,
        state: InstanceState,
        attribute_names: Iterable[str] | None,
        with_for_update: Any,
        refresh: bool,
    ) -> None:
        mapper = state.mapper
        if attribute_names is None:
            pairs = loading.load_columns(mapper)
        else:
            names = list(attribute_names)
            unknown = [n for n in names if n not in mapper.attrs]
            if unknown:
                raise exc.InvalidRequestError(
                    f"{mapper.class_.__name__} has no attribute(s) {unknown} to refresh"
                )
            # Loading one expired attribute loads all expired ones of the object.
            expired = state.expired_attributes or set()
            pairs = loading.load_columns(
                mapper,
                set(names) | {k for k in expired if k not in mapper.deferred_keys or k in names},
            )
        txn = self._current("execute")
        keys = tuple(k for k, _ in pairs)
        stmt = select(*[c for _, c in pairs]).where(
            *[
                col == bindparam(f"pk_{i}", type_=col.type)
                for i, col in enumerate(mapper.primary_key)
            ]
        )
        if with_for_update is not None:
            opts = with_for_update if isinstance(with_for_update, dict) else {}
            stmt = stmt.with_for_update(**opts)
        assert state.key is not None
        with _io(txn):
            conn = await self._connection_for(txn, self.get_bind(mapper=mapper))
            raw = await conn.execute(stmt, {f"pk_{i}": v for i, v in enumerate(state.key[1])})
        row = raw.first()
        if row is None:
            raise exc.InvalidRequestError(
                f"Could not refresh {_describe(state)}: its row no longer exists"
            )
        loading.populate_state(state, keys, tuple(row), overwrite_changes=refresh)

    async def load_relationship(
        self, objects: Iterable[Any], attribute: Any, *, populate_existing: bool = False
    ) -> None:
        """Load relationship ``attribute`` (``A.bs``) of many objects in one query.

        The "selectin" strategy applied after the fact: fixes an N+1 loop over
        objects from an earlier query without rewriting that query. Objects
        whose relationship is already loaded keep it unless
        ``populate_existing``. Every object must be persistent in this session.
        ``attribute`` may also be an option chain starting at the relationship
        (``selectinload(A.bs).selectinload(B.cs)``): the levels below load too.
        """
        with self._operation("load_relationship"):
            context = None
            prop: Any
            if isinstance(attribute, so.Load):
                prop, context = so.context_for_option(attribute)
            else:
                prop = getattr(attribute, "property", None)
            if not isinstance(prop, RelationshipProperty):
                raise exc.ArgumentError(
                    f"load_relationship() takes a relationship attribute such as A.bs, not "
                    f"{attribute!r:.60}"
                )
            states = []
            for obj in objects:
                state = instance_state(obj)
                if state.session is not self or state.key is None:
                    raise exc.InvalidRequestError(
                        f"Can't load {prop.describe()} of {_describe(state)}: it is not "
                        "persistent in this session"
                    )
                if not isinstance(obj, prop.parent.class_):
                    raise exc.ArgumentError(
                        f"load_relationship({prop.describe()}) got a {type(obj).__name__}"
                    )
                states.append(state)
            if self._transaction is not None:
                # Checked, not begun: a load that needs no SQL (NULL keys, objects in
                # the identity map) does not begin a transaction, as SQLAlchemy's.
                self._transaction.check("execute")
            await self._load_relationship(
                prop, states, populate_existing=populate_existing, context=context
            )

    async def merge(self, obj: _T, load: bool = True, options: Sequence[Any] = ()) -> _T:
        """Copy ``obj``'s state onto the persistent object with its key (loaded if needed).

        Returns the object in this session; ``obj`` itself is not attached.
        Relationships with the ``merge`` cascade (the default) that are loaded
        on ``obj`` are merged too, their members recursively.
        """
        with self._operation("merge"):
            state = instance_state(obj)
            if not load and state.key is None:
                raise exc.InvalidRequestError(
                    "merge(load=False) does not support transient (never flushed) objects; "
                    "flush them first, or merge with load=True"
                )
            if load and self.autoflush and not self._no_autoflush:
                # As SQLAlchemy: flush first whenever merge may load (even from the map).
                await self._flush_inner(self._current("execute"))
            merged: _T = await self._merge(obj, load, {}, tuple(options))
            return merged

    async def _merge(
        self, obj: Any, load: bool, memo: dict[int, Any], options: tuple[Any, ...] = ()
    ) -> Any:
        found = memo.get(id(obj))
        if found is not None:
            return found
        state = instance_state(obj)
        if state.session is self:
            memo[id(obj)] = obj  # already here: nothing to copy
            return obj
        if not load and state.key is None:
            raise exc.InvalidRequestError(
                f"merge(load=False) met the transient {_describe(state)}; flush it first"
            )
        mapper = state.mapper
        d = obj.__dict__
        pk = tuple(d.get(k) for k in mapper.pk_keys)
        target: Any = None
        if all(v is not None for v in pk):
            key = mapper.identity_key_from_primary_key(pk)
            target = self.identity_map.get(key)
            if target is None and load:
                txn = self._current("execute")
                plan, names = _get_plan(mapper, None, options)
                with _io(txn):
                    conn = await self._connection_for(txn, self.get_bind(mapper=mapper))
                    rows = await self._orm_rows(conn, plan, dict(zip(names, pk, strict=True)), {})
                target = rows[0][0] if rows else None
            elif target is None and not load:
                if state.modified and state.key is not None:
                    raise exc.InvalidRequestError(
                        "merge(load=False) needs an unmodified object; this one has changes"
                    )
                target = mapper.class_.__new__(mapper.class_)
                tstate = instance_state(target)
                target.__dict__.update(
                    {
                        k: v
                        for k, v in d.items()
                        if k in mapper.attrs and k not in mapper.relationships
                    }
                )
                tstate.key = key
                self._attach(tstate, target)
                memo[id(obj)] = target
                await self._merge_relationships(obj, target, load, memo, committed=True)
                return target
        if target is None:
            target = mapper.class_.__new__(mapper.class_)
            self._attach(instance_state(target), target)
        memo[id(obj)] = target
        for key_name in mapper.column_attrs:
            if key_name in d:
                value = d[key_name]
                if target.__dict__.get(key_name, NO_VALUE) is not value:
                    setattr(target, key_name, value)
        await self._merge_relationships(obj, target, load, memo, committed=False)
        return target

    async def _merge_relationships(
        self, obj: Any, target: Any, load: bool, memo: dict[int, Any], committed: bool
    ) -> None:
        """merge cascade: the loaded relationships of ``obj``, merged onto ``target``."""
        mapper = instance_state(obj).mapper
        if not mapper.relationships:
            return
        ensure_configured(mapper)
        d = obj.__dict__
        tstate = instance_state(target)
        for prop in mapper.relationships.values():
            if "merge" not in prop.cascade or prop.key not in d or prop.is_write_only:
                continue
            value = d[prop.key]
            items = [await self._merge(item, load, memo) for item in members(value)]
            if committed:  # merge(load=False): the copy is as loaded, without history
                set_committed(
                    tstate, prop, items if prop.uselist else (items[0] if items else None)
                )
                continue
            if prop.uselist:
                if prop.key not in target.__dict__ and tstate.key is not None:
                    await self._load_relationship(prop, [tstate])
                current = list(members(target.__dict__.get(prop.key, NO_VALUE)))
                if len(current) != len(items) or any(
                    a is not b for a, b in zip(current, items, strict=True)
                ):
                    setattr(target, prop.key, items)
            else:
                new = items[0] if items else None
                if target.__dict__.get(prop.key, NO_VALUE) is not new:
                    setattr(target, prop.key, new)

    # -- misc -------------------------------------------------------------------------
    @property
    @contextlib.contextmanager
    def no_autoflush(self) -> Iterator[AsyncSession]:
        """``with session.no_autoflush:`` queries inside do not flush first."""
        self._no_autoflush += 1
        try:
            yield self
        finally:
            self._no_autoflush -= 1

    @property
    def is_active(self) -> bool:
        txn = self._transaction
        return txn is None or txn.state is TxState.ACTIVE

    # -- blocking code (the sync facade's hook) ---------------------------------------
    async def run_sync(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run ``fn(sync_session, *args, **kwargs)`` in a worker thread; return its result.

        ``sync_session`` is a blocking :class:`asyncsession.sync.Session` over this
        very session (same identity map, same transaction): each of its calls
        runs on this event loop through ``anyio.from_thread``, and inside ``fn``
        reading an unloaded attribute loads it. Each call is one operation of
        the session, as each ``await`` is; don't use the session from other
        tasks until run_sync() returns. Needs ``asyncsession.sync`` imported.
        """
        hook = _run_sync_hook
        if hook is None:
            raise exc.InvalidRequestError(
                "run_sync() needs the sync facade: import asyncsession.sync first"
            )
        result: _T = await hook(self, fn, args, kwargs)
        return result

    def __repr__(self) -> str:
        return f"<AsyncSession {self.hash_key} txn={self._transaction!r}>"


class _ORMStreamSource:
    """Feeds an ORM :class:`AsyncResult`: each chunk of the engine's stream, as objects.

    The engine's result keeps the cursor and the type processing; closing this
    source closes it.
    """

    __slots__ = ("_load", "_populate_existing", "_rows", "_session")

    def __init__(
        self,
        rows: AsyncResult[Any],
        load: loading.RowLoader,
        session: AsyncSession,
        populate_existing: bool,
    ) -> None:
        self._rows = rows
        self._load = load
        self._session = session
        self._populate_existing = populate_existing

    async def fetch_chunk(self, size: int) -> Sequence[Any]:
        objects = self._load(await self._rows.yield_per(size).fetchmany(size))
        if self._load.post:
            # Each chunk's selectin loads, before the chunk is handed out.
            await self._session._post_load(self._load.take_post(), self._populate_existing)
        return objects

    async def close(self) -> None:
        await self._rows.close()


class _io:
    """Deactivate ``txn`` when IO inside fails or is cancelled.

    A failed statement leaves the database transaction in doubt (PostgreSQL
    aborts it), and a cancelled one leaves the connection rolled back or
    terminated by the engine: either way only rollback() may follow. Errors
    raised before any IO (bad arguments, ``AsyncSessionError``) leave the
    transaction alone. A class, not a generator: it wraps every statement.
    """

    __slots__ = ("txn",)

    def __init__(self, txn: SessionTransaction) -> None:
        self.txn = txn

    def __enter__(self) -> None:
        pass

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if error is not None and (
            isinstance(error, exc.DBAPIError) or not isinstance(error, exc.AsyncSessionError)
        ):
            self.txn.fail(error)


class _Operation:
    """``with session._operation(name):`` marks the session busy (see there)."""

    __slots__ = ("name", "session")

    def __init__(self, session: AsyncSession, name: str) -> None:
        self.session = session
        self.name = name

    def __enter__(self) -> None:
        session = self.session
        if session._busy is not None:
            raise exc.ConcurrentUseError(
                f"Can't {self.name}(): this session is busy with {session._busy}() in another "
                "task. A session serves one task at a time; give each task its own session."
            )
        session._busy = self.name

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.session._busy = None


class _TransactionContext:
    """``session.begin()``: an async context manager that commits or rolls back."""

    __slots__ = ("_session", "_txn")

    def __init__(self, session: AsyncSession, txn: SessionTransaction) -> None:
        self._session = session
        self._txn = txn

    async def __aenter__(self) -> SessionTransaction:
        return self._txn

    def __await__(self) -> Any:
        async def start() -> SessionTransaction:
            return self._txn

        return start().__await__()

    async def __aexit__(self, exc_type: Any, exc_value: Any, tb: Any) -> None:
        session = self._session
        if session._transaction is None or session._transaction.root is not self._txn:
            if exc_type is None and self._txn.state is TxState.COMMITTED:
                raise exc.InvalidRequestError(
                    "The transaction begun by `async with session.begin():` was committed "
                    "inside the block; commit() there is redundant (the block commits at its "
                    "end) and leaving it is an error"
                )
            return
        if exc_type is None:
            await session.commit()
        else:
            await session.rollback()


class _NestedContext:
    """``session.begin_nested()``: a savepoint, released or rolled back by the block."""

    __slots__ = ("_session", "_txn")

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._txn: SessionTransaction | None = None

    def __await__(self) -> Any:
        return self._start().__await__()

    async def _start(self) -> SessionTransaction:
        self._txn = await self._session._start_nested()
        return self._txn

    async def __aenter__(self) -> SessionTransaction:
        return await self._start()

    async def __aexit__(self, exc_type: Any, exc_value: Any, tb: Any) -> None:
        txn = self._txn
        assert txn is not None
        session = self._session
        if session._transaction is not txn:
            return  # ended inside the block (commit() or rollback() of the session)
        if exc_type is None and txn.state is TxState.ACTIVE:
            try:
                await _release_savepoint(session, txn)
            except BaseException:
                # A failed release (its flush) rolls the savepoint back, as SQLAlchemy:
                # `except IntegrityError` around the block then goes on in the outer one.
                if session._transaction is txn:
                    await _rollback_savepoint(session, txn)
                raise
        else:
            await _rollback_savepoint(session, txn)


async def _release_savepoint(session: AsyncSession, txn: SessionTransaction) -> None:
    with session._operation("commit"):
        txn.check("commit")
        await session._flush_inner(txn)
        try:
            for _conn, savepoint, _ in txn.connections.values():
                if savepoint is not None and savepoint.is_active:
                    await savepoint.commit()
        except BaseException as err:
            txn.fail(err)
            raise
        txn.merge_into_parent()
        txn.state = TxState.COMMITTED
        session._transaction = txn.parent
        await session._end(txn)


async def _rollback_savepoint(session: AsyncSession, txn: SessionTransaction) -> None:
    with session._operation("rollback"):
        session._restore(txn, expire_all=False)
        txn.state = TxState.CLOSED
        session._transaction = txn.parent
        parent = txn.parent
        assert parent is not None
        with anyio.CancelScope(shield=True):
            rolled_back = bool(txn.connections)
            try:
                for _conn, savepoint, _ in txn.connections.values():
                    if savepoint is not None and savepoint.is_active:
                        await savepoint.rollback()
                    else:
                        rolled_back = False
            except BaseException as err:
                parent.fail(err)
                raise
            if rolled_back and txn.error is not None:
                # An error inside the savepoint deactivated the levels above it too; the
                # database transaction survived (ROLLBACK TO SAVEPOINT worked), so they
                # are usable again. After a cancellation the engine has ended the
                # savepoint itself, rolled_back is False and they stay DEACTIVE.
                level: SessionTransaction | None = parent
                while level is not None and level.error is txn.error:
                    level.state = TxState.ACTIVE
                    level.error = None
                    level = level.parent
            if session._dispatch.has("after_soft_rollback"):
                await session._dispatch.fire("after_soft_rollback", session, txn)
            await session._end(txn)


async def _join_transaction(session: AsyncSession, conn: AsyncConnection) -> Any:
    """The session's hold on a bound connection's transaction in progress (see orm.transaction)."""
    if session.twophase:
        raise exc.InvalidRequestError(
            "A twophase=True session can't join a transaction already in progress on its "
            "connection: it must begin the two-phase transaction itself. Bind it to a "
            "connection outside a transaction, or to an engine."
        )
    mode = join_mode(session.join_transaction_mode, conn.in_nested_transaction())
    if mode == "create_savepoint":
        return await conn.begin_nested()
    await anyio.lowlevel.checkpoint_if_cancelled()
    joined = conn.get_nested_transaction() or conn.get_transaction()
    return JoinedTransaction(joined, commits=mode == "control_fully")


async def _rollback_joined(root: SessionTransaction) -> None:
    """After a failed flush, roll back at once the joined transactions the session took
    over (rollback_only, control_fully), as SQLAlchemy does: their owner then sees the
    same outcome on every backend (PostgreSQL has aborted them anyway)."""
    with anyio.CancelScope(shield=True):
        for _conn, ctx, _owned in root.connections.values():
            if isinstance(ctx, JoinedTransaction) and ctx.is_active:
                with anyio.move_on_after(_CLEANUP_TIMEOUT), contextlib.suppress(exc.DBAPIError):
                    await ctx.rollback()


async def _release_savepoints(current: SessionTransaction) -> None:
    """Release the savepoints from ``current`` outwards, merging each level into its parent."""
    txn: SessionTransaction | None = current
    while txn is not None and txn.nested:
        for _conn, savepoint, _ in txn.connections.values():
            if savepoint is not None and savepoint.is_active:
                await savepoint.commit()
        txn.merge_into_parent()
        txn.state = TxState.COMMITTED
        txn = txn.parent


async def _prepare_root(session: AsyncSession, current: SessionTransaction) -> None:
    """The first phase: flush, release savepoints, PREPARE every connection.

    Any failure or cancellation rolls the whole transaction back (shielded),
    ROLLBACK PREPARED included, as SQLAlchemy does.
    """
    root = current.root
    if session._dispatch.has("before_commit"):
        await session._dispatch.fire("before_commit", session)
    await session._flush_inner(current)
    try:
        await _release_savepoints(current)
        session._transaction = root
        for _conn, ctx, _owned in root.connections.values():
            if ctx is not None and ctx.is_active:
                await ctx.prepare()
    except BaseException as err:
        current.fail(err)
        await session._rollback_root(session._transaction or current)
        raise
    root.move("prepare")


async def _commit_twophase(session: AsyncSession, current: SessionTransaction) -> None:
    """Prepare every connection (unless prepare() did), then commit every one.

    Once all are prepared the outcome is decided: the second phase runs
    shielded, and a COMMIT PREPARED that fails does not stop the others. The
    transaction then ends as committed, and the first failure is raised with
    a note naming the transactions that may still be prepared on the server.
    """
    root = current.root
    if root.state is not TxState.PREPARED:
        await _prepare_root(session, current)
    failures: list[tuple[str, exc.DBAPIError]] = []
    with anyio.CancelScope(shield=True):
        for _conn, ctx, _owned in root.connections.values():
            if ctx is not None and ctx.is_active:
                try:
                    await ctx.commit()
                except exc.DBAPIError as err:
                    failures.append((ctx.xid, err))
        await session._committed(root)
    if failures:
        error = failures[0][1]
        error.add_note(
            "Two-phase commit: every connection was prepared, so the outcome is commit, but "
            f"COMMIT PREPARED failed for {[xid for xid, _ in failures]}. They may still be "
            "prepared on the server: commit them with `await conn.commit_prepared(xid)` "
            "(`await conn.recover_twophase()` lists them)."
        )
        raise error
    await anyio.lowlevel.checkpoint_if_cancelled()


# mapper -> (how many relationships it had, the keys of those cascading save-update)
_save_update: weakref.WeakKeyDictionary[Any, tuple[int, tuple[str, ...]]] = (
    weakref.WeakKeyDictionary()
)


def _save_update_keys(mapper: Any) -> tuple[str, ...]:
    """The keys of ``mapper``'s relationships that cascade save-update (configured first).

    Recomputed when the mapper gained a relationship (a backref from a class
    mapped later).
    """
    ensure_configured(mapper)
    relationships = mapper.relationships
    found = _save_update.get(mapper)
    if found is None or found[0] != len(relationships):
        keys = tuple(k for k, p in relationships.items() if "save-update" in p.cascade)
        found = (len(relationships), keys)
        if all(p.configured for p in relationships.values()):
            _save_update[mapper] = found
    return found[1]


def _describe(state: InstanceState) -> str:
    ident = state.identity
    name = state.mapper.class_.__name__
    return f"<{name} at 0x{id(state.obj_ref()):x}>" if ident is None else f"<{name} {ident!r}>"


def _mapper(entity: Any) -> Any:
    mapper = loading.mapper_of(entity)
    if mapper is None:
        raise exc.ArgumentError(f"{entity!r} is not a mapped class")
    return mapper


_POPULATE: Mapping[str, Any] = {"populate_existing": True}
_NO_OPTIONS: Mapping[str, Any] = {}

_GET_PLANS: weakref.WeakKeyDictionary[Any, dict[Any, tuple[loading.ORMPlan, tuple[str, ...]]]] = (
    weakref.WeakKeyDictionary()
)


def _get_plan(
    mapper: Any, with_for_update: Any, options: tuple[Any, ...] = ()
) -> tuple[loading.ORMPlan, tuple[str, ...]]:
    """The SELECT by primary key for ``get()``, built once per mapper (and options)."""
    plans = _GET_PLANS.get(mapper)
    if plans is None:
        plans = _GET_PLANS[mapper] = {}
    cache_key = (None if with_for_update is None else repr(with_for_update), options)
    try:
        found = plans.get(cache_key)
    except TypeError:  # an unhashable option: planned (and checked) each time
        found, cache_key = None, (repr(with_for_update), ())
        plans = {}
    if found is not None:
        return found
    names = tuple(f"pk_{i}" for i in range(len(mapper.primary_key)))
    stmt = select(mapper.class_).where(
        *[
            col == bindparam(name, type_=col.type)
            for col, name in zip(mapper.primary_key, names, strict=True)
        ]
    )
    if with_for_update is not None:
        stmt = stmt.with_for_update(
            **(with_for_update if isinstance(with_for_update, dict) else {})
        )
    if options:
        stmt = stmt.options(*options)
    plan = loading.prepare_select(stmt)
    assert plan is not None
    plans[cache_key] = (plan, names)
    return plan, names


_F = TypeVar("_F")


class SessionFactory(Generic[_F]):
    """What ``async_sessionmaker`` and the facade's ``sessionmaker`` share.

    Fixed options and a bind for every session it makes, ``configure()`` to
    change them, and an event dispatcher whose listeners apply to every session
    it makes (its parent is the session class's). Subclasses add ``begin()``.
    """

    def __init__(self, bind: Any, class_: type[_F], kw: dict[str, Any], parent: Dispatcher) -> None:
        self.bind = bind
        self.class_ = class_
        self.kw = kw
        self._dispatch = Dispatcher(SESSION_EVENTS, parent, SYNC_SESSION_EVENTS)

    def _dispatcher_for(self, identifier: str) -> Dispatcher:
        return self._dispatch

    def __call__(self, **local_kw: Any) -> _F:
        options = {**self.kw, **local_kw}
        options.setdefault("bind", self.bind)
        maker: Any = self.class_
        session: _F = maker(_parent_dispatch=self._dispatch, **options)
        return session

    def configure(self, **kw: Any) -> None:
        if "bind" in kw:
            self.bind = kw.pop("bind")
        self.kw.update(kw)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(class_={self.class_.__name__}, bind={self.bind!r})"


class async_sessionmaker(SessionFactory[_S]):
    """A factory of sessions with fixed options: ``Session = async_sessionmaker(engine)``.

    ``Session()`` makes a session; ``Session.begin()`` makes one and begins a
    transaction that commits when the block ends. Listeners added to the
    factory (``event.listen(Session, "before_flush", fn)``) apply to every
    session it makes.
    """

    # Without class_, the factory makes AsyncSession: the overloads say so to type checkers.
    @overload
    def __init__(
        self,
        bind: AsyncEngine | AsyncConnection | None = None,
        *,
        class_: type[_S],
        **kw: Any,
    ) -> None: ...

    @overload
    def __init__(
        self: async_sessionmaker[AsyncSession],
        bind: AsyncEngine | AsyncConnection | None = None,
        **kw: Any,
    ) -> None: ...

    def __init__(
        self,
        bind: AsyncEngine | AsyncConnection | None = None,
        *,
        class_: type[_S] = AsyncSession,  # type: ignore[assignment]
        **kw: Any,
    ) -> None:
        super().__init__(bind, class_, kw, class_._dispatcher_for("before_flush"))

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[_S]:
        async with self() as session, session.begin():
            yield session


class async_scoped_session(Generic[_S]):
    """One session per scope (by default the current task): ``Session()`` returns it.

    Attribute access and method calls are proxied to the scope's session;
    ``await Session.remove()`` closes it and forgets it.
    """

    def __init__(
        self, session_factory: async_sessionmaker[_S], scopefunc: Callable[[], Any] | None = None
    ) -> None:
        self.session_factory = session_factory
        self.scopefunc = scopefunc if scopefunc is not None else _current_task_id
        self.registry: dict[Any, _S] = {}

    def __call__(self, **kw: Any) -> _S:
        scope = self.scopefunc()
        session = self.registry.get(scope)
        if session is None:
            session = self.registry[scope] = self.session_factory(**kw)
        elif kw:
            raise exc.InvalidRequestError(
                "This scope already has a session; options can only be given when it is made"
            )
        return session

    def has(self) -> bool:
        return self.scopefunc() in self.registry

    async def remove(self) -> None:
        session = self.registry.pop(self.scopefunc(), None)
        if session is not None:
            await session.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self(), name)


def _current_task_id() -> Any:
    return anyio.get_current_task().id


class _AwaitableAttrs:
    __slots__ = ("_obj",)

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def __getattr__(self, name: str) -> Any:
        return _load_attribute(self._obj, name)


async def _load_attribute(obj: Any, name: str) -> Any:
    state = instance_state(obj)
    if name not in state.mapper.attrs:
        raise AttributeError(f"{type(obj).__name__} has no mapped attribute {name!r}")
    if name not in obj.__dict__ and state.key is not None:
        session = state.session
        if session is None:
            raise exc.InvalidRequestError(
                f"Can't load {type(obj).__name__}.{name}: the object is detached from its "
                "session; add() or merge() it into one first"
            )
        with session._operation("load"):
            await session._load_attributes(state, [name], None, refresh=False)
    return getattr(obj, name)


class AsyncAttrs:
    """Mixin: ``await obj.awaitable_attrs.name`` loads ``name`` if needed and returns it."""

    __slots__ = ()

    @property
    def awaitable_attrs(self) -> Any:
        return _AwaitableAttrs(self)


async def close_all_sessions() -> None:
    """Close every session that is still alive in this process."""
    for session in list(_sessions.values()):
        await session.close()


def object_session(obj: Any) -> AsyncSession | None:
    """The session an object belongs to, or None."""
    session: AsyncSession | None = instance_state(obj).session
    return session


async_object_session = object_session


def make_transient(obj: Any) -> None:
    """Make an object transient: no session, no identity (its values stay)."""
    state = instance_state(obj)
    session = state.session
    if session is not None:
        session._detach(state)
    state.key = None
    state._deleted = False
    state.expired_attributes = None


def make_transient_to_detached(obj: Any) -> None:
    """Give a transient object the identity its primary key says: it becomes detached."""
    state = instance_state(obj)
    if state.session is not None or state.key is not None:
        raise exc.InvalidRequestError(f"{_describe(state)} is not transient")
    key = state.mapper.identity_key_from_instance(obj)
    if any(v is None for v in key[1]):
        raise exc.InvalidRequestError(
            f"{_describe(state)} has no complete primary key; it can't become detached"
        )
    state.key = key
    state.commit_all()


# Installed by asyncsession.sync (a layer above this one) when it is imported:
# ``await hook(session, fn, args, kwargs)`` runs fn in a worker thread with a
# blocking Session over ``session`` and returns its result.
_run_sync_hook: Callable[..., Any] | None = None
