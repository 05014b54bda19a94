"""The ``echo`` and ``echo_pool`` switches: turn a logger on and give it a handler.

``echo=True`` logs at INFO, ``echo="debug"`` at DEBUG. When the logger (or an
ancestor) has no handler yet, one writing to stdout is added, as SQLAlchemy
does, so ``echo=True`` shows output without configuring logging first.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["ENGINE_LOGGER", "POOL_LOGGER", "configure_echo"]

ENGINE_LOGGER = logging.getLogger("asyncsession.engine")
POOL_LOGGER = logging.getLogger("asyncsession.pool")


def configure_echo(logger: logging.Logger, echo: bool | str) -> None:
    """Enable ``logger`` for ``echo`` (False leaves the logging configuration alone)."""
    if not echo:
        return
    level = logging.DEBUG if echo == "debug" else logging.INFO
    if logger.level == logging.NOTSET or logger.level > level:
        logger.setLevel(level)
    if not logger.hasHandlers():
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logger.addHandler(handler)
