"""The generic dialect behind ``str(statement)``: readable SQL with ``:name`` parameters."""

from __future__ import annotations

from asyncsession.sql.compiler import Dialect
from asyncsession.sql.ddl import DDLCompiler


class DefaultDialect(Dialect):
    name = "default"
    compiler_class = DDLCompiler


DEFAULT_DIALECT = DefaultDialect()
