"""Bad input fails early, pure: each mistake raises with a message naming it.

Errors come from building the statement where possible (a value of the wrong
type, an unknown column), else from compiling it (a dialect that can't render
it), else from ``construct_params`` (execute-time parameters); never from the
database.
"""

from __future__ import annotations

import datetime
import decimal

import pytest

from asyncsession import exc
from asyncsession.sql import (
    Column,
    CreateTable,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    case,
    except_,
    insert,
    literal,
    select,
    text,
    tuple_,
    union,
    update,
)
from asyncsession.sql.ddl import sort_tables
from asyncsession.sql.dialects.postgresql import PGDialect
from asyncsession.sql.dialects.sqlite import SQLiteDialect

metadata = MetaData()
users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(50)),
    Column("age", Integer),
)
u = users.c


# -- values of the wrong type ------------------------------------------------------------


class Opaque:
    """Something no column type can bind."""


@pytest.mark.parametrize("value", [object(), Opaque()], ids=["object", "opaque"])
def test_integer_column_compared_with_a_value_it_cannot_bind(value: object) -> None:
    kind = type(value).__name__
    with pytest.raises(exc.ArgumentError) as caught:
        _ = u.age == value
    message = str(caught.value)
    assert "column 'users.age'" in message
    assert f"value of type {kind}" in message
    assert "Integer" in message


def test_values_of_another_type_bind_as_their_own_type() -> None:
    # As in SQLAlchemy: a literal of another family gets its natural type.
    for value in (1, True, 1.5, decimal.Decimal("2"), "3", datetime.date(2020, 1, 1)):
        _ = u.age == value


def test_in_list_item_of_the_wrong_type() -> None:
    with pytest.raises(exc.ArgumentError, match=r"value of type object .* column 'users.age'"):
        u.age.in_([1, object()])


def test_in_needs_a_list() -> None:
    with pytest.raises(exc.ArgumentError, match=r"in_\(\) for column 'users.id' takes a list"):
        u.id.in_("1,2")
    with pytest.raises(exc.ArgumentError, match="needs tuples of that length"):
        tuple_(u.id, u.name).in_([(1,)])


def test_insert_value_of_the_wrong_type() -> None:
    with pytest.raises(
        exc.ArgumentError,
        match=r"Cannot use a value of type str \('old'\) for column 'users.age' of type Integer",
    ):
        insert(users).values(age="old")
    with pytest.raises(exc.ArgumentError, match=r"column 'users.age'"):
        update(users).values(age=object())


def test_execute_time_parameter_of_the_wrong_type() -> None:
    compiled, extracted = SQLiteDialect().compile(insert(users), column_keys=["age"])
    with pytest.raises(
        exc.ArgumentError, match=r"Parameter 'age' got a value of type str \('x'\)"
    ) as caught:
        compiled.construct_params(extracted, {"age": "x"})
    assert "INSERT INTO users (age) VALUES (?)" in str(caught.value)


def test_like_pattern_and_is_operand() -> None:
    with pytest.raises(exc.ArgumentError, match=r"LIKE pattern for column 'users.name'.* got int"):
        u.name.startswith(5)
    with pytest.raises(exc.ArgumentError, match="IS / IS NOT compares with None, True, False"):
        u.name.is_(5)


def test_limit_must_be_a_non_negative_int() -> None:
    for bad in (-1, "5", 2.0, True):
        with pytest.raises(exc.ArgumentError, match=r"limit\(\) takes a non-negative int"):
            select(u.id).limit(bad)  # type: ignore[arg-type]
    with pytest.raises(exc.ArgumentError, match=r"offset\(\) takes a non-negative int"):
        select(u.id).offset(-5)


# -- unknown columns and parameters ----------------------------------------------------


def test_unknown_column_in_values() -> None:
    with pytest.raises(
        exc.ArgumentError,
        match="Unknown column 'nickname' for table 'users' in INSERT; the columns are "
        "id, name, age",
    ):
        insert(users).values(nickname="x")
    with pytest.raises(exc.ArgumentError, match=r"Unknown column 'nickname' .* in UPDATE"):
        update(users).values(nickname="x")
    with pytest.raises(exc.ArgumentError, match="Unknown column 'nickname'"):
        insert(users).values([{"name": "a"}, {"nickname": "b"}])


def test_column_of_another_table_in_values() -> None:
    other = Table("other", MetaData(), Column("id", Integer, primary_key=True))
    with pytest.raises(exc.ArgumentError, match="is not a column of table 'users'"):
        insert(users).values({other.c.id: 1})


@pytest.mark.parametrize("dialect_class", [SQLiteDialect, PGDialect])
def test_unknown_column_keys_at_compile(dialect_class: type[SQLiteDialect | PGDialect]) -> None:
    with pytest.raises(
        exc.ArgumentError,
        match="Unknown column 'nickname' in the parameters for INSERT into 'users'",
    ):
        dialect_class().compile(insert(users), column_keys=["name", "nickname"])
    with pytest.raises(exc.ArgumentError, match="for UPDATE of 'users'; the columns are"):
        dialect_class().compile(update(users), column_keys=["nickname"])


def test_unknown_execute_time_parameter() -> None:
    compiled, extracted = SQLiteDialect().compile(select(u.id).where(u.id == bindparam("uid")))
    with pytest.raises(exc.ArgumentError) as caught:
        compiled.construct_params(extracted, {"uid": 1, "user_id": 1})
    message = str(caught.value)
    assert "Unknown parameter(s) 'user_id'" in message
    assert "it takes 'uid'" in message
    assert "[SQL: SELECT users.id FROM users WHERE users.id = ?]" in message

    compiled, extracted = SQLiteDialect().compile(insert(users), column_keys=["name"])
    with pytest.raises(exc.ArgumentError, match=r"Unknown parameter\(s\) 'age'"):
        compiled.construct_params(extracted, {"name": "x", "age": 1})


def test_statement_without_parameters_rejects_any() -> None:
    compiled, extracted = SQLiteDialect().compile(select(u.id))
    with pytest.raises(exc.ArgumentError, match="it takes no parameters"):
        compiled.construct_params(extracted, {"x": 1})


def test_missing_required_bindparam() -> None:
    compiled, extracted = PGDialect().compile(
        select(u.id).where(u.id == bindparam("uid"), u.name == bindparam("name", "default"))
    )
    with pytest.raises(exc.ArgumentError, match="A value is required for parameter 'uid'"):
        compiled.construct_params(extracted, {"name": "x"})
    text_compiled, text_extracted = SQLiteDialect().compile(text("SELECT :a"))
    with pytest.raises(exc.ArgumentError, match=r"parameter 'a' \[SQL: SELECT \?\]"):
        text_compiled.construct_params(text_extracted)


def test_missing_execute_time_value_for_an_insert_column() -> None:
    compiled, extracted = SQLiteDialect().compile(insert(users), column_keys=["name", "age"])
    with pytest.raises(exc.ArgumentError, match="A value is required for parameter 'age'"):
        compiled.construct_params(extracted, {"name": "x"})


def test_expanding_bindparam_needs_its_values() -> None:
    stmt = select(u.id).where(u.id.in_(bindparam("ids", expanding=True)))
    with pytest.raises(exc.CompileError, match="Expanding parameter 'ids' needs its list"):
        SQLiteDialect().compile(stmt)


# -- joins -----------------------------------------------------------------------------


def _join_tables() -> tuple[Table, Table, Table]:
    md = MetaData()
    people = Table("people", md, Column("id", Integer, primary_key=True))
    messages = Table(
        "messages",
        md,
        Column("id", Integer, primary_key=True),
        Column("sender_id", ForeignKey("people.id")),
        Column("recipient_id", ForeignKey("people.id")),
    )
    tags = Table("tags", md, Column("id", Integer, primary_key=True))
    return people, messages, tags


def test_ambiguous_join_names_both_paths() -> None:
    people, messages, _ = _join_tables()
    with pytest.raises(exc.ArgumentError) as caught:
        select(people).join(messages)
    message = str(caught.value)
    assert "Can't determine the join between 'people' and 'messages'" in message
    assert "column 'people.id' = column 'messages.sender_id'" in message
    assert "column 'people.id' = column 'messages.recipient_id'" in message
    assert "give the ON clause explicitly" in message
    with pytest.raises(exc.ArgumentError, match="several foreign key paths"):
        people.join(messages)
    # With an ON clause it is fine.
    select(people).join(messages, messages.c.sender_id == people.c.id)


def test_join_without_foreign_key() -> None:
    people, _, tags = _join_tables()
    with pytest.raises(
        exc.ArgumentError,
        match="Can't find any foreign key relationships between 'people' and 'tags'",
    ):
        select(people).join(tags)
    with pytest.raises(exc.ArgumentError, match="between 'people' and 'tags'"):
        people.join(tags)


def test_join_with_nothing_to_join_from() -> None:
    people, _, _ = _join_tables()
    with pytest.raises(exc.ArgumentError, match="the SELECT has no FROM to join from"):
        select(literal(1)).join(people)


# -- schema -----------------------------------------------------------------------------


def test_table_redefined_with_other_columns() -> None:
    md = MetaData()
    original = Table("t", md, Column("id", Integer, primary_key=True), Column("x", String))
    with pytest.raises(
        exc.ArgumentError,
        match=r"Table 't' is already defined in this MetaData with different columns \(id, x\)",
    ):
        Table("t", md, Column("id", Integer, primary_key=True), Column("x", Integer))
    with pytest.raises(exc.ArgumentError, match="already defined"):
        Table("t", md, Column("id", Integer, primary_key=True))
    # The same definition again, or none, is the same table.
    again = Table("t", md, Column("id", Integer, primary_key=True), Column("x", String))
    assert again is original
    assert Table("t", md) is original
    assert md.tables == {"t": original}


def test_same_name_in_another_schema_is_another_table() -> None:
    md = MetaData()
    plain = Table("t", md, Column("id", Integer, primary_key=True))
    other = Table("t", md, Column("id", String, primary_key=True), schema="s")
    assert other is not plain
    assert sorted(md.tables) == ["s.t", "t"]


def test_unknown_table_and_column_arguments() -> None:
    with pytest.raises(exc.ArgumentError, match=r"Column 'q': unknown argument\(s\) bogus"):
        Column("q", Integer, bogus=1)
    with pytest.raises(exc.ArgumentError, match=r"Table 'q': unknown argument\(s\) bogus"):
        Table("q", MetaData(), Column("id", Integer), bogus=1)
    with pytest.raises(exc.ArgumentError, match="Table 'q' has two columns named 'id'"):
        Table("q", MetaData(), Column("id", Integer), Column("id", String))
    with pytest.raises(exc.ArgumentError, match="second argument must be a MetaData"):
        Table("q", "not metadata", Column("id", Integer))  # type: ignore[arg-type]


def test_foreign_key_to_an_unknown_table() -> None:
    md = MetaData()
    t = Table("t", md, Column("id", Integer, primary_key=True), Column("x", ForeignKey("nope.id")))
    with pytest.raises(exc.NoReferencedTableError) as caught:
        _ = next(iter(t.c.x.foreign_keys)).column
    assert "column 't.x' refers to table 'nope'" in str(caught.value)
    with pytest.raises(exc.NoReferencedTableError, match="'nope'"):
        SQLiteDialect().compile(CreateTable(t))
    with pytest.raises(exc.NoReferencedTableError, match="'nope'"):
        _ = md.sorted_tables


def test_foreign_key_to_an_unknown_column() -> None:
    md = MetaData()
    Table("target", md, Column("id", Integer, primary_key=True), Column("code", String))
    t = Table(
        "t", md, Column("id", Integer, primary_key=True), Column("x", ForeignKey("target.nope"))
    )
    with pytest.raises(exc.NoReferencedColumnError) as caught:
        PGDialect().compile(CreateTable(t))
    message = str(caught.value)
    assert "column 't.x' refers to column target.nope" in message
    assert "has columns id, code" in message


def test_malformed_foreign_key_spec() -> None:
    with pytest.raises(exc.ArgumentError, match=r"expected 'table.column'"):
        ForeignKey("nodot")


def test_column_without_a_type_in_ddl_is_named() -> None:
    t = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("mystery"))
    with pytest.raises(exc.CompileError, match=r"column 't.mystery'"):
        SQLiteDialect().compile(CreateTable(t))


def test_dependency_cycle_names_the_tables() -> None:
    md = MetaData()
    Table("a", md, Column("id", Integer, primary_key=True), Column("b_id", ForeignKey("b.id")))
    Table("b", md, Column("id", Integer, primary_key=True), Column("c_id", ForeignKey("c.id")))
    Table("c", md, Column("id", Integer, primary_key=True), Column("a_id", ForeignKey("a.id")))
    with pytest.raises(exc.CircularDependencyError) as caught:
        sort_tables(md.tables.values())
    assert "a -> b -> c -> a" in str(caught.value)
    assert "use_alter=True" in str(caught.value)


# -- statements ------------------------------------------------------------------------


def test_plain_string_as_where_clause() -> None:
    with pytest.raises(
        exc.ArgumentError,
        match=r"A plain string is not accepted as a WHERE clause \('id = 1'\); wrap it in text",
    ):
        select(u.id).where("id = 1")
    with pytest.raises(exc.ArgumentError, match="plain string"):
        select(u.id).having("count(*) > 1")


def test_plain_string_as_a_column() -> None:
    with pytest.raises(exc.ArgumentError, match=r"not the string 'id'; use column\(\)"):
        select("id")
    with pytest.raises(exc.ArgumentError, match=r"text\(\) cannot be a column"):
        select(text("id"))


def test_text_bindparams_with_an_unknown_name() -> None:
    stmt = text("SELECT * FROM users WHERE id = :id")
    with pytest.raises(
        exc.ArgumentError,
        match=r"This text\(\) construct has no parameter named 'user_id'; its parameters "
        r"are \['id'\]",
    ):
        stmt.bindparams(user_id=1)
    with pytest.raises(exc.ArgumentError, match="no parameter named 'id-1'"):
        stmt.bindparams(**{"id-1": 1})
    with pytest.raises(exc.ArgumentError, match="no parameter named 'x'"):
        stmt.bindparams(bindparam("x", type_=Integer))
    with pytest.raises(exc.ArgumentError, match="its parameters are none"):
        text("SELECT 1").bindparams(x=1)
    with pytest.raises(exc.ArgumentError, match=r"text\(\) takes a string, got int"):
        text(5)  # type: ignore[arg-type]


def test_compound_with_mismatched_column_counts() -> None:
    with pytest.raises(
        exc.ArgumentError,
        match="All SELECTs in a UNION must have the same number of columns; got 1 and 2",
    ):
        union(select(u.id), select(u.id, u.name))
    with pytest.raises(exc.ArgumentError, match=r"in a EXCEPT .* got 2 and 1"):
        except_(select(u.id, u.name), select(u.id))


def test_select_as_from_needs_subquery() -> None:
    with pytest.raises(exc.ArgumentError, match=r"call .subquery\(\) on it first"):
        select(u.id).select_from(select(u.id))


def test_case_needs_pairs() -> None:
    with pytest.raises(exc.ArgumentError, match=r"case\(\) needs at least one"):
        case()
    with pytest.raises(exc.ArgumentError, match=r"case\(\) takes \(condition, result\) pairs"):
        case([u.id == 1, "one"])


def test_clause_has_no_truth_value() -> None:
    with pytest.raises(TypeError, match=r"use and_\(\)/or_\(\) to combine conditions"):
        bool(u.id > 1)


def test_literal_of_an_expression() -> None:
    with pytest.raises(exc.ArgumentError, match=r"literal\(\) takes a Python value, not Column"):
        literal(u.id)


def test_dialect_specific_constructs() -> None:
    with pytest.raises(exc.CompileError, match="DISTINCT ON is PostgreSQL-only"):
        SQLiteDialect().compile(select(u.id).distinct(u.name))
    with pytest.raises(exc.CompileError, match="UPDATE of 'users' has no values"):
        PGDialect().compile(update(users))
