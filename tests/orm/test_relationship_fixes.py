"""Relationship configuration and flush details found while building eager loading.

- ``order_by="Target.attr"`` (SQLAlchemy's string form) names the target's column;
  anything else is an ArgumentError naming the relationship.
- ``remote_side=[id]`` may name a ``mapped_column()`` of the same class body.
- ``populate_existing`` overwrites loaded columns but keeps the history of an
  unflushed relationship change, so the flush still writes it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from asyncsession import (
    ArgumentError,
    AsyncEngine,
    AsyncSession,
    DeclarativeBase,
    ForeignKey,
    Mapped,
    create_async_engine,
    mapped_column,
    select,
)
from asyncsession.orm.relationships import ensure_configured, relationship


class Base(DeclarativeBase):
    pass


class Folder(Base):
    __tablename__ = "folders"
    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("folders.id"))
    name: Mapped[str]
    subfolders: Mapped[list[Folder]] = relationship(back_populates="parent", order_by="Folder.name")
    parent: Mapped[Folder | None] = relationship(back_populates="subfolders", remote_side=[id])


def test_order_by_and_remote_side_in_the_class_body() -> None:
    ensure_configured(Folder.__mapper__)
    prop = Folder.subfolders.property
    assert prop.order_by == (Folder.name,)
    assert Folder.parent.property.direction.name == "MANYTOONE"
    assert prop.direction.name == "ONETOMANY"


def test_order_by_naming_something_else() -> None:
    class Other(DeclarativeBase):
        pass

    class Box(Other):
        __tablename__ = "boxes"
        id: Mapped[int] = mapped_column(primary_key=True)
        things: Mapped[list[Thing]] = relationship(order_by="Box.id")

    class Thing(Other):
        __tablename__ = "things"
        id: Mapped[int] = mapped_column(primary_key=True)
        box_id: Mapped[int] = mapped_column(ForeignKey("boxes.id"))

    with pytest.raises(ArgumentError, match=r"Box\.things: order_by='Box\.id' must name"):
        ensure_configured(Box.__mapper__)


@pytest.fixture
async def engine(db_url: str, connect_args: dict[str, Any]) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(db_url, connect_args=connect_args)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.mark.anyio
async def test_populate_existing_keeps_an_unflushed_relationship_change(
    engine: AsyncEngine,
) -> None:
    async with AsyncSession(engine) as session:
        session.add(Folder(id=1, name="root", subfolders=[]))
        await session.commit()
        root = await session.get(Folder, 1)
        assert root is not None
        await session.load_relationship([root], Folder.subfolders)
        root.name = "changed"
        root.subfolders.append(Folder(id=2, name="new"))
        with session.no_autoflush:
            stmt = select(Folder).where(Folder.id == 1).execution_options(populate_existing=True)
            assert (await session.execute(stmt)).scalar_one() is root
        assert root.name == "root"  # loaded columns are overwritten, as SQLAlchemy
        assert [f.name for f in root.subfolders] == ["new"]
        await session.commit()
        stmt = select(Folder.parent_id).where(Folder.id == 2)
        assert (await session.execute(stmt)).scalar_one() == 1
