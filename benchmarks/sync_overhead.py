"""The sync facade's cost over the async API it drives (target: within 1.5x).

The same work runs twice on the same database: through ``asyncsession.sync``
from a plain blocking main thread, and through the async API in an asyncio
loop of the main thread. The figure is facade time / async time.

- ``get_2000``: 2,000 ``get()`` by primary key in one session, each object
  expunged so every call is a SELECT (as ``orm_get_2000`` in bench_orm).
- ``select_10k``: one ``select(Item)`` of 10,000 rows into objects.

Each workload runs on PostgreSQL (``ASYNCSESSION_TEST_PG_URL``, default the
local server; skipped when unreachable) and on a SQLite file. Facade and async
rounds alternate, so drifting machine load hits both; each figure is the best
of ``BENCH_REPEAT`` (default 5) rounds after one warm-up. Run:
``python -m benchmarks.sync_overhead`` (``make bench`` does).

It is a separate script rather than a ``bench_*`` module because the runner's
contenders are asyncsession, SQLAlchemy and the raw driver, and its ratio
columns mean "against SQLAlchemy" and "against the driver"; here both sides
are asyncsession.
"""

import asyncio
import os
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from asyncsession import (
    AsyncSession,
    DeclarativeBase,
    Mapped,
    OperationalError,
    String,
    create_async_engine,
    delete,
    insert,
    mapped_column,
    select,
    sync,
)

PG_URL = os.environ.get(
    "ASYNCSESSION_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
TABLE = "bench_sync_items"
N_ROWS = 10_000
N_GETS = 2_000
TARGET = 1.5
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = TABLE
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    qty: Mapped[int]


# -- the workloads, once per API ------------------------------------------------------------
def facade_get(engine: sync.Engine) -> None:
    with sync.Session(engine) as session:
        for i in range(1, N_GETS + 1):
            item = session.get(Item, i)
            assert item is not None
            session.expunge(item)


async def async_get(engine: Any) -> None:
    async with AsyncSession(engine) as session:
        for i in range(1, N_GETS + 1):
            item = await session.get(Item, i)
            assert item is not None
            session.expunge(item)


def facade_select(engine: sync.Engine) -> None:
    with sync.Session(engine) as session:
        assert len(session.scalars(select(Item)).all()) == N_ROWS


async def async_select(engine: Any) -> None:
    async with AsyncSession(engine) as session:
        assert len((await session.scalars(select(Item))).all()) == N_ROWS


WORKLOADS: list[
    tuple[str, Callable[[sync.Engine], None], Callable[[Any], Coroutine[Any, Any, None]]]
] = [
    (f"get_{N_GETS}", facade_get, async_get),
    (f"select_{N_ROWS // 1000}k", facade_select, async_select),
]


# -- measuring -------------------------------------------------------------------------------
def seed(engine: sync.Engine) -> None:
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(delete(Item))
        conn.execute(
            insert(Item),
            [{"id": i, "name": f"item {i}", "qty": i % 97} for i in range(1, N_ROWS + 1)],
        )


def measure(url: str) -> list[tuple[str, float, float]]:
    """(workload, best async seconds, best facade seconds) for the database at ``url``."""
    facade_engine = sync.create_engine(url)
    seed(facade_engine)
    runner = asyncio.Runner()
    async_engine = create_async_engine(url)
    results = []
    try:
        for name, facade_run, async_run in WORKLOADS:
            async_times: list[float] = []
            facade_times: list[float] = []
            for round_ in range(REPEAT + 1):
                start = time.perf_counter()
                runner.run(async_run(async_engine))
                async_time = time.perf_counter() - start
                start = time.perf_counter()
                facade_run(facade_engine)
                facade_time = time.perf_counter() - start
                if round_:  # the first round warms caches and pools
                    async_times.append(async_time)
                    facade_times.append(facade_time)
            results.append((name, min(async_times), min(facade_times)))
    finally:
        runner.run(async_engine.dispose())
        runner.close()
        Base.metadata.drop_all(facade_engine)
        facade_engine.dispose()
    return results


def main() -> None:
    print(f"sync facade against the async API (best of {REPEAT}; target: within {TARGET}x)")
    # Each facade call is a hop to the loop thread and back: two thread wake-ups,
    # whose latency grows with the machine's load. Say what the load was.
    print("  load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"  {'workload':<24} {'async':>9} {'facade':>9} {'facade/async':>13}")
    with tempfile.TemporaryDirectory() as directory:
        databases = [
            ("postgresql", PG_URL),
            ("sqlite", f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"),
        ]
        for label, url in databases:
            try:
                results = measure(url)
            except (OSError, OperationalError) as error:
                print(f"  {label}: skipped ({type(error).__name__}: {error})")
                continue
            for name, async_time, facade_time in results:
                ratio = facade_time / async_time
                verdict = "ok" if ratio <= TARGET else "OVER TARGET"
                print(
                    f"  {name + ' (' + label + ')':<24} {async_time:8.3f}s {facade_time:8.3f}s "
                    f"{ratio:12.2f}x  {verdict}"
                )


if __name__ == "__main__":
    main()
