"""The unit of work: a pure flush planner and the one coroutine that executes a plan.

How this works:

* :func:`plan_flush` takes a snapshot of the pending (``new``), modified
  (``dirty``) and deleted states and returns a :class:`FlushPlan`: a frozen
  tuple of steps (:class:`InsertBatch`, :class:`UpdateGroup`,
  :class:`DeleteBatch`). It does no IO, is not a coroutine, never changes a
  state, and is deterministic: the same input gives an equal plan. Steps
  refer to objects by their index in ``plan.states``.
* :func:`execute_flush` awaits the steps in order on one connection. It
  changes no object until every statement has succeeded: values the database
  or the column defaults produce are collected per state and written into the
  objects' ``__dict__`` at the end, in one go with no await in between, and
  ``state.commit_all()`` is called for every flushed state. A flush that
  fails (a database error, :class:`~asyncsession.exc.StaleDataError`, a
  cancellation) leaves every object as it was; the caller rolls the
  transaction back. Moving states between the session's collections and
  identity map is the session's business, from the returned
  :class:`FlushOutcome`.

Order. Tables are ordered by their foreign keys among the tables in the flush
(:mod:`asyncsession.orm.topological`). INSERTs go parent table first, then all
UPDATEs in the same table order, then DELETEs in reverse (children first).
Tables that reference themselves, or each other in a cycle, are ordered row
by row instead: a pending row comes after the pending row whose explicitly set
primary key (or other referenced columns) its foreign key values equal, and a
deleted row goes before the deleted rows it references (by their loaded
values). Rows are sorted into levels; one level's rows of a table share
statements. Rows that reference each other in a cycle raise
:class:`~asyncsession.exc.CircularDependencyError` naming them. Within a
table, INSERT rows keep their order (so generated keys follow the order of
``add()``); consecutive rows that supply the same columns share a statement.

INSERT. A row supplies the columns set on the object (a primary key set to
None counts as unset); a missing column that has no default of any kind is
sent as NULL, so most rows of a table have the same shape. Python-side
defaults (``default=``, and the first version) are evaluated by the executor,
sent as values and written into the object. What the server produces
(generated keys, ``server_default``) comes back with RETURNING when the mapper
has ``eager_defaults`` (the default); otherwise only the primary key comes
back and the rest is left expired. Attributes holding a SQL expression are
inserted as that expression and fetched back, one row per statement. Rows go
in multi-row ``INSERT ... VALUES (...), (...)`` statements of at most
``dialect.max_bind_params`` parameters (``dialect.insert_batch_params`` when
the driver wants smaller statements) and :data:`MAX_INSERT_ROWS` rows. The
executor builds one statement per shape (mapper, columns, row count,
RETURNING) with named parameters and keeps it, so the dialect's compiled
cache serves every later batch of that shape.

Matching RETURNING rows to objects. Neither database promises that the rows
of a multi-row INSERT's RETURNING come back in VALUES order (SQLite documents
the order as arbitrary; PostgreSQL does not specify it). So the executor never
relies on that order:

* When every row supplies its primary key (set on the object, or from a
  Python default evaluated before the statement), returned rows are matched
  by primary key (``Match.PRIMARY_KEY``).
* When the primary key is a single integer autoincrement column (SERIAL on
  PostgreSQL, the rowid alias on SQLite), the database assigns keys in the
  order it processes the VALUES rows, which is their order in the statement
  (a values scan on PostgreSQL, the VALUES co-routine on SQLite), so the
  returned rows are sorted by key and then line up with the statement's rows
  (``Match.KEY_ORDER``). This relies on processing order, not on RETURNING
  order, and assumes the key's sequence increases (the default). Alternatives
  weighed: a sentinel column needs a schema change; ``INSERT ... SELECT ...
  FROM (VALUES ...) ORDER BY ordinal`` pins the processing order on
  PostgreSQL but needs a VALUES construct the SQL layer does not have yet,
  and still needs the sort, since RETURNING cannot return the ordinal.
* Any other server-generated key (a ``server_default`` UUID, for example)
  cannot be matched, so such rows are inserted one per statement
  (``Match.SINGLE_ROW``).

UPDATE. Only changed columns are set, ``WHERE`` the primary key from the
state's identity (so a changed primary key updates the row by its old key),
plus ``AND version = :old`` for a versioned mapper, which also sets the next
version (``version_id_generator``, default ``old + 1``) unless the object set
it or the generator is ``False`` (the server sets it; it is fetched back).
Python ``onupdate`` values are evaluated by the executor; ``server_onupdate``
columns are fetched with RETURNING under ``eager_defaults``. Rows with the same
set of changed columns run as one executemany (rows holding SQL expressions
one statement each). Every group returns the primary keys of the rows it
matched (PostgreSQL's executemany reports no row count, so RETURNING does the
counting); a shortfall raises StaleDataError, versioned or not.

DELETE. By primary key: ``WHERE pk IN (...)`` in batches for a one-column key,
an executemany otherwise; versioned rows also check the version, and a
shortfall raises StaleDataError. Unversioned rows that are already gone only
warn (:class:`~asyncsession.exc.StaleDataWarning`), when the driver reports a
row count (not for PostgreSQL's executemany): deleting them was the point.

Row switch. A pending object whose primary key is that of an object deleted in
the same flush takes over its row, as in SQLAlchemy: one UPDATE of the columns
the new object sets that differ from the deleted object's loaded values, in
place of a DELETE and an INSERT (which would clash on the key). The new object
comes out persistent under that key and the old one deleted.

Not loaded. The planner never loads: a value it needs and does not have (the
old version of a versioned object, a foreign key needed to order deleted rows
of a self-referencing table) raises InvalidRequestError naming the attribute;
the session loads such values before planning. The primary key of a dirty or
deleted object comes from its identity key and is always known.
"""

from __future__ import annotations

import enum
import operator
import warnings
import weakref
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any

import attrs

from asyncsession import exc
from asyncsession.engine.base import AsyncConnection
from asyncsession.orm import topological
from asyncsession.orm._gcpause import paused
from asyncsession.orm.dependency import AssociationRow, Dependencies, Ref
from asyncsession.orm.mapper import Mapper
from asyncsession.orm.state import NO_VALUE, InstanceState, values_differ
from asyncsession.sql.compiler import DefaultContext, Dialect
from asyncsession.sql.dml import Delete, Insert, Update, delete, insert, update
from asyncsession.sql.elements import ClauseElement, and_, bindparam
from asyncsession.sql.schema import Column, ColumnDefault, ForeignKeyConstraint, Table
from asyncsession.sql.types import Integer

__all__ = [
    "AssociationDelete",
    "AssociationInsert",
    "DeleteBatch",
    "FlushOutcome",
    "FlushPlan",
    "InsertBatch",
    "KeyChange",
    "Match",
    "PostUpdate",
    "UpdateGroup",
    "execute_flush",
    "keys_to_order_deletes",
    "plan_flush",
]


# -- the plan ------------------------------------------------------------------------------


class Match(enum.Enum):
    """How the executor pairs the rows an INSERT returns with the objects."""

    NONE = "none"  # nothing comes back
    PRIMARY_KEY = "primary_key"  # every row's key is known: match by it
    KEY_ORDER = "key_order"  # an autoincrement key: sort the returned rows by it
    SINGLE_ROW = "single_row"  # one row per statement


@attrs.frozen
class InsertBatch:
    """One multi-row INSERT of objects of one mapper that supply the same columns.

    ``rows[i]`` holds the values of ``keys`` (attribute keys, table order) for
    the object ``plan.states[states[i]]``. The executor evaluates the Python
    defaults of ``generated`` per row, fetches ``returning`` (primary key
    first when ``match`` needs it) and leaves ``expired`` unloaded.
    ``expressions`` marks a single row holding SQL expressions.
    """

    mapper: Mapper
    keys: tuple[str, ...]
    states: tuple[int, ...]
    rows: tuple[tuple[Any, ...], ...]
    generated: tuple[str, ...] = ()
    returning: tuple[str, ...] = ()
    expired: tuple[str, ...] = ()
    match: Match = Match.NONE
    expressions: bool = False
    refs: bool = False  # some value is a Ref, resolved by the executor

    @property
    def table(self) -> Table:
        return self.mapper.local_table


@attrs.frozen
class UpdateGroup:
    """UPDATEs of objects of one mapper that changed the same columns (one executemany).

    ``values[i]`` holds the new values of ``keys`` for ``plan.states[states[i]]``,
    ``pks[i]`` its primary key as loaded (the WHERE clause) and, when
    ``check_version``, ``versions[i]`` the version it was loaded with.
    ``bump_version``: the executor computes the next version. ``generated``
    are Python ``onupdate`` columns evaluated by the executor; ``returning``
    is the primary key (which counts the rows matched) and the fetched columns.
    """

    mapper: Mapper
    keys: tuple[str, ...]
    states: tuple[int, ...]
    values: tuple[tuple[Any, ...], ...]
    pks: tuple[tuple[Any, ...], ...]
    versions: tuple[Any, ...] = ()
    generated: tuple[str, ...] = ()
    returning: tuple[str, ...] = ()
    expired: tuple[str, ...] = ()
    check_version: bool = False
    bump_version: bool = False
    expressions: bool = False
    refs: bool = False

    @property
    def table(self) -> Table:
        return self.mapper.local_table


@attrs.frozen
class DeleteBatch:
    """DELETEs by primary key of objects of one mapper (one statement or executemany)."""

    mapper: Mapper
    states: tuple[int, ...]
    pks: tuple[tuple[Any, ...], ...]
    versions: tuple[Any, ...] = ()
    check_version: bool = False

    @property
    def table(self) -> Table:
        return self.mapper.local_table


@attrs.frozen
class PostUpdate:
    """A ``post_update`` relationship's foreign keys, set by key after the INSERTs
    (or cleared before the DELETEs). Values and keys may be :class:`Ref`."""

    mapper: Mapper
    keys: tuple[str, ...]
    states: tuple[int, ...]
    values: tuple[tuple[Any, ...], ...]
    pks: tuple[tuple[Any, ...], ...]

    @property
    def table(self) -> Table:
        return self.mapper.local_table


@attrs.frozen
class AssociationInsert:
    """Rows of a many-to-many secondary table to insert (values may be :class:`Ref`)."""

    table: Table
    columns: tuple[Column, ...]
    rows: tuple[tuple[Any, ...], ...]


@attrs.frozen
class AssociationDelete:
    """Rows of a many-to-many secondary table to delete, matched on every column."""

    table: Table
    columns: tuple[Column, ...]
    rows: tuple[tuple[Any, ...], ...]


Step = InsertBatch | UpdateGroup | DeleteBatch | PostUpdate | AssociationInsert | AssociationDelete


@attrs.frozen
class FlushPlan:
    """The ordered steps of a flush; steps refer to ``states`` by index.

    ``assignments`` are values relationships set on objects (foreign keys),
    written into them after the flush succeeded; ``refs`` says whether any
    value anywhere is a :class:`Ref`.
    """

    states: tuple[InstanceState, ...]
    steps: tuple[Step, ...]
    assignments: tuple[tuple[int, tuple[str, ...], tuple[Any, ...]], ...] = ()
    refs: bool = False
    # (new, deleted) state indexes: a pending object takes over the row of a deleted
    # one with the same primary key (an UPDATE instead of a DELETE and an INSERT).
    switches: tuple[tuple[int, int], ...] = ()

    @property
    def inserts(self) -> tuple[InsertBatch, ...]:
        return tuple(s for s in self.steps if isinstance(s, InsertBatch))

    @property
    def updates(self) -> tuple[UpdateGroup, ...]:
        return tuple(s for s in self.steps if isinstance(s, UpdateGroup))

    @property
    def deletes(self) -> tuple[DeleteBatch, ...]:
        return tuple(s for s in self.steps if isinstance(s, DeleteBatch))


@attrs.frozen
class KeyChange:
    """A primary key UPDATE moved ``state`` from ``old_key`` to ``new_key``.

    The executor leaves ``state.key`` at ``old_key``; the session moves the
    state in its identity map (``IdentityMap.replace_key(state, new_key)``).
    """

    state: InstanceState
    old_key: tuple[Any, ...]
    new_key: tuple[Any, ...]


@attrs.frozen
class FlushOutcome:
    """What a flush did, for the session to move its states.

    ``inserted`` states now have their identity key (``state.key``) and all
    their generated values; ``updated`` states had their changes committed;
    ``deleted`` states' rows are gone (the states themselves are untouched).
    """

    inserted: tuple[InstanceState, ...]
    updated: tuple[InstanceState, ...]
    deleted: tuple[InstanceState, ...]
    key_changes: tuple[KeyChange, ...]


# Rows per multi-row INSERT at most (fewer when the dialect's parameter limits say
# so). On PostgreSQL what makes long statements slow is their size: asyncpg does not
# keep prepared statements over 15 KB of SQL (see PGDialect.insert_batch_params).
MAX_INSERT_ROWS = 500


# -- what the flush needs to know about a mapper -------------------------------------------


def _default_version(version: Any) -> Any:
    return (version or 0) + 1


def _is_autoincrement(column: Column, table: Table) -> bool:
    """Whether the DDL makes the database generate this column's values (SERIAL, rowid)."""
    if not column.primary_key or column.autoincrement is False:
        return False
    if len(table.primary_key.columns) != 1 or not isinstance(column.type, Integer):
        return column.autoincrement is True
    if column.autoincrement is True:
        return True
    return not column.foreign_keys and column.default is None and column.server_default is None


@attrs.frozen(eq=False)
class _ForeignKey:
    """A foreign key constraint seen from one mapper.

    ``local_keys`` are the attribute keys of its columns, or None when the
    mapper does not map them all (the table is still ordered by it).
    """

    local_keys: tuple[str, ...] | None
    target: Table
    target_columns: tuple[Column, ...]


class _MapperInfo:
    """Per-mapper facts for planning and execution, computed once per mapper."""

    __slots__ = (
        "columns",
        "defaults",
        "foreign_keys",
        "keys",
        "mapper",
        "none_keys",
        "onupdates",
        "pk_keys",
        "position",
        "server_generated",
        "server_onupdates",
        "server_version",
        "shapes",
        "sortable_key",
        "table",
        "templates",
        "version_generator",
        "version_key",
    )

    def __init__(self, mapper: Mapper) -> None:
        table = mapper.local_table
        self.mapper = mapper
        self.table = table
        pairs = [(mapper.key_for_column(c), c) for c in table.c]
        self.columns: dict[str, Column] = {k: c for k, c in pairs if k is not None}
        self.keys: tuple[str, ...] = tuple(self.columns)
        self.position: dict[str, int] = {k: i for i, k in enumerate(self.keys)}
        self.pk_keys: tuple[str, ...] = mapper.pk_keys
        self.version_key: str | None = mapper.version_id_key
        generator = mapper.version_id_generator
        self.server_version = generator is False
        self.version_generator: Callable[[Any], Any] = (
            generator if callable(generator) else _default_version
        )
        self.defaults: dict[str, ColumnDefault] = {
            k: c.default for k, c in self.columns.items() if c.default is not None
        }
        self.onupdates: dict[str, ColumnDefault] = {
            k: c.onupdate for k, c in self.columns.items() if c.onupdate is not None
        }
        self.server_generated: frozenset[str] = frozenset(
            k
            for k, c in self.columns.items()
            if c.server_default is not None or _is_autoincrement(c, table)
        )
        self.server_onupdates: frozenset[str] = frozenset(
            k for k, c in self.columns.items() if c.server_onupdate is not None
        )
        # Missing from an object and nothing produces them: sent as NULL.
        self.none_keys: frozenset[str] = frozenset(
            k
            for k, c in self.columns.items()
            if not c.primary_key
            and k not in self.defaults
            and k not in self.server_generated
            and k != self.version_key
        )
        pk = mapper.primary_key
        self.sortable_key = (
            len(pk) == 1 and isinstance(pk[0].type, Integer) and _is_autoincrement(pk[0], table)
        )
        self.foreign_keys: tuple[_ForeignKey, ...] = tuple(self._foreign_keys())
        # Statements built for execution, by shape (see _template()).
        self.templates: dict[tuple[Any, ...], tuple[Any, tuple[str, ...]]] = {}
        # INSERT shapes by (supplied keys, expression keys), see _Planner._insert_shape().
        self.shapes: dict[tuple[tuple[str, ...], tuple[str, ...]], _InsertShape] = {}

    def _foreign_keys(self) -> list[_ForeignKey]:
        out = []
        for constraint in self.table.constraints:
            if not isinstance(constraint, ForeignKeyConstraint) or not constraint.elements:
                continue
            try:
                targets = tuple(fk.column for fk in constraint.elements)
            except exc.NoReferenceError:
                continue  # a table outside this MetaData can't be in the flush
            target = targets[0].table
            if not isinstance(target, Table):
                continue
            keys = [self.mapper.key_for_column(fk.parent) for fk in constraint.elements]
            local_keys = tuple(k for k in keys if k is not None)
            mapped = len(local_keys) == len(keys)
            out.append(_ForeignKey(local_keys if mapped else None, target, targets))
        return out


_infos: weakref.WeakKeyDictionary[Mapper, _MapperInfo] = weakref.WeakKeyDictionary()


def _info(mapper: Mapper) -> _MapperInfo:
    info = _infos.get(mapper)
    if info is None:
        info = _infos[mapper] = _MapperInfo(mapper)
    return info


def keys_to_order_deletes(mapper: Mapper) -> tuple[str, ...]:
    """Foreign key attributes the planner may need to order DELETEs row by row.

    Those of foreign keys to the mapper's own table, or to a table with a
    foreign key back to it (a cycle of two): the session loads them, when
    expired, for the objects it deletes.
    """
    found = _delete_order_keys.get(mapper)
    if found is not None:
        return found
    info = _info(mapper)
    table = info.table
    out: list[str] = []
    for fk in info.foreign_keys:
        if fk.local_keys is None:
            continue
        target = fk.target
        if target is table or any(
            isinstance(c, ForeignKeyConstraint) and any(_references(e, table) for e in c.elements)
            for c in target.constraints
        ):
            out.extend(k for k in fk.local_keys if k not in out)
    found = _delete_order_keys[mapper] = tuple(out)
    return found


_delete_order_keys: weakref.WeakKeyDictionary[Mapper, tuple[str, ...]] = weakref.WeakKeyDictionary()


def _references(element: Any, table: Table) -> bool:
    try:
        return element.column.table is table
    except exc.NoReferenceError:
        return False


# -- planning ------------------------------------------------------------------------------


class _Row:
    """One object's part in the flush while planning."""

    __slots__ = ("dict", "expressions", "index", "info", "keys", "pk", "state", "values", "version")

    def __init__(
        self,
        index: int,
        state: InstanceState,
        info: _MapperInfo,
        d: dict[str, Any],
        keys: tuple[str, ...] = (),
        values: tuple[Any, ...] = (),
        expressions: bool = False,
        pk: tuple[Any, ...] = (),
        version: Any = NO_VALUE,
    ) -> None:
        self.expressions = expressions  # some value is a SQL expression
        self.index = index
        self.state = state
        self.info = info
        self.dict = d
        self.keys = keys
        self.values = values
        self.pk = pk
        self.version = version


def _describe(state: InstanceState) -> str:
    name = state.mapper.class_.__name__
    if state.key is not None:
        return f"{name} with primary key {state.key[1]!r}"
    return f"a pending {name}"


def _object_dict(state: InstanceState) -> dict[str, Any]:
    obj = state()
    if obj is None:
        raise exc.InvalidRequestError(
            f"Can't flush {_describe(state)}: the object was garbage collected"
        )
    d: dict[str, Any] = obj.__dict__
    return d


def _identity(state: InstanceState, what: str) -> tuple[Any, ...]:
    """The primary key tuple of the identity key (``state.key[1]``), built directly."""
    ident = state._ident
    if ident is None:
        raise exc.InvalidRequestError(
            f"Can't {what} {_describe(state)}: it has no identity (it was never flushed)"
        )
    pk: tuple[Any, ...] = (ident,) if len(state.mapper.pk_keys) == 1 else ident
    return pk


def _loaded(state: InstanceState, d: dict[str, Any], key: str, why: str) -> Any:
    """The value of ``key`` as the database has it; raises when it is not loaded."""
    committed = state.committed_state
    value = committed[key] if committed and key in committed else d.get(key, NO_VALUE)
    if value is NO_VALUE:
        raise exc.InvalidRequestError(
            f"Can't flush {_describe(state)}: {state.mapper.class_.__name__}.{key} is not "
            f"loaded and the flush needs it ({why}). Load it first, e.g. with "
            f"`await session.refresh(obj, [{key!r}])`."
        )
    return value


def plan_flush(
    new: Sequence[InstanceState],
    dirty: Sequence[InstanceState],
    deleted: Sequence[InstanceState],
    dialect: Dialect,
    dependencies: Dependencies | None = None,
) -> FlushPlan:
    """Plan a flush of ``new`` (pending, in add order), ``dirty`` and ``deleted`` states.

    Pure: no IO, no change to any state, and equal input gives an equal
    plan. Dirty states without column changes, and dirty states that are also
    being deleted, produce nothing. Raises CircularDependencyError when rows
    reference each other in a cycle, and InvalidRequestError when a value
    the plan needs is not loaded or a pending object has no primary key and
    nothing would generate one. ``dependencies`` are what relationships add
    (:func:`asyncsession.orm.dependency.sync_relationships`).
    """
    return _Planner(dialect, dependencies).plan(new, dirty, deleted)


# (generated, returning, expired, match) of an INSERT shape.
_InsertShape = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], Match]


class _Planner:
    __slots__ = (
        "deps",
        "index_of",
        "infos",
        "insert_params",
        "max_params",
        "overlay",
        "refs",
        "states",
        "switches",
    )

    def __init__(self, dialect: Dialect, deps: Dependencies | None = None) -> None:
        self.max_params = max(1, int(dialect.max_bind_params))
        budget = dialect.insert_batch_params
        self.insert_params = min(self.max_params, budget) if budget else self.max_params
        self.states: list[InstanceState] = []
        self.infos: dict[Mapper, _MapperInfo] = {}
        self.deps = deps if deps else None
        self.overlay: dict[InstanceState, dict[str, Any]] = deps.values if deps else {}
        self.index_of: dict[int, int] = {}
        self.refs = False
        self.switches: list[tuple[int, int]] = []

    def _info(self, mapper: Mapper) -> _MapperInfo:
        info = self.infos.get(mapper)
        if info is None:
            info = self.infos[mapper] = _info(mapper)
        return info

    def plan(
        self,
        new: Sequence[InstanceState],
        dirty: Sequence[InstanceState],
        deleted: Sequence[InstanceState],
    ) -> FlushPlan:
        replaced = self._row_switches(new, deleted) if new and deleted else {}
        if replaced:
            new = [s for s in new if id(s) not in replaced]
            taken = {id(old) for _, old in replaced.values()}
            deleted = [s for s in deleted if id(s) not in taken]
        pending = [self._pending_row(state) for state in new]
        if pending and not (dirty or deleted or self.deps) and self._one_plain_table(pending):
            # Only new rows, of one table that references no row of itself: the general
            # path below would order nothing, so its work is skipped.
            return FlushPlan(tuple(self.states), tuple(self._insert_steps(pending)))
        doomed = {id(state) for state in deleted}
        changed = []
        for replacement, old in replaced.values():
            switch_row = self._switch_row(replacement, old)
            if switch_row is not None:
                changed.append(switch_row)
        if self.overlay:
            seen = {id(state) for state in new}
            dirty = list(dirty)
            seen.update(id(state) for state in dirty)
            dirty.extend(s for s in self.overlay if id(s) not in seen and s.key is not None)
        for state in dirty:
            if id(state) not in doomed:
                row = self._dirty_row(state)
                if row is not None:
                    changed.append(row)
        removed = [self._deleted_row(state) for state in deleted]
        if self.deps is not None:
            self.index_of = {id(s): i for i, s in enumerate(self.states)}

        tables: list[Table] = []
        by_table: dict[Table, tuple[list[_Row], list[_Row], list[_Row]]] = {}
        for kind, rows in enumerate((pending, changed, removed)):
            last: Table | None = None
            kind_rows: list[_Row] = []
            for row in rows:
                table = row.info.table
                if table is not last:  # rows of one table usually come together
                    lists = by_table.get(table)
                    if lists is None:
                        lists = by_table[table] = ([], [], [])
                        tables.append(table)
                    last = table
                    kind_rows = lists[kind]
                kind_rows.append(row)
        edges = [
            (fk.target, table)
            for table in tables
            for fk in next(r for rows in by_table[table] for r in rows).info.foreign_keys
            if fk.target in by_table
        ]
        if self.deps is not None:
            edges.extend(
                (a, b) for a, b in self.deps.table_edges if a in by_table and b in by_table
            )
        if len(tables) == 1:
            components = [tables]  # one table: a self-reference is handled below
        else:
            components = topological.strongly_connected(tables, edges)
        self_referencing = {table for target, table in edges if target is table}

        inserts: list[Step] = []
        updates: list[Step] = []
        deletes: list[Step] = []
        for component in components:
            cyclic = len(component) > 1 or component[0] in self_referencing
            rows = [row for table in component for row in by_table[table][0]]
            if rows:
                levels = self._insert_levels(rows, component) if cyclic else [rows]
                for level in levels:
                    inserts.extend(self._insert_steps(level))
            for table in component:
                updates.extend(self._update_steps(by_table[table][1]))
        for component in reversed(components):
            cyclic = len(component) > 1 or component[0] in self_referencing
            rows = [row for table in reversed(component) for row in by_table[table][2]]
            if rows:
                levels = self._delete_levels(rows, component) if cyclic else [rows]
                for level in levels:
                    deletes.extend(self._delete_steps(level))
        if self.deps is None:
            return FlushPlan(
                tuple(self.states),
                (*inserts, *updates, *deletes),
                switches=tuple(self.switches),
            )
        return self._with_dependencies(inserts, updates, deletes, pending, changed)

    @staticmethod
    def _one_plain_table(rows: list[_Row]) -> bool:
        """True when all ``rows`` are of one table, and it has no foreign key to itself."""
        info = rows[0].info
        table = info.table
        return all(row.info.table is table for row in rows) and not any(
            fk.target is table for fk in info.foreign_keys
        )

    def _with_dependencies(
        self,
        inserts: list[Step],
        updates: list[Step],
        deletes: list[Step],
        pending: list[_Row],
        changed: list[_Row],
    ) -> FlushPlan:
        deps = self.deps
        assert deps is not None
        assignments: list[tuple[int, tuple[str, ...], tuple[Any, ...]]] = []
        for row in (*pending, *changed):
            values = self.overlay.get(row.state)
            if values:
                keys = tuple(values)
                assignments.append((row.index, keys, tuple(values[k] for k in keys)))
        post = self._post_updates(deps.post, assignments)
        association: list[Step] = []
        for kind, rows in (
            (AssociationDelete, deps.association_deletes),
            (AssociationInsert, deps.association_inserts),
        ):
            groups: dict[tuple[Table, tuple[Column, ...]], list[AssociationRow]] = {}
            for arow in rows:
                groups.setdefault((arow.table, arow.columns), []).append(arow)
            for (table, columns), members in groups.items():
                values_rows = tuple(r.values for r in members)
                self.refs = self.refs or any(_has_ref(v) for v in values_rows)
                association.append(kind(table, columns, values_rows))
        return FlushPlan(
            tuple(self.states),
            (*inserts, *updates, *post, *association, *deletes),
            tuple(assignments),
            self.refs,
            tuple(self.switches),
        )

    def _post_updates(
        self,
        post: dict[InstanceState, dict[str, Any]],
        assignments: list[tuple[int, tuple[str, ...], tuple[Any, ...]]],
    ) -> list[Step]:
        groups: dict[tuple[Mapper, tuple[str, ...]], list[tuple[int, tuple[Any, ...], Any]]] = {}
        for state, values in post.items():
            index = self.index_of.get(id(state))
            if index is None:
                _object_dict(state)
                self.states.append(state)
                index = len(self.states) - 1
                self.index_of[id(state)] = index
            keys = tuple(sorted(values))
            row = tuple(values[k] for k in keys)
            if state.key is not None:
                pk: tuple[Any, ...] = state.key[1]
            else:
                pk = tuple(Ref(state, k) for k in state.mapper.pk_keys)
            groups.setdefault((state.mapper, keys), []).append((index, row, pk))
            assignments.append((index, keys, row))
        steps: list[Step] = []
        for (mapper, keys), items in groups.items():
            self.refs = True
            steps.append(
                PostUpdate(
                    mapper,
                    keys,
                    tuple(i for i, _, _ in items),
                    tuple(r for _, r, _ in items),
                    tuple(p for _, _, p in items),
                )
            )
        return steps

    # -- row switches ------------------------------------------------------------------

    def _row_switches(
        self, new: Sequence[InstanceState], deleted: Sequence[InstanceState]
    ) -> dict[int, tuple[InstanceState, InstanceState]]:
        """Pending states whose primary key is that of a deleted state: id(new) -> (new, old)."""
        by_key = {(s.mapper, s.key[1]): s for s in deleted if s.key is not None}
        out: dict[int, tuple[InstanceState, InstanceState]] = {}
        for state in new:
            obj = state.obj_ref()
            if obj is None:
                continue
            pk = state.mapper.primary_key_from_instance(obj)
            if any(v is None for v in pk):
                continue
            old = by_key.pop((state.mapper, pk), None)
            if old is not None:
                out[id(state)] = (state, old)
        return out

    def _switch_row(self, state: InstanceState, old: InstanceState) -> _Row | None:
        """The UPDATE that turns ``old``'s row into the pending object's (SQLAlchemy's row
        switch): the columns the new object sets that differ from the loaded ones."""
        info = self._info(state.mapper)
        d = _object_dict(state)
        overlay = self.overlay.get(state) if self.overlay else None
        if overlay:
            d = {**d, **overlay}
        od = _object_dict(old)
        committed = old.committed_state or {}
        keys = []
        for key in info.keys:
            if key in info.pk_keys or key not in d:
                continue
            value = d[key]
            before = committed[key] if key in committed else od.get(key, NO_VALUE)
            if (
                before is NO_VALUE
                or type(value) is Ref
                or isinstance(value, ClauseElement)
                or values_differ(value, before)
            ):
                keys.append(key)
        assert old.key is not None
        version = NO_VALUE
        if info.version_key is not None:
            version = _loaded(old, od, info.version_key, "the version check of its UPDATE")
        self.states.append(old)
        old_index = len(self.states) - 1
        self.states.append(state)
        index = len(self.states) - 1
        self.switches.append((index, old_index))
        if not keys:
            return None
        values = tuple([d[k] for k in keys])
        expressions = any(isinstance(v, ClauseElement) for v in values)
        return _Row(index, state, info, d, tuple(keys), values, expressions, old.key[1], version)

    # -- snapshots of the states -------------------------------------------------------

    # These run once per object: keep them lean.

    def _pending_row(self, state: InstanceState) -> _Row:
        info = self._info(state.mapper)
        d = _object_dict(state)
        # Values relationships set win over the object's. ``row.dict`` stays the
        # object's own (the cyclic ordering merges where it needs to); only an
        # object with such values gets a merged copy to read from.
        overlay = self.overlay.get(state) if self.overlay else None
        source = {**d, **overlay} if overlay else d
        none_keys = info.none_keys
        pk_keys = info.pk_keys
        keys: list[str] = []
        values: list[Any] = []
        expressions = False
        for key in info.keys:
            if key in source:
                value = source[key]
                if value is None and key in pk_keys:
                    continue  # as in SQLAlchemy: a None key is one to generate
                if isinstance(value, ClauseElement):
                    expressions = True
                keys.append(key)
                values.append(value)
            elif key in none_keys:
                keys.append(key)
                values.append(None)
        self.states.append(state)
        index = len(self.states) - 1
        return _Row(index, state, info, d, tuple(keys), tuple(values), expressions)

    def _dirty_row(self, state: InstanceState) -> _Row | None:
        info = self.infos.get(state.mapper) or self._info(state.mapper)
        position = info.position
        changed = state.changed_keys()
        overlay = self.overlay.get(state) if self.overlay else None
        if overlay:
            current = _object_dict(state)
            changed = [k for k in changed if k not in overlay]
            changed += [
                k
                for k, v in overlay.items()
                if type(v) is Ref or values_differ(v, current.get(k, NO_VALUE))
            ]
            if not changed:
                return None
        if len(changed) == 1:  # the usual case: no list to filter and sort
            key = changed[0]
            if key not in position:
                return None
            keys: tuple[str, ...] = (key,)
        else:
            keys = tuple(sorted([k for k in changed if k in position], key=position.__getitem__))
            if not keys:
                return None
        pk = _identity(state, "update")
        d = _object_dict(state)
        version = NO_VALUE
        if info.version_key is not None:
            version = _loaded(state, d, info.version_key, "the version check of its UPDATE")
        if overlay:
            d = {**d, **overlay}
        if len(keys) == 1:
            value = d[keys[0]]
            values: tuple[Any, ...] = (value,)
            expressions = isinstance(value, ClauseElement)
        else:
            values = tuple([d[k] for k in keys])
            expressions = any(isinstance(v, ClauseElement) for v in values)
        states = self.states
        states.append(state)
        return _Row(len(states) - 1, state, info, d, keys, values, expressions, pk, version)

    def _deleted_row(self, state: InstanceState) -> _Row:
        info = self._info(state.mapper)
        pk = _identity(state, "delete")
        d = _object_dict(state)
        version = NO_VALUE
        if info.version_key is not None:
            version = _loaded(state, d, info.version_key, "the version check of its DELETE")
        self.states.append(state)
        return _Row(len(self.states) - 1, state, info, d, pk=pk, version=version)

    # -- row-level order inside cycles -------------------------------------------------

    def _insert_levels(self, rows: list[_Row], component: list[Table]) -> list[list[_Row]]:
        """Pending rows of tables in a cycle: parents (by explicit key values) first."""
        members = set(component)
        lookup: dict[tuple[Table, tuple[int, ...]], dict[tuple[Any, ...], int]] = {}

        def referenced(fk: _ForeignKey) -> dict[tuple[Any, ...], int]:
            lookup_key = (fk.target, tuple(id(c) for c in fk.target_columns))
            found = lookup.get(lookup_key)
            if found is None:
                found = lookup[lookup_key] = {}
                for row in rows:
                    if row.info.table is not fk.target:
                        continue
                    target_keys = [row.info.mapper.key_for_column(c) for c in fk.target_columns]
                    overlay = self.overlay.get(row.state) if self.overlay else None
                    value = _explicit({**row.dict, **overlay} if overlay else row.dict, target_keys)
                    if value is not None:
                        found.setdefault(value, row.index)
            return found

        edges: list[tuple[int, int]] = []
        if self.deps is not None:
            in_component = {row.index for row in rows}
            for row in rows:
                for value in row.values:
                    if type(value) is Ref:
                        parent = self.index_of.get(id(value.state))
                        if parent is not None and parent in in_component and parent != row.index:
                            edges.append((parent, row.index))
        for row in rows:
            overlay = self.overlay.get(row.state) if self.overlay else None
            for fk in row.info.foreign_keys:
                if fk.target not in members or fk.local_keys is None:
                    continue
                value = _explicit({**row.dict, **overlay} if overlay else row.dict, fk.local_keys)
                if value is None:
                    continue
                parent = referenced(fk).get(value)
                if parent is not None:
                    edges.append((parent, row.index))
        return self._levels(rows, edges, "pending rows")

    def _delete_levels(self, rows: list[_Row], component: list[Table]) -> list[list[_Row]]:
        """Deleted rows of tables in a cycle: rows that reference others go first."""
        members = set(component)
        lookup: dict[tuple[Table, tuple[int, ...]], dict[tuple[Any, ...], int]] = {}
        why = "to order the DELETEs of rows that reference each other"

        def referenced(fk: _ForeignKey) -> dict[tuple[Any, ...], int]:
            lookup_key = (fk.target, tuple(id(c) for c in fk.target_columns))
            found = lookup.get(lookup_key)
            if found is None:
                found = lookup[lookup_key] = {}
                for row in rows:
                    info = row.info
                    if info.table is not fk.target:
                        continue
                    value = []
                    for column in fk.target_columns:
                        key = info.mapper.key_for_column(column)
                        if key is None:
                            break
                        if key in info.pk_keys:
                            value.append(row.pk[info.pk_keys.index(key)])
                        else:
                            value.append(_loaded(row.state, row.dict, key, why))
                    else:
                        found.setdefault(tuple(value), row.index)
            return found

        edges: list[tuple[int, int]] = []
        post = self.deps.post if self.deps is not None else {}
        for row in rows:
            cleared = post.get(row.state)
            for fk in row.info.foreign_keys:
                if fk.target not in members or fk.local_keys is None:
                    continue
                if cleared and all(k in cleared and cleared[k] is None for k in fk.local_keys):
                    continue  # a post_update sets it to NULL before the DELETEs
                value = tuple(_loaded(row.state, row.dict, k, why) for k in fk.local_keys)
                if any(v is None for v in value):
                    continue
                parent = referenced(fk).get(value)
                if parent is not None:
                    edges.append((row.index, parent))
        return self._levels(rows, edges, "deleted rows")

    def _levels(
        self, rows: list[_Row], edges: list[tuple[int, int]], what: str
    ) -> list[list[_Row]]:
        if not edges:
            return [rows]
        by_index = {row.index: row for row in rows}

        def describe(index: int) -> str:
            row = by_index[index]
            info = row.info
            pk = row.pk or tuple(row.dict.get(k) for k in info.pk_keys)
            named = ", ".join(f"{k}={v!r}" for k, v in zip(info.pk_keys, pk, strict=True))
            return f"{info.table.fullname}({named})"

        levels = topological.sort_levels(list(by_index), edges, describe, what)
        return [[by_index[i] for i in level] for level in levels]

    # -- steps -------------------------------------------------------------------------

    def _insert_steps(self, rows: list[_Row]) -> list[Step]:
        steps: list[Step] = []
        for group in _by_mapper(rows):
            run: list[_Row] = []
            for row in group:
                if row.expressions:
                    steps.extend(self._insert_batches(run))
                    run = []
                    steps.extend(self._insert_batches([row], expressions=True))
                elif run and row.keys != run[0].keys:
                    steps.extend(self._insert_batches(run))
                    run = [row]
                else:
                    run.append(row)
            steps.extend(self._insert_batches(run))
        return steps

    def _insert_shape(
        self, info: _MapperInfo, keys: tuple[str, ...], expression_keys: tuple[str, ...]
    ) -> _InsertShape:
        """(generated, returning, expired, match) for rows of ``info`` supplying ``keys``."""
        cache_key = (keys, expression_keys)
        found = info.shapes.get(cache_key)
        if found is not None:
            return found
        supplied = set(keys)
        missing = [k for k in info.keys if k not in supplied]
        version_key = info.version_key
        generated = tuple(
            k
            for k in missing
            if k in info.defaults or (k == version_key and not info.server_version)
        )
        from_server = [
            k
            for k in missing
            if k not in generated and (k in info.server_generated or k == version_key)
        ]
        pk_from_server = [k for k in info.pk_keys if k in missing and k not in generated]
        for key in pk_from_server:
            if key not in info.server_generated:
                raise exc.InvalidRequestError(
                    f"Can't flush a pending {info.mapper.class_.__name__}: its primary key "
                    f"attribute {key!r} has no value, and neither a Python default nor the "
                    "database generates one. Set it before flushing."
                )
        if info.mapper.eager_defaults:
            fetched = from_server
        else:
            fetched = [k for k in from_server if k in pk_from_server or k == version_key]
        expired = tuple(k for k in from_server if k not in fetched)
        wanted = [*fetched, *expression_keys]
        if not wanted:
            match = Match.NONE
        elif expression_keys:
            match = Match.SINGLE_ROW
        elif not pk_from_server:
            match = Match.PRIMARY_KEY
        elif info.sortable_key:
            match = Match.KEY_ORDER
        else:
            match = Match.SINGLE_ROW
        if match is Match.PRIMARY_KEY or match is Match.KEY_ORDER:
            # The key first: the executor matches (or sorts) returned rows by it.
            rest = tuple(k for k in info.keys if k in wanted and k not in info.pk_keys)
            returning = (*info.pk_keys, *rest)
        else:
            returning = tuple(k for k in info.keys if k in wanted)
        shape = (generated, returning, expired, match)
        info.shapes[cache_key] = shape
        return shape

    def _insert_batches(self, run: list[_Row], expressions: bool = False) -> list[Step]:
        if not run:
            return []
        first = run[0]
        info = first.info
        expression_keys = (
            tuple(k for k, v in zip(first.keys, first.values, strict=True) if _is_expr(v))
            if expressions
            else ()
        )
        generated, returning, expired, match = self._insert_shape(info, first.keys, expression_keys)
        per_row = len(first.keys) + len(generated)
        if match is Match.SINGLE_ROW or per_row == 0:
            size = 1
        else:
            size = max(1, min(MAX_INSERT_ROWS, self.insert_params // per_row))
        steps: list[Step] = []
        for start in range(0, len(run), size):
            chunk = run[start : start + size]
            refs = self.deps is not None and any(_has_ref(row.values) for row in chunk)
            self.refs = self.refs or refs
            steps.append(
                InsertBatch(
                    mapper=info.mapper,
                    keys=first.keys,
                    states=tuple([row.index for row in chunk]),
                    rows=tuple([row.values for row in chunk]),
                    generated=generated,
                    returning=returning,
                    expired=expired,
                    match=match,
                    expressions=expressions,
                    refs=refs,
                )
            )
        return steps

    def _update_steps(self, rows: list[_Row]) -> list[Step]:
        steps: list[Step] = []
        for group in _by_mapper(rows):
            shapes: dict[tuple[str, ...], list[_Row]] = {}
            for row in group:
                if row.expressions:
                    steps.append(self._update_group([row], expressions=True))
                else:
                    shapes.setdefault(row.keys, []).append(row)
            steps.extend(self._update_group(same) for same in shapes.values())
        return steps

    def _update_group(self, rows: list[_Row], expressions: bool = False) -> UpdateGroup:
        first = rows[0]
        info = first.info
        keys = first.keys
        changed = set(keys)
        version_key = info.version_key
        check = version_key is not None
        bump = check and version_key not in changed and not info.server_version
        generated = tuple(k for k in info.keys if k in info.onupdates and k not in changed)
        server = [k for k in info.keys if k in info.server_onupdates and k not in changed]
        fetched = server if info.mapper.eager_defaults else []
        if version_key is not None and info.server_version and version_key not in changed:
            fetched = [*fetched, version_key]
        if expressions:
            fetched = [
                *fetched,
                *(k for k, v in zip(keys, first.values, strict=True) if _is_expr(v)),
            ]
        # The primary key always comes back: it counts the rows matched.
        returning = (
            *info.pk_keys,
            *(k for k in info.keys if k in fetched and k not in info.pk_keys),
        )
        refs = self.deps is not None and any(_has_ref(row.values) for row in rows)
        self.refs = self.refs or refs
        return UpdateGroup(
            mapper=info.mapper,
            keys=keys,
            states=tuple([row.index for row in rows]),
            values=tuple([row.values for row in rows]),
            pks=tuple([row.pk for row in rows]),
            versions=tuple([row.version for row in rows]) if check else (),
            generated=generated,
            returning=returning,
            expired=tuple(k for k in server if k not in fetched),
            check_version=check,
            bump_version=bump,
            expressions=expressions,
            refs=refs,
        )

    def _delete_steps(self, rows: list[_Row]) -> list[Step]:
        steps: list[Step] = []
        for group in _by_mapper(rows):
            info = group[0].info
            check = info.version_key is not None
            if check or len(info.pk_keys) > 1:
                size = len(group)  # one executemany
            else:
                size = self.max_params
            for start in range(0, len(group), size):
                chunk = group[start : start + size]
                steps.append(
                    DeleteBatch(
                        mapper=info.mapper,
                        states=tuple([row.index for row in chunk]),
                        pks=tuple([row.pk for row in chunk]),
                        versions=tuple([row.version for row in chunk]) if check else (),
                        check_version=check,
                    )
                )
        return steps


def _is_expr(value: Any) -> bool:
    return isinstance(value, ClauseElement)


def _has_ref(values: Sequence[Any]) -> bool:
    return any(type(v) is Ref for v in values)


def _explicit(d: dict[str, Any], keys: Sequence[str | None]) -> tuple[Any, ...] | None:
    """The values of ``keys`` set on an object, or None if any is unset, NULL or SQL."""
    out = []
    for key in keys:
        if key is None:
            return None
        value = d.get(key)
        if value is None or isinstance(value, ClauseElement):
            return None
        out.append(value)
    return tuple(out)


def _by_mapper(rows: list[_Row]) -> list[list[_Row]]:
    groups: dict[Mapper, list[_Row]] = {}
    for row in rows:
        groups.setdefault(row.info.mapper, []).append(row)
    return list(groups.values())


# -- execution -----------------------------------------------------------------------------

_TEMPLATE_LIMIT = 32


def _template(
    info: _MapperInfo, key: tuple[Any, ...], build: Callable[[], tuple[Any, tuple[str, ...]]]
) -> tuple[Any, tuple[str, ...]]:
    """A statement of one shape with named parameters, built once per mapper and shape."""
    templates = info.templates
    found = templates.get(key)
    if found is None:
        found = build()
        if len(templates) >= _TEMPLATE_LIMIT:
            del templates[next(iter(templates))]
        templates[key] = found
    return found


class _Execution:
    """One execute_flush(): the values to write back, collected until every statement ran.

    ``writes`` holds blocks ``(state indexes, keys, rows of values)``, one
    value row per index, so writing back costs one ``dict.update`` per row.
    """

    __slots__ = ("conn", "expire", "index_of", "known", "plan", "writes")

    def __init__(self, plan: FlushPlan, conn: AsyncConnection) -> None:
        self.plan = plan
        self.conn = conn
        self.writes: list[tuple[Sequence[int], tuple[str, ...], Sequence[Sequence[Any]]]] = []
        self.expire: list[tuple[Sequence[int], tuple[str, ...]]] = []
        # With Refs in the plan: the values each state got so far, to resolve them.
        self.known: dict[tuple[int, str], Any] | None = {} if plan.refs else None
        self.index_of: dict[int, int] = (
            {id(s): i for i, s in enumerate(plan.states)} if plan.refs else {}
        )

    def write(
        self, indexes: Sequence[int], keys: tuple[str, ...], rows: Sequence[Sequence[Any]]
    ) -> None:
        if keys:
            self.writes.append((indexes, keys, rows))
            known = self.known
            if known is not None:
                # Keyed by (state index, attribute key): no dict per object.
                for position, key in enumerate(keys):
                    for index, row in zip(indexes, rows, strict=True):
                        known[index, key] = row[position]

    def resolve(self, value: Any) -> Any:
        """A Ref's value: generated by an earlier statement of this flush, or set on the object."""
        if type(value) is not Ref:
            return value
        index = self.index_of.get(id(value.state))
        assert self.known is not None
        found = self.known.get((index, value.key), NO_VALUE) if index is not None else NO_VALUE
        if found is NO_VALUE:
            obj = value.state.obj_ref()
            found = obj.__dict__.get(value.key, NO_VALUE) if obj is not None else NO_VALUE
        if found is NO_VALUE or found is None:
            raise exc.InvalidRequestError(
                f"Can't flush: {_describe(value.state)} must be inserted first to give its "
                f"{value.key!r} to a row that references it, and it was not (a relationship "
                "without a foreign key between the tables? give foreign_keys=)"
            )
        return found

    def resolve_rows(self, rows: Sequence[Sequence[Any]]) -> tuple[tuple[Any, ...], ...]:
        resolve = self.resolve
        return tuple(
            tuple([resolve(v) if type(v) is Ref else v for v in row])  # most are plain
            for row in rows
        )

    # -- INSERT ----------------------------------------------------------------------

    async def insert(self, step: InsertBatch) -> None:
        if step.refs:
            step = attrs.evolve(step, rows=self.resolve_rows(step.rows), refs=False)
        info = _info(step.mapper)
        generated = step.generated
        made: list[tuple[Any, ...]] = (
            [_generate(info, step.keys, row, generated) for row in step.rows]
            if generated
            else [()] * len(step.rows)  # no Python defaults: no call per row
        )
        if step.expressions:
            values = zip(step.keys + generated, step.rows[0] + made[0], strict=True)
            statement = insert(info.table).values({info.columns[k]: v for k, v in values})
            if step.returning:
                statement = statement.returning(*(info.columns[k] for k in step.returning))
            result = await self.conn.execute(statement)
        else:
            all_keys = step.keys + generated
            n = len(step.rows)
            template, names = _template(
                info,
                ("insert", all_keys, n, step.returning),
                lambda: _insert_template(info, all_keys, n, step.returning),
            )
            if generated:
                flat = [v for row, extra in zip(step.rows, made, strict=True) for v in row + extra]
            else:
                flat = [v for row in step.rows for v in row]
            params = dict(zip(names, flat, strict=True))
            result = await self.conn.execute(template, params or None)
        self.write(step.states, generated, made)
        if step.returning:
            self.write(
                step.states,
                step.returning,
                self._match_inserted(step, info, result.raw_values(), made),
            )
        if step.expired:
            self.expire.append((step.states, step.expired))

    def _match_inserted(
        self,
        step: InsertBatch,
        info: _MapperInfo,
        returned: Sequence[Sequence[Any]],
        made: list[tuple[Any, ...]],
    ) -> Sequence[Sequence[Any]]:
        """The returned rows in the order of ``step.rows`` (see the module docstring)."""
        n = len(step.rows)
        if len(returned) != n:
            raise exc.InvalidRequestError(
                f"INSERT into {info.table.fullname!r} returned {len(returned)} row(s) for "
                f"{n} object(s); can't match them"
            )
        if step.match is Match.KEY_ORDER:
            return sorted(returned, key=operator.itemgetter(0))
        if step.match is not Match.PRIMARY_KEY:
            return returned  # a single row
        pk_keys = info.pk_keys
        npk = len(pk_keys)
        position: dict[tuple[Any, ...], int] = {}
        if all(k in step.keys for k in pk_keys):
            where = [step.keys.index(k) for k in pk_keys]
            for i, row in enumerate(step.rows):
                position[tuple([row[p] for p in where])] = i
        else:  # some key columns come from Python defaults: take them from the sent values
            all_keys = step.keys + step.generated
            where = [all_keys.index(k) for k in pk_keys]
            for i, (row, extra) in enumerate(zip(step.rows, made, strict=True)):
                full = row + extra
                position[tuple([full[p] for p in where])] = i
        ordered: list[Any] = [None] * n
        for r in returned:
            i = position.get(tuple(r[:npk]), -1)
            if i < 0 or ordered[i] is not None:
                raise exc.InvalidRequestError(
                    f"INSERT into {info.table.fullname!r} returned the primary key "
                    f"{tuple(r[:npk])!r}, which matches no other object of the statement"
                )
            ordered[i] = r
        return ordered

    # -- UPDATE ----------------------------------------------------------------------

    async def update(self, step: UpdateGroup) -> None:
        if step.refs:
            step = attrs.evolve(step, values=self.resolve_rows(step.values), refs=False)
        info = _info(step.mapper)
        generated = step.generated
        extra_keys = generated
        if step.bump_version:
            assert info.version_key is not None
            extra_keys = (*generated, info.version_key)
        set_keys = step.keys + extra_keys
        extras: list[tuple[Any, ...]] = []
        if extra_keys:
            for row, version in zip(step.values, step.versions or repeat(None), strict=False):
                extra = _onupdate(info, step.keys, row, generated) if generated else []
                if step.bump_version:
                    extra.append(info.version_generator(version))
                extras.append(tuple(extra))
            new_values = [row + extra for row, extra in zip(step.values, extras, strict=True)]
        else:
            new_values = list(step.values)
        if step.expressions:
            statement = self._update_statement(info, step, set_keys, new_values[0])
            result = await self.conn.execute(statement)
        else:
            template, names = _template(
                info,
                ("update", set_keys, step.check_version, step.returning),
                lambda: _update_template(info, set_keys, step.check_version, step.returning),
            )
            # One dict per row (an executemany). The names were made from the same
            # keys as the values, so the lengths match: no strict zip per row (it
            # costs a third of building these dicts).
            if step.check_version:
                params = [
                    dict(zip(names, values + pk + (version,)))  # noqa: B905
                    for values, pk, version in zip(new_values, step.pks, step.versions, strict=True)
                ]
            else:
                params = [
                    dict(zip(names, values + pk))  # noqa: B905
                    for values, pk in zip(new_values, step.pks, strict=True)
                ]
            result = await self.conn.execute(template, params if len(params) > 1 else params[0])
        self.write(step.states, extra_keys, extras)
        returned = result.raw_values()
        if len(step.returning) > len(info.pk_keys):
            self.write(
                step.states,
                step.returning[len(info.pk_keys) :],
                self._match_updated(step, info, set_keys, new_values, returned),
            )
        else:
            _check_updated(info, len(step.states), len(returned))
        if step.expired:
            self.expire.append((step.states, step.expired))

    def _update_statement(
        self,
        info: _MapperInfo,
        step: UpdateGroup,
        set_keys: tuple[str, ...],
        values: tuple[Any, ...],
    ) -> Update:
        columns = info.columns
        statement: Update = update(info.table).values(
            {columns[k]: v for k, v in zip(set_keys, values, strict=True)}
        )
        criteria = [columns[k] == v for k, v in zip(info.pk_keys, step.pks[0], strict=True)]
        if step.check_version:
            assert info.version_key is not None
            criteria.append(columns[info.version_key] == step.versions[0])
        statement = statement.where(*criteria)
        if step.returning:
            statement = statement.returning(*(columns[k] for k in step.returning))
        return statement

    def _match_updated(
        self,
        step: UpdateGroup,
        info: _MapperInfo,
        set_keys: tuple[str, ...],
        new_values: list[tuple[Any, ...]],
        returned: Sequence[Sequence[Any]],
    ) -> list[Any]:
        """The returned rows, without their key columns, in the order of ``step.states``."""
        n = len(step.states)
        _check_updated(info, n, len(returned))
        npk = len(info.pk_keys)
        if n == 1:
            return [returned[0][npk:]]
        # An executemany returns rows in no promised order: match them by (new) key.
        where = [set_keys.index(k) if k in set_keys else -1 for k in info.pk_keys]
        position: dict[tuple[Any, ...], int] = {}
        for i, (values, pk) in enumerate(zip(new_values, step.pks, strict=True)):
            new_pk = tuple([values[p] if p >= 0 else old for p, old in zip(where, pk, strict=True)])
            position[new_pk] = i
        ordered: list[Any] = [None] * n
        for r in returned:
            i = position.get(tuple(r[:npk]), -1)
            if i < 0 or ordered[i] is not None:
                raise exc.InvalidRequestError(
                    f"UPDATE of {info.table.fullname!r} returned the primary key "
                    f"{tuple(r[:npk])!r}, which matches no other object of the statement"
                )
            ordered[i] = r[npk:]
        return ordered

    # -- relationships -----------------------------------------------------------------

    async def post_update(self, step: PostUpdate) -> None:
        info = _info(step.mapper)
        values = self.resolve_rows(step.values)
        pks = self.resolve_rows(step.pks)
        template, names = _template(
            info,
            ("update", step.keys, False, info.pk_keys),
            lambda: _update_template(info, step.keys, False, info.pk_keys),
        )
        params = [
            dict(zip(names, (*row, *pk), strict=True)) for row, pk in zip(values, pks, strict=True)
        ]
        result = await self.conn.execute(template, params if len(params) > 1 else params[0])
        _check_updated(info, len(params), len(result.raw_values()))
        self.write(step.states, step.keys, values)

    async def association(self, step: AssociationInsert | AssociationDelete) -> None:
        rows = self.resolve_rows(step.rows)
        columns = step.columns
        if isinstance(step, AssociationInsert):
            statement: Any = insert(step.table).values(
                [dict(zip(columns, row, strict=True)) for row in rows]
            )
            await self.conn.execute(statement)
            return
        names = [f"w{i}" for i in range(len(columns))]
        statement = delete(step.table).where(
            and_(*(c == bindparam(n, type_=c.type) for c, n in zip(columns, names, strict=True)))
        )
        params = [dict(zip(names, row, strict=True)) for row in rows]
        result = await self.conn.execute(statement, params if len(params) > 1 else params[0])
        rowcount = result.rowcount
        if 0 <= rowcount != len(rows):
            raise exc.StaleDataError(
                f"DELETE statement on table {step.table.fullname!r} expected to delete "
                f"{len(rows)} row(s); {rowcount} were matched."
            )

    # -- DELETE ----------------------------------------------------------------------

    async def delete(self, step: DeleteBatch) -> None:
        info = _info(step.mapper)
        n = len(step.pks)
        if not step.check_version and len(info.pk_keys) == 1:
            column = info.columns[info.pk_keys[0]]
            statement: Delete = delete(info.table).where(column.in_([pk[0] for pk in step.pks]))
            _warn_deleted(info, n, (await self.conn.execute(statement)).rowcount)
            return
        template, names = _template(
            info,
            ("delete", step.check_version),
            lambda: _delete_template(info, step.check_version),
        )
        if step.check_version:
            params = [
                dict(zip(names, (*pk, version), strict=True))
                for pk, version in zip(step.pks, step.versions, strict=True)
            ]
        else:
            params = [dict(zip(names, pk, strict=True)) for pk in step.pks]
        result = await self.conn.execute(template, params if n > 1 else params[0])
        if step.check_version:
            matched = len(result.raw_values())
            if matched != n:
                raise exc.StaleDataError(
                    f"DELETE statement on table {info.table.fullname!r} expected to delete "
                    f"{n} row(s); {matched} were matched."
                )
        else:
            _warn_deleted(info, n, result.rowcount)

    # -- writing back ----------------------------------------------------------------

    def apply(self) -> FlushOutcome:
        """Write every collected value into the objects; nothing in here awaits."""
        states = self.plan.states
        dicts = [state().__dict__ for state in states]
        if self.plan.assignments:
            resolve = self.resolve if self.known is not None else None
            for index, keys, assigned in self.plan.assignments:
                if resolve is not None:
                    assigned = tuple([resolve(v) if type(v) is Ref else v for v in assigned])
                dicts[index].update(zip(keys, assigned, strict=True))
        for indexes, keys, rows in self.writes:
            if len(keys) == 1:  # a generated key, typically: no zip per row
                key = keys[0]
                for index, (value,) in zip(indexes, rows, strict=True):
                    dicts[index][key] = value
            else:
                for index, values in zip(indexes, rows, strict=True):
                    dicts[index].update(zip(keys, values, strict=True))
        inserted: list[InstanceState] = []
        updated: list[InstanceState] = []
        deleted: list[InstanceState] = []
        key_changes: list[KeyChange] = []
        switched = {new for new, _ in self.plan.switches}
        for step in self.plan.steps:
            if isinstance(step, DeleteBatch):
                deleted.extend(states[i] for i in step.states)
                continue
            if isinstance(step, (PostUpdate, AssociationInsert, AssociationDelete)):
                continue
            mapper = step.mapper
            if isinstance(step, InsertBatch):
                keys = step.keys
                # The identity from the object's primary key values (as
                # ``mapper.identity_key_from_instance``), without the key tuple.
                pk_keys = mapper.pk_keys
                pk_key = pk_keys[0] if len(pk_keys) == 1 else None
                for index in step.states:
                    state = states[index]
                    d = dicts[index]
                    for key in keys:  # columns sent as NULL because the object left them unset
                        if key not in d:
                            d[key] = None
                    state.commit_all()
                    state._ident = (
                        d.get(pk_key) if pk_key is not None else tuple([d.get(k) for k in pk_keys])
                    )
                    inserted.append(state)
                continue
            pk_changed = any(k in step.keys for k in mapper.pk_keys)
            for index in step.states:
                state = states[index]
                state.commit_all()
                if index in switched:
                    continue  # reported as inserted below
                updated.append(state)
                if pk_changed and state.key is not None:
                    new_key = mapper.identity_key_from_instance(state.obj_ref())
                    if new_key != state.key:
                        key_changes.append(KeyChange(state, state.key, new_key))
        for new, old in self.plan.switches:
            # The pending object now is the row: persistent under the old object's key,
            # which counts as deleted (SQLAlchemy's row switch).
            state = states[new]
            state.commit_all()
            state.key = states[old].key
            inserted.append(state)
            deleted.append(states[old])
        for indexes, keys in self.expire:
            for index in indexes:
                states[index].expire(keys)
        return FlushOutcome(tuple(inserted), tuple(updated), tuple(deleted), tuple(key_changes))


def _generate(
    info: _MapperInfo, keys: tuple[str, ...], row: tuple[Any, ...], generated: tuple[str, ...]
) -> tuple[Any, ...]:
    """The values of Python-side INSERT defaults (and the first version) for one row."""
    out: list[Any] = []
    context: dict[str, Any] | None = None
    for key in generated:
        default = info.defaults.get(key)
        if default is None:  # the version counter
            out.append(info.version_generator(None))
        elif not default.is_callable:
            out.append(default.arg)
        elif default.takes_context:
            if context is None:
                context = {info.columns[k].key: v for k, v in zip(keys, row, strict=True)}
                context.update(
                    (info.columns[k].key, v) for k, v in zip(generated, out, strict=False)
                )
            value = default.arg(DefaultContext(context))
            context[info.columns[key].key] = value
            out.append(value)
        else:
            out.append(default.arg())
    return tuple(out)


def _onupdate(
    info: _MapperInfo, keys: tuple[str, ...], row: tuple[Any, ...], generated: tuple[str, ...]
) -> list[Any]:
    """The values of Python-side ``onupdate`` columns for one updated row."""
    out: list[Any] = []
    context: dict[str, Any] | None = None
    for key in generated:
        default = info.onupdates[key]
        if not default.is_callable:
            out.append(default.arg)
        elif default.takes_context:
            if context is None:
                context = {info.columns[k].key: v for k, v in zip(keys, row, strict=True)}
            out.append(default.arg(DefaultContext(context)))
        else:
            out.append(default.arg())
    return out


def _insert_template(
    info: _MapperInfo, keys: tuple[str, ...], n: int, returning: tuple[str, ...]
) -> tuple[Insert, tuple[str, ...]]:
    columns = [info.columns[k] for k in keys]
    names: list[str] = []
    rows = []
    for i in range(n):
        row = {}
        for j, column in enumerate(columns):
            name = f"r{i}_{j}"
            names.append(name)
            row[column] = bindparam(name, type_=column.type)
        rows.append(row)
    statement = insert(info.table)
    if columns:
        statement = statement.values(rows)
    if returning:
        statement = statement.returning(*(info.columns[k] for k in returning))
    return statement, tuple(names)


def _check_updated(info: _MapperInfo, expected: int, matched: int) -> None:
    # Rows matched by primary key (and version) can only be fewer: the row was
    # deleted or its key changed by someone else, or the version is stale.
    if matched != expected:
        raise exc.StaleDataError(
            f"UPDATE statement on table {info.table.fullname!r} expected to update "
            f"{expected} row(s); {matched} were matched."
        )


def _warn_deleted(info: _MapperInfo, expected: int, rowcount: int) -> None:
    # rowcount is -1 when the driver can't tell (PostgreSQL's executemany).
    if 0 <= rowcount != expected:
        warnings.warn(
            f"DELETE statement on table {info.table.fullname!r} expected to delete "
            f"{expected} row(s); {rowcount} were matched.",
            exc.StaleDataWarning,
            stacklevel=2,
        )


def _update_template(
    info: _MapperInfo, set_keys: tuple[str, ...], check_version: bool, returning: tuple[str, ...]
) -> tuple[Update, tuple[str, ...]]:
    columns = info.columns
    names: list[str] = []
    values = {}
    for j, key in enumerate(set_keys):
        names.append(f"s{j}")
        values[columns[key]] = bindparam(f"s{j}", type_=columns[key].type)
    statement = update(info.table).values(values).where(*_key_criteria(info, check_version, names))
    if returning:
        statement = statement.returning(*(columns[k] for k in returning))
    return statement, tuple(names)


def _delete_template(info: _MapperInfo, check_version: bool) -> tuple[Delete, tuple[str, ...]]:
    names: list[str] = []
    statement = delete(info.table).where(*_key_criteria(info, check_version, names))
    if check_version:
        statement = statement.returning(*(info.columns[k] for k in info.pk_keys))
    return statement, tuple(names)


def _key_criteria(info: _MapperInfo, check_version: bool, names: list[str]) -> list[Any]:
    """``pk = :w0 AND ... [AND version = :v]``; appends the parameter names to ``names``."""
    columns = info.columns
    keys = list(info.pk_keys)
    if check_version:
        assert info.version_key is not None
        keys.append(info.version_key)
    criteria = []
    for j, key in enumerate(keys):
        name = f"w{j}"
        names.append(name)
        column = columns[key]
        criteria.append(column == bindparam(name, type_=column.type))
    return [and_(*criteria)]


async def execute_flush(plan: FlushPlan, conn: AsyncConnection) -> FlushOutcome:
    """Execute ``plan`` on ``conn`` and write the results into the objects.

    Runs the steps in order; objects are changed only after the last
    statement succeeded (see the module docstring), so on any error, including
    StaleDataError and cancellation, every object is as it was and the caller
    rolls the transaction back. Returns what the session needs to move its
    states.
    """
    # Hold the objects for the duration: states only reference them weakly.
    objects = [state() for state in plan.states]
    if any(obj is None for obj in objects):
        raise exc.InvalidRequestError(
            "Can't execute this flush plan: one of its objects was garbage collected"
        )
    execution = _Execution(plan, conn)
    for step in plan.steps:
        if isinstance(step, InsertBatch):
            await execution.insert(step)
        elif isinstance(step, UpdateGroup):
            await execution.update(step)
        elif isinstance(step, DeleteBatch):
            await execution.delete(step)
        elif isinstance(step, PostUpdate):
            await execution.post_update(step)
        else:
            await execution.association(step)
    with paused(len(plan.states)):
        outcome = execution.apply()
    del objects
    return outcome
