"""The compiled-statement cache, pure: equal shapes share one Compiled, values differ.

A statement's cache key describes its shape (tables, columns, operators, types,
parameter names and the length of each IN list) and leaves the literal values
out; ``Dialect.compile`` returns the cached :class:`Compiled` for a known shape
together with the values extracted from the statement at hand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from asyncsession.sql import (
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from asyncsession.sql.dialects.postgresql import PGDialect
from asyncsession.sql.dialects.sqlite import SQLiteDialect
from asyncsession.sql.elements import ClauseElement

metadata = MetaData()
users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(50)),
    Column("age", Integer),
)
addresses = Table(
    "addresses",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", ForeignKey("users.id")),
    Column("email", String),
)
u, a = users.c, addresses.c

DIALECTS = [pytest.param(SQLiteDialect, id="sqlite"), pytest.param(PGDialect, id="postgresql")]


def typical(name: str, ids: list[int], limit: int) -> ClauseElement:
    return (
        select(u.id, u.name, a.email)
        .join(addresses)
        .where(u.name == name, u.id.in_(ids), a.email.like("%@x"))
        .order_by(u.name)
        .limit(limit)
    )


@pytest.mark.parametrize("dialect_class", DIALECTS)
def test_equal_shape_hits_the_cache(dialect_class: Callable[[], Any]) -> None:
    dialect = dialect_class()
    first, first_values = dialect.compile(typical("ann", [1, 2], 10))
    assert (dialect.cache_hits, dialect.cache_misses) == (0, 1)
    second, second_values = dialect.compile(typical("bob", [7, 8], 3))
    assert (dialect.cache_hits, dialect.cache_misses) == (1, 1)
    assert second is first
    assert first.construct_params(first_values) == ["ann", 1, 2, "%@x", 10]
    assert second.construct_params(second_values) == ["bob", 7, 8, "%@x", 3]


@pytest.mark.parametrize("dialect_class", DIALECTS)
def test_the_same_statement_object_compiled_twice(dialect_class: Callable[[], Any]) -> None:
    dialect = dialect_class()
    stmt = typical("ann", [1], 1)
    first, _ = dialect.compile(stmt)
    second, _ = dialect.compile(stmt)
    assert second is first
    assert dialect.cache_hits == 1


@pytest.mark.parametrize(
    ("one", "other"),
    [
        pytest.param(lambda: select(u.id), lambda: select(u.name), id="columns"),
        pytest.param(
            lambda: select(u.id).where(u.id == 1),
            lambda: select(u.id).where(u.id > 1),
            id="operator",
        ),
        pytest.param(
            lambda: select(u.id).where(u.id == 1),
            lambda: select(u.id).where(u.age == 1),
            id="column-in-where",
        ),
        pytest.param(
            lambda: select(u.id).where(u.id == 1),
            lambda: select(u.id).where(u.id == 1, u.age == 2),
            id="more-criteria",
        ),
        pytest.param(
            lambda: select(u.id).where(u.id == 1),
            lambda: select(u.id).where(u.id == 1.5),
            id="value-type",
        ),
        pytest.param(
            lambda: select(u.id).where(u.id == 1),
            lambda: select(u.id).where(u.id.is_(None)),
            id="null",
        ),
        pytest.param(
            lambda: select(u.id).where(u.id.in_([1, 2])),
            lambda: select(u.id).where(u.id.in_([1, 2, 3])),
            id="in-list-length",
        ),
        pytest.param(
            lambda: select(u.id).where(u.id.in_([1])),
            lambda: select(u.id).where(u.id.in_([])),
            id="empty-in-list",
        ),
        pytest.param(lambda: select(u.id).limit(1), lambda: select(u.id).offset(1), id="limit"),
        pytest.param(
            lambda: select(u.id).order_by(u.id),
            lambda: select(u.id).order_by(u.id.desc()),
            id="order",
        ),
        pytest.param(
            lambda: select(u.id).where(u.id == bindparam("a")),
            lambda: select(u.id).where(u.id == bindparam("b")),
            id="bindparam-name",
        ),
        pytest.param(
            lambda: select(func.lower(u.name)), lambda: select(func.upper(u.name)), id="function"
        ),
        pytest.param(
            lambda: select(u.id).join(addresses),
            lambda: select(u.id).outerjoin(addresses),
            id="join-kind",
        ),
        pytest.param(lambda: select(u.id).distinct(), lambda: select(u.id), id="distinct"),
        pytest.param(lambda: select(u.id).with_for_update(), lambda: select(u.id), id="for-update"),
        pytest.param(
            lambda: insert(users).values(name="x"),
            lambda: insert(users).values(age=1),
            id="insert-columns",
        ),
        pytest.param(
            lambda: insert(users).values([{"name": "x"}]),
            lambda: insert(users).values([{"name": "x"}, {"name": "y"}]),
            id="insert-rows",
        ),
        pytest.param(
            lambda: update(users).values(name="x"),
            lambda: update(users).values(name="x").returning(u.id),
            id="returning",
        ),
        pytest.param(lambda: text("SELECT 1"), lambda: text("SELECT 2"), id="text"),
        pytest.param(lambda: select(literal(1)), lambda: select(literal("1")), id="literal-type"),
    ],
)
@pytest.mark.parametrize("dialect_class", DIALECTS)
def test_different_shapes_miss(
    dialect_class: Callable[[], Any],
    one: Callable[[], ClauseElement],
    other: Callable[[], ClauseElement],
) -> None:
    dialect = dialect_class()
    first, _ = dialect.compile(one())
    second, _ = dialect.compile(other())
    assert second is not first
    assert (dialect.cache_hits, dialect.cache_misses) == (0, 2)
    # Each shape is cached on its own.
    assert dialect.compile(one())[0] is first
    assert dialect.compile(other())[0] is second


def test_in_list_length_is_part_of_the_key() -> None:
    # IN lists render one placeholder per value, so each length is its own shape.
    dialect = SQLiteDialect()
    two, _ = dialect.compile(select(u.id).where(u.id.in_([1, 2])))
    three, _ = dialect.compile(select(u.id).where(u.id.in_([1, 2, 3])))
    assert two.sql.endswith("IN (?, ?)")
    assert three.sql.endswith("IN (?, ?, ?)")
    again, values = dialect.compile(select(u.id).where(u.id.in_([5, 6])))
    assert again is two
    assert again.construct_params(values) == [5, 6]


def test_column_keys_are_part_of_the_key() -> None:
    dialect = PGDialect()
    name_only, _ = dialect.compile(insert(users), column_keys=["name"])
    both, _ = dialect.compile(insert(users), column_keys=["name", "age"])
    plain, _ = dialect.compile(insert(users))
    assert name_only.sql == "INSERT INTO users (name) VALUES ($1)"
    assert both.sql == "INSERT INTO users (name, age) VALUES ($1, $2)"
    assert plain.sql == "INSERT INTO users DEFAULT VALUES"
    assert dialect.cache_misses == 3
    assert dialect.compile(insert(users), column_keys=["name"])[0] is name_only
    assert dialect.cache_hits == 1


def test_subquery_values_are_extracted_on_a_hit() -> None:
    dialect = SQLiteDialect()
    sub = select(u.id).where(u.age > 18).subquery("adults")

    def build(limit: int) -> ClauseElement:
        return select(sub.c.id).where(sub.c.id > 0).limit(limit)

    first, first_values = dialect.compile(build(1))
    second, second_values = dialect.compile(build(2))
    assert second is first
    assert first.construct_params(first_values) == [18, 0, 1]
    assert second.construct_params(second_values) == [18, 0, 2]


def test_caches_are_per_dialect_instance() -> None:
    one, other = SQLiteDialect(), SQLiteDialect()
    compiled, _ = one.compile(select(u.id))
    assert other.compile(select(u.id))[0] is not compiled
    assert (one.cache_hits, other.cache_hits) == (0, 0)
    one.clear_compiled_cache()
    assert one.compile(select(u.id))[0] is not compiled


def test_cache_is_bounded() -> None:
    dialect = SQLiteDialect()
    dialect.cache_size = 3
    statements = [
        select(u.id).limit(1).offset(None).where(u.id.in_(list(range(n)))) for n in range(5)
    ]
    for stmt in statements:
        dialect.compile(stmt)
    assert dialect.cache_misses == 5
    dialect.compile(statements[-1])
    assert dialect.cache_hits == 1
    dialect.compile(statements[0])  # evicted, least recently used
    assert dialect.cache_misses == 6


def test_inlined_values_are_part_of_the_key() -> None:
    # ON CONFLICT's index predicate is written with literal values, so they are shape.
    def upsert(minimum: int) -> ClauseElement:
        return (
            insert(users)
            .values(id=1, name="x")
            .on_conflict_do_nothing(index_elements=["name"], index_where=u.age > minimum)
        )

    dialect = PGDialect()
    eighteen, _ = dialect.compile(upsert(18))
    twenty_one, _ = dialect.compile(upsert(21))
    assert "WHERE age > 18 " in eighteen.sql
    assert "WHERE age > 21 " in twenty_one.sql
    assert dialect.compile(upsert(18))[0] is eighteen


def test_a_dml_statement_compiled_again_reuses_its_key_and_copies_do_not() -> None:
    dialect = SQLiteDialect()
    stmt = update(users).values(name=bindparam("n")).where(users.c.id == 5)
    first, first_binds = dialect.compile(stmt)
    assert stmt._ck_memo is not None  # remembered: the statement never changes in place
    again, again_binds = dialect.compile(stmt)
    assert again is first
    assert [b.value for b in again_binds] == [b.value for b in first_binds] == [None, 5]
    # A generative copy is a new statement: its own key, its own SQL and values.
    other = stmt.where(users.c.name == "x").returning(users.c.id)
    assert other._ck_memo is None
    compiled, binds = dialect.compile(other)
    assert compiled is not first
    assert "RETURNING" in compiled.sql
    assert [b.value for b in binds] == [None, 5, "x"]


def test_a_select_compiled_again_reuses_its_key_and_copies_do_not() -> None:
    dialect = PGDialect()
    stmt = select(users.c.id).where(users.c.name == "ann")
    first, _ = dialect.compile(stmt)
    again, binds = dialect.compile(stmt)
    assert again is first
    assert [b.value for b in binds] == ["ann"]
    limited = stmt.limit(3).order_by(users.c.id)
    compiled, binds = dialect.compile(limited)
    assert compiled is not first
    assert "LIMIT" in compiled.sql
    assert [b.value for b in binds] == ["ann", 3]
    union = stmt.union(select(users.c.id))
    assert dialect.compile(union)[0] is dialect.compile(union)[0]
