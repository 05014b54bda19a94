"""Loader options: ``selectinload(User.addresses)``, ``load_only(User.name)``, ... No IO here.

How this works:

* An option is a :class:`Load`: a root entity, the path of relationships a
  chain has walked so far, and the rules the chain set along the way. Each
  chained call (``selectinload(A.bs).joinedload(B.c)``) checks that its
  attribute belongs to the entity the path has reached and returns a new
  ``Load`` with one more rule, so options are immutable values: they hash and
  compare by value, and a statement can carry them without copying.
* A relationship rule says how the relationship at ``path + (key,)`` loads:
  ``selectin`` (``subqueryload`` too: the same outcome through the IN
  strategy), ``joined``, ``contains_eager``, ``select`` (lazy: left unloaded,
  loaded on access only in blocking code), ``raise``, ``noload``, or None
  (``defaultload``: unchanged, only a step for the chain). ``"*"`` as the
  attribute is a wildcard for every relationship at that level (bare, for
  every level) that no rule names.
* A column rule says which columns an entity at ``path`` loads: ``load_only``,
  ``defer``, ``undefer``.
* Mistakes fail when the option is built, before any SQL: a column option
  naming a relationship, a relationship option naming a column, a chain
  naming an attribute of another entity. An option whose root entity is not
  selected by the statement fails when the statement is planned (also before
  any SQL).
* At execution :func:`context_for` gathers the rules that apply to one
  entity of a statement into a :class:`LoadContext`; ``context.child(prop)``
  is the context of the entities that relationship loads. Relationship
  defaults (``lazy=`` on ``relationship()``) apply where no rule does; an
  eager *default* never re-enters a relationship already on the path, so
  self-referential defaults load one level, not the whole tree (explicit
  options go as deep as they say).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from asyncsession import exc
from asyncsession.orm.attributes import QueryableAttribute
from asyncsession.orm.relationships import RelationshipAttribute, RelationshipProperty

if TYPE_CHECKING:
    from asyncsession.orm.mapper import Mapper

Path = tuple[RelationshipProperty[Any], ...]

SELECTIN = "selectin"
JOINED = "joined"
CONTAINS_EAGER = "contains_eager"
LAZY = "select"
RAISE = "raise"
NOLOAD = "noload"

# relationship(lazy=...) -> the strategy it means when no option says otherwise.
DEFAULTS = {
    "select": LAZY,
    "selectin": SELECTIN,
    "subquery": SELECTIN,
    "joined": JOINED,
    "raise": RAISE,
    "raise_on_sql": RAISE,
    "noload": NOLOAD,
    "write_only": None,
}
EAGER = frozenset({SELECTIN, JOINED, CONTAINS_EAGER})


@attrs.frozen
class RelationshipRule:
    """How the relationship ``key`` (or ``"*"``) of the entity at ``path`` loads."""

    path: Path
    key: str
    strategy: str | None  # None: defaultload, the relationship's own default
    innerjoin: bool = False
    recursion_depth: int | None = None


@attrs.frozen
class ColumnRule:
    """Which columns the entity at ``path`` loads: ``kind`` is only, defer or undefer."""

    path: Path
    kind: str
    keys: tuple[str, ...]


Rule = RelationshipRule | ColumnRule


def _mapper_of_class(cls: Any) -> Mapper:
    mapper = getattr(cls, "__mapper__", None) if isinstance(cls, type) else None
    if mapper is None:
        raise exc.ArgumentError(f"Load() takes a mapped class, not {cls!r:.60}")
    return mapper  # type: ignore[no-any-return]


def _root_converter(entity: Any) -> Mapper | None:
    return _root(entity)


def _name(attr: Any) -> str:
    if isinstance(attr, (RelationshipAttribute, QueryableAttribute)):
        return f"{attr.class_.__name__}.{attr.key}"
    return repr(attr)[:60]


@attrs.frozen
class Load:
    """A loader option: a chain of rules from a root entity, e.g. ``Load(User).selectinload(...)``.

    Build it with ``Load(Entity)`` or one of the option functions
    (:func:`selectinload`, ...); every method returns a new ``Load`` whose
    path ends at the attribute it named, so chains read left to right.
    """

    root: Mapper | None = attrs.field(converter=_root_converter)
    path: Path = ()
    rules: tuple[Rule, ...] = ()

    # -- where the chain stands ---------------------------------------------------------
    @property
    def entity(self) -> Mapper | None:
        """The mapper of the entities the path has reached (None for a bare wildcard)."""
        if self.path:
            return self.path[-1].mapper
        return self.root

    def _relationship(self, attr: Any, option: str) -> RelationshipProperty[Any] | None:
        if isinstance(attr, str) and attr == "*":
            return None
        if isinstance(attr, QueryableAttribute):
            raise exc.ArgumentError(
                f"{option}({_name(attr)}): {_name(attr)} is a column attribute; {option}() "
                "takes a relationship. Use load_only(), defer() or undefer() for columns."
            )
        if not isinstance(attr, RelationshipAttribute):
            raise exc.ArgumentError(
                f"{option}() takes a relationship attribute such as User.addresses (or '*'), "
                f"not {attr!r:.60}"
            )
        prop = attr.property
        self._check_owner(prop.parent, _name(attr), option)
        if prop.is_write_only:
            raise exc.ArgumentError(
                f"{option}({_name(attr)}): {prop.describe()} is write-only; it is never loaded. "
                f"Query it with {prop.describe()}.select() instead."
            )
        return prop

    def _check_owner(self, owner: Mapper, name: str, option: str) -> None:
        entity = self.entity
        if entity is None:
            raise exc.ArgumentError(
                f"{option}({name}) can't follow a wildcard ('*'); start a new option"
            )
        if not issubclass(entity.class_, owner.class_):
            where = (
                f"the chain has reached {entity.class_.__name__} (through "
                f"{self.path[-1].describe()})"
                if self.path
                else f"the option starts at {entity.class_.__name__}"
            )
            raise exc.ArgumentError(
                f"{option}({name}): {name} is an attribute of {owner.class_.__name__}, but "
                f"{where}. Name an attribute of {entity.class_.__name__} there."
            )

    def _columns(self, attrs_: Iterable[Any], option: str) -> tuple[str, ...]:
        keys = []
        for attr in attrs_:
            if isinstance(attr, RelationshipAttribute):
                raise exc.ArgumentError(
                    f"{option}({_name(attr)}): {_name(attr)} is a relationship; {option}() "
                    "takes column attributes. Use selectinload(), joinedload(), noload(), "
                    "raiseload() or lazyload() for relationships."
                )
            if not isinstance(attr, QueryableAttribute):
                raise exc.ArgumentError(
                    f"{option}() takes column attributes such as User.name, not {attr!r:.60}"
                )
            self._check_owner(attr.parent, _name(attr), option)
            keys.append(attr.key)
        if not keys:
            raise exc.ArgumentError(f"{option}() needs at least one column attribute")
        return tuple(keys)

    def _add_relationship(
        self,
        attr: Any,
        strategy: str | None,
        option: str,
        innerjoin: bool = False,
        recursion_depth: int | None = None,
    ) -> Load:
        prop = self._relationship(attr, option)
        if prop is None:
            if strategy in (None, CONTAINS_EAGER):
                raise exc.ArgumentError(f"{option}() does not take the wildcard '*'")
            rule = RelationshipRule(self.path, "*", strategy)
            return Load(self.root, self.path, (*self.rules, rule))
        rule = RelationshipRule(self.path, prop.key, strategy, innerjoin, recursion_depth)
        return Load(self.root, (*self.path, prop), (*self.rules, rule))

    # -- relationship strategies -----------------------------------------------------------
    def selectinload(self, attr: Any, *, recursion_depth: int | None = None) -> Load:
        """Load with a second ``SELECT ... WHERE key IN (...)`` per chunk of parents.

        ``recursion_depth`` (self-referential relationships): repeat for that
        many more levels, or until no objects are left with -1.
        """
        if recursion_depth is not None and not isinstance(recursion_depth, int):
            raise exc.ArgumentError("selectinload(recursion_depth=...) takes an int")
        return self._add_relationship(attr, SELECTIN, "selectinload", False, recursion_depth)

    def subqueryload(self, attr: Any) -> Load:
        """As :meth:`selectinload`: the same objects, loaded by the IN strategy."""
        return self._add_relationship(attr, SELECTIN, "subqueryload")

    def joinedload(self, attr: Any, *, innerjoin: bool = False) -> Load:
        """Load in the same SELECT through a LEFT OUTER JOIN (INNER with ``innerjoin``)."""
        return self._add_relationship(attr, JOINED, "joinedload", innerjoin)

    def contains_eager(self, attr: Any) -> Load:
        """Fill the relationship from columns of its target the statement joins itself."""
        return self._add_relationship(attr, CONTAINS_EAGER, "contains_eager")

    def lazyload(self, attr: Any) -> Load:
        """Leave it unloaded: async code loads it explicitly; blocking code on access."""
        return self._add_relationship(attr, LAZY, "lazyload")

    def raiseload(self, attr: Any) -> Load:
        """Leave it unloaded, and make access raise even in blocking code."""
        return self._add_relationship(attr, RAISE, "raiseload")

    def noload(self, attr: Any) -> Load:
        """Never load it: an empty collection or None, marked loaded."""
        return self._add_relationship(attr, NOLOAD, "noload")

    def defaultload(self, attr: Any) -> Load:
        """Keep its default strategy; a step for options further down the chain."""
        return self._add_relationship(attr, None, "defaultload")

    # -- columns -------------------------------------------------------------------------
    def load_only(self, *attrs_: Any) -> Load:
        """Load only these columns (and the primary key) of the entity reached."""
        rule = ColumnRule(self.path, "only", self._columns(attrs_, "load_only"))
        return Load(self.root, self.path, (*self.rules, rule))

    def defer(self, *attrs_: Any) -> Load:
        """Leave these columns unloaded."""
        rule = ColumnRule(self.path, "defer", self._columns(attrs_, "defer"))
        return Load(self.root, self.path, (*self.rules, rule))

    def undefer(self, *attrs_: Any) -> Load:
        """Load these deferred columns too."""
        rule = ColumnRule(self.path, "undefer", self._columns(attrs_, "undefer"))
        return Load(self.root, self.path, (*self.rules, rule))

    def options(self, *options: Load) -> Load:
        """Apply options relative to the entity reached: ``selectinload(A.bs).options(...)``."""
        entity = self.entity
        rules = list(self.rules)
        for option in options:
            if not isinstance(option, Load):
                raise exc.ArgumentError(f"options() takes loader options, not {option!r:.60}")
            if option.root is not None:
                assert entity is not None
                if not issubclass(entity.class_, option.root.class_):
                    raise exc.ArgumentError(
                        f"options(): a sub-option starting at {option.root.class_.__name__} "
                        f"can't apply to {entity.class_.__name__}"
                    )
            for rule in option.rules:
                rules.append(attrs.evolve(rule, path=self.path + rule.path))
        return Load(self.root, self.path, tuple(rules))


def _root(entity: Any) -> Mapper | None:
    if entity is None:
        return None
    if type(entity).__name__ == "Mapper":
        return entity  # type: ignore[no-any-return]
    return _mapper_of_class(entity)


def _start(attr: Any, option: str) -> Load:
    if isinstance(attr, str) and attr == "*":
        return Load(None)
    if isinstance(attr, (RelationshipAttribute, QueryableAttribute)):
        parent = attr.parent
        return Load(parent)
    raise exc.ArgumentError(
        f"{option}() takes a mapped attribute such as User.addresses, not {attr!r:.60}"
    )


def selectinload(attr: Any, *, recursion_depth: int | None = None) -> Load:
    """Eager-load a relationship with one ``IN`` query per relationship (per 500 parents)."""
    return _start(attr, "selectinload").selectinload(attr, recursion_depth=recursion_depth)


def subqueryload(attr: Any) -> Load:
    """As :func:`selectinload` (asyncsession loads "subquery" relationships by IN)."""
    return _start(attr, "subqueryload").subqueryload(attr)


def joinedload(attr: Any, *, innerjoin: bool = False) -> Load:
    """Eager-load a relationship by a JOIN in the same SELECT.

    Results with joined *collections* must be de-duplicated with ``unique()``.
    """
    return _start(attr, "joinedload").joinedload(attr, innerjoin=innerjoin)


def contains_eager(attr: Any) -> Load:
    """Populate a relationship from the columns of a JOIN the statement does itself."""
    return _start(attr, "contains_eager").contains_eager(attr)


def lazyload(attr: Any) -> Load:
    """Leave a relationship unloaded (explicit load in async code, on access when blocking)."""
    return _start(attr, "lazyload").lazyload(attr)


def raiseload(attr: Any) -> Load:
    """Leave a relationship unloaded; reading it raises, in blocking code too."""
    return _start(attr, "raiseload").raiseload(attr)


def noload(attr: Any) -> Load:
    """Never load a relationship: it reads as an empty collection or None."""
    return _start(attr, "noload").noload(attr)


def defaultload(attr: Any) -> Load:
    """Keep a relationship's default strategy; a first step for options below it."""
    return _start(attr, "defaultload").defaultload(attr)


def load_only(*attrs_: Any) -> Load:
    """Load only these columns (and the primary key) of their entity."""
    if not attrs_:
        raise exc.ArgumentError("load_only() needs at least one column attribute")
    return _start(attrs_[0], "load_only").load_only(*attrs_)


def defer(*attrs_: Any) -> Load:
    """Leave these columns unloaded until loaded explicitly."""
    if not attrs_:
        raise exc.ArgumentError("defer() needs at least one column attribute")
    return _start(attrs_[0], "defer").defer(*attrs_)


def undefer(*attrs_: Any) -> Load:
    """Load these deferred columns with their entity."""
    if not attrs_:
        raise exc.ArgumentError("undefer() needs at least one column attribute")
    return _start(attrs_[0], "undefer").undefer(*attrs_)


# -- applying options to a statement ----------------------------------------------------------


@attrs.frozen
class ColumnSpec:
    """The column choices for one entity: ``only`` (or None), ``defer``, ``undefer``."""

    only: frozenset[str] | None = None
    defer: frozenset[str] = frozenset()
    undefer: frozenset[str] = frozenset()


_NO_COLUMNS = ColumnSpec()


@attrs.define(eq=False, slots=True)
class LoadContext:
    """The rules that apply to the entities at one level of a load (shared by its children)."""

    relationships: Mapping[tuple[Path, str], RelationshipRule]
    wildcards: Mapping[Path | None, RelationshipRule]
    columns: Mapping[Path, ColumnSpec]
    path: Path = ()
    apply_defaults: bool = True
    # Extra levels a selectinload(recursion_depth=...) still repeats, by relationship.
    recursion: Mapping[RelationshipProperty[Any], int] = attrs.field(factory=dict)

    def child(self, prop: RelationshipProperty[Any]) -> LoadContext:
        """The context of the objects ``prop`` loads."""
        recursion = self.recursion
        rule = self.relationships.get((self.path, prop.key))
        remaining = recursion.get(prop)
        if rule is not None and rule.recursion_depth is not None and remaining is None:
            remaining = rule.recursion_depth
        if remaining is not None:
            recursion = {**recursion, prop: remaining - 1}
        return LoadContext(
            self.relationships,
            self.wildcards,
            self.columns,
            (*self.path, prop),
            self.apply_defaults,
            recursion,
        )

    def strategy(self, prop: RelationshipProperty[Any]) -> tuple[str | None, bool]:
        """(strategy, innerjoin) of ``prop`` here; None for write-only relationships."""
        default = DEFAULTS[prop.lazy]
        if default is None:
            return None, False
        rule = self.relationships.get((self.path, prop.key))
        if rule is not None and rule.strategy is not None:
            return rule.strategy, rule.innerjoin
        remaining = self.recursion.get(prop)
        if remaining is not None and remaining != 0:
            return SELECTIN, False  # selectinload(recursion_depth=...) goes on
        if rule is None:
            wildcard = self.wildcards.get(self.path) or self.wildcards.get(None)
            if wildcard is not None and wildcard.strategy is not None:
                default = wildcard.strategy
        if not self.apply_defaults and default in (SELECTIN, JOINED, NOLOAD):
            return LAZY, False  # the session's own loads (cascades) load what they need
        if default in EAGER and prop in self.path:
            return LAZY, False  # a default never re-enters a relationship on the path
        return default, prop.innerjoin

    def column_spec(self) -> ColumnSpec:
        return self.columns.get(self.path, _NO_COLUMNS)


def _gather(
    rules: Iterable[Rule], apply_defaults: bool = True, everywhere: Iterable[Rule] = ()
) -> LoadContext:
    relationships: dict[tuple[Path, str], RelationshipRule] = {}
    wildcards: dict[Path | None, RelationshipRule] = {}
    columns: dict[Path, ColumnSpec] = {}
    for rule in everywhere:  # bare wildcards: raiseload("*") applies at every level
        if isinstance(rule, RelationshipRule):
            wildcards[None] = rule
    for rule in rules:
        if isinstance(rule, RelationshipRule):
            if rule.key == "*":
                wildcards[rule.path] = rule
                continue
            found = relationships.get((rule.path, rule.key))
            # defaultload() steps never replace a strategy another option set.
            if found is None or rule.strategy is not None:
                relationships[(rule.path, rule.key)] = rule
            continue
        spec = columns.get(rule.path, _NO_COLUMNS)
        keys = frozenset(rule.keys)
        if rule.kind == "only":
            spec = attrs.evolve(spec, only=keys if spec.only is None else spec.only | keys)
        elif rule.kind == "defer":
            spec = attrs.evolve(spec, defer=spec.defer | keys)
        else:
            spec = attrs.evolve(spec, undefer=spec.undefer | keys)
        columns[rule.path] = spec
    return LoadContext(relationships, wildcards, columns, (), apply_defaults)


DEFAULT_CONTEXT = _gather(())
# Loads the session does for itself (delete cascades): no eager or noload defaults.
PLAIN_CONTEXT = _gather((), apply_defaults=False)


def contexts_for(
    options: tuple[Any, ...], mappers: list[Mapper | None]
) -> list[LoadContext | None]:
    """The context of each entity of a statement (None for plain columns).

    An option applies to the first entity of its root class (or a subclass); a
    bare wildcard to every entity. Raises ArgumentError for an option whose
    entity the statement does not select.
    """
    per_entity: list[list[Rule]] = [[] for _ in mappers]
    everywhere: list[Rule] = []
    given: list[LoadContext | None] = [None for _ in mappers]
    for option in options:
        if isinstance(option, LoadContext):
            given[0] = option  # the session's own nested loads: the first entity
            continue
        if not isinstance(option, Load):
            raise exc.ArgumentError(
                f"options() takes loader options (selectinload(), load_only(), ...), not "
                f"{option!r:.60}"
            )
        if option.root is None:
            everywhere.extend(option.rules)
            continue
        for i, mapper in enumerate(mappers):
            if mapper is not None and issubclass(mapper.class_, option.root.class_):
                per_entity[i].extend(option.rules)
                break
        else:
            selected = ", ".join(m.class_.__name__ for m in mappers if m is not None)
            first = option.rules[0] if option.rules else None
            what = (
                f"{option.root.class_.__name__}.{first.key}"
                if isinstance(first, RelationshipRule)
                else (
                    f"{option.root.class_.__name__}.{first.keys[0]}"
                    if isinstance(first, ColumnRule)
                    else option.root.class_.__name__
                )
            )
            raise exc.ArgumentError(
                f"Loader option for {what} names {option.root.class_.__name__}, which this "
                f"statement does not select (it selects {selected or 'no entities'}). "
                "Options apply to entities in the SELECT list."
            )
    out: list[LoadContext | None] = []
    for mapper, rules, ctx in zip(mappers, per_entity, given, strict=True):
        if mapper is None:
            out.append(None)
        elif ctx is not None:
            out.append(ctx)
        elif rules or everywhere:
            out.append(_gather(rules, everywhere=everywhere))
        else:
            out.append(DEFAULT_CONTEXT)
    return out


def context_for_option(option: Any) -> tuple[RelationshipProperty[Any], LoadContext]:
    """(first relationship, context of what it loads) of a chain, for ``load_relationship``."""
    if isinstance(option, Load) and option.rules:
        first = option.rules[0]
        if isinstance(first, RelationshipRule) and first.key != "*" and not first.path:
            assert option.root is not None
            prop = option.root.relationships[first.key]
            return prop, _gather(option.rules).child(prop)
    raise exc.ArgumentError(
        "load_relationship() takes a relationship attribute (A.bs) or an option chain "
        f"starting with one (selectinload(A.bs).selectinload(B.cs)), not {option!r:.60}"
    )
