"""Declarative mapping, instrumented attributes, instance state, identity map (pure)."""

from __future__ import annotations

import datetime
import enum
import gc
import uuid
from decimal import Decimal
from typing import Literal

import pytest

from asyncsession import (
    JSON,
    ArgumentError,
    BigInteger,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    UnloadedAttributeError,
    func,
    select,
)
from asyncsession.orm.decl import (
    DeclarativeBase,
    Mapped,
    column_property,
    declared_attr,
    inspect,
    mapped_column,
    registry,
    synonym,
)
from asyncsession.orm.identity import IdentityMap
from asyncsession.orm.state import (
    NO_VALUE,
    InstanceState,
    implicit_loader,
    instance_state,
    make_state,
)
from asyncsession.sql import types as sqltypes
from asyncsession.sql.ddl import CreateTable
from asyncsession.sql.dialects.postgresql import PGDialect
from asyncsession.sql.dialects.sqlite import SQLiteDialect


class Mood(enum.Enum):
    happy = "h"
    sad = "s"


class Unmappable:
    """A Python type with no SQL type in any type map."""


def make_base() -> type[DeclarativeBase]:
    class Base(DeclarativeBase):
        pass

    return Base


def test_annotations_give_types_and_nullability() -> None:
    Base = make_base()

    class Thing(Base):
        __tablename__ = "things"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(20))
        note: Mapped[str | None]
        when: Mapped[datetime.datetime | None]
        price: Mapped[Decimal]
        uid: Mapped[uuid.UUID]
        mood: Mapped[Mood]
        kind: Mapped[Literal["a", "b"]]
        doc: Mapped[dict]  # type: ignore[type-arg]

    t = Thing.__table__
    assert isinstance(t.c.id.type, sqltypes.Integer)
    assert t.c.id.primary_key
    assert not t.c.id.nullable
    assert isinstance(t.c.name.type, sqltypes.String)
    assert t.c.name.type.length == 20
    assert not t.c.name.nullable
    assert t.c.note.nullable
    assert isinstance(t.c.note.type, sqltypes.String)
    assert t.c.when.nullable
    assert isinstance(t.c.when.type, sqltypes.DateTime)
    assert isinstance(t.c.price.type, sqltypes.Numeric)
    assert isinstance(t.c.uid.type, sqltypes.Uuid)
    assert isinstance(t.c.mood.type, sqltypes.Enum)
    assert isinstance(t.c.kind.type, sqltypes.Enum)
    assert isinstance(t.c.doc.type, sqltypes.JSON)
    assert inspect(Thing).pk_keys == ("id",)
    assert Base.metadata.tables["things"] is t


def test_type_annotation_map_overrides_defaults() -> None:
    class Base(DeclarativeBase):
        type_annotation_map = {int: BigInteger}

    class Thing(Base):
        __tablename__ = "things"
        id: Mapped[int] = mapped_column(primary_key=True)

    assert isinstance(Thing.__table__.c.id.type, BigInteger)


def test_explicit_column_name_and_fk_type() -> None:
    Base = make_base()

    class Parent(Base):
        __tablename__ = "parent"
        id: Mapped[int] = mapped_column("parent_id", primary_key=True)

    class Child(Base):
        __tablename__ = "child"
        id: Mapped[int] = mapped_column(primary_key=True)
        parent_id = mapped_column(ForeignKey("parent.parent_id"))

    assert Parent.__table__.c.parent_id is inspect(Parent).column_attrs["id"].column
    assert str(select(Parent.id)) == "SELECT parent.parent_id AS id FROM parent"
    assert isinstance(Child.__table__.c.parent_id.type, sqltypes.Integer)
    assert str(select(Child.id).join(Parent, Child.parent_id == Parent.id)) == (
        "SELECT child.id FROM child JOIN parent ON child.parent_id = parent.parent_id"
    )


def test_mixins_and_declared_attr_copy_columns_per_class() -> None:
    Base = make_base()

    class Timestamps:
        created: Mapped[datetime.datetime] = mapped_column(default=datetime.datetime.now)

        @declared_attr
        def __tablename__(cls) -> str:
            return cls.__name__.lower()

    class A(Timestamps, Base):
        id: Mapped[int] = mapped_column(primary_key=True)

    class B(Timestamps, Base):
        id: Mapped[int] = mapped_column(primary_key=True)

    assert A.__table__.name == "a"
    assert B.__table__.name == "b"
    assert A.__table__.c.created is not B.__table__.c.created
    assert A.__table__.c.created.table is A.__table__


def test_table_args_and_mapper_args() -> None:
    Base = make_base()

    class Item(Base):
        __tablename__ = "items"
        __table_args__ = ({"schema": "shop"},)
        id: Mapped[int] = mapped_column(primary_key=True)
        version: Mapped[int] = mapped_column()
        __mapper_args__ = {"version_id_col": version}

    assert Item.__table__.fullname == "shop.items"
    assert inspect(Item).version_id_key == "version"


def test_column_property_synonym_and_deferred() -> None:
    Base = make_base()

    class User(Base):
        __tablename__ = "users"
        id: Mapped[int] = mapped_column(primary_key=True)
        first: Mapped[str]
        last: Mapped[str]
        bio: Mapped[str] = mapped_column(deferred=True)
        full = column_property(func.lower(Column("first", String)))
        handle = synonym("first")

    mapper = inspect(User)
    assert "bio" in mapper.deferred_keys
    assert [k for k, _ in mapper.default_load] == ["id", "first", "last", "full"]
    user = User(first="Ann", last="Lee")
    assert user.handle == "Ann"
    user.handle = "Bo"
    assert user.first == "Bo"
    with pytest.raises(AttributeError, match="column_property"):
        user.full = "x"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        ("no_pk", "could not assemble a primary key"),
        ("bad_type", "no SQL type is known"),
        ("dup_column", "both map to column 'x'"),
        ("unknown_mapper_arg", "unsupported __mapper_args__"),
        ("table_reused", "already defined in this MetaData"),
    ],
)
def test_invalid_declarations_raise_at_class_creation(build: str, message: str) -> None:
    Base = make_base()

    with pytest.raises(ArgumentError, match=message) as info:  # noqa: PT012 - defining the class is the act
        if build == "no_pk":

            class NoPk(Base):
                __tablename__ = "nopk"
                name: Mapped[str]

        elif build == "bad_type":

            class BadType(Base):
                __tablename__ = "badtype"
                id: Mapped[int] = mapped_column(primary_key=True)
                thing: Mapped[Unmappable]

        elif build == "dup_column":

            class Dup(Base):
                __tablename__ = "dup"
                id: Mapped[int] = mapped_column(primary_key=True)
                a: Mapped[int] = mapped_column("x")
                b: Mapped[int] = mapped_column("x")

        elif build == "unknown_mapper_arg":

            class Unknown(Base):
                __tablename__ = "unknown"
                __mapper_args__ = {"polymorphic_on": "x"}
                id: Mapped[int] = mapped_column(primary_key=True)

        else:
            Table("taken", Base.metadata, Column("id", Integer, primary_key=True))

            class Taken(Base):
                __tablename__ = "taken"
                id: Mapped[int] = mapped_column(primary_key=True)

    # Each message names the class.
    assert any(name in str(info.value) for name in ("NoPk", "BadType", "Dup", "Unknown", "Taken"))


def test_class_attributes_are_expressions_and_instances_hold_values() -> None:
    Base = make_base()

    class User(Base):
        __tablename__ = "users"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    stmt = select(User).where(User.name == "ann", User.id.in_([1, 2]))
    assert str(stmt) == (
        "SELECT users.id, users.name FROM users "
        "WHERE users.name = :name_1 AND users.id IN (:id_1, :id_2)"
    )
    assert stmt._entities == (User,)
    compiled, _ = SQLiteDialect().compile(select(User.name).where(User.id == 1))
    assert compiled.result_keys == ("name",)
    user = User(name="ann")
    assert user.name == "ann"
    assert user.id is None  # transient: never set reads None
    with pytest.raises(TypeError, match="'nick' is an invalid keyword argument for User"):
        User(nick="x")


def test_assigning_a_value_the_type_cannot_bind_fails_at_once() -> None:
    Base = make_base()

    class User(Base):
        __tablename__ = "users"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    user = User(name="ann")
    with pytest.raises(ArgumentError, match=r"Can't set User\.id to a value of type str"):
        user.id = "seven"  # type: ignore[assignment]
    assert user.id is None
    assert inspect(user).attrs.id.history.empty()
    user.id = User.id + 1  # type: ignore[assignment]  # SQL expressions are allowed


def test_constructor_records_the_same_state_whichever_path_it_takes() -> None:
    # Keywords that all name column attributes of the class take a fast path; any
    # other (a synonym here) goes through setattr(). Both leave the same state.
    Base = make_base()

    class User(Base):
        __tablename__ = "users"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str | None]
        nick = synonym("name")

    for user in (User(id=1, name="ann"), User(id=1, nick="ann")):
        state = instance_state(user)
        assert state.transient
        assert state.modified
        assert state.committed_state == {"id": NO_VALUE, "name": NO_VALUE}
        assert inspect(user).attrs.name.history == (("ann",), (), ())
        assert (user.id, user.name) == (1, "ann")
    assert instance_state(User(name=None)).committed_state == {"name": NO_VALUE}
    with pytest.raises(ArgumentError, match=r"Can't set User\.id to a value of type str"):
        User(id="seven", name="ann")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'nope' is an invalid keyword argument for User"):
        User(id=1, nope=2)


def test_make_state_sets_every_slot_as_the_constructor_does() -> None:
    Base = make_base()

    class User(Base):
        __tablename__ = "users"
        id: Mapped[int] = mapped_column(primary_key=True)

    a, b = User.__new__(User), User.__new__(User)
    identity_map = IdentityMap()
    built = InstanceState(a, inspect(User), (User, (5,), None), "session", identity_map)
    made = make_state(b, inspect(User), 5, "session", identity_map)
    for slot in InstanceState.__slots__:
        assert getattr(made, slot) == getattr(built, slot), slot
    assert (built(), made()) == (a, b)
    assert made.key == built.key == (User, (5,), None)


def test_history_and_commit() -> None:
    Base = make_base()

    class User(Base):
        __tablename__ = "users"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    user = User.__new__(User)
    user.__dict__.update(id=1, name="ann")
    state = instance_state(user)
    state.key = (User, (1,), None)
    assert state.detached
    assert inspect(user).attrs.name.history == ((), ("ann",), ())
    user.name = "bob"
    assert inspect(user).attrs.name.history == (("bob",), (), ("ann",))
    assert state.changed_keys() == ["name"]
    user.name = "ann"
    assert state.changed_keys() == []  # set back: no net change
    user.name = "cy"
    state.commit_all()
    assert inspect(user).attrs.name.history == ((), ("cy",), ())
    assert not state.modified


def test_unloaded_attribute_raises_with_the_three_remedies() -> None:
    Base = make_base()

    class User(Base):
        __tablename__ = "users"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]
        bio: Mapped[str] = mapped_column(deferred=True)

    user = User.__new__(User)
    user.__dict__.update(id=1, name="ann")
    state = instance_state(user)
    state.key = (User, (1,), None)
    with pytest.raises(UnloadedAttributeError) as info:
        _ = user.bio
    message = str(info.value)
    assert "User.bio is not loaded (it is deferred)" in message
    assert "await obj.awaitable_attrs.bio" in message
    assert "await session.refresh(obj, ['bio'])" in message
    assert "selectinload" in message
    state.expire(["name"])
    with pytest.raises(
        UnloadedAttributeError, match=r"User\.name is not loaded \(it was expired\)"
    ):
        _ = user.name
    assert state.dict.get("name", NO_VALUE) is NO_VALUE

    loads: list[str] = []

    def loader(st: object, key: str) -> str:
        loads.append(key)
        return "loaded"

    token = implicit_loader.set(loader)  # what the sync facade installs
    try:
        assert user.name == "loaded"
    finally:
        implicit_loader.reset(token)
    assert loads == ["name"]


def test_expire_drops_pending_changes() -> None:
    Base = make_base()

    class User(Base):
        __tablename__ = "users"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    user = User.__new__(User)
    user.__dict__.update(id=1, name="ann")
    state = instance_state(user)
    state.key = (User, (1,), None)
    user.name = "bob"
    assert state.modified
    state.expire()
    assert not state.modified
    assert state.changed_keys() == []
    assert state.unloaded == {"id", "name"}


def test_identity_map_holds_unmodified_objects_weakly_and_modified_strongly() -> None:
    Base = make_base()

    class User(Base):
        __tablename__ = "users"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    identity_map = IdentityMap()

    def load(pk: int) -> User:
        user = User.__new__(User)
        user.__dict__.update(id=pk, name=f"u{pk}")
        state = instance_state(user)
        state.key = (User, (pk,), None)
        identity_map.add(state)
        return user

    kept = load(1)
    load(2)  # dropped at once
    modified = load(3)
    modified.name = "changed"
    del modified
    gc.collect()
    assert sorted(k[1][0] for k in identity_map) == [1, 3]
    assert identity_map.get((User, (1,), None)) is kept
    assert identity_map[(User, (3,), None)].name == "changed"
    assert len(identity_map.modified) == 1

    duplicate = User.__new__(User)
    duplicate.__dict__.update(id=1, name="other")
    state = instance_state(duplicate)
    state.key = (User, (1,), None)
    with pytest.raises(Exception, match="another instance with the same key"):
        identity_map.add(state)


def test_map_imperatively_maps_a_plain_class() -> None:
    reg = registry()
    table = Table(
        "points",
        reg.metadata,
        Column("id", Integer, primary_key=True),
        Column("x", Integer),
        Column("label", JSON),
    )

    class Point:
        def __init__(self, x: int) -> None:
            self.x = x

    mapper = reg.map_imperatively(Point, table)
    assert inspect(Point) is mapper
    point = Point(3)
    assert point.x == 3
    assert inspect(point).attrs.x.history.added == (3,)
    assert str(select(Point.x)) == "SELECT points.x FROM points"  # type: ignore[attr-defined]


def test_ddl_for_a_mapped_class_on_both_dialects() -> None:
    Base = make_base()

    class User(Base):
        __tablename__ = "users"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(30), unique=True)
        mood: Mapped[Mood | None]

    assert str(CreateTable(User.__table__).compile(SQLiteDialect())) == (
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR(30) NOT NULL, "
        "mood VARCHAR(5), UNIQUE (name))"
    )
    assert str(CreateTable(User.__table__).compile(PGDialect())) == (
        "CREATE TABLE users (id SERIAL NOT NULL, name VARCHAR(30) NOT NULL, mood mood, "
        "PRIMARY KEY (id), UNIQUE (name))"
    )


def test_inspect_rejects_unmapped_things() -> None:
    class Plain:
        pass

    with pytest.raises(ArgumentError, match="Plain is not a mapped class"):
        inspect(Plain)
    with pytest.raises(ArgumentError, match="No inspection is available"):
        inspect(Plain())
    assert isinstance(MetaData(), MetaData)


def test_states_compare_by_identity_whatever_the_objects_do() -> None:
    class Base(DeclarativeBase):
        pass

    class Point(Base):
        __tablename__ = "points"
        id: Mapped[int] = mapped_column(primary_key=True)
        x: Mapped[int]

        def __eq__(self, other: object) -> bool:  # value equality: unhashable objects
            return isinstance(other, Point) and other.x == self.x

        __hash__ = None  # type: ignore[assignment]

    a, b = Point(id=1, x=5), Point(id=2, x=5)
    assert a == b
    sa, sb = instance_state(a), instance_state(b)
    assert sa != sb
    assert len({sa, sb}) == 2  # states hash by identity, not by the unhashable objects
    assert sa() is a
    assert sa.obj_ref() is a
