"""Relationships: configuration, in-memory behaviour, and flushes on both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from asyncsession import (
    AsyncAttrs,
    AsyncSession,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    String,
    Table,
    UnloadedAttributeError,
    WriteOnlyMapped,
    attribute_keyed_dict,
    exc,
    inspect,
    relationship,
    select,
    text,
)
from asyncsession.engine import AsyncEngine, create_async_engine
from asyncsession.engine.events import listen
from asyncsession.orm.decl import DeclarativeBase, Mapped, mapped_column
from asyncsession.orm.relationships import MANYTOMANY, MANYTOONE, ONETOMANY


class Base(AsyncAttrs, DeclarativeBase):
    pass


class Parent(Base):
    __tablename__ = "parents"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(30))
    children: Mapped[list[Child]] = relationship(
        back_populates="parent", cascade="all, delete-orphan", order_by="Child.id"
    )
    tags: Mapped[set[Tag]] = relationship(secondary="parent_tags", back_populates="parents")
    profile: Mapped[Profile | None] = relationship(back_populates="parent")


class Child(Base):
    __tablename__ = "children"
    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("parents.id"))
    name: Mapped[str] = mapped_column(String(30))
    parent: Mapped[Parent | None] = relationship(back_populates="children")


parent_tags = Table(
    "parent_tags",
    Base.metadata,
    Column("parent_id", Integer, ForeignKey("parents.id"), primary_key=True),
    Column("tag_id", Integer, ForeignKey("tags.id"), primary_key=True),
)


class Tag(Base):
    __tablename__ = "tags"
    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(30))
    parents: Mapped[list[Parent]] = relationship(secondary=parent_tags, back_populates="tags")


class Profile(Base):
    __tablename__ = "profiles"
    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("parents.id"))
    bio: Mapped[str] = mapped_column(String(30), default="")
    parent: Mapped[Parent | None] = relationship(back_populates="profile")


class Node(Base):
    __tablename__ = "nodes"
    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id"))
    name: Mapped[str] = mapped_column(String(30))
    children: Mapped[list[Node]] = relationship(back_populates="parent", order_by="Node.id")
    parent: Mapped[Node | None] = relationship(back_populates="children", remote_side=[id])


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("parents.id"))
    key: Mapped[str] = mapped_column(String(10))
    body: Mapped[str] = mapped_column(String(30), default="")


class Folder(Base):
    __tablename__ = "folders"
    id: Mapped[int] = mapped_column(primary_key=True)
    notes: Mapped[dict[str, Item]] = relationship(
        collection_class=attribute_keyed_dict("key"), cascade="all, delete-orphan"
    )
    log: WriteOnlyMapped[Entry] = relationship(cascade="all")


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    folder_id: Mapped[int | None] = mapped_column(ForeignKey("folders.id"))
    key: Mapped[str] = mapped_column(String(10))


class Entry(Base):
    __tablename__ = "entries"
    id: Mapped[int] = mapped_column(primary_key=True)
    folder_id: Mapped[int | None] = mapped_column(ForeignKey("folders.id"))
    text: Mapped[str] = mapped_column(String(30))


# -- configuration ---------------------------------------------------------------------------


def test_directions_and_pairs() -> None:
    children = inspect(Parent).relationships["children"]
    assert children.direction is ONETOMANY
    assert [(r.name, f.name) for r, f in children.pairs] == [("id", "parent_id")]
    assert inspect(Child).relationships["parent"].direction is MANYTOONE
    assert inspect(Parent).relationships["tags"].direction is MANYTOMANY
    assert inspect(Node).relationships["parent"].direction is MANYTOONE
    assert inspect(Node).relationships["children"].direction is ONETOMANY
    assert inspect(Parent).relationships["profile"].uselist is False
    assert children.back is inspect(Child).relationships["parent"]


def _fresh_base() -> Any:
    class B(DeclarativeBase):
        pass

    return B


def test_no_foreign_key_names_both_classes() -> None:
    B = _fresh_base()

    class X(B):
        __tablename__ = "x"
        id: Mapped[int] = mapped_column(primary_key=True)
        ys: Mapped[list[Y]] = relationship()

    class Y(B):
        __tablename__ = "y"
        id: Mapped[int] = mapped_column(primary_key=True)

    with pytest.raises(
        exc.ArgumentError, match=r"X\.ys: no foreign key links the tables of X and Y"
    ):
        inspect(X)
    # It keeps failing (nothing half-configured) until fixed.
    with pytest.raises(exc.ArgumentError, match="no foreign key"):
        X().ys  # noqa: B018


def test_several_paths_need_foreign_keys() -> None:
    B = _fresh_base()

    class Account(B):
        __tablename__ = "accounts"
        id: Mapped[int] = mapped_column(primary_key=True)

    class Transfer(B):
        __tablename__ = "transfers"
        id: Mapped[int] = mapped_column(primary_key=True)
        src_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
        dst_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
        src: Mapped[Account] = relationship()

    with pytest.raises(exc.ArgumentError, match=r"Transfer\.src: several foreign key paths"):
        inspect(Transfer)

    B2 = _fresh_base()

    class Account2(B2):
        __tablename__ = "accounts"
        id: Mapped[int] = mapped_column(primary_key=True)

    class Transfer2(B2):
        __tablename__ = "transfers"
        id: Mapped[int] = mapped_column(primary_key=True)
        src_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
        dst_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
        src: Mapped[Account2] = relationship(foreign_keys=[src_id])
        dst: Mapped[Account2] = relationship(foreign_keys="Transfer2.dst_id")

    assert [f.name for _, f in inspect(Transfer2).relationships["src"].pairs] == ["src_id"]
    assert [f.name for _, f in inspect(Transfer2).relationships["dst"].pairs] == ["dst_id"]


def test_back_populates_errors() -> None:
    B = _fresh_base()

    class P(B):
        __tablename__ = "p"
        id: Mapped[int] = mapped_column(primary_key=True)
        cs: Mapped[list[C]] = relationship(back_populates="nope")

    class C(B):
        __tablename__ = "c"
        id: Mapped[int] = mapped_column(primary_key=True)
        p_id: Mapped[int] = mapped_column(ForeignKey("p.id"))

    with pytest.raises(
        exc.ArgumentError, match=r"P\.cs: back_populates='nope' names no relationship of C"
    ):
        inspect(P)

    B2 = _fresh_base()

    class Q(B2):
        __tablename__ = "q"
        id: Mapped[int] = mapped_column(primary_key=True)
        rs: Mapped[list[R]] = relationship(back_populates="other")

    class R(B2):
        __tablename__ = "r"
        id: Mapped[int] = mapped_column(primary_key=True)
        q_id: Mapped[int] = mapped_column(ForeignKey("q.id"))
        other: Mapped[list[R]] = relationship(
            primaryjoin=lambda: R.id == R.q_id, foreign_keys=lambda: [R.q_id]
        )

    with pytest.raises(exc.ArgumentError, match=r"Q\.rs: back_populates='other' names R\.other"):
        inspect(Q)


def test_unknown_target_and_cascade() -> None:
    B = _fresh_base()

    class P(B):
        __tablename__ = "p"
        id: Mapped[int] = mapped_column(primary_key=True)
        cs: Mapped[list[Missing]] = relationship()  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(exc.ArgumentError, match=r"P\.cs: relationship\(\) names class 'Missing'"):
        inspect(P)

    B2 = _fresh_base()

    class P2(B2):
        __tablename__ = "p"
        id: Mapped[int] = mapped_column(primary_key=True)
        cs: Mapped[list[C2]] = relationship(cascade="all, explode")

    class C2(B2):
        __tablename__ = "c"
        id: Mapped[int] = mapped_column(primary_key=True)
        p_id: Mapped[int] = mapped_column(ForeignKey("p.id"))

    with pytest.raises(exc.ArgumentError, match=r"P2\.cs: unknown cascade 'explode'"):
        inspect(P2)


def test_backref_creates_the_other_side() -> None:
    B = _fresh_base()

    class P(B):
        __tablename__ = "p"
        id: Mapped[int] = mapped_column(primary_key=True)
        cs: Mapped[list[C]] = relationship(backref="p")

    class C(B):
        __tablename__ = "c"
        id: Mapped[int] = mapped_column(primary_key=True)
        p_id: Mapped[int | None] = mapped_column(ForeignKey("p.id"))

    p = P()
    c = C()
    p.cs.append(c)
    assert c.p is p  # type: ignore[attr-defined]
    assert inspect(C).relationships["p"].direction is MANYTOONE


def test_composite_foreign_key_pairs() -> None:
    B = _fresh_base()

    class Order(B):
        __tablename__ = "orders"
        region: Mapped[str] = mapped_column(String(5), primary_key=True)
        number: Mapped[int] = mapped_column(primary_key=True)
        lines: Mapped[list[Line]] = relationship(back_populates="order")

    class Line(B):
        __tablename__ = "lines"
        __table_args__ = (
            ForeignKeyConstraint(["region", "number"], ["orders.region", "orders.number"]),
        )
        id: Mapped[int] = mapped_column(primary_key=True)
        region: Mapped[str] = mapped_column(String(5))
        number: Mapped[int]
        order: Mapped[Order] = relationship(back_populates="lines")

    prop = inspect(Order).relationships["lines"]
    assert prop.local_keys == ("region", "number")
    assert prop.remote_keys == ("region", "number")


# -- in memory ---------------------------------------------------------------------------


def test_both_sides_stay_in_step_without_io() -> None:
    p1, p2 = Parent(name="p1"), Parent(name="p2")
    c = Child(name="c")
    p1.children.append(c)
    assert c.parent is p1
    c.parent = p2
    assert p1.children == []
    assert p2.children == [c]
    p2.children.remove(c)
    assert c.parent is None
    t = Tag(label="t")
    p1.tags.add(t)
    assert t.parents == [p1]
    t.parents.remove(p1)
    assert p1.tags == set()
    prof = Profile()
    p1.profile = prof
    assert prof.parent is p1
    p2.profile = prof
    assert p1.profile is None
    assert prof.parent is p2


def test_history_of_collections() -> None:
    p = Parent(name="p")
    a, b = Child(name="a"), Child(name="b")
    p.children = [a]
    p.children.append(b)
    history = inspect(p).attrs.children.history
    assert history.added == (a, b)
    assert history.deleted == ()


def test_wrong_type_fails_before_any_change() -> None:
    p = Parent(name="p")
    good = Child(name="ok")
    with pytest.raises(exc.ArgumentError, match=r"Can't add Tag object .* to Parent\.children"):
        p.children.extend([good, Tag(label="x")])
    assert p.children == []
    assert good.parent is None
    with pytest.raises(exc.ArgumentError, match=r"Can't set Child\.parent to a Tag"):
        good.parent = Tag(label="x")  # type: ignore[assignment]


def test_keyed_dict_collection() -> None:
    f = Folder()
    f.notes["a"] = Item(key="a")
    f.notes.set(Item(key="b"))  # type: ignore[attr-defined]
    assert sorted(f.notes) == ["a", "b"]
    with pytest.raises(exc.ArgumentError, match="does not match"):
        f.notes["z"] = Item(key="y")


# -- flushes on both backends ----------------------------------------------------------------


@pytest.fixture
async def engine(db_url: str, connect_args: dict[str, Any]) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(db_url, connect_args=connect_args)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def statements(engine: AsyncEngine) -> list[str]:
    seen: list[str] = []

    def record(conn: Any, stmt: Any, params: Any, options: Any) -> None:
        seen.append(str(stmt).split()[0].upper())

    listen(engine, "before_execute", record)
    return seen


async def table(session: AsyncSession, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in (await session.execute(text(sql))).all()]


@pytest.mark.anyio
async def test_one_to_many_round_trip(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as s:
        p = Parent(name="p", children=[Child(name="a"), Child(name="b")])
        s.add(p)
        await s.commit()
        assert [c.parent_id for c in p.children] == [p.id, p.id]
    async with AsyncSession(engine) as s:
        p2 = await s.get_one(Parent, p.id)
        with pytest.raises(UnloadedAttributeError, match=r"Parent\.children is not loaded"):
            p2.children  # noqa: B018
        children = await p2.awaitable_attrs.children
        assert [c.name for c in children] == ["a", "b"]
        assert all(c.parent is p2 for c in children)  # the reverse side comes loaded


@pytest.mark.anyio
async def test_many_to_one_from_identity_map_needs_no_sql(
    engine: AsyncEngine, statements: list[str]
) -> None:
    async with AsyncSession(engine) as s:
        s.add(Child(name="c", parent=Parent(name="p")))
        await s.commit()
    async with AsyncSession(engine) as s:
        p = (await s.scalars(select(Parent))).one()
        c = (await s.scalars(select(Child))).one()
        before = len(statements)
        assert c.parent is p
        assert len(statements) == before


@pytest.mark.anyio
async def test_moving_and_removing_children(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as s:
        p1 = Parent(name="p1", children=[Child(name="a"), Child(name="b")])
        p2 = Parent(name="p2")
        s.add_all([p1, p2])
        await s.flush()
        a, b = p1.children
        a.parent = p2  # move
        p1.children.remove(b)  # orphan: deleted (delete-orphan)
        await s.commit()
        rows = await table(s, "SELECT name, parent_id FROM children ORDER BY name")
        assert rows == [("a", p2.id)]
        assert inspect(b).was_deleted


@pytest.mark.anyio
async def test_delete_cascade_loads_children_in_one_query(
    engine: AsyncEngine, statements: list[str]
) -> None:
    async with AsyncSession(engine) as s:
        s.add_all(
            [
                Parent(name=f"p{i}", children=[Child(name=f"c{i}{j}") for j in range(3)])
                for i in range(4)
            ]
        )
        await s.commit()
    async with AsyncSession(engine) as s:
        parents = (await s.scalars(select(Parent))).all()
        statements.clear()
        for p in parents:
            await s.delete(p)
        assert statements == []  # delete() needs no SQL: the flush loads what it needs
        await s.flush()
        # One IN query per relationship of Parent (children, tags, profile), not one per
        # parent; then one DELETE per table.
        assert statements == ["SELECT", "SELECT", "SELECT", "DELETE", "DELETE"]
        await s.commit()
        assert await table(s, "SELECT count(*) FROM children") == [(0,)]


@pytest.mark.anyio
async def test_load_relationship_batches_many_parents(
    engine: AsyncEngine, statements: list[str]
) -> None:
    async with AsyncSession(engine) as s:
        s.add_all(
            [
                Parent(name=f"p{i}", children=[Child(name=f"c{i}{j}") for j in range(2)])
                for i in range(5)
            ]
        )
        await s.commit()
    async with AsyncSession(engine) as s:
        parents = (await s.scalars(select(Parent).order_by(Parent.id))).all()
        statements.clear()
        await s.load_relationship(parents, Parent.children)
        assert statements == ["SELECT"]
        assert [[c.name for c in p.children] for p in parents] == [
            [f"c{i}0", f"c{i}1"] for i in range(5)
        ]
        with pytest.raises(exc.ArgumentError, match="relationship attribute"):
            await s.load_relationship(parents, Parent.name)


@pytest.mark.anyio
async def test_deleting_parent_without_cascade_nulls_children(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as s:
        p = Parent(name="p")
        prof = Profile(bio="x", parent=p)
        s.add(p)
        await s.commit()
        await s.delete(p)
        await s.commit()
        assert await table(s, "SELECT bio, parent_id FROM profiles") == [("x", None)]
        assert prof.parent_id is None


@pytest.mark.anyio
async def test_many_to_many_rows(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as s:
        t1, t2 = Tag(label="t1"), Tag(label="t2")
        p = Parent(name="p", tags={t1, t2})
        q = Parent(name="q")
        t1.parents.append(q)  # the other side: one row, not two
        s.add_all([p, q])
        await s.commit()
        links = await table(s, "SELECT parent_id, tag_id FROM parent_tags ORDER BY 1, 2")
        assert links == sorted([(p.id, t1.id), (p.id, t2.id), (q.id, t1.id)])
        p.tags.discard(t1)
        await s.commit()
        links = await table(s, "SELECT parent_id, tag_id FROM parent_tags ORDER BY 1, 2")
        assert links == sorted([(p.id, t2.id), (q.id, t1.id)])
        await s.delete(q)
        await s.commit()
        assert await table(s, "SELECT parent_id, tag_id FROM parent_tags") == [(p.id, t2.id)]


@pytest.mark.anyio
async def test_tree_inserts_parent_first(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as s:
        root = Node(name="root")
        mid = Node(name="mid", parent=root)
        Node(name="leaf", parent=mid)
        # Added leaf-first: the planner still inserts parents first.
        s.add(root)
        await s.commit()
        rows = await table(
            s,
            "SELECT n.name, p.name FROM nodes n LEFT JOIN nodes p ON n.parent_id = p.id "
            "ORDER BY n.id",
        )
        assert sorted(rows, key=lambda r: r[0]) == [
            ("leaf", "mid"),
            ("mid", "root"),
            ("root", None),
        ]
        assert await s.refresh(root, ["children"]) is None
        assert [n.name for n in root.children] == ["mid"]


@pytest.mark.anyio
async def test_keyed_dict_and_write_only_flush(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as s:
        f = Folder()
        f.notes["a"] = Item(key="a")
        s.add(f)
        await s.flush()
        f.log.add(Entry(text="one"))
        f.log.add_all([Entry(text="two"), Entry(text="three")])
        await s.commit()
        texts = (await s.scalars(f.log.select().order_by(Entry.id))).all()
        assert [e.text for e in texts] == ["one", "two", "three"]
        f.log.remove(texts[0])
        await s.commit()
        assert await table(s, "SELECT text, folder_id FROM entries ORDER BY id") == [
            ("one", None),
            ("two", f.id),
            ("three", f.id),
        ]
        with pytest.raises(TypeError, match="write-only"):
            list(f.log)


@pytest.mark.anyio
async def test_rollback_restores_collections_to_unloaded(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as s:
        p = Parent(name="p")
        s.add(p)
        await s.commit()
        await s.refresh(p, ["children"])
        p.children.append(Child(name="new"))
        await s.flush()
        await s.rollback()
        with pytest.raises(UnloadedAttributeError):
            p.children  # noqa: B018
        assert await p.awaitable_attrs.children == []


@pytest.mark.anyio
async def test_transient_target_without_cascade_is_an_error(engine: AsyncEngine) -> None:
    B = _fresh_base()

    class P(B):
        __tablename__ = "p_nocascade"
        id: Mapped[int] = mapped_column(primary_key=True)
        cs: Mapped[list[C]] = relationship(cascade="")

    class C(B):
        __tablename__ = "c_nocascade"
        id: Mapped[int] = mapped_column(primary_key=True)
        p_id: Mapped[int | None] = mapped_column(ForeignKey("p_nocascade.id"))

    async with engine.begin() as conn:
        await conn.run_sync(B.metadata.create_all)
    async with AsyncSession(engine) as s:
        s.add(P(cs=[C()]))
        with pytest.raises(exc.InvalidRequestError, match=r"P\.cs: it holds a transient C"):
            await s.flush()
        await s.rollback()
        assert await table(s, "SELECT count(*) FROM p_nocascade") == [(0,)]


@pytest.mark.anyio
async def test_merge_cascades_along_loaded_relationships(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as s:
        p = Parent(name="p", children=[Child(name="a")])
        s.add(p)
        await s.commit()
        pid, aid = p.id, p.children[0].id
    # A detached copy, as it might come back from a cache or another process.
    copy = Parent(id=pid, name="renamed", children=[Child(id=aid, name="a2"), Child(name="new")])
    async with AsyncSession(engine) as s:
        merged = await s.merge(copy)
        assert merged is not copy
        assert merged.name == "renamed"
        assert [c.name for c in merged.children] == ["a2", "new"]
        assert all(
            c is not original for c, original in zip(merged.children, copy.children, strict=True)
        )
        await s.commit()
        rows = await table(s, "SELECT name, parent_id FROM children ORDER BY name")
        assert rows == [("a2", pid), ("new", pid)]


@pytest.mark.anyio
async def test_expunge_and_expire_cascade(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as s:
        p = Parent(name="p", children=[Child(name="a")])
        s.add(p)
        await s.commit()
        child = p.children[0]
        s.expire(p)
        with pytest.raises(UnloadedAttributeError):
            child.name  # noqa: B018  refresh-expire cascaded (cascade="all")
        await s.refresh(child)
        await s.refresh(p, ["children"])
        s.expunge(p)
        assert inspect(child).detached


def test_lazy_raise_refuses_even_identity_map_hits() -> None:
    B = _fresh_base()

    class P(B):
        __tablename__ = "p"
        id: Mapped[int] = mapped_column(primary_key=True)

    class C(B):
        __tablename__ = "c"
        id: Mapped[int] = mapped_column(primary_key=True)
        p_id: Mapped[int | None] = mapped_column(ForeignKey("p.id"))
        p: Mapped[P | None] = relationship(lazy="raise")

    from asyncsession.orm.state import instance_state

    c = C(id=1, p_id=5)
    instance_state(c).key = (C, (1,), None)  # as if loaded
    with pytest.raises(UnloadedAttributeError, match=r"C\.p is not loaded \(it is lazy='raise'\)"):
        c.p  # noqa: B018


def test_keyed_dict_refuses_a_member_without_its_key() -> None:
    f = Folder()
    with pytest.raises(exc.ArgumentError, match=r"Can't key Item object .* by 'key'"):
        f.notes.set(Item())  # type: ignore[attr-defined]
    assert dict(f.notes) == {}


def test_a_constructor_may_set_a_backref_declared_on_the_other_class() -> None:
    B = _fresh_base()

    class Owner(B):
        __tablename__ = "owners"
        id: Mapped[int] = mapped_column(primary_key=True)
        pets: Mapped[list[Pet]] = relationship(backref="owner")

    class Pet(B):
        __tablename__ = "pets"
        id: Mapped[int] = mapped_column(primary_key=True)
        owner_id: Mapped[int | None] = mapped_column(ForeignKey("owners.id"))

    owner = Owner()
    pet = Pet(owner=owner)  # Pet.owner exists once the registry is configured
    assert owner.pets == [pet]
    with pytest.raises(TypeError, match="'nope' is an invalid keyword argument for Pet"):
        Pet(nope=1)


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["load_relationship", "awaitable_attrs", "delete_cascade"])
async def test_cancelling_a_relationship_load_leaks_nothing(engine: AsyncEngine, how: str) -> None:
    async with AsyncSession(engine) as s:
        s.add_all([Parent(name=f"p{i}", children=[Child(name=f"c{i}")]) for i in range(3)])
        await s.commit()
    session = AsyncSession(engine)
    parents = (await session.scalars(select(Parent).order_by(Parent.id))).all()
    armed: list[anyio.CancelScope] = []

    def strike(conn: Any, stmt: Any, params: Any, options: Any) -> None:
        # The relationship's SELECT is about to go out: cancel the operation there.
        if armed and str(stmt).startswith("SELECT children"):
            armed.pop().cancel()

    listen(engine, "before_execute", strike)
    with anyio.CancelScope() as scope:
        armed.append(scope)
        if how == "load_relationship":
            await session.load_relationship(parents, Parent.children)
        elif how == "awaitable_attrs":
            await parents[0].awaitable_attrs.children
        else:
            await session.delete(parents[0])
            await session.flush()  # loads the children for the cascade
    assert scope.cancelled_caught
    assert all("children" not in p.__dict__ for p in parents)  # nothing half-loaded
    await session.rollback()
    assert engine.pool.checkedout() == 0
    # The session works again, and nothing was deleted.
    children = await session.scalars(select(Child))
    assert len(children.all()) == 3
    await session.load_relationship(parents, Parent.children)
    assert [len(p.children) for p in parents] == [1, 1, 1]
    await session.close()
    assert engine.pool.checkedout() == 0
