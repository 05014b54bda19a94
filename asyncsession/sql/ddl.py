"""DDL: CREATE/DROP of tables, indexes and PostgreSQL enum types, in dependency order.

How this works:

* DDL statements are elements like any other and compile through the same
  dialect entry point; they are never cached (definitions can change) and
  values in them are rendered as literals, since DDL takes no parameters.
* ``create_all``/``drop_all`` are plain blocking functions over a *bind*:
  anything with ``dialect`` and ``execute(statement)`` returning a result with
  ``scalar()``. In async code they run through ``await conn.run_sync(...)``;
  the sync facade's connections are binds too.
* Tables are sorted so that a table comes after every table it references.
  Self-references do not count. A cycle raises ``CircularDependencyError``
  naming the tables, unless one of its foreign keys has ``use_alter=True``:
  that key is then added with ``ALTER TABLE`` after the tables exist
  (PostgreSQL) or inline (SQLite, which does not check references at
  CREATE time).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from asyncsession import exc
from asyncsession.sql.compiler import SQLCompiler, quote_identifier
from asyncsession.sql.elements import BindParameter, ClauseElement, Hashable_, text
from asyncsession.sql.schema import (
    CheckConstraint,
    Column,
    DefaultClause,
    ForeignKeyConstraint,
    Index,
    MetaData,
    Table,
    UniqueConstraint,
)
from asyncsession.sql.types import BigInteger, Enum, Integer, SmallInteger


class DDLElement(ClauseElement):
    """Base of DDL statements; never cached."""

    __slots__ = ("element", "if_exists", "if_not_exists")

    def __init__(self, element: Any, if_exists: bool = False, if_not_exists: bool = False) -> None:
        self.element = element
        self.if_exists = if_exists
        self.if_not_exists = if_not_exists

    def _ck(self, binds: list[BindParameter]) -> Hashable_:
        return None


class CreateTable(DDLElement):
    __slots__ = ()
    __visit_name__ = "create_table"


class DropTable(DDLElement):
    __slots__ = ()
    __visit_name__ = "drop_table"


class CreateIndex(DDLElement):
    __slots__ = ()
    __visit_name__ = "create_index"


class DropIndex(DDLElement):
    __slots__ = ()
    __visit_name__ = "drop_index"


class CreateEnumType(DDLElement):
    """PostgreSQL ``CREATE TYPE name AS ENUM (...)`` for a native Enum."""

    __slots__ = ()
    __visit_name__ = "create_enum_type"


class DropEnumType(DDLElement):
    __slots__ = ()
    __visit_name__ = "drop_enum_type"


class AddConstraint(DDLElement):
    """``ALTER TABLE t ADD CONSTRAINT ...`` for ``use_alter`` foreign keys."""

    __slots__ = ()
    __visit_name__ = "add_constraint"


class DropConstraint(DDLElement):
    __slots__ = ()
    __visit_name__ = "drop_constraint"


def _is_autoincrement(column: Column) -> bool:
    table = column.table
    if not isinstance(table, Table) or not column.primary_key:
        return False
    if column.autoincrement is False:
        return False
    if len(table.primary_key.columns) != 1 or not isinstance(column.type, Integer):
        return column.autoincrement is True
    if column.autoincrement is True:
        return True
    return not column.foreign_keys and column.default is None and column.server_default is None


class DDLCompiler(SQLCompiler):
    """The SQL compiler plus DDL; every dialect's compiler derives from it."""

    def _ddl(self) -> None:
        self.statement_kind = "ddl"
        self.in_ddl = True
        self.literal_binds = True

    def column_spec(self, column: Column) -> str:
        dialect = self.dialect_name
        autoinc = _is_autoincrement(column)
        if dialect == "postgresql" and autoinc:
            if isinstance(column.type, BigInteger):
                type_sql = "BIGSERIAL"
            elif isinstance(column.type, SmallInteger):
                type_sql = "SMALLSERIAL"
            else:
                type_sql = "SERIAL"
        elif dialect == "sqlite" and autoinc:
            # Only "INTEGER PRIMARY KEY" makes SQLite generate keys (a rowid alias).
            type_sql = "INTEGER"
        else:
            for fk in column.foreign_keys:
                # A column typed by its foreign key: an unknown target raises
                # NoReferencedTableError/NoReferencedColumnError naming it.
                _ = fk.column
            try:
                type_sql = column.type.compile_ddl(self.dialect)
            except exc.CompileError as err:
                raise exc.CompileError(f"Can't create {column.describe()}: {err}") from None
        spec = self.quote(column.name) + " " + type_sql
        if dialect == "sqlite" and autoinc:
            spec += " PRIMARY KEY"
            if column.autoincrement is True:
                spec += " AUTOINCREMENT"
        default = column.server_default
        if isinstance(default, DefaultClause):
            spec += " DEFAULT " + self.default_sql(default.arg)
        if not column.nullable and not (dialect == "sqlite" and autoinc):
            spec += " NOT NULL"
        check_values = column.type.check_constraint_values(self.dialect)
        if check_values is not None:
            values = ", ".join(self.render_literal(v, column.type) for v in check_values)
            spec += " CHECK (" + self.quote(column.name) + " IN (" + values + "))"
        return spec

    def default_sql(self, arg: Any) -> str:
        if isinstance(arg, str):
            return self.render_literal(arg, None)  # type: ignore[arg-type]
        inner = self.process(arg)
        return inner if getattr(arg, "__visit_name__", "") == "textclause" else "(" + inner + ")"

    def foreign_key_spec(self, fkc: ForeignKeyConstraint) -> str:
        referred = fkc.elements[0].column.table
        text = ""
        if fkc.name:
            text += "CONSTRAINT " + self.quote(fkc.name) + " "
        text += "FOREIGN KEY (" + ", ".join(self.quote(c.name) for c in fkc.columns) + ")"
        text += " REFERENCES " + self.format_table(referred) + " ("
        text += ", ".join(self.quote(fk.column.name) for fk in fkc.elements) + ")"
        if fkc.ondelete:
            text += " ON DELETE " + _check_action(fkc.ondelete)
        if fkc.onupdate:
            text += " ON UPDATE " + _check_action(fkc.onupdate)
        if fkc.deferrable is not None:
            text += " DEFERRABLE" if fkc.deferrable else " NOT DEFERRABLE"
        if fkc.initially:
            text += " INITIALLY " + _check_keyword(fkc.initially, ("DEFERRED", "IMMEDIATE"))
        return text

    def visit_create_table(self, ddl: CreateTable, **kw: Any) -> str:
        self._ddl()
        table: Table = ddl.element
        lines = [self.column_spec(c) for c in table.c]
        pk = table.primary_key
        sqlite_inline_pk = self.dialect_name == "sqlite" and any(
            _is_autoincrement(c) for c in pk.columns
        )
        if pk.columns and not sqlite_inline_pk:
            text = "CONSTRAINT " + self.quote(pk.name) + " " if pk.name else ""
            lines.append(
                text + "PRIMARY KEY (" + ", ".join(self.quote(c.name) for c in pk.columns) + ")"
            )
        for constraint in table.constraints:
            if isinstance(constraint, ForeignKeyConstraint):
                if constraint.use_alter and self.dialect_name != "sqlite":
                    continue
                lines.append(self.foreign_key_spec(constraint))
            elif isinstance(constraint, UniqueConstraint):
                prefix = (
                    "CONSTRAINT " + self.quote(constraint.name) + " " if constraint.name else ""
                )
                lines.append(
                    prefix
                    + "UNIQUE ("
                    + ", ".join(self.quote(c.name) for c in constraint.columns)
                    + ")"
                )
            elif isinstance(constraint, CheckConstraint):
                prefix = (
                    "CONSTRAINT " + self.quote(constraint.name) + " " if constraint.name else ""
                )
                lines.append(prefix + "CHECK (" + self.process(constraint.sqltext) + ")")
        head = "CREATE TABLE "
        if ddl.if_not_exists:
            head += "IF NOT EXISTS "
        return head + self.format_table(table) + " (" + ", ".join(lines) + ")"

    def visit_drop_table(self, ddl: DropTable, **kw: Any) -> str:
        self._ddl()
        head = "DROP TABLE IF EXISTS " if ddl.if_exists else "DROP TABLE "
        return head + self.format_table(ddl.element)

    def visit_create_index(self, ddl: CreateIndex, **kw: Any) -> str:
        self._ddl()
        index: Index = ddl.element
        assert index.table is not None
        assert index.name is not None
        text = "CREATE UNIQUE INDEX " if index.unique else "CREATE INDEX "
        if ddl.if_not_exists:
            text += "IF NOT EXISTS "
        name = self.quote(index.name)
        if self.dialect_name == "sqlite" and index.table.schema:
            name = self.quote(index.table.schema) + "." + name
            target = self.quote(index.table.name)
        else:
            target = self.format_table(index.table)
        exprs = []
        for expression in index.expressions:
            sql = self.process(expression)
            exprs.append(sql if isinstance(expression, Column) else "(" + sql + ")")
        return text + name + " ON " + target + " (" + ", ".join(exprs) + ")"

    def visit_drop_index(self, ddl: DropIndex, **kw: Any) -> str:
        self._ddl()
        index: Index = ddl.element
        assert index.name is not None
        head = "DROP INDEX IF EXISTS " if ddl.if_exists else "DROP INDEX "
        name = self.quote(index.name)
        if index.table is not None and index.table.schema:
            name = self.quote(index.table.schema) + "." + name
        return head + name

    def visit_create_enum_type(self, ddl: CreateEnumType, **kw: Any) -> str:
        self._ddl()
        type_: Enum = ddl.element
        values = ", ".join(self.render_literal(v, type_) for v in type_.enums)
        return "CREATE TYPE " + self._enum_name(type_) + " AS ENUM (" + values + ")"

    def visit_drop_enum_type(self, ddl: DropEnumType, **kw: Any) -> str:
        self._ddl()
        head = "DROP TYPE IF EXISTS " if ddl.if_exists else "DROP TYPE "
        return head + self._enum_name(ddl.element)

    def _enum_name(self, type_: Enum) -> str:
        # The column type renders the same name, so CREATE TYPE and the column agree.
        return type_.compile_ddl(self.dialect)

    def visit_add_constraint(self, ddl: AddConstraint, **kw: Any) -> str:
        self._ddl()
        fkc: ForeignKeyConstraint = ddl.element
        assert fkc.table is not None
        return "ALTER TABLE " + self.format_table(fkc.table) + " ADD " + self.foreign_key_spec(fkc)

    def visit_drop_constraint(self, ddl: DropConstraint, **kw: Any) -> str:
        self._ddl()
        fkc: ForeignKeyConstraint = ddl.element
        assert fkc.table is not None
        assert fkc.name is not None
        return (
            "ALTER TABLE "
            + self.format_table(fkc.table)
            + " DROP CONSTRAINT "
            + self.quote(fkc.name)
        )


def _check_action(action: str) -> str:
    return _check_keyword(action, ("CASCADE", "SET NULL", "SET DEFAULT", "RESTRICT", "NO ACTION"))


def _check_keyword(value: str, allowed: tuple[str, ...]) -> str:
    upper = value.upper()
    if upper not in allowed:
        raise exc.CompileError(f"{value!r} is not one of {', '.join(allowed)}")
    return upper


def sort_tables(tables: Iterable[Table], skip_use_alter: bool = True) -> list[Table]:
    """Tables ordered so that each comes after the tables it references.

    The order is deterministic (ties keep the given order). Raises
    CircularDependencyError naming the tables of a cycle that no
    ``use_alter=True`` foreign key breaks.
    """
    tables = list(tables)
    index = {id(t): i for i, t in enumerate(tables)}
    deps: dict[int, set[int]] = {id(t): set() for t in tables}
    for table in tables:
        for fkc in table.constraints:
            if not isinstance(fkc, ForeignKeyConstraint) or (skip_use_alter and fkc.use_alter):
                continue
            target = fkc.elements[0].column.table
            if target is not table and id(target) in deps:
                deps[id(table)].add(id(target))
    ordered: list[Table] = []
    done: set[int] = set()
    remaining = list(tables)
    while remaining:
        progressed = False
        for table in list(remaining):
            if deps[id(table)] <= done:
                ordered.append(table)
                done.add(id(table))
                remaining.remove(table)
                progressed = True
        if not progressed:
            cycle = _find_cycle(remaining, deps, tables, index)
            names = " -> ".join(t.fullname for t in cycle)
            raise exc.CircularDependencyError(
                f"Tables depend on each other in a cycle: {names}; mark one of the foreign "
                "keys in the cycle with use_alter=True (and give it a name)",
                [t.fullname for t in cycle],
            )
    return ordered


def _find_cycle(
    remaining: list[Table],
    deps: dict[int, set[int]],
    tables: list[Table],
    index: dict[int, int],
) -> list[Table]:
    by_id = {id(t): t for t in tables}
    start = remaining[0]
    path: list[int] = [id(start)]
    seen = {id(start): 0}
    current = id(start)
    while True:
        nxt = min(
            (d for d in deps[current] if d in {id(t) for t in remaining}), key=lambda d: index[d]
        )
        if nxt in seen:
            cycle_ids = [*path[seen[nxt] :], nxt]
            return [by_id[i] for i in cycle_ids]
        seen[nxt] = len(path)
        path.append(nxt)
        current = nxt


def _has_table(bind: Any, table: Table) -> bool:
    dialect = bind.dialect.name
    if dialect == "sqlite":
        master = (
            f"{quote_identifier(table.schema)}.sqlite_master" if table.schema else "sqlite_master"
        )
        stmt = text(f"SELECT 1 FROM {master} WHERE type = 'table' AND name = :name").bindparams(
            name=table.name
        )
    else:
        if table.schema:
            stmt = text(
                "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = :schema "
                "AND tablename = :name"
            ).bindparams(schema=table.schema, name=table.name)
        else:
            stmt = text(
                "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() "
                "AND tablename = :name"
            ).bindparams(name=table.name)
    return bind.execute(stmt).scalar() is not None


def _has_enum(bind: Any, type_: Enum) -> bool:
    schema = getattr(type_, "schema", None)
    if schema:
        stmt = text(
            "SELECT 1 FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n "
            "ON n.oid = t.typnamespace WHERE t.typname = :name AND n.nspname = :schema"
        ).bindparams(name=type_.name, schema=schema)
    else:
        stmt = text(
            "SELECT 1 FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n "
            "ON n.oid = t.typnamespace WHERE t.typname = :name "
            "AND n.nspname = ANY(current_schemas(false))"
        ).bindparams(name=type_.name)
    return bind.execute(stmt).scalar() is not None


def _enums_of(tables: Sequence[Table], dialect: Any) -> list[Enum]:
    found: dict[str, Enum] = {}
    for table in tables:
        for column in table.c:
            for named in column.type.named_types(dialect):
                assert named.name is not None
                found.setdefault(named.name, named)
    return list(found.values())


def create_all(
    metadata: MetaData, bind: Any, tables: Sequence[Table] | None = None, checkfirst: bool = True
) -> None:
    """Create tables, their indexes and (PostgreSQL) enum types; see MetaData.create_all."""
    chosen = sort_tables(tables if tables is not None else metadata.tables.values())
    dialect_name = bind.dialect.name
    for enum_type in _enums_of(chosen, bind.dialect):
        if not checkfirst or not _has_enum(bind, enum_type):
            bind.execute(CreateEnumType(enum_type))
    created: list[Table] = []
    for table in chosen:
        if checkfirst and _has_table(bind, table):
            continue
        bind.execute(CreateTable(table))
        for index in table.indexes:
            bind.execute(CreateIndex(index))
        created.append(table)
    if dialect_name != "sqlite":
        for table in created:
            for fkc in table.constraints:
                if isinstance(fkc, ForeignKeyConstraint) and fkc.use_alter:
                    bind.execute(AddConstraint(fkc))


def drop_all(
    metadata: MetaData, bind: Any, tables: Sequence[Table] | None = None, checkfirst: bool = True
) -> None:
    """Drop tables in reverse dependency order, then (PostgreSQL) their enum types."""
    chosen = sort_tables(tables if tables is not None else metadata.tables.values())
    dialect_name = bind.dialect.name
    present = [t for t in chosen if not checkfirst or _has_table(bind, t)]
    if dialect_name != "sqlite":
        for table in present:
            for fkc in table.constraints:
                if isinstance(fkc, ForeignKeyConstraint) and fkc.use_alter:
                    if fkc.name is None:
                        raise exc.ArgumentError(
                            f"A use_alter foreign key on {table.fullname!r} needs a name= so "
                            "it can be dropped before its table"
                        )
                    bind.execute(DropConstraint(fkc))
    for table in reversed(present):
        bind.execute(DropTable(table))
    for enum_type in _enums_of(chosen, bind.dialect):
        if not checkfirst or _has_enum(bind, enum_type):
            bind.execute(DropEnumType(enum_type))
