"""A stateful test of AsyncSession against SQLAlchemy's Session as the oracle.

How this works:

* Two databases of the same backend hold the same schema: one for
  asyncsession, one for SQLAlchemy (a second SQLite file; on PostgreSQL a
  second schema). Each has ``parent`` (autoincrement key) and ``child``
  (explicit key, nullable foreign key to ``parent``); no relationships yet.
* A Hypothesis rule-based machine draws sequences of session operations
  (add, modify, change a primary key, delete, expire, expunge, re-add, get,
  refresh, query, flush, commit, rollback, SAVEPOINTs released or rolled back)
  and runs each on asyncsession's ``AsyncSession`` and on SQLAlchemy's sync
  ``Session`` (``expire_on_commit=False``, asyncsession's default). Every
  object the machine makes or loads is tracked as a pair (ours, theirs).
* Both must succeed, or both raise an error of the same name. An error that
  deactivates the transaction (a failed flush) leaves both sessions needing
  ``rollback()`` (of the session, or of the savepoint it happened in); until
  then only those and calls that must raise ``PendingRollbackError`` are
  drawn.
* After every step: the committed contents of both databases, read through
  a raw connection outside both sessions, are equal; so are the sessions'
  transaction flags, identity maps, ``new`` and ``deleted``, and for every
  pair its lifecycle flag, identity, loaded values, expired and unloaded
  attribute sets, per-attribute history and ``is_modified``. After a flush,
  the rows each session sees inside its transaction are compared too.
  Attributes are never touched through their descriptors: SQLAlchemy would
  lazy-load an unloaded one where asyncsession raises.
* The async side runs on one event loop for the whole test, in a blocking
  portal's thread; each call is its own task, one at a time. On PostgreSQL
  the oracle uses SQLAlchemy's asyncpg dialect, its sync Session driven by
  ``run_sync`` on the same loop (there is no sync PostgreSQL driver here).

Where the two differ by design, the oracle's objects are brought to
asyncsession's outcome after each call (``normalize_oracle()`` and friends,
each with its reason), or the machine does not draw the case:

* Deliberate differences (DESIGN.md): asyncsession never loads what it does
  not need, so flushing an UPDATE or DELETE of an expired object does not
  load its row (SQLAlchemy does); an attribute a flush inserts as NULL holds
  None afterwards (SQLAlchemy leaves it unloaded); a failed flush leaves
  objects as they were (SQLAlchemy keeps keys the INSERTs before the failure
  generated, and restores objects at once, so objects are compared only
  while neither session awaits a rollback); get() loads an object with any
  expired attribute (SQLAlchemy: only a fully expired one); refresh() does
  not autoflush (SQLAlchemy's does); after any failure every call but
  rollback() raises PendingRollbackError (SQLAlchemy's flush() of a clean
  session does not check); ``session.dirty`` is net of changes set back, so
  ``is_modified()`` is compared instead.
* SQLAlchemy quirks, where asyncsession follows SQLAlchemy's documentation:
  objects deleted in a flush stay attached after commit() with
  ``expire_on_commit=False``; a rolled back savepoint puts an expunged object
  whose key changed inside it back into the identity map; a rollback gives an
  object inserted and re-keyed in it its old key although it is transient; a
  transient object keeps the deleted flag of a rolled back DELETE; add() after
  expunge() can tie insert orders; an object left over from a rollback and
  replaced by a new INSERT under its key stays attached outside the map.
* Not drawn: changing or deleting an object whose row is gone (asyncsession's
  unit of work does not check unversioned row counts; SQLAlchemy raises
  StaleDataError), and adding an object whose key another object in the
  session holds (SQLAlchemy only warns, then keeps both).
* Both order the INSERTs and DELETEs of the two tables by their foreign key
  (SQLAlchemy through a relationship that is otherwise unused), and after a
  failed flush the PostgreSQL sequences are aligned (they ignore rollbacks).
"""

from __future__ import annotations

import contextlib
import sqlite3
import traceback
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import asyncpg
import attrs
import pytest
import sqlalchemy as sa
import sqlalchemy.orm as sa_orm
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy.ext.asyncio import AsyncSession as SAAsyncSession
from sqlalchemy.ext.asyncio import create_async_engine as sa_create_async_engine

from asyncsession import (
    AsyncSession,
    ForeignKey,
    String,
    create_async_engine,
    exc,
    inspect,
    select,
)
from asyncsession.engine import AsyncEngine
from asyncsession.orm.decl import DeclarativeBase, Mapped, mapped_column
from tests.strategies import session_labels, session_names, session_scores

# -- the two mappings of one schema -------------------------------------------------------------


class Base(DeclarativeBase):
    pass


class Parent(Base):
    __tablename__ = "parent"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(30))
    score: Mapped[int | None]


class Child(Base):
    __tablename__ = "child"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("parent.id"))
    label: Mapped[str] = mapped_column(String(30))


class SABase(sa_orm.DeclarativeBase):
    pass


class SAParent(SABase):
    __tablename__ = "parent"
    id: sa_orm.Mapped[int] = sa_orm.mapped_column(primary_key=True)
    name: sa_orm.Mapped[str] = sa_orm.mapped_column(sa.String(30))
    score: sa_orm.Mapped[int | None]


class SAChild(SABase):
    __tablename__ = "child"
    id: sa_orm.Mapped[int] = sa_orm.mapped_column(primary_key=True, autoincrement=False)
    parent_id: sa_orm.Mapped[int | None] = sa_orm.mapped_column(sa.ForeignKey("parent.id"))
    label: sa_orm.Mapped[str] = sa_orm.mapped_column(sa.String(30))
    # Never used: without a relationship SQLAlchemy orders the INSERTs and
    # DELETEs of unrelated mappers arbitrarily; asyncsession orders tables by
    # their foreign keys. This makes SQLAlchemy do the same (parents first).
    parent: sa_orm.Mapped[SAParent | None] = sa_orm.relationship(lazy="raise")


KINDS: dict[str, tuple[type[Any], type[Any]]] = {
    "parent": (Parent, SAParent),
    "child": (Child, SAChild),
}
ATTRS = {"parent": ("id", "name", "score"), "child": ("id", "parent_id", "label")}
ATTR_VALUES = {
    ("parent", "name"): session_names,
    ("parent", "score"): session_scores,
    ("child", "label"): session_labels,
}
MISSING_PARENT_ID = 9999  # never a parent's key: a child pointing here breaks the foreign key
UNSET = object()  # the machine left the attribute out of the constructor

Rows = dict[str, list[tuple[Any, ...]]]

SETTINGS = settings(
    max_examples=50,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# -- backends ----------------------------------------------------------------------------------


class Oracle:
    """SQLAlchemy's sync Session and how to call into it (directly, or through run_sync)."""

    def __init__(
        self,
        session: sa_orm.Session,
        call: Callable[[Callable[[], Any]], Any],
        close: Callable[[], None],
    ) -> None:
        self.session = session
        self.call = call
        self.close = close


class Backend:
    """Engines, raw readers and resets for one backend; subclasses fill in the details."""

    name: str

    def __init__(self, portal: BlockingPortal) -> None:
        self.portal = portal
        self.engine: AsyncEngine

    def open_oracle(self) -> Oracle:
        raise NotImplementedError

    def read_committed(self) -> tuple[Rows, Rows]:
        """The committed rows of (ours, the oracle's) database, read outside both sessions."""
        raise NotImplementedError

    def reset(self) -> None:
        """Empty both databases and restart the parent keys at 1."""
        raise NotImplementedError

    def align_sequences(self) -> None:
        """After a failed flush: let both databases hand out the same next parent key.

        PostgreSQL sequences ignore rollbacks, and a failed flush may have drawn
        keys in one database and not the other (the two batch INSERTs
        differently, and each stops at its first failing statement).
        """

    def close(self) -> None:
        raise NotImplementedError


_READS = {
    "parent": "SELECT id, name, score FROM {}parent ORDER BY id",
    "child": "SELECT id, parent_id, label FROM {}child ORDER BY id",
}


class SQLiteBackend(Backend):
    name = "sqlite"

    def __init__(self, portal: BlockingPortal, url: str, oracle_path: Path) -> None:
        super().__init__(portal)
        self.path = url.partition(":///")[2]
        self.oracle_path = str(oracle_path)
        self.engine = create_async_engine(url)
        self.oracle_engine = sa.create_engine(f"sqlite:///{self.oracle_path}")
        # SQLAlchemy's documented recipe: let SQLAlchemy, not pysqlite, begin
        # transactions, so SAVEPOINT works; and enforce foreign keys, as ours does.
        sa.event.listen(self.oracle_engine, "connect", _sqlite_connect)
        sa.event.listen(self.oracle_engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
        portal.call(_create_all, self.engine)
        SABase.metadata.create_all(self.oracle_engine)

    def open_oracle(self) -> Oracle:
        session = sa_orm.Session(self.oracle_engine, expire_on_commit=False)
        return Oracle(session, lambda fn: fn(), session.close)

    def _read(self, path: str) -> Rows:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            return {t: conn.execute(sql.format("")).fetchall() for t, sql in _READS.items()}

    def read_committed(self) -> tuple[Rows, Rows]:
        return self._read(self.path), self._read(self.oracle_path)

    def reset(self) -> None:
        for path in (self.path, self.oracle_path):
            with contextlib.closing(sqlite3.connect(path)) as conn:
                conn.execute("DELETE FROM child")
                conn.execute("DELETE FROM parent")
                conn.commit()

    def close(self) -> None:
        self.portal.call(self.engine.dispose)
        self.oracle_engine.dispose()


def _sqlite_connect(dbapi_connection: Any, record: Any) -> None:
    dbapi_connection.isolation_level = None
    dbapi_connection.execute("PRAGMA foreign_keys=ON")


async def _create_all(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)


class PostgreSQLBackend(Backend):
    name = "postgresql"

    def __init__(self, portal: BlockingPortal, url: str, dsn: str, schema: str) -> None:
        super().__init__(portal)
        self.schema = schema
        self.oracle_schema = f"{schema}_sa"
        self.reader: asyncpg.Connection = portal.call(asyncpg.connect, dsn)
        portal.call(self.reader.execute, f"CREATE SCHEMA {self.oracle_schema}")
        self.engine = create_async_engine(
            url, connect_args={"server_settings": {"search_path": schema}}
        )
        self.oracle_engine = sa_create_async_engine(
            url, connect_args={"server_settings": {"search_path": self.oracle_schema}}
        )
        portal.call(_create_all, self.engine)
        portal.call(self._create_oracle_tables)

    async def _create_oracle_tables(self) -> None:
        async with self.oracle_engine.begin() as conn:
            await conn.run_sync(SABase.metadata.create_all)

    def open_oracle(self) -> Oracle:
        async_session = SAAsyncSession(self.oracle_engine, expire_on_commit=False)

        def call(fn: Callable[[], Any]) -> Any:
            return self.portal.call(async_session.run_sync, lambda _: fn())

        return Oracle(
            async_session.sync_session, call, lambda: self.portal.call(async_session.close)
        )

    async def _read(self) -> tuple[Rows, Rows]:
        out = []
        for schema in (self.schema, self.oracle_schema):
            rows: Rows = {}
            for table, sql in _READS.items():
                records = await self.reader.fetch(sql.format(f"{schema}."))
                rows[table] = [tuple(r) for r in records]
            out.append(rows)
        return out[0], out[1]

    def read_committed(self) -> tuple[Rows, Rows]:
        return self.portal.call(self._read)

    async def _align(self) -> None:
        used = []
        for schema in (self.schema, self.oracle_schema):
            row = await self.reader.fetchrow(
                f"SELECT last_value, is_called FROM {schema}.parent_id_seq"
            )
            used.append(row["last_value"] if row["is_called"] else row["last_value"] - 1)
        if max(used) > 0:
            for schema in (self.schema, self.oracle_schema):
                await self.reader.execute(f"SELECT setval('{schema}.parent_id_seq', {max(used)})")

    def align_sequences(self) -> None:
        self.portal.call(self._align)

    def reset(self) -> None:
        tables = ", ".join(f"{s}.{t}" for s in (self.schema, self.oracle_schema) for t in _READS)
        self.portal.call(self.reader.execute, f"TRUNCATE {tables} RESTART IDENTITY")

    async def _close(self) -> None:
        await self.engine.dispose()
        await self.oracle_engine.dispose()
        try:
            await self.reader.execute(f"DROP SCHEMA {self.oracle_schema} CASCADE")
        finally:
            await self.reader.close()

    def close(self) -> None:
        self.portal.call(self._close)


@contextlib.contextmanager
def open_backend(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> Iterator[Backend]:
    with start_blocking_portal() as portal:
        backend: Backend
        if db_url.startswith("postgresql"):
            schema: str = request.getfixturevalue("pg_schema")
            dsn: str = request.getfixturevalue("pg_dsn")
            backend = PostgreSQLBackend(portal, db_url, dsn, schema)
        else:
            backend = SQLiteBackend(portal, db_url, tmp_path / "oracle.db")
        try:
            yield backend
        finally:
            backend.close()


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


def history(h: Any) -> tuple[tuple[Any, ...], ...]:
    return (tuple(h.added or ()), tuple(h.unchanged or ()), tuple(h.deleted or ()))


class SessionMachine(RuleBasedStateMachine):
    """Random session work on asyncsession and on SQLAlchemy, compared after every step."""

    backend: ClassVar[Backend]

    def __init__(self) -> None:
        super().__init__()
        self.backend.reset()
        self.portal = self.backend.portal
        self.ours = AsyncSession(self.backend.engine)
        self.oracle = self.backend.open_oracle()
        self.theirs = self.oracle.session
        self.pairs: list[Pair] = []
        self.by_ours: dict[int, Pair] = {}
        self.by_theirs: dict[int, Pair] = {}
        self.next_child_id = 1
        # open SAVEPOINTs, innermost last: (our context, SQLAlchemy's transaction)
        self.savepoints: list[tuple[Any, Any]] = []
        # Key changes (SQLAlchemy bugs, not drawn around; see change_child_key() and
        # get()): pair index -> the savepoint depth of its first key change in this
        # transaction, and every id a child was given.
        self.key_change_depth: dict[int, int] = {}
        self.switched_ids: set[int] = set()
        self.failed = False  # both sessions await rollback()

    def teardown(self) -> None:
        try:
            self.portal.call(self.ours.close)
        finally:
            self.oracle.close()

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
        to_flush = self.oracle_changes()
        pending = [(state, set(state.dict)) for state in map(sa.inspect, self.theirs.new)]
        try:
            with warnings.catch_warnings():
                # A new object flushed under the key of one left over from a
                # rollback (see normalize_oracle()).
                warnings.filterwarnings("ignore", "Identity map already had an identity")
                oracle.value = self.oracle.call(theirs)
        except Exception as error:
            oracle.error = error
        ours_name = type(mine.error).__name__ if mine.error else None
        theirs_name = type(oracle.error).__name__ if oracle.error else None
        assert ours_name == theirs_name, (
            f"asyncsession: {ours_name}: {mine.error}\nSQLAlchemy: {theirs_name}: {oracle.error}"
            + "".join(traceback.format_exception(mine.error or oracle.error))
        )
        assert self.ours.is_active == self.theirs.is_active
        self.failed = not self.ours.is_active
        if oracle.error is not None:
            self.backend.align_sequences()
            for state, loaded in pending:
                # A failed flush leaves asyncsession's objects as they were; in
                # SQLAlchemy's, keys generated by the INSERTs that went through stay.
                for key in set(state.dict) - loaded:
                    del state.dict[key]
        self.normalize_oracle(to_flush, failed=oracle.error is not None)
        return mine, oracle

    def oracle_changes(self) -> list[tuple[Pair, set[str], set[str], bool]]:
        """SQLAlchemy's objects a flush would UPDATE or DELETE that have expired attributes.

        With each: its expired and its loaded attributes, and whether it is modified.
        """
        out = []
        for pair in self.pairs:
            state = sa.inspect(pair.theirs)
            if state.expired_attributes and (state.modified or pair.theirs in self.theirs.deleted):
                loaded = set(ATTRS[pair.kind]) - state.unloaded
                out.append((pair, set(state.expired_attributes), loaded, state.modified))
        return out

    def normalize_oracle(
        self, to_flush: list[tuple[Pair, set[str], set[str], bool]], failed: bool
    ) -> None:
        """Bring SQLAlchemy's objects to asyncsession's deliberate outcomes (DESIGN.md)."""
        session = self.theirs
        for pair, expired, loaded, modified in to_flush:
            state = sa.inspect(pair.theirs)
            deleted_now = state.was_deleted and pair.theirs not in session.deleted
            now_loaded = set(ATTRS[pair.kind]) - state.unloaded
            # Settled (or deleted) and nothing dropped: a flush, not an expire/rollback.
            flushed = ((modified and not state.modified) or deleted_now) and loaded <= now_loaded
            if not (flushed or failed):
                continue
            # A flush UPDATEd or DELETEd it (or failed trying). SQLAlchemy loaded its
            # expired row first; asyncsession uses the identity key and loads
            # nothing. Unless the call loaded the row anyway (a query returning
            # it), undo SQLAlchemy's load.
            undo = (now_loaded - loaded) & inspect(pair.ours).unloaded
            state._expire_attributes(state.dict, undo)
            if failed:
                # SQLAlchemy has restored (and maybe expired) it since; what was
                # expired before the call still is.
                state.expired_attributes.update(expired)
                continue
            # What it would hold without that load: an UPDATE settles what was
            # assigned; a DELETE settles nothing.
            natural = expired if state.was_deleted else expired - set(state.dict)
            state.expired_attributes.clear()
            state.expired_attributes.update(natural | undo)
            # SQLAlchemy's get() loads an object only when it is expired as a whole
            # (this flag); asyncsession's get() loads whenever an attribute is.
            state.expired = bool(state.expired_attributes)
        for pair in self.pairs:
            state = sa.inspect(pair.theirs)
            if state.persistent and not session.identity_map.contains_state(state):
                # Left over from a rollback (loaded in the rolled back transaction,
                # its row inserted there by an object since expunged), and replaced
                # in the identity map by a new object that a flush inserted under
                # its key (SQLite hands out a rolled back rowid again). SQLAlchemy
                # keeps it attached outside the map; asyncsession, knowing its row
                # is gone, makes it deleted where the INSERT happened, as SQLAlchemy
                # does when get() finds an expired object's row gone.
                level = session._transaction
                if level is None:  # the flush was a commit's: deleted, then detached
                    sa_orm.state.InstanceState._detach_states([state], session)
                else:
                    newer = sa.inspect(session.identity_map[state.key])
                    while newer not in level._new and level._parent is not None:
                        level = level._parent
                    level._deleted[state] = True
                state._deleted = True
        for state in list(session.identity_map.all_states()):
            if state.session is not session:
                # Rolling back a savepoint restores the old key of an object whose
                # key changed inside it; SQLAlchemy also puts the object back in its
                # identity map when it was expunged meanwhile, while it stays
                # detached. asyncsession restores the key and leaves the map alone.
                session.identity_map.safe_discard(state)
        # asyncsession inserts pending objects in the order they were (last) added.
        add_order = {id(s): i for i, s in enumerate(self.ours._new)}
        for pair in self.pairs:
            state = sa.inspect(pair.theirs)
            if state.transient and state._deleted:
                # Inserted and deleted in a transaction that was rolled back: the
                # object is transient again but SQLAlchemy keeps its deleted flag,
                # so once added and flushed again it reads "deleted" while its row
                # exists. asyncsession clears the flag.
                state._deleted = False
            if state.pending:
                # SQLAlchemy numbers pending objects by len(session.new) at add(),
                # so one expunged and added again can tie with another and the
                # INSERT order is then arbitrary. asyncsession counts every add().
                state.insert_order = add_order.get(id(inspect(pair.ours)), -1)
        self.null_inserted_attributes()

    def null_inserted_attributes(self) -> None:
        """Give SQLAlchemy's objects None for attributes a flush inserted as NULL.

        An attribute never set goes into the INSERT as NULL. asyncsession then
        holds None for it (flushed objects are usable at once, DESIGN.md);
        SQLAlchemy leaves it unloaded, not expired, and would load it on access.
        Where asyncsession holds None, the oracle is given the same committed value.
        """
        for pair in self.pairs:
            theirs = sa.inspect(pair.theirs)
            if theirs.key is None:
                continue
            for key in set(theirs.unloaded) - set(theirs.expired_attributes):
                if key in pair.ours.__dict__ and pair.ours.__dict__[key] is None:
                    sa_orm.attributes.set_committed_value(pair.theirs, key, None)

    def track(self, kind: str, ours: Any, theirs: Any) -> Pair:
        pair = Pair(len(self.pairs), kind, ours, theirs)
        self.pairs.append(pair)
        self.by_ours[id(ours)] = pair
        self.by_theirs[id(theirs)] = pair
        return pair

    def match(self, kind: str, ours: Any, theirs: Any) -> None:
        """Check that a loaded pair of objects correspond; track new ones."""
        if ours is None or theirs is None:
            assert (ours, theirs) == (None, None)
            return
        # A loaded object has its expired attributes back (both load them).
        assert not inspect(ours).expired_attributes, f"{ours!r} came back expired"
        pair = self.by_ours.get(id(ours))
        if pair is None:
            assert id(theirs) not in self.by_theirs, "SQLAlchemy returned a known object"
            self.track(kind, ours, theirs)
        else:
            assert pair.theirs is theirs, f"asyncsession returned {pair}, SQLAlchemy another"

    def where(self, *states: str) -> list[Pair]:
        return [p for p in self.pairs if lifecycle(inspect(p.ours)) in states]

    def ids(self, kind: str) -> list[int]:
        """Primary keys of the machine's objects of ``kind`` (the ones that have one)."""
        found = {p.ours.__dict__.get("id") for p in self.pairs if p.kind == kind}
        return sorted(i for i in found if i is not None)

    def can_work(self) -> bool:
        return not self.failed

    def with_rows(self, pairs: list[Pair]) -> list[Pair]:
        """The persistent or detached ``pairs`` whose rows exist in the current transaction.

        A rollback can leave an object persistent whose row it removed: one
        loaded in the transaction, its row inserted there by another object since
        expunged. Changing or deleting it, SQLAlchemy raises ObjectDeletedError
        (when it is expired: it loads the row first), StaleDataError (UPDATE) or
        warns (DELETE); asyncsession's unit of work does not check the row counts
        of unversioned UPDATEs and DELETEs. Such objects are left out of modify
        and delete.
        """
        if not pairs:
            return pairs
        kinds = {p.kind for p in pairs}
        present: dict[str, set[int]] = {}
        if self.ours.in_transaction():
            for kind in kinds:
                cls = KINDS[kind][0]

                async def ids(cls: Any = cls) -> set[int]:
                    with self.ours.no_autoflush:
                        result = await self.ours.execute(select(cls.id))
                    return {row[0] for row in result.all()}

                present[kind] = self.portal.call(ids)
        else:
            committed, _ = self.backend.read_committed()
            present = {kind: {row[0] for row in committed[kind]} for kind in kinds}
        return [p for p in pairs if inspect(p.ours).identity[0] in present[p.kind]]

    # -- objects ---------------------------------------------------------------------------

    @precondition(can_work)
    @rule(name=session_names, score=session_scores | st.just(UNSET))
    def add_parent(self, name: str, score: Any) -> None:
        values = {"name": name} if score is UNSET else {"name": name, "score": score}
        ours, theirs = Parent(**values), SAParent(**values)
        self.track("parent", ours, theirs)
        self.both(lambda: self.ours.add(ours), lambda: self.theirs.add(theirs), awaited=False)

    @precondition(can_work)
    @rule(label=session_labels, data=st.data())
    def add_child(self, label: str, data: st.DataObject) -> None:
        parent_id = data.draw(
            st.sampled_from([None, MISSING_PARENT_ID, *self.ids("parent")]), "parent_id"
        )
        values = {"id": self.next_child_id, "parent_id": parent_id, "label": label}
        self.next_child_id += 1
        ours, theirs = Child(**values), SAChild(**values)
        self.track("child", ours, theirs)
        self.both(lambda: self.ours.add(ours), lambda: self.theirs.add(theirs), awaited=False)

    @precondition(lambda self: self.can_work() and self.pairs)
    @rule(data=st.data())
    def modify(self, data: st.DataObject) -> None:
        persistent = self.where("persistent")
        candidates = [p for p in self.pairs if p not in persistent] + self.with_rows(persistent)
        if not candidates:
            return
        pair = data.draw(st.sampled_from(candidates), "object")
        key = data.draw(st.sampled_from([k for k in ATTRS[pair.kind] if k != "id"]), "attribute")
        if key == "parent_id":
            strategy = st.sampled_from([None, MISSING_PARENT_ID, *self.ids("parent")])
        else:
            strategy = ATTR_VALUES[pair.kind, key]
        value = data.draw(strategy, "value")
        self.both(
            lambda: setattr(pair.ours, key, value),
            lambda: setattr(pair.theirs, key, value),
            awaited=False,
        )

    @precondition(lambda self: self.can_work() and self.pairs)
    @rule(data=st.data())
    def change_child_key(self, data: st.DataObject) -> None:
        """Give a loaded child a new primary key (an UPDATE of the key, once flushed)."""
        # SQLAlchemy loads the old key (and with it every expired attribute) when a
        # key is set; asyncsession never loads on assignment. Fully loaded children only.
        # Not drawn: a second key change inside a savepoint nested in the one of the
        # first. Releasing the inner savepoint, SQLAlchemy (2.0) merges its record of
        # the old key over the outer one's, so rolling the outer one back restores
        # the key in between rather than the original (asyncsession restores that).
        depth = len(self.savepoints)
        for index, first in list(self.key_change_depth.items()):
            if first > depth:
                self.key_change_depth[index] = depth  # its savepoint ended
        candidates = [
            p
            for p in self.where("pending", "persistent")
            if p.kind == "child"
            and not inspect(p.ours).unloaded
            and not (depth and self.key_change_depth.get(p.index, depth) < depth)
        ]
        if not candidates:
            return
        pair = data.draw(st.sampled_from(candidates), "child")
        new_id = self.next_child_id
        self.next_child_id += 1
        self.both(
            lambda: setattr(pair.ours, "id", new_id),
            lambda: setattr(pair.theirs, "id", new_id),
            awaited=False,
        )
        if depth:
            self.key_change_depth.setdefault(pair.index, depth)
        self.switched_ids.add(new_id)

    @precondition(lambda self: self.can_work() and self.where("persistent"))
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        candidates = self.with_rows(self.where("persistent"))
        if not candidates:
            return
        pair = data.draw(st.sampled_from(candidates), "object")
        self.both(lambda: self.ours.delete(pair.ours), lambda: self.theirs.delete(pair.theirs))

    @precondition(lambda self: self.can_work() and self.where("persistent"))
    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        pair = data.draw(st.sampled_from(self.where("persistent")), "object")
        self.both(
            lambda: self.ours.expire(pair.ours),
            lambda: self.theirs.expire(pair.theirs),
            awaited=False,
        )

    @precondition(lambda self: self.can_work() and self.where("pending", "persistent", "deleted"))
    @rule(data=st.data())
    def expunge(self, data: st.DataObject) -> None:
        pair = data.draw(st.sampled_from(self.where("pending", "persistent", "deleted")), "object")
        self.both(
            lambda: self.ours.expunge(pair.ours),
            lambda: self.theirs.expunge(pair.theirs),
            awaited=False,
        )

    @precondition(lambda self: self.can_work() and self.where("transient", "detached"))
    @rule(data=st.data())
    def add_again(self, data: st.DataObject) -> None:
        """add() an expunged, rolled back or committed-away object (both may refuse).

        Not a transient object whose key (kept from a rolled back INSERT) is held
        by a persistent object, nor a detached one whose key a pending object
        holds: SQLAlchemy only warns about that at flush time ("conflicts with
        persistent instance") and then keeps two objects for one key, the older
        one attached outside its identity map. Nor a detached object whose row is
        gone (see with_rows()).
        """
        held = set(self.ours.identity_map)
        pending = {(type(o), o.__dict__.get("id")) for o in self.ours.new}
        candidates = [
            p
            for p in self.where("transient")
            if (KINDS[p.kind][0], (p.ours.__dict__.get("id"),), None) not in held
        ] + [
            p
            for p in self.with_rows(self.where("detached"))
            if (KINDS[p.kind][0], inspect(p.ours).identity[0]) not in pending
        ]
        if not candidates:
            return
        pair = data.draw(st.sampled_from(candidates), "object")
        self.both(
            lambda: self.ours.add(pair.ours),
            lambda: self.theirs.add(pair.theirs),
            awaited=False,
        )

    # -- loading ---------------------------------------------------------------------------

    @precondition(can_work)
    @rule(kind=st.sampled_from(sorted(KINDS)), data=st.data())
    def get(self, kind: str, data: st.DataObject) -> None:
        # Not drawn: get() of a key a child was given by a key change. SQLAlchemy (2.0)
        # can fail an internal assertion there ("no columns were included in
        # _only_load_props") when the object was refreshed before its key changed.
        ids = [i for i in self.ids(kind) if kind != "child" or i not in self.switched_ids]
        ident = data.draw(st.sampled_from([*ids, MISSING_PARENT_ID]), "ident")
        ours_cls, theirs_cls = KINDS[kind]
        mine, oracle = self.both(
            lambda: self.ours.get(ours_cls, ident), lambda: self.theirs.get(theirs_cls, ident)
        )
        if mine.error is None:
            self.match(kind, mine.value, oracle.value)

    @precondition(lambda self: self.can_work() and self.where("persistent"))
    @rule(data=st.data())
    def refresh(self, data: st.DataObject) -> None:
        pair = data.draw(st.sampled_from(self.where("persistent")), "object")

        def theirs() -> None:
            # asyncsession's refresh() does not autoflush (see the module docstring).
            with self.theirs.no_autoflush:
                self.theirs.refresh(pair.theirs)

        self.both(lambda: self.ours.refresh(pair.ours), theirs)

    @precondition(can_work)
    @rule(kind=st.sampled_from(sorted(KINDS)))
    def query(self, kind: str) -> None:
        """select(Model).order_by(pk) through each session (autoflush first)."""
        ours_cls, theirs_cls = KINDS[kind]

        async def ours() -> list[Any]:
            result = await self.ours.execute(select(ours_cls).order_by(ours_cls.id))
            return list(result.scalars().all())

        def theirs() -> list[Any]:
            return list(self.theirs.scalars(sa.select(theirs_cls).order_by(theirs_cls.id)))

        mine, oracle = self.both(ours, theirs)
        if mine.error is None:
            assert len(mine.value) == len(oracle.value)
            for a, b in zip(mine.value, oracle.value, strict=True):
                self.match(kind, a, b)

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
        mine, _ = self.both(self.ours.commit, self.oracle_commit)
        if mine.error is None:
            self.savepoints.clear()
            self.key_change_depth.clear()

    def oracle_commit(self) -> None:
        """SQLAlchemy's commit(), then its documented outcome for deleted objects.

        The docs say an object deleted in a flush becomes detached when the
        transaction commits; with ``expire_on_commit=False`` SQLAlchemy 2.0 leaves
        it in the deleted state, still in the session (``_remove_snapshot`` only
        detaches under ``expire_on_commit``). asyncsession follows the docs, so
        the oracle makes the same call SQLAlchemy makes with expiry on.
        """
        session = self.theirs
        session.commit()
        states = [sa.inspect(p.theirs) for p in self.pairs]
        deleted = [s for s in states if s.deleted and s.session is session]
        sa_orm.state.InstanceState._detach_states(deleted, session)

    @rule()
    def rollback(self) -> None:
        self.both(self.ours.rollback, self.oracle_rollback)
        self.savepoints.clear()
        self.key_change_depth.clear()
        self.failed = False

    def oracle_rollback(self, savepoint: Any = None, error: BaseException | None = None) -> None:
        """SQLAlchemy's rollback (of the session, or of one savepoint), then a repair.

        An object inserted and then given a new primary key inside the rolled
        back levels becomes transient, but SQLAlchemy restores its old key after
        removing it (``_restore_snapshot`` expunges first, then walks the key
        switches), leaving it detached under the key of a row that never was.
        asyncsession leaves it transient, as every other object inserted there.
        """
        levels = []
        level = self.theirs._transaction
        while level is not None:
            levels.append(level)
            if level is savepoint:
                break
            level = level._parent
        inserted = {state for level in levels for state in level._new}
        switched = {state for level in levels for state in level._key_switches}
        if savepoint is None:
            self.theirs.rollback()
        else:
            savepoint.__exit__(type(error), error, None)
        for state in inserted & switched:
            if state.key is not None and state.session is None:
                del state.key

    @precondition(lambda self: self.can_work() and len(self.savepoints) < 3)
    @rule()
    def begin_nested(self) -> None:
        context = self.ours.begin_nested()
        mine, oracle = self.both(context.__aenter__, self.theirs.begin_nested)
        if mine.error is None:
            self.savepoints.append((context, oracle.value))

    @precondition(lambda self: self.can_work() and self.savepoints)
    @rule()
    def release_savepoint(self) -> None:
        """Leave the innermost ``begin_nested()`` block normally.

        Both leave it as ``with``/``async with`` would. A failed release (its
        flush) rolls the savepoint back and the enclosing transaction goes on.
        """
        context, transaction = self.savepoints[-1]
        self.both(
            lambda: context.__aexit__(None, None, None),
            lambda: transaction.__exit__(None, None, None),
        )
        if not self.failed:
            self.savepoints.pop()

    @precondition(lambda self: self.savepoints)
    @rule()
    def rollback_savepoint(self) -> None:
        """Leave the innermost ``begin_nested()`` block by an exception.

        Also after a failure inside the savepoint: rolling it back makes the
        enclosing transaction usable again, in both.
        """
        context, transaction = self.savepoints[-1]
        error = RuntimeError("leaving the block")
        mine, _ = self.both(
            lambda: context.__aexit__(RuntimeError, error, None),
            lambda: self.oracle_rollback(transaction, error),
        )
        if mine.error is None:
            self.savepoints.pop()

    @precondition(lambda self: self.failed)
    @rule(operation=st.sampled_from(["flush", "commit", "begin_nested", "query"]))
    def use_failed_session(self, operation: str) -> None:
        """Anything but rollback() after a failure raises PendingRollbackError, in both."""
        calls: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
            "flush": (self.ours.flush, self.theirs.flush),
            "commit": (self.ours.commit, self.theirs.commit),
            "begin_nested": (
                lambda: self.ours.begin_nested().__aenter__(),
                self.theirs.begin_nested,
            ),
            "query": (
                lambda: self.ours.execute(select(Parent.id)),
                lambda: self.theirs.execute(sa.select(SAParent.id)),
            ),
        }
        ours, theirs = calls[operation]
        if operation == "flush":
            # SQLAlchemy's flush() returns early when nothing is pending, without
            # looking at the transaction; asyncsession's raises (DESIGN.md: after a
            # failure everything but rollback() raises).
            with pytest.raises(exc.PendingRollbackError):
                self.portal.call(ours)
            return
        mine, _ = self.both(ours, theirs)
        assert type(mine.error).__name__ == "PendingRollbackError", mine.error

    # -- comparing -------------------------------------------------------------------------

    def compare_rows_in_transaction(self) -> None:
        for kind, (ours_cls, theirs_cls) in KINDS.items():
            columns = ATTRS[kind]

            async def ours(ours_cls: Any = ours_cls, columns: Any = columns) -> Any:
                stmt = select(*[getattr(ours_cls, c) for c in columns]).order_by(ours_cls.id)
                return [tuple(r) for r in (await self.ours.execute(stmt)).all()]

            def theirs(theirs_cls: Any = theirs_cls, columns: Any = columns) -> Any:
                stmt = sa.select(*[getattr(theirs_cls, c) for c in columns]).order_by(theirs_cls.id)
                return [tuple(r) for r in self.theirs.execute(stmt).all()]

            mine, oracle = self.both(ours, theirs)
            assert mine.value == oracle.value, f"{kind} rows inside the transaction differ"

    @invariant()
    def databases_agree(self) -> None:
        ours, theirs = self.backend.read_committed()
        assert ours == theirs, "committed rows differ"

    @invariant()
    def sessions_agree(self) -> None:
        assert self.ours.is_active == self.theirs.is_active
        assert self.ours.in_transaction() == self.theirs.in_transaction()
        assert self.ours.in_nested_transaction() == self.theirs.in_nested_transaction()
        if self.failed:
            return
        for pair in self.pairs:
            self.compare_objects(pair)
        ours_map = sorted((k[0].__tablename__, k[1]) for k in self.ours.identity_map)
        theirs_map = sorted((k[0].__tablename__, k[1]) for k in self.theirs.identity_map)
        assert ours_map == theirs_map, "identity maps differ"
        for name in ("new", "deleted"):
            ours_set = {self.by_ours[id(o)].index for o in getattr(self.ours, name)}
            theirs_set = {self.by_theirs[id(o)].index for o in getattr(self.theirs, name)}
            assert ours_set == theirs_set, f"session.{name} differs"

    def compare_objects(self, pair: Pair) -> None:
        ours, theirs = inspect(pair.ours), sa.inspect(pair.theirs)
        where = f"{pair}: "
        flag = lifecycle(ours)
        assert flag == lifecycle(theirs), where + f"{flag} here, {lifecycle(theirs)} in SQLAlchemy"
        assert ours.identity == theirs.identity, where + "identity"
        assert (pair.ours in self.ours) == (pair.theirs in self.theirs), where + "in session"
        keys = ATTRS[pair.kind]
        ours_loaded = {k: v for k, v in pair.ours.__dict__.items() if k in keys}
        theirs_loaded = {k: v for k, v in theirs.dict.items() if k in keys}
        assert ours_loaded == theirs_loaded, where + f"loaded {ours_loaded} != {theirs_loaded}"
        ours_expired = set(ours.expired_attributes or ())
        theirs_expired = theirs.expired_attributes & set(keys)
        assert ours_expired == theirs_expired, where + f"expired {ours_expired} != {theirs_expired}"
        theirs_unloaded = theirs.unloaded & set(keys)
        assert ours.unloaded == theirs_unloaded, (
            where + f"unloaded {ours.unloaded} != {theirs.unloaded}"
        )
        for key in keys:
            assert history(ours.attrs[key].history) == history(theirs.attrs[key].history), (
                where + f"history of {key}"
            )
        if flag == "persistent":
            assert self.ours.is_modified(pair.ours) == self.theirs.is_modified(pair.theirs), (
                where + "is_modified"
            )


# A passing run takes seconds; a failing one shrinks for up to five minutes
# (Hypothesis' own limit) and must still get to report the shrunk example.
@pytest.mark.timeout(900)
def test_session_agrees_with_sqlalchemy(
    request: pytest.FixtureRequest, db_url: str, tmp_path: Path
) -> None:
    """Random sequences of session work end the same in asyncsession and SQLAlchemy."""
    with open_backend(request, db_url, tmp_path) as backend:
        machine = type(f"SessionMachine_{backend.name}", (SessionMachine,), {"backend": backend})
        run_state_machine_as_test(machine, settings=SETTINGS)


# -- the machine's findings, pinned ------------------------------------------------------------
# Each disagreement the machine found in asyncsession, as the shortest sequence
# that shows it, on SQLite (the expected outcomes are SQLAlchemy's).


@pytest.fixture
async def session(sqlite_url: str, anyio_backend: str) -> AsyncIterator[AsyncSession]:
    engine = create_async_engine(sqlite_url)
    await _create_all(engine)
    try:
        async with AsyncSession(engine) as session:
            yield session
    finally:
        await engine.dispose()


async def committed_parent(session: AsyncSession, name: str = "p") -> Parent:
    parent = Parent(name=name, score=1)
    session.add(parent)
    await session.commit()
    return parent


@pytest.mark.anyio
async def test_add_then_rollback_before_any_io_expunges(session: AsyncSession) -> None:
    parent = Parent(name="p")
    session.add(parent)
    assert session.in_transaction()  # add() autobegins
    await session.rollback()
    assert inspect(parent).transient


@pytest.mark.anyio
async def test_a_change_after_commit_is_rolled_back(session: AsyncSession) -> None:
    parent = await committed_parent(session)
    parent.name = "changed"
    assert session.in_transaction()  # the first change autobegins
    await session.rollback()
    assert inspect(parent).expired_attributes == {"id", "name", "score"}
    assert not session.is_modified(parent)


@pytest.mark.anyio
async def test_delete_after_commit_is_undone_by_rollback(session: AsyncSession) -> None:
    parent = await committed_parent(session)
    await session.delete(parent)
    await session.rollback()
    assert not session.deleted
    assert inspect(parent).persistent


@pytest.mark.anyio
async def test_rolling_back_a_savepoint_undoes_deletions_marked_in_it(
    session: AsyncSession,
) -> None:
    parent = await committed_parent(session)
    nested = await session.begin_nested()
    await session.delete(parent)
    await nested.rollback()
    assert not session.deleted
    assert "name" in parent.__dict__  # not changed inside: still loaded


@pytest.mark.anyio
async def test_an_object_inserted_and_deleted_then_rolled_back_is_transient(
    session: AsyncSession,
) -> None:
    parent = Parent(name="p")
    session.add(parent)
    await session.flush()
    await session.delete(parent)
    await session.flush()
    session.expunge(parent)
    await session.rollback()
    state = inspect(parent)
    assert state.transient
    assert not state.was_deleted
    session.add(parent)  # it can be added again
    await session.flush()
    assert state.persistent


@pytest.mark.anyio
async def test_get_returns_an_object_marked_for_deletion(session: AsyncSession) -> None:
    parent = await committed_parent(session)
    await session.delete(parent)
    assert await session.get(Parent, parent.id) is parent
    assert parent in session
    await session.flush()
    assert inspect(parent).deleted
    assert parent not in session  # deleted in a flush: no longer in the session


@pytest.mark.anyio
async def test_refresh_expires_first(session: AsyncSession) -> None:
    parent = await committed_parent(session)
    async with session.bind.begin() as conn:  # type: ignore[union-attr]
        await conn.execute(Parent.__table__.delete())
    parent.name = "changed"
    with pytest.raises(exc.InvalidRequestError, match="no longer exists"):
        await session.refresh(parent)
    assert inspect(parent).expired_attributes == {"id", "name", "score"}
    assert not parent.__dict__.keys() & {"id", "name", "score"}


@pytest.mark.anyio
async def test_a_pending_object_with_expired_values_is_not_inserted(
    session: AsyncSession,
) -> None:
    parent = Parent(name="p")
    session.add(parent)
    await session.flush()
    session.expire(parent)
    session.expunge(parent)
    await session.rollback()  # inserted in the rolled back transaction: transient
    session.add(parent)
    with pytest.raises(exc.InvalidRequestError, match="were expired"):
        await session.flush()
    await session.rollback()


@pytest.mark.anyio
async def test_a_flush_settles_changes_set_back(session: AsyncSession) -> None:
    parent = await committed_parent(session)
    parent.name = "p"  # the value it had
    await session.flush()
    assert not inspect(parent).modified
    assert inspect(parent).attrs.name.history == ((), ("p",), ())


@pytest.mark.anyio
async def test_an_assigned_expired_attribute_is_loaded_after_a_flush(
    session: AsyncSession,
) -> None:
    parent = await committed_parent(session)
    session.expire(parent)
    parent.name = "new"
    await session.flush()
    assert inspect(parent).expired_attributes == {"id", "score"}


@pytest.mark.anyio
async def test_a_refused_add_leaves_the_object_detached(session: AsyncSession) -> None:
    parent = await committed_parent(session)
    session.expunge(parent)
    again = await session.get(Parent, parent.id)
    with pytest.raises(exc.InvalidRequestError, match="same key"):
        session.add(parent)
    assert inspect(parent).detached
    assert again in session


@pytest.mark.anyio
async def test_an_object_left_over_from_a_rollback(session: AsyncSession) -> None:
    parent = Parent(name="p")
    session.add(parent)
    await session.flush()
    session.expunge(parent)
    leftover = await session.get(Parent, parent.id)  # a second object for the row
    assert leftover is not None
    await session.rollback()  # the row is gone; the leftover stays persistent, expired
    assert inspect(leftover).persistent
    # get() finds its row gone: it is deleted (a rollback would restore it).
    assert await session.get(Parent, parent.id) is None
    assert inspect(leftover).deleted
    await session.rollback()
    assert inspect(leftover).persistent
    # A new object inserted under its key (SQLite reuses the rowid): deleted too.
    newcomer = Parent(name="n")
    session.add(newcomer)
    await session.flush()
    assert inspect(newcomer).identity == inspect(leftover).identity
    assert inspect(leftover).deleted
    assert await session.get(Parent, newcomer.id) is newcomer


@pytest.mark.anyio
async def test_rolling_back_a_key_change_of_an_expunged_object(session: AsyncSession) -> None:
    child = Child(id=1, label="c")
    session.add(child)
    await session.commit()
    nested = await session.begin_nested()
    child.id = 2
    await session.flush()
    session.expunge(child)
    await nested.rollback()
    state = inspect(child)
    assert state.detached
    assert state.identity == (1,)  # the row's key again
    assert "id" not in child.__dict__  # and the changed value is gone
