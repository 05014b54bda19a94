"""Relationships: ``relationship()``, its configuration, attributes and collections.

How this works:

* ``relationship()`` in a class body records its arguments. The mapper owns a
  :class:`RelationshipProperty` for it; the property is *configured* (target
  mapper resolved, direction and column pairs worked out, ``back_populates``
  checked) the first time anything uses a mapper of its registry, so classes
  may name each other in any order. Configuration errors raise
  ``ArgumentError`` naming both classes and the attribute, and keep being
  raised until the declaration is fixed.
* The direction comes from the foreign keys between the two tables (or the
  ``secondary`` table): the side holding the foreign key is the "many" side.
  ``pairs`` holds ``(referenced column, foreign key column)`` for the join;
  for many-to-many ``pairs`` join the parent to the secondary table and
  ``secondary_pairs`` the target to it.
* On an instance a relationship is a value in ``__dict__`` like a column: an
  object (or None) for scalars, an instrumented list/set/dict for
  collections. Mutations record history on the owner's state (the first one
  keeps a snapshot of the loaded members), keep the other side of a
  bidirectional relationship in step when that side is loaded (no IO), and
  cascade ``save-update`` into the owner's session.
* Reading an unloaded relationship of a persistent object raises
  ``UnloadedAttributeError`` (async code never loads implicitly), except a
  many-to-one whose target is already in the identity map or whose foreign
  key is NULL: that needs no SQL, so it is answered at once. Transient and
  pending objects start with empty, loaded collections.
"""

from __future__ import annotations

import enum
import typing
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from asyncsession import exc
from asyncsession.orm.attributes import Mapped
from asyncsession.orm.state import NO_VALUE, InstanceState, implicit_loader, instance_state
from asyncsession.sql import operators as ops
from asyncsession.sql.elements import BinaryExpression, BooleanClauseList, ColumnElement, Grouping
from asyncsession.sql.schema import Column, ForeignKeyConstraint, Table

if TYPE_CHECKING:
    from asyncsession.orm.mapper import Mapper

_T = TypeVar("_T")


class RelationshipDirection(enum.Enum):
    """Which side holds the foreign key."""

    ONETOMANY = "ONETOMANY"
    MANYTOONE = "MANYTOONE"
    MANYTOMANY = "MANYTOMANY"


ONETOMANY = RelationshipDirection.ONETOMANY
MANYTOONE = RelationshipDirection.MANYTOONE
MANYTOMANY = RelationshipDirection.MANYTOMANY

CASCADES = frozenset(
    {"save-update", "merge", "expunge", "delete", "delete-orphan", "refresh-expire"}
)
_ALL = CASCADES - {"delete-orphan"}
LAZY = frozenset(
    {"select", "selectin", "joined", "subquery", "raise", "raise_on_sql", "noload", "write_only"}
)


def parse_cascade(value: str | Iterable[str], where: str) -> frozenset[str]:
    words = value.split(",") if isinstance(value, str) else list(value)
    out: set[str] = set()
    for word in (w.strip() for w in words):
        if not word or word == "none":
            continue
        if word == "all":
            out |= _ALL
        elif word in CASCADES:
            out.add(word)
        else:
            raise exc.ArgumentError(
                f"{where}: unknown cascade {word!r}; expected some of "
                f"{', '.join(sorted(CASCADES | {'all'}))}"
            )
    return frozenset(out)


# -- declaration ----------------------------------------------------------------------------


class _RelationshipDecl(Mapped[_T]):
    """What ``relationship()`` returns in a class body, until the class is mapped."""

    def __init__(self, argument: Any, secondary: Any, kw: dict[str, Any]) -> None:
        self.argument = argument
        self.secondary = secondary
        self.kw = kw


def relationship(
    argument: Any = None,
    secondary: Any = None,
    *,
    uselist: bool | None = None,
    collection_class: Any = None,
    primaryjoin: Any = None,
    secondaryjoin: Any = None,
    back_populates: str | None = None,
    backref: Any = None,
    foreign_keys: Any = None,
    remote_side: Any = None,
    order_by: Any = False,
    viewonly: bool = False,
    cascade: str = "save-update, merge",
    lazy: Any = "select",
    post_update: bool = False,
    passive_deletes: bool | str = False,
    single_parent: bool = False,
    innerjoin: bool = False,
    info: dict[str, Any] | None = None,
) -> Any:
    """A mapped relationship to another class: ``bs: Mapped[list[B]] = relationship()``.

    ``argument`` is the target class, its name, or a callable returning it; a
    ``Mapped[...]`` annotation supplies it (and the collection type) when left
    out. See the "Relationships" page for every option.
    """
    kw = {
        "uselist": uselist,
        "collection_class": collection_class,
        "primaryjoin": primaryjoin,
        "secondaryjoin": secondaryjoin,
        "back_populates": back_populates,
        "backref": backref,
        "foreign_keys": foreign_keys,
        "remote_side": remote_side,
        "order_by": order_by,
        "viewonly": viewonly,
        "cascade": cascade,
        "lazy": lazy,
        "post_update": post_update,
        "passive_deletes": passive_deletes,
        "single_parent": single_parent,
        "innerjoin": innerjoin,
        "info": info,
    }
    return _RelationshipDecl(argument, secondary, kw)


def backref(name: str, **kwargs: Any) -> tuple[str, dict[str, Any]]:
    """``relationship(..., backref=backref("name", ...))``: the reverse side's options."""
    return (name, kwargs)


class WriteOnlyMapped(Mapped[_T]):
    """The annotation of a write-only collection: ``bs: WriteOnlyMapped[B] = relationship()``."""


class DynamicMapped(Mapped[_T]):
    """Not supported: SQLAlchemy's legacy ``lazy="dynamic"``; use ``WriteOnlyMapped``."""


# -- the property ---------------------------------------------------------------------------


class RelationshipProperty(Generic[_T]):
    """A relationship of a mapper; ``inspect(A).relationships["bs"]`` returns it."""

    def __init__(
        self,
        key: str,
        argument: Any,
        secondary: Any = None,
        *,
        uselist: bool | None = None,
        collection_class: Any = None,
        primaryjoin: Any = None,
        secondaryjoin: Any = None,
        back_populates: str | None = None,
        backref: Any = None,
        foreign_keys: Any = None,
        remote_side: Any = None,
        order_by: Any = False,
        viewonly: bool = False,
        cascade: str | Iterable[str] = "save-update, merge",
        lazy: Any = "select",
        post_update: bool = False,
        passive_deletes: bool | str = False,
        single_parent: bool = False,
        innerjoin: bool = False,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.key = key
        self.argument = argument
        self.secondary_argument = secondary
        self.uselist_argument = uselist
        self.collection_class_argument = collection_class
        self.primaryjoin_argument = primaryjoin
        self.secondaryjoin_argument = secondaryjoin
        self.back_populates = back_populates
        self.backref = backref
        self.foreign_keys_argument = foreign_keys
        self.remote_side_argument = remote_side
        self.order_by_argument = order_by
        self.viewonly = viewonly
        self.post_update = post_update
        self.passive_deletes = passive_deletes
        self.single_parent = single_parent
        self.innerjoin = innerjoin
        self.info = dict(info or {})
        if lazy is True:
            lazy = "select"
        elif lazy is False:
            lazy = "joined"
        elif lazy is None:
            lazy = "noload"
        self.lazy: str = lazy
        self.cascade_argument = cascade
        self.parent: Mapper = None  # type: ignore[assignment]  # set by the mapper
        # id(mapped_column()) -> Column, for column arguments naming class-body columns.
        self.declared_columns: dict[int, Column] = {}
        self.configured = False
        # Filled in by configure():
        self.mapper: Mapper = None  # type: ignore[assignment]
        self.entity: Any = None
        self.target: Table = None  # type: ignore[assignment]
        self.direction: RelationshipDirection = ONETOMANY
        self.secondary: Table | None = None
        self.pairs: tuple[tuple[Column, Column], ...] = ()
        self.secondary_pairs: tuple[tuple[Column, Column], ...] = ()
        self.extra_criteria: tuple[ColumnElement, ...] = ()
        self.uselist = True
        self.collection_class: Any = list
        self.cascade: frozenset[str] = frozenset()
        self.back: RelationshipProperty[Any] | None = None
        self.order_by: tuple[Any, ...] = ()
        self.local_keys: tuple[str, ...] = ()  # parent attribute keys of the join
        self.remote_keys: tuple[str, ...] = ()  # target attribute keys of the join
        self.simple_many_to_one = False  # join columns are the target's primary key

    # -- descriptive --------------------------------------------------------------------
    @property
    def class_attribute(self) -> Any:
        return getattr(self.parent.class_, self.key)

    def describe(self) -> str:
        return f"{self.parent.class_.__name__}.{self.key}"

    @property
    def local_columns(self) -> set[Column]:
        index = 0 if self.direction is not MANYTOONE else 1
        return {pair[index] for pair in self.pairs}

    @property
    def remote_side(self) -> set[Column]:
        index = 1 if self.direction is not MANYTOONE else 0
        return {pair[index] for pair in self.pairs}

    @property
    def is_write_only(self) -> bool:
        return self.lazy == "write_only"

    def __repr__(self) -> str:
        return f"<RelationshipProperty {self.describe()}>"

    # -- configuration ----------------------------------------------------------------
    def configure(self) -> None:
        if self.configured:
            return
        where = self.describe()
        self.mapper = self._resolve_target(where)
        self.entity = self.mapper.class_
        self.target = self.mapper.local_table
        self.cascade = parse_cascade(self.cascade_argument, where)
        if self.lazy not in LAZY:
            if self.lazy == "dynamic":
                raise exc.ArgumentError(
                    f"{where}: lazy='dynamic' is not supported; use lazy='write_only' "
                    "(WriteOnlyMapped) or a loader option"
                )
            raise exc.ArgumentError(
                f"{where}: unknown lazy={self.lazy!r}; expected one of {sorted(LAZY)}"
            )
        if self.viewonly:
            self.cascade = frozenset(c for c in self.cascade if c not in {"save-update", "delete"})
        self._setup_join(where)
        if self.uselist_argument is None:
            self.uselist = self.direction is not MANYTOONE
        else:
            self.uselist = bool(self.uselist_argument)
        if self.uselist:
            self.collection_class = self.collection_class_argument or list
        elif self.collection_class_argument is not None:
            raise exc.ArgumentError(
                f"{where}: collection_class needs a collection (uselist=True) relationship"
            )
        if (
            "delete-orphan" in self.cascade
            and self.direction is not ONETOMANY
            and not self.single_parent
        ):
            raise exc.ArgumentError(
                f"{where}: delete-orphan cascade on a {self.direction.name.lower()} "
                f"relationship needs single_parent=True (one {self.entity.__name__} can "
                f"then belong to a single {self.parent.class_.__name__})"
            )
        if self.post_update and self.direction is MANYTOMANY:
            raise exc.ArgumentError(f"{where}: post_update does not apply to many-to-many")
        if self.is_write_only and not self.uselist:
            raise exc.ArgumentError(f"{where}: lazy='write_only' needs a collection")
        order = self.order_by_argument
        if order is False or order is None:
            self.order_by = ()
        else:
            if callable(order) and not isinstance(order, ColumnElement):
                order = order()
            if isinstance(order, str):
                text = order.strip()
                owner, _, attr = text.rpartition(".")
                if text.isidentifier() or (owner.isidentifier() and attr.isidentifier()):
                    order = self._resolve_order_by(text, where)
                else:  # an expression: "Child.position.desc()"
                    order = _eval_string(self.parent, text, where)
            self.order_by = tuple(order) if isinstance(order, (list, tuple)) else (order,)
        if self.direction is MANYTOONE:
            pk = {id(c) for c in self.mapper.primary_key}
            self.simple_many_to_one = len(self.pairs) == len(pk) and all(
                id(ref) in pk for ref, _ in self.pairs
            )
        self.configured = True

    def _resolve_order_by(self, name: str, where: str) -> Any:
        """``order_by="name"`` or ``"Target.name"``: an attribute of the target class."""
        owner, _, attr = name.strip().rpartition(".")
        cls = _lookup_class(self.parent, owner) if owner else self.entity
        if cls is not self.entity or attr not in self.mapper.column_attrs:
            raise exc.ArgumentError(
                f"{where}: order_by={name!r} must name a column attribute of {self.entity.__name__}"
            )
        return getattr(self.entity, attr)

    def _resolve_target(self, where: str) -> Mapper:
        arg = self.argument
        if arg is None:
            raise exc.ArgumentError(
                f"{where}: relationship() needs a target class, as an argument or through a "
                "Mapped[...] annotation"
            )
        if isinstance(arg, str):
            found = _lookup_class(self.parent, arg)
            if found is None:
                raise exc.ArgumentError(
                    f"{where}: relationship() names class {arg!r}, which is not mapped in "
                    f"{self.parent.class_.__name__}'s registry"
                )
            arg = found
        elif callable(arg) and not isinstance(arg, type):
            arg = arg()
        mapper = getattr(arg, "__mapper__", None) if isinstance(arg, type) else arg
        if mapper is None or not hasattr(mapper, "local_table"):
            raise exc.ArgumentError(f"{where}: relationship() target {arg!r} is not mapped")
        return mapper  # type: ignore[no-any-return]

    def _resolve_columns(self, value: Any, where: str, what: str) -> set[Column]:
        if value is None:
            return set()
        if callable(value) and not isinstance(value, (ColumnElement, list, tuple, set, str)):
            value = value()
        if isinstance(value, str):
            value = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
        items = value if isinstance(value, (list, tuple, set)) else [value]
        out: set[Column] = set()
        for item in items:
            if isinstance(item, str):
                owner, _, attr = item.rpartition(".")
                cls = _lookup_class(self.parent, owner) if owner else self.parent.class_
                column = getattr(getattr(cls, attr, None), "column", None)
                if column is None:
                    raise exc.ArgumentError(f"{where}: {what} names unknown column {item!r}")
                item = column
            if id(item) in self.declared_columns:
                item = self.declared_columns[id(item)]
            column = getattr(item, "column", item)
            if not isinstance(column, Column):
                raise exc.ArgumentError(f"{where}: {what} must name columns, got {item!r:.60}")
            out.add(column)
        return out

    def _resolve_secondary(self, where: str) -> Table | None:
        value = self.secondary_argument
        if value is None:
            return None
        if callable(value) and not isinstance(value, Table):
            value = value()
        if isinstance(value, str):
            table = self.parent.local_table.metadata.tables.get(value)
            if table is None:
                raise exc.ArgumentError(
                    f"{where}: secondary table {value!r} is not in the MetaData of "
                    f"{self.parent.class_.__name__}"
                )
            value = table
        if not isinstance(value, Table):
            raise exc.ArgumentError(f"{where}: secondary must be a Table, got {value!r:.60}")
        return value

    def _join_argument(self, value: Any) -> Any:
        if value is None:
            return None
        if callable(value) and not isinstance(value, ColumnElement):
            value = value()
        if isinstance(value, str):
            value = _eval_string(self.parent, value, self.describe())
        return value

    def _setup_join(self, where: str) -> None:
        parent_table = self.parent.local_table
        target = self.target
        foreign = self._resolve_columns(self.foreign_keys_argument, where, "foreign_keys")
        remote = self._resolve_columns(self.remote_side_argument, where, "remote_side")
        secondary = self._resolve_secondary(where)
        pj = self._join_argument(self.primaryjoin_argument)
        sj = self._join_argument(self.secondaryjoin_argument)
        both = f"{self.parent.class_.__name__} and {self.entity.__name__}"
        if secondary is not None:
            self.secondary = secondary
            self.direction = MANYTOMANY
            if pj is not None:
                pairs, extra = _pairs_from_expression(pj, secondary, foreign, where)
                self.pairs = tuple((ref, fk) for ref, fk in pairs if fk.table is secondary)
                self.extra_criteria += extra
            else:
                self.pairs = _fk_pairs(secondary, parent_table, foreign, where, both)
            if sj is not None:
                pairs, extra = _pairs_from_expression(sj, secondary, foreign, where)
                self.secondary_pairs = tuple(
                    (ref, fk) for ref, fk in pairs if fk.table is secondary
                )
                self.extra_criteria += extra
            else:
                self.secondary_pairs = _fk_pairs(secondary, target, foreign, where, both)
            if parent_table is target and pj is None and sj is None:
                raise exc.ArgumentError(
                    f"{where}: a self-referential many-to-many relationship needs "
                    "primaryjoin and secondaryjoin to say which foreign key of the "
                    f"secondary table {secondary.fullname!r} points at the parent"
                )
            if not self.pairs or not self.secondary_pairs:
                raise exc.ArgumentError(
                    f"{where}: can't work out how the secondary table {secondary.fullname!r} "
                    f"joins {both}; give primaryjoin and secondaryjoin"
                )
        elif pj is not None:
            pairs, extra = _pairs_from_expression(pj, None, foreign, where)
            self.extra_criteria = extra
            if not pairs:
                raise exc.ArgumentError(
                    f"{where}: primaryjoin has no column = column comparison with a foreign "
                    f"key between {both}; mark the foreign key columns with foreign_keys="
                )
            fk_tables = {fk.table for _, fk in pairs}
            if parent_table is target:
                many_to_one = bool(remote) and all(ref in remote for ref, _ in pairs)
            elif fk_tables == {parent_table}:
                many_to_one = True
            elif fk_tables == {target}:
                many_to_one = False
            else:
                raise exc.ArgumentError(
                    f"{where}: the foreign key columns of primaryjoin must all be in one of "
                    f"the tables of {both}"
                )
            self.direction = MANYTOONE if many_to_one else ONETOMANY
            self.pairs = tuple(pairs)
        else:
            to_parent = _fk_candidates(target, parent_table, foreign)
            to_target = _fk_candidates(parent_table, target, foreign)
            if parent_table is target:
                candidates = to_parent
                if len(candidates) != 1:
                    self._ambiguous(candidates, where, both)
                pairs = list(candidates[0])
                if remote and all(fk in remote for _, fk in pairs):
                    many_to_one = False
                elif remote:
                    many_to_one = all(ref in remote for ref, _ in pairs)
                else:
                    many_to_one = False
                self.direction = MANYTOONE if many_to_one else ONETOMANY
                self.pairs = tuple(pairs)
            elif to_parent and to_target:
                raise exc.ArgumentError(
                    f"{where}: foreign keys run both ways between {both}; say which columns "
                    "are the foreign key with foreign_keys="
                )
            elif to_target:
                if len(to_target) != 1:
                    self._ambiguous(to_target, where, both)
                self.direction = MANYTOONE
                self.pairs = to_target[0]
            elif to_parent:
                if len(to_parent) != 1:
                    self._ambiguous(to_parent, where, both)
                self.direction = ONETOMANY
                self.pairs = to_parent[0]
            else:
                raise exc.ArgumentError(
                    f"{where}: no foreign key links the tables of {both} "
                    f"({parent_table.fullname!r}, {target.fullname!r}); add a ForeignKey, or "
                    "give primaryjoin= with foreign_keys="
                )
        self._set_keys(where)

    def _ambiguous(self, candidates: list[Any], where: str, both: str) -> typing.NoReturn:
        if not candidates:
            raise exc.ArgumentError(f"{where}: no foreign key links {both}")
        paths = "; ".join(", ".join(fk.describe() for _, fk in pairs) for pairs in candidates)
        raise exc.ArgumentError(
            f"{where}: several foreign key paths join {both} ({paths}); say which one with "
            "foreign_keys="
        )

    def _set_keys(self, where: str) -> None:
        parent, target = self.parent, self.mapper

        def key(mapper: Mapper, column: Column) -> str:
            found = mapper.key_for_column(column)
            if found is None:
                raise exc.ArgumentError(
                    f"{where}: the join column {column.describe()} is not mapped by "
                    f"{mapper.class_.__name__}"
                )
            return found

        if self.direction is MANYTOONE:
            self.local_keys = tuple(key(parent, fk) for _, fk in self.pairs)
            self.remote_keys = tuple(key(target, ref) for ref, _ in self.pairs)
        elif self.direction is ONETOMANY:
            self.local_keys = tuple(key(parent, ref) for ref, _ in self.pairs)
            self.remote_keys = tuple(key(target, fk) for _, fk in self.pairs)
        else:
            self.local_keys = tuple(key(parent, ref) for ref, _ in self.pairs)
            self.remote_keys = tuple(key(target, ref) for ref, _ in self.secondary_pairs)

    def link_back(self) -> None:
        """Resolve ``back_populates`` (after every property of the registry exists)."""
        if self.back_populates is None:
            return
        where = self.describe()
        other = self.mapper.relationships.get(self.back_populates)
        if other is None:
            raise exc.ArgumentError(
                f"{where}: back_populates={self.back_populates!r} names no relationship of "
                f"{self.entity.__name__}"
            )
        other.configure()
        if other.mapper is not self.parent:
            raise exc.ArgumentError(
                f"{where}: back_populates={self.back_populates!r} names "
                f"{other.describe()}, which points at {other.entity.__name__}, not at "
                f"{self.parent.class_.__name__}"
            )
        if other.back_populates not in (None, self.key):
            raise exc.ArgumentError(
                f"{where}: back_populates={self.back_populates!r}, but "
                f"{other.describe()} has back_populates={other.back_populates!r}"
            )
        expected = {ONETOMANY: MANYTOONE, MANYTOONE: ONETOMANY, MANYTOMANY: MANYTOMANY}
        if other.direction is not expected[self.direction]:
            raise exc.ArgumentError(
                f"{where} ({self.direction.name.lower()}) and {other.describe()} "
                f"({other.direction.name.lower()}) can't back-populate each other: they don't "
                "use the same foreign key in opposite directions"
            )
        self.back = other
        other.back = self

    # -- join criteria ----------------------------------------------------------------
    def join_condition(self, parent: Any = None, target: Any = None) -> ColumnElement:
        """parent JOIN target ON this (tables may be replaced by aliases)."""
        from asyncsession.sql.elements import and_

        def col(where: Any, column: Column) -> Any:
            return column if where is None else where.c[column.key]

        if self.direction is MANYTOMANY:
            raise exc.InvalidRequestError(f"{self.describe()} joins through a secondary table")
        if self.direction is MANYTOONE:
            criteria = [col(target, ref) == col(parent, fk) for ref, fk in self.pairs]
        else:
            criteria = [col(parent, ref) == col(target, fk) for ref, fk in self.pairs]
        return and_(*criteria, *self.extra_criteria)


def _eval_string(parent: Mapper, source: str, where: str) -> Any:
    """A string argument (``"Child.id"``, ``"and_(A.id == B.a_id, ...)"``) as an expression."""
    from asyncsession.sql import elements

    namespace: dict[str, Any] = {
        name: getattr(elements, name) for name in ("and_", "or_", "not_", "asc", "desc")
    }
    namespace["foreign"] = namespace["remote"] = lambda column: column
    reg = parent.registry
    for mapper in list(getattr(reg, "mappers", ())) if reg is not None else []:
        namespace[mapper.class_.__name__] = mapper.class_
    for table in parent.local_table.metadata.tables.values():
        namespace.setdefault(table.name, table)
    try:
        return eval(source, namespace)
    except Exception as err:
        raise exc.ArgumentError(f"{where}: can't evaluate {source!r}: {err}") from None


def _lookup_class(parent: Mapper, name: str) -> Any:
    reg = parent.registry
    mappers = list(getattr(reg, "mappers", ())) if reg is not None else []
    for mapper in mappers:
        cls = mapper.class_
        if cls.__name__ == name or f"{cls.__module__}.{cls.__qualname__}" == name:
            return cls
    return None


def _fk_candidates(
    holder: Table, referenced: Table, foreign: set[Column]
) -> list[tuple[tuple[Column, Column], ...]]:
    """Foreign key constraints of ``holder`` pointing at ``referenced``, as column pairs."""
    out = []
    for constraint in holder.constraints:
        if not isinstance(constraint, ForeignKeyConstraint):
            continue
        pairs = []
        for fk in constraint.elements:
            try:
                ref = fk.column
            except exc.NoReferenceError:
                continue
            if ref.table is referenced and (not foreign or fk.parent in foreign):
                pairs.append((ref, fk.parent))
        if pairs:
            out.append(tuple(pairs))
    if foreign and not out:
        # foreign_keys naming columns without a ForeignKey: pair them by name order
        # with the referenced table's primary key.
        cols = [c for c in holder.c if c in foreign]
        pk = list(referenced.primary_key.columns)
        if cols and len(cols) == len(pk):
            out.append(tuple(zip(pk, cols, strict=True)))
    return out


def _fk_pairs(
    secondary: Table, table: Table, foreign: set[Column], where: str, both: str
) -> tuple[tuple[Column, Column], ...]:
    candidates = _fk_candidates(secondary, table, foreign)
    if len(candidates) > 1:
        raise exc.ArgumentError(
            f"{where}: the secondary table {secondary.fullname!r} has several foreign keys to "
            f"{table.fullname!r} (joining {both}); give primaryjoin and secondaryjoin"
        )
    return candidates[0] if candidates else ()


def _pairs_from_expression(
    expression: Any, secondary: Table | None, foreign: set[Column], where: str
) -> tuple[list[tuple[Column, Column]], tuple[ColumnElement, ...]]:
    """(referenced, foreign) column pairs of ``col = col`` terms, and the other criteria."""
    expression = getattr(expression, "__clause_element__", lambda: expression)()
    terms: list[Any] = []

    def flatten(clause: Any) -> None:
        if isinstance(clause, Grouping):
            flatten(clause.element)
        elif isinstance(clause, BooleanClauseList) and clause.operator == ops.AND:
            for c in clause.clauses:
                flatten(c)
        else:
            terms.append(clause)

    flatten(expression)
    pairs: list[tuple[Column, Column]] = []
    extra: list[ColumnElement] = []
    for term in terms:
        if (
            isinstance(term, BinaryExpression)
            and term.operator == ops.EQ
            and isinstance(_column(term.left), Column)
            and isinstance(_column(term.right), Column)
        ):
            left, right = _column(term.left), _column(term.right)
            if right in foreign or (not foreign and _references(right, left)):
                pairs.append((left, right))
                continue
            if left in foreign or (not foreign and _references(left, right)):
                pairs.append((right, left))
                continue
            if secondary is not None and (right.table is secondary or left.table is secondary):
                fk, ref = (right, left) if right.table is secondary else (left, right)
                pairs.append((ref, fk))
                continue
        extra.append(term)
    return pairs, tuple(extra)


def _column(element: Any) -> Any:
    return getattr(element, "column", element)


def _references(fk_column: Column, column: Column) -> bool:
    return any(_safe_target(fk) is column for fk in fk_column.foreign_keys)


def _safe_target(fk: Any) -> Any:
    try:
        return fk.column
    except exc.NoReferenceError:
        return None


# -- configuring a registry ------------------------------------------------------------------

# Where a write-only relationship keeps its queued changes in the owner's __dict__.
WRITE_ONLY_PREFIX = "_asyncsession_queued_"

_unconfigured: weakref.WeakSet[Any] = weakref.WeakSet()  # registries with new relationships


def note_unconfigured(registry: Any) -> None:
    _unconfigured.add(registry)


def configure_mappers() -> None:
    """Configure every relationship declared so far (done lazily on first use too)."""
    for registry in list(_unconfigured):
        configure_registry(registry)


def configure_registry(registry: Any) -> None:
    props = [p for m in registry.mappers for p in m.relationships.values()]
    for prop in props:
        prop.configure()
    for prop in props:
        if prop.backref is not None and prop.back is None:
            _make_backref(prop)
    for prop in props:
        if prop.back is None:
            prop.link_back()
    _unconfigured.discard(registry)


def ensure_configured(mapper: Mapper) -> None:
    registry = mapper.registry
    if registry is not None and registry in _unconfigured:
        configure_registry(registry)


def _make_backref(prop: RelationshipProperty[Any]) -> None:
    spec = prop.backref
    name, kw = (spec, {}) if isinstance(spec, str) else spec
    target = prop.mapper
    where = prop.describe()
    if name in target.attrs:
        raise exc.ArgumentError(
            f"{where}: backref {name!r} clashes with the existing attribute "
            f"{target.class_.__name__}.{name}"
        )
    kw = dict(kw)
    if prop.direction is MANYTOMANY:
        kw.setdefault("secondary", prop.secondary)
        kw.setdefault("primaryjoin", prop.secondaryjoin_argument)
        kw.setdefault("secondaryjoin", prop.primaryjoin_argument)
    else:
        kw.setdefault("primaryjoin", prop.primaryjoin_argument)
        if prop.foreign_keys_argument is not None:
            kw.setdefault("foreign_keys", prop.foreign_keys_argument)
        if prop.parent is prop.mapper:  # adjacency list: the other side's remote side
            kw.setdefault(
                "remote_side",
                [ref for ref, _ in prop.pairs]
                if prop.direction is ONETOMANY
                else [fk for _, fk in prop.pairs],
            )
    kw.setdefault("viewonly", prop.viewonly)
    secondary = kw.pop("secondary", None)
    other: RelationshipProperty[Any] = RelationshipProperty(
        name, prop.parent.class_, secondary, back_populates=prop.key, **kw
    )
    target.add_relationship(other)
    other.configure()
    prop.back_populates = name
    prop.link_back()


# -- collections ----------------------------------------------------------------------------


def _snapshot(collection: Any) -> tuple[Any, ...]:
    return tuple(collection.values()) if isinstance(collection, dict) else tuple(collection)


class _Owned:
    """What every instrumented collection knows: its owner's state and the property."""

    _owner: InstanceState
    _prop: RelationshipProperty[Any]

    def _will_change(self) -> None:
        state = self._owner
        committed = state.committed_state
        if committed is None or self._prop.key not in committed:
            state.record_change(self._prop.key, _snapshot(self))

    def _check(self, item: Any) -> None:
        entity = self._prop.entity
        if not isinstance(item, entity):
            raise exc.ArgumentError(
                f"Can't add {type(item).__name__} object {item!r:.60} to "
                f"{self._prop.describe()}: it holds {entity.__name__} objects"
            )
        check_not_deleted(self._prop, self._owner, item)

    def _check_new(self, item: Any) -> None:
        """:meth:`_check`, for an item about to join (not already a member)."""
        self._check(item)
        if self._prop.single_parent:
            check_single_parent(self._prop, item)

    def _check_joining(self, items: Sequence[Any], checked: bool = False) -> None:
        """Check items about to join, all before any of them does."""
        if not checked:
            for item in items:
                self._check(item)
        if self._prop.single_parent:
            check_single_parents(self._prop, items)

    def _added(self, item: Any) -> None:
        owner = self._owner.obj_ref()
        mark_parent(self._prop, item, True)
        backref_added(self._prop, owner, item)
        cascade_added(self._prop, self._owner, item)

    def _removed(self, item: Any) -> None:
        owner = self._owner.obj_ref()
        mark_parent(self._prop, item, False)
        backref_removed(self._prop, owner, item)
        orphan_removed(self._prop, owner, item)


def _contains(collection: Iterable[Any], item: Any) -> bool:
    return any(x is item for x in collection)


class InstrumentedList(list[_T], _Owned):
    """A relationship's list: membership changes are tracked and kept in step."""

    def __init__(self, owner: InstanceState, prop: RelationshipProperty[Any], items: Any = ()):
        list.__init__(self, items)
        self._owner = owner
        self._prop = prop

    def append(self, item: _T) -> None:
        self._check_new(item)
        self._will_change()
        list.append(self, item)
        self._added(item)

    def extend(self, items: Iterable[_T]) -> None:
        items = list(items)
        self._check_joining(items)
        for item in items:
            self.append(item)

    def __iadd__(self, items: Iterable[_T]) -> InstrumentedList[_T]:  # type: ignore[override,misc]
        self.extend(items)
        return self

    def insert(self, index: Any, item: _T) -> None:
        self._check_new(item)
        self._will_change()
        list.insert(self, index, item)
        self._added(item)

    def remove(self, item: _T) -> None:
        for i, x in enumerate(self):
            if x is item or x == item:
                self._will_change()
                list.__delitem__(self, i)
                if not _contains(self, x):
                    self._removed(x)
                return
        raise ValueError(f"{item!r:.60} is not in {self._prop.describe()}")

    def pop(self, index: Any = -1) -> _T:
        self._will_change()
        item = list.pop(self, index)
        if not _contains(self, item):
            self._removed(item)
        return item

    def clear(self) -> None:
        if not self:
            return
        self._will_change()
        items = list(self)
        list.clear(self)
        for item in items:
            self._removed(item)

    def __setitem__(self, index: Any, value: Any) -> None:
        new = list(value) if isinstance(index, slice) else [value]
        old = self[index] if isinstance(index, slice) else [self[index]]
        for item in new:
            self._check(item)
        self._check_joining([item for item in new if not _contains(old, item)], checked=True)
        self._will_change()
        list.__setitem__(self, index, value if not isinstance(index, slice) else new)
        for item in old:
            if not _contains(self, item):
                self._removed(item)
        for item in new:
            if not _contains(old, item):
                self._added(item)

    def __delitem__(self, index: Any) -> None:
        self._will_change()
        old = self[index] if isinstance(index, slice) else [self[index]]
        list.__delitem__(self, index)
        for item in old:
            if not _contains(self, item):
                self._removed(item)

    def __imul__(self, n: Any) -> Any:  # type: ignore[misc]
        raise TypeError(f"{self._prop.describe()} can't be repeated in place")

    def _append_quiet(self, item: Any) -> None:
        self._will_change()
        list.append(self, item)

    def _remove_quiet(self, item: Any) -> None:
        for i, x in enumerate(self):
            if x is item:
                self._will_change()
                list.__delitem__(self, i)
                return

    def __reduce__(self) -> Any:
        return (list, (list(self),))


class InstrumentedSet(set[_T], _Owned):
    """A relationship's set (``Mapped[set[B]]``)."""

    def __init__(self, owner: InstanceState, prop: RelationshipProperty[Any], items: Any = ()):
        set.__init__(self, items)
        self._owner = owner
        self._prop = prop

    def add(self, item: _T) -> None:
        self._check(item)
        if item in self:
            return
        self._check_new(item)
        self._will_change()
        set.add(self, item)
        self._added(item)

    def update(self, *others: Iterable[_T]) -> None:
        items = [x for other in others for x in other]
        for item in items:
            self._check(item)
        self._check_joining([x for x in dict.fromkeys(items) if x not in self], checked=True)
        for item in items:
            self.add(item)

    def __ior__(self, other: Any) -> Any:  # type: ignore[misc]
        self.update(other)
        return self

    def discard(self, item: Any) -> None:
        if item in self:
            self._will_change()
            set.discard(self, item)
            self._removed(item)

    def remove(self, item: _T) -> None:
        if item not in self:
            raise KeyError(item)
        self.discard(item)

    def pop(self) -> _T:
        if not self:
            raise KeyError("pop from an empty set")
        item = next(iter(self))
        self.discard(item)
        return item

    def clear(self) -> None:
        for item in list(self):
            self.discard(item)

    def difference_update(self, *others: Iterable[Any]) -> None:
        for other in others:
            for item in list(other):
                self.discard(item)

    def __isub__(self, other: Any) -> Any:  # type: ignore[misc]
        self.difference_update(other)
        return self

    def intersection_update(self, *others: Iterable[Any]) -> None:
        keep = set(self).intersection(*others)
        for item in list(self):
            if item not in keep:
                self.discard(item)

    def __iand__(self, other: Any) -> Any:  # type: ignore[misc]
        self.intersection_update(other)
        return self

    def symmetric_difference_update(self, other: Iterable[Any]) -> None:
        for item in list(other):
            if item in self:
                self.discard(item)
            else:
                self.add(item)

    def __ixor__(self, other: Any) -> Any:  # type: ignore[misc]
        self.symmetric_difference_update(other)
        return self

    def _append_quiet(self, item: Any) -> None:
        if item not in self:
            self._will_change()
            set.add(self, item)

    def _remove_quiet(self, item: Any) -> None:
        if item in self:
            self._will_change()
            set.discard(self, item)

    def __reduce__(self) -> Any:
        return (set, (set(self),))


class KeyFuncDict(dict[Any, _T], _Owned):
    """A relationship's dict keyed by an attribute of each member (``attribute_keyed_dict``)."""

    keyfunc: Callable[[Any], Any]

    def __init__(self, owner: InstanceState, prop: RelationshipProperty[Any], items: Any = ()):
        dict.__init__(self)
        self._owner = owner
        self._prop = prop
        for item in items:
            dict.__setitem__(self, self.keyfunc(item), item)

    def __setitem__(self, key: Any, item: _T) -> None:
        self._check(item)
        if self.keyfunc(item) != key:
            raise exc.ArgumentError(
                f"{self._prop.describe()}: key {key!r} does not match the member's key "
                f"{self.keyfunc(item)!r}"
            )
        old = dict.get(self, key)
        if old is item:
            return
        if self._prop.single_parent:
            check_single_parent(self._prop, item)
        self._will_change()
        dict.__setitem__(self, key, item)
        if old is not None:
            self._removed(old)
        self._added(item)

    def set(self, item: _T) -> None:
        self[self.keyfunc(item)] = item

    def __delitem__(self, key: Any) -> None:
        item = dict.__getitem__(self, key)
        self._will_change()
        dict.__delitem__(self, key)
        self._removed(item)

    def remove(self, item: _T) -> None:
        del self[self.keyfunc(item)]

    def pop(self, key: Any, *default: Any) -> Any:
        if key not in self:
            if default:
                return default[0]
            raise KeyError(key)
        item = dict.__getitem__(self, key)
        del self[key]
        return item

    def popitem(self) -> tuple[Any, _T]:
        if not self:
            raise KeyError("popitem(): dictionary is empty")
        key = next(reversed(self.keys()))
        return key, self.pop(key)

    def clear(self) -> None:
        for key in list(self):
            del self[key]

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return dict.__getitem__(self, key)

    def update(self, *args: Any, **kw: Any) -> None:
        for key, item in dict(*args, **kw).items():
            self[key] = item

    def _append_quiet(self, item: Any) -> None:
        key = self.keyfunc(item)
        if dict.get(self, key) is not item:
            self._will_change()
            dict.__setitem__(self, key, item)

    def _remove_quiet(self, item: Any) -> None:
        for key, x in list(self.items()):
            if x is item:
                self._will_change()
                dict.__delitem__(self, key)

    def __reduce__(self) -> Any:
        return (dict, (dict(self),))


def attribute_keyed_dict(attr_name: str, *, ignore_unpopulated_attribute: bool = False) -> Any:
    """A dict collection keyed by each member's ``attr_name``.

    A member whose ``attr_name`` is None can't be keyed: ArgumentError, unless
    ``ignore_unpopulated_attribute`` (then it is keyed by None), as SQLAlchemy.
    """

    def keyfunc(item: Any) -> Any:
        value = item.__dict__.get(attr_name, NO_VALUE)
        if value is NO_VALUE:
            value = getattr(item, attr_name)
        if value is None and not ignore_unpopulated_attribute:
            raise exc.ArgumentError(
                f"Can't key {type(item).__name__} object {item!r:.60} by {attr_name!r}: the "
                "attribute is not set"
            )
        return value

    return type(f"KeyFuncDict[{attr_name}]", (KeyFuncDict,), {"keyfunc": staticmethod(keyfunc)})


def keyfunc_mapping(keyfunc: Callable[[Any], Any]) -> Any:
    """A dict collection keyed by ``keyfunc(member)``."""
    return type("KeyFuncDict", (KeyFuncDict,), {"keyfunc": staticmethod(keyfunc)})


attribute_mapped_collection = attribute_keyed_dict


def make_collection(state: InstanceState, prop: RelationshipProperty[Any], items: Any = ()) -> Any:
    """An instrumented collection for ``prop`` of ``state`` holding ``items`` (no events)."""
    cls = prop.collection_class
    if cls is list or cls is InstrumentedList:
        return InstrumentedList(state, prop, items)
    if cls is set or cls is InstrumentedSet:
        return InstrumentedSet(state, prop, items)
    if isinstance(cls, type) and issubclass(cls, KeyFuncDict):
        return cls(state, prop, items)
    if cls is dict:
        raise exc.ArgumentError(
            f"{prop.describe()}: a dict collection needs collection_class="
            "attribute_keyed_dict('name')"
        )
    raise exc.ArgumentError(
        f"{prop.describe()}: unsupported collection_class {cls!r}; use list, set or "
        "attribute_keyed_dict()"
    )


def members(value: Any) -> Iterable[Any]:
    """The objects a relationship value holds (a collection's members, or the one object)."""
    if value is None or value is NO_VALUE:
        return ()
    if isinstance(value, dict):
        return value.values()
    if isinstance(value, (list, set, tuple, frozenset)):
        return value
    return (value,)


# -- keeping both sides in step (no IO) -----------------------------------------------------


def backref_added(prop: RelationshipProperty[Any], owner: Any, item: Any) -> None:
    """``owner.<prop>`` gained ``item``: make ``item``'s side say so, where it is loaded."""
    back = prop.back
    if back is None or owner is None:
        return
    d = item.__dict__
    istate = instance_state(item)
    if back.uselist:
        coll = d.get(back.key)
        if coll is None:
            if istate.key is not None:
                return  # not loaded: the flush goes by this side's history
            coll = d[back.key] = make_collection(istate, back)
        if not _contains(members(coll), owner):
            coll._append_quiet(owner)
            mark_parent(back, owner, True)
        return
    old = d.get(back.key, NO_VALUE)
    if old is owner:
        return
    istate.record_change(back.key, old)
    d[back.key] = owner
    mark_parent(back, owner, True)
    if old is not NO_VALUE and old is not None:
        mark_parent(back, old, False)
        _forget(prop, old, item)


def backref_removed(prop: RelationshipProperty[Any], owner: Any, item: Any) -> None:
    """``owner.<prop>`` lost ``item``: make ``item``'s side say so, where it is loaded."""
    back = prop.back
    if back is None or owner is None or item is None:
        return
    d = item.__dict__
    if back.uselist:
        coll = d.get(back.key)
        if coll is not None:
            if back.single_parent and _contains(members(coll), owner):
                mark_parent(back, owner, False)
            coll._remove_quiet(owner)
        if not prop.uselist:  # ``item`` lost ``owner`` by ``owner.<prop> = ...``
            orphan_removed(back, item, owner)
        return
    current = d.get(back.key, NO_VALUE)
    if current is owner:
        instance_state(item).record_change(back.key, owner)
        d[back.key] = None
        mark_parent(back, owner, False)
    elif current is NO_VALUE and instance_state(item).key is not None:
        # Not loaded (expired): it pointed at ``owner``, whose loaded collection held
        # it, and points nowhere now (SQLAlchemy sets it the same way, without SQL).
        instance_state(item).record_change(back.key, NO_VALUE)
        d[back.key] = None


def orphan_removed(prop: RelationshipProperty[Any], owner: Any, item: Any) -> None:
    """``item`` left ``owner``'s delete-orphan collection ``prop``: a pending orphan
    leaves the session at once, as in SQLAlchemy (a persistent one is deleted at flush)."""
    if "delete-orphan" not in prop.cascade or item is None:
        return
    istate = instance_state(item)
    session = istate.session
    if istate.key is not None or session is None:
        return
    back = prop.back
    if back is not None and not back.uselist and item.__dict__.get(back.key) is not None:
        return  # it has another parent
    session.expunge(item)


def _forget(prop: RelationshipProperty[Any], old_owner: Any, item: Any) -> None:
    """``item`` moved away from ``old_owner``: drop it from ``old_owner.<prop>`` if loaded."""
    d = old_owner.__dict__
    if prop.uselist:
        coll = d.get(prop.key)
        if coll is not None:
            coll._remove_quiet(item)
    elif d.get(prop.key, NO_VALUE) is item:
        instance_state(old_owner).record_change(prop.key, item)
        d[prop.key] = None


def check_not_deleted(prop: RelationshipProperty[Any], owner: InstanceState, item: Any) -> None:
    """Refuse, before any change, to cascade save-update to an object deleted in a flush
    (SQLAlchemy raises the same): it has no row to be linked to."""
    if owner.session is None or "save-update" not in prop.cascade:
        return
    istate = instance_state(item)
    if istate._deleted:
        raise exc.InvalidRequestError(
            f"Can't link {type(item).__name__} object {item!r:.60} through "
            f"{prop.describe()}: it was deleted in a flush (its row is gone). Use a new "
            "object, or make_transient() it first."
        )


def check_single_parent(prop: RelationshipProperty[Any], item: Any) -> None:
    """Refuse a second parent along a ``single_parent`` relationship, as SQLAlchemy does.

    Only what happened in memory counts: an object added to one parent through
    ``prop`` (and not removed since) can't be added to another. Objects loaded
    from the database carry no such record, in SQLAlchemy neither.
    """
    parents = instance_state(item).parents
    if parents and parents.get(prop):
        raise exc.InvalidRequestError(
            f"Can't add {type(item).__name__} object {item!r:.60} to {prop.describe()}: it "
            f"already belongs to another {prop.parent.class_.__name__} there, and "
            f"{prop.describe()} has single_parent=True. Remove it from that one first."
        )


def check_single_parents(
    prop: RelationshipProperty[Any], items: Sequence[Any], members_now: Sequence[Any] = ()
) -> None:
    """:func:`check_single_parent` for several items about to be ``prop``'s members, all
    before any joins: none may have another parent (members already in ``members_now``
    keep theirs), and none may come twice, which would give it two."""
    seen: set[int] = set()
    for item in items:
        if id(item) in seen:
            raise exc.InvalidRequestError(
                f"Can't add {type(item).__name__} object {item!r:.60} to {prop.describe()} "
                f"twice: {prop.describe()} has single_parent=True, so each member has one "
                "parent"
            )
        seen.add(id(item))
        if not _contains(members_now, item):
            check_single_parent(prop, item)


def mark_parent(prop: RelationshipProperty[Any], item: Any, has_parent: bool) -> None:
    """Record that ``item`` joined (or left) a parent along ``prop``, if single_parent."""
    if prop.single_parent and item is not None:
        istate = instance_state(item)
        if istate.parents is None:
            istate.parents = {}
        istate.parents[prop] = has_parent


def cascade_added(prop: RelationshipProperty[Any], owner: InstanceState, item: Any) -> None:
    """save-update cascade: an object attached to a session object joins that session."""
    session = owner.session
    if session is None or item is None or "save-update" not in prop.cascade:
        return
    istate = instance_state(item)
    if istate.session is None and not istate._deleted:
        session._cascade_add(istate, item)


# -- the attribute ----------------------------------------------------------------------------


class RelationshipAttribute(Generic[_T]):
    """The descriptor of a relationship: ``A.bs`` for queries, ``a.bs`` for the value."""

    # Variants for queries (see orm.relquery): ``a1.bs`` (an aliased parent),
    # ``A.bs.of_type(b1)`` (an aliased target), ``A.bs.and_(...)`` (more ON criteria).
    _parent_entity: Any = None
    _of_type: Any = None
    _on_criteria: tuple[Any, ...] = ()

    def __init__(self, class_: type, key: str, prop: RelationshipProperty[Any]) -> None:
        self.class_ = class_
        self.key = key
        self.prop = prop
        self.impl_key = key
        self.parent = prop.parent

    def _configured(self) -> RelationshipProperty[Any]:
        if not self.prop.configured:
            ensure_configured(self.prop.parent)
        return self.prop

    @property
    def entity(self) -> Any:
        return self._configured().entity

    def __repr__(self) -> str:
        owner = self.class_.__name__
        if self._parent_entity is not None:
            owner = f"aliased({owner})"
        return f"<{owner}.{self.key}>"

    __hash__ = object.__hash__  # by identity (``==`` builds an expression)

    def _variant(self, **changes: Any) -> RelationshipAttribute[_T]:
        """A copy for queries with ``_parent_entity``/``_of_type``/``_on_criteria`` set."""
        new: RelationshipAttribute[_T] = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        for name, value in changes.items():
            setattr(new, f"_{name}", value)
        return new

    def _join_steps(self, froms: Any, right: Any = None, left: Any = None) -> Any:
        """The SQL layer's join hook: ``select(A).join(A.bs)``; see orm.relquery."""
        from asyncsession.orm import relquery

        return relquery.join_steps(self, froms, right, left)

    def __get__(self, instance: Any, owner: Any) -> Any:
        if instance is None:
            return self
        try:
            return instance.__dict__[self.key]
        except KeyError:
            return self._missing(instance)

    def _missing(self, instance: Any) -> Any:
        prop = self.property
        state = instance_state(instance)
        d = instance.__dict__
        if state.key is None:
            if not prop.uselist:
                return None
            if prop.is_write_only:
                return _write_only_view(state, prop)
            coll = d[self.key] = make_collection(state, prop)
            return coll
        if prop.is_write_only:
            return _write_only_view(state, prop)
        if prop.direction is MANYTOONE and not prop.uselist and prop.lazy != "raise":
            found = resolve_many_to_one(state, prop)
            if found is not NO_VALUE:
                d[self.key] = found
                return found
        lazy = prop.lazy
        marks = state.load_options  # raiseload()/lazyload() of the query that loaded it
        if marks is not None:
            lazy = marks.get(self.key, lazy)
        if lazy == "noload":
            value = make_collection(state, prop) if prop.uselist else None
            d[self.key] = value
            return value
        loader = implicit_loader.get()
        if loader is not None and lazy not in ("raise", "raise_on_sql"):
            return loader(state, self.key)
        raise unloaded_relationship_error(state, prop, lazy)

    def __set__(self, instance: Any, value: Any) -> None:
        prop = self.property
        if prop.viewonly:
            raise exc.InvalidRequestError(f"{prop.describe()} is viewonly and can't be assigned")
        state = instance_state(instance)
        if prop.is_write_only and state.key is not None:
            raise exc.InvalidRequestError(
                f"{prop.describe()} is write-only: use .add()/.remove() on it, not "
                "assignment, on a persistent object"
            )
        if prop.uselist:
            self._set_collection(instance, state, prop, value)
        else:
            self._set_scalar(instance, state, prop, value)

    def _set_scalar(
        self, instance: Any, state: InstanceState, prop: RelationshipProperty[Any], value: Any
    ) -> None:
        if value is not None and not isinstance(value, prop.entity):
            raise exc.ArgumentError(
                f"Can't set {prop.describe()} to a {type(value).__name__} ({value!r:.60}): it "
                f"holds a {prop.entity.__name__} or None"
            )
        if value is not None:
            check_not_deleted(prop, state, value)
        d = instance.__dict__
        old = d.get(self.key, NO_VALUE)
        if old is value:
            return
        if prop.single_parent and value is not None:
            check_single_parent(prop, value)
        if old is NO_VALUE and state.key is not None and prop.direction is not MANYTOONE:
            raise exc.UnloadedAttributeError(
                f"Can't replace {prop.describe()}: its current value is not loaded, and the "
                "flush needs it to unlink the old one. Load it first "
                f"(`await obj.awaitable_attrs.{self.key}`)."
            )
        state.record_change(self.key, old)
        d[self.key] = value
        if old is NO_VALUE and state.key is not None and prop.back is not None:
            # Not loaded, but maybe known without SQL (in the identity map): its
            # collection, if loaded, must lose this object (SQLAlchemy does the same).
            old = resolve_many_to_one(state, prop)
        if old is not NO_VALUE and old is not None:
            mark_parent(prop, old, False)
            backref_removed(prop, instance, old)
        if value is not None:
            mark_parent(prop, value, True)
            backref_added(prop, instance, value)
            cascade_added(prop, state, value)

    def _set_collection(
        self, instance: Any, state: InstanceState, prop: RelationshipProperty[Any], value: Any
    ) -> None:
        if value is None:
            raise exc.ArgumentError(
                f"Can't set {prop.describe()} to None; assign an empty collection instead"
            )
        items = list(value.values()) if isinstance(value, dict) else list(value)
        for item in items:
            if not isinstance(item, prop.entity):
                raise exc.ArgumentError(
                    f"Can't add {type(item).__name__} object {item!r:.60} to "
                    f"{prop.describe()}: it holds {prop.entity.__name__} objects"
                )
            check_not_deleted(prop, state, item)
        d = instance.__dict__
        old = d.get(self.key, NO_VALUE)
        if prop.single_parent:
            check_single_parents(prop, items, list(members(old)))
        if old is NO_VALUE and state.key is not None:
            raise exc.UnloadedAttributeError(
                f"Can't replace {prop.describe()}: the collection is not loaded, and the flush "
                "needs its old members to unlink them. Load it first "
                f"(`await obj.awaitable_attrs.{self.key}`)."
            )
        old_items = list(members(old))
        state.record_change(self.key, tuple(old_items) if old is not NO_VALUE else NO_VALUE)
        d[self.key] = make_collection(state, prop, items)
        for item in old_items:
            if not _contains(items, item):
                mark_parent(prop, item, False)
                backref_removed(prop, instance, item)
                orphan_removed(prop, instance, item)
        for item in items:
            if not _contains(old_items, item):
                mark_parent(prop, item, True)
                backref_added(prop, instance, item)
                cascade_added(prop, state, item)

    # -- query construction (see orm.query) -------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        from asyncsession.orm import relquery

        method = getattr(relquery, f"rel_{name}", None)
        if method is None:
            raise AttributeError(
                f"{type(self).__name__} object {self.class_.__name__}.{self.key} has no "
                f"attribute {name!r}"
            )
        return lambda *args, **kw: method(self, *args, **kw)

    def __eq__(self, other: Any) -> Any:
        from asyncsession.orm import relquery

        return relquery.rel_eq(self, other)

    def __ne__(self, other: Any) -> Any:
        from asyncsession.orm import relquery

        return relquery.rel_ne(self, other)

    # Last in the class body: the name shadows the builtin for what follows it.
    @property
    def property(self) -> RelationshipProperty[Any]:
        return self._configured()


def unloaded_relationship_error(
    state: InstanceState, prop: RelationshipProperty[Any], lazy: str | None = None
) -> exc.UnloadedAttributeError:
    cls = state.mapper.class_.__name__
    key = prop.key
    if lazy is None:
        lazy = prop.lazy
    if lazy != prop.lazy and lazy in ("raise", "raise_on_sql"):
        why = " (the query that loaded it said raiseload())"
    elif lazy in ("raise", "raise_on_sql"):
        why = f" (it is lazy={lazy!r})"
    else:
        why = ""
    return exc.UnloadedAttributeError(
        f"{cls}.{key} is not loaded{why}, and async code never loads implicitly. "
        f"Load it with `await obj.awaitable_attrs.{key}`, "
        f"`await session.refresh(obj, [{key!r}])`, or a loader option in the query "
        f"(selectinload({cls}.{key}), joinedload(...))."
    )


def resolve_many_to_one(state: InstanceState, prop: RelationshipProperty[Any]) -> Any:
    """A many-to-one known without SQL: None for a NULL key, or the object in the identity
    map; NO_VALUE when only a query could tell."""
    d = state.dict
    values = []
    for key in prop.local_keys:
        value = d.get(key, NO_VALUE)
        if value is NO_VALUE:
            return NO_VALUE
        values.append(value)
    if any(v is None for v in values):
        return None
    if not prop.simple_many_to_one or state.identity_map is None or prop.extra_criteria:
        return NO_VALUE
    pk = tuple(values[prop.remote_keys.index(k)] for k in prop.mapper.pk_keys)
    target = state.identity_map.get_state(prop.mapper.identity_key_from_primary_key(pk))
    if target is None or target._deleted:
        return NO_VALUE
    obj = target.obj_ref()
    if obj is None:
        return NO_VALUE
    expired = target.expired_attributes
    if expired and expired - prop.mapper.deferred_keys:
        return NO_VALUE
    return obj


def relationship_history(state: InstanceState, prop: RelationshipProperty[Any]) -> Any:
    """(added, unchanged, deleted) of a relationship, by object identity."""
    from asyncsession.orm.state import History

    d = state.dict
    if prop.is_write_only:
        queued = d.get(WRITE_ONLY_PREFIX + prop.key)
        if queued is None:
            return History((), (), ())
        return History(tuple(queued.added), (), tuple(queued.removed))
    current = d.get(prop.key, NO_VALUE)
    committed = state.committed_state
    now = tuple(members(current))
    if committed is None or prop.key not in committed:
        return History((), now, ())
    original = committed[prop.key]
    before = tuple(members(original))
    before_ids = {id(x) for x in before}
    now_ids = {id(x) for x in now}
    return History(
        tuple(x for x in now if id(x) not in before_ids),
        tuple(x for x in now if id(x) in before_ids),
        tuple(x for x in before if id(x) not in now_ids),
    )


def iter_loaded(state: InstanceState, prop: RelationshipProperty[Any]) -> Iterator[Any]:
    """Members of a loaded relationship value (nothing when unloaded)."""
    return iter(members(state.dict.get(prop.key, NO_VALUE)))


def set_committed(state: InstanceState, prop: RelationshipProperty[Any], items: Any) -> None:
    """Store a loaded relationship value without history (``items``: list, or an object)."""
    d = state.dict
    if prop.uselist:
        d[prop.key] = make_collection(state, prop, items)
    else:
        d[prop.key] = items


def _write_only_view(state: InstanceState, prop: RelationshipProperty[Any]) -> Any:
    from asyncsession.orm.writeonly import WriteOnlyCollection

    return WriteOnlyCollection(state, prop)
