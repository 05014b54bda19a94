"""The identity map: one object per identity key within a session.

How this works:

* Keys are ``(class, primary key tuple, identity_token)``. The map holds
  states; a state holds its object weakly, so an unmodified persistent object
  that the program drops is collected and leaves the map (a weakref callback
  removes it). A modified object is held strongly by its state (see
  ``InstanceState.record_change``) until its changes are flushed and
  committed, so changes are never lost to the garbage collector.
* ``modified`` is the set of states with recorded changes: the dirty
  candidates a flush inspects, so a flush never scans the whole map.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from asyncsession import exc
from asyncsession.orm.state import InstanceState


class IdentityMap:
    """Identity key → state, holding unmodified objects weakly."""

    __slots__ = ("__weakref__", "_dict", "modified")

    def __init__(self) -> None:
        self._dict: dict[tuple[Any, ...], InstanceState] = {}
        self.modified: set[InstanceState] = set()

    def _forget(self, state: InstanceState) -> None:
        """``state``'s object was collected (the state's weakref callback)."""
        key = state.key
        if key is not None and self._dict.get(key) is state:
            del self._dict[key]
        self.modified.discard(state)

    def add(self, state: InstanceState) -> None:
        """Register a state with an identity; an existing different object is an error."""
        key = state.key
        assert key is not None
        existing = self._dict.get(key)
        if existing is not None and existing is not state and existing.obj_ref() is not None:
            raise exc.InvalidRequestError(
                f"Can't attach instance {state.mapper.class_.__name__} with identity "
                f"{key[1]!r}: another instance with the same key is already in this "
                "session; merge() it instead"
            )
        self._dict[key] = state
        state.identity_map = self
        if state.modified:
            state._strong = state()
            self.modified.add(state)

    def add_loaded(
        self, obj: Any, mapper: Any, key: tuple[Any, ...], session: Any
    ) -> InstanceState:
        """The state of an object just built from a row, registered under ``key``.

        The loading hot path: the caller has checked that ``key`` is free.
        """
        state = InstanceState(obj, mapper, key, session, self)
        self._dict[key] = state
        return state

    def remove(self, state: InstanceState) -> None:
        key = state.key
        if key is not None and self._dict.get(key) is state:
            del self._dict[key]
        self.modified.discard(state)
        state.identity_map = None

    def replace_key(self, state: InstanceState, new_key: tuple[Any, ...]) -> None:
        """Move a state to a new key (its primary key changed)."""
        self.remove(state)
        state.key = new_key
        self.add(state)

    def get_state(self, key: tuple[Any, ...]) -> InstanceState | None:
        state = self._dict.get(key)
        if state is not None and state.obj_ref() is None:
            return None
        return state

    def get(self, key: tuple[Any, ...], default: Any = None) -> Any:
        state = self._dict.get(key)
        if state is None:
            return default
        obj = state.obj_ref()
        return default if obj is None else obj

    def __getitem__(self, key: tuple[Any, ...]) -> Any:
        obj = self.get(key)
        if obj is None:
            raise KeyError(key)
        return obj

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None  # type: ignore[arg-type]

    def states(self) -> list[InstanceState]:
        return [s for s in self._dict.values() if s.obj_ref() is not None]

    def values(self) -> list[Any]:
        out = []
        for state in list(self._dict.values()):
            obj = state.obj_ref()
            if obj is not None:
                out.append(obj)
        return out

    def keys(self) -> list[tuple[Any, ...]]:
        return [k for k, s in self._dict.items() if s.obj_ref() is not None]

    def items(self) -> list[tuple[tuple[Any, ...], Any]]:
        out = []
        for key, state in list(self._dict.items()):
            obj = state.obj_ref()
            if obj is not None:
                out.append((key, obj))
        return out

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.keys())

    def __len__(self) -> int:
        return sum(1 for s in self._dict.values() if s.obj_ref() is not None)

    def clear(self) -> list[InstanceState]:
        states = list(self._dict.values())
        for state in states:
            state.identity_map = None
        self._dict.clear()
        self.modified.clear()
        return states
