"""SQL built from relationships: ``B.a == a``, ``A.bs.any(...)``, ``with_parent()``.

Pure: these build expressions and never load anything.
"""

from __future__ import annotations

from typing import Any

from asyncsession import exc
from asyncsession.orm.relationships import MANYTOONE
from asyncsession.orm.state import NO_VALUE, instance_state
from asyncsession.sql.elements import ColumnElement, and_, not_, or_


def _values(obj: Any, keys: tuple[str, ...], what: str) -> list[Any]:
    state = instance_state(obj)
    d = obj.__dict__
    out = []
    for key in keys:
        value = d.get(key, NO_VALUE)
        if value is NO_VALUE:
            committed = state.committed_state
            if committed and key in committed:
                value = committed[key]
        if value is NO_VALUE:
            raise exc.InvalidRequestError(
                f"Can't compare {what} with {type(obj).__name__} object: its attribute "
                f"{key!r} is not loaded"
            )
        out.append(value)
    return out


def rel_eq(attr: Any, other: Any) -> ColumnElement:
    """``B.a == a_obj`` (many-to-one) or ``B.a == None``."""
    prop = attr.property
    if prop.direction is not MANYTOONE or prop.uselist:
        if other is None:
            return ~rel_any(attr) if prop.uselist else ~rel_has(attr)
        raise exc.InvalidRequestError(
            f"Can't compare the collection {prop.describe()} with an object; use "
            f"{prop.describe()}.contains(obj) or .any()"
        )
    fks = [fk for _, fk in prop.pairs]
    if other is None:
        return and_(*(fk.is_(None) for fk in fks))
    values = _values(other, prop.remote_keys, prop.describe())
    return and_(*(fk == v for fk, v in zip(fks, values, strict=True)))


def rel_ne(attr: Any, other: Any) -> ColumnElement:
    prop = attr.property
    if other is None:
        return rel_any(attr) if prop.uselist else rel_has(attr)
    if prop.direction is MANYTOONE and not prop.uselist:
        fks = [fk for _, fk in prop.pairs]
        values = _values(other, prop.remote_keys, prop.describe())
        return or_(*(or_(fk != v, fk.is_(None)) for fk, v in zip(fks, values, strict=True)))
    return not_(rel_eq(attr, other))


def rel_any(attr: Any, criterion: Any = None, **kw: Any) -> ColumnElement:
    raise NotImplementedError


def rel_has(attr: Any, criterion: Any = None, **kw: Any) -> ColumnElement:
    raise NotImplementedError
