"""Memory held per loaded object: asyncsession against SQLAlchemy (tracemalloc).

Both ORMs load the same 10,000 rows from an in-memory SQLite database into a
session and keep the objects; the figure is the memory still allocated while
the objects and their session are alive, divided by the number of objects. The
rows, engine and statements exist before measuring starts, so only what the
ORM adds per object is counted (the object, its attribute dict, its state and
its identity-map entry). Run: ``python -m benchmarks.memory``.
"""

import asyncio
import gc
import tracemalloc
from typing import Any

N = 10_000


async def _measure(load: Any) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    kept = await load()
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert len(kept[0]) == N
    return grown / N


async def ours() -> float:
    from asyncsession import (
        AsyncSession,
        DeclarativeBase,
        Mapped,
        String,
        create_async_engine,
        insert,
        mapped_column,
        select,
    )

    class Base(DeclarativeBase):
        pass

    class Item(Base):
        __tablename__ = "items"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(40))
        qty: Mapped[int]

    engine = create_async_engine("sqlite+aiosqlite://")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.execute(insert(Item.__table__), [{"name": f"i{i}", "qty": i} for i in range(N)])
    session = AsyncSession(engine)
    await session.execute(select(Item).limit(1))  # warm caches outside the measurement

    async def load() -> Any:
        items = (await session.execute(select(Item))).scalars().all()
        return items, session

    try:
        return await _measure(load)
    finally:
        await session.close()
        await engine.dispose()


async def theirs() -> float:
    from sqlalchemy import String, insert, select
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

    class Base(DeclarativeBase):
        pass

    class Item(Base):
        __tablename__ = "items"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(40))
        qty: Mapped[int]

    engine = create_async_engine("sqlite+aiosqlite://")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.execute(insert(Item), [{"name": f"i{i}", "qty": i} for i in range(N)])
    session = AsyncSession(engine, expire_on_commit=False)
    await session.execute(select(Item).limit(1))

    async def load() -> Any:
        items = (await session.execute(select(Item))).scalars().all()
        return items, session

    try:
        return await _measure(load)
    finally:
        await session.close()
        await engine.dispose()


def main() -> None:
    mine = asyncio.run(ours())
    other = asyncio.run(theirs())
    print(f"memory per loaded object ({N:,} objects, tracemalloc):")
    print(f"  asyncsession  {mine:7.0f} bytes")
    print(f"  sqlalchemy    {other:7.0f} bytes")
    print(f"  asyncsession/sqlalchemy  {mine / other:.2f}  (target: at most 0.50)")


if __name__ == "__main__":
    main()
