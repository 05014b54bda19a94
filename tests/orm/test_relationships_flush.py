"""Relationship flushes on SQLite and PostgreSQL: what the stateful test does not reach.

Trees inserted in one flush, mutually dependent rows with ``post_update``,
association objects, one-to-one, composite foreign keys, ``passive_deletes``,
the statements a delete cascade costs, cancellation inside a relationship
flush, and bad input refused before any SQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from asyncsession import (
    AsyncSession,
    CircularDependencyError,
    ForeignKey,
    ForeignKeyConstraint,
    String,
    func,
    inspect,
    select,
)
from asyncsession.engine import AsyncConnection, AsyncEngine, create_async_engine
from asyncsession.engine.events import listen
from asyncsession.exc import ArgumentError, InvalidRequestError
from asyncsession.orm.decl import DeclarativeBase, Mapped, mapped_column
from asyncsession.orm.relationships import relationship

pytestmark = pytest.mark.anyio


class Base(DeclarativeBase):
    pass


class TreeNode(Base):
    """An adjacency list with generated keys."""

    __tablename__ = "tree_nodes"
    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("tree_nodes.id"))
    name: Mapped[str] = mapped_column(String(30))
    parent: Mapped[TreeNode | None] = relationship(back_populates="children", remote_side=[id])
    children: Mapped[list[TreeNode]] = relationship(
        back_populates="parent", cascade="all, delete-orphan"
    )


class Widget(Base):
    """Mutually dependent with Entry: entries belong to a widget, which has a favorite."""

    __tablename__ = "widgets"
    id: Mapped[int] = mapped_column(primary_key=True)
    favorite_entry_id: Mapped[int | None] = mapped_column(
        ForeignKey("entries.id", name="fk_favorite", use_alter=True)
    )
    name: Mapped[str] = mapped_column(String(30))
    entries: Mapped[list[Entry]] = relationship(
        primaryjoin=lambda: Widget.id == Entry.widget_id,
        foreign_keys=lambda: [Entry.widget_id],
        back_populates="widget",
        cascade="all, delete-orphan",
    )
    favorite: Mapped[Entry | None] = relationship(
        primaryjoin=lambda: Widget.favorite_entry_id == Entry.id,
        foreign_keys=lambda: [Widget.favorite_entry_id],
        post_update=True,
    )


class Entry(Base):
    __tablename__ = "entries"
    id: Mapped[int] = mapped_column(primary_key=True)
    widget_id: Mapped[int | None] = mapped_column(ForeignKey("widgets.id"))
    name: Mapped[str] = mapped_column(String(30))
    widget: Mapped[Widget | None] = relationship(
        primaryjoin=lambda: Widget.id == Entry.widget_id,
        foreign_keys=lambda: [Entry.widget_id],
        back_populates="entries",
    )


class Student(Base):
    __tablename__ = "students"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(30))
    enrollments: Mapped[list[Enrollment]] = relationship(
        back_populates="student", cascade="all, delete-orphan"
    )


class Course(Base):
    __tablename__ = "courses"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(30))
    enrollments: Mapped[list[Enrollment]] = relationship(back_populates="course")


class Enrollment(Base):
    """An association object: the link table mapped, with a column of its own."""

    __tablename__ = "enrollments"
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"), primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"), primary_key=True)
    grade: Mapped[str | None] = mapped_column(String(2))
    student: Mapped[Student] = relationship(back_populates="enrollments")
    course: Mapped[Course] = relationship(back_populates="enrollments")


class Person(Base):
    __tablename__ = "people"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(30))
    passport: Mapped[Passport | None] = relationship(
        back_populates="person", uselist=False, cascade="all, delete-orphan"
    )


class Passport(Base):
    __tablename__ = "passports"
    id: Mapped[int] = mapped_column(primary_key=True)
    # No UNIQUE: as in SQLAlchemy, INSERTs go before DELETEs, so replacing the
    # passport of a person in one flush would break a unique person_id.
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    number: Mapped[str] = mapped_column(String(30))
    person: Mapped[Person | None] = relationship(back_populates="passport")


class Region(Base):
    """A composite primary key, referenced by a composite foreign key."""

    __tablename__ = "regions"
    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    code: Mapped[str] = mapped_column(String(5), primary_key=True)
    name: Mapped[str] = mapped_column(String(30))
    offices: Mapped[list[Office]] = relationship(
        back_populates="region", cascade="all, delete-orphan"
    )


class Office(Base):
    __tablename__ = "offices"
    id: Mapped[int] = mapped_column(primary_key=True)
    country: Mapped[str | None] = mapped_column(String(2))
    region_code: Mapped[str | None] = mapped_column(String(5))
    city: Mapped[str] = mapped_column(String(30))
    region: Mapped[Region | None] = relationship(back_populates="offices")
    __table_args__ = (
        ForeignKeyConstraint(["country", "region_code"], ["regions.country", "regions.code"]),
    )


class Album(Base):
    """Children removed by the database: ON DELETE CASCADE with passive_deletes."""

    __tablename__ = "albums"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(30))
    photos: Mapped[list[Photo]] = relationship(
        back_populates="album", cascade="all, delete-orphan", passive_deletes=True
    )


class Photo(Base):
    __tablename__ = "photos"
    id: Mapped[int] = mapped_column(primary_key=True)
    album_id: Mapped[int] = mapped_column(ForeignKey("albums.id", ondelete="CASCADE"))
    caption: Mapped[str] = mapped_column(String(30))
    album: Mapped[Album] = relationship(back_populates="photos")


class Shelf(Base):
    """Two relationships a delete cascades along: one IN query each."""

    __tablename__ = "shelves"
    id: Mapped[int] = mapped_column(primary_key=True)
    books: Mapped[list[Book]] = relationship(cascade="all, delete-orphan")
    labels: Mapped[list[Label]] = relationship(cascade="all, delete-orphan")


class Book(Base):
    __tablename__ = "books"
    id: Mapped[int] = mapped_column(primary_key=True)
    shelf_id: Mapped[int] = mapped_column(ForeignKey("shelves.id"))
    title: Mapped[str] = mapped_column(String(30))
    pages: Mapped[list[Page]] = relationship(cascade="all, delete-orphan")


class Page(Base):
    __tablename__ = "pages"
    id: Mapped[int] = mapped_column(primary_key=True)
    book_id: Mapped[int] = mapped_column(ForeignKey("books.id"))
    number: Mapped[int]


class Label(Base):
    __tablename__ = "labels"
    id: Mapped[int] = mapped_column(primary_key=True)
    shelf_id: Mapped[int] = mapped_column(ForeignKey("shelves.id"))
    text: Mapped[str] = mapped_column(String(30))


class Keeper(Base):
    """Holds Books without save-update cascade."""

    __tablename__ = "keepers"
    id: Mapped[int] = mapped_column(primary_key=True)
    book_id: Mapped[int | None] = mapped_column(ForeignKey("books.id"))
    book: Mapped[Book | None] = relationship(cascade="merge")


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
async def engine(db_url: str, connect_args: dict[str, Any]) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(db_url, connect_args=connect_args)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with AsyncSession(engine) as session:
        yield session


@pytest.fixture
def statements(engine: AsyncEngine) -> list[str]:
    """The first word and table of every statement the engine executes from now on."""
    seen: list[str] = []

    def record(conn: Any, stmt: Any, params: Any, options: Any) -> None:
        seen.append(str(stmt))

    listen(engine, "before_execute", record)
    return seen


def kinds(statements: list[str]) -> list[str]:
    """``["INSERT tree_nodes", "SELECT books", ...]``: verb and first table."""
    out = []
    for sql in statements:
        words = sql.replace("\n", " ").split()
        verb = words[0]
        if verb == "INSERT":
            table = words[2]
        elif verb == "UPDATE":
            table = words[1]
        elif verb == "DELETE":
            table = words[2]
        else:
            table = words[words.index("FROM") + 1]
        out.append(f"{verb} {table}")
    return out


async def count(session: AsyncSession, entity: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(entity)))


# -- trees -----------------------------------------------------------------------------------


def build_tree(depth: int, fanout: int, name: str = "n") -> TreeNode:
    node = TreeNode(name=name)
    if depth > 1:
        node.children = [build_tree(depth - 1, fanout, f"{name}.{i}") for i in range(fanout)]
    return node


async def test_a_deep_tree_is_inserted_parents_first_in_one_flush(
    session: AsyncSession, statements: list[str]
) -> None:
    roots = [build_tree(4, 2, f"r{i}") for i in range(2)]  # 2 x (1 + 2 + 4 + 8) nodes
    session.add_all(roots)
    await session.flush()
    # One multi-row INSERT per level, each after the level its keys come from.
    assert kinds(statements) == ["INSERT tree_nodes"] * 4
    rows = (await session.execute(select(TreeNode.id, TreeNode.parent_id, TreeNode.name))).all()
    by_id = {r.id: r for r in rows}
    assert len(rows) == 30
    for node_id, parent_id, name in rows:
        if parent_id is None:
            assert name in ("r0", "r1")
        else:
            assert name.rpartition(".")[0] == by_id[parent_id].name
            assert parent_id < node_id  # the parent's row went first

    def check(node: TreeNode) -> None:
        # A leaf's collection was never set: unloaded after the flush (it has a row now).
        for child in node.__dict__.get("children", ()):
            assert child.parent_id == node.id
            assert child.parent is node
            check(child)

    for root in roots:
        check(root)
    await session.commit()


async def test_deleting_a_tree_loads_each_level_in_one_query(
    session: AsyncSession, statements: list[str]
) -> None:
    session.add(build_tree(4, 3))
    await session.commit()
    session.expunge_all()
    root = await session.scalar(select(TreeNode).where(TreeNode.parent_id.is_(None)))
    statements.clear()
    await session.delete(root)
    assert statements == []  # delete() needs no SQL: the flush loads what it needs
    await session.flush()
    # Levels 2, 3, 4 loaded (and the leaves' empty collections): one SELECT per level,
    # then the DELETEs, leaves first.
    assert kinds(statements) == ["SELECT tree_nodes"] * 4 + ["DELETE tree_nodes"] * 4
    assert await count(session, TreeNode) == 0
    await session.commit()


# -- mutually dependent rows -------------------------------------------------------------------


async def test_post_update_inserts_and_deletes_a_cycle_in_one_flush(
    session: AsyncSession, statements: list[str]
) -> None:
    widget = Widget(name="w")
    first, second = Entry(name="a"), Entry(name="b")
    widget.entries = [first, second]
    widget.favorite = second
    session.add(widget)
    await session.flush()
    assert kinds(statements) == ["INSERT widgets", "INSERT entries", "UPDATE widgets"]
    assert widget.favorite_entry_id == second.id
    assert first.widget_id == second.widget_id == widget.id
    await session.commit()

    statements.clear()
    await session.delete(widget)  # entries are loaded: no SELECT
    await session.flush()
    assert kinds(statements) == ["UPDATE widgets", "DELETE entries", "DELETE widgets"]
    assert await count(session, Widget) == 0
    assert await count(session, Entry) == 0
    await session.commit()


async def test_a_cycle_without_post_update_raises_naming_the_rows(
    session: AsyncSession, statements: list[str]
) -> None:
    # The same two tables, with the favorite set as a plain column: each row
    # then needs the other's generated key first.
    widget = Widget(name="w", entries=[Entry(id=1, name="a")], favorite_entry_id=1)
    session.add(widget)
    widget.id = 5
    with pytest.raises(CircularDependencyError, match=r"cycle: .*widgets\(id=5\)"):
        await session.flush()
    assert statements == []  # refused while planning
    await session.rollback()


# -- association objects, one-to-one, composite keys -------------------------------------------


async def test_an_association_object_links_both_sides(
    session: AsyncSession, statements: list[str]
) -> None:
    ann, bob = Student(name="ann"), Student(name="bob")
    maths, art = Course(title="maths"), Course(title="art")
    ann.enrollments = [Enrollment(course=maths, grade="A"), Enrollment(course=art)]
    bob.enrollments = [Enrollment(course=maths, grade="B")]
    session.add_all([ann, bob])
    await session.flush()
    assert sorted(kinds(statements)) == ["INSERT courses", "INSERT enrollments", "INSERT students"]
    assert kinds(statements)[-1] == "INSERT enrollments"
    rows = (
        await session.execute(
            select(Enrollment.student_id, Enrollment.course_id, Enrollment.grade).order_by(
                Enrollment.student_id, Enrollment.course_id
            )
        )
    ).all()
    assert [tuple(r) for r in rows] == sorted(
        [(ann.id, maths.id, "A"), (ann.id, art.id, None), (bob.id, maths.id, "B")],
        key=lambda r: (r[0], r[1]),
    )
    assert {e.student for e in maths.enrollments} == {ann, bob}
    await session.commit()

    # Dropping an enrollment from the student deletes it (delete-orphan).
    dropped = ann.enrollments[1]
    ann.enrollments.remove(dropped)
    await session.flush()
    assert inspect(dropped).deleted
    assert await count(session, Enrollment) == 2
    # Deleting a student deletes its enrollments first.
    await session.delete(bob)
    await session.flush()
    assert await count(session, Enrollment) == 1
    await session.commit()


async def test_one_to_one_replacing_the_child(session: AsyncSession) -> None:
    person = Person(name="p", passport=Passport(number="1"))
    session.add(person)
    await session.commit()
    old = person.passport
    assert old is not None
    person.passport = Passport(number="2")
    assert old.person is None
    await session.flush()  # the old one is an orphan: deleted before the new one's INSERT
    assert inspect(old).deleted
    numbers = (await session.execute(select(Passport.number, Passport.person_id))).all()
    assert [tuple(r) for r in numbers] == [("2", person.id)]
    person.passport = None
    await session.commit()
    assert await count(session, Passport) == 0


async def test_composite_foreign_keys(session: AsyncSession, statements: list[str]) -> None:
    north = Region(country="fr", code="n", name="north")
    south = Region(country="fr", code="s", name="south")
    office = Office(city="lille")
    north.offices.append(office)
    session.add_all([north, south])
    await session.flush()
    assert (office.country, office.region_code) == ("fr", "n")
    office.region = south
    await session.flush()
    row = (await session.execute(select(Office.country, Office.region_code))).one()
    assert tuple(row) == ("fr", "s")
    assert north.offices == []
    await session.commit()
    session.expunge_all()
    region = await session.get(Region, ("fr", "s"))
    assert region is not None
    await session.load_relationship([region], Region.offices)
    assert [o.city for o in region.offices] == ["lille"]
    statements.clear()
    await session.delete(region)
    await session.flush()
    assert kinds(statements) == ["DELETE offices", "DELETE regions"]
    await session.commit()


# -- delete cascades and their statements ------------------------------------------------------


async def test_passive_deletes_leaves_the_children_to_the_database(
    session: AsyncSession, statements: list[str], db_url: str
) -> None:
    if not db_url.startswith("postgresql"):
        await session.execute(_pragma_foreign_keys())
    album = Album(title="a", photos=[Photo(caption=str(i)) for i in range(3)])
    session.add(album)
    await session.commit()
    session.expunge_all()
    album = await session.scalar(select(Album))
    statements.clear()
    await session.delete(album)
    await session.flush()
    assert kinds(statements) == ["DELETE albums"]  # no SELECT of the photos
    assert await count(session, Photo) == 0  # ON DELETE CASCADE
    await session.commit()


def _pragma_foreign_keys() -> Any:
    from asyncsession import text

    return text("PRAGMA foreign_keys=ON")


async def make_shelves(session: AsyncSession, n: int) -> list[int]:
    shelves = [
        Shelf(
            books=[
                Book(title=f"{i}.{j}", pages=[Page(number=1), Page(number=2)]) for j in range(3)
            ],
            labels=[Label(text=f"{i}")],
        )
        for i in range(n)
    ]
    session.add_all(shelves)
    await session.commit()
    ids = [s.id for s in shelves]
    session.expunge_all()
    return ids


async def test_a_delete_cascade_loads_one_in_query_per_relationship(
    session: AsyncSession, statements: list[str]
) -> None:
    await make_shelves(session, 2)
    shelf = await session.scalar(select(Shelf).order_by(Shelf.id))
    statements.clear()
    await session.delete(shelf)
    assert statements == []  # delete() needs no SQL: the flush loads what it needs
    assert len(session.deleted) == 1
    await session.flush()
    # The shelf's books and labels, then the pages of all three books at once.
    assert kinds(statements) == [
        "SELECT books",
        "SELECT labels",
        "SELECT pages",
        "DELETE pages",
        "DELETE labels",
        "DELETE books",
        "DELETE shelves",
    ]
    assert [await count(session, t) for t in (Shelf, Book, Page, Label)] == [1, 3, 6, 1]
    await session.commit()


async def test_statement_counts_are_deterministic(
    engine: AsyncEngine, statements: list[str]
) -> None:
    seen = []
    for _ in range(3):
        async with AsyncSession(engine) as session:
            await make_shelves(session, 4)
            statements.clear()
            shelves = (await session.scalars(select(Shelf))).all()
            await session.load_relationship(shelves, Shelf.books)
            for shelf in shelves:
                shelf.books.pop()
            await session.delete(shelves[0])
            await session.commit()
            seen.append(kinds(statements))
        async with engine.begin() as conn:
            for table in (Page, Label, Book, Shelf):
                await conn.execute(table.__table__.delete())
    assert seen[0] == seen[1] == seen[2]
    # delete() cascades to the first shelf's loaded books without SQL; the flush then
    # loads the pages of every book it deletes (those and the removed ones, orphans)
    # in one query, and the shelf's labels in another: not one per book.
    assert seen[0] == [
        "SELECT shelves",
        "SELECT books",
        "SELECT pages",
        "SELECT labels",
        "DELETE pages",
        "DELETE labels",
        "DELETE books",
        "DELETE shelves",
    ]


# -- cancellation ----------------------------------------------------------------------------


class Interrupter:
    """Cancels a scope at the N-th driver call while armed (see test_cancellation.py)."""

    def __init__(self) -> None:
        self.scope: anyio.CancelScope | None = None
        self.target = 0
        self.count = 0
        self.hit: str | None = None

    def reached(self, what: str) -> bool:
        if self.scope is None:
            return False
        self.count += 1
        if self.count != self.target:
            return False
        self.hit = what
        return True


@pytest.fixture
def interrupter(monkeypatch: pytest.MonkeyPatch) -> Interrupter:
    interrupter = Interrupter()
    original = AsyncConnection._call

    async def _call(
        self: AsyncConnection,
        entry: Any,
        operation: Callable[[Any], Awaitable[Any]],
        sql: str,
        params: Any,
    ) -> Any:
        if not interrupter.reached(sql.split()[0]):
            return await original(self, entry, operation, sql, params)

        async def interrupted(driver_connection: Any) -> Any:
            result = await operation(driver_connection)
            assert interrupter.scope is not None
            interrupter.scope.cancel()
            await anyio.lowlevel.checkpoint()
            return result

        return await original(self, entry, interrupted, sql, params)

    monkeypatch.setattr(AsyncConnection, "_call", _call)
    return interrupter


def snapshot(objects: list[Any]) -> list[tuple[Any, ...]]:
    out = []
    for obj in objects:
        state = inspect(obj)
        values = {k: v for k, v in obj.__dict__.items() if not k.startswith("_")}
        loaded = {
            k: (tuple(id(x) for x in v) if isinstance(v, list) else id(v))
            for k, v in values.items()
            if k in state.mapper.relationships
        }
        columns = {k: v for k, v in values.items() if k not in state.mapper.relationships}
        out.append((state.key, state.pending, state.persistent, columns, loaded))
    return out


async def test_cancelling_a_relationship_flush_at_each_await(
    engine: AsyncEngine, interrupter: Interrupter
) -> None:
    hits = []
    for target in range(1, 40):
        session = AsyncSession(engine)
        widget = Widget(name="keep", entries=[Entry(name="x")])
        session.add(widget)
        await session.commit()
        # The flush: a tree (Refs), a cycle with a post-update, an association
        # object, and a delete cascade that has to load the entries.
        session.expunge_all()
        widget = await session.scalar(select(Widget))
        tree = build_tree(3, 2)
        cycle = Widget(name="w", entries=[Entry(name="a")])
        cycle.favorite = cycle.entries[0]
        enrollment = Enrollment(student=Student(name="s"), course=Course(title="c"))
        session.add_all([tree, cycle, enrollment])
        objects = [widget, tree, *tree.children, cycle, *cycle.entries, enrollment]
        before = snapshot(objects)
        outcome = "finished"
        with anyio.CancelScope() as scope:
            interrupter.scope, interrupter.target, interrupter.count = scope, target, 0
            interrupter.hit = None
            try:
                await session.delete(widget)  # the flush loads widget.entries for it
                before = snapshot(objects)  # the objects as the flush found them
                await session.flush()
            except anyio.get_cancelled_exc_class():
                outcome = "cancelled"
                raise
            finally:
                interrupter.scope = None
        if interrupter.hit is None:
            assert outcome == "finished"
            await session.rollback()
            await session.close()
            break
        hits.append(interrupter.hit)
        where = f"cancelled at point {target} ({interrupter.hit})"
        assert outcome == "cancelled", where
        # Nothing changed in the objects; the flush may have loaded relationships that
        # were unloaded (the delete cascade's), which changes no value.
        after = snapshot(objects)
        for was, now in zip(before, after, strict=True):
            assert now[:4] == was[:4], where
            assert {k: v for k, v in now[4].items() if k in was[4]} == was[4], where
        assert engine.pool.checkedout() <= 1, where
        await session.rollback()
        await session.close()
        assert engine.pool.checkedout() == 0, where
        async with AsyncSession(engine) as check:
            assert await count(check, Widget) == 1, where
            assert await count(check, TreeNode) == 0, where
            await check.execute(Entry.__table__.delete())
            await check.execute(Widget.__table__.delete())
            await check.commit()
    else:
        pytest.fail("the flush never finished")
    assert {"SELECT", "INSERT", "UPDATE", "DELETE"} <= set(hits)


# -- bad input ------------------------------------------------------------------------------


async def test_bad_input_raises_before_any_sql(
    session: AsyncSession, statements: list[str]
) -> None:
    shelf = Shelf()
    with pytest.raises(ArgumentError, match="holds Book objects"):
        shelf.books.append(Label(text="x"))  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="holds Book objects"):
        shelf.books = [Book(title="ok"), Page(number=1)]  # type: ignore[list-item]
    with pytest.raises(ArgumentError, match="holds a Book or None"):
        Keeper().book = Page(number=1)  # type: ignore[assignment]
    with pytest.raises(ArgumentError, match="to None"):
        shelf.books = None  # type: ignore[assignment]
    keeper = Keeper(book=Book(title="loose"))  # no save-update cascade to the book
    session.add(keeper)
    with pytest.raises(InvalidRequestError, match="transient Book"):
        await session.flush()
    assert statements == []
    await session.rollback()
