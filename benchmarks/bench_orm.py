"""ORM workloads on PostgreSQL: asyncsession's AsyncSession against SQLAlchemy's
AsyncSession and raw asyncpg doing the same work by hand.

Every contender keeps one engine/connection from setup; each run starts from a
table in a known state (``before_each``, untimed). The raw contender does what
the ORM call amounts to: the same statements, rows turned into plain objects
where the ORM would build objects.

- ``orm_insert_10k``: 10,000 new objects in one flush (commit), keys fetched back.
- ``orm_get_2000``: 2,000 ``get()`` by primary key, each in a fresh session (no
  identity-map hits), in one transaction.
- ``orm_select_10k``: one SELECT of 10,000 rows into objects.
- ``orm_update_10k``: load 10,000 objects, change one attribute on each, commit.
- ``orm_small_tx_500``: 500 transactions, each inserting one object and committing.
- ``orm_delete_10k``: load 10,000 objects, delete each, commit.
- ``orm_selectinload_1000x10``: 1,000 parents with their 10 children each through
  ``selectinload`` (two queries); raw: the same two queries, rows grouped by hand.
- ``orm_joinedload_1000x10``: the same graph through ``joinedload`` (one LEFT OUTER
  JOIN, result ``unique()``d); raw: the same join, rows grouped by hand.
- ``orm_rel_insert_1000x10`` and ``orm_rel_delete_1000x10``: parents with
  children (see the relationships section at the end).

The server is ``ASYNCSESSION_TEST_PG_URL`` (default: the local one).
"""

import os
from typing import Any

from benchmarks._runner import Implementation, Unavailable, Workload

PG_URL = os.environ.get(
    "ASYNCSESSION_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
DSN = PG_URL.replace("+asyncpg", "")
TABLE = "bench_orm_items"
N = 10_000
N_GETS = 2_000
N_TX = 500
PARENTS = "bench_orm_parents"
CHILDREN = "bench_orm_children"
N_PARENTS = 1_000
N_CHILDREN = 10  # per parent

CREATE = (
    f"CREATE TABLE {TABLE} (id SERIAL PRIMARY KEY, name VARCHAR(40) NOT NULL, "
    "qty INTEGER NOT NULL, note VARCHAR(40))"
)
SEED = [(f"item {i}", i % 97, None) for i in range(1, N + 1)]


async def _reset_tree(raw: Any) -> None:
    await raw.execute(f"DROP TABLE IF EXISTS {CHILDREN}")
    await raw.execute(f"DROP TABLE IF EXISTS {PARENTS}")
    await raw.execute(f"CREATE TABLE {PARENTS} (id SERIAL PRIMARY KEY, name VARCHAR(40) NOT NULL)")
    await raw.execute(
        f"CREATE TABLE {CHILDREN} (id SERIAL PRIMARY KEY, "
        f"parent_id INTEGER NOT NULL REFERENCES {PARENTS} (id), name VARCHAR(40) NOT NULL)"
    )
    await raw.execute(f"CREATE INDEX ON {CHILDREN} (parent_id)")
    await raw.copy_records_to_table(
        PARENTS,
        records=[(i, f"parent {i}") for i in range(1, N_PARENTS + 1)],
        columns=["id", "name"],
    )
    await raw.copy_records_to_table(
        CHILDREN,
        records=[(p, f"child {p}.{c}") for p in range(1, N_PARENTS + 1) for c in range(N_CHILDREN)],
        columns=["parent_id", "name"],
    )


async def _drop_tree(raw: Any) -> None:
    await raw.execute(f"DROP TABLE IF EXISTS {CHILDREN}")
    await raw.execute(f"DROP TABLE IF EXISTS {PARENTS}")


async def _reset(raw: Any, rows: bool) -> None:
    await raw.execute(f"DROP TABLE IF EXISTS {TABLE}")
    await raw.execute(CREATE)
    if rows:
        await raw.copy_records_to_table(TABLE, records=SEED, columns=["name", "qty", "note"])


# -- asyncsession -----------------------------------------------------------------------
def _our_model() -> Any:
    from asyncsession import DeclarativeBase, Mapped, String, mapped_column

    class Base(DeclarativeBase):
        pass

    class Item(Base):
        __tablename__ = TABLE
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(40))
        qty: Mapped[int]
        note: Mapped[str | None] = mapped_column(String(40))

    return Item


def _our_tree() -> tuple[Any, Any]:
    from asyncsession import (
        DeclarativeBase,
        ForeignKey,
        Mapped,
        String,
        mapped_column,
        relationship,
    )

    class Base(DeclarativeBase):
        pass

    class Parent(Base):
        __tablename__ = PARENTS
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(40))
        children: Mapped[list["Child"]] = relationship(back_populates="parent")

    class Child(Base):
        __tablename__ = CHILDREN
        id: Mapped[int] = mapped_column(primary_key=True)
        parent_id: Mapped[int] = mapped_column(ForeignKey(f"{PARENTS}.id"))
        name: Mapped[str] = mapped_column(String(40))
        parent: Mapped[Parent] = relationship(back_populates="children")

    return Parent, Child


class _Ours:
    def __init__(self) -> None:
        from asyncsession import (
            AsyncSession,
            create_async_engine,
            joinedload,
            select,
            selectinload,
        )

        self.engine = create_async_engine(PG_URL)
        self.Item = _our_model()
        self.Parent, self.Child = _our_tree()
        self.Session = AsyncSession
        self.select = select
        self.selectinload = selectinload
        self.joinedload = joinedload
        self.raw: Any = None


async def _ours_setup() -> _Ours:
    import asyncpg

    ours = _Ours()
    try:
        ours.raw = await asyncpg.connect(DSN)
    except OSError as err:
        raise Unavailable(f"PostgreSQL is not reachable: {err}") from None
    return ours


async def _ours_teardown(ours: _Ours) -> None:
    await ours.raw.execute(f"DROP TABLE IF EXISTS {TABLE}")
    await _drop_tree(ours.raw)
    await ours.raw.close()
    await ours.engine.dispose()


# -- SQLAlchemy --------------------------------------------------------------------------
def _their_model() -> Any:
    from sqlalchemy import String
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

    class Base(DeclarativeBase):
        pass

    class Item(Base):
        __tablename__ = TABLE
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(40))
        qty: Mapped[int]
        note: Mapped[str | None] = mapped_column(String(40))

    return Item


def _their_tree() -> tuple[Any, Any]:
    from sqlalchemy import ForeignKey, String
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

    class Base(DeclarativeBase):
        pass

    class Parent(Base):
        __tablename__ = PARENTS
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(40))
        children: Mapped[list["Child"]] = relationship(back_populates="parent")

    class Child(Base):
        __tablename__ = CHILDREN
        id: Mapped[int] = mapped_column(primary_key=True)
        parent_id: Mapped[int] = mapped_column(ForeignKey(f"{PARENTS}.id"))
        name: Mapped[str] = mapped_column(String(40))
        parent: Mapped[Parent] = relationship(back_populates="children")

    return Parent, Child


class _Theirs:
    def __init__(self) -> None:
        from sqlalchemy import select
        from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
        from sqlalchemy.orm import joinedload, selectinload

        self.engine = create_async_engine(PG_URL)
        self.Item = _their_model()
        self.Parent, self.Child = _their_tree()
        self.selectinload = selectinload
        self.joinedload = joinedload
        self.Session = lambda engine: AsyncSession(engine, expire_on_commit=False)
        self.select = select
        self.raw: Any = None


async def _theirs_setup() -> _Theirs:
    import asyncpg

    theirs = _Theirs()
    try:
        theirs.raw = await asyncpg.connect(DSN)
    except OSError as err:
        raise Unavailable(f"PostgreSQL is not reachable: {err}") from None
    return theirs


async def _theirs_teardown(theirs: _Theirs) -> None:
    await theirs.raw.close()
    await theirs.engine.dispose()


# -- the ORM workloads, shared by both ORMs (same API) ---------------------------------------
async def _orm_insert(orm: Any) -> None:
    async with orm.Session(orm.engine) as session:
        items = [orm.Item(name=f"item {i}", qty=i % 97) for i in range(N)]
        session.add_all(items)
        await session.commit()
        assert items[-1].id is not None


async def _orm_get(orm: Any) -> None:
    async with orm.Session(orm.engine) as session:
        Item = orm.Item
        for i in range(1, N_GETS + 1):
            item = await session.get(Item, i)
            assert item.id == i
            session.expunge(item)


async def _orm_select(orm: Any) -> None:
    async with orm.Session(orm.engine) as session:
        items = (await session.execute(orm.select(orm.Item))).scalars().all()
        assert len(items) == N


async def _orm_update(orm: Any) -> None:
    async with orm.Session(orm.engine) as session:
        items = (await session.execute(orm.select(orm.Item))).scalars().all()
        for item in items:
            item.note = "seen"
        await session.commit()


async def _orm_small_tx(orm: Any) -> None:
    Item = orm.Item
    for i in range(N_TX):
        async with orm.Session(orm.engine) as session:
            session.add(Item(name=f"tx {i}", qty=i))
            await session.commit()


async def _orm_selectinload(orm: Any) -> None:
    async with orm.Session(orm.engine) as session:
        stmt = orm.select(orm.Parent).options(orm.selectinload(orm.Parent.children))
        parents = (await session.execute(stmt)).scalars().all()
        assert len(parents) == N_PARENTS
        assert sum(len(p.children) for p in parents) == N_PARENTS * N_CHILDREN


async def _orm_joinedload(orm: Any) -> None:
    async with orm.Session(orm.engine) as session:
        stmt = orm.select(orm.Parent).options(orm.joinedload(orm.Parent.children))
        parents = (await session.execute(stmt)).unique().scalars().all()
        assert len(parents) == N_PARENTS
        assert sum(len(p.children) for p in parents) == N_PARENTS * N_CHILDREN


async def _orm_delete(orm: Any) -> None:
    async with orm.Session(orm.engine) as session:
        items = (await session.execute(orm.select(orm.Item))).scalars().all()
        for item in items:
            await session.delete(item)
        await session.commit()


# -- raw asyncpg: the same work by hand -------------------------------------------------------
class _Obj:
    __slots__ = ("id", "name", "note", "qty")

    def __init__(self, id: Any, name: Any, qty: Any, note: Any) -> None:
        self.id = id
        self.name = name
        self.qty = qty
        self.note = note


async def _raw_setup() -> Any:
    import asyncpg

    try:
        return await asyncpg.connect(DSN)
    except OSError as err:
        raise Unavailable(f"PostgreSQL is not reachable: {err}") from None


async def _raw_teardown(raw: Any) -> None:
    await raw.execute(f"DROP TABLE IF EXISTS {TABLE}")
    await _drop_tree(raw)
    await raw.close()


async def _raw_insert(raw: Any) -> None:
    rows = [(f"item {i}", i % 97) for i in range(N)]
    async with raw.transaction():
        ids = []
        step = 32767 // 2
        for start in range(0, N, step):
            chunk = rows[start : start + step]
            values = ", ".join(f"(${2 * j + 1}, ${2 * j + 2})" for j in range(len(chunk)))
            flat = [v for row in chunk for v in row]
            ids.extend(
                await raw.fetch(
                    f"INSERT INTO {TABLE} (name, qty) VALUES {values} RETURNING id", *flat
                )
            )
    assert len(ids) == N


async def _raw_get(raw: Any) -> None:
    sql = f"SELECT id, name, qty, note FROM {TABLE} WHERE id = $1"
    async with raw.transaction():
        for i in range(1, N_GETS + 1):
            row = await raw.fetchrow(sql, i)
            assert _Obj(*row).id == i


async def _raw_select(raw: Any) -> None:
    rows = await raw.fetch(f"SELECT id, name, qty, note FROM {TABLE}")
    assert len([_Obj(*r) for r in rows]) == N


async def _raw_update(raw: Any) -> None:
    async with raw.transaction():
        objs = [_Obj(*r) for r in await raw.fetch(f"SELECT id, name, qty, note FROM {TABLE}")]
        await raw.executemany(
            f"UPDATE {TABLE} SET note = $1 WHERE id = $2", [("seen", o.id) for o in objs]
        )


async def _raw_small_tx(raw: Any) -> None:
    for i in range(N_TX):
        async with raw.transaction():
            await raw.fetchval(
                f"INSERT INTO {TABLE} (name, qty) VALUES ($1, $2) RETURNING id", f"tx {i}", i
            )


class _Node:
    __slots__ = ("children", "id", "name", "parent_id")

    def __init__(self, id: Any, name: Any, parent_id: Any = None) -> None:
        self.id = id
        self.name = name
        self.parent_id = parent_id
        self.children: list[_Node] = []


async def _raw_selectinload(raw: Any) -> None:
    async with raw.transaction():
        parents = [_Node(*r) for r in await raw.fetch(f"SELECT id, name FROM {PARENTS}")]
        by_id = {p.id: p for p in parents}
        rows = await raw.fetch(
            f"SELECT id, name, parent_id FROM {CHILDREN} WHERE parent_id = ANY($1)", list(by_id)
        )
        for row in rows:
            child = _Node(*row)
            by_id[child.parent_id].children.append(child)
    assert sum(len(p.children) for p in parents) == N_PARENTS * N_CHILDREN


async def _raw_joinedload(raw: Any) -> None:
    rows = await raw.fetch(
        f"SELECT p.id, p.name, c.id, c.name, c.parent_id FROM {PARENTS} AS p "
        f"LEFT OUTER JOIN {CHILDREN} AS c ON p.id = c.parent_id"
    )
    by_id: dict[Any, _Node] = {}
    for pid, pname, cid, cname, cparent in rows:
        parent = by_id.get(pid)
        if parent is None:
            parent = by_id[pid] = _Node(pid, pname)
        if cid is not None:
            parent.children.append(_Node(cid, cname, cparent))
    assert sum(len(p.children) for p in by_id.values()) == N_PARENTS * N_CHILDREN


async def _raw_delete(raw: Any) -> None:
    async with raw.transaction():
        objs = [_Obj(*r) for r in await raw.fetch(f"SELECT id, name, qty, note FROM {TABLE}")]
        await raw.execute(f"DELETE FROM {TABLE} WHERE id = ANY($1)", [o.id for o in objs])


async def _seeded(state: Any) -> None:
    await _reset(getattr(state, "raw", state), rows=True)


async def _empty(state: Any) -> None:
    await _reset(getattr(state, "raw", state), rows=False)


async def _tree(state: Any) -> None:
    await _reset_tree(getattr(state, "raw", state))


def _impls(orm_run: Any, raw_run: Any, before: Any) -> dict[str, Implementation]:
    return {
        "asyncsession": Implementation(
            run=orm_run, setup=_ours_setup, before_each=before, teardown=_ours_teardown
        ),
        "sqlalchemy": Implementation(
            run=orm_run, setup=_theirs_setup, before_each=before, teardown=_theirs_teardown
        ),
        "raw": Implementation(
            run=raw_run, setup=_raw_setup, before_each=before, teardown=_raw_teardown
        ),
    }


WORKLOADS = [
    Workload(
        "orm_insert_10k",
        f"{N:,} new objects in one flush + commit (PostgreSQL)",
        _impls(_orm_insert, _raw_insert, _empty),
    ),
    Workload(
        "orm_get_2000",
        f"{N_GETS:,} get() by primary key (PostgreSQL)",
        _impls(_orm_get, _raw_get, _seeded),
    ),
    Workload(
        "orm_select_10k",
        f"SELECT {N:,} rows into objects (PostgreSQL)",
        _impls(_orm_select, _raw_select, _seeded),
    ),
    Workload(
        "orm_update_10k",
        f"load {N:,} objects, change each, commit (PostgreSQL)",
        _impls(_orm_update, _raw_update, _seeded),
    ),
    Workload(
        "orm_small_tx_500",
        f"{N_TX} transactions of one INSERT each (PostgreSQL)",
        _impls(_orm_small_tx, _raw_small_tx, _empty),
    ),
    Workload(
        "orm_delete_10k",
        f"load {N:,} objects, delete each, commit (PostgreSQL)",
        _impls(_orm_delete, _raw_delete, _seeded),
    ),
    Workload(
        "orm_selectinload_1000x10",
        f"selectinload {N_PARENTS:,} parents x {N_CHILDREN} children (PostgreSQL)",
        _impls(_orm_selectinload, _raw_selectinload, _tree),
    ),
    Workload(
        "orm_joinedload_1000x10",
        f"joinedload {N_PARENTS:,} parents x {N_CHILDREN} children (PostgreSQL)",
        _impls(_orm_joinedload, _raw_joinedload, _tree),
    ),
]


# -- relationships: parents with children ------------------------------------------------------
# A parent table and a child table (cascade="all, delete-orphan", back_populates).
#
# - ``orm_rel_insert_1000x10``: 1,000 new parents with 10 new children each, one
#   flush (commit); the children's foreign keys come from the parents' new keys.
# - ``orm_rel_delete_1000x10``: load 1,000 parents (children not loaded), delete
#   each, commit: the delete cascade has to load the children first.

REL_PARENTS = "bench_orm_parents"
REL_CHILDREN = "bench_orm_children"
N_PARENTS = 1_000
N_CHILDREN = 10
REL_CREATE = (
    f"CREATE TABLE {REL_PARENTS} (id SERIAL PRIMARY KEY, name VARCHAR(40) NOT NULL)",
    f"CREATE TABLE {REL_CHILDREN} (id SERIAL PRIMARY KEY, "
    f"parent_id INTEGER REFERENCES {REL_PARENTS}(id), name VARCHAR(40) NOT NULL)",
)


async def _rel_reset(raw: Any, rows: bool) -> None:
    await raw.execute(f"DROP TABLE IF EXISTS {REL_CHILDREN}")
    await raw.execute(f"DROP TABLE IF EXISTS {REL_PARENTS}")
    for sql in REL_CREATE:
        await raw.execute(sql)
    if rows:
        await raw.copy_records_to_table(
            REL_PARENTS,
            records=[(i, f"parent {i}") for i in range(1, N_PARENTS + 1)],
            columns=["id", "name"],
        )
        await raw.copy_records_to_table(
            REL_CHILDREN,
            records=[
                (p, f"child {p}.{j}") for p in range(1, N_PARENTS + 1) for j in range(N_CHILDREN)
            ],
            columns=["parent_id", "name"],
        )
        await raw.execute(f"SELECT setval('{REL_PARENTS}_id_seq', {N_PARENTS})")


async def _rel_seeded(state: Any) -> None:
    await _rel_reset(getattr(state, "raw", state), rows=True)


async def _rel_empty(state: Any) -> None:
    await _rel_reset(getattr(state, "raw", state), rows=False)


def _our_rel_models() -> tuple[Any, Any]:
    from asyncsession import DeclarativeBase, ForeignKey, Mapped, String, mapped_column
    from asyncsession.orm.relationships import relationship

    class Base(DeclarativeBase):
        pass

    class Parent(Base):
        __tablename__ = REL_PARENTS
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(40))
        children: Mapped[list["Child"]] = relationship(
            back_populates="parent", cascade="all, delete-orphan"
        )

    class Child(Base):
        __tablename__ = REL_CHILDREN
        id: Mapped[int] = mapped_column(primary_key=True)
        parent_id: Mapped[int | None] = mapped_column(ForeignKey(f"{REL_PARENTS}.id"))
        name: Mapped[str] = mapped_column(String(40))
        parent: Mapped[Parent | None] = relationship(back_populates="children")

    return Parent, Child


def _their_rel_models() -> tuple[Any, Any]:
    from sqlalchemy import ForeignKey, String
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

    class Base(DeclarativeBase):
        pass

    class Parent(Base):
        __tablename__ = REL_PARENTS
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(40))
        children: Mapped[list["Child"]] = relationship(
            back_populates="parent", cascade="all, delete-orphan"
        )

    class Child(Base):
        __tablename__ = REL_CHILDREN
        id: Mapped[int] = mapped_column(primary_key=True)
        parent_id: Mapped[int | None] = mapped_column(ForeignKey(f"{REL_PARENTS}.id"))
        name: Mapped[str] = mapped_column(String(40))
        parent: Mapped[Parent | None] = relationship(back_populates="children")

    return Parent, Child


async def _ours_rel_setup() -> _Ours:
    ours = await _ours_setup()
    ours.Parent, ours.Child = _our_rel_models()
    return ours


async def _theirs_rel_setup() -> _Theirs:
    theirs = await _theirs_setup()
    theirs.Parent, theirs.Child = _their_rel_models()
    return theirs


async def _rel_teardown(state: Any) -> None:
    await state.raw.execute(f"DROP TABLE IF EXISTS {REL_CHILDREN}")
    await state.raw.execute(f"DROP TABLE IF EXISTS {REL_PARENTS}")
    await state.raw.close()
    await state.engine.dispose()


async def _orm_rel_insert(orm: Any) -> None:
    Parent, Child = orm.Parent, orm.Child
    async with orm.Session(orm.engine) as session:
        parents = [
            Parent(
                name=f"parent {i}",
                children=[Child(name=f"child {i}.{j}") for j in range(N_CHILDREN)],
            )
            for i in range(N_PARENTS)
        ]
        session.add_all(parents)
        await session.commit()
        last = parents[-1].children[-1]
        assert last.parent_id == parents[-1].id


async def _orm_rel_delete(orm: Any) -> None:
    async with orm.Session(orm.engine) as session:
        parents = (await session.execute(orm.select(orm.Parent))).scalars().all()
        assert len(parents) == N_PARENTS
        for parent in parents:
            await session.delete(parent)
        await session.commit()


async def _raw_rel_teardown(raw: Any) -> None:
    await raw.execute(f"DROP TABLE IF EXISTS {REL_CHILDREN}")
    await raw.execute(f"DROP TABLE IF EXISTS {REL_PARENTS}")
    await raw.close()


async def _raw_rel_insert(raw: Any) -> None:
    async with raw.transaction():
        values = ", ".join(f"(${i + 1})" for i in range(N_PARENTS))
        rows = await raw.fetch(
            f"INSERT INTO {REL_PARENTS} (name) VALUES {values} RETURNING id",
            *[f"parent {i}" for i in range(N_PARENTS)],
        )
        ids = sorted(r[0] for r in rows)
        children = [(pid, f"child {i}.{j}") for i, pid in enumerate(ids) for j in range(N_CHILDREN)]
        step = 500
        for start in range(0, len(children), step):
            chunk = children[start : start + step]
            values = ", ".join(f"(${2 * j + 1}, ${2 * j + 2})" for j in range(len(chunk)))
            await raw.fetch(
                f"INSERT INTO {REL_CHILDREN} (parent_id, name) VALUES {values} RETURNING id",
                *[v for row in chunk for v in row],
            )


async def _raw_rel_delete(raw: Any) -> None:
    async with raw.transaction():
        parents = [
            _Obj(r[0], r[1], 0, None)
            for r in await raw.fetch(f"SELECT id, name FROM {REL_PARENTS}")
        ]
        ids = [p.id for p in parents]
        children = await raw.fetch(
            f"SELECT id, parent_id, name FROM {REL_CHILDREN} WHERE parent_id = ANY($1)", ids
        )
        await raw.execute(
            f"DELETE FROM {REL_CHILDREN} WHERE id = ANY($1)", [c[0] for c in children]
        )
        await raw.execute(f"DELETE FROM {REL_PARENTS} WHERE id = ANY($1)", ids)


def _rel_impls(orm_run: Any, raw_run: Any, before: Any) -> dict[str, Implementation]:
    return {
        "asyncsession": Implementation(
            run=orm_run, setup=_ours_rel_setup, before_each=before, teardown=_rel_teardown
        ),
        "sqlalchemy": Implementation(
            run=orm_run, setup=_theirs_rel_setup, before_each=before, teardown=_rel_teardown
        ),
        "raw": Implementation(
            run=raw_run, setup=_raw_setup, before_each=before, teardown=_raw_rel_teardown
        ),
    }


WORKLOADS += [
    Workload(
        "orm_rel_insert_1000x10",
        f"{N_PARENTS:,} new parents with {N_CHILDREN} children each, one flush (PostgreSQL)",
        _rel_impls(_orm_rel_insert, _raw_rel_insert, _rel_empty),
    ),
    Workload(
        "orm_rel_delete_1000x10",
        f"delete {N_PARENTS:,} parents, cascading to unloaded children (PostgreSQL)",
        _rel_impls(_orm_rel_delete, _raw_rel_delete, _rel_seeded),
    ),
]
