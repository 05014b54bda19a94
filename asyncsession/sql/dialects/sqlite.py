"""SQLite's SQL rules: ``?`` parameters, 1/0 booleans, no DISTINCT ON, LIMIT -1 for OFFSET."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from asyncsession import exc
from asyncsession.sql.compiler import Dialect
from asyncsession.sql.ddl import DDLCompiler
from asyncsession.sql.types import TypeEngine


class SQLiteCompiler(DDLCompiler):
    dialect_name = "sqlite"
    paramstyle = "qmark"
    true_sql = "1"
    false_sql = "0"
    true_division_cast = "REAL"

    def placeholder(self, position: int, name: str) -> str:
        return "?"

    def group_compound_member(self, inner: str) -> str:
        # SQLite rejects parentheses around the members of a compound SELECT, and
        # without them a member's LIMIT would apply to the whole compound.
        return "SELECT * FROM (" + inner + ")"

    def empty_in(self, types: Sequence[TypeEngine[Any]]) -> str:
        return "()"

    def limit_clause(self, select: Any) -> str:
        text = ""
        if select._limit is not None:
            text += " LIMIT " + self.process(select._limit)
        elif select._offset is not None:
            text += " LIMIT -1"
        if select._offset is not None:
            text += " OFFSET " + self.process(select._offset)
        return text

    def for_update_clause(self, for_update: Any) -> str:
        # SQLite locks the whole database per transaction; row locks do not exist.
        return ""

    # SQLite has no ILIKE: compare both sides lower-cased.
    def visit_ilike_binary(self, binary: Any, **kw: Any) -> str:
        return self._lower_like(binary, " LIKE ", **kw)

    def visit_not_ilike_binary(self, binary: Any, **kw: Any) -> str:
        return self._lower_like(binary, " NOT LIKE ", **kw)

    def _lower_like(self, binary: Any, keyword: str, **kw: Any) -> str:
        text = (
            "lower("
            + self.process(binary.left, **kw)
            + ")"
            + keyword
            + "lower("
            + self.process(binary.right, **kw)
            + ")"
        )
        if binary.escape is not None:
            text += " ESCAPE " + self.render_literal(binary.escape, binary.type)
        return text

    def visit_is_distinct_from_binary(self, binary: Any, **kw: Any) -> str:
        return self.process(binary.left, **kw) + " IS NOT " + self.process(binary.right, **kw)

    def visit_is_not_distinct_from_binary(self, binary: Any, **kw: Any) -> str:
        return self.process(binary.left, **kw) + " IS " + self.process(binary.right, **kw)

    def visit_getitem_binary(self, binary: Any, **kw: Any) -> str:
        raise exc.CompileError("SQLite has no ARRAY type; array indexing is PostgreSQL-only")

    def visit_array_contains_binary(self, binary: Any, **kw: Any) -> str:
        raise exc.CompileError("SQLite has no ARRAY type; contains() on arrays is PostgreSQL-only")

    def visit_between_symmetric_binary(self, binary: Any, **kw: Any) -> str:
        raise exc.CompileError("BETWEEN SYMMETRIC is PostgreSQL-only")

    def function_name(self, fn: Any) -> str:
        name = super().function_name(fn)
        return _SQLITE_FUNCTIONS.get(name.lower(), name)

    def visit_function(self, fn: Any, **kw: Any) -> str:
        if fn.fn_name.lower() == "now" and not fn.clauses:
            return "CURRENT_TIMESTAMP"
        return super().visit_function(fn, **kw)

    def on_conflict_clause(self, conflict: Any) -> str:
        if conflict.constraint is not None:
            raise exc.CompileError(
                "SQLite's ON CONFLICT can't name a constraint; give index_elements=[...]"
            )
        return super().on_conflict_clause(conflict)

    def visit_create_enum_type(self, ddl: Any, **kw: Any) -> str:
        raise exc.CompileError(
            "CREATE TYPE is PostgreSQL-only; on SQLite an Enum is a VARCHAR column"
        )

    def visit_drop_enum_type(self, ddl: Any, **kw: Any) -> str:
        raise exc.CompileError("DROP TYPE is PostgreSQL-only; SQLite has no enum types")

    def delete_extra_from(self, extra: list[Any]) -> str:
        raise exc.CompileError(
            "SQLite can't DELETE with other tables in the WHERE clause; use a subquery: "
            "where(table.c.id.in_(select(...)))"
        )


_SQLITE_FUNCTIONS = {
    "char_length": "length",
    "string_agg": "group_concat",
}


class SQLiteDialect(Dialect):
    """SQLite through aiosqlite."""

    name = "sqlite"
    compiler_class = SQLiteCompiler
    max_bind_params = 32766
