"""Relationship declarations SQLAlchemy accepts: string annotations, class-body columns (pure)."""

from __future__ import annotations

from typing import Optional

from asyncsession import ForeignKey
from asyncsession.orm.decl import DeclarativeBase, Mapped, mapped_column
from asyncsession.orm.relationships import MANYTOONE, ONETOMANY, relationship


def test_string_annotations_with_optional_and_collections() -> None:
    # Evaluated at class creation (no `from __future__` effect inside the strings).
    class Base(DeclarativeBase):
        pass

    class Parent(Base):
        __tablename__ = "parent"
        id: Mapped[int] = mapped_column(primary_key=True)
        kids: Mapped["list[Kid]"] = relationship(back_populates="parent")  # noqa: UP037

    class Kid(Base):
        __tablename__ = "kid"
        id: Mapped[int] = mapped_column(primary_key=True)
        parent_id: Mapped[Optional[int]] = mapped_column(ForeignKey("parent.id"))  # noqa: UP045
        parent: Mapped["Parent | None"] = relationship(back_populates="kids")  # noqa: UP037

    assert Kid.parent.property.entity is Parent
    assert not Kid.parent.property.uselist
    assert Parent.kids.property.entity is Kid
    assert Parent.kids.property.uselist


def test_remote_side_names_a_mapped_column_of_the_class_body() -> None:
    class Base(DeclarativeBase):
        pass

    class Node(Base):
        __tablename__ = "node"
        id: Mapped[int] = mapped_column(primary_key=True)
        parent_id: Mapped[int | None] = mapped_column(ForeignKey("node.id"))
        children: Mapped[list[Node]] = relationship(back_populates="parent")
        parent: Mapped[Node | None] = relationship(back_populates="children", remote_side=[id])

    table = Node.__table__
    assert Node.parent.property.direction is MANYTOONE
    assert Node.children.property.direction is ONETOMANY
    assert Node.parent.property.pairs == ((table.c.id, table.c.parent_id),)
