"""The sync facade: a blocking API for scripts, notebooks, CLIs and workers.

``create_engine``, ``Engine``, ``Connection``, ``Session``, ``sessionmaker``
and ``scoped_session`` have the methods of their async counterparts (and of
SQLAlchemy's blocking API) without ``await``. There is no second
implementation and no greenlet: each blocking call runs the async object's
coroutine on one background event loop per process (an anyio blocking
portal, started at the first call, stopped at exit) and waits for it. The
facade's objects wrap the async ones (``session.async_session``,
``engine.async_engine``); nothing is copied.

Inside the facade, and inside ``await session.run_sync(fn)``, reading an
unloaded attribute loads it, as classic SQLAlchemy does. Async code never
loads implicitly. Use the facade from any thread except the facade loop's
own (event listeners run there: they must use the async API). See
``docs/sync.md``.
"""

from asyncsession.engine.result import MappingResult, Result, Row, ScalarResult
from asyncsession.sync.engine import (
    Connection,
    Engine,
    Transaction,
    TwoPhaseTransaction,
    create_engine,
)
from asyncsession.sync.result import (
    StreamedMappingResult,
    StreamedResult,
    StreamedScalarResult,
)
from asyncsession.sync.session import Session, SessionTransaction, scoped_session, sessionmaker

__all__ = [
    "Connection",
    "Engine",
    "MappingResult",
    "Result",
    "Row",
    "ScalarResult",
    "Session",
    "SessionTransaction",
    "StreamedMappingResult",
    "StreamedResult",
    "StreamedScalarResult",
    "Transaction",
    "TwoPhaseTransaction",
    "create_engine",
    "scoped_session",
    "sessionmaker",
]
