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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from asyncsession import exc
from asyncsession.orm.state import STATE_KEY, InstanceState
from asyncsession.sql.elements import ColumnElement
from asyncsession.sql.selectable import Select

if TYPE_CHECKING:
    from asyncsession.orm.identity import IdentityMap
    from asyncsession.orm.mapper import Mapper


@attrs.frozen
class EntityLoad:
    """Where one mapped entity's columns are in a row and which attributes they fill."""

    mapper: Mapper
    keys: tuple[str, ...]
    start: int
    pk_positions: tuple[int, ...]

    @property
    def end(self) -> int:
        return self.start + len(self.keys)


@attrs.frozen
class ORMPlan:
    """A statement ready for the engine plus how to turn its rows into results."""

    statement: Any
    entries: tuple[EntityLoad | int, ...]  # an EntityLoad, or the row index of a column
    keys: tuple[str, ...]  # result keys: entity class names and column keys

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
    mapper: Mapper, only: Iterable[str] | None = None, undefer: Iterable[str] = ()
) -> tuple[tuple[str, ColumnElement], ...]:
    """(key, column) pairs an entity loads: defaults, or ``only`` (+ the primary key)."""
    if only is None:
        extra = [k for k in undefer if k in mapper.deferred_keys]
        if not extra:
            return mapper.default_load
        wanted = set(extra)
        return mapper.default_load + tuple(
            (k, _column_of(mapper, k)) for k in mapper.attrs if k in wanted
        )
    wanted = set(only) | set(mapper.pk_keys)
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


def prepare_select(statement: Select) -> ORMPlan | None:
    """The ORM plan of a SELECT naming mapped classes; None if it names none."""
    entities = statement._entities
    if not any(mapper_of(e) is not None for e in entities):
        return None
    columns: list[Any] = []
    entries: list[EntityLoad | int] = []
    keys: list[str] = []
    for entity in entities:
        mapper = mapper_of(entity)
        if mapper is None:
            entries.append(len(columns))
            columns.append(entity)
            key = getattr(entity, "key", None)
            keys.append(key if isinstance(key, str) else f"column_{len(keys)}")
            continue
        pairs = load_columns(mapper)
        start = len(columns)
        attr_keys = tuple(k for k, _ in pairs)
        positions = tuple(start + attr_keys.index(k) for k in mapper.pk_keys)
        entries.append(EntityLoad(mapper, attr_keys, start, positions))
        columns.extend(c for _, c in pairs)
        keys.append(mapper.class_.__name__)
    # The entities' columns name their tables, so FROM is inferred as before.
    return ORMPlan(statement.with_only_columns(*columns), tuple(entries), tuple(keys))


def instances(
    plan: ORMPlan,
    rows: Sequence[Sequence[Any]],
    session: Any,
    identity_map: IdentityMap,
    populate_existing: bool = False,
) -> list[tuple[Any, ...]]:
    """Rows of objects (and plain values) for ``rows`` of ``plan.statement``."""
    return row_loader(plan, session, identity_map, populate_existing)(rows)


def row_loader(
    plan: ORMPlan,
    session: Any,
    identity_map: IdentityMap,
    populate_existing: bool = False,
) -> Callable[[Sequence[Sequence[Any]]], list[tuple[Any, ...]]]:
    """A function turning rows of ``plan.statement`` into rows of objects.

    :func:`instances` applies it to every row at once; a streamed result applies
    it to each chunk as it arrives, so both go through the same loader.
    """
    width = sum(len(e.keys) if isinstance(e, EntityLoad) else 1 for e in plan.entries)
    loaders = [
        _entity_loader(entry, session, identity_map, populate_existing, width)
        if isinstance(entry, EntityLoad)
        else entry
        for entry in plan.entries
    ]
    if len(loaders) == 1 and not isinstance(loaders[0], int):
        load = loaders[0]

        def load_single(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
            return [(load(row),) for row in rows]

        return load_single

    def load_rows(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
        return [
            tuple(row[item] if isinstance(item, int) else item(row) for item in loaders)
            for row in rows
        ]

    return load_rows


def _entity_loader(
    entry: EntityLoad,
    session: Any,
    identity_map: IdentityMap,
    populate_existing: bool,
    width: int,
) -> Any:
    mapper = entry.mapper
    cls = mapper.class_
    keys = entry.keys
    start, end = entry.start, entry.end
    positions = entry.pk_positions
    single_pk = positions[0] if len(positions) == 1 else None
    existing_states = identity_map._dict
    new = cls.__new__
    add_loaded = identity_map.add_loaded
    whole_row = start == 0 and end == width

    def load(row: Sequence[Any]) -> Any:
        if single_pk is not None:
            pk_value = row[single_pk]
            if pk_value is None:
                return None  # an outer join found no row for this entity
            key = (cls, (pk_value,), None)
        else:
            pk = tuple(row[i] for i in positions)
            if all(v is None for v in pk):
                return None
            key = (cls, pk, None)
        state = existing_states.get(key)
        if state is not None:
            obj = state.obj_ref()
            if obj is not None:
                if not state._deleted:
                    _refresh_existing(state, obj, keys, row[start:end], populate_existing)
                return obj
        obj = new(cls)
        d = obj.__dict__
        d.update(zip(keys, row if whole_row else row[start:end], strict=True))
        d[STATE_KEY] = add_loaded(obj, mapper, key, session)
        return obj

    return load


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
