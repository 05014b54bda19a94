"""Loading relationships in batches: one ``IN`` query for many parents. No IO here.

How this works:

* :func:`batch_keys` says, for each parent, which key its related rows are
  found by: the parent's own key for one-to-many and many-to-many, its
  foreign key for many-to-one. A parent whose foreign key is NULL needs no
  query (its value is None); a many-to-one whose target is already in the
  identity map needs none either.
* :func:`batch_statements` builds the SELECTs for the keys that remain: the
  target entity plus the key columns to group rows by, ``WHERE key IN
  (...)`` in chunks of :data:`CHUNK` keys, with the relationship's
  ``order_by``. The session awaits them (the "selectin" strategy; also what
  ``awaitable_attrs``, ``refresh()``, delete cascades and
  ``AsyncSession.load_relationship()`` use).
* :func:`populate` stores each parent's members as its loaded value, without
  history. A parent whose relationship is already loaded keeps it, unless
  ``populate_existing``; one with unflushed changes to it always keeps them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from asyncsession import exc
from asyncsession.orm.relationships import (
    MANYTOMANY,
    MANYTOONE,
    RelationshipProperty,
    resolve_many_to_one,
    set_committed,
)
from asyncsession.orm.state import NO_VALUE, InstanceState
from asyncsession.sql.elements import and_, tuple_
from asyncsession.sql.selectable import Select, select

CHUNK = 500


def key_columns(prop: RelationshipProperty[Any]) -> list[Any]:
    """The columns whose values match a parent's batch key, as selected with the target."""
    if prop.direction is MANYTOONE:
        return [ref for ref, _ in prop.pairs]
    if prop.direction is MANYTOMANY:
        return [fk for _, fk in prop.pairs]
    return [fk for _, fk in prop.pairs]


def batch_keys(
    prop: RelationshipProperty[Any], states: Sequence[InstanceState]
) -> tuple[list[tuple[InstanceState, tuple[Any, ...]]], list[tuple[InstanceState, Any]]]:
    """(parents that need a query, with their key), (parents answered without SQL, value)."""
    need: list[tuple[InstanceState, tuple[Any, ...]]] = []
    known: list[tuple[InstanceState, Any]] = []
    many_to_one = prop.direction is MANYTOONE
    for state in states:
        d = state.dict
        if many_to_one and not prop.uselist:
            found = resolve_many_to_one(state, prop)
            if found is not NO_VALUE:
                known.append((state, found))
                continue
        values = []
        for key in prop.local_keys:
            value = d.get(key, NO_VALUE)
            if value is NO_VALUE and key in state.mapper.pk_keys and state.key is not None:
                value = state.key[1][state.mapper.pk_keys.index(key)]
            if value is NO_VALUE:
                raise exc.InvalidRequestError(
                    f"Can't load {prop.describe()}: {state.mapper.class_.__name__}.{key} is "
                    "not loaded"
                )
            values.append(value)
        if any(v is None for v in values):
            known.append((state, [] if prop.uselist else None))
            continue
        need.append((state, tuple(values)))
    return need, known


def batch_statements(
    prop: RelationshipProperty[Any], keys: Sequence[tuple[Any, ...]]
) -> list[Select]:
    """SELECTs of the related rows for ``keys``: (target entity, *key columns)."""
    columns = key_columns(prop)
    unique = list(dict.fromkeys(keys))
    statements = []
    for start in range(0, len(unique), CHUNK):
        chunk = unique[start : start + CHUNK]
        if len(columns) == 1:
            criterion = columns[0].in_([k[0] for k in chunk])
        else:
            criterion = tuple_(*columns).in_(chunk)
        statement = select(prop.entity, *columns)
        if prop.direction is MANYTOMANY:
            assert prop.secondary is not None
            statement = statement.join(
                prop.secondary, and_(*(ref == fk for ref, fk in prop.secondary_pairs))
            )
        statement = statement.where(criterion, *prop.extra_criteria)
        if prop.order_by:
            statement = statement.order_by(*prop.order_by)
        statements.append(statement)
    return statements


def populate(
    prop: RelationshipProperty[Any],
    need: Sequence[tuple[InstanceState, tuple[Any, ...]]],
    known: Sequence[tuple[InstanceState, Any]],
    rows: Sequence[Sequence[Any]],
    populate_existing: bool = False,
) -> None:
    """Store the loaded members (``rows`` of (object, *key values)) on their parents."""
    grouped: dict[tuple[Any, ...], list[Any]] = {}
    for row in rows:
        obj = row[0]
        key = tuple(row[1:])
        group = grouped.setdefault(key, [])
        if not any(x is obj for x in group):
            group.append(obj)
    for state, key in need:
        found = grouped.get(key, [])
        store(
            state, prop, found if prop.uselist else (found[0] if found else None), populate_existing
        )
    for state, value in known:
        _store(state, prop, value, populate_existing)


def store(
    state: InstanceState, prop: RelationshipProperty[Any], value: Any, populate_existing: bool
) -> None:
    """Store a loaded value (a list of members, or an object or None) on one parent.

    Kept: a value already loaded (unless ``populate_existing``) and unflushed
    changes (always). The members of a stored one-to-many learn their parent
    where their many-to-one side is not loaded yet.
    """
    if not _store(state, prop, value, populate_existing):
        return
    back = prop.back
    if back is not None and not back.uselist and prop.direction is not MANYTOONE:
        parent = state.obj_ref()
        for obj in value if prop.uselist else (() if value is None else (value,)):
            od = obj.__dict__
            if back.key not in od:
                od[back.key] = parent


def _store(
    state: InstanceState, prop: RelationshipProperty[Any], value: Any, populate_existing: bool
) -> bool:
    d = state.dict
    committed = state.committed_state
    if committed and prop.key in committed:
        return False  # unflushed changes win, always
    if prop.key in d and not populate_existing:
        return False
    set_committed(state, prop, value)
    return True
