"""Column types: how Python values become driver values and back, and how each type
is spelled in DDL.

How this works
--------------
A type is a small value object (``Integer()``, ``String(20)``, ``DateTime(timezone=True)``)
with SQLAlchemy 2.x's names and constructor signatures. For a dialect it supplies:

* ``compile_ddl(dialect)``: the column type in CREATE TABLE (``VARCHAR(20)``, ``JSONB``).
* ``bind_processor(dialect)`` / ``result_processor(dialect)``: a callable turning a
  Python value into what the driver takes, and what the driver returns into the
  Python value. ``None`` means "the driver already speaks this type" and is the common
  case on PostgreSQL; the hot path then skips the call.

Rules and invariants:

* Processors are built once per (type, dialect) by the caller and cached. Building may
  look at the dialect; the returned callables never do, and every one of them maps
  ``None`` to ``None``. The exception is JSON with ``none_as_null=False``: its
  ``should_evaluate_none`` is True and its bind processor turns ``None`` into the JSON
  document ``null``, so callers must pass ``None`` to it rather than skip it.
* Types are immutable after construction. They compare and hash by ``cache_key``,
  which is ``(class, parameters...)``: equal types share compiled SQL.
* ``validate_bind_value`` rejects, with a ``TypeError`` naming the type and the value,
  what the type can never bind. It runs before IO; processors assume valid input.
* A ``TypeDecorator`` chains: ``process_bind_param`` then the impl's bind processor;
  the impl's result processor then ``process_result_value``.

Storage on SQLite (aiosqlite takes and returns only int, float, str, bytes and None):

==================  =========  ===============================================
type                DDL        stored as
==================  =========  ===============================================
Boolean             BOOLEAN    0 / 1
Date                DATE       ``YYYY-MM-DD``
Time                TIME       ``HH:MM:SS.ffffff`` (+ ``+HH:MM`` when timezone=True)
DateTime            DATETIME   ``YYYY-MM-DD HH:MM:SS.ffffff`` (+ ``+00:00`` when
                               timezone=True); fixed width, so text order is
                               chronological order
Interval            INTEGER    whole microseconds (exact, ordered; +-292 years)
Numeric             NUMERIC    bound as exact text; SQLite's NUMERIC affinity keeps
                               integers up to 2**63 exactly and turns fractions into
                               REAL (15 significant digits). Returned as Decimal,
                               rounded to ``scale`` when it is set
Uuid                CHAR(32)   32 lowercase hex digits (ordered as ``UUID.int``)
JSON                JSON       serialized text
Enum                VARCHAR(n) the database value (member name by default)
==================  =========  ===============================================

Time zones (both dialects): ``DateTime(timezone=False)`` stores naive values; an aware
value is converted to UTC and its tzinfo dropped ("naive means UTC"), rather than
failing on PostgreSQL or silently keeping the wall time. ``DateTime(timezone=True)``
treats a naive value as UTC (as asyncpg does) and always returns aware UTC datetimes.
``Time`` follows the same rules, except that ``Time(timezone=True)`` keeps the offset
it was given (as PostgreSQL's ``time with time zone`` does).
"""

from __future__ import annotations

import copy as _copy
import datetime as _dt
import decimal
import enum as _enum
import functools
import inspect
import json
import re
import uuid as _uuid
from collections.abc import Callable, Hashable, Iterable
from typing import Any, ClassVar, Generic, Literal, Protocol, Self, TypeVar, overload

from asyncsession import exc

__all__ = [
    "ARRAY",
    "JSON",
    "BigInteger",
    "Boolean",
    "Date",
    "DateTime",
    "DialectLike",
    "Double",
    "Enum",
    "Float",
    "Integer",
    "Interval",
    "LargeBinary",
    "NullType",
    "Numeric",
    "SmallInteger",
    "String",
    "Text",
    "Time",
    "TypeDecorator",
    "TypeEngine",
    "Unicode",
    "UnicodeText",
    "Uuid",
    "to_instance",
    "type_for_python_value",
]

_T = TypeVar("_T")
_N = TypeVar("_N", float, decimal.Decimal)
_U = TypeVar("_U", _uuid.UUID, str)

Processor = Callable[[Any], Any]
"""Converts one value; always maps ``None`` to ``None`` (see the module docstring)."""

ARITHMETIC_OPERATORS = frozenset({"+", "-", "*", "/", "//", "%", "||"})

_UTC = _dt.UTC
_ONE_MICROSECOND = _dt.timedelta(microseconds=1)
_SUPPORTED_DIALECTS = ("sqlite", "postgresql")


class DialectLike(Protocol):
    """What a type needs to know about the dialect it is processed for."""

    @property
    def name(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        ...

    @property
    def json_serializer(self) -> Callable[[Any], str] | None:
        """Serializes JSON values; None means :func:`json.dumps`."""
        ...

    @property
    def json_deserializer(self) -> Callable[[str], Any] | None:
        """Parses JSON text; None means :func:`json.loads`."""
        ...


def _dialect_name(dialect: DialectLike) -> str:
    name = dialect.name
    if name not in _SUPPORTED_DIALECTS:
        raise exc.CompileError(
            f"asyncsession types support the dialects 'sqlite' and 'postgresql', not {name!r}"
        )
    return name


class _Lookup(dict[Any, Any]):
    """A dict whose misses go to a function, so a hit costs one C-level lookup.

    Its bound ``__getitem__`` serves as a processor for types with few values.
    """

    __slots__ = ("_miss",)

    def __init__(self, table: dict[Any, Any], miss: Callable[[Any], Any]) -> None:
        super().__init__(table)
        self._miss = miss

    def __missing__(self, key: Any) -> Any:
        return self._miss(key)


class _IdentityKey:
    """A cache-key part that is equal only to itself; holds its object alive so the
    ``id`` cannot be reused while the key exists."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _IdentityKey) and other.obj is self.obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __repr__(self) -> str:
        return f"<identity of {type(self.obj).__name__} at {id(self.obj):#x}>"


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _quote_sqlite_identifier(name: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'


# PostgreSQL words that cannot name a type unquoted: the reserved keywords and the
# non-reserved ones that "cannot be function or type" (PostgreSQL docs, appendix C).
_PG_RESERVED = frozenset(
    """
    all analyse analyze and any array as asc asymmetric authorization between bigint
    binary bit boolean both case cast char character check coalesce collate collation
    column concurrently constraint create cross current_catalog current_date
    current_role current_schema current_time current_timestamp current_user dec
    decimal default deferrable desc distinct do else end except exists extract false
    fetch float for foreign freeze from full grant greatest group grouping having
    ilike in initially inner inout int integer intersect interval into is isnull join
    lateral leading least left like limit localtime localtimestamp national natural
    nchar none normalize not notnull null nullif numeric offset on only or order out
    outer overlaps overlay placing position precision primary real references
    returning right row select session_user setof similar smallint some substring
    symmetric system_user table tablesample then time timestamp to trailing treat
    trim true union unique user using values varchar variadic verbose when where
    window with
    """.split()  # noqa: SIM905 - a word list reads better as words
)


def _quote_pg_identifier(name: str) -> str:
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) and name not in _PG_RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


def _affinity_of(cls: type) -> type:
    """The most generic type class above ``cls``: ``Float`` -> ``Numeric``."""
    for klass in reversed(cls.__mro__):
        if issubclass(klass, TypeEngine) and klass is not TypeEngine:
            return klass
    return cls


class TypeEngine(Generic[_T]):
    """The base of every column type.

    Subclasses list the attributes that identify them in ``_cache_params``; those
    make up ``cache_key``, equality, hashing and ``repr``.
    """

    hashable: bool = True
    """False when values are unhashable (JSON documents, arrays)."""

    should_evaluate_none: bool = False
    """True when the bind processor must see ``None`` (it means a value, not NULL)."""

    _python_type: ClassVar[type] = object
    _cache_params: ClassVar[tuple[str, ...]] = ()
    _affinity: ClassVar[type]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._affinity = _affinity_of(cls)

    @property
    def python_type(self) -> type:
        """The Python type of this type's values (``int`` for ``Integer``)."""
        return self._python_type

    # -- processing -----------------------------------------------------------------

    def bind_processor(self, dialect: DialectLike) -> Processor | None:
        """Python value -> driver value, or None when the driver takes it as is."""
        return None

    def result_processor(self, dialect: DialectLike) -> Processor | None:
        """Driver value -> Python value, or None when the driver returns it as is."""
        return None

    def literal_processor(self, dialect: DialectLike) -> Callable[[Any], str]:
        """Python value -> an SQL literal, for ``literal_binds`` and server defaults.

        The value is bind-processed first, so it renders as it would be stored; on
        PostgreSQL, quoted literals of non-string types are wrapped in a CAST.
        """
        name = _dialect_name(dialect)
        bind = self.bind_processor(dialect)
        render = _render_literal_postgresql if name == "postgresql" else _render_literal_sqlite
        cast_to: str | None = None
        if name == "postgresql" and not isinstance(self._operand_type(), String | NullType):
            cast_to = self.compile_ddl(dialect)

        def process(value: Any) -> str:
            if bind is not None:
                value = bind(value)
            text = render(value)
            if cast_to is not None and text.startswith("'"):
                return f"CAST({text} AS {cast_to})"
            return text

        return process

    # -- DDL ------------------------------------------------------------------------

    def compile_ddl(self, dialect: DialectLike) -> str:
        """The column type as CREATE TABLE spells it on ``dialect``.

        Raises :class:`~asyncsession.exc.CompileError` when the dialect cannot store
        this type.
        """
        return self._ddl(_dialect_name(dialect))

    def _ddl(self, dialect_name: str) -> str:
        raise exc.CompileError(f"{self!r} has no DDL rendering on {dialect_name}")

    def named_types(self, dialect: DialectLike) -> tuple[Enum, ...]:
        """Named database types this type needs created first (``CREATE TYPE``).

        On PostgreSQL, a native ``Enum`` (also inside ``ARRAY`` or behind a
        ``TypeDecorator``); empty elsewhere.
        """
        return ()

    def check_constraint_values(self, dialect: DialectLike) -> tuple[Any, ...] | None:
        """Values for a ``CHECK (column IN (...))`` this type asks for on ``dialect``.

        Non-None only for ``Boolean`` and ``Enum`` with ``create_constraint=True`` on
        dialects without a native type for them. The values are driver values; render
        them with :meth:`literal_processor` of ``String`` or ``Integer``.
        """
        return None

    # -- expressions ----------------------------------------------------------------

    def coerce_compared_value(self, op: str, value: Any) -> TypeEngine[Any]:
        """The type for a literal ``value`` compared or combined with this type.

        The literal keeps this type when its natural type is of the same family
        (``Integer`` column vs ``5``) or unknown; otherwise it gets its natural type
        (``Integer`` column + ``1.5`` -> ``Float``, ``DateTime`` - ``timedelta`` ->
        ``Interval``).
        """
        literal_type = type_for_python_value(value)
        if isinstance(literal_type, NullType) or literal_type._affinity is self._affinity:
            return self
        return literal_type

    def result_type_for_operator(self, op: str, other: TypeEngine[Any]) -> TypeEngine[Any]:
        """The type of ``self <op> other`` for the arithmetic operators
        ``+ - * / // % ||``. Unknown combinations give ``NullType``; an unknown
        (``NullType``) operand gives the other operand's type.
        """
        if op not in ARITHMETIC_OPERATORS:
            return NULLTYPE
        other_base = other._operand_type()
        if isinstance(other_base, NullType):
            return self
        result = self._operate(op, other_base)
        return NULLTYPE if result is None else result

    def _operate(self, op: str, other: TypeEngine[Any]) -> TypeEngine[Any] | None:
        return None

    def _operand_type(self) -> TypeEngine[Any]:
        """The type whose family rules apply (a TypeDecorator's impl)."""
        return self

    # -- validation -----------------------------------------------------------------

    def validate_bind_value(self, value: Any) -> None:
        """Raise ``TypeError`` if this type can never bind ``value``. None is always OK."""
        if value is not None and not self._accepts(value):
            raise TypeError(self._rejection(value))

    def _accepts(self, value: Any) -> bool:
        return True

    def _rejection(self, value: Any) -> str:
        return (
            f"{type(self).__name__} cannot bind a value of type {type(value).__name__} "
            f"({_short_repr(value)})"
        )

    # -- identity -------------------------------------------------------------------

    @property
    def cache_key(self) -> Hashable:
        """``(class, parameters...)``: equal keys mean interchangeable types."""
        key: Hashable | None = self.__dict__.get("_cache_key")
        if key is None:
            key = self._compute_cache_key()
            self.__dict__["_cache_key"] = key
        return key

    def _compute_cache_key(self) -> Hashable:
        return (type(self), *(getattr(self, name) for name in self._cache_params))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TypeEngine):
            return NotImplemented
        return self.cache_key == other.cache_key

    def __hash__(self) -> int:
        return hash(self.cache_key)

    def copy(self) -> Self:
        """A shallow copy, to be adjusted before first use; its cache key is recomputed."""
        new = _copy.copy(self)
        new.__dict__.pop("_cache_key", None)
        return new

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self._repr_arguments())})"

    def _repr_arguments(self) -> list[str]:
        parts = []
        for parameter in inspect.signature(type(self).__init__).parameters.values():
            if parameter.name == "self" or not hasattr(self, parameter.name):
                continue
            value = getattr(self, parameter.name)
            if parameter.default is inspect.Parameter.empty:
                parts.append(repr(value))
            elif value != parameter.default:
                parts.append(f"{parameter.name}={value!r}")
        return parts


# -- NullType ------------------------------------------------------------------------


class NullType(TypeEngine[Any]):
    """The type of untyped things: ``text()`` columns, literals of unknown type.

    Values pass through unprocessed and are never rejected; it has no DDL.
    """

    def _ddl(self, dialect_name: str) -> str:
        raise exc.CompileError(
            "Can't generate DDL for NullType(); did you forget to specify a type on this Column?"
        )

    def _operate(self, op: str, other: TypeEngine[Any]) -> TypeEngine[Any] | None:
        return other


NULLTYPE = NullType()


# -- numbers -------------------------------------------------------------------------

_INTEGER_OPERATORS = frozenset({"+", "-", "*", "%", "//"})
_NUMERIC_OPERATORS = frozenset({"+", "-", "*", "/", "//", "%"})


class Integer(TypeEngine[int]):
    """INTEGER. Binds ``int`` (and ``bool``); no conversion on either driver.

    Objects that only implement ``__index__`` (numpy integers) are refused: sqlite3
    cannot bind them, and converting every integer would cost the hot path.
    """

    _python_type = int

    def _ddl(self, dialect_name: str) -> str:
        return "INTEGER"

    def _accepts(self, value: Any) -> bool:
        return isinstance(value, int)

    def _rejection(self, value: Any) -> str:
        message = super()._rejection(value)
        if hasattr(type(value), "__index__"):
            message += "; convert it with int() first"
        return message

    def _operate(self, op: str, other: TypeEngine[Any]) -> TypeEngine[Any] | None:
        if isinstance(other, Integer):
            if op == "/":
                return Numeric()
            if op in _INTEGER_OPERATORS:
                return _wider_integer(self, other)
        elif isinstance(other, Numeric):
            if op in _NUMERIC_OPERATORS:
                return _numeric_result(self, other)
        elif isinstance(other, Date):
            if op == "+":
                return Date()
        elif isinstance(other, Interval) and op == "*":
            return Interval()
        return None


class SmallInteger(Integer):
    """SMALLINT."""

    def _ddl(self, dialect_name: str) -> str:
        return "SMALLINT"


class BigInteger(Integer):
    """BIGINT."""

    def _ddl(self, dialect_name: str) -> str:
        return "BIGINT"


def _wider_integer(left: Integer, right: Integer) -> Integer:
    def rank(t: Integer) -> int:
        return 2 if isinstance(t, BigInteger) else 0 if isinstance(t, SmallInteger) else 1

    widest = max(rank(left), rank(right))
    return BigInteger() if widest == 2 else SmallInteger() if widest == 0 else Integer()


def _numeric_result(left: TypeEngine[Any], right: TypeEngine[Any]) -> TypeEngine[Any]:
    """Integer/Numeric/Float arithmetic: floats win, else Numeric without a scale."""
    if isinstance(left, Double) or isinstance(right, Double):
        return Double()
    if isinstance(left, Float) or isinstance(right, Float):
        return Float()
    numeric = left if isinstance(left, Numeric) else right
    assert isinstance(numeric, Numeric)
    return Numeric() if numeric.asdecimal else Numeric(asdecimal=False)


def _sqlite_bind_decimal(value: Any) -> Any:
    # sqlite3 cannot bind Decimal; its text form is exact.
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


def _bind_decimal_as_float(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


def _to_float(value: Any) -> Any:
    return None if value is None else float(value)


def _decimal_result_processor(scale: int | None) -> Processor:
    """int/float/str (SQLite's NUMERIC affinity returns any of them) -> Decimal."""
    if scale is None:

        def process(value: Any) -> Any:
            if value is None:
                return None
            if type(value) is float:
                # The shortest repr is the decimal the float was made from (<= 15 digits).
                return decimal.Decimal(repr(value))
            return decimal.Decimal(value)

        return process

    float_format = f".{scale}f"
    integer_suffix = "." + "0" * scale if scale > 0 else ""

    def process_scaled(value: Any) -> Any:
        if value is None:
            return None
        kind = type(value)
        if kind is float:
            return decimal.Decimal(format(value, float_format))
        if kind is int:
            return decimal.Decimal(f"{value}{integer_suffix}")
        return decimal.Decimal(value)

    return process_scaled


class Numeric(TypeEngine[_N]):
    """NUMERIC(precision, scale): exact decimals, returned as ``Decimal``
    (``float`` with ``asdecimal=False``).

    On SQLite, values go in as exact text but SQLite's NUMERIC affinity stores
    fractions as REAL: exact up to 15 significant digits, integers up to 2**63.
    Results are rounded to ``decimal_return_scale`` or ``scale`` when set.
    """

    _cache_params: ClassVar[tuple[str, ...]] = (
        "precision",
        "scale",
        "decimal_return_scale",
        "asdecimal",
    )

    @overload
    def __init__(
        self: Numeric[decimal.Decimal],
        precision: int | None = ...,
        scale: int | None = ...,
        decimal_return_scale: int | None = ...,
        asdecimal: Literal[True] = ...,
    ) -> None: ...

    @overload
    def __init__(
        self: Numeric[float],
        precision: int | None = ...,
        scale: int | None = ...,
        decimal_return_scale: int | None = ...,
        asdecimal: Literal[False] = ...,
    ) -> None: ...

    def __init__(
        self,
        precision: int | None = None,
        scale: int | None = None,
        decimal_return_scale: int | None = None,
        asdecimal: bool = True,
    ) -> None:
        self.precision = precision
        self.scale = scale
        self.decimal_return_scale = decimal_return_scale
        self.asdecimal = asdecimal

    @property
    def python_type(self) -> type:
        return decimal.Decimal if self.asdecimal else float

    def _ddl(self, dialect_name: str) -> str:
        if self.precision is None:
            return "NUMERIC"
        if self.scale is None:
            return f"NUMERIC({self.precision})"
        return f"NUMERIC({self.precision}, {self.scale})"

    def bind_processor(self, dialect: DialectLike) -> Processor | None:
        if _dialect_name(dialect) == "sqlite":
            return _sqlite_bind_decimal
        return None

    def result_processor(self, dialect: DialectLike) -> Processor | None:
        if _dialect_name(dialect) == "postgresql":
            return None if self.asdecimal else _to_float
        if self.asdecimal:
            scale = (
                self.decimal_return_scale if self.decimal_return_scale is not None else self.scale
            )
            return _decimal_result_processor(scale)
        return _to_float

    def _accepts(self, value: Any) -> bool:
        return isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool)

    def _operate(self, op: str, other: TypeEngine[Any]) -> TypeEngine[Any] | None:
        if isinstance(other, Integer | Numeric) and op in _NUMERIC_OPERATORS:
            return _numeric_result(self, other)
        if isinstance(other, Interval) and op == "*":
            return Interval()
        return None


class Float(Numeric[_N]):
    """FLOAT / FLOAT(precision): binary floating point, returned as ``float``
    (``Decimal`` with ``asdecimal=True``). Accepts ``Decimal`` values.

    SQLite stores NaN as NULL; PostgreSQL keeps it.
    """

    _cache_params = ("precision", "decimal_return_scale", "asdecimal")

    @overload
    def __init__(
        self: Float[float],
        precision: int | None = ...,
        asdecimal: Literal[False] = ...,
        decimal_return_scale: int | None = ...,
    ) -> None: ...

    @overload
    def __init__(
        self: Float[decimal.Decimal],
        precision: int | None = ...,
        asdecimal: Literal[True] = ...,
        decimal_return_scale: int | None = ...,
    ) -> None: ...

    def __init__(
        self,
        precision: int | None = None,
        asdecimal: bool = False,
        decimal_return_scale: int | None = None,
    ) -> None:
        self.precision = precision
        self.scale = None
        self.decimal_return_scale = decimal_return_scale
        self.asdecimal = asdecimal

    def _ddl(self, dialect_name: str) -> str:
        return "FLOAT" if self.precision is None else f"FLOAT({self.precision})"

    def bind_processor(self, dialect: DialectLike) -> Processor | None:
        # asyncpg converts Decimal through __float__; sqlite3 refuses it.
        if _dialect_name(dialect) == "sqlite":
            return _bind_decimal_as_float
        return None

    def result_processor(self, dialect: DialectLike) -> Processor | None:
        _dialect_name(dialect)
        if self.asdecimal:
            return _decimal_result_processor(self.decimal_return_scale)
        return None


class Double(Float[_N]):
    """DOUBLE PRECISION (PostgreSQL) / DOUBLE (SQLite)."""

    def _ddl(self, dialect_name: str) -> str:
        return "DOUBLE PRECISION" if dialect_name == "postgresql" else "DOUBLE"


# -- strings -------------------------------------------------------------------------


class String(TypeEngine[str]):
    """VARCHAR / VARCHAR(length), optionally with a COLLATE clause."""

    _python_type = str
    _cache_params: ClassVar[tuple[str, ...]] = ("length", "collation")

    def __init__(self, length: int | None = None, collation: str | None = None) -> None:
        self.length = length
        self.collation = collation

    def _ddl(self, dialect_name: str) -> str:
        base = "VARCHAR" if self.length is None else f"VARCHAR({self.length})"
        return base + self._collate(dialect_name)

    def _collate(self, dialect_name: str) -> str:
        if self.collation is None:
            return ""
        if dialect_name == "postgresql":
            # PostgreSQL collation names are case-sensitive ("C", "fr_FR"): always quote.
            return ' COLLATE "' + self.collation.replace('"', '""') + '"'
        return " COLLATE " + _quote_sqlite_identifier(self.collation)

    def _accepts(self, value: Any) -> bool:
        return isinstance(value, str)

    def _operate(self, op: str, other: TypeEngine[Any]) -> TypeEngine[Any] | None:
        if op == "||" or (op == "+" and isinstance(other, String)):
            return String()
        return None


class Text(String):
    """TEXT: unbounded text (``length`` is accepted and ignored in DDL)."""

    def _ddl(self, dialect_name: str) -> str:
        return "TEXT" + self._collate(dialect_name)


class Unicode(String):
    """The same as ``String``: both drivers speak Unicode."""


class UnicodeText(Text):
    """The same as ``Text``: both drivers speak Unicode."""


class LargeBinary(TypeEngine[bytes]):
    """BYTEA (PostgreSQL) / BLOB (SQLite). Binds bytes, bytearray, memoryview."""

    _python_type = bytes
    _cache_params = ("length",)

    def __init__(self, length: int | None = None) -> None:
        self.length = length

    def _ddl(self, dialect_name: str) -> str:
        return "BYTEA" if dialect_name == "postgresql" else "BLOB"

    def _accepts(self, value: Any) -> bool:
        return isinstance(value, bytes | bytearray | memoryview)

    def _operate(self, op: str, other: TypeEngine[Any]) -> TypeEngine[Any] | None:
        if op == "||" and isinstance(other, LargeBinary):
            return LargeBinary()
        return None


# -- booleans ------------------------------------------------------------------------


def _not_a_boolean(value: Any) -> Any:
    raise TypeError(f"Boolean cannot bind {_short_repr(value)}")


class Boolean(TypeEngine[bool]):
    """BOOLEAN; on SQLite stored as 0/1 and returned as ``bool``. Binds bool, 0 and 1.

    With ``create_constraint=True`` SQLite gets ``CHECK (column IN (0, 1))``
    (see :meth:`check_constraint_values`), named ``name`` if given.
    """

    _python_type = bool
    _cache_params = ("create_constraint", "name")

    def __init__(self, create_constraint: bool = False, name: str | None = None) -> None:
        self.create_constraint = create_constraint
        self.name = name

    def _ddl(self, dialect_name: str) -> str:
        return "BOOLEAN"

    def bind_processor(self, dialect: DialectLike) -> Processor | None:
        if _dialect_name(dialect) == "postgresql":
            # asyncpg's bool codec refuses 0/1; 1 == True, so the table maps both.
            return _Lookup({None: None, True: True, False: False}, _not_a_boolean).__getitem__
        return None

    def result_processor(self, dialect: DialectLike) -> Processor | None:
        if _dialect_name(dialect) == "sqlite":
            return _Lookup({None: None, 0: False, 1: True}, bool).__getitem__
        return None

    def check_constraint_values(self, dialect: DialectLike) -> tuple[Any, ...] | None:
        if self.create_constraint and _dialect_name(dialect) == "sqlite":
            return (0, 1)
        return None

    def _accepts(self, value: Any) -> bool:
        return value is True or value is False or (type(value) is int and value in (0, 1))


# -- dates and times -----------------------------------------------------------------


def _datetime_to_naive_utc(value: _dt.datetime) -> _dt.datetime:
    offset = value.utcoffset()
    if offset is None:
        return value.replace(tzinfo=None)
    return (value - offset).replace(tzinfo=None)


def _datetime_to_utc(value: _dt.datetime) -> _dt.datetime:
    offset = value.utcoffset()
    if offset is None:
        return value.replace(tzinfo=_UTC)
    if value.tzinfo is _UTC:
        return value
    return (value - offset).replace(tzinfo=_UTC)


def _bind_naive_datetime_pg(value: Any) -> Any:
    # asyncpg refuses aware datetimes for `timestamp without time zone`.
    if value is not None and value.tzinfo is not None:
        return _datetime_to_naive_utc(value)
    return value


def _bind_naive_datetime_sqlite(value: Any) -> Any:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = _datetime_to_naive_utc(value)
    return value.isoformat(" ", "microseconds")


def _bind_aware_datetime_sqlite(value: Any) -> Any:
    if value is None:
        return None
    return _datetime_to_utc(value).isoformat(" ", "microseconds")


def _result_naive_datetime_sqlite(value: Any) -> Any:
    if value is None:
        return None
    parsed = _dt.datetime.fromisoformat(value)
    if parsed.tzinfo is not None:
        return _datetime_to_naive_utc(parsed)
    return parsed


def _result_aware_datetime_sqlite(value: Any) -> Any:
    if value is None:
        return None
    return _datetime_to_utc(_dt.datetime.fromisoformat(value))


class DateTime(TypeEngine[_dt.datetime]):
    """TIMESTAMP [WITH TIME ZONE] (PostgreSQL) / DATETIME (SQLite).

    ``timezone=False``: aware values are converted to UTC and made naive.
    ``timezone=True``: naive values are taken as UTC; results are aware, in UTC.
    """

    _python_type = _dt.datetime
    _cache_params = ("timezone",)

    def __init__(self, timezone: bool = False) -> None:
        self.timezone = timezone

    def _ddl(self, dialect_name: str) -> str:
        if dialect_name == "postgresql":
            return "TIMESTAMP WITH TIME ZONE" if self.timezone else "TIMESTAMP"
        return "DATETIME"

    def bind_processor(self, dialect: DialectLike) -> Processor | None:
        if _dialect_name(dialect) == "postgresql":
            # For timestamptz asyncpg itself takes naive values as UTC.
            return None if self.timezone else _bind_naive_datetime_pg
        return _bind_aware_datetime_sqlite if self.timezone else _bind_naive_datetime_sqlite

    def result_processor(self, dialect: DialectLike) -> Processor | None:
        if _dialect_name(dialect) == "postgresql":
            return None
        return _result_aware_datetime_sqlite if self.timezone else _result_naive_datetime_sqlite

    def _accepts(self, value: Any) -> bool:
        return isinstance(value, _dt.datetime)

    def _rejection(self, value: Any) -> str:
        message = super()._rejection(value)
        if isinstance(value, _dt.date):
            message += "; a date is not a datetime: pass datetime.datetime.combine(d, time())"
        return message

    def _operate(self, op: str, other: TypeEngine[Any]) -> TypeEngine[Any] | None:
        if isinstance(other, Interval) and op in ("+", "-"):
            return self
        if isinstance(other, DateTime | Date) and op == "-":
            return Interval()
        return None


def _bind_date_sqlite(value: Any) -> Any:
    return None if value is None else value.isoformat()


def _result_date_sqlite(value: Any) -> Any:
    return None if value is None else _dt.date.fromisoformat(value)


class Date(TypeEngine[_dt.date]):
    """DATE; on SQLite ``YYYY-MM-DD`` text. A ``datetime`` is not accepted."""

    _python_type = _dt.date

    def _ddl(self, dialect_name: str) -> str:
        return "DATE"

    def bind_processor(self, dialect: DialectLike) -> Processor | None:
        return _bind_date_sqlite if _dialect_name(dialect) == "sqlite" else None

    def result_processor(self, dialect: DialectLike) -> Processor | None:
        return _result_date_sqlite if _dialect_name(dialect) == "sqlite" else None

    def _accepts(self, value: Any) -> bool:
        return isinstance(value, _dt.date) and not isinstance(value, _dt.datetime)

    def _rejection(self, value: Any) -> str:
        message = super()._rejection(value)
        if isinstance(value, _dt.datetime):
            message += "; a datetime is not a date: pass value.date()"
        return message

    def _operate(self, op: str, other: TypeEngine[Any]) -> TypeEngine[Any] | None:
        if isinstance(other, Integer) and op in ("+", "-"):
            return Date()
        if isinstance(other, Interval) and op in ("+", "-"):
            return DateTime()
        if isinstance(other, Date) and op == "-":
            return Integer()
        if isinstance(other, DateTime) and op == "-":
            return Interval()
        if isinstance(other, Time) and op == "+":
            return DateTime(timezone=other.timezone)
        return None


_TIME_BASE_DAY = _dt.date(2000, 1, 2)


def _time_to_naive_utc(value: _dt.time) -> _dt.time:
    offset = value.utcoffset()
    naive = value.replace(tzinfo=None)
    if offset is None:
        return naive
    return (_dt.datetime.combine(_TIME_BASE_DAY, naive) - offset).time()


def _bind_naive_time_pg(value: Any) -> Any:
    if value is not None and value.tzinfo is not None:
        return _time_to_naive_utc(value)
    return value


def _bind_aware_time_pg(value: Any) -> Any:
    # asyncpg's timetz codec needs an offset.
    if value is not None and value.utcoffset() is None:
        return value.replace(tzinfo=_UTC)
    return value


def _bind_naive_time_sqlite(value: Any) -> Any:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = _time_to_naive_utc(value)
    return value.isoformat("microseconds")


def _bind_aware_time_sqlite(value: Any) -> Any:
    if value is None:
        return None
    if value.utcoffset() is None:
        value = value.replace(tzinfo=_UTC)
    return value.isoformat("microseconds")


def _result_naive_time_sqlite(value: Any) -> Any:
    return None if value is None else _dt.time.fromisoformat(value)


def _result_aware_time_sqlite(value: Any) -> Any:
    if value is None:
        return None
    parsed = _dt.time.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=_UTC)


class Time(TypeEngine[_dt.time]):
    """TIME [WITH TIME ZONE]; on SQLite ``HH:MM:SS.ffffff[+HH:MM]`` text.

    ``timezone=False``: aware values are converted to UTC and made naive.
    ``timezone=True``: naive values are taken as UTC; aware ones keep their offset.
    """

    _python_type = _dt.time
    _cache_params = ("timezone",)

    def __init__(self, timezone: bool = False) -> None:
        self.timezone = timezone

    def _ddl(self, dialect_name: str) -> str:
        if dialect_name == "postgresql":
            return "TIME WITH TIME ZONE" if self.timezone else "TIME"
        return "TIME"

    def bind_processor(self, dialect: DialectLike) -> Processor | None:
        if _dialect_name(dialect) == "postgresql":
            return _bind_aware_time_pg if self.timezone else _bind_naive_time_pg
        return _bind_aware_time_sqlite if self.timezone else _bind_naive_time_sqlite

    def result_processor(self, dialect: DialectLike) -> Processor | None:
        if _dialect_name(dialect) == "postgresql":
            return None
        return _result_aware_time_sqlite if self.timezone else _result_naive_time_sqlite

    def _accepts(self, value: Any) -> bool:
        return isinstance(value, _dt.time)

    def _operate(self, op: str, other: TypeEngine[Any]) -> TypeEngine[Any] | None:
        if isinstance(other, Interval) and op in ("+", "-"):
            return self
        if isinstance(other, Time) and op == "-":
            return Interval()
        if isinstance(other, Date) and op == "+":
            return DateTime(timezone=self.timezone)
        return None


def _bind_interval_sqlite(value: Any) -> Any:
    # Floor division of timedeltas is exact integer arithmetic.
    return None if value is None else value // _ONE_MICROSECOND


def _result_interval_sqlite(value: Any) -> Any:
    return None if value is None else _dt.timedelta(microseconds=value)


class Interval(TypeEngine[_dt.timedelta]):
    """INTERVAL (PostgreSQL); on SQLite an INTEGER count of microseconds, which is
    exact and sorts correctly but only spans +-292 years."""

    _python_type = _dt.timedelta

    def _ddl(self, dialect_name: str) -> str:
        return "INTERVAL" if dialect_name == "postgresql" else "INTEGER"

    def bind_processor(self, dialect: DialectLike) -> Processor | None:
        return _bind_interval_sqlite if _dialect_name(dialect) == "sqlite" else None

    def result_processor(self, dialect: DialectLike) -> Processor | None:
        return _result_interval_sqlite if _dialect_name(dialect) == "sqlite" else None

    def _accepts(self, value: Any) -> bool:
        return isinstance(value, _dt.timedelta)

    def _operate(self, op: str, other: TypeEngine[Any]) -> TypeEngine[Any] | None:
        if op in ("+", "-") and isinstance(other, Interval):
            return Interval()
        if op == "+":
            if isinstance(other, DateTime | Time):
                return other
            if isinstance(other, Date):
                return DateTime()
        if op in ("*", "/") and isinstance(other, Integer | Numeric):
            return Interval()
        return None


# -- UUID ----------------------------------------------------------------------------


def _bind_uuid_hex(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        return _uuid.UUID(value).hex
    return value.hex


def _result_uuid_from_hex(value: Any) -> Any:
    return None if value is None else _uuid.UUID(value)


def _result_uuid_str_from_hex(value: Any) -> Any:
    return None if value is None else str(_uuid.UUID(value))


def _result_uuid_str(value: Any) -> Any:
    return None if value is None else str(value)


class Uuid(TypeEngine[_U]):
    """UUID (PostgreSQL) / CHAR(32) of hex digits (SQLite, or ``native_uuid=False``).

    Returns ``uuid.UUID``, or the canonical hyphenated ``str`` with ``as_uuid=False``.
    Binds a UUID or any string ``uuid.UUID()`` parses, in both modes.
    """

    _python_type = _uuid.UUID
    _cache_params = ("as_uuid", "native_uuid")

    @overload
    def __init__(
        self: Uuid[_uuid.UUID], as_uuid: Literal[True] = ..., native_uuid: bool = ...
    ) -> None: ...

    @overload
    def __init__(
        self: Uuid[str], as_uuid: Literal[False] = ..., native_uuid: bool = ...
    ) -> None: ...

    def __init__(self, as_uuid: bool = True, native_uuid: bool = True) -> None:
        self.as_uuid = as_uuid
        self.native_uuid = native_uuid

    @property
    def python_type(self) -> type:
        return _uuid.UUID if self.as_uuid else str

    def _native(self, dialect: DialectLike) -> bool:
        return self.native_uuid and _dialect_name(dialect) == "postgresql"

    def _ddl(self, dialect_name: str) -> str:
        return "UUID" if self.native_uuid and dialect_name == "postgresql" else "CHAR(32)"

    def bind_processor(self, dialect: DialectLike) -> Processor | None:
        # asyncpg's uuid codec takes UUID objects and strings alike.
        return None if self._native(dialect) else _bind_uuid_hex

    def result_processor(self, dialect: DialectLike) -> Processor | None:
        if self._native(dialect):
            return None if self.as_uuid else _result_uuid_str
        return _result_uuid_from_hex if self.as_uuid else _result_uuid_str_from_hex

    def _accepts(self, value: Any) -> bool:
        if isinstance(value, _uuid.UUID):
            return True
        if isinstance(value, str):
            try:
                _uuid.UUID(value)
            except ValueError:
                return False
            return True
        return False

    def coerce_compared_value(self, op: str, value: Any) -> TypeEngine[Any]:
        if isinstance(value, str):
            return self
        return super().coerce_compared_value(op, value)


# -- JSON ----------------------------------------------------------------------------


class _JSONNull(_enum.Enum):
    NULL = "JSON.NULL"

    def __repr__(self) -> str:
        return "JSON.NULL"


_JSON_TOP_LEVEL = (dict, list, tuple, str, int, float)


class JSON(TypeEngine[Any]):
    """JSONB (PostgreSQL) / JSON (SQLite): documents serialized with the dialect's
    ``json_serializer`` and parsed with its ``json_deserializer``.

    ``none_as_null=False`` (the default) stores Python ``None`` as the JSON document
    ``null``; ``True`` stores it as SQL NULL. ``JSON.NULL`` always means the document
    ``null``. Both read back as ``None``.

    PostgreSQL's JSONB drops duplicate keys and normalizes numbers (``1.0`` reads
    back as ``1``). On SQLite a top-level number document goes through the column's
    numeric affinity: it reads back as int or float, and integers beyond 64 bits lose
    precision. Only the top level of a value is checked by ``validate_bind_value``.
    """

    NULL: ClassVar[_JSONNull] = _JSONNull.NULL
    hashable = False
    _python_type = dict
    _cache_params = ("none_as_null",)

    def __init__(self, none_as_null: bool = False) -> None:
        self.none_as_null = none_as_null
        self.should_evaluate_none = not none_as_null

    def _ddl(self, dialect_name: str) -> str:
        return "JSONB" if dialect_name == "postgresql" else "JSON"

    def bind_processor(self, dialect: DialectLike) -> Processor | None:
        _dialect_name(dialect)
        dumps = dialect.json_serializer or json.dumps
        python_none = None if self.none_as_null else "null"
        json_null = _JSONNull.NULL

        def process(value: Any) -> Any:
            if value is None:
                return python_none
            if value is json_null:
                return "null"
            return dumps(value)

        return process

    def result_processor(self, dialect: DialectLike) -> Processor | None:
        loads = dialect.json_deserializer or json.loads
        if _dialect_name(dialect) == "postgresql":

            def process(value: Any) -> Any:
                return None if value is None else loads(value)

            return process

        def process_sqlite(value: Any) -> Any:
            if value is None:
                return None
            if type(value) is str:
                return loads(value)
            return value  # a top-level number the column's affinity converted

        return process_sqlite

    def _accepts(self, value: Any) -> bool:
        return isinstance(value, _JSON_TOP_LEVEL) or value is _JSONNull.NULL

    def coerce_compared_value(self, op: str, value: Any) -> TypeEngine[Any]:
        return self

    def _operate(self, op: str, other: TypeEngine[Any]) -> TypeEngine[Any] | None:
        if op == "||" and isinstance(other, JSON):
            return self
        if op == "-" and isinstance(other, String | Integer):
            return self
        return None


# -- Enum ----------------------------------------------------------------------------


class Enum(String):
    """A fixed set of strings: the members of a Python ``enum.Enum`` class, or the
    strings given.

    With an enum class the database value of a member is its ``name`` (or what
    ``values_callable(enum_class)`` returns, in member order), and results come back
    as members. On PostgreSQL with ``native_enum=True`` the column uses the named
    type ``name`` (default: the enum class name lowercased), which must be created
    with ``CREATE TYPE <compile_ddl()> AS ENUM (<enums>)``; elsewhere it is
    ``VARCHAR(length)``, ``length`` defaulting to the longest value, with
    ``CHECK (column IN (<enums>))`` when ``create_constraint=True``.

    Binds members of the class or the database value strings; anything else is
    rejected before it reaches the database.
    """

    _cache_params = ("enum_class", "enums", "name", "native_enum", "create_constraint", "length")

    def __init__(
        self,
        *enums: Any,
        name: str | None = None,
        native_enum: bool = True,
        create_constraint: bool = False,
        length: int | None = None,
        values_callable: Callable[[Any], Iterable[str]] | None = None,
    ) -> None:
        enum_class: type[_enum.Enum] | None = None
        if len(enums) == 1 and isinstance(enums[0], type):
            if not issubclass(enums[0], _enum.Enum):
                raise exc.ArgumentError(
                    f"Enum() takes an enum.Enum subclass or strings, not the class "
                    f"{enums[0].__name__}"
                )
            enum_class = enums[0]
        elif not all(isinstance(value, str) for value in enums):
            raise exc.ArgumentError(
                f"Enum() takes one enum.Enum subclass or any number of strings, not {enums!r}"
            )
        if values_callable is not None and enum_class is None:
            raise exc.ArgumentError("Enum(values_callable=...) needs an enum.Enum subclass")

        self.enum_class = enum_class
        self.values_callable = values_callable
        members: list[Any]
        if enum_class is not None:
            members = list(enum_class)  # iteration leaves out aliases
            if values_callable is not None:
                values = [str(value) for value in values_callable(enum_class)]
                if len(values) != len(members):
                    raise exc.ArgumentError(
                        f"values_callable returned {len(values)} values for "
                        f"{len(members)} members of {enum_class.__name__}"
                    )
            else:
                values = [member.name for member in members]
        else:
            values = list(enums)
            members = list(enums)
        self.enums: tuple[str, ...] = tuple(values)
        self._members = tuple(members)

        longest = max((len(value) for value in values), default=0)
        if length is not None and length < longest:
            raise exc.ArgumentError(
                f"Enum length={length} is shorter than its longest value ({longest} characters)"
            )
        super().__init__(length if length is not None else (longest or None))
        if name is None and enum_class is not None:
            name = enum_class.__name__.lower()
        self.name = name
        self.native_enum = native_enum
        self.create_constraint = create_constraint

        # Members and database strings both bind to the database string.
        to_database: dict[Any, Any] = {None: None}
        to_database.update(zip(values, values, strict=True))
        to_database.update(zip(members, values, strict=True))
        self._to_database = to_database
        self._to_member: dict[Any, Any] = {None: None, **dict(zip(values, members, strict=True))}

    @property
    def python_type(self) -> type:
        return self.enum_class if self.enum_class is not None else str

    def _native(self, dialect_name: str) -> bool:
        return self.native_enum and dialect_name == "postgresql"

    def _ddl(self, dialect_name: str) -> str:
        if not self._native(dialect_name):
            return super()._ddl(dialect_name)
        if self.name is None:
            raise exc.CompileError(
                "PostgreSQL ENUM type requires a name: pass Enum(..., name='...') "
                "or native_enum=False"
            )
        return _quote_pg_identifier(self.name)

    def named_types(self, dialect: DialectLike) -> tuple[Enum, ...]:
        return (self,) if self._native(_dialect_name(dialect)) else ()

    def check_constraint_values(self, dialect: DialectLike) -> tuple[Any, ...] | None:
        if self.create_constraint and not self._native(_dialect_name(dialect)):
            return self.enums
        return None

    def bind_processor(self, dialect: DialectLike) -> Processor | None:
        if self.enum_class is None:
            return None
        return _Lookup(self._to_database, self._unknown_value).__getitem__

    def result_processor(self, dialect: DialectLike) -> Processor | None:
        if self.enum_class is None:
            return None
        return _Lookup(self._to_member, self._unknown_database_value).__getitem__

    def _unknown_value(self, value: Any) -> Any:
        raise LookupError(self._rejection(value))

    def _unknown_database_value(self, value: Any) -> Any:
        raise LookupError(
            f"{value!r} read from the database is not among the values of {self!r}: "
            f"{', '.join(map(repr, self.enums))}"
        )

    def _accepts(self, value: Any) -> bool:
        try:
            return value in self._to_database
        except TypeError:  # unhashable
            return False

    def _rejection(self, value: Any) -> str:
        expected = ", ".join(map(repr, self.enums))
        if self.enum_class is not None:
            expected = f"a {self.enum_class.__name__} member or one of {expected}"
        else:
            expected = f"one of {expected}"
        return f"{self!r} cannot bind {_short_repr(value)}: expected {expected}"

    def _repr_arguments(self) -> list[str]:
        if self.enum_class is not None:
            parts = [self.enum_class.__name__]
            if self.name != self.enum_class.__name__.lower():
                parts.append(f"name={self.name!r}")
        else:
            parts = [repr(value) for value in self.enums]
            if self.name is not None:
                parts.append(f"name={self.name!r}")
        if not self.native_enum:
            parts.append("native_enum=False")
        if self.create_constraint:
            parts.append("create_constraint=True")
        return parts


# -- ARRAY ---------------------------------------------------------------------------


def _map_array(process: Processor, depth: int | None, as_tuple: bool) -> Processor:
    """Apply ``process`` to the elements of a (nested) array.

    ``depth`` is the number of list levels; None means "every list is a level".
    """
    container: Callable[[Iterable[Any]], Any] = tuple if as_tuple else list

    def walk(value: Any, level: int) -> Any:
        if value is None:
            return process(None)
        if (depth is None or level < depth) and isinstance(value, list | tuple):
            return container([walk(element, level + 1) for element in value])
        return process(value)

    def convert(value: Any) -> Any:
        return None if value is None else walk(value, 0)

    return convert


class ARRAY(TypeEngine[Any]):
    """``item_type[]`` on PostgreSQL (not available on SQLite).

    ``dimensions`` fixes the nesting depth; without it, every nested list or tuple
    counts as a dimension (set it for arrays of JSON). ``as_tuple=True`` returns
    tuples, which are hashable.
    """

    _python_type = list
    _cache_params = ("item_type", "as_tuple", "dimensions")

    def __init__(
        self,
        item_type: TypeEngine[Any] | type[TypeEngine[Any]],
        as_tuple: bool = False,
        dimensions: int | None = None,
    ) -> None:
        item = to_instance(item_type)
        if isinstance(item._operand_type(), ARRAY):
            raise exc.ArgumentError(
                "Do not nest ARRAY types; ARRAY(item_type, dimensions=n) holds "
                "n-dimensional arrays of item_type"
            )
        self.item_type = item
        self.as_tuple = as_tuple
        self.dimensions = dimensions
        self.hashable = as_tuple

    @property
    def python_type(self) -> type:
        return tuple if self.as_tuple else list

    def _depth(self) -> int | None:
        if self.dimensions is not None:
            return self.dimensions
        return None if self.item_type.hashable else 1

    def _ddl(self, dialect_name: str) -> str:
        raise exc.CompileError(f"{self!r}: ARRAY is supported on PostgreSQL only")

    def compile_ddl(self, dialect: DialectLike) -> str:
        if _dialect_name(dialect) != "postgresql":
            return self._ddl(dialect.name)
        return self.item_type.compile_ddl(dialect) + "[]" * (self.dimensions or 1)

    def named_types(self, dialect: DialectLike) -> tuple[Enum, ...]:
        return self.item_type.named_types(dialect)

    def bind_processor(self, dialect: DialectLike) -> Processor | None:
        if _dialect_name(dialect) != "postgresql":
            self._ddl(dialect.name)
        item_process = self.item_type.bind_processor(dialect)
        if item_process is None:
            return None
        return _map_array(item_process, self._depth(), as_tuple=False)

    def result_processor(self, dialect: DialectLike) -> Processor | None:
        if _dialect_name(dialect) != "postgresql":
            self._ddl(dialect.name)
        item_process = self.item_type.result_processor(dialect)
        if item_process is None and not self.as_tuple:
            return None
        return _map_array(item_process or _identity, self._depth(), as_tuple=self.as_tuple)

    def literal_processor(self, dialect: DialectLike) -> Callable[[Any], str]:
        item_literal = self.item_type.literal_processor(dialect)
        ddl = self.compile_ddl(dialect)
        depth = self._depth()

        def render(value: Any, level: int) -> str:
            if (depth is None or level < depth) and isinstance(value, list | tuple):
                return "ARRAY[" + ", ".join(render(v, level + 1) for v in value) + "]"
            return item_literal(value)

        def process(value: Any) -> str:
            if value is None:
                return "NULL"
            return f"CAST({render(value, 0)} AS {ddl})"

        return process

    def _accepts(self, value: Any) -> bool:
        if not isinstance(value, list | tuple):
            return False
        depth = self._depth()

        def check(element: Any, level: int) -> None:
            if (depth is None or level < depth) and isinstance(element, list | tuple):
                for inner in element:
                    check(inner, level + 1)
            else:
                self.item_type.validate_bind_value(element)

        try:
            check(value, 0)
        except TypeError:
            return False
        return True

    def _rejection(self, value: Any) -> str:
        if not isinstance(value, list | tuple):
            return super()._rejection(value)
        return f"{self!r} cannot bind {_short_repr(value)}: an element is not a valid item"

    def coerce_compared_value(self, op: str, value: Any) -> TypeEngine[Any]:
        if isinstance(value, list | tuple):
            return self
        return self.item_type.coerce_compared_value(op, value)

    def _operate(self, op: str, other: TypeEngine[Any]) -> TypeEngine[Any] | None:
        if op == "||":
            return self
        return None


def _identity(value: Any) -> Any:
    return value


# -- TypeDecorator -------------------------------------------------------------------


class TypeDecorator(TypeEngine[_T]):
    """The base for user types that wrap an existing type.

    Subclasses set ``impl`` (a type class or instance) and usually ``cache_ok =
    True``; the constructor's arguments build the impl (``MyType(50)`` makes
    ``impl = String(50)`` when ``impl = String``). Override
    ``process_bind_param`` / ``process_result_value`` to convert values, and
    ``load_dialect_impl`` to pick a different impl per dialect.

    ``cache_ok = True`` promises that the instance attributes (other than ``impl``)
    identify the type: they become part of ``cache_key`` and must be hashable.
    Otherwise each instance is its own cache key, so compiled SQL is shared only
    between statements using the very same instance.

    Values are not validated: a decorator exists to accept values its impl would
    not. Override ``validate_bind_value`` to add checks.
    """

    impl: TypeEngine[Any] | type[TypeEngine[Any]]
    cache_ok: ClassVar[bool | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        declared = getattr(type(self), "impl", None)
        if declared is None:
            raise exc.ArgumentError(
                f"TypeDecorator subclass {type(self).__name__} needs a class-level 'impl' "
                "naming the type it decorates, e.g. impl = String"
            )
        self.impl = to_instance(declared, *args, **kwargs)
        self.hashable = type(self).hashable and self.impl.hashable

    @property
    def impl_instance(self) -> TypeEngine[Any]:
        """The decorated type instance."""
        impl = self.impl
        assert isinstance(impl, TypeEngine)
        return impl

    @property
    def python_type(self) -> type:
        return self.impl_instance.python_type

    def load_dialect_impl(self, dialect: DialectLike) -> TypeEngine[Any]:
        """The type that stores values on ``dialect``; by default ``impl``."""
        return self.impl_instance

    def process_bind_param(self, value: Any, dialect: DialectLike) -> Any:
        """Python value -> a value the impl binds. Receives None too."""
        return value

    def process_result_value(self, value: Any, dialect: DialectLike) -> Any:
        """The impl's result -> the Python value. Receives None too."""
        return value

    def _overrides(self, name: str) -> bool:
        return getattr(type(self), name) is not getattr(TypeDecorator, name)

    def bind_processor(self, dialect: DialectLike) -> Processor | None:
        impl_process = self.load_dialect_impl(dialect).bind_processor(dialect)
        if not self._overrides("process_bind_param"):
            return impl_process
        process_param = self.process_bind_param
        if impl_process is None:

            def process(value: Any) -> Any:
                return process_param(value, dialect)

            return process

        def process_chained(value: Any) -> Any:
            return impl_process(process_param(value, dialect))

        return process_chained

    def result_processor(self, dialect: DialectLike) -> Processor | None:
        impl_process = self.load_dialect_impl(dialect).result_processor(dialect)
        if not self._overrides("process_result_value"):
            return impl_process
        process_value = self.process_result_value
        if impl_process is None:

            def process(value: Any) -> Any:
                return process_value(value, dialect)

            return process

        def process_chained(value: Any) -> Any:
            return process_value(impl_process(value), dialect)

        return process_chained

    def literal_processor(self, dialect: DialectLike) -> Callable[[Any], str]:
        impl_literal = self.load_dialect_impl(dialect).literal_processor(dialect)
        process_param = self.process_bind_param

        def process(value: Any) -> str:
            return impl_literal(process_param(value, dialect))

        return process

    def compile_ddl(self, dialect: DialectLike) -> str:
        return self.load_dialect_impl(dialect).compile_ddl(dialect)

    def named_types(self, dialect: DialectLike) -> tuple[Enum, ...]:
        return self.load_dialect_impl(dialect).named_types(dialect)

    def check_constraint_values(self, dialect: DialectLike) -> tuple[Any, ...] | None:
        return self.load_dialect_impl(dialect).check_constraint_values(dialect)

    def coerce_compared_value(self, op: str, value: Any) -> TypeEngine[Any]:
        """Literals compared with a decorated column go through this type too."""
        return self

    def result_type_for_operator(self, op: str, other: TypeEngine[Any]) -> TypeEngine[Any]:
        impl = self.impl_instance
        result = impl.result_type_for_operator(op, other)
        # Arithmetic that keeps the impl's type keeps the decoration (and processing).
        return self if result == impl else result

    def _operand_type(self) -> TypeEngine[Any]:
        return self.impl_instance._operand_type()

    def validate_bind_value(self, value: Any) -> None:
        return None

    def _compute_cache_key(self) -> Hashable:
        if self.cache_ok is not True:
            return (type(self), _IdentityKey(self))
        attributes = tuple(
            sorted(
                (name, value)
                for name, value in vars(self).items()
                if name not in ("impl", "hashable") and not name.startswith("_")
            )
        )
        key = (type(self), self.impl_instance.cache_key, attributes)
        try:
            hash(key)
        except TypeError as error:
            raise exc.ArgumentError(
                f"{type(self).__name__} sets cache_ok = True but its attributes are not "
                f"hashable ({error}); make them hashable or set cache_ok = False"
            ) from None
        return key

    def _repr_arguments(self) -> list[str]:
        return self.impl_instance._repr_arguments()


# -- literals ------------------------------------------------------------------------


def _quote_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _render_literal_common(value: Any) -> str | None:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return _quote_string(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(int(value))
    return None


def _render_literal_postgresql(value: Any) -> str:
    text = _render_literal_common(value)
    if text is not None:
        return text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            repr(value) if value == value and abs(value) != float("inf") else _quote_pg_float(value)
        )
    if isinstance(value, decimal.Decimal):
        return str(value) if value.is_finite() else _quote_string(str(value))
    if isinstance(value, bytes | bytearray | memoryview):
        return _quote_string("\\x" + bytes(value).hex())
    if isinstance(value, _dt.date | _dt.time):
        return _quote_string(value.isoformat())
    if isinstance(value, _dt.timedelta):
        return _quote_string(
            f"{value.days} days {value.seconds} seconds {value.microseconds} microseconds"
        )
    if isinstance(value, _uuid.UUID):
        return _quote_string(str(value))
    raise exc.CompileError(f"Can't render {_short_repr(value)} as a PostgreSQL literal")


def _quote_pg_float(value: float) -> str:
    if value != value:
        return "'NaN'"
    return "'Infinity'" if value > 0 else "'-Infinity'"


def _render_literal_sqlite(value: Any) -> str:
    text = _render_literal_common(value)
    if text is not None:
        return text
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if value != value:
            return "NULL"  # SQLite has no NaN
        if abs(value) == float("inf"):
            return "9e999" if value > 0 else "-9e999"
        return repr(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "X'" + bytes(value).hex() + "'"
    raise exc.CompileError(f"Can't render {_short_repr(value)} as a SQLite literal")


# -- helpers -------------------------------------------------------------------------


def to_instance(
    type_or_class: TypeEngine[Any] | type[TypeEngine[Any]] | None, *args: Any, **kwargs: Any
) -> TypeEngine[Any]:
    """``Integer`` or ``Integer()`` -> an instance; ``None`` -> ``NullType()``.

    A class is called with ``args``/``kwargs``; an instance is returned as is.
    """
    if type_or_class is None:
        return NULLTYPE
    if isinstance(type_or_class, type):
        if not issubclass(type_or_class, TypeEngine):
            raise exc.ArgumentError(f"{type_or_class!r} is not a type (a TypeEngine subclass)")
        return type_or_class(*args, **kwargs)
    if not isinstance(type_or_class, TypeEngine):
        raise exc.ArgumentError(f"{type_or_class!r} is not a type (a TypeEngine instance)")
    return type_or_class


_INT32 = 2**31
_BOOLEAN = Boolean()
_INTEGER = Integer()
_BIGINTEGER = BigInteger()
_FLOAT: Float[float] = Float()
_NUMERIC: Numeric[decimal.Decimal] = Numeric()
_STRING = String()
_DATE = Date()
_DATETIME = DateTime()
_DATETIME_TZ = DateTime(timezone=True)
_TIME = Time()
_TIME_TZ = Time(timezone=True)
_INTERVAL = Interval()
_LARGEBINARY = LargeBinary()
_UUID: Uuid[_uuid.UUID] = Uuid()
_JSON = JSON()

_TYPE_BY_EXACT_CLASS: dict[type, TypeEngine[Any]] = {
    type(None): NULLTYPE,
    bool: _BOOLEAN,
    float: _FLOAT,
    decimal.Decimal: _NUMERIC,
    str: _STRING,
    _dt.date: _DATE,
    _dt.timedelta: _INTERVAL,
    bytes: _LARGEBINARY,
    bytearray: _LARGEBINARY,
    memoryview: _LARGEBINARY,
    _uuid.UUID: _UUID,
    dict: _JSON,
    list: _JSON,
}


@functools.lru_cache(maxsize=256)
def _enum_type_for(enum_class: type[_enum.Enum]) -> Enum:
    return Enum(enum_class)


def type_for_python_value(value: Any) -> TypeEngine[Any]:
    """The type of a literal: ``5`` -> ``Integer()``, ``"x"`` -> ``String()``,
    an aware datetime -> ``DateTime(timezone=True)``, an enum member -> ``Enum`` of
    its class, dict/list -> ``JSON()``; unknown (and None) -> ``NullType()``.

    The returned instances are shared; types are immutable.
    """
    kind = type(value)
    found = _TYPE_BY_EXACT_CLASS.get(kind)
    if found is not None:
        return found
    if kind is int:
        return _INTEGER if -_INT32 <= value < _INT32 else _BIGINTEGER
    if kind is _dt.datetime:
        return _DATETIME if value.tzinfo is None else _DATETIME_TZ
    if kind is _dt.time:
        return _TIME if value.tzinfo is None else _TIME_TZ
    # Subclasses, in an order where the more specific class wins.
    if isinstance(value, _JSONNull):
        return _JSON
    if isinstance(value, _enum.Enum):
        return _enum_type_for(type(value))
    if isinstance(value, bool):
        return _BOOLEAN
    if isinstance(value, int):
        return _INTEGER if -_INT32 <= value < _INT32 else _BIGINTEGER
    if isinstance(value, _dt.datetime):
        return _DATETIME if value.tzinfo is None else _DATETIME_TZ
    for cls, type_ in _TYPE_BY_EXACT_CLASS.items():
        if cls is not type(None) and isinstance(value, cls):
            return type_
    if isinstance(value, _dt.time):
        return _TIME if value.tzinfo is None else _TIME_TZ
    return NULLTYPE
