"""Compiler output, pure: the exact SQL and parameters for each dialect.

Every construct is compiled three ways: the generic ``str()`` form (``:name``
parameters), SQLite (``?``) and PostgreSQL (``$n``, with a cast on every typed
parameter so the server never has to guess its type). Parameter values are
what ``construct_params`` hands the driver, bind-processed (a ``date`` becomes
ISO text on SQLite), in the order their placeholders appear in the text.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import pytest

from asyncsession import exc
from asyncsession.sql import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    CreateIndex,
    CreateTable,
    Date,
    DateTime,
    DropIndex,
    DropTable,
    Enum,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    UniqueConstraint,
    and_,
    asc,
    bindparam,
    case,
    cast,
    collate,
    column,
    delete,
    desc,
    distinct,
    except_,
    exists,
    false,
    func,
    insert,
    intersect,
    literal,
    not_,
    null,
    nulls_last,
    or_,
    select,
    text,
    true,
    tuple_,
    union,
    union_all,
    update,
)
from asyncsession.sql.compiler import Compiled
from asyncsession.sql.ddl import CreateEnumType, DropEnumType, sort_tables
from asyncsession.sql.dialects.postgresql import PGDialect
from asyncsession.sql.dialects.sqlite import SQLiteDialect
from asyncsession.sql.elements import ClauseElement

metadata = MetaData()
users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(50), nullable=False),
    Column("age", Integer),
    Column("score", Float),
    Column("active", Boolean),
)
addresses = Table(
    "addresses",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", ForeignKey("users.id")),
    Column("email", String(100)),
)
orders = Table(
    "orders",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("address_id", ForeignKey("addresses.id")),
    Column("total", Integer),
)
nodes = Table(
    "nodes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("parent_id", ForeignKey("nodes.id")),
    Column("name", String),
)
u, a = users.c, addresses.c


def sqlite(
    stmt: ClauseElement,
    params: Mapping[str, Any] | None = None,
    column_keys: list[str] | None = None,
) -> tuple[str, list[Any]]:
    """(SQL, driver arguments) on a fresh SQLite dialect."""
    return run_compile(SQLiteDialect(), stmt, params, column_keys)


def pg(
    stmt: ClauseElement,
    params: Mapping[str, Any] | None = None,
    column_keys: list[str] | None = None,
) -> tuple[str, list[Any]]:
    """(SQL, driver arguments) on a fresh PostgreSQL dialect."""
    return run_compile(PGDialect(), stmt, params, column_keys)


def run_compile(
    dialect: SQLiteDialect | PGDialect,
    stmt: ClauseElement,
    params: Mapping[str, Any] | None,
    column_keys: list[str] | None,
) -> tuple[str, list[Any]]:
    compiled, extracted = dialect.compile(stmt, column_keys=column_keys)
    return compiled.sql, compiled.construct_params(extracted, params)


def compiled_for(dialect: SQLiteDialect | PGDialect, stmt: ClauseElement) -> Compiled:
    return dialect.compile(stmt)[0]


# -- expressions ---------------------------------------------------------------------


@attrs.frozen
class Case:
    build: Callable[[], ClauseElement]
    generic: str
    sqlite: str
    postgresql: str
    values: list[Any]
    params: Mapping[str, Any] | None = None
    pg_values: list[Any] | None = None


def case_(
    id_: str,
    build: Callable[[], ClauseElement],
    generic: str,
    sqlite_sql: str,
    pg_sql: str,
    values: list[Any],
    params: Mapping[str, Any] | None = None,
    pg_values: list[Any] | None = None,
) -> Any:
    return pytest.param(Case(build, generic, sqlite_sql, pg_sql, values, params, pg_values), id=id_)


EXPRESSIONS = [
    case_(
        "eq",
        lambda: u.id == 5,
        "users.id = :id_1",
        "users.id = ?",
        "users.id = $1::INTEGER",
        [5],
    ),
    case_(
        "ne",
        lambda: u.id != 5,
        "users.id != :id_1",
        "users.id != ?",
        "users.id != $1::INTEGER",
        [5],
    ),
    case_(
        "lt",
        lambda: u.age < 5,
        "users.age < :age_1",
        "users.age < ?",
        "users.age < $1::INTEGER",
        [5],
    ),
    case_(
        "le",
        lambda: u.age <= 5,
        "users.age <= :age_1",
        "users.age <= ?",
        "users.age <= $1::INTEGER",
        [5],
    ),
    case_(
        "gt",
        lambda: u.age > 5,
        "users.age > :age_1",
        "users.age > ?",
        "users.age > $1::INTEGER",
        [5],
    ),
    case_(
        "ge",
        lambda: u.age >= 5,
        "users.age >= :age_1",
        "users.age >= ?",
        "users.age >= $1::INTEGER",
        [5],
    ),
    case_(
        "eq_none",
        lambda: u.age == None,  # noqa: E711 - builds IS NULL
        "users.age IS NULL",
        "users.age IS NULL",
        "users.age IS NULL",
        [],
    ),
    case_(
        "ne_none",
        lambda: u.age != None,  # noqa: E711 - builds IS NOT NULL
        "users.age IS NOT NULL",
        "users.age IS NOT NULL",
        "users.age IS NOT NULL",
        [],
    ),
    case_(
        "col_col",
        lambda: u.id == a.user_id,
        "users.id = addresses.user_id",
        "users.id = addresses.user_id",
        "users.id = addresses.user_id",
        [],
    ),
    case_(
        "reverse",
        lambda: u.age > 5,
        "users.age > :age_1",
        "users.age > ?",
        "users.age > $1::INTEGER",
        [5],
    ),
    case_(
        "add",
        lambda: u.age + 1,
        "users.age + :age_1",
        "users.age + ?",
        "users.age + $1::INTEGER",
        [1],
    ),
    case_(
        "radd",
        lambda: 1 + u.age,
        ":age_1 + users.age",
        "? + users.age",
        "$1::INTEGER + users.age",
        [1],
    ),
    case_(
        "sub",
        lambda: u.age - 1,
        "users.age - :age_1",
        "users.age - ?",
        "users.age - $1::INTEGER",
        [1],
    ),
    case_(
        "mul",
        lambda: u.age * 2,
        "users.age * :age_1",
        "users.age * ?",
        "users.age * $1::INTEGER",
        [2],
    ),
    case_(
        "mod",
        lambda: u.age % 3,
        "users.age % :age_1",
        "users.age % ?",
        "users.age % $1::INTEGER",
        [3],
    ),
    case_(
        "neg",
        lambda: -u.age,
        "-users.age",
        "-users.age",
        "-users.age",
        [],
    ),
    case_(
        "neg_neg",
        lambda: -(-u.age),  # noqa: B002 - SQL negation twice, not a decrement
        "-(-users.age)",
        "-(-users.age)",
        "-(-users.age)",
        [],
    ),
    case_(
        "truediv_int",
        lambda: u.age / 2,
        "users.age / CAST(:age_1 AS NUMERIC)",
        "users.age / CAST(? AS REAL)",
        "users.age / CAST($1::INTEGER AS NUMERIC)",
        [2],
    ),
    case_(
        "truediv_cols",
        lambda: u.age / u.id,
        "users.age / CAST(users.id AS NUMERIC)",
        "users.age / CAST(users.id AS REAL)",
        "users.age / CAST(users.id AS NUMERIC)",
        [],
    ),
    case_(
        "truediv_float",
        lambda: u.score / 2,
        "users.score / :score_1",
        "users.score / ?",
        "users.score / $1::INTEGER",
        [2],
    ),
    case_(
        "floordiv_int",
        lambda: u.age // 2,
        "users.age / :age_1",
        "users.age / ?",
        "users.age / $1::INTEGER",
        [2],
    ),
    case_(
        "floordiv_float",
        lambda: u.score // 2,
        "FLOOR(users.score / :score_1)",
        "FLOOR(users.score / ?)",
        "FLOOR(users.score / $1::INTEGER)",
        [2],
    ),
    case_(
        "concat_plus",
        lambda: u.name + "!",
        "users.name || :name_1",
        "users.name || ?",
        "users.name || $1::VARCHAR",
        ["!"],
    ),
    case_(
        "concat_method",
        lambda: u.name.concat(a.email),
        "users.name || addresses.email",
        "users.name || addresses.email",
        "users.name || addresses.email",
        [],
    ),
    case_(
        "concat_radd",
        lambda: "x" + u.name,
        ":name_1 || users.name",
        "? || users.name",
        "$1::VARCHAR || users.name",
        ["x"],
    ),
    case_(
        "nested_arith",
        lambda: (u.age + 1) * (u.id - 2),
        "(users.age + :age_1) * (users.id - :id_1)",
        "(users.age + ?) * (users.id - ?)",
        "(users.age + $1::INTEGER) * (users.id - $2::INTEGER)",
        [1, 2],
    ),
    case_(
        "assoc",
        lambda: u.age - (u.id - 1),
        "users.age - (users.id - :id_1)",
        "users.age - (users.id - ?)",
        "users.age - (users.id - $1::INTEGER)",
        [1],
    ),
    case_(
        "like",
        lambda: u.name.like("a%"),
        "users.name LIKE :name_1",
        "users.name LIKE ?",
        "users.name LIKE $1::VARCHAR",
        ["a%"],
    ),
    case_(
        "like_escape",
        lambda: u.name.like("a!%%", escape="!"),
        "users.name LIKE :name_1 ESCAPE '!'",
        "users.name LIKE ? ESCAPE '!'",
        "users.name LIKE $1::VARCHAR ESCAPE '!'",
        ["a!%%"],
    ),
    case_(
        "ilike",
        lambda: u.name.ilike("a%"),
        "users.name ILIKE :name_1",
        "lower(users.name) LIKE lower(?)",
        "users.name ILIKE $1::VARCHAR",
        ["a%"],
    ),
    case_(
        "not_like",
        lambda: u.name.not_like("a%"),
        "users.name NOT LIKE :name_1",
        "users.name NOT LIKE ?",
        "users.name NOT LIKE $1::VARCHAR",
        ["a%"],
    ),
    case_(
        "not_ilike",
        lambda: u.name.not_ilike("a%"),
        "users.name NOT ILIKE :name_1",
        "lower(users.name) NOT LIKE lower(?)",
        "users.name NOT ILIKE $1::VARCHAR",
        ["a%"],
    ),
    case_(
        "startswith",
        lambda: u.name.startswith("ab"),
        "users.name LIKE :name_1",
        "users.name LIKE ?",
        "users.name LIKE $1::VARCHAR",
        ["ab%"],
    ),
    case_(
        "endswith",
        lambda: u.name.endswith("ab"),
        "users.name LIKE :name_1",
        "users.name LIKE ?",
        "users.name LIKE $1::VARCHAR",
        ["%ab"],
    ),
    case_(
        "contains",
        lambda: u.name.contains("ab"),
        "users.name LIKE :name_1",
        "users.name LIKE ?",
        "users.name LIKE $1::VARCHAR",
        ["%ab%"],
    ),
    case_(
        "contains_autoescape",
        lambda: u.name.contains("5%_/", autoescape=True),
        "users.name LIKE :name_1 ESCAPE '/'",
        "users.name LIKE ? ESCAPE '/'",
        "users.name LIKE $1::VARCHAR ESCAPE '/'",
        ["%5/%/_//%"],
    ),
    case_(
        "startswith_expr",
        lambda: u.name.startswith(a.email),
        "users.name LIKE addresses.email || :param_1",
        "users.name LIKE addresses.email || ?",
        "users.name LIKE addresses.email || $1::VARCHAR",
        ["%"],
    ),
    case_(
        "in_list",
        lambda: u.id.in_([1, 2, 3]),
        "users.id IN (:id_1, :id_2, :id_3)",
        "users.id IN (?, ?, ?)",
        "users.id IN ($1, $2, $3)",
        [1, 2, 3],
    ),
    case_(
        "not_in_list",
        lambda: u.id.not_in([1, 2]),
        "users.id NOT IN (:id_1, :id_2)",
        "users.id NOT IN (?, ?)",
        "users.id NOT IN ($1, $2)",
        [1, 2],
    ),
    case_(
        "in_empty",
        lambda: u.id.in_([]),
        "users.id IN (SELECT 1 WHERE 1 != 1)",
        "users.id IN ()",
        "users.id IN (SELECT CAST(NULL AS INTEGER) WHERE 1 != 1)",
        [],
    ),
    case_(
        "not_in_empty",
        lambda: u.id.not_in([]),
        "users.id NOT IN (SELECT 1 WHERE 1 != 1)",
        "users.id NOT IN ()",
        "users.id NOT IN (SELECT CAST(NULL AS INTEGER) WHERE 1 != 1)",
        [],
    ),
    case_(
        "in_str_empty",
        lambda: u.name.in_([]),
        "users.name IN (SELECT 1 WHERE 1 != 1)",
        "users.name IN ()",
        "users.name IN (SELECT CAST(NULL AS VARCHAR(50)) WHERE 1 != 1)",
        [],
    ),
    case_(
        "in_subquery",
        lambda: u.id.in_(select(a.user_id)),
        "users.id IN (SELECT addresses.user_id FROM addresses)",
        "users.id IN (SELECT addresses.user_id FROM addresses)",
        "users.id IN (SELECT addresses.user_id FROM addresses)",
        [],
    ),
    case_(
        "tuple_in",
        lambda: tuple_(u.id, u.name).in_([(1, "a"), (2, "b")]),
        "(users.id, users.name) IN ((:param_1, :param_2), (:param_3, :param_4))",
        "(users.id, users.name) IN ((?, ?), (?, ?))",
        "(users.id, users.name) IN (($1, $2), ($3, $4))",
        [1, "a", 2, "b"],
    ),
    case_(
        "tuple_in_empty",
        lambda: tuple_(u.id, u.name).in_([]),
        "(users.id, users.name) IN (SELECT 1, 1 WHERE 1 != 1)",
        "(users.id, users.name) IN ()",
        "(users.id, users.name) IN "
        "(SELECT CAST(NULL AS INTEGER), CAST(NULL AS VARCHAR(50)) WHERE 1 != 1)",
        [],
    ),
    case_(
        "is_none",
        lambda: u.age.is_(None),
        "users.age IS NULL",
        "users.age IS NULL",
        "users.age IS NULL",
        [],
    ),
    case_(
        "is_not_none",
        lambda: u.age.is_not(None),
        "users.age IS NOT NULL",
        "users.age IS NOT NULL",
        "users.age IS NOT NULL",
        [],
    ),
    case_(
        "is_true",
        lambda: u.active.is_(True),
        "users.active IS true",
        "users.active IS 1",
        "users.active IS true",
        [],
    ),
    case_(
        "is_not_false",
        lambda: u.active.is_not(False),
        "users.active IS NOT false",
        "users.active IS NOT 0",
        "users.active IS NOT false",
        [],
    ),
    case_(
        "between",
        lambda: u.age.between(18, 65),
        "users.age BETWEEN :age_1 AND :age_2",
        "users.age BETWEEN ? AND ?",
        "users.age BETWEEN $1::INTEGER AND $2::INTEGER",
        [18, 65],
    ),
    case_(
        "not_between",
        lambda: ~u.age.between(18, 65),
        "NOT users.age BETWEEN :age_1 AND :age_2",
        "NOT users.age BETWEEN ? AND ?",
        "NOT users.age BETWEEN $1::INTEGER AND $2::INTEGER",
        [18, 65],
    ),
    case_(
        "and",
        lambda: and_(u.id == 1, u.age > 2),
        "users.id = :id_1 AND users.age > :age_1",
        "users.id = ? AND users.age > ?",
        "users.id = $1::INTEGER AND users.age > $2::INTEGER",
        [1, 2],
    ),
    case_(
        "or",
        lambda: or_(u.id == 1, u.age > 2),
        "users.id = :id_1 OR users.age > :age_1",
        "users.id = ? OR users.age > ?",
        "users.id = $1::INTEGER OR users.age > $2::INTEGER",
        [1, 2],
    ),
    case_(
        "and_or",
        lambda: and_(u.id == 1, or_(u.age > 2, u.age < 0)),
        "users.id = :id_1 AND (users.age > :age_1 OR users.age < :age_2)",
        "users.id = ? AND (users.age > ? OR users.age < ?)",
        "users.id = $1::INTEGER AND (users.age > $2::INTEGER OR users.age < $3::INTEGER)",
        [1, 2, 0],
    ),
    case_(
        "or_and",
        lambda: or_(and_(u.id == 1, u.age > 2), u.age < 0),
        "users.id = :id_1 AND users.age > :age_1 OR users.age < :age_2",
        "users.id = ? AND users.age > ? OR users.age < ?",
        "users.id = $1::INTEGER AND users.age > $2::INTEGER OR users.age < $3::INTEGER",
        [1, 2, 0],
    ),
    case_(
        "flatten",
        lambda: and_(and_(u.id == 1, u.age > 2), and_(u.age < 9, u.name == "x")),
        "users.id = :id_1 AND users.age > :age_1 AND users.age < :age_2 AND users.name = :name_1",
        "users.id = ? AND users.age > ? AND users.age < ? AND users.name = ?",
        "users.id = $1::INTEGER AND users.age > $2::INTEGER AND users.age < $3::INTEGER "
        "AND users.name = $4::VARCHAR",
        [1, 2, 9, "x"],
    ),
    case_(
        "and_true",
        lambda: and_(true(), u.id == 1),
        "users.id = :id_1",
        "users.id = ?",
        "users.id = $1::INTEGER",
        [1],
    ),
    case_(
        "and_false",
        lambda: and_(u.id == 1, false()),
        "false",
        "0",
        "false",
        [],
    ),
    case_(
        "or_true",
        lambda: or_(u.id == 1, true()),
        "true",
        "1",
        "true",
        [],
    ),
    case_(
        "bitops",
        lambda: (u.id == 1) & ((u.age > 2) | (u.age < 0)),
        "users.id = :id_1 AND (users.age > :age_1 OR users.age < :age_2)",
        "users.id = ? AND (users.age > ? OR users.age < ?)",
        "users.id = $1::INTEGER AND (users.age > $2::INTEGER OR users.age < $3::INTEGER)",
        [1, 2, 0],
    ),
    case_(
        "not_eq",
        lambda: not_(u.id == 1),
        "users.id != :id_1",
        "users.id != ?",
        "users.id != $1::INTEGER",
        [1],
    ),
    case_(
        "not_lt",
        lambda: not_(u.age < 5),
        "users.age >= :age_1",
        "users.age >= ?",
        "users.age >= $1::INTEGER",
        [5],
    ),
    case_(
        "not_in",
        lambda: not_(u.id.in_([1])),
        "users.id NOT IN (:id_1)",
        "users.id NOT IN (?)",
        "users.id NOT IN ($1)",
        [1],
    ),
    case_(
        "not_like_flip",
        lambda: ~u.name.like("a"),
        "users.name NOT LIKE :name_1",
        "users.name NOT LIKE ?",
        "users.name NOT LIKE $1::VARCHAR",
        ["a"],
    ),
    case_(
        "not_is",
        lambda: ~u.age.is_(None),
        "users.age IS NOT NULL",
        "users.age IS NOT NULL",
        "users.age IS NOT NULL",
        [],
    ),
    case_(
        "not_and",
        lambda: not_(and_(u.id == 1, u.age > 2)),
        "NOT (users.id = :id_1 AND users.age > :age_1)",
        "NOT (users.id = ? AND users.age > ?)",
        "NOT (users.id = $1::INTEGER AND users.age > $2::INTEGER)",
        [1, 2],
    ),
    case_(
        "not_not",
        lambda: not_(not_(and_(u.id == 1, u.age > 2))),
        "(users.id = :id_1 AND users.age > :age_1)",
        "(users.id = ? AND users.age > ?)",
        "(users.id = $1::INTEGER AND users.age > $2::INTEGER)",
        [1, 2],
    ),
    case_(
        "not_or",
        lambda: ~or_(u.id == 1, u.age > 2),
        "NOT (users.id = :id_1 OR users.age > :age_1)",
        "NOT (users.id = ? OR users.age > ?)",
        "NOT (users.id = $1::INTEGER OR users.age > $2::INTEGER)",
        [1, 2],
    ),
    case_(
        "not_bool_col",
        lambda: not_(u.active),
        "NOT users.active",
        "NOT users.active",
        "NOT users.active",
        [],
    ),
    case_(
        "not_fn",
        lambda: not_(func.f(u.id)),
        "NOT f(users.id)",
        "NOT f(users.id)",
        "NOT f(users.id)",
        [],
    ),
    case_(
        "distinct",
        lambda: distinct(u.name),
        "DISTINCT users.name",
        "DISTINCT users.name",
        "DISTINCT users.name",
        [],
    ),
    case_(
        "asc",
        lambda: asc(u.name),
        "users.name ASC",
        "users.name ASC",
        "users.name ASC",
        [],
    ),
    case_(
        "desc",
        lambda: u.name.desc(),
        "users.name DESC",
        "users.name DESC",
        "users.name DESC",
        [],
    ),
    case_(
        "nulls_first",
        lambda: u.age.asc().nulls_first(),
        "users.age ASC NULLS FIRST",
        "users.age ASC NULLS FIRST",
        "users.age ASC NULLS FIRST",
        [],
    ),
    case_(
        "nulls_last",
        lambda: nulls_last(desc(u.age)),
        "users.age DESC NULLS LAST",
        "users.age DESC NULLS LAST",
        "users.age DESC NULLS LAST",
        [],
    ),
    case_(
        "label",
        lambda: u.age.label("years"),
        "users.age",
        "users.age",
        "users.age",
        [],
    ),
    case_(
        "cast",
        lambda: cast(u.age, String),
        "CAST(users.age AS VARCHAR)",
        "CAST(users.age AS VARCHAR)",
        "CAST(users.age AS VARCHAR)",
        [],
    ),
    case_(
        "cast_numeric",
        lambda: cast(u.score, Numeric(10, 2)),
        "CAST(users.score AS NUMERIC(10, 2))",
        "CAST(users.score AS NUMERIC(10, 2))",
        "CAST(users.score AS NUMERIC(10, 2))",
        [],
    ),
    case_(
        "cast_value",
        lambda: cast(5, BigInteger),
        "CAST(:param_1 AS BIGINT)",
        "CAST(? AS BIGINT)",
        "CAST($1::BIGINT AS BIGINT)",
        [5],
    ),
    case_(
        "collate",
        lambda: u.name.collate("C"),
        'users.name COLLATE "C"',
        'users.name COLLATE "C"',
        'users.name COLLATE "C"',
        [],
    ),
    case_(
        "collate_fn",
        lambda: collate(u.name, "NOCASE"),
        'users.name COLLATE "NOCASE"',
        'users.name COLLATE "NOCASE"',
        'users.name COLLATE "NOCASE"',
        [],
    ),
    case_(
        "count_star",
        lambda: func.count(),
        "count(*)",
        "count(*)",
        "count(*)",
        [],
    ),
    case_(
        "count",
        lambda: func.count(u.id),
        "count(users.id)",
        "count(users.id)",
        "count(users.id)",
        [],
    ),
    case_(
        "sum",
        lambda: func.sum(u.age),
        "sum(users.age)",
        "sum(users.age)",
        "sum(users.age)",
        [],
    ),
    case_(
        "avg",
        lambda: func.avg(u.age),
        "avg(users.age)",
        "avg(users.age)",
        "avg(users.age)",
        [],
    ),
    case_(
        "min",
        lambda: func.min(u.age),
        "min(users.age)",
        "min(users.age)",
        "min(users.age)",
        [],
    ),
    case_(
        "max",
        lambda: func.max(u.name),
        "max(users.name)",
        "max(users.name)",
        "max(users.name)",
        [],
    ),
    case_(
        "coalesce",
        lambda: func.coalesce(u.age, 0),
        "coalesce(users.age, :param_1)",
        "coalesce(users.age, ?)",
        "coalesce(users.age, $1::INTEGER)",
        [0],
    ),
    case_(
        "lower",
        lambda: func.lower(u.name),
        "lower(users.name)",
        "lower(users.name)",
        "lower(users.name)",
        [],
    ),
    case_(
        "upper",
        lambda: func.upper(u.name),
        "upper(users.name)",
        "upper(users.name)",
        "upper(users.name)",
        [],
    ),
    case_(
        "length",
        lambda: func.length(u.name),
        "length(users.name)",
        "length(users.name)",
        "length(users.name)",
        [],
    ),
    case_(
        "now",
        lambda: func.now(),
        "now()",
        "CURRENT_TIMESTAMP",
        "now()",
        [],
    ),
    case_(
        "generic",
        lambda: func.my_func(u.id, "x"),
        "my_func(users.id, :param_1)",
        "my_func(users.id, ?)",
        "my_func(users.id, $1::VARCHAR)",
        ["x"],
    ),
    case_(
        "dotted",
        lambda: func.pkg.fn(u.id),
        "pkg.fn(users.id)",
        "pkg.fn(users.id)",
        "pkg.fn(users.id)",
        [],
    ),
    case_(
        "count_distinct",
        lambda: func.count(distinct(u.name)),
        "count(DISTINCT users.name)",
        "count(DISTINCT users.name)",
        "count(DISTINCT users.name)",
        [],
    ),
    case_(
        "case_searched",
        lambda: case((u.age < 18, "minor"), (u.age < 65, "adult"), else_="senior"),
        "CASE WHEN users.age < :age_1 THEN :param_1 WHEN users.age < :age_2 THEN :param_2 "
        "ELSE :param_3 END",
        "CASE WHEN users.age < ? THEN ? WHEN users.age < ? THEN ? ELSE ? END",
        "CASE WHEN users.age < $1::INTEGER THEN $2::VARCHAR WHEN users.age < $3::INTEGER "
        "THEN $4::VARCHAR ELSE $5::VARCHAR END",
        [18, "minor", 65, "adult", "senior"],
    ),
    case_(
        "case_value",
        lambda: case({1: "one", 2: "two"}, value=u.id),
        "CASE users.id WHEN :id_1 THEN :param_1 WHEN :id_2 THEN :param_2 END",
        "CASE users.id WHEN ? THEN ? WHEN ? THEN ? END",
        "CASE users.id WHEN $1::INTEGER THEN $2::VARCHAR WHEN $3::INTEGER THEN $4::VARCHAR END",
        [1, "one", 2, "two"],
    ),
    case_(
        "case_no_else",
        lambda: case((u.age > 1, u.name)),
        "CASE WHEN users.age > :age_1 THEN users.name END",
        "CASE WHEN users.age > ? THEN users.name END",
        "CASE WHEN users.age > $1::INTEGER THEN users.name END",
        [1],
    ),
    case_(
        "literal_int",
        lambda: literal(5),
        ":param_1",
        "?",
        "$1::INTEGER",
        [5],
    ),
    case_(
        "literal_str",
        lambda: literal("x"),
        ":param_1",
        "?",
        "$1::VARCHAR",
        ["x"],
    ),
    case_(
        "literal_typed",
        lambda: literal(5, BigInteger),
        ":param_1",
        "?",
        "$1::BIGINT",
        [5],
    ),
    case_(
        "literal_date",
        lambda: literal(datetime.date(2024, 1, 2)),
        ":param_1",
        "?",
        "$1::DATE",
        ["2024-01-02"],
        pg_values=[datetime.date(2024, 1, 2)],
    ),
    case_(
        "bindparam_named",
        lambda: u.id == bindparam("uid"),
        "users.id = :uid",
        "users.id = ?",
        "users.id = $1::INTEGER",
        [3],
        params={"uid": 3},
    ),
    case_(
        "bindparam_default",
        lambda: u.id == bindparam("uid", 7),
        "users.id = :uid",
        "users.id = ?",
        "users.id = $1::INTEGER",
        [3],
        params={"uid": 3},
    ),
    case_(
        "bindparam_typed",
        lambda: bindparam("x", type_=Integer) + u.age,
        ":x + users.age",
        "? + users.age",
        "$1::INTEGER + users.age",
        [1],
        params={"x": 1},
    ),
    case_(
        "null",
        lambda: null(),
        "NULL",
        "NULL",
        "NULL",
        [],
    ),
    case_(
        "true",
        lambda: true(),
        "true",
        "1",
        "true",
        [],
    ),
    case_(
        "false",
        lambda: false(),
        "false",
        "0",
        "false",
        [],
    ),
    case_(
        "is_distinct",
        lambda: u.age.is_distinct_from(5),
        "users.age IS DISTINCT FROM :age_1",
        "users.age IS NOT ?",
        "users.age IS DISTINCT FROM $1::INTEGER",
        [5],
    ),
    case_(
        "is_not_distinct",
        lambda: u.age.is_not_distinct_from(None),
        "users.age IS NOT DISTINCT FROM NULL",
        "users.age IS NULL",
        "users.age IS NOT DISTINCT FROM NULL",
        [],
    ),
]


@pytest.mark.parametrize("case", EXPRESSIONS)
def test_expression(case: Case) -> None:
    expression = case.build()
    assert str(expression) == case.generic
    assert sqlite(expression, case.params) == (case.sqlite, case.values)
    expected_pg_values = case.values if case.pg_values is None else case.pg_values
    assert pg(expression, case.params) == (case.postgresql, expected_pg_values)


def test_label_and_expressions_in_the_columns_clause() -> None:
    stmt = select(
        u.age.label("years"),
        distinct(u.name),
        cast(u.age, String),
        func.count(),
        func.count(a.id),
        literal(1).label("one"),
    ).select_from(users.join(addresses))
    assert str(stmt) == (
        "SELECT users.age AS years, DISTINCT users.name AS anon, CAST(users.age AS VARCHAR) "
        "AS age, count(*) AS count, count(addresses.id) AS count_1, :param_1 AS one "
        "FROM users JOIN addresses ON users.id = addresses.user_id"
    )
    assert compiled_for(SQLiteDialect(), stmt).result_keys == (
        "years",
        "anon",
        "age",
        "count",
        "count_1",
        "one",
    )


def test_same_column_name_from_two_tables_is_deduplicated() -> None:
    stmt = select(u.id, a.id, a.user_id).join_from(users, addresses)
    assert sqlite(stmt)[0] == (
        "SELECT users.id, addresses.id AS id_1, addresses.user_id "
        "FROM users JOIN addresses ON users.id = addresses.user_id"
    )
    assert compiled_for(SQLiteDialect(), stmt).result_keys == ("id", "id_1", "user_id")


# -- SELECT ------------------------------------------------------------------------


def test_select_where_order_limit_offset() -> None:
    stmt = (
        select(u.id, u.name)
        .where(u.age > 18, u.name.like("a%"))
        .order_by(u.name.desc(), u.id)
        .limit(10)
        .offset(20)
    )
    assert str(stmt) == (
        "SELECT users.id, users.name FROM users WHERE users.age > :age_1 AND users.name LIKE "
        ":name_1 ORDER BY users.name DESC, users.id LIMIT :param_1 OFFSET :param_2"
    )
    assert sqlite(stmt) == (
        "SELECT users.id, users.name FROM users WHERE users.age > ? AND users.name LIKE ? "
        "ORDER BY users.name DESC, users.id LIMIT ? OFFSET ?",
        [18, "a%", 10, 20],
    )
    assert pg(stmt) == (
        "SELECT users.id, users.name FROM users WHERE users.age > $1::INTEGER AND users.name "
        "LIKE $2::VARCHAR ORDER BY users.name DESC, users.id LIMIT $3::INTEGER OFFSET $4::INTEGER",
        [18, "a%", 10, 20],
    )


def test_offset_without_limit() -> None:
    # SQLite has no OFFSET without LIMIT; -1 means "no limit" there.
    stmt = select(u.id).offset(5)
    assert sqlite(stmt) == ("SELECT users.id FROM users LIMIT -1 OFFSET ?", [5])
    assert pg(stmt) == ("SELECT users.id FROM users OFFSET $1::INTEGER", [5])


def test_where_calls_accumulate_with_and() -> None:
    stmt = select(u.id).where(or_(u.id == 1, u.id == 2)).where(u.age > 3)
    assert sqlite(stmt)[0] == (
        "SELECT users.id FROM users WHERE (users.id = ? OR users.id = ?) AND users.age > ?"
    )


def test_group_by_having_and_order_by_label_name() -> None:
    n = func.count(a.id).label("n")
    stmt = (
        select(u.name, n)
        .join(addresses)
        .group_by(u.name)
        .having(func.count(a.id) > 1)
        .order_by(desc("n"))
    )
    assert sqlite(stmt) == (
        "SELECT users.name, count(addresses.id) AS n FROM users JOIN addresses ON "
        "users.id = addresses.user_id GROUP BY users.name HAVING count(addresses.id) > ? "
        "ORDER BY n DESC",
        [1],
    )


def test_distinct() -> None:
    stmt = select(u.name).distinct()
    assert sqlite(stmt)[0] == "SELECT DISTINCT users.name FROM users"
    assert pg(stmt)[0] == "SELECT DISTINCT users.name FROM users"


def test_distinct_on_is_postgresql_only() -> None:
    stmt = select(u.name, u.age).distinct(u.name).order_by(u.name, u.age.desc())
    assert pg(stmt)[0] == (
        "SELECT DISTINCT ON (users.name) users.name, users.age FROM users "
        "ORDER BY users.name, users.age DESC"
    )
    with pytest.raises(exc.CompileError, match="DISTINCT ON is PostgreSQL-only"):
        sqlite(stmt)


@pytest.mark.parametrize(
    ("options", "clause"),
    [
        ({}, " FOR UPDATE"),
        ({"nowait": True}, " FOR UPDATE NOWAIT"),
        ({"skip_locked": True}, " FOR UPDATE SKIP LOCKED"),
        ({"read": True}, " FOR SHARE"),
        ({"of": users, "skip_locked": True}, " FOR UPDATE OF users SKIP LOCKED"),
        ({"of": [u.id, a.id]}, " FOR UPDATE OF users, addresses"),
        ({"key_share": True}, " FOR NO KEY UPDATE"),
        ({"key_share": True, "read": True}, " FOR KEY SHARE"),
    ],
)
def test_with_for_update(options: dict[str, Any], clause: str) -> None:
    stmt = select(u.id, a.id).join_from(users, addresses).with_for_update(**options)
    base = "SELECT users.id, addresses.id AS id_1 FROM users JOIN addresses ON users.id = "
    base += "addresses.user_id"
    assert pg(stmt)[0] == base + clause
    # SQLite locks the whole database per transaction: no row-lock clause at all.
    assert sqlite(stmt)[0] == base


def test_nowait_and_skip_locked_exclude_each_other() -> None:
    with pytest.raises(exc.ArgumentError, match="nowait and skip_locked"):
        select(u.id).with_for_update(nowait=True, skip_locked=True)


def test_joins_infer_on_from_foreign_keys() -> None:
    stmt = select(u.name, a.email, orders.c.total).join_from(users, addresses).outerjoin(orders)
    expected = (
        "SELECT users.name, addresses.email, orders.total FROM users "
        "JOIN addresses ON users.id = addresses.user_id "
        "LEFT OUTER JOIN orders ON addresses.id = orders.address_id"
    )
    assert str(stmt) == expected
    assert sqlite(stmt)[0] == expected
    assert pg(stmt)[0] == expected


def test_full_outer_join_with_inferred_on() -> None:
    stmt = select(u.name, a.email).outerjoin(addresses, full=True)
    assert pg(stmt)[0] == (
        "SELECT users.name, addresses.email FROM users "
        "FULL OUTER JOIN addresses ON users.id = addresses.user_id"
    )


def test_join_with_explicit_on_and_full_outer_join() -> None:
    stmt = select(u.name, a.email).join(addresses, a.email == u.name, full=True)
    assert sqlite(stmt)[0] == (
        "SELECT users.name, addresses.email FROM users "
        "FULL OUTER JOIN addresses ON addresses.email = users.name"
    )


def test_join_in_the_reverse_direction_of_the_foreign_key() -> None:
    stmt = select(a.email, u.name).join(users)
    assert sqlite(stmt)[0] == (
        "SELECT addresses.email, users.name FROM addresses JOIN users ON addresses.user_id = "
        "users.id"
    )


def test_join_target_reachable_from_two_froms_is_an_error() -> None:
    # As in SQLAlchemy: orders and users can both join addresses; say which.
    with pytest.raises(exc.ArgumentError, match="use join_from"):
        select(u.name, a.email, orders.c.total).join(addresses)


def test_select_from_a_join_object() -> None:
    stmt = select(u.name).select_from(users.outerjoin(addresses)).where(a.email == "x")
    assert sqlite(stmt) == (
        "SELECT users.name FROM users LEFT OUTER JOIN addresses ON users.id = "
        "addresses.user_id WHERE addresses.email = ?",
        ["x"],
    )


def test_join_from_picks_the_left_side() -> None:
    stmt = select(u.name, orders.c.total).join_from(users, addresses).join(orders)
    assert sqlite(stmt)[0] == (
        "SELECT users.name, orders.total FROM users JOIN addresses ON users.id = "
        "addresses.user_id JOIN orders ON addresses.id = orders.address_id"
    )


def test_tables_without_join_are_a_cross_product() -> None:
    stmt = select(u.id, a.id).where(a.user_id == u.id)
    assert sqlite(stmt)[0] == (
        "SELECT users.id, addresses.id AS id_1 FROM users, addresses "
        "WHERE addresses.user_id = users.id"
    )


def test_self_join_through_an_alias() -> None:
    parent = nodes.alias("parent")
    stmt = (
        select(nodes.c.name, parent.c.name.label("parent_name"))
        .join(parent, nodes.c.parent_id == parent.c.id)
        .where(parent.c.name == "root")
    )
    assert sqlite(stmt) == (
        "SELECT nodes.name, parent.name AS parent_name FROM nodes "
        "JOIN nodes AS parent ON nodes.parent_id = parent.id WHERE parent.name = ?",
        ["root"],
    )
    assert compiled_for(SQLiteDialect(), stmt).result_keys == ("name", "parent_name")


def test_subquery_joined_by_foreign_key_through_its_columns() -> None:
    counts = (
        select(a.user_id, func.count().label("n"))
        .where(a.email.like("%@example.com"))
        .group_by(a.user_id)
        .subquery("counts")
    )
    stmt = select(u.name, counts.c.n).join(counts).where(counts.c.n > 1)
    assert sqlite(stmt) == (
        "SELECT users.name, counts.n FROM users JOIN (SELECT addresses.user_id, count(*) AS n "
        "FROM addresses WHERE addresses.email LIKE ? GROUP BY addresses.user_id) AS counts "
        "ON users.id = counts.user_id WHERE counts.n > ?",
        ["%@example.com", 1],
    )
    assert pg(stmt) == (
        "SELECT users.name, counts.n FROM users JOIN (SELECT addresses.user_id, count(*) AS n "
        "FROM addresses WHERE addresses.email LIKE $1::VARCHAR GROUP BY addresses.user_id) "
        "AS counts "
        "ON users.id = counts.user_id WHERE counts.n > $2::INTEGER",
        ["%@example.com", 1],
    )


def test_subquery_only_named_by_its_columns_keeps_its_values() -> None:
    adults = select(u.id, u.name).where(u.age >= 18).subquery("adults")
    stmt = select(adults.c.name).where(adults.c.id > 100)
    assert sqlite(stmt) == (
        "SELECT adults.name FROM (SELECT users.id, users.name FROM users WHERE users.age >= ?) "
        "AS adults WHERE adults.id > ?",
        [18, 100],
    )


def test_anonymous_subquery_gets_a_generated_name() -> None:
    sub = select(u.id).subquery()
    sql = sqlite(select(sub.c.id))[0]
    assert sql == f"SELECT {sub.name}.id FROM (SELECT users.id FROM users) AS {sub.name}"
    assert sub.name.startswith("anon_")


def test_subquery_in_where_in() -> None:
    stmt = select(u.name).where(u.id.in_(select(a.user_id).where(a.email == "x")))
    assert pg(stmt) == (
        "SELECT users.name FROM users WHERE users.id IN "
        "(SELECT addresses.user_id FROM addresses WHERE addresses.email = $1::VARCHAR)",
        ["x"],
    )


def test_scalar_subquery_correlates_automatically() -> None:
    count = select(func.count(a.id)).where(a.user_id == u.id).scalar_subquery()
    stmt = select(u.name, count.label("n")).where(u.age > 1)
    assert sqlite(stmt) == (
        "SELECT users.name, (SELECT count(addresses.id) AS count FROM addresses "
        "WHERE addresses.user_id = users.id) AS n FROM users WHERE users.age > ?",
        [1],
    )


def test_correlate_none_keeps_every_from() -> None:
    count = select(func.count(a.id)).where(a.user_id == u.id).correlate(None).scalar_subquery()
    stmt = select(u.name, count.label("n"))
    assert sqlite(stmt)[0] == (
        "SELECT users.name, (SELECT count(addresses.id) AS count FROM addresses, users "
        "WHERE addresses.user_id = users.id) AS n FROM users"
    )


def test_uncorrelated_subquery_on_the_same_table() -> None:
    total = select(func.max(u.age)).correlate(None).scalar_subquery()
    stmt = select(u.name).where(u.age == total)
    assert sqlite(stmt)[0] == (
        "SELECT users.name FROM users WHERE users.age = (SELECT max(users.age) AS max FROM users)"
    )


def test_subquery_that_would_lose_all_froms_to_correlation_is_an_error() -> None:
    stmt = select(u.name).where(exists().where(u.id > 1))
    with pytest.raises(exc.CompileError, match=r"correlate\(None\)"):
        sqlite(stmt)


def test_exists_correlates() -> None:
    stmt = select(u.name).where(exists().where(a.user_id == u.id))
    assert sqlite(stmt)[0] == (
        'SELECT users.name FROM users WHERE EXISTS (SELECT 1 AS "1" FROM addresses '
        "WHERE addresses.user_id = users.id)"
    )
    negated = select(u.name).where(~select(a.id).where(a.user_id == u.id).exists())
    assert pg(negated)[0] == (
        "SELECT users.name FROM users WHERE NOT EXISTS (SELECT addresses.id FROM addresses "
        "WHERE addresses.user_id = users.id)"
    )


def test_cte() -> None:
    old = select(u.id).where(u.age > 30).cte("old")
    stmt = select(a.email).where(a.email != "z", a.user_id.in_(select(old.c.id)))
    # The CTE's parameter comes first because its text does.
    assert sqlite(stmt) == (
        "WITH old AS (SELECT users.id FROM users WHERE users.age > ?) SELECT addresses.email "
        "FROM addresses WHERE addresses.email != ? AND addresses.user_id IN "
        "(SELECT old.id FROM old)",
        [30, "z"],
    )
    assert pg(stmt) == (
        "WITH old AS (SELECT users.id FROM users WHERE users.age > $1::INTEGER) "
        "SELECT addresses.email FROM addresses WHERE addresses.email != $2::VARCHAR AND "
        "addresses.user_id IN (SELECT old.id FROM old)",
        [30, "z"],
    )


def test_cte_joined_and_selected_from() -> None:
    totals = select(a.user_id, func.count().label("n")).group_by(a.user_id).cte("totals")
    stmt = select(u.name, totals.c.n).join(totals, totals.c.user_id == u.id)
    assert sqlite(stmt)[0] == (
        "WITH totals AS (SELECT addresses.user_id, count(*) AS n FROM addresses GROUP BY "
        "addresses.user_id) SELECT users.name, totals.n FROM users JOIN totals ON "
        "totals.user_id = users.id"
    )


def test_two_ctes_keep_their_order_and_parameters() -> None:
    first = select(u.id).where(u.age > 1).cte("first")
    second = select(a.user_id).where(a.email == "e").cte("second")
    stmt = select(first.c.id).where(first.c.id.in_(select(second.c.user_id)), first.c.id < 9)
    assert sqlite(stmt) == (
        'WITH "first" AS (SELECT users.id FROM users WHERE users.age > ?), second AS '
        "(SELECT addresses.user_id FROM addresses WHERE addresses.email = ?) "
        'SELECT "first".id FROM "first" WHERE "first".id IN (SELECT second.user_id FROM '
        'second) AND "first".id < ?',
        [1, "e", 9],
    )


def test_recursive_cte() -> None:
    tree = select(nodes.c.id, nodes.c.name).where(nodes.c.id == 1).cte("tree", recursive=True)
    tree = tree.union_all(
        select(nodes.c.id, nodes.c.name).join(tree, nodes.c.parent_id == tree.c.id)
    )
    stmt = select(tree.c.name).order_by(tree.c.id)
    expected = (
        "WITH RECURSIVE tree (id, name) AS (SELECT nodes.id, nodes.name FROM nodes WHERE "
        "nodes.id = {} UNION ALL SELECT nodes.id, nodes.name FROM nodes JOIN tree ON "
        "nodes.parent_id = tree.id) SELECT tree.name FROM tree ORDER BY tree.id"
    )
    assert sqlite(stmt) == (expected.format("?"), [1])
    assert pg(stmt) == (expected.format("$1::INTEGER"), [1])


def test_recursive_cte_referenced_through_an_alias() -> None:
    tree = select(nodes.c.id).where(nodes.c.parent_id.is_(None)).cte("tree", recursive=True)
    prior = tree.alias("prior")
    tree = tree.union_all(select(nodes.c.id).join(prior, nodes.c.parent_id == prior.c.id))
    assert sqlite(select(tree.c.id))[0] == (
        "WITH RECURSIVE tree (id) AS (SELECT nodes.id FROM nodes WHERE nodes.parent_id IS NULL "
        "UNION ALL SELECT nodes.id FROM nodes JOIN tree AS prior ON nodes.parent_id = prior.id) "
        "SELECT tree.id FROM tree"
    )


def test_compound_selects() -> None:
    s1 = select(u.id).where(u.age > 1)
    s2 = select(a.user_id).where(a.id < 5)
    for build, keyword in [
        (union, "UNION"),
        (union_all, "UNION ALL"),
        (intersect, "INTERSECT"),
        (except_, "EXCEPT"),
    ]:
        assert sqlite(build(s1, s2)) == (
            f"SELECT users.id FROM users WHERE users.age > ? {keyword} "
            "SELECT addresses.user_id FROM addresses WHERE addresses.id < ?",
            [1, 5],
        )
    assert sqlite(s1.except_all(s2))[0].count(" EXCEPT ALL ") == 1
    assert sqlite(s1.intersect_all(s2))[0].count(" INTERSECT ALL ") == 1


def test_compound_order_by_and_limit_apply_to_the_whole() -> None:
    stmt = union_all(select(u.id, u.name), select(a.id, a.email)).order_by("id").limit(2)
    assert pg(stmt) == (
        "SELECT users.id, users.name FROM users UNION ALL SELECT addresses.id, addresses.email "
        "FROM addresses ORDER BY id LIMIT $1::INTEGER",
        [2],
    )
    assert compiled_for(PGDialect(), stmt).result_keys == ("id", "name")


def test_compound_member_with_its_own_limit() -> None:
    stmt = union(select(u.id), select(a.user_id).order_by(a.id).limit(2))
    assert pg(stmt)[0] == (
        "SELECT users.id FROM users UNION (SELECT addresses.user_id FROM addresses "
        "ORDER BY addresses.id LIMIT $1::INTEGER)"
    )
    # SQLite takes no parentheses there; a subquery keeps the LIMIT to its member.
    assert sqlite(stmt)[0] == (
        "SELECT users.id FROM users UNION SELECT * FROM (SELECT addresses.user_id FROM "
        "addresses ORDER BY addresses.id LIMIT ?)"
    )


def test_nested_compound_keeps_its_grouping() -> None:
    stmt = except_(select(u.id), union(select(a.user_id), select(orders.c.id)))
    assert pg(stmt)[0] == (
        "SELECT users.id FROM users EXCEPT (SELECT addresses.user_id FROM addresses UNION "
        "SELECT orders.id FROM orders)"
    )
    assert sqlite(stmt)[0] == (
        "SELECT users.id FROM users EXCEPT SELECT * FROM (SELECT addresses.user_id FROM "
        "addresses UNION SELECT orders.id FROM orders)"
    )


def test_compound_as_subquery() -> None:
    ids = union(select(u.id), select(a.user_id)).subquery("ids")
    assert sqlite(select(func.count()).select_from(ids))[0] == (
        "SELECT count(*) AS count FROM (SELECT users.id FROM users UNION "
        "SELECT addresses.user_id FROM addresses) AS ids"
    )


def test_select_without_from() -> None:
    assert sqlite(select(func.now()))[0] == "SELECT CURRENT_TIMESTAMP AS now"
    assert pg(select(literal(1).label("one"))) == ("SELECT $1::INTEGER AS one", [1])


# -- identifiers -----------------------------------------------------------------------


def test_reserved_and_mixed_case_names_are_quoted() -> None:
    md = MetaData()
    order = Table(
        "order",
        md,
        Column("id", Integer, primary_key=True),
        Column("user", String),
        Column("UserName", String),
        Column("select", Integer),
    )
    stmt = select(order).where(order.c.user == "x").order_by(order.c.UserName)
    assert pg(stmt) == (
        'SELECT "order".id, "order"."user", "order"."UserName", "order"."select" FROM "order" '
        'WHERE "order"."user" = $1::VARCHAR ORDER BY "order"."UserName"',
        ["x"],
    )
    assert sqlite(insert(order).values(user="u", select=1)) == (
        'INSERT INTO "order" ("user", "select") VALUES (?, ?)',
        ["u", 1],
    )
    assert sqlite(select(u.name.label("Full Name")))[0] == (
        'SELECT users.name AS "Full Name" FROM users'
    )


def test_schema_qualified_table() -> None:
    md = MetaData(schema="app")
    things = Table("things", md, Column("id", Integer, primary_key=True), Column("Name", String))
    assert pg(select(things).where(things.c.id == 1))[0] == (
        'SELECT app.things.id, app.things."Name" FROM app.things WHERE app.things.id = $1::INTEGER'
    )


# -- INSERT ----------------------------------------------------------------------------


def test_insert_values() -> None:
    stmt = insert(users).values(name="ann", age=30)
    assert str(stmt) == "INSERT INTO users (name, age) VALUES (:name_1, :age_1)"
    assert sqlite(stmt) == ("INSERT INTO users (name, age) VALUES (?, ?)", ["ann", 30])
    assert pg(stmt) == (
        "INSERT INTO users (name, age) VALUES ($1::VARCHAR, $2::INTEGER)",
        ["ann", 30],
    )
    compiled = compiled_for(SQLiteDialect(), stmt)
    assert compiled.is_insert
    assert not compiled.returns_rows
    assert compiled.result_keys == ()


def test_insert_columns_follow_table_order() -> None:
    stmt = insert(users).values({"age": 1, "name": "x", u.score: 2.5})
    assert sqlite(stmt) == ("INSERT INTO users (name, age, score) VALUES (?, ?, ?)", ["x", 1, 2.5])


def test_insert_multiple_rows() -> None:
    stmt = insert(users).values([{"name": "a", "age": 1}, {"name": "b"}, {"age": 3, "name": "c"}])
    assert sqlite(stmt) == (
        "INSERT INTO users (name, age) VALUES (?, ?), (?, NULL), (?, ?)",
        ["a", 1, "b", "c", 3],
    )
    assert pg(stmt) == (
        "INSERT INTO users (name, age) VALUES ($1::VARCHAR, $2::INTEGER), ($3::VARCHAR, NULL), "
        "($4::VARCHAR, $5::INTEGER)",
        ["a", 1, "b", "c", 3],
    )


def test_insert_returning() -> None:
    stmt = insert(users).values(name="x").returning(u.id, u.name)
    assert pg(stmt) == (
        "INSERT INTO users (name) VALUES ($1::VARCHAR) RETURNING users.id, users.name",
        ["x"],
    )
    compiled = compiled_for(PGDialect(), stmt)
    assert compiled.returns_rows
    assert compiled.result_keys == ("id", "name")
    everything = insert(addresses).values(email="e").returning(addresses)
    assert sqlite(everything)[0] == (
        "INSERT INTO addresses (email) VALUES (?) RETURNING addresses.id, addresses.user_id, "
        "addresses.email"
    )


def test_insert_default_values() -> None:
    assert sqlite(insert(addresses)) == ("INSERT INTO addresses DEFAULT VALUES", [])


def test_insert_from_select() -> None:
    stmt = insert(addresses).from_select(
        ["user_id", "email"], select(u.id, u.name + "@example.com").where(u.age > 3)
    )
    assert sqlite(stmt) == (
        "INSERT INTO addresses (user_id, email) SELECT users.id, users.name || ? AS anon "
        "FROM users WHERE users.age > ?",
        ["@example.com", 3],
    )


def test_insert_with_execute_time_parameters() -> None:
    stmt = insert(users)
    assert sqlite(stmt, {"name": "x", "age": 2}, ["name", "age"]) == (
        "INSERT INTO users (name, age) VALUES (?, ?)",
        ["x", 2],
    )
    # The column order is the table's, whatever the order of the keys.
    # The server infers these parameters' types from the target columns.
    assert pg(stmt, {"age": 2, "name": "x"}, ["age", "name"]) == (
        "INSERT INTO users (name, age) VALUES ($1, $2)",
        ["x", 2],
    )


@pytest.mark.parametrize(
    ("dialect", "placeholder"), [(SQLiteDialect, "?"), (PGDialect, "$1::VARCHAR")]
)
def test_on_conflict_do_nothing(dialect: type[SQLiteDialect | PGDialect], placeholder: str) -> None:
    stmt = insert(addresses).values(email="e").on_conflict_do_nothing(index_elements=["email"])
    assert run_compile(dialect(), stmt, None, None) == (
        f"INSERT INTO addresses (email) VALUES ({placeholder}) ON CONFLICT (email) DO NOTHING",
        ["e"],
    )
    bare = insert(addresses).values(email="e").on_conflict_do_nothing()
    assert compiled_for(dialect(), bare).sql.endswith(" ON CONFLICT DO NOTHING")


def test_on_conflict_do_update_with_excluded() -> None:
    stmt = insert(users).values(id=1, name="ann", age=30)
    stmt = stmt.on_conflict_do_update(
        index_elements=[u.id],
        set_={"name": stmt.excluded.name, "age": u.age + 1},
        where=u.age < 100,
    )
    assert sqlite(stmt) == (
        "INSERT INTO users (id, name, age) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
        "name = excluded.name, age = users.age + ? WHERE users.age < ?",
        [1, "ann", 30, 1, 100],
    )
    assert pg(stmt) == (
        "INSERT INTO users (id, name, age) VALUES ($1::INTEGER, $2::VARCHAR, $3::INTEGER) "
        "ON CONFLICT "
        "(id) DO UPDATE SET name = excluded.name, age = users.age + $4::INTEGER "
        "WHERE users.age < $5::INTEGER",
        [1, "ann", 30, 1, 100],
    )


def test_on_conflict_constraint_is_postgresql_only() -> None:
    stmt = insert(users).values(id=1, name="x").on_conflict_do_nothing(constraint="users_pkey")
    assert pg(stmt)[0] == (
        "INSERT INTO users (id, name) VALUES ($1::INTEGER, $2::VARCHAR) ON CONFLICT ON "
        "CONSTRAINT "
        "users_pkey DO NOTHING"
    )
    with pytest.raises(exc.CompileError, match="can't name a constraint"):
        sqlite(stmt)


def test_on_conflict_partial_index_predicate_is_inlined() -> None:
    # A partial unique index is matched by its predicate, which can't be a parameter.
    stmt = (
        insert(users)
        .values(id=1, name="x")
        .on_conflict_do_update(
            index_elements=["name"], index_where=u.active.is_(True) & (u.age > 17), set_={"age": 0}
        )
    )
    assert pg(stmt) == (
        "INSERT INTO users (id, name) VALUES ($1::INTEGER, $2::VARCHAR) ON CONFLICT (name) "
        "WHERE "
        "active IS true AND age > 17 DO UPDATE SET age = $3::INTEGER",
        [1, "x", 0],
    )
    assert sqlite(stmt)[0] == (
        "INSERT INTO users (id, name) VALUES (?, ?) ON CONFLICT (name) WHERE active IS 1 AND "
        "age > 17 DO UPDATE SET age = ?"
    )


def test_on_conflict_do_update_needs_a_target_and_values() -> None:
    with pytest.raises(exc.ArgumentError, match="index_elements"):
        insert(users).values(id=1, name="x").on_conflict_do_update(set_={"age": 1})
    with pytest.raises(exc.ArgumentError, match="set_="):
        insert(users).values(id=1, name="x").on_conflict_do_update(index_elements=["id"])


# -- UPDATE and DELETE ---------------------------------------------------------------------


def test_update() -> None:
    stmt = update(users).values(name="z", age=u.age + 1).where(u.id == 7)
    assert str(stmt) == (
        "UPDATE users SET name = :name_1, age = users.age + :age_1 WHERE users.id = :id_1"
    )
    assert sqlite(stmt) == (
        "UPDATE users SET name = ?, age = users.age + ? WHERE users.id = ?",
        ["z", 1, 7],
    )
    assert pg(stmt) == (
        "UPDATE users SET name = $1::VARCHAR, age = users.age + $2::INTEGER WHERE users.id = "
        "$3::INTEGER",
        ["z", 1, 7],
    )
    assert compiled_for(PGDialect(), stmt).is_update


def test_update_returning() -> None:
    stmt = update(users).values(name="z").where(u.id == 1).returning(u.id, u.name)
    assert sqlite(stmt) == (
        "UPDATE users SET name = ? WHERE users.id = ? RETURNING users.id, users.name",
        ["z", 1],
    )
    assert compiled_for(SQLiteDialect(), stmt).result_keys == ("id", "name")


def test_update_with_correlated_subquery_value() -> None:
    count = select(func.count(a.id)).where(a.user_id == u.id).scalar_subquery()
    stmt = update(users).values(age=count).where(u.name != "admin")
    assert sqlite(stmt) == (
        "UPDATE users SET age = (SELECT count(addresses.id) AS count FROM addresses WHERE "
        "addresses.user_id = users.id) WHERE users.name != ?",
        ["admin"],
    )


def test_update_with_execute_time_parameters() -> None:
    stmt = update(users).where(u.id == bindparam("user_id"))
    assert pg(stmt, {"name": "n", "user_id": 4}, ["name", "user_id"]) == (
        "UPDATE users SET name = $1 WHERE users.id = $2::INTEGER",
        ["n", 4],
    )


def test_update_from_another_table() -> None:
    stmt = update(users).values(name="x").where(u.id == a.user_id, a.email == "e")
    assert pg(stmt) == (
        "UPDATE users SET name = $1::VARCHAR FROM addresses WHERE users.id = addresses.user_id "
        "AND addresses.email = $2::VARCHAR",
        ["x", "e"],
    )


def test_update_without_values_is_an_error() -> None:
    with pytest.raises(exc.CompileError, match="UPDATE of 'users' has no values to SET"):
        sqlite(update(users).where(u.id == 1))


def test_delete() -> None:
    stmt = delete(users).where(u.id == 1).returning(u.id)
    assert str(stmt) == "DELETE FROM users WHERE users.id = :id_1 RETURNING users.id"
    assert sqlite(stmt) == ("DELETE FROM users WHERE users.id = ? RETURNING users.id", [1])
    assert pg(stmt) == ("DELETE FROM users WHERE users.id = $1::INTEGER RETURNING users.id", [1])
    compiled = compiled_for(PGDialect(), stmt)
    assert compiled.is_delete
    assert compiled.returns_rows
    assert sqlite(delete(addresses)) == ("DELETE FROM addresses", [])


def test_delete_using_another_table_is_postgresql_only() -> None:
    stmt = delete(users).where(u.id == a.user_id, a.email == "e")
    assert pg(stmt) == (
        "DELETE FROM users USING addresses WHERE users.id = addresses.user_id AND "
        "addresses.email = $1::VARCHAR",
        ["e"],
    )
    with pytest.raises(exc.CompileError, match="use a subquery"):
        sqlite(stmt)
    rewritten = delete(users).where(u.id.in_(select(a.user_id).where(a.email == "e")))
    assert sqlite(rewritten) == (
        "DELETE FROM users WHERE users.id IN (SELECT addresses.user_id FROM addresses "
        "WHERE addresses.email = ?)",
        ["e"],
    )


# -- text() -----------------------------------------------------------------------------


def test_text_with_values() -> None:
    stmt = text("SELECT * FROM users WHERE id = :id AND name = :name").bindparams(id=1, name="x")
    assert str(stmt) == "SELECT * FROM users WHERE id = :id AND name = :name"
    assert sqlite(stmt) == ("SELECT * FROM users WHERE id = ? AND name = ?", [1, "x"])
    assert pg(stmt) == (
        "SELECT * FROM users WHERE id = $1::INTEGER AND name = $2::VARCHAR",
        [1, "x"],
    )


def test_text_with_execute_time_values_and_repeated_names() -> None:
    stmt = text("SELECT :a + :b, :a")
    assert sqlite(stmt, {"a": 1, "b": 2}) == ("SELECT ? + ?, ?", [1, 2, 1])
    assert pg(stmt, {"a": 1, "b": 2}) == ("SELECT $1 + $2, $3", [1, 2, 1])


def test_text_typed_parameter_is_processed() -> None:
    stmt = text("SELECT :d").bindparams(bindparam("d", type_=Date))
    assert sqlite(stmt, {"d": datetime.date(2020, 1, 2)}) == ("SELECT ?", ["2020-01-02"])
    assert pg(stmt, {"d": datetime.date(2020, 1, 2)}) == (
        "SELECT $1::DATE",
        [datetime.date(2020, 1, 2)],
    )


def test_text_colons_that_are_not_parameters() -> None:
    stmt = text(r"SELECT '10\:30' AS t, a::text FROM t WHERE b = :b")
    assert sqlite(stmt, {"b": 1}) == ("SELECT '10:30' AS t, a::text FROM t WHERE b = ?", [1])


def test_text_as_where_clause_and_subquery() -> None:
    stmt = select(u.id).where(text("users.age > :age"), u.name == "x")
    assert sqlite(stmt, {"age": 3}) == (
        "SELECT users.id FROM users WHERE (users.age > ?) AND users.name = ?",
        [3, "x"],
    )
    declared = text("SELECT id, name FROM users").columns(column("id", Integer), name=String)
    sub = declared.subquery("t")
    assert sqlite(select(sub.c.name).where(sub.c.id == 2)) == (
        "SELECT t.name FROM (SELECT id, name FROM users) AS t WHERE t.id = ?",
        [2],
    )
    assert compiled_for(SQLiteDialect(), declared).result_keys == ("id", "name")


# -- parameters ---------------------------------------------------------------------------


def test_bindparam_takes_execute_time_value_or_its_default() -> None:
    stmt = select(u.id).where(u.id == bindparam("uid", 7), u.name == bindparam("name"))
    compiled, extracted = SQLiteDialect().compile(stmt)
    assert compiled.construct_params(extracted, {"name": "x"}) == [7, "x"]
    assert compiled.construct_params(extracted, {"name": "x", "uid": 9}) == [9, "x"]
    assert compiled.known_keys == frozenset({"uid", "name"})


def test_untyped_bindparam_takes_the_type_it_is_compared_with() -> None:
    md = MetaData()
    events = Table("events", md, Column("id", Integer, primary_key=True), Column("at", DateTime))
    stmt = select(events.c.id).where(events.c.at > bindparam("since"))
    since = datetime.datetime(2024, 5, 6, 7, 8, 9)
    assert sqlite(stmt, {"since": since}) == (
        "SELECT events.id FROM events WHERE events.at > ?",
        ["2024-05-06 07:08:09.000000"],
    )
    assert pg(stmt, {"since": since})[0] == (
        "SELECT events.id FROM events WHERE events.at > $1::TIMESTAMP"
    )
    with pytest.raises(exc.ArgumentError, match="'since' got a value of type str"):
        sqlite(stmt, {"since": "yesterday"})


def test_expanding_bindparam() -> None:
    stmt = select(u.id).where(u.id.in_(bindparam("ids", [3, 4], expanding=True)))
    assert sqlite(stmt) == ("SELECT users.id FROM users WHERE users.id IN (?, ?)", [3, 4])
    assert pg(stmt) == ("SELECT users.id FROM users WHERE users.id IN ($1, $2)", [3, 4])


def test_tuple_in_values_are_processed_per_position() -> None:
    md = MetaData()
    days = Table("days", md, Column("id", Integer, primary_key=True), Column("day", Date))
    stmt = select(days.c.id).where(
        tuple_(days.c.id, days.c.day).in_([(1, datetime.date(2024, 1, 31))])
    )
    assert sqlite(stmt) == (
        "SELECT days.id FROM days WHERE (days.id, days.day) IN ((?, ?))",
        [1, "2024-01-31"],
    )


def test_parameters_follow_text_order() -> None:
    # Built in one order, rendered in another: the values follow the text.
    inner = select(a.user_id).where(a.email == "in-cte").cte("c")
    stmt = (
        select(u.id, literal("in-columns").label("tag"))
        .where(u.id.in_(select(inner.c.user_id)))
        .where(u.name == "in-where")
        .order_by(case((u.age > 99, 0), else_=1))
        .limit(5)
    )
    sql, values = sqlite(stmt)
    assert values == ["in-cte", "in-columns", "in-where", 99, 0, 1, 5]
    assert sql == (
        "WITH c AS (SELECT addresses.user_id FROM addresses WHERE addresses.email = ?) "
        "SELECT users.id, ? AS tag FROM users WHERE users.id IN (SELECT c.user_id FROM c) "
        "AND users.name = ? ORDER BY CASE WHEN users.age > ? THEN ? ELSE ? END LIMIT ?"
    )
    assert pg(stmt)[1] == values


def test_construct_params_reports_missing_and_unknown_keys() -> None:
    compiled, extracted = PGDialect().compile(select(u.id).where(u.id == bindparam("uid")))
    with pytest.raises(exc.ArgumentError, match="A value is required for parameter 'uid'"):
        compiled.construct_params(extracted)
    with pytest.raises(exc.ArgumentError, match=r"Unknown parameter\(s\) 'nope'.* takes 'uid'"):
        compiled.construct_params(extracted, {"uid": 1, "nope": 2})


# -- Python-side column defaults -------------------------------------------------------------


def _with_defaults() -> Table:
    calls: list[int] = []

    def counter() -> int:
        calls.append(1)
        return len(calls)

    def doubled(context: Any) -> int:
        return int(context.get_current_parameters().get("a", 0)) * 2

    return Table(
        "defaults",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("a", Integer, default=7),
        Column("b", Integer, default=counter),
        Column("c", Integer, default=doubled),
        Column("d", String, onupdate="changed"),
        Column("e", Integer, onupdate=counter),
    )


def test_scalar_and_callable_defaults_on_insert() -> None:
    t = _with_defaults()
    compiled, extracted = SQLiteDialect().compile(insert(t).values(id=1))
    assert compiled.sql == "INSERT INTO defaults (id, a, b, c) VALUES (?, ?, ?, ?)"
    # Callables run per execution, with the row's values as context.
    assert compiled.construct_params(extracted) == [1, 7, 1, 0]
    assert compiled.construct_params(extracted) == [1, 7, 2, 0]


def test_context_default_sees_the_row() -> None:
    t = _with_defaults()
    assert sqlite(insert(t).values(a=5)) == (
        "INSERT INTO defaults (a, b, c) VALUES (?, ?, ?)",
        [5, 1, 10],
    )
    assert sqlite(insert(t), {"a": 4}, ["a"]) == (
        "INSERT INTO defaults (a, b, c) VALUES (?, ?, ?)",
        [4, 2, 8],
    )
    assert sqlite(insert(t).values([{"a": 1}, {"a": 2, "b": 0}])) == (
        "INSERT INTO defaults (a, b, c) VALUES (?, ?, ?), (?, ?, ?)",
        [1, 3, 2, 2, 0, 4],
    )


def test_explicit_value_beats_default() -> None:
    t = _with_defaults()
    assert pg(insert(t).values(a=1, b=2, c=3)) == (
        "INSERT INTO defaults (a, b, c) VALUES ($1::INTEGER, $2::INTEGER, $3::INTEGER)",
        [1, 2, 3],
    )


def test_onupdate_defaults() -> None:
    t = _with_defaults()
    assert sqlite(update(t).values(a=1).where(t.c.id == 2)) == (
        "UPDATE defaults SET a = ?, d = ?, e = ? WHERE defaults.id = ?",
        [1, "changed", 1, 2],
    )
    assert sqlite(update(t).values(a=1, d="mine")) == (
        "UPDATE defaults SET a = ?, d = ?, e = ?",
        [1, "mine", 2],
    )
    assert sqlite(update(t), {"e": 9}, ["e"]) == (
        "UPDATE defaults SET e = ?, d = ?",
        [9, "changed"],
    )


# -- DDL -------------------------------------------------------------------------------------


def _ddl_tables() -> tuple[Table, Table]:
    md = MetaData()
    parent = Table(
        "parent",
        md,
        Column("a", Integer, primary_key=True),
        Column("b", String(10), primary_key=True),
        Column("order", Integer, server_default="5"),
        Column("Label", String(20), unique=True),
        Column("created", DateTime, server_default=text("CURRENT_TIMESTAMP")),
        Column("flag", Boolean, nullable=False, server_default=true()),
        CheckConstraint('"order" > 0', name="ck_order"),
        UniqueConstraint("order", "Label", name="uq_order_label"),
    )
    child = Table(
        "child",
        md,
        Column("id", Integer, primary_key=True),
        Column("pa", Integer),
        Column("pb", String(10)),
        Column("total", Numeric(10, 2), nullable=False),
        ForeignKeyConstraint(["pa", "pb"], ["parent.a", "parent.b"], ondelete="CASCADE", name="fk"),
        Index("ix_child_pa_pb", "pa", "pb"),
    )
    return parent, child


def test_create_table_composite_keys_and_constraints() -> None:
    parent, _ = _ddl_tables()
    expected = (
        'CREATE TABLE parent (a INTEGER NOT NULL, b VARCHAR(10) NOT NULL, "order" INTEGER '
        "DEFAULT '5', \"Label\" VARCHAR(20), created {ts} DEFAULT CURRENT_TIMESTAMP, flag BOOLEAN "
        'DEFAULT ({true}) NOT NULL, PRIMARY KEY (a, b), UNIQUE ("Label"), CONSTRAINT ck_order '
        'CHECK ("order" > 0), CONSTRAINT uq_order_label UNIQUE ("order", "Label"))'
    )
    assert sqlite(CreateTable(parent))[0] == expected.format(ts="DATETIME", true="1")
    assert pg(CreateTable(parent))[0] == expected.format(ts="TIMESTAMP", true="true")
    compiled = compiled_for(PGDialect(), CreateTable(parent))
    assert compiled.is_ddl
    assert not compiled.returns_rows


def test_create_table_autoincrement_key_and_composite_foreign_key() -> None:
    _, child = _ddl_tables()
    fk = "CONSTRAINT fk FOREIGN KEY (pa, pb) REFERENCES parent (a, b) ON DELETE CASCADE"
    assert sqlite(CreateTable(child))[0] == (
        "CREATE TABLE child (id INTEGER PRIMARY KEY, pa INTEGER, pb VARCHAR(10), total "
        f"NUMERIC(10, 2) NOT NULL, {fk})"
    )
    assert pg(CreateTable(child))[0] == (
        "CREATE TABLE child (id SERIAL NOT NULL, pa INTEGER, pb VARCHAR(10), total "
        f"NUMERIC(10, 2) NOT NULL, PRIMARY KEY (id), {fk})"
    )


def test_big_integer_autoincrement_key() -> None:
    t = Table("big", MetaData(), Column("id", BigInteger, primary_key=True))
    assert sqlite(CreateTable(t))[0] == "CREATE TABLE big (id INTEGER PRIMARY KEY)"
    assert pg(CreateTable(t))[0] == "CREATE TABLE big (id BIGSERIAL NOT NULL, PRIMARY KEY (id))"


def test_create_table_in_a_schema_and_if_not_exists() -> None:
    t = Table("t", MetaData(schema="app"), Column("id", Integer, primary_key=True))
    assert pg(CreateTable(t, if_not_exists=True))[0] == (
        "CREATE TABLE IF NOT EXISTS app.t (id SERIAL NOT NULL, PRIMARY KEY (id))"
    )
    assert pg(DropTable(t, if_exists=True))[0] == "DROP TABLE IF EXISTS app.t"


def test_drop_table() -> None:
    parent, _ = _ddl_tables()
    assert sqlite(DropTable(parent)) == ("DROP TABLE parent", [])
    assert pg(DropTable(parent))[0] == "DROP TABLE parent"


def test_indexes() -> None:
    parent, child = _ddl_tables()
    assert sqlite(CreateIndex(child.indexes[0]))[0] == (
        "CREATE INDEX ix_child_pa_pb ON child (pa, pb)"
    )
    expression = Index("ix_lower_b", func.lower(parent.c.b), unique=True)
    assert pg(CreateIndex(expression))[0] == "CREATE UNIQUE INDEX ix_lower_b ON parent ((lower(b)))"
    assert sqlite(CreateIndex(expression, if_not_exists=True))[0] == (
        "CREATE UNIQUE INDEX IF NOT EXISTS ix_lower_b ON parent ((lower(b)))"
    )
    assert pg(DropIndex(expression))[0] == "DROP INDEX ix_lower_b"


def test_column_index_flag_names_the_index() -> None:
    t = Table(
        "t", MetaData(), Column("id", Integer, primary_key=True), Column("x", Integer, index=True)
    )
    assert [sqlite(CreateIndex(i))[0] for i in t.indexes] == ["CREATE INDEX ix_t_x ON t (x)"]


def test_named_enum_is_a_type_on_postgresql_and_a_string_on_sqlite() -> None:
    mood = Enum("happy", "sad", name="mood")
    t = Table("people", MetaData(), Column("id", Integer, primary_key=True), Column("mood", mood))
    assert pg(CreateEnumType(mood))[0] == "CREATE TYPE mood AS ENUM ('happy', 'sad')"
    assert pg(DropEnumType(mood))[0] == "DROP TYPE mood"
    assert pg(CreateTable(t))[0] == (
        "CREATE TABLE people (id SERIAL NOT NULL, mood mood, PRIMARY KEY (id))"
    )
    assert sqlite(CreateTable(t))[0] == (
        "CREATE TABLE people (id INTEGER PRIMARY KEY, mood VARCHAR(5))"
    )
    with pytest.raises(exc.CompileError, match="PostgreSQL-only"):
        sqlite(CreateEnumType(mood))


def test_generic_ddl_uses_standard_type_names() -> None:
    parent, _ = _ddl_tables()
    assert str(CreateTable(parent)).startswith(
        'CREATE TABLE parent (a INTEGER NOT NULL, b VARCHAR(10) NOT NULL, "order" INTEGER'
    )


def test_ddl_is_not_cached() -> None:
    dialect = SQLiteDialect()
    parent, _ = _ddl_tables()
    dialect.compile(CreateTable(parent))
    dialect.compile(CreateTable(parent))
    assert (dialect.cache_hits, dialect.cache_misses) == (0, 0)


def test_sort_tables_puts_referenced_tables_first() -> None:
    md = MetaData()
    items = Table(
        "items",
        md,
        Column("id", Integer, primary_key=True),
        Column("order_id", ForeignKey("orders.id")),
        Column("product_id", ForeignKey("products.id")),
    )
    orders_ = Table(
        "orders",
        md,
        Column("id", Integer, primary_key=True),
        Column("customer_id", ForeignKey("customers.id")),
    )
    products = Table("products", md, Column("id", Integer, primary_key=True))
    customers = Table(
        "customers",
        md,
        Column("id", Integer, primary_key=True),
        Column("referrer_id", ForeignKey("customers.id")),  # a self-reference doesn't count
    )
    assert md.sorted_tables == [products, customers, orders_, items]
    # Ties keep the given order, so the result is deterministic.
    assert sort_tables([customers, products, items, orders_]) == [
        customers,
        products,
        orders_,
        items,
    ]
    # Tables outside the given ones don't constrain the order.
    assert sort_tables([items, orders_]) == [orders_, items]


def test_use_alter_breaks_a_cycle() -> None:
    md = MetaData()
    teams = Table(
        "teams",
        md,
        Column("id", Integer, primary_key=True),
        Column("captain_id", ForeignKey("players.id", use_alter=True, name="fk_captain")),
    )
    players = Table(
        "players",
        md,
        Column("id", Integer, primary_key=True),
        Column("team_id", ForeignKey("teams.id")),
    )
    assert md.sorted_tables == [teams, players]
    # PostgreSQL adds the key after both tables exist; SQLite declares it inline.
    assert "captain_id" not in pg(CreateTable(teams))[0].split("PRIMARY KEY")[1]
    assert sqlite(CreateTable(teams))[0].endswith(
        "CONSTRAINT fk_captain FOREIGN KEY (captain_id) REFERENCES players (id))"
    )
