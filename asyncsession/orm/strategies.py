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
* Unflushed changes made from the other side while the collection was not
  loaded (``child.parent = a``, ``tag.parents.append(a)``) are applied to the
  rows loaded for it, as SQLAlchemy applies its pending backref mutations: a
  load does not autoflush, yet ``a.children`` then agrees with ``child.parent``.
  They are history of the loaded collection (its committed value is what the
  database has), so undoing them on this side leaves nothing to flush.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from asyncsession import exc
from asyncsession.orm.relationships import (
    MANYTOMANY,
    MANYTOONE,
    RelationshipProperty,
    make_collection,
    members,
    relationship_history,
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
    return [fk for _, fk in prop.pairs]  # the child's, or the secondary table's


def batch_keys(
    prop: RelationshipProperty[Any], states: Sequence[InstanceState]
) -> tuple[list[tuple[InstanceState, tuple[Any, ...]]], list[tuple[InstanceState, Any]]]:
    """(parents that need a query, with their key), (parents answered without SQL, value)."""
    need: list[tuple[InstanceState, tuple[Any, ...]]] = []
    known: list[tuple[InstanceState, Any]] = []
    many_to_one = prop.direction is MANYTOONE
    for state in states:
        if many_to_one and not prop.uselist:
            found = resolve_many_to_one(state, prop)
            if found is not NO_VALUE:
                known.append((state, found))
                continue
        values = []
        for key in prop.local_keys:
            value = state.value_or_identity(key)
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
    changed: Sequence[InstanceState] = (),
) -> None:
    """Store the loaded members (``rows`` of (object, *key values)) on their parents.

    ``changed``: the session's pending and modified states, whose unflushed
    changes to the other side of ``prop`` adjust what is stored.
    """
    grouped = _group(rows, dedupe=prop.secondary is not None)
    one_column = len(prop.local_keys) == 1
    back = prop.back
    added, moved = _pending_changes(prop, changed)
    for state, key in need:
        found = grouped.get(key[0] if one_column else key, [])
        value: Any = found if prop.uselist else (found[0] if found else None)
        if not _store(state, prop, value, populate_existing):
            continue
        if added or moved:
            adjusted = _adjust(state, back, found, added, moved)
            if len(adjusted) != len(found) or any(
                a is not b for a, b in zip(adjusted, found, strict=True)
            ):
                # The unflushed changes become this side's history too: the rows
                # loaded are what the database has.
                state.record_change(prop.key, tuple(found))
                state.dict[prop.key] = make_collection(state, prop, adjusted)
        _tell_members(state, prop, found)
    for state, value in known:
        _store(state, prop, value, populate_existing)


def _group(rows: Sequence[Sequence[Any]], dedupe: bool) -> dict[Any, list[Any]]:
    """Members (``row[0]``) by parent key: the bare value for a one-column key, else a tuple.

    ``dedupe``: a member may come back twice for one parent (duplicate rows of an
    association table) and is kept once. Without a secondary table each member
    row comes back once.
    """
    grouped: dict[Any, list[Any]] = {}
    if not rows:
        return grouped
    one_column = len(rows[0]) == 2
    seen: set[tuple[Any, int]] = set()
    for row in rows:
        obj = row[0]
        key = row[1] if one_column else tuple(row[1:])
        if dedupe:
            mark = (key, id(obj))
            if mark in seen:
                continue
            seen.add(mark)
        group = grouped.get(key)
        if group is None:
            grouped[key] = [obj]
        else:
            group.append(obj)
    return grouped


def store(
    state: InstanceState, prop: RelationshipProperty[Any], value: Any, populate_existing: bool
) -> None:
    """Store a loaded value (a list of members, or an object or None) on one parent.

    Kept: a value already loaded (unless ``populate_existing``) and unflushed
    changes (always). The members of a stored one-to-many learn their parent
    where their many-to-one side is not loaded yet.
    """
    if _store(state, prop, value, populate_existing):
        _tell_members(state, prop, members(value))


def _tell_members(
    state: InstanceState, prop: RelationshipProperty[Any], stored: Iterable[Any]
) -> None:
    """The members just stored on a one-to-many (or one-to-one) parent learn their
    parent, where their many-to-one side is not loaded yet."""
    back = prop.back
    if back is None or back.uselist or prop.direction is MANYTOONE:
        return
    parent = state.obj_ref()
    for obj in stored:
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


def _pending_changes(
    prop: RelationshipProperty[Any], changed: Sequence[InstanceState]
) -> tuple[dict[int, list[Any]], dict[int, Any]]:
    """Unflushed changes to ``prop.back``: (parent object id -> members it gained), and
    (member object id -> what it points at now) for members that changed their side."""
    back = prop.back
    added: dict[int, list[Any]] = {}
    moved: dict[int, Any] = {}
    if back is None or not prop.uselist or prop.direction is MANYTOONE:
        return added, moved
    key = back.key
    for state in changed:
        committed = state.committed_state
        if not committed or key not in committed or state.mapper is not back.parent:
            continue
        obj = state.obj_ref()
        if obj is None:
            continue
        history = relationship_history(state, back)
        for owner in history.added:
            added.setdefault(id(owner), []).append(obj)
        moved[id(obj)] = obj.__dict__.get(key, NO_VALUE)
    return added, moved


def _adjust(
    state: InstanceState,
    back: RelationshipProperty[Any] | None,
    found: list[Any],
    added: dict[int, list[Any]],
    moved: dict[int, Any],
) -> list[Any]:
    """The loaded members of ``state``'s collection, with the unflushed changes applied."""
    assert back is not None
    owner = state.obj_ref()
    out = []
    for obj in found:
        now = moved.get(id(obj), owner)
        if now is owner or (back.uselist and any(x is owner for x in members(now))):
            out.append(obj)
    for obj in added.get(id(owner), ()):
        if not any(x is obj for x in out):
            out.append(obj)
    return out
