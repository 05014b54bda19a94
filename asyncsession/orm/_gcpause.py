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
from collections.abc import Iterator

# Below this many objects the collector's passes cost less than pausing it.
THRESHOLD = 256


@contextlib.contextmanager
def paused(size: int) -> Iterator[None]:
    """Run the block with the cyclic collector paused when ``size`` reaches THRESHOLD."""
    if size < THRESHOLD or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
