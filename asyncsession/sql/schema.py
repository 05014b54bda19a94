"""Schema objects: MetaData, Table, Column, keys, constraints, indexes, defaults.

How this works:

* A :class:`Table` belongs to one :class:`MetaData`, keyed by
  ``schema.name``. Naming the same table again returns the existing object
  when the definition agrees, and raises when it conflicts, so two modules
  cannot silently disagree about a table.
* A :class:`ForeignKey` names its target as ``"table.column"`` (or
  ``"schema.table.column"``) or as a Column, and resolves it lazily through the
  MetaData on first use; a target that does not exist raises
  ``NoReferencedTableError`` / ``NoReferencedColumnError`` then.
* Defaults: ``default``/``onupdate`` are Python scalars or callables, applied
  when an INSERT/UPDATE is compiled without a value for the column (callables
  run once per row, at execution). ``server_default``/``server_onupdate`` are
  SQL, rendered in DDL and fetched back with RETURNING.
"""

from __future__ import annotations

import inspect as _inspect
from collections.abc import Iterable, Sequence
from typing import Any

from asyncsession import exc
from asyncsession.sql.elements import (
    BindParameter,
    ClauseElement,
    ColumnClause,
    ColumnElement,
    Hashable_,
    TextClause,
    coerce_expression,
    next_serial,
)
from asyncsession.sql.selectable import ColumnCollection, FromClause
from asyncsession.sql.types import NullType, TypeEngine


class ColumnDefault:
    """A Python-side default: a scalar, or a callable taking no argument or a context."""

    __slots__ = ("arg", "is_callable", "is_scalar", "takes_context")

    def __init__(self, arg: Any) -> None:
        if isinstance(arg, ClauseElement):
            raise exc.ArgumentError(
                "A SQL expression default belongs in server_default= (DDL) or is a "
                "Python value or callable in default="
            )
        self.arg = arg
        self.is_callable = callable(arg)
        self.is_scalar = not self.is_callable
        self.takes_context = False
        if self.is_callable:
            try:
                params = [
                    p
                    for p in _inspect.signature(arg).parameters.values()
                    if p.default is p.empty
                    and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                ]
            except (TypeError, ValueError):
                params = []
            self.takes_context = len(params) >= 1

    def __repr__(self) -> str:
        return f"ColumnDefault({self.arg!r})"


class DefaultClause:
    """A server-side default or on-update value: SQL text or an expression, used in DDL."""

    __slots__ = ("arg", "for_update")

    def __init__(self, arg: str | ClauseElement, for_update: bool = False) -> None:
        # A plain string renders as a quoted SQL literal; text() or an expression as SQL.
        self.arg = arg
        self.for_update = for_update

    def __repr__(self) -> str:
        return f"DefaultClause({self.arg!r})"


class FetchedValue:
    """Marks a column whose value the server sets (e.g. by a trigger)."""

    __slots__ = ("for_update",)

    def __init__(self, for_update: bool = False) -> None:
        self.for_update = for_update


class Column(ColumnClause):
    """A table column. ``Column(name, type, *constraints, **options)``.

    The name may be omitted when the Column is assigned in a declarative class.
    A type may be omitted when the column has a ForeignKey; it then takes the
    referenced column's type.
    """

    __slots__ = (
        "_type_from_fk",
        "_type_value",
        "_user_nullable",
        "autoincrement",
        "comment",
        "constraints",
        "default",
        "doc",
        "foreign_keys",
        "index",
        "info",
        "nullable",
        "onupdate",
        "primary_key",
        "server_default",
        "server_onupdate",
        "system",
        "unique",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        args_list = list(args)
        name: str | None = None
        type_: Any = None
        if args_list and isinstance(args_list[0], str):
            name = args_list.pop(0)
        if args_list and (
            isinstance(args_list[0], TypeEngine)
            or (isinstance(args_list[0], type) and issubclass(args_list[0], TypeEngine))
        ):
            type_ = args_list.pop(0)
        if "type_" in kwargs:
            type_ = kwargs.pop("type_")
        if "name" in kwargs:
            name = kwargs.pop("name")
        key = kwargs.pop("key", None)
        super().__init__(name or "", type_)
        self._key = key or self._name
        self.primary_key: bool = bool(kwargs.pop("primary_key", False))
        nullable = kwargs.pop("nullable", None)
        self._user_nullable = nullable
        self.nullable: bool = (not self.primary_key) if nullable is None else bool(nullable)
        default = kwargs.pop("default", None)
        self.default = (
            default
            if default is None or isinstance(default, ColumnDefault)
            else ColumnDefault(default)
        )
        onupdate = kwargs.pop("onupdate", None)
        self.onupdate = (
            onupdate
            if onupdate is None or isinstance(onupdate, ColumnDefault)
            else ColumnDefault(onupdate)
        )
        server_default = kwargs.pop("server_default", None)
        self.server_default = _server_default(server_default, False)
        server_onupdate = kwargs.pop("server_onupdate", None)
        self.server_onupdate = _server_default(server_onupdate, True)
        self.autoincrement: bool | str = kwargs.pop("autoincrement", "auto")
        self.unique: bool | None = kwargs.pop("unique", None)
        self.index: bool | None = kwargs.pop("index", None)
        self.comment: str | None = kwargs.pop("comment", None)
        self.doc: str | None = kwargs.pop("doc", None)
        self.info: dict[str, Any] = kwargs.pop("info", None) or {}
        self.system: bool = kwargs.pop("system", False)
        kwargs.pop("quote", None)
        if kwargs:
            raise exc.ArgumentError(
                f"Column {name or '(unnamed)'!r}: unknown argument(s) {', '.join(sorted(kwargs))}"
            )
        self.foreign_keys: set[ForeignKey] = set()
        self.constraints: list[Constraint] = []
        self._type_from_fk = type_ is None
        for item in args_list:
            if isinstance(item, ForeignKey):
                item._set_parent_column(self)
            elif isinstance(item, Constraint):
                self.constraints.append(item)
            elif isinstance(item, (ColumnDefault, DefaultClause, FetchedValue)):
                if isinstance(item, ColumnDefault):
                    self.default = item
                else:
                    self.server_default = item
            else:
                raise exc.ArgumentError(
                    f"Column {name or '(unnamed)'!r}: unexpected positional argument {item!r:.60}"
                )

    _type_value: TypeEngine[Any]

    @property
    def type(self) -> TypeEngine[Any]:
        if self._type_from_fk and isinstance(self._type_value, NullType) and self.foreign_keys:
            for fk in self.foreign_keys:
                try:
                    target = fk.column
                except exc.NoReferenceError:
                    break
                self._type_value = target.type
                break
        return self._type_value

    @type.setter
    def type(self, value: TypeEngine[Any]) -> None:
        self._type_value = value

    def _set_name(self, name: str) -> None:
        """Give a column its name late (declarative classes name columns by attribute)."""
        if not self._name:
            self._name = name
        if not self._key:
            self._key = self._name

    def _set_parent(self, table: Table) -> None:
        if self.table is not None and self.table is not table:
            raise exc.ArgumentError(
                f"Column {self._name!r} already belongs to table {self.table.description!r}; "
                "use column.copy() to put a column in another table"
            )
        if not self._name:
            raise exc.ArgumentError(f"A column of table {table.name!r} has no name")
        self.table = table

    def copy(self) -> Column:
        """An unattached column with the same definition."""
        return Column(
            self._name,
            self._type_value if not self._type_from_fk else None,
            *[
                ForeignKey(
                    fk._colspec_text(), ondelete=fk.ondelete, onupdate=fk.onupdate, name=fk.name
                )
                for fk in self.foreign_keys
            ],
            key=self._key,
            primary_key=self.primary_key,
            nullable=self._user_nullable,
            default=self.default,
            onupdate=self.onupdate,
            server_default=self.server_default,
            server_onupdate=self.server_onupdate,
            autoincrement=self.autoincrement,
            unique=self.unique,
            index=self.index,
            comment=self.comment,
            info=dict(self.info),
        )

    def describe(self) -> str:
        table = self.table
        if table is not None:
            return f"column '{table.description}.{self._name}'"
        return f"column '{self._name}'"

    def references(self, column: Column) -> bool:
        return any(fk.column is column for fk in self.foreign_keys)

    def _definition_key(self) -> Hashable_:
        return (
            self._name,
            None if self._type_from_fk else self._type_value.cache_key,
            self.primary_key,
            self.nullable,
            tuple(sorted(fk._colspec_text() for fk in self.foreign_keys)),
        )

    def __repr__(self) -> str:
        table = self.table
        return (
            f"Column({self._name!r}, {self.type!r}, table=<{table.description}>)"
            if table is not None
            else f"Column({self._name!r}, {self.type!r})"
        )


def _server_default(value: Any, for_update: bool) -> DefaultClause | FetchedValue | None:
    if value is None or isinstance(value, (DefaultClause, FetchedValue)):
        return value
    if isinstance(value, (str, ClauseElement)):
        return DefaultClause(value, for_update)
    raise exc.ArgumentError(
        f"server_default takes a string, text() or a SQL expression, got {value!r:.60}; "
        "Python values go in default="
    )


class MetaData:
    """A collection of tables and the DDL to create or drop them."""

    def __init__(
        self, schema: str | None = None, naming_convention: dict[str, str] | None = None
    ) -> None:
        self.schema = schema
        self.naming_convention = naming_convention or {}
        self.tables: dict[str, Table] = {}

    def _add_table(self, table: Table) -> None:
        self.tables[table.fullname] = table

    def remove(self, table: Table) -> None:
        self.tables.pop(table.fullname, None)

    def clear(self) -> None:
        self.tables.clear()

    @property
    def sorted_tables(self) -> list[Table]:
        """Tables in foreign-key dependency order: referenced tables first."""
        from asyncsession.sql.ddl import sort_tables

        return sort_tables(self.tables.values())

    def create_all(
        self, bind: Any, tables: Sequence[Table] | None = None, checkfirst: bool = True
    ) -> None:
        """Create the tables (and their indexes and types) on a blocking connection or engine.

        ``bind`` is anything with ``execute(statement)`` and ``dialect``; in
        async code use ``await conn.run_sync(metadata.create_all)``.
        """
        from asyncsession.sql.ddl import create_all

        create_all(self, bind, tables, checkfirst)

    def drop_all(
        self, bind: Any, tables: Sequence[Table] | None = None, checkfirst: bool = True
    ) -> None:
        """Drop the tables in reverse dependency order; see :meth:`create_all`."""
        from asyncsession.sql.ddl import drop_all

        drop_all(self, bind, tables, checkfirst)

    def __contains__(self, name: str) -> bool:
        return name in self.tables

    def __repr__(self) -> str:
        return f"MetaData({len(self.tables)} tables)"


class Table(FromClause):
    """A database table: ``Table(name, metadata, *columns_and_constraints, schema=None)``."""

    __visit_name__ = "table"
    named_with_column = True

    def __new__(cls, name: str, metadata: MetaData, *args: Any, **kw: Any) -> Table:
        if not isinstance(metadata, MetaData):
            raise exc.ArgumentError(
                f"Table({name!r}, ...): the second argument must be a MetaData, "
                f"got {type(metadata).__name__}"
            )
        schema = kw.get("schema", metadata.schema)
        fullname = f"{schema}.{name}" if schema else name
        existing = metadata.tables.get(fullname)
        if existing is not None:
            if kw.get("keep_existing"):
                return existing
            if kw.get("extend_existing"):
                existing._init_items(args)
                return existing
            if args:
                probe = object.__new__(cls)
                probe._setup(name, MetaData(), (), schema)
                probe._init_items(
                    tuple(
                        a.copy() if isinstance(a, Column) else a
                        for a in args
                        if isinstance(a, Column)
                    )
                )
                if probe._definition_key() != existing._definition_key():
                    raise exc.ArgumentError(
                        f"Table {fullname!r} is already defined in this MetaData with "
                        f"different columns ({', '.join(existing.c.keys())}); use "
                        "extend_existing=True to add columns, or another MetaData"
                    )
            return existing
        table = object.__new__(cls)
        table._setup(name, metadata, args, schema)
        table.comment = kw.get("comment")
        table.info = kw.get("info") or {}
        unknown = set(kw) - {"schema", "keep_existing", "extend_existing", "comment", "info"}
        if unknown:
            raise exc.ArgumentError(
                f"Table {name!r}: unknown argument(s) {', '.join(sorted(unknown))}"
            )
        metadata._add_table(table)
        return table

    def __init__(self, name: str, metadata: MetaData, *args: Any, **kw: Any) -> None:
        # All set-up happens in __new__ so that re-declaring returns the existing table.
        pass

    def _setup(
        self, name: str, metadata: MetaData, args: Iterable[Any], schema: str | None
    ) -> None:
        if not isinstance(name, str) or not name:
            raise exc.ArgumentError(f"A table name must be a non-empty string, got {name!r}")
        self.name = name
        self.metadata = metadata
        self.schema = schema
        self.fullname = f"{schema}.{name}" if schema else name
        self._serial = next_serial()
        self._columns = ColumnCollection()
        self.constraints: list[Constraint] = []
        self.indexes: list[Index] = []
        self.foreign_keys: list[ForeignKey] = []
        self._primary_key = PrimaryKeyConstraint()
        self._primary_key.table = self
        self.comment: str | None = None
        self.info: dict[str, Any] = {}
        self._init_items(tuple(args))

    def _init_items(self, args: tuple[Any, ...]) -> None:
        for item in args:
            if isinstance(item, Column):
                self._append_column(item)
        for item in args:
            if isinstance(item, Column):
                continue
            if isinstance(item, Index):
                item._set_table(self)
            elif isinstance(item, Constraint):
                self.append_constraint(item)
            else:
                raise exc.ArgumentError(
                    f"Table {self.name!r}: unexpected argument {item!r:.60}; expected "
                    "Column, Constraint or Index"
                )

    def _append_column(self, column: Column) -> None:
        column._set_parent(self)
        if column.key in self._columns:
            raise exc.ArgumentError(f"Table {self.name!r} has two columns named {column.key!r}")
        self._columns._add(column)
        if column.primary_key:
            self._primary_key.columns.append(column)
        for fk in column.foreign_keys:
            fk._set_table(self)
        if column.index:
            # index=True with unique=True is a unique index, not a separate constraint.
            Index(None, column, unique=bool(column.unique))._set_table(self)
        elif column.unique:
            self.append_constraint(UniqueConstraint(column.name))
        for constraint in column.constraints:
            self.append_constraint(constraint)

    def append_column(self, column: Column) -> None:
        self._append_column(column)

    def append_constraint(self, constraint: Constraint) -> None:
        constraint._set_table(self)

    @property
    def c(self) -> ColumnCollection:
        return self._columns

    @property
    def primary_key(self) -> PrimaryKeyConstraint:  # type: ignore[override]
        return self._primary_key

    @property
    def description(self) -> str:
        return self.fullname

    @property
    def key(self) -> str:
        return self.fullname

    def foreign_key_pairs(self) -> list[tuple[ColumnElement, ColumnElement]]:
        return [(fk.parent, fk.column) for fk in self.foreign_keys]

    def corresponding_column(self, column: ColumnElement) -> ColumnElement | None:
        return column if self._columns.contains_column(column) else None

    def _definition_key(self) -> Hashable_:
        return tuple(c._definition_key() for c in self._columns)

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return ("table", self._serial)

    def insert(self) -> Any:
        from asyncsession.sql.dml import insert

        return insert(self)

    def update(self) -> Any:
        from asyncsession.sql.dml import update

        return update(self)

    def delete(self) -> Any:
        from asyncsession.sql.dml import delete

        return delete(self)

    def create(self, bind: Any, checkfirst: bool = False) -> None:
        self.metadata.create_all(bind, [self], checkfirst)

    def drop(self, bind: Any, checkfirst: bool = False) -> None:
        self.metadata.drop_all(bind, [self], checkfirst)

    def __repr__(self) -> str:
        return f"Table({self.fullname!r}, columns=[{', '.join(self._columns.keys())}])"

    # By identity, as a C slot: tables key the flush planner's dicts and sets.
    __hash__ = object.__hash__


class TableClause(FromClause):
    """A lightweight table with no MetaData: ``table("name", column("a"), ...)``."""

    __visit_name__ = "table"
    named_with_column = True

    def __init__(self, name: str, *columns: ColumnClause, schema: str | None = None) -> None:
        self.name = name
        self.schema = schema
        self.fullname = f"{schema}.{name}" if schema else name
        self._serial = next_serial()
        self._columns = ColumnCollection()
        for column in columns:
            column.table = self
            self._columns._add(column)

    @property
    def c(self) -> ColumnCollection:
        return self._columns

    @property
    def description(self) -> str:
        return self.fullname

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return ("table", self._serial)


def table(name: str, *columns: ColumnClause, schema: str | None = None) -> TableClause:
    return TableClause(name, *columns, schema=schema)


class ForeignKey:
    """A column's reference to another column: ``ForeignKey("users.id", ondelete="CASCADE")``."""

    def __init__(
        self,
        column: str | Column,
        *,
        name: str | None = None,
        ondelete: str | None = None,
        onupdate: str | None = None,
        deferrable: bool | None = None,
        initially: str | None = None,
        use_alter: bool = False,
        constraint: ForeignKeyConstraint | None = None,
    ) -> None:
        if not isinstance(column, (str, ColumnClause)):
            raise exc.ArgumentError(
                f"ForeignKey() takes 'table.column' or a Column, got {column!r:.60}"
            )
        if isinstance(column, str) and column.count(".") not in (1, 2):
            raise exc.ArgumentError(
                f"ForeignKey({column!r}): expected 'table.column' or 'schema.table.column'"
            )
        self._colspec = column
        self.name = name
        self.ondelete = ondelete
        self.onupdate = onupdate
        self.deferrable = deferrable
        self.initially = initially
        self.use_alter = use_alter
        self.constraint = constraint
        self.parent: Column = None  # type: ignore[assignment]
        self._column: Column | None = None

    def _colspec_text(self) -> str:
        spec = self._colspec
        if isinstance(spec, str):
            return spec
        table = spec.table
        return f"{table.description}.{spec.name}" if table is not None else spec.name

    def _set_parent_column(self, column: Column) -> None:
        self.parent = column
        column.foreign_keys.add(self)

    def _set_table(self, table: Table) -> None:
        if self.constraint is None:
            self.constraint = ForeignKeyConstraint(
                [self.parent.name],
                [self._colspec_text()],
                name=self.name,
                ondelete=self.ondelete,
                onupdate=self.onupdate,
                deferrable=self.deferrable,
                initially=self.initially,
                use_alter=self.use_alter,
                _elements=[self],
            )
            self.constraint.table = table
            table.constraints.append(self.constraint)
        if self not in table.foreign_keys:
            table.foreign_keys.append(self)

    @property
    def target_fullname(self) -> str:
        return self._colspec_text()

    @property
    def column(self) -> Column:
        """The referenced column, resolved through the parent table's MetaData."""
        if self._column is not None:
            return self._column
        spec = self._colspec
        if isinstance(spec, Column):
            self._column = spec
            return spec
        if not isinstance(spec, str):
            raise exc.ArgumentError(f"ForeignKey target {spec!r} is not a table Column")
        parent_table = self.parent.table if self.parent is not None else None
        if not isinstance(parent_table, Table):
            raise exc.InvalidRequestError(f"ForeignKey({spec!r}) is not attached to a table yet")
        table_name, _, column_name = spec.rpartition(".")
        metadata = parent_table.metadata
        target_table = metadata.tables.get(table_name)
        if target_table is None and "." not in table_name and metadata.schema:
            target_table = metadata.tables.get(f"{metadata.schema}.{table_name}")
        if target_table is None:
            raise exc.NoReferencedTableError(
                f"Foreign key on {self.parent.describe()} refers to table {table_name!r}, "
                "which is not in the MetaData; define that table (in the same MetaData) first",
                table_name,
            )
        target = target_table.c.get(column_name)
        if target is None:
            raise exc.NoReferencedColumnError(
                f"Foreign key on {self.parent.describe()} refers to column "
                f"{table_name}.{column_name}, but table {table_name!r} has columns "
                f"{', '.join(target_table.c.keys())}",
                table_name,
                column_name,
            )
        self._column = target
        return target  # type: ignore[no-any-return]  # ColumnCollection values are Any

    def references(self, table: FromClause) -> bool:
        return self.column.table is table

    def __repr__(self) -> str:
        return f"ForeignKey({self._colspec_text()!r})"


class Constraint:
    """Base of table constraints."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        self.table: Table | None = None

    def _set_table(self, table: Table) -> None:
        self.table = table
        table.constraints.append(self)

    def _resolve_columns(self, names: Sequence[Any]) -> list[Column]:
        assert self.table is not None
        out: list[Column] = []
        for item in names:
            if isinstance(item, Column):
                out.append(item)
                continue
            column = self.table.c.get(item) if isinstance(item, str) else None
            if column is None:
                raise exc.ArgumentError(
                    f"{type(self).__name__} on table {self.table.name!r} names column "
                    f"{item!r}, which the table does not have"
                )
            out.append(column)
        return out


class PrimaryKeyConstraint(Constraint):
    """``PRIMARY KEY (cols)``; also what ``table.primary_key`` returns."""

    def __init__(self, *columns: Any, name: str | None = None) -> None:
        super().__init__(name)
        self._pending = columns
        self.columns: list[Column] = []

    def _set_table(self, table: Table) -> None:
        self.table = table
        cols = self._resolve_columns(self._pending)
        for column in cols:
            column.primary_key = True
            if column._user_nullable is None:
                column.nullable = False
        table._primary_key.columns = cols
        table._primary_key.name = self.name

    def __iter__(self) -> Any:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    def __getitem__(self, index: int) -> Column:
        return self.columns[index]

    def __contains__(self, item: object) -> bool:
        return any(c is item for c in self.columns)

    def __bool__(self) -> bool:
        return bool(self.columns)

    def __repr__(self) -> str:
        return f"PrimaryKeyConstraint({', '.join(c.name for c in self.columns)})"


class UniqueConstraint(Constraint):
    """``UNIQUE (cols)``."""

    def __init__(self, *columns: Any, name: str | None = None) -> None:
        super().__init__(name)
        self._pending = columns
        self.columns: list[Column] = []

    def _set_table(self, table: Table) -> None:
        super()._set_table(table)
        self.columns = self._resolve_columns(self._pending)


class CheckConstraint(Constraint):
    """``CHECK (sqltext)``: a string of SQL or a boolean expression."""

    def __init__(self, sqltext: Any, name: str | None = None) -> None:
        super().__init__(name)
        if isinstance(sqltext, str):
            self.sqltext: ClauseElement = TextClause(sqltext)
        elif isinstance(sqltext, ClauseElement):
            self.sqltext = sqltext
        else:
            raise exc.ArgumentError(
                f"CheckConstraint takes SQL text or an expression, got {sqltext!r:.60}"
            )


class ForeignKeyConstraint(Constraint):
    """A (possibly composite) foreign key: ``ForeignKeyConstraint(["a", "b"], ["t.a", "t.b"])``."""

    def __init__(
        self,
        columns: Sequence[Any],
        refcolumns: Sequence[Any],
        name: str | None = None,
        ondelete: str | None = None,
        onupdate: str | None = None,
        deferrable: bool | None = None,
        initially: str | None = None,
        use_alter: bool = False,
        _elements: list[ForeignKey] | None = None,
    ) -> None:
        super().__init__(name)
        if len(columns) != len(refcolumns):
            raise exc.ArgumentError(
                f"ForeignKeyConstraint needs as many referenced columns as columns; got "
                f"{len(columns)} and {len(refcolumns)}"
            )
        self._pending = list(columns)
        self._refcolumns = list(refcolumns)
        self.ondelete = ondelete
        self.onupdate = onupdate
        self.deferrable = deferrable
        self.initially = initially
        self.use_alter = use_alter
        self.elements: list[ForeignKey] = list(_elements or [])

    def _set_table(self, table: Table) -> None:
        super()._set_table(table)
        if self.elements:
            return
        for local, ref in zip(self._resolve_columns(self._pending), self._refcolumns, strict=True):
            fk = ForeignKey(
                ref, name=self.name, ondelete=self.ondelete, onupdate=self.onupdate, constraint=self
            )
            fk._set_parent_column(local)
            fk._set_table(table)
            self.elements.append(fk)

    @property
    def columns(self) -> list[Column]:
        return [fk.parent for fk in self.elements]

    @property
    def referred_table(self) -> Table:
        return self.elements[0].column.table  # type: ignore[return-value]

    @property
    def column_keys(self) -> list[str]:
        return [fk.parent.key for fk in self.elements]


class Index:
    """``CREATE [UNIQUE] INDEX name ON table (exprs)``; expressions may be SQL (functional)."""

    def __init__(
        self, name: str | None, *expressions: Any, unique: bool = False, **dialect_kw: Any
    ) -> None:
        self.name = name
        self.unique = unique
        self._pending = expressions
        self.expressions: list[ColumnElement] = []
        self.table: Table | None = None
        self.dialect_kw = dialect_kw
        tables = {
            id(getattr(e, "table", None))
            for e in expressions
            if isinstance(getattr(e, "table", None), Table)
        }
        if len(tables) > 1:
            raise exc.ArgumentError(f"Index {name!r} spans columns of several tables")
        for expression in expressions:
            table = getattr(expression, "table", None)
            if isinstance(table, Table):
                self._set_table(table)
                break
            table = _table_of_expression(expression)
            if table is not None:
                self._set_table(table)
                break

    def _set_table(self, table: Table) -> None:
        if self.table is table and self.expressions:
            return
        self.table = table
        out: list[ColumnElement] = []
        for item in self._pending:
            if isinstance(item, str):
                column = table.c.get(item)
                if column is None:
                    raise exc.ArgumentError(
                        f"Index {self.name!r} names column {item!r}, which table "
                        f"{table.name!r} does not have"
                    )
                out.append(column)
            else:
                out.append(coerce_expression(item))
        self.expressions = out
        if self.name is None:
            cols = "_".join(c.name or "expr" for c in out if isinstance(c, Column)) or "expr"
            self.name = f"ix_{table.name}_{cols}"
        if self not in table.indexes:
            table.indexes.append(self)

    def __repr__(self) -> str:
        return f"Index({self.name!r})"


def _table_of_expression(expression: Any) -> Table | None:
    stack = [expression]
    while stack:
        node = stack.pop()
        table = getattr(node, "table", None)
        if isinstance(table, Table):
            return table
        if isinstance(node, ClauseElement):
            stack.extend(node.get_children())
    return None


__all__ = [
    "CheckConstraint",
    "Column",
    "ColumnDefault",
    "DefaultClause",
    "FetchedValue",
    "ForeignKey",
    "ForeignKeyConstraint",
    "Index",
    "MetaData",
    "PrimaryKeyConstraint",
    "Table",
    "TableClause",
    "UniqueConstraint",
    "table",
]
