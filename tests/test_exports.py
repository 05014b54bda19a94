"""The public API: ``asyncsession.__all__`` is the whole of it and all of it exists."""

from __future__ import annotations

import types
from collections import Counter

import asyncsession
from asyncsession import exc


def test_every_name_in_all_exists() -> None:
    missing = [name for name in asyncsession.__all__ if not hasattr(asyncsession, name)]
    assert not missing, f"listed in asyncsession.__all__ but not defined: {missing}"


def test_all_has_no_duplicates() -> None:
    duplicates = [name for name, count in Counter(asyncsession.__all__).items() if count > 1]
    assert not duplicates, f"listed twice in asyncsession.__all__: {duplicates}"


def test_all_lists_only_public_names() -> None:
    private = [name for name in asyncsession.__all__ if name.startswith("_")]
    assert not private, f"private names in asyncsession.__all__: {private}"


def test_public_names_in_the_namespace_are_listed() -> None:
    # Submodules appear as attributes once imported; the API is what is not a module.
    unlisted = [
        name
        for name, value in vars(asyncsession).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name not in asyncsession.__all__
    ]
    assert not unlisted, f"public in asyncsession but missing from __all__: {unlisted}"


def test_every_exception_is_exported() -> None:
    # exc.TimeoutError stays in asyncsession.exc only: at top level, a star
    # import would shadow the builtin TimeoutError (SQLAlchemy does the same).
    not_exported = [
        name
        for name in exc.__all__
        if name != "TimeoutError"
        and (
            name not in asyncsession.__all__
            or getattr(asyncsession, name, None) is not getattr(exc, name)
        )
    ]
    assert not not_exported, f"in exc.__all__ but not exported by asyncsession: {not_exported}"


def test_exc_all_lists_every_exception_class() -> None:
    classes = {
        name
        for name, value in vars(exc).items()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__ == exc.__name__
    }
    assert classes == set(exc.__all__)
