"""Streamed results through the facade: a server-side cursor read a chunk per call."""

from __future__ import annotations

from typing import Any

import pytest

from asyncsession import exc, insert, select, sync
from tests.orm.models import User

N_ROWS = 10_000


@pytest.fixture
def users(engine: sync.Engine) -> sync.Engine:
    with engine.begin() as conn:
        conn.execute(insert(User), [{"id": i, "name": f"u{i}"} for i in range(1, N_ROWS + 1)])
    return engine


class CountingRunner:
    """Wraps a result's runner: records how many rows each hop to the loop brought."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.pulls: list[int] = []

    def may_block(self) -> bool:
        return bool(self.runner.may_block())

    def call(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        rows = self.runner.call(fn, *args, **kwargs)
        self.pulls.append(len(rows) if isinstance(rows, list) else -1)
        return rows


def count_hops(result: sync.StreamedResult[Any]) -> list[int]:
    counting = CountingRunner(result._cursor.runner)
    result._cursor.runner = counting
    return counting.pulls


def test_connection_stream_iterates_chunk_by_chunk(users: sync.Engine) -> None:
    with users.connect() as conn:
        with conn.stream(select(User.id, User.name).order_by(User.id)) as result:
            assert list(result.keys()) == ["id", "name"]
            pulls = count_hops(result)
            ids = [row.id for row in result]
        assert ids == list(range(1, N_ROWS + 1))
        assert pulls == [1000] * 10 + [0, -1]  # one hop per chunk (then close), not per row
        assert result.closed
        with pytest.raises(exc.ResourceClosedError):
            result.fetchone()
    assert users.pool.checkedout() == 0


def test_fetchmany_partitions_all_and_mixed_reads(users: sync.Engine) -> None:
    with users.connect() as conn:
        result = conn.stream(select(User.id).order_by(User.id)).yield_per(300)
        assert [r.id for r in result.fetchmany(5)] == [1, 2, 3, 4, 5]
        assert result.fetchone() == (6,)
        iterator = iter(result)
        assert next(iterator).id == 7
        assert result.fetchone() == (8,)  # interleaved with iteration: exact
        assert [r.id for r in result.fetchmany()] == list(range(9, 309))
        scalars = result.scalars()
        parts = scalars.partitions(1000)
        assert next(parts) == list(range(309, 1309))
        assert len(scalars.all()) == N_ROWS - 1308
        assert scalars.fetchmany(3) == []
        result.close()
        conn.commit()
    assert users.pool.checkedout() == 0


def test_stream_scalars_unique_mappings_and_first(users: sync.Engine) -> None:
    with users.connect() as conn:
        names = conn.stream_scalars(select(User.name).where(User.id <= 20).order_by(User.id))
        assert list(names) == [f"u{i}" for i in range(1, 21)]
        evens = conn.stream(select(User.id % 2).where(User.id <= 20)).scalars().unique()
        assert sorted(evens) == [0, 1]
        mappings = conn.stream(select(User.id, User.name).where(User.id == 3)).mappings()
        assert mappings.fetchone() == {"id": 3, "name": "u3"}
        first = conn.stream(select(User.id).order_by(User.id))
        assert first.scalar() == 1
        assert first.closed
        one = conn.stream(select(User.name).where(User.id == 2))
        assert one.scalar_one() == "u2"


def test_early_close_releases_everything(users: sync.Engine) -> None:
    with users.connect() as conn:
        result = conn.stream(select(User.id))
        assert len(result.fetchmany(10)) == 10
        result.close()
        result.close()  # idempotent
        assert conn.scalar(select(User.id).where(User.id == 5)) == 5
    assert users.pool.checkedout() == 0

    with users.connect() as conn:
        left_open = conn.stream(select(User.id))
        next(iter(left_open))
    # Closing the connection closed the stream it left open.
    assert users.pool.checkedout() == 0
    left_open.fetchmany(999)  # the rest of the chunk already pulled
    with pytest.raises(exc.ResourceClosedError):
        left_open.fetchone()


def test_session_stream(users: sync.Engine) -> None:
    with sync.Session(users) as session:
        with session.stream(select(User.id, User.name).order_by(User.id)) as result:
            assert [len(p) for p in result.partitions(4000)] == [4000, 4000, 2000]
        total = 0
        for _ in session.stream_scalars(select(User.id)):
            total += 1
            if total == 1500:
                break  # early exit; the session's close ends the stream
        assert total == 1500
    assert users.pool.checkedout() == 0

    with sync.Session(users) as session:
        result = session.stream_scalars(select(User.id).order_by(User.id))
        assert result.fetchmany(2) == [1, 2]
        result.close()
        assert session.get(User, 1) is not None
    assert users.pool.checkedout() == 0


def test_session_streams_orm_objects_into_the_identity_map(users: sync.Engine) -> None:
    with sync.Session(users) as session:
        first = session.get_one(User, 1)
        streamed = session.stream_scalars(
            select(User).where(User.id <= 2500).order_by(User.id)
        ).yield_per(1000)
        objects = list(streamed)
        assert len(objects) == 2500
        assert objects[0] is first
        assert all(obj in session for obj in objects)
