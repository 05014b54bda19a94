"""FROM clauses and SELECT statements.

How this works:

* A :class:`FromClause` is anything that can stand in FROM: tables, joins,
  aliases, subqueries, CTEs. Each exposes its columns as ``.c``; the columns of
  an alias or subquery are *proxies* that remember the column they stand for,
  so ``join()`` can infer ON clauses through them.
* :class:`Select` is generative: every method returns a new statement, so a
  statement can be shared, cached and extended freely.
* FROM is inferred as SQLAlchemy 2.x does: explicit ``select_from``/``join``
  targets first, then every table named by the columns and the WHERE clause,
  with tables already covered by a join left out. A nested SELECT (scalar
  subquery, EXISTS) leaves out FROM entries that its enclosing SELECT already
  provides: that is correlation, decided by the compiler.
* A join target (or ON clause) may be an object with a ``_join_steps(froms,
  right, left)`` method, as ORM relationship attributes are (``join(A.bs)``,
  ``join(b1, A.bs)``). It gets the FROM list so far, the explicit right side
  and left side (or None) and returns ``(left, right, onclause)`` steps, which
  become ordinary joins; this layer knows nothing else about the ORM.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Self

from asyncsession import exc
from asyncsession.sql import operators as ops
from asyncsession.sql.elements import (
    BindParameter,
    ClauseElement,
    ColumnClause,
    ColumnElement,
    Hashable_,
    Label,
    TextClause,
    TextualSelect,
    UnaryExpression,
    and_,
    coerce_expression,
    coerce_order_by,
    coerce_where,
    next_serial,
)
from asyncsession.sql.types import Boolean, NullType

_NULLTYPE = NullType()


class ColumnCollection:
    """An ordered, read-only collection of columns by key: ``table.c.name``, ``table.c["name"]``."""

    __slots__ = ("_by_key", "_columns")

    def __init__(self, columns: Iterable[ColumnElement] = ()) -> None:
        self._columns: list[ColumnElement] = []
        self._by_key: dict[str, ColumnElement] = {}
        for column in columns:
            self._add(column)

    def _add(self, column: ColumnElement) -> None:
        key = column.key
        if key is None:
            raise exc.ArgumentError(f"Column expression {column!r} has no name")
        if key in self._by_key:
            raise exc.ArgumentError(f"Duplicate column key {key!r}")
        self._columns.append(column)
        self._by_key[key] = column

    def __getattr__(self, key: str) -> Any:
        try:
            return self._by_key[key]
        except KeyError:
            if key.startswith("__"):
                raise AttributeError(key) from None
            raise AttributeError(
                f"No column {key!r}; the columns are {', '.join(self._by_key) or 'none'}"
            ) from None

    def __getitem__(self, key: str | int) -> Any:
        if isinstance(key, int):
            return self._columns[key]
        try:
            return self._by_key[key]
        except KeyError:
            raise KeyError(
                f"No column {key!r}; the columns are {', '.join(self._by_key) or 'none'}"
            ) from None

    def get(self, key: str, default: Any = None) -> Any:
        return self._by_key.get(key, default)

    def __contains__(self, item: object) -> bool:
        if isinstance(item, str):
            return item in self._by_key
        return any(c is item for c in self._columns)

    def contains_column(self, column: ColumnElement) -> bool:
        return any(c is column for c in self._columns)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def keys(self) -> list[str]:
        return list(self._by_key)

    def values(self) -> list[Any]:
        return list(self._columns)

    def items(self) -> list[tuple[str, Any]]:
        return list(self._by_key.items())

    def __repr__(self) -> str:
        return f"ColumnCollection({', '.join(self._by_key)})"


class FromClause(ClauseElement):
    """Anything that can appear in a FROM clause."""

    __slots__ = ()
    is_selectable: ClassVar[bool] = True
    named_with_column: ClassVar[bool] = False

    @property
    def c(self) -> ColumnCollection:
        raise NotImplementedError

    @property
    def columns(self) -> ColumnCollection:
        return self.c

    @property
    def exported_columns(self) -> ColumnCollection:
        return self.c

    @property
    def primary_key(self) -> list[ColumnElement]:
        return [c for c in self.c if getattr(c, "primary_key", False)]

    @property
    def description(self) -> str:
        return getattr(self, "name", type(self).__name__)

    def base_froms(self) -> tuple[FromClause, ...]:
        """The tables and aliases this FROM covers (a join covers both sides)."""
        return (self,)

    def foreign_key_pairs(self) -> list[tuple[ColumnElement, ColumnElement]]:
        """(local column, referenced column) for each foreign key column of this FROM."""
        return []

    def corresponding_column(self, column: ColumnElement) -> ColumnElement | None:
        """The column of this FROM that stands for ``column``, if any."""
        for candidate in self.c:
            if candidate is column or _proxy_chain_contains(candidate, column):
                return candidate  # type: ignore[no-any-return]
        return None

    def join(
        self, right: Any, onclause: Any = None, isouter: bool = False, full: bool = False
    ) -> Join:
        return Join(self, _coerce_from(right), onclause, isouter, full)

    def outerjoin(self, right: Any, onclause: Any = None, full: bool = False) -> Join:
        return Join(self, _coerce_from(right), onclause, True, full)

    def alias(self, name: str | None = None) -> Alias:
        return Alias(self, name)

    def select(self) -> Select:
        return Select((self,))


def _proxy_chain_contains(candidate: Any, column: Any) -> bool:
    target = getattr(candidate, "proxied", None)
    while target is not None:
        if target is column:
            return True
        target = getattr(target, "proxied", None)
    return False


def _base_column(column: Any) -> Any:
    while getattr(column, "proxied", None) is not None:
        column = column.proxied
    return column


def _coerce_from(value: Any) -> FromClause:
    if isinstance(value, FromClause):
        return value
    if hasattr(value, "__clause_element__"):
        element = value.__clause_element__()
        if isinstance(element, FromClause):
            return element
    if isinstance(value, Select):
        raise exc.ArgumentError(
            "A select() cannot be used as a FROM directly; call .subquery() on it first"
        )
    raise exc.ArgumentError(f"Expected a table, alias, join or subquery, got {value!r:.80}")


class ProxyColumn(ColumnClause):
    """A column of an alias or subquery standing for a column (or expression) inside it."""

    __slots__ = ("primary_key", "proxied")

    def __init__(self, name: str, proxied: ColumnElement, selectable: FromClause) -> None:
        super().__init__(name, proxied.type, _selectable=selectable)
        self.proxied = proxied
        self.primary_key = bool(getattr(proxied, "primary_key", False))

    @property
    def foreign_keys(self) -> Any:
        return getattr(self.proxied, "foreign_keys", ())

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        # A subquery or CTE may be in FROM only because its columns are selected
        # (it is inferred, not listed), so its values are extracted from here.
        assert self.table is not None
        return ("pcol", self._serial, self.table._ck(binds))


class Join(FromClause):
    """``left [LEFT OUTER | FULL OUTER] JOIN right ON onclause``."""

    __slots__ = ("_c", "full", "isouter", "left", "onclause", "right")
    __visit_name__ = "join"

    def __init__(
        self,
        left: FromClause,
        right: FromClause,
        onclause: Any = None,
        isouter: bool = False,
        full: bool = False,
    ) -> None:
        self.left = left
        self.right = right
        self.isouter = isouter
        self.full = full
        if onclause is None:
            self.onclause = infer_join_condition(left, right)
        else:
            self.onclause = coerce_where(onclause)
        self._c: ColumnCollection | None = None

    @property
    def c(self) -> ColumnCollection:
        if self._c is None:
            cols = ColumnCollection()
            for side in (self.left, self.right):
                for column in side.c:
                    prefix = getattr(side, "name", None)
                    key = f"{prefix}_{column.key}" if prefix else column.key
                    if key not in cols:
                        cols._columns.append(column)
                        cols._by_key[key] = column
            self._c = cols
        return self._c

    def base_froms(self) -> tuple[FromClause, ...]:
        return self.left.base_froms() + self.right.base_froms()

    def foreign_key_pairs(self) -> list[tuple[ColumnElement, ColumnElement]]:
        return self.left.foreign_key_pairs() + self.right.foreign_key_pairs()

    def corresponding_column(self, column: ColumnElement) -> ColumnElement | None:
        return self.left.corresponding_column(column) or self.right.corresponding_column(column)

    def get_children(self) -> Iterable[ClauseElement]:
        return (self.left, self.right, self.onclause)

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return (
            "join",
            self.left._ck(binds),
            self.right._ck(binds),
            self.onclause._ck(binds),
            self.isouter,
            self.full,
        )


def _describe_from(from_: FromClause) -> str:
    if isinstance(from_, Join):
        return f"({_describe_from(from_.left)} JOIN {_describe_from(from_.right)})"
    return f"'{from_.description}'"


def infer_join_condition(left: FromClause, right: FromClause) -> ColumnElement:
    """The ON clause from foreign keys between ``left`` and ``right``.

    Raises ArgumentError when there is no foreign key path, or more than one
    (then the caller must give the ON clause).
    """
    pairs: list[tuple[ColumnElement, ColumnElement]] = []
    # Foreign keys on the right side pointing at the left, then the reverse.
    for local, referenced in right.foreign_key_pairs():
        target = left.corresponding_column(referenced)
        if target is not None:
            pairs.append((target, local))
    if not pairs:
        for local, referenced in left.foreign_key_pairs():
            target = right.corresponding_column(referenced)
            if target is not None:
                pairs.append((local, target))
    if not pairs:
        raise exc.ArgumentError(
            f"Can't find any foreign key relationships between {_describe_from(left)} and "
            f"{_describe_from(right)}; give the ON clause explicitly: .join(right, onclause)"
        )
    constraints = {
        id(getattr(_fk_of(local, referenced), "constraint", None)) for local, referenced in pairs
    }
    if len(constraints) > 1:
        names = ", ".join(f"{a.describe()} = {b.describe()}" for a, b in pairs)
        raise exc.ArgumentError(
            f"Can't determine the join between {_describe_from(left)} and "
            f"{_describe_from(right)}: there are several foreign key paths ({names}); "
            "give the ON clause explicitly"
        )
    return and_(*(a == b for a, b in pairs))


def _fk_of(local: ColumnElement, referenced: ColumnElement) -> Any:
    base_local = _base_column(local)
    base_ref = _base_column(referenced)
    for fk in getattr(base_local, "foreign_keys", ()):
        if fk.column is base_ref:
            return fk
    for fk in getattr(base_ref, "foreign_keys", ()):
        if fk.column is base_local:
            return fk
    return None


class _NamedFrom(FromClause):
    """Shared machinery of aliases, subqueries and CTEs: a name and proxy columns."""

    __slots__ = ("_c", "_serial", "element", "name")
    named_with_column = True

    def __init__(self, element: Any, name: str | None) -> None:
        self.element = element
        self._serial = next_serial()
        self.name = name or f"anon_{self._serial}"
        self._c: ColumnCollection | None = None

    def _source_columns(self) -> Iterable[tuple[str, ColumnElement]]:
        raise NotImplementedError

    @property
    def c(self) -> ColumnCollection:
        if self._c is None:
            cols = ColumnCollection()
            for key, column in self._source_columns():
                proxy = ProxyColumn(key, column, self)
                cols._columns.append(proxy)
                cols._by_key[key] = proxy
            self._c = cols
        return self._c

    def foreign_key_pairs(self) -> list[tuple[ColumnElement, ColumnElement]]:
        out = []
        for column in self.c:
            for fk in column.foreign_keys:
                out.append((column, fk.column))
        return out

    def get_children(self) -> Iterable[ClauseElement]:
        return (self.element,)


class Alias(_NamedFrom):
    """``table AS name``: the same table under another name, e.g. for self-joins."""

    __slots__ = ()
    __visit_name__ = "alias"

    def _source_columns(self) -> Iterable[tuple[str, ColumnElement]]:
        return ((c.key, c) for c in self.element.c)

    def foreign_key_pairs(self) -> list[tuple[ColumnElement, ColumnElement]]:
        out = []
        for column in self.c:
            for fk in column.foreign_keys:
                out.append((column, fk.column))
        return out

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return ("alias", self._serial, self.element._ck(binds))


class Subquery(_NamedFrom):
    """``(SELECT ...) AS name``."""

    __slots__ = ()
    __visit_name__ = "subquery"

    def _source_columns(self) -> Iterable[tuple[str, ColumnElement]]:
        return _named_columns(self.element.selected_columns)

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return ("subq", self._serial, self.element._ck(binds))


class CTE(_NamedFrom):
    """``WITH name AS (SELECT ...)``; ``recursive`` CTEs refer to themselves via ``union_all``."""

    __slots__ = ("recursive",)
    __visit_name__ = "cte"

    def __init__(self, element: Any, name: str | None, recursive: bool = False) -> None:
        super().__init__(element, name)
        self.recursive = recursive

    def _source_columns(self) -> Iterable[tuple[str, ColumnElement]]:
        return _named_columns(self.element.selected_columns)

    def union_all(self, *others: Any) -> CTE:
        """Complete a recursive CTE: ``cte.union_all(select(...).where(... cte.c.x ...))``."""
        return self._compound("UNION ALL", others)

    def union(self, *others: Any) -> CTE:
        return self._compound("UNION", others)

    def _compound(self, keyword: str, others: tuple[Any, ...]) -> CTE:
        new = CTE.__new__(CTE)
        new.element = CompoundSelect(keyword, (self.element, *others))
        new._serial = self._serial
        new.name = self.name
        new.recursive = self.recursive
        # Columns of its own: a statement selecting them must find (and render)
        # the completed body, not the anchor that the recursive part refers to.
        new._c = None
        return new

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        # The body is rendered once in WITH, but its values are extracted at every
        # reference; the compiler finds each value by identity, so repeats are harmless.
        return ("cte", self._serial, self.name, self.recursive, self.element._ck(binds))


def _named_columns(columns: Sequence[ColumnElement]) -> list[tuple[str, ColumnElement]]:
    out: list[tuple[str, ColumnElement]] = []
    seen: dict[str, int] = {}
    for column in columns:
        name = column.key or "anon"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 0
        out.append((name, column))
    return out


class ScalarSelect(ColumnElement):
    """``(SELECT x ...)`` used as a value."""

    __slots__ = ("element", "type")
    __visit_name__ = "scalar_select"

    def __init__(self, element: Any) -> None:
        self.element = element
        cols = element.selected_columns
        self.type = cols[0].type if len(cols) == 1 else _NULLTYPE

    def get_children(self) -> Iterable[ClauseElement]:
        return (self.element,)

    def self_group(self, against: str | None = None) -> ColumnElement:
        return self

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return ("scalar", self.element._ck(binds))


class Exists(UnaryExpression):
    """``EXISTS (SELECT ...)``."""

    __slots__ = ()

    def __init__(self, select_: Select) -> None:
        super().__init__(ScalarSelect(select_), operator=ops.EXISTS, type_=Boolean())

    def where(self, *criteria: Any) -> Exists:
        inner = self.element
        assert isinstance(inner, ScalarSelect)
        return Exists(inner.element.where(*criteria))

    def select_from(self, *froms: Any) -> Exists:
        inner = self.element
        assert isinstance(inner, ScalarSelect)
        return Exists(inner.element.select_from(*froms))

    def correlate(self, *froms: Any) -> Exists:
        inner = self.element
        assert isinstance(inner, ScalarSelect)
        return Exists(inner.element.correlate(*froms))


class ForUpdate:
    """The ``FOR UPDATE`` options of a SELECT."""

    __slots__ = ("key_share", "nowait", "of", "read", "skip_locked")

    def __init__(
        self,
        nowait: bool = False,
        read: bool = False,
        of: Any = None,
        skip_locked: bool = False,
        key_share: bool = False,
    ) -> None:
        if nowait and skip_locked:
            raise exc.ArgumentError("with_for_update(): nowait and skip_locked exclude each other")
        self.nowait = nowait
        self.read = read
        self.skip_locked = skip_locked
        self.key_share = key_share
        if of is None:
            self.of: tuple[Any, ...] = ()
        elif isinstance(of, (list, tuple)):
            self.of = tuple(of)
        else:
            self.of = (of,)

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return (
            self.nowait,
            self.read,
            self.skip_locked,
            self.key_share,
            tuple(o._ck(binds) for o in self.of),
        )


class _SelectBase(ClauseElement):
    """What SELECT and compound SELECTs share: ordering, limits, subquery forms."""

    __slots__ = ("_ck_memo", "_limit", "_offset", "_order_by")
    is_selectable = True

    _order_by: tuple[ColumnElement, ...]
    _limit: ColumnElement | None
    _offset: ColumnElement | None
    # (cache key, bind parameters) once compiled as a statement (Dialect.compile).
    _ck_memo: tuple[Any, tuple[Any, ...]] | None

    @property
    def selected_columns(self) -> Sequence[ColumnElement]:
        raise NotImplementedError

    def _clone(self) -> Self:
        cls = type(self)
        new = cls.__new__(cls)
        for slot in _slot_names(cls):
            setattr(new, slot, getattr(self, slot))
        new._ck_memo = None  # a changed copy has its own cache key
        return new

    def order_by(self, *clauses: Any) -> Any:
        new = self._clone()
        if len(clauses) == 1 and clauses[0] is None:
            new._order_by = ()
        else:
            new._order_by = self._order_by + tuple(coerce_order_by(c) for c in clauses)
        return new

    def limit(self, limit: int | None) -> Any:
        new = self._clone()
        new._limit = _limit_value(limit, "limit")
        return new

    def offset(self, offset: int | None) -> Any:
        new = self._clone()
        new._offset = _limit_value(offset, "offset")
        return new

    def slice(self, start: int, stop: int) -> Any:
        return self.offset(start or None).limit(max(stop - start, 0))

    def subquery(self, name: str | None = None) -> Subquery:
        return Subquery(self, name)

    def alias(self, name: str | None = None) -> Subquery:
        return Subquery(self, name)

    def cte(self, name: str | None = None, recursive: bool = False) -> CTE:
        return CTE(self, name, recursive)

    def scalar_subquery(self) -> ScalarSelect:
        return ScalarSelect(self)

    def exists(self) -> Exists:
        return Exists(self)  # type: ignore[arg-type]

    def label(self, name: str) -> Label:
        return Label(name, ScalarSelect(self))

    def _ck_tail(self, binds: list[BindParameter]) -> Hashable_:
        return (
            tuple(c._ck(binds) for c in self._order_by),
            self._limit._ck(binds) if self._limit is not None else None,
            self._offset._ck(binds) if self._offset is not None else None,
        )


_SLOT_NAMES: dict[type, tuple[str, ...]] = {}


def _slot_names(cls: type) -> tuple[str, ...]:
    """Every slot of a statement class, base classes included (cached)."""
    names = _SLOT_NAMES.get(cls)
    if names is None:
        names = tuple(
            slot
            for klass in cls.__mro__
            for slot in klass.__dict__.get("__slots__", ())
            if not slot.startswith("__")
        )
        _SLOT_NAMES[cls] = names
    return names


def _limit_value(value: Any, what: str) -> ColumnElement | None:
    if value is None:
        return None
    if isinstance(value, ColumnElement):
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise exc.ArgumentError(f"{what}() takes a non-negative int, got {value!r:.40}")
    from asyncsession.sql.types import Integer

    return BindParameter(None, value, type_=Integer(), unique=True, _checked=True)


class Select(_SelectBase):
    """A SELECT statement. Build with :func:`select`; every method returns a copy."""

    __slots__ = (
        "_columns",
        "_correlate",
        "_ctes",
        "_distinct",
        "_distinct_on",
        "_entities",
        "_execution_options",
        "_for_update",
        "_from_obj",
        "_froms_memo",
        "_group_by",
        "_having",
        "_setup_joins",
        "_where",
        "_with_options",
    )
    __visit_name__ = "select"

    def __init__(self, columns: Sequence[Any]) -> None:
        # _entities keeps what the caller passed (e.g. a mapped class) beside the
        # coerced columns, so the ORM can build objects from the rows.
        self._entities: tuple[Any, ...] = tuple(columns)
        self._columns: tuple[Any, ...] = tuple(_coerce_column(c) for c in columns)
        self._from_obj: tuple[FromClause, ...] = ()
        self._setup_joins: tuple[tuple[Any, Any, bool, bool, Any], ...] = ()
        self._where: tuple[ColumnElement, ...] = ()
        self._having: tuple[ColumnElement, ...] = ()
        self._group_by: tuple[ColumnElement, ...] = ()
        self._order_by: tuple[ColumnElement, ...] = ()
        self._limit: ColumnElement | None = None
        self._offset: ColumnElement | None = None
        self._distinct = False
        self._distinct_on: tuple[ColumnElement, ...] = ()
        self._for_update: ForUpdate | None = None
        self._correlate: tuple[FromClause, ...] | None = None
        self._ctes: tuple[CTE, ...] = ()
        self._execution_options: Mapping[str, Any] = {}
        self._with_options: tuple[Any, ...] = ()
        self._froms_memo: list[FromClause] | None = None
        self._ck_memo = None

    # -- columns ------------------------------------------------------------------
    @property
    def selected_columns(self) -> Sequence[ColumnElement]:
        out: list[ColumnElement] = []
        for column in self._columns:
            if isinstance(column, FromClause):
                out.extend(column.c)
            else:
                out.append(column)
        return out

    @property
    def column_descriptions(self) -> list[dict[str, Any]]:
        return [{"name": c.key, "type": c.type, "expr": c} for c in self.selected_columns]

    def add_columns(self, *columns: Any) -> Select:
        new = self._clone()
        new._entities = self._entities + columns
        new._columns = self._columns + tuple(_coerce_column(c) for c in columns)
        new._froms_memo = None
        return new

    def with_only_columns(self, *columns: Any) -> Select:
        new = self._clone()
        if len(columns) == 1 and isinstance(columns[0], (list, tuple)):
            columns = tuple(columns[0])
        new._entities = tuple(columns)
        new._columns = tuple(_coerce_column(c) for c in columns)
        new._froms_memo = None
        return new

    # -- FROM and joins -------------------------------------------------------------
    def select_from(self, *froms: Any) -> Select:
        new = self._clone()
        new._from_obj = self._from_obj + tuple(_coerce_from(f) for f in froms)
        new._froms_memo = None
        return new

    def join(
        self,
        target: Any,
        onclause: Any = None,
        *,
        isouter: bool = False,
        full: bool = False,
    ) -> Select:
        """Join ``target`` to the leftmost FROM that can reach it (or to ``onclause``'s table)."""
        return self._add_join((target, onclause, isouter, full, None))

    def outerjoin(self, target: Any, onclause: Any = None, *, full: bool = False) -> Select:
        return self.join(target, onclause, isouter=True, full=full)

    def join_from(
        self,
        from_: Any,
        target: Any,
        onclause: Any = None,
        *,
        isouter: bool = False,
        full: bool = False,
    ) -> Select:
        """Join ``target`` to ``from_`` explicitly."""
        return self._add_join((target, onclause, isouter, full, from_))

    def outerjoin_from(
        self, from_: Any, target: Any, onclause: Any = None, *, full: bool = False
    ) -> Select:
        return self.join_from(from_, target, onclause, isouter=True, full=full)

    def _add_join(self, spec: tuple[Any, Any, bool, bool, Any]) -> Select:
        target, onclause, isouter, full, left = spec
        steps_of = _join_hook(target)
        right = None
        if steps_of is not None and onclause is not None:
            raise exc.ArgumentError(
                f"join({target!r}, ...) takes no ON clause: the relationship gives it; use "
                f"join(target, {target!r}) to join an alias along it"
            )
        if steps_of is None and onclause is not None:
            steps_of = _join_hook(onclause)
            if steps_of is not None:
                right = _coerce_join_target(target)
        if steps_of is not None:
            left_from = _coerce_from(left) if left is not None else None
            new = self
            for step_left, step_right, on in steps_of(self.get_final_froms(), right, left_from):
                new = new._add_join((step_right, on, isouter, full, step_left))
            return new
        new = self._clone()
        new._setup_joins = (*self._setup_joins, spec)
        # Build the FROM list now so an impossible join fails where it is written,
        # extending this statement's list when it is already known.
        if self._froms_memo is not None:
            new._froms_memo = _apply_join(self._froms_memo, spec)
        else:
            new.get_final_froms()
        return new

    def _raw_froms(self) -> list[FromClause]:
        """FROM entries in order before joins apply: explicit ones, then inferred."""
        froms: list[FromClause] = list(self._from_obj)
        seen = {id(f) for f in froms}
        covered: set[int] = set()
        for f in froms:
            covered.update(id(b) for b in f.base_froms())

        def add(from_: FromClause) -> None:
            if id(from_) in seen or id(from_) in covered:
                return
            seen.add(id(from_))
            froms.append(from_)

        for column in self._columns:
            for from_ in _froms_of(column):
                add(from_)
        for criterion in self._where:
            for from_ in _froms_of(criterion):
                add(from_)
        return froms

    def get_final_froms(self) -> list[FromClause]:
        """The FROM list after applying joins; what the compiler renders.

        Statements are immutable, so the list is computed once per statement
        (``join()`` extends its parent's list instead of starting over).
        """
        froms = self._froms_memo
        if froms is None:
            froms = self._raw_froms()
            for spec in self._setup_joins:
                froms = _apply_join(froms, spec)
            self._froms_memo = froms
        return list(froms)

    def where(self, *criteria: Any) -> Select:
        new = self._clone()
        new._where = self._where + tuple(coerce_where(c) for c in criteria)
        new._froms_memo = None  # criteria may name more tables
        return new

    filter = where

    def filter_by(self, **kwargs: Any) -> Select:
        """``where(entity.key == value, ...)`` against the last joined or first FROM."""
        froms = self.get_final_froms()
        target: FromClause | None = None
        if self._setup_joins:
            target = _coerce_join_target(self._setup_joins[-1][0])
        elif froms:
            target = froms[0].base_froms()[0]
        if target is None:
            raise exc.InvalidRequestError("filter_by() needs a FROM to find the columns in")
        criteria = []
        for key, value in kwargs.items():
            column = target.c.get(key)
            if column is None:
                raise exc.ArgumentError(
                    f"filter_by(): {target.description!r} has no column {key!r}"
                )
            criteria.append(column == value)
        return self.where(*criteria)

    @property
    def whereclause(self) -> ColumnElement | None:
        return and_(*self._where) if self._where else None

    def having(self, *criteria: Any) -> Select:
        new = self._clone()
        new._having = self._having + tuple(coerce_where(c) for c in criteria)
        return new

    def group_by(self, *clauses: Any) -> Select:
        new = self._clone()
        if len(clauses) == 1 and clauses[0] is None:
            new._group_by = ()
        else:
            new._group_by = self._group_by + tuple(coerce_order_by(c) for c in clauses)
        return new

    def distinct(self, *on: Any) -> Select:
        """``SELECT DISTINCT``; with expressions, PostgreSQL's ``DISTINCT ON (...)``."""
        new = self._clone()
        new._distinct = True
        new._distinct_on = self._distinct_on + tuple(coerce_expression(c) for c in on)
        return new

    def with_for_update(
        self,
        *,
        nowait: bool = False,
        read: bool = False,
        of: Any = None,
        skip_locked: bool = False,
        key_share: bool = False,
    ) -> Select:
        new = self._clone()
        new._for_update = ForUpdate(nowait, read, of, skip_locked, key_share)
        return new

    def correlate(self, *froms: Any) -> Select:
        """Correlate only these FROMs with an enclosing SELECT (``None`` correlates none)."""
        new = self._clone()
        if len(froms) == 1 and froms[0] is None:
            new._correlate = ()
        else:
            new._correlate = (self._correlate or ()) + tuple(_coerce_from(f) for f in froms)
        return new

    def add_cte(self, *ctes: CTE) -> Select:
        new = self._clone()
        new._ctes = self._ctes + ctes
        return new

    def execution_options(self, **options: Any) -> Select:
        new = self._clone()
        new._execution_options = {**self._execution_options, **options}
        return new

    def get_execution_options(self) -> Mapping[str, Any]:
        return self._execution_options

    def options(self, *options: Any) -> Select:
        """Attach ORM loader options (``selectinload(User.addresses)``, ...).

        The SQL layer only carries them: they are not part of the statement's
        SQL or cache key; the ORM reads them when it executes the statement.
        """
        new = self._clone()
        new._with_options = self._with_options + options
        return new

    # -- compound ---------------------------------------------------------------
    def union(self, *others: Any) -> CompoundSelect:
        return CompoundSelect("UNION", (self, *others))

    def union_all(self, *others: Any) -> CompoundSelect:
        return CompoundSelect("UNION ALL", (self, *others))

    def intersect(self, *others: Any) -> CompoundSelect:
        return CompoundSelect("INTERSECT", (self, *others))

    def intersect_all(self, *others: Any) -> CompoundSelect:
        return CompoundSelect("INTERSECT ALL", (self, *others))

    def except_(self, *others: Any) -> CompoundSelect:
        return CompoundSelect("EXCEPT", (self, *others))

    def except_all(self, *others: Any) -> CompoundSelect:
        return CompoundSelect("EXCEPT ALL", (self, *others))

    def get_children(self) -> Iterable[ClauseElement]:
        out: list[ClauseElement] = [*self._columns, *self._where, *self._having]
        out.extend(self._group_by)
        out.extend(self._order_by)
        return out

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return (
            "select",
            tuple(c._ck(binds) for c in self._columns),
            tuple(f._ck(binds) for f in self._from_obj),
            tuple(_join_ck(j, binds) for j in self._setup_joins),
            tuple(w._ck(binds) for w in self._where),
            tuple(g._ck(binds) for g in self._group_by),
            tuple(h._ck(binds) for h in self._having),
            self._ck_tail(binds),
            self._distinct,
            tuple(d._ck(binds) for d in self._distinct_on),
            self._for_update._ck(binds) if self._for_update is not None else None,
            None if self._correlate is None else tuple(f._ck(binds) for f in self._correlate),
            tuple(c._ck(binds) for c in self._ctes),
        )


def _apply_join(
    froms: list[FromClause], spec: tuple[Any, Any, bool, bool, Any]
) -> list[FromClause]:
    """``froms`` with one join applied (a new list)."""
    target, onclause, isouter, full, left = spec
    froms = list(froms)
    right = _coerce_join_target(target)
    if left is not None:
        left_from = _coerce_from(left)
        index = _index_covering(froms, left_from)
        if index is None:
            froms.append(left_from)
            index = len(froms) - 1
        base = froms[index]
        inferred = None
    else:
        index, base, inferred = _find_join_left(froms, right, onclause)
    on = onclause if onclause is not None else inferred
    if on is not None and hasattr(on, "__clause_element__"):
        on = on.__clause_element__()
    joined = Join(base, right, on, isouter, full)
    # The right side leaves the FROM list if it was inferred there.
    right_bases = {id(b) for b in right.base_froms()}
    froms = [f for i, f in enumerate(froms) if i == index or id(f) not in right_bases]
    froms[froms.index(base)] = joined
    return froms


def _join_ck(join: tuple[Any, Any, bool, bool, Any], binds: list[BindParameter]) -> Hashable_:
    target, onclause, isouter, full, left = join
    on = onclause
    if on is not None and hasattr(on, "__clause_element__"):
        on = on.__clause_element__()
    return (
        _coerce_join_target(target)._ck(binds),
        on._ck(binds) if on is not None else None,
        isouter,
        full,
        _coerce_from(left)._ck(binds) if left is not None else None,
    )


def _join_hook(value: Any) -> Any:
    """The ``_join_steps`` method of a join target that has one (an ORM relationship)."""
    if getattr(type(value), "_join_steps", None) is None:
        return None
    return value._join_steps


def _coerce_join_target(target: Any) -> FromClause:
    return _coerce_from(target)


def _index_covering(froms: list[FromClause], target: FromClause) -> int | None:
    for i, from_ in enumerate(froms):
        if any(b is target for b in from_.base_froms()) or from_ is target:
            return i
    return None


def _find_join_left(
    froms: list[FromClause], right: FromClause, onclause: Any
) -> tuple[int, FromClause, ColumnElement | None]:
    """(index, FROM to join to, the ON clause inferred for it when none was given)."""
    if not froms:
        raise exc.ArgumentError(
            f"Can't join to {_describe_from(right)}: the SELECT has no FROM to join from; "
            "select some columns first or use select_from()"
        )
    if onclause is not None:
        # The left side is the FROM providing the ON clause's other table.
        on = onclause.__clause_element__() if hasattr(onclause, "__clause_element__") else onclause
        on_froms = {id(f) for f in _froms_of(coerce_where(on))}
        right_ids = {id(b) for b in right.base_froms()}
        for i, from_ in enumerate(froms):
            if any(id(b) in on_froms and id(b) not in right_ids for b in from_.base_froms()):
                return i, from_, None
        return 0, froms[0], None
    candidates: list[tuple[int, FromClause, ColumnElement | None]] = []
    for i, from_ in enumerate(froms):
        if any(b is right for b in from_.base_froms()):
            continue
        try:
            inferred = infer_join_condition(from_, right)
        except exc.ArgumentError as err:
            if "several foreign key paths" in str(err):
                raise
            continue
        candidates.append((i, from_, inferred))
    if not candidates:
        raise exc.ArgumentError(
            f"Can't find any foreign key relationships between "
            f"{', '.join(_describe_from(f) for f in froms)} and {_describe_from(right)}; "
            "give the ON clause explicitly: .join(right, onclause)"
        )
    if len(candidates) > 1:
        raise exc.ArgumentError(
            f"Can't decide which FROM to join {_describe_from(right)} to: "
            f"{', '.join(_describe_from(f) for _, f, _ in candidates)} all can; "
            "use join_from(left, right) or give the ON clause"
        )
    return candidates[0]


def _froms_of(element: Any) -> list[FromClause]:
    """The FROM objects an expression refers to (not descending into subqueries)."""
    out: list[FromClause] = []
    seen: set[int] = set()
    stack = [element]
    while stack:
        node = stack.pop()
        if isinstance(node, FromClause):
            if id(node) not in seen:
                seen.add(id(node))
                out.append(node)
            continue
        if isinstance(node, ColumnClause):
            table = node.table
            if table is not None and id(table) not in seen:
                seen.add(id(table))
                out.append(table)
            continue
        if isinstance(node, (ScalarSelect, _SelectBase, TextualSelect)):
            continue
        children = list(node.get_children())
        children.reverse()
        stack.extend(children)
    return out


def _coerce_column(value: Any) -> Any:
    if isinstance(value, (ColumnElement, FromClause)):
        return value
    if hasattr(value, "__clause_element__"):
        element = value.__clause_element__()
        if isinstance(element, (ColumnElement, FromClause)):
            return element
    if isinstance(value, TextClause):
        raise exc.ArgumentError(
            "text() cannot be a column; use literal_column() for a raw SQL column expression"
        )
    if isinstance(value, _SelectBase):
        return value.scalar_subquery()
    if isinstance(value, str):
        raise exc.ArgumentError(
            f"select() takes column expressions, not the string {value!r}; "
            "use column() or literal_column() for a name"
        )
    raise exc.ArgumentError(f"select() takes column expressions or tables, got {value!r:.60}")


def select(*entities: Any) -> Select:
    """``SELECT entities...``: columns, tables (all their columns), or expressions."""
    if len(entities) == 1 and isinstance(entities[0], (list, tuple)):
        entities = tuple(entities[0])
    return Select(entities)


class CompoundSelect(_SelectBase):
    """``SELECT ... UNION [ALL] SELECT ...`` and INTERSECT / EXCEPT."""

    __slots__ = ("keyword", "selects")
    __visit_name__ = "compound_select"

    def __init__(self, keyword: str, selects: Sequence[Any]) -> None:
        self.keyword = keyword
        self._ck_memo = None
        items: list[_SelectBase] = []
        width: int | None = None
        for s in selects:
            if not isinstance(s, _SelectBase):
                raise exc.ArgumentError(f"{keyword} combines SELECTs, got {s!r:.60}")
            n = len(s.selected_columns)
            if width is None:
                width = n
            elif n != width:
                raise exc.ArgumentError(
                    f"All SELECTs in a {keyword} must have the same number of columns; "
                    f"got {width} and {n}"
                )
            items.append(s)
        self.selects = tuple(items)
        self._order_by: tuple[ColumnElement, ...] = ()
        self._limit: ColumnElement | None = None
        self._offset: ColumnElement | None = None

    @property
    def selected_columns(self) -> Sequence[ColumnElement]:
        return self.selects[0].selected_columns

    def union(self, *others: Any) -> CompoundSelect:
        return CompoundSelect("UNION", (self, *others))

    def union_all(self, *others: Any) -> CompoundSelect:
        return CompoundSelect("UNION ALL", (self, *others))

    def get_children(self) -> Iterable[ClauseElement]:
        return self.selects

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return (
            "compound",
            self.keyword,
            tuple(s._ck(binds) for s in self.selects),
            self._ck_tail(binds),
        )


def union(*selects: Any) -> CompoundSelect:
    return CompoundSelect("UNION", selects)


def union_all(*selects: Any) -> CompoundSelect:
    return CompoundSelect("UNION ALL", selects)


def intersect(*selects: Any) -> CompoundSelect:
    return CompoundSelect("INTERSECT", selects)


def intersect_all(*selects: Any) -> CompoundSelect:
    return CompoundSelect("INTERSECT ALL", selects)


def except_(*selects: Any) -> CompoundSelect:
    return CompoundSelect("EXCEPT", selects)


def except_all(*selects: Any) -> CompoundSelect:
    return CompoundSelect("EXCEPT ALL", selects)


__all__ = [
    "CTE",
    "Alias",
    "ColumnCollection",
    "CompoundSelect",
    "Exists",
    "FromClause",
    "Join",
    "ScalarSelect",
    "Select",
    "Subquery",
    "except_",
    "except_all",
    "intersect",
    "intersect_all",
    "select",
    "union",
    "union_all",
]
