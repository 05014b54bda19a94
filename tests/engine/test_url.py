"""URL parsing and rendering (pure)."""

from __future__ import annotations

import pickle

import pytest

from asyncsession import exc
from asyncsession.engine import URL, make_url


def test_parses_every_part() -> None:
    url = make_url("postgresql+asyncpg://scott:ti%40ger@db.example:6543/app?ssl=require")
    assert url.drivername == "postgresql+asyncpg"
    assert url.get_backend_name() == "postgresql"
    assert url.get_driver_name() == "asyncpg"
    assert (url.username, url.password) == ("scott", "ti@ger")
    assert (url.host, url.port, url.database) == ("db.example", 6543, "app")
    assert dict(url.query) == {"ssl": "require"}


def test_str_hides_the_password() -> None:
    url = make_url("postgresql+asyncpg://scott:tiger@localhost/app")
    assert str(url) == "postgresql+asyncpg://scott:***@localhost/app"
    assert url.render_as_string(hide_password=False) == (
        "postgresql+asyncpg://scott:tiger@localhost/app"
    )
    assert "tiger" not in repr(url)


@pytest.mark.parametrize(
    ("text", "database"),
    [
        ("sqlite+aiosqlite:///relative.db", "relative.db"),
        ("sqlite+aiosqlite:////abs/path.db", "/abs/path.db"),
        ("sqlite+aiosqlite://", None),
        ("sqlite+aiosqlite:///:memory:", ":memory:"),
    ],
)
def test_sqlite_paths(text: str, database: str | None) -> None:
    url = make_url(text)
    assert url.database == database
    assert url.host is None


def test_ipv6_host() -> None:
    url = make_url("postgresql+asyncpg://u@[::1]:5432/db")
    assert (url.host, url.port) == ("::1", 5432)
    assert str(url) == "postgresql+asyncpg://u@[::1]:5432/db"


def test_round_trip_and_value_semantics() -> None:
    text = "postgresql+asyncpg://u:p@h:1/d?a=1&b=2"
    url = make_url(text)
    assert make_url(url.render_as_string(hide_password=False)) == url
    assert make_url(url) is url
    assert hash(url) == hash(make_url(text))
    assert pickle.loads(pickle.dumps(url)) == url


def test_set_returns_a_changed_copy() -> None:
    url = make_url("postgresql+asyncpg://u@h/d")
    other = url.set(database="other", query={"ssl": "require"})
    assert (url.database, other.database) == ("d", "other")
    assert dict(other.query) == {"ssl": "require"}
    with pytest.raises(exc.ArgumentError, match="unknown parts"):
        url.set(dbname="x")


def test_create() -> None:
    url = URL.create("sqlite+aiosqlite", database="x.db")
    assert str(url) == "sqlite+aiosqlite:///x.db"


@pytest.mark.parametrize("text", ["not a url", "postgresql+asyncpg://u@h:port/db"])
def test_bad_urls_name_the_problem(text: str) -> None:
    with pytest.raises(exc.ArgumentError, match=r"URL|port"):
        make_url(text)
