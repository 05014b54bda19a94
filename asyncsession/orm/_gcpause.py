"""Pausing the cyclic garbage collector around bulk work that allocates without freeing.

Loading thousands of objects, or planning a flush of thousands of rows,
allocates several tracked containers per object that all stay alive. The
collector would run dozens of times meanwhile (each full pass scanning every
live object) and find nothing to free. Such work runs with the collector
paused; it runs again right after. Only synchronous code runs paused: nothing
in it awaits or calls user code, so the pause is as short as the work itself.
"""

from __future__ import annotations

import contextlib
import gc
from types import TracebackType

# Below this many objects the collector's passes cost less than pausing it.
THRESHOLD = 256


class _Paused:
    """Disables the collector on entry and enables it again on exit."""

    __slots__ = ()

    def __enter__(self) -> None:
        gc.disable()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        gc.enable()


_PAUSED = _Paused()
_NOT_PAUSED = contextlib.nullcontext()


def paused(size: int) -> contextlib.AbstractContextManager[None]:
    """Run the block with the cyclic collector paused when ``size`` reaches THRESHOLD.

    Small work (a ``get()``, a one-row flush) costs no generator: a shared
    no-op context is returned.
    """
    if size < THRESHOLD or not gc.isenabled():
        return _NOT_PAUSED
    return _PAUSED
