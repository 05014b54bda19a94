"""PostgreSQL's SQL rules: ``$n`` parameters, DISTINCT ON, typed parameters.

asyncpg has the server infer each parameter's type while preparing. Where
nothing around a parameter tells the type (``SELECT $1``, ``CASE ... THEN $2``,
``$1 = $2``) the server guesses ``text`` and asyncpg then refuses an ``int``, or
gives up (``$1 IS NULL``). So, as SQLAlchemy's asyncpg dialect does, a parameter
of a known type is written with a cast, ``$1::INTEGER``, ``$2::VARCHAR``. Casts
never carry a length, precision or scale, which would truncate or round the
value. Untyped parameters (``bindparam("x")`` compared with nothing, ``text()``
parameters without a type) are left to the server, and the items of an IN list
take the type of its left side.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from asyncsession import exc
from asyncsession.sql.compiler import Dialect
from asyncsession.sql.ddl import DDLCompiler
from asyncsession.sql.elements import BindParameter
from asyncsession.sql.types import (
    Enum,
    Float,
    NullType,
    Numeric,
    String,
    TypeDecorator,
    TypeEngine,
)


class PGCompiler(DDLCompiler):
    dialect_name = "postgresql"
    paramstyle = "numeric_dollar"

    def placeholder(self, position: int, name: str) -> str:
        return f"${position}"

    def visit_bindparam(self, bind: BindParameter, **kw: Any) -> str:
        text = super().visit_bindparam(bind, **kw)
        if bind.expanding or self.literal_binds or bind.literal_execute:
            return text
        cast = self._bind_cast(bind.type)
        return text if cast is None else text + "::" + cast

    def _bind_cast(self, type_: TypeEngine[Any]) -> str | None:
        while isinstance(type_, TypeDecorator):
            type_ = type_.load_dialect_impl(self.dialect)
        if isinstance(type_, NullType):
            return None
        if isinstance(type_, Enum):
            # A native enum casts to its own type; any other is VARCHAR(n) of valid values.
            return type_.compile_ddl(self.dialect)
        if isinstance(type_, String):
            return "VARCHAR"
        if isinstance(type_, Numeric) and not isinstance(type_, Float):
            return "NUMERIC"
        return type_.compile_ddl(self.dialect)

    def empty_in(self, types: Sequence[TypeEngine[Any]]) -> str:
        # Typed NULLs, so the empty set compares with the left side's types.
        columns = ", ".join(
            "CAST(NULL AS "
            + ("INTEGER" if isinstance(t, NullType) else t.compile_ddl(self.dialect))
            + ")"
            for t in types
        )
        return "(SELECT " + columns + " WHERE 1 != 1)"

    def distinct_clause(self, select: Any) -> str:
        if select._distinct_on:
            return "DISTINCT ON (" + ", ".join(self.process(c) for c in select._distinct_on) + ") "
        return "DISTINCT "


_TWO_PHASE_COMMANDS = {
    "PREPARE": "PREPARE TRANSACTION",
    "COMMIT": "COMMIT PREPARED",
    "ROLLBACK": "ROLLBACK PREPARED",
}


class PGDialect(Dialect):
    """PostgreSQL through asyncpg."""

    name = "postgresql"
    compiler_class = PGCompiler
    max_bind_params = 32767
    # asyncpg keeps a prepared statement only while its SQL is at most 15 KB (its
    # max_cacheable_statement_size); a longer one is parsed and planned again at
    # every execution. At about 16 characters per parameter ("$123::VARCHAR, "),
    # 900 keep a flush's multi-row INSERT under it: measured, 10k rows of three
    # columns took 100 ms in 300-row statements (14 KB), 150 ms in 500-row ones (24 KB).
    insert_batch_params = 900
    supports_two_phase = True

    def two_phase_sql(self, command: str, xid: str) -> str:
        if not isinstance(xid, str) or not xid or "\x00" in xid or len(xid.encode()) >= 200:
            raise exc.ArgumentError(
                f"A two-phase transaction id must be a non-empty string under 200 bytes "
                f"without NUL characters; got {xid!r}"
            )
        verb = _TWO_PHASE_COMMANDS[command]
        # A utility statement takes no parameters: the id goes in as a string literal,
        # an escape string so that it reads the same whatever standard_conforming_strings is.
        escaped = xid.replace("\\", "\\\\").replace("'", "''")
        return f"{verb} E'{escaped}'"

    def recover_two_phase_sql(self) -> str:
        # COMMIT/ROLLBACK PREPARED must run in the database that prepared the transaction.
        return (
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() "
            "ORDER BY prepared"
        )
