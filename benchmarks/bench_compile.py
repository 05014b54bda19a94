"""Build and compile a typical SELECT with a warm cache: asyncsession vs SQLAlchemy Core.

The statement: users JOIN addresses JOIN orders, five columns, WHERE with ``=``,
``IN`` (three values), ``LIKE`` and ``>``, ORDER BY, LIMIT. Each of the
``ITERATIONS`` iterations builds it afresh with other values and turns it into
what the PostgreSQL driver receives: SQL text and positional, bind-processed
arguments. The cache is warm (one untimed warm-up run fills it), so this times
what every execution of an already-seen statement shape pays before IO.

- asyncsession: ``PGDialect().compile(stmt)`` (cache key, extracted values,
  cache lookup) and ``Compiled.construct_params(extracted)``.
- sqlalchemy: the steps ``Connection.execute`` takes for a statement, with the
  asyncpg dialect and no connection: ``stmt._compile_w_cache(dialect,
  compiled_cache=..., column_keys=[])`` (``_generate_cache_key`` and the cache
  lookup; plain ``stmt.compile()`` would bypass the cache), then what
  ``DefaultExecutionContext._init_compiled`` does with the result:
  ``construct_params`` from the extracted values, the post-compile expansion of
  the IN list, and the positional list with the bind processors applied.

There is no "raw" contender: the bare driver builds no statements.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

from asyncsession import sql as ours
from asyncsession.sql.dialects.postgresql import PGDialect
from benchmarks._runner import Implementation, Workload

ITERATIONS = 2_000


def _tables(module: Any) -> tuple[Any, Any, Any]:
    metadata = module.MetaData()
    users = module.Table(
        "users",
        metadata,
        module.Column("id", module.Integer, primary_key=True),
        module.Column("name", module.String(50), nullable=False),
        module.Column("status", module.String(20)),
    )
    addresses = module.Table(
        "addresses",
        metadata,
        module.Column("id", module.Integer, primary_key=True),
        module.Column("user_id", module.ForeignKey("users.id"), nullable=False),
        module.Column("email", module.String(100), nullable=False),
    )
    orders = module.Table(
        "orders",
        metadata,
        module.Column("id", module.Integer, primary_key=True),
        module.Column("address_id", module.ForeignKey("addresses.id"), nullable=False),
        module.Column("total", module.Integer, nullable=False),
    )
    return users, addresses, orders


def _statement(module: Any, tables: tuple[Any, Any, Any], i: int) -> Any:
    users, addresses, orders = tables
    return (
        module.select(users.c.id, users.c.name, addresses.c.email, orders.c.id, orders.c.total)
        .join_from(users, addresses)
        .join(orders)
        .where(
            users.c.status == "active",
            users.c.id.in_([i, i + 1, i + 2]),
            addresses.c.email.like(f"%@example{i % 7}.com"),
            orders.c.total > i,
        )
        .order_by(orders.c.total.desc())
        .limit(20)
    )


def _ours_setup() -> tuple[Any, PGDialect]:
    return _tables(ours), PGDialect()


def _ours_prepare(stmt: Any, dialect: PGDialect) -> tuple[str, list[Any]]:
    compiled, extracted = dialect.compile(stmt)
    return compiled.sql, compiled.construct_params(extracted)


def _ours_run(state: tuple[Any, PGDialect]) -> None:
    tables, dialect = state
    for i in range(ITERATIONS):
        _ours_prepare(_statement(ours, tables, i), dialect)


def _sqlalchemy_setup() -> tuple[Any, PGDialect_asyncpg, dict[Any, Any]]:
    dialect = PGDialect_asyncpg()
    return _tables(sa), dialect, {}


def _sqlalchemy_prepare(
    stmt: Any, dialect: PGDialect_asyncpg, cache: dict[Any, Any]
) -> tuple[str, list[Any]]:
    compiled, extracted, _ = stmt._compile_w_cache(dialect, compiled_cache=cache, column_keys=[])
    params = compiled.construct_params(extracted_parameters=extracted, escape_names=False)
    expanded = compiled._process_parameters_for_postcompile(params)
    processors = dict(compiled._bind_processors)
    processors.update(expanded.processors)
    args = [
        processors[key](params[key]) if key in processors else params[key]
        for key in expanded.positiontup
    ]
    return expanded.statement, args


def _sqlalchemy_run(state: tuple[Any, PGDialect_asyncpg, dict[Any, Any]]) -> None:
    tables, dialect, cache = state
    for i in range(ITERATIONS):
        _sqlalchemy_prepare(_statement(sa, tables, i), dialect, cache)


WORKLOADS = [
    Workload(
        name="compile_select",
        description=(
            f"build + compile a 3-table join SELECT (5 columns, WHERE with IN, ORDER BY, "
            f"LIMIT) {ITERATIONS:,} times with a warm cache, to SQL and driver arguments"
        ),
        implementations={
            "asyncsession": Implementation(setup=_ours_setup, run=_ours_run),
            "sqlalchemy": Implementation(setup=_sqlalchemy_setup, run=_sqlalchemy_run),
        },
    )
]
