"""The generic dialect behind ``str(statement)``: readable SQL with ``:name`` parameters."""

from __future__ import annotations

from collections.abc import Sequence

from asyncsession.sql.compiler import Dialect
from asyncsession.sql.ddl import DDLCompiler
from asyncsession.sql.elements import BindParameter


class _DisplayTypes:
    """The dialect the types see when a statement is compiled for display.

    Types spell and process themselves for SQLite and PostgreSQL only; generic SQL
    borrows PostgreSQL's spelling, the closer of the two to standard SQL. Display
    never runs the processors, so which ones the types hand out does not matter.
    """

    name = "postgresql"
    json_serializer = None
    json_deserializer = None


class DefaultCompiler(DDLCompiler):
    def __init__(
        self,
        dialect: Dialect,
        extracted: Sequence[BindParameter],
        column_keys: Sequence[str] | None = None,
        literal_binds: bool = False,
    ) -> None:
        super().__init__(_DisplayTypes(), extracted, column_keys, literal_binds)


class DefaultDialect(Dialect):
    name = "default"
    compiler_class = DefaultCompiler


DEFAULT_DIALECT = DefaultDialect()
