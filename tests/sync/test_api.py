"""The facade mirrors the async API: same method names, same parameters (pure, no database).

The facade's methods are written by hand, one runner call each; this test is
what keeps them in step with the async classes. A new public method on an
async class fails it until the facade has the method too, or the method is
listed in ``NOT_PROXIED`` with the reason.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from asyncsession import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    AsyncTransaction,
    async_sessionmaker,
    create_async_engine,
    sync,
)
from asyncsession.orm.transaction import SessionTransaction as AsyncSessionTransaction

NOT_PROXIED: dict[type, dict[str, str]] = {
    AsyncSession: {
        "run_sync": "blocking code needs no worker thread",
    },
    AsyncConnection: {
        "start": "engine.connect() checks the connection out at once",
        "run_sync": "blocking code needs no worker thread",
        "get_raw_connection": "the driver connection belongs to the facade's event loop",
    },
    AsyncEngine: {},
    AsyncTransaction: {"start": "begin() and begin_nested() begin at once"},
    async_sessionmaker: {},
}

# (facade method, parameter) -> why its default differs from the async one.
DIFFERENT_DEFAULTS = {
    (sync.Session.__init__, "expire_on_commit"): "True, as SQLAlchemy's blocking Session",
    (sync.sessionmaker.__init__, "class_"): "the facade's Session",
}

PAIRS = [
    (sync.Session, AsyncSession),
    (sync.Connection, AsyncConnection),
    (sync.Engine, AsyncEngine),
    (sync.Transaction, AsyncTransaction),
    (sync.sessionmaker, async_sessionmaker),
]


def public_members(cls: type) -> dict[str, Any]:
    members = {}
    for name in dir(cls):
        if name.startswith("_"):
            continue
        value = inspect.getattr_static(cls, name)
        if inspect.isfunction(value) or isinstance(value, property):
            members[name] = value
    return members


def parameters(fn: Callable[..., Any]) -> list[tuple[str, Any, Any]]:
    signature = inspect.signature(fn)
    return [(p.name, p.kind, p.default) for p in signature.parameters.values() if p.name != "self"]


@pytest.mark.parametrize(("facade", "original"), PAIRS, ids=lambda c: c.__name__)
def test_every_public_method_is_proxied(facade: type, original: type) -> None:
    skipped = NOT_PROXIED[original]
    missing = [
        name
        for name in public_members(original)
        if name not in skipped and not hasattr(facade, name)
    ]
    assert not missing, f"{facade.__name__} lacks {missing} of {original.__name__}"
    stale = [name for name in skipped if hasattr(facade, name)]
    assert not stale, f"{facade.__name__} now has {stale}: drop them from NOT_PROXIED"


@pytest.mark.parametrize(("facade", "original"), PAIRS, ids=lambda c: c.__name__)
def test_signatures_match(facade: type, original: type) -> None:
    names = [
        name
        for name, member in public_members(original).items()
        if inspect.isfunction(member) and hasattr(facade, name)
    ]
    names.append("__init__")
    for name in names:
        if name == "__init__" and facade in (sync.Connection, sync.Engine, sync.Transaction):
            continue  # built by engine.connect() / begin(), or around an AsyncEngine
        mine = getattr(facade, name)
        theirs = getattr(original, name)
        expected = parameters(theirs)
        got = parameters(mine)
        for index, (param, kind, default) in enumerate(got):
            reason = DIFFERENT_DEFAULTS.get((mine, param))
            if reason is not None:
                assert default != expected[index][2], f"{name}({param}) no longer differs"
                expected[index] = (param, kind, default)
        assert got == expected, f"{facade.__name__}.{name} differs from {original.__name__}"


def test_session_transaction_methods_match() -> None:
    for name in ("commit", "rollback"):
        assert parameters(getattr(sync.SessionTransaction, name)) == parameters(
            getattr(AsyncSessionTransaction, name)
        )


def test_create_engine_takes_create_async_engines_arguments() -> None:
    assert parameters(sync.create_engine) == parameters(create_async_engine)


def test_exports() -> None:
    assert all(hasattr(sync, name) for name in sync.__all__)
    assert sorted(sync.__all__) == sync.__all__
