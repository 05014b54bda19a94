"""Exceptions survive pickling (multiprocessing, logging handlers, test runners)
and a failed statement's message shows its SQL and parameters."""

from __future__ import annotations

import inspect
import pickle
from typing import Any

import pytest

from asyncsession import exc

EXCEPTIONS = sorted(
    (
        value
        for value in vars(exc).values()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__ == exc.__name__
    ),
    key=lambda cls: cls.__name__,
)
STATEMENT_ERRORS = [cls for cls in EXCEPTIONS if issubclass(cls, exc.StatementError)]

# A value for every constructor parameter, none of them a default, so an
# attribute that __reduce__ forgets comes back different.
SAMPLES: dict[str, Any] = {
    "message": "something failed",
    "statement": "INSERT INTO users (id, name) VALUES ($1, $2)",
    "params": (7, "ann"),
    "orig": ValueError("from the driver"),
    "connection_invalidated": True,
    "sqlstate": "23505",
    "table_name": "users",
    "column_name": "id",
    "cycle": ("users", "addresses"),
}


def make(cls: type[BaseException]) -> BaseException:
    if cls.__init__ is BaseException.__init__:
        return cls(SAMPLES["message"])
    parameters = [
        p
        for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    unknown = [p.name for p in parameters if p.name not in SAMPLES]
    assert not unknown, f"add a sample value for {cls.__name__}'s parameters {unknown} to SAMPLES"
    return cls(**{p.name: SAMPLES[p.name] for p in parameters})


def comparable(value: Any) -> Any:
    # Exceptions compare by identity; compare what they carry instead.
    if isinstance(value, BaseException):
        return (type(value), value.args)
    return value


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda cls: cls.__name__)
def test_pickle_round_trip(cls: type[BaseException]) -> None:
    error = make(cls)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    assert copy.args == error.args
    assert {k: comparable(v) for k, v in vars(copy).items()} == {
        k: comparable(v) for k, v in vars(error).items()
    }
    assert str(copy) == str(error)


@pytest.mark.parametrize("cls", STATEMENT_ERRORS, ids=lambda cls: cls.__name__)
def test_statement_error_str_shows_sql_and_parameters(cls: type[exc.StatementError]) -> None:
    error = cls("duplicate key", "INSERT INTO users (name) VALUES ($1)", ("ann",))
    text = str(error)
    assert "duplicate key" in text
    assert "INSERT INTO users (name) VALUES ($1)" in text
    assert "'ann'" in text


def test_exceptions_were_found() -> None:
    assert exc.AsyncSessionError in EXCEPTIONS
    assert exc.IntegrityError in STATEMENT_ERRORS
