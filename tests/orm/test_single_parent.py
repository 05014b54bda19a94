"""``single_parent=True``: an object added to one parent can't be added to a second.

SQLAlchemy's rule, checked against SQLAlchemy itself: the record is kept in
memory, per object and relationship, by the changes made through that
relationship (or its backref); an object loaded from the database has none, so
it may be moved. The refusal comes before anything changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import sqlalchemy as sa
import sqlalchemy.orm as sa_orm

from asyncsession import (
    AsyncEngine,
    AsyncSession,
    Column,
    DeclarativeBase,
    ForeignKey,
    InvalidRequestError,
    Mapped,
    Table,
    create_async_engine,
    mapped_column,
    relationship,
    select,
    selectinload,
)
from asyncsession.orm.relationships import ensure_configured


class Base(DeclarativeBase):
    pass


post_tags = Table(
    "sp_post_tags",
    Base.metadata,
    Column("post_id", ForeignKey("sp_posts.id"), primary_key=True),
    Column("tag_id", ForeignKey("sp_tags.id"), primary_key=True),
)


class Post(Base):
    __tablename__ = "sp_posts"
    id: Mapped[int] = mapped_column(primary_key=True)
    tags: Mapped[list[Tag]] = relationship(
        secondary=post_tags,
        back_populates="posts",
        cascade="all, delete-orphan",
        single_parent=True,
        order_by="Tag.id",
    )


class Tag(Base):
    __tablename__ = "sp_tags"
    id: Mapped[int] = mapped_column(primary_key=True)
    posts: Mapped[list[Post]] = relationship(secondary=post_tags, back_populates="tags")


class User(Base):
    __tablename__ = "sp_users"
    id: Mapped[int] = mapped_column(primary_key=True)


class Address(Base):
    __tablename__ = "sp_addresses"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("sp_users.id"))
    user: Mapped[User | None] = relationship(cascade="all, delete-orphan", single_parent=True)


# -- the same model in SQLAlchemy, the oracle ----------------------------------------------------
class SABase(sa_orm.DeclarativeBase):
    pass


sa_post_tags = sa.Table(
    "sp_post_tags",
    SABase.metadata,
    sa.Column("post_id", sa.ForeignKey("sp_posts.id"), primary_key=True),
    sa.Column("tag_id", sa.ForeignKey("sp_tags.id"), primary_key=True),
)


class SAPost(SABase):
    __tablename__ = "sp_posts"
    id: sa_orm.Mapped[int] = sa_orm.mapped_column(primary_key=True)
    tags: sa_orm.Mapped[list[SATag]] = sa_orm.relationship(
        secondary=sa_post_tags,
        back_populates="posts",
        cascade="all, delete-orphan",
        single_parent=True,
    )


class SATag(SABase):
    __tablename__ = "sp_tags"
    id: sa_orm.Mapped[int] = sa_orm.mapped_column(primary_key=True)
    posts: sa_orm.Mapped[list[SAPost]] = sa_orm.relationship(
        secondary=sa_post_tags, back_populates="tags"
    )


class SAUser(SABase):
    __tablename__ = "sp_users"
    id: sa_orm.Mapped[int] = sa_orm.mapped_column(primary_key=True)


class SAAddress(SABase):
    __tablename__ = "sp_addresses"
    id: sa_orm.Mapped[int] = sa_orm.mapped_column(primary_key=True)
    user_id: sa_orm.Mapped[int | None] = sa_orm.mapped_column(sa.ForeignKey("sp_users.id"))
    user: sa_orm.Mapped[SAUser | None] = sa_orm.relationship(
        cascade="all, delete-orphan", single_parent=True
    )


OURS = {"Post": Post, "Tag": Tag, "User": User, "Address": Address}
THEIRS = {"Post": SAPost, "Tag": SATag, "User": SAUser, "Address": SAAddress}

Step = Callable[[dict[str, Any]], object]

# Each scenario: steps on objects p1, p2 (posts), t (a tag), u (a user), a1, a2
# (addresses), and which of them are refused. SQLAlchemy must agree.
SCENARIOS: dict[str, tuple[list[Step], list[bool]]] = {
    "append to a second parent": (
        [
            lambda o: o["p1"].tags.append(o["t"]),
            lambda o: o["p2"].tags.append(o["t"]),
        ],
        [False, True],
    ),
    "append after removing from the first": (
        [
            lambda o: o["p1"].tags.append(o["t"]),
            lambda o: o["p1"].tags.remove(o["t"]),
            lambda o: o["p2"].tags.append(o["t"]),
        ],
        [False, False, False],
    ),
    "assign a collection holding another parent's member": (
        [
            lambda o: o["p1"].tags.append(o["t"]),
            lambda o: setattr(o["p2"], "tags", [o["t"]]),
        ],
        [False, True],
    ),
    "assign after the first parent's collection was replaced": (
        [
            lambda o: setattr(o["p1"], "tags", [o["t"]]),
            lambda o: setattr(o["p1"], "tags", []),
            lambda o: setattr(o["p2"], "tags", [o["t"]]),
        ],
        [False, False, False],
    ),
    # A change made through the other side is not checked; the record is one flag
    # per object and relationship, so leaving either parent clears it.
    "second parent through the backref": (
        [
            lambda o: o["p1"].tags.append(o["t"]),
            lambda o: o["t"].posts.append(o["p2"]),
            lambda o: o["p1"].tags.remove(o["t"]),
            lambda o: o["p1"].tags.append(o["t"]),
            lambda o: o["p2"].tags.append(o["t"]),
        ],
        [False, False, False, False, True],
    ),
    "many-to-one target of two objects": (
        [
            lambda o: setattr(o["a1"], "user", o["u"]),
            lambda o: setattr(o["a2"], "user", o["u"]),
            lambda o: setattr(o["a1"], "user", None),
            lambda o: setattr(o["a2"], "user", o["u"]),
        ],
        [False, True, False, False],
    ),
    "the same many-to-one again": (
        [
            lambda o: setattr(o["a1"], "user", o["u"]),
            lambda o: setattr(o["a1"], "user", o["u"]),
        ],
        [False, False],
    ),
}


def outcomes(classes: dict[str, Any], steps: list[Step]) -> list[bool]:
    objects = {
        "p1": classes["Post"](id=1),
        "p2": classes["Post"](id=2),
        "t": classes["Tag"](id=1),
        "u": classes["User"](id=1),
        "a1": classes["Address"](id=1),
        "a2": classes["Address"](id=2),
    }
    raised = []
    for step in steps:
        try:
            step(objects)
        except (InvalidRequestError, sa.exc.InvalidRequestError):
            raised.append(True)
        else:
            raised.append(False)
    return raised


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_refusals_match_sqlalchemy(name: str) -> None:
    ensure_configured(Post.__mapper__)
    sa_orm.configure_mappers()
    steps, refused = SCENARIOS[name]
    assert outcomes(THEIRS, steps) == refused
    assert outcomes(OURS, steps) == refused


def test_refused_before_anything_changes() -> None:
    p1, p2, t, other = Post(id=1), Post(id=2), Tag(id=1), Tag(id=2)
    p1.tags.append(t)
    with pytest.raises(InvalidRequestError, match=r"Post\.tags.*single_parent=True"):
        p2.tags.extend([other, t])
    assert list(p2.tags) == []
    assert list(other.posts) == []
    with pytest.raises(InvalidRequestError, match="single_parent"):
        p2.tags = [other, t]
    assert list(p2.tags) == []
    assert list(t.posts) == [p1]
    with pytest.raises(InvalidRequestError, match="twice"):
        p2.tags.extend([other, other])
    assert list(p2.tags) == []


# -- on a database ---------------------------------------------------------------------------------
@pytest.fixture
async def engine(db_url: str, connect_args: dict[str, Any]) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(db_url, connect_args=connect_args)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
        await conn.run_sync(Base.metadata.create_all)
    yield engine
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
    await engine.dispose()


pytestmark = pytest.mark.anyio


async def test_loaded_members_carry_no_record(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as session:
        session.add_all([Post(id=1, tags=[Tag(id=1)]), Post(id=2)])
        await session.commit()
    async with AsyncSession(engine) as session:
        stmt = select(Post).options(selectinload(Post.tags)).order_by(Post.id)
        p1, p2 = (await session.execute(stmt)).scalars().all()
        [t] = p1.tags
        # Loaded, not added in memory: moving it is allowed, as in SQLAlchemy.
        p1.tags.remove(t)
        p2.tags.append(t)
        # Now it was added to p2 in memory: a second parent is refused.
        with pytest.raises(InvalidRequestError, match="single_parent"):
            p1.tags.append(t)
        await session.commit()
    async with AsyncSession(engine) as session:
        rows = (await session.execute(select(post_tags.c.post_id, post_tags.c.tag_id))).all()
        assert [tuple(r) for r in rows] == [(2, 1)]
