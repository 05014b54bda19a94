"""Loader options and eager loading on SQLite and PostgreSQL: what loads, in how many queries.

A model of its own (the canonical one has no relationships yet): parents and
children (one-to-many and many-to-one), posts and tags (many-to-many), a
self-referential tree, and classes whose relationships default to each
``lazy=`` strategy. Every count is of statements the engine executed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

import asyncsession.sync  # noqa: F401  (enables run_sync)
from asyncsession import (
    ArgumentError,
    AsyncAttrs,
    AsyncEngine,
    AsyncSession,
    Column,
    DeclarativeBase,
    ForeignKey,
    Integer,
    InvalidRequestError,
    Load,
    Mapped,
    String,
    Table,
    Text,
    UnloadedAttributeError,
    and_,
    contains_eager,
    create_async_engine,
    defaultload,
    defer,
    deferred,
    event,
    func,
    inspect,
    joinedload,
    lazyload,
    load_only,
    mapped_column,
    noload,
    raiseload,
    relationship,
    select,
    selectinload,
    subqueryload,
    text,
    undefer,
)

pytestmark = pytest.mark.anyio


class Base(AsyncAttrs, DeclarativeBase):
    pass


class Parent(Base):
    __tablename__ = "parents"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(30))
    notes: Mapped[str | None] = deferred(mapped_column(Text))
    children: Mapped[list[Child]] = relationship(back_populates="parent", order_by="Child.id")
    big_children: Mapped[list[Child]] = relationship(
        primaryjoin=lambda: and_(Parent.id == Child.parent_id, Child.size > 0),
        viewonly=True,
        order_by=lambda: Child.id.desc(),
    )


class Child(Base):
    __tablename__ = "children"
    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("parents.id"))
    name: Mapped[str] = mapped_column(String(30))
    size: Mapped[int] = mapped_column(default=0)
    parent: Mapped[Parent | None] = relationship(back_populates="children")
    toys: Mapped[list[Toy]] = relationship(order_by="Toy.id")


class Toy(Base):
    __tablename__ = "toys"
    id: Mapped[int] = mapped_column(primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("children.id"))
    name: Mapped[str] = mapped_column(String(30))


post_tags = Table(
    "post_tags",
    Base.metadata,
    Column("post_id", Integer, ForeignKey("posts.id"), primary_key=True),
    Column("tag_id", Integer, ForeignKey("tags.id"), primary_key=True),
)


class Post(Base):
    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(30))
    tags: Mapped[list[Tag]] = relationship(secondary=post_tags, order_by="Tag.id")


class Tag(Base):
    __tablename__ = "tags"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(30))


class Node(Base):
    __tablename__ = "nodes"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id"))
    name: Mapped[str] = mapped_column(String(30))
    children: Mapped[list[Node]] = relationship(
        back_populates="parent", order_by="Node.id", lazy="selectin"
    )
    parent: Mapped[Node | None] = relationship(back_populates="children", remote_side=[id])


# Relationship-level defaults: one class per strategy, over the same two tables.
class Shelf(Base):
    __tablename__ = "shelves"
    id: Mapped[int] = mapped_column(primary_key=True)
    by_selectin: Mapped[list[Book]] = relationship(lazy="selectin", order_by="Book.id")
    by_joined: Mapped[list[Book]] = relationship(lazy="joined", order_by="Book.id", viewonly=True)
    by_subquery: Mapped[list[Book]] = relationship(lazy="subquery", viewonly=True)
    by_raise: Mapped[list[Book]] = relationship(lazy="raise", viewonly=True)
    by_noload: Mapped[list[Book]] = relationship(lazy="noload", viewonly=True)


class Book(Base):
    __tablename__ = "books"
    id: Mapped[int] = mapped_column(primary_key=True)
    shelf_id: Mapped[int] = mapped_column(ForeignKey("shelves.id"))
    title: Mapped[str] = mapped_column(String(30))


# Delete cascades load what they need themselves, whatever the defaults say.
class Crate(Base):
    __tablename__ = "crates"
    id: Mapped[int] = mapped_column(primary_key=True)
    boxes: Mapped[list[Box]] = relationship(cascade="all, delete-orphan", lazy="selectin")


class Box(Base):
    __tablename__ = "boxes"
    id: Mapped[int] = mapped_column(primary_key=True)
    crate_id: Mapped[int] = mapped_column(ForeignKey("crates.id"))
    items: Mapped[list[BoxItem]] = relationship(cascade="all, delete-orphan", lazy="noload")
    labels: Mapped[list[BoxLabel]] = relationship(lazy="selectin", viewonly=True)


class BoxItem(Base):
    __tablename__ = "box_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    box_id: Mapped[int] = mapped_column(ForeignKey("boxes.id"))


class BoxLabel(Base):
    __tablename__ = "box_labels"
    id: Mapped[int] = mapped_column(primary_key=True)
    box_id: Mapped[int] = mapped_column(ForeignKey("boxes.id"))


# Members ordered by a column they all share: with their badges joined in, one
# member's rows need not be next to each other.
class Club(Base):
    __tablename__ = "clubs"
    id: Mapped[int] = mapped_column(primary_key=True)
    members: Mapped[list[Member]] = relationship(order_by="Member.club_id")


class Member(Base):
    __tablename__ = "members"
    id: Mapped[int] = mapped_column(primary_key=True)
    club_id: Mapped[int] = mapped_column(ForeignKey("clubs.id"))
    badges: Mapped[list[Badge]] = relationship(order_by="Badge.id")


class Badge(Base):
    __tablename__ = "badges"
    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
async def engine(db_url: str, connect_args: dict[str, Any]) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(db_url, connect_args=connect_args)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with AsyncSession(engine) as session:
        for p in range(3):
            parent = Parent(id=p + 1, name=f"p{p}", notes=f"notes {p}")
            parent.children = [
                Child(name=f"c{p}{c}", size=c, toys=[Toy(name=f"t{p}{c}{t}") for t in range(2)])
                for c in range(2)
            ]
            session.add(parent)
        session.add(Parent(id=4, name="childless"))
        session.add(Child(name="orphan"))
        tags = [Tag(name=f"tag{i}") for i in range(3)]
        session.add_all(
            [
                Post(title="first", tags=tags[:2]),
                Post(title="second", tags=tags[1:]),
                Post(title="none"),
            ]
        )
        # A tree: 1 -> (2 -> (4, 5), 3 -> (6)); ids are explicit.
        session.add(
            Node(
                id=1,
                name="root",
                children=[
                    Node(id=2, name="a", children=[Node(id=4, name="aa"), Node(id=5, name="ab")]),
                    Node(id=3, name="b", children=[Node(id=6, name="ba")]),
                ],
            )
        )
        session.add(Shelf(id=1))
        session.add_all([Book(id=i, shelf_id=1, title=f"book {i}") for i in (1, 2, 3)])
        await session.commit()
    yield engine
    await engine.dispose()


@pytest.fixture
def statements(engine: AsyncEngine) -> list[str]:
    """The SQL of every statement the engine executes from now on."""
    seen: list[str] = []
    event.listen(engine, "before_execute", lambda conn, stmt, params, opts: seen.append(str(stmt)))
    return seen


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with AsyncSession(engine) as session:
        yield session


def names(objects: Any) -> list[str]:
    return [o.name for o in objects]


def loaded(obj: Any, key: str) -> bool:
    return key in obj.__dict__


async def parents(session: AsyncSession, *options: Any) -> list[Parent]:
    stmt = select(Parent).where(Parent.id <= 3).order_by(Parent.id).options(*options)
    return list((await session.execute(stmt)).unique().scalars().all())


# -- the options themselves (no database) ------------------------------------------------------


def test_options_change_neither_sql_nor_cache_key() -> None:
    plain = select(Parent).where(Parent.id == 5)
    with_options = plain.options(selectinload(Parent.children), load_only(Parent.name))
    assert str(with_options) == str(plain)
    assert with_options._ck([]) == plain._ck([])
    assert with_options._with_options == (
        selectinload(Parent.children),
        load_only(Parent.name),
    )
    assert plain._with_options == ()


def test_options_are_values() -> None:
    chain = selectinload(Parent.children).joinedload(Child.toys)
    assert chain == selectinload(Parent.children).joinedload(Child.toys)
    assert hash(chain) == hash(selectinload(Parent.children).joinedload(Child.toys))
    assert chain != selectinload(Parent.children).selectinload(Child.toys)
    assert Load(Parent).selectinload(Parent.children) == selectinload(Parent.children)


def test_chain_naming_an_attribute_of_another_entity() -> None:
    with pytest.raises(ArgumentError, match=r"Post\.tags is an attribute of Post.*Child"):
        selectinload(Parent.children).selectinload(Post.tags)
    with pytest.raises(ArgumentError, match=r"Child\.name is an attribute of Child.*Parent"):
        Load(Parent).load_only(Child.name)


def test_column_option_on_a_relationship() -> None:
    with pytest.raises(ArgumentError, match=r"load_only\(Parent\.children\).*is a relationship"):
        load_only(Parent.children)
    with pytest.raises(ArgumentError, match=r"defer\(Child\.parent\).*is a relationship"):
        selectinload(Parent.children).defer(Child.parent)


def test_relationship_option_on_a_column() -> None:
    with pytest.raises(ArgumentError, match=r"selectinload\(Parent\.name\).*column attribute"):
        selectinload(Parent.name)
    with pytest.raises(ArgumentError, match="takes a mapped attribute"):
        joinedload("children")


# -- bad input fails before any SQL -----------------------------------------------------------


async def test_option_for_an_entity_not_selected(
    session: AsyncSession, statements: list[str]
) -> None:
    with pytest.raises(ArgumentError, match=r"Post\.tags names Post.*selects Parent"):
        await session.execute(select(Parent).options(selectinload(Post.tags)))
    with pytest.raises(ArgumentError, match="need an entity"):
        await session.execute(select(Parent.id).options(selectinload(Parent.children)))
    with pytest.raises(ArgumentError, match="takes loader options"):
        await session.execute(select(Parent).options("children"))
    with pytest.raises(ArgumentError, match=r"Post\.tags names Post"):
        await session.get(Parent, 1, options=[selectinload(Post.tags)])
    assert statements == []


async def test_bad_options_fail_before_the_autoflush(
    session: AsyncSession, statements: list[str]
) -> None:
    session.add(Parent(id=50, name="pending"))
    with pytest.raises(ArgumentError):
        await session.execute(select(Parent).options(joinedload(Post.tags)))
    assert statements == []
    assert len(session.new) == 1


# -- selectinload ----------------------------------------------------------------------------


async def test_selectinload_one_to_many(session: AsyncSession, statements: list[str]) -> None:
    found = await parents(session, selectinload(Parent.children))
    assert len(statements) == 2
    assert [names(p.children) for p in found] == [["c00", "c01"], ["c10", "c11"], ["c20", "c21"]]
    assert "IN" in statements[1]
    # The reverse side is known without SQL.
    assert found[0].children[0].parent is found[0]
    assert len(statements) == 2


async def test_selectinload_many_to_one(session: AsyncSession, statements: list[str]) -> None:
    stmt = select(Child).options(selectinload(Child.parent)).order_by(Child.id)
    children = (await session.execute(stmt)).scalars().all()
    assert len(statements) == 2
    assert [c.parent.name if c.parent else None for c in children] == [
        "p0",
        "p0",
        "p1",
        "p1",
        "p2",
        "p2",
        None,
    ]
    assert children[0].parent is children[1].parent


async def test_selectinload_many_to_many(session: AsyncSession, statements: list[str]) -> None:
    stmt = select(Post).options(selectinload(Post.tags)).order_by(Post.id)
    posts = (await session.execute(stmt)).scalars().all()
    assert len(statements) == 2
    assert [names(p.tags) for p in posts] == [["tag0", "tag1"], ["tag1", "tag2"], []]
    assert posts[0].tags[1] is posts[1].tags[0]


async def test_selectinload_chain_two_levels(session: AsyncSession, statements: list[str]) -> None:
    found = await parents(session, selectinload(Parent.children).selectinload(Child.toys))
    assert len(statements) == 3  # 1 + 1 per relationship level, however many parents
    assert [names(c.toys) for c in found[1].children] == [["t100", "t101"], ["t110", "t111"]]


async def test_selectinload_self_referential_tree(
    session: AsyncSession, statements: list[str]
) -> None:
    stmt = (
        select(Node)
        .where(Node.id == 1)
        .options(selectinload(Node.children).selectinload(Node.children))
    )
    root = (await session.execute(stmt)).scalar_one()
    assert len(statements) == 3
    assert names(root.children) == ["a", "b"]
    assert [names(n.children) for n in root.children] == [["aa", "ab"], ["ba"]]
    assert root.children[0].children[0].parent is root.children[0]


async def test_selectinload_recursion_depth(session: AsyncSession, statements: list[str]) -> None:
    stmt = select(Node).where(Node.id == 1).options(selectinload(Node.children, recursion_depth=-1))
    root = (await session.execute(stmt)).scalar_one()
    # Levels: root's children, grandchildren, then one query finding no more.
    assert len(statements) == 4
    assert all(loaded(n, "children") for n in root.children[0].children)
    assert root.children[0].children[0].children == []


async def test_selectinload_chunks_many_parents(engine: AsyncEngine, statements: list[str]) -> None:
    async with AsyncSession(engine) as session:
        session.add_all([Parent(id=100 + i, name=f"many {i}") for i in range(600)])
        await session.commit()
    del statements[:]
    async with AsyncSession(engine) as session:
        stmt = select(Parent).options(selectinload(Parent.children))
        everyone = (await session.execute(stmt)).scalars().all()
        assert len(everyone) == 604
        assert len(statements) == 1 + 2  # IN lists of at most 500 keys
        assert all(loaded(p, "children") for p in everyone)


async def test_subqueryload_is_the_in_strategy(
    session: AsyncSession, statements: list[str]
) -> None:
    found = await parents(session, subqueryload(Parent.children).subqueryload(Child.toys))
    assert len(statements) == 3
    assert [len(c.toys) for p in found for c in p.children] == [2] * 6


# -- joinedload ------------------------------------------------------------------------------


async def test_joinedload_one_to_many_needs_unique(
    session: AsyncSession, statements: list[str]
) -> None:
    stmt = select(Parent).options(joinedload(Parent.children)).order_by(Parent.id)
    result = await session.execute(stmt)
    with pytest.raises(InvalidRequestError, match=r"unique\(\) method must be invoked"):
        result.scalars().all()
    with pytest.raises(InvalidRequestError, match=r"unique\(\)"):
        (await session.execute(stmt)).scalar_one()
    found = (await session.execute(stmt)).scalars().unique().all()
    assert [names(p.children) for p in found] == [
        ["c00", "c01"],
        ["c10", "c11"],
        ["c20", "c21"],
        [],
    ]
    rows = (await session.execute(stmt)).unique().all()
    assert [r[0] for r in rows] == list(found)
    assert len(statements) == 4  # one per execute, never more
    assert "LEFT OUTER JOIN children AS" in statements[0]


async def test_joinedload_many_to_one_needs_no_unique(
    session: AsyncSession, statements: list[str]
) -> None:
    stmt = select(Child).options(joinedload(Child.parent)).order_by(Child.id)
    children = (await session.execute(stmt)).scalars().all()
    assert len(statements) == 1
    assert [c.parent.name if c.parent else None for c in children] == [
        "p0",
        "p0",
        "p1",
        "p1",
        "p2",
        "p2",
        None,
    ]


async def test_joinedload_innerjoin(session: AsyncSession, statements: list[str]) -> None:
    stmt = select(Child).options(joinedload(Child.parent, innerjoin=True)).order_by(Child.id)
    children = (await session.execute(stmt)).scalars().all()
    assert len(children) == 6  # the orphan has no parent row to join
    assert " JOIN parents AS" in statements[0]
    assert "OUTER" not in statements[0]


async def test_joinedload_many_to_many(session: AsyncSession, statements: list[str]) -> None:
    stmt = select(Post).options(joinedload(Post.tags)).order_by(Post.id)
    posts = (await session.execute(stmt)).unique().scalars().all()
    assert len(statements) == 1
    assert [names(p.tags) for p in posts] == [["tag0", "tag1"], ["tag1", "tag2"], []]


async def test_joinedload_chain_and_self_referential(
    session: AsyncSession, statements: list[str]
) -> None:
    found = await parents(session, joinedload(Parent.children).joinedload(Child.toys))
    assert len(statements) == 1
    assert [names(c.toys) for c in found[2].children] == [["t200", "t201"], ["t210", "t211"]]
    statements.clear()
    stmt = (
        select(Node)
        .where(Node.id == 1)
        .options(joinedload(Node.children).joinedload(Node.children))
    )
    root = (await session.execute(stmt)).unique().scalar_one()
    assert len(statements) == 1
    assert [names(n.children) for n in root.children] == [["aa", "ab"], ["ba"]]


async def test_selectin_members_with_joined_collections_whose_rows_interleave(
    session: AsyncSession, statements: list[str]
) -> None:
    session.add(Club(id=1, members=[Member(id=1), Member(id=2)]))
    # Badge ids interleave between the two members.
    session.add_all([Badge(id=1, member_id=1), Badge(id=2, member_id=2), Badge(id=3, member_id=1)])
    await session.commit()
    session.expunge_all()
    statements.clear()
    stmt = select(Club).options(selectinload(Club.members).joinedload(Member.badges))
    club = (await session.execute(stmt)).scalar_one()
    assert len(statements) == 2
    assert sorted(m.id for m in club.members) == [1, 2]
    badges = {m.id: [b.id for b in m.badges] for m in club.members}
    assert badges == {1: [1, 3], 2: [2]}


async def test_mixed_chains(session: AsyncSession, statements: list[str]) -> None:
    found = await parents(session, selectinload(Parent.children).joinedload(Child.toys))
    assert len(statements) == 2
    assert [len(c.toys) for p in found for c in p.children] == [2] * 6
    session.expunge_all()
    statements.clear()
    found = await parents(session, joinedload(Parent.children).selectinload(Child.toys))
    assert len(statements) == 2
    assert [len(c.toys) for p in found for c in p.children] == [2] * 6


async def test_joined_collection_with_limit_counts_parents(
    session: AsyncSession, statements: list[str]
) -> None:
    stmt = (
        select(Parent)
        .options(joinedload(Parent.children).joinedload(Child.toys))
        .order_by(Parent.name.desc())
        .limit(2)
        .offset(1)
    )
    found = (await session.execute(stmt)).unique().scalars().all()
    assert len(statements) == 1
    assert "LIMIT" in statements[0]
    assert ") AS anon_" in statements[0]  # the limited query is a subquery, joined from
    assert names(found) == ["p1", "p0"]  # p2 skipped by OFFSET, "childless" by LIMIT
    assert [names(p.children) for p in found] == [["c10", "c11"], ["c00", "c01"]]
    assert [len(c.toys) for p in found for c in p.children] == [2] * 4


async def test_joinedload_custom_primaryjoin(session: AsyncSession, statements: list[str]) -> None:
    found = await parents(session, joinedload(Parent.big_children))
    assert len(statements) == 1
    assert [names(p.big_children) for p in found] == [["c01"], ["c11"], ["c21"]]
    session.expunge_all()
    found = await parents(session, selectinload(Parent.big_children))
    assert [names(p.big_children) for p in found] == [["c01"], ["c11"], ["c21"]]


async def test_sibling_joined_collections(session: AsyncSession, statements: list[str]) -> None:
    # Two collections joined side by side multiply the rows; each member comes once.
    found = await parents(session, joinedload(Parent.children), joinedload(Parent.big_children))
    assert len(statements) == 1
    assert [names(p.children) for p in found] == [["c00", "c01"], ["c10", "c11"], ["c20", "c21"]]
    assert [names(p.big_children) for p in found] == [["c01"], ["c11"], ["c21"]]
    assert found[0].big_children[0] is found[0].children[1]


# -- the other strategies ------------------------------------------------------------------------


async def test_raiseload(session: AsyncSession) -> None:
    found = await parents(session, raiseload(Parent.children))
    with pytest.raises(UnloadedAttributeError, match=r"Parent\.children is not loaded .*raiseload"):
        _ = found[0].children

    def touch(sync_session: Any) -> Any:
        return found[0].children  # blocking code would load it, but raiseload says no

    with pytest.raises(UnloadedAttributeError, match="raiseload"):
        await session.run_sync(touch)


async def test_raiseload_wildcard(session: AsyncSession) -> None:
    found = await parents(session, selectinload(Parent.children), raiseload("*"))
    child = found[0].children[0]
    with pytest.raises(UnloadedAttributeError, match="raiseload"):
        _ = child.toys


async def test_lazyload_leaves_it_for_an_explicit_load(
    session: AsyncSession, statements: list[str]
) -> None:
    stmt = select(Node).where(Node.id == 1).options(lazyload(Node.children))
    root = (await session.execute(stmt)).scalar_one()
    assert len(statements) == 1  # Node.children defaults to selectin; the option wins
    assert not loaded(root, "children")
    with pytest.raises(UnloadedAttributeError, match=r"Node\.children is not loaded"):
        _ = root.children
    assert names(await root.awaitable_attrs.children) == ["a", "b"]

    def touch(sync_session: Any) -> Any:
        return names(sync_session.get(Node, 1).children)

    assert await session.run_sync(touch) == ["a", "b"]


async def test_noload(session: AsyncSession, statements: list[str]) -> None:
    found = await parents(session, noload(Parent.children))
    assert len(statements) == 1
    assert found[0].children == []
    assert loaded(found[0], "children")
    child = (await session.execute(select(Child).options(noload(Child.parent)))).scalars().first()
    assert child is not None
    assert child.parent is None


async def test_contains_eager(session: AsyncSession, statements: list[str]) -> None:
    stmt = (
        select(Parent)
        .join(Child, Child.parent_id == Parent.id)
        .where(Child.size == 1)
        .options(contains_eager(Parent.children))
        .order_by(Parent.id)
    )
    found = (await session.execute(stmt)).unique().scalars().all()
    assert len(statements) == 1
    # Filled from the rows the statement chose: only the children of size 1.
    assert [names(p.children) for p in found] == [["c01"], ["c11"], ["c21"]]


async def test_defaultload_step(session: AsyncSession, statements: list[str]) -> None:
    stmt = (
        select(Node)
        .where(Node.id == 1)
        .options(defaultload(Node.children).selectinload(Node.children))
    )
    root = (await session.execute(stmt)).scalar_one()
    assert len(statements) == 3
    assert [names(n.children) for n in root.children] == [["aa", "ab"], ["ba"]]


# -- columns ----------------------------------------------------------------------------------


async def test_load_only_defer_undefer(session: AsyncSession, statements: list[str]) -> None:
    stmt = select(Child).where(Child.id == 1).options(load_only(Child.name))
    child = (await session.execute(stmt)).scalar_one()
    assert (child.id, child.name) == (1, "c00")
    assert not loaded(child, "size")
    assert not loaded(child, "parent_id")
    with pytest.raises(UnloadedAttributeError, match=r"Child\.size"):
        _ = child.size
    session.expunge_all()
    child = (await session.execute(select(Child).options(defer(Child.size)))).scalars().first()
    assert child is not None
    assert not loaded(child, "size")
    assert loaded(child, "name")
    session.expunge_all()
    parent = (
        (await session.execute(select(Parent).options(undefer(Parent.notes)))).scalars().first()
    )
    assert parent is not None
    assert parent.notes == "notes 0"
    assert "notes" in statements[-1]


async def test_column_options_down_a_chain(session: AsyncSession, statements: list[str]) -> None:
    found = await parents(session, selectinload(Parent.children).load_only(Child.name))
    child = found[0].children[0]
    assert child.name == "c00"
    assert not loaded(child, "size")
    assert "children.size" not in statements[1]
    session.expunge_all()
    found = await parents(session, joinedload(Parent.children).defer(Child.size))
    assert found[0].children[0].name == "c00"
    assert not loaded(found[0].children[0], "size")


async def test_load_only_keeps_the_keys_a_selectin_load_needs(session: AsyncSession) -> None:
    stmt = select(Child).options(load_only(Child.name), selectinload(Child.parent))
    children = (await session.execute(stmt.order_by(Child.id))).scalars().all()
    assert children[0].parent is not None
    assert children[0].parent.name == "p0"


# -- relationship defaults ---------------------------------------------------------------------


async def test_lazy_defaults_apply_to_queries(session: AsyncSession, statements: list[str]) -> None:
    shelf = (await session.execute(select(Shelf))).unique().scalar_one()
    # joined: in the query; selectin and subquery: one IN query each.
    assert len(statements) == 3
    assert [b.title for b in shelf.by_joined] == ["book 1", "book 2", "book 3"]
    assert [b.id for b in shelf.by_selectin] == [1, 2, 3]
    assert sorted(b.id for b in shelf.by_subquery) == [1, 2, 3]
    assert shelf.by_noload == []
    with pytest.raises(UnloadedAttributeError, match="lazy='raise'"):
        _ = shelf.by_raise
    assert shelf.by_selectin[0] is shelf.by_joined[0]


async def test_options_override_defaults(session: AsyncSession, statements: list[str]) -> None:
    stmt = select(Shelf).options(
        lazyload(Shelf.by_joined),
        noload(Shelf.by_selectin),
        raiseload(Shelf.by_subquery),
        selectinload(Shelf.by_raise),
        selectinload(Shelf.by_noload),
    )
    shelf = (await session.execute(stmt)).scalar_one()
    assert len(statements) == 3
    assert not loaded(shelf, "by_joined")
    assert shelf.by_selectin == []
    assert [b.id for b in shelf.by_raise] == [b.id for b in shelf.by_noload] == [1, 2, 3]


async def test_lazy_defaults_apply_to_get_and_refresh(
    session: AsyncSession, statements: list[str]
) -> None:
    shelf = await session.get(Shelf, 1)
    assert shelf is not None
    assert len(statements) == 3
    assert len(shelf.by_joined) == 3
    assert len(shelf.by_selectin) == 3
    books = list(shelf.by_selectin)
    await session.execute(text("UPDATE books SET title = 'new' WHERE id = 1"))
    await session.execute(text("INSERT INTO books (id, shelf_id, title) VALUES (4, 1, 'b4')"))
    statements.clear()
    await session.refresh(shelf)
    # The relationships are reloaded; their members keep their loaded columns.
    assert [b.id for b in shelf.by_selectin] == [b.id for b in shelf.by_joined] == [1, 2, 3, 4]
    assert shelf.by_selectin[0] is books[0]
    assert books[0].title == "book 1"
    assert not loaded(shelf, "by_raise")


async def test_get_with_options(session: AsyncSession, statements: list[str]) -> None:
    parent = await session.get(
        Parent, 1, options=[joinedload(Parent.children).selectinload(Child.toys)]
    )
    assert parent is not None
    assert len(statements) == 2
    assert [len(c.toys) for c in parent.children] == [2, 2]
    assert await session.get(Parent, 1, options=[selectinload(Parent.children)]) is parent
    assert len(statements) == 2  # an identity-map hit: no SQL, options or not


async def test_self_referential_default_loads_one_level(
    session: AsyncSession, statements: list[str]
) -> None:
    root = (await session.execute(select(Node).where(Node.id == 1))).scalar_one()
    assert len(statements) == 2
    assert names(root.children) == ["a", "b"]
    assert not loaded(root.children[0], "children")


# -- the identity map --------------------------------------------------------------------------


async def test_eager_loads_keep_what_is_loaded(session: AsyncSession) -> None:
    found = await parents(session, selectinload(Parent.children))
    first = found[0]
    kept = first.children
    await session.execute(
        text("INSERT INTO children (id, parent_id, name, size) VALUES (90, 1, 'new', 0)")
    )
    for option in (selectinload(Parent.children), joinedload(Parent.children)):
        again = await parents(session, option)
        assert again[0] is first
        assert first.children is kept
        assert names(first.children) == ["c00", "c01"]
    # populate_existing overwrites what was loaded ...
    stmt = (
        select(Parent)
        .where(Parent.id == 1)
        .options(selectinload(Parent.children))
        .execution_options(populate_existing=True)
    )
    await session.execute(stmt)
    assert names(first.children) == ["c00", "c01", "new"]


async def test_pending_changes_survive_eager_loads(session: AsyncSession) -> None:
    found = await parents(session, selectinload(Parent.children))
    first = found[0]
    first.children.append(Child(name="pending"))
    first.children[0].name = "renamed"
    with session.no_autoflush:
        for option in (selectinload(Parent.children), joinedload(Parent.children)):
            stmt = select(Parent).where(Parent.id <= 3).options(option)
            again = (await session.execute(stmt)).unique().scalars().all()
            assert first in again
            assert names(first.children) == ["renamed", "c01", "pending"]
    # populate_existing overwrites loaded columns (as SQLAlchemy), but an unflushed change
    # to a relationship survives it, and still flushes.
    stmt = (
        select(Parent)
        .where(Parent.id == 1)
        .options(joinedload(Parent.children))
        .execution_options(populate_existing=True)
    )
    with session.no_autoflush:
        (await session.execute(stmt)).unique().scalar_one()
    assert names(first.children) == ["c00", "c01", "pending"]
    await session.flush()
    stmt = select(Child.name).where(Child.parent_id == 1).order_by(Child.id)
    assert (await session.execute(stmt)).scalars().all() == ["c00", "c01", "pending"]


# -- explicit loads and streams -----------------------------------------------------------------


async def test_load_relationship_with_a_chain(session: AsyncSession, statements: list[str]) -> None:
    found = await parents(session)
    statements.clear()
    await session.load_relationship(found, selectinload(Parent.children).selectinload(Child.toys))
    assert len(statements) == 2
    assert [len(c.toys) for p in found for c in p.children] == [2] * 6
    with pytest.raises(ArgumentError, match="load_relationship"):
        await session.load_relationship(found, load_only(Parent.name))


async def test_stream_applies_selectin_per_chunk(
    session: AsyncSession, statements: list[str]
) -> None:
    stmt = select(Parent).options(selectinload(Parent.children)).order_by(Parent.id)
    result = await session.stream(stmt.execution_options(yield_per=2))
    seen = []
    async for parent in result.scalars():
        seen.append(len(parent.children))
    assert seen == [2, 2, 2, 0]
    assert len(statements) == 1 + 2  # one IN query per chunk of two parents


async def test_stream_refuses_joined_collections(session: AsyncSession) -> None:
    stmt = select(Parent).options(joinedload(Parent.children))
    with pytest.raises(InvalidRequestError, match="Can't stream"):
        await session.stream(stmt)


async def test_inspect_reports_loaded_relationships(session: AsyncSession) -> None:
    found = await parents(session, selectinload(Parent.children))
    assert "children" not in inspect(found[0]).unloaded


# -- every strategy on every kind of relationship ------------------------------------------------

KINDS = {
    # kind: (statement, attribute, what each loaded object holds)
    "one-to-many": (
        lambda: select(Parent).where(Parent.id <= 3).order_by(Parent.id),
        lambda: Parent.children,
        [["c00", "c01"], ["c10", "c11"], ["c20", "c21"]],
    ),
    "many-to-one": (
        lambda: select(Child).where(Child.id <= 3).order_by(Child.id),
        lambda: Child.parent,
        ["p0", "p0", "p1"],
    ),
    "many-to-many": (
        lambda: select(Post).order_by(Post.id),
        lambda: Post.tags,
        [["tag0", "tag1"], ["tag1", "tag2"], []],
    ),
    "self-referential": (
        lambda: select(Node).where(Node.id <= 3).order_by(Node.id),
        lambda: Node.children,
        [["a", "b"], ["aa", "ab"], ["ba"]],
    ),
}
EAGER = {
    "selectinload": (selectinload, 2),
    "subqueryload": (subqueryload, 2),
    "joinedload": (joinedload, 1),
}


def held(value: Any) -> Any:
    if isinstance(value, list):
        return names(value)
    return None if value is None else value.name


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("strategy", list(EAGER))
async def test_eager_strategy_matrix(
    session: AsyncSession, statements: list[str], kind: str, strategy: str
) -> None:
    make_statement, attribute, expected = KINDS[kind]
    option, count = EAGER[strategy]
    attr = attribute()
    stmt = make_statement().options(option(attr))
    if kind == "self-referential":
        stmt = stmt.options(lazyload(Node.parent))  # the tree's own default is selectin
    objects = (await session.execute(stmt)).unique().scalars().all()
    # (Node.children defaults to selectin, but a default never re-enters the path.)
    assert len(statements) == count
    assert [held(getattr(o, attr.key)) for o in objects] == expected


@pytest.mark.parametrize("kind", list(KINDS))
async def test_not_loading_strategy_matrix(
    session: AsyncSession, statements: list[str], kind: str
) -> None:
    make_statement, attribute, _ = KINDS[kind]
    attr = attribute()
    empty = [] if attr.property.uselist else None
    objects = (await session.execute(make_statement().options(noload(attr)))).scalars().all()
    assert all(getattr(o, attr.key) == empty for o in objects)
    session.expunge_all()
    for option in (lazyload(attr), raiseload(attr)):
        objects = (await session.execute(make_statement().options(option))).scalars().all()
        assert not any(loaded(o, attr.key) for o in objects)
        session.expunge_all()
    assert len(statements) == 3  # never a query for the relationship


async def test_joined_rows_of_a_parent_need_not_be_adjacent(session: AsyncSession) -> None:
    # Children toys joined under children: rows interleave parents in random order.
    stmt = (
        select(Parent)
        .where(Parent.id <= 3)
        .options(joinedload(Parent.children).joinedload(Child.toys))
        .order_by(func.random())
    )
    found = (await session.execute(stmt)).unique().scalars().all()
    assert sorted(names(found)) == ["p0", "p1", "p2"]
    for parent in found:
        number = parent.name[1]
        assert sorted(names(parent.children)) == [f"c{number}0", f"c{number}1"]
        assert all(len(child.toys) == 2 for child in parent.children)


async def test_delete_cascade_loads_ignore_eager_and_noload_defaults(
    session: AsyncSession, statements: list[str]
) -> None:
    session.add(Crate(id=1, boxes=[Box(id=1, items=[BoxItem(), BoxItem()]), Box(id=2)]))
    await session.commit()
    session.expunge_all()
    crate = await session.get(Crate, 1, options=[lazyload(Crate.boxes)])
    assert crate is not None
    statements.clear()
    await session.delete(crate)
    assert statements == []  # delete() needs no SQL: the flush loads what it needs
    await session.flush()
    # boxes, then their items (noload by default, but the cascade needs them); the
    # boxes' selectin labels are not loaded for a delete.
    assert [s.split()[0] for s in statements].count("SELECT") == 2
    await session.commit()
    for table in ("crates", "boxes", "box_items"):
        count = (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
        assert count == 0


async def test_for_update_with_joined_loads_locks_the_entities_rows(
    session: AsyncSession, statements: list[str]
) -> None:
    stmt = select(Parent).where(Parent.id == 1).options(joinedload(Parent.children))
    parent = (await session.execute(stmt.with_for_update())).unique().scalar_one()
    assert names(parent.children) == ["c00", "c01"]
    shelf = await session.get(Shelf, 1, with_for_update=True)  # lazy="joined" by default
    assert shelf is not None
    assert len(shelf.by_joined) == 3
    assert statements[0].endswith("FOR UPDATE OF parents")
