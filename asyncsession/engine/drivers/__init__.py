"""Database drivers behind one small protocol (see ``base``).

These are the only modules that import asyncpg or aiosqlite. :func:`load_driver`
picks the adapter a URL names; the driver modules are imported only then, so an
engine for one backend never loads the other library.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from asyncsession import exc
from asyncsession.engine.drivers.base import Driver
from asyncsession.engine.url import URL

__all__ = ["load_driver"]

_DEFAULT_DRIVERS = {"postgresql": "asyncpg", "sqlite": "aiosqlite"}


def load_driver(url: URL, connect_args: Mapping[str, Any]) -> Driver:
    """The configured (not yet connected) driver for ``url``.

    Raises :class:`~asyncsession.exc.ArgumentError` for a backend or driver that
    is not supported, or for options the driver does not accept.
    """
    backend = url.get_backend_name()
    driver = url.get_driver_name() or _DEFAULT_DRIVERS.get(backend)
    if (backend, driver) == ("postgresql", "asyncpg"):
        from asyncsession.engine.drivers.postgresql import PGDriver

        return PGDriver(url, connect_args)
    if (backend, driver) == ("sqlite", "aiosqlite"):
        from asyncsession.engine.drivers.sqlite import SQLiteDriver

        return SQLiteDriver(url, connect_args)
    raise exc.ArgumentError(
        f"Can't load a driver for {url.drivername!r}; supported: 'postgresql+asyncpg' "
        "and 'sqlite+aiosqlite'"
    )
