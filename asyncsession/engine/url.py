"""Database URLs: parse ``backend+driver://user:password@host:port/database?key=value``.

A :class:`URL` is a frozen value; :func:`make_url` parses a string into one and
:meth:`URL.set` returns a changed copy. Parsing does no IO and never looks at the
driver: which backends exist and which query keys they accept is decided when an
engine is created (``engine/drivers``).

Rules, as SQLAlchemy writes URLs:

- user name, password, host and database are percent-decoded;
- ``sqlite+aiosqlite:///relative.db`` names a relative file,
  ``sqlite+aiosqlite:////abs/path.db`` an absolute one, and
  ``sqlite+aiosqlite://`` (or ``:memory:``) an in-memory database;
- ``str(url)`` hides the password; ``url.render_as_string(hide_password=False)``
  gives it back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

import attrs

from asyncsession import exc

__all__ = ["URL", "make_url"]

_URL_PATTERN = re.compile(
    r"""
    ^(?P<drivername>[\w+.-]+)://
    (?:
        (?P<username>[^:/@]*)
        (?::(?P<password>[^@]*))?
    @)?
    (?:
        \[(?P<ipv6host>[^/?\]]+)\] |
        (?P<host>[^/?:]+)
    )?
    (?::(?P<port>[^/?]*))?
    (?:/(?P<database>[^?]*))?
    (?:\?(?P<query>.*))?$
    """,
    re.VERBOSE,
)


def _freeze_query(query: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(query or {}))


@attrs.frozen
class URL:
    """A parsed database URL.

    ``drivername`` is ``backend+driver`` (``postgresql+asyncpg``) or just the
    backend name; ``query`` is a read-only mapping of the ``?key=value`` pairs.
    Build one with :meth:`create` or :func:`make_url`.
    """

    drivername: str
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    host: str | None = None
    port: int | None = None
    database: str | None = None
    # A mapping proxy is not hashable; the other fields make a good enough hash.
    query: Mapping[str, str] = attrs.field(default=None, converter=_freeze_query, hash=False)

    @classmethod
    def create(
        cls,
        drivername: str,
        username: str | None = None,
        password: str | None = None,
        host: str | None = None,
        port: int | None = None,
        database: str | None = None,
        query: Mapping[str, str] | None = None,
    ) -> URL:
        """Build a URL from its parts (no percent-decoding is applied)."""
        return cls(drivername, username, password, host, port, database, query)

    def set(self, **changes: Any) -> URL:
        """A copy with the named parts (``host=``, ``database=``, ``query=``...) replaced."""
        unknown = set(changes) - {a.name for a in attrs.fields(URL)}
        if unknown:
            raise exc.ArgumentError(f"URL.set() got unknown parts: {sorted(unknown)}")
        return attrs.evolve(self, **changes)

    def get_backend_name(self) -> str:
        """``postgresql`` for ``postgresql+asyncpg``."""
        return self.drivername.partition("+")[0]

    def get_driver_name(self) -> str | None:
        """``asyncpg`` for ``postgresql+asyncpg``; None when the URL names no driver."""
        return self.drivername.partition("+")[2] or None

    def render_as_string(self, *, hide_password: bool = True) -> str:
        """The URL as text; the password shows as ``***`` unless ``hide_password=False``."""
        text = self.drivername + "://"
        if self.username is not None:
            text += quote(self.username, safe=" +")
            if self.password is not None:
                text += ":" + ("***" if hide_password else quote(self.password, safe=" +"))
            text += "@"
        if self.host is not None:
            text += f"[{self.host}]" if ":" in self.host else quote(self.host, safe="")
        if self.port is not None:
            text += f":{self.port}"
        if self.database is not None:
            text += "/" + self.database
        if self.query:
            text += "?" + urlencode(dict(self.query))
        return text

    def __str__(self) -> str:
        return self.render_as_string()

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            URL,
            (
                self.drivername,
                self.username,
                self.password,
                self.host,
                self.port,
                self.database,
                dict(self.query),
            ),
        )


def make_url(name_or_url: str | URL) -> URL:
    """Parse ``name_or_url`` into a :class:`URL` (a URL is returned as is).

    Raises :class:`~asyncsession.exc.ArgumentError` naming the text when it is not
    of the form ``backend+driver://user:password@host:port/database?key=value``.
    """
    if isinstance(name_or_url, URL):
        return name_or_url
    match = _URL_PATTERN.match(name_or_url)
    if match is None:
        raise exc.ArgumentError(
            f"Could not parse a database URL from {name_or_url!r}; expected "
            "'backend+driver://user:password@host:port/database', for example "
            "'postgresql+asyncpg://user@localhost/app' or 'sqlite+aiosqlite:///app.db'"
        )
    parts = match.groupdict()
    port: int | None = None
    if parts["port"]:
        try:
            port = int(parts["port"])
        except ValueError:
            raise exc.ArgumentError(
                f"The port in the database URL must be a number, not {parts['port']!r}"
            ) from None
    query = dict(parse_qsl(parts["query"], keep_blank_values=True)) if parts["query"] else {}
    host = parts["ipv6host"] or parts["host"]
    return URL(
        drivername=parts["drivername"],
        username=unquote(parts["username"]) if parts["username"] is not None else None,
        password=unquote(parts["password"]) if parts["password"] is not None else None,
        host=unquote(host) if host else None,
        port=port,
        database=unquote(parts["database"]) if parts["database"] else None,
        query=query,
    )
