"""Declarative mapping: ``class User(Base)`` with ``Mapped[...]`` annotations.

How this works:

* ``DeclarativeBase`` subclasses without ``__tablename__``/``__table__`` are
  bases or mixins; the first class that names a table is mapped when it is
  created (``__init_subclass__``). Its attributes are collected along the MRO,
  so mixins contribute columns (copied for each class) and ``declared_attr``
  functions run per class.
* An annotation ``name: Mapped[T]`` supplies what ``mapped_column()`` leaves
  out: the type from ``T`` through the registry's type map, and nullability
  from whether ``T`` is optional. Explicit arguments win.
* Every problem with a declaration raises ``ArgumentError`` when the class is
  created, naming the class and the attribute.
"""

from __future__ import annotations

import builtins
import datetime
import decimal
import enum
import inspect as _inspect
import sys
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from asyncsession import exc
from asyncsession.orm.attributes import Mapped, default_constructor
from asyncsession.orm.mapper import ColumnProperty, ExpressionProperty, Mapper, SynonymProperty
from asyncsession.orm.relationships import (
    DynamicMapped,
    RelationshipProperty,
    WriteOnlyMapped,
    _RelationshipDecl,
)
from asyncsession.sql import types as sqltypes
from asyncsession.sql.elements import coerce_expression
from asyncsession.sql.schema import Column, Constraint, Index, MetaData, Table

_T = TypeVar("_T")

_DEFAULT_TYPE_MAP: dict[Any, Any] = {
    int: sqltypes.Integer,
    str: sqltypes.String,
    bool: sqltypes.Boolean,
    float: sqltypes.Float,
    decimal.Decimal: sqltypes.Numeric,
    datetime.datetime: sqltypes.DateTime,
    datetime.date: sqltypes.Date,
    datetime.time: sqltypes.Time,
    datetime.timedelta: sqltypes.Interval,
    bytes: sqltypes.LargeBinary,
    uuid.UUID: sqltypes.Uuid,
    dict: sqltypes.JSON,
    list: sqltypes.JSON,
}


class MappedColumn(Mapped[_T]):
    """What ``mapped_column()`` returns: a Column plus ORM options, until mapping."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.deferred: bool = kwargs.pop("deferred", False)
        self.deferred_group: str | None = kwargs.pop("deferred_group", None)
        if "insert_default" in kwargs:  # SQLAlchemy's alias of default=
            kwargs["default"] = kwargs.pop("insert_default")
        kwargs.pop("sort_order", None)  # columns keep declaration order here
        for dataclass_only in ("init", "repr", "default_factory", "compare", "kw_only", "hash"):
            if dataclass_only in kwargs:
                raise exc.ArgumentError(
                    f"mapped_column({dataclass_only}=...) is for dataclass mappings, which "
                    "asyncsession does not support yet"
                )
        self.args = args
        self.kwargs = kwargs
        self.explicit_nullable = "nullable" in kwargs
        self.explicit_type = (
            any(
                isinstance(a, sqltypes.TypeEngine)
                or (isinstance(a, type) and issubclass(a, sqltypes.TypeEngine))
                for a in args
            )
            or "type_" in kwargs
        )

    def make_column(
        self, name: str, annotation_type: Any, nullable_from_annotation: bool | None, where: str
    ) -> Column:
        kwargs = dict(self.kwargs)
        args = list(self.args)
        if not self.explicit_type:
            if annotation_type is None:
                has_fk = any(type(a).__name__ == "ForeignKey" for a in args)
                if not has_fk:
                    raise exc.ArgumentError(
                        f"{where}: mapped_column() has no type; annotate the attribute "
                        "with Mapped[...] or pass a type"
                    )
            else:
                kwargs["type_"] = annotation_type
        if (
            not self.explicit_nullable
            and nullable_from_annotation is not None
            and not kwargs.get("primary_key")
        ):
            kwargs["nullable"] = nullable_from_annotation
        named = bool(args and isinstance(args[0], str)) or "name" in kwargs
        if not named:
            args.insert(0, name)
        try:
            column = Column(*args, **kwargs)
        except exc.ArgumentError as err:
            raise exc.ArgumentError(f"{where}: {err}") from None
        # As SQLAlchemy's: the class body may name it (``remote_side=[id]``).
        self.column = column
        return column

    def copy(self) -> MappedColumn[_T]:
        clone = MappedColumn.__new__(MappedColumn)
        clone.__dict__.update(self.__dict__)
        return clone


def mapped_column(*args: Any, **kwargs: Any) -> MappedColumn[Any]:
    """A mapped column: ``id: Mapped[int] = mapped_column(primary_key=True)``.

    Takes every ``Column`` argument, plus ``deferred=True`` (not loaded until
    asked for) and ``deferred_group``.
    """
    return MappedColumn(*args, **kwargs)


class _ExpressionDecl(Mapped[_T]):
    def __init__(self, expression: Any, deferred: bool) -> None:
        self.expression = expression
        self.deferred = deferred


def column_property(expression: Any, *, deferred: bool = False) -> Any:
    """A read-only attribute loaded from a SQL expression (or a second Column mapping)."""
    return _ExpressionDecl(expression, deferred)


def deferred(column: Any, **kw: Any) -> Any:
    """A column that is not loaded until asked for (``undefer`` or ``refresh``)."""
    if isinstance(column, MappedColumn):
        column.deferred = True
        return column
    if isinstance(column, Column):
        return _ExpressionDecl(column, True)
    raise exc.ArgumentError(f"deferred() takes a Column or mapped_column(), got {column!r:.60}")


class _SynonymDecl(Mapped[_T]):
    def __init__(self, name: str) -> None:
        self.name = name


def synonym(name: str, **kw: Any) -> Any:
    """Another attribute name for the mapped attribute ``name``."""
    return _SynonymDecl(name)


class declared_attr(Generic[_T]):
    """Run a function per mapped class to produce an attribute or ``__tablename__``."""

    def __init__(self, fn: Callable[..., _T]) -> None:
        self.fn = fn
        self.__doc__ = fn.__doc__

    def __get__(self, instance: Any, owner: Any) -> _T:
        return self.fn(owner)

    @classmethod
    def directive(cls, fn: Callable[..., Any]) -> declared_attr[Any]:
        return cls(fn)


class registry:
    """Holds the MetaData, the type map and every mapper of a declarative base."""

    def __init__(
        self,
        metadata: MetaData | None = None,
        type_annotation_map: Mapping[Any, Any] | None = None,
    ) -> None:
        self.metadata = metadata if metadata is not None else MetaData()
        self.type_annotation_map: dict[Any, Any] = dict(_DEFAULT_TYPE_MAP)
        if type_annotation_map:
            self.type_annotation_map.update(type_annotation_map)
        self.mappers: list[Mapper] = []

    def sql_type_for(self, python_type: Any) -> sqltypes.TypeEngine[Any] | None:
        found = self.type_annotation_map.get(python_type)
        if found is not None:
            return sqltypes.to_instance(found)
        origin = typing.get_origin(python_type)
        if origin is typing.Literal:
            values = typing.get_args(python_type)
            if all(isinstance(v, str) for v in values):
                return sqltypes.Enum(*values, native_enum=False)
        if origin is not None and origin in self.type_annotation_map:
            return sqltypes.to_instance(self.type_annotation_map[origin])
        if isinstance(python_type, type):
            if issubclass(python_type, enum.Enum):
                return sqltypes.Enum(python_type)
            for base in python_type.__mro__[1:]:
                if base in self.type_annotation_map:
                    return sqltypes.to_instance(self.type_annotation_map[base])
        return None

    def map_imperatively(
        self,
        class_: type,
        local_table: Table,
        properties: Mapping[str, Any] | None = None,
        **mapper_args: Any,
    ) -> Mapper:
        """Map a plain class (including a non-slotted attrs class) to a Table."""
        props: list[Any] = []
        explicit = dict(properties or {})
        covered: set[int] = set()
        for key, value in explicit.items():
            prop = _property_from_value(key, value, f"{class_.__name__}.{key}")
            props.append(prop)
            if isinstance(prop, ColumnProperty):
                covered.add(id(prop.column))
        for column in local_table.c:
            if id(column) not in covered:
                props.append(ColumnProperty(column.key, column))
        mapper = Mapper(
            class_,
            local_table,
            props,
            registry=self,
            **_mapper_kwargs(mapper_args, local_table, class_.__name__),
        )
        mapper.instrument()
        self.mappers.append(mapper)
        return mapper

    def generate_base(self) -> type:
        registry_ = self

        class Base(DeclarativeBase):
            registry = registry_
            metadata = registry_.metadata

        return Base


def _property_from_value(key: str, value: Any, where: str) -> Any:
    if isinstance(value, Column):
        return ColumnProperty(key, value)
    if isinstance(value, _ExpressionDecl):
        expression = value.expression
        if isinstance(expression, Column):
            return ColumnProperty(key, expression, deferred=value.deferred)
        return ExpressionProperty(key, coerce_expression(expression), value.deferred)
    if isinstance(value, _SynonymDecl):
        return SynonymProperty(key, value.name)
    if isinstance(value, _RelationshipDecl):
        return RelationshipProperty(key, value.argument, value.secondary, **value.kw)
    raise exc.ArgumentError(f"{where}: can't map {value!r:.60}")


class _Forward:
    """A name in an annotation that is not defined yet (a class declared later)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self) -> None:  # lets typing.Optional[...] accept it
        return None

    def __or__(self, other: Any) -> Any:
        return typing.Optional[self]  # noqa: UP045 - a placeholder, not a type

    def __ror__(self, other: Any) -> Any:
        return typing.Optional[self]  # noqa: UP045

    def __getitem__(self, item: Any) -> Any:
        return self


class _ForwardNames(dict[str, Any]):
    def __init__(self, names: dict[str, Any], fallback: dict[str, Any]) -> None:
        super().__init__(names)
        self.fallback = fallback

    def __missing__(self, name: str) -> Any:
        if name in self.fallback:
            return self.fallback[name]
        if hasattr(builtins, name):
            return getattr(builtins, name)
        return _Forward(name)


def _evaluate_lenient(annotation: Any, cls: type) -> Any:
    """Evaluate an annotation in which classes declared later may appear."""
    if not isinstance(annotation, str):
        return annotation
    module = sys.modules.get(cls.__module__)
    namespace = dict(vars(module)) if module is not None else {}
    namespace.setdefault("Mapped", Mapped)
    namespace.setdefault("WriteOnlyMapped", WriteOnlyMapped)
    local = _ForwardNames({k: v for k, v in vars(cls).items() if isinstance(v, type)}, namespace)
    try:
        return eval(annotation, namespace, local)
    except Exception as err:
        raise exc.ArgumentError(
            f"{cls.__name__}: can't evaluate the annotation {annotation!r}: {err}"
        ) from None


def _target_name(arg: Any) -> Any:
    if isinstance(arg, _Forward):
        return arg.name
    if isinstance(arg, typing.ForwardRef):
        return arg.__forward_arg__
    return arg


def _relationship_property(
    key: str, decl: _RelationshipDecl[Any], annotation: Any, cls: type, where: str
) -> RelationshipProperty[Any]:
    """The relationship of ``key``, with what the annotation says filled in."""
    kw = dict(decl.kw)
    argument = decl.argument
    if annotation is not None:
        evaluated = _evaluate_lenient(annotation, cls)
        origin = typing.get_origin(evaluated)
        if origin is DynamicMapped:
            raise exc.ArgumentError(
                f"{where}: DynamicMapped (lazy='dynamic') is not supported; use WriteOnlyMapped"
            )
        if origin is not None and isinstance(origin, type) and issubclass(origin, Mapped):
            inner = typing.get_args(evaluated)[0] if typing.get_args(evaluated) else None
            if origin is WriteOnlyMapped:
                if kw["lazy"] == "select":
                    kw["lazy"] = "write_only"
                if argument is None:
                    argument = _target_name(inner)
            elif inner is not None:
                inner, _optional = _split_optional(inner)
                inner_origin = typing.get_origin(inner)
                args = typing.get_args(inner)
                if inner_origin in (list, set, dict, typing.List, typing.Set, typing.Dict):  # noqa: UP006
                    target = args[-1] if args else None
                    if kw["uselist"] is None:
                        kw["uselist"] = True
                    if kw["collection_class"] is None:
                        if inner_origin in (set, typing.Set):  # noqa: UP006
                            kw["collection_class"] = set
                        elif inner_origin in (dict, typing.Dict):  # noqa: UP006
                            kw["collection_class"] = dict
                else:
                    target = inner
                    if kw["uselist"] is None:
                        kw["uselist"] = False
                if argument is None:
                    argument = _target_name(target)
    return RelationshipProperty(key, argument, decl.secondary, **kw)


def _mapper_kwargs(
    args: Mapping[str, Any], table: Table, where: str, made: Mapping[int, Column] | None = None
) -> dict[str, Any]:
    known = {"version_id_col", "version_id_generator", "eager_defaults"}
    unknown = set(args) - known
    if unknown:
        raise exc.ArgumentError(
            f"{where}: unsupported __mapper_args__ {sorted(unknown)}; supported: {sorted(known)}"
        )
    out = dict(args)
    version = out.get("version_id_col")
    if version is not None and not isinstance(version, Column):
        if made and id(version) in made:  # a mapped_column() from the class body
            version = made[id(version)]
        elif isinstance(version, str):
            version = table.c.get(version)
        else:
            version = getattr(version, "column", version)
        out["version_id_col"] = version
    return out


def _unwrap_mapped(annotation: Any) -> tuple[bool, Any]:
    """(is Mapped[...], inner type) for an evaluated annotation."""
    origin = typing.get_origin(annotation)
    if origin is not None and isinstance(origin, type) and issubclass(origin, Mapped):
        args = typing.get_args(annotation)
        return True, args[0] if args else None
    return False, annotation


def _split_optional(python_type: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(python_type)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(python_type) if a is not type(None)]
        optional = len(args) != len(typing.get_args(python_type))
        if len(args) == 1:
            return args[0], optional
        return python_type, optional
    if origin is typing.Annotated:
        return _split_optional(typing.get_args(python_type)[0])
    return python_type, False


def _evaluate(annotation: Any, cls: type) -> Any:
    if not isinstance(annotation, str):
        return annotation
    module = sys.modules.get(cls.__module__)
    namespace = dict(vars(module)) if module is not None else {}
    namespace.setdefault("Mapped", Mapped)
    namespace.update({k: v for k, v in vars(cls).items() if isinstance(v, type)})
    try:
        return eval(annotation, namespace)
    except Exception as err:
        raise exc.ArgumentError(
            f"{cls.__name__}: can't evaluate the annotation {annotation!r}: {err}"
        ) from None


class DeclarativeBase:
    """Base for declarative classes: ``class Base(DeclarativeBase): pass``.

    A subclass that sets ``__tablename__`` (or ``__table__``) is mapped when it
    is created. ``Base.metadata`` holds the tables; ``Base.registry`` the
    mappers and the ``type_annotation_map``.
    """

    registry: typing.ClassVar[registry]
    metadata: typing.ClassVar[MetaData]
    __tablename__: typing.ClassVar[Any]
    __table__: typing.ClassVar[Table]
    __mapper__: typing.ClassVar[Mapper]

    if typing.TYPE_CHECKING:

        def __init__(self, **kw: Any) -> None: ...

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if DeclarativeBase in cls.__bases__:
            _setup_base(cls)
            return
        _map_declarative(cls)


def _setup_base(cls: type) -> None:
    own = cls.__dict__
    reg = own.get("registry")
    if not isinstance(reg, registry):
        metadata = own.get("metadata")
        reg = registry(
            metadata=metadata if isinstance(metadata, MetaData) else None,
            type_annotation_map=own.get("type_annotation_map"),
        )
    cls.registry = reg  # type: ignore[attr-defined]
    cls.metadata = reg.metadata  # type: ignore[attr-defined]
    if "__init__" not in own:
        cls.__init__ = default_constructor  # type: ignore[misc]


def _find_base_registry(cls: type) -> registry:
    for base in cls.__mro__[1:]:
        reg = base.__dict__.get("registry")
        if isinstance(reg, registry):
            return reg
    raise exc.ArgumentError(f"{cls.__name__} has no declarative base with a registry")


def _map_declarative(cls: type) -> None:
    if cls.__dict__.get("__abstract__", False):
        return
    tablename = getattr(cls, "__tablename__", None)
    own_table = cls.__dict__.get("__table__")
    for base in cls.__mro__[1:]:
        if "__mapper__" in base.__dict__:
            raise exc.ArgumentError(
                f"{cls.__name__} subclasses the mapped class {base.__name__}; mapped "
                "inheritance (single/joined table) is not supported yet"
            )
    if tablename is None and own_table is None:
        return  # a mixin-like intermediate class
    reg = _find_base_registry(cls)
    where = cls.__name__
    annotations: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or klass is DeclarativeBase:
            continue
        is_own = klass is cls
        for key, annotation in _inspect.get_annotations(klass).items():
            annotations[key] = (annotation, klass)
        for key, value in klass.__dict__.items():
            if isinstance(value, declared_attr):
                if not key.startswith("__"):  # __tablename__ etc. are read by getattr
                    values[key] = value.fn(cls)
            elif isinstance(
                value, (MappedColumn, _ExpressionDecl, _SynonymDecl, Column, _RelationshipDecl)
            ):
                if not is_own and isinstance(value, (MappedColumn, Column)):
                    value = value.copy()  # a mixin's column: each class gets its own
                values[key] = value
    props: list[Any] = []
    columns: list[Column] = []
    made: dict[int, Column] = {}  # id(mapped_column()) -> the Column it produced
    for key, (annotation, owner) in annotations.items():
        if key.startswith("__"):
            continue
        if isinstance(values.get(key), _RelationshipDecl):
            props.append(
                _relationship_property(key, values.pop(key), annotation, owner, f"{where}.{key}")
            )
            continue
        evaluated = _evaluate(annotation, owner)
        if typing.get_origin(evaluated) is typing.ClassVar:
            continue
        is_mapped, inner = _unwrap_mapped(evaluated)
        if not is_mapped and key not in values:
            continue
        value = values.pop(key, None)
        attr_where = f"{where}.{key}"
        if value is None:
            value = MappedColumn()
        if isinstance(value, MappedColumn):
            sql_type = None
            nullable = None
            if inner is not None:
                python_type, optional = _split_optional(inner)
                nullable = optional
                if not value.explicit_type:
                    sql_type = reg.sql_type_for(python_type)
                    if sql_type is None and not any(
                        type(a).__name__ == "ForeignKey" for a in value.args
                    ):
                        raise exc.ArgumentError(
                            f"{attr_where}: no SQL type is known for the annotation "
                            f"{python_type!r}; pass a type to mapped_column() or add it to "
                            "type_annotation_map"
                        )
            column = value.make_column(key, sql_type, nullable, attr_where)
            made[id(value)] = column
            columns.append(column)
            props.append(ColumnProperty(key, column, value.deferred, value.deferred_group))
        else:
            props.append(_property_from_value(key, value, attr_where))
    for key, value in values.items():
        if isinstance(value, MappedColumn):
            column = value.make_column(key, None, None, f"{where}.{key}")
            made[id(value)] = column
            columns.append(column)
            props.append(ColumnProperty(key, column, value.deferred, value.deferred_group))
        elif isinstance(value, Column):
            if not value.name:
                value._set_name(key)
            columns.append(value)
            props.append(ColumnProperty(key, value))
        else:
            props.append(_property_from_value(key, value, f"{where}.{key}"))
    if own_table is not None:
        table = own_table
        if columns:
            raise exc.ArgumentError(f"{where}: a class with __table__ can't also declare columns")
        mapped_ids = {id(p.column) for p in props if isinstance(p, ColumnProperty)}
        for column in table.c:
            if id(column) not in mapped_ids:
                props.append(ColumnProperty(column.key, column))
    else:
        table_args = getattr(cls, "__table_args__", ())
        args: list[Any] = []
        table_kw: dict[str, Any] = {}
        if isinstance(table_args, dict):
            table_kw = dict(table_args)
        elif isinstance(table_args, tuple):
            if table_args and isinstance(table_args[-1], dict):
                table_kw = dict(table_args[-1])
                table_args = table_args[:-1]
            for item in table_args:
                if not isinstance(item, (Constraint, Index)):
                    raise exc.ArgumentError(
                        f"{where}.__table_args__: expected constraints, indexes and an "
                        f"optional dict, got {item!r:.60}"
                    )
            args = list(table_args)
        else:
            raise exc.ArgumentError(f"{where}.__table_args__ must be a tuple or a dict")
        names: dict[str, str] = {}
        for column, prop in zip(
            columns, [p for p in props if isinstance(p, ColumnProperty)], strict=False
        ):
            if column.name in names:
                raise exc.ArgumentError(
                    f"{where}: attributes {names[column.name]!r} and {prop.key!r} both map "
                    f"to column {column.name!r}"
                )
            names[column.name] = prop.key
        if tablename in reg.metadata.tables:
            raise exc.ArgumentError(
                f"{where}: table {tablename!r} is already defined in this MetaData "
                f"(by another class or Table); use __table__ = ... to map an existing table"
            )
        try:
            table = Table(str(tablename), reg.metadata, *columns, *args, **table_kw)
        except exc.ArgumentError as err:
            raise exc.ArgumentError(f"{where}: {err}") from None
    mapper_args = getattr(cls, "__mapper_args__", {}) or {}
    mapper = Mapper(
        cls, table, props, registry=reg, **_mapper_kwargs(mapper_args, table, where, made)
    )
    mapper.instrument()
    reg.mappers.append(mapper)


def inspect(subject: Any) -> Any:
    """The mapper of a mapped class, or the state of a mapped object."""
    from asyncsession.orm.state import instance_state

    if isinstance(subject, type):
        mapper = subject.__dict__.get("__mapper__")
        if mapper is None:
            raise exc.ArgumentError(f"{subject.__name__} is not a mapped class")
        mapper.configure()
        return mapper
    if isinstance(subject, Mapper):
        return subject
    if getattr(type(subject), "__mapper__", None) is not None:
        return instance_state(subject)
    raise exc.ArgumentError(f"No inspection is available for {type(subject).__name__!r} objects")


__all__ = [
    "DeclarativeBase",
    "Mapped",
    "MappedColumn",
    "column_property",
    "declared_attr",
    "deferred",
    "inspect",
    "mapped_column",
    "registry",
    "synonym",
]
