"""AsyncSession(twophase=True): every connection of the transaction is prepared before any
is committed; prepare() by hand; rollback and close after it; a failed prepare.

PostgreSQL only: the ``pg_twophase`` fixture fails the test when the server has
prepared transactions disabled, and at teardown when one was left behind.
Cancellation at each await point is tested in ``test_cancellation.py``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator

import pytest

from asyncsession import (
    AsyncEngine,
    AsyncSession,
    IllegalStateChangeError,
    IntegrityError,
    InvalidRequestError,
    NotSupportedError,
    PendingRollbackError,
    inspect,
    select,
    text,
)
from asyncsession.orm.transaction import TxState
from tests.orm.models import Keyword, User, count_rows, engine_for

pytestmark = pytest.mark.anyio


@pytest.fixture
async def engine(pg_url: str, pg_twophase: str) -> AsyncIterator[AsyncEngine]:
    async with engine_for(pg_url, pg_twophase) as engine:
        yield engine


@pytest.fixture
def binds(engine: AsyncEngine) -> dict[type, AsyncEngine]:
    """Two binds, so a transaction spans two connections (a copy of an engine shares its pool)."""
    return {Keyword: engine, User: engine.execution_options(logging_token="users")}


async def prepared(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return await conn.recover_twophase()


async def two_connections(session: AsyncSession) -> tuple[Keyword, User]:
    """Keyword rows on one connection, User rows on the other (one flush each)."""
    keyword, user = Keyword(name="k"), User(name="ann")
    session.add(keyword)
    await session.flush()
    session.add(user)
    await session.flush()
    transaction = session.get_transaction()
    assert transaction is not None
    assert len(transaction.connections) == 2
    return keyword, user


async def test_commit_prepares_every_connection_before_committing_any(
    engine: AsyncEngine, binds: dict[type, AsyncEngine], caplog: pytest.LogCaptureFixture
) -> None:
    async with AsyncSession(binds=binds, twophase=True) as session:
        keyword, user = await two_connections(session)
        with caplog.at_level(logging.INFO, logger="asyncsession.engine"):
            await session.commit()
        assert inspect(user).persistent
        assert inspect(keyword).persistent
        assert not session.in_transaction()
    phases = [
        found.group()
        for found in (
            re.search("PREPARE TRANSACTION|COMMIT PREPARED", r.getMessage()) for r in caplog.records
        )
        if found
    ]
    assert phases == ["PREPARE TRANSACTION"] * 2 + ["COMMIT PREPARED"] * 2
    assert await count_rows(engine, User) == 1
    assert await count_rows(engine, Keyword) == 1
    assert await prepared(engine) == []
    assert engine.pool.checkedout() == 0


async def test_prepare_then_commit(engine: AsyncEngine, binds: dict[type, AsyncEngine]) -> None:
    async with AsyncSession(binds=binds, twophase=True) as session:
        _, user = await two_connections(session)
        user.fullname = "changed before prepare"  # flushed by prepare()
        await session.prepare()
        transaction = session.get_transaction()
        assert transaction is not None
        assert transaction.state is TxState.PREPARED
        assert not session.is_active
        assert len(await prepared(engine)) == 2
        assert await count_rows(engine, User) == 0  # prepared, not committed
        with pytest.raises(IllegalStateChangeError, match=r"Can't execute.*PREPARED"):
            await session.execute(select(User))
        with pytest.raises(IllegalStateChangeError, match=r"Can't prepare.*PREPARED"):
            await session.prepare()
        with pytest.raises(IllegalStateChangeError, match="Can't begin_nested"):
            await session.begin_nested()
        await session.commit()
        assert transaction.state is TxState.COMMITTED
        assert inspect(user).persistent
    assert await prepared(engine) == []
    async with engine.connect() as conn:
        assert await conn.scalar(select(User.fullname)) == "changed before prepare"
    assert await count_rows(engine, Keyword) == 1


async def test_prepare_then_rollback(engine: AsyncEngine, binds: dict[type, AsyncEngine]) -> None:
    async with AsyncSession(binds=binds, twophase=True) as session:
        keyword, user = await two_connections(session)
        await session.prepare()
        await session.rollback()
        assert inspect(user).transient
        assert inspect(keyword).transient
        assert not session.in_transaction()
        # The session works on, with a new two-phase transaction.
        session.add(User(name="bob"))
        await session.commit()
    assert await prepared(engine) == []
    assert await count_rows(engine, Keyword) == 0
    async with engine.connect() as conn:
        assert (await conn.scalars(select(User.name))).all() == ["bob"]


async def test_close_after_prepare_rolls_back(
    engine: AsyncEngine, binds: dict[type, AsyncEngine]
) -> None:
    session = AsyncSession(binds=binds, twophase=True)
    await two_connections(session)
    await session.prepare()
    await session.close()
    assert await prepared(engine) == []
    assert await count_rows(engine, User) == 0
    assert await count_rows(engine, Keyword) == 0
    assert engine.pool.checkedout() == 0


async def test_one_connection(engine: AsyncEngine) -> None:
    async with AsyncSession(engine, twophase=True) as session:
        session.add(User(name="ann"))
        await session.commit()
        # A savepoint is released before the transaction is prepared.
        async with session.begin_nested():
            session.add(User(name="bob"))
        await session.commit()
    assert await count_rows(engine, User) == 2
    assert await prepared(engine) == []


async def test_prepare_misuse(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as session:
        with pytest.raises(InvalidRequestError, match="not made with twophase=True"):
            await session.prepare()
    async with AsyncSession(engine, twophase=True) as session:
        await session.begin_nested()
        with pytest.raises(InvalidRequestError, match="savepoint is in progress"):
            await session.prepare()
        assert session.is_active  # refused before anything changed
        await session.rollback()
    async with AsyncSession(engine, twophase=True, autobegin=False) as session:
        with pytest.raises(InvalidRequestError, match="No transaction is begun"):
            await session.prepare()
    assert await prepared(engine) == []


async def test_a_failed_prepare_rolls_back_every_connection(
    engine: AsyncEngine, binds: dict[type, AsyncEngine]
) -> None:
    # A deferred constraint is checked by PREPARE TRANSACTION: the users connection
    # fails to prepare after the keywords connection was prepared.
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "ALTER TABLE users ADD CONSTRAINT users_name_once UNIQUE (name) "
                "DEFERRABLE INITIALLY DEFERRED"
            )
        )
    async with AsyncSession(binds=binds, twophase=True) as session:
        keyword, ann = await two_connections(session)
        twin = User(name="ann")
        session.add(twin)
        with pytest.raises(IntegrityError, match="users_name_once"):
            await session.commit()
        # As SQLAlchemy: the whole transaction was rolled back, the prepared one too.
        assert not session.in_transaction()
        assert inspect(keyword).transient
        assert inspect(ann).transient
        assert inspect(twin).transient
        assert await prepared(engine) == []
        session.add(Keyword(name="after"))
        await session.commit()
    assert await count_rows(engine, User) == 0
    assert await count_rows(engine, Keyword) == 1


async def test_a_failed_flush_before_prepare_needs_a_rollback(engine: AsyncEngine) -> None:
    async with AsyncSession(engine, twophase=True) as session:
        session.add_all([Keyword(name="same"), Keyword(name="same")])
        with pytest.raises(IntegrityError):
            await session.prepare()
        with pytest.raises(PendingRollbackError, match="IntegrityError"):
            await session.prepare()
        await session.rollback()
    assert await prepared(engine) == []
    assert await count_rows(engine, Keyword) == 0


async def test_twophase_refuses_to_join_an_outer_transaction(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        outer = await conn.begin()
        session = AsyncSession(conn, twophase=True)
        with pytest.raises(InvalidRequestError, match="can't join a transaction already"):
            await session.execute(select(User))
        await session.close()
        assert outer.is_active
        await outer.rollback()


async def test_twophase_on_a_connection_outside_a_transaction(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        async with AsyncSession(conn, twophase=True) as session:
            session.add(User(name="ann"))
            await session.prepare()
            assert len(await prepared(engine)) == 1
            await session.commit()
        assert not conn.in_transaction()
    assert await count_rows(engine, User) == 1


async def test_sqlite_refuses_twophase_sessions(sqlite_url: str) -> None:
    async with engine_for(sqlite_url) as engine:
        with pytest.raises(NotSupportedError, match=r"twophase=True.*sqlite"):
            AsyncSession(engine, twophase=True)
        with pytest.raises(NotSupportedError, match="sqlite"):
            AsyncSession(binds={User: engine}, twophase=True)
