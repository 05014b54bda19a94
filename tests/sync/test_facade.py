"""The blocking patterns of classic SQLAlchemy, through the facade, on both backends."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from asyncsession import (
    AsyncSession,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    UnloadedAttributeError,
    create_async_engine,
    event,
    exc,
    func,
    insert,
    inspect,
    select,
    sync,
    text,
)
from asyncsession.sync._runner import FACADE
from tests.orm.models import Base, User
from tests.sync.conftest import connect_args

PACKAGE = Path(sync.__file__).resolve().parent.parent


class LeaveBlock(Exception):
    """Raised to leave a ``with`` block the way an error would."""


def names(session: sync.Session) -> list[str]:
    return list(session.scalars(select(User.name).order_by(User.id)))


def run_in_threads(count: int, work: Callable[[int], None]) -> None:
    """Run ``work(i)`` in ``count`` threads released together; re-raise the first error."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            work(i)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a worker thread hung"
    if errors:
        raise errors[0]


# -- CRUD and implicit loads ----------------------------------------------------------------


def test_crud_with_implicit_loads(engine: sync.Engine) -> None:
    with sync.Session(engine) as session, session.begin():
        session.add_all([User(id=1, name="ann", bio="likes SQL"), User(id=2, name="bob")])

    with sync.Session(engine) as session:
        ann = session.get(User, 1)
        assert ann is not None
        assert "bio" in inspect(ann).unloaded
        assert ann.bio == "likes SQL"  # deferred: loaded on access
        session.expire(ann)
        assert ann.name == "ann"  # expired: loaded on access
        ann.name = "anna"
        session.commit()
        assert "name" in inspect(ann).unloaded  # expire_on_commit=True, as SQLAlchemy
        assert ann.name == "anna"
        bob = session.get_one(User, 2)
        session.delete(bob)
        session.commit()
        assert session.get(User, 2) is None
        assert names(session) == ["anna"]
        assert session.scalar(select(func.count()).select_from(User)) == 1


def test_the_facade_objects_are_the_async_objects(engine: sync.Engine) -> None:
    with sync.Session(engine) as session:
        user = User(id=1, name="ann")
        session.add(user)
        session.flush()
        assert isinstance(session.async_session, AsyncSession)
        assert inspect(user).session is session.async_session
        assert session.async_session.identity_map.get(inspect(user).key) is user
        assert session.get_bind() is engine
        assert session.connection().async_connection in [
            conn for conn, _, _ in session.async_session._transaction.root.connections.values()
        ]
        session.rollback()


def test_expiry_after_a_rollback_then_reading_loads(engine: sync.Engine) -> None:
    with sync.Session(engine, expire_on_commit=False) as session:
        user = User(id=1, name="ann")
        session.add(user)
        session.commit()
        assert "name" not in inspect(user).unloaded
        user.name = "changed"
        session.flush()
        session.rollback()
        assert "name" in inspect(user).unloaded
        assert user.name == "ann"


def test_merge_and_refresh(engine: sync.Engine) -> None:
    with sync.Session(engine) as session, session.begin():
        session.add(User(id=1, name="ann"))
    with sync.Session(engine) as session:
        merged = session.merge(User(id=1, name="merged"))
        session.commit()
        session.refresh(merged, ["name"])
        assert merged.name == "merged"


def test_results_are_usable_after_close_and_detached_objects_do_not_load(
    engine: sync.Engine,
) -> None:
    with sync.Session(engine) as session, session.begin():
        session.add(User(id=1, name="ann", bio="text"))
    with sync.Session(engine) as session:
        result = session.execute(select(User))
    (user,) = result.scalars().all()
    assert user.name == "ann"
    with pytest.raises(UnloadedAttributeError, match="Load it with"):
        _ = user.bio


# -- transactions ----------------------------------------------------------------------------


def test_savepoints(engine: sync.Engine) -> None:
    with sync.Session(engine) as session:
        session.add(User(id=1, name="kept"))
        with session.begin_nested():
            session.add(User(id=2, name="released"))
        savepoint = session.begin_nested()
        assert session.in_nested_transaction()
        session.add(User(id=3, name="dropped"))
        savepoint.rollback()
        with contextlib.suppress(LeaveBlock), session.begin_nested():
            session.add(User(id=4, name="raised"))
            session.flush()
            raise LeaveBlock
        assert not session.in_nested_transaction()
        session.commit()
        assert names(session) == ["kept", "released"]


def test_rollback_restores_the_objects(engine: sync.Engine) -> None:
    with sync.Session(engine) as session:
        session.add(User(id=1, name="ann"))
        session.commit()
        pending = User(id=2, name="pending")
        session.add(pending)
        session.flush()
        session.rollback()
        assert pending not in session
        assert inspect(pending).transient
        assert names(session) == ["ann"]


def test_begin_block_commits_and_rolls_back(engine: sync.Engine) -> None:
    factory = sync.sessionmaker(engine)
    with factory.begin() as session:
        session.add(User(id=1, name="committed"))
    with contextlib.suppress(LeaveBlock), factory.begin() as session:
        session.add(User(id=2, name="rolled back"))
        raise LeaveBlock
    with factory() as session:
        assert names(session) == ["committed"]
        assert session.expire_on_commit is True


def test_integrity_error_keeps_its_type_and_the_callers_frames(engine: sync.Engine) -> None:
    with sync.Session(engine) as session:
        session.add(User(id=1, name="first"))
        session.commit()
        session.add(User(id=1, name="duplicate"))
        with pytest.raises(exc.IntegrityError) as caught:
            session.commit()
        assert type(caught.value) is exc.IntegrityError
        frames = traceback.extract_tb(caught.value.__traceback__)
        functions = {frame.name for frame in frames}
        files = {Path(frame.filename).resolve() for frame in frames}
        assert "test_integrity_error_keeps_its_type_and_the_callers_frames" in functions
        assert PACKAGE / "sync" / "session.py" in files  # the facade method
        assert PACKAGE / "orm" / "session.py" in files  # the coroutine that failed
        with pytest.raises(exc.PendingRollbackError):
            session.execute(select(User))
        session.rollback()
        assert names(session) == ["first"]


# -- Core: engine and connection -------------------------------------------------------------


def test_connection_api(engine: sync.Engine) -> None:
    users = User.__table__
    with engine.connect() as conn:
        assert not conn.in_transaction()
        with conn.begin() as transaction:
            conn.execute(insert(users), [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
            assert transaction.is_active
        with conn.begin_nested():
            conn.execute(insert(users), {"id": 3, "name": "kept"})
        savepoint = conn.begin_nested()
        conn.execute(insert(users), {"id": 4, "name": "dropped"})
        savepoint.rollback()
        conn.commit()
        assert list(conn.scalars(select(users.c.id).order_by(users.c.id))) == [1, 2, 3]
        assert conn.exec_driver_sql("SELECT 41 + 1").scalar() == 42
        conn.rollback()  # end the autobegun transaction, as in SQLAlchemy 2.x
        with contextlib.suppress(LeaveBlock), conn.begin():
            conn.execute(insert(users), {"id": 5, "name": "rolled back"})
            raise LeaveBlock
    with engine.begin() as conn:
        assert conn.scalar(select(func.count()).select_from(users)) == 3
    assert conn.closed


def test_create_all_with_engine_and_connection(engine: sync.Engine) -> None:
    metadata = MetaData()
    notes = Table("sync_notes", metadata, Column("id", Integer, primary_key=True))
    tags = Table("sync_tags", metadata, Column("name", String(20), primary_key=True))
    metadata.create_all(engine, tables=[notes])
    metadata.create_all(engine)  # checkfirst: notes exists, tags is created
    with engine.begin() as conn:
        conn.execute(insert(notes), {"id": 1})
        conn.execute(insert(tags), {"name": "x"})
    with engine.connect() as conn:
        metadata.drop_all(conn)
        conn.commit()
        metadata.create_all(conn)
        conn.commit()
        assert conn.scalar(select(func.count()).select_from(notes)) == 0
    metadata.drop_all(engine)


def test_engine_events_reach_the_async_engine(engine: sync.Engine) -> None:
    statements: list[Any] = []
    event.listen(engine, "before_execute", lambda conn, stmt, *rest: statements.append(stmt))
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert len(statements) == 1


# -- threads and event loops -----------------------------------------------------------------


def test_eight_threads_with_their_own_sessions(engine: sync.Engine) -> None:
    factory = sync.sessionmaker(engine)

    def work(i: int) -> None:
        for k in range(5):
            with factory.begin() as session:
                session.add(User(id=i * 100 + k, name=f"t{i}-{k}"))
        with factory() as session:
            user = session.get_one(User, i * 100)
            session.expire(user)
            assert user.name == f"t{i}-0"  # an implicit load in this thread
            assert len(session.scalars(select(User).where(User.id >= i * 100)).all()) >= 5

    loop_thread = FACADE.thread_id
    run_in_threads(8, work)
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 40
    assert FACADE.thread_id == loop_thread  # one loop served them all


def test_an_engine_serves_threads_while_one_holds_a_transaction(engine: sync.Engine) -> None:
    inside = threading.Event()
    done = threading.Event()
    seen: list[int] = []

    def holder() -> None:
        with sync.Session(engine) as session:
            session.add(User(id=1, name="uncommitted"))
            session.flush()  # a connection and transaction held across the wait
            inside.set()
            assert done.wait(30)
            session.commit()

    def reader() -> None:
        assert inside.wait(30)
        with engine.connect() as conn:
            seen.append(conn.scalar(select(func.count()).select_from(User.__table__)))
        done.set()

    threads = [threading.Thread(target=holder), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert seen == [0]
    with sync.Session(engine) as session:
        assert names(session) == ["uncommitted"]


def test_scoped_session_is_per_thread(engine: sync.Engine) -> None:
    Session = sync.scoped_session(sync.sessionmaker(engine))
    mine = Session()
    assert Session() is mine
    others: list[sync.Session] = []
    run_in_threads(2, lambda i: (others.append(Session()), Session.remove()))
    assert len({id(s) for s in others}) == 2
    assert mine not in others
    Session.add(User(id=1, name="scoped"))
    Session.commit()
    assert Session.get(User, 1).name == "scoped"
    Session.remove()
    assert not Session.has()


def test_notebook_like_use_from_a_running_event_loop(
    engine: sync.Engine, db_url: str, schema: str | None, app_name: str
) -> None:
    outcome: list[Any] = []

    async def cell() -> None:
        asyncio.get_running_loop()  # this thread runs a loop, as a notebook's does
        with sync.Session(engine) as session, session.begin():
            session.add(User(id=1, name="from a notebook"))
        with sync.Session(engine) as session:
            user = session.get_one(User, 1)
            session.expire(user)
            outcome.append(user.name)  # loads: a facade object
        # The same thread's async code keeps explicit IO.
        async_engine = create_async_engine(db_url, connect_args=connect_args(schema, app_name))
        try:
            async with AsyncSession(async_engine) as async_session:
                user = await async_session.get(User, 1)
                async_session.expire(user)
                with pytest.raises(UnloadedAttributeError):
                    _ = user.name
                outcome.append(await user.awaitable_attrs.name)
        finally:
            await async_engine.dispose()

    thread = threading.Thread(target=lambda: asyncio.run(cell()))
    thread.start()
    thread.join(60)
    assert outcome == ["from a notebook", "from a notebook"]


def test_facade_call_on_the_facade_loop_thread_raises(engine: sync.Engine) -> None:
    def listener(*args: Any) -> None:
        engine.connect()  # a blocking call from code that runs on the facade loop

    event.listen(engine, "before_execute", listener)
    with engine.connect() as conn:
        with pytest.raises(exc.InvalidRequestError, match="own event-loop thread") as caught:
            conn.execute(text("SELECT 1"))
        assert "AsyncSession" in str(caught.value)
        event.remove(engine, "before_execute", listener)
        assert conn.execute(text("SELECT 1")).scalar() == 1


def test_async_tasks_on_the_facade_loop_never_load_implicitly(engine: sync.Engine) -> None:
    with sync.Session(engine) as session:
        user = User(id=1, name="ann")
        session.add(user)
        session.commit()  # expired

        async def read_on_the_loop() -> str:
            return user.name

        with pytest.raises(UnloadedAttributeError, match="async code never loads"):
            FACADE.call(read_on_the_loop)
        assert user.name == "ann"  # here, in the caller's thread, it loads


def test_the_loader_changes_nothing_for_objects_it_does_not_drive(engine: sync.Engine) -> None:
    with sync.Session(engine) as session:  # installs the loader in this thread's context
        session.add(User(id=1, name="ann"))
        session.commit()
        user = session.get_one(User, 1)
        session.expire(user)
    # Detached now: the same error here as in a thread that never used the facade.
    messages: list[str] = []

    def read() -> None:
        with pytest.raises(UnloadedAttributeError) as caught:
            _ = user.name
        messages.append(str(caught.value))

    read()
    thread = threading.Thread(target=read)
    thread.start()
    thread.join(30)
    assert len(messages) == 2
    assert messages[0] == messages[1]


def test_two_phase_commit(pg_url: str, pg_twophase: str, app_name: str) -> None:
    engine = sync.create_engine(pg_url, connect_args=connect_args(pg_twophase, app_name))
    Base.metadata.create_all(engine)
    try:
        with sync.Session(engine, twophase=True) as session:
            session.add(User(name="ann"))
            session.prepare()
            session.commit()
        with engine.connect() as conn:
            transaction = conn.begin_twophase("facade")
            assert isinstance(transaction, sync.TwoPhaseTransaction)
            assert transaction.xid == "facade"
            conn.execute(User.__table__.insert(), {"name": "bob"})
            transaction.prepare()
            assert conn.recover_twophase() == ["facade"]
            transaction.commit()
            transaction = conn.begin_twophase("facade-2")
            transaction.prepare()
            conn.invalidate()  # the server keeps the prepared transaction
            with pytest.raises(exc.InvalidRequestError, match="commit\\(\\) or rollback\\(\\)"):
                conn.rollback_prepared("facade-2")
            transaction.rollback()  # on a fresh connection: prepared transactions outlive theirs
            assert conn.recover_twophase() == []
        with sync.Session(engine) as session:
            assert session.scalars(select(User.name).order_by(User.name)).all() == ["ann", "bob"]
    finally:
        engine.dispose()
