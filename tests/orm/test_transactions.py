"""The session's transactions: the state machine (pure), then commit, rollback and
savepoints against SQLite and PostgreSQL, failed flushes, joining an outer
transaction, and concurrent use of one session.

Outcomes follow SQLAlchemy 2.x: a rollback expunges what was added in the
transaction, turns what was inserted transient again, restores what was
deleted and expires what was changed.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from asyncsession import (
    AsyncEngine,
    AsyncSession,
    ConcurrentUseError,
    IllegalStateChangeError,
    IntegrityError,
    InvalidRequestError,
    PendingRollbackError,
    StaleDataError,
    UnloadedAttributeError,
    event,
    func,
    inspect,
    select,
    update,
)
from asyncsession.orm.transaction import (
    TRANSITIONS,
    SessionTransaction,
    TxState,
    check_transition,
    target_state,
)
from tests.orm.models import Keyword, User, Versioned, count_rows, engine_for, is_pg

# -- the state machine, without a database ------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "state"), list(itertools.product(sorted(TRANSITIONS), list(TxState)))
)
def test_check_transition_over_every_pair(operation: str, state: TxState) -> None:
    allowed, _ = TRANSITIONS[operation]
    original = ValueError("the original failure")
    if state in allowed:
        check_transition(operation, state, original)
    elif state is TxState.DEACTIVE:
        with pytest.raises(PendingRollbackError) as err:
            check_transition(operation, state, original)
        message = str(err.value)
        assert f"Can't {operation}" in message
        assert "ValueError: the original failure" in message
        assert "rollback()" in message
    else:
        with pytest.raises(IllegalStateChangeError) as illegal:
            check_transition(operation, state, original)
        assert f"Can't {operation}" in str(illegal.value)
        assert state.name in str(illegal.value)


def test_the_table() -> None:
    assert set(TRANSITIONS) >= {"execute", "flush", "commit", "rollback", "close", "begin_nested"}
    # rollback and close are the way out of every failed state
    assert TxState.DEACTIVE in TRANSITIONS["rollback"][0]
    assert TRANSITIONS["close"][0] == frozenset(TxState)
    assert target_state("commit", TxState.ACTIVE) is TxState.COMMITTED
    assert target_state("rollback", TxState.DEACTIVE) is TxState.CLOSED
    assert target_state("execute", TxState.ACTIVE) is TxState.ACTIVE
    assert target_state("fail", TxState.ACTIVE) is TxState.DEACTIVE


def test_pending_rollback_without_an_original_error() -> None:
    with pytest.raises(PendingRollbackError, match="DEACTIVE") as err:
        check_transition("flush", TxState.DEACTIVE)
    assert "Original error" not in str(err.value)


def test_fail_deactivates_the_level_and_its_parents() -> None:
    root = SessionTransaction(None, None, False, "autobegin")
    savepoint = SessionTransaction(None, root, True, "begin_nested")
    inner = SessionTransaction(None, savepoint, True, "begin_nested")
    error = RuntimeError("x")
    savepoint.fail(error)
    assert (root.state, savepoint.state, inner.state) == (
        TxState.DEACTIVE,
        TxState.DEACTIVE,
        TxState.ACTIVE,
    )
    assert root.error is error
    assert savepoint.error is error
    assert inner.root is root
    assert not root.is_active
    with pytest.raises(PendingRollbackError, match="RuntimeError: x"):
        root.check("execute")
    later = RuntimeError("later")
    savepoint.fail(later)
    assert root.error is error  # the first failure is the one that is reported


def test_a_released_savepoint_hands_its_history_to_its_parent() -> None:
    root = SessionTransaction(None, None, False, "autobegin")
    savepoint = SessionTransaction(None, root, True, "begin_nested")
    a, b = object(), object()
    root.key_switches[a] = ("old",)  # type: ignore[index]
    savepoint.key_switches[a] = ("newer",)  # type: ignore[index]
    savepoint.inserted[b] = None  # type: ignore[index]
    savepoint.dirty.add(a)  # type: ignore[arg-type]
    savepoint.merge_into_parent()
    assert root.key_switches[a] == ("old",)  # type: ignore[index]
    assert b in root.inserted
    assert a in root.dirty


# -- against the databases ----------------------------------------------------------------------

db = pytest.mark.anyio


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


async def committed_names(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.scalars(select(User.name).order_by(User.name))).all())


@db
async def test_autobegin(engine: AsyncEngine, session: AsyncSession) -> None:
    assert not session.in_transaction()
    session.add(User(name="ann"))
    await session.flush()
    assert session.in_transaction()
    assert not session.in_nested_transaction()
    root = session.get_transaction()
    assert root is not None
    assert root.is_active
    assert root.origin == "autobegin"
    await session.commit()
    assert not session.in_transaction()
    assert engine.pool.checkedout() == 0
    await session.execute(select(User))
    assert session.in_transaction()
    assert session.get_transaction() is not root
    await session.commit()


@db
async def test_autobegin_off(engine: AsyncEngine) -> None:
    async with AsyncSession(engine, autobegin=False) as session:
        with pytest.raises(InvalidRequestError, match="autobegin"):
            await session.execute(select(User))
        async with session.begin():
            session.add(User(name="ann"))
        with pytest.raises(InvalidRequestError, match="autobegin"):
            await session.scalar(select(func.count()).select_from(User))
    assert await committed_names(engine) == ["ann"]


@db
async def test_commit_makes_changes_visible(engine: AsyncEngine, session: AsyncSession) -> None:
    session.add_all([User(name="ann"), User(name="bob")])
    await session.flush()
    assert await committed_names(engine) == []
    await session.commit()
    assert await committed_names(engine) == ["ann", "bob"]


@db
async def test_rollback_outcomes(engine: AsyncEngine, session: AsyncSession) -> None:
    kept, changed, removed, marked = (User(name=n) for n in ("kept", "changed", "removed", "m"))
    session.add_all([kept, changed, removed, marked])
    await session.commit()
    ids = {u.name: u.id for u in (kept, changed, removed, marked)}

    added = User(name="added")  # pending, never flushed
    flushed = User(name="flushed")  # inserted in the transaction
    session.add_all([added, flushed])
    await session.flush()
    session.add(added_late := User(name="late"))
    changed.name = "changed in txn"
    await session.delete(removed)
    await session.flush()
    await session.delete(marked)  # marked, not flushed
    kept.fullname = "unflushed change"

    await session.rollback()

    assert inspect(added).transient
    assert inspect(added_late).transient
    assert inspect(flushed).transient
    assert inspect(flushed).key is None
    assert flushed.name == "flushed"  # a transient object keeps its values
    assert inspect(removed).persistent
    assert removed in session
    assert inspect(marked).persistent
    assert not session.deleted
    for user in (kept, changed, removed, marked):
        with pytest.raises(UnloadedAttributeError):
            _ = user.name  # everything in the session is expired
    assert await session.get(User, ids["changed"]) is changed
    assert changed.name == "changed"
    assert await kept.awaitable_attrs.fullname is None
    assert kept.name == "kept"
    assert not session.dirty
    assert not session.new
    assert await committed_names(engine) == ["changed", "kept", "m", "removed"]

    session.add(flushed)  # a transient object can be added again
    await session.commit()
    assert await committed_names(engine) == ["changed", "flushed", "kept", "m", "removed"]


@db
async def test_rollback_repairs_identity_keys(session: AsyncSession) -> None:
    ann = User(id=1, name="ann")
    session.add(ann)
    await session.commit()
    ann.id = 100
    await session.flush()
    assert inspect(ann).identity == (100,)
    assert await session.get(User, 100) is ann
    await session.rollback()
    assert inspect(ann).identity == (1,)
    assert await session.get(User, 1) is ann
    assert await session.get(User, 100) is None
    assert ann.id == 1


@db
async def test_expire_on_commit(engine: AsyncEngine) -> None:
    async with AsyncSession(engine, expire_on_commit=True) as session:
        ann = User(name="ann")
        session.add(ann)
        await session.commit()
        with pytest.raises(UnloadedAttributeError, match=r"User\.name"):
            _ = ann.name
        assert await ann.awaitable_attrs.name == "ann"
    async with AsyncSession(engine) as session:
        bob = User(name="bob")
        session.add(bob)
        await session.commit()
        assert bob.name == "bob"  # the default: nothing expires


# -- savepoints ---------------------------------------------------------------------------------


@db
async def test_savepoint_block_rolls_back_only_its_changes(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    outer, changed, removed = User(name="outer"), User(name="changed"), User(name="removed")
    session.add_all([changed, removed])
    await session.commit()
    session.add(outer)
    await session.flush()
    outer.fullname = "outer change"

    with pytest.raises(RuntimeError, match="undo"):  # noqa: PT012 - the block is the subject
        async with session.begin_nested() as savepoint:
            assert session.in_nested_transaction()
            assert session.get_nested_transaction() is savepoint
            inner, inner_pending = User(name="inner"), User(name="inner pending")
            session.add(inner)
            await session.flush()
            changed.name = "changed inside"
            await session.delete(removed)
            await session.flush()
            session.add(inner_pending)
            raise RuntimeError("undo")

    assert not session.in_nested_transaction()
    assert session.in_transaction()
    assert inspect(inner).transient
    assert inspect(inner_pending).transient
    assert inspect(removed).persistent
    assert removed.name == "removed"
    with pytest.raises(UnloadedAttributeError):
        _ = changed.name  # expired: it changed inside
    assert await changed.awaitable_attrs.name == "changed"
    assert inspect(outer).persistent
    assert outer.fullname == "outer change"
    await session.commit()
    assert await committed_names(engine) == ["changed", "outer", "removed"]


@db
async def test_savepoint_block_releases_on_success(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    async with session.begin_nested():
        session.add(User(name="inside"))
    assert not session.in_nested_transaction()
    assert await committed_names(engine) == []
    await session.commit()
    assert await committed_names(engine) == ["inside"]


@db
async def test_awaited_savepoint_commit_and_rollback(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    session.add(User(name="outer"))
    sp = await session.begin_nested()
    inside = User(name="rolled back")
    session.add(inside)
    await session.flush()
    await sp.rollback()
    assert inspect(inside).transient
    assert not session.in_nested_transaction()

    sp = await session.begin_nested()
    session.add(User(name="released"))
    await sp.commit()
    assert sp.state is TxState.COMMITTED
    with pytest.raises(InvalidRequestError, match="already ended"):
        await sp.commit()
    await sp.rollback()  # rolling back an ended level does nothing
    await session.commit()
    assert await committed_names(engine) == ["outer", "released"]


@db
async def test_nested_savepoints(engine: AsyncEngine, session: AsyncSession) -> None:
    sp1 = await session.begin_nested()
    a = User(name="a")
    session.add(a)
    sp2 = await session.begin_nested()
    b = User(name="b")
    session.add(b)
    await session.flush()
    with pytest.raises(InvalidRequestError, match="still open"):
        await sp1.commit()
    await sp1.rollback()  # takes the inner savepoint with it
    assert inspect(a).transient
    assert inspect(b).transient
    assert sp2.state is TxState.CLOSED
    assert not session.in_nested_transaction()

    async with session.begin_nested():
        session.add(User(name="c"))
        async with session.begin_nested():
            session.add(User(name="d"))
        with pytest.raises(ValueError, match="inner"):  # noqa: PT012 - the block is the subject
            async with session.begin_nested():
                session.add(User(name="e"))
                raise ValueError("inner")
    await session.commit()
    assert await committed_names(engine) == ["c", "d"]


@db
async def test_commit_inside_a_savepoint_commits_everything(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    session.add(User(name="outer"))
    async with session.begin_nested():
        session.add(User(name="inner"))
        await session.commit()
        assert not session.in_transaction()
    assert await committed_names(engine) == ["inner", "outer"]


@db
async def test_rollback_inside_a_savepoint_rolls_back_everything(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    outer = User(name="outer")
    session.add(outer)
    async with session.begin_nested():
        session.add(inner := User(name="inner"))
        await session.flush()
        await session.rollback()
    assert inspect(outer).transient
    assert inspect(inner).transient
    assert not session.in_transaction()
    assert await committed_names(engine) == []


@db
async def test_savepoint_skips_a_failing_row(engine: AsyncEngine, session: AsyncSession) -> None:
    """SQLAlchemy's documented pattern: a failed savepoint leaves the outer transaction usable."""
    session.add(Keyword(name="dup"))
    await session.flush()
    skipped = []
    for name in ("dup", "new", "dup", "other"):
        keyword = Keyword(name=name)
        try:
            async with session.begin_nested():
                session.add(keyword)
        except IntegrityError:
            skipped.append(name)
            assert inspect(keyword).transient
    assert skipped == ["dup", "dup"]
    assert session.is_active
    await session.commit()
    assert await count_rows(engine, Keyword) == 3


@db
async def test_rolling_back_a_failed_savepoint_reactivates_the_outer_transaction(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    session.add(Keyword(name="dup"))
    await session.flush()

    savepoint = await session.begin_nested()
    session.add(Keyword(name="dup"))
    with pytest.raises(IntegrityError):
        await session.flush()
    assert not session.is_active
    with pytest.raises(PendingRollbackError, match="IntegrityError"):
        await session.execute(select(Keyword))
    await savepoint.rollback()
    assert session.is_active

    with pytest.raises(IntegrityError):  # noqa: PT012 - the block is the subject
        async with session.begin_nested():
            session.add(Keyword(name="dup"))
            await session.flush()
    assert session.is_active
    session.add(Keyword(name="fine"))
    await session.commit()
    async with engine.connect() as conn:
        stored = (await conn.scalars(select(Keyword.name).order_by(Keyword.name))).all()
    assert stored == ["dup", "fine"]


# -- async with session.begin() -------------------------------------------------------------------


@db
async def test_begin_block_commits_or_rolls_back(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    async with session.begin() as txn:
        assert txn is session.get_transaction()
        assert txn.origin == "begin"
        session.add(User(name="committed"))
    assert not session.in_transaction()
    assert await committed_names(engine) == ["committed"]

    with pytest.raises(KeyError):  # noqa: PT012 - the block is the subject
        async with session.begin():
            session.add(lost := User(name="lost"))
            await session.flush()
            raise KeyError("stop")
    assert inspect(lost).transient
    assert await committed_names(engine) == ["committed"]
    assert engine.pool.checkedout() == 0


@db
async def test_begin_while_a_transaction_is_open(session: AsyncSession) -> None:
    await session.execute(select(User))
    with pytest.raises(InvalidRequestError, match="already begun"):
        session.begin()
    await session.rollback()
    session.add(User(name="ann"))  # autobegun, but nothing sent yet: begin() takes it over
    async with session.begin() as txn:
        assert txn.origin == "begin"


@db
async def test_commit_inside_a_begin_block_is_an_error_on_leaving(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    with pytest.raises(InvalidRequestError, match="committed inside the block"):  # noqa: PT012 - the block is the subject
        async with session.begin():
            session.add(User(name="ann"))
            await session.commit()
    assert await committed_names(engine) == ["ann"]


@db
async def test_awaited_begin_and_its_commit(engine: AsyncEngine, session: AsyncSession) -> None:
    txn = await session.begin()
    session.add(User(name="ann"))
    await txn.commit()
    assert txn.state is TxState.COMMITTED
    assert not session.in_transaction()
    txn = await session.begin()
    session.add(User(name="bob"))
    await txn.rollback()
    assert await committed_names(engine) == ["ann"]


# -- failures -----------------------------------------------------------------------------------


@db
async def test_failed_flush_needs_a_rollback(engine: AsyncEngine, session: AsyncSession) -> None:
    [ann] = [User(name="ann")]
    session.add(ann)
    session.add(Keyword(name="k"))
    await session.commit()
    session.add(Keyword(name="k"))
    with pytest.raises(IntegrityError) as failure:
        await session.flush()
    original = type(failure.value).__name__

    assert not session.is_active
    attempts: list[Any] = [
        session.flush,
        session.commit,
        lambda: session.execute(select(User)),
        lambda: session.scalar(select(User.name)),
        lambda: session.get(User, 12345),
        lambda: session.refresh(ann),
        lambda: session.merge(User(id=ann.id, name="merged")),
        lambda: session.connection(),
        session.begin_nested,
    ]
    for attempt in attempts:
        with pytest.raises(PendingRollbackError, match=f"rollback\\(\\).*{original}"):
            await attempt()
    session.add(User(name="added while failed"))
    with pytest.raises(PendingRollbackError):
        await session.flush()

    await session.rollback()
    assert session.is_active
    session.add(User(name="after"))
    await session.commit()
    assert await committed_names(engine) == ["after", "ann"]
    assert await count_rows(engine, Keyword) == 1


@db
async def test_stale_version_fails_the_flush(engine: AsyncEngine, session: AsyncSession) -> None:
    doc = Versioned(name="draft")
    session.add(doc)
    await session.commit()
    assert doc.version_id == 1
    async with engine.begin() as conn:  # someone else saves a new version meanwhile
        await conn.execute(
            update(Versioned).values(name="theirs", version_id=Versioned.version_id + 1)
        )
    doc.name = "mine"
    with pytest.raises(StaleDataError, match="versioned"):
        await session.flush()
    with pytest.raises(PendingRollbackError, match="StaleDataError"):
        await session.commit()
    await session.rollback()
    await session.refresh(doc)
    assert (doc.name, doc.version_id) == ("theirs", 2)
    doc.name = "mine after all"
    await session.commit()
    assert doc.version_id == 3


@db
async def test_failed_statement_needs_a_rollback(session: AsyncSession) -> None:
    await session.execute(select(User))
    with pytest.raises(Exception) as failure:
        await session.execute(select(func.no_such_function()))
    assert not isinstance(failure.value, PendingRollbackError)
    with pytest.raises(PendingRollbackError, match="no_such_function"):
        await session.execute(select(User))
    await session.rollback()
    assert (await session.execute(select(User))).all() == []


@db
async def test_error_in_a_listener_deactivates(session: AsyncSession) -> None:
    def broken(sess: AsyncSession, context: Any, instances: Any) -> None:
        raise RuntimeError("listener failed")

    event.listen(session, "before_flush", broken)
    session.add(User(name="ann"))
    with pytest.raises(RuntimeError, match="listener failed"):
        await session.flush()
    with pytest.raises(PendingRollbackError, match="listener failed"):
        await session.commit()
    await session.rollback()
    event.remove(session, "before_flush", broken)
    await session.commit()


# -- a session inside an outer transaction (the test-fixture pattern) ------------------------------


@db
@pytest.mark.parametrize("mode", ["create_savepoint"])
async def test_join_an_outer_transaction(engine: AsyncEngine, mode: str) -> None:
    conn = await engine.connect()
    try:
        outer = await conn.begin()
        session = AsyncSession(bind=conn, join_transaction_mode=mode)
        session.add(User(name="ann"))
        await session.commit()  # releases the session's savepoint only
        assert conn.in_transaction()
        assert outer.is_active
        assert not conn.closed
        assert await conn.scalar(select(func.count()).select_from(User)) == 1

        session.add(User(name="bob"))
        await session.flush()
        await session.rollback()  # back to the session's savepoint
        assert await conn.scalar(select(func.count()).select_from(User)) == 1
        await session.close()
        assert not conn.closed

        await outer.rollback()
        assert await conn.scalar(select(func.count()).select_from(User)) == 0
    finally:
        await conn.close()
    assert await committed_names(engine) == []
    assert engine.pool.checkedout() == 0


@db
async def test_bad_join_transaction_mode(engine: AsyncEngine) -> None:
    with pytest.raises(Exception, match="join_transaction_mode"):
        AsyncSession(engine, join_transaction_mode="sometimes")


# -- one session, one task ----------------------------------------------------------------------


@db
async def test_concurrent_use_is_refused_at_once(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    session.add(User(name="ann"))
    await session.commit()
    entered, release = anyio.Event(), anyio.Event()

    async def block(conn: Any, statement: Any, parameters: Any, options: Any) -> None:
        if not release.is_set():
            entered.set()
            await release.wait()

    event.listen(engine, "before_execute", block)
    results: list[Any] = []

    async def first() -> None:
        result = await session.execute(select(User.name))
        results.extend(result.scalars().all())

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        await entered.wait()
        await anyio.wait_all_tasks_blocked()
        for attempt in (
            lambda: session.execute(select(User)),
            lambda: session.get(User, 1),
            session.flush,
            session.commit,
            session.rollback,
            session.close,
        ):
            with pytest.raises(ConcurrentUseError, match=r"busy with execute\(\)"):
                await attempt()
        with pytest.raises(ConcurrentUseError, match="busy"):
            session.add(User(name="bob"))
        release.set()
    assert results == ["ann"]
    assert session.is_active
    assert not session.new
    await session.commit()
    assert await committed_names(engine) == ["ann"]
