"""Engine workloads on PostgreSQL: asyncsession's AsyncConnection against asyncpg itself
and SQLAlchemy's AsyncEngine (asyncpg underneath, greenlets in between).

Each contender opens one connection in setup and reuses it, so the timings are
statement overhead, not connecting. Statements are built once, outside the
timer, as an application would keep them; parameters change per call.

- ``engine_get_by_pk``: 2,000 single-row SELECTs by primary key.
- ``engine_insert_many``: executemany INSERT of 10,000 rows.
- ``engine_fetch_10k``: SELECT of 10,000 rows, every row materialised.

The server is ``ASYNCSESSION_TEST_PG_URL`` (default: the local one).
"""

from __future__ import annotations

import os
from typing import Any

from benchmarks._runner import Implementation, Unavailable, Workload

PG_URL = os.environ.get(
    "ASYNCSESSION_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
DSN = PG_URL.replace("+asyncpg", "")
TABLE = "bench_engine_items"
N_GETS = 2_000
N_ROWS = 10_000

CREATE = (
    f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL, "
    "qty INTEGER NOT NULL)"
)
ROWS = [{"id": i, "name": f"item {i}", "qty": i % 97} for i in range(1, N_ROWS + 1)]
ROW_TUPLES = [(r["id"], r["name"], r["qty"]) for r in ROWS]


async def _seed_raw(conn: Any, rows: bool) -> None:
    await conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    await conn.execute(CREATE)
    if rows:
        await conn.copy_records_to_table(TABLE, records=ROW_TUPLES, columns=["id", "name", "qty"])


# -- raw asyncpg ---------------------------------------------------------------------
async def _raw_setup() -> Any:
    import asyncpg

    try:
        return await asyncpg.connect(DSN)
    except OSError as err:
        raise Unavailable(f"PostgreSQL is not reachable: {err}") from None


async def _raw_teardown(conn: Any) -> None:
    await conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    await conn.close()


async def _raw_get(conn: Any) -> None:
    sql = f"SELECT id, name, qty FROM {TABLE} WHERE id = $1"
    for i in range(1, N_GETS + 1):
        row = await conn.fetchrow(sql, i)
        assert row[0] == i


async def _raw_insert(conn: Any) -> None:
    await conn.executemany(f"INSERT INTO {TABLE} (id, name, qty) VALUES ($1, $2, $3)", ROW_TUPLES)


async def _raw_fetch(conn: Any) -> None:
    rows = await conn.fetch(f"SELECT id, name, qty FROM {TABLE}")
    assert len([tuple(r) for r in rows]) == N_ROWS


# -- asyncsession ----------------------------------------------------------------------
class _Ours:
    def __init__(self) -> None:
        from asyncsession import (
            Column,
            Integer,
            MetaData,
            String,
            Table,
            create_async_engine,
            insert,
            select,
        )

        self.engine = create_async_engine(PG_URL)
        metadata = MetaData()
        self.table = Table(
            TABLE,
            metadata,
            Column("id", Integer, primary_key=True, autoincrement=False),
            Column("name", String(40), nullable=False),
            Column("qty", Integer, nullable=False),
        )
        self.insert = insert(self.table)
        self.select_all = select(self.table)
        self.select = select
        self.conn: Any = None


async def _ours_setup() -> _Ours:
    ours = _Ours()
    try:
        ours.conn = await ours.engine.connect()
    except Exception as err:
        await ours.engine.dispose()
        raise Unavailable(f"PostgreSQL is not reachable: {err}") from None
    return ours


async def _ours_teardown(ours: _Ours) -> None:
    await ours.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}")
    await ours.conn.commit()
    await ours.conn.close()
    await ours.engine.dispose()


async def _ours_seed(ours: _Ours, rows: bool) -> None:
    raw = await ours.conn.get_raw_connection()
    await ours.conn.commit()
    await _seed_raw(raw, rows)


async def _ours_get(ours: _Ours) -> None:
    table = ours.table
    conn = ours.conn
    select = ours.select
    for i in range(1, N_GETS + 1):
        row = (await conn.execute(select(table).where(table.c.id == i))).one()
        assert row[0] == i
    await conn.commit()


async def _ours_insert(ours: _Ours) -> None:
    await ours.conn.execute(ours.insert, ROWS)
    await ours.conn.commit()


async def _ours_fetch(ours: _Ours) -> None:
    rows = (await ours.conn.execute(ours.select_all)).all()
    assert len(rows) == N_ROWS
    await ours.conn.commit()


# -- SQLAlchemy ---------------------------------------------------------------------------
class _Theirs:
    def __init__(self) -> None:
        import sqlalchemy as sa
        from sqlalchemy.ext.asyncio import create_async_engine

        self.engine = create_async_engine(PG_URL)
        metadata = sa.MetaData()
        self.table = sa.Table(
            TABLE,
            metadata,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("name", sa.String(40), nullable=False),
            sa.Column("qty", sa.Integer, nullable=False),
        )
        self.insert = sa.insert(self.table)
        self.select_all = sa.select(self.table)
        self.select = sa.select
        self.conn: Any = None


async def _theirs_setup() -> _Theirs:
    theirs = _Theirs()
    try:
        theirs.conn = await theirs.engine.connect()
    except Exception as err:
        await theirs.engine.dispose()
        raise Unavailable(f"SQLAlchemy could not connect: {err}") from None
    return theirs


async def _theirs_teardown(theirs: _Theirs) -> None:
    await theirs.conn.close()
    await theirs.engine.dispose()


async def _theirs_seed(theirs: _Theirs, rows: bool) -> None:
    raw = await theirs.conn.get_raw_connection()
    await theirs.conn.commit()
    await _seed_raw(raw.driver_connection, rows)


async def _theirs_get(theirs: _Theirs) -> None:
    table = theirs.table
    conn = theirs.conn
    select = theirs.select
    for i in range(1, N_GETS + 1):
        row = (await conn.execute(select(table).where(table.c.id == i))).one()
        assert row[0] == i
    await conn.commit()


async def _theirs_insert(theirs: _Theirs) -> None:
    await theirs.conn.execute(theirs.insert, ROWS)
    await theirs.conn.commit()


async def _theirs_fetch(theirs: _Theirs) -> None:
    rows = (await theirs.conn.execute(theirs.select_all)).all()
    assert len(rows) == N_ROWS
    await theirs.conn.commit()


async def _seeded(state: Any) -> None:
    await _seed_any(state, rows=True)


async def _empty(state: Any) -> None:
    await _seed_any(state, rows=False)


async def _seed_any(state: Any, rows: bool) -> None:
    if isinstance(state, _Ours):
        await _ours_seed(state, rows)
    elif isinstance(state, _Theirs):
        await _theirs_seed(state, rows)
    else:
        await _seed_raw(state, rows)


def _impls(raw: Any, ours: Any, theirs: Any, before: Any) -> dict[str, Implementation]:
    return {
        "raw": Implementation(
            run=raw, setup=_raw_setup, before_each=before, teardown=_raw_teardown
        ),
        "asyncsession": Implementation(
            run=ours, setup=_ours_setup, before_each=before, teardown=_ours_teardown
        ),
        "sqlalchemy": Implementation(
            run=theirs, setup=_theirs_setup, before_each=before, teardown=_theirs_teardown
        ),
    }


WORKLOADS = [
    Workload(
        "engine_get_by_pk",
        f"{N_GETS:,} single-row SELECTs by primary key (PostgreSQL)",
        _impls(_raw_get, _ours_get, _theirs_get, _seeded),
    ),
    Workload(
        "engine_insert_many",
        f"executemany INSERT of {N_ROWS:,} rows (PostgreSQL)",
        _impls(_raw_insert, _ours_insert, _theirs_insert, _empty),
    ),
    Workload(
        "engine_fetch_10k",
        f"SELECT of {N_ROWS:,} rows into row objects (PostgreSQL)",
        _impls(_raw_fetch, _ours_fetch, _theirs_fetch, _seeded),
    ),
]
