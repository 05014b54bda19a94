"""Compiled SQL on real databases: SQLite through aiosqlite, PostgreSQL through asyncpg.

The engine is not used here: ``Database.run`` below is the smallest executor
that honours the compiler's contract (compile for the dialect, construct the
positional parameters, run them on the driver, apply the result processors),
so these tests pin down what the SQL layer alone produces. Every test runs on
both backends; PostgreSQL tests get a schema of their own as ``search_path``.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
import attrs
import pytest

from asyncsession.sql import (
    Boolean,
    Column,
    CreateIndex,
    CreateTable,
    Date,
    DateTime,
    DropTable,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    UniqueConstraint,
    and_,
    bindparam,
    case,
    cast,
    delete,
    except_,
    exists,
    func,
    insert,
    intersect,
    literal,
    not_,
    or_,
    select,
    text,
    true,
    tuple_,
    union,
    union_all,
    update,
)
from asyncsession.sql.compiler import Dialect
from asyncsession.sql.ddl import sort_tables
from asyncsession.sql.dialects.postgresql import PGDialect
from asyncsession.sql.dialects.sqlite import SQLiteDialect
from asyncsession.sql.elements import ClauseElement

pytestmark = pytest.mark.anyio

metadata = MetaData()
users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(50), nullable=False),
    Column("age", Integer),
    Column("score", Float),
    Column("active", Boolean),
)
addresses = Table(
    "addresses",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE")),
    Column("email", String(100), nullable=False, unique=True),
)
nodes = Table(
    "nodes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("parent_id", ForeignKey("nodes.id")),
    Column("name", String(20), nullable=False),
)
settings = Table(
    "settings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("owner", String(20), nullable=False),
    Column("key", String(20), nullable=False),
    Column("value", String(50)),
    Column("hits", Integer, nullable=False, server_default="0"),
    UniqueConstraint("owner", "key"),
)
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime, nullable=False),
    Column("day", Date),
    Column("amount", Numeric(10, 2)),
    Column("done", Boolean, nullable=False, server_default=true()),
)
u, a, n = users.c, addresses.c, nodes.c

USERS = [
    {"id": 1, "name": "ann", "age": 30, "score": 1.5, "active": True},
    {"id": 2, "name": "bob", "age": 17, "score": None, "active": False},
    {"id": 3, "name": "cy", "age": None, "score": 2.5, "active": None},
    {"id": 4, "name": "Dee", "age": 45, "score": 0.0, "active": True},
]
ADDRESSES = [
    {"id": 1, "user_id": 1, "email": "ann@a.com"},
    {"id": 2, "user_id": 1, "email": "ann@b.org"},
    {"id": 3, "user_id": 2, "email": "bob@a.com"},
    {"id": 4, "user_id": None, "email": "100%_off@x.com"},
]
NODES = [
    {"id": 1, "parent_id": None, "name": "root"},
    {"id": 2, "parent_id": 1, "name": "a"},
    {"id": 3, "parent_id": 1, "name": "b"},
    {"id": 4, "parent_id": 2, "name": "a1"},
    {"id": 5, "parent_id": 4, "name": "a1x"},
    {"id": 6, "parent_id": None, "name": "other"},
]


@attrs.frozen
class Outcome:
    rows: list[tuple[Any, ...]]
    rowcount: int
    keys: tuple[str, ...]


@attrs.define
class Database:
    """A driver connection plus its dialect; ``run`` executes one statement."""

    kind: str
    dialect: Dialect
    connection: Any

    async def run(self, stmt: ClauseElement, params: Mapping[str, Any] | None = None) -> Outcome:
        keys = tuple(params) if params else None
        compiled, extracted = self.dialect.compile(stmt, column_keys=keys)
        args = compiled.construct_params(extracted, params)
        # Whether rows come back is the driver's to say: text() declares no columns.
        if self.kind == "sqlite":
            cursor = await self.connection.execute(compiled.sql, args)
            returns_rows = cursor.description is not None
            raw = list(await cursor.fetchall()) if returns_rows else []
            rowcount = len(raw) if returns_rows else cursor.rowcount
            await cursor.close()
        else:
            prepared = await self.connection.prepare(compiled.sql)
            raw = [tuple(record) for record in await prepared.fetch(*args)]
            returns_rows = bool(prepared.get_attributes())
            last = prepared.get_statusmsg().rsplit(" ", 1)[-1]
            rowcount = len(raw) if returns_rows else int(last) if last.isdigit() else -1
        assert returns_rows == compiled.returns_rows or not compiled.result_keys
        processors = compiled.result_processors
        if processors:
            raw = [
                tuple(v if p is None else p(v) for v, p in zip(row, processors, strict=True))
                for row in raw
            ]
        return Outcome(raw, rowcount, compiled.result_keys)

    async def rows(
        self, stmt: ClauseElement, params: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        return (await self.run(stmt, params)).rows

    async def column(
        self, stmt: ClauseElement, params: Mapping[str, Any] | None = None
    ) -> list[Any]:
        return [row[0] for row in await self.rows(stmt, params)]

    async def create(self, tables: Sequence[Table]) -> None:
        for table in sort_tables(tables):
            await self.run(CreateTable(table))
            for index in table.indexes:
                await self.run(CreateIndex(index))


@pytest.fixture
def connect_args(db_url: str, request: pytest.FixtureRequest) -> tuple[str, str, dict[str, Any]]:
    if db_url.startswith("sqlite"):
        return "sqlite", db_url.split(":///", 1)[1], {}
    schema: str = request.getfixturevalue("pg_schema")
    dsn: str = request.getfixturevalue("pg_dsn")
    return "postgresql", dsn, {"server_settings": {"search_path": schema}}


@pytest.fixture
async def empty_db(connect_args: tuple[str, str, dict[str, Any]]) -> AsyncIterator[Database]:
    kind, target, options = connect_args
    if kind == "sqlite":
        connection = await aiosqlite.connect(Path(target), isolation_level=None)
        await connection.execute("PRAGMA foreign_keys = ON")
        try:
            yield Database(kind, SQLiteDialect(), connection)
        finally:
            await connection.close()
    else:
        connection = await asyncpg.connect(target, **options)
        try:
            yield Database(kind, PGDialect(), connection)
        finally:
            await connection.close()


def without_ids(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # The database numbers the rows (in VALUES order), so its key sequence stays in step.
    return [{k: v for k, v in row.items() if k != "id"} for row in rows]


@pytest.fixture
async def db(empty_db: Database) -> Database:
    await empty_db.create(list(metadata.tables.values()))
    for table, rows in [(users, USERS), (addresses, ADDRESSES), (nodes, NODES)]:
        returned = await empty_db.run(insert(table).values(without_ids(rows)).returning(table.c.id))
        assert returned.rows == [(row["id"],) for row in rows]
    return empty_db


# -- DDL and INSERT ---------------------------------------------------------------------


async def test_create_insert_and_read_back(empty_db: Database) -> None:
    db = empty_db
    await db.create([users, addresses])
    single = await db.run(insert(users).values(name="ann", age=30).returning(u.id, u.name))
    assert single.rows == [(1, "ann")]
    assert single.keys == ("id", "name")
    many = await db.run(
        insert(users).values([{"name": "bob", "age": 17}, {"name": "cy"}]).returning(u.id)
    )
    assert many.rows == [(2,), (3,)]
    plain = await db.run(insert(users).values(name="dee", score=2.5, active=True))
    assert plain.rowcount == 1
    assert await db.rows(select(users).order_by(u.id)) == [
        (1, "ann", 30, None, None),
        (2, "bob", 17, None, None),
        (3, "cy", None, None, None),
        (4, "dee", None, 2.5, True),
    ]
    await db.run(DropTable(addresses))
    await db.run(DropTable(users))


async def test_insert_with_execute_time_parameters(empty_db: Database) -> None:
    db = empty_db
    await db.create([users])
    for row in ({"name": "x", "age": 1}, {"name": "y", "age": 2}):
        assert (await db.run(insert(users), row)).rowcount == 1
    assert await db.rows(select(u.name, u.age).order_by(u.id)) == [("x", 1), ("y", 2)]


async def test_insert_from_select(db: Database) -> None:
    stmt = insert(addresses).from_select(
        ["user_id", "email"],
        select(u.id, u.name + "@copy.com").where(u.age > 18),
    )
    await db.run(stmt)
    copied = select(a.email).where(a.email.endswith("@copy.com")).order_by(a.email)
    assert await db.column(copied) == ["Dee@copy.com", "ann@copy.com"]


async def test_server_defaults_come_back_with_returning(db: Database) -> None:
    stmt = insert(settings).values(owner="ann", key="theme").returning(settings.c.hits)
    assert await db.rows(stmt) == [(0,)]


async def test_upsert_do_nothing(db: Database) -> None:
    await db.run(insert(settings).values(owner="ann", key="theme", value="dark"))
    stmt = (
        insert(settings)
        .values(owner="ann", key="theme", value="light")
        .on_conflict_do_nothing(index_elements=["owner", "key"])
        .returning(settings.c.id)
    )
    outcome = await db.run(stmt)
    assert outcome.rows == []
    assert await db.column(select(settings.c.value)) == ["dark"]


async def test_upsert_do_update_with_excluded(db: Database) -> None:
    await db.run(insert(settings).values(owner="ann", key="theme", value="dark"))
    stmt = insert(settings).values(
        [
            {"owner": "ann", "key": "theme", "value": "light"},
            {"owner": "ann", "key": "lang", "value": "en"},
        ]
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[settings.c.owner, settings.c.key],
        set_={"value": stmt.excluded.value, "hits": settings.c.hits + 1},
        where=settings.c.value != stmt.excluded.value,
    ).returning(settings.c.key, settings.c.value, settings.c.hits)
    assert sorted(await db.rows(stmt)) == [("lang", "en", 0), ("theme", "light", 1)]
    # The WHERE keeps an identical proposal from counting as an update.
    again = insert(settings).values(owner="ann", key="lang", value="en")
    again = again.on_conflict_do_update(
        index_elements=["owner", "key"],
        set_={"hits": settings.c.hits + 1},
        where=settings.c.value != again.excluded.value,
    )
    await db.run(again)
    rows = await db.rows(select(settings.c.key, settings.c.hits).order_by(settings.c.key))
    assert rows == [("lang", 0), ("theme", 1)]


async def test_values_round_trip_through_the_types(db: Database) -> None:
    at = datetime.datetime(2024, 2, 29, 23, 59, 58, 123456)
    stmt = insert(events).values(
        at=at, day=datetime.date(2024, 3, 1), amount=decimal.Decimal("12.50")
    )
    await db.run(stmt)
    await db.run(insert(events).values(at=at + datetime.timedelta(days=1), done=False))
    rows = await db.rows(select(events.c.at, events.c.day, events.c.amount, events.c.done))
    assert rows == [
        (at, datetime.date(2024, 3, 1), decimal.Decimal("12.50"), True),
        (at + datetime.timedelta(days=1), None, None, False),
    ]
    # An untyped bindparam takes the column's type, so the comparison is a datetime one.
    later = select(events.c.id).where(events.c.at > bindparam("since"))
    assert await db.column(later, {"since": at}) == [2]
    assert await db.column(select(events.c.id).where(events.c.done.is_(False))) == [2]


# -- SELECT ------------------------------------------------------------------------------


async def test_where_operators(db: Database) -> None:
    async def ids(*criteria: Any) -> list[int]:
        return await db.column(select(u.id).where(*criteria).order_by(u.id))

    assert await ids(u.age > 18) == [1, 4]
    assert await ids(u.age.between(17, 30)) == [1, 2]
    assert await ids(u.age.is_(None)) == [3]
    assert await ids(u.score.is_not(None), u.score < 2) == [1, 4]
    assert await ids(u.active.is_(True)) == [1, 4]
    assert await ids(u.active == False) == [2]  # noqa: E712 - SQL comparison
    assert await ids(not_(u.age > 18)) == [2]
    assert await ids(or_(u.age < 18, u.age.is_(None))) == [2, 3]
    assert await ids(and_(u.age > 0, u.name.like("%n%"))) == [1]
    assert await ids(u.name.ilike("d%")) == [4]
    assert await ids(u.name.not_ilike("%e%"), u.name != "cy") == [1, 2]
    assert await ids(u.name.startswith("a"), u.name.endswith("n")) == [1]
    assert await ids(u.name.contains("o")) == [2]
    assert await ids(u.name.in_(["ann", "cy", "zed"])) == [1, 3]
    assert await ids(tuple_(u.id, u.name).in_([(1, "ann"), (2, "zed")])) == [1]
    assert await ids(u.age + 5 == 35) == [1]
    assert await ids(u.id.in_(select(a.user_id))) == [1, 2]
    assert await ids(exists().where(a.user_id == u.id, a.email.like("%.org"))) == [1]


async def test_empty_in_lists(db: Database) -> None:
    # IN () matches nothing and NOT IN () everything, NULLs included.
    assert await db.column(select(u.id).where(u.age.in_([]))) == []
    assert await db.column(select(u.id).where(u.name.in_([]))) == []
    assert await db.column(select(u.id).where(tuple_(u.id, u.name).in_([]))) == []
    everyone = await db.column(select(u.id).where(u.age.not_in([])).order_by(u.id))
    assert everyone == [1, 2, 3, 4]
    assert len(await db.rows(select(u.id).where(u.name.not_in([])))) == 4


async def test_like_autoescape(db: Database) -> None:
    escaped = select(a.id).where(a.email.startswith("100%_", autoescape=True))
    assert await db.column(escaped) == [4]
    # Unescaped, "_" matches any one character; escaped, only itself.
    assert await db.column(select(a.id).where(a.email.contains("1_0"))) == [4]
    assert await db.column(select(a.id).where(a.email.contains("1_0", autoescape=True))) == []


async def test_arithmetic_and_functions(db: Database) -> None:
    stmt = select(
        u.age / 4,
        u.age // 4,
        u.score * 2,
        u.name + "!",
        func.upper(u.name),
        func.length(u.name),
        func.coalesce(u.age, -1),
        literal(7),
        cast(u.age, String),
    ).where(u.id == 1)
    [row] = await db.rows(stmt)
    assert float(row[0]) == 7.5
    assert row[1:] == (7, 3.0, "ann!", "ANN", 3, 30, 7, "30")


async def test_aggregates_group_by_having(db: Database) -> None:
    n_addresses = func.count(a.id).label("n")
    stmt = (
        select(u.name, n_addresses)
        .join(addresses)
        .group_by(u.name)
        .having(func.count(a.id) >= 1)
        .order_by(n_addresses.desc(), u.name)
    )
    outcome = await db.run(stmt)
    assert outcome.keys == ("name", "n")
    assert outcome.rows == [("ann", 2), ("bob", 1)]
    totals = select(func.count(), func.sum(u.age), func.min(u.age), func.max(u.name))
    assert await db.rows(totals) == [(4, 92, 17, "cy")]
    [(average,)] = await db.rows(select(func.avg(u.age)))
    assert round(float(average), 3) == 30.667


async def test_case(db: Database) -> None:
    label = case((u.age < 18, "minor"), (u.age < 40, "adult"), else_="other")
    by_id = case({1: "one", 2: "two"}, value=u.id, else_="many")
    rows = await db.rows(select(u.id, label, by_id).order_by(u.id))
    assert rows == [
        (1, "adult", "one"),
        (2, "minor", "two"),
        (3, "other", "many"),
        (4, "other", "many"),
    ]
    numeric = select(func.sum(case((u.active.is_(True), 1), else_=0)))
    assert await db.rows(numeric) == [(2,)]


async def test_joins(db: Database) -> None:
    inner = select(u.name, a.email).join(addresses).order_by(a.id)
    assert await db.rows(inner) == [
        ("ann", "ann@a.com"),
        ("ann", "ann@b.org"),
        ("bob", "bob@a.com"),
    ]
    outer = select(u.name, func.count(a.id)).outerjoin(addresses).group_by(u.name)
    assert sorted(await db.rows(outer)) == [("Dee", 0), ("ann", 2), ("bob", 1), ("cy", 0)]
    full = select(u.id, a.id).join(addresses, u.id == a.user_id, full=True)
    rows = await db.rows(full.where(or_(u.id.is_(None), a.id.is_(None))))
    assert sorted(rows, key=repr) == sorted([(3, None), (4, None), (None, 4)], key=repr)


async def test_self_join_through_an_alias(db: Database) -> None:
    parent = nodes.alias("parent")
    stmt = (
        select(n.name, parent.c.name)
        .join(parent, n.parent_id == parent.c.id)
        .where(parent.c.name.in_(["a", "a1"]))
        .order_by(n.id)
    )
    assert await db.rows(stmt) == [("a1", "a"), ("a1x", "a1")]


async def test_subqueries(db: Database) -> None:
    counts = select(a.user_id, func.count().label("n")).group_by(a.user_id).subquery("counts")
    joined = select(u.name, counts.c.n).join(counts).order_by(u.name)
    assert await db.rows(joined) == [("ann", 2), ("bob", 1)]
    adults = select(u.id, u.name).where(u.age >= 18).subquery("adults")
    assert await db.column(select(adults.c.name).where(adults.c.id > 1)) == ["Dee"]
    n_addr = select(func.count(a.id)).where(a.user_id == u.id).scalar_subquery()
    rows = await db.rows(select(u.name, n_addr.label("n")).where(n_addr > 0).order_by(u.id))
    assert rows == [("ann", 2), ("bob", 1)]
    oldest = select(func.max(u.age)).correlate(None).scalar_subquery()
    assert await db.column(select(u.name).where(u.age == oldest)) == ["Dee"]


async def test_ctes(db: Database) -> None:
    adults = select(u.id, u.name).where(u.age >= 18).cte("adults")
    stmt = (
        select(adults.c.name, a.email)
        .join(addresses, a.user_id == adults.c.id)
        .where(a.email.like("%.com"))
    )
    assert await db.rows(stmt) == [("ann", "ann@a.com")]


async def test_recursive_cte_walks_a_tree(db: Database) -> None:
    tree = (
        select(n.id, n.name, literal(0).label("depth"))
        .where(n.name == "a")
        .cte("tree", recursive=True)
    )
    tree = tree.union_all(
        select(n.id, n.name, tree.c.depth + 1).join(tree, n.parent_id == tree.c.id)
    )
    stmt = select(tree.c.name, tree.c.depth).order_by(tree.c.depth)
    assert await db.rows(stmt) == [("a", 0), ("a1", 1), ("a1x", 2)]


async def test_compound_selects(db: Database) -> None:
    adults = select(u.id).where(u.age >= 18)
    with_address = select(a.user_id).where(a.user_id.is_not(None))
    assert sorted(await db.column(union(adults, with_address))) == [1, 2, 4]
    assert sorted(await db.column(union_all(adults, with_address))) == [1, 1, 1, 2, 4]
    assert await db.column(intersect(adults, with_address)) == [1]
    assert await db.column(except_(adults, with_address)) == [4]
    ordered = union(select(u.name), select(a.email)).order_by("name").limit(2).offset(1)
    assert await db.column(ordered) == ["Dee", "ann"]
    # A member's own LIMIT stays with that member.
    limited = union_all(select(u.id).order_by(u.id.desc()).limit(1), select(u.id).where(u.id < 3))
    assert sorted(await db.column(limited)) == [1, 2, 4]
    nested = except_(select(u.id), union(select(a.user_id), select(literal(4))))
    assert await db.column(nested) == [3]


async def test_limit_and_offset(db: Database) -> None:
    base = select(u.id).order_by(u.id)
    assert await db.column(base.limit(2)) == [1, 2]
    assert await db.column(base.limit(2).offset(1)) == [2, 3]
    assert await db.column(base.offset(3)) == [4]


async def test_distinct(db: Database) -> None:
    assert await db.column(select(a.user_id).where(a.user_id.is_not(None)).distinct()) in (
        [1, 2],
        [2, 1],
    )
    if db.kind == "postgresql":
        first_per_user = (
            select(a.user_id, a.email)
            .distinct(a.user_id)
            .where(a.user_id.is_not(None))
            .order_by(a.user_id, a.email.desc())
        )
        assert await db.rows(first_per_user) == [(1, "ann@b.org"), (2, "bob@a.com")]


async def test_text(db: Database) -> None:
    stmt = text("SELECT name FROM users WHERE age > :age ORDER BY name").bindparams(age=18)
    assert await db.column(stmt) == ["Dee", "ann"]
    assert await db.column(text("SELECT id FROM users WHERE name = :name"), {"name": "cy"}) == [3]
    as_subquery = text("SELECT id, name FROM users").columns(u.id, u.name).subquery("t")
    assert await db.column(select(as_subquery.c.name).where(as_subquery.c.id == 2)) == ["bob"]
    assert await db.column(select(u.id).where(text("age < :limit")), {"limit": 18}) == [2]


async def test_for_update(db: Database) -> None:
    # Rendered on PostgreSQL, left out on SQLite; both run.
    assert await db.column(select(u.id).where(u.id == 1).with_for_update(nowait=True)) == [1]


# -- UPDATE and DELETE --------------------------------------------------------------------


async def test_update(db: Database) -> None:
    outcome = await db.run(update(users).values(age=u.age + 1).where(u.age.is_not(None)))
    assert outcome.rowcount == 3
    returned = await db.run(
        update(users).values(name="ANN").where(u.id == 1).returning(u.id, u.name, u.age)
    )
    assert returned.rows == [(1, "ANN", 31)]
    nothing = await db.run(update(users).values(name="x").where(u.id == 99))
    assert nothing.rowcount == 0


async def test_update_with_correlated_subquery(db: Database) -> None:
    n_addr = select(func.count(a.id)).where(a.user_id == u.id).scalar_subquery()
    await db.run(update(users).values(age=n_addr))
    assert await db.rows(select(u.id, u.age).order_by(u.id)) == [(1, 2), (2, 1), (3, 0), (4, 0)]


async def test_update_with_execute_time_parameters(db: Database) -> None:
    stmt = update(users).where(u.id == bindparam("user_id"))
    assert (await db.run(stmt, {"name": "renamed", "user_id": 2})).rowcount == 1
    assert await db.column(select(u.name).where(u.id == 2)) == ["renamed"]


async def test_delete(db: Database) -> None:
    returned = await db.run(delete(addresses).where(a.user_id == 1).returning(a.email))
    assert sorted(returned.rows) == [("ann@a.com",), ("ann@b.org",)]
    gone = await db.run(delete(users).where(u.id.not_in(select(a.user_id).where(a.user_id > 0))))
    assert gone.rowcount == 3
    assert await db.rows(select(u.id, u.name)) == [(2, "bob")]
    assert (await db.run(delete(users).where(u.id == 99))).rowcount == 0


async def test_delete_cascades_through_the_foreign_key(db: Database) -> None:
    await db.run(delete(users).where(u.id == 1))
    assert await db.column(select(a.id).order_by(a.id)) == [3, 4]
