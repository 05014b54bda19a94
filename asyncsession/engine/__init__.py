"""The IO layer: URLs, drivers, pools, engines, connections, transactions, results.

``create_async_engine()`` builds an :class:`AsyncEngine`; its connections run
statements compiled by ``asyncsession.sql`` through a driver adapter
(``engine/drivers``, the only code importing asyncpg or aiosqlite). See
``docs/engine.md`` for the rules on pooling, transactions and cancellation.
"""

from asyncsession.engine import events as event
from asyncsession.engine.base import (
    AsyncConnection,
    AsyncEngine,
    AsyncTransaction,
    AsyncTwoPhaseTransaction,
    TransactionState,
)
from asyncsession.engine.create import create_async_engine
from asyncsession.engine.events import ExceptionContext
from asyncsession.engine.pool import (
    AsyncAdaptedQueuePool,
    NullPool,
    Pool,
    PoolEntry,
    QueuePool,
    StaticPool,
)
from asyncsession.engine.sync_view import SyncConnectionView, SyncTransactionView
from asyncsession.engine.url import URL, make_url

__all__ = [
    "URL",
    "AsyncAdaptedQueuePool",
    "AsyncConnection",
    "AsyncEngine",
    "AsyncTransaction",
    "AsyncTwoPhaseTransaction",
    "ExceptionContext",
    "NullPool",
    "Pool",
    "PoolEntry",
    "QueuePool",
    "StaticPool",
    "SyncConnectionView",
    "SyncTransactionView",
    "TransactionState",
    "create_async_engine",
    "event",
    "make_url",
]
