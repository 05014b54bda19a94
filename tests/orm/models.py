"""The canonical model for ORM tests: users, addresses, orders, items, keywords, nodes.

Plain column mappings joined by foreign keys (relationships come later), plus
association tables with composite primary keys and a versioned table. Every
ORM test module that needs "a realistic schema" imports it from here instead
of declaring its own.

Databases: :func:`engine_for` makes an engine with these tables created and
drops them (and disposes the engine) afterwards. On PostgreSQL pass the
``pg_schema`` fixture's schema: the tables live there (through the
connection's ``search_path``), so parallel tests never meet; without one the
tables are dropped at the end (a SQLite file is the test's own). Typical
fixture::

    @pytest.fixture
    def schema(db_url, request):  # sync: an async fixture can't request fixtures
        return request.getfixturevalue("pg_schema") if is_pg(db_url) else None

    @pytest.fixture
    async def engine(db_url, schema):
        async with engine_for(db_url, schema) as engine:
            yield engine
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from asyncsession import (
    AsyncAttrs,
    AsyncEngine,
    DeclarativeBase,
    ForeignKey,
    Mapped,
    String,
    Text,
    create_async_engine,
    deferred,
    func,
    mapped_column,
    select,
)

__all__ = [
    "Address",
    "Base",
    "Item",
    "ItemKeyword",
    "Keyword",
    "Node",
    "Order",
    "OrderItem",
    "User",
    "Versioned",
    "count_rows",
    "create_tables",
    "drop_tables",
    "engine_for",
    "is_pg",
]


class Base(AsyncAttrs, DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(30))
    fullname: Mapped[str | None]
    # Deferred: never loaded unless asked for (refresh(obj, ["bio"]), awaitable_attrs).
    bio: Mapped[str | None] = deferred(mapped_column(Text))

    def __repr__(self) -> str:
        return f"User(id={self.__dict__.get('id')!r}, name={self.__dict__.get('name')!r})"


class Address(Base):
    __tablename__ = "addresses"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    email_address: Mapped[str] = mapped_column(String(50), unique=True)


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    address_id: Mapped[int | None] = mapped_column(ForeignKey("addresses.id"))
    description: Mapped[str | None] = mapped_column(String(30))
    isopen: Mapped[bool] = mapped_column(default=False)


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    description: Mapped[str] = mapped_column(String(30))


class OrderItem(Base):
    __tablename__ = "order_items"
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), primary_key=True)
    quantity: Mapped[int] = mapped_column(default=1)


class Keyword(Base):
    __tablename__ = "keywords"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(30), unique=True)


class ItemKeyword(Base):
    __tablename__ = "item_keywords"
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), primary_key=True)
    keyword_id: Mapped[int] = mapped_column(ForeignKey("keywords.id"), primary_key=True)


class Node(Base):
    __tablename__ = "nodes"
    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id"))
    data: Mapped[str | None] = mapped_column(String(30))


class Versioned(Base):
    """A row with a version counter: UPDATE/DELETE check it (StaleDataError)."""

    __tablename__ = "versioned"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(30))
    version_id: Mapped[int] = mapped_column()
    __mapper_args__ = {"version_id_col": version_id}


def is_pg(url: str) -> bool:
    return url.startswith("postgresql")


async def create_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)


async def drop_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)


@contextlib.asynccontextmanager
async def engine_for(
    url: str, schema: str | None = None, **engine_kw: Any
) -> AsyncIterator[AsyncEngine]:
    """An engine on ``url`` with the model's tables, cleaned up at the end.

    ``schema`` (PostgreSQL): put the tables in that schema through the
    connections' ``search_path``; the schema's owner (the ``pg_schema``
    fixture) drops it. Without one, the tables are dropped here.
    ``engine_kw`` go to ``create_async_engine``; a ``server_settings`` entry in
    ``connect_args`` is merged with the search path.
    """
    connect_args: dict[str, Any] = dict(engine_kw.pop("connect_args", None) or {})
    if schema is not None:
        settings = dict(connect_args.get("server_settings") or {})
        settings["search_path"] = schema
        connect_args["server_settings"] = settings
    engine = create_async_engine(url, connect_args=connect_args, **engine_kw)
    try:
        await create_tables(engine)
        yield engine
    finally:
        try:
            if schema is None and is_pg(url):
                await drop_tables(engine)
        finally:
            await engine.dispose()


async def count_rows(engine: AsyncEngine, entity: Any) -> int:
    """Rows of ``entity``'s table, seen by a fresh connection (committed data only)."""
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(entity.__table__)))
