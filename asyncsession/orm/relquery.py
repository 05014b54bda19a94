"""SQL built from relationships: joins, ``A.bs.any(...)``, ``B.a == a``, ``with_parent()``.

How this works:

* A relationship attribute names a parent side (the class's table, or an
  alias for ``a1.bs``) and a target side (the target's table, or an alias
  from ``of_type()`` or from ``join(alias, A.bs)``). Every construct here
  starts from those two and the property's column pairs.
* Joins: :func:`join_steps` is the hook the SQL layer calls for
  ``select(A).join(A.bs)``. It returns one ``(left, right, ON)`` step, or two
  for a many-to-many (parent to the secondary table, secondary to target).
  The parent must already be in the FROM list unless ``join_from()`` names it.
* ``any()``/``has()`` are correlated ``EXISTS (SELECT 1 FROM target
  [, secondary] WHERE join AND criterion)``: every FROM of the enclosing query
  except the target and the secondary table is correlated. A self-referential
  relationship gets an alias for the target inside, and the criterion is
  adapted to it.
* Comparisons with objects (``B.a == a``, ``A.bs.contains(b)``,
  ``with_parent(a, A.bs)``) bind the object's key values as parameters
  evaluated at execution, after autoflush has given pending objects their
  keys, as SQLAlchemy does. An object whose needed attribute is not loaded
  raises ``InvalidRequestError``: nothing is ever loaded here.
* Pure: these build expressions and never do IO.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from asyncsession import exc
from asyncsession.orm.relationships import (
    MANYTOMANY,
    MANYTOONE,
    RelationshipAttribute,
    RelationshipProperty,
)
from asyncsession.orm.state import NO_VALUE, instance_state
from asyncsession.orm.util import adapt, entity_insp
from asyncsession.sql.elements import (
    BindParameter,
    ColumnElement,
    and_,
    coerce_where,
    literal_column,
    not_,
    or_,
)
from asyncsession.sql.schema import Column
from asyncsession.sql.selectable import FromClause, Select

Step = tuple[FromClause, FromClause, ColumnElement]


# -- the two sides --------------------------------------------------------------------------


def _where(attr: Any) -> str:
    owner = attr.class_.__name__
    insp = entity_insp(attr._parent_entity)
    if insp is not None:
        owner = insp.name
    return f"{owner}.{attr.key}"


def _parent_side(attr: Any) -> FromClause:
    insp = entity_insp(attr._parent_entity)
    if insp is not None:
        return insp.selectable
    table: FromClause = attr.property.parent.local_table
    return table


def _as_from(value: Any) -> FromClause | None:
    insp = entity_insp(value)
    if insp is not None:
        return insp.selectable
    if isinstance(value, type):
        mapper = value.__dict__.get("__mapper__")
        return mapper.local_table if mapper is not None else None
    if isinstance(value, FromClause):
        return value
    element = getattr(value, "__clause_element__", None)
    if element is not None:
        found = element()
        return found if isinstance(found, FromClause) else None
    return None


def _stands_for(selectable: FromClause, table: FromClause) -> bool:
    """``selectable`` is ``table`` or an alias/subquery with its primary key."""
    if selectable is table:
        return True
    return all(selectable.corresponding_column(c) is not None for c in table.primary_key)


def _target_side(attr: Any, given: Any = None) -> FromClause:
    prop: RelationshipProperty[Any] = attr.property
    value = given if given is not None else attr._of_type
    if value is None:
        return prop.target
    selectable = _as_from(value)
    if selectable is None or not _stands_for(selectable, prop.target):
        raise exc.ArgumentError(
            f"{_where(attr)} leads to {prop.entity.__name__}; {value!r:.60} is not "
            f"{prop.entity.__name__} or an alias of it"
        )
    return selectable


def _col(selectable: FromClause, column: Column) -> Any:
    if column.table is selectable:
        return column
    found = selectable.corresponding_column(column)
    if found is None:
        raise exc.InvalidRequestError(
            f"{selectable.description!r} has no column standing for {column.describe()}"
        )
    return found


def _extra(
    prop: RelationshipProperty[Any],
    parent: FromClause,
    target: FromClause,
    secondary: FromClause | None,
) -> list[ColumnElement]:
    """The non-equality terms of a custom primaryjoin, moved onto the aliases in use.

    Self-referential ones stay on the table: which side a column means is not known.
    """
    if not prop.extra_criteria:
        return []
    replacements: dict[int, FromClause] = {}
    if prop.parent.local_table is not prop.target:
        if parent is not prop.parent.local_table:
            replacements[id(prop.parent.local_table)] = parent
        if target is not prop.target:
            replacements[id(prop.target)] = target
    if secondary is not None and prop.secondary is not None and secondary is not prop.secondary:
        replacements[id(prop.secondary)] = secondary
    return [adapt(c, replacements) for c in prop.extra_criteria]


def _join_terms(
    prop: RelationshipProperty[Any],
    parent: FromClause,
    target: FromClause,
    secondary: FromClause | None,
) -> tuple[list[ColumnElement], list[ColumnElement]]:
    """(parent-to-secondary terms, terms reaching the target); the first is empty unless
    the relationship is many-to-many."""
    if prop.direction is MANYTOMANY:
        assert secondary is not None
        first = [_col(parent, ref) == _col(secondary, fk) for ref, fk in prop.pairs]
        second = [_col(target, ref) == _col(secondary, fk) for ref, fk in prop.secondary_pairs]
        return first, second
    if prop.direction is MANYTOONE:
        return [], [_col(target, ref) == _col(parent, fk) for ref, fk in prop.pairs]
    return [], [_col(parent, ref) == _col(target, fk) for ref, fk in prop.pairs]


def _covered(froms: Sequence[FromClause], selectable: FromClause) -> bool:
    return any(b is selectable for f in froms for b in f.base_froms())


# -- joins ----------------------------------------------------------------------------------


def join_steps(
    attr: Any, froms: Sequence[FromClause], right: Any = None, left: Any = None
) -> list[Step]:
    """The joins for ``select(...).join(attr)``: ``(left, right, ON)`` steps.

    ``right`` is the explicit target of ``join(right, attr)``, ``left`` the
    explicit left of ``join_from(left, attr)``. Raises ``InvalidRequestError``
    when the parent side is not in ``froms`` (and no ``left`` names it) or when
    a self-referential join has no alias, ``ArgumentError`` for a target or
    left side that is not the relationship's.
    """
    prop: RelationshipProperty[Any] = attr.property
    where = _where(attr)
    parent = _parent_side(attr)
    if left is not None:
        if not _stands_for(left, prop.parent.local_table):
            raise exc.ArgumentError(
                f"join_from({left.description!r}, {where}): the left side must be "
                f"{prop.parent.class_.__name__} or an alias of it"
            )
        parent = left
    target = _target_side(attr, right)
    if target is parent:
        raise exc.InvalidRequestError(
            f"Can't join along {where} from {prop.parent.class_.__name__} to itself "
            f"without an alias: use join({where}.of_type(aliased({prop.entity.__name__})))"
        )
    if left is None and not _covered(froms, parent):
        raise exc.InvalidRequestError(
            f"Can't join along {where}: its parent {parent.description!r} is not in the FROM "
            f"clause of this SELECT; select {prop.parent.class_.__name__} first, or use "
            f"join_from({prop.parent.class_.__name__}, {where})"
        )
    secondary: FromClause | None = None
    if prop.secondary is not None:
        secondary = prop.secondary
        if _covered(froms, secondary):  # joined through already: a second copy
            secondary = secondary.alias()
    first, second = _join_terms(prop, parent, target, secondary)
    on = and_(*second, *_extra(prop, parent, target, secondary), *attr._on_criteria)
    if secondary is not None:
        return [(parent, secondary, and_(*first)), (secondary, target, on)]
    return [(parent, target, on)]


def rel_of_type(attr: Any, entity: Any) -> RelationshipAttribute[Any]:
    """``A.bs.of_type(b1)``: the relationship leading to an alias of its target."""
    _target_side(attr, entity)  # checks it
    variant: RelationshipAttribute[Any] = attr._variant(of_type=entity)
    return variant


def rel_and_(attr: Any, *criteria: Any) -> RelationshipAttribute[Any]:
    """``A.bs.and_(B.name == "x")``: more criteria in the ON clause of joins along it."""
    terms = tuple(coerce_where(c) for c in criteria)
    variant: RelationshipAttribute[Any] = attr._variant(on_criteria=attr._on_criteria + terms)
    return variant


# -- EXISTS ---------------------------------------------------------------------------------


def _exists(attr: Any, criterion: Any, kw: dict[str, Any]) -> ColumnElement:
    prop: RelationshipProperty[Any] = attr.property
    parent = _parent_side(attr)
    target = _target_side(attr)
    criteria = [coerce_where(criterion)] if criterion is not None else []
    if target is parent:
        # Self-referential: the members are another copy of the table.
        target = prop.target.alias()
        criteria = [adapt(c, {id(prop.target): target}) for c in criteria]
    for key, value in kw.items():
        column = getattr(prop.mapper.attrs.get(key), "column", None)
        if column is None:
            raise exc.ArgumentError(
                f"{_where(attr)}: {prop.entity.__name__} has no column attribute {key!r} "
                "to filter by"
            )
        criteria.append(_col(target, column) == value)
    secondary = prop.secondary
    first, second = _join_terms(prop, parent, target, secondary)
    froms: list[FromClause] = [target] if secondary is None else [target, secondary]
    terms = [*first, *second, *_extra(prop, parent, target, secondary), *attr._on_criteria]
    inner = Select((literal_column("1"),)).select_from(*froms).where(*terms, *criteria)
    # Correlate everything but the members' own tables (SQLAlchemy's correlate_except).
    outer = [f for f in inner.get_final_froms() if not any(f is m for m in froms)]
    return inner.correlate(*outer).exists() if outer else inner.exists()


def rel_any(attr: Any, criterion: Any = None, **kw: Any) -> ColumnElement:
    """``A.bs.any(criterion, name=...)``: some member of the collection matches."""
    prop: RelationshipProperty[Any] = attr.property
    if not prop.uselist:
        raise exc.InvalidRequestError(
            f"{_where(attr)}.any() is for collections, and {_where(attr)} holds one object; "
            f"use {_where(attr)}.has()"
        )
    return _exists(attr, criterion, kw)


def rel_has(attr: Any, criterion: Any = None, **kw: Any) -> ColumnElement:
    """``B.a.has(criterion, name=...)``: the related object exists and matches."""
    prop: RelationshipProperty[Any] = attr.property
    if prop.uselist:
        raise exc.InvalidRequestError(
            f"{_where(attr)}.has() is for relationships holding one object, and "
            f"{_where(attr)} is a collection; use {_where(attr)}.any()"
        )
    return _exists(attr, criterion, kw)


# -- comparisons with objects ---------------------------------------------------------------


def _value_reader(obj: Any, key: str, what: str) -> Callable[[], Any]:
    """A function returning ``obj``'s current ``key``; raises now and at execution if
    ``obj`` is persistent and ``key`` is not loaded (never loads it)."""
    state = instance_state(obj)
    d = obj.__dict__

    def read() -> Any:
        value = d.get(key, NO_VALUE)
        if value is NO_VALUE:
            if state.key is None:
                return None  # transient or pending: no key yet
            raise exc.InvalidRequestError(
                f"Can't compare {what} with {type(obj).__name__} object {obj!r:.60}: its "
                f"attribute {key!r} is not loaded (expired or deferred), and comparing never "
                f"loads it. Refresh it first (`await session.refresh(obj, [{key!r}])`)."
            )
        return value

    read()
    return read


def _bind(column: Any, obj: Any, key: str, what: str) -> BindParameter:
    return BindParameter(
        None, type_=column.type, unique=True, callable_=_value_reader(obj, key, what)
    )


def _check_instance(obj: Any, cls: type, what: str) -> None:
    if not isinstance(obj, cls):
        raise exc.ArgumentError(
            f"Can't compare {what} with {obj!r:.60}: expected a {cls.__name__} object"
        )


def _fk_columns(attr: Any) -> list[Any]:
    parent = _parent_side(attr)
    return [_col(parent, fk) for _, fk in attr.property.pairs]


def rel_eq(attr: Any, other: Any) -> ColumnElement:
    """``B.a == a_obj``, ``B.a == None``, ``A.bs == None`` (no member), and for a
    one-to-one ``A.b == b_obj``."""
    prop: RelationshipProperty[Any] = attr.property
    where = _where(attr)
    if other is None:
        if prop.direction is MANYTOONE and not prop.uselist:
            return and_(*(fk.is_(None) for fk in _fk_columns(attr)))
        return not_(rel_any(attr) if prop.uselist else rel_has(attr))
    if prop.uselist:
        raise exc.InvalidRequestError(
            f"Can't compare the collection {where} with an object; use "
            f"{where}.contains(obj) or {where}.any()"
        )
    _check_instance(other, prop.entity, where)
    if prop.direction is MANYTOONE:
        return and_(
            *(
                fk == _bind(fk, other, key, where)
                for fk, key in zip(_fk_columns(attr), prop.remote_keys, strict=True)
            )
        )
    return _contains(attr, other)


def rel_ne(attr: Any, other: Any) -> ColumnElement:
    """``B.a != a_obj`` (including rows with no ``a``), ``B.a != None``, ``A.bs != None``."""
    prop: RelationshipProperty[Any] = attr.property
    if other is None:
        if prop.direction is MANYTOONE and not prop.uselist:
            return or_(*(fk.is_not(None) for fk in _fk_columns(attr)))
        return rel_any(attr) if prop.uselist else rel_has(attr)
    if prop.direction is MANYTOONE and not prop.uselist:
        where = _where(attr)
        _check_instance(other, prop.entity, where)
        return or_(
            *(
                or_(fk != _bind(fk, other, key, where), fk.is_(None))
                for fk, key in zip(_fk_columns(attr), prop.remote_keys, strict=True)
            )
        )
    return not_(rel_eq(attr, other))


def _contains(attr: Any, other: Any) -> ColumnElement:
    prop: RelationshipProperty[Any] = attr.property
    where = _where(attr)
    _check_instance(other, prop.entity, where)
    parent = _parent_side(attr)
    if prop.direction is MANYTOMANY:
        secondary = prop.secondary
        assert secondary is not None
        first = [_col(parent, ref) == fk for ref, fk in prop.pairs]
        to_member = [
            fk == _bind(fk, other, key, where)
            for (_, fk), key in zip(prop.secondary_pairs, prop.remote_keys, strict=True)
        ]
        return and_(*first, *to_member, *_extra(prop, parent, prop.target, secondary))
    return and_(
        *(
            _col(parent, ref) == _bind(ref, other, key, where)
            for (ref, _), key in zip(prop.pairs, prop.remote_keys, strict=True)
        )
    )


def rel_contains(attr: Any, other: Any) -> ColumnElement:
    """``A.bs.contains(b_obj)``: the parents whose collection holds ``b_obj``."""
    prop: RelationshipProperty[Any] = attr.property
    if not prop.uselist:
        where = _where(attr)
        raise exc.InvalidRequestError(
            f"{where}.contains() is for collections, and {where} holds one object; use "
            f"{where} == obj"
        )
    return _contains(attr, other)


def with_parent(instance: Any, prop: Any, from_entity: Any = None) -> ColumnElement:
    """The criterion selecting the members of ``instance``'s relationship ``prop``:
    ``select(B).where(with_parent(a, A.bs))``.

    ``prop`` is a relationship attribute (``A.bs``, or ``A.bs.of_type(b1)``);
    ``from_entity`` an alias of the target to select from. The instance's key
    values are read at execution (after autoflush); an unloaded one raises
    ``InvalidRequestError``, and nothing is loaded.
    """
    if not isinstance(prop, RelationshipAttribute):
        raise exc.ArgumentError(
            f"with_parent() takes a relationship attribute such as A.bs, got {prop!r:.60}"
        )
    rel: RelationshipProperty[Any] = prop.property
    where = _where(prop)
    _check_instance(instance, rel.parent.class_, f"with_parent(..., {where})")
    target = _target_side(prop, from_entity)
    what = f"with_parent(..., {where})"
    terms: list[ColumnElement] = []
    secondary = rel.secondary
    if rel.direction is MANYTOMANY:
        assert secondary is not None
        for (_, fk), key in zip(rel.pairs, rel.local_keys, strict=True):
            terms.append(fk == _bind(fk, instance, key, what))
        terms.extend(_col(target, ref) == fk for ref, fk in rel.secondary_pairs)
    elif rel.direction is MANYTOONE:
        for (ref, _), key in zip(rel.pairs, rel.local_keys, strict=True):
            column = _col(target, ref)
            terms.append(column == _bind(column, instance, key, what))
    else:
        for (_, fk), key in zip(rel.pairs, rel.local_keys, strict=True):
            column = _col(target, fk)
            terms.append(column == _bind(column, instance, key, what))
    parent = rel.parent.local_table
    return and_(*terms, *_extra(rel, parent, target, secondary), *prop._on_criteria)
