"""Turning statements into SQL text plus a parameter plan, cached by shape.

How this works:

* ``Dialect.compile(stmt, column_keys)`` computes the statement's cache key
  (one traversal that also collects its bound values in a fixed order). On a
  cache hit it returns the stored :class:`Compiled` and the fresh values; on a
  miss it runs :class:`SQLCompiler` and stores the result.
* While compiling, every placeholder is written as a marker holding a *slot*:
  where its value comes from (an extracted bind, an execute-time parameter, a
  column default) and its bind processor. When the text is complete the
  markers are replaced, left to right, by the dialect's placeholders (``?`` or
  ``$n``), so parameter order always matches text order however the visitors
  ran (CTEs are written before the statement that found them, for instance).
* ``Compiled.construct_params(extracted, params)`` fills the slots: that is all
  the work a cached execution does besides the driver call.
* Nothing here does IO, and nothing inlines a value into SQL except DDL, which
  cannot take parameters (``literal_binds``).
"""

from __future__ import annotations

import datetime
import decimal
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from asyncsession import exc
from asyncsession.sql import operators as ops
from asyncsession.sql.elements import (
    BindParameter,
    ClauseElement,
    ColumnClause,
    ColumnElement,
    Label,
    TextClause,
    Tuple,
)
from asyncsession.sql.selectable import (
    CTE,
    FromClause,
    Join,
    ScalarSelect,
    Select,
    _named_columns,
)
from asyncsession.sql.types import Integer, NullType, TypeEngine

_MARK = "\x00"
_MARK_RE = re.compile("\x00(\\d+)\x00")

# Slot kinds.
_BIND = 0  # extracted[index]
_NAMED = 1  # params[key] if given, else extracted[index] (error if required and missing)
_PARAM = 2  # params[key], required
_DEFAULT = 3  # a column default: scalar, or callable(context)
_EXPAND = 4  # extracted[index][item] (IN lists); item is an int or (int, int) for tuples


@attrs.frozen(slots=True)
class _Slot:
    kind: int
    index: int
    key: str
    processor: Callable[[Any], Any] | None
    extra: Any = None
    validator: Callable[[Any], None] | None = None
    # A context-taking default: the row's values given in the statement, as
    # (column key, index into extracted); execute-time parameters come on top.
    row: tuple[tuple[str, int], ...] = ()


class DefaultContext:
    """What a context-taking column default receives: the row's parameters."""

    __slots__ = ("current_parameters",)

    def __init__(self, current_parameters: Mapping[str, Any]) -> None:
        self.current_parameters = current_parameters

    def get_current_parameters(self) -> Mapping[str, Any]:
        return self.current_parameters


_EMPTY: Mapping[str, Any] = {}


def _accepts_of(slot: _Slot) -> Callable[[Any], bool] | None:
    """A fast acceptance predicate for an execute-time value, or None to skip checks.

    A type's ``validate_bind_value`` raises with a message; when the type also has
    the ``_accepts`` predicate it is built on, the hot loop calls that instead.
    """
    validator = slot.validator
    if validator is None:
        return None
    type_ = getattr(validator, "__self__", None)
    accepts = getattr(type_, "_accepts", None)
    if accepts is None:
        return lambda value: _passes(validator, value)
    return accepts  # type: ignore[no-any-return]


def _passes(validator: Callable[[Any], None], value: Any) -> bool:
    try:
        validator(value)
    except TypeError:
        return False
    return True


def _current_parameters(
    slot: _Slot, extracted: Sequence[BindParameter], params: Mapping[str, Any]
) -> Mapping[str, Any]:
    """The row a context-taking default sees: values() of the statement, then params."""
    if not slot.row:
        return params
    current = {key: extracted[index].effective_value() for key, index in slot.row}
    current.update(params)
    return current


@attrs.frozen(slots=True, eq=False)
class Compiled:
    """A statement compiled for one dialect; shared by every statement of the same shape."""

    sql: str
    dialect_name: str
    slots: tuple[_Slot, ...]
    result_keys: tuple[str, ...]
    result_types: tuple[TypeEngine[Any], ...]
    result_processors: tuple[Callable[[Any], Any] | None, ...]
    returns_rows: bool
    is_ddl: bool = False
    is_insert: bool = False
    is_update: bool = False
    is_delete: bool = False
    param_names: tuple[str, ...] = ()
    known_keys: frozenset[str] = frozenset()
    # The slots flattened for the hot loop: (kind, index, key, processor, accepts, slot).
    # ``accepts`` is the type's cheap predicate; the full validator only words errors.
    _plan: tuple[tuple[Any, ...], ...] = attrs.field(init=False)
    # What the driver is told: rows (True), none (False), or "find out" (None: text()).
    driver_returns_rows: bool | None = attrs.field(init=False)
    # One slot for the engine to keep what it derives from this statement once (its
    # result metadata): the sql layer never reads it.
    engine_memo: list[Any] = attrs.field(init=False)
    # When every slot takes an execute-time parameter and none has a processor (the
    # flush's statements): (key, accepts, slot) per slot, for the fast path.
    _param_plan: tuple[tuple[str, Any, _Slot], ...] | None = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        plan = tuple(
            (slot.kind, slot.index, slot.key, slot.processor, _accepts_of(slot), slot)
            for slot in self.slots
        )
        object.__setattr__(self, "_plan", plan)
        returns: bool | None = None
        if self.returns_rows:
            returns = True
        elif self.is_ddl or self.is_insert or self.is_update or self.is_delete:
            returns = False
        object.__setattr__(self, "driver_returns_rows", returns)
        object.__setattr__(self, "engine_memo", [None])
        simple = all(
            kind in (_NAMED, _PARAM) and processor is None for kind, _, _, processor, _, _ in plan
        )
        param_plan = (
            tuple((key, accepts, slot) for _, _, key, _, accepts, slot in plan) if simple else None
        )
        object.__setattr__(self, "_param_plan", param_plan)

    def construct_params(
        self, extracted: Sequence[BindParameter], params: Mapping[str, Any] | None = None
    ) -> list[Any]:
        """The positional driver arguments, bind-processed.

        Raises ArgumentError naming missing parameters, or keys that match
        nothing in the statement.
        """
        if params is None:
            params = _EMPTY
        elif params and not self.known_keys.issuperset(params):
            unknown = sorted(set(params) - self.known_keys)
            raise exc.ArgumentError(
                f"Unknown parameter(s) {', '.join(map(repr, unknown))} for this statement; "
                f"it takes {', '.join(map(repr, sorted(self.known_keys))) or 'no parameters'}"
                f" [SQL: {self.sql}]"
            )
        param_plan = self._param_plan
        if param_plan is not None:
            # Every slot a parameter without processing: when each is given (the
            # usual case), only the type checks remain; else the general path below.
            values: list[Any] = []
            add = values.append
            for key, accepts, slot in param_plan:
                try:
                    value = params[key]
                except KeyError:
                    break
                if accepts is not None and value is not None and not accepts(value):
                    self._validate(slot, value)
                add(value)
            else:
                return values
        out: list[Any] = []
        append = out.append
        for kind, index, key, processor, accepts, slot in self._plan:
            if kind == _PARAM:
                try:
                    value = params[key]
                except KeyError:
                    raise self._missing(key) from None
                if accepts is not None and value is not None and not accepts(value):
                    self._validate(slot, value)
            elif kind == _BIND:
                bind = extracted[index]
                value = bind.value if bind.callable is None else bind.callable()
            elif kind == _NAMED:
                if key in params:
                    value = params[key]
                    if accepts is not None and value is not None and not accepts(value):
                        self._validate(slot, value)
                else:
                    bind = extracted[index]
                    if bind.required:
                        raise self._missing(key)
                    value = bind.value if bind.callable is None else bind.callable()
            elif kind == _EXPAND:
                seq: Any = extracted[slot.index].value
                item = slot.extra
                value = seq[item] if isinstance(item, int) else seq[item[0]][item[1]]
            else:
                default = slot.extra
                if default.is_callable:
                    value = (
                        default.arg(DefaultContext(_current_parameters(slot, extracted, params)))
                        if default.takes_context
                        else default.arg()
                    )
                else:
                    value = default.arg
            # Processors see None too: JSON stores null, a TypeDecorator may map it.
            if processor is not None:
                value = processor(value)
            append(value)
        return out

    def _missing(self, key: str) -> exc.ArgumentError:
        return exc.ArgumentError(f"A value is required for parameter {key!r} [SQL: {self.sql}]")

    def _validate(self, slot: _Slot, value: Any) -> None:
        assert slot.validator is not None
        try:
            slot.validator(value)
        except TypeError as err:
            raise exc.ArgumentError(
                f"Parameter {slot.key!r} got a value of type {type(value).__name__} "
                f"({value!r:.60}) it cannot bind: {err} [SQL: {self.sql}]"
            ) from None

    def __str__(self) -> str:
        return self.sql


_RESERVED = frozenset(
    """
    all analyse analyze and any array as asc asymmetric authorization between binary both case
    cast check collate collation column concurrently constraint create cross current_catalog
    current_date current_role current_schema current_time current_timestamp current_user
    default deferrable delete desc distinct do drop else end except exists false fetch for
    foreign freeze from full grant group having ilike in index initially inner insert
    intersect into is isnull join key lateral leading left like limit localtime localtimestamp
    natural not notnull null offset on only or order outer overlaps placing primary references
    returning right select session_user set similar some symmetric table tablesample then to
    trailing true union unique update user using values variadic verbose when where window
    with abort action add after attach autoincrement before begin by cascade conflict database
    detach each escape exclude exclusive explain fail filter first following generated glob
    groups if ignore immediate indexed instead last match materialized no nothing nulls of
    others over partition plan pragma preceding query raise range recursive regexp reindex
    release rename replace restrict rollback row rows savepoint temp temporary ties
    transaction trigger unbounded vacuum view virtual without commit
    """.split()  # noqa: SIM905 - a word list reads better as text
)
_LEGAL = re.compile(r"^[a-z_][a-z0-9_$]*$")


def quote_identifier(name: str) -> str:
    """Quote a name when it is reserved, mixed-case or not a plain identifier."""
    if _LEGAL.match(name) and name not in _RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


_BINARY_SQL = {
    ops.EQ: " = ",
    ops.NE: " != ",
    ops.LT: " < ",
    ops.LE: " <= ",
    ops.GT: " > ",
    ops.GE: " >= ",
    ops.ADD: " + ",
    ops.SUB: " - ",
    ops.MUL: " * ",
    ops.MOD: " % ",
    ops.CONCAT: " || ",
    ops.LIKE: " LIKE ",
    ops.NOT_LIKE: " NOT LIKE ",
    ops.IN: " IN ",
    ops.NOT_IN: " NOT IN ",
    ops.IS: " IS ",
    ops.IS_NOT: " IS NOT ",
    ops.AND: " AND ",
    ops.OR: " OR ",
}

# Operators whose rendering is more than "left OP right", by visitor method.
_SPECIAL_BINARY = {
    ops.BETWEEN: "visit_between_binary",
    ops.BETWEEN_SYMMETRIC: "visit_between_symmetric_binary",
    ops.ILIKE: "visit_ilike_binary",
    ops.NOT_ILIKE: "visit_not_ilike_binary",
    ops.TRUEDIV: "visit_truediv_binary",
    ops.FLOORDIV: "visit_floordiv_binary",
    ops.GETITEM: "visit_getitem_binary",
    ops.JSON_GETITEM: "visit_json_getitem_binary",
    ops.IS_DISTINCT_FROM: "visit_is_distinct_from_binary",
    ops.IS_NOT_DISTINCT_FROM: "visit_is_not_distinct_from_binary",
    ops.ARRAY_CONTAINS: "visit_array_contains_binary",
}

_NO_PAREN_FUNCTIONS = frozenset(
    {
        "current_date",
        "current_time",
        "current_timestamp",
        "current_user",
        "localtime",
        "localtimestamp",
        "session_user",
    }
)


class _SelectState:
    __slots__ = ("correlate_ids", "froms_ids")

    def __init__(self, froms_ids: set[int], correlate_ids: set[int]) -> None:
        self.froms_ids = froms_ids
        self.correlate_ids = correlate_ids


class SQLCompiler:
    """Renders one statement. Dialects subclass it to change what differs."""

    dialect_name = "default"
    paramstyle = "named"
    true_sql = "true"
    false_sql = "false"

    def __init__(
        self,
        dialect: Any,
        extracted: Sequence[BindParameter],
        column_keys: Sequence[str] | None = None,
        literal_binds: bool = False,
    ) -> None:
        self.dialect = dialect
        self.bind_index = {id(b): i for i, b in enumerate(extracted)}
        self.extracted = extracted
        self.column_keys = tuple(column_keys) if column_keys else ()
        self.literal_binds = literal_binds
        self.slots: list[_Slot] = []
        self.named_keys: set[str] = set()
        self.stack: list[_SelectState] = []
        self.ctes: OrderedDict[int, str] = OrderedDict()
        self.ctes_recursive = False
        self.anon_counter: dict[str, int] = {}
        self.result_columns: list[tuple[str, TypeEngine[Any]]] = []
        self.processors: dict[int, Callable[[Any], Any] | None] = {}
        self.in_ddl = False
        self.statement_kind = ""

    # -- entry point -----------------------------------------------------------
    def process(self, element: ClauseElement, **kw: Any) -> str:
        method = getattr(self, "visit_" + element.__visit_name__, None)
        if method is None:
            raise exc.UnsupportedCompilationError(
                f"The {self.dialect_name} compiler cannot render {type(element).__name__}"
            )
        return method(element, **kw)  # type: ignore[no-any-return]

    def compile_statement(self, statement: ClauseElement) -> Compiled:
        body = self.process(statement, toplevel=True)
        if self.ctes:
            keyword = "WITH RECURSIVE " if self.ctes_recursive else "WITH "
            body = keyword + ", ".join(self.ctes.values()) + " " + body
        sql, slots, names = self._number_placeholders(body)
        result_keys = tuple(k for k, _ in self.result_columns)
        result_types = tuple(t for _, t in self.result_columns)
        processors = tuple(t.result_processor(self.dialect) for t in result_types)
        known = set(self.named_keys)
        for slot in slots:
            if slot.kind in (_PARAM, _NAMED):
                known.add(slot.key)
        kind = self.statement_kind
        return Compiled(
            sql=sql,
            dialect_name=self.dialect_name,
            slots=tuple(slots),
            result_keys=result_keys,
            result_types=result_types,
            result_processors=processors,
            returns_rows=bool(self.result_columns),
            is_ddl=kind == "ddl",
            is_insert=kind == "insert",
            is_update=kind == "update",
            is_delete=kind == "delete",
            param_names=tuple(names),
            known_keys=frozenset(known),
        )

    def _number_placeholders(self, body: str) -> tuple[str, list[_Slot], list[str]]:
        slots: list[_Slot] = []
        names: list[str] = []

        def repl(match: re.Match[str]) -> str:
            slot = self.slots[int(match.group(1))]
            slots.append(slot)
            name = self._display_name(slot)
            names.append(name)
            return self.placeholder(len(slots), name)

        return _MARK_RE.sub(repl, body), slots, names

    def _display_name(self, slot: _Slot) -> str:
        if slot.kind in (_PARAM, _NAMED):
            return slot.key
        base = slot.key or "param"
        n = self.anon_counter.get(base, 0) + 1
        self.anon_counter[base] = n
        return f"{base}_{n}"

    def placeholder(self, position: int, name: str) -> str:
        return ":" + name

    def _add_slot(self, slot: _Slot) -> str:
        self.slots.append(slot)
        return f"{_MARK}{len(self.slots) - 1}{_MARK}"

    # -- identifiers -------------------------------------------------------------
    def quote(self, name: str) -> str:
        return quote_identifier(name)

    def format_table(self, table: Any) -> str:
        name = self.quote(table.name)
        if getattr(table, "schema", None):
            return self.quote(table.schema) + "." + name
        return name

    # -- bound values ------------------------------------------------------------
    def visit_bindparam(self, bind: BindParameter, **kw: Any) -> str:
        if self.literal_binds or bind.literal_execute:
            return self.render_literal(bind.effective_value(), bind.type)
        index = self.bind_index.get(id(bind))
        if index is None:
            raise exc.CompileError(
                f"Parameter {bind.key!r} is not part of the statement being compiled "
                "(was it attached after the statement was built?)"
            )
        processor = bind.type.bind_processor(self.dialect)
        if bind.expanding:
            return self._expanding(bind, index, processor, kw.get("in_types"))
        if bind.unique:
            return self._add_slot(_Slot(_BIND, index, bind.key, processor))
        self.named_keys.add(bind.key)
        validator = None if isinstance(bind.type, NullType) else bind.type.validate_bind_value
        return self._add_slot(_Slot(_NAMED, index, bind.key, processor, None, validator))

    def _expanding(
        self,
        bind: BindParameter,
        index: int,
        processor: Callable[[Any], Any] | None,
        in_types: Sequence[TypeEngine[Any]] | None,
    ) -> str:
        # in_types: the types of the left side of IN, one per tuple position.
        values = bind.value
        if values is None:
            raise exc.CompileError(
                f"Expanding parameter {bind.key!r} needs its list of values when the "
                "statement is built: bindparam(key, [values...], expanding=True)"
            )
        if not values:
            return self.empty_in(in_types or (bind.type,))
        if isinstance(values[0], tuple):
            processors = [t.bind_processor(self.dialect) for t in in_types or ()]
            rows = []
            for i, row in enumerate(values):
                cells = [
                    self._add_slot(
                        _Slot(
                            _EXPAND,
                            index,
                            bind.key,
                            processors[j] if j < len(processors) else None,
                            (i, j),
                        )
                    )
                    for j in range(len(row))
                ]
                rows.append("(" + ", ".join(cells) + ")")
            return "(" + ", ".join(rows) + ")"
        cells = [
            self._add_slot(_Slot(_EXPAND, index, bind.key, processor, i))
            for i in range(len(values))
        ]
        return "(" + ", ".join(cells) + ")"

    def empty_in(self, types: Sequence[TypeEngine[Any]]) -> str:
        """An empty set for ``IN``: no row, one column per compared expression."""
        return "(SELECT " + ", ".join("1" for _ in types) + " WHERE 1 != 1)"

    def render_literal(self, value: Any, type_: TypeEngine[Any]) -> str:
        """A value as SQL text; only DDL (defaults, CHECK, index expressions) uses this."""
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return self.true_sql if value else self.false_sql
        if isinstance(value, (int, float, decimal.Decimal)):
            return repr(value) if not isinstance(value, decimal.Decimal) else str(value)
        if isinstance(value, str):
            return "'" + value.replace("'", "''") + "'"
        if isinstance(value, (datetime.date, datetime.time)):
            return (
                "'" + value.isoformat(sep=" ") + "'"
                if isinstance(value, datetime.datetime)
                else "'" + value.isoformat() + "'"
            )
        if hasattr(value, "name") and hasattr(value, "value"):  # enum members
            return "'" + str(value.name).replace("'", "''") + "'"
        raise exc.CompileError(
            f"Can't render a {type(value).__name__} value as a SQL literal in DDL"
        )

    # -- columns and simple elements ------------------------------------------------
    def visit_column(self, column: ColumnClause, include_table: bool = True, **kw: Any) -> str:
        name = column.name if column.is_literal else self.quote(column.name)
        table = column.table
        if table is None or not include_table or self.in_ddl:
            return name
        if getattr(table, "named_with_column", False):
            if isinstance(table, CTE) or not hasattr(table, "fullname"):
                return self.quote(getattr(table, "name", "")) + "." + name
            return self.format_table(table) + "." + name
        return name

    def visit_clause_proxy(self, element: Any, **kw: Any) -> str:
        """An object standing for an element (an ORM attribute for its column)."""
        return self.process(element.__clause_element__(), **kw)

    def visit_literal_column(self, element: Any, **kw: Any) -> str:
        return str(element.text)

    def visit_textlabel(self, element: Any, **kw: Any) -> str:
        return self.quote(element.text)

    def visit_null(self, element: Any, **kw: Any) -> str:
        return "NULL"

    def visit_true(self, element: Any, **kw: Any) -> str:
        return self.true_sql

    def visit_false(self, element: Any, **kw: Any) -> str:
        return self.false_sql

    def visit_grouping(self, element: Any, **kw: Any) -> str:
        return "(" + self.process(element.element, **kw) + ")"

    def visit_label(self, label: Label, **kw: Any) -> str:
        # Outside the columns clause a label is just its expression; the columns
        # clause writes "AS name" itself (see _select_column).
        return self.process(label.element, **kw)

    def visit_cast(self, cast: Any, **kw: Any) -> str:
        type_sql: str = cast.type.compile_ddl(self.dialect)
        return "CAST(" + self.process(cast.clause, **kw) + " AS " + type_sql + ")"

    def visit_type_coerce(self, element: Any, **kw: Any) -> str:
        return self.process(element.clause, **kw)

    def visit_collate(self, element: Any, **kw: Any) -> str:
        return self.process(element.element, **kw) + " COLLATE " + self.quote(element.collation)

    def visit_clauselist(self, clauselist: Any, **kw: Any) -> str:
        sep = ", " if clauselist.operator == ops.COMMA else _BINARY_SQL[clauselist.operator]
        return sep.join(self.process(c, **kw) for c in clauselist.clauses)

    def visit_boolean_list(self, clauselist: Any, **kw: Any) -> str:
        if not clauselist.clauses:
            # and_() of nothing is true, or_() of nothing is false.
            return self.true_sql if clauselist.operator == ops.AND else self.false_sql
        sep = _BINARY_SQL[clauselist.operator]
        return sep.join(self.process(c, **kw) for c in clauselist.clauses)

    def visit_tuple(self, element: Any, **kw: Any) -> str:
        return "(" + ", ".join(self.process(c, **kw) for c in element.clauses) + ")"

    def visit_case(self, case: Any, **kw: Any) -> str:
        parts = ["CASE"]
        if case.value is not None:
            parts.append(self.process(case.value, **kw))
        for cond, result in case.whens:
            if case.value is not None and hasattr(cond, "right"):
                cond_sql = self.process(cond.right, **kw)
            else:
                cond_sql = self.process(cond, **kw)
            parts.append("WHEN " + cond_sql + " THEN " + self.process(result, **kw))
        if case.else_ is not None:
            parts.append("ELSE " + self.process(case.else_, **kw))
        parts.append("END")
        return " ".join(parts)

    def visit_function(self, fn: Any, **kw: Any) -> str:
        name = self.function_name(fn)
        if name.lower() in _NO_PAREN_FUNCTIONS and not fn.clauses:
            text = name.upper()
        else:
            if not fn.clauses and name.lower() == "count":
                args = "*"
            else:
                args = ", ".join(self.process(c, **kw) for c in fn.clauses)
            text = name + "(" + args + ")"
        if fn.packagenames:
            text = ".".join(self.quote(p) for p in fn.packagenames) + "." + text
        if fn._filter is not None:
            text += " FILTER (WHERE " + self.process(fn._filter, **kw) + ")"
        return text

    def function_name(self, fn: Any) -> str:
        name: str = fn.fn_name
        return name if _LEGAL.match(name.lower()) else self.quote(name)

    def visit_over(self, over: Any, **kw: Any) -> str:
        parts = []
        if over.partition_by:
            parts.append(
                "PARTITION BY " + ", ".join(self.process(c, **kw) for c in over.partition_by)
            )
        if over.order_by:
            parts.append("ORDER BY " + ", ".join(self.process(c, **kw) for c in over.order_by))
        return self.process(over.element, **kw) + " OVER (" + " ".join(parts) + ")"

    def visit_within_group(self, element: Any, **kw: Any) -> str:
        return (
            self.process(element.element, **kw)
            + " WITHIN GROUP (ORDER BY "
            + ", ".join(self.process(c, **kw) for c in element.order_by)
            + ")"
        )

    # -- operators -------------------------------------------------------------------
    def visit_binary(self, binary: Any, **kw: Any) -> str:
        kw.pop("in_types", None)  # meant for this binary's own right side only
        op = binary.operator
        special = _SPECIAL_BINARY.get(op)
        if special is not None:
            return getattr(self, special)(binary, **kw)  # type: ignore[no-any-return]
        left = self.process(binary.left, **kw)
        if op == ops.IN or op == ops.NOT_IN:
            types = (
                [c.type for c in binary.left.clauses]
                if isinstance(binary.left, Tuple)
                else [binary.left.type]
            )
            right = self.process(binary.right, in_types=types, **kw)
        else:
            right = self.process(binary.right, **kw)
        if op.startswith(ops.CUSTOM_PREFIX):
            return left + " " + ops.custom_sql(op) + " " + right
        text = left + _BINARY_SQL[op] + right
        if binary.escape is not None:
            text += " ESCAPE " + self.render_literal(binary.escape, NullType())
        return text

    def visit_between_binary(self, binary: Any, **kw: Any) -> str:
        return self._between(binary, " BETWEEN ", **kw)

    def visit_between_symmetric_binary(self, binary: Any, **kw: Any) -> str:
        return self._between(binary, " BETWEEN SYMMETRIC ", **kw)

    def _between(self, binary: Any, keyword: str, **kw: Any) -> str:
        low, high = binary.right.element.clauses
        return (
            self.process(binary.left, **kw)
            + keyword
            + self.process(low, **kw)
            + " AND "
            + self.process(high, **kw)
        )

    def _like(self, binary: Any, keyword: str, **kw: Any) -> str:
        text = self.process(binary.left, **kw) + keyword + self.process(binary.right, **kw)
        if binary.escape is not None:
            text += " ESCAPE " + self.render_literal(binary.escape, NullType())
        return text

    def visit_ilike_binary(self, binary: Any, **kw: Any) -> str:
        return self._like(binary, " ILIKE ", **kw)

    def visit_not_ilike_binary(self, binary: Any, **kw: Any) -> str:
        return self._like(binary, " NOT ILIKE ", **kw)

    def _both_integer(self, binary: Any) -> bool:
        return isinstance(binary.left.type, Integer) and isinstance(binary.right.type, Integer)

    def visit_truediv_binary(self, binary: Any, **kw: Any) -> str:
        left = self.process(binary.left, **kw)
        right = self.process(binary.right, **kw)
        if self._both_integer(binary):
            right = "CAST(" + right + " AS " + self.true_division_cast + ")"
        return left + " / " + right

    true_division_cast = "NUMERIC"

    def visit_floordiv_binary(self, binary: Any, **kw: Any) -> str:
        left = self.process(binary.left, **kw)
        right = self.process(binary.right, **kw)
        if self._both_integer(binary):
            return left + " / " + right
        return "FLOOR(" + left + " / " + right + ")"

    def visit_is_distinct_from_binary(self, binary: Any, **kw: Any) -> str:
        return (
            self.process(binary.left, **kw)
            + " IS DISTINCT FROM "
            + self.process(binary.right, **kw)
        )

    def visit_is_not_distinct_from_binary(self, binary: Any, **kw: Any) -> str:
        return (
            self.process(binary.left, **kw)
            + " IS NOT DISTINCT FROM "
            + self.process(binary.right, **kw)
        )

    def visit_array_contains_binary(self, binary: Any, **kw: Any) -> str:
        return self.process(binary.left, **kw) + " @> " + self.process(binary.right, **kw)

    def visit_getitem_binary(self, binary: Any, **kw: Any) -> str:
        return self.process(binary.left, **kw) + "[" + self.process(binary.right, **kw) + "]"

    def visit_json_getitem_binary(self, binary: Any, **kw: Any) -> str:
        return self.process(binary.left, **kw) + " -> " + self.process(binary.right, **kw)

    def visit_unary(self, unary: Any, **kw: Any) -> str:
        inner = self.process(unary.element, **kw)
        op = unary.operator
        if op is not None:
            if op == ops.NOT:
                inner = "NOT " + inner
            elif op == ops.NEG:
                # Two minus signs in a row would start a comment.
                inner = "-(" + inner + ")" if inner.startswith("-") else "-" + inner
            elif op == ops.DISTINCT:
                inner = "DISTINCT " + inner
            elif op == ops.EXISTS:
                inner = "EXISTS " + inner
            elif op == ops.ANY:
                inner = "ANY (" + inner + ")"
            elif op == ops.ALL:
                inner = "ALL (" + inner + ")"
        modifier = unary.modifier
        if modifier is not None:
            inner += {
                ops.ASC: " ASC",
                ops.DESC: " DESC",
                ops.NULLS_FIRST: " NULLS FIRST",
                ops.NULLS_LAST: " NULLS LAST",
            }[modifier]
        return inner

    # -- text --------------------------------------------------------------------------
    _TEXT_BIND = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")

    def visit_textclause(self, clause: TextClause, **kw: Any) -> str:
        binds = clause._bindparams

        def repl(match: re.Match[str]) -> str:
            return self.process(binds[match.group(1)], **kw)

        text = self._TEXT_BIND.sub(repl, clause.text)
        return text.replace("\\:", ":")

    def visit_textual_select(self, element: Any, toplevel: bool = False, **kw: Any) -> str:
        if toplevel:
            self.result_columns = [(c.key, c.type) for c in element.column_args]
        return self.process(element.element, **kw)

    # -- SELECT ----------------------------------------------------------------------
    def visit_scalar_select(self, element: ScalarSelect, **kw: Any) -> str:
        return "(" + self.process(element.element, nested=True, **_strip(kw)) + ")"

    def visit_select(
        self,
        select: Select,
        toplevel: bool = False,
        nested: bool = False,
        in_from: bool = False,
        **kw: Any,
    ) -> str:
        if toplevel:
            self.statement_kind = "select"
        for cte in select._ctes:
            self._register_cte(cte)
        froms = select.get_final_froms()
        enclosing = self.stack[-1] if self.stack else None
        if nested and enclosing is not None:
            froms = self._correlate(select, froms, enclosing)
        froms_ids: set[int] = set()
        for from_ in froms:
            froms_ids.update(id(b) for b in from_.base_froms())
        if enclosing is not None and nested:
            froms_ids |= enclosing.froms_ids
        self.stack.append(_SelectState(froms_ids, set()))
        try:
            columns = select.selected_columns
            names = [name for name, _ in _named_columns(columns)]
            parts = []
            for column, name in zip(columns, names, strict=True):
                parts.append(self._select_column(column, name))
            if toplevel:
                self.result_columns = [(n, c.type) for c, n in zip(columns, names, strict=True)]
            text = "SELECT "
            if select._distinct:
                text += self.distinct_clause(select)
            text += ", ".join(parts)
            if froms:
                text += " FROM " + ", ".join(self.process(f, in_from=True) for f in froms)
            elif self.requires_from_dummy:
                text += self.requires_from_dummy
            if select._where:
                text += " WHERE " + self._and(select._where)
            if select._group_by:
                text += " GROUP BY " + ", ".join(self.process(g) for g in select._group_by)
            if select._having:
                text += " HAVING " + self._and(select._having)
            text += self._order_limit(select)
            if select._for_update is not None:
                text += self.for_update_clause(select._for_update)
        finally:
            self.stack.pop()
        if in_from:
            return "(" + text + ")"
        return text

    requires_from_dummy = ""

    def _select_column(self, column: ColumnElement, name: str) -> str:
        if isinstance(column, Label):
            inner = self.process(column.element)
            return inner + " AS " + self.quote(name)
        text = self.process(column)
        base = column
        if column.__visit_name__ == "clause_proxy":
            base = column.__clause_element__()  # type: ignore[attr-defined]
        natural = base.name if isinstance(base, ColumnClause) else None
        if natural == name:
            return text
        return text + " AS " + self.quote(name)

    def _and(self, criteria: Sequence[ColumnElement]) -> str:
        if len(criteria) == 1:
            return self.process(criteria[0])
        return " AND ".join(self.process(c.self_group(ops.AND)) for c in criteria)

    def _order_limit(self, select: Any) -> str:
        text = ""
        if select._order_by:
            text += " ORDER BY " + ", ".join(self.process(o) for o in select._order_by)
        text += self.limit_clause(select)
        return text

    def limit_clause(self, select: Any) -> str:
        text = ""
        if select._limit is not None:
            text += " LIMIT " + self.process(select._limit)
        if select._offset is not None:
            text += " OFFSET " + self.process(select._offset)
        return text

    def distinct_clause(self, select: Select) -> str:
        if select._distinct_on:
            raise exc.CompileError(
                f"DISTINCT ON is PostgreSQL-only; the {self.dialect_name} dialect can't render it"
            )
        return "DISTINCT "

    def for_update_clause(self, for_update: Any) -> str:
        text = " FOR SHARE" if for_update.read else " FOR UPDATE"
        if for_update.key_share:
            text = " FOR KEY SHARE" if for_update.read else " FOR NO KEY UPDATE"
        if for_update.of:
            names = []
            for item in for_update.of:
                table: Any = item.table if isinstance(item, ColumnClause) else item
                names.append(self.quote(table.name))
            text += " OF " + ", ".join(dict.fromkeys(names))
        if for_update.nowait:
            text += " NOWAIT"
        if for_update.skip_locked:
            text += " SKIP LOCKED"
        return text

    def _correlate(
        self, select: Select, froms: list[FromClause], enclosing: _SelectState
    ) -> list[FromClause]:
        if select._correlate is not None:
            allowed = {id(b) for f in select._correlate for b in f.base_froms()}
            return [
                f
                for f in froms
                if not all(
                    id(b) in allowed and id(b) in enclosing.froms_ids for b in f.base_froms()
                )
            ]
        remaining = [
            f for f in froms if not all(id(b) in enclosing.froms_ids for b in f.base_froms())
        ]
        if froms and not remaining:
            raise exc.CompileError(
                "A subquery lost all its FROM entries to auto-correlation with the enclosing "
                "statement; use .correlate(None) or an alias to select from the same table"
            )
        return remaining

    def visit_compound_select(
        self, compound: Any, toplevel: bool = False, in_from: bool = False, **kw: Any
    ) -> str:
        if toplevel:
            self.statement_kind = "select"
            columns = compound.selected_columns
            names = [name for name, _ in _named_columns(columns)]
            self.result_columns = [(n, c.type) for c, n in zip(columns, names, strict=True)]
        parts = []
        for select in compound.selects:
            inner = self.process(select, **_strip(kw))
            if (
                select._order_by
                or select._limit is not None
                or select._offset is not None
                or not isinstance(select, Select)
            ):
                inner = self.group_compound_member(inner)
            parts.append(inner)
        text: str = (" " + compound.keyword + " ").join(parts) + self._order_limit(compound)
        if in_from:
            return "(" + text + ")"
        return text

    def group_compound_member(self, inner: str) -> str:
        """A member with its own ORDER BY/LIMIT, or itself a compound, kept apart."""
        return "(" + inner + ")"

    # -- FROM ------------------------------------------------------------------------
    def visit_table(self, table: Any, **kw: Any) -> str:
        return self.format_table(table)

    def visit_alias(self, alias: Any, in_from: bool = False, **kw: Any) -> str:
        if in_from:
            return self.process(alias.element, in_from=True) + " AS " + self.quote(alias.name)
        return self.quote(alias.name)

    def visit_subquery(self, subquery: Any, in_from: bool = False, **kw: Any) -> str:
        if in_from:
            saved = self.stack
            self.stack = []
            try:
                inner = self.process(subquery.element)
            finally:
                self.stack = saved
            return "(" + inner + ") AS " + self.quote(subquery.name)
        return self.quote(subquery.name)

    def visit_cte(self, cte: CTE, **kw: Any) -> str:
        self._register_cte(cte)
        return self.quote(cte.name)

    def _register_cte(self, cte: CTE) -> None:
        if cte._serial in self.ctes:
            return
        self.ctes[cte._serial] = ""  # reserve the position; a recursive body refers to itself
        if cte.recursive:
            self.ctes_recursive = True
        saved = self.stack
        self.stack = []
        try:
            body = self.process(cte.element)
        finally:
            self.stack = saved
        names = ", ".join(self.quote(c.name) for c in cte.c)
        header = self.quote(cte.name)
        if cte.recursive:
            header += " (" + names + ")"
        self.ctes[cte._serial] = header + " AS (" + body + ")"

    def visit_join(self, join: Join, **kw: Any) -> str:
        if join.full:
            keyword = " FULL OUTER JOIN "
        elif join.isouter:
            keyword = " LEFT OUTER JOIN "
        else:
            keyword = " JOIN "
        return (
            self.process(join.left, in_from=True)
            + keyword
            + self.process(join.right, in_from=True)
            + " ON "
            + self.process(join.onclause)
        )

    # -- DML --------------------------------------------------------------------------
    def _returning(self, stmt: Any) -> str:
        if not stmt._returning:
            return ""
        names = [name for name, _ in _named_columns(stmt._returning)]
        self.result_columns = [(n, c.type) for c, n in zip(stmt._returning, names, strict=True)]
        parts = [self._select_column(c, n) for c, n in zip(stmt._returning, names, strict=True)]
        return " RETURNING " + ", ".join(parts)

    def _param_slot(self, column: Any) -> str:
        type_ = column.type
        processor = type_.bind_processor(self.dialect)
        validator = None if isinstance(type_, NullType) else type_.validate_bind_value
        return self._add_slot(_Slot(_PARAM, -1, column.key, processor, None, validator))

    def _default_slot(
        self, column: Any, default: Any, values: Mapping[Any, ColumnElement] | None = None
    ) -> str:
        """A column default; ``values`` (column -> expression) is the row it belongs to."""
        processor = column.type.bind_processor(self.dialect)
        row: tuple[tuple[str, int], ...] = ()
        if default.is_callable and default.takes_context and values:
            row = tuple(
                (c.key, self.bind_index[id(v)])
                for c, v in values.items()
                if isinstance(v, BindParameter) and v.unique and not v.expanding
            )
        return self._add_slot(_Slot(_DEFAULT, -1, column.key, processor, default, row=row))

    def _statement_param_keys(self, stmt: Any) -> set[str]:
        return {b.key for b in self.extracted if not b.unique}

    def visit_insert(self, stmt: Any, **kw: Any) -> str:
        self.statement_kind = "insert"
        table = stmt.table
        self.stack.append(_SelectState({id(table)}, set()))
        try:
            text = "INSERT INTO " + self.format_table(table)
            if stmt._from_select is not None:
                names = ", ".join(self.quote(c.name) for c in stmt._select_names)
                text += " (" + names + ") " + self.process(stmt._from_select)
            elif stmt._multi_values:
                columns = list(stmt._multi_columns)
                for column in table.c:
                    if column.default is not None and column not in columns:
                        columns.append(column)
                text += " (" + ", ".join(self.quote(c.name) for c in columns) + ") VALUES "
                rows = []
                for row in stmt._multi_values:
                    cells = []
                    for i, column in enumerate(columns):
                        value = row[i] if i < len(row) else None
                        if value is not None:
                            cells.append(self.process(value))
                        elif column.default is not None:
                            cells.append(
                                self._default_slot(
                                    column,
                                    column.default,
                                    {
                                        c: v
                                        for c, v in zip(columns, row, strict=False)
                                        if v is not None
                                    },
                                )
                            )
                        else:
                            cells.append("NULL")
                    rows.append("(" + ", ".join(cells) + ")")
                text += ", ".join(rows)
            else:
                param_keys = self._dml_column_keys(stmt, "INSERT into")
                columns_sql: list[str] = []
                values_sql: list[str] = []
                for column in table.c:
                    if column.key in param_keys:
                        value_sql = self._param_slot(column)
                    elif column in stmt._values:
                        value_sql = self.process(stmt._values[column])
                    elif column.default is not None:
                        value_sql = self._default_slot(column, column.default, stmt._values)
                    else:
                        continue
                    columns_sql.append(self.quote(column.name))
                    values_sql.append(value_sql)
                if columns_sql:
                    text += (
                        " (" + ", ".join(columns_sql) + ") VALUES (" + ", ".join(values_sql) + ")"
                    )
                else:
                    text += self.default_values_clause
            if stmt._conflict is not None:
                text += self.on_conflict_clause(stmt._conflict)
            text += self._returning(stmt)
        finally:
            self.stack.pop()
        return text

    default_values_clause = " DEFAULT VALUES"

    def _dml_column_keys(self, stmt: Any, what: str) -> set[str]:
        if not self.column_keys:
            return set()
        named = self._statement_param_keys(stmt)
        keys = set()
        for key in self.column_keys:
            if key in named:
                continue
            if key not in stmt.table.c:
                raise exc.ArgumentError(
                    f"Unknown column {key!r} in the parameters for {what} "
                    f"{stmt.table.description!r}; the columns are "
                    f"{', '.join(stmt.table.c.keys())}"
                )
            keys.add(key)
        return keys

    def on_conflict_clause(self, conflict: Any) -> str:
        text = " ON CONFLICT"
        if conflict.constraint is not None:
            text += " ON CONSTRAINT " + self.quote(conflict.constraint)
        elif conflict.index_elements:
            text += (
                " ("
                + ", ".join(self.process(e, include_table=False) for e in conflict.index_elements)
                + ")"
            )
            if conflict.index_where is not None:
                # Literal values: PostgreSQL matches a partial index by its predicate,
                # and cannot see through a parameter.
                saved, self.literal_binds = self.literal_binds, True
                try:
                    text += " WHERE " + self.process(conflict.index_where, include_table=False)
                finally:
                    self.literal_binds = saved
        if conflict.set_ is None:
            return text + " DO NOTHING"
        sets = ", ".join(
            self.quote(column.name) + " = " + self.process(value) for column, value in conflict.set_
        )
        text += " DO UPDATE SET " + sets
        if conflict.where is not None:
            text += " WHERE " + self.process(conflict.where)
        return text

    def visit_excluded(self, element: Any, **kw: Any) -> str:
        return "excluded." + self.quote(element.column.name)

    def visit_update(self, stmt: Any, **kw: Any) -> str:
        self.statement_kind = "update"
        table = stmt.table
        self.stack.append(_SelectState({id(table)}, set()))
        try:
            param_keys = self._dml_column_keys(stmt, "UPDATE of")
            sets = []
            for column in table.c:
                if column.key in param_keys:
                    value_sql = self._param_slot(column)
                elif column in stmt._values:
                    value_sql = self.process(stmt._values[column])
                else:
                    continue
                sets.append(self.quote(column.name) + " = " + value_sql)
            if not sets:
                raise exc.CompileError(
                    f"UPDATE of {table.description!r} has no values to SET; call .values(...) "
                    "or execute it with parameters"
                )
            for column in table.c:
                if (
                    column.onupdate is not None
                    and column.key not in param_keys
                    and column not in stmt._values
                ):
                    sets.append(
                        self.quote(column.name)
                        + " = "
                        + self._default_slot(column, column.onupdate, stmt._values)
                    )
            text = "UPDATE " + self.format_table(table) + " SET " + ", ".join(sets)
            extra = self._extra_froms(stmt)
            if extra:
                text += " FROM " + ", ".join(self.process(f, in_from=True) for f in extra)
            if stmt._where:
                text += " WHERE " + self._and(stmt._where)
            text += self._returning(stmt)
        finally:
            self.stack.pop()
        return text

    def _extra_froms(self, stmt: Any) -> list[FromClause]:
        from asyncsession.sql.selectable import _froms_of

        out: list[FromClause] = []
        for criterion in stmt._where:
            for from_ in _froms_of(criterion):
                if from_ is not stmt.table and all(f is not from_ for f in out):
                    out.append(from_)
        if out:
            self.stack[-1].froms_ids.update(id(b) for f in out for b in f.base_froms())
        return out

    def visit_delete(self, stmt: Any, **kw: Any) -> str:
        self.statement_kind = "delete"
        table = stmt.table
        self.stack.append(_SelectState({id(table)}, set()))
        try:
            text = "DELETE FROM " + self.format_table(table)
            extra = self._extra_froms(stmt)
            if extra:
                text += self.delete_extra_from(extra)
            if stmt._where:
                text += " WHERE " + self._and(stmt._where)
            text += self._returning(stmt)
        finally:
            self.stack.pop()
        return text

    def delete_extra_from(self, extra: list[FromClause]) -> str:
        return " USING " + ", ".join(self.process(f, in_from=True) for f in extra)


def _strip(kw: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v for k, v in kw.items() if k not in ("toplevel", "in_from", "nested", "within_columns")
    }


class Dialect:
    """A database's SQL rules plus the per-engine settings they need.

    ``compile()`` is the only entry point the engine uses. The cache is a bounded
    LRU per dialect instance, keyed by statement shape and the execute-time
    parameter keys.
    """

    name = "default"
    compiler_class: type[SQLCompiler] = SQLCompiler
    max_bind_params = 32766
    #: Parameters per multi-row INSERT of a flush at most, for a driver that works
    #: better below some statement size; None: only ``max_bind_params`` counts.
    insert_batch_params: int | None = None
    supports_returning = True
    #: PREPARE TRANSACTION / COMMIT PREPARED / ROLLBACK PREPARED (two-phase commit).
    supports_two_phase = False
    cache_size = 500

    def __init__(
        self,
        json_serializer: Callable[[Any], str] | None = None,
        json_deserializer: Callable[[str], Any] | None = None,
    ) -> None:
        self.json_serializer = json_serializer
        self.json_deserializer = json_deserializer
        self._cache: OrderedDict[Any, Compiled] = OrderedDict()
        self._lock = threading.Lock()
        self.cache_hits = 0
        self.cache_misses = 0

    def two_phase_sql(self, command: str, xid: str) -> str:
        """The SQL of one step of a two-phase commit: ``command`` is ``"PREPARE"``,
        ``"COMMIT"`` or ``"ROLLBACK"``, ``xid`` the transaction's id.

        Raises NotSupportedError when the database has no two-phase commit,
        ArgumentError for an id it can't take.
        """
        raise self._no_two_phase()

    def recover_two_phase_sql(self) -> str:
        """A query whose one column lists the ids of this database's prepared transactions."""
        raise self._no_two_phase()

    def _no_two_phase(self) -> exc.NotSupportedError:
        return exc.NotSupportedError(
            f"The {self.name} database has no two-phase commit (prepared transactions): "
            "begin_twophase(), AsyncSession(twophase=True), recover_twophase(), "
            "commit_prepared() and rollback_prepared() need PostgreSQL"
        )

    def compile(
        self, statement: ClauseElement, column_keys: Sequence[str] | None = None
    ) -> tuple[Compiled, list[BindParameter]]:
        """(Compiled, extracted bind values) for ``statement``, from the cache when possible."""
        memo = getattr(statement, "_ck_memo", None)
        if memo is not None:
            key, binds = memo
            extracted = list(binds)
        else:
            extracted = []
            key = statement._ck(extracted)
            if key is not None and hasattr(statement, "_ck_memo"):
                statement._ck_memo = (key, tuple(extracted))
        if key is not None:
            cache_key = (key, tuple(column_keys) if column_keys else None)
            cache = self._cache
            compiled = cache.get(cache_key)
            if compiled is not None:
                self.cache_hits += 1
                return compiled, extracted
        compiled = self.compiler_class(self, extracted, column_keys).compile_statement(statement)
        if key is not None:
            self.cache_misses += 1
            with self._lock:
                self._cache[cache_key] = compiled
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return compiled, extracted

    def clear_compiled_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class DisplayCompiled:
    """What ``stmt.compile()`` returns: readable SQL and the parameter values by name."""

    __slots__ = ("compiled", "params", "sql")

    def __init__(self, compiled: Compiled, params: dict[str, Any]) -> None:
        self.compiled = compiled
        self.sql = compiled.sql
        self.params = params

    def __str__(self) -> str:
        return self.sql

    def __repr__(self) -> str:
        return f"<Compiled {self.sql!r}>"


def compile_for_display(statement: ClauseElement, dialect: Any = None) -> DisplayCompiled:
    """Compile with the given dialect (default: generic, ``:name`` parameters)."""
    if dialect is None:
        from asyncsession.sql.dialects.default import DEFAULT_DIALECT

        dialect = DEFAULT_DIALECT
    compiled, extracted = dialect.compile(statement)
    params: dict[str, Any] = {}
    for name, slot in zip(compiled.param_names, compiled.slots, strict=True):
        if slot.kind in (_BIND, _NAMED):
            params[name] = extracted[slot.index].effective_value()
        elif slot.kind == _EXPAND:
            seq = extracted[slot.index].value
            item = slot.extra
            params[name] = seq[item] if isinstance(item, int) else seq[item[0]][item[1]]
        else:
            params[name] = None
    return DisplayCompiled(compiled, params)
