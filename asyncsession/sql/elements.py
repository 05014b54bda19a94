"""SQL expression nodes: columns, bound values, operators, functions, text.

How this works:

* Every node is immutable once built and slotted. Methods that "change" a
  statement return a copy, so a node may be shared between statements and
  cached safely.
* Every node knows its *cache key*: ``node._ck(binds)`` returns a hashable
  tuple describing the node's shape and appends the node's bound values to
  ``binds`` in one fixed traversal order. Two statements with equal keys
  compile to the same SQL; only the extracted values differ. The compiler
  records, for each placeholder, the index of its value in that list, so a
  cache hit never compiles again.
* Values never go into SQL text. A Python value in an expression becomes a
  :class:`BindParameter` typed after the expression it meets, and is checked
  against that type when the expression is built, so a bad value fails here
  and not half way through a transaction.
* Schema objects (tables, columns) take part in cache keys through a serial
  number that is never reused, so a collected table can never alias a new one.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from asyncsession import exc
from asyncsession.sql import operators as ops
from asyncsession.sql.types import (
    ARRAY,
    JSON,
    Boolean,
    Integer,
    NullType,
    String,
    TypeEngine,
    to_instance,
    type_for_python_value,
)

if TYPE_CHECKING:
    from asyncsession.sql.selectable import FromClause

_serials = itertools.count(1)


def next_serial() -> int:
    """A process-wide unique number for cache keys of long-lived objects."""
    return next(_serials)


_BOOLEAN = Boolean()
_INTEGER = Integer()
_NULLTYPE = NullType()


class ClauseElement:
    """The root of every SQL construct."""

    __slots__ = ()
    __visit_name__: ClassVar[str] = "clause"
    is_selectable: ClassVar[bool] = False

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        raise NotImplementedError(type(self).__name__)

    def get_children(self) -> Iterable[ClauseElement]:
        """The direct sub-elements, for traversals that must see every node."""
        return ()

    def compile(self, dialect: Any = None) -> Any:
        """Compile for ``dialect`` (default: a generic dialect with ``:name`` parameters)."""
        from asyncsession.sql.compiler import compile_for_display

        return compile_for_display(self, dialect)

    def __str__(self) -> str:
        return str(self.compile().sql)

    def __bool__(self) -> bool:
        raise TypeError(
            f"Boolean value of this clause ({type(self).__name__}) is not defined; "
            "use and_()/or_() to combine conditions, and 'is None' checks on Python values"
        )


Hashable_ = Any  # cache keys are nested tuples of hashables


def _compare_key(obj: Any) -> str:
    if isinstance(obj, ColumnElement):
        return obj.describe()
    return type(obj).__name__


class ColumnElement(ClauseElement):
    """A SQL expression that yields a value: columns, literals, operators, functions."""

    __slots__ = ()
    __visit_name__ = "column_element"
    type: TypeEngine[Any]
    # Comparisons build new ColumnElements; hashing stays identity-based so
    # elements can live in sets and dict keys.
    __hash__ = object.__hash__

    @property
    def key(self) -> str | None:
        return None

    @property
    def name(self) -> str | None:
        return None

    def describe(self) -> str:
        """A short human description used in error messages."""
        return type(self).__name__

    def self_group(self, against: str | None = None) -> ColumnElement:
        return self

    # -- operator entry points -------------------------------------------------
    def operate(self, op: str, other: Any, **kw: Any) -> ColumnElement:
        return _binary(self, op, other, **kw)

    def reverse_operate(self, op: str, other: Any) -> ColumnElement:
        left = _coerce_value(self, op, other)
        return _make_binary(left, op, self)

    def __eq__(self, other: Any) -> ColumnElement:  # type: ignore[override]
        if other is None:
            return BinaryExpression(self, NULL, ops.IS, _BOOLEAN, negate=ops.IS_NOT)
        return self.operate(ops.EQ, other)

    def __ne__(self, other: Any) -> ColumnElement:  # type: ignore[override]
        if other is None:
            return BinaryExpression(self, NULL, ops.IS_NOT, _BOOLEAN, negate=ops.IS)
        return self.operate(ops.NE, other)

    def __lt__(self, other: Any) -> ColumnElement:
        return self.operate(ops.LT, other)

    def __le__(self, other: Any) -> ColumnElement:
        return self.operate(ops.LE, other)

    def __gt__(self, other: Any) -> ColumnElement:
        return self.operate(ops.GT, other)

    def __ge__(self, other: Any) -> ColumnElement:
        return self.operate(ops.GE, other)

    def __add__(self, other: Any) -> ColumnElement:
        if isinstance(self.type, String):
            return self.operate(ops.CONCAT, other)
        return self.operate(ops.ADD, other)

    def __radd__(self, other: Any) -> ColumnElement:
        if isinstance(self.type, String):
            return self.reverse_operate(ops.CONCAT, other)
        return self.reverse_operate(ops.ADD, other)

    def __sub__(self, other: Any) -> ColumnElement:
        return self.operate(ops.SUB, other)

    def __rsub__(self, other: Any) -> ColumnElement:
        return self.reverse_operate(ops.SUB, other)

    def __mul__(self, other: Any) -> ColumnElement:
        return self.operate(ops.MUL, other)

    def __rmul__(self, other: Any) -> ColumnElement:
        return self.reverse_operate(ops.MUL, other)

    def __truediv__(self, other: Any) -> ColumnElement:
        return self.operate(ops.TRUEDIV, other)

    def __rtruediv__(self, other: Any) -> ColumnElement:
        return self.reverse_operate(ops.TRUEDIV, other)

    def __floordiv__(self, other: Any) -> ColumnElement:
        return self.operate(ops.FLOORDIV, other)

    def __rfloordiv__(self, other: Any) -> ColumnElement:
        return self.reverse_operate(ops.FLOORDIV, other)

    def __mod__(self, other: Any) -> ColumnElement:
        return self.operate(ops.MOD, other)

    def __rmod__(self, other: Any) -> ColumnElement:
        return self.reverse_operate(ops.MOD, other)

    def __neg__(self) -> ColumnElement:
        return UnaryExpression(self.self_group(ops.NEG), operator=ops.NEG, type_=self.type)

    def __invert__(self) -> ColumnElement:
        return UnaryExpression(self.self_group(ops.NOT), operator=ops.NOT, type_=_BOOLEAN)

    def __and__(self, other: Any) -> ColumnElement:
        return and_(self, other)

    def __or__(self, other: Any) -> ColumnElement:
        return or_(self, other)

    def __getitem__(self, index: Any) -> ColumnElement:
        """``array_col[1]`` (PostgreSQL arrays are 1-based) or ``json_col["key"]``."""
        if isinstance(self.type, ARRAY):
            item_type = self.type.item_type
            right = BindParameter(None, index, type_=_INTEGER, unique=True)
            return BinaryExpression(self, right, ops.GETITEM, item_type)
        if isinstance(self.type, JSON):
            key_type = _INTEGER if isinstance(index, int) else String()
            right = BindParameter(None, index, type_=key_type, unique=True)
            return BinaryExpression(self, right, ops.JSON_GETITEM, self.type)
        raise exc.ArgumentError(
            f"{self.describe()} of type {type(self.type).__name__} cannot be indexed; "
            "only ARRAY and JSON expressions support [...]"
        )

    def concat(self, other: Any) -> ColumnElement:
        return self.operate(ops.CONCAT, other)

    def like(self, other: Any, escape: str | None = None) -> ColumnElement:
        return self.operate(ops.LIKE, other, escape=escape)

    def not_like(self, other: Any, escape: str | None = None) -> ColumnElement:
        return self.operate(ops.NOT_LIKE, other, escape=escape)

    def ilike(self, other: Any, escape: str | None = None) -> ColumnElement:
        return self.operate(ops.ILIKE, other, escape=escape)

    def not_ilike(self, other: Any, escape: str | None = None) -> ColumnElement:
        return self.operate(ops.NOT_ILIKE, other, escape=escape)

    notlike = not_like
    notilike = not_ilike

    def _pattern(self, other: Any, prefix: str, suffix: str, autoescape: bool) -> ColumnElement:
        if isinstance(other, ClauseElement):
            pattern: Any = other
            if prefix:
                pattern = literal(prefix, String()).concat(pattern)
            if suffix:
                pattern = pattern.concat(literal(suffix, String()))
            return self.operate(ops.LIKE, pattern)
        if not isinstance(other, str):
            raise exc.ArgumentError(
                f"LIKE pattern for {self.describe()} must be a string or SQL expression, "
                f"got {type(other).__name__}"
            )
        escape = None
        if autoescape:
            other = other.replace("/", "//").replace("%", "/%").replace("_", "/_")
            escape = "/"
        return self.operate(ops.LIKE, prefix + other + suffix, escape=escape)

    def startswith(self, other: Any, autoescape: bool = False) -> ColumnElement:
        return self._pattern(other, "", "%", autoescape)

    def endswith(self, other: Any, autoescape: bool = False) -> ColumnElement:
        return self._pattern(other, "%", "", autoescape)

    def contains(self, other: Any, autoescape: bool = False) -> ColumnElement:
        if isinstance(self.type, ARRAY):
            return self.operate(ops.ARRAY_CONTAINS, other)
        return self._pattern(other, "%", "%", autoescape)

    def in_(self, other: Any) -> ColumnElement:
        return _in(self, other, negate=False)

    def not_in(self, other: Any) -> ColumnElement:
        return _in(self, other, negate=True)

    notin_ = not_in

    def is_(self, other: Any) -> ColumnElement:
        return BinaryExpression(self, _coerce_literal_constant(other), ops.IS, _BOOLEAN, ops.IS_NOT)

    def is_not(self, other: Any) -> ColumnElement:
        return BinaryExpression(self, _coerce_literal_constant(other), ops.IS_NOT, _BOOLEAN, ops.IS)

    isnot = is_not

    def is_distinct_from(self, other: Any) -> ColumnElement:
        return self.operate(ops.IS_DISTINCT_FROM, other)

    def is_not_distinct_from(self, other: Any) -> ColumnElement:
        return self.operate(ops.IS_NOT_DISTINCT_FROM, other)

    def between(self, lower: Any, upper: Any, symmetric: bool = False) -> ColumnElement:
        low = _coerce_value(self, ops.GE, lower)
        high = _coerce_value(self, ops.LE, upper)
        op = ops.BETWEEN_SYMMETRIC if symmetric else ops.BETWEEN
        return BinaryExpression(
            self, Grouping(ClauseList(low, high, operator=ops.AND)), op, _BOOLEAN
        )

    def distinct(self) -> ColumnElement:
        return UnaryExpression(self, operator=ops.DISTINCT, type_=self.type)

    def asc(self) -> ColumnElement:
        return UnaryExpression(self, modifier=ops.ASC, type_=self.type)

    def desc(self) -> ColumnElement:
        return UnaryExpression(self, modifier=ops.DESC, type_=self.type)

    def nulls_first(self) -> ColumnElement:
        return UnaryExpression(self, modifier=ops.NULLS_FIRST, type_=self.type)

    def nulls_last(self) -> ColumnElement:
        return UnaryExpression(self, modifier=ops.NULLS_LAST, type_=self.type)

    nullsfirst = nulls_first
    nullslast = nulls_last

    def collate(self, collation: str) -> ColumnElement:
        return CollationClause(self, collation)

    def label(self, name: str | None) -> Label:
        return Label(name, self)

    def cast(self, type_: Any) -> ColumnElement:
        return Cast(self, type_)

    def op(
        self, opstring: str, precedence: int = 0, is_comparison: bool = False
    ) -> Callable[[Any], ColumnElement]:
        """A custom binary operator: ``col.op("->>")("key")``."""

        def build(other: Any) -> ColumnElement:
            right = _coerce_value(self, opstring, other)
            result_type = _BOOLEAN if is_comparison else self.type
            return BinaryExpression(self, right, ops.custom(opstring, precedence), result_type)

        return build

    def any_(self) -> ColumnElement:
        return UnaryExpression(self, operator=ops.ANY, type_=self.type)

    def all_(self) -> ColumnElement:
        return UnaryExpression(self, operator=ops.ALL, type_=self.type)


def _type_check(expr: ColumnElement, type_: TypeEngine[Any], value: Any) -> None:
    try:
        type_.validate_bind_value(value)
    except TypeError as err:
        raise exc.ArgumentError(
            f"Cannot use a value of type {type(value).__name__} ({value!r:.60}) with "
            f"{expr.describe()} of type {type(expr.type).__name__}: {err}"
        ) from None


def _coerce_value(expr: ColumnElement, op: str, other: Any) -> ColumnElement:
    """Turn ``other`` into an expression to combine with ``expr`` under ``op``."""
    if isinstance(other, ColumnElement):
        if isinstance(other, BindParameter) and op in ops.COMPARISON:
            return other._typed_after(expr.type)
        return other
    if isinstance(other, ClauseElement):
        if other.is_selectable:
            return other.scalar_subquery()  # type: ignore[attr-defined, no-any-return]
        raise exc.ArgumentError(
            f"Cannot compare {expr.describe()} with a {type(other).__name__}; "
            "expected a column expression or a Python value"
        )
    if hasattr(other, "__clause_element__"):
        return other.__clause_element__()  # type: ignore[no-any-return]
    if other is None:
        return NULL
    type_ = expr.type.coerce_compared_value(op, other)
    _type_check(expr, type_, other)
    return BindParameter(_anon_key(expr), other, type_=type_, unique=True, _checked=True)


def _anon_key(expr: ColumnElement) -> str:
    key = expr.key
    return key if key else "param"


def _make_binary(left: ColumnElement, op: str, right: ColumnElement, **kw: Any) -> ColumnElement:
    if op in ops.COMPARISON:
        result_type: TypeEngine[Any] = _BOOLEAN
    else:
        result_type = left.type.result_type_for_operator(op, right.type)
    return BinaryExpression(
        left.self_group(op),
        right.self_group(op),
        op,
        result_type,
        negate=ops.NEGATIONS.get(op),
        escape=kw.get("escape"),
    )


def _binary(left: ColumnElement, op: str, other: Any, **kw: Any) -> ColumnElement:
    right = _coerce_value(left, op, other)
    return _make_binary(left, op, right, **kw)


def _in(expr: ColumnElement, other: Any, negate: bool) -> ColumnElement:
    op = ops.NOT_IN if negate else ops.IN
    if isinstance(other, ClauseElement):
        if other.is_selectable:
            sub = other.scalar_subquery()  # type: ignore[attr-defined]
            return BinaryExpression(expr, sub, op, _BOOLEAN, ops.IN if negate else ops.NOT_IN)
        if isinstance(other, BindParameter) and other.expanding:
            typed = other._typed_after(expr.type)
            return BinaryExpression(expr, typed, op, _BOOLEAN, ops.IN if negate else ops.NOT_IN)
        raise exc.ArgumentError(
            f"in_() for {expr.describe()} takes a list of values, a select() or an "
            f"expanding bindparam(), not {type(other).__name__}"
        )
    if isinstance(other, (str, bytes)) or not isinstance(other, Iterable):
        raise exc.ArgumentError(
            f"in_() for {expr.describe()} takes a list of values, not "
            f"{type(other).__name__} ({other!r:.40})"
        )
    values = list(other)
    if any(isinstance(v, ClauseElement) for v in values):
        items = [_coerce_value(expr, ops.EQ, v) for v in values]
        return BinaryExpression(
            expr, Grouping(ClauseList(*items)), op, _BOOLEAN, ops.IN if negate else ops.NOT_IN
        )
    type_ = expr.type
    if isinstance(expr, Tuple):
        for v in values:
            if not isinstance(v, tuple) or len(v) != len(expr.clauses):
                raise exc.ArgumentError(
                    f"in_() on a tuple of {len(expr.clauses)} expressions needs tuples of "
                    f"that length, got {v!r:.40}"
                )
            for sub, item in zip(expr.clauses, v, strict=True):
                if item is not None and isinstance(sub, ColumnElement):
                    _type_check(sub, sub.type, item)
    else:
        for v in values:
            if v is not None:
                _type_check(expr, type_, v)
    param = BindParameter(
        _anon_key(expr), values, type_=type_, unique=True, expanding=True, _checked=True
    )
    return BinaryExpression(expr, param, op, _BOOLEAN, ops.IN if negate else ops.NOT_IN)


def _coerce_literal_constant(value: Any) -> ColumnElement:
    if value is None:
        return NULL
    if value is True:
        return TRUE
    if value is False:
        return FALSE
    if isinstance(value, ColumnElement):
        return value
    raise exc.ArgumentError(
        f"IS / IS NOT compares with None, True, False or an expression, not {value!r:.40}"
    )


def coerce_expression(value: Any, role: str = "expression") -> ColumnElement:
    """Accept a column expression, an object with ``__clause_element__`` or a literal."""
    if isinstance(value, ColumnElement):
        return value
    if hasattr(value, "__clause_element__"):
        element = value.__clause_element__()
        if isinstance(element, ColumnElement):
            return element
    if isinstance(value, ClauseElement):
        if value.is_selectable:
            return value.scalar_subquery()  # type: ignore[attr-defined, no-any-return]
        raise exc.ArgumentError(f"Expected a column expression for {role}, got {value!r}")
    if value is None:
        return NULL
    return literal(value)


def coerce_where(value: Any) -> ColumnElement:
    """Accept a boolean expression for WHERE/HAVING/ON; bare Python bools are rejected."""
    if isinstance(value, bool):
        return TRUE if value else FALSE
    if isinstance(value, str):
        raise exc.ArgumentError(
            f"A plain string is not accepted as a WHERE clause ({value!r:.60}); "
            "wrap it in text() if raw SQL is intended"
        )
    if isinstance(value, TextClause):
        # Raw SQL as a condition, parenthesized so that it combines safely.
        return value.self_group()
    return coerce_expression(value, "a WHERE clause")


def coerce_order_by(value: Any) -> ColumnElement:
    if isinstance(value, str):
        return TextLabelReference(value)
    return coerce_expression(value, "ORDER BY / GROUP BY")


class ColumnClause(ColumnElement):
    """A named column: ``column("x")`` or a table's column."""

    __slots__ = ("_key", "_name", "_serial", "is_literal", "table", "type")
    __visit_name__ = "column"

    def __init__(
        self,
        text: str,
        type_: Any = None,
        is_literal: bool = False,
        _selectable: FromClause | None = None,
    ) -> None:
        self._name = text
        self._key = text
        self.type = to_instance(type_) if type_ is not None else _NULLTYPE
        self.is_literal = is_literal
        self.table = _selectable
        self._serial = next_serial()

    @property
    def key(self) -> str:
        return self._key

    @property
    def name(self) -> str:
        return self._name

    def describe(self) -> str:
        table = self.table
        tname = getattr(table, "name", None) if table is not None else None
        return f"column '{tname}.{self._name}'" if tname else f"column '{self._name}'"

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return ("col", self._serial)

    def __repr__(self) -> str:
        table = self.table
        tname = getattr(table, "name", None) if table is not None else None
        return f"<Column {tname}.{self._name}>" if tname else f"<Column {self._name}>"


class BindParameter(ColumnElement):
    """A value sent to the database as a parameter, never inlined.

    ``key`` names it; a *unique* parameter (every literal) gets an anonymous
    name at compile time, and only explicit ``bindparam("name")`` parameters
    can be given (or overridden) by execute-time parameters. ``expanding``
    parameters hold a list for ``IN``.
    """

    __slots__ = (
        "_key",
        "callable",
        "expanding",
        "literal_execute",
        "required",
        "type",
        "unique",
        "value",
    )
    __visit_name__ = "bindparam"

    def __init__(
        self,
        key: str | None,
        value: Any = ...,
        type_: Any = None,
        unique: bool = False,
        required: bool | None = None,
        callable_: Callable[[], Any] | None = None,
        expanding: bool = False,
        literal_execute: bool = False,
        _checked: bool = False,
    ) -> None:
        self._key = key or "param"
        if required is None:
            required = value is ... and callable_ is None
        self.required = required
        self.value = None if value is ... else value
        self.callable = callable_
        self.unique = unique or key is None
        self.expanding = expanding
        self.literal_execute = literal_execute
        if type_ is None:
            if expanding and isinstance(self.value, (list, tuple)) and self.value:
                type_ = type_for_python_value(self.value[0])
            elif not expanding:
                type_ = type_for_python_value(self.value)
            else:
                type_ = _NULLTYPE
        self.type = to_instance(type_)
        if not _checked and value is not ... and value is not None and not expanding:
            _type_check(self, self.type, value)

    @property
    def key(self) -> str:
        return self._key

    def describe(self) -> str:
        return f"parameter '{self._key}'"

    def _typed_after(self, type_: TypeEngine[Any]) -> BindParameter:
        """Untyped, this parameter takes ``type_`` (its processor and value check)
        from what it is compared with or stored in, as in SQLAlchemy; typed, it is kept."""
        if not isinstance(self.type, NullType) or isinstance(type_, NullType):
            return self
        new = BindParameter.__new__(BindParameter)
        for slot in BindParameter.__slots__:
            object.__setattr__(new, slot, getattr(self, slot))
        new.type = type_
        return new

    def effective_value(self) -> Any:
        return self.callable() if self.callable is not None else self.value

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        binds.append(self)
        if self.expanding:
            n = len(self.value) if self.value is not None else None
            return ("bindx", None if self.unique else self._key, self.type.cache_key, n)
        return ("bind", None if self.unique else self._key, self.type.cache_key)

    def __repr__(self) -> str:
        return f"BindParameter({self._key!r}, {self.value!r})"


def bindparam(
    key: str | None,
    value: Any = ...,
    type_: Any = None,
    unique: bool = False,
    required: bool | None = None,
    callable_: Callable[[], Any] | None = None,
    expanding: bool = False,
    literal_execute: bool = False,
) -> BindParameter:
    """A named parameter: its value is given now, or at execution by key."""
    return BindParameter(key, value, type_, unique, required, callable_, expanding, literal_execute)


def literal(value: Any, type_: Any = None) -> BindParameter:
    """A Python value as a bound parameter expression."""
    if isinstance(value, ClauseElement):
        raise exc.ArgumentError(f"literal() takes a Python value, not {type(value).__name__}")
    return BindParameter(None, value, type_=type_, unique=True)


class TextLabelReference(ColumnElement):
    """``order_by("name")``: refers to a label or column of the enclosing SELECT."""

    __slots__ = ("text", "type")
    __visit_name__ = "textlabel"

    def __init__(self, text: str) -> None:
        self.text = text
        self.type = _NULLTYPE

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return ("tlabel", self.text)


class LiteralColumn(ColumnElement):
    """``literal_column("x")``: raw SQL text used as a column expression."""

    __slots__ = ("text", "type")
    __visit_name__ = "literal_column"

    def __init__(self, text: str, type_: Any = None) -> None:
        self.text = text
        self.type = to_instance(type_) if type_ is not None else _NULLTYPE

    @property
    def key(self) -> str:
        return self.text

    @property
    def name(self) -> str:
        return self.text

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return ("litcol", self.text, self.type.cache_key)


def literal_column(text: str, type_: Any = None) -> LiteralColumn:
    return LiteralColumn(text, type_)


def column(text: str, type_: Any = None) -> ColumnClause:
    """A free-standing named column (no table)."""
    return ColumnClause(text, type_)


class _Constant(ColumnElement):
    __slots__ = ("type",)

    def __init__(self, type_: TypeEngine[Any]) -> None:
        self.type = type_

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return self.__visit_name__


class Null(_Constant):
    __slots__ = ()
    __visit_name__ = "null"


class True_(_Constant):
    __slots__ = ()
    __visit_name__ = "true"

    def __invert__(self) -> ColumnElement:
        return FALSE


class False_(_Constant):
    __slots__ = ()
    __visit_name__ = "false"

    def __invert__(self) -> ColumnElement:
        return TRUE


NULL = Null(_NULLTYPE)
TRUE = True_(_BOOLEAN)
FALSE = False_(_BOOLEAN)


def null() -> Null:
    return NULL


def true() -> True_:
    return TRUE


def false() -> False_:
    return FALSE


class BinaryExpression(ColumnElement):
    """``left <op> right``; ``negate`` is the operator ``NOT`` turns it into."""

    __slots__ = ("escape", "left", "negate", "operator", "right", "type")
    __visit_name__ = "binary"

    def __init__(
        self,
        left: ColumnElement,
        right: ColumnElement,
        operator: str,
        type_: TypeEngine[Any],
        negate: str | None = None,
        escape: str | None = None,
    ) -> None:
        self.left = left
        self.right = right
        self.operator = operator
        self.type = type_
        self.negate = negate
        self.escape = escape

    def describe(self) -> str:
        return f"expression ({self.left.describe()} {self.operator} ...)"

    def get_children(self) -> Iterable[ClauseElement]:
        return (self.left, self.right)

    def self_group(self, against: str | None = None) -> ColumnElement:
        if against is not None and ops.is_precedent(self.operator, against):
            return Grouping(self)
        return self

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return (
            "bin",
            self.operator,
            self.left._ck(binds),
            self.right._ck(binds),
            self.escape,
        )

    def __invert__(self) -> ColumnElement:
        if self.negate is not None:
            return BinaryExpression(
                self.left, self.right, self.negate, self.type, self.operator, self.escape
            )
        return super().__invert__()

    def __bool__(self) -> bool:
        # Lets ``col_a == col_b`` work in ``in``/``==`` tests of Python containers,
        # as SQLAlchemy allows: identity of the two sides.
        if self.operator == ops.EQ:
            return self.left is self.right
        if self.operator == ops.NE:
            return self.left is not self.right
        return super().__bool__()


class UnaryExpression(ColumnElement):
    """A prefix ``operator`` (NOT, -, DISTINCT, EXISTS) or postfix ``modifier`` (DESC...)."""

    __slots__ = ("element", "modifier", "operator", "type")
    __visit_name__ = "unary"

    def __init__(
        self,
        element: ColumnElement,
        operator: str | None = None,
        modifier: str | None = None,
        type_: TypeEngine[Any] | None = None,
    ) -> None:
        self.element = element
        self.operator = operator
        self.modifier = modifier
        self.type = type_ if type_ is not None else element.type

    @property
    def key(self) -> str | None:
        return self.element.key if self.modifier is not None else None

    def get_children(self) -> Iterable[ClauseElement]:
        return (self.element,)

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return ("un", self.operator, self.modifier, self.element._ck(binds))

    def __invert__(self) -> ColumnElement:
        if self.operator == ops.NOT:
            return self.element
        return super().__invert__()


class ClauseList(ClauseElement):
    """A list of clauses joined by ``operator`` (a comma by default)."""

    __slots__ = ("clauses", "operator")
    __visit_name__ = "clauselist"

    def __init__(self, *clauses: ClauseElement, operator: str = ops.COMMA) -> None:
        self.clauses = clauses
        self.operator = operator

    def get_children(self) -> Iterable[ClauseElement]:
        return self.clauses

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return ("list", self.operator, tuple(c._ck(binds) for c in self.clauses))


class BooleanClauseList(ColumnElement):
    """``and_(...)`` / ``or_(...)``."""

    __slots__ = ("clauses", "operator", "type")
    __visit_name__ = "boolean_list"

    def __init__(self, operator: str, clauses: Sequence[ColumnElement]) -> None:
        self.operator = operator
        self.clauses = tuple(c.self_group(operator) for c in clauses)
        self.type = _BOOLEAN

    def get_children(self) -> Iterable[ClauseElement]:
        return self.clauses

    def self_group(self, against: str | None = None) -> ColumnElement:
        if (
            against is not None
            and len(self.clauses) > 1
            and ops.is_precedent(self.operator, against)
        ):
            return Grouping(self)
        return self

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return ("bool", self.operator, tuple(c._ck(binds) for c in self.clauses))


def _boolean(operator: str, clauses: tuple[Any, ...]) -> ColumnElement:
    items: list[ColumnElement] = []
    skip, short = (TRUE, FALSE) if operator == ops.AND else (FALSE, TRUE)
    for raw in clauses:
        clause = coerce_where(raw)
        if isinstance(clause, BooleanClauseList) and clause.operator == operator:
            items.extend(clause.clauses)
        elif clause is skip:
            continue
        elif clause is short:
            return short
        else:
            items.append(clause)
    if not items:
        return skip if clauses else BooleanClauseList(operator, ())
    if len(items) == 1:
        return items[0]
    return BooleanClauseList(operator, items)


def and_(*clauses: Any) -> ColumnElement:
    """Conjunction; nested ``and_`` flatten, ``true()`` drops out, ``false()`` wins."""
    return _boolean(ops.AND, clauses)


def or_(*clauses: Any) -> ColumnElement:
    """Disjunction; nested ``or_`` flatten, ``false()`` drops out, ``true()`` wins."""
    return _boolean(ops.OR, clauses)


def not_(clause: Any) -> ColumnElement:
    """Negate: comparisons flip their operator, ``NOT NOT x`` collapses, others get NOT."""
    return ~coerce_where(clause)


class Grouping(ColumnElement):
    """Parentheses around an element."""

    __slots__ = ("element", "type")
    __visit_name__ = "grouping"

    def __init__(self, element: ClauseElement) -> None:
        self.element = element
        self.type = getattr(element, "type", _NULLTYPE)

    def get_children(self) -> Iterable[ClauseElement]:
        return (self.element,)

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return ("grp", self.element._ck(binds))


class Label(ColumnElement):
    """``expr AS name``."""

    __slots__ = ("_name", "element", "type")
    __visit_name__ = "label"

    def __init__(self, name: str | None, element: Any) -> None:
        self.element = coerce_expression(element)
        self._name = name or f"anon_{next_serial()}"
        self.type = self.element.type

    @property
    def key(self) -> str:
        return self._name

    @property
    def name(self) -> str:
        return self._name

    def describe(self) -> str:
        return f"label '{self._name}'"

    def get_children(self) -> Iterable[ClauseElement]:
        return (self.element,)

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return ("label", self._name, self.element._ck(binds))


class Cast(ColumnElement):
    """``CAST(expr AS type)``."""

    __slots__ = ("clause", "type")
    __visit_name__ = "cast"

    def __init__(self, expression: Any, type_: Any) -> None:
        self.type = to_instance(type_)
        if isinstance(expression, ClauseElement) or hasattr(expression, "__clause_element__"):
            self.clause = coerce_expression(expression)
        else:
            self.clause = BindParameter(None, expression, type_=self.type, unique=True)

    @property
    def key(self) -> str | None:
        return self.clause.key

    def get_children(self) -> Iterable[ClauseElement]:
        return (self.clause,)

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return ("cast", self.type.cache_key, self.clause._ck(binds))


def cast(expression: Any, type_: Any) -> Cast:
    return Cast(expression, type_)


class TypeCoerce(ColumnElement):
    """Treat an expression as another type in Python only; no CAST in SQL."""

    __slots__ = ("clause", "type")
    __visit_name__ = "type_coerce"

    def __init__(self, expression: Any, type_: Any) -> None:
        self.type = to_instance(type_)
        if isinstance(expression, ClauseElement):
            self.clause = coerce_expression(expression)
        else:
            self.clause = BindParameter(None, expression, type_=self.type, unique=True)

    @property
    def key(self) -> str | None:
        return self.clause.key

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return ("tc", self.type.cache_key, self.clause._ck(binds))


def type_coerce(expression: Any, type_: Any) -> TypeCoerce:
    return TypeCoerce(expression, type_)


class CollationClause(ColumnElement):
    """``expr COLLATE name``."""

    __slots__ = ("collation", "element", "type")
    __visit_name__ = "collate"

    def __init__(self, element: ColumnElement, collation: str) -> None:
        self.element = element.self_group(ops.COLLATE)
        self.collation = collation
        self.type = element.type

    @property
    def key(self) -> str | None:
        return self.element.key

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return ("collate", self.collation, self.element._ck(binds))


def collate(expression: Any, collation: str) -> CollationClause:
    return CollationClause(coerce_expression(expression), collation)


class Case(ColumnElement):
    """``CASE [value] WHEN ... THEN ... [ELSE ...] END``."""

    __slots__ = ("else_", "type", "value", "whens")
    __visit_name__ = "case"

    def __init__(
        self,
        *whens: Any,
        value: Any = None,
        else_: Any = None,
    ) -> None:
        pairs: list[tuple[Any, Any]]
        if len(whens) == 1 and isinstance(whens[0], Mapping):
            pairs = list(whens[0].items())
        else:
            pairs = list(whens)
        if not pairs:
            raise exc.ArgumentError("case() needs at least one (condition, result) pair")
        self.value = coerce_expression(value) if value is not None else None
        built: list[tuple[ColumnElement, ColumnElement]] = []
        for pair in pairs:
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise exc.ArgumentError(f"case() takes (condition, result) pairs, got {pair!r:.60}")
            cond, result = pair
            if self.value is not None:
                cond_expr = _coerce_value(self.value, ops.EQ, cond)
            else:
                cond_expr = coerce_where(cond)
            built.append((cond_expr, coerce_expression(result)))
        self.whens = tuple(built)
        self.else_ = coerce_expression(else_) if else_ is not None else None
        result_type: TypeEngine[Any] = _NULLTYPE
        for _, result in self.whens:
            if not isinstance(result.type, NullType):
                result_type = result.type
                break
        else:
            if self.else_ is not None:
                result_type = self.else_.type
        self.type = result_type

    def get_children(self) -> Iterable[ClauseElement]:
        out: list[ClauseElement] = []
        if self.value is not None:
            out.append(self.value)
        for cond, result in self.whens:
            out.extend((cond, result))
        if self.else_ is not None:
            out.append(self.else_)
        return out

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        value = self.value._ck(binds) if self.value is not None else None
        whens = tuple((c._ck(binds), r._ck(binds)) for c, r in self.whens)
        else_ = self.else_._ck(binds) if self.else_ is not None else None
        return ("case", value, whens, else_)


def case(*whens: Any, value: Any = None, else_: Any = None) -> Case:
    return Case(*whens, value=value, else_=else_)


class Tuple(ColumnElement):
    """``(a, b, ...)``, e.g. for ``tuple_(a, b).in_([(1, 2), (3, 4)])``."""

    __slots__ = ("clauses", "type")
    __visit_name__ = "tuple"

    def __init__(self, *clauses: Any) -> None:
        self.clauses = tuple(coerce_expression(c) for c in clauses)
        self.type = _NULLTYPE

    def get_children(self) -> Iterable[ClauseElement]:
        return self.clauses

    def describe(self) -> str:
        return "tuple (" + ", ".join(c.describe() for c in self.clauses) + ")"

    def operate(self, op: str, other: Any, **kw: Any) -> ColumnElement:
        if isinstance(other, tuple):
            if len(other) != len(self.clauses):
                raise exc.ArgumentError(
                    f"Cannot compare a tuple of {len(self.clauses)} with one of {len(other)}"
                )
            right: ColumnElement = Tuple(
                *(_coerce_value(c, op, v) for c, v in zip(self.clauses, other, strict=True))
            )
            return BinaryExpression(self, right, op, _BOOLEAN, ops.NEGATIONS.get(op))
        return super().operate(op, other, **kw)

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return ("tuple", tuple(c._ck(binds) for c in self.clauses))


def tuple_(*clauses: Any) -> Tuple:
    return Tuple(*clauses)


class FunctionElement(ColumnElement):
    """A SQL function call: ``name(args...)``, optionally with a window."""

    __slots__ = ("_filter", "clauses", "fn_name", "packagenames", "type")
    __visit_name__ = "function"

    def __init__(
        self,
        name: str,
        *args: Any,
        type_: Any = None,
        packagenames: tuple[str, ...] = (),
    ) -> None:
        self.fn_name = name
        self.packagenames = packagenames
        self.clauses = tuple(coerce_expression(a) for a in args)
        self._filter: ColumnElement | None = None
        if type_ is None:
            type_ = _function_type(name.lower(), self.clauses)
        self.type = to_instance(type_)

    @property
    def key(self) -> str:
        return self.fn_name

    @property
    def name(self) -> str:
        return self.fn_name

    def describe(self) -> str:
        return f"function {self.fn_name}()"

    def get_children(self) -> Iterable[ClauseElement]:
        return self.clauses

    def filter(self, *criteria: Any) -> FunctionElement:
        """``agg(x) FILTER (WHERE ...)``."""
        clone = FunctionElement.__new__(FunctionElement)
        clone.fn_name, clone.packagenames = self.fn_name, self.packagenames
        clone.clauses, clone.type = self.clauses, self.type
        clone._filter = and_(*criteria)
        return clone

    def over(
        self,
        partition_by: Any = None,
        order_by: Any = None,
    ) -> Over:
        return Over(self, partition_by=partition_by, order_by=order_by)

    def within_group(self, *order_by: Any) -> WithinGroup:
        return WithinGroup(self, *order_by)

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return (
            "fn",
            self.fn_name,
            self.packagenames,
            self.type.cache_key,
            tuple(c._ck(binds) for c in self.clauses),
            self._filter._ck(binds) if self._filter is not None else None,
        )


def _function_type(name: str, args: tuple[ColumnElement, ...]) -> TypeEngine[Any]:
    if name in ("count", "length", "char_length", "row_number", "rank", "dense_rank"):
        return _INTEGER
    if name in (
        "lower",
        "upper",
        "trim",
        "ltrim",
        "rtrim",
        "concat",
        "substr",
        "substring",
        "replace",
        "group_concat",
        "string_agg",
    ):
        return String()
    if (
        name
        in (
            "sum",
            "min",
            "max",
            "coalesce",
            "abs",
            "nullif",
            "round",
            "first_value",
            "last_value",
            "lag",
            "lead",
        )
        and args
    ):
        return args[0].type
    if name == "avg":
        from asyncsession.sql.types import Numeric

        return Numeric()
    if name in ("now", "current_timestamp", "localtimestamp"):
        from asyncsession.sql.types import DateTime

        return DateTime(timezone=True)
    if name == "current_date":
        from asyncsession.sql.types import Date

        return Date()
    return _NULLTYPE


class Over(ColumnElement):
    """``fn(...) OVER (PARTITION BY ... ORDER BY ...)``."""

    __slots__ = ("element", "order_by", "partition_by", "type")
    __visit_name__ = "over"

    def __init__(
        self, element: FunctionElement, partition_by: Any = None, order_by: Any = None
    ) -> None:
        self.element = element
        self.partition_by = _as_tuple(partition_by, coerce_expression)
        self.order_by = _as_tuple(order_by, coerce_order_by)
        self.type = element.type

    @property
    def key(self) -> str:
        return self.element.key

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return (
            "over",
            self.element._ck(binds),
            tuple(c._ck(binds) for c in self.partition_by),
            tuple(c._ck(binds) for c in self.order_by),
        )


class WithinGroup(ColumnElement):
    """``fn(...) WITHIN GROUP (ORDER BY ...)``."""

    __slots__ = ("element", "order_by", "type")
    __visit_name__ = "within_group"

    def __init__(self, element: FunctionElement, *order_by: Any) -> None:
        self.element = element
        self.order_by = tuple(coerce_order_by(o) for o in order_by)
        self.type = element.type

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return ("wg", self.element._ck(binds), tuple(c._ck(binds) for c in self.order_by))


def _as_tuple(value: Any, coerce: Callable[[Any], ColumnElement]) -> tuple[ColumnElement, ...]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(coerce(v) for v in value)
    return (coerce(value),)


class _FunctionGenerator:
    """``func.name(...)`` builds a function call; ``func.pkg.name`` a dotted one."""

    __slots__ = ("_names",)

    def __init__(self, names: tuple[str, ...] = ()) -> None:
        self._names = names

    def __getattr__(self, name: str) -> _FunctionGenerator:
        if name.startswith("__"):
            raise AttributeError(name)
        if name.endswith("_") and not name.endswith("__"):
            name = name[:-1]
        return _FunctionGenerator((*self._names, name))

    def __call__(self, *args: Any, type_: Any = None) -> FunctionElement:
        if not self._names:
            raise exc.ArgumentError("func needs a function name: func.count(...)")
        *packages, name = self._names
        return FunctionElement(name, *args, type_=type_, packagenames=tuple(packages))


func = _FunctionGenerator()


_BIND_NAME = re.compile(r"(?<![:\w\x5c]):(\w+)(?!:)")


class TextClause(ClauseElement):
    """Literal SQL with ``:name`` parameters: ``text("SELECT * FROM t WHERE id = :id")``.

    A colon that is not a parameter is escaped with a backslash (``\\:``).
    ``bindparams()`` gives values or types to the named parameters; ``columns()``
    declares the result columns and their types, making it usable as a subquery.
    """

    __slots__ = ("_bindparams", "_serial", "text")
    __visit_name__ = "textclause"
    is_selectable = False

    def __init__(self, text: str, _bindparams: Mapping[str, BindParameter] | None = None) -> None:
        if not isinstance(text, str):
            raise exc.ArgumentError(f"text() takes a string, got {type(text).__name__}")
        self.text = text
        if _bindparams is None:
            _bindparams = {name: BindParameter(name) for name in _BIND_NAME.findall(text)}
        self._bindparams = dict(_bindparams)
        self._serial = ("text", text)

    def get_children(self) -> Iterable[ClauseElement]:
        return tuple(self._bindparams.values())

    def bindparams(self, *binds: BindParameter, **values: Any) -> TextClause:
        """Give values (``id=5``) or typed parameters (``bindparam("id", type_=Integer)``)."""
        new = dict(self._bindparams)
        for bind in binds:
            if bind.key not in new:
                raise exc.ArgumentError(
                    f"This text() construct has no parameter named {bind.key!r}; "
                    f"its parameters are {sorted(new) or 'none'}"
                )
            new[bind.key] = bind
        for key, value in values.items():
            if key not in new:
                raise exc.ArgumentError(
                    f"This text() construct has no parameter named {key!r}; "
                    f"its parameters are {sorted(new) or 'none'}"
                )
            existing = new[key]
            new[key] = BindParameter(
                key, value, type_=existing.type if not isinstance(existing.type, NullType) else None
            )
        return TextClause(self.text, new)

    def columns(self, *cols: Any, **types: Any) -> TextualSelect:
        """Declare result columns (``column("id", Integer)``, or ``id=Integer``)."""
        out: list[ColumnElement] = []
        for c in cols:
            out.append(c if isinstance(c, ColumnElement) else coerce_expression(c))
        for name, type_ in types.items():
            out.append(ColumnClause(name, type_))
        return TextualSelect(self, tuple(out))

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return ("text", self.text, tuple(b._ck(binds) for b in self._bindparams.values()))

    def self_group(self, against: str | None = None) -> Grouping:
        return Grouping(self)


def text(text: str) -> TextClause:
    return TextClause(text)


class TextualSelect(ClauseElement):
    """A ``text()`` with declared result columns; usable where a SELECT is."""

    __slots__ = ("column_args", "element")
    __visit_name__ = "textual_select"
    is_selectable = True

    def __init__(self, element: TextClause, column_args: tuple[ColumnElement, ...]) -> None:
        self.element = element
        self.column_args = column_args

    @property
    def selected_columns(self) -> tuple[ColumnElement, ...]:
        return self.column_args

    def subquery(self, name: str | None = None) -> Any:
        from asyncsession.sql.selectable import Subquery

        return Subquery(self, name)

    def bindparams(self, *binds: BindParameter, **values: Any) -> TextualSelect:
        return TextualSelect(self.element.bindparams(*binds, **values), self.column_args)

    def scalar_subquery(self) -> Any:
        from asyncsession.sql.selectable import ScalarSelect

        return ScalarSelect(self)

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return (
            "textsel",
            self.element._ck(binds),
            tuple((c.key, c.type.cache_key) for c in self.column_args),
        )


def exists(__argument: Any = None, /) -> Any:
    """``EXISTS (subquery)``: ``exists(select(...))`` or ``exists().where(...)``."""
    from asyncsession.sql.selectable import Exists, Select, select

    if __argument is None:
        return Exists(select(literal_column("1")))
    if isinstance(__argument, Select):
        return Exists(__argument)
    return Exists(select(__argument))


def distinct(expr: Any) -> ColumnElement:
    return coerce_expression(expr).distinct()


def asc(expr: Any) -> ColumnElement:
    return coerce_order_by(expr).asc()


def desc(expr: Any) -> ColumnElement:
    return coerce_order_by(expr).desc()


def nulls_first(expr: Any) -> ColumnElement:
    return coerce_order_by(expr).nulls_first()


def nulls_last(expr: Any) -> ColumnElement:
    return coerce_order_by(expr).nulls_last()


def between(expr: Any, lower: Any, upper: Any, symmetric: bool = False) -> ColumnElement:
    return coerce_expression(expr).between(lower, upper, symmetric)


def label(name: str, element: Any) -> Label:
    return Label(name, element)


def over(element: FunctionElement, partition_by: Any = None, order_by: Any = None) -> Over:
    return Over(element, partition_by=partition_by, order_by=order_by)
