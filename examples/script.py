"""A blocking script on asyncsession's sync facade: no async, no await.

It is the kind of program that scripts, cron jobs and CLIs are: create the
tables, import a few rows, fix one in a savepoint, recover from a duplicate,
report. Attributes that are not loaded (an expired or deferred column) load
when read, as in classic SQLAlchemy. Under the hood every call runs the async
session on one background event loop.

Run it with ``python examples/script.py [URL]``; without a URL it uses a
temporary SQLite file.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from asyncsession import (
    DeclarativeBase,
    IntegrityError,
    Mapped,
    String,
    Text,
    deferred,
    func,
    mapped_column,
    select,
)
from asyncsession.sync import Session, create_engine, sessionmaker


class Base(DeclarativeBase):
    pass


class Book(Base):
    __tablename__ = "books"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(80), unique=True)
    copies: Mapped[int] = mapped_column(default=1)
    summary: Mapped[str | None] = deferred(mapped_column(Text))


def import_books(session: Session, titles: list[str]) -> None:
    session.add_all([Book(title=title, summary=f"All about {title}.") for title in titles])


def main(url: str) -> None:
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    Session = sessionmaker(engine)

    with Session.begin() as session:
        import_books(session, ["Dune", "Emma", "Ulysses"])

    with Session() as session:
        dune = session.scalars(select(Book).where(Book.title == "Dune")).one()
        print(f"{dune.title}: {dune.summary}")  # deferred column: loaded on access

        with session.begin_nested():  # a savepoint, released at the end of the block
            dune.copies += 2
        session.commit()  # expire_on_commit=True: the next read loads fresh values
        print(f"{dune.title} now has {dune.copies} copies")

        try:
            with session.begin_nested():
                session.add(Book(title="Emma"))  # a duplicate title
        except IntegrityError as error:
            print(f"skipped a duplicate: {type(error).__name__}")
        session.commit()

        total = session.scalar(select(func.sum(Book.copies)))
        print(f"{session.scalar(select(func.count()).select_from(Book))} books, {total} copies")

    engine.dispose()


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as directory:
            main(f"sqlite+aiosqlite:///{Path(directory) / 'library.db'}")
