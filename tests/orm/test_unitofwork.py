"""The flush planner and the topological sort: pure, no database, no event loop."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from asyncsession import CircularDependencyError, ForeignKey, InvalidRequestError, String, func
from asyncsession.orm import topological
from asyncsession.orm.decl import DeclarativeBase, Mapped, mapped_column, registry
from asyncsession.orm.state import InstanceState, instance_state
from asyncsession.orm.unitofwork import (
    MAX_INSERT_ROWS,
    DeleteBatch,
    FlushPlan,
    InsertBatch,
    Match,
    UpdateGroup,
    _info,
    _insert_template,
    plan_flush,
)
from asyncsession.sql import Column, ForeignKeyConstraint, Integer, Table
from asyncsession.sql.dialects.postgresql import PGDialect
from asyncsession.sql.dialects.sqlite import SQLiteDialect
from tests.strategies import flush_graphs

DIALECT = SQLiteDialect()


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    note: Mapped[str | None]
    status: Mapped[str] = mapped_column(server_default="new")
    score: Mapped[int] = mapped_column(default=0)


class Address(Base):
    __tablename__ = "addresses"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    email: Mapped[str]


class Node(Base):
    __tablename__ = "nodes"
    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id"))
    name: Mapped[str | None]


class Doc(Base):
    __tablename__ = "docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]
    version: Mapped[int] = mapped_column()
    __mapper_args__ = {"version_id_col": version}


class Token(Base):
    __tablename__ = "tokens"
    id: Mapped[str] = mapped_column(primary_key=True, server_default=func.gen_random_uuid())
    value: Mapped[str]


class Ticket(Base):
    __tablename__ = "tickets"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    title: Mapped[str]


class Lazy(Base):
    __tablename__ = "lazies"
    id: Mapped[int] = mapped_column(primary_key=True)
    made: Mapped[str] = mapped_column(server_default="x")
    __mapper_args__ = {"eager_defaults": False}


class Plain:
    """Base of the classes mapped imperatively here: a keyword constructor."""

    def __init__(self, **values: Any) -> None:
        for key, value in values.items():
            setattr(self, key, value)


def states(*objs: Any) -> list[InstanceState]:
    return [instance_state(o) for o in objs]


def loaded(*objs: Any) -> list[InstanceState]:
    """States as if the objects had been loaded from the database (unset columns: NULL)."""
    out = []
    for obj in objs:
        state = instance_state(obj)
        for key in state.mapper.column_attrs:
            obj.__dict__.setdefault(key, None)
        state.key = state.mapper.identity_key_from_instance(obj)
        state.commit_all()
        out.append(state)
    return out


def summary(plan: FlushPlan) -> list[tuple[str, str, list[Any]]]:
    """(kind, table, objects) per step."""
    kinds = {InsertBatch: "insert", UpdateGroup: "update", DeleteBatch: "delete"}
    return [
        (kinds[type(step)], step.table.name, [plan.states[i].object for i in step.states])
        for step in plan.steps
    ]


# -- order ------------------------------------------------------------------------------------


def test_parent_table_inserted_before_child_table() -> None:
    a1 = Address(user_id=1, email="a")
    u1 = User(id=1, name="u")
    a2 = Address(user_id=1, email="b")
    plan = plan_flush(states(a1, u1, a2), [], [], DIALECT)
    assert summary(plan) == [("insert", "users", [u1]), ("insert", "addresses", [a1, a2])]


def test_deletes_go_children_first() -> None:
    u1 = User(id=1, name="u")
    a1 = Address(id=5, user_id=1, email="a")
    plan = plan_flush([], [], loaded(u1, a1), DIALECT)
    assert summary(plan) == [("delete", "addresses", [a1]), ("delete", "users", [u1])]


def test_inserts_then_updates_then_deletes() -> None:
    old_user, old_address = User(id=1, name="u"), Address(id=1, user_id=1, email="a")
    gone = Address(id=2, user_id=1, email="b")
    loaded(old_user, old_address, gone)
    old_user.name = "v"
    old_address.email = "changed"
    new_address = Address(user_id=1, email="c")
    new_user = User(id=2, name="n")
    plan = plan_flush(
        states(new_address, new_user),
        states(old_address, old_user),
        states(gone),
        DIALECT,
    )
    assert [(kind, table) for kind, table, _ in summary(plan)] == [
        ("insert", "users"),
        ("insert", "addresses"),
        ("update", "users"),
        ("update", "addresses"),
        ("delete", "addresses"),
    ]


def test_self_referential_rows_go_parent_first() -> None:
    leaf = Node(id=3, parent_id=2)
    root = Node(id=1)
    other_root = Node(id=10)
    middle = Node(id=2, parent_id=1)
    sibling = Node(id=4, parent_id=1)
    plan = plan_flush(states(leaf, root, other_root, middle, sibling), [], [], DIALECT)
    assert summary(plan) == [
        ("insert", "nodes", [root, other_root]),
        ("insert", "nodes", [middle, sibling]),
        ("insert", "nodes", [leaf]),
    ]


def test_self_referential_rows_without_references_share_a_statement() -> None:
    nodes = [Node(id=i, parent_id=100) for i in range(5)]  # 100 is already in the database
    plan = plan_flush(states(*nodes), [], [], DIALECT)
    assert summary(plan) == [("insert", "nodes", nodes)]


def test_a_row_may_reference_itself() -> None:
    node = Node(id=1, parent_id=1)
    assert summary(plan_flush(states(node), [], [], DIALECT)) == [("insert", "nodes", [node])]


def test_self_referential_deletes_go_children_first() -> None:
    root, middle, leaf = Node(id=1), Node(id=2, parent_id=1), Node(id=3, parent_id=2)
    plan = plan_flush([], [], loaded(root, leaf, middle), DIALECT)
    assert summary(plan) == [
        ("delete", "nodes", [leaf]),
        ("delete", "nodes", [middle]),
        ("delete", "nodes", [root]),
    ]


def test_deleted_row_orders_by_its_loaded_foreign_key() -> None:
    root, child = Node(id=1), Node(id=2, parent_id=1)
    loaded(root, child)
    child.parent_id = None  # changed, but the row still references root until updated
    plan = plan_flush([], [], states(root, child), DIALECT)
    assert summary(plan) == [("delete", "nodes", [child]), ("delete", "nodes", [root])]


def test_deleting_rows_of_a_self_referencing_table_needs_their_foreign_keys() -> None:
    root, child = Node(id=1), Node(id=2, parent_id=1)
    loaded(root, child)
    del child.__dict__["parent_id"]  # expired
    with pytest.raises(InvalidRequestError, match=r"Node\.parent_id is not loaded"):
        plan_flush([], [], states(root, child), DIALECT)


# -- tables that reference each other -----------------------------------------------------------


def cyclic_tables() -> tuple[type, type]:
    reg = registry()

    class A(Plain):
        pass

    class B(Plain):
        pass

    metadata = reg.metadata
    ta = Table(
        "a",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("b_id", Integer, ForeignKey("b.id", use_alter=True, name="fk_a_b")),
    )
    tb = Table(
        "b",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("a_id", Integer, ForeignKey("a.id")),
    )
    reg.map_imperatively(A, ta)
    reg.map_imperatively(B, tb)
    return A, B


def test_tables_in_a_cycle_are_ordered_row_by_row() -> None:
    A, B = cyclic_tables()
    b1 = B(id=1, a_id=1)
    a1 = A(id=1)
    a2 = A(id=2, b_id=1)
    plan = plan_flush(states(b1, a1, a2), [], [], DIALECT)
    assert summary(plan) == [("insert", "a", [a1]), ("insert", "b", [b1]), ("insert", "a", [a2])]


def test_rows_referencing_each_other_in_a_cycle_raise() -> None:
    A, B = cyclic_tables()
    a1, b1 = A(id=1, b_id=7), B(id=7, a_id=1)
    with pytest.raises(CircularDependencyError) as info:
        plan_flush(states(a1, b1), [], [], DIALECT)
    message = str(info.value)
    assert "a(id=1) -> b(id=7) -> a(id=1)" in message
    assert info.value.cycle == ("a(id=1)", "b(id=7)", "a(id=1)")


# -- what an INSERT sends and fetches -----------------------------------------------------------


def test_insert_shape_generated_returning_and_nulls() -> None:
    user = User(name="u")
    (step,) = plan_flush(states(user), [], [], DIALECT).steps
    assert isinstance(step, InsertBatch)
    assert step.keys == ("name", "note")  # note: no default of any kind, sent as NULL
    assert step.rows == (("u", None),)
    assert step.generated == ("score",)  # Python default, evaluated by the executor
    assert step.returning == ("id", "status")  # generated key first, then server defaults
    assert step.match is Match.KEY_ORDER


def test_a_primary_key_set_to_none_is_generated() -> None:
    user = User(id=None, name="u")
    (step,) = plan_flush(states(user), [], [], DIALECT).steps
    assert isinstance(step, InsertBatch)
    assert "id" not in step.keys
    assert step.match is Match.KEY_ORDER


def test_insert_with_explicit_key_matches_by_key() -> None:
    (step,) = plan_flush(states(User(id=5, name="u", status="x")), [], [], DIALECT).steps
    assert isinstance(step, InsertBatch)
    assert step.returning == ()
    assert step.match is Match.NONE
    (step,) = plan_flush(states(User(id=5, name="u")), [], [], DIALECT).steps
    assert isinstance(step, InsertBatch)
    assert (step.returning, step.match) == (("id", "status"), Match.PRIMARY_KEY)


def test_insert_key_from_python_default_is_known() -> None:
    (step,) = plan_flush(states(Ticket(title="t")), [], [], DIALECT).steps
    assert isinstance(step, InsertBatch)
    assert (step.generated, step.returning, step.match) == (("id",), (), Match.NONE)


def test_server_generated_non_integer_key_goes_one_row_per_statement() -> None:
    tokens = [Token(value=str(i)) for i in range(3)]
    plan = plan_flush(states(*tokens), [], [], DIALECT)
    assert len(plan.steps) == 3
    assert all(s.match is Match.SINGLE_ROW and len(s.rows) == 1 for s in plan.inserts)


def test_without_eager_defaults_server_values_stay_expired() -> None:
    lazy = Lazy()
    (step,) = plan_flush(states(lazy), [], [], DIALECT).steps
    assert isinstance(step, InsertBatch)
    assert (step.keys, step.returning, step.expired) == ((), ("id",), ("made",))


def test_sql_expression_values_go_alone() -> None:
    users = [User(name="a"), User(name=func.upper("b")), User(name="c")]
    plan = plan_flush(states(*users), [], [], DIALECT)
    assert summary(plan) == [
        ("insert", "users", [users[0]]),
        ("insert", "users", [users[1]]),
        ("insert", "users", [users[2]]),
    ]
    middle = plan.inserts[1]
    assert middle.expressions
    assert middle.match is Match.SINGLE_ROW
    assert "name" in middle.returning


def test_consecutive_rows_with_the_same_columns_share_a_statement() -> None:
    users = [
        User(name="a"),
        User(name="b"),
        User(name="c", score=3),
        User(name="d", score=4),
        User(name="e"),
    ]
    plan = plan_flush(states(*users), [], [], DIALECT)
    assert [len(s.rows) for s in plan.inserts] == [2, 2, 1]
    assert [s.keys for s in plan.inserts] == [
        ("name", "note"),
        ("name", "note", "score"),
        ("name", "note"),
    ]


def test_batches_respect_max_bind_params() -> None:
    dialect = SQLiteDialect()
    dialect.max_bind_params = 10
    users = [User(name=str(i)) for i in range(10)]  # name, note + generated score: 3 each
    plan = plan_flush(states(*users), [], [], dialect)
    assert [len(s.rows) for s in plan.inserts] == [3, 3, 3, 1]
    assert [plan.states[i].object for s in plan.inserts for i in s.states] == users


def test_batches_stop_at_max_insert_rows() -> None:
    users = [User(id=i, name="x", note="y", status="s", score=1) for i in range(1200)]
    plan = plan_flush(states(*users), [], [], DIALECT)
    assert [len(s.rows) for s in plan.inserts] == [MAX_INSERT_ROWS, MAX_INSERT_ROWS, 200]


def test_postgresql_insert_batches_stay_small_enough_for_asyncpg_to_keep() -> None:
    # asyncpg prepares a statement over 15 KB of SQL again at every execution.
    dialect = PGDialect()
    users = [User(name="x", note="y") for _ in range(1200)]
    plan = plan_flush(states(*users), [], [], dialect)
    step = plan.inserts[0]
    per_row = len(step.keys) + len(step.generated)
    assert len(step.rows) == dialect.insert_batch_params // per_row < MAX_INSERT_ROWS
    template, names = _insert_template(
        _info(User.__mapper__), step.keys + step.generated, len(step.rows), step.returning
    )
    compiled, _ = dialect.compile(template, list(names))
    assert len(compiled.sql) <= 15 * 1024


def test_pending_without_a_key_and_nothing_to_generate_it() -> None:
    reg = registry()

    class Pair(Plain):
        pass

    table = Table(
        "pairs",
        reg.metadata,
        Column("a", Integer, primary_key=True),
        Column("b", Integer, primary_key=True),
    )
    reg.map_imperatively(Pair, table)
    pair = Pair(a=1)
    with pytest.raises(InvalidRequestError, match="primary key attribute 'b' has no value"):
        plan_flush(states(pair), [], [], DIALECT)


# -- updates ----------------------------------------------------------------------------------


def test_updates_set_only_changed_columns_grouped_by_column_set() -> None:
    u1, u2, u3, u4 = (User(id=i, name=f"u{i}", note="n", status="s", score=0) for i in range(4))
    loaded(u1, u2, u3, u4)
    u1.name = "x"
    u2.note = "y"
    u2.name = "z"
    u3.name = "w"
    u4.name = "u3"  # set to its current value: no change
    u4.name = "u3"
    plan = plan_flush([], states(u1, u2, u3, u4), [], DIALECT)
    groups = plan.updates
    assert [(g.keys, g.values, g.pks) for g in groups] == [
        (("name",), (("x",), ("w",)), ((0,), (2,))),
        (("name", "note"), (("z", "y"),), ((1,),)),
    ]
    assert all(not g.check_version and g.returning == ("id",) for g in groups)


def test_primary_key_change_updates_by_the_old_key() -> None:
    (user,) = [User(id=1, name="u")]
    loaded(user)
    user.id = 9
    (group,) = plan_flush([], states(user), [], DIALECT).updates
    assert (group.keys, group.values, group.pks) == (("id",), ((9,),), ((1,),))


def test_dirty_states_without_column_changes_or_being_deleted_are_skipped() -> None:
    u1, u2 = User(id=1, name="a"), User(id=2, name="b")
    loaded(u1, u2)
    u2.name = "changed"
    plan = plan_flush([], states(u1, u2), states(u2), DIALECT)
    assert summary(plan) == [("delete", "users", [u2])]


def test_versioned_update_checks_and_bumps_the_version() -> None:
    doc = Doc(id=1, title="t", version=3)
    loaded(doc)
    doc.title = "new"
    (group,) = plan_flush([], states(doc), [], DIALECT).updates
    assert group.check_version
    assert group.bump_version
    assert group.versions == (3,)
    assert group.returning == ("id",)  # counted: StaleDataError on a shortfall


def test_versioned_update_uses_the_loaded_version_when_the_object_sets_it() -> None:
    doc = Doc(id=1, title="t", version=3)
    loaded(doc)
    doc.version = 10
    (group,) = plan_flush([], states(doc), [], DIALECT).updates
    assert group.keys == ("version",)
    assert group.versions == (3,)
    assert group.check_version
    assert not group.bump_version


def test_versioned_rows_need_their_version_loaded() -> None:
    doc = Doc(id=1, title="t", version=3)
    loaded(doc)
    del doc.__dict__["version"]
    doc.title = "new"
    with pytest.raises(InvalidRequestError, match=r"Doc\.version is not loaded"):
        plan_flush([], states(doc), [], DIALECT)
    with pytest.raises(InvalidRequestError, match=r"Doc\.version is not loaded"):
        plan_flush([], [], states(doc), DIALECT)


def test_versioned_delete_carries_versions() -> None:
    docs = [Doc(id=i, title="t", version=i * 10) for i in range(3)]
    (batch,) = plan_flush([], [], loaded(*docs), DIALECT).deletes
    assert batch.check_version
    assert batch.pks == ((0,), (1,), (2,))
    assert batch.versions == (0, 10, 20)


def test_version_counter_generated_on_insert() -> None:
    (step,) = plan_flush(states(Doc(id=1, title="t")), [], [], DIALECT).steps
    assert isinstance(step, InsertBatch)
    assert step.generated == ("version",)


def test_deletes_batched_by_max_bind_params() -> None:
    dialect = SQLiteDialect()
    dialect.max_bind_params = 4
    users = [User(id=i, name="u") for i in range(10)]
    plan = plan_flush([], [], loaded(*users), dialect)
    assert [len(b.pks) for b in plan.deletes] == [4, 4, 2]


def test_dirty_or_deleted_states_need_an_identity() -> None:
    user = User(id=1, name="u")
    with pytest.raises(InvalidRequestError, match="no identity"):
        plan_flush([], [], states(user), DIALECT)
    user.name = "x"
    with pytest.raises(InvalidRequestError, match="no identity"):
        plan_flush([], states(user), [], DIALECT)


def test_planning_is_deterministic_and_changes_nothing() -> None:
    old = [User(id=i, name="u") for i in range(3)]
    loaded(*old)
    old[0].name = "v"
    new = [Node(id=2, parent_id=1), Node(id=1), User(name="n"), Address(user_id=1, email="e")]
    before = [dict(o.__dict__) for o in old + new]
    first = plan_flush(states(*new), states(old[0]), states(old[2]), DIALECT)
    second = plan_flush(states(*new), states(old[0]), states(old[2]), DIALECT)
    assert first == second
    assert [dict(o.__dict__) for o in old + new] == before
    assert [instance_state(o).key for o in new] == [None] * 4


def test_the_planner_ignores_the_session() -> None:
    users = [User(name="a"), User(name="b")]
    plain = plan_flush(states(*users), [], [], DIALECT)
    for state in states(*users):
        state.session = object()
    assert plan_flush(states(*users), [], [], DIALECT) == plain


# -- topological sort ---------------------------------------------------------------------------


def test_sort_levels_keeps_input_order_within_a_level() -> None:
    levels = topological.sort_levels("abcde", [("c", "a"), ("c", "b"), ("a", "d")])
    assert levels == [["c", "e"], ["a", "b"], ["d"]]


def test_sort_ignores_self_edges_and_duplicates() -> None:
    assert topological.sort("ab", [("a", "a"), ("b", "a"), ("b", "a")]) == ["b", "a"]


def test_sort_cycle_names_the_cycle() -> None:
    with pytest.raises(CircularDependencyError) as info:
        topological.sort("xabc", [("a", "b"), ("b", "c"), ("c", "a"), ("x", "a")], what="tables")
    assert info.value.cycle == ("a", "b", "c", "a")
    assert "tables depend on each other in a cycle: a -> b -> c -> a" in str(info.value)


def test_strongly_connected_components_in_dependency_order() -> None:
    nodes = ["d", "a", "b", "c", "e"]
    edges = [("a", "b"), ("b", "a"), ("c", "d"), ("b", "c"), ("e", "e")]
    assert topological.strongly_connected(nodes, edges) == [["a", "b"], ["e"], ["c"], ["d"]]


# -- properties ---------------------------------------------------------------------------------


def build(graph: dict[str, Any]) -> tuple[list[Any], list[tuple[Any, Any]]]:
    """Tables, mapped classes and objects for a ``flush_graphs()`` description.

    Returns the objects in add order and the references between them as
    (object, referenced object) pairs (a row referencing itself excluded).
    """
    reg = registry()
    classes = []
    for i, refs in enumerate(graph["refs"]):
        columns = [Column("id", Integer, primary_key=True, autoincrement=False)]
        columns += [Column(f"r{j}", Integer) for j in refs]
        constraints = [
            ForeignKeyConstraint([f"r{j}"], [f"t{j}.id"], use_alter=True, name=f"fk_{i}_{j}")
            for j in refs
        ]
        table = Table(f"t{i}", reg.metadata, *columns, *constraints)
        cls = type(f"T{i}", (Plain,), {})
        reg.map_imperatively(cls, table)
        classes.append(cls)
    objects = {
        (table, rid): classes[table](id=rid, **{f"r{j}": v for j, v in values.items()})
        for table, rid, values in graph["rows"]
    }
    references = [
        (objects[(table, rid)], objects[(j, target)])
        for table, rid, values in graph["rows"]
        for j, target in values.items()
        if (j, target) in objects and (j, target) != (table, rid)
    ]
    return list(objects.values()), references


def step_of(plan: FlushPlan) -> dict[int, int]:
    """id(object) -> index of the step that writes it."""
    return {id(plan.states[i].object): n for n, step in enumerate(plan.steps) for i in step.states}


def has_cycle(objects: list[Any], references: list[tuple[Any, Any]]) -> bool:
    try:
        topological.sort([id(o) for o in objects], [(id(b), id(a)) for a, b in references])
    except CircularDependencyError:
        return True
    return False


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flush_graphs())
def test_property_inserts_after_what_they_reference(graph: dict[str, Any]) -> None:
    objects, references = build(graph)
    plan = plan_flush(states(*objects), [], [], DIALECT)
    assert plan == plan_flush(states(*objects), [], [], DIALECT)
    step = step_of(plan)
    assert set(step) == {id(o) for o in objects}
    for row, referenced in references:
        assert step[id(referenced)] < step[id(row)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flush_graphs())
def test_property_deletes_before_what_they_reference(graph: dict[str, Any]) -> None:
    objects, references = build(graph)
    plan = plan_flush([], [], loaded(*objects), DIALECT)
    assert plan == plan_flush([], [], states(*objects), DIALECT)
    step = step_of(plan)
    for row, referenced in references:
        assert step[id(row)] < step[id(referenced)]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flush_graphs(acyclic=False))
def test_property_cycles_raise_naming_the_tables_otherwise_order_holds(
    graph: dict[str, Any],
) -> None:
    objects, references = build(graph)
    if has_cycle(objects, references):
        with pytest.raises(CircularDependencyError) as info:
            plan_flush(states(*objects), [], [], DIALECT)
        named = info.value.cycle
        assert named[0] == named[-1]
        tables = {type(o).__mapper__.local_table.name for o in objects}
        assert all(name.split("(")[0] in tables for name in named)
        return
    plan = plan_flush(states(*objects), [], [], DIALECT)
    step = step_of(plan)
    for row, referenced in references:
        assert step[id(referenced)] < step[id(row)]
    deletes = plan_flush([], [], loaded(*objects), DIALECT)
    step = step_of(deletes)
    for row, referenced in references:
        assert step[id(row)] < step[id(referenced)]
