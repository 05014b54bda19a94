"""The identity map: one object per identity key within a session.

How this works:

* Identity keys are ``(class, primary key tuple, identity_token)`` in every
  API. Inside, the map keeps one dict per class, keyed by the *identity*: the
  primary key value itself for a one-column key, the tuple for a composite
  one (see ``InstanceState.key``). So holding an object costs no key tuples,
  and the loader looks rows up without building one.
* The map holds states; a state is a weak reference to its object, so an
  unmodified persistent object that the program drops is collected and leaves
  the map (the state's weakref callback removes it). A modified object is
  held strongly by its state (see ``InstanceState.record_change``) until its
  changes are flushed and committed, so changes are never lost to the garbage
  collector.
* ``modified`` is the set of states with recorded changes: the dirty
  candidates a flush inspects, so a flush never scans the whole map.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from asyncsession import exc
from asyncsession.orm.state import InstanceState, make_state


def ident_of(key: tuple[Any, ...]) -> Any:
    """The identity in a key: the bare value of a one-column primary key, else the tuple."""
    pk = key[1]
    return pk[0] if len(pk) == 1 else pk


class IdentityMap:
    """Identity key → state, holding unmodified objects weakly."""

    __slots__ = ("__weakref__", "_by_class", "modified")

    def __init__(self) -> None:
        self._by_class: dict[type, dict[Any, InstanceState]] = {}
        self.modified: set[InstanceState] = set()

    def states_of(self, cls: type) -> dict[Any, InstanceState]:
        """The identity → state dict of one class (created empty): the loader's lookup."""
        found = self._by_class.get(cls)
        if found is None:
            found = self._by_class[cls] = {}
        return found

    def _forget(self, state: InstanceState) -> None:
        """``state``'s object was collected (the state's weakref callback)."""
        ident = state._ident
        if ident is not None:
            states = self._by_class.get(state.mapper.class_)
            if states is not None and states.get(ident) is state:
                del states[ident]
        self.modified.discard(state)

    def add(self, state: InstanceState) -> None:
        """Register a state with an identity; an existing different object is an error."""
        ident = state._ident
        assert ident is not None
        states = self.states_of(state.mapper.class_)
        existing = states.get(ident)
        if existing is not None and existing is not state and existing() is not None:
            raise exc.InvalidRequestError(
                f"Can't attach instance {state.mapper.class_.__name__} with identity "
                f"{state.identity!r}: another instance with the same key is already in this "
                "session; merge() it instead"
            )
        states[ident] = state
        state.identity_map = self
        if state.modified:
            state._strong = state()
            self.modified.add(state)

    def add_loaded(
        self, obj: Any, mapper: Any, ident: Any, session: Any, states: dict[Any, InstanceState]
    ) -> InstanceState:
        """The state of an object just built from a row, registered under ``ident``.

        The loading hot path: ``states`` is ``states_of(mapper.class_)`` and the
        caller has checked that ``ident`` is free.
        """
        state = make_state(obj, mapper, ident, session, self)
        states[ident] = state
        return state

    def remove(self, state: InstanceState) -> None:
        self._forget(state)
        state.identity_map = None

    def replace_key(self, state: InstanceState, new_key: tuple[Any, ...]) -> None:
        """Move a state to a new key (its primary key changed)."""
        self.remove(state)
        state.key = new_key
        self.add(state)

    def _lookup(self, key: tuple[Any, ...]) -> InstanceState | None:
        states = self._by_class.get(key[0])
        if states is None:
            return None
        try:
            return states.get(ident_of(key))
        except TypeError:  # an unhashable value can't be a key
            return None

    def get_state(self, key: tuple[Any, ...]) -> InstanceState | None:
        state = self._lookup(key)
        if state is not None and state() is None:
            return None
        return state

    def get(self, key: tuple[Any, ...], default: Any = None) -> Any:
        state = self._lookup(key)
        if state is None:
            return default
        obj = state()
        return default if obj is None else obj

    def __getitem__(self, key: tuple[Any, ...]) -> Any:
        obj = self.get(key)
        if obj is None:
            raise KeyError(key)
        return obj

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None  # type: ignore[arg-type]

    def _all(self) -> list[InstanceState]:
        return [s for states in self._by_class.values() for s in states.values()]

    def states(self) -> list[InstanceState]:
        return [s for s in self._all() if s() is not None]

    def values(self) -> list[Any]:
        out = []
        for state in self._all():
            obj = state()
            if obj is not None:
                out.append(obj)
        return out

    def keys(self) -> list[tuple[Any, ...]]:
        return [key for key, _ in self.items()]

    def items(self) -> list[tuple[tuple[Any, ...], Any]]:
        out = []
        for state in self._all():
            obj = state()
            key = state.key
            if obj is not None and key is not None:
                out.append((key, obj))
        return out

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.keys())

    def __len__(self) -> int:
        return sum(1 for s in self._all() if s() is not None)

    def clear(self) -> list[InstanceState]:
        states = self._all()
        for state in states:
            state.identity_map = None
        # Emptied in place: loaders hold on to these dicts (states_of()).
        for by_ident in self._by_class.values():
            by_ident.clear()
        self.modified.clear()
        return states
