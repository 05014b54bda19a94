"""Queries across relationships on SQLite and PostgreSQL: joins, aliases, any()/has(),
comparisons with objects, with_parent(); the SQL they compile to; their errors.

The model is this module's own (users, addresses, orders, items, keywords,
nodes) with relationships of every kind: one-to-many, many-to-one, two
many-to-many through association tables, and an adjacency list.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import sqlalchemy.orm as sa_orm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncsession import (
    ArgumentError,
    AsyncEngine,
    AsyncSession,
    Column,
    ForeignKey,
    InvalidRequestError,
    String,
    Table,
    aliased,
    and_,
    create_async_engine,
    event,
    inspect,
    or_,
    select,
    sync,
    with_parent,
)
from asyncsession.orm.decl import DeclarativeBase, Mapped, mapped_column
from asyncsession.orm.relationships import relationship
from asyncsession.sql.dialects.postgresql import PGDialect
from asyncsession.sql.dialects.sqlite import SQLiteDialect
from asyncsession.sql.elements import ClauseElement
from tests.strategies import RELATED, Tree, related_rows, relationship_predicates

pytestmark = pytest.mark.anyio


class Base(DeclarativeBase):
    pass


order_items = Table(
    "rq_order_items",
    Base.metadata,
    Column("order_id", ForeignKey("rq_orders.id"), primary_key=True),
    Column("item_id", ForeignKey("rq_items.id"), primary_key=True),
)
item_keywords = Table(
    "rq_item_keywords",
    Base.metadata,
    Column("item_id", ForeignKey("rq_items.id"), primary_key=True),
    Column("keyword_id", ForeignKey("rq_keywords.id"), primary_key=True),
)


class User(Base):
    __tablename__ = "rq_users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(30))
    addresses: Mapped[list[Address]] = relationship(back_populates="user", order_by="id")
    orders: Mapped[list[Order]] = relationship(back_populates="user")

    def __repr__(self) -> str:
        return f"User({self.__dict__.get('name')!r})"


class Address(Base):
    __tablename__ = "rq_addresses"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("rq_users.id"))
    email: Mapped[str] = mapped_column(String(50))
    user: Mapped[User | None] = relationship(back_populates="addresses")

    def __repr__(self) -> str:
        return f"Address({self.__dict__.get('email')!r})"


class Order(Base):
    __tablename__ = "rq_orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("rq_users.id"))
    description: Mapped[str] = mapped_column(String(30))
    user: Mapped[User | None] = relationship(back_populates="orders")
    items: Mapped[list[Item]] = relationship(secondary=order_items, back_populates="orders")


class Item(Base):
    __tablename__ = "rq_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    description: Mapped[str] = mapped_column(String(30))
    orders: Mapped[list[Order]] = relationship(secondary=order_items, back_populates="items")
    keywords: Mapped[list[Keyword]] = relationship(secondary=item_keywords, back_populates="items")

    def __repr__(self) -> str:
        return f"Item({self.__dict__.get('description')!r})"


class Keyword(Base):
    __tablename__ = "rq_keywords"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(30))
    items: Mapped[list[Item]] = relationship(secondary=item_keywords, back_populates="keywords")

    def __repr__(self) -> str:
        return f"Keyword({self.__dict__.get('name')!r})"


class Node(Base):
    __tablename__ = "rq_nodes"
    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("rq_nodes.id"))
    name: Mapped[str] = mapped_column(String(30))
    children: Mapped[list[Node]] = relationship(back_populates="parent")
    parent: Mapped[Node | None] = relationship(back_populates="children", remote_side=[id])

    def __repr__(self) -> str:
        return f"Node({self.__dict__.get('name')!r})"


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
async def engine(db_url: str, connect_args: dict[str, Any]) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(db_url, connect_args=connect_args)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def statements(engine: AsyncEngine) -> list[str]:
    """The SQL of every statement the engine executes from now on."""
    seen: list[str] = []
    event.listen(engine, "before_execute", lambda conn, stmt, *_: seen.append(str(stmt)))
    return seen


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session over this data, committed (ids in insertion order):

    users ed (addresses ed@a, ed@b; orders o1, o2), wendy (w@c; o3), jack (none);
    an address with no user (lost@x); items i1 [red, blue], i2 [blue], i3 [];
    o1 [i1, i2], o2 [i3], o3 [i1]; nodes root > (a > a1), b.
    """
    async with AsyncSession(engine) as session:
        red, blue = Keyword(name="red"), Keyword(name="blue")
        i1 = Item(description="i1", keywords=[red, blue])
        i2 = Item(description="i2", keywords=[blue])
        i3 = Item(description="i3")
        ed = User(
            name="ed",
            addresses=[Address(email="ed@a"), Address(email="ed@b")],
            orders=[Order(description="o1", items=[i1, i2]), Order(description="o2", items=[i3])],
        )
        wendy = User(
            name="wendy",
            addresses=[Address(email="w@c")],
            orders=[Order(description="o3", items=[i1])],
        )
        a = Node(name="a", children=[Node(name="a1")])
        root = Node(name="root", children=[a, Node(name="b")])
        session.add_all([ed, wendy, User(name="jack"), Address(email="lost@x"), root])
        await session.commit()
        yield session


async def names(session: AsyncSession, stmt: Any) -> list[Any]:
    """The ``name``/``email``/``description`` of each object (or the row) a query returns."""
    out = []
    for row in (await session.execute(stmt)).all():
        values = []
        for value in row:
            for key in ("name", "email", "description"):
                if hasattr(type(value), "__mapper__") and key in type(value).__mapper__.attrs:
                    value = getattr(value, key)
                    break
            values.append(value)
        out.append(values[0] if len(values) == 1 else tuple(values))
    return out


async def by_name(session: AsyncSession, cls: Any, name: str) -> Any:
    column = {Address: "email", Item: "description", Order: "description"}.get(cls, "name")
    column = getattr(cls, column)
    return (await session.execute(select(cls).where(column == name))).scalar_one()


# -- joins ----------------------------------------------------------------------------------


async def test_join_along_one_to_many_and_many_to_one(session: AsyncSession) -> None:
    stmt = select(User).join(User.addresses).where(Address.email.like("%@b")).order_by(User.id)
    assert await names(session, stmt) == ["ed"]
    stmt = select(User.name, Address.email).join(User.addresses).order_by(Address.id)
    assert await names(session, stmt) == [("ed", "ed@a"), ("ed", "ed@b"), ("wendy", "w@c")]
    stmt = select(Address.email, User.name).join(Address.user).order_by(Address.id)
    assert await names(session, stmt) == [("ed@a", "ed"), ("ed@b", "ed"), ("w@c", "wendy")]
    # filter_by() names the columns of the last joined entity
    stmt = select(User.name).join(User.addresses).filter_by(email="w@c")
    assert await names(session, stmt) == ["wendy"]


async def test_outer_joins_keep_rows_without_partners(session: AsyncSession) -> None:
    expected = [("ed", "ed@a"), ("ed", "ed@b"), ("wendy", "w@c"), ("jack", None)]
    order = (User.id, Address.id)
    for stmt in (
        select(User.name, Address.email).outerjoin(User.addresses),
        select(User.name, Address.email).join(User.addresses, isouter=True),
        select(User.name, Address.email).outerjoin_from(User, User.addresses),
    ):
        assert await names(session, stmt.order_by(*order)) == expected
    rows = (await session.execute(select(User, Address).outerjoin(User.addresses))).all()
    assert sorted((u.name, a.email if a is not None else None) for u, a in rows) == sorted(expected)


async def test_join_from_and_join_with_relationship_as_onclause(session: AsyncSession) -> None:
    stmt = select(Address.email).join_from(User, User.addresses).where(User.name == "wendy")
    assert await names(session, stmt) == ["w@c"]
    stmt = select(User.name).join(Address, User.addresses).where(Address.email == "ed@b")
    assert await names(session, stmt) == ["ed"]


async def test_many_to_many_joins_through_the_secondary_table(session: AsyncSession) -> None:
    stmt = select(Item.description).join(Item.keywords).where(Keyword.name == "blue")
    assert sorted(await names(session, stmt)) == ["i1", "i2"]
    stmt = (
        select(Keyword.name, Item.description)
        .join(Keyword.items)
        .order_by(Keyword.name, Item.description)
    )
    assert await names(session, stmt) == [("blue", "i1"), ("blue", "i2"), ("red", "i1")]
    stmt = (
        select(Item.description, Keyword.name)
        .outerjoin(Item.keywords)
        .order_by(Item.description, Keyword.name)
    )
    assert await names(session, stmt) == [
        ("i1", "blue"),
        ("i1", "red"),
        ("i2", "blue"),
        ("i3", None),
    ]


async def test_chained_joins(session: AsyncSession) -> None:
    # users who ordered an item tagged "red": ed (o1 has i1), wendy (o3 has i1)
    stmt = (
        select(User.name)
        .join(User.orders)
        .join(Order.items)
        .join(Item.keywords)
        .where(Keyword.name == "red")
        .order_by(User.name)
    )
    assert await names(session, stmt) == ["ed", "wendy"]
    # twice through the same secondary table: items ordered with i2 in one order
    i2 = aliased(Item, name="i2")
    stmt = (
        select(Item.description)
        .join(Item.orders)
        .join(Order.items.of_type(i2))
        .where(i2.description == "i2", Item.id != i2.id)
    )
    assert await names(session, stmt) == ["i1"]


async def test_join_criteria_with_and(session: AsyncSession) -> None:
    stmt = (
        select(User.name, Address.email)
        .outerjoin(User.addresses.and_(Address.email.like("%@b")))
        .order_by(User.id)
    )
    assert await names(session, stmt) == [("ed", "ed@b"), ("wendy", None), ("jack", None)]


async def test_self_referential_joins_need_an_alias(session: AsyncSession) -> None:
    child = aliased(Node, name="child")
    stmt = select(Node.name, child.name).join(Node.children.of_type(child)).order_by(child.id)
    pairs = [("root", "a"), ("a", "a1"), ("root", "b")]
    assert sorted(await names(session, stmt)) == sorted(pairs)
    stmt = select(Node.name, child.name).join(child, Node.children)
    assert sorted(await names(session, stmt)) == sorted(pairs)
    parent = aliased(Node, name="parent")
    stmt = select(Node.name).join(Node.parent.of_type(parent)).where(parent.name == "root")
    assert sorted(await names(session, stmt)) == ["a", "b"]
    stmt = select(Node.name).join_from(Node, Node.parent.of_type(parent)).where(parent.name == "a")
    assert await names(session, stmt) == ["a1"]
    # grandchildren: two aliases, the second joined along the first's relationship
    grandchild = aliased(Node, name="grandchild")
    stmt = (
        select(Node.name, grandchild.name)
        .join(Node.children.of_type(child))
        .join(child.children.of_type(grandchild))
    )
    assert await names(session, stmt) == [("root", "a1")]


async def test_aliased_rows_are_the_identity_mapped_objects(session: AsyncSession) -> None:
    root = await by_name(session, Node, "root")
    child = aliased(Node)
    rows = (
        await session.execute(
            select(Node, child).join(Node.children.of_type(child)).where(Node.name == "root")
        )
    ).all()
    assert {r[0] for r in rows} == {root}
    assert sorted(r[1].name for r in rows) == ["a", "b"]
    a = await by_name(session, Node, "a")
    assert any(r[1] is a for r in rows)
    assert all(type(r[1]) is Node for r in rows)
    alone = aliased(User, name="u")
    result = await session.execute(select(alone).where(alone.name == "ed"))
    assert list(result.keys()) == ["u"]
    assert result.scalar_one() is await by_name(session, User, "ed")


async def test_aliased_from_a_subquery(session: AsyncSession) -> None:
    subq = select(User).where(User.name != "jack").subquery()
    u = aliased(User, subq)
    stmt = select(u.name, Address.email).join(u.addresses).order_by(Address.id)
    assert await names(session, stmt) == [("ed", "ed@a"), ("ed", "ed@b"), ("wendy", "w@c")]
    users = (await session.scalars(select(u).order_by(u.id))).all()
    assert [x.name for x in users] == ["ed", "wendy"]
    assert users[0] is await by_name(session, User, "ed")


# -- any(), has(), == None ------------------------------------------------------------------


async def test_any_and_has(session: AsyncSession) -> None:
    q = select(User.name).order_by(User.id)
    assert await names(session, q.where(User.addresses.any())) == ["ed", "wendy"]
    assert await names(session, q.where(~User.addresses.any())) == ["jack"]
    assert await names(session, q.where(User.addresses.any(Address.email == "w@c"))) == ["wendy"]
    assert await names(session, q.where(User.addresses.any(email="ed@b"))) == ["ed"]
    a = select(Address.email).order_by(Address.id)
    assert await names(session, a.where(Address.user.has(User.name == "ed"))) == [
        "ed@a",
        "ed@b",
    ]
    assert await names(session, a.where(Address.user.has(name="wendy"))) == ["w@c"]
    assert await names(session, a.where(~Address.user.has())) == ["lost@x"]


async def test_any_through_many_to_many_and_nested(session: AsyncSession) -> None:
    q = select(Item.description).order_by(Item.description)
    assert await names(session, q.where(Item.keywords.any(Keyword.name == "red"))) == ["i1"]
    assert await names(session, q.where(~Item.keywords.any())) == ["i3"]
    k = select(Keyword.name).order_by(Keyword.name)
    assert await names(session, k.where(Keyword.items.any(Item.description == "i2"))) == ["blue"]
    # users with an order holding an item tagged red
    nested = User.orders.any(Order.items.any(Item.keywords.any(Keyword.name == "red")))
    assert await names(session, select(User.name).where(nested).order_by(User.id)) == [
        "ed",
        "wendy",
    ]
    only_i3 = Order.items.any(Item.description == "i3")
    assert await names(session, select(User.name).where(User.orders.any(only_i3))) == ["ed"]


async def test_any_and_has_on_self_referential_relationships(session: AsyncSession) -> None:
    q = select(Node.name).order_by(Node.name)
    assert await names(session, q.where(Node.children.any(Node.name == "a1"))) == ["a"]
    assert await names(session, q.where(Node.parent.has(Node.name == "root"))) == ["a", "b"]
    assert await names(session, q.where(~Node.children.any())) == ["a1", "b"]
    grandparents = Node.children.any(Node.children.any(Node.name == "a1"))
    assert await names(session, q.where(grandparents)) == ["root"]
    n = aliased(Node)
    assert await names(session, select(n.name).where(n.children.any(name="b"))) == ["root"]


async def test_comparisons_with_none(session: AsyncSession) -> None:
    a = select(Address.email).order_by(Address.id)
    assert await names(session, a.where(Address.user == None)) == ["lost@x"]  # noqa: E711
    assert await names(session, a.where(Address.user != None)) == ["ed@a", "ed@b", "w@c"]  # noqa: E711
    q = select(User.name).order_by(User.id)
    assert await names(session, q.where(User.addresses == None)) == ["jack"]  # noqa: E711
    assert await names(session, q.where(User.addresses != None)) == ["ed", "wendy"]  # noqa: E711
    i = select(Item.description).order_by(Item.description)
    assert await names(session, i.where(Item.keywords == None)) == ["i3"]  # noqa: E711


# -- comparisons with objects, with_parent() ------------------------------------------------


async def test_many_to_one_compared_with_an_object(session: AsyncSession) -> None:
    ed = await by_name(session, User, "ed")
    a = select(Address.email).order_by(Address.id)
    assert await names(session, a.where(Address.user == ed)) == ["ed@a", "ed@b"]
    assert await names(session, a.where(Address.user != ed)) == ["w@c", "lost@x"]
    root = await by_name(session, Node, "root")
    assert sorted(await names(session, select(Node.name).where(Node.parent == root))) == [
        "a",
        "b",
    ]


async def test_contains(session: AsyncSession) -> None:
    w = await by_name(session, Address, "w@c")
    assert await names(session, select(User.name).where(User.addresses.contains(w))) == ["wendy"]
    blue = await by_name(session, Keyword, "blue")
    q = select(Item.description).where(Item.keywords.contains(blue)).order_by(Item.description)
    assert await names(session, q) == ["i1", "i2"]
    i1 = await by_name(session, Item, "i1")
    q = select(Order.description).where(Order.items.contains(i1)).order_by(Order.description)
    assert await names(session, q) == ["o1", "o3"]


async def test_with_parent(session: AsyncSession) -> None:
    ed = await by_name(session, User, "ed")
    q = select(Address.email).where(with_parent(ed, User.addresses)).order_by(Address.id)
    assert await names(session, q) == ["ed@a", "ed@b"]
    w = await by_name(session, Address, "w@c")
    assert await names(session, select(User.name).where(with_parent(w, Address.user))) == ["wendy"]
    i1 = await by_name(session, Item, "i1")
    q = select(Keyword.name).where(with_parent(i1, Item.keywords)).order_by(Keyword.name)
    assert await names(session, q) == ["blue", "red"]
    k = aliased(Keyword, name="k")
    q = select(k.name).where(with_parent(i1, Item.keywords, k), k.name == "red")
    assert await names(session, q) == ["red"]
    root = await by_name(session, Node, "root")
    q = select(Node.name).where(with_parent(root, Node.children)).order_by(Node.name)
    assert await names(session, q) == ["a", "b"]


async def test_pending_objects_compare_by_their_keys_after_autoflush(
    session: AsyncSession,
) -> None:
    # The key is read when the statement runs, after autoflush gave it one.
    newcomer = User(name="new", addresses=[Address(email="n@n")])
    session.add(newcomer)
    criterion = with_parent(newcomer, User.addresses)
    assert newcomer.__dict__.get("id") is None
    assert await names(session, select(Address.email).where(criterion)) == ["n@n"]
    assert await names(session, select(Address.email).where(Address.user == newcomer)) == ["n@n"]


async def test_unloaded_keys_raise_and_load_nothing(
    session: AsyncSession, statements: list[str]
) -> None:
    ed = await by_name(session, User, "ed")
    w = await by_name(session, Address, "w@c")
    statements.clear()
    session.expire(ed)
    session.expire(w)
    for build in (
        lambda: Address.user == ed,
        lambda: Address.user != ed,
        lambda: with_parent(ed, User.addresses),
        lambda: User.addresses.contains(w),
    ):
        with pytest.raises(InvalidRequestError, match="not loaded") as info:
            build()
        assert "never loads" in str(info.value)
    assert statements == []


# -- the SQL --------------------------------------------------------------------------------


def sql(dialect: Any, stmt: ClauseElement) -> str:
    compiled, _ = dialect.compile(stmt)
    return str(compiled.sql)


def test_join_sql_on_each_dialect() -> None:
    stmt = select(User.name).join(User.addresses).where(Address.email == "x")
    expected = (
        "SELECT rq_users.name FROM rq_users JOIN rq_addresses "
        "ON rq_users.id = rq_addresses.user_id WHERE rq_addresses.email = {}"
    )
    assert sql(SQLiteDialect(), stmt) == expected.format("?")
    assert sql(PGDialect(), stmt) == expected.format("$1::VARCHAR")
    stmt = select(Item.id).outerjoin(Item.keywords)
    expected = (
        "SELECT rq_items.id FROM rq_items LEFT OUTER JOIN rq_item_keywords "
        "ON rq_items.id = rq_item_keywords.item_id LEFT OUTER JOIN rq_keywords "
        "ON rq_keywords.id = rq_item_keywords.keyword_id"
    )
    assert sql(SQLiteDialect(), stmt) == expected
    assert sql(PGDialect(), stmt) == expected


def test_any_sql_is_a_correlated_exists_on_each_dialect() -> None:
    stmt = select(User.id).where(User.addresses.any(Address.email == "x"))
    expected = (
        'SELECT rq_users.id FROM rq_users WHERE EXISTS (SELECT 1 AS "1" FROM rq_addresses '
        "WHERE rq_users.id = rq_addresses.user_id AND rq_addresses.email = {})"
    )
    assert sql(SQLiteDialect(), stmt) == expected.format("?")
    assert sql(PGDialect(), stmt) == expected.format("$1::VARCHAR")
    # The members' table stays inside even when the enclosing query selects it too.
    stmt = select(User.id, Address.id).join(User.addresses).where(User.addresses.any())
    assert 'EXISTS (SELECT 1 AS "1" FROM rq_addresses WHERE' in sql(PGDialect(), stmt)


def test_relationship_joins_have_stable_cache_keys() -> None:
    def shape(stmt: Any) -> Any:
        return stmt._ck([])

    assert shape(select(User).join(User.addresses)) == shape(select(User).join(User.addresses))
    assert shape(select(Item).join(Item.keywords)) == shape(select(Item).join(Item.keywords))
    assert shape(select(User).join(User.addresses)) != shape(select(User).join(User.orders))


def test_many_to_one_comparisons_sql() -> None:
    ed = User(id=7, name="ed")
    assert str(Address.user == ed) == "rq_addresses.user_id = :param_1"
    assert str(Address.user != ed) == (
        "rq_addresses.user_id != :param_1 OR rq_addresses.user_id IS NULL"
    )
    assert str(Address.user == None) == "rq_addresses.user_id IS NULL"  # noqa: E711
    assert str(Address.user != None) == "rq_addresses.user_id IS NOT NULL"  # noqa: E711
    compiled, extracted = SQLiteDialect().compile(select(Address.id).where(Address.user == ed))
    assert compiled.construct_params(extracted, None) == [7]


def test_inspect_an_alias() -> None:
    u = aliased(User, name="u")
    insp = inspect(u)
    assert insp.mapper is inspect(User)
    assert insp.name == "u"
    assert insp.is_aliased_class
    assert str(u.name == "x") == "u.name = :name_1"
    assert str(select(u.id)) == "SELECT u.id FROM rq_users AS u"
    assert str(aliased(User.__table__, name="t").select()) == (
        "SELECT t.id, t.name FROM rq_users AS t"
    )


# -- errors ---------------------------------------------------------------------------------


def test_join_along_a_relationship_of_an_unrelated_entity() -> None:
    with pytest.raises(InvalidRequestError, match=r"User\.addresses.*not in the FROM"):
        select(Item).join(User.addresses)


def test_self_referential_join_without_an_alias() -> None:
    with pytest.raises(InvalidRequestError, match=r"Node\.children.*aliased\(Node\)"):
        select(Node).join(Node.children)


def test_of_type_must_be_the_target() -> None:
    with pytest.raises(ArgumentError, match=r"User\.addresses leads to Address"):
        User.addresses.of_type(aliased(Item))
    with pytest.raises(ArgumentError, match=r"User\.addresses leads to Address"):
        select(User).join(aliased(Item), User.addresses)
    with pytest.raises(ArgumentError, match="takes no ON clause"):
        select(User).join(User.addresses, User.id == Address.user_id)
    with pytest.raises(ArgumentError, match="left side must be User"):
        select(Item).join_from(Item, User.addresses)


def test_any_and_has_need_the_right_kind_of_relationship() -> None:
    with pytest.raises(
        InvalidRequestError, match=r"Address\.user\.any\(\).*use Address\.user\.has"
    ):
        Address.user.any()
    with pytest.raises(InvalidRequestError, match=r"User\.addresses\.has\(\).*any\(\)"):
        User.addresses.has()
    with pytest.raises(ArgumentError, match="no column attribute 'nope'"):
        User.addresses.any(nope=1)


def test_comparing_with_the_wrong_objects() -> None:
    with pytest.raises(InvalidRequestError, match=r"collection User\.addresses.*contains"):
        User.addresses == Address(email="x")  # noqa: B015
    with pytest.raises(InvalidRequestError, match=r"Address\.user\.contains\(\)"):
        Address.user.contains(User(name="x"))
    with pytest.raises(ArgumentError, match="expected a User object"):
        Address.user == Item(description="x")  # noqa: B015
    with pytest.raises(ArgumentError, match="expected a User object"):
        with_parent(Item(description="x"), User.addresses)
    with pytest.raises(ArgumentError, match="relationship attribute"):
        with_parent(User(name="x"), User.name)


# -- against SQLAlchemy ---------------------------------------------------------------------


class SABase(sa_orm.DeclarativeBase):
    pass


sa_order_items = sa.Table(
    "rq_order_items",
    SABase.metadata,
    sa.Column("order_id", sa.ForeignKey("rq_orders.id"), primary_key=True),
    sa.Column("item_id", sa.ForeignKey("rq_items.id"), primary_key=True),
)
sa_item_keywords = sa.Table(
    "rq_item_keywords",
    SABase.metadata,
    sa.Column("item_id", sa.ForeignKey("rq_items.id"), primary_key=True),
    sa.Column("keyword_id", sa.ForeignKey("rq_keywords.id"), primary_key=True),
)


class SAUser(SABase):
    __tablename__ = "rq_users"
    id: sa_orm.Mapped[int] = sa_orm.mapped_column(primary_key=True)
    name: sa_orm.Mapped[str] = sa_orm.mapped_column(sa.String(30))
    addresses: sa_orm.Mapped[list[SAAddress]] = sa_orm.relationship(back_populates="user")
    orders: sa_orm.Mapped[list[SAOrder]] = sa_orm.relationship(back_populates="user")


class SAAddress(SABase):
    __tablename__ = "rq_addresses"
    id: sa_orm.Mapped[int] = sa_orm.mapped_column(primary_key=True)
    user_id: sa_orm.Mapped[int | None] = sa_orm.mapped_column(sa.ForeignKey("rq_users.id"))
    email: sa_orm.Mapped[str] = sa_orm.mapped_column(sa.String(50))
    user: sa_orm.Mapped[SAUser | None] = sa_orm.relationship(back_populates="addresses")


class SAOrder(SABase):
    __tablename__ = "rq_orders"
    id: sa_orm.Mapped[int] = sa_orm.mapped_column(primary_key=True)
    user_id: sa_orm.Mapped[int | None] = sa_orm.mapped_column(sa.ForeignKey("rq_users.id"))
    description: sa_orm.Mapped[str] = sa_orm.mapped_column(sa.String(30))
    user: sa_orm.Mapped[SAUser | None] = sa_orm.relationship(back_populates="orders")
    items: sa_orm.Mapped[list[SAItem]] = sa_orm.relationship(
        secondary=sa_order_items, back_populates="orders"
    )


class SAItem(SABase):
    __tablename__ = "rq_items"
    id: sa_orm.Mapped[int] = sa_orm.mapped_column(primary_key=True)
    description: sa_orm.Mapped[str] = sa_orm.mapped_column(sa.String(30))
    orders: sa_orm.Mapped[list[SAOrder]] = sa_orm.relationship(
        secondary=sa_order_items, back_populates="items"
    )
    keywords: sa_orm.Mapped[list[SAKeyword]] = sa_orm.relationship(
        secondary=sa_item_keywords, back_populates="items"
    )


class SAKeyword(SABase):
    __tablename__ = "rq_keywords"
    id: sa_orm.Mapped[int] = sa_orm.mapped_column(primary_key=True)
    name: sa_orm.Mapped[str] = sa_orm.mapped_column(sa.String(30))
    items: sa_orm.Mapped[list[SAItem]] = sa_orm.relationship(
        secondary=sa_item_keywords, back_populates="keywords"
    )


class SANode(SABase):
    __tablename__ = "rq_nodes"
    id: sa_orm.Mapped[int] = sa_orm.mapped_column(primary_key=True)
    parent_id: sa_orm.Mapped[int | None] = sa_orm.mapped_column(sa.ForeignKey("rq_nodes.id"))
    name: sa_orm.Mapped[str] = sa_orm.mapped_column(sa.String(30))
    children: sa_orm.Mapped[list[SANode]] = sa_orm.relationship(back_populates="parent")
    parent: sa_orm.Mapped[SANode | None] = sa_orm.relationship(
        back_populates="children", remote_side=[id]
    )


OURS = {"User": User, "Address": Address, "Order": Order, "Item": Item, "Keyword": Keyword}
OURS["Node"] = Node
THEIRS = {"User": SAUser, "Address": SAAddress, "Order": SAOrder, "Item": SAItem}
THEIRS.update({"Keyword": SAKeyword, "Node": SANode})
TABLE_ORDER = (
    "users",
    "addresses",
    "orders",
    "items",
    "keywords",
    "order_items",
    "item_keywords",
    "nodes",
)


def build_filter(classes: dict[str, Any], combine: Any, entity: str, tree: Tree) -> Any:
    """``tree`` (see ``relationship_predicates``) as a criterion of either library;
    ``combine`` is that library's ``(and_, or_)``."""
    cls = classes[entity]
    text, targets = RELATED[entity]
    kind = tree[0]
    if kind == "text":
        column = getattr(cls, text)
        return column == tree[2] if tree[1] == "eq" else column != tree[2]
    if kind == "related":
        attr = getattr(cls, tree[1])
        inner = tree[2]
        criterion = (
            None if inner is None else build_filter(classes, combine, targets[tree[1]], inner)
        )
        return attr.any(criterion) if attr.property.uselist else attr.has(criterion)
    if kind == "none":
        attr = getattr(cls, tree[1])
        return attr != None if tree[2] else attr == None  # noqa: E711
    if kind == "not":
        return ~build_filter(classes, combine, entity, tree[1])
    both = [build_filter(classes, combine, entity, t) for t in tree[1:]]
    return combine[0](*both) if kind == "and" else combine[1](*both)


def test_relationship_filters_select_what_sqlalchemy_selects(tmp_path: Path) -> None:
    path = tmp_path / "oracle.db"
    oracle = sa.create_engine(f"sqlite:///{path}")
    SABase.metadata.create_all(oracle)
    engine = sync.create_engine(f"sqlite+aiosqlite:///{path}")
    tables = {name: SABase.metadata.tables[f"rq_{name}"] for name in TABLE_ORDER}
    filters = st.sampled_from(sorted(RELATED)).flatmap(
        lambda entity: st.tuples(st.just(entity), relationship_predicates(entity))
    )

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(rows=related_rows(), filter_=filters)
    def check(rows: dict[str, list[dict[str, Any]]], filter_: tuple[str, Tree]) -> None:
        entity, tree = filter_
        with oracle.begin() as conn:
            for name in reversed(TABLE_ORDER):
                conn.execute(tables[name].delete())
            for name in TABLE_ORDER:
                if rows[name]:
                    conn.execute(tables[name].insert(), rows[name])
            theirs = THEIRS[entity]
            criterion = build_filter(THEIRS, (sa.and_, sa.or_), entity, tree)
            expected = set(conn.scalars(sa.select(theirs.id).where(criterion)))
        with sync.Session(engine) as session:
            ours = OURS[entity]
            criterion = build_filter(OURS, (and_, or_), entity, tree)
            got = set(session.scalars(select(ours.id).where(criterion)))
        assert got == expected, (entity, tree)

    try:
        check()
    finally:
        engine.dispose()
        oracle.dispose()
