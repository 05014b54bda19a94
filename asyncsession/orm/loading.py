"""ORM loading: from an ORM-enabled SELECT to rows of objects. No IO here.

How this works:

* :func:`prepare_select` rewrites a statement whose columns include mapped
  classes: each entity becomes the columns its mapper loads by default (the
  non-deferred ones, or those named by ``load_only``-style key lists) and the
  plan records where each entity's columns sit in the row.
* :func:`instances` turns result rows into tuples of objects and plain values.
  Each entity goes through the identity map: a row for an identity already
  present returns that object, fills in only what it has unloaded (expired or
  never loaded attributes) and leaves pending changes alone, unless
  ``populate_existing`` asks to overwrite what was loaded.
* Building objects is the hot path: ``cls.__new__``, one ``dict.update`` of
  the loaded values, a state, an identity-map entry. No descriptor runs.
* Loader options (``strategy_options``) and relationship defaults shape the
  plan: column options choose each entity's columns; joined eager loads add
  an aliased LEFT OUTER (or INNER) JOIN and the target's columns after the
  statement's own, and the loader fills the relationship from those columns
  of every row (a joined collection repeats its parent, so the result must be
  ``unique()``d); ``contains_eager`` does the same from columns of a join the
  statement has. What needs more SQL (selectin loads) is left, as a list of
  (level, objects), for the session to await after the rows are loaded;
  ``noload`` and the ``raiseload``/``lazyload`` marks apply at once.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from asyncsession import exc
from asyncsession.orm import strategy_options as so
from asyncsession.orm._gcpause import paused
from asyncsession.orm.relationships import (
    MANYTOMANY,
    MANYTOONE,
    RelationshipProperty,
    ensure_configured,
)
from asyncsession.orm.state import NO_VALUE, STATE_KEY, InstanceState
from asyncsession.orm.strategies import store
from asyncsession.orm.util import entity_insp
from asyncsession.sql.elements import (
    BinaryExpression,
    BooleanClauseList,
    ColumnElement,
    Grouping,
    UnaryExpression,
    and_,
)
from asyncsession.sql.schema import Column
from asyncsession.sql.selectable import Alias, FromClause, Select

if TYPE_CHECKING:
    from asyncsession.orm.identity import IdentityMap
    from asyncsession.orm.mapper import Mapper


@attrs.frozen(eq=False)
class Level:
    """What loading does for the objects of one entity besides their columns."""

    selectin: tuple[tuple[RelationshipProperty[Any], so.LoadContext], ...] = ()
    noload: tuple[RelationshipProperty[Any], ...] = ()
    marks: Mapping[str, str] | None = None  # relationship key -> "raise" / "select"
    joined: tuple[JoinedLoad, ...] = ()

    @property
    def immediate(self) -> bool:
        return bool(self.noload or self.marks)


@attrs.frozen(eq=False)
class EntityLoad:
    """Where one mapped entity's columns are in a row and which attributes they fill."""

    mapper: Mapper
    keys: tuple[str, ...]
    start: int
    pk_positions: tuple[int, ...]
    level: Level | None = None

    @property
    def end(self) -> int:
        return self.start + len(self.keys)


@attrs.frozen(eq=False)
class JoinedLoad:
    """A relationship filled from the same rows: the target's columns are ``entity``'s."""

    prop: RelationshipProperty[Any]
    entity: EntityLoad


@attrs.frozen(eq=False)
class ORMPlan:
    """A statement ready for the engine plus how to turn its rows into results."""

    statement: Any
    entries: tuple[EntityLoad | int, ...]  # an EntityLoad, or the row index of a column
    keys: tuple[str, ...]  # result keys: entity class names and column keys
    needs_unique: bool = False  # joined eager collections: the result must be unique()d
    joined_collections: bool = False

    @property
    def single_entity(self) -> EntityLoad | None:
        if len(self.entries) == 1 and isinstance(self.entries[0], EntityLoad):
            return self.entries[0]
        return None


def mapper_of(entity: Any) -> Mapper | None:
    """The mapper of a mapped class (or of a Mapper itself), else None."""
    if isinstance(entity, type):
        return entity.__dict__.get("__mapper__")
    if type(entity).__name__ == "Mapper":
        return entity  # type: ignore[no-any-return]
    return None


def load_columns(
    mapper: Mapper,
    only: Iterable[str] | None = None,
    undefer: Iterable[str] = (),
    defer: Iterable[str] = (),
) -> tuple[tuple[str, ColumnElement], ...]:
    """(key, column) pairs an entity loads: defaults, or ``only`` (+ the primary key),
    with ``undefer`` added and ``defer`` left out (never the primary key)."""
    if only is None:
        extra = [k for k in undefer if k in mapper.deferred_keys]
        dropped = set(defer) - set(mapper.pk_keys)
        if not extra and not dropped:
            return mapper.default_load
        wanted = set(extra)
        return tuple((k, c) for k, c in mapper.default_load if k not in dropped) + tuple(
            (k, _column_of(mapper, k)) for k in mapper.attrs if k in wanted
        )
    wanted = (set(only) | set(undefer)) - set(defer) | set(mapper.pk_keys)
    unknown = wanted - set(mapper.column_attrs) - set(mapper.expression_attrs)
    if unknown:
        raise exc.ArgumentError(
            f"{mapper.class_.__name__} has no column attribute(s) {sorted(unknown)} to load"
        )
    return tuple((k, _column_of(mapper, k)) for k in mapper.attrs if k in wanted)


def _column_of(mapper: Mapper, key: str) -> ColumnElement:
    prop = mapper.attrs[key]
    column: ColumnElement | None = getattr(prop, "column", None)
    if column is None:  # never `or`: a column's truth value is undefined
        column = prop.expression
    return column


def prepare_select(statement: Select, stream: bool = False) -> ORMPlan | None:
    """The ORM plan of a SELECT naming mapped classes; None if it names none.

    Applies the statement's loader options and the relationships' defaults;
    with LIMIT/OFFSET and a joined collection the statement becomes a subquery
    the joins go from. Raises ArgumentError for options that don't fit the
    statement, and InvalidRequestError for what can't be done (a joined
    collection in a ``stream``), before any SQL runs.
    """
    entities = statement._entities
    # aliased(A): A's mapper, its columns read from the alias.
    aliases = [entity_insp(e) for e in entities]
    mappers = [
        mapper_of(e) if insp is None else insp.mapper
        for e, insp in zip(entities, aliases, strict=True)
    ]
    if all(m is None for m in mappers):
        if statement._with_options:
            raise exc.ArgumentError(
                "Loader options need an entity in the SELECT list (select(User), not only "
                "columns); this statement selects none"
            )
        return None
    contexts = so.contexts_for(statement._with_options, mappers)
    builder = _Builder(stream)
    entries: list[EntityLoad | int] = []
    keys: list[str] = []
    pending: list[tuple[int, list[tuple[RelationshipProperty[Any], str, bool]]]] = []
    for entity, mapper, ctx, insp in zip(entities, mappers, contexts, aliases, strict=True):
        if mapper is None:
            entries.append(len(builder.columns))
            builder.columns.append(entity)
            key = getattr(entity, "key", None)
            keys.append(key if isinstance(key, str) else f"column_{len(keys)}")
            continue
        assert ctx is not None
        load, joined = builder.entity(mapper, ctx, None if insp is None else insp.selectable)
        pending.append((len(entries), joined))
        entries.append(load)
        keys.append(mapper.class_.__name__ if insp is None else entity._key)
    own = list(builder.columns)
    expanded = _expand_all(builder, entries, contexts, pending, None)
    limited = statement._limit is not None or statement._offset is not None
    if builder.joined_collections and limited:
        # LIMIT/OFFSET count parents: the statement becomes a subquery, and the
        # joins go from it (as SQLAlchemy does).
        builder = _Builder(stream)
        new = _wrapped(statement, own, builder, entries, contexts, pending)
    else:
        entries = expanded
        # The entities' columns name their tables, so FROM is inferred as before.
        new = statement.with_only_columns(*builder.columns)
        for left, right, onclause, outer in builder.joins:
            new = new.join_from(left, right, onclause, isouter=outer)
        if builder.order_by:
            new = new.order_by(*builder.order_by)
        lock = statement._for_update
        if lock is not None and not lock.of and any(outer for *_, outer in builder.joins):
            # FOR UPDATE can't lock the nullable side of an outer join (PostgreSQL
            # refuses): lock the rows of the statement's own entities, as SQLAlchemy.
            tables = [e.mapper.local_table for e in entries if isinstance(e, EntityLoad)]
            new = new.with_for_update(
                nowait=lock.nowait,
                read=lock.read,
                of=tables,
                skip_locked=lock.skip_locked,
                key_share=lock.key_share,
            )
    return ORMPlan(
        new,
        tuple(entries),
        tuple(keys),
        builder.needs_unique,
        builder.joined_collections,
    )


Pending = list[tuple[int, list[tuple[RelationshipProperty[Any], str, bool]]]]


def _expand_all(
    builder: _Builder,
    entries: list[EntityLoad | int],
    contexts: list[so.LoadContext | None],
    pending: Pending,
    from_: FromClause | None,
) -> list[EntityLoad | int]:
    """``entries`` with their joined loads planned (targets' columns after all others)."""
    out = list(entries)
    for index, joined in pending:
        entry = out[index]
        if joined and isinstance(entry, EntityLoad):
            ctx = contexts[index]
            assert ctx is not None
            out[index] = builder.expand(entry, ctx, from_, (index,), joined, False)
    return out


def _wrapped(
    statement: Select,
    own: list[Any],
    builder: _Builder,
    entries: list[EntityLoad | int],
    contexts: list[so.LoadContext | None],
    pending: Pending,
) -> Select:
    """``SELECT own... FROM (statement) AS anon JOIN ...``: joined loads outside the LIMIT.

    ``entries`` is updated in place; the rows keep the same positions.
    """
    order_columns = [c for term in statement._order_by for c in _columns_in(term)]
    extra = [c for c in order_columns if not any(c is o for o in own)]
    inner = statement.with_only_columns(*own, *extra).subquery()
    proxies = list(inner.c)
    builder.columns.extend(proxies[: len(own)])
    expanded = _expand_all(builder, entries, contexts, pending, inner)
    entries[:] = expanded
    new = Select(builder.columns).select_from(inner)
    for left, right, onclause, outer in builder.joins:
        new = new.join_from(left, right, onclause, isouter=outer)
    order = [_adapt(term, inner.corresponding_column) for term in statement._order_by]
    ordered: Select = new.order_by(*order, *builder.order_by)
    return ordered


def _columns_in(expr: Any) -> list[Column]:
    if isinstance(expr, Column):
        return [expr]
    if hasattr(expr, "column") and isinstance(expr.column, Column):
        return [expr.column]
    return [c for child in expr.get_children() for c in _columns_in(child)]


def _col(from_: FromClause, column: Column) -> Any:
    """``column`` as read from ``from_`` (its table, an alias of it, or a subquery)."""
    if from_ is column.table:
        return column
    found = from_.corresponding_column(column)
    if found is None:
        where = getattr(column.table, "name", "?")
        raise exc.InvalidRequestError(f"Can't find {where}.{column.key} in the joined query")
    return found


class _Builder:
    """Collects the columns, joins and ORDER BY terms of one ORM plan."""

    def __init__(self, stream: bool) -> None:
        self.stream = stream
        self.columns: list[Any] = []
        self.joins: list[tuple[Any, Any, Any, bool]] = []
        self.order_by: list[Any] = []
        self.needs_unique = False
        self.joined_collections = False

    def entity(
        self,
        mapper: Mapper,
        ctx: so.LoadContext,
        from_: FromClause | None,
    ) -> tuple[EntityLoad, list[tuple[RelationshipProperty[Any], str, bool]]]:
        """Add the columns of an entity read from ``from_`` (its table when None)."""
        selectin: list[tuple[RelationshipProperty[Any], so.LoadContext]] = []
        noload: list[RelationshipProperty[Any]] = []
        marks: dict[str, str] = {}
        joined: list[tuple[RelationshipProperty[Any], str, bool]] = []
        needed: set[str] = set()
        if mapper.relationships:
            ensure_configured(mapper)
            for prop in mapper.relationships.values():
                strategy, innerjoin = ctx.strategy(prop)
                if strategy is None:
                    continue
                if strategy == so.SELECTIN:
                    selectin.append((prop, ctx.child(prop)))
                    needed.update(prop.local_keys)
                elif strategy in (so.JOINED, so.CONTAINS_EAGER):
                    joined.append((prop, strategy, innerjoin))
                elif strategy == so.NOLOAD:
                    noload.append(prop)
                elif (strategy == so.RAISE) != (so.DEFAULTS[prop.lazy] == so.RAISE):
                    marks[prop.key] = strategy  # raiseload() / lazyload() over the default
        spec = ctx.column_spec()
        only = spec.only
        if only is not None:
            only = only | needed
        pairs = load_columns(mapper, only, spec.undefer, spec.defer - needed)
        start = len(self.columns)
        attr_keys = tuple(k for k, _ in pairs)
        if from_ is None or from_ is mapper.local_table:
            self.columns.extend(c for _, c in pairs)
        else:
            table = mapper.local_table
            self.columns.extend(
                _adapt(c, lambda col: _col(from_, col) if col.table is table else col)
                for _, c in pairs
            )
        positions = tuple(start + attr_keys.index(k) for k in mapper.pk_keys)
        level = None
        if selectin or noload or marks:
            level = Level(tuple(selectin), tuple(noload), marks or None)
        return EntityLoad(mapper, attr_keys, start, positions, level), joined

    def expand(
        self,
        load: EntityLoad,
        ctx: so.LoadContext,
        from_: FromClause | None,
        key: tuple[Any, ...],
        joined: list[tuple[RelationshipProperty[Any], str, bool]],
        outer: bool,
    ) -> EntityLoad:
        """``load`` with its joined relationships planned (their columns added now)."""
        loads = []
        parent_from: FromClause = from_ if from_ is not None else load.mapper.local_table
        for prop, strategy, innerjoin in joined:
            if prop.uselist:
                if self.stream:
                    raise exc.InvalidRequestError(
                        f"Can't stream with {strategy}() of the collection {prop.describe()}: a "
                        "parent's rows may span chunks. Use selectinload() for it, or "
                        "execute() instead of stream()."
                    )
                self.needs_unique = True
                self.joined_collections = True
            child_ctx = ctx.child(prop)
            child_key = (*key, prop)
            child_outer = outer or not innerjoin
            if strategy == so.JOINED:
                target = self._join(prop, parent_from, child_key, child_outer)
            else:
                target = prop.target
            child, grandchildren = self.entity(prop.mapper, child_ctx, target)
            if grandchildren:
                child = self.expand(child, child_ctx, target, child_key, grandchildren, child_outer)
            loads.append(JoinedLoad(prop, child))
        level = load.level or Level()
        return attrs.evolve(load, level=attrs.evolve(level, joined=tuple(loads)))

    def _join(
        self, prop: RelationshipProperty[Any], parent: FromClause, key: tuple[Any, ...], outer: bool
    ) -> FromClause:
        if prop.extra_criteria and prop.target is prop.parent.local_table:
            raise exc.InvalidRequestError(
                f"joinedload({prop.describe()}): a self-referential relationship with a "
                "custom primaryjoin can't be joined-loaded; use selectinload() for it"
            )
        # One alias per (entity position, relationship path), kept on the relationship
        # (so it lives as long as the mapping): the same statement shape gets the
        # same aliases, and its compiled SQL is cached.
        aliases: dict[tuple[Any, ...], tuple[Alias, Alias | None]] = prop.__dict__.setdefault(
            "_joined_aliases", {}
        )
        found = aliases.get(key)
        if found is None:
            secondary = prop.secondary.alias() if prop.secondary is not None else None
            found = aliases[key] = (prop.target.alias(), secondary)
        target, secondary = found
        parent_table = prop.parent.local_table

        def adapt(column: Column) -> Any:
            if column.table is prop.target:
                return _col(target, column)
            if column.table is parent_table:
                return _col(parent, column)
            if secondary is not None and column.table is prop.secondary:
                return _col(secondary, column)
            return column

        extra = [_adapt(c, adapt) for c in prop.extra_criteria]
        if prop.direction is MANYTOMANY:
            assert secondary is not None
            to_secondary = and_(
                *(_col(parent, ref) == _col(secondary, fk) for ref, fk in prop.pairs)
            )
            to_target = and_(
                *(_col(target, ref) == _col(secondary, fk) for ref, fk in prop.secondary_pairs),
                *extra,
            )
            self.joins.append((parent, secondary, to_secondary, outer))
            self.joins.append((secondary, target, to_target, outer))
        else:
            if prop.direction is MANYTOONE:
                pairs = [(_col(target, ref), _col(parent, fk)) for ref, fk in prop.pairs]
            else:
                pairs = [(_col(parent, ref), _col(target, fk)) for ref, fk in prop.pairs]
            on = and_(*(left == right for left, right in pairs), *extra)
            self.joins.append((parent, target, on, outer))
        if prop.uselist and prop.order_by:
            target_table = prop.target
            self.order_by.extend(
                _adapt(c, lambda col: _col(target, col) if col.table is target_table else col)
                for c in prop.order_by
            )
        return target


def _adapt(expr: Any, replace: Callable[[Column], Any]) -> Any:
    """``expr`` with each table column ``c`` replaced by ``replace(c)`` (pure, copies nodes).

    Handles what relationship conditions, ORDER BY terms and column properties
    are made of; anything else that holds columns raises InvalidRequestError.
    """
    if isinstance(expr, Column):
        found = replace(expr)
        if found is None:
            where = getattr(expr.table, "name", "?")
            raise exc.InvalidRequestError(f"Can't find {where}.{expr.key} in the joined query")
        return found
    if hasattr(expr, "__clause_element__") and not isinstance(expr, ColumnElement):
        return _adapt(expr.__clause_element__(), replace)
    if isinstance(expr, BinaryExpression):
        new = copy.copy(expr)
        new.left = _adapt(expr.left, replace)
        new.right = _adapt(expr.right, replace)
        return new
    if isinstance(expr, (UnaryExpression, Grouping)):
        new_unary = copy.copy(expr)
        new_unary.element = _adapt(expr.element, replace)
        return new_unary
    if isinstance(expr, BooleanClauseList):
        new_list = copy.copy(expr)
        new_list.clauses = tuple(_adapt(c, replace) for c in expr.clauses)
        return new_list
    if hasattr(expr, "column") and isinstance(expr.column, Column):
        return _adapt(expr.column, replace)
    if not _columns_in(expr):
        return expr
    raise exc.InvalidRequestError(
        f"Can't load {expr!r:.60} through an alias or subquery; use selectinload() for "
        "this relationship"
    )


def instances(
    plan: ORMPlan,
    rows: Sequence[Sequence[Any]],
    session: Any,
    identity_map: IdentityMap,
    populate_existing: bool = False,
) -> list[tuple[Any, ...]]:
    """Rows of objects (and plain values) for ``rows`` of ``plan.statement``.

    Selectin loads the plan asks for are not done here (they need IO): use
    :func:`row_loader` and hand its ``post`` work to the session.
    """
    return row_loader(plan, session, identity_map, populate_existing)(rows)


PostWork = list[tuple[Level, list[Any]]]


class RowLoader:
    """Turns rows of ``plan.statement`` into rows of objects; callable once per chunk.

    :func:`instances` applies it to every row at once; a streamed result applies
    it to each chunk as it arrives, so both go through the same loader. After
    each call, ``post`` holds the (level, objects) whose selectin loads the
    session must still await.
    """

    __slots__ = ("_after", "_load", "post")

    def __init__(
        self,
        load: Callable[[Sequence[Sequence[Any]]], list[tuple[Any, ...]]],
        after: Callable[[Sequence[Sequence[Any]], list[tuple[Any, ...]], PostWork], None] | None,
    ) -> None:
        self._load = load
        self._after = after
        self.post: PostWork = []

    def __call__(self, rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
        out = self._load(rows)
        if self._after is not None:
            self._after(rows, out, self.post)
        return out

    @property
    def stateless(self) -> bool:
        """True when loading keeps nothing between calls (no eager or joined work), so
        one loader may serve many loads."""
        return self._after is None

    def take_post(self) -> PostWork:
        post, self.post = self.post, []
        return post


def row_loader(
    plan: ORMPlan,
    session: Any,
    identity_map: IdentityMap,
    populate_existing: bool = False,
) -> RowLoader:
    """A :class:`RowLoader` for ``plan`` (see there)."""
    loaders = [
        _entity_loader(entry, session, identity_map, populate_existing, plan.joined_collections)
        if isinstance(entry, EntityLoad)
        else entry
        for entry in plan.entries
    ]
    after = _after_loader(plan, session, identity_map, populate_existing)
    if len(loaders) == 1 and not isinstance(loaders[0], int):
        load = loaders[0]

        def load_single(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
            with paused(len(rows)):
                return [(load(row),) for row in rows]

        return RowLoader(load_single, after)

    # One function per result column: an entity's loader, or the row's item.
    parts = [operator.itemgetter(item) if isinstance(item, int) else item for item in loaders]
    if len(parts) == 2:  # an entity with one column (a selectin load's key), say
        first, second = parts

        def load_pairs(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
            with paused(len(rows)):
                return [(first(row), second(row)) for row in rows]

        return RowLoader(load_pairs, after)

    def load_rows(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
        with paused(len(rows)):
            return [tuple([part(row) for part in parts]) for row in rows]

    return RowLoader(load_rows, after)


def _after_loader(
    plan: ORMPlan,
    session: Any,
    identity_map: IdentityMap,
    populate_existing: bool,
) -> Callable[[Sequence[Sequence[Any]], list[tuple[Any, ...]], PostWork], None] | None:
    """What to do with a chunk's objects once they exist: joined, noload, marks, selectin."""
    work: list[tuple[int, Level, list[_JoinedCollector]]] = []
    for index, entry in enumerate(plan.entries):
        if isinstance(entry, EntityLoad) and entry.level is not None:
            collectors = [
                _JoinedCollector(jl, session, identity_map, populate_existing)
                for jl in entry.level.joined
            ]
            work.append((index, entry.level, collectors))
    if not work:
        return None

    def after(rows: Sequence[Sequence[Any]], out: list[tuple[Any, ...]], post: PostWork) -> None:
        for index, level, collectors in work:
            if collectors:
                parents = [loaded[index] for loaded in out]
                for collector in collectors:
                    collector.collect_rows(parents, rows)
                    collector.finish(post)
            if level.immediate or level.selectin:
                seen: dict[int, Any] = {}
                for loaded in out:
                    obj = loaded[index]
                    if obj is not None:
                        seen[id(obj)] = obj
                objects = list(seen.values())
                apply_level(level, objects, populate_existing)
                if level.selectin:
                    post.append((level, objects))

    return after


def apply_level(level: Level, objects: Sequence[Any], populate_existing: bool) -> None:
    """The no-IO part of a level: ``noload`` values and ``raiseload``/``lazyload`` marks."""
    marks = level.marks
    for obj in objects:
        state: InstanceState = obj.__dict__[STATE_KEY]
        for prop in level.noload:
            store(state, prop, [] if prop.uselist else None, populate_existing)
        if marks is not None:
            state.load_options = marks


class _JoinedCollector:
    """Gathers one joined relationship's members row by row, then stores them."""

    __slots__ = ("_acc", "_children", "_level", "_load", "_populate_existing", "_prop", "_subs")

    def __init__(
        self,
        joined: JoinedLoad,
        session: Any,
        identity_map: IdentityMap,
        populate_existing: bool,
    ) -> None:
        self._prop = joined.prop
        level = self._level = joined.entity.level
        # Rows repeat a child when a collection below it multiplies them.
        repeats = level is not None and any(sub.prop.uselist for sub in level.joined)
        self._load = _entity_loader(
            joined.entity, session, identity_map, populate_existing, repeats
        )
        self._populate_existing = populate_existing
        self._subs = [
            _JoinedCollector(sub, session, identity_map, populate_existing)
            for sub in (level.joined if level is not None else ())
        ]
        # id(parent) -> (parent, {id(member): member}): members in row order, once each.
        self._acc: dict[int, tuple[Any, dict[int, Any]]] = {}

    def collect_rows(self, parents: Sequence[Any], rows: Sequence[Sequence[Any]]) -> None:
        """:meth:`collect` for each (parent, row), in one loop (the hot path)."""
        if self._subs:
            for parent, row in zip(parents, rows, strict=True):
                self.collect(parent, row)
            return
        acc = self._acc
        load = self._load
        last: Any = None
        members: dict[int, Any] = {}
        for parent, row in zip(parents, rows, strict=True):
            if parent is not last:  # a parent's rows usually come together
                if parent is None:
                    continue
                last = parent
                entry = acc.get(id(parent))
                if entry is None:
                    entry = acc[id(parent)] = (parent, {})
                members = entry[1]
            child = load(row)
            if child is not None:
                members[id(child)] = child

    def collect(self, parent: Any, row: Sequence[Any]) -> None:
        if parent is None:
            return
        entry = self._acc.get(id(parent))
        if entry is None:
            entry = self._acc[id(parent)] = (parent, {})
        child = self._load(row)
        if child is None:
            return
        entry[1][id(child)] = child
        for sub in self._subs:
            sub.collect(child, row)

    def finish(self, post: PostWork) -> None:
        prop = self._prop
        populate_existing = self._populate_existing
        uselist = prop.uselist
        children: dict[int, Any] = {}
        for parent, members in self._acc.values():
            items = list(members.values())
            children.update(members)
            value = items if uselist else (items[0] if items else None)
            store(parent.__dict__[STATE_KEY], prop, value, populate_existing)
        self._acc.clear()
        level = self._level
        if level is not None and (level.immediate or level.selectin):
            objects = list(children.values())
            apply_level(level, objects, populate_existing)
            if level.selectin:
                post.append((level, objects))
        for sub in self._subs:
            sub.finish(post)


def _entity_loader(
    entry: EntityLoad,
    session: Any,
    identity_map: IdentityMap,
    populate_existing: bool,
    repeats: bool = False,
) -> Any:
    """A function from a row to the entity's object (None when its key is all NULL).

    ``repeats``: the rows repeat objects (joined collections), so each key is
    resolved once per load and later rows of it are answered from a memo.
    """
    mapper = entry.mapper
    cls = mapper.class_
    keys = entry.keys
    start, end = entry.start, entry.end
    positions = entry.pk_positions
    single_pk = positions[0] if len(positions) == 1 else None
    # Looked up by identity (the bare key value for a one-column key): no key tuple.
    existing_states = identity_map.states_of(cls)
    new = cls.__new__
    add_loaded = identity_map.add_loaded
    # The entity's columns open the row (the usual case): zip stops at its last
    # column, so no slice of the row is made.
    leading = start == 0

    def load(row: Sequence[Any]) -> Any:
        if single_pk is not None:
            ident = row[single_pk]
            if ident is None:
                return None  # an outer join found no row for this entity
        else:
            ident = tuple([row[i] for i in positions])
            if all(v is None for v in ident):
                return None
        state = existing_states.get(ident)
        if state is not None:
            obj = state()
            if obj is not None:
                if not state._deleted:
                    _refresh_existing(state, obj, keys, row[start:end], populate_existing)
                return obj
        obj = new(cls)
        d = obj.__dict__
        # zip() without the strict keyword: passing it, even False, costs a third of
        # this update. Leading columns stop at the entity's last key; a slice fits.
        d.update(zip(keys, row) if leading else zip(keys, row[start:end]))  # noqa: B905
        d[STATE_KEY] = add_loaded(obj, mapper, ident, session, existing_states)
        return obj

    if not repeats or single_pk is None:
        return load
    memo: dict[Any, Any] = {}
    memo_get = memo.get
    last: list[Any] = [NO_VALUE, None]  # the previous row's key and object

    def load_once(row: Sequence[Any]) -> Any:
        pk_value = row[single_pk]
        if pk_value == last[0]:
            return last[1]
        obj = memo_get(pk_value)
        if obj is None:
            obj = memo[pk_value] = load(row)
        last[0] = pk_value
        last[1] = obj
        return obj

    return load_once


def _refresh_existing(
    state: InstanceState,
    obj: Any,
    keys: Sequence[str],
    values: Sequence[Any],
    populate_existing: bool,
) -> None:
    d = obj.__dict__
    committed = state.committed_state
    if populate_existing:
        for key, value in zip(keys, values, strict=True):
            d[key] = value
        if committed and not committed.keys() <= set(keys):
            # Unflushed relationship changes are not the row's to overwrite: keep
            # their history (the flush needs it), settle the columns.
            for key in keys:
                committed.pop(key, None)
            if state.expired_attributes:
                state.expired_attributes.difference_update(keys)
            return
        state.commit_all()
        state.expired_attributes = None
        return
    for key, value in zip(keys, values, strict=True):
        if key not in d and not (committed and key in committed):
            d[key] = value
    if state.expired_attributes:
        state.expired_attributes.difference_update(keys)


def populate_state(
    state: InstanceState, keys: Sequence[str], values: Sequence[Any], overwrite_changes: bool
) -> None:
    """Write loaded ``values`` into an object (refresh): changes survive unless overwritten."""
    obj = state.obj_ref()
    if obj is None:
        return
    d = obj.__dict__
    committed = state.committed_state
    for key, value in zip(keys, values, strict=True):
        if not overwrite_changes and committed and key in committed and key in d:
            continue
        d[key] = value
        if committed:
            committed.pop(key, None)
    if committed is not None and not committed:
        state.commit_all()
    if state.expired_attributes:
        state.expired_attributes.difference_update(keys)
