"""A stateful test of relationship flushes against SQLAlchemy's sync Session on SQLite.

How this works:

* Two SQLite files hold the same schema: ``parent`` (autoincrement key),
  ``child`` (explicit key, nullable foreign key to ``parent``), ``tag`` and the
  association table ``parent_tag``, and ``node`` (an adjacency-list tree).
  Both ORMs map it the same way: ``Parent.children`` one-to-many with
  ``back_populates`` and ``cascade="all, delete-orphan"``, ``Parent.tags`` /
  ``Tag.parents`` many-to-many, ``Node.parent`` / ``Node.children`` with
  ``remote_side``.
* A Hypothesis rule-based machine draws relationship work (new objects with
  or without a parent, appending, removing and moving children through the
  collection or through ``child.parent = ...``, linking and unlinking tags,
  moving nodes, deletes with their cascades, explicit loads of collections,
  expire, refresh, flush, commit, rollback) and runs each step on
  asyncsession's ``AsyncSession`` (in a blocking portal) and on SQLAlchemy's
  ``Session``. Objects are tracked as pairs (ours, theirs); objects a load
  brings in are paired by identity.
* Both must succeed, or raise errors of the same name. A failed flush leaves
  both needing ``rollback()``.
* After every step the committed rows of every table are equal (read with
  sqlite3, outside both sessions); after a flush the rows each session sees in
  its transaction are equal; for every pair the lifecycle flag and identity
  agree, so do the column values loaded on both sides and, for persistent
  objects, every relationship loaded on both sides (as sets of pairs).

Differences by design:

* asyncsession never loads implicitly. Before mutating a collection the
  machine loads it on both sides (``load_relationship()`` here, a lazy load
  under ``no_autoflush`` there), so both mutate loaded collections; the oracle
  never lazy loads otherwise (attributes are read from ``__dict__``).
* Loads do not autoflush here (``load_relationship()``, ``refresh()``, the
  loads of ``delete()``'s cascade); SQLAlchemy's lazy loads do, so the oracle
  loads and deletes under ``no_autoflush``.
* SQLAlchemy numbers pending objects by ``len(session.new)``; its insert orders
  are set to ours (see tests/orm/test_stateful.py).

Not drawn, each where the rule says why (docs/migrating.md lists the
deliberate ones): expiring or refreshing while relationship changes are
unflushed; deleting an object whose relationships changed since the last
flush, or a parent whose loaded collection holds an object deleted earlier;
detaching a child whose parent changed since the last flush; moving a pending
child from one parent to another through ``child.parent``; moving a child to
the parent it has; changing the relationships of objects marked for deletion.
"""

from __future__ import annotations

import contextlib
import sqlite3
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest
import sqlalchemy as sa
import sqlalchemy.orm as sa_orm
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from asyncsession import (
    AsyncSession,
    Column,
    ForeignKey,
    String,
    Table,
    create_async_engine,
    inspect,
)
from asyncsession.engine import AsyncEngine
from asyncsession.orm.decl import DeclarativeBase, Mapped, mapped_column
from asyncsession.orm.relationships import relationship

# -- the two mappings of one schema -------------------------------------------------------------


class Base(DeclarativeBase):
    pass


parent_tag = Table(
    "parent_tag",
    Base.metadata,
    Column("parent_id", ForeignKey("parent.id"), primary_key=True),
    Column("tag_id", ForeignKey("tag.id"), primary_key=True),
)


class Parent(Base):
    __tablename__ = "parent"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20))
    children: Mapped[list[Child]] = relationship(
        back_populates="parent", cascade="all, delete-orphan"
    )
    tags: Mapped[list[Tag]] = relationship(secondary=parent_tag, back_populates="parents")


class Child(Base):
    __tablename__ = "child"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("parent.id"))
    name: Mapped[str] = mapped_column(String(20))
    parent: Mapped[Parent | None] = relationship(back_populates="children")


class Tag(Base):
    __tablename__ = "tag"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(20))
    parents: Mapped[list[Parent]] = relationship(secondary=parent_tag, back_populates="tags")


class Node(Base):
    __tablename__ = "node"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("node.id"))
    name: Mapped[str] = mapped_column(String(20))
    parent: Mapped[Node | None] = relationship(back_populates="children", remote_side=[id])
    children: Mapped[list[Node]] = relationship(back_populates="parent")


class SABase(sa_orm.DeclarativeBase):
    pass


sa_parent_tag = sa.Table(
    "parent_tag",
    SABase.metadata,
    sa.Column("parent_id", sa.ForeignKey("parent.id"), primary_key=True),
    sa.Column("tag_id", sa.ForeignKey("tag.id"), primary_key=True),
)


class SAParent(SABase):
    __tablename__ = "parent"
    id: sa_orm.Mapped[int] = sa_orm.mapped_column(primary_key=True)
    name: sa_orm.Mapped[str] = sa_orm.mapped_column(sa.String(20))
    children: sa_orm.Mapped[list[SAChild]] = sa_orm.relationship(
        back_populates="parent", cascade="all, delete-orphan"
    )
    tags: sa_orm.Mapped[list[SATag]] = sa_orm.relationship(
        secondary=sa_parent_tag, back_populates="parents"
    )


class SAChild(SABase):
    __tablename__ = "child"
    id: sa_orm.Mapped[int] = sa_orm.mapped_column(primary_key=True, autoincrement=False)
    parent_id: sa_orm.Mapped[int | None] = sa_orm.mapped_column(sa.ForeignKey("parent.id"))
    name: sa_orm.Mapped[str] = sa_orm.mapped_column(sa.String(20))
    parent: sa_orm.Mapped[SAParent | None] = sa_orm.relationship(back_populates="children")


class SATag(SABase):
    __tablename__ = "tag"
    id: sa_orm.Mapped[int] = sa_orm.mapped_column(primary_key=True, autoincrement=False)
    name: sa_orm.Mapped[str] = sa_orm.mapped_column(sa.String(20))
    parents: sa_orm.Mapped[list[SAParent]] = sa_orm.relationship(
        secondary=sa_parent_tag, back_populates="tags"
    )


class SANode(SABase):
    __tablename__ = "node"
    id: sa_orm.Mapped[int] = sa_orm.mapped_column(primary_key=True, autoincrement=False)
    parent_id: sa_orm.Mapped[int | None] = sa_orm.mapped_column(sa.ForeignKey("node.id"))
    name: sa_orm.Mapped[str] = sa_orm.mapped_column(sa.String(20))
    parent: sa_orm.Mapped[SANode | None] = sa_orm.relationship(
        back_populates="children", remote_side=[id]
    )
    children: sa_orm.Mapped[list[SANode]] = sa_orm.relationship(back_populates="parent")


KINDS: dict[str, tuple[type[Any], type[Any]]] = {
    "parent": (Parent, SAParent),
    "child": (Child, SAChild),
    "tag": (Tag, SATag),
    "node": (Node, SANode),
}
COLUMNS = {
    "parent": ("id", "name"),
    "child": ("id", "parent_id", "name"),
    "tag": ("id", "name"),
    "node": ("id", "parent_id", "name"),
}
RELATIONSHIPS = {
    "parent": ("children", "tags"),
    "child": ("parent",),
    "tag": ("parents",),
    "node": ("parent", "children"),
}
TABLES = {
    "parent": "SELECT id, name FROM parent ORDER BY id",
    "child": "SELECT id, parent_id, name FROM child ORDER BY id",
    "tag": "SELECT id, name FROM tag ORDER BY id",
    "parent_tag": "SELECT parent_id, tag_id FROM parent_tag ORDER BY parent_id, tag_id",
    "node": "SELECT id, parent_id, name FROM node ORDER BY id",
}

Rows = dict[str, list[tuple[Any, ...]]]

SETTINGS = settings(
    max_examples=300,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

names = st.sampled_from(["a", "b", "c"])


# -- the databases -----------------------------------------------------------------------------


def _sqlite_connect(dbapi_connection: Any, record: Any) -> None:
    dbapi_connection.isolation_level = None
    dbapi_connection.execute("PRAGMA foreign_keys=ON")


async def _create_all(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)


class Databases:
    """Our engine and the oracle's, on two SQLite files, with raw readers and a reset."""

    def __init__(self, portal: BlockingPortal, tmp_path: Path) -> None:
        self.portal = portal
        self.path = str(tmp_path / "ours.db")
        self.oracle_path = str(tmp_path / "oracle.db")
        self.engine = create_async_engine(f"sqlite+aiosqlite:///{self.path}")
        self.oracle_engine = sa.create_engine(f"sqlite:///{self.oracle_path}")
        sa.event.listen(self.oracle_engine, "connect", _sqlite_connect)
        sa.event.listen(self.oracle_engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
        portal.call(_create_all, self.engine)
        SABase.metadata.create_all(self.oracle_engine)

    @staticmethod
    def _read(path: str) -> Rows:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            return {t: conn.execute(sql).fetchall() for t, sql in TABLES.items()}

    def read_committed(self) -> tuple[Rows, Rows]:
        return self._read(self.path), self._read(self.oracle_path)

    def reset(self) -> None:
        for path in (self.path, self.oracle_path):
            with contextlib.closing(sqlite3.connect(path)) as conn:
                for table in ("parent_tag", "child", "tag", "node", "parent"):
                    conn.execute(f"DELETE FROM {table}")
                conn.execute("DELETE FROM sqlite_sequence") if _has_sequence(conn) else None
                conn.commit()

    def close(self) -> None:
        self.portal.call(self.engine.dispose)
        self.oracle_engine.dispose()


def _has_sequence(conn: sqlite3.Connection) -> bool:
    found = conn.execute("SELECT name FROM sqlite_master WHERE name = 'sqlite_sequence'")
    return found.fetchone() is not None


@contextlib.contextmanager
def open_databases(tmp_path: Path) -> Iterator[Databases]:
    with start_blocking_portal() as portal:
        databases = Databases(portal, tmp_path)
        try:
            yield databases
        finally:
            databases.close()


# -- the machine -------------------------------------------------------------------------------


@attrs.define(eq=False)
class Pair:
    """One object as asyncsession has it and as SQLAlchemy has it."""

    index: int
    kind: str
    ours: Any
    theirs: Any

    def __repr__(self) -> str:
        return f"<{self.kind} #{self.index}>"


@attrs.define(eq=False)
class Outcome:
    value: Any = None
    error: BaseException | None = None


def lifecycle(state: Any) -> str:
    flags = [
        name
        for name in ("transient", "pending", "persistent", "deleted", "detached")
        if getattr(state, name)
    ]
    assert len(flags) == 1, f"{state!r} has lifecycle flags {flags}"
    return flags[0]


def members(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, set, tuple)):
        return list(value)
    return [value]


class RelationshipMachine(RuleBasedStateMachine):
    """Random relationship work on asyncsession and SQLAlchemy, compared after every step."""

    databases: ClassVar[Databases]

    def __init__(self) -> None:
        super().__init__()
        self.databases.reset()
        ours, theirs = self.databases.read_committed()
        assert not any(ours.values()), "the reset left rows"
        assert not any(theirs.values()), "the reset left rows"
        self.portal = self.databases.portal
        self.ours = AsyncSession(self.databases.engine)
        self.theirs = sa_orm.Session(self.databases.oracle_engine, expire_on_commit=False)
        self.pairs: list[Pair] = []
        self.by_ours: dict[int, Pair] = {}
        self.by_theirs: dict[int, Pair] = {}
        self.next_id = {"child": 1, "tag": 1, "node": 1}
        self.failed = False

    def teardown(self) -> None:
        try:
            self.portal.call(self.ours.close)
        finally:
            self.theirs.close()

    # -- running an operation on both ------------------------------------------------------

    def both(
        self, ours: Callable[[], Any], theirs: Callable[[], Any], *, awaited: bool = True
    ) -> tuple[Outcome, Outcome]:
        """Run ``ours`` (a coroutine function if ``awaited``) and ``theirs``; compare outcomes."""
        mine, oracle = Outcome(), Outcome()
        try:
            mine.value = self.portal.call(ours) if awaited else ours()
        except Exception as error:
            mine.error = error
        try:
            oracle.value = theirs()
        except Exception as error:
            oracle.error = error
        # asyncsession inserts pending objects in the order they were (last) added.
        add_order = {id(s): i for i, s in enumerate(self.ours._new)}
        for state in map(sa.inspect, list(self.theirs.new)):
            # SQLAlchemy numbers pending objects by len(session.new) at add(), so an
            # expunged orphan makes later ones tie and their INSERT order arbitrary;
            # asyncsession keeps add order (see tests/orm/test_stateful.py).
            pair = self.by_theirs.get(id(state.obj()))
            if pair is not None and inspect(pair.ours).pending:
                state.insert_order = add_order.get(id(inspect(pair.ours)), -1)
        ours_name = type(mine.error).__name__ if mine.error else None
        theirs_name = type(oracle.error).__name__ if oracle.error else None
        assert ours_name == theirs_name, (
            f"asyncsession: {ours_name}: {mine.error}\nSQLAlchemy: {theirs_name}: {oracle.error}\n"
            + "".join(traceback.format_exception(mine.error or oracle.error))
        )
        assert self.ours.is_active == self.theirs.is_active
        self.failed = not self.ours.is_active
        return mine, oracle

    def track(self, kind: str, ours: Any, theirs: Any) -> Pair:
        pair = Pair(len(self.pairs), kind, ours, theirs)
        self.pairs.append(pair)
        self.by_ours[id(ours)] = pair
        self.by_theirs[id(theirs)] = pair
        return pair

    def pair_of(self, kind: str, ours: Any, theirs: Any) -> Pair:
        """The pair of two objects a load returned (tracked from now on if new)."""
        pair = self.by_ours.get(id(ours))
        if pair is None:
            assert id(theirs) not in self.by_theirs, f"SQLAlchemy loaded a known {theirs!r}"
            assert inspect(ours).identity == sa.inspect(theirs).identity
            return self.track(kind, ours, theirs)
        assert pair.theirs is theirs, f"{pair}: SQLAlchemy loaded another object"
        return pair

    def new_id(self, kind: str) -> int:
        value = self.next_id[kind]
        self.next_id[kind] += 1
        return value

    def where(self, kind: str, *states: str) -> list[Pair]:
        return [p for p in self.pairs if p.kind == kind and lifecycle(inspect(p.ours)) in states]

    def can_work(self) -> bool:
        return not self.failed

    def pick(self, data: st.DataObject, kind: str, *states: str, label: str) -> Pair | None:
        """One of the machine's objects of ``kind`` in one of ``states`` (not marked for
        deletion: changing the relationships of those is not drawn)."""
        marked = {id(o) for o in self.ours.deleted}
        candidates = [p for p in self.where(kind, *states) if id(p.ours) not in marked]
        if not candidates:
            return None
        return data.draw(st.sampled_from(candidates), label)

    def ensure_loaded(self, pair: Pair, key: str) -> None:
        """Load ``pair``'s relationship ``key`` on both sides, where it is not loaded.

        SQLAlchemy's side under ``no_autoflush``, also when ours needs no load (a
        new object's collections start loaded here, SQLAlchemy's on first access).
        """

        def theirs() -> None:
            with self.theirs.no_autoflush:
                getattr(pair.theirs, key)

        if key in pair.ours.__dict__ or inspect(pair.ours).key is None:
            began = self.theirs.in_transaction()
            theirs()
            if not began and not self.ours.in_transaction():
                self.theirs.commit()  # the lazy load began one; ours did no IO
            return
        attribute = getattr(KINDS[pair.kind][0], key)
        began = self.ours.in_transaction()
        self.both(lambda: self.ours.load_relationship([pair.ours], attribute), theirs)
        if not began and self.ours.in_transaction() and not self.theirs.in_transaction():
            # Ours loaded expired join columns that SQLAlchemy's flush had loaded
            # already (asyncsession's flush loads nothing it does not need).
            self.portal.call(self.ours.commit)

    # -- parents and children --------------------------------------------------------------

    @precondition(can_work)
    @rule(name=names, children=st.integers(min_value=0, max_value=2))
    def new_parent(self, name: str, children: int) -> None:
        ids = [self.new_id("child") for _ in range(children)]
        ours = Parent(name=name, children=[Child(id=i, name=name) for i in ids])
        theirs = SAParent(name=name, children=[SAChild(id=i, name=name) for i in ids])
        self.track("parent", ours, theirs)
        for a, b in zip(ours.children, theirs.children, strict=True):
            self.track("child", a, b)
        self.both(lambda: self.ours.add(ours), lambda: self.theirs.add(theirs), awaited=False)

    @precondition(can_work)
    @rule(name=names, via=st.sampled_from(["none", "attribute", "collection"]), data=st.data())
    def new_child(self, name: str, via: str, data: st.DataObject) -> None:
        child_id = self.new_id("child")
        ours, theirs = Child(id=child_id, name=name), SAChild(id=child_id, name=name)
        self.track("child", ours, theirs)
        parent = (
            None
            if via == "none"
            else self.pick(data, "parent", "pending", "persistent", label="parent")
        )
        if parent is None:
            self.both(lambda: self.ours.add(ours), lambda: self.theirs.add(theirs), awaited=False)
        elif via == "attribute":

            def attach_ours() -> None:
                ours.parent = parent.ours
                self.ours.add(ours)

            def attach_theirs() -> None:
                theirs.parent = parent.theirs
                self.theirs.add(theirs)

            self.both(attach_ours, attach_theirs, awaited=False)
        else:
            self.ensure_loaded(parent, "children")
            if self.failed:
                return
            self.both(
                lambda: parent.ours.children.append(ours),
                lambda: parent.theirs.children.append(theirs),
                awaited=False,
            )

    @precondition(can_work)
    @rule(via=st.sampled_from(["attribute", "collection"]), to_none=st.booleans(), data=st.data())
    def move_child(self, via: str, to_none: bool, data: st.DataObject) -> None:
        """Give a child another parent (or none: an orphan), by either side."""
        child = self.pick(data, "child", "pending", "persistent", label="child")
        if child is None:
            return
        target = (
            None if to_none else self.pick(data, "parent", "pending", "persistent", label="target")
        )
        if target is None and "parent" in (inspect(child.ours).committed_state or {}):
            # Not drawn: detaching a child whose parent changed since the last flush.
            # asyncsession's delete-orphan goes by the net change since the load (a
            # child attached and detached again is no orphan); SQLAlchemy deletes a
            # persistent child once it left any parent's collection.
            return
        if via == "attribute":
            self.ensure_loaded(child, "parent")
            if self.failed:
                return
            current = child.ours.__dict__.get("parent")
            if current is (target.ours if target else None):
                return  # SQLAlchemy autobegins on setting the same value; asyncsession doesn't
            if inspect(child.ours).pending and current is not None and target is not None:
                # Not drawn: SQLAlchemy expunges a pending child moved this way (it sees
                # the removal from the old delete-orphan collection first), leaving a
                # transient object in the new parent's collection.
                return
            self.both(
                lambda: setattr(child.ours, "parent", target.ours if target else None),
                lambda: setattr(child.theirs, "parent", target.theirs if target else None),
                awaited=False,
            )
            return
        self.ensure_loaded(child, "parent")
        if self.failed:
            return
        old = child.ours.__dict__.get("parent")
        old_pair = self.by_ours.get(id(old)) if old is not None else None
        if old is not None and old_pair is None:
            return  # its parent is not one of the machine's objects
        if old_pair is target:
            return  # SQLAlchemy's list then holds the child twice
        if old_pair is not None:
            self.ensure_loaded(old_pair, "children")
        if target is not None:
            self.ensure_loaded(target, "children")
        if self.failed:
            return

        def move(side: str) -> None:
            obj = getattr(child, side)
            if old_pair is not None:
                getattr(old_pair, side).children.remove(obj)
            if target is not None:
                getattr(target, side).children.append(obj)

        self.both(lambda: move("ours"), lambda: move("theirs"), awaited=False)

    @precondition(can_work)
    @rule(data=st.data())
    def replace_children(self, data: st.DataObject) -> None:
        """Assign a parent a new collection: some of its children, and maybe others'."""
        parent = self.pick(data, "parent", "pending", "persistent", label="parent")
        if parent is None:
            return
        self.ensure_loaded(parent, "children")
        if self.failed:
            return
        if any(inspect(c).was_deleted for c in parent.ours.children):
            # Not drawn: SQLAlchemy deletes an object deleted earlier again when it
            # leaves the collection (and warns); asyncsession leaves it alone.
            return
        if any("parent" in (inspect(c).committed_state or {}) for c in parent.ours.children):
            # Not drawn, as in move_child(): dropping a child whose parent changed since
            # the last flush (delete-orphan by net change here).
            return
        current = [self.by_ours[id(c)] for c in parent.ours.children if id(c) in self.by_ours]
        free = [
            p
            for p in self.where("child", "pending", "persistent")
            if p not in current
            and p.ours.__dict__.get("parent", False) is None
            and id(p.ours) not in {id(o) for o in self.ours.deleted}
        ]
        keep = data.draw(
            st.lists(st.sampled_from(current), unique=True) if current else st.just([]), "keep"
        )
        extra = data.draw(
            st.lists(st.sampled_from(free), unique=True, max_size=2) if free else st.just([]),
            "extra",
        )
        chosen = keep + extra
        self.both(
            lambda: setattr(parent.ours, "children", [p.ours for p in chosen]),
            lambda: setattr(parent.theirs, "children", [p.theirs for p in chosen]),
            awaited=False,
        )

    # -- tags (many-to-many) ---------------------------------------------------------------

    @precondition(can_work)
    @rule(name=names)
    def new_tag(self, name: str) -> None:
        tag_id = self.new_id("tag")
        ours, theirs = Tag(id=tag_id, name=name), SATag(id=tag_id, name=name)
        self.track("tag", ours, theirs)
        self.both(lambda: self.ours.add(ours), lambda: self.theirs.add(theirs), awaited=False)

    @precondition(can_work)
    @rule(side=st.sampled_from(["parent", "tag"]), link=st.booleans(), data=st.data())
    def tag(self, side: str, link: bool, data: st.DataObject) -> None:
        """Link or unlink a parent and a tag through either side's collection."""
        parent = self.pick(data, "parent", "pending", "persistent", label="parent")
        tag = self.pick(data, "tag", "pending", "persistent", label="tag")
        if parent is None or tag is None:
            return
        owner, item, key = (parent, tag, "tags") if side == "parent" else (tag, parent, "parents")
        self.ensure_loaded(owner, key)
        if self.failed:
            return
        collection = getattr(owner.ours, key)
        present = any(x is item.ours for x in collection)
        if link == present:
            return

        def change(which: str) -> None:
            target = getattr(getattr(owner, which), key)
            obj = getattr(item, which)
            if link:
                target.append(obj)
            else:
                target.remove(obj)

        self.both(lambda: change("ours"), lambda: change("theirs"), awaited=False)

    # -- nodes (a self-referential tree) ---------------------------------------------------

    @precondition(can_work)
    @rule(name=names, via=st.sampled_from(["none", "attribute", "collection"]), data=st.data())
    def new_node(self, name: str, via: str, data: st.DataObject) -> None:
        node_id = self.new_id("node")
        ours, theirs = Node(id=node_id, name=name), SANode(id=node_id, name=name)
        self.track("node", ours, theirs)
        parent = (
            None
            if via == "none"
            else self.pick(data, "node", "pending", "persistent", label="parent")
        )
        if parent is None:
            self.both(lambda: self.ours.add(ours), lambda: self.theirs.add(theirs), awaited=False)
            return
        if via == "collection":
            self.ensure_loaded(parent, "children")
            if self.failed:
                return
            self.both(
                lambda: parent.ours.children.append(ours),
                lambda: parent.theirs.children.append(theirs),
                awaited=False,
            )
            return

        def attach(node: Any, parent_node: Any, session: Any) -> None:
            node.parent = parent_node
            session.add(node)

        self.both(
            lambda: attach(ours, parent.ours, self.ours),
            lambda: attach(theirs, parent.theirs, self.theirs),
            awaited=False,
        )

    @precondition(can_work)
    @rule(data=st.data())
    def move_node(self, data: st.DataObject) -> None:
        """Re-parent a node under an older node (keys only grow downwards: no cycles)."""
        node = self.pick(data, "node", "pending", "persistent", label="node")
        if node is None:
            return
        older = [
            p
            for p in self.where("node", "pending", "persistent")
            if self.node_id(p) < self.node_id(node)
        ]
        target = data.draw(st.sampled_from([None, *older]), "target")
        self.ensure_loaded(node, "parent")
        if self.failed or node.ours.__dict__.get("parent") is (target.ours if target else None):
            return
        self.both(
            lambda: setattr(node.ours, "parent", target.ours if target else None),
            lambda: setattr(node.theirs, "parent", target.theirs if target else None),
            awaited=False,
        )

    @staticmethod
    def node_id(pair: Pair) -> int:
        identity = inspect(pair.ours).identity
        return int(identity[0] if identity is not None else pair.ours.__dict__["id"])

    # -- deleting --------------------------------------------------------------------------

    @precondition(can_work)
    @rule(kind=st.sampled_from(sorted(KINDS)), data=st.data())
    def delete(self, kind: str, data: st.DataObject) -> None:
        pair = self.pick(data, kind, "persistent", label="object")
        if pair is None:
            return
        if kind in ("parent", "node") and any(
            inspect(c).was_deleted for c in pair.ours.__dict__.get("children", ())
        ):
            # Not drawn: SQLAlchemy cascades the delete again to a child deleted in
            # an earlier flush that the loaded collection still holds (and warns that
            # it is not in the session).
            return
        if self.relationship_changes(pair):
            # Not drawn: SQLAlchemy's flush cancels the deletion of an object just
            # added to a collection; asyncsession deletes what delete() was given.
            return

        def theirs() -> None:
            # The collections a delete cascades along are loaded without autoflush here.
            with self.theirs.no_autoflush:
                self.theirs.delete(pair.theirs)

        async def ours() -> None:
            if kind == "parent" and "children" not in pair.ours.__dict__:
                # SQLAlchemy's delete() loads the collection it cascades along at once;
                # here the flush would (docs/relationships.md). Load it as SQLAlchemy
                # does, so that session.deleted and later moves compare like for like.
                await self.ours.load_relationship([pair.ours], Parent.children)
            await self.ours.delete(pair.ours)

        self.both(ours, theirs)

    # -- loading and expiring --------------------------------------------------------------

    def relationship_changes(self, pair: Pair | None = None) -> bool:
        """Whether ``pair`` (or any object) has unflushed relationship changes.

        Not drawn: expiring or refreshing while there are such changes.
        asyncsession flushes a change from the history of the side it was made
        on and keeps nothing on an unloaded other side; loading that side
        applies the change to what it loads. SQLAlchemy queues it on the other
        side ("pending mutations"), flushes it from there too, and drops the
        queue when that side is expired (docs/migrating.md).
        """
        pairs = [pair] if pair is not None else self.pairs
        for p in pairs:
            committed = inspect(p.ours).committed_state or {}
            if any(key in committed for key in RELATIONSHIPS[p.kind]):
                return True
        return False

    @precondition(can_work)
    @rule(
        kind=st.sampled_from(sorted(KINDS)),
        how=st.sampled_from(["load", "refresh"]),
        data=st.data(),
    )
    def load(self, kind: str, how: str, data: st.DataObject) -> None:
        """Load a relationship explicitly: load_relationship() or refresh(obj, [key])."""
        pair = self.pick(data, kind, "persistent", label="object")
        if pair is None:
            return
        key = data.draw(st.sampled_from(RELATIONSHIPS[kind]), "relationship")
        if how == "load":
            self.ensure_loaded(pair, key)
            return
        if self.relationship_changes():
            return

        def theirs() -> None:
            with self.theirs.no_autoflush:
                self.theirs.refresh(pair.theirs, [key])

        self.both(lambda: self.ours.refresh(pair.ours, [key]), theirs)

    @precondition(can_work)
    @rule(kind=st.sampled_from(sorted(KINDS)), data=st.data())
    def expire(self, kind: str, data: st.DataObject) -> None:
        pair = self.pick(data, kind, "persistent", label="object")
        if pair is None or self.relationship_changes():
            return
        self.both(
            lambda: self.ours.expire(pair.ours),
            lambda: self.theirs.expire(pair.theirs),
            awaited=False,
        )

    @precondition(can_work)
    @rule(kind=st.sampled_from(sorted(KINDS)), data=st.data())
    def refresh(self, kind: str, data: st.DataObject) -> None:
        pair = self.pick(data, kind, "persistent", label="object")
        if pair is None or self.relationship_changes():
            return

        def theirs() -> None:
            with self.theirs.no_autoflush:
                self.theirs.refresh(pair.theirs)

        self.both(lambda: self.ours.refresh(pair.ours), theirs)

    # -- transactions ----------------------------------------------------------------------

    @precondition(can_work)
    @rule()
    def flush(self) -> None:
        mine, _ = self.both(self.ours.flush, self.theirs.flush)
        if mine.error is None:
            self.compare_rows_in_transaction()

    @precondition(can_work)
    @rule()
    def commit(self) -> None:
        self.both(self.ours.commit, self.oracle_commit)

    def oracle_commit(self) -> None:
        """SQLAlchemy's commit(), then detaching what a flush deleted (as with expiry on).

        See tests/orm/test_stateful.py: with ``expire_on_commit=False`` SQLAlchemy
        2.0 keeps deleted objects attached; its documentation (and asyncsession)
        detach them.
        """
        session = self.theirs
        session.commit()
        states = [sa.inspect(p.theirs) for p in self.pairs]
        deleted = [s for s in states if s.deleted and s.session is session]
        sa_orm.state.InstanceState._detach_states(deleted, session)

    @rule()
    def rollback(self) -> None:
        self.both(self.ours.rollback, self.theirs.rollback)
        self.failed = False

    # -- comparing -------------------------------------------------------------------------

    def compare_rows_in_transaction(self) -> None:
        async def ours() -> Rows:
            conn = await self.ours.connection()
            out: Rows = {}
            for table, sql in TABLES.items():
                result = await conn.exec_driver_sql(sql)
                out[table] = [tuple(r) for r in result.all()]
            return out

        def theirs() -> Rows:
            conn = self.theirs.connection()
            return {t: [tuple(r) for r in conn.exec_driver_sql(sql)] for t, sql in TABLES.items()}

        mine, oracle = self.both(ours, theirs)
        assert mine.value == oracle.value, "rows inside the transaction differ"

    @invariant()
    def databases_agree(self) -> None:
        ours, theirs = self.databases.read_committed()
        assert ours == theirs, "committed rows differ"

    @invariant()
    def objects_agree(self) -> None:
        assert self.ours.in_transaction() == self.theirs.in_transaction()
        if self.failed:
            return
        for pair in list(self.pairs):
            self.compare(pair)
        for name in ("new", "deleted"):
            ours_set = {
                self.by_ours[id(o)].index for o in getattr(self.ours, name) if id(o) in self.by_ours
            }
            theirs_set = {
                self.by_theirs[id(o)].index
                for o in getattr(self.theirs, name)
                if id(o) in self.by_theirs
            }
            assert ours_set == theirs_set, f"session.{name} differs"

    def compare(self, pair: Pair) -> None:
        ours, theirs = inspect(pair.ours), sa.inspect(pair.theirs)
        where = f"{pair}: "
        flag = lifecycle(ours)
        assert flag == lifecycle(theirs), where + f"{flag} here, {lifecycle(theirs)} in SQLAlchemy"
        assert ours.identity == theirs.identity, where + "identity"
        # A deleted object's values don't matter (and SQLAlchemy still writes the
        # foreign keys of its relationships into it).
        for key in COLUMNS[pair.kind] if flag in ("pending", "persistent") else ():
            if key in pair.ours.__dict__ and key in theirs.dict:
                assert pair.ours.__dict__[key] == theirs.dict[key], where + key
        if flag != "persistent":
            return
        for key in RELATIONSHIPS[pair.kind]:
            if key not in pair.ours.__dict__ or key not in theirs.dict:
                continue
            mine = members(pair.ours.__dict__[key])
            oracle = members(theirs.dict[key])
            assert len(mine) == len(oracle), where + f"{key}: {mine} != {oracle}"
            kind = self.target_kind(pair.kind, key)
            oracle_by_identity = {id(o): o for o in oracle}
            seen = set()
            for obj in mine:
                known = self.by_ours.get(id(obj))
                if known is None:
                    identity = inspect(obj).identity
                    match = [o for o in oracle if sa.inspect(o).identity == identity]
                    assert match, where + f"{key}: {obj!r} has no counterpart"
                    known = self.pair_of(kind, obj, match[0])
                assert id(known.theirs) in oracle_by_identity, (
                    where + f"{key}: {known} only here; SQLAlchemy has {oracle}"
                )
                seen.add(id(known.theirs))
            assert len(seen) == len(oracle), where + f"{key}: duplicates"

    @staticmethod
    def target_kind(kind: str, key: str) -> str:
        return {
            ("parent", "children"): "child",
            ("parent", "tags"): "tag",
            ("child", "parent"): "parent",
            ("tag", "parents"): "parent",
            ("node", "parent"): "node",
            ("node", "children"): "node",
        }[kind, key]


@pytest.mark.timeout(900)
def test_relationships_agree_with_sqlalchemy(tmp_path: Path) -> None:
    """Random relationship work ends the same in asyncsession and SQLAlchemy."""
    from hypothesis.stateful import run_state_machine_as_test

    with open_databases(tmp_path) as databases:
        machine = type(
            "RelationshipMachine_sqlite", (RelationshipMachine,), {"databases": databases}
        )
        run_state_machine_as_test(machine, settings=SETTINGS)
