"""AsyncSession against SQLite and PostgreSQL: states, identity map, loading, queries, events.

Semantics are SQLAlchemy 2.x's, except where asyncsession deliberately differs:
``expire_on_commit`` defaults to False, and an unloaded attribute raises
``UnloadedAttributeError`` instead of loading itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from asyncsession import (
    ArgumentError,
    AsyncEngine,
    AsyncSession,
    InvalidRequestError,
    NoResultFound,
    UnloadedAttributeError,
    async_scoped_session,
    async_sessionmaker,
    close_all_sessions,
    delete,
    event,
    func,
    inspect,
    make_transient,
    make_transient_to_detached,
    object_session,
    select,
    text,
    update,
)
from tests.orm.models import (
    Address,
    Item,
    ItemKeyword,
    Keyword,
    Order,
    User,
    count_rows,
    engine_for,
    is_pg,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def schema(db_url: str, request: pytest.FixtureRequest) -> str | None:
    """PostgreSQL: the test's own schema (a sync fixture: async ones can't request fixtures)."""
    return request.getfixturevalue("pg_schema") if is_pg(db_url) else None


@pytest.fixture
async def engine(db_url: str, schema: str | None) -> AsyncIterator[AsyncEngine]:
    async with engine_for(db_url, schema) as engine:
        yield engine


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with AsyncSession(engine) as session:
        yield session


@pytest.fixture
def statements(engine: AsyncEngine) -> list[str]:
    """The SQL of every statement the engine executes from now on."""
    seen: list[str] = []

    def record(conn: Any, statement: Any, parameters: Any, options: Any) -> None:
        seen.append(str(statement))

    event.listen(engine, "before_execute", record)
    return seen


async def add_users(session: AsyncSession, *names: str) -> list[User]:
    users = [User(name=name, fullname=f"{name} full") for name in names]
    session.add_all(users)
    await session.commit()
    return users


def unloaded_message(err: pytest.ExceptionInfo[UnloadedAttributeError], key: str) -> None:
    """The message names the attribute and the three remedies."""
    message = str(err.value)
    assert f"User.{key}" in message
    assert f"awaitable_attrs.{key}" in message
    assert f"session.refresh(obj, [{key!r}])" in message
    assert "loader option" in message


# -- object states -------------------------------------------------------------------------------


async def test_states_through_add_flush_commit_delete(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    user = User(name="ann")
    state = inspect(user)
    assert (state.transient, state.pending, state.persistent) == (True, False, False)
    assert state.session is None
    assert state.key is None

    session.add(user)
    assert state.pending
    assert not state.transient
    assert state.session is session
    assert user in session
    assert user in session.new

    await session.flush()
    assert state.persistent
    assert not state.pending
    assert state.identity == (user.id,)
    assert state.key == (User, (user.id,), None)
    assert session.new == []

    await session.commit()
    assert state.persistent
    assert user.name == "ann"  # expire_on_commit is False by default

    await session.delete(user)
    assert state.persistent  # marked only; nothing happens until the flush
    assert session.deleted == [user]

    await session.flush()
    assert state.deleted
    assert not state.persistent
    assert user not in session.deleted

    await session.commit()
    assert state.detached
    assert not state.deleted
    assert state.session is None
    assert await count_rows(engine, User) == 0


async def test_expunge_and_close_detach(session: AsyncSession) -> None:
    pending, persistent, other = User(name="p"), User(name="q"), User(name="r")
    session.add_all([persistent, other])
    await session.commit()
    session.add(pending)

    session.expunge(pending)
    assert inspect(pending).transient
    assert pending not in session.new

    session.expunge(persistent)
    assert inspect(persistent).detached
    assert persistent not in session
    with pytest.raises(InvalidRequestError, match="not in this session"):
        session.expunge(persistent)

    await session.close()
    assert inspect(other).detached
    assert other.name == "r"  # loaded values stay readable when detached
    assert object_session(other) is None


async def test_reattaching_a_detached_object_makes_it_persistent(session: AsyncSession) -> None:
    [user] = await add_users(session, "ann")
    await session.close()
    assert inspect(user).detached
    session.add(user)
    assert inspect(user).persistent
    user.name = "bea"
    await session.commit()
    assert await session.scalar(select(User.name)) == "bea"


# -- identity map -------------------------------------------------------------------------------


async def test_one_object_per_identity(session: AsyncSession) -> None:
    [ann] = await add_users(session, "ann")
    by_query = (await session.scalars(select(User).where(User.name == "ann"))).one()
    by_get = await session.get(User, ann.id)
    assert by_query is ann
    assert by_get is ann


async def test_get_uses_the_identity_map_without_sql(
    session: AsyncSession, statements: list[str]
) -> None:
    [ann] = await add_users(session, "ann")
    before = len(statements)
    assert await session.get(User, ann.id) is ann
    assert await session.get(User, (ann.id,)) is ann
    assert await session.get(User, {"id": ann.id}) is ann
    assert len(statements) == before

    session.expunge(ann)
    fresh = await session.get(User, ann.id)
    assert fresh is not ann
    assert fresh is not None
    assert fresh.name == "ann"
    assert len(statements) == before + 1


async def test_get_after_a_full_expire_loads_once(
    session: AsyncSession, statements: list[str]
) -> None:
    [ann] = await add_users(session, "ann")
    ann_id = ann.id
    session.expire(ann)
    with pytest.raises(UnloadedAttributeError):
        _ = ann.id  # the primary key attribute expires too
    before = len(statements)
    assert await session.get(User, ann_id) is ann
    assert (ann.id, ann.name) == (ann_id, "ann")
    assert len(statements) == before + 1
    # Deferred columns stay unloaded after the expire; that is no reason to load again.
    assert await session.get(User, ann_id) is ann
    assert len(statements) == before + 1


async def test_get_keeps_identity_across_expunge_all_and_close(
    session: AsyncSession, statements: list[str]
) -> None:
    """get() keeps its row loader for the session; emptying the identity map (expunge_all,
    close) must not leave that loader registering objects where no lookup finds them."""
    [ann, bob] = await add_users(session, "ann", "bob")
    ids = (ann.id, bob.id)
    session.expunge_all()
    first = await session.get(User, ids[0])
    assert first is not None
    assert first is not ann
    assert session.identity_map.get((User, (ids[0],), None)) is first
    before = len(statements)
    assert await session.get(User, ids[0]) is first
    assert len(statements) == before

    await session.close()
    assert inspect(first).detached
    again = await session.get(User, ids[0])
    assert again is not None
    assert again is not first
    assert await session.get(User, ids[0]) is again
    other = await session.get(User, ids[1], populate_existing=True)
    assert other is not None
    assert other.name == "bob"
    assert await session.get(User, ids[1]) is other
    assert inspect(again).session is session
    assert inspect(other).persistent


async def test_get_missing_and_get_one(session: AsyncSession) -> None:
    assert await session.get(User, 12345) is None
    with pytest.raises(NoResultFound, match="12345"):
        await session.get_one(User, 12345)
    [ann] = await add_users(session, "ann")
    assert await session.get_one(User, ann.id) is ann


async def test_get_with_a_composite_primary_key(session: AsyncSession) -> None:
    item, keyword = Item(description="hammer"), Keyword(name="tool")
    session.add_all([item, keyword])
    await session.flush()
    link = ItemKeyword(item_id=item.id, keyword_id=keyword.id)
    session.add(link)
    await session.commit()
    assert inspect(link).identity == (item.id, keyword.id)

    assert await session.get(ItemKeyword, (item.id, keyword.id)) is link
    assert await session.get(ItemKeyword, {"item_id": item.id, "keyword_id": keyword.id}) is link
    session.expunge(link)
    loaded = await session.get_one(ItemKeyword, (item.id, keyword.id))
    assert (loaded.item_id, loaded.keyword_id) == (item.id, keyword.id)
    assert await session.get(ItemKeyword, (item.id, keyword.id + 1)) is None


@pytest.mark.parametrize("ident", [1, (1,), (1, 2, 3), {"item_id": 1}])
async def test_get_with_a_wrong_primary_key_arity(session: AsyncSession, ident: Any) -> None:
    with pytest.raises(InvalidRequestError, match=r"ItemKeyword.*keyword_id"):
        await session.get(ItemKeyword, ident)
    assert not session.in_transaction() or session.is_active


async def test_get_of_an_unmapped_class(session: AsyncSession) -> None:
    with pytest.raises(ArgumentError, match="not a mapped class"):
        await session.get(int, 1)


# -- refresh, expire and loading ------------------------------------------------------------------


async def test_refresh_reloads_everything_and_discards_changes(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    [ann] = await add_users(session, "ann")
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE users SET fullname = 'changed elsewhere'"))
    ann.name = "local change"
    assert ann.fullname == "ann full"  # the identity map does not see other transactions

    await session.refresh(ann)
    assert (ann.name, ann.fullname) == ("ann", "changed elsewhere")
    assert not session.dirty
    assert not session.is_modified(ann)


async def test_refresh_of_one_attribute_loads_every_expired_one(
    session: AsyncSession, statements: list[str]
) -> None:
    [ann] = await add_users(session, "ann")
    session.expire(ann, ["name", "fullname"])
    before = len(statements)
    await session.refresh(ann, ["name"])
    assert len(statements) == before + 1
    assert (ann.name, ann.fullname) == ("ann", "ann full")
    assert not inspect(ann).expired_attributes


async def test_deferred_columns_stay_deferred(session: AsyncSession) -> None:
    ann = User(name="ann", fullname="ann full", bio="a long story")
    session.add(ann)
    await session.commit()
    session.expunge(ann)
    ann = await session.get_one(User, ann.id)
    with pytest.raises(UnloadedAttributeError, match="deferred") as err:
        _ = ann.bio
    unloaded_message(err, "bio")

    session.expire(ann)
    assert await ann.awaitable_attrs.name == "ann"
    assert ann.fullname == "ann full"  # every expired column came back ...
    with pytest.raises(UnloadedAttributeError):
        _ = ann.bio  # ... but not the deferred one

    await session.refresh(ann, ["bio"])
    assert ann.bio == "a long story"
    assert await ann.awaitable_attrs.bio == "a long story"


async def test_unflushed_changes_survive_a_partial_refresh(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    [ann] = await add_users(session, "ann")
    ann.name = "unflushed"
    await session.refresh(ann, ["fullname"])
    assert ann.name == "unflushed"
    assert session.dirty == [ann]
    await session.commit()
    async with engine.connect() as conn:
        assert await conn.scalar(select(User.name)) == "unflushed"


async def test_expire_then_unloaded_attribute_error(session: AsyncSession) -> None:
    [ann] = await add_users(session, "ann")
    session.expire(ann, ["name"])
    assert ann.fullname == "ann full"
    with pytest.raises(UnloadedAttributeError, match="expired") as err:
        _ = ann.name
    unloaded_message(err, "name")

    session.expire_all()
    with pytest.raises(UnloadedAttributeError) as err:
        _ = ann.fullname
    unloaded_message(err, "fullname")
    assert await ann.awaitable_attrs.fullname == "ann full"
    assert ann.name == "ann"


async def test_expire_discards_unflushed_changes(session: AsyncSession) -> None:
    [ann] = await add_users(session, "ann")
    ann.name = "changed"
    assert session.dirty == [ann]
    session.expire(ann, ["name"])
    assert not session.dirty
    assert await ann.awaitable_attrs.name == "ann"


async def test_awaitable_attrs_of_loaded_and_detached_objects(session: AsyncSession) -> None:
    [ann] = await add_users(session, "ann")
    assert await ann.awaitable_attrs.name == "ann"  # loaded: no IO needed
    session.expire(ann, ["name"])
    session.expunge(ann)
    with pytest.raises(InvalidRequestError, match="detached"):
        await ann.awaitable_attrs.name
    with pytest.raises(AttributeError, match="nope"):
        await ann.awaitable_attrs.nope


async def test_a_query_repopulates_expired_attributes(
    session: AsyncSession, statements: list[str]
) -> None:
    [ann, bob] = await add_users(session, "ann", "bob")
    session.expire_all()
    before = len(statements)
    users = (await session.scalars(select(User).order_by(User.id))).all()
    assert users == [ann, bob]
    assert [(u.name, u.fullname) for u in users] == [("ann", "ann full"), ("bob", "bob full")]
    assert len(statements) == before + 1


async def test_loaded_rows_do_not_overwrite_pending_changes(session: AsyncSession) -> None:
    [ann] = await add_users(session, "ann")
    await session.execute(text("UPDATE users SET fullname = 'from sql'"))
    ann.name = "pending"
    with session.no_autoflush:
        again = (await session.scalars(select(User))).one()
    assert again is ann
    assert ann.name == "pending"  # an unflushed change wins over the row
    assert ann.fullname == "ann full"  # and loaded values are not overwritten either
    assert session.dirty == [ann]

    with session.no_autoflush:
        stmt = select(User).execution_options(populate_existing=True)
        assert (await session.scalars(stmt)).one() is ann
    assert (ann.name, ann.fullname) == ("ann", "from sql")
    assert not session.dirty


async def test_refresh_and_expire_reject_unknown_attributes(session: AsyncSession) -> None:
    [ann] = await add_users(session, "ann")
    with pytest.raises(InvalidRequestError, match="nope"):
        await session.refresh(ann, ["name", "nope"])
    with pytest.raises(InvalidRequestError, match="nope"):
        session.expire(ann, ["name", "nope"])
    assert ann.name == "ann"  # nothing was expired
    assert session.is_active


async def test_refresh_and_expire_of_objects_not_in_the_session(session: AsyncSession) -> None:
    stranger = User(name="x")
    with pytest.raises(InvalidRequestError, match="not persistent"):
        await session.refresh(stranger)
    with pytest.raises(InvalidRequestError, match="not persistent"):
        session.expire(stranger)


async def test_refresh_of_a_deleted_row(engine: AsyncEngine, session: AsyncSession) -> None:
    [ann] = await add_users(session, "ann")
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM users"))
    with pytest.raises(InvalidRequestError, match="no longer exists"):
        await session.refresh(ann)


# -- execute, scalar, scalars -------------------------------------------------------------------


async def test_select_entities_columns_and_joins(session: AsyncSession) -> None:
    [ann, bob] = await add_users(session, "ann", "bob")
    session.add_all(
        [
            Address(user_id=ann.id, email_address="ann@a"),
            Address(user_id=ann.id, email_address="ann@b"),
            Address(user_id=bob.id, email_address="bob@a"),
        ]
    )
    await session.commit()

    users = (await session.scalars(select(User).order_by(User.id))).all()
    assert users == [ann, bob]

    rows = (await session.execute(select(User.id, User.name).order_by(User.id))).all()
    assert rows == [(ann.id, "ann"), (bob.id, "bob")]
    assert rows[0].name == "ann"
    assert rows[0]._mapping["id"] == ann.id

    stmt = (
        select(User, Address)
        .join(Address, Address.user_id == User.id)
        .order_by(Address.email_address)
    )
    pairs = (await session.execute(stmt)).all()
    assert [(u, a.email_address) for u, a in pairs] == [
        (ann, "ann@a"),
        (ann, "ann@b"),
        (bob, "bob@a"),
    ]
    assert pairs[0].User is ann
    assert pairs[0].Address is pairs[0][1]
    assert inspect(pairs[0].Address).persistent

    mixed = (await session.execute(select(User, Address.email_address).join(Address))).all()
    assert {(u.name, e) for u, e in mixed} == {("ann", "ann@a"), ("ann", "ann@b"), ("bob", "bob@a")}

    assert await session.scalar(select(func.count()).select_from(User)) == 2
    assert await session.scalar(select(User).where(User.name == "bob")) is bob
    assert await session.scalar(select(User).where(User.name == "nobody")) is None


async def test_results_are_buffered_and_usable_after_close(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as session:
        await add_users(session, "ann")
        result = await session.execute(select(User))
    [user] = result.scalars().all()
    assert inspect(user).detached
    assert user.name == "ann"
    assert engine.pool.checkedout() == 0


async def test_execute_rejects_non_statements(session: AsyncSession) -> None:
    with pytest.raises(ArgumentError, match="takes a statement"):
        await session.execute("SELECT 1")
    assert session.is_active


# -- ORM-enabled UPDATE and DELETE -----------------------------------------------------------------


async def test_orm_update_expires_the_updated_attributes(session: AsyncSession) -> None:
    [ann, bob] = await add_users(session, "ann", "bob")
    result = await session.execute(
        update(User).where(User.name == "ann").values(fullname="Ann Smith")
    )
    assert result.rowcount == 1
    assert ann.name == "ann"
    with pytest.raises(UnloadedAttributeError):
        _ = ann.fullname
    assert bob.fullname == "bob full"  # untouched rows keep their values
    assert await ann.awaitable_attrs.fullname == "Ann Smith"


async def test_orm_update_without_synchronize_leaves_objects_alone(session: AsyncSession) -> None:
    [ann] = await add_users(session, "ann")
    stmt = update(User).values(fullname="new").execution_options(synchronize_session=False)
    await session.execute(stmt)
    assert ann.fullname == "ann full"
    await session.refresh(ann)
    assert ann.fullname == "new"


async def test_orm_delete_removes_objects_from_the_identity_map(
    session: AsyncSession, statements: list[str]
) -> None:
    [ann, bob] = await add_users(session, "ann", "bob")
    result = await session.execute(delete(User).where(User.name == "ann"))
    assert result.rowcount == 1
    assert inspect(ann).deleted
    assert ann not in session.identity_map.values()
    assert inspect(bob).persistent
    assert await session.get(User, ann.id) is None
    await session.commit()
    assert inspect(ann).detached
    assert (await session.scalars(select(User))).all() == [bob]


async def test_orm_delete_then_rollback_restores_the_object(session: AsyncSession) -> None:
    [ann] = await add_users(session, "ann")
    ann_id = ann.id
    await session.execute(delete(User))
    assert inspect(ann).deleted
    await session.rollback()
    assert inspect(ann).persistent
    assert await session.get(User, ann_id) is ann
    assert ann.name == "ann"


async def test_orm_dml_rejects_bad_synchronize_session(session: AsyncSession) -> None:
    stmt = delete(User).execution_options(synchronize_session="everything")
    with pytest.raises(ArgumentError, match="synchronize_session"):
        await session.execute(stmt)


# -- autoflush ------------------------------------------------------------------------------------


async def test_queries_autoflush(session: AsyncSession) -> None:
    ann = User(name="ann")
    session.add(ann)
    assert await session.scalar(select(User).where(User.name == "ann")) is ann
    assert inspect(ann).persistent

    ann.name = "changed"
    assert await session.scalar(select(User.name)) == "changed"

    bob = User(name="bob")
    session.add(bob)
    assert await session.get(User, 2) is bob  # get() flushes too


async def test_no_autoflush_block_and_option(engine: AsyncEngine, session: AsyncSession) -> None:
    ann = User(name="ann")
    session.add(ann)
    with session.no_autoflush:
        assert await session.scalar(select(func.count()).select_from(User)) == 0
    assert inspect(ann).pending
    assert await session.scalar(select(func.count()).select_from(User)) == 1
    await session.commit()  # SQLite: one writer at a time

    async with AsyncSession(engine, autoflush=False) as other:
        other.add(User(name="bob"))
        assert await other.scalar(select(func.count()).select_from(User)) == 1
        await other.flush()
        assert await other.scalar(select(func.count()).select_from(User)) == 2


# -- merge -------------------------------------------------------------------------------------


async def test_merge_loads_and_copies_state(
    engine: AsyncEngine, session: AsyncSession, statements: list[str]
) -> None:
    [ann] = await add_users(session, "ann")
    await session.close()
    ann.fullname = "Ann Merged"  # a detached object with a change

    async with AsyncSession(engine) as other:
        before = len(statements)
        merged = await other.merge(ann)
        assert len(statements) == before + 1  # loaded by primary key
        assert merged is not ann
        assert inspect(ann).detached
        assert inspect(merged).persistent
        assert merged.fullname == "Ann Merged"
        assert other.dirty == [merged]
        assert await other.merge(ann) is merged  # already in the map: no SELECT ...
        assert [s.split()[0] for s in statements[before:]] == ["SELECT", "UPDATE"]
        assert not other.dirty  # ... but merge() autoflushes first, as SQLAlchemy
        await other.commit()
    async with engine.connect() as conn:
        assert await conn.scalar(select(User.fullname)) == "Ann Merged"


async def test_merge_of_a_new_object_is_pending(session: AsyncSession) -> None:
    merged = await session.merge(User(name="new"))
    assert inspect(merged).pending
    await session.commit()
    assert inspect(merged).persistent
    assert merged.id is not None
    missing = await session.merge(User(id=999, name="nobody"))
    assert inspect(missing).pending  # no row with that key: becomes an INSERT


async def test_merge_without_load(
    engine: AsyncEngine, session: AsyncSession, statements: list[str]
) -> None:
    [ann] = await add_users(session, "ann")
    await session.close()
    async with AsyncSession(engine) as other:
        before = len(statements)
        merged = await other.merge(ann, load=False)
        assert len(statements) == before
        assert inspect(merged).persistent
        assert merged.name == "ann"
        assert not other.dirty

        ann.name = "dirty"
        async with AsyncSession(engine) as third:
            with pytest.raises(InvalidRequestError, match="load=False"):
                await third.merge(ann, load=False)
            with pytest.raises(InvalidRequestError, match="transient"):
                await third.merge(User(id=5, name="t"), load=False)


# -- session collections and misuse ---------------------------------------------------------------


async def test_new_dirty_deleted_and_is_modified(session: AsyncSession) -> None:
    [ann, bob] = await add_users(session, "ann", "bob")
    cyd = User(name="cyd")
    session.add(cyd)
    ann.name = "ann2"
    bob.name = "bob"  # set back to the loaded value: no net change
    await session.delete(bob)
    assert session.new == [cyd]
    assert session.dirty == [ann]
    assert session.deleted == [bob]
    assert session.is_modified(ann)
    assert not session.is_modified(bob)
    assert all(o in session for o in (ann, bob, cyd))
    assert User(name="x") not in session

    await session.flush()
    assert not (session.new)
    assert not (session.dirty)
    assert not (session.deleted)
    assert not session.is_modified(ann)


async def test_add_of_an_object_in_another_session(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as one, AsyncSession(engine) as two:
        ann = User(name="ann")
        one.add(ann)
        with pytest.raises(InvalidRequestError, match="another session"):
            two.add(ann)
        await one.commit()
        with pytest.raises(InvalidRequestError, match="another session"):
            two.add(ann)
        with pytest.raises(InvalidRequestError, match="another session"):
            await two.delete(ann)
        assert ann not in two
        assert object_session(ann) is one


async def test_delete_of_a_transient_object(engine: AsyncEngine, session: AsyncSession) -> None:
    with pytest.raises(InvalidRequestError, match="not persisted"):
        await session.delete(User(name="ghost"))
    pending = User(name="pending")
    session.add(pending)
    with pytest.raises(InvalidRequestError, match="not persisted"):
        await session.delete(pending)
    await session.commit()
    assert await count_rows(engine, User) == 1


async def test_add_of_non_mapped_objects(engine: AsyncEngine, session: AsyncSession) -> None:
    class Plain:
        pass

    for bad in (Plain(), 42, None, "user"):
        with pytest.raises(ArgumentError, match="not a mapped class"):
            session.add(bad)
    with pytest.raises(ArgumentError, match="not a mapped class"):
        session.add_all([User(name="ok"), Plain()])
    await session.rollback()
    assert await count_rows(engine, User) == 0


async def test_wrong_types_on_assignment(engine: AsyncEngine, session: AsyncSession) -> None:
    [ann] = await add_users(session, "ann")
    with pytest.raises(ArgumentError, match=r"User\.name"):
        ann.name = 12  # type: ignore[assignment]
    with pytest.raises(ArgumentError, match=r"User\.id"):
        ann.id = "one"  # type: ignore[assignment]
    with pytest.raises(ArgumentError, match=r"Order\.isopen"):
        Order(isopen="yes")
    assert ann.name == "ann"
    assert not session.dirty
    await session.commit()
    async with engine.connect() as conn:
        assert (await conn.execute(select(User.id, User.name))).all() == [(ann.id, "ann")]


async def test_unknown_constructor_keyword(session: AsyncSession) -> None:
    with pytest.raises(TypeError, match="nickname"):
        User(name="ann", nickname="a")


# -- factories and helpers ----------------------------------------------------------------------


async def test_async_sessionmaker(engine: AsyncEngine) -> None:
    Session = async_sessionmaker(engine, expire_on_commit=True)
    async with Session() as session:
        assert isinstance(session, AsyncSession)
        assert session.expire_on_commit
        assert session.bind is engine
    async with Session(expire_on_commit=False) as session:
        assert not session.expire_on_commit

    async with Session.begin() as session:
        session.add(User(name="in begin"))
    assert await count_rows(engine, User) == 1

    with pytest.raises(RuntimeError, match="boom"):  # noqa: PT012 - the block is the subject
        async with Session.begin() as session:
            session.add(User(name="rolled back"))
            await session.flush()
            raise RuntimeError("boom")
    assert await count_rows(engine, User) == 1
    assert engine.pool.checkedout() == 0


async def test_async_scoped_session_is_per_task(engine: AsyncEngine) -> None:
    Session = async_scoped_session(async_sessionmaker(engine))
    seen: dict[str, AsyncSession] = {}

    async def use(name: str, ready: anyio.Event, go: anyio.Event) -> None:
        seen[name] = Session()
        assert Session() is seen[name]
        Session.add(User(name=name))  # proxied to this task's session
        ready.set()
        await go.wait()
        await Session.commit()
        await Session.remove()
        assert not Session.has()

    go = anyio.Event()
    readies = [anyio.Event(), anyio.Event()]
    async with anyio.create_task_group() as tg:
        tg.start_soon(use, "one", readies[0], go)
        tg.start_soon(use, "two", readies[1], go)
        for ready in readies:
            await ready.wait()
        assert seen["one"] is not seen["two"]
        go.set()
    assert await count_rows(engine, User) == 2
    assert Session() is not seen["one"]
    await Session.remove()


async def test_close_all_sessions(engine: AsyncEngine) -> None:
    one, two = AsyncSession(engine), AsyncSession(engine)
    ann, bob = User(name="ann"), User(name="bob")
    one.add(ann)
    two.add(bob)
    await one.flush()
    with two.no_autoflush:
        await two.execute(select(User))  # SQLite: one writer at a time; this one reads
    assert engine.pool.checkedout() == 2
    await close_all_sessions()
    assert engine.pool.checkedout() == 0
    # close() expunges without restoring (as SQLAlchemy): the flushed object is detached,
    # the pending one transient; the INSERT was rolled back.
    assert inspect(ann).detached
    assert inspect(bob).transient
    assert await count_rows(engine, User) == 0


async def test_object_session_and_make_transient(session: AsyncSession) -> None:
    [ann] = await add_users(session, "ann")
    assert object_session(ann) is session
    make_transient(ann)
    state = inspect(ann)
    assert state.transient
    assert object_session(ann) is None
    assert ann.name == "ann"  # values stay
    session.add(ann)
    assert state.pending
    ann.id = None  # type: ignore[assignment]
    await session.commit()
    assert await session.scalar(select(func.count()).select_from(User)) == 2


async def test_make_transient_to_detached(session: AsyncSession, statements: list[str]) -> None:
    [ann] = await add_users(session, "ann")
    ghost = User(id=ann.id, name="ann", fullname="ann full")
    make_transient_to_detached(ghost)
    assert inspect(ghost).detached
    assert inspect(ghost).identity == (ann.id,)
    with pytest.raises(InvalidRequestError, match="not transient"):
        make_transient_to_detached(ghost)
    with pytest.raises(InvalidRequestError, match="primary key"):
        make_transient_to_detached(User(name="no key"))

    session.expunge(ann)
    session.add(ghost)
    assert inspect(ghost).persistent
    before = len(statements)
    assert await session.get(User, ann.id) is ghost
    assert len(statements) == before
    ghost.fullname = "changed"
    await session.commit()
    assert await session.scalar(select(User.fullname)) == "changed"


# -- events -------------------------------------------------------------------------------------


async def test_session_events_with_plain_and_coroutine_listeners(engine: AsyncEngine) -> None:
    calls: list[Any] = []
    session = AsyncSession(engine)

    def before_flush(sess: AsyncSession, context: Any, instances: Any) -> None:
        calls.append(("before_flush", sess is session, [u.name for u in sess.new]))

    async def after_flush(sess: AsyncSession, context: Any) -> None:
        await anyio.lowlevel.checkpoint()
        calls.append(("after_flush", [inspect(u).persistent for u in sess.identity_map.values()]))

    async def after_begin(sess: AsyncSession, transaction: Any, connection: Any) -> None:
        calls.append(("after_begin", transaction is sess.get_transaction(), connection.closed))

    event.listen(session, "before_flush", before_flush)
    event.listen(session, "after_flush", after_flush)
    event.listen(session, "after_begin", after_begin)
    event.listen(session, "after_commit", lambda sess: calls.append("after_commit"))

    async def after_rollback(sess: AsyncSession) -> None:
        calls.append("after_rollback")

    event.listen(session, "after_rollback", after_rollback)

    session.add(User(name="ann"))
    await session.commit()
    assert calls == [
        ("before_flush", True, ["ann"]),
        ("after_begin", True, False),
        ("after_flush", [True]),
        "after_commit",
    ]
    calls.clear()
    await session.execute(select(User))
    await session.rollback()
    assert calls == [("after_begin", True, False), "after_rollback"]
    await session.close()


async def test_after_transaction_create_for_every_level(engine: AsyncEngine) -> None:
    """As SQLAlchemy: for autobegin (on add() too, before any IO), begin() and savepoints;
    its listeners are plain functions, since add() is."""
    created: list[Any] = []
    ended: list[bool] = []

    def on_create(sess: AsyncSession, txn: Any) -> None:
        created.append(txn)

    async with AsyncSession(engine) as session:
        event.listen(session, "after_transaction_create", on_create)
        event.listen(session, "after_transaction_end", lambda sess, txn: ended.append(txn.nested))

        session.add(User(name="ann"))  # autobegins: no IO, still an event
        assert created == [session.get_transaction()]
        async with session.begin_nested():
            assert created[-1] is session.get_nested_transaction()
        await session.commit()
        async with session.begin():
            assert created[-1] is session.get_transaction()
            await session.execute(select(User))
        await session.execute(select(User))  # autobegins again
    assert [(t.origin, t.nested) for t in created] == [
        ("autobegin", False),
        ("begin_nested", True),
        ("begin", False),
        ("autobegin", False),
    ]
    assert ended == [True, False, False, False]

    async def coroutine_listener(sess: AsyncSession, txn: Any) -> None:
        pass

    with pytest.raises(ArgumentError, match="plain functions"):
        event.listen(session, "after_transaction_create", coroutine_listener)
    with pytest.raises(ArgumentError, match="plain functions"):
        event.listen(AsyncSession, "after_transaction_create", coroutine_listener)


async def test_before_flush_may_add_objects(session: AsyncSession) -> None:
    def add_audit(sess: AsyncSession, context: Any, instances: Any) -> None:
        if any(isinstance(o, User) for o in sess.new):
            sess.add(Keyword(name=f"audit {len(sess.new)}"))

    event.listen(session, "before_flush", add_audit)
    session.add(User(name="ann"))
    await session.commit()
    assert await session.scalar(select(Keyword.name)) == "audit 1"


async def test_listeners_on_the_sessionmaker_and_the_class(engine: AsyncEngine) -> None:
    calls: list[str] = []
    Session = async_sessionmaker(engine)
    event.listen(Session, "after_commit", lambda sess: calls.append("factory"))
    async with Session() as session:
        await session.commit()
    async with AsyncSession(engine) as plain:
        await plain.commit()  # the factory's listener is not the class's
    assert calls == ["factory"]

    class MySession(AsyncSession):
        pass

    event.listen(MySession, "after_commit", lambda sess: calls.append("class"))
    async with MySession(engine) as session:
        await session.commit()
    assert calls == ["factory", "class"]
    with pytest.raises(ArgumentError, match="before_flush"):
        event.listen(Session, "before_flsuh", lambda *a: None)


async def test_mapper_insert_events(session: AsyncSession) -> None:
    calls: list[Any] = []

    def before_insert(mapper: Any, connection: Any, target: User) -> None:
        calls.append(("before", mapper is User.__mapper__, target.id, connection is not None))
        target.fullname = f"{target.name} (stamped)"

    async def after_insert(mapper: Any, connection: Any, target: User) -> None:
        await anyio.lowlevel.checkpoint()
        calls.append(("after", target.id))

    event.listen(User.__mapper__, "before_insert", before_insert)
    event.listen(User, "after_insert", after_insert)
    try:
        ann = User(name="ann")
        session.add(ann)
        session.add(Keyword(name="no events here"))
        await session.commit()
        assert calls == [("before", True, None, True), ("after", ann.id)]
        session.expunge(ann)
        assert (await session.get_one(User, ann.id)).fullname == "ann (stamped)"
    finally:
        event.remove(User.__mapper__, "before_insert", before_insert)
        event.remove(User.__mapper__, "after_insert", after_insert)
    assert not User.__mapper__.dispatch.has("after_insert")


async def test_mapper_update_and_delete_events(session: AsyncSession) -> None:
    calls: list[tuple[str, str]] = []
    names = ["before_update", "after_update", "before_delete", "after_delete"]
    listeners = {name: (lambda m, c, t, name=name: calls.append((name, t.name))) for name in names}
    for name, fn in listeners.items():
        event.listen(User, name, fn)
    try:
        [ann] = await add_users(session, "ann")
        ann.name = "ann2"
        await session.flush()
        await session.delete(ann)
        await session.flush()
        assert calls == [
            ("before_update", "ann2"),
            ("after_update", "ann2"),
            ("before_delete", "ann2"),
            ("after_delete", "ann2"),
        ]
    finally:
        for name, fn in listeners.items():
            event.remove(User, name, fn)


async def test_unknown_mapper_event(session: AsyncSession) -> None:
    with pytest.raises(ArgumentError, match="before_insert"):
        event.listen(User, "before_insrt", lambda *a: None)


async def test_delete_then_add_with_the_same_key_is_one_update(
    session: AsyncSession, statements: list[str]
) -> None:
    session.add(User(id=1, name="ann", fullname="Ann Smith"))
    await session.commit()
    old = await session.get_one(User, 1)
    await session.delete(old)
    new = User(id=1, name="ann2")
    session.add(new)
    statements.clear()
    await session.flush()
    # A row switch, as SQLAlchemy: no DELETE and INSERT (which would clash on the key).
    assert [s.split()[0] for s in statements] == ["UPDATE"]
    assert "fullname" not in statements[0]  # only what the new object sets and changed
    assert inspect(new).persistent
    assert inspect(old).deleted
    assert session.identity_map.get(inspect(new).key) is new
    await session.rollback()
    assert inspect(new).transient
    assert inspect(old).persistent
    assert (await session.get_one(User, 1)) is old
    assert old.name == "ann"
    await session.delete(old)
    session.add(User(id=1, name="bea"))
    await session.commit()
    assert (await session.execute(select(User.name, User.fullname))).all() == [("bea", "Ann Smith")]
