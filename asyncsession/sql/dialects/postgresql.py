"""PostgreSQL's SQL rules: ``$n`` parameters and DISTINCT ON; the generic compiler does the rest."""

from __future__ import annotations

from typing import Any

from asyncsession.sql.compiler import Dialect
from asyncsession.sql.ddl import DDLCompiler


class PGCompiler(DDLCompiler):
    dialect_name = "postgresql"
    paramstyle = "numeric_dollar"

    def placeholder(self, position: int, name: str) -> str:
        return f"${position}"

    def distinct_clause(self, select: Any) -> str:
        if select._distinct_on:
            return "DISTINCT ON (" + ", ".join(self.process(c) for c in select._distinct_on) + ") "
        return "DISTINCT "


class PGDialect(Dialect):
    """PostgreSQL through asyncpg."""

    name = "postgresql"
    compiler_class = PGCompiler
    max_bind_params = 32767
