"""Instance state: what the ORM knows about one mapped object.

How this works:

* Attribute values live in the object's own ``__dict__`` under their attribute
  keys, so reading a loaded attribute is one dict lookup. The object's
  :class:`InstanceState` lives there too, under ``STATE_KEY``.
* A key missing from ``__dict__`` is *unloaded*: never set (transient and
  pending objects read ``None``), expired, or deferred. Reading an unloaded
  attribute of an object that has an identity raises
  ``UnloadedAttributeError``: no attribute access ever does IO in async code.
  Blocking code (the sync facade, ``run_sync``) installs an implicit loader in
  a context variable, and only then is the attribute loaded on access.
* The first change to an attribute records its previous value in
  ``committed_state`` (``NO_VALUE`` if it was not loaded). History compares
  the current value with that record; a flush or commit clears it.
* The lifecycle flags follow SQLAlchemy: transient (no identity, no session),
  pending (no identity, in a session), persistent (identity and session),
  deleted (deleted in a flush, not yet committed), detached (identity, no
  session).
"""

from __future__ import annotations

import contextvars
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from asyncsession import exc

if TYPE_CHECKING:
    from asyncsession.orm.identity import IdentityMap
    from asyncsession.orm.mapper import Mapper

STATE_KEY = "_asyncsession_state"


class _NoValue:
    """The value of an attribute that was never loaded or set."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_VALUE"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "NO_VALUE"


NO_VALUE: Any = _NoValue()

# Set by blocking contexts (the sync facade, run_sync) to a function that loads
# an attribute of a state; None in async code, where loading must be explicit.
implicit_loader: contextvars.ContextVar[Callable[[InstanceState, str], Any] | None] = (
    contextvars.ContextVar("asyncsession_implicit_loader", default=None)
)


class History(NamedTuple):
    """An attribute's change since it was loaded: (added, unchanged, deleted)."""

    added: tuple[Any, ...]
    unchanged: tuple[Any, ...]
    deleted: tuple[Any, ...]

    def has_changes(self) -> bool:
        return bool(self.added or self.deleted)

    def empty(self) -> bool:
        return not (self.added or self.unchanged or self.deleted)

    def sum(self) -> tuple[Any, ...]:
        return self.added + self.unchanged + self.deleted

    def non_deleted(self) -> tuple[Any, ...]:
        return self.added + self.unchanged


_EMPTY_HISTORY = History((), (), ())


def values_differ(a: Any, b: Any) -> bool:
    """Change detection for scalars: identity, then equality (errors count as changed)."""
    if a is b:
        return False
    try:
        return bool(a != b)
    except Exception:
        return True


def _object_gone(state: InstanceState) -> None:
    """An object was garbage collected: its state leaves the identity map it was in."""
    identity_map = state.identity_map
    if identity_map is not None:
        identity_map._forget(state)


class InstanceState(weakref.ref):  # type: ignore[type-arg]
    """The ORM's bookkeeping for one mapped object; ``inspect(obj)`` returns it.

    The state *is* the weak reference to its object (``state()``, or
    ``state.obj_ref()``): one allocation fewer per object than a state holding a
    separate weakref. Equality and hashing are by identity, never the object's.
    """

    __slots__ = (
        "_deleted",
        "_ident",
        "_strong",
        "committed_state",
        "expired_attributes",
        "identity_map",
        "load_options",
        "mapper",
        "modified",
        "parents",
        "session",
    )

    __hash__ = object.__hash__

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    def __new__(cls, obj: Any, *args: Any, **kwargs: Any) -> InstanceState:
        return weakref.ref.__new__(cls, obj, _object_gone)

    def __init__(
        self,
        obj: Any,
        mapper: Mapper,
        key: tuple[Any, ...] | None = None,
        session: Any = None,
        identity_map: IdentityMap | None = None,
    ) -> None:
        # weakref.ref.__init__ only checks the arguments __new__ already took.
        self._setup(
            mapper,
            None if key is None else (key[1][0] if len(key[1]) == 1 else key[1]),
            session,
            identity_map,
        )

    def _setup(
        self, mapper: Mapper, ident: Any, session: Any, identity_map: IdentityMap | None
    ) -> None:
        """Every slot's first value (for the constructor and :func:`make_state`)."""
        self.mapper = mapper
        # The identity: the primary key value (one column) or tuple (several), or
        # None before the object has a row. ``key`` is built from it on demand.
        self._ident: Any = ident
        self.session: Any = session
        self.identity_map: IdentityMap | None = identity_map
        self.committed_state: dict[str, Any] | None = None
        self.expired_attributes: set[str] | None = None
        self.modified = False
        self._deleted = False
        self._strong: Any = None
        self.load_options: Any = None
        # single_parent relationships this object was added to in memory (True) or
        # removed from since (False): see relationships.check_single_parent().
        self.parents: dict[Any, bool] | None = None

    @property
    def obj_ref(self) -> Callable[[], Any]:
        """The weak reference to the object: the state itself."""
        return self

    @property
    def key(self) -> tuple[Any, ...] | None:
        """The identity key ``(class, primary key tuple, None)``, or None without a row."""
        ident = self._ident
        if ident is None:
            return None
        mapper = self.mapper
        return (mapper.class_, (ident,) if len(mapper.pk_keys) == 1 else ident, None)

    @key.setter
    def key(self, key: tuple[Any, ...] | None) -> None:
        self._ident = None if key is None else (key[1][0] if len(key[1]) == 1 else key[1])

    # -- lifecycle flags --------------------------------------------------------
    @property
    def transient(self) -> bool:
        return self._ident is None and self.session is None

    @property
    def pending(self) -> bool:
        return self._ident is None and self.session is not None

    @property
    def persistent(self) -> bool:
        return self._ident is not None and self.session is not None and not self._deleted

    @property
    def deleted(self) -> bool:
        return self._ident is not None and self.session is not None and self._deleted

    @property
    def was_deleted(self) -> bool:
        return self._deleted

    @property
    def detached(self) -> bool:
        return self._ident is not None and self.session is None

    @property
    def has_identity(self) -> bool:
        return self._ident is not None

    @property
    def identity(self) -> tuple[Any, ...] | None:
        """The primary key tuple, or None before the object is flushed."""
        ident = self._ident
        if ident is None:
            return None
        return (ident,) if len(self.mapper.pk_keys) == 1 else ident

    def value_or_identity(self, key: str) -> Any:
        """``key``'s value in the object; for an unloaded primary key attribute, the
        identity's (always known once the object has a row); else NO_VALUE."""
        value = self.dict.get(key, NO_VALUE)
        if value is NO_VALUE and self._ident is not None and key in self.mapper.pk_keys:
            identity = self.identity
            assert identity is not None
            return identity[self.mapper.pk_keys.index(key)]
        return value

    @property
    def identity_key(self) -> tuple[Any, ...] | None:
        return self.key

    @property
    def object(self) -> Any:
        return self.obj_ref()

    obj = object

    @property
    def dict(self) -> dict[str, Any]:
        obj = self()
        return obj.__dict__ if obj is not None else {}

    @property
    def async_session(self) -> Any:
        return self.session

    @property
    def class_(self) -> Any:
        return self.mapper.class_

    # -- attribute bookkeeping ------------------------------------------------------
    @property
    def unloaded(self) -> set[str]:
        """Attribute keys with no value in the object (expired, deferred or never set)."""
        d = self.dict
        return {k for k in self.mapper.attr_keys if k not in d}

    @property
    def expired(self) -> bool:
        return bool(self.expired_attributes)

    @property
    def attrs(self) -> AttributeStates:
        return AttributeStates(self)

    def record_change(self, key: str, old: Any) -> None:
        """Note that ``key`` changes from ``old`` (first change only)."""
        committed = self.committed_state
        if committed is None:
            committed = self.committed_state = {}
        if key not in committed:
            committed[key] = old
        if not self.modified:
            self.modified = True
            self._strong = self()
            if self.identity_map is not None:
                self.identity_map.modified.add(self)
                # As SQLAlchemy: changing a persistent object autobegins (no IO),
                # so that a rollback() discards the change.
                session = self.session
                if session is not None and session._transaction is None and session.autobegin:
                    session._begin("autobegin")

    def history(self, key: str) -> History:
        prop = self.mapper.relationships.get(key)
        if prop is not None:
            from asyncsession.orm.relationships import relationship_history

            return relationship_history(self, prop)  # type: ignore[no-any-return]
        d = self.dict
        current = d.get(key, NO_VALUE)
        committed = self.committed_state
        if committed is None or key not in committed:
            if current is NO_VALUE:
                return _EMPTY_HISTORY
            return History((), (current,), ())
        original = committed[key]
        if original is NO_VALUE:
            if current is NO_VALUE:
                return _EMPTY_HISTORY
            return History((current,), (), ())
        if current is NO_VALUE:
            return History((), (), (original,))
        if values_differ(current, original):
            return History((current,), (), (original,))
        return History((), (current,), ())

    def changed_keys(self) -> list[str]:
        """Keys whose current value differs from the loaded one."""
        committed = self.committed_state
        if not committed:
            return []
        obj = self()
        d = obj.__dict__ if obj is not None else {}
        out = []
        for key, original in committed.items():
            current = d.get(key, NO_VALUE)
            if current is NO_VALUE:
                if key in self.mapper.relationship_keys:
                    out.append(key)  # a write-only collection's queued changes
                continue
            if original is NO_VALUE or (
                current is not original and values_differ(current, original)
            ):
                out.append(key)
        return out

    def commit(self, keys: Iterable[str]) -> None:
        """Forget the recorded changes of ``keys`` (their current values are now loaded)."""
        committed = self.committed_state
        if committed:
            for key in keys:
                committed.pop(key, None)
        if self.expired_attributes:
            self.expired_attributes.difference_update(keys)

    def commit_all(self) -> None:
        """Forget every recorded change: the object matches its row."""
        self.committed_state = None
        expired = self.expired_attributes
        if expired:
            expired.difference_update(self.dict)  # assigned since the expire: loaded now
        if self.modified:
            self.modified = False
            self._strong = None
            if self.identity_map is not None:
                self.identity_map.modified.discard(self)

    def expire(self, keys: Iterable[str] | None = None) -> None:
        """Drop loaded values (all attributes, or ``keys``) and any changes to them."""
        obj = self.obj_ref()
        if obj is None:
            return
        d = obj.__dict__
        keys = list(self.mapper.expirable_keys if keys is None else keys)
        expired = self.expired_attributes
        if expired is None:
            expired = self.expired_attributes = set()
        relationships = self.mapper.relationship_keys
        for key in keys:
            d.pop(key, None)
            if key not in relationships:  # an unloaded relationship is simply not loaded
                expired.add(key)
        committed = self.committed_state
        if committed:
            for key in keys:
                committed.pop(key, None)
        if not committed and self.modified:
            self.commit_all()

    def unloaded_error(self, key: str) -> exc.UnloadedAttributeError:
        prop = self.mapper.relationships.get(key)
        if prop is not None:
            from asyncsession.orm.relationships import unloaded_relationship_error

            return unloaded_relationship_error(self, prop)
        cls = self.mapper.class_.__name__
        if self.expired_attributes and key in self.expired_attributes:
            why = "it was expired"
        elif key in self.mapper.deferred_keys:
            why = "it is deferred"
        else:
            why = "it was not loaded"
        return exc.UnloadedAttributeError(
            f"{cls}.{key} is not loaded ({why}), and async code never loads implicitly. "
            f"Load it with `await obj.awaitable_attrs.{key}`, "
            f"`await session.refresh(obj, [{key!r}])`, or a loader option in the query "
            f"(undefer(), selectinload(), ...)."
        )

    def __repr__(self) -> str:
        if self.transient:
            flag = "transient"
        elif self.pending:
            flag = "pending"
        elif self.deleted:
            flag = "deleted"
        elif self.persistent:
            flag = "persistent"
        else:
            flag = "detached"
        return f"<InstanceState {self.mapper.class_.__name__} {flag} key={self.identity}>"


_new_ref = weakref.ref.__new__


def make_state(
    obj: Any,
    mapper: Mapper,
    ident: Any = None,
    session: Any = None,
    identity_map: IdentityMap | None = None,
) -> InstanceState:
    """``InstanceState(obj, mapper, ...)`` with the identity ``ident`` (the key's primary
    key value, or tuple for several columns), made without going through the
    constructor's ``__new__`` and ``__init__``: half the cost, for the hot paths that
    make one state per object (loading rows, constructing objects)."""
    state: InstanceState = _new_ref(InstanceState, obj, _object_gone)
    state._setup(mapper, ident, session, identity_map)
    return state


class AttributeState:
    """``inspect(obj).attrs.name``: one attribute's value, history and load status."""

    __slots__ = ("key", "state")

    def __init__(self, state: InstanceState, key: str) -> None:
        self.state = state
        self.key = key

    @property
    def loaded_value(self) -> Any:
        return self.state.dict.get(self.key, NO_VALUE)

    @property
    def value(self) -> Any:
        obj = self.state.obj_ref()
        return getattr(obj, self.key)

    @property
    def history(self) -> History:
        return self.state.history(self.key)

    def load_history(self) -> History:
        return self.history


class AttributeStates:
    """The ``attrs`` namespace of an InstanceState."""

    __slots__ = ("_state",)

    def __init__(self, state: InstanceState) -> None:
        self._state = state

    def __getattr__(self, key: str) -> AttributeState:
        if key not in self._state.mapper.attrs:
            raise AttributeError(
                f"{self._state.mapper.class_.__name__} has no mapped attribute {key!r}"
            )
        return AttributeState(self._state, key)

    def __getitem__(self, key: str) -> AttributeState:
        return self.__getattr__(key)

    def __iter__(self) -> Any:
        return (AttributeState(self._state, k) for k in self._state.mapper.attrs)

    def keys(self) -> list[str]:
        return list(self._state.mapper.attrs)


def instance_state(obj: Any) -> InstanceState:
    """The state of a mapped object, created on first use."""
    try:
        return obj.__dict__[STATE_KEY]  # type: ignore[no-any-return]
    except KeyError:
        pass
    except AttributeError:
        if getattr(type(obj), "__mapper__", None) is None:
            raise exc.ArgumentError(f"{type(obj).__name__!r} is not a mapped class") from None
        raise exc.ArgumentError(
            f"{type(obj).__name__} objects have no __dict__; mapped classes can't use __slots__"
        ) from None
    return new_state(obj)


def new_state(obj: Any) -> InstanceState:
    """Create the state of a mapped object that has none yet (its ``__dict__`` has no
    ``STATE_KEY``): :func:`instance_state` without the look for an existing one."""
    mapper = getattr(type(obj), "__mapper__", None)
    if mapper is None:
        raise exc.ArgumentError(f"{type(obj).__name__!r} is not a mapped class")
    state = make_state(obj, mapper)
    obj.__dict__[STATE_KEY] = state
    return state


def maybe_state(obj: Any) -> InstanceState | None:
    d = getattr(obj, "__dict__", None)
    if d is None:
        return None
    state = d.get(STATE_KEY)
    if state is None and getattr(type(obj), "__mapper__", None) is not None:
        return instance_state(obj)
    return state  # type: ignore[no-any-return]
