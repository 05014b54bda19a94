"""Helpers for the engine tests (imported by them and by conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import asyncpg
import attrs


@attrs.define
class Backend:
    """One database to run a test against."""

    name: str
    url: str
    connect_args: dict[str, Any]
    app_name: str | None = None
    schema: str | None = None

    def p(self, n: int) -> str:
        """The n-th (1-based) positional placeholder in the driver's style."""
        return "?" if self.name == "sqlite" else f"${n}"

    def ps(self, count: int) -> str:
        """``count`` placeholders separated by commas."""
        return ", ".join(self.p(i) for i in range(1, count + 1))


async def pg_backends(monitor: asyncpg.Connection, app_name: str) -> list[tuple[int, str, str]]:
    """(pid, state, query) of the server backends with ``application_name``."""
    rows = await monitor.fetch(
        "SELECT pid, coalesce(state, ''), query FROM pg_stat_activity WHERE application_name = $1",
        app_name,
    )
    return [(r[0], r[1], r[2]) for r in rows]


async def wait_for_server(check: Callable[[], Any], what: str, seconds: float = 10.0) -> None:
    """Poll the server until ``await check()`` is truthy.

    Only for state the server changes asynchronously (a backend exiting after
    its socket closed); never to sequence our own tasks.
    """
    with anyio.move_on_after(seconds):
        while not await check():  # noqa: ASYNC110 - the server offers no event to wait on
            await anyio.sleep(0.02)
        return
    raise AssertionError(f"timed out waiting for the server: {what}")


async def assert_pg_clean(monitor: asyncpg.Connection, app_name: str) -> None:
    """No backend of ours is inside a transaction or running a statement."""

    async def clean() -> bool:
        return all(state == "idle" for _, state, _ in await pg_backends(monitor, app_name))

    await wait_for_server(clean, f"backends of {app_name} idle and outside transactions")


class Hooks:
    """Called before every awaited driver operation of the proxied connections.

    The base class records the operation names; subclasses block or cancel.
    """

    def __init__(self) -> None:
        self.points: list[str] = []

    async def point(self, name: str) -> None:
        self.points.append(name)


class ProxyCursor:
    def __init__(self, inner: Any, hooks: Hooks) -> None:
        self.inner = inner
        self.hooks = hooks

    async def fetch(self, size: int) -> Any:
        await self.hooks.point("cursor.fetch")
        return await self.inner.fetch(size)

    async def close(self) -> None:
        await self.hooks.point("cursor.close")
        await self.inner.close()


class ProxyConnection:
    """A DriverConnection that calls ``hooks.point(name)`` before each awaited method."""

    def __init__(self, inner: Any, hooks: Hooks) -> None:
        self.inner = inner
        self.hooks = hooks
        self.raw = inner.raw
        self.loop_bound = inner.loop_bound

    async def execute(self, *args: Any) -> Any:
        await self.hooks.point(f"execute {args[0]}")
        return await self.inner.execute(*args)

    async def executemany(self, *args: Any) -> Any:
        await self.hooks.point("executemany")
        return await self.inner.executemany(*args)

    async def open_cursor(self, *args: Any) -> Any:
        await self.hooks.point("open_cursor")
        keys, cursor = await self.inner.open_cursor(*args)
        return keys, ProxyCursor(cursor, self.hooks)

    async def copy_records(self, *args: Any) -> Any:
        await self.hooks.point("copy_records")
        return await self.inner.copy_records(*args)

    async def ping(self) -> None:
        await self.hooks.point("ping")
        await self.inner.ping()

    async def reset(self) -> None:
        await self.hooks.point("reset")
        await self.inner.reset()

    async def close(self) -> None:
        await self.hooks.point("close")
        await self.inner.close()

    def in_transaction(self) -> bool:
        return bool(self.inner.in_transaction())

    def interrupt(self) -> None:
        self.inner.interrupt()

    def is_closed(self) -> bool:
        return bool(self.inner.is_closed())

    def terminate(self) -> None:
        self.inner.terminate()


def install_hooks(engine: Any, hooks: Hooks) -> None:
    """Make every connection ``engine`` opens from now on a :class:`ProxyConnection`."""
    pool = engine.pool
    connect = pool._connector

    async def proxied() -> ProxyConnection:
        await hooks.point("connect")
        return ProxyConnection(await connect(), hooks)

    pool._connector = proxied


class Gate(Hooks):
    """Blocks operations whose name starts with ``prefix`` until ``open`` is set."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix
        self.open = anyio.Event()

    async def point(self, name: str) -> None:
        await super().point(name)
        if name.startswith(self.prefix):
            await self.open.wait()
