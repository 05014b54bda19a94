"""Engine events (before/after_execute, handle_error), the event module, echo logging."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from engine_helpers import Backend

from asyncsession import exc
from asyncsession.engine import AsyncEngine, ExceptionContext, event
from asyncsession.engine.events import Dispatcher
from asyncsession.sql.elements import text

pytestmark = pytest.mark.anyio

MakeEngine = Callable[..., AsyncEngine]


async def test_before_and_after_execute(make_engine: MakeEngine) -> None:
    engine = make_engine()
    seen: list[tuple[Any, ...]] = []

    @event.listens_for(engine, "before_execute")
    def before(conn: Any, statement: Any, parameters: Any, options: Any) -> None:
        seen.append(("before", statement, parameters))

    @event.listens_for(engine, "after_execute")
    async def after(conn: Any, statement: Any, parameters: Any, options: Any, result: Any) -> None:
        seen.append(("after", statement, result.returns_rows))

    stmt = text("SELECT 1 AS one")
    async with engine.connect() as conn:
        await conn.execute(stmt)
        await conn.exec_driver_sql("SELECT 2")
    assert seen == [
        ("before", stmt, None),
        ("after", stmt, True),
        ("before", "SELECT 2", None),
        ("after", "SELECT 2", True),
    ]


async def test_execution_options_copy_inherits_listeners(make_engine: MakeEngine) -> None:
    engine = make_engine()
    seen: list[str] = []
    event.listen(engine, "before_execute", lambda *args: seen.append("parent"))
    child = engine.execution_options(logging_token="child")
    event.listen(child, "before_execute", lambda *args: seen.append("child"))
    async with child.connect() as conn:
        await conn.exec_driver_sql("SELECT 1")
    async with engine.connect() as conn:
        await conn.exec_driver_sql("SELECT 1")
    assert seen == ["parent", "child", "parent"]


async def test_handle_error(make_engine: MakeEngine) -> None:
    engine = make_engine()
    contexts: list[ExceptionContext] = []
    event.listen(engine, "handle_error", contexts.append)
    async with engine.connect() as conn:
        with pytest.raises(exc.DBAPIError) as info:
            await conn.exec_driver_sql("SELECT * FROM missing_table")
        await conn.rollback()
    (context,) = contexts
    assert context.wrapped_exception is info.value
    assert context.original_exception is info.value.orig
    assert context.statement == "SELECT * FROM missing_table"
    assert not context.is_disconnect


async def test_handle_error_may_replace_the_error(make_engine: MakeEngine) -> None:
    engine = make_engine()

    class AppError(Exception):
        pass

    def replace(context: ExceptionContext) -> None:
        raise AppError("translated") from context.wrapped_exception

    event.listen(engine, "handle_error", replace)
    async with engine.connect() as conn:
        with pytest.raises(AppError, match="translated"):
            await conn.exec_driver_sql("SELECT * FROM missing_table")
        await conn.rollback()


def test_dispatcher_rules() -> None:
    parent = Dispatcher(frozenset({"ping"}))
    child = Dispatcher(frozenset({"ping"}), parent=parent)

    def fn() -> None:
        pass

    child.add("ping", fn)
    assert child.has("ping")
    assert not parent.has("ping")
    with pytest.raises(exc.ArgumentError, match="known events: \\['ping'\\]"):
        child.add("pong", fn)
    with pytest.raises(exc.InvalidRequestError, match="not listening"):
        parent.remove("ping", fn)
    with pytest.raises(exc.ArgumentError, match="does not take event listeners"):
        event.listen(object(), "ping", fn)  # type: ignore[arg-type]


async def test_echo_logs_statements_and_parameters(
    make_engine: MakeEngine, backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(echo=True)
    with caplog.at_level(logging.INFO, logger="asyncsession.engine"):
        async with engine.connect() as conn:
            await conn.exec_driver_sql(f"SELECT {backend.p(1)}", ("secret-ish",))
            await conn.commit()
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncsession.engine"]
    assert messages[0].startswith("BEGIN")
    assert f"SELECT {backend.p(1)}" in messages
    assert "[parameters: ('secret-ish',)]" in messages
    assert messages[-1] == "COMMIT"


async def test_executemany_parameters_are_abbreviated(
    make_engine: MakeEngine, backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine()
    async with engine.begin() as conn:
        await conn.exec_driver_sql("CREATE TABLE n (x INTEGER)")
    with caplog.at_level(logging.INFO, logger="asyncsession.engine"):
        async with engine.begin() as conn:
            sql = f"INSERT INTO n VALUES ({backend.p(1)})"
            await conn.exec_driver_sql(sql, [(i,) for i in range(25)])
    assert any("displaying 10 of 25 parameter sets" in r.getMessage() for r in caplog.records)


async def test_logging_token(make_engine: MakeEngine, caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine().execution_options(logging_token="worker-1")
    with caplog.at_level(logging.INFO, logger="asyncsession.engine"):
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
    assert all(r.getMessage().startswith("[worker-1] ") for r in caplog.records)


async def test_echo_pool(make_engine: MakeEngine, caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine(echo_pool="debug")
    with caplog.at_level(logging.DEBUG, logger="asyncsession.pool"):
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncsession.pool"]
    assert any(m.startswith("Created a new connection") for m in messages)
    assert any(m.startswith("Resetting connection") for m in messages)
