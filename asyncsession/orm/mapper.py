"""Mappers: how a class maps to a table.

How this works:

* A :class:`Mapper` owns the class's properties in declaration order: column
  properties (attribute key → Column), SQL expression properties
  (``column_property``), synonyms and relationships (configured lazily, see
  :mod:`asyncsession.orm.relationships`).
* Identity keys are ``(class, primary key tuple, None)`` built from the
  primary key attributes; the class in the key is the mapped class.
* The mapper precomputes what the hot paths need: which attributes to load by
  default (non-deferred columns), which keys can expire, the primary key's
  attribute keys.
* Mapper events (``before_insert``, ``after_update``, ...) are listened to on
  the mapper or on the mapped class (``event.listen(User, "before_insert",
  fn)``); the session fires them during a flush with ``(mapper, connection,
  target)``.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

from asyncsession import exc
from asyncsession.engine.events import Dispatcher
from asyncsession.orm.attributes import (
    ExpressionAttribute,
    InstrumentedAttribute,
    SynonymAttribute,
)
from asyncsession.orm.relationships import (
    RelationshipAttribute,
    RelationshipProperty,
    ensure_configured,
    note_unconfigured,
)
from asyncsession.sql.elements import ColumnElement
from asyncsession.sql.schema import Column, Table
from asyncsession.sql.selectable import FromClause

_by_table: weakref.WeakKeyDictionary[Table, Mapper] = weakref.WeakKeyDictionary()

MAPPER_EVENTS = frozenset(
    {
        "before_insert",
        "after_insert",
        "before_update",
        "after_update",
        "before_delete",
        "after_delete",
    }
)


def mapper_for_table(table: Any) -> Mapper | None:
    """The mapper whose local table is ``table`` (for ORM-enabled UPDATE/DELETE)."""
    try:
        return _by_table.get(table)
    except TypeError:
        return None


class ColumnProperty:
    """A mapped column: ``key`` on the class, ``column`` in the table."""

    __slots__ = ("column", "deferred", "group", "key", "parent")

    def __init__(
        self, key: str, column: Column, deferred: bool = False, group: str | None = None
    ) -> None:
        self.key = key
        self.column = column
        self.deferred = deferred
        self.group = group
        self.parent: Mapper | None = None

    @property
    def columns(self) -> list[Column]:
        return [self.column]

    def __repr__(self) -> str:
        return f"ColumnProperty({self.key!r})"


class ExpressionProperty:
    """``column_property(expr)``: a read-only attribute loaded from a SQL expression."""

    __slots__ = ("deferred", "expression", "key", "parent")

    def __init__(self, key: str, expression: ColumnElement, deferred: bool = False) -> None:
        self.key = key
        self.expression = expression
        self.deferred = deferred
        self.parent: Mapper | None = None

    def __repr__(self) -> str:
        return f"ExpressionProperty({self.key!r})"


class SynonymProperty:
    """``synonym("name")``: a second name for a mapped attribute."""

    __slots__ = ("key", "name", "parent")

    def __init__(self, key: str, name: str) -> None:
        self.key = key
        self.name = name
        self.parent: Mapper | None = None


class Mapper:
    """The mapping of one class: ``inspect(User)`` returns it."""

    def __init__(
        self,
        class_: type,
        local_table: Table,
        properties: Iterable[Any],
        *,
        version_id_col: Column | None = None,
        version_id_generator: Any = None,
        eager_defaults: bool = True,
        registry: Any = None,
    ) -> None:
        # Any: the mapped class is the user's; mypy can't know its constructor.
        self.class_: Any = class_
        self.local_table = local_table
        self.persist_selectable = local_table
        self.registry = registry
        self.eager_defaults = eager_defaults
        self.attrs: dict[str, Any] = {}
        self.column_attrs: dict[str, ColumnProperty] = {}
        self.expression_attrs: dict[str, ExpressionProperty] = {}
        self.synonyms: dict[str, SynonymProperty] = {}
        self.relationships: dict[str, RelationshipProperty[Any]] = {}
        self._column_to_key: dict[int, str] = {}
        for prop in properties:
            self._add_property(prop)
        pk = local_table.primary_key.columns
        if not pk:
            raise exc.ArgumentError(
                f"Mapper for {class_.__name__} could not assemble a primary key for table "
                f"{local_table.fullname!r}; mark a column primary_key=True"
            )
        self.primary_key: tuple[Column, ...] = tuple(pk)
        missing = [c.name for c in pk if id(c) not in self._column_to_key]
        if missing:
            raise exc.ArgumentError(
                f"Mapper for {class_.__name__}: primary key column(s) {missing} of table "
                f"{local_table.fullname!r} are not mapped to attributes"
            )
        self.pk_keys: tuple[str, ...] = tuple(self._column_to_key[id(c)] for c in pk)
        self.version_id_col = version_id_col
        self.version_id_key: str | None = None
        if version_id_col is not None:
            key = self._column_to_key.get(id(version_id_col))
            if key is None:
                raise exc.ArgumentError(
                    f"Mapper for {class_.__name__}: version_id_col {version_id_col.name!r} "
                    "is not a mapped column of the table"
                )
            self.version_id_key = key
        self.version_id_generator = version_id_generator
        self._compute()
        self.dispatch = Dispatcher(MAPPER_EVENTS)
        _by_table[local_table] = self

    def _dispatcher_for(self, identifier: str) -> Dispatcher:
        return self.dispatch

    def _add_property(self, prop: Any) -> None:
        key = prop.key
        if key in self.attrs:
            raise exc.ArgumentError(f"{self.class_.__name__} maps attribute {key!r} twice")
        prop.parent = self
        self.attrs[key] = prop
        if isinstance(prop, ColumnProperty):
            if id(prop.column) in self._column_to_key:
                other = self._column_to_key[id(prop.column)]
                raise exc.ArgumentError(
                    f"{self.class_.__name__}: column {prop.column.name!r} is mapped by both "
                    f"{other!r} and {key!r}; use synonym() for a second name"
                )
            self.column_attrs[key] = prop
            self._column_to_key[id(prop.column)] = key
        elif isinstance(prop, ExpressionProperty):
            self.expression_attrs[key] = prop
        elif isinstance(prop, SynonymProperty):
            self.synonyms[key] = prop
        elif isinstance(prop, RelationshipProperty):
            self.relationships[key] = prop
            if self.registry is not None:
                note_unconfigured(self.registry)

    def add_relationship(self, prop: RelationshipProperty[Any]) -> None:
        """Add a relationship after mapping (a backref); installs its attribute."""
        self._add_property(prop)
        self._compute()
        setattr(self.class_, prop.key, RelationshipAttribute(self.class_, prop.key, prop))

    def configure(self) -> None:
        """Configure the relationships of this mapper's registry (done lazily anyway)."""
        ensure_configured(self)

    def _compute(self) -> None:
        self.attr_keys: tuple[str, ...] = tuple(k for k in self.attrs if k not in self.synonyms)
        self.deferred_keys: frozenset[str] = frozenset(
            k
            for k, p in self.attrs.items()
            if isinstance(p, (ColumnProperty, ExpressionProperty)) and p.deferred
        )
        self.expirable_keys: tuple[str, ...] = tuple(
            k for k in self.attrs if k not in self.synonyms
        )
        self.relationship_keys: frozenset[str] = frozenset(self.relationships)
        # Columns loaded by default, in table order: (key, column).
        self.default_load: tuple[tuple[str, ColumnElement], ...] = tuple(
            (p.key, p.column) for p in self.column_attrs.values() if not p.deferred
        ) + tuple((p.key, p.expression) for p in self.expression_attrs.values() if not p.deferred)

    def instrument(self) -> None:
        """Install the attribute descriptors on the class."""
        cls = self.class_
        for key, prop in self.attrs.items():
            if isinstance(prop, ColumnProperty):
                setattr(cls, key, InstrumentedAttribute(cls, key, prop.column, prop, self))
            elif isinstance(prop, ExpressionProperty):
                setattr(cls, key, ExpressionAttribute(cls, key, prop.expression, prop, self))
            elif isinstance(prop, SynonymProperty):
                if prop.name not in self.attrs:
                    raise exc.ArgumentError(
                        f"synonym {cls.__name__}.{key} names {prop.name!r}, which is not a "
                        f"mapped attribute of {cls.__name__}"
                    )
                setattr(cls, key, SynonymAttribute(cls, key, prop.name))
            elif isinstance(prop, RelationshipProperty):
                setattr(cls, key, RelationshipAttribute(cls, key, prop))
        cls.__mapper__ = self
        cls.__table__ = self.local_table
        # select(User) asks the class for its clause element: the table.
        cls.__clause_element__ = staticmethod(lambda table=self.local_table: table)
        # event.listen(User, "before_insert", fn) listens on the mapper.
        cls._dispatcher_for = staticmethod(lambda identifier, mapper=self: mapper.dispatch)

    # -- keys -----------------------------------------------------------------------
    def key_for_column(self, column: Column) -> str | None:
        return self._column_to_key.get(id(column))

    def identity_key_from_primary_key(self, pk: tuple[Any, ...]) -> tuple[Any, ...]:
        return (self.class_, pk, None)

    def primary_key_from_instance(self, obj: Any) -> tuple[Any, ...]:
        d: dict[str, Any] = obj.__dict__
        keys = self.pk_keys
        if len(keys) == 1:
            return (d.get(keys[0]),)
        return tuple([d.get(k) for k in keys])

    def identity_key_from_instance(self, obj: Any) -> tuple[Any, ...]:
        return (self.class_, self.primary_key_from_instance(obj), None)

    def normalize_pk(self, ident: Any) -> tuple[Any, ...]:
        """A primary key given as a scalar, tuple or dict, as a tuple in key order."""
        if isinstance(ident, dict):
            missing = [k for k in self.pk_keys if k not in ident]
            if missing:
                raise exc.InvalidRequestError(
                    f"Incomplete primary key for {self.class_.__name__}: missing {missing}"
                )
            return tuple(ident[k] for k in self.pk_keys)
        values: tuple[Any, ...] = ident if isinstance(ident, tuple) else (ident,)
        if len(values) != len(self.pk_keys):
            raise exc.InvalidRequestError(
                f"{self.class_.__name__} has a primary key of {len(self.pk_keys)} column(s) "
                f"({', '.join(self.pk_keys)}); got {len(values)} value(s): {values!r}"
            )
        return values

    # -- SQL --------------------------------------------------------------------------
    def __clause_element__(self) -> FromClause:
        return self.local_table

    @property
    def columns(self) -> Any:
        return self.local_table.c

    c = columns

    @property
    def tables(self) -> list[Table]:
        return [self.local_table]

    @property
    def entity(self) -> Any:
        return self.class_

    @property
    def mapper(self) -> Mapper:
        return self

    def get_property(self, key: str) -> Any:
        ensure_configured(self)
        try:
            return self.attrs[key]
        except KeyError:
            raise exc.InvalidRequestError(
                f"Mapper for {self.class_.__name__} has no property {key!r}"
            ) from None

    def __repr__(self) -> str:
        return f"<Mapper {self.class_.__name__} -> {self.local_table.fullname}>"
