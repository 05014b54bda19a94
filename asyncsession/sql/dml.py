"""INSERT, UPDATE and DELETE statements.

How this works:

* Statements are generative like SELECT. ``values()`` takes keyword arguments,
  one dict, or a list of dicts (a multi-row VALUES). Keys are column keys and
  are checked against the table at once: an unknown key raises ``ArgumentError``
  naming it and the table's columns, before anything runs.
* Executed with parameters instead (``conn.execute(insert(t), [{...}, ...])``),
  the statement's column set comes from the parameter keys; the compiler is
  given those keys and they are part of the cache key.
* ``on_conflict_do_nothing`` / ``on_conflict_do_update`` render
  ``ON CONFLICT ... DO ...`` on both PostgreSQL and SQLite, which share the
  syntax; ``stmt.excluded`` names the row that was proposed for insertion.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Self

from asyncsession import exc
from asyncsession.sql.elements import (
    BindParameter,
    ClauseElement,
    ColumnClause,
    ColumnElement,
    Hashable_,
    and_,
    coerce_expression,
    coerce_where,
)
from asyncsession.sql.selectable import (
    ColumnCollection,
    FromClause,
    ScalarSelect,
    Select,
    _coerce_from,
    _SelectBase,
    _slot_names,
)


def _value_expression(column: Any, value: Any) -> ColumnElement:
    if isinstance(value, BindParameter):
        return value._typed_after(column.type)
    if isinstance(value, ColumnElement):
        return value
    if isinstance(value, _SelectBase):
        return ScalarSelect(value)
    if hasattr(value, "__clause_element__"):
        return coerce_expression(value)
    if isinstance(value, ClauseElement):
        raise exc.ArgumentError(
            f"Value for {column.describe()} must be a Python value or column expression, "
            f"got {type(value).__name__}"
        )
    if value is None:
        return BindParameter(column.key, None, type_=column.type, unique=True, _checked=True)
    try:
        column.type.validate_bind_value(value)
    except TypeError as err:
        raise exc.ArgumentError(
            f"Cannot use a value of type {type(value).__name__} ({value!r:.60}) for "
            f"{column.describe()} of type {type(column.type).__name__}: {err}"
        ) from None
    return BindParameter(column.key, value, type_=column.type, unique=True, _checked=True)


class _DMLBase(ClauseElement):
    """What INSERT, UPDATE and DELETE share: the target table and RETURNING."""

    __slots__ = ("_ck_memo", "_execution_options", "_returning", "table")
    is_selectable = False

    def _clone(self) -> Self:
        cls = type(self)
        new = cls.__new__(cls)
        for slot in _slot_names(cls):
            setattr(new, slot, getattr(self, slot))
        new._ck_memo = None  # a changed copy has its own cache key
        return new

    def _init_table(self, table: Any) -> None:
        target = _coerce_from(table)
        if not hasattr(target, "fullname"):
            raise exc.ArgumentError(
                f"{type(self).__name__.upper()} needs a table, got {target.description!r}"
            )
        self.table: Any = target
        self._returning: tuple[ColumnElement, ...] = ()
        self._execution_options: Mapping[str, Any] = {}
        # (cache key, bind parameters) once compiled: statements never change in
        # place, so executing one statement object again (the flush's templates)
        # skips walking it. See Dialect.compile().
        self._ck_memo: tuple[Any, tuple[BindParameter, ...]] | None = None

    def _column(self, key: Any) -> Any:
        if isinstance(key, str):
            column = self.table.c.get(key)
            if column is None:
                raise exc.ArgumentError(
                    f"Unknown column {key!r} for table {self.table.description!r} in "
                    f"{type(self).__name__.upper()}; the columns are "
                    f"{', '.join(self.table.c.keys())}"
                )
            return column
        if hasattr(key, "__clause_element__"):
            key = key.__clause_element__()
        if isinstance(key, ColumnClause) and self.table.c.contains_column(key):
            return key
        raise exc.ArgumentError(f"{key!r:.60} is not a column of table {self.table.description!r}")

    def returning(self, *cols: Any) -> Any:
        """Return rows of these columns (or all columns of a table given here)."""
        new = self._clone()
        out: list[ColumnElement] = list(self._returning)
        for col in cols:
            if isinstance(col, FromClause):
                out.extend(col.c)
            else:
                out.append(coerce_expression(col))
        new._returning = tuple(out)
        return new

    @property
    def selected_columns(self) -> Sequence[ColumnElement]:
        return self._returning

    def execution_options(self, **options: Any) -> Any:
        new = self._clone()
        new._execution_options = {**self._execution_options, **options}
        return new

    def get_execution_options(self) -> Mapping[str, Any]:
        return self._execution_options

    @property
    def exported_columns(self) -> ColumnCollection:
        return ColumnCollection(c for c in self._returning if c.key)


class _ValuesBase(_DMLBase):
    __slots__ = ("_multi_values", "_values")
    _values: dict[Any, ColumnElement]
    _multi_values: tuple[tuple[ColumnElement | None, ...], ...]

    def _check_values(self, values: Mapping[Any, Any]) -> dict[Any, ColumnElement]:
        out: dict[Any, ColumnElement] = {}
        for key, value in values.items():
            column = self._column(key)
            out[column] = _value_expression(column, value)
        return out

    def values(self, *args: Any, **kwargs: Any) -> Any:
        """``values(a=1)``, ``values({"a": 1})``, or ``values([{...}, {...}])`` (INSERT only)."""
        new = self._clone()
        if args and kwargs:
            raise exc.ArgumentError("values() takes a dict or a list, or keyword arguments")
        if len(args) > 1:
            raise exc.ArgumentError("values() takes a single dict or list of dicts")
        if args:
            arg = args[0]
            if isinstance(arg, Mapping):
                kwargs = dict(arg)
            elif isinstance(arg, (list, tuple)):
                return new._set_multi(arg)
            else:
                raise exc.ArgumentError(
                    f"values() takes a dict or a list of dicts, got {type(arg).__name__}"
                )
        if self._multi_values:
            raise exc.InvalidRequestError(
                "This statement already has multi-row values(); can't add single values"
            )
        merged = dict(self._values)
        merged.update(self._check_values(kwargs))
        new._values = merged
        return new

    def _set_multi(self, rows: Sequence[Any]) -> Any:
        raise exc.ArgumentError(
            f"{type(self).__name__.upper()} values() takes a dict; a list of rows is for INSERT"
        )


class Insert(_ValuesBase):
    """``INSERT INTO table (...) VALUES (...)`` in all its forms."""

    __slots__ = ("_conflict", "_from_select", "_inline", "_multi_columns", "_select_names")
    __visit_name__ = "insert"

    def __init__(self, table: Any) -> None:
        self._init_table(table)
        self._values: dict[Any, ColumnElement] = {}
        self._multi_values: tuple[tuple[ColumnElement | None, ...], ...] = ()
        self._multi_columns: tuple[Any, ...] = ()
        self._from_select: Any = None
        self._select_names: tuple[Any, ...] = ()
        self._conflict: OnConflict | None = None
        self._inline = False

    def _set_multi(self, rows: Sequence[Any]) -> Insert:
        if not rows:
            raise exc.ArgumentError("values() got an empty list of rows")
        if self._values:
            raise exc.InvalidRequestError("This INSERT already has values(); can't add rows")
        columns: list[Any] = []
        seen: set[int] = set()
        checked: list[dict[Any, ColumnElement]] = []
        for i, row in enumerate(rows):
            if isinstance(row, Mapping):
                values = self._check_values(row)
            elif isinstance(row, (tuple, list)):
                cols = list(self.table.c)
                if len(row) > len(cols):
                    raise exc.ArgumentError(
                        f"Row {i} of values() has {len(row)} items; table "
                        f"{self.table.description!r} has {len(cols)} columns"
                    )
                values = self._check_values(dict(zip(cols, row, strict=False)))
            else:
                raise exc.ArgumentError(f"Row {i} of values() must be a dict, got {row!r:.60}")
            for column in values:
                if id(column) not in seen:
                    seen.add(id(column))
                    columns.append(column)
            checked.append(values)
        self._multi_columns = tuple(columns)
        self._multi_values = tuple(tuple(values.get(c) for c in columns) for values in checked)
        return self

    def from_select(
        self, names: Sequence[Any], select: Select, include_defaults: bool = True
    ) -> Insert:
        """``INSERT INTO table (names) SELECT ...``."""
        new = self._clone()
        cols = tuple(self._column(n) for n in names)
        if len(cols) != len(select.selected_columns):
            raise exc.ArgumentError(
                f"from_select(): {len(cols)} column names but the SELECT has "
                f"{len(select.selected_columns)} columns"
            )
        new._select_names = cols
        new._from_select = select
        return new

    def inline(self) -> Insert:
        new = self._clone()
        new._inline = True
        return new

    @property
    def excluded(self) -> ColumnCollection:
        """The proposed row in ``on_conflict_do_update``: ``stmt.excluded.name``."""
        return ColumnCollection(Excluded(c) for c in self.table.c)

    def on_conflict_do_nothing(
        self,
        index_elements: Sequence[Any] | None = None,
        index_where: Any = None,
        constraint: str | None = None,
    ) -> Insert:
        new = self._clone()
        new._conflict = OnConflict(self, index_elements, index_where, constraint, None, None)
        return new

    def on_conflict_do_update(
        self,
        index_elements: Sequence[Any] | None = None,
        index_where: Any = None,
        set_: Mapping[Any, Any] | None = None,
        where: Any = None,
        constraint: str | None = None,
    ) -> Insert:
        if not set_:
            raise exc.ArgumentError("on_conflict_do_update() needs set_={column: value, ...}")
        if index_elements is None and constraint is None:
            raise exc.ArgumentError(
                "on_conflict_do_update() needs index_elements=[...] or constraint='name' "
                "to say which conflict it handles"
            )
        new = self._clone()
        new._conflict = OnConflict(self, index_elements, index_where, constraint, set_, where)
        return new

    def get_children(self) -> Iterable[ClauseElement]:
        out: list[ClauseElement] = list(self._values.values())
        for row in self._multi_values:
            out.extend(v for v in row if v is not None)
        if self._from_select is not None:
            out.append(self._from_select)
        return out

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return (
            "insert",
            self.table._ck(binds),
            tuple((c._serial, v._ck(binds)) for c, v in self._values.items()),
            tuple(c._serial for c in self._multi_columns),
            tuple(
                tuple(v._ck(binds) if v is not None else None for v in row)
                for row in self._multi_values
            ),
            self._from_select._ck(binds) if self._from_select is not None else None,
            tuple(c._serial for c in self._select_names),
            self._conflict._ck(binds) if self._conflict is not None else None,
            tuple(c._ck(binds) for c in self._returning),
        )


class Excluded(ColumnElement):
    """``EXCLUDED.column`` inside ON CONFLICT DO UPDATE."""

    __slots__ = ("column", "type")
    __visit_name__ = "excluded"

    def __init__(self, column: Any) -> None:
        self.column = column
        self.type = column.type

    @property
    def key(self) -> str:
        return str(self.column.key)

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return ("excluded", self.column._serial)


class OnConflict:
    """The ``ON CONFLICT`` clause of an INSERT."""

    __slots__ = ("constraint", "index_elements", "index_where", "set_", "where")

    def __init__(
        self,
        stmt: Insert,
        index_elements: Sequence[Any] | None,
        index_where: Any,
        constraint: str | None,
        set_: Mapping[Any, Any] | None,
        where: Any,
    ) -> None:
        self.index_elements = tuple(
            stmt._column(e) if isinstance(e, str) else coerce_expression(e)
            for e in (index_elements or ())
        )
        self.index_where = coerce_where(index_where) if index_where is not None else None
        self.constraint = constraint
        self.set_: tuple[tuple[Any, ColumnElement], ...] | None = None
        if set_ is not None:
            pairs = []
            for key, value in set_.items():
                column = stmt._column(key)
                pairs.append((column, _value_expression(column, value)))
            self.set_ = tuple(pairs)
        self.where = coerce_where(where) if where is not None else None

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        index_where = None
        if self.index_where is not None:
            # Rendered with literal values, so the values are part of the shape.
            inlined: list[BindParameter] = []
            index_where = (
                self.index_where._ck(inlined),
                tuple(b.effective_value() for b in inlined),
            )
        return (
            tuple(e._ck(binds) for e in self.index_elements),
            index_where,
            self.constraint,
            None if self.set_ is None else tuple((c._serial, v._ck(binds)) for c, v in self.set_),
            self.where._ck(binds) if self.where is not None else None,
        )


class Update(_ValuesBase):
    """``UPDATE table SET ... WHERE ... [RETURNING ...]``."""

    __slots__ = ("_where",)
    __visit_name__ = "update"

    def __init__(self, table: Any) -> None:
        self._init_table(table)
        self._values: dict[Any, ColumnElement] = {}
        self._multi_values = ()
        self._where: tuple[ColumnElement, ...] = ()

    def where(self, *criteria: Any) -> Update:
        new = self._clone()
        new._where = self._where + tuple(coerce_where(c) for c in criteria)
        return new

    filter = where

    def filter_by(self, **kwargs: Any) -> Update:
        return self.where(*(self._column(k) == v for k, v in kwargs.items()))

    def ordered_values(self, *pairs: tuple[Any, Any]) -> Update:
        updated: Update = self.values(dict(pairs))
        return updated

    @property
    def whereclause(self) -> ColumnElement | None:
        return and_(*self._where) if self._where else None

    def get_children(self) -> Iterable[ClauseElement]:
        return [*self._values.values(), *self._where]

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return (
            "update",
            self.table._ck(binds),
            tuple((c._serial, v._ck(binds)) for c, v in self._values.items()),
            tuple(w._ck(binds) for w in self._where),
            tuple(c._ck(binds) for c in self._returning),
        )


class Delete(_DMLBase):
    """``DELETE FROM table WHERE ... [RETURNING ...]``."""

    __slots__ = ("_where",)
    __visit_name__ = "delete"

    def __init__(self, table: Any) -> None:
        self._init_table(table)
        self._where: tuple[ColumnElement, ...] = ()

    def where(self, *criteria: Any) -> Delete:
        new = self._clone()
        new._where = self._where + tuple(coerce_where(c) for c in criteria)
        return new

    filter = where

    def filter_by(self, **kwargs: Any) -> Delete:
        return self.where(*(self._column(k) == v for k, v in kwargs.items()))

    @property
    def whereclause(self) -> ColumnElement | None:
        return and_(*self._where) if self._where else None

    def get_children(self) -> Iterable[ClauseElement]:
        return self._where

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return (
            "delete",
            self.table._ck(binds),
            tuple(w._ck(binds) for w in self._where),
            tuple(c._ck(binds) for c in self._returning),
        )


def insert(table: Any) -> Insert:
    return Insert(table)


def update(table: Any) -> Update:
    return Update(table)


def delete(table: Any) -> Delete:
    return Delete(table)
