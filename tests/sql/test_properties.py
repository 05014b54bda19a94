"""Properties of the compiler over random expression trees (see tests/strategies.py).

(a) Every well-typed tree compiles on both dialects, with exactly as many
    placeholders as ``construct_params`` returns values.
(b) Two trees of the same shape with different literal values share one cache
    entry: the second compile is a hit and the SQL is identical.
(c) Oracle: a random WHERE clause over rows with NULLs selects, on a real SQLite
    database through aiosqlite, the same rows as SQLAlchemy Core executing the
    equivalent clause on the same data.
"""

from __future__ import annotations

import re
import types
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiosqlite
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import asyncsession.sql as ours
from asyncsession.sql.dialects.postgresql import PGDialect
from asyncsession.sql.dialects.sqlite import SQLiteDialect
from tests.strategies import (
    THINGS_COLUMNS,
    Tree,
    kinds,
    literal_count,
    predicates,
    revalue,
    thing_rows,
    values,
)

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

TYPES = {"int": "Integer", "float": "Float", "str": "String"}


def make_library(module: Any) -> types.SimpleNamespace:
    """The THINGS table and the functions a tree needs, from asyncsession or SQLAlchemy."""
    things = module.Table(
        "things",
        module.MetaData(),
        module.Column("id", module.Integer, primary_key=True),
        module.Column("i", module.Integer),
        module.Column("f", module.Float),
        module.Column("s", module.String(20)),
    )
    assert [c.name for c in things.c] == list(THINGS_COLUMNS)
    return types.SimpleNamespace(module=module, things=things)


OURS = make_library(ours)
THEIRS = make_library(sa)

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "eq": lambda x, y: x == y,
    "ne": lambda x, y: x != y,
    "lt": lambda x, y: x < y,
    "le": lambda x, y: x <= y,
    "gt": lambda x, y: x > y,
    "ge": lambda x, y: x >= y,
}
_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda x, y: x + y,
    "-": lambda x, y: x - y,
    "*": lambda x, y: x * y,
}


def is_literal(tree: Tree) -> bool:
    return tree[0] == "lit"


def build(tree: Tree, lib: types.SimpleNamespace, raw_ok: bool = False) -> Any:
    """The library's expression for ``tree``.

    A literal becomes a plain Python value where the library coerces one (next
    to an expression), else ``literal(value, Type)``: both paths get exercised.
    """
    module = lib.module
    tag = tree[0]
    if tag == "col":
        return lib.things.c[tree[1]]
    if tag == "lit":
        _, kind, value = tree
        return value if raw_ok else module.literal(value, getattr(module, TYPES[kind])())
    if tag == "neg":
        return -build(tree[1], lib)
    if tag in ("arith", "cmp", "concat"):
        if tag == "concat":
            _, left_tree, right_tree = tree
            operate = _ARITH["+"]
        else:
            _, op, left_tree, right_tree = tree
            operate = (_ARITH if tag == "arith" else _COMPARE)[op]
        # A Python value on one side only: the other side is an expression.
        left = build(left_tree, lib, raw_ok=not is_literal(right_tree))
        right = build(right_tree, lib, raw_ok=not isinstance(left, (int, float, str)))
        return operate(left, right)
    if tag == "fn":
        _, name, *args = tree
        return getattr(module.func, name)(*(build(arg, lib, raw_ok=True) for arg in args))
    if tag == "case":
        _, whens, else_ = tree
        return module.case(
            *((build(cond, lib), build(result, lib)) for cond, result in whens),
            else_=build(else_, lib),
        )
    if tag == "in":
        _, operand, items, negated = tree
        expression = build(operand, lib)
        listed = [item[2] for item in items]
        return expression.not_in(listed) if negated else expression.in_(listed)
    if tag == "between":
        _, operand, low, high = tree
        return build(operand, lib).between(low[2], high[2])
    if tag == "is_null":
        _, operand, negated = tree
        expression = build(operand, lib)
        return expression.is_not(None) if negated else expression.is_(None)
    if tag == "like":
        _, operand, method, pattern, autoescape = tree
        return getattr(build(operand, lib), method)(pattern, autoescape=autoescape)
    if tag == "and":
        return module.and_(*(build(item, lib) for item in tree[1]))
    if tag == "or":
        return module.or_(*(build(item, lib) for item in tree[1]))
    if tag == "not":
        return module.not_(build(tree[1], lib))
    raise AssertionError(f"unknown node {tag!r}")


def statement(value: Tree, condition: Tree) -> Any:
    return ours.select(OURS.things.c.id, build(value, OURS).label("v")).where(
        build(condition, OURS)
    )


trees = kinds.flatmap(lambda kind: st.tuples(values(kind), predicates()))


# -- (a) everything compiles, placeholders match values ----------------------------------------


@SETTINGS
@given(trees)
def test_trees_compile_with_one_value_per_placeholder(tree: tuple[Tree, Tree]) -> None:
    stmt = statement(*tree)
    sql, extracted = SQLiteDialect().compile(stmt)
    assert sql.sql.count("?") == len(sql.construct_params(extracted))

    compiled, extracted = PGDialect().compile(stmt)
    numbers = [int(n) for n in re.findall(r"\$(\d+)", compiled.sql)]
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) == len(compiled.construct_params(extracted))

    generic = stmt.compile()
    assert len(re.findall(r":\w+", generic.sql)) == len(generic.compiled.slots)


# -- (b) equal shapes share a cache entry ---------------------------------------------------------


@SETTINGS
@given(trees, st.data())
def test_equal_shapes_hit_the_cache(tree: tuple[Tree, Tree], data: st.DataObject) -> None:
    again = revalue(tree, data.draw)
    assert literal_count(again) == literal_count(tree)
    for dialect in (SQLiteDialect(), PGDialect()):
        first, first_values = dialect.compile(statement(*tree))
        second, second_values = dialect.compile(statement(*again))
        assert dialect.cache_hits == 1
        assert second is first
        assert len(first.construct_params(first_values)) == len(
            second.construct_params(second_values)
        )


# -- (c) the oracle -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sqlalchemy_engine() -> Iterator[sa.Engine]:
    engine = sa.create_engine("sqlite://")
    THEIRS.things.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
async def connection(sqlite_url: str) -> AsyncIterator[aiosqlite.Connection]:
    connection = await aiosqlite.connect(sqlite_url.split(":///", 1)[1], isolation_level=None)
    try:
        compiled, _ = SQLiteDialect().compile(ours.CreateTable(OURS.things))
        await connection.execute(compiled.sql)
        yield connection
    finally:
        await connection.close()


async def our_ids(connection: aiosqlite.Connection, condition: Tree) -> set[int]:
    dialect = SQLiteDialect()
    stmt = ours.select(OURS.things.c.id).where(build(condition, OURS))
    compiled, extracted = dialect.compile(stmt)
    async with connection.execute(compiled.sql, compiled.construct_params(extracted)) as cursor:
        return {row[0] for row in await cursor.fetchall()}


def their_ids(engine: sa.Engine, condition: Tree) -> set[int]:
    stmt = sa.select(THEIRS.things.c.id).where(build(condition, THEIRS))
    with engine.connect() as conn:
        return set(conn.execute(stmt).scalars())


@pytest.mark.anyio
@SETTINGS
@given(rows=thing_rows(min_size=1), condition=predicates())
async def test_where_clauses_agree_with_sqlalchemy(
    connection: aiosqlite.Connection,
    sqlalchemy_engine: sa.Engine,
    rows: list[dict[str, Any]],
    condition: Tree,
) -> None:
    numbered = [{"id": n, **row} for n, row in enumerate(rows, start=1)]
    await connection.execute("DELETE FROM things")
    if numbered:
        compiled, extracted = SQLiteDialect().compile(ours.insert(OURS.things).values(numbered))
        await connection.execute(compiled.sql, compiled.construct_params(extracted))
    with sqlalchemy_engine.begin() as conn:
        conn.execute(sa.delete(THEIRS.things))
        if numbered:
            conn.execute(sa.insert(THEIRS.things), numbered)

    assert await our_ids(connection, condition) == their_ids(sqlalchemy_engine, condition)
