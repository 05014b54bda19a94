"""``create_async_engine()``: turn a URL and options into an :class:`AsyncEngine`.

No IO happens here and nothing is bound to an event loop: the driver is only
configured (unknown URL or connect options fail now, with ArgumentError), the
dialect built and an empty pool made. In-memory SQLite gets a
:class:`~asyncsession.engine.pool.StaticPool` (every new connection would be a
new, empty database); everything else a :class:`~asyncsession.engine.pool.QueuePool`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from asyncsession import exc
from asyncsession.engine.base import AsyncEngine, _check_options
from asyncsession.engine.drivers import load_driver
from asyncsession.engine.drivers.base import Driver, DriverConnection
from asyncsession.engine.log import ENGINE_LOGGER, configure_echo
from asyncsession.engine.pool import Pool, QueuePool, StaticPool
from asyncsession.engine.url import URL, make_url
from asyncsession.sql.compiler import Dialect
from asyncsession.sql.dialects.postgresql import PGDialect
from asyncsession.sql.dialects.sqlite import SQLiteDialect

__all__ = ["create_async_engine"]

_DIALECTS: dict[str, type[Dialect]] = {"postgresql": PGDialect, "sqlite": SQLiteDialect}

# create_async_engine() argument -> (pool constructor argument, default).
_POOL_ARGUMENTS: dict[str, tuple[str, Any]] = {
    "pool_size": ("pool_size", 5),
    "max_overflow": ("max_overflow", 10),
    "pool_timeout": ("timeout", 30.0),
    "pool_recycle": ("recycle", -1),
    "pool_pre_ping": ("pre_ping", False),
    "echo_pool": ("echo", False),
}


def create_async_engine(
    url: str | URL,
    *,
    echo: bool | str = False,
    echo_pool: bool | str = False,
    pool_size: int = 5,
    max_overflow: int = 10,
    pool_timeout: float = 30.0,
    pool_recycle: float = -1,
    pool_pre_ping: bool = False,
    poolclass: type[Pool] | None = None,
    isolation_level: str | None = None,
    connect_args: Mapping[str, Any] | None = None,
    execution_options: Mapping[str, Any] | None = None,
    json_serializer: Callable[[Any], str] | None = None,
    json_deserializer: Callable[[str], Any] | None = None,
) -> AsyncEngine:
    """An engine for ``url`` (``postgresql+asyncpg://...`` or ``sqlite+aiosqlite://...``).

    ``echo=True`` logs every statement and its parameters to the
    ``asyncsession.engine`` logger (``"debug"``: at DEBUG level); ``echo_pool``
    does the same for pool events on ``asyncsession.pool``. A pool waits up
    to ``pool_timeout`` seconds for one of its ``pool_size + max_overflow``
    slots, replaces connections older than ``pool_recycle`` seconds and, with
    ``pool_pre_ping``, tests each idle connection at checkout. Options a
    ``poolclass`` does not take raise ArgumentError when set. ``isolation_level``
    is the default for every connection (``"AUTOCOMMIT"`` included).
    ``connect_args`` configure the driver (see ``engine/drivers``).
    """
    url = make_url(url)
    driver = load_driver(url, connect_args or {})
    options = dict(execution_options or {})
    if isolation_level is not None:
        options["isolation_level"] = isolation_level
    _check_options(driver, options)
    dialect = _DIALECTS[driver.dialect_name](
        json_serializer=json_serializer, json_deserializer=json_deserializer
    )
    if poolclass is None:
        poolclass = StaticPool if driver.is_memory else QueuePool
    given = {
        "pool_size": pool_size,
        "max_overflow": max_overflow,
        "pool_timeout": pool_timeout,
        "pool_recycle": pool_recycle,
        "pool_pre_ping": pool_pre_ping,
        "echo_pool": echo_pool,
    }
    pool = poolclass(_connector(driver), **_pool_arguments(poolclass, given))
    configure_echo(ENGINE_LOGGER, echo)
    return AsyncEngine(url, pool, dialect, echo, driver, MappingProxyType(options))


def _pool_arguments(poolclass: type[Pool], given: Mapping[str, Any]) -> dict[str, Any]:
    accepted = inspect.signature(poolclass).parameters
    arguments: dict[str, Any] = {}
    for name, value in given.items():
        parameter, default = _POOL_ARGUMENTS[name]
        if parameter in accepted:
            arguments[parameter] = value
        elif value != default:
            raise exc.ArgumentError(
                f"{name}={value!r} does not apply to {poolclass.__name__}; leave it out "
                "or choose another poolclass"
            )
    return arguments


def _connector(driver: Driver) -> Callable[[], Any]:
    async def connect() -> DriverConnection:
        try:
            return await driver.connect()
        except Exception as error:
            info = driver.translate_error(error, None)
            raise info.wrap(error, None, None, invalidated=False) from error

    return connect
