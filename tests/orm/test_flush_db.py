"""Planning and executing flushes against real databases (SQLite, and PostgreSQL when set).

States are made pending or persistent by hand, as the session would: the
planner never looks at the session.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from asyncsession import (
    AsyncSession,
    FetchedValue,
    ForeignKey,
    IntegrityError,
    StaleDataError,
    StaleDataWarning,
    String,
    func,
    select,
    text,
)
from asyncsession.engine import AsyncConnection, AsyncEngine, create_async_engine
from asyncsession.engine.events import listen
from asyncsession.orm.decl import DeclarativeBase, Mapped, mapped_column
from asyncsession.orm.state import InstanceState, instance_state
from asyncsession.orm.unitofwork import (
    MAX_INSERT_ROWS,
    FlushOutcome,
    execute_flush,
    plan_flush,
)
from asyncsession.sql.elements import ClauseElement

pytestmark = pytest.mark.anyio


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    note: Mapped[str | None]
    status: Mapped[str] = mapped_column(String(20), server_default="new")
    score: Mapped[int] = mapped_column(default=0)
    touched: Mapped[str | None] = mapped_column(onupdate=lambda: "yes")


class Address(Base):
    __tablename__ = "addresses"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    email: Mapped[str]


class Node(Base):
    __tablename__ = "nodes"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id"))
    name: Mapped[str | None]


class Doc(Base):
    __tablename__ = "docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]
    version: Mapped[int] = mapped_column()
    __mapper_args__ = {"version_id_col": version}


class Ticket(Base):
    __tablename__ = "tickets"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    title: Mapped[str]
    made: Mapped[str] = mapped_column(server_default="made")


class Pair(Base):
    __tablename__ = "pairs"
    a: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    b: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    label: Mapped[str]


class Lazy(Base):
    __tablename__ = "lazies"
    id: Mapped[int] = mapped_column(primary_key=True)
    made: Mapped[str] = mapped_column(server_default="x")
    stamp: Mapped[str | None] = mapped_column(server_onupdate=FetchedValue())
    __mapper_args__ = {"eager_defaults": False}


class Stamped(Base):
    __tablename__ = "stamped"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    stamp: Mapped[str | None] = mapped_column(server_onupdate=FetchedValue())


@pytest.fixture
async def engine(db_url: str, connect_args: dict[str, Any]) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(db_url, connect_args=connect_args)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def statements(engine: AsyncEngine) -> list[Any]:
    """Every statement the engine executes from now on."""
    seen: list[Any] = []
    listen(engine, "before_execute", lambda conn, stmt, params, options: seen.append(stmt))
    return seen


def pending(*objs: Any) -> list[InstanceState]:
    return [instance_state(o) for o in objs]


async def flush(
    conn: AsyncConnection,
    new: Sequence[Any] = (),
    dirty: Sequence[Any] = (),
    deleted: Sequence[Any] = (),
) -> FlushOutcome:
    plan = plan_flush(pending(*new), pending(*dirty), pending(*deleted), conn.dialect)
    return await execute_flush(plan, conn)


async def rows(conn: AsyncConnection, table: Any, *order: Any) -> list[tuple[Any, ...]]:
    result = await conn.execute(select(table).order_by(*order))
    return [tuple(r) for r in result.all()]


# -- INSERT ----------------------------------------------------------------------------------------


async def test_insert_fetches_keys_and_defaults_into_objects(engine: AsyncEngine) -> None:
    users = [User(name=f"u{i}") for i in range(5)] + [User(name="n", note="x", score=9)]
    async with engine.begin() as conn:
        outcome = await flush(conn, users)
        assert outcome.inserted == tuple(pending(*users))
        assert [u.id for u in users] == [1, 2, 3, 4, 5, 6]  # in add order
        assert [(u.status, u.score, u.note) for u in users[:2]] == [("new", 0, None)] * 2
        assert (users[5].score, users[5].note) == (9, "x")
        for user in users:
            state = instance_state(user)
            assert state.key == (User, (user.id,), None)
            assert not state.modified
            assert state.changed_keys() == []
        table = User.__table__
        assert await rows(conn, table, table.c.id) == [
            (u.id, u.name, u.note, "new", u.score, None) for u in users
        ]


async def test_returned_rows_are_matched_to_their_objects(engine: AsyncEngine) -> None:
    users = [User(name=f"user {i}", status=f"s{i % 7}") for i in range(1200)]
    async with engine.begin() as conn:
        await flush(conn, users)
        found = dict((await conn.execute(select(User.__table__.c.id, User.__table__.c.name))).all())
    assert len({u.id for u in users}) == 1200
    assert all(found[u.id] == u.name for u in users)


async def test_explicit_keys_are_matched_by_key(engine: AsyncEngine) -> None:
    users = [User(id=100 - i, name=f"u{100 - i}") for i in range(50)]
    async with engine.begin() as conn:
        await flush(conn, users)
        await conn.execute(User.__table__.update().values(status="changed"))
        more = [User(id=200 + i, name="x") for i in range(3)]
        await flush(conn, more)
    assert all(u.status == "new" for u in users + more)
    assert [instance_state(u).key for u in users[:2]] == [(User, (100,), None), (User, (99,), None)]


async def test_python_default_key_is_sent_and_kept(engine: AsyncEngine) -> None:
    tickets = [Ticket(title=str(i)) for i in range(4)]
    async with engine.begin() as conn:
        await flush(conn, tickets)
        stored = (await conn.execute(select(Ticket.__table__.c.id, Ticket.__table__.c.title))).all()
    assert all(isinstance(t.id, uuid.UUID) and t.made == "made" for t in tickets)
    assert {(t.id, t.title) for t in tickets} == {tuple(r) for r in stored}


async def test_server_generated_text_key_one_row_per_statement(
    engine: AsyncEngine, statements: list[Any]
) -> None:
    class Base2(DeclarativeBase):
        pass

    generate = (
        "gen_random_uuid()::text" if engine.name == "postgresql" else "(lower(hex(randomblob(16))))"
    )

    class Token(Base2):
        __tablename__ = "tokens"
        id: Mapped[str] = mapped_column(String(40), primary_key=True, server_default=text(generate))
        value: Mapped[str]

    async with engine.begin() as conn:
        await conn.run_sync(Base2.metadata.create_all)
        tokens = [Token(value=str(i)) for i in range(3)]
        del statements[:]
        await flush(conn, tokens)
        assert len(statements) == 3
        found = dict(
            (await conn.execute(select(Token.__table__.c.id, Token.__table__.c.value))).all()
        )
    assert len({t.id for t in tokens}) == 3
    assert all(found[t.id] == t.value for t in tokens)


async def test_sql_expressions_are_inserted_and_fetched(engine: AsyncEngine) -> None:
    user = User(name=func.upper("abc"), score=func.length("four"))
    async with engine.begin() as conn:
        await flush(conn, [user, User(name="plain")])
        assert (user.name, user.score) == ("ABC", 4)
        assert not isinstance(user.name, ClauseElement)
        assert instance_state(user).key == (User, (user.id,), None)


async def test_parents_before_children_with_foreign_keys_enforced(engine: AsyncEngine) -> None:
    leaf = Node(id=3, parent_id=2, name="leaf")
    root = Node(id=1, name="root")
    middle = Node(id=2, parent_id=1, name="middle")
    address = Address(user_id=1, email="a@example.com")
    user = User(id=1, name="u")
    async with engine.begin() as conn:
        await flush(conn, [leaf, address, root, middle, user])
        assert await rows(conn, Node.__table__, Node.__table__.c.id) == [
            (1, None, "root"),
            (2, 1, "middle"),
            (3, 2, "leaf"),
        ]
        assert address.id == 1


async def test_one_insert_per_batch(engine: AsyncEngine, statements: list[Any]) -> None:
    async with engine.begin() as conn:
        users = [User(name=f"u{i}", note="n") for i in range(1000)]
        del statements[:]
        await flush(conn, users)
        per_row = 4  # name, note, touched (unset: NULL), and the score default
        limit = conn.dialect.insert_batch_params or conn.dialect.max_bind_params
        batch = min(MAX_INSERT_ROWS, limit // per_row)
        # SQLite: 500-row statements; PostgreSQL: 225 (900 parameters, a cached size).
        assert len(statements) == math.ceil(1000 / batch) == (2 if limit > 2000 else 5)
        engine.dialect.max_bind_params = 30  # an instance attribute, only for this engine
        users = [User(name=f"v{i}", note="n") for i in range(95)]
        del statements[:]
        await flush(conn, users)
        assert len(statements) == math.ceil(95 / (30 // per_row)) == 14
        assert await conn.scalar(select(func.count()).select_from(User.__table__)) == 1095


async def test_statement_count_is_deterministic(engine: AsyncEngine, statements: list[Any]) -> None:
    async def one_flush(base: int) -> int:
        async with engine.begin() as conn:
            users = [User(id=base + i, name="u") for i in range(3)]
            addresses = [Address(user_id=base, email=str(i)) for i in range(4)]
            await flush(conn, addresses + users)
            users[0].name = "v"
            users[1].name = "w"
            users[2].note = "n"
            del statements[:]
            await flush(conn, [Address(user_id=base, email="x")], users, addresses[:2])
            return len(statements)

    # one INSERT, two UPDATE groups (executemany counts once), one DELETE
    assert await one_flush(10) == await one_flush(20) == 4


# -- UPDATE ----------------------------------------------------------------------------------------


async def test_update_sets_only_changed_columns(engine: AsyncEngine) -> None:
    users = [User(id=i, name=f"u{i}", note="n") for i in range(1, 4)]
    async with engine.begin() as conn:
        await flush(conn, users)
        # Someone else changes the notes: an UPDATE of the names must not touch them.
        await conn.exec_driver_sql("UPDATE users SET note = 'theirs'")
        users[0].name = "a"
        users[1].name = "b"
        outcome = await flush(conn, dirty=users)
        assert outcome.updated == tuple(pending(users[0], users[1]))
        assert await rows(conn, User.__table__, User.__table__.c.id) == [
            (1, "a", "theirs", "new", 0, "yes"),
            (2, "b", "theirs", "new", 0, "yes"),
            (3, "u3", "theirs", "new", 0, None),
        ]
        assert (users[0].touched, users[2].touched) == ("yes", None)  # Python onupdate
        assert not instance_state(users[0]).modified


async def test_update_many_rows_is_one_executemany(
    engine: AsyncEngine, statements: list[Any]
) -> None:
    users = [User(name=f"u{i}") for i in range(300)]
    async with engine.begin() as conn:
        await flush(conn, users)
        for user in users:
            user.score = user.id * 2
        del statements[:]
        await flush(conn, dirty=users)
        assert len(statements) == 1
        found = dict(
            (await conn.execute(select(User.__table__.c.id, User.__table__.c.score))).all()
        )
    assert all(found[u.id] == u.id * 2 for u in users)


async def test_update_with_sql_expression_fetches_the_result(engine: AsyncEngine) -> None:
    user = User(id=1, name="u", score=10)
    async with engine.begin() as conn:
        await flush(conn, [user])
        user.score = User.score + 5
        await flush(conn, dirty=[user])
        assert user.score == 15
        assert await conn.scalar(select(User.score)) == 15


async def test_primary_key_change_updates_by_the_old_key(engine: AsyncEngine) -> None:
    user, other = User(id=1, name="u"), User(id=2, name="o")
    async with engine.begin() as conn:
        await flush(conn, [user, other])
        old_key = instance_state(user).key
        user.id = 7
        outcome = await flush(conn, dirty=[user])
        (change,) = outcome.key_changes
        assert change.state is instance_state(user)
        assert (change.old_key, change.new_key) == (old_key, (User, (7,), None))
        assert instance_state(user).key == old_key  # the session moves it
        assert [r[:2] for r in await rows(conn, User.__table__, User.__table__.c.id)] == [
            (2, "o"),
            (7, "u"),
        ]


async def test_server_onupdate_fetched_with_eager_defaults(engine: AsyncEngine) -> None:
    thing = Stamped(id=1, name="a")
    async with engine.begin() as conn:
        await flush(conn, [thing])
        assert thing.stamp is None
        await conn.execute(Stamped.__table__.update().values(stamp="set by the server"))
        thing.name = "b"
        await flush(conn, dirty=[thing])
        assert thing.stamp == "set by the server"


async def test_without_eager_defaults_server_values_are_expired(engine: AsyncEngine) -> None:
    lazy = Lazy()
    async with engine.begin() as conn:
        await flush(conn, [lazy])
        state = instance_state(lazy)
        assert lazy.id == 1
        assert "made" not in lazy.__dict__
        assert state.expired_attributes == {"made"}
        lazy.made = "y"
        lazy.stamp = None
        await flush(conn, dirty=[lazy])
        lazy.made = "z"
        await flush(conn, dirty=[lazy])
        assert "stamp" not in lazy.__dict__  # server_onupdate, not fetched
        assert state.expired_attributes == {"stamp"}
        assert await rows(conn, Lazy.__table__) == [(1, "z", None)]


# -- versions --------------------------------------------------------------------------------------


async def test_version_counter_counts(engine: AsyncEngine) -> None:
    doc = Doc(title="t")
    async with engine.begin() as conn:
        await flush(conn, [doc])
        assert doc.version == 1
        doc.title = "t2"
        await flush(conn, dirty=[doc])
        assert doc.version == 2
        assert await rows(conn, Doc.__table__) == [(doc.id, "t2", 2)]


async def test_stale_version_raises_and_changes_no_object(engine: AsyncEngine) -> None:
    docs = [Doc(title=f"d{i}") for i in range(3)]
    async with engine.connect() as conn:
        await flush(conn, docs)
        await conn.commit()
        await conn.execute(Doc.__table__.update().where(Doc.id == docs[1].id).values(version=5))
        await conn.commit()
        for doc in docs:
            doc.title += "!"
        newcomer = User(name="new")
        gone = docs[0]
        before = [dict(d.__dict__) for d in docs]
        with pytest.raises(StaleDataError) as info:
            await flush(conn, [newcomer], docs[1:], [gone])
        assert str(info.value) == (
            "UPDATE statement on table 'docs' expected to update 2 row(s); 1 were matched."
        )
        assert [dict(d.__dict__) for d in docs] == before
        assert all(instance_state(d).changed_keys() == ["title"] for d in docs)
        assert instance_state(newcomer).key is None
        assert "id" not in newcomer.__dict__
        await conn.rollback()
        assert await rows(conn, Doc.__table__, Doc.id) == [
            (docs[0].id, "d0", 1),
            (docs[1].id, "d1", 5),
            (docs[2].id, "d2", 1),
        ]
        assert await conn.scalar(select(func.count()).select_from(User.__table__)) == 0


async def test_stale_version_on_delete(engine: AsyncEngine) -> None:
    docs = [Doc(title=f"d{i}") for i in range(2)]
    async with engine.connect() as conn:
        await flush(conn, docs)
        await conn.execute(Doc.__table__.update().where(Doc.id == docs[0].id).values(version=9))
        with pytest.raises(
            StaleDataError,
            match=r"DELETE statement on table 'docs' expected to delete 2 row\(s\); 1 were",
        ):
            await flush(conn, deleted=docs)
        await conn.rollback()


async def committed_users(engine: AsyncEngine, session: AsyncSession, n: int) -> list[User]:
    users = [User(id=i, name=f"u{i}") for i in range(1, n + 1)]
    session.add_all(users)
    await session.commit()
    return users


async def delete_elsewhere(engine: AsyncEngine, table: Any, *where: Any) -> None:
    async with engine.begin() as other:
        await other.execute(table.delete().where(*where))


@pytest.mark.parametrize("n", [1, 3])
async def test_unversioned_update_of_a_vanished_row_raises(engine: AsyncEngine, n: int) -> None:
    async with AsyncSession(engine) as session:
        users = await committed_users(engine, session, n)
        await delete_elsewhere(engine, User.__table__, User.__table__.c.id == n)
        for user in users:
            user.name += "!"
        before = [dict(u.__dict__) for u in users]
        with pytest.raises(StaleDataError) as info:
            await session.flush()
        assert str(info.value) == (
            f"UPDATE statement on table 'users' expected to update {n} row(s); "
            f"{n - 1} were matched."
        )
        assert [dict(u.__dict__) for u in users] == before
        assert all(instance_state(u).changed_keys() == ["name"] for u in users)
        assert set(session.dirty) == set(users)
        await session.rollback()
        assert not session.dirty
        remaining = (await session.execute(select(User).order_by(User.id))).scalars().all()
        assert [(u.id, u.name) for u in remaining] == [(i, f"u{i}") for i in range(1, n)]
        assert remaining == users[: n - 1]  # the same objects, refreshed


async def test_unversioned_update_counts_rows_changed_in_the_same_transaction(
    engine: AsyncEngine,
) -> None:
    users = [User(id=1, name="a"), User(id=2, name="b")]
    async with engine.connect() as conn:
        await flush(conn, users)
        await conn.execute(User.__table__.update().values(id=User.__table__.c.id + 10))
        users[1].note = "x"
        with pytest.raises(StaleDataError, match=r"expected to update 1 row\(s\); 0 were"):
            await flush(conn, dirty=users)
        await conn.rollback()


async def test_unversioned_delete_of_a_vanished_row_warns(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as session:
        users = await committed_users(engine, session, 3)
        await delete_elsewhere(engine, User.__table__, User.__table__.c.id == 2)
        for user in users:
            await session.delete(user)
        with pytest.warns(
            StaleDataWarning,
            match=r"^DELETE statement on table 'users' expected to delete 3 row\(s\); "
            r"2 were matched\.$",
        ):
            await session.flush()
        assert all(instance_state(u).deleted for u in users)
        await session.commit()
    assert await count(engine, User.__table__) == 0


async def test_unversioned_composite_key_delete_warns_when_counted(
    engine: AsyncEngine, db_url: str
) -> None:
    pairs = [Pair(a=1, b=i, label=str(i)) for i in range(3)]
    async with engine.connect() as conn:
        await flush(conn, pairs)
        await conn.execute(Pair.__table__.delete().where(Pair.__table__.c.b == 1))
        if db_url.startswith("postgresql"):
            # asyncpg's executemany reports no row count: nothing to compare.
            outcome = await flush(conn, deleted=pairs)
        else:
            with pytest.warns(StaleDataWarning, match=r"expected to delete 3 row\(s\); 2 were"):
                outcome = await flush(conn, deleted=pairs)
        assert len(outcome.deleted) == 3
        assert await rows(conn, Pair.__table__) == []
        await conn.rollback()


async def count(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)))


async def test_version_set_by_the_object_is_checked_against_the_loaded_one(
    engine: AsyncEngine,
) -> None:
    doc = Doc(title="t")
    async with engine.begin() as conn:
        await flush(conn, [doc])
        doc.version = 40
        await flush(conn, dirty=[doc])
        assert await rows(conn, Doc.__table__) == [(doc.id, "t", 40)]


# -- DELETE ----------------------------------------------------------------------------------------


async def test_deletes_children_first(engine: AsyncEngine, statements: list[Any]) -> None:
    user = User(id=1, name="u")
    addresses = [Address(user_id=1, email=str(i)) for i in range(3)]
    nodes = [Node(id=1), Node(id=2, parent_id=1), Node(id=3, parent_id=2), Node(id=4, parent_id=1)]
    async with engine.begin() as conn:
        await flush(conn, [user, *addresses, *nodes])
        del statements[:]
        outcome = await flush(
            conn, deleted=[user, nodes[0], nodes[1], nodes[2], nodes[3], *addresses]
        )
        assert len(outcome.deleted) == 8
        assert len(statements) == 5  # addresses, users; nodes in three levels
        assert await rows(conn, Node.__table__) == []
        assert await rows(conn, User.__table__) == []


async def test_composite_keys_update_and_delete(engine: AsyncEngine) -> None:
    pairs = [Pair(a=1, b=i, label=str(i)) for i in range(4)]
    async with engine.begin() as conn:
        await flush(conn, pairs)
        pairs[0].label = "x"
        pairs[1].label = "y"
        pairs[2].b = 20
        await flush(conn, dirty=pairs)
        await flush(conn, deleted=[pairs[3], pairs[1]])
        assert await rows(conn, Pair.__table__, Pair.a, Pair.b) == [(1, 0, "x"), (1, 20, "2")]


async def test_failed_flush_changes_no_object(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await flush(conn, [User(id=5, name="taken")])
        first = [User(name="a"), User(name="b")]
        clash = Address(id=1, user_id=999, email="no such user")
        with pytest.raises(IntegrityError):
            await flush(conn, [*first, clash])
        assert all(instance_state(u).key is None and "id" not in u.__dict__ for u in first)
        assert all(instance_state(u).modified for u in first)
        await conn.rollback()


@pytest.mark.parametrize("at", [0, 1, 2])
async def test_cancelled_flush_changes_no_object(engine: AsyncEngine, at: int) -> None:
    seen: list[Any] = []
    scope = anyio.CancelScope()

    async def cancel_at(conn: Any, statement: Any, params: Any, options: Any) -> None:
        seen.append(statement)
        if len(seen) == at + 1:
            scope.cancel()
            await anyio.lowlevel.checkpoint()

    async with engine.connect() as conn:
        old = [User(id=101, name="old"), User(id=102, name="gone")]
        await flush(conn, old)
        await conn.commit()
        old[0].name = "changed"
        new = [User(name="new")]
        before = [dict(o.__dict__) for o in old + new]
        listen(engine, "before_execute", cancel_at)
        with scope:
            await flush(conn, new, old[:1], old[1:])  # INSERT, UPDATE, DELETE
        assert scope.cancelled_caught
        assert len(seen) == at + 1
        assert [dict(o.__dict__) for o in old + new] == before
        assert instance_state(new[0]).key is None
        assert instance_state(old[0]).changed_keys() == ["name"]
        await conn.rollback()


async def test_tables_referencing_each_other_are_ordered_row_by_row(engine: AsyncEngine) -> None:
    class Base2(DeclarativeBase):
        pass

    class A(Base2):
        __tablename__ = "a"
        id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
        b_id: Mapped[int | None] = mapped_column(ForeignKey("b.id", use_alter=True, name="fk_a_b"))

    class B(Base2):
        __tablename__ = "b"
        id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
        a_id: Mapped[int | None] = mapped_column(ForeignKey("a.id"))

    b1, a1, a2 = B(id=1, a_id=1), A(id=1), A(id=2, b_id=1)
    async with engine.begin() as conn:
        await conn.run_sync(Base2.metadata.create_all)
        await flush(conn, [b1, a1, a2])
        assert await rows(conn, A.__table__, A.id) == [(1, None), (2, 1)]
        await flush(conn, deleted=[a1, b1, a2])  # a2, then b1, then a1
        assert await rows(conn, A.__table__) == []
        assert await rows(conn, B.__table__) == []
