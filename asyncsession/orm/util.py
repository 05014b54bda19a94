"""``aliased()``: a mapped class under another name, and expression adaptation.

How this works:

* ``aliased(A)`` returns an :class:`AliasedClass`: it stands for ``A``'s table
  under an alias (or for a subquery of it), and its attributes are the alias's
  columns (``a1.name == "x"``), so it goes wherever the class goes in
  ``select()``, ``where()`` and ``join()``. Rows selected through it become
  ordinary ``A`` objects in the identity map.
* Relationship attributes of an alias (``a1.bs``) are the class's relationship
  with the alias as the parent side, for joins and comparisons.
* :func:`adapt` rewrites an expression so that columns of a table refer to an
  alias of it instead (``column_property`` expressions of an alias, criteria
  inside a self-referential ``any()``). It copies only the nodes on the way to
  a replaced column. In a nested SELECT it moves the columns, criteria and
  correlations, never the SELECT's own FROM list. Pure, no IO.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from asyncsession import exc
from asyncsession.orm.attributes import QueryableAttribute
from asyncsession.orm.relationships import RelationshipAttribute
from asyncsession.sql.elements import (
    BindParameter,
    ClauseElement,
    ColumnClause,
    ColumnElement,
    TextualSelect,
)
from asyncsession.sql.selectable import FromClause, Select

_SLOTS: dict[type, tuple[str, ...]] = {}


def _slots(cls: type) -> tuple[str, ...]:
    names = _SLOTS.get(cls)
    if names is None:
        names = tuple(
            slot
            for klass in cls.__mro__
            for slot in klass.__dict__.get("__slots__", ())
            if not slot.startswith("__")
        )
        _SLOTS[cls] = names
    return names


def adapt(element: Any, replacements: Mapping[int, FromClause]) -> Any:
    """``element`` with columns of each FROM ``id(f)`` in ``replacements`` taken from its
    replacement (an alias or subquery of it). Unchanged nodes are shared, not copied."""
    if not replacements:
        return element
    return _adapt(element, replacements)


def _adapt(node: Any, replacements: Mapping[int, FromClause]) -> Any:
    if isinstance(node, ColumnClause):
        table = node.table
        if table is not None and id(table) in replacements:
            found = replacements[id(table)].corresponding_column(node)
            if found is not None:
                return found
        return node
    if isinstance(node, Select):
        return _adapt_select(node, replacements)
    if isinstance(node, (BindParameter, TextualSelect, FromClause)):
        return node
    if not isinstance(node, ClauseElement):
        return node
    cls = type(node)
    slots = _slots(cls)
    values: list[Any] = []
    changed = False
    for slot in slots:
        value = getattr(node, slot, _MISSING)
        new = _adapt_value(value, replacements)
        changed = changed or new is not value
        values.append(new)
    if not changed:
        return node
    clone = cls.__new__(cls)
    for slot, value in zip(slots, values, strict=True):
        if value is not _MISSING:
            object.__setattr__(clone, slot, value)
    return clone


_MISSING = object()


def _adapt_select(select: Select, replacements: Mapping[int, FromClause]) -> Select:
    """A nested SELECT (a correlated ``any()`` inside a criterion) with its columns,
    criteria and correlations moved onto the replacements; its own FROMs stay."""
    columns = _adapt_value(select._columns, replacements)
    where = _adapt_value(select._where, replacements)
    having = _adapt_value(select._having, replacements)
    correlate = select._correlate
    if correlate is not None:
        correlate = tuple(replacements.get(id(f), f) for f in correlate)
    if (
        columns is select._columns
        and where is select._where
        and having is select._having
        and correlate == select._correlate
    ):
        return select
    new = select._clone()
    new._columns, new._where, new._having, new._correlate = columns, where, having, correlate
    if columns is not select._columns:
        new._entities = columns
    new._froms_memo = None
    return new


def _adapt_value(value: Any, replacements: Mapping[int, FromClause]) -> Any:
    if isinstance(value, ClauseElement):
        return _adapt(value, replacements)
    if isinstance(value, tuple) and value:
        items = tuple(_adapt_value(v, replacements) for v in value)
        if any(a is not b for a, b in zip(items, value, strict=True)):
            return items
    return value


class AliasedInsp:
    """What ``inspect(aliased(A))`` returns: the mapper, the alias and its name."""

    is_aliased_class = True

    def __init__(self, entity: AliasedClass, mapper: Any, selectable: FromClause) -> None:
        self.entity = entity
        self.mapper = mapper
        self.selectable = selectable
        self.name: str = getattr(selectable, "name", mapper.class_.__name__)
        self.class_ = mapper.class_
        # Replacing the mapped table's columns by the alias's (for column_property).
        self.replacements: dict[int, FromClause] = {id(mapper.local_table): selectable}

    def __repr__(self) -> str:
        return f"aliased({self.class_.__name__})"


class AliasedClass:
    """A mapped class under an alias: ``a1 = aliased(A)``; ``a1.name``, ``select(a1)``."""

    def __init__(self, mapper: Any, selectable: FromClause, name: str | None) -> None:
        insp = AliasedInsp(self, mapper, selectable)
        if name is not None:
            insp.name = name
        self.__dict__["_aliased_insp"] = insp
        self.__dict__["_key"] = name if name is not None else mapper.class_.__name__
        self.__dict__["__name__"] = insp.name

    def __clause_element__(self) -> FromClause:
        selectable: FromClause = self._aliased_insp.selectable
        return selectable

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        insp: AliasedInsp = self.__dict__["_aliased_insp"]
        mapper = insp.mapper
        mapper.configure()
        name = mapper.synonyms[key].name if key in mapper.synonyms else key
        prop = mapper.attrs.get(name)
        if prop is None:
            raise AttributeError(
                f"{insp!r} has no attribute {key!r}: {mapper.class_.__name__} maps no such "
                "attribute"
            )
        cls = mapper.class_
        if name in mapper.relationships:
            base = getattr(cls, name)
            assert isinstance(base, RelationshipAttribute)
            attr: Any = base._variant(parent_entity=self)
        else:
            column = getattr(prop, "column", None)
            if column is not None:
                adapted = insp.selectable.corresponding_column(column)
                if adapted is None:
                    raise exc.InvalidRequestError(
                        f"{insp!r}: the alias has no column for {cls.__name__}.{name}"
                    )
            else:
                adapted = adapt(prop.expression, insp.replacements)
            attr = QueryableAttribute(cls, name, adapted, prop, mapper)
        self.__dict__[key] = attr
        return attr

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"{self._aliased_insp!r} is read-only")

    def __repr__(self) -> str:
        insp = self._aliased_insp
        return f"<AliasedClass {insp.name}; {insp.class_.__name__}>"


def aliased(element: Any, alias: Any = None, name: str | None = None) -> Any:
    """``element`` (a mapped class, or a table) under another name in SQL.

    A mapped class gives an :class:`AliasedClass` whose attributes are the
    alias's columns and whose rows load as ordinary objects of the class; a
    table gives ``table.alias(name)``. ``alias`` may be a subquery (or alias)
    selecting the class's columns, to load objects from it. Raises
    ``ArgumentError`` for anything else.
    """
    if isinstance(element, AliasedClass):
        element = element._aliased_insp.class_
    mapper = element.__dict__.get("__mapper__") if isinstance(element, type) else None
    if mapper is None:
        if isinstance(element, FromClause):
            return element.alias(name)
        raise exc.ArgumentError(f"aliased() takes a mapped class or a table, got {element!r:.60}")
    if alias is None:
        selectable: FromClause = mapper.local_table.alias(name)
    else:
        selectable = alias.__clause_element__() if hasattr(alias, "__clause_element__") else alias
        if not isinstance(selectable, FromClause):
            raise exc.ArgumentError(
                f"aliased({mapper.class_.__name__}, alias=...) takes an alias or a subquery "
                f"(select(...).subquery()), got {alias!r:.60}"
            )
        missing = [
            key
            for key, prop in mapper.column_attrs.items()
            if selectable.corresponding_column(prop.column) is None and not prop.deferred
        ]
        if missing:
            raise exc.ArgumentError(
                f"aliased({mapper.class_.__name__}, alias=...): the alias has no column for "
                f"{', '.join(missing)}; select the class's columns in the subquery"
            )
    return AliasedClass(mapper, selectable, name)


def entity_insp(entity: Any) -> AliasedInsp | None:
    """The :class:`AliasedInsp` of an aliased class, else None."""
    if isinstance(entity, AliasedClass):
        insp: AliasedInsp = entity.__dict__["_aliased_insp"]
        return insp
    return None


def columns_for(entity: Any, pairs: tuple[tuple[str, ColumnElement], ...]) -> list[Any]:
    """The columns that load ``pairs`` (key, column) for ``entity``: the alias's own, for
    an aliased class."""
    insp = entity_insp(entity)
    if insp is None:
        return [c for _, c in pairs]
    out = []
    for _key, column in pairs:
        found = insp.selectable.corresponding_column(column)
        out.append(found if found is not None else adapt(column, insp.replacements))
    return out
