"""Cancellation at every await point of the session's operations, on SQLite and PostgreSQL.

How the points are enumerated: every driver call of the engine (BEGIN,
SAVEPOINT, each statement, RELEASE, COMMIT, ROLLBACK) goes through
``AsyncConnection._call``, the engine's one driver boundary, and every pool
checkout fires the pool's ``checkout`` event. The :class:`Interrupter` wraps
both and, when armed, counts them; at the N-th it cancels the test's scope and
lets the cancellation strike inside the driver call, either before the
statement is sent (``before``) or after the server ran it but before the
result reached the caller (``after``). Each test walks N = 1, 2, ... through
one operation until the operation finishes without reaching point N.

After each interruption:

* the cancellation propagated (only rollback() and close(), which run shielded,
  may finish), and the session refuses further work with PendingRollbackError
  until it is rolled back or closed;
* recovering with ``rollback()`` or ``close()`` leaves no pool slot checked out
  after ``close()``, no object persistent for a row that is not in the
  database (seen by a fresh connection), and on PostgreSQL no backend of the
  engine "idle in transaction";
* the session works again: a whole add/commit/query cycle.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from asyncsession import (
    AsyncEngine,
    AsyncSession,
    PendingRollbackError,
    event,
    func,
    inspect,
    select,
    text,
)
from asyncsession.engine.base import AsyncConnection
from tests.orm.models import Address, Base, Keyword, User, engine_for, is_pg

pytestmark = pytest.mark.anyio


class Interrupter:
    """Cancels a scope at the N-th database await point while armed."""

    def __init__(self) -> None:
        self.scope: anyio.CancelScope | None = None
        self.target = 0
        self.mode = "after"
        self.count = 0
        self.hit: str | None = None
        self.seen: list[str] = []  # every point passed while armed

    def arm(self, scope: anyio.CancelScope, target: int, mode: str) -> None:
        self.scope, self.target, self.mode, self.count, self.hit = scope, target, mode, 0, None
        self.seen = []

    def disarm(self) -> None:
        self.scope = None

    def reached(self, what: str) -> bool:
        """Count a point; True when it is the one to interrupt."""
        if self.scope is None:
            return False
        self.seen.append(what)
        self.count += 1
        if self.count != self.target:
            return False
        self.hit = what
        return True

    async def strike(self) -> None:
        assert self.scope is not None
        self.scope.cancel()
        await anyio.lowlevel.checkpoint()  # raises here unless shielded


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
        mode = interrupter.mode

        async def interrupted(driver_connection: Any) -> Any:
            if mode == "before":
                await interrupter.strike()
            result = await operation(driver_connection)
            if mode == "after":
                await interrupter.strike()
            return result

        return await original(self, entry, interrupted, sql, params)

    monkeypatch.setattr(AsyncConnection, "_call", _call)
    return interrupter


@pytest.fixture
def schema(db_url: str, request: pytest.FixtureRequest) -> str | None:
    """PostgreSQL: the test's own schema (a sync fixture: async ones can't request fixtures)."""
    return request.getfixturevalue("pg_schema") if is_pg(db_url) else None


@pytest.fixture
def application_name() -> str:
    return f"asyncsession-cancel-{secrets.token_hex(4)}"


@pytest.fixture
async def engine(
    db_url: str, schema: str | None, application_name: str, interrupter: Interrupter
) -> AsyncIterator[AsyncEngine]:
    connect_args = (
        {"server_settings": {"application_name": application_name}} if is_pg(db_url) else {}
    )
    async with engine_for(db_url, schema, connect_args=connect_args) as engine:

        async def checkout(raw: Any, entry: Any) -> None:
            if interrupter.reached("checkout"):
                await interrupter.strike()

        event.listen(engine, "checkout", checkout)
        yield engine


# -- the operations ---------------------------------------------------------------------------


class Scenario:
    """Committed rows to start from, unarmed preparation, then the operation to interrupt."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.created: list[Any] = []  # objects made by the scenario, checked afterwards
        self.base: User
        self.other: User
        self.savepoint: Any = None

    def new(self, name: str) -> User:
        user = User(name=name)
        self.created.append(user)
        self.session.add(user)
        return user

    async def setup(self) -> None:
        self.base, self.other = User(name="base"), User(name="other")
        self.session.add_all([self.base, self.other])
        await self.session.commit()


async def prepare_nothing(s: Scenario) -> None:
    pass


async def op_execute(s: Scenario) -> None:
    s.new("new")  # autoflushed first
    await s.session.execute(select(User).order_by(User.id))


async def op_get(s: Scenario) -> None:
    base_id = s.base.id
    s.session.expunge(s.base)
    s.new("new")
    await s.session.get(User, base_id)


async def op_refresh(s: Scenario) -> None:
    s.base.name = "changed"
    await s.session.refresh(s.base)


async def op_flush(s: Scenario) -> None:
    s.new("new 1")
    s.new("new 2")
    s.base.name = "changed"
    await s.session.delete(s.other)
    await s.session.flush()


async def op_commit(s: Scenario) -> None:
    s.new("new")
    s.base.fullname = "changed"
    await s.session.commit()


async def prepare_flushed(s: Scenario) -> None:
    s.new("flushed")
    s.base.name = "changed"
    await s.session.flush()


async def op_rollback(s: Scenario) -> None:
    await s.session.rollback()


async def op_close(s: Scenario) -> None:
    await s.session.close()


async def op_begin_nested(s: Scenario) -> None:
    s.new("before the savepoint")
    async with s.session.begin_nested():
        s.new("inside")
        s.session.add(Address(user_id=s.base.id, email_address="in@savepoint"))


async def prepare_savepoint(s: Scenario) -> None:
    await s.session.execute(select(User))
    s.savepoint = await s.session.begin_nested()
    s.new("inside")
    await s.session.flush()


async def op_savepoint_rollback(s: Scenario) -> None:
    await s.savepoint.rollback()


SCENARIOS: dict[str, tuple[Callable[[Scenario], Awaitable[None]], ...]] = {
    "execute": (prepare_nothing, op_execute),
    "get": (prepare_nothing, op_get),
    "refresh": (prepare_nothing, op_refresh),
    "flush": (prepare_nothing, op_flush),
    "commit": (prepare_nothing, op_commit),
    "rollback": (prepare_flushed, op_rollback),
    "close": (prepare_flushed, op_close),
    "begin_nested": (prepare_nothing, op_begin_nested),
    "savepoint_rollback": (prepare_savepoint, op_savepoint_rollback),
}
SHIELDED = {"rollback", "close", "savepoint_rollback"}


# -- checks --------------------------------------------------------------------------------------


async def existing_user_ids(engine: AsyncEngine) -> set[int]:
    async with engine.connect() as conn:
        return set((await conn.scalars(select(User.id))).all())


async def idle_in_transaction(engine: AsyncEngine, application_name: str) -> int:
    async with engine.connect() as conn:
        count = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = :app "
                "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
            ),
            {"app": application_name},
        )
    return int(count)


async def clear_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            await conn.execute(table.delete())


async def check_no_persistent_lies(engine: AsyncEngine, session: AsyncSession) -> None:
    """Every object the session holds as persistent has its row in the database."""
    rows = await existing_user_ids(engine)
    for state in session.identity_map.states():
        if state.persistent and state.mapper.class_ is User:
            assert state.identity is not None, state
            assert state.identity[0] in rows, state


async def full_cycle(engine: AsyncEngine, session: AsyncSession) -> None:
    fresh = User(name="after the cancellation")
    session.add(fresh)
    await session.commit()
    assert inspect(fresh).persistent
    found = await session.scalar(select(User).where(User.name == "after the cancellation"))
    assert found is fresh
    assert fresh.id in await existing_user_ids(engine)
    await session.close()
    assert engine.pool.checkedout() == 0


@pytest.mark.parametrize("recovery", ["rollback", "close"])
@pytest.mark.parametrize("mode", ["before", "after"])
@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_cancel_at_every_point(
    engine: AsyncEngine,
    db_url: str,
    application_name: str,
    interrupter: Interrupter,
    name: str,
    mode: str,
    recovery: str,
) -> None:
    prepare, operation = SCENARIOS[name]
    hits: list[str] = []
    for target in range(1, 30):
        session = AsyncSession(engine)
        scenario = Scenario(session)
        await scenario.setup()
        await prepare(scenario)
        outcome = "finished"
        with anyio.CancelScope() as scope:
            interrupter.arm(scope, target, mode)
            try:
                await operation(scenario)
            except anyio.get_cancelled_exc_class():
                outcome = "cancelled"
                raise
            finally:
                interrupter.disarm()
        if interrupter.hit is None:
            assert outcome == "finished"
            await session.close()
            break
        hits.append(interrupter.hit)
        where = f"{name}: cancelled at point {target} ({interrupter.hit})"

        if name in SHIELDED:
            assert outcome == "finished", where  # cleanup runs shielded to its end
        else:
            assert outcome == "cancelled", f"{where}: the cancellation was swallowed"
            if session.in_transaction():
                assert not session.is_active, where
                with pytest.raises(PendingRollbackError, match="cancel"):
                    await session.execute(select(User))
        assert engine.pool.checkedout() <= 1, where

        if recovery == "rollback":
            await session.rollback()
            assert session.is_active, where
            assert not session.in_transaction(), where
            await check_no_persistent_lies(engine, session)
        else:
            await session.close()
            assert not any(inspect(o).persistent for o in scenario.created), where
            assert not session.identity_map.states(), where
        if recovery == "close":
            assert engine.pool.checkedout() == 0, where
        if is_pg(db_url):
            assert await idle_in_transaction(engine, application_name) == 0, where

        await full_cycle(engine, session)
        if is_pg(db_url):
            assert await idle_in_transaction(engine, application_name) == 0, where
        await clear_tables(engine)
    else:
        pytest.fail(f"{name} never finished")
    assert hits, f"{name} reached no await point"


async def test_the_points_include_checkout_and_control_statements(
    engine: AsyncEngine, interrupter: Interrupter
) -> None:
    async with AsyncSession(engine) as session:
        scenario = Scenario(session)
        await scenario.setup()
        with anyio.CancelScope() as scope:
            interrupter.arm(scope, 0, "after")  # point 0 is never reached: just count
            await op_begin_nested(scenario)
            await session.commit()
            interrupter.disarm()
    assert interrupter.seen == [
        "checkout",
        "BEGIN",
        "INSERT",
        "SAVEPOINT",
        "INSERT",
        "INSERT",
        "RELEASE",
        "COMMIT",
    ]


# -- a deadline on a slow statement (PostgreSQL) ---------------------------------------------------


async def test_timeout_on_a_slow_statement(
    pg_url: str, pg_schema: str, application_name: str
) -> None:
    connect_args = {"server_settings": {"application_name": application_name}}
    async with engine_for(pg_url, pg_schema, connect_args=connect_args) as engine:
        session = AsyncSession(engine)
        ann = User(name="ann")
        session.add(ann)
        await session.flush()
        # The check sees the session's open transaction (so it would see a leaked one).
        assert await idle_in_transaction(engine, application_name) == 1
        started = anyio.current_time()
        with anyio.move_on_after(0.5) as scope:
            await session.execute(text("SELECT pg_sleep(30)"))
        assert scope.cancelled_caught
        assert anyio.current_time() - started < 10
        assert not session.is_active
        with pytest.raises(PendingRollbackError):
            await session.flush()
        await session.rollback()
        assert inspect(ann).transient  # its INSERT was rolled back with the transaction
        assert await existing_user_ids(engine) == set()
        async with engine.connect() as conn:
            sleeping = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = :app "
                    "AND query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid() "
                    "AND state = 'active'"
                ),
                {"app": application_name},
            )
        assert sleeping == 0  # the server stopped the statement
        assert await idle_in_transaction(engine, application_name) == 0
        await full_cycle(engine, session)
        assert await session.scalar(select(func.count()).select_from(User)) == 1
        await session.close()
        assert engine.pool.checkedout() == 0


# -- two-phase commit (PostgreSQL) -------------------------------------------------------------


@pytest.fixture
async def twophase_engine(
    pg_url: str, pg_twophase: str, application_name: str, interrupter: Interrupter
) -> AsyncIterator[AsyncEngine]:
    connect_args = {"server_settings": {"application_name": application_name}}
    async with engine_for(pg_url, pg_twophase, connect_args=connect_args) as engine:

        async def checkout(raw: Any, entry: Any) -> None:
            if interrupter.reached("checkout"):
                await interrupter.strike()

        event.listen(engine, "checkout", checkout)
        yield engine


async def prepared_transactions(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return await conn.recover_twophase()


async def twophase_commit(session: AsyncSession) -> None:
    await session.commit()


async def twophase_prepare(session: AsyncSession) -> None:
    await session.prepare()


async def twophase_rollback(session: AsyncSession) -> None:
    await session.rollback()


async def twophase_close(session: AsyncSession) -> None:
    await session.close()


# name -> (prepare() before arming, the operation, runs shielded)
TWOPHASE_SCENARIOS: dict[str, tuple[bool, Callable[[AsyncSession], Awaitable[None]], bool]] = {
    "commit": (False, twophase_commit, False),
    "prepare": (False, twophase_prepare, False),
    "commit_prepared": (True, twophase_commit, False),
    "rollback_prepared": (True, twophase_rollback, True),
    "close_prepared": (True, twophase_close, True),
}


@pytest.mark.parametrize("recovery", ["rollback", "close"])
@pytest.mark.parametrize("mode", ["before", "after"])
@pytest.mark.parametrize("name", sorted(TWOPHASE_SCENARIOS))
async def test_cancel_twophase_at_every_point(
    twophase_engine: AsyncEngine,
    application_name: str,
    interrupter: Interrupter,
    name: str,
    mode: str,
    recovery: str,
) -> None:
    """A transaction over two connections (users, keywords), cancelled at each point.

    Whatever the point: the outcome is all or nothing (both connections'
    rows committed, or neither), no prepared transaction is left on the server
    once the operation returned, and no connection leaks. The first phase is
    cancellable (a cancelled prepare rolls everything back); the second phase
    finishes before the cancellation is raised.
    """
    engine = twophase_engine
    binds = {Keyword: engine, User: engine.execution_options(logging_token="users")}
    prepare_first, operation, shielded = TWOPHASE_SCENARIOS[name]
    hits: list[str] = []
    for target in range(1, 30):
        session = AsyncSession(binds=binds, twophase=True)
        session.add(Keyword(name="k"))
        await session.flush()
        session.add(User(name="u1"))
        await session.flush()
        if prepare_first:
            await session.prepare()
        else:
            session.add(User(name="u2"))  # flushed by the operation
        outcome = "finished"
        with anyio.CancelScope() as scope:
            interrupter.arm(scope, target, mode)
            try:
                await operation(session)
            except anyio.get_cancelled_exc_class():
                outcome = "cancelled"
                raise
            finally:
                interrupter.disarm()
        if interrupter.hit is None:
            assert outcome == "finished"
            await session.close()
            break
        hits.append(interrupter.hit)
        where = f"{name}: cancelled at point {target} ({interrupter.hit})"
        assert outcome == ("finished" if shielded else "cancelled"), where
        assert await prepared_transactions(engine) == [], where
        if session.in_transaction():
            assert not session.is_active, where
            with pytest.raises(PendingRollbackError, match="cancel"):
                await session.execute(select(User))

        if recovery == "rollback":
            await session.rollback()
            assert not session.in_transaction(), where
        else:
            await session.close()
            assert engine.pool.checkedout() == 0, where
        assert await prepared_transactions(engine) == [], where
        assert await idle_in_transaction(engine, application_name) == 0, where
        users = await existing_user_ids(engine)
        async with engine.connect() as conn:
            keywords = await conn.scalar(select(func.count()).select_from(Keyword))
        committed = name in ("commit", "commit_prepared") and interrupter.hit == "COMMIT"
        all_rows = (1 if prepare_first else 2, 1)
        assert (len(users), keywords) == (all_rows if committed else (0, 0)), where

        await full_cycle(engine, session)
        await clear_tables(engine)
    else:
        pytest.fail(f"{name} never finished")
    assert hits, f"{name} reached no await point"
    if name in ("commit", "prepare"):
        assert "PREPARE" in hits, hits
    if name in ("commit", "commit_prepared"):
        assert "COMMIT" in hits, hits
