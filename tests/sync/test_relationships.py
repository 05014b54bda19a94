"""Relationships through the facade: ``lazy="select"`` loads on access, as classic SQLAlchemy."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from asyncsession import UnloadedAttributeError, select, sync
from tests.orm.test_relationships import Base, Child, Node, Parent, Tag
from tests.sync.conftest import connect_args


@pytest.fixture
def rel_engine(db_url: str, schema: str | None, app_name: str) -> Iterator[sync.Engine]:
    engine = sync.create_engine(db_url, connect_args=connect_args(schema, app_name))
    Base.metadata.create_all(engine)
    try:
        yield engine
        assert engine.pool.checkedout() == 0
    finally:
        engine.dispose()


def test_lazy_loads_on_access_in_blocking_code(rel_engine: sync.Engine) -> None:
    with sync.Session(rel_engine) as session, session.begin():
        root = Node(name="root", children=[Node(name="a"), Node(name="b")])
        session.add(Parent(name="p", children=[Child(name="c1")], tags={Tag(label="t")}))
        session.add(root)

    with sync.Session(rel_engine) as session:
        parent = session.scalars(select(Parent)).one()
        assert [c.name for c in parent.children] == ["c1"]  # one-to-many, loaded on access
        assert [t.label for t in parent.tags] == ["t"]  # many-to-many
        child = session.scalars(select(Child)).one()
        assert child.parent is parent  # many-to-one: from the identity map
        leaf = session.scalars(select(Node).where(Node.name == "b")).one()
        assert leaf.parent is not None
        assert leaf.parent.name == "root"
        assert [n.name for n in leaf.parent.children] == ["a", "b"]
        parent.children.append(Child(name="c2"))
        session.commit()
        assert [c.name for c in parent.children] == ["c1", "c2"]


def test_code_that_never_used_the_facade_still_raises(rel_engine: sync.Engine) -> None:
    with sync.Session(rel_engine) as session, session.begin():
        session.add(Parent(name="p"))
    with sync.Session(rel_engine) as session:
        parent = session.scalars(select(Parent)).one()
        errors: list[BaseException] = []

        def read() -> None:  # a fresh thread: no implicit loader installed
            try:
                parent.children  # noqa: B018
            except BaseException as error:
                errors.append(error)

        thread = threading.Thread(target=read)
        thread.start()
        thread.join()
        assert len(errors) == 1
        assert isinstance(errors[0], UnloadedAttributeError)
        assert "Parent.children is not loaded" in str(errors[0])
