"""Write-only collections (``WriteOnlyMapped``): never loaded, changed by statements.

How this works:

* ``a.bs`` of a write-only relationship is a :class:`WriteOnlyCollection`
  view, never a loaded list. ``a.bs.select()`` is a SELECT of the members
  (run it with ``session.scalars()``); ``add()``/``add_all()``/``remove()``
  queue changes that the next flush writes, with the unit of work (they are
  the relationship's history: added and removed members).
* ``insert()``/``update()``/``delete()`` build statements scoped to the
  parent (one-to-many relationships).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from asyncsession import exc
from asyncsession.orm.relationships import (
    MANYTOMANY,
    WRITE_ONLY_PREFIX,
    RelationshipProperty,
    backref_added,
    backref_removed,
    cascade_added,
)
from asyncsession.orm.state import NO_VALUE, InstanceState
from asyncsession.sql.dml import Delete, Insert, Update, delete, insert, update
from asyncsession.sql.elements import ColumnElement, and_
from asyncsession.sql.selectable import Select, select


class _Pending:
    """The queued members of a write-only collection: added and removed since the flush."""

    __slots__ = ("added", "removed")

    def __init__(self) -> None:
        self.added: list[Any] = []
        self.removed: list[Any] = []

    def __iter__(self) -> Any:
        return iter(self.added)


class WriteOnlyCollection:
    """``a.bs`` for ``bs: WriteOnlyMapped[B]``."""

    __slots__ = ("_prop", "_state")

    def __init__(self, state: InstanceState, prop: RelationshipProperty[Any]) -> None:
        self._state = state
        self._prop = prop

    def __repr__(self) -> str:
        return f"<WriteOnlyCollection {self._prop.describe()}>"

    def __iter__(self) -> Any:
        raise TypeError(
            f"{self._prop.describe()} is write-only and is never loaded; run "
            f"session.scalars(obj.{self._prop.key}.select()) to read its members"
        )

    # -- reading ----------------------------------------------------------------------
    def _criteria(self) -> ColumnElement:
        prop = self._prop
        values = []
        for key in prop.local_keys:
            value = self._state.value_or_identity(key)
            if value is NO_VALUE or value is None:
                raise exc.InvalidRequestError(
                    f"Can't query {prop.describe()} of an object without its {key!r} (flush it "
                    "first)"
                )
            values.append(value)
        columns = [fk for _, fk in prop.pairs]  # the members' keys, or the secondary table's
        return and_(*(c == v for c, v in zip(columns, values, strict=True)), *prop.extra_criteria)

    def select(self) -> Select:
        """SELECT of the members in the database (flush first to include queued changes)."""
        prop = self._prop
        statement = select(prop.entity)
        if prop.direction is MANYTOMANY:
            assert prop.secondary is not None
            statement = statement.join(
                prop.secondary, and_(*(ref == fk for ref, fk in prop.secondary_pairs))
            )
        statement = statement.where(self._criteria())
        if prop.order_by:
            statement = statement.order_by(*prop.order_by)
        return statement

    def _one_to_many(self, what: str) -> None:
        if self._prop.direction is MANYTOMANY:
            raise exc.InvalidRequestError(
                f"{what}() is only available for one-to-many write-only collections; "
                f"{self._prop.describe()} is many-to-many"
            )

    def insert(self) -> Insert:
        """INSERT into the members' table with the parent's key filled in."""
        self._one_to_many("insert")
        prop = self._prop
        values = {}
        d = self._state.dict
        for (_, fk), key in zip(prop.pairs, prop.local_keys, strict=True):
            values[fk] = d.get(key)
        statement: Insert = insert(prop.target).values(values)
        return statement

    def update(self) -> Update:
        """UPDATE of the members of this parent."""
        self._one_to_many("update")
        return update(self._prop.target).where(self._criteria())

    def delete(self) -> Delete:
        """DELETE of the members of this parent."""
        self._one_to_many("delete")
        return delete(self._prop.target).where(self._criteria())

    # -- queueing changes ------------------------------------------------------------
    def _change(self) -> _Pending:
        state = self._state
        d = state.dict
        slot = WRITE_ONLY_PREFIX + self._prop.key
        committed = state.committed_state
        if committed is None or self._prop.key not in committed:
            # The first change since the last flush: start a fresh queue.
            state.record_change(self._prop.key, ())
            d[slot] = _Pending()
        pending: _Pending = d[slot]
        return pending

    def add(self, item: Any) -> None:
        """Queue ``item`` to join the collection at the next flush."""
        prop = self._prop
        if not isinstance(item, prop.entity):
            raise exc.ArgumentError(
                f"Can't add {type(item).__name__} object to {prop.describe()}: it holds "
                f"{prop.entity.__name__} objects"
            )
        pending = self._change()
        if any(x is item for x in pending.removed):
            pending.removed = [x for x in pending.removed if x is not item]
        else:
            pending.added.append(item)
        owner = self._state.obj_ref()
        backref_added(prop, owner, item)
        cascade_added(prop, self._state, item)

    def add_all(self, items: Iterable[Any]) -> None:
        for item in list(items):
            self.add(item)

    def remove(self, item: Any) -> None:
        """Queue ``item`` to leave the collection at the next flush."""
        pending = self._change()
        if any(x is item for x in pending.added):
            pending.added = [x for x in pending.added if x is not item]
        else:
            pending.removed.append(item)
        backref_removed(self._prop, self._state.obj_ref(), item)
