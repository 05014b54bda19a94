"""What relationships add to a flush: foreign key values, association rows, post-updates.

Pure: :func:`sync_relationships` reads the states of a flush and returns a
:class:`Dependencies` without changing any of them. The planner
(:mod:`asyncsession.orm.unitofwork`) turns it into rows and steps; the
executor writes the values into the objects only once every statement has
succeeded.

How this works:

* A value a row needs from another object that is being inserted in the same
  flush, and that the database (or a Python default) generates, is a
  :class:`Ref` to that object's attribute. The planner orders the referencing
  row after the referenced one; the executor substitutes the generated value.
* Many-to-one: a pending object, or one whose relationship changed, gets its
  foreign key columns from the related object (NULL when it was set to None).
* One-to-many: members added to a collection get the parent's key; members
  removed from it get NULL, unless something else in the flush gives them a
  new parent or they are being deleted. Members of a deleted parent that are
  not deleted themselves get NULL too (the session has loaded them, unless
  ``passive_deletes`` leaves them to the database).
* Many-to-many: added members insert an association row, removed members
  (and every member of a deleted object) delete one. Both sides of a
  bidirectional pair record the same change; each row is produced once.
* ``post_update``: the foreign key of that relationship is set by an UPDATE
  after all INSERTs (and set to NULL before DELETEs), which breaks cycles
  between rows that reference each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from asyncsession import exc
from asyncsession.orm.relationships import (
    MANYTOMANY,
    MANYTOONE,
    ONETOMANY,
    RelationshipProperty,
    members,
    relationship_history,
)
from asyncsession.orm.state import NO_VALUE, InstanceState, instance_state
from asyncsession.sql.elements import ClauseElement
from asyncsession.sql.schema import Column, Table

__all__ = ["AssociationRow", "Dependencies", "Ref", "sync_relationships"]


class Ref:
    """The value of attribute ``key`` of the pending object of ``state``, once inserted."""

    __slots__ = ("key", "state")

    def __init__(self, state: InstanceState, key: str) -> None:
        self.state = state
        self.key = key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ref) and other.state is self.state and other.key == self.key

    def __hash__(self) -> int:
        return hash((id(self.state), self.key))

    def __repr__(self) -> str:
        return f"Ref({self.state.mapper.class_.__name__}.{self.key})"


class AssociationRow:
    """One row of a many-to-many secondary table: ``columns`` hold ``values``."""

    __slots__ = ("columns", "table", "values")

    def __init__(self, table: Table, columns: tuple[Column, ...], values: tuple[Any, ...]) -> None:
        self.table = table
        self.columns = columns
        self.values = values

    def identity(self) -> tuple[Any, ...]:
        return (self.table, frozenset(zip((c.key for c in self.columns), self.values, strict=True)))


class Dependencies:
    """Everything relationships contribute to one flush."""

    __slots__ = ("association_deletes", "association_inserts", "post", "table_edges", "values")

    def __init__(self) -> None:
        # state -> {attribute key: value or Ref}: foreign keys the relationships set.
        self.values: dict[InstanceState, dict[str, Any]] = {}
        # The same for post_update relationships: set by UPDATEs after the INSERTs.
        self.post: dict[InstanceState, dict[str, Any]] = {}
        self.association_inserts: list[AssociationRow] = []
        self.association_deletes: list[AssociationRow] = []
        # (parent table, child table): also order tables linked without a ForeignKey.
        self.table_edges: list[tuple[Table, Table]] = []

    def __bool__(self) -> bool:
        return bool(
            self.values or self.post or self.association_inserts or self.association_deletes
        )


def _value(state: InstanceState, key: str, why: Any) -> Any:
    """What ``key`` of ``state`` is (or will be, once inserted)."""
    value = state.value_or_identity(key)
    if state.key is None:
        if value is NO_VALUE or value is None or isinstance(value, ClauseElement):
            return Ref(state, key)
        return value
    if value is NO_VALUE:
        raise exc.InvalidRequestError(
            f"Can't flush: {state.mapper.class_.__name__}.{key} is not loaded and the flush "
            f"needs it ({why() if callable(why) else why}). Load it first, e.g. with "
            f"`await session.refresh(obj, [{key!r}])`."
        )
    return value


class _Why:
    """Why the flush needs a value: the message is built only if it is missing."""

    __slots__ = ("prop", "what")

    def __init__(self, what: str, prop: RelationshipProperty[Any]) -> None:
        self.what = what
        self.prop = prop

    def __call__(self) -> str:
        return f"{self.what} {self.prop.describe()}"


def sync_relationships(
    new: Sequence[InstanceState],
    dirty: Sequence[InstanceState],
    deleted: Sequence[InstanceState],
) -> Dependencies:
    """The foreign key values, association rows and post-updates relationships need."""
    return _Sync(deleted).run(new, dirty, deleted)


class _Sync:
    def __init__(self, deleted: Sequence[InstanceState]) -> None:
        self.deps = Dependencies()
        self.doomed = {id(s) for s in deleted}
        self.nulls: list[tuple[InstanceState, RelationshipProperty[Any], InstanceState]] = []
        self.seen_rows: set[Any] = set()
        self.edges: set[tuple[Table, Table]] = set()
        self.edged: set[RelationshipProperty[Any]] = set()

    def run(
        self,
        new: Sequence[InstanceState],
        dirty: Sequence[InstanceState],
        deleted: Sequence[InstanceState],
    ) -> Dependencies:
        for state in new:
            if state.mapper.relationships:
                self._pending_or_changed(state, pending=True)
        for state in dirty:
            if state.mapper.relationships and id(state) not in self.doomed:
                self._pending_or_changed(state, pending=False)
        for state in deleted:
            if state.mapper.relationships:
                self._deleted(state)
        for child, prop, parent in self.nulls:
            self._null(child, prop, parent)
        self.deps.table_edges = sorted(self.edges, key=lambda e: (e[0].fullname, e[1].fullname))
        return self.deps

    # -- helpers ------------------------------------------------------------------------
    def _assign(
        self,
        state: InstanceState,
        prop: RelationshipProperty[Any],
        keys: Sequence[str],
        values: Sequence[Any],
    ) -> None:
        # Runs once per related object and side: kept lean.
        if self.doomed and id(state) in self.doomed:
            return
        target = self.deps.post if prop.post_update else self.deps.values
        slot = target.get(state)
        if slot is None:
            target[state] = dict(zip(keys, values, strict=True))
        else:
            slot.update(zip(keys, values, strict=True))

    def _edge(self, parent: Table, child: Table, prop: RelationshipProperty[Any]) -> None:
        if prop in self.edged:
            return
        self.edged.add(prop)
        if not prop.post_update and parent is not child:
            self.edges.add((parent, child))

    def _association(
        self,
        prop: RelationshipProperty[Any],
        parent: InstanceState,
        child: InstanceState,
        inserting: bool,
    ) -> None:
        assert prop.secondary is not None
        why = _Why("the association row of", prop)
        columns = tuple(fk for _, fk in prop.pairs) + tuple(fk for _, fk in prop.secondary_pairs)
        values = tuple(_value(parent, k, why) for k in prop.local_keys) + tuple(
            _value(child, k, why) for k in prop.remote_keys
        )
        row = AssociationRow(prop.secondary, columns, values)
        identity = (inserting, row.identity())
        if identity in self.seen_rows:
            return
        self.seen_rows.add(identity)
        (self.deps.association_inserts if inserting else self.deps.association_deletes).append(row)

    # -- per state --------------------------------------------------------------------
    def _pending_or_changed(self, state: InstanceState, pending: bool) -> None:
        obj = state.obj_ref()
        if obj is None:
            return
        d = obj.__dict__
        committed = state.committed_state
        for prop in state.mapper.relationships.values():
            if prop.viewonly or not prop.configured:
                continue
            key = prop.key
            changed = bool(committed) and key in committed  # type: ignore[operator]
            if not changed and not (pending and key in d):
                continue
            removed: tuple[Any, ...]
            if (
                pending
                and not prop.is_write_only  # its queue is not in d[key]
                and (not changed or not members(committed[key]))  # type: ignore[index]
            ):
                # New, and nothing loaded before: everything it holds is added.
                added, removed = tuple(members(d.get(key, NO_VALUE))), ()
            else:
                history = relationship_history(state, prop)
                if pending:
                    added = history.added + history.unchanged
                    removed = history.deleted
                else:
                    added, removed = history.added, history.deleted
            direction = prop.direction
            if direction is MANYTOONE:
                if prop.uselist:
                    continue
                if added:
                    target = _state_of(added[0], prop)
                    why = _Why("the foreign key of", prop)
                    values = [_value(target, k, why) for k in prop.remote_keys]
                    self._assign(state, prop, prop.local_keys, values)
                    self._edge(prop.target, prop.parent.local_table, prop)
                elif not pending and (removed or d.get(key, NO_VALUE) is None):
                    # Set to None: also when the old value was never loaded.
                    self._assign(state, prop, prop.local_keys, [None] * len(prop.local_keys))
            elif direction is ONETOMANY:
                why = _Why("the foreign keys of the members of", prop)
                if added:
                    values = [_value(state, k, why) for k in prop.local_keys]
                    for item in added:
                        child = _state_of(item, prop)
                        self._assign(child, prop, prop.remote_keys, values)
                    self._edge(prop.parent.local_table, prop.target, prop)
                for item in removed:
                    child = instance_state(item)
                    if _has_row(child):
                        self.nulls.append((child, prop, state))
            else:
                for item in added:
                    self._association(prop, state, _state_of(item, prop), inserting=True)
                for item in removed:
                    child = instance_state(item)
                    if _has_row(child):
                        self._association(prop, state, child, inserting=False)

    def _deleted(self, state: InstanceState) -> None:
        obj = state.obj_ref()
        if obj is None:
            return
        d = obj.__dict__
        committed = state.committed_state or {}
        for prop in state.mapper.relationships.values():
            if prop.viewonly or not prop.configured:
                continue
            key = prop.key
            # The members as loaded: a collection changed before the delete still
            # has its loaded members in the database.
            loaded = committed.get(key, d.get(key, NO_VALUE))
            current = d.get(key, NO_VALUE)
            if prop.passive_deletes == "all":
                continue
            if prop.direction is ONETOMANY:
                for item in {id(x): x for x in (*members(loaded), *members(current))}.values():
                    child = instance_state(item)
                    if id(child) not in self.doomed and _has_row(child):
                        self.nulls.append((child, prop, state))
            elif prop.direction is MANYTOMANY:
                for item in members(loaded):
                    child = instance_state(item)
                    if _has_row(child):
                        self._association(prop, state, child, inserting=False)
            elif prop.post_update and not prop.uselist:
                target = current if current is not NO_VALUE else loaded
                if (
                    target is not None
                    and target is not NO_VALUE
                    and id(_state_of(target, prop)) in self.doomed
                ):
                    # Break the cycle: clear this side's key before the DELETEs.
                    slot = self.deps.post.setdefault(state, {})
                    slot.update(dict.fromkeys(prop.local_keys))

    def _null(
        self, child: InstanceState, prop: RelationshipProperty[Any], parent: InstanceState
    ) -> None:
        """``child`` left ``parent``'s collection: clear its foreign key, unless reassigned."""
        if id(child) in self.doomed:
            return
        keys = prop.remote_keys
        for source in (self.deps.values, self.deps.post):
            assigned = source.get(child)
            if assigned and any(k in assigned for k in keys):
                return
        obj = child.obj_ref()
        if obj is None:
            return
        if child.key is not None:
            # Only if it still points at this parent (as loaded).
            d = obj.__dict__
            why = _Why("the foreign keys of the members of", prop)
            mine = [_value(parent, k, why) for k in prop.local_keys]
            theirs = [d.get(k, NO_VALUE) for k in keys]
            if all(v is not NO_VALUE for v in theirs) and any(
                isinstance(m, Ref) or m != t for m, t in zip(mine, theirs, strict=True)
            ):
                return
        self._assign(child, prop, keys, [None] * len(keys))


def _has_row(state: InstanceState) -> bool:
    """Whether a member that left a collection (or whose parent is deleted) still has a
    row to update: not pending or transient, and not deleted in an earlier flush (its
    association rows went with it)."""
    return state.key is not None and not state._deleted


def _state_of(obj: Any, prop: RelationshipProperty[Any]) -> InstanceState:

    state = instance_state(obj)
    if state.session is None and state.key is None:
        raise exc.InvalidRequestError(
            f"Can't flush {prop.describe()}: it holds a transient {type(obj).__name__} "
            f"({obj!r:.60}) that is not in the session, and the relationship does not cascade "
            "save-update to it; add() it to the session"
        )
    return state
