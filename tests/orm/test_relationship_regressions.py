"""Relationship bugs found by tests/orm/test_stateful_relationships.py, each pinned (SQLite).

Every test is the shortest sequence that showed a disagreement with
SQLAlchemy; the expected outcomes are SQLAlchemy's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from asyncsession import AsyncSession, create_async_engine, event, inspect, select, text
from asyncsession.engine import AsyncEngine
from tests.orm.test_stateful_relationships import Base, Child, Node, Parent, Tag, parent_tag

pytestmark = pytest.mark.anyio


@pytest.fixture
async def engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(sqlite_url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with AsyncSession(engine) as session:
        yield session


async def child_rows(session: AsyncSession) -> list[tuple[int, int | None]]:
    result = await session.execute(select(Child.id, Child.parent_id).order_by(Child.id))
    return [tuple(r) for r in result.all()]  # type: ignore[misc]


async def committed_family(session: AsyncSession, children: int = 1) -> Parent:
    parent = Parent(name="p", children=[Child(id=i + 1, name="c") for i in range(children)])
    session.add(parent)
    await session.commit()
    return parent


def test_remote_side_names_a_mapped_column_of_the_class_body() -> None:
    # Node.parent is declared with remote_side=[id], `id` being the class body's
    # mapped_column(): as in SQLAlchemy, that names the column.
    prop = Node.parent.property
    assert prop.direction.name == "MANYTOONE"
    assert Node.children.property.direction.name == "ONETOMANY"


async def test_setting_an_unloaded_many_to_one_to_none_clears_the_key(
    session: AsyncSession,
) -> None:
    parent = await committed_family(session)
    child = parent.children[0]
    session.expire(child)  # child.parent and child.parent_id unloaded
    child.parent = None
    await session.flush()
    assert await child_rows(session) == [(1, None)]


async def test_load_relationship_loads_the_expired_join_columns(session: AsyncSession) -> None:
    parent = await committed_family(session)
    child = parent.children[0]
    session.expire(child)
    await session.load_relationship([child], Child.parent)
    assert child.parent is parent


async def test_load_relationship_needing_no_sql_does_not_begin(session: AsyncSession) -> None:
    # A row without a parent (a new Child without one is refused: delete-orphan).
    await session.execute(text("INSERT INTO child (id, name) VALUES (7, 'c')"))
    orphan = await session.get_one(Child, 7)
    await session.commit()
    await session.load_relationship([orphan], Child.parent)
    assert orphan.parent is None
    assert not session.in_transaction()


async def test_a_collection_load_applies_changes_made_from_the_other_side(
    session: AsyncSession,
) -> None:
    root = Node(id=1, name="root")
    session.add(root)
    await session.commit()
    session.expire(root)
    leaf = Node(id=2, name="leaf")
    leaf.parent = root  # root.children is not loaded: nothing to keep in step yet
    session.add(leaf)
    await session.load_relationship([root], Node.children)
    assert root.children == [leaf]
    assert inspect(root).attrs.children.history.added == (leaf,)
    await session.flush()
    assert (await session.execute(select(Node.parent_id).where(Node.id == 2))).scalar() == 1


async def test_undoing_an_applied_change_leaves_nothing_to_flush(session: AsyncSession) -> None:
    parent = Parent(name="p")
    tag = Tag(id=1, name="t", parents=[])
    session.add_all([parent, tag])
    await session.commit()
    session.expire(parent)
    tag.parents.append(parent)  # parent.tags not loaded
    await session.load_relationship([parent], Parent.tags)
    assert parent.tags == [tag]
    parent.tags.remove(tag)  # both sides back where they were
    await session.commit()  # no DELETE of a row never inserted (StaleDataError)
    assert (await session.execute(select(parent_tag.c.tag_id))).all() == []


async def test_a_pending_orphan_leaves_the_session_at_once(session: AsyncSession) -> None:
    parent = Parent(name="p")
    child = Child(id=1, name="c", parent=parent)
    session.add(parent)
    assert child in session
    child.parent = None  # removed from parent.children, a delete-orphan collection
    assert inspect(child).transient
    assert parent.children == []


async def test_an_unloaded_old_parent_in_the_identity_map_loses_the_child(
    session: AsyncSession,
) -> None:
    parent = await committed_family(session)
    child = parent.children[0]
    await session.refresh(child)  # child.parent unloaded; parent is in the identity map
    child.parent = None
    assert parent.children == []
    await session.commit()
    assert await child_rows(session) == []  # an orphan: deleted


async def test_detaching_a_child_through_the_many_to_one_makes_it_an_orphan(
    session: AsyncSession,
) -> None:
    parent = await committed_family(session)
    await session.rollback()  # everything expired
    child = await session.get(Child, 1)
    assert child is not None
    await session.load_relationship([child], Child.parent)
    child.parent = None  # parent.children is not loaded
    await session.commit()
    assert await child_rows(session) == []
    assert inspect(parent).persistent


async def test_expire_cascades_along_refresh_expire(session: AsyncSession) -> None:
    parent = await committed_family(session)
    child = parent.children[0]
    newcomer = Child(id=2, name="n")
    parent.children.append(newcomer)
    child.name = "changed"
    session.expire(parent)
    assert "name" not in child.__dict__  # expired through parent.children
    assert inspect(newcomer).transient  # pending: expunged, as SQLAlchemy does


async def test_a_pending_child_of_a_deleted_parent_is_still_inserted(
    session: AsyncSession,
) -> None:
    from asyncsession import IntegrityError

    parent = await committed_family(session, children=0)
    await session.delete(parent)
    Child(id=5, name="late", parent=parent)
    with pytest.raises(IntegrityError):  # as SQLAlchemy: the INSERT references the row
        await session.commit()
    await session.rollback()


async def test_deleting_an_expired_node_loads_what_orders_the_deletes(
    session: AsyncSession,
) -> None:
    root = Node(id=1, name="root", children=[Node(id=2, name="leaf")])
    session.add(root)
    await session.commit()
    leaf = root.children[0]
    session.expire(leaf)
    await session.delete(leaf)
    await session.delete(root)
    await session.commit()
    assert (await session.execute(select(Node.id))).all() == []


async def test_linking_an_object_deleted_in_a_flush_raises_before_any_change(
    session: AsyncSession,
) -> None:
    from asyncsession import InvalidRequestError

    parent = await committed_family(session, children=2)
    gone = parent.children[0]
    await session.delete(gone)
    await session.commit()  # gone is detached, its row deleted
    with pytest.raises(InvalidRequestError, match="deleted in a flush"):
        parent.children = [gone]  # as SQLAlchemy ("has been deleted")
    with pytest.raises(InvalidRequestError, match="deleted in a flush"):
        parent.children.append(gone)
    assert not session.is_modified(parent)


async def test_a_backref_from_a_class_mapped_later_cascades_save_update(
    sqlite_url: str,
) -> None:
    from asyncsession import ForeignKey
    from asyncsession.orm.decl import DeclarativeBase, Mapped, mapped_column
    from asyncsession.orm.relationships import relationship

    class LateBase(DeclarativeBase):
        pass

    class Owner(LateBase):
        __tablename__ = "owners"
        id: Mapped[int] = mapped_column(primary_key=True)
        boss_id: Mapped[int | None] = mapped_column(ForeignKey("owners.id"))
        boss: Mapped[Owner | None] = relationship(remote_side=[id])

    engine = create_async_engine(sqlite_url)
    try:
        async with AsyncSession(engine) as session:
            session.add(Owner())  # the session has looked at Owner's relationships

            class Pet(LateBase):
                __tablename__ = "pets"
                id: Mapped[int] = mapped_column(primary_key=True)
                owner_id: Mapped[int | None] = mapped_column(ForeignKey("owners.id"))
                owner: Mapped[Owner | None] = relationship(backref="pets")

            async with engine.begin() as conn:
                await conn.run_sync(LateBase.metadata.create_all)
            owner, pet = Owner(), Pet()
            pet.owner = owner  # configures Pet, and Owner.pets with it; owner.pets == [pet]
            session.add(owner)  # cascades along the new Owner.pets
            assert pet in session
            await session.commit()
    finally:
        await engine.dispose()


async def test_removing_an_object_deleted_earlier_from_a_collection(
    session: AsyncSession,
) -> None:
    parent = await committed_family(session, children=2)
    gone, kept = parent.children
    await session.delete(gone)
    await session.commit()  # parent.children still holds gone
    parent.children.remove(gone)  # no row to update: no StaleDataError
    await session.commit()
    assert await child_rows(session) == [(kept.id, parent.id)]
    await session.delete(parent)  # its loaded collection holds only kept now
    await session.commit()
    assert await child_rows(session) == []


async def test_removing_an_expired_child_clears_its_unloaded_parent(
    session: AsyncSession,
) -> None:
    parent = await committed_family(session)
    child = parent.children[0]
    session.expire(child)  # child.parent unloaded
    parent.children = []
    assert child.parent is None  # as SQLAlchemy: the back reference is set, no SQL
    await session.load_relationship([child], Child.parent)  # keeps the unflushed None
    assert child.parent is None
    await session.commit()
    assert await child_rows(session) == []  # an orphan: deleted


async def test_refreshing_a_collection_of_an_expired_object_loads_no_columns(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    # Found by the stateful test: refresh(node, ["children"]) loaded every expired
    # column first (for the join's primary key, which the identity already gives),
    # so a later read of node.parent needed no SQL here but did in SQLAlchemy.
    node = Node(id=1, name="n")
    session.add(node)
    await session.commit()
    session.expire(node)
    statements: list[str] = []
    event.listen(engine, "before_execute", lambda c, stmt, *rest: statements.append(str(stmt)))
    await session.refresh(node, ["children"])
    assert node.children == []
    assert len(statements) == 1
    assert "parent_id" not in node.__dict__
