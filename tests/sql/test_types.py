"""Column types: DDL, processors, validation and expression typing (pure), then real
round trips through aiosqlite and asyncpg with the drivers called directly.

A round trip binds values with the type's bind processor, stores them in a column
declared with the type's DDL, reads them back through the result processor and
compares with the originals; for orderable types ``ORDER BY`` the column must give
Python's sort order.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import aiosqlite
import asyncpg
import attrs
import pytest
import sqlalchemy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncsession import exc
from asyncsession.sql import types as t
from asyncsession.sql.types import (
    ARRAY,
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Double,
    Enum,
    Float,
    Integer,
    Interval,
    LargeBinary,
    NullType,
    Numeric,
    SmallInteger,
    String,
    Text,
    Time,
    TypeDecorator,
    TypeEngine,
    Unicode,
    UnicodeText,
    Uuid,
    to_instance,
    type_for_python_value,
)


@attrs.frozen
class FakeDialect:
    name: str
    json_serializer: Callable[[Any], str] | None = None
    json_deserializer: Callable[[str], Any] | None = None


SQLITE = FakeDialect("sqlite")
PG = FakeDialect("postgresql")
UTC = dt.UTC
PLUS_5 = dt.timezone(dt.timedelta(hours=5))
MINUS_3_30 = dt.timezone(-dt.timedelta(hours=3, minutes=30))


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"
    CRIMSON = "red"  # noqa: PIE796 - an alias on purpose: not a separate database value


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 2


class Mood(enum.StrEnum):
    HAPPY = "happy"
    SAD = "sad"


def _identity(value: Any) -> Any:
    return value


def bind(type_: TypeEngine[Any], dialect: FakeDialect, value: Any) -> Any:
    return (type_.bind_processor(dialect) or _identity)(value)


def result(type_: TypeEngine[Any], dialect: FakeDialect, value: Any) -> Any:
    return (type_.result_processor(dialect) or _identity)(value)


# -- DDL -----------------------------------------------------------------------------

DDL = [
    (Integer(), "INTEGER", "INTEGER"),
    (BigInteger(), "BIGINT", "BIGINT"),
    (SmallInteger(), "SMALLINT", "SMALLINT"),
    (String(), "VARCHAR", "VARCHAR"),
    (String(20), "VARCHAR(20)", "VARCHAR(20)"),
    (String(20, collation="NOCASE"), "VARCHAR(20) COLLATE NOCASE", 'VARCHAR(20) COLLATE "NOCASE"'),
    (String(collation="fr FR"), 'VARCHAR COLLATE "fr FR"', 'VARCHAR COLLATE "fr FR"'),
    (Text(), "TEXT", "TEXT"),
    (Text(collation="C"), "TEXT COLLATE C", 'TEXT COLLATE "C"'),
    (Unicode(10), "VARCHAR(10)", "VARCHAR(10)"),
    (UnicodeText(), "TEXT", "TEXT"),
    (Boolean(), "BOOLEAN", "BOOLEAN"),
    (Float(), "FLOAT", "FLOAT"),
    (Float(precision=10), "FLOAT(10)", "FLOAT(10)"),
    (Double(), "DOUBLE", "DOUBLE PRECISION"),
    (Numeric(), "NUMERIC", "NUMERIC"),
    (Numeric(10), "NUMERIC(10)", "NUMERIC(10)"),
    (Numeric(10, 2), "NUMERIC(10, 2)", "NUMERIC(10, 2)"),
    (Date(), "DATE", "DATE"),
    (Time(), "TIME", "TIME"),
    (Time(timezone=True), "TIME", "TIME WITH TIME ZONE"),
    (DateTime(), "DATETIME", "TIMESTAMP"),
    (DateTime(timezone=True), "DATETIME", "TIMESTAMP WITH TIME ZONE"),
    (Interval(), "INTEGER", "INTERVAL"),
    (LargeBinary(), "BLOB", "BYTEA"),
    (JSON(), "JSON", "JSONB"),
    (Uuid(), "CHAR(32)", "UUID"),
    (Uuid(native_uuid=False), "CHAR(32)", "CHAR(32)"),
    (Enum(Color), "VARCHAR(5)", "color"),
    (Enum(Color, name="Paint"), "VARCHAR(5)", '"Paint"'),
    (Enum(Color, name="order"), "VARCHAR(5)", '"order"'),
    (Enum(Color, native_enum=False), "VARCHAR(5)", "VARCHAR(5)"),
    (Enum(Color, length=20), "VARCHAR(20)", "color"),
    (Enum("a", "bcd", name="letters"), "VARCHAR(3)", "letters"),
]


@pytest.mark.parametrize(("type_", "sqlite", "postgresql"), DDL, ids=lambda v: repr(v))
def test_ddl(type_: TypeEngine[Any], sqlite: str, postgresql: str) -> None:
    assert type_.compile_ddl(SQLITE) == sqlite
    assert type_.compile_ddl(PG) == postgresql


def test_array_ddl_on_postgresql() -> None:
    assert ARRAY(Integer).compile_ddl(PG) == "INTEGER[]"
    assert ARRAY(String(5), dimensions=2).compile_ddl(PG) == "VARCHAR(5)[][]"
    assert ARRAY(Enum(Color)).compile_ddl(PG) == "color[]"


@pytest.mark.parametrize(
    ("type_", "dialect", "match"),
    [
        (ARRAY(Integer), SQLITE, "PostgreSQL only"),
        (NullType(), SQLITE, "did you forget to specify a type"),
        (NullType(), PG, "did you forget to specify a type"),
        (Enum("a", "b"), PG, "requires a name"),
        (Integer(), FakeDialect("oracle"), "'sqlite' and 'postgresql', not 'oracle'"),
    ],
)
def test_ddl_the_dialect_cannot_store(
    type_: TypeEngine[Any], dialect: FakeDialect, match: str
) -> None:
    with pytest.raises(exc.CompileError, match=match):
        type_.compile_ddl(dialect)


def test_array_processors_refuse_sqlite() -> None:
    with pytest.raises(exc.CompileError, match="PostgreSQL only"):
        ARRAY(Integer).bind_processor(SQLITE)


def test_unnamed_enum_is_fine_without_a_native_type() -> None:
    assert Enum("a", "b", native_enum=False).compile_ddl(PG) == "VARCHAR(1)"
    assert Enum("a", "b").compile_ddl(SQLITE) == "VARCHAR(1)"


# -- processors, pure ----------------------------------------------------------------

PASS_THROUGH_ON_POSTGRESQL = [
    Integer(),
    BigInteger(),
    SmallInteger(),
    String(10),
    Text(),
    Float(),
    Double(),
    Numeric(10, 2),
    Date(),
    Interval(),
    LargeBinary(),
    Uuid(),
    DateTime(timezone=True),
    NullType(),
    Enum("a", "b", name="ab"),
    ARRAY(Integer),
]


@pytest.mark.parametrize("type_", PASS_THROUGH_ON_POSTGRESQL, ids=repr)
def test_asyncpg_native_types_need_no_processing(type_: TypeEngine[Any]) -> None:
    assert type_.bind_processor(PG) is None
    assert type_.result_processor(PG) is None


@pytest.mark.parametrize(
    "type_",
    [Integer(), BigInteger(), String(), Text(), LargeBinary(), NullType(), Boolean()],
    ids=repr,
)
def test_sqlite_native_binds_need_no_processing(type_: TypeEngine[Any]) -> None:
    assert type_.bind_processor(SQLITE) is None


@pytest.mark.parametrize(
    ("type_", "value", "stored"),
    [
        (Date(), dt.date(2024, 2, 29), "2024-02-29"),
        (Date(), dt.date(5, 1, 2), "0005-01-02"),
        (Time(), dt.time(1, 2, 3), "01:02:03.000000"),
        (Time(), dt.time(23, 59, 59, 999999), "23:59:59.999999"),
        (Time(), dt.time(1, 0, tzinfo=PLUS_5), "20:00:00.000000"),
        (Time(timezone=True), dt.time(1, 0, tzinfo=PLUS_5), "01:00:00.000000+05:00"),
        (Time(timezone=True), dt.time(1, 0), "01:00:00.000000+00:00"),
        (DateTime(), dt.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02 03:04:05.000000"),
        (DateTime(), dt.datetime(2024, 1, 2, 3, 4, 5, 6), "2024-01-02 03:04:05.000006"),
        (DateTime(), dt.datetime(2024, 1, 2, 3, tzinfo=PLUS_5), "2024-01-01 22:00:00.000000"),
        (
            DateTime(timezone=True),
            dt.datetime(2024, 1, 2, 3, tzinfo=MINUS_3_30),
            "2024-01-02 06:30:00.000000+00:00",
        ),
        (DateTime(timezone=True), dt.datetime(2024, 1, 2, 3), "2024-01-02 03:00:00.000000+00:00"),
        (Interval(), dt.timedelta(days=-1, microseconds=1), -86_400_000_000 + 1),
        (Interval(), dt.timedelta(weeks=2, seconds=1), 1_209_601_000_000),
        (Numeric(10, 2), decimal.Decimal("12.50"), "12.50"),
        (Numeric(), 3, 3),
        (Numeric(), 1.5, 1.5),
        (Float(), decimal.Decimal("1.5"), 1.5),
        (Uuid(), uuid.UUID(int=255), "000000000000000000000000000000ff"),
        (Uuid(), str(uuid.UUID(int=255)), "000000000000000000000000000000ff"),
        (
            Uuid(as_uuid=False),
            "000000000000000000000000000000FF",
            "000000000000000000000000000000ff",
        ),
        (JSON(), {"a": [1, None]}, '{"a": [1, null]}'),
        (JSON(), None, "null"),
        (JSON(none_as_null=True), None, None),
        (JSON(none_as_null=True), JSON.NULL, "null"),
        (Enum(Color), Color.GREEN, "GREEN"),
        (Enum(Color), Color.CRIMSON, "RED"),
        (Enum(Color), "BLUE", "BLUE"),
        (Enum(Size), Size.LARGE, "LARGE"),
        (Enum(Mood), Mood.SAD, "SAD"),
    ],
    ids=repr,
)
def test_sqlite_bind(type_: TypeEngine[Any], value: Any, stored: Any) -> None:
    assert bind(type_, SQLITE, value) == stored
    assert type(bind(type_, SQLITE, value)) is type(stored)


@pytest.mark.parametrize(
    ("type_", "stored", "value"),
    [
        (Boolean(), 0, False),
        (Boolean(), 1, True),
        (Date(), "2024-02-29", dt.date(2024, 2, 29)),
        (Time(), "01:02:03.000004", dt.time(1, 2, 3, 4)),
        (Time(timezone=True), "01:02:03", dt.time(1, 2, 3, tzinfo=UTC)),
        (DateTime(), "2024-01-02 03:04:05.000006", dt.datetime(2024, 1, 2, 3, 4, 5, 6)),
        # What SQLite's CURRENT_TIMESTAMP writes (UTC, no fraction).
        (DateTime(), "2024-01-02 03:04:05", dt.datetime(2024, 1, 2, 3, 4, 5)),
        (
            DateTime(timezone=True),
            "2024-01-02 03:04:05",
            dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        ),
        (DateTime(), "2024-01-02 03:00:00+05:00", dt.datetime(2024, 1, 1, 22)),
        (
            DateTime(timezone=True),
            "2024-01-02 03:00:00+05:00",
            dt.datetime(2024, 1, 1, 22, tzinfo=UTC),
        ),
        (Interval(), 86_400_000_001, dt.timedelta(days=1, microseconds=1)),
        (Numeric(10, 2), 12.5, decimal.Decimal("12.50")),
        (Numeric(10, 2), 12, decimal.Decimal("12.00")),
        (Numeric(10, 0), 12, decimal.Decimal("12")),
        (Numeric(20, 2), 2**62, decimal.Decimal(f"{2**62}.00")),
        (Numeric(), 0.1, decimal.Decimal("0.1")),
        (Numeric(), 7, decimal.Decimal(7)),
        (Numeric(), "Infinity", decimal.Decimal("Infinity")),
        (Numeric(10, 4, decimal_return_scale=2), 1.23456, decimal.Decimal("1.23")),
        (Numeric(asdecimal=False), 7, 7.0),
        (Float(asdecimal=True), 0.1, decimal.Decimal("0.1")),
        (Uuid(), "000000000000000000000000000000ff", uuid.UUID(int=255)),
        (Uuid(as_uuid=False), "000000000000000000000000000000ff", str(uuid.UUID(int=255))),
        (JSON(), '{"a": [1, null]}', {"a": [1, None]}),
        (JSON(), "null", None),
        (JSON(), 5, 5),  # a top-level number after SQLite's numeric affinity
        (Enum(Color), "GREEN", Color.GREEN),
        (Enum(Size), "LARGE", Size.LARGE),
        (Enum("a", "b"), "b", "b"),
    ],
    ids=repr,
)
def test_sqlite_result(type_: TypeEngine[Any], stored: Any, value: Any) -> None:
    assert result(type_, SQLITE, stored) == value
    assert type(result(type_, SQLITE, stored)) is type(value)
    assert result(type_, SQLITE, None) is None


@pytest.mark.parametrize(
    ("type_", "value", "sent"),
    [
        (Boolean(), 1, True),
        (Boolean(), 0, False),
        (Boolean(), True, True),
        (DateTime(), dt.datetime(2024, 1, 2, 3), dt.datetime(2024, 1, 2, 3)),
        (DateTime(), dt.datetime(2024, 1, 2, 3, tzinfo=PLUS_5), dt.datetime(2024, 1, 1, 22)),
        (Time(), dt.time(3, tzinfo=PLUS_5), dt.time(22)),
        (Time(timezone=True), dt.time(3), dt.time(3, tzinfo=UTC)),
        (Time(timezone=True), dt.time(3, tzinfo=PLUS_5), dt.time(3, tzinfo=PLUS_5)),
        (JSON(), [1, "x"], '[1, "x"]'),
        (Enum(Color), Color.BLUE, "BLUE"),
        (ARRAY(Enum(Color)), [Color.BLUE, None, "RED"], ["BLUE", None, "RED"]),
        (ARRAY(Uuid(native_uuid=False)), [uuid.UUID(int=1)], ["00000000000000000000000000000001"]),
        (ARRAY(JSON), [[1], {"a": 2}], ["[1]", '{"a": 2}']),
    ],
    ids=repr,
)
def test_postgresql_bind(type_: TypeEngine[Any], value: Any, sent: Any) -> None:
    assert bind(type_, PG, value) == sent
    assert type(bind(type_, PG, value)) is type(sent)


@pytest.mark.parametrize(
    ("type_", "received", "value"),
    [
        (Numeric(asdecimal=False), decimal.Decimal("1.5"), 1.5),
        (Uuid(as_uuid=False), uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (JSON(), '{"a": 1}', {"a": 1}),
        (Enum(Color), "RED", Color.RED),
        (ARRAY(Enum(Color)), ["RED", None], [Color.RED, None]),
        (ARRAY(Enum(Color), dimensions=2), [["RED"], ["BLUE"]], [[Color.RED], [Color.BLUE]]),
        (ARRAY(Integer, as_tuple=True), [[1, 2], [3, 4]], ((1, 2), (3, 4))),
        (ARRAY(JSON), ["[1]", "2"], [[1], 2]),
    ],
    ids=repr,
)
def test_postgresql_result(type_: TypeEngine[Any], received: Any, value: Any) -> None:
    assert result(type_, PG, received) == value
    assert type(result(type_, PG, received)) is type(value)
    assert result(type_, PG, None) is None


def test_json_uses_the_dialects_serializer() -> None:
    dialect = FakeDialect(
        "postgresql",
        json_serializer=lambda value: json.dumps(value, sort_keys=True, separators=(",", ":")),
        json_deserializer=lambda text: ("parsed", json.loads(text)),
    )
    assert bind(JSON(), dialect, {"b": 1, "a": 2}) == '{"a":2,"b":1}'
    assert result(JSON(), dialect, "[1]") == ("parsed", [1])


def test_json_none_needs_the_processor() -> None:
    assert JSON().should_evaluate_none is True
    assert JSON(none_as_null=True).should_evaluate_none is False
    assert Integer().should_evaluate_none is False


def test_enum_reports_database_values_it_does_not_know() -> None:
    with pytest.raises(LookupError, match=r"'PURPLE' read from the database"):
        result(Enum(Color), PG, "PURPLE")


def test_boolean_result_on_sqlite_tolerates_other_integers() -> None:
    assert result(Boolean(), SQLITE, 2) is True


# -- validation ----------------------------------------------------------------------


class Indexable:
    def __index__(self) -> int:
        return 5


ACCEPTED = [
    (Integer(), 5),
    (Integer(), True),
    (Integer(), Size.LARGE),
    (BigInteger(), 2**63 - 1),
    (String(), "abc"),
    (String(), Mood.HAPPY),
    (Text(), ""),
    (Boolean(), True),
    (Boolean(), 0),
    (Boolean(), 1),
    (Float(), 1),
    (Float(), 1.5),
    (Float(), decimal.Decimal("1.5")),
    (Numeric(), 1),
    (Numeric(), 1.5),
    (Numeric(), decimal.Decimal("1.5")),
    (Date(), dt.date(2024, 1, 1)),
    (Time(), dt.time(1)),
    (DateTime(), dt.datetime(2024, 1, 1)),
    (DateTime(), dt.datetime(2024, 1, 1, tzinfo=UTC)),
    (Interval(), dt.timedelta(1)),
    (LargeBinary(), b"x"),
    (LargeBinary(), bytearray(b"x")),
    (LargeBinary(), memoryview(b"x")),
    (Uuid(), uuid.uuid4()),
    (Uuid(), "12345678-1234-5678-1234-567812345678"),
    (Uuid(), "12345678123456781234567812345678"),
    (Uuid(as_uuid=False), uuid.uuid4()),
    (JSON(), {"a": 1}),
    (JSON(), [1]),
    (JSON(), "text"),
    (JSON(), 1.5),
    (JSON(), False),
    (JSON(), JSON.NULL),
    (Enum(Color), Color.RED),
    (Enum(Color), Color.CRIMSON),
    (Enum(Color), "GREEN"),
    (Enum("a", "b"), "a"),
    (Enum(Color, values_callable=lambda cls: [m.value for m in cls]), "green"),
    (ARRAY(Integer), [1, 2, None]),
    (ARRAY(Integer), (1, 2)),
    (ARRAY(Integer), [[1, 2], [3, 4]]),
    (ARRAY(JSON), [{"a": 1}, [1, 2]]),
    (NullType(), object()),
]


@pytest.mark.parametrize(("type_", "value"), ACCEPTED, ids=repr)
def test_accepted_values(type_: TypeEngine[Any], value: Any) -> None:
    type_.validate_bind_value(value)


@pytest.mark.parametrize(
    "type_", [Integer(), String(), Boolean(), Date(), JSON(), Enum(Color), ARRAY(Integer)], ids=repr
)
def test_none_is_always_accepted(type_: TypeEngine[Any]) -> None:
    type_.validate_bind_value(None)


REJECTED = [
    (Integer(), "abc", r"^Integer cannot bind a value of type str \('abc'\)$"),
    (Integer(), 5.0, r"^Integer cannot bind a value of type float \(5\.0\)$"),
    (Integer(), decimal.Decimal(5), "Integer cannot bind a value of type Decimal"),
    (Integer(), Indexable(), "type Indexable .*; convert it with int\\(\\) first"),
    (Integer(), object(), "Integer cannot bind a value of type object"),
    (String(), 5, "String cannot bind a value of type int \\(5\\)"),
    (String(), b"x", "String cannot bind a value of type bytes"),
    (Boolean(), 2, "Boolean cannot bind a value of type int \\(2\\)"),
    (Boolean(), "true", "Boolean cannot bind a value of type str"),
    (Float(), "1.5", "Float cannot bind a value of type str"),
    (Float(), True, "Float cannot bind a value of type bool"),
    (Numeric(), "1.5", "Numeric cannot bind a value of type str"),
    (Numeric(), True, "Numeric cannot bind a value of type bool"),
    (DateTime(), "yesterday", "DateTime cannot bind a value of type str \\('yesterday'\\)"),
    (DateTime(), dt.date(2024, 1, 1), "type date .*; a date is not a datetime"),
    (Date(), dt.datetime(2024, 1, 1), "type datetime .*; a datetime is not a date"),
    (Date(), "2024-01-01", "Date cannot bind a value of type str"),
    (Time(), dt.datetime(2024, 1, 1), "Time cannot bind a value of type datetime"),
    (Interval(), 5, "Interval cannot bind a value of type int"),
    (LargeBinary(), "x", "LargeBinary cannot bind a value of type str"),
    (Uuid(), "not-a-uuid", "Uuid cannot bind a value of type str \\('not-a-uuid'\\)"),
    (Uuid(), 5, "Uuid cannot bind a value of type int"),
    (JSON(), object(), "JSON cannot bind a value of type object"),
    (JSON(), {1, 2}, "JSON cannot bind a value of type set"),
    (JSON(), decimal.Decimal(1), "JSON cannot bind a value of type Decimal"),
    (Enum(Color), "PURPLE", "Enum\\(Color\\) cannot bind 'PURPLE': expected a Color member or"),
    (Enum(Color), "red", "one of 'RED', 'GREEN', 'BLUE'$"),
    (Enum(Color), Size.SMALL, "cannot bind <Size.SMALL: 1>"),
    (Enum(Color), ["RED"], "cannot bind \\['RED'\\]"),
    (Enum("a", "b"), "c", "Enum\\('a', 'b'\\) cannot bind 'c': expected one of 'a', 'b'"),
    (ARRAY(Integer), 5, "ARRAY cannot bind a value of type int \\(5\\)"),
    (ARRAY(Integer), [1, "x"], "cannot bind \\[1, 'x'\\]: an element is not a valid item"),
]


@pytest.mark.parametrize(("type_", "value", "message"), REJECTED, ids=repr)
def test_rejected_values(type_: TypeEngine[Any], value: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        type_.validate_bind_value(value)


def test_long_values_are_shortened_in_messages() -> None:
    with pytest.raises(TypeError) as info:
        Integer().validate_bind_value("x" * 1000)
    assert len(str(info.value)) < 120
    assert str(info.value).endswith("...)")


# -- literal types, instances, identity ----------------------------------------------

LITERAL_TYPES = [
    (None, NullType()),
    (True, Boolean()),
    (5, Integer()),
    (2**31, BigInteger()),
    (-(2**31) - 1, BigInteger()),
    (1.5, Float()),
    (decimal.Decimal("1.5"), Numeric()),
    ("x", String()),
    (dt.datetime(2024, 1, 1), DateTime()),
    (dt.datetime(2024, 1, 1, tzinfo=UTC), DateTime(timezone=True)),
    (dt.date(2024, 1, 1), Date()),
    (dt.time(1), Time()),
    (dt.time(1, tzinfo=UTC), Time(timezone=True)),
    (dt.timedelta(1), Interval()),
    (b"x", LargeBinary()),
    (bytearray(b"x"), LargeBinary()),
    (uuid.UUID(int=1), Uuid()),
    (Color.RED, Enum(Color)),
    (Size.SMALL, Enum(Size)),
    (Mood.SAD, Enum(Mood)),
    ({"a": 1}, JSON()),
    ([1], JSON()),
    (JSON.NULL, JSON()),
    (object(), NullType()),
]


@pytest.mark.parametrize(("value", "expected"), LITERAL_TYPES, ids=repr)
def test_type_for_python_value(value: Any, expected: TypeEngine[Any]) -> None:
    found = type_for_python_value(value)
    assert found == expected
    assert type(found) is type(expected)


def test_type_for_python_value_with_subclasses() -> None:
    class MyStr(str):
        pass

    class MyDateTime(dt.datetime):
        pass

    assert type_for_python_value(MyStr("x")) == String()
    assert type_for_python_value(MyDateTime(2024, 1, 1, tzinfo=UTC)) == DateTime(timezone=True)


def test_to_instance() -> None:
    assert to_instance(Integer) == Integer()
    integer = Integer()
    assert to_instance(integer) is integer
    assert to_instance(None) == NullType()
    assert to_instance(String, 20) == String(20)
    with pytest.raises(exc.ArgumentError, match="is not a type"):
        to_instance(int)  # type: ignore[arg-type]
    with pytest.raises(exc.ArgumentError, match="is not a type"):
        to_instance("INTEGER")  # type: ignore[arg-type]


def test_equal_types_share_a_cache_key() -> None:
    assert String(20).cache_key == String(20).cache_key
    assert String(20) == String(20)
    assert hash(String(20)) == hash(String(20))
    assert String(20) != String(30)
    assert String(20) != Unicode(20)
    assert Integer() != BigInteger()
    assert DateTime() != DateTime(timezone=True)
    assert Numeric(10, 2) != Numeric(10, 2, asdecimal=False)
    assert Enum(Color) == Enum(Color)
    assert Enum(Color) != Enum(Color, name="other")
    assert ARRAY(Integer) == ARRAY(Integer())
    assert ARRAY(Integer) != ARRAY(BigInteger)
    assert len({Integer(), Integer(), BigInteger()}) == 2
    assert Integer() != "INTEGER"


def test_copy_is_equal() -> None:
    original = Numeric(10, 2)
    _ = original.cache_key
    assert original.copy() == original
    assert original.copy() is not original
    adjusted = original.copy()
    adjusted.scale = 3
    assert adjusted != original


def test_copy_of_an_uncacheable_decorator_is_its_own_type() -> None:
    original = Uncacheable()
    _ = original.cache_key
    assert original.copy() != original


@pytest.mark.parametrize(
    ("type_", "text"),
    [
        (Integer(), "Integer()"),
        (String(20), "String(length=20)"),
        (String(collation="C"), "String(collation='C')"),
        (Numeric(10, 2), "Numeric(precision=10, scale=2)"),
        (Float(asdecimal=True), "Float(asdecimal=True)"),
        (DateTime(timezone=True), "DateTime(timezone=True)"),
        (Uuid(as_uuid=False), "Uuid(as_uuid=False)"),
        (JSON(none_as_null=True), "JSON(none_as_null=True)"),
        (Enum(Color), "Enum(Color)"),
        (
            Enum(Color, name="paint", native_enum=False),
            "Enum(Color, name='paint', native_enum=False)",
        ),
        (Enum("a", "b"), "Enum('a', 'b')"),
        (ARRAY(Integer, dimensions=2), "ARRAY(Integer(), dimensions=2)"),
    ],
)
def test_repr(type_: TypeEngine[Any], text: str) -> None:
    assert repr(type_) == text


def test_python_type() -> None:
    assert Integer().python_type is int
    assert Numeric().python_type is decimal.Decimal
    assert Numeric(asdecimal=False).python_type is float
    assert Float().python_type is float
    assert Float(asdecimal=True).python_type is decimal.Decimal
    assert String().python_type is str
    assert Boolean().python_type is bool
    assert DateTime().python_type is dt.datetime
    assert Date().python_type is dt.date
    assert Interval().python_type is dt.timedelta
    assert LargeBinary().python_type is bytes
    assert Uuid().python_type is uuid.UUID
    assert Uuid(as_uuid=False).python_type is str
    assert Enum(Color).python_type is Color
    assert Enum("a").python_type is str
    assert JSON().python_type is dict
    assert ARRAY(Integer).python_type is list
    assert ARRAY(Integer, as_tuple=True).python_type is tuple


def test_hashable() -> None:
    assert Integer().hashable
    assert not JSON().hashable
    assert not ARRAY(Integer).hashable
    assert ARRAY(Integer, as_tuple=True).hashable


# -- expressions ---------------------------------------------------------------------

COERCED = [
    (Integer(), 5, Integer()),
    (BigInteger(), 5, BigInteger()),
    (Integer(), 1.5, Float()),
    (Integer(), decimal.Decimal("1.5"), Numeric()),
    (Numeric(10, 2), 5, Integer()),
    (Numeric(10, 2), decimal.Decimal(1), Numeric(10, 2)),
    (Float(), 1.5, Float()),
    (Numeric(10, 2), 1.5, Numeric(10, 2)),  # Float and Numeric are one family
    (String(10), "x", String(10)),
    (Enum(Color), "RED", Enum(Color)),
    (Enum(Color), Color.RED, Enum(Color)),
    (DateTime(), dt.timedelta(1), Interval()),
    (DateTime(), dt.datetime(2024, 1, 1, tzinfo=UTC), DateTime()),
    (Date(), dt.datetime(2024, 1, 1), DateTime()),
    (Uuid(), "12345678123456781234567812345678", Uuid()),
    (JSON(), "key", JSON()),
    (JSON(), {"a": 1}, JSON()),
    (ARRAY(Integer), [1, 2], ARRAY(Integer)),
    (ARRAY(Integer), 1, Integer()),
    (NullType(), 5, Integer()),
    (NullType(), None, NullType()),
    (Integer(), None, Integer()),
]


@pytest.mark.parametrize(("type_", "value", "expected"), COERCED, ids=repr)
def test_coerce_compared_value(
    type_: TypeEngine[Any], value: Any, expected: TypeEngine[Any]
) -> None:
    assert type_.coerce_compared_value("=", value) == expected


OPERATED = [
    (Integer(), "+", Integer(), Integer()),
    (SmallInteger(), "*", BigInteger(), BigInteger()),
    (SmallInteger(), "-", SmallInteger(), SmallInteger()),
    (Integer(), "/", Integer(), Numeric()),
    (Integer(), "//", Integer(), Integer()),
    (Integer(), "%", Integer(), Integer()),
    (Integer(), "+", Numeric(10, 2), Numeric()),
    (Integer(), "+", Numeric(asdecimal=False), Numeric(asdecimal=False)),
    (Integer(), "+", Float(), Float()),
    (Numeric(10, 2), "*", Integer(), Numeric()),
    (Numeric(), "+", Float(), Float()),
    (Numeric(), "+", Double(), Double()),
    (Float(), "/", Integer(), Float()),
    (Integer(), "+", Date(), Date()),
    (Integer(), "*", Interval(), Interval()),
    (String(10), "||", String(5), String()),
    (String(10), "+", String(5), String()),
    (String(10), "||", Integer(), String()),
    (Enum(Color), "||", String(), String()),
    (Date(), "+", Integer(), Date()),
    (Date(), "-", Date(), Integer()),
    (Date(), "+", Interval(), DateTime()),
    (Date(), "+", Time(), DateTime()),
    (DateTime(timezone=True), "+", Interval(), DateTime(timezone=True)),
    (DateTime(), "-", Interval(), DateTime()),
    (DateTime(), "-", DateTime(), Interval()),
    (Time(), "-", Time(), Interval()),
    (Time(), "+", Interval(), Time()),
    (Interval(), "+", Interval(), Interval()),
    (Interval(), "+", DateTime(timezone=True), DateTime(timezone=True)),
    (Interval(), "+", Date(), DateTime()),
    (Interval(), "*", Integer(), Interval()),
    (Interval(), "/", Float(), Interval()),
    (LargeBinary(), "||", LargeBinary(), LargeBinary()),
    (JSON(), "||", JSON(), JSON()),
    (JSON(), "-", String(), JSON()),
    (ARRAY(Integer), "||", ARRAY(Integer), ARRAY(Integer)),
    (Integer(), "+", NullType(), Integer()),
    (NullType(), "+", Integer(), Integer()),
    (NullType(), "+", NullType(), NullType()),
    (Boolean(), "+", Boolean(), NullType()),
    (Date(), "*", Date(), NullType()),
    (Integer(), "&", Integer(), NullType()),
]


@pytest.mark.parametrize(("left", "op", "right", "expected"), OPERATED, ids=repr)
def test_result_type_for_operator(
    left: TypeEngine[Any], op: str, right: TypeEngine[Any], expected: TypeEngine[Any]
) -> None:
    assert left.result_type_for_operator(op, right) == expected


# -- Enum ----------------------------------------------------------------------------


def test_enum_values() -> None:
    assert Enum(Color).enums == ("RED", "GREEN", "BLUE")
    assert Enum(Color).name == "color"
    assert Enum(Color).length == 5
    assert Enum(Color, values_callable=lambda cls: [m.value for m in cls]).enums == (
        "red",
        "green",
        "blue",
    )
    assert Enum("x", "yy").enums == ("x", "yy")
    assert Enum("x", "yy").name is None


@pytest.mark.parametrize(
    "make",
    [
        lambda sa: sa.Enum(Color),
        lambda sa: sa.Enum(Size),
        lambda sa: sa.Enum(Mood),
        lambda sa: sa.Enum(Color, values_callable=lambda cls: [m.value for m in cls]),
        lambda sa: sa.Enum("a", "bb", "ccc"),
        lambda sa: sa.Enum(Color, length=12),
    ],
)
def test_enum_matches_sqlalchemy(make: Callable[[Any], Any]) -> None:
    ours, theirs = make(t), make(sqlalchemy)
    assert list(ours.enums) == list(theirs.enums)
    assert ours.length == theirs.length
    assert ours.name == theirs.name


def test_enum_with_values_callable_round_trips_members() -> None:
    type_ = Enum(Color, values_callable=lambda cls: [m.value for m in cls])
    assert bind(type_, SQLITE, Color.BLUE) == "blue"
    assert result(type_, SQLITE, "blue") is Color.BLUE


@pytest.mark.parametrize(
    ("arguments", "keywords", "match"),
    [
        ((Color,), {"length": 3}, "length=3 is shorter than its longest value"),
        ((int,), {}, "not the class int"),
        ((Color, "x"), {}, "one enum.Enum subclass or any number of strings"),
        ((1, 2), {}, "one enum.Enum subclass or any number of strings"),
        (("a",), {"values_callable": lambda cls: ["a"]}, "needs an enum.Enum subclass"),
        ((Color,), {"values_callable": lambda cls: ["a"]}, "returned 1 values for 3 members"),
    ],
)
def test_bad_enum_declarations(
    arguments: tuple[Any, ...], keywords: dict[str, Any], match: str
) -> None:
    with pytest.raises(exc.ArgumentError, match=match):
        Enum(*arguments, **keywords)


def test_named_types_and_check_constraints() -> None:
    color = Enum(Color)
    assert color.named_types(PG) == (color,)
    assert color.named_types(SQLITE) == ()
    assert ARRAY(color).named_types(PG) == (color,)
    assert Enum(Color, native_enum=False).named_types(PG) == ()
    assert Integer().named_types(PG) == ()

    assert color.check_constraint_values(SQLITE) is None
    constrained = Enum(Color, create_constraint=True)
    assert constrained.check_constraint_values(SQLITE) == ("RED", "GREEN", "BLUE")
    assert constrained.check_constraint_values(PG) is None
    assert Enum(Color, create_constraint=True, native_enum=False).check_constraint_values(PG) == (
        "RED",
        "GREEN",
        "BLUE",
    )
    assert Boolean(create_constraint=True).check_constraint_values(SQLITE) == (0, 1)
    assert Boolean(create_constraint=True).check_constraint_values(PG) is None
    assert Boolean().check_constraint_values(SQLITE) is None


def test_arrays_do_not_nest() -> None:
    with pytest.raises(exc.ArgumentError, match="Do not nest ARRAY"):
        ARRAY(ARRAY(Integer))


# -- TypeDecorator -------------------------------------------------------------------


class Upper(TypeDecorator[str]):
    impl = String
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: t.DialectLike) -> Any:
        return None if value is None else value.upper()

    def process_result_value(self, value: Any, dialect: t.DialectLike) -> Any:
        return None if value is None else value.lower()


class UTCStamp(TypeDecorator[dt.datetime]):
    """Stores epoch seconds as an aware datetime; chains with DateTime's processors."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: t.DialectLike) -> Any:
        return None if value is None else dt.datetime.fromtimestamp(value, UTC)

    def process_result_value(self, value: Any, dialect: t.DialectLike) -> Any:
        return None if value is None else value.timestamp()


class PerDialect(TypeDecorator[Any]):
    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: t.DialectLike) -> TypeEngine[Any]:
        return JSON() if dialect.name == "postgresql" else Text()


class Tagged(TypeDecorator[str]):
    impl = String
    cache_ok = True

    def __init__(self, tag: str, length: int | None = None) -> None:
        super().__init__(length)
        self.tag = tag


class Uncacheable(TypeDecorator[str]):
    impl = String


def test_decorator_builds_its_impl() -> None:
    assert Upper(20).impl_instance == String(20)
    assert Upper(20).compile_ddl(PG) == "VARCHAR(20)"
    assert Upper().python_type is str
    assert repr(Upper(20)) == "Upper(length=20)"


def test_decorator_processors_chain() -> None:
    assert bind(Upper(), SQLITE, "abc") == "ABC"
    assert result(Upper(), SQLITE, "ABC") == "abc"
    stored = bind(UTCStamp(), SQLITE, 86400.5)
    assert stored == "1970-01-02 00:00:00.500000+00:00"
    assert result(UTCStamp(), SQLITE, stored) == 86400.5
    assert bind(UTCStamp(), PG, 0) == dt.datetime(1970, 1, 1, tzinfo=UTC)
    assert result(UTCStamp(), PG, dt.datetime(1970, 1, 1, tzinfo=UTC)) == 0


def test_decorator_without_overrides_uses_the_impl_processors() -> None:
    class Plain(TypeDecorator[Any]):
        impl = Date
        cache_ok = True

    assert Plain().bind_processor(SQLITE) is Date().bind_processor(SQLITE)
    assert Plain().result_processor(PG) is None


def test_load_dialect_impl() -> None:
    assert PerDialect().compile_ddl(PG) == "JSONB"
    assert PerDialect().compile_ddl(SQLITE) == "TEXT"
    assert bind(PerDialect(), PG, [1]) == "[1]"
    assert bind(PerDialect(), SQLITE, "x") == "x"


def test_decorator_cache_keys() -> None:
    assert Upper(10) == Upper(10)
    assert Upper(10) != Upper(20)
    assert Upper(10) != String(10)
    assert Tagged("a") == Tagged("a")
    assert Tagged("a") != Tagged("b")
    assert hash(Tagged("a", 5)) == hash(Tagged("a", 5))
    first = Uncacheable()
    assert first == first
    assert first != Uncacheable()
    assert hash(first) == hash(first)


def test_decorator_with_unhashable_attributes_says_so() -> None:
    with pytest.raises(exc.ArgumentError, match="cache_ok = True but its attributes"):
        _ = Tagged(["not", "hashable"]).cache_key  # type: ignore[arg-type]


def test_decorator_needs_an_impl() -> None:
    class NoImpl(TypeDecorator[Any]):
        cache_ok = True

    with pytest.raises(exc.ArgumentError, match="needs a class-level 'impl'"):
        NoImpl()


def test_decorator_expressions() -> None:
    upper = Upper(10)
    assert upper.coerce_compared_value("=", "x") is upper
    assert upper.coerce_compared_value("=", 5) is upper
    assert upper.result_type_for_operator("||", String()) == String()

    class Money(TypeDecorator[int]):
        impl = Integer
        cache_ok = True

    money = Money()
    assert money.result_type_for_operator("+", Integer()) is money
    assert money.result_type_for_operator("/", Integer()) == Numeric()
    assert Integer().result_type_for_operator("+", money) == Integer()
    assert ARRAY(Upper).named_types(PG) == ()


def test_decorator_does_not_validate() -> None:
    UTCStamp().validate_bind_value(12.5)


# -- literals ------------------------------------------------------------------------

LITERALS = [
    (Integer(), 5, "5", "5"),
    (String(), "it's", "'it''s'", "'it''s'"),
    (Boolean(), True, "1", "true"),
    (Float(), 1.5, "1.5", "1.5"),
    (Float(), float("inf"), "9e999", "CAST('Infinity' AS FLOAT)"),
    (Numeric(), decimal.Decimal("1.50"), "'1.50'", "1.50"),
    (Date(), dt.date(2024, 1, 2), "'2024-01-02'", "CAST('2024-01-02' AS DATE)"),
    (
        DateTime(),
        dt.datetime(2024, 1, 2, 3),
        "'2024-01-02 03:00:00.000000'",
        "CAST('2024-01-02T03:00:00' AS TIMESTAMP)",
    ),
    (
        Interval(),
        dt.timedelta(days=1, seconds=2, microseconds=3),
        "86402000003",
        "CAST('1 days 2 seconds 3 microseconds' AS INTERVAL)",
    ),
    (LargeBinary(), b"\x00\xff", "X'00ff'", "CAST('\\x00ff' AS BYTEA)"),
    (
        Uuid(),
        uuid.UUID(int=1),
        "'00000000000000000000000000000001'",
        "CAST('00000000-0000-0000-0000-000000000001' AS UUID)",
    ),
    (JSON(), {"a": 1}, """'{"a": 1}'""", """CAST('{"a": 1}' AS JSONB)"""),
    (Enum(Color), Color.RED, "'RED'", "'RED'"),
    (Integer(), None, "NULL", "NULL"),
    (Upper(), "x", "'X'", "'X'"),
]


@pytest.mark.parametrize(("type_", "value", "sqlite", "postgresql"), LITERALS, ids=repr)
def test_literal_processor(
    type_: TypeEngine[Any], value: Any, sqlite: str, postgresql: str
) -> None:
    assert type_.literal_processor(SQLITE)(value) == sqlite
    assert type_.literal_processor(PG)(value) == postgresql


def test_array_literal() -> None:
    render = ARRAY(Integer, dimensions=2).literal_processor(PG)
    assert render([[1, 2], [3, 4]]) == "CAST(ARRAY[ARRAY[1, 2], ARRAY[3, 4]] AS INTEGER[][])"
    assert ARRAY(Text).literal_processor(PG)([]) == "CAST(ARRAY[] AS TEXT[])"


# -- round trips ---------------------------------------------------------------------

# Strategies: the values each type must carry through both databases unchanged.
_text_without_nul = st.text(st.characters(codec="utf-8", exclude_characters="\x00"))
_offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
_aware_datetimes = st.datetimes(
    min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 12, 31), timezones=_offsets
)
_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    # JSONB keeps numbers as NUMERIC: floats beyond 2**53 would come back as exact ints.
    | st.floats(min_value=-(2.0**53), max_value=2.0**53, allow_nan=False)
    | _text_without_nul
)
_json_documents = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_text_without_nul, children, max_size=4)
    ),
    max_leaves=12,
)
_json_containers = st.lists(_json_documents, max_size=4) | st.dictionaries(
    _text_without_nul, _json_documents, max_size=4
)


def _decimals(precision: int, scale: int) -> st.SearchStrategy[decimal.Decimal]:
    bound = decimal.Decimal(10) ** (precision - scale) - decimal.Decimal(10) ** -scale
    return st.decimals(
        min_value=-bound, max_value=bound, places=scale, allow_nan=False, allow_infinity=False
    )


@attrs.frozen
class Case:
    id: str
    type_: TypeEngine[Any]
    values: st.SearchStrategy[Any]
    orderable: bool = True
    postgresql_only: bool = False
    # Expected Python value after the round trip, when it is not the original.
    expected: Callable[[Any], Any] = _identity
    # PostgreSQL's default collation may not be codepoint order; "C" is.
    collate: str = ""


CASES = [
    Case("integer", Integer(), st.integers(-(2**31), 2**31 - 1)),
    Case("biginteger", BigInteger(), st.integers(-(2**63), 2**63 - 1)),
    Case("smallinteger", SmallInteger(), st.integers(-(2**15), 2**15 - 1)),
    Case("boolean", Boolean(), st.booleans()),
    Case("float", Float(), st.floats(allow_nan=False)),
    Case("double", Double(), st.floats(allow_nan=False)),
    Case("numeric_15_4", Numeric(15, 4), _decimals(15, 4)),
    Case("numeric_18_0", Numeric(18, 0), _decimals(18, 0)),
    Case(
        "numeric_as_float",
        Numeric(12, 3, asdecimal=False),
        _decimals(12, 3),
        expected=float,
    ),
    Case("string", String(40), _text_without_nul.filter(lambda s: len(s) <= 40), collate="C"),
    Case("text", Text(), _text_without_nul, collate="C"),
    Case("unicode_text", UnicodeText(), _text_without_nul, collate="C"),
    Case("binary", LargeBinary(), st.binary()),
    Case("date", Date(), st.dates()),
    Case("time", Time(), st.times()),
    Case("time_tz", Time(timezone=True), st.times(timezones=_offsets), orderable=False),
    Case("datetime", DateTime(), st.datetimes()),
    Case("datetime_tz", DateTime(timezone=True), _aware_datetimes),
    Case(
        "interval",
        Interval(),
        st.timedeltas(min_value=dt.timedelta(days=-36500), max_value=dt.timedelta(days=36500)),
    ),
    Case("uuid", Uuid(), st.uuids()),
    Case("uuid_str", Uuid(as_uuid=False), st.uuids().map(str)),
    Case(
        "uuid_hex_in",
        Uuid(as_uuid=False),
        st.uuids().map(lambda u: u.hex),
        expected=lambda v: str(uuid.UUID(v)),
    ),
    Case("uuid_char32", Uuid(native_uuid=False), st.uuids()),
    Case("json", JSON(), _json_containers, orderable=False),
    Case("json_none_as_null", JSON(none_as_null=True), _json_containers, orderable=False),
    Case("enum", Enum(Color), st.sampled_from(Color), orderable=False),
    Case("enum_int", Enum(Size), st.sampled_from(Size), orderable=False),
    Case("enum_str", Enum(Mood, native_enum=False), st.sampled_from(Mood), orderable=False),
    Case(
        "enum_strings",
        Enum("x", "long value", "it's", name="strings"),
        st.sampled_from(["x", "long value", "it's"]),
        orderable=False,
    ),
    Case(
        "enum_values",
        Enum(Color, name="colors", values_callable=lambda cls: [m.value for m in cls]),
        st.sampled_from(Color),
        orderable=False,
    ),
    Case(
        "decorator",
        UTCStamp(),
        st.integers(0, 2**33).map(lambda n: n / 4),
    ),
    Case(
        "array_integer",
        ARRAY(Integer),
        st.lists(st.none() | st.integers(-(2**31), 2**31 - 1)),
        orderable=False,
        postgresql_only=True,
    ),
    Case(
        "array_text_2d",
        ARRAY(Text, dimensions=2),
        st.integers(1, 3).flatmap(
            lambda width: st.lists(st.lists(_text_without_nul, min_size=width, max_size=width))
        ),
        orderable=False,
        postgresql_only=True,
    ),
    Case(
        "array_enum",
        ARRAY(Enum(Color)),
        st.lists(st.sampled_from(Color)),
        orderable=False,
        postgresql_only=True,
    ),
    Case(
        "array_uuid_str",
        ARRAY(Uuid(as_uuid=False)),
        st.lists(st.uuids().map(str)),
        orderable=False,
        postgresql_only=True,
    ),
    Case(
        "array_json",
        ARRAY(JSON),
        st.lists(_json_containers, max_size=3),
        orderable=False,
        postgresql_only=True,
    ),
    Case(
        "array_datetime_tz_tuple",
        ARRAY(DateTime(timezone=True), as_tuple=True),
        st.lists(_aware_datetimes).map(tuple),
        orderable=False,
        postgresql_only=True,
    ),
]

ROUND_TRIP_SETTINGS = settings(
    max_examples=50,
    deadline=None,
    # The connection (a function-scoped fixture) is meant to serve every example.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

_table_numbers = itertools.count()


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class SQLiteStore:
    """Stores values in a fresh table through aiosqlite and reads them back."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self.connection = connection

    async def round_trip(
        self, type_: TypeEngine[Any], values: Sequence[Any], collate: str = ""
    ) -> tuple[list[Any], list[Any]]:
        """(values in insertion order, non-null values in ORDER BY order)."""
        bind = type_.bind_processor(SQLITE) or _identity
        load = type_.result_processor(SQLITE) or _identity
        table = f"rt_{next(_table_numbers)}"
        await self.connection.execute(
            f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, v {type_.compile_ddl(SQLITE)})"
        )
        try:
            await self.connection.executemany(
                f"INSERT INTO {table} (id, v) VALUES (?, ?)",
                [(i, bind(value)) for i, value in enumerate(values)],
            )
            rows = await self.connection.execute_fetchall(f"SELECT v FROM {table} ORDER BY id")
            ordered = await self.connection.execute_fetchall(
                f"SELECT v FROM {table} WHERE v IS NOT NULL ORDER BY v, id"
            )
        finally:
            await self.connection.execute(f"DROP TABLE {table}")
        return [load(row[0]) for row in rows], [load(row[0]) for row in ordered]

    async def fetch_raw(self, sql: str) -> list[Any]:
        return [row[0] for row in await self.connection.execute_fetchall(sql)]


class PostgreSQLStore:
    """The same through asyncpg, creating the named types the column needs."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection

    async def round_trip(
        self, type_: TypeEngine[Any], values: Sequence[Any], collate: str = ""
    ) -> tuple[list[Any], list[Any]]:
        bind = type_.bind_processor(PG) or _identity
        load = type_.result_processor(PG) or _identity
        table = f"rt_{next(_table_numbers)}"
        named = type_.named_types(PG)
        for enum_type in named:
            labels = ", ".join(_sql_string(value) for value in enum_type.enums)
            await self.connection.execute(
                f"CREATE TYPE {enum_type.compile_ddl(PG)} AS ENUM ({labels})"
            )
        await self.connection.execute(
            f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, v {type_.compile_ddl(PG)})"
        )
        order_by = f'v COLLATE "{collate}"' if collate else "v"
        try:
            await self.connection.executemany(
                f"INSERT INTO {table} (id, v) VALUES ($1, $2)",
                [(i, bind(value)) for i, value in enumerate(values)],
            )
            rows = await self.connection.fetch(f"SELECT v FROM {table} ORDER BY id")
            ordered = await self.connection.fetch(
                f"SELECT v FROM {table} WHERE v IS NOT NULL ORDER BY {order_by}, id"
            )
        finally:
            await self.connection.execute(f"DROP TABLE {table}")
            for enum_type in named:
                await self.connection.execute(f"DROP TYPE {enum_type.compile_ddl(PG)}")
        return [load(row[0]) for row in rows], [load(row[0]) for row in ordered]

    async def fetch_raw(self, sql: str) -> list[Any]:
        return [row[0] for row in await self.connection.fetch(sql)]


Store = SQLiteStore | PostgreSQLStore


@pytest.fixture
async def sqlite_store() -> AsyncIterator[SQLiteStore]:
    async with aiosqlite.connect(":memory:") as connection:
        yield SQLiteStore(connection)


@pytest.fixture
async def pg_store(pg_dsn: str, pg_schema: str) -> AsyncIterator[PostgreSQLStore]:
    connection = await asyncpg.connect(pg_dsn)
    try:
        await connection.execute(f"SET search_path TO {pg_schema}")
        yield PostgreSQLStore(connection)
    finally:
        await connection.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def store(request: pytest.FixtureRequest) -> Store:
    fixture = "pg_store" if request.param == "postgresql" else "sqlite_store"
    found: Store = request.getfixturevalue(fixture)
    return found


async def check_round_trip(store: Store, case: Case, values: list[Any]) -> None:
    for value in values:
        case.type_.validate_bind_value(value)
    loaded, ordered = await store.round_trip(case.type_, values, case.collate)
    expected = [None if value is None else case.expected(value) for value in values]
    assert loaded == expected
    if case.orderable:
        assert ordered == sorted(value for value in expected if value is not None)


# Hypothesis draws before the coroutine starts (a draw inside it would raise
# hypothesis' StopTest through anyio's runner), so each case gets its own test
# function with its own strategy.


def _values(case: Case) -> st.SearchStrategy[list[Any]]:
    return st.lists(st.none() | case.values, max_size=8)


def _sqlite_round_trip_test(case: Case) -> Any:
    @pytest.mark.anyio
    @ROUND_TRIP_SETTINGS
    @given(values=_values(case))
    async def test(sqlite_store: SQLiteStore, values: list[Any]) -> None:
        await check_round_trip(sqlite_store, case, values)

    return test


def _postgresql_round_trip_test(case: Case) -> Any:
    @pytest.mark.anyio
    @ROUND_TRIP_SETTINGS
    @given(values=_values(case))
    async def test(pg_store: PostgreSQLStore, values: list[Any]) -> None:
        await check_round_trip(pg_store, case, values)

    return test


for _case in CASES:
    if not _case.postgresql_only:
        globals()[f"test_round_trip_sqlite_{_case.id}"] = _sqlite_round_trip_test(_case)
    globals()[f"test_round_trip_postgresql_{_case.id}"] = _postgresql_round_trip_test(_case)


# Fixed round trips for the documented conversions.


@pytest.mark.anyio
async def test_naive_column_stores_aware_values_as_utc(store: Store) -> None:
    values = [dt.datetime(2024, 1, 1, 12, tzinfo=PLUS_5), dt.datetime(2024, 1, 1, 12)]
    loaded, ordered = await store.round_trip(DateTime(), values)
    assert loaded == [dt.datetime(2024, 1, 1, 7), dt.datetime(2024, 1, 1, 12)]
    assert all(value.tzinfo is None for value in loaded)
    assert ordered == loaded


@pytest.mark.anyio
async def test_aware_column_takes_naive_values_as_utc(store: Store) -> None:
    values = [dt.datetime(2024, 1, 1, 12), dt.datetime(2024, 1, 1, 12, tzinfo=MINUS_3_30)]
    loaded, ordered = await store.round_trip(DateTime(timezone=True), values)
    assert loaded == [
        dt.datetime(2024, 1, 1, 12, tzinfo=UTC),
        dt.datetime(2024, 1, 1, 15, 30, tzinfo=UTC),
    ]
    assert all(value.tzinfo == UTC for value in loaded)
    assert ordered == loaded


@pytest.mark.anyio
async def test_time_zones_of_times(store: Store) -> None:
    loaded, _ = await store.round_trip(Time(), [dt.time(1, tzinfo=PLUS_5)])
    assert loaded == [dt.time(20)]
    loaded, _ = await store.round_trip(Time(timezone=True), [dt.time(1), dt.time(1, tzinfo=PLUS_5)])
    assert loaded == [dt.time(1, tzinfo=UTC), dt.time(1, tzinfo=PLUS_5)]
    assert loaded[1].utcoffset() == dt.timedelta(hours=5)


@pytest.mark.anyio
async def test_aware_datetimes_sort_by_instant(store: Store) -> None:
    values = [
        dt.datetime(2024, 1, 1, 12, tzinfo=PLUS_5),  # 07:00 UTC
        dt.datetime(2024, 1, 1, 6, tzinfo=MINUS_3_30),  # 09:30 UTC
        dt.datetime(2024, 1, 1, 8, tzinfo=UTC),
    ]
    _, ordered = await store.round_trip(DateTime(timezone=True), values)
    assert ordered == [values[0], values[2], values[1]]


@pytest.mark.anyio
async def test_json_none(store: Store) -> None:
    # JSON() stores None as the document null; JSON(none_as_null=True) as SQL NULL.
    loaded, _ = await store.round_trip(JSON(), [None, JSON.NULL, {"a": None}])
    assert loaded == [None, None, {"a": None}]
    loaded, _ = await store.round_trip(JSON(none_as_null=True), [None, JSON.NULL])
    assert loaded == [None, None]


@pytest.mark.anyio
async def test_json_none_is_stored_as_document_or_null(sqlite_store: SQLiteStore) -> None:
    connection = sqlite_store.connection
    await connection.execute("CREATE TABLE j (a JSON, b JSON)")
    await connection.execute(
        "INSERT INTO j VALUES (?, ?)",
        (bind(JSON(), SQLITE, None), bind(JSON(none_as_null=True), SQLITE, None)),
    )
    assert list(await connection.execute_fetchall("SELECT a, b FROM j")) == [("null", None)]


@pytest.mark.anyio
async def test_json_top_level_numbers_on_sqlite(sqlite_store: SQLiteStore) -> None:
    # Documented: SQLite's numeric affinity turns these documents into numbers.
    loaded, _ = await sqlite_store.round_trip(JSON(), [5, 1.5, 1.0, "5", True])
    assert loaded == [5, 1.5, 1, "5", True]


@pytest.mark.anyio
async def test_json_top_level_scalars_on_postgresql(pg_store: PostgreSQLStore) -> None:
    loaded, _ = await pg_store.round_trip(JSON(), [5, 1.5, "5", True, 2**80])
    assert loaded == [5, 1.5, "5", True, 2**80]


@pytest.mark.anyio
async def test_numeric_rounds_to_its_scale(store: Store) -> None:
    loaded, _ = await store.round_trip(Numeric(10, 2), [decimal.Decimal("1.5"), 2, 2.25])
    assert loaded == [decimal.Decimal("1.50"), decimal.Decimal("2.00"), decimal.Decimal("2.25")]
    assert [str(value) for value in loaded] == ["1.50", "2.00", "2.25"]


@pytest.mark.anyio
async def test_float_takes_decimals(store: Store) -> None:
    loaded, _ = await store.round_trip(Float(), [decimal.Decimal("1.25"), 3])
    assert loaded == [1.25, 3.0]
    assert all(type(value) is float for value in loaded)


@pytest.mark.anyio
async def test_boolean_takes_zero_and_one(store: Store) -> None:
    loaded, _ = await store.round_trip(Boolean(), [0, 1, True])
    assert loaded == [False, True, True]
    assert all(type(value) is bool for value in loaded)


@pytest.mark.anyio
async def test_uuid_strings_bind_to_uuid_columns(store: Store) -> None:
    value = uuid.UUID(int=2**100)
    loaded, _ = await store.round_trip(Uuid(), [str(value), value.hex])
    assert loaded == [value, value]


@pytest.mark.anyio
async def test_binary_buffers(store: Store) -> None:
    loaded, _ = await store.round_trip(LargeBinary(), [bytearray(b"ab"), memoryview(b"cd")])
    assert loaded == [b"ab", b"cd"]


@pytest.mark.anyio
async def test_enum_check_constraint_values_work_as_sql(sqlite_store: SQLiteStore) -> None:
    type_ = Enum(Color, create_constraint=True)
    values = type_.check_constraint_values(SQLITE)
    assert values is not None
    render = String().literal_processor(SQLITE)
    connection = sqlite_store.connection
    await connection.execute(
        f"CREATE TABLE e (v {type_.compile_ddl(SQLITE)} "
        f"CHECK (v IN ({', '.join(render(v) for v in values)})))"
    )
    await connection.execute("INSERT INTO e VALUES (?)", (bind(type_, SQLITE, Color.RED),))
    with pytest.raises(aiosqlite.IntegrityError):
        await connection.execute("INSERT INTO e VALUES (?)", ("red",))


@pytest.mark.anyio
@pytest.mark.parametrize(("type_", "value", "sqlite", "postgresql"), LITERALS, ids=repr)
async def test_literals_are_valid_sql(
    store: Store, type_: TypeEngine[Any], value: Any, sqlite: str, postgresql: str
) -> None:
    dialect = SQLITE if isinstance(store, SQLiteStore) else PG
    raw = await store.fetch_raw(f"SELECT {sqlite if dialect is SQLITE else postgresql}")
    loaded = result(type_, dialect, raw[0])
    assert loaded == (value.lower() if isinstance(type_, Upper) else value)
