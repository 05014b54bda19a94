"""Ctrl-C while a facade call waits: the query is cancelled on the server, nothing leaks.

The test runs the blocking call in the main thread, as a script would. A
helper thread watches ``pg_stat_activity`` until the statement is running on
the server (a bounded poll, no sleeps), then delivers SIGINT to the main
thread, whose handler raises KeyboardInterrupt inside the waiting call.
"""

from __future__ import annotations

import secrets
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from asyncsession import exc, sync, text
from tests.sync.conftest import connect_args

POLL_DEADLINE = 30.0

ACTIVE = text(
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE application_name = :app AND state = 'active' AND query LIKE :pattern"
)


@pytest.fixture
def monitor(pg_url: str) -> Iterator[sync.Engine]:
    # AUTOCOMMIT: pg_stat_activity is a snapshot per transaction.
    engine = sync.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        yield engine
    finally:
        engine.dispose()


def running(monitor: sync.Engine, app_name: str, marker: str) -> int:
    with monitor.connect() as conn:
        count: int = conn.scalar(ACTIVE, {"app": app_name, "pattern": f"%{marker}%"})
    return count


def interrupt_main_once_running(
    monitor: sync.Engine, app_name: str, marker: str, problems: list[str]
) -> None:
    deadline = time.monotonic() + POLL_DEADLINE
    while time.monotonic() < deadline:
        if running(monitor, app_name, marker):
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
            return
    problems.append(f"the statement never showed up in pg_stat_activity in {POLL_DEADLINE}s")


def test_keyboard_interrupt_cancels_a_long_query(
    pg_url: str, pg_schema: str, monitor: sync.Engine
) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread")
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT does not raise KeyboardInterrupt here")
    app_name = f"astest_sync_{secrets.token_hex(4)}"
    marker = f"sleeper_{secrets.token_hex(4)}"
    engine = sync.create_engine(pg_url, connect_args=connect_args(pg_schema, app_name))
    problems: list[str] = []
    helper = threading.Thread(
        target=interrupt_main_once_running, args=(monitor, app_name, marker, problems)
    )
    try:
        with sync.Session(engine) as session:
            helper.start()
            with pytest.raises(KeyboardInterrupt):
                session.execute(text(f"SELECT pg_sleep(60) AS {marker}"))
            helper.join(POLL_DEADLINE)
            assert not problems
            # The cleanup ran before KeyboardInterrupt reached us: the server is idle.
            assert running(monitor, app_name, marker) == 0
            with pytest.raises(exc.PendingRollbackError):
                session.execute(text("SELECT 1"))
            session.rollback()
            assert session.execute(text("SELECT 1")).scalar() == 1
        assert engine.async_engine.pool.checkedout() == 0
    finally:
        helper.join(POLL_DEADLINE)
        engine.dispose()


def test_keyboard_interrupt_cancels_a_stream_fetch(
    pg_url: str, pg_schema: str, monitor: sync.Engine
) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread")
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT does not raise KeyboardInterrupt here")
    app_name = f"astest_sync_{secrets.token_hex(4)}"
    marker = ""  # the statement running is a FETCH from the stream's cursor: match any
    engine = sync.create_engine(pg_url, connect_args=connect_args(pg_schema, app_name))
    problems: list[str] = []
    helper = threading.Thread(
        target=interrupt_main_once_running, args=(monitor, app_name, marker, problems)
    )
    # The first chunk (rows 1-10) comes at once; fetching the second sleeps.
    slow = text("SELECT g, CASE WHEN g = 11 THEN pg_sleep(60) END FROM generate_series(1, 20) g")
    try:
        with engine.connect() as conn:
            result = conn.stream(slow).yield_per(10)
            assert [row.g for row in result.fetchmany(10)] == list(range(1, 11))
            helper.start()
            with pytest.raises(KeyboardInterrupt):
                result.fetchone()
            helper.join(POLL_DEADLINE)
            assert not problems
            assert running(monitor, app_name, marker) == 0
            assert result.closed  # an interrupted fetch closes the stream
            conn.rollback()
            assert conn.scalar(text("SELECT 1")) == 1
        assert engine.async_engine.pool.checkedout() == 0
    finally:
        if helper.is_alive():
            helper.join(POLL_DEADLINE)
        engine.dispose()
