"""join_transaction_mode: a session bound to a connection already in a transaction (the
test-fixture pattern), on SQLite and PostgreSQL.

SQLAlchemy 2.x's modes (its documentation of ``Session.join_transaction_mode``):

* ``create_savepoint``: the session works in a SAVEPOINT of its own; its commit
  releases it, its rollback and close roll back to it; the outer transaction
  is never ended by the session.
* ``rollback_only``: the session uses the outer transaction; its commit does not
  commit it (the flushed rows stay in it), its rollback rolls it back, its close
  leaves it alone.
* ``control_fully``: the session takes the outer transaction over: commit
  commits it, rollback and close roll it back.
* ``conditional_savepoint`` (the default): ``create_savepoint`` when the
  connection is inside a savepoint, else ``rollback_only``.

A failed flush deactivates the session until ``rollback()``/``close()``; as in
SQLAlchemy, it rolls a joined outer transaction (rollback_only, control_fully)
back at once, and leaves a create_savepoint session's outer transaction usable.
Each case checks the outer transaction's state and the rows the connection sees
and a fresh connection sees (committed) afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from asyncsession import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    IntegrityError,
    PendingRollbackError,
    inspect,
    select,
)
from asyncsession.engine import TransactionState
from tests.orm.models import User, engine_for, is_pg

pytestmark = pytest.mark.anyio

ANN_BEFORE = ["ann", "before"]


@pytest.fixture
def schema(db_url: str, request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("pg_schema") if is_pg(db_url) else None


@pytest.fixture
async def engine(db_url: str, schema: str | None) -> AsyncIterator[AsyncEngine]:
    async with engine_for(db_url, schema) as engine:
        yield engine


async def names(conn: AsyncConnection) -> list[str]:
    return list((await conn.scalars(select(User.name).order_by(User.name))).all())


async def committed(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return await names(conn)


async def commit(session: AsyncSession) -> None:
    session.add(User(name="ann"))
    await session.commit()


async def rollback(session: AsyncSession) -> None:
    session.add(User(name="ann"))
    await session.flush()
    await session.rollback()


async def close(session: AsyncSession) -> None:
    session.add(User(name="ann"))
    await session.flush()
    await session.close()


async def failed_flush(session: AsyncSession) -> None:
    session.add(User(name="ann"))
    await session.flush()
    session.add(User(id=100, name="twin of before"))  # the primary key of "before"
    with pytest.raises(IntegrityError):
        await session.flush()
    with pytest.raises(PendingRollbackError, match="IntegrityError"):
        await session.execute(select(User))


async def failed_flush_then_rollback(session: AsyncSession) -> None:
    await failed_flush(session)
    await session.rollback()


async def failed_flush_then_close(session: AsyncSession) -> None:
    await failed_flush(session)
    await session.close()


ACTIONS = {
    "commit": commit,
    "rollback": rollback,
    "close": close,
    "failed_flush_then_rollback": failed_flush_then_rollback,
    "failed_flush_then_close": failed_flush_then_close,
}

# (mode, action) -> (outer transaction still active, names the connection sees, committed names)
EXPECTED: dict[tuple[str, str], tuple[bool, list[str], list[str]]] = {
    ("create_savepoint", "commit"): (True, ANN_BEFORE, []),
    ("create_savepoint", "rollback"): (True, ["before"], []),
    ("create_savepoint", "close"): (True, ["before"], []),
    ("create_savepoint", "failed_flush_then_rollback"): (True, ["before"], []),
    ("create_savepoint", "failed_flush_then_close"): (True, ["before"], []),
    ("rollback_only", "commit"): (True, ANN_BEFORE, []),
    ("rollback_only", "rollback"): (False, [], []),
    ("rollback_only", "close"): (True, ANN_BEFORE, []),
    ("rollback_only", "failed_flush_then_rollback"): (False, [], []),
    ("rollback_only", "failed_flush_then_close"): (False, [], []),
    ("control_fully", "commit"): (False, ANN_BEFORE, ANN_BEFORE),
    ("control_fully", "rollback"): (False, [], []),
    ("control_fully", "close"): (False, [], []),
    ("control_fully", "failed_flush_then_rollback"): (False, [], []),
    ("control_fully", "failed_flush_then_close"): (False, [], []),
}


@pytest.mark.parametrize("action", list(ACTIONS))
@pytest.mark.parametrize(
    "mode", ["create_savepoint", "rollback_only", "control_fully", "conditional_savepoint"]
)
async def test_join_an_outer_transaction(engine: AsyncEngine, mode: str, action: str) -> None:
    # The default, outside a savepoint, behaves as rollback_only.
    effective = "rollback_only" if mode == "conditional_savepoint" else mode
    active, seen, done = EXPECTED[effective, action]
    async with engine.connect() as conn:
        outer = await conn.begin()
        await conn.execute(User.__table__.insert(), {"id": 100, "name": "before"})
        session = AsyncSession(conn, join_transaction_mode=mode)
        await ACTIONS[action](session)
        assert outer.is_active is active
        assert conn.in_transaction() is active
        if not active:
            expected = TransactionState.COMMITTED if done else TransactionState.ROLLED_BACK
            assert outer.state is expected
        assert not conn.closed
        assert await names(conn) == seen
        assert await committed(engine) == done
        await session.close()
        await conn.rollback()
    assert await committed(engine) == done
    assert engine.pool.checkedout() == 0


@pytest.mark.parametrize("action", list(ACTIONS))
@pytest.mark.parametrize("mode", ["conditional_savepoint", "create_savepoint"])
async def test_join_a_connection_inside_a_savepoint(
    engine: AsyncEngine, mode: str, action: str
) -> None:
    """Inside the caller's savepoint the default makes a savepoint of its own."""
    active, seen, _ = EXPECTED["create_savepoint", action]
    async with engine.connect() as conn:
        outer = await conn.begin()
        await conn.execute(User.__table__.insert(), {"id": 100, "name": "before"})
        outer_savepoint = await conn.begin_nested()
        session = AsyncSession(conn, join_transaction_mode=mode)
        await ACTIONS[action](session)
        assert outer_savepoint.is_active is active
        assert outer.is_active
        assert conn.in_nested_transaction()
        assert await names(conn) == seen
        await session.close()
        await outer_savepoint.rollback()
        assert await names(conn) == ["before"]
        await outer.rollback()
    assert await committed(engine) == []


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
async def test_control_fully_takes_over_the_innermost_savepoint(
    engine: AsyncEngine, outcome: str
) -> None:
    async with engine.connect() as conn:
        outer = await conn.begin()
        await conn.execute(User.__table__.insert(), {"id": 100, "name": "before"})
        outer_savepoint = await conn.begin_nested()
        session = AsyncSession(conn, join_transaction_mode="control_fully")
        await (commit if outcome == "commit" else rollback)(session)
        # commit releases the savepoint, rollback rolls back to it; the root stays.
        assert not outer_savepoint.is_active
        assert outer.is_active
        assert await names(conn) == (ANN_BEFORE if outcome == "commit" else ["before"])
        await session.close()
        await outer.rollback()
    assert await committed(engine) == []


async def test_rollback_only_keeps_objects_and_joins_again(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        outer = await conn.begin()
        session = AsyncSession(conn, join_transaction_mode="rollback_only")
        ann = User(name="ann")
        session.add(ann)
        await session.commit()
        assert inspect(ann).persistent
        # The next transaction of the session joins the same outer transaction.
        session.add(User(name="bob"))
        await session.commit()
        assert outer.is_active
        assert await names(conn) == ["ann", "bob"]
        await session.close()
        await outer.rollback()
    assert await committed(engine) == []


async def test_control_fully_then_a_transaction_of_its_own(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        outer = await conn.begin()
        session = AsyncSession(conn, join_transaction_mode="control_fully")
        await commit(session)
        assert outer.state is TransactionState.COMMITTED
        # The connection has no transaction now: the session begins (and commits) its own.
        session.add(User(name="bob"))
        await session.commit()
        assert not conn.in_transaction()
        await session.close()
    assert await committed(engine) == ["ann", "bob"]


async def test_modes_only_matter_inside_a_transaction(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        session = AsyncSession(conn, join_transaction_mode="rollback_only")
        await commit(session)  # the session began the transaction, so it commits it
        assert not conn.in_transaction()
        await session.close()
    assert await committed(engine) == ["ann"]


async def test_unknown_modes(engine: AsyncEngine) -> None:
    for mode in ["sometimes", "conservative_savepoint"]:
        with pytest.raises(Exception, match="join_transaction_mode must be one of") as err:
            AsyncSession(engine, join_transaction_mode=mode)
        assert "conditional_savepoint" in str(err.value)
