"""Instrumented attributes: ``User.name`` is SQL, ``user.name`` is a value.

How this works:

* An :class:`InstrumentedAttribute` is a data descriptor installed on the
  mapped class. Read from the class, it is itself a column expression (it
  stands for its column in ``select``/``where`` and keeps the attribute key as
  the result key). Read from an instance, it returns the value in the
  instance's ``__dict__``; when there is none it applies the unloaded rules
  of ``orm.state``.
* Writes record history on the instance state before storing the value. A
  value is checked against the column type when it is assigned, so a bad value
  fails at the assignment and not in the middle of a flush. SQL expressions
  may be assigned too: the flush sends them as SQL (``counter = counter + 1``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from asyncsession import exc
from asyncsession.orm.state import (
    NO_VALUE,
    STATE_KEY,
    implicit_loader,
    instance_state,
    new_state,
)
from asyncsession.sql.elements import BindParameter, ClauseElement, ColumnElement, Hashable_
from asyncsession.sql.types import TypeEngine

if TYPE_CHECKING:
    from asyncsession.orm.mapper import ColumnProperty, Mapper

_T = TypeVar("_T")


class Mapped(Generic[_T]):
    """The annotation of a mapped attribute: ``name: Mapped[str]``.

    At runtime the declarative machinery replaces it with an
    :class:`InstrumentedAttribute`; for type checkers, class access is an
    expression and instance access is the value.
    """

    if TYPE_CHECKING:

        @overload
        def __get__(self, instance: None, owner: Any) -> InstrumentedAttribute[_T]: ...

        @overload
        def __get__(self, instance: object, owner: Any) -> _T: ...

        def __get__(self, instance: object | None, owner: Any) -> Any: ...

        def __set__(self, instance: Any, value: _T | ColumnElement) -> None: ...


class QueryableAttribute(ColumnElement, Generic[_T]):
    """A mapped attribute on its class: usable wherever a column expression is."""

    __slots__ = ("class_", "column", "impl_key", "parent", "prop", "type")
    __visit_name__ = "clause_proxy"

    def __init__(
        self, class_: type, key: str, column: ColumnElement, prop: Any, parent: Mapper
    ) -> None:
        self.class_ = class_
        self.impl_key = key
        self.column = column
        self.prop = prop
        self.parent = parent
        self.type = column.type

    @property
    def key(self) -> str:
        return self.impl_key

    @property
    def name(self) -> str:
        return self.impl_key

    @property
    def expression(self) -> ColumnElement:
        return self.column

    def describe(self) -> str:
        return f"attribute {self.class_.__name__}.{self.impl_key}"

    def __clause_element__(self) -> ColumnElement:
        return self.column

    def get_children(self) -> Iterable[ClauseElement]:
        return (self.column,)

    def operate(self, op: str, other: Any, **kw: Any) -> ColumnElement:
        return self.column.operate(op, other, **kw)

    def reverse_operate(self, op: str, other: Any) -> ColumnElement:
        return self.column.reverse_operate(op, other)

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return ("attr", self.impl_key, self.column._ck(binds))

    def __repr__(self) -> str:
        return f"<{self.class_.__name__}.{self.impl_key}>"

    # Last in the class body: the name shadows the builtin for what follows it.
    @property
    def property(self) -> Any:
        return self.prop


class InstrumentedAttribute(QueryableAttribute[_T]):
    """The descriptor of a mapped column attribute."""

    __slots__ = ("_accepts", "_validate")

    def __init__(
        self, class_: type, key: str, column: ColumnElement, prop: ColumnProperty, parent: Mapper
    ) -> None:
        super().__init__(class_, key, column, prop, parent)
        type_ = column.type
        self._validate = type_.validate_bind_value
        # The predicate validate_bind_value() is built on, when it is (one call fewer
        # per assignment); a type that words its own validation is asked in full.
        self._accepts: Callable[[Any], bool] = (
            type_._accepts
            if type(type_).validate_bind_value is TypeEngine.validate_bind_value
            else self._passes
        )

    def _passes(self, value: Any) -> bool:
        try:
            self._validate(value)
        except TypeError:
            return False
        return True

    @overload
    def __get__(self, instance: None, owner: Any) -> InstrumentedAttribute[_T]: ...

    @overload
    def __get__(self, instance: object, owner: Any) -> _T: ...

    def __get__(self, instance: object | None, owner: Any) -> Any:
        if instance is None:
            return self
        try:
            return instance.__dict__[self.impl_key]
        except KeyError:
            return self._missing(instance)

    def _missing(self, instance: Any) -> Any:
        state = instance_state(instance)
        key = self.impl_key
        if state.key is None:
            return None
        loader = implicit_loader.get()
        if loader is not None:
            return loader(state, key)
        raise state.unloaded_error(key)

    def _reject(self, value: Any) -> None:
        """Raise ArgumentError for a value the column type can't bind (``_accepts`` said so)."""
        try:
            self._validate(value)
        except TypeError as err:
            raise exc.ArgumentError(
                f"Can't set {self.class_.__name__}.{self.impl_key} to a value of type "
                f"{type(value).__name__} ({value!r:.60}): {err}"
            ) from None

    def __set__(self, instance: Any, value: Any) -> None:
        if value is not None and not isinstance(value, ClauseElement) and not self._accepts(value):
            self._reject(value)
        d = instance.__dict__
        state = d.get(STATE_KEY)
        if state is None:
            state = new_state(instance)
        key = self.impl_key
        state.record_change(key, d.get(key, NO_VALUE))
        d[key] = value

    def __delete__(self, instance: Any) -> None:
        d = instance.__dict__
        key = self.impl_key
        if key not in d:
            raise AttributeError(f"{self.class_.__name__}.{key} has no value to delete")
        state = instance_state(instance)
        state.record_change(key, d[key])
        d[key] = None


class ExpressionAttribute(QueryableAttribute[_T]):
    """A read-only attribute whose value is a SQL expression (``column_property``)."""

    __slots__ = ()

    def __get__(self, instance: object | None, owner: Any) -> Any:
        if instance is None:
            return self
        try:
            return instance.__dict__[self.impl_key]
        except KeyError:
            state = instance_state(instance)
            if state.key is None:
                return None
            loader = implicit_loader.get()
            if loader is not None:
                return loader(state, self.impl_key)
            raise state.unloaded_error(self.impl_key) from None

    def __set__(self, instance: Any, value: Any) -> None:
        raise AttributeError(
            f"{self.class_.__name__}.{self.impl_key} is a SQL expression attribute "
            "(column_property) and can't be assigned"
        )


class SynonymAttribute:
    """``synonym("name")``: another name for a mapped attribute, in Python and in SQL."""

    __slots__ = ("class_", "key", "target")

    def __init__(self, class_: type, key: str, target: str) -> None:
        self.class_ = class_
        self.key = key
        self.target = target

    def __get__(self, instance: object | None, owner: Any) -> Any:
        if instance is None:
            return getattr(owner, self.target)
        return getattr(instance, self.target)

    def __set__(self, instance: Any, value: Any) -> None:
        setattr(instance, self.target, value)


def _reject_unknown(instance: Any, kwargs: dict[str, Any]) -> None:
    cls = type(instance)
    for key in kwargs:
        if not hasattr(cls, key):
            mapper = getattr(cls, "__mapper__", None)
            if mapper is not None:
                mapper.configure()  # a backref declared on another class appears then
            if not hasattr(cls, key):
                raise TypeError(f"{key!r} is an invalid keyword argument for {cls.__name__}")


def default_constructor(self: Any, **kwargs: Any) -> None:
    """The ``__init__`` of mapped classes that define none: sets mapped attributes by name."""
    # Usually every keyword names a column attribute of the class itself (so none is
    # unknown): do what their descriptors' __set__ does, looking the state up once.
    own = type(self).__dict__
    for key in kwargs:
        if type(own.get(key)) is not InstrumentedAttribute:
            break
    else:
        d = self.__dict__
        state = d.get(STATE_KEY)
        if state is None:
            state = new_state(self)
        for key, value in kwargs.items():
            if value is not None and not isinstance(value, ClauseElement):
                attr = own[key]
                if not attr._accepts(value):
                    attr._reject(value)
            state.record_change(key, d.get(key, NO_VALUE))
            d[key] = value
        return
    _reject_unknown(self, kwargs)
    for key, value in kwargs.items():
        setattr(self, key, value)


default_constructor.__name__ = "__init__"


def get_history(obj: Any, key: str) -> Any:
    """The :class:`History` of attribute ``key`` of ``obj``."""
    return instance_state(obj).history(key)
