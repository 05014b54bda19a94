"""The asyncsession demo: `make demo` runs it on an embedded SQLite file.

Part one uses the SQL layer and the engine: it prints the SQL one statement
compiles to on each dialect, then creates tables, loads data and queries it.
Part two uses the ORM: mapped classes, an AsyncSession, a savepoint, a
rollback and an explicit load of an expired attribute. It needs nothing but
the package: the database is a temporary file it creates and removes.
"""

from __future__ import annotations

import asyncio
import datetime
import tempfile
from decimal import Decimal
from pathlib import Path

from asyncsession import (
    AsyncAttrs,
    Column,
    DateTime,
    DeclarativeBase,
    ForeignKey,
    Integer,
    IntegrityError,
    Mapped,
    MetaData,
    Numeric,
    String,
    Table,
    UnloadedAttributeError,
    async_sessionmaker,
    create_async_engine,
    func,
    insert,
    inspect,
    mapped_column,
    relationship,
    select,
    update,
)
from asyncsession.sql.dialects.postgresql import PGDialect
from asyncsession.sql.dialects.sqlite import SQLiteDialect

metadata = MetaData()

customers = Table(
    "customers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(50), nullable=False, unique=True),
    Column("joined", DateTime, nullable=False),
)

orders = Table(
    "orders",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("total", Numeric(10, 2), nullable=False),
    Column("status", String(20), nullable=False, default="open"),
)


def show_sql() -> None:
    """One statement, two dialects: same shape, each in its own parameter style."""
    stmt = (
        select(customers.c.name, func.sum(orders.c.total).label("spent"))
        .join(orders)
        .where(orders.c.status.in_(["open", "paid"]))
        .group_by(customers.c.name)
        .having(func.sum(orders.c.total) > 100)
        .order_by(customers.c.name)
    )
    print("-- generic (str(stmt))")
    print(stmt)
    for dialect in (SQLiteDialect(), PGDialect()):
        compiled, values = dialect.compile(stmt)
        print(f"-- {dialect.name}")
        print(compiled.sql)
        print("   parameters:", compiled.construct_params(values))


async def run(path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            joined = datetime.datetime(2026, 1, 5, 9, 30)
            await conn.execute(
                insert(customers),
                [{"name": name, "joined": joined} for name in ("ann", "bob", "cy")],
            )
            ids = dict((await conn.execute(select(customers.c.name, customers.c.id))).all())
            await conn.execute(
                insert(orders),
                [
                    {"customer_id": ids["ann"], "total": Decimal("80.00")},
                    {"customer_id": ids["ann"], "total": Decimal("45.50")},
                    {"customer_id": ids["bob"], "total": Decimal("12.25")},
                    {"customer_id": ids["cy"], "total": Decimal("240.00")},
                ],
            )
            paid = await conn.execute(
                update(orders)
                .where(orders.c.total > 100)
                .values(status="paid")
                .returning(orders.c.id, orders.c.status)
            )
            print("marked paid:", paid.all())

        async with engine.connect() as conn:
            spent = func.sum(orders.c.total).label("spent")
            result = await conn.execute(
                select(customers.c.name, spent, func.count(orders.c.id).label("n"))
                .join(orders)
                .group_by(customers.c.name)
                .order_by(spent.desc())
            )
            print("customers by spend:")
            for row in result:
                print(f"  {row.name:<4} {row.n} orders  {row.spent:>8}")
    finally:
        await engine.dispose()
    assert engine.pool.checkedout() == 0


class Base(AsyncAttrs, DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "authors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    bio: Mapped[str | None]
    books: Mapped[list[Book]] = relationship(
        back_populates="author", cascade="all, delete-orphan", order_by="Book.year"
    )


class Book(Base):
    __tablename__ = "books"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id"))
    title: Mapped[str]
    year: Mapped[int]
    author: Mapped[Author] = relationship(back_populates="books")


async def run_orm(path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    Session = async_sessionmaker(engine)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

        async with Session() as session:
            ursula = Author(
                name="Ursula",
                books=[
                    Book(title="The Dispossessed", year=1974),
                    Book(title="The Lathe of Heaven", year=1971),
                ],
            )
            session.add(ursula)  # the books come along (save-update cascade)
            await session.commit()  # authors first, then books with author_id filled in
            print("after commit:", inspect(ursula).persistent, ursula.name)

            async with session.begin_nested():  # a SAVEPOINT
                ursula.bio = "wrote about anarchists and wizards"
            try:
                async with session.begin_nested():
                    session.add(Author(name="Ursula"))  # violates the unique name
            except IntegrityError:
                print("duplicate author rolled back to the savepoint")
            await session.commit()

            books = await session.scalars(
                select(Book).where(Book.author_id == ursula.id).order_by(Book.year)
            )
            for book in books:
                print(f"  {book.year} {book.title}")

            session.expire(ursula)
            try:
                print(ursula.bio)
            except UnloadedAttributeError as err:
                print("no hidden IO:", str(err).split(" and ")[0])
            print("explicit load:", await ursula.awaitable_attrs.bio)

        async with Session() as session:
            ursula = (await session.scalars(select(Author))).one()
            try:
                ursula.books  # noqa: B018 - reading is the point
            except UnloadedAttributeError:
                print("relationships load on request too:")
            for book in await ursula.awaitable_attrs.books:  # one SELECT
                print(f"  {book.title} by {book.author.name}")  # many-to-one: no SQL
            await session.delete(ursula)  # cascades to her books at the flush
            await session.commit()
            left = await session.scalar(select(func.count()).select_from(Book))
            print("books left after deleting the author:", left)
    finally:
        await engine.dispose()
    assert engine.pool.checkedout() == 0


def main() -> None:
    show_sql()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(Path(tmp) / "demo.db"))
        asyncio.run(run_orm(Path(tmp) / "orm.db"))


if __name__ == "__main__":
    main()
