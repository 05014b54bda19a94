"""Blocking streamed results: what the facade's ``stream()`` and ``stream_scalars()`` return.

How this works:

* A streamed result wraps the async stream's cursor (the ``_StreamCursor``
  shared by an AsyncResult and its ``scalars()``/``mappings()``/``columns()``
  views) and the runner of the call that opened it. Raw rows move from the
  loop to the caller a chunk at a time: each pull is one ``runner.call`` of
  the async cursor's ``take``, so a fetch is cancelled by a KeyboardInterrupt
  exactly as any facade call is (and the async cursor then closes itself).
* The caller keeps the pulled chunk in a :class:`_BlockingCursor` shared by
  the views, so iteration, ``fetchmany()`` and ``fetchone()`` may be mixed, and
  derived views continue where their parent stopped. The fetch methods are
  the buffered results' own (``_SyncView`` and friends in the engine's result
  module read through any such cursor): only the cursor differs. Rows are converted
  (and deduplicated by ``unique()``) in the caller's thread, as buffered
  results do.
* Iteration pulls one chunk per hop (1000 rows, or the ``yield_per()``
  size); ``fetchmany(n)`` pulls what it lacks; ``all()`` pulls the rest in one hop.
* ``close()`` (and the end of a ``with`` block, and ``first()``/``one()``)
  closes the cursor on the loop, shielded as the async layer closes it. A
  stream left open is closed when its transaction or connection ends.
"""

from __future__ import annotations

from typing import Any, TypeVar, final

from asyncsession.engine.result import (
    _CLOSED,
    AsyncResult,
    _AsyncView,
    _MappingView,
    _RowView,
    _Shape,
    _StreamCursor,
    _SyncCursor,
    _SyncView,
)
from asyncsession.exc import ResourceClosedError
from asyncsession.sync._runner import Runner

__all__ = ["StreamedMappingResult", "StreamedResult", "StreamedScalarResult"]

_R = TypeVar("_R")
_TP = TypeVar("_TP", bound=tuple[Any, ...])


@final
class _BlockingCursor:
    """The caller's side of a stream: the chunk pulled last and the read position."""

    __slots__ = ("buffer", "pos", "runner", "stream")

    def __init__(self, stream: _StreamCursor, runner: Runner) -> None:
        self.stream = stream
        self.runner = runner
        self.buffer: list[Any] = []
        self.pos = 0

    @property
    def closed(self) -> bool:
        return self.stream.closed

    @property
    def fetch_size(self) -> int:
        return self.stream.default_size or self.stream.chunk_size

    def take(self, size: int | None) -> list[Any]:
        """Up to ``size`` raw rows (all remaining if None): buffered first, then pulled."""
        if self.stream.closed:
            raise ResourceClosedError(_CLOSED)
        pos = self.pos
        buffer = self.buffer
        end = len(buffer) if size is None else min(len(buffer), pos + size)
        taken = buffer[pos:end]
        self.pos = end
        missing = None if size is None else size - len(taken)
        if missing != 0:
            pulled = self.runner.call(self.stream.take, missing)
            if taken:
                taken.extend(pulled)
            else:
                taken = pulled
        return taken

    def fill(self) -> bool:
        """Pull the next chunk into the buffer (once the buffer is read); False at the end."""
        if self.stream.closed:
            raise ResourceClosedError(_CLOSED)
        self.buffer = self.runner.call(self.stream.take, self.fetch_size)
        self.pos = 0
        return bool(self.buffer)

    def close(self) -> None:
        """Close the stream and its server-side cursor (on the loop; once)."""
        self.buffer = []
        self.pos = 0
        if not self.stream.closed or self.stream.source_open:
            self.runner.call(_close, self.stream)

    def yield_per(self, num: int) -> None:
        self.stream.chunk_size = num
        self.stream.default_size = num


async def _close(stream: _StreamCursor) -> None:
    stream.closed = True
    await stream.close_source()


class StreamedResult(_RowView[_TP]):
    """A blocking streamed result: rows come from a server-side cursor, a chunk per call.

    Returned by ``Connection.stream()`` and ``Session.stream()``. Read it
    before its transaction ends; close it with ``close()`` or a ``with`` block.
    """

    __slots__ = ()

    def __init__(self, cursor: _SyncCursor, shape: _Shape) -> None:
        self._cursor = cursor
        self._init_view(shape)

    @classmethod
    def _over(cls, result: AsyncResult[Any], runner: Runner) -> StreamedResult[Any]:
        return StreamedResult(_BlockingCursor(result._cursor, runner), result._require_shape())

    def columns(self, *keys_or_indexes: str | int) -> StreamedResult[Any]:
        """A result over the named columns, sharing this result's stream."""
        return StreamedResult(self._cursor, self._require_shape().with_columns(keys_or_indexes))

    def scalars(self, index: str | int = 0) -> StreamedScalarResult[Any]:
        """A result yielding one column (the first by default) of each row."""
        return StreamedScalarResult(self._cursor, self._require_shape().as_scalars(index))

    def mappings(self) -> StreamedMappingResult:
        """A result yielding :class:`RowMapping` objects instead of rows."""
        return StreamedMappingResult(self._cursor, self._require_shape().as_mappings())


class StreamedScalarResult(_SyncView[_R]):
    """Yields one column of each row of a :class:`StreamedResult`."""

    __slots__ = ()

    def __init__(self, cursor: _SyncCursor, shape: _Shape) -> None:
        self._cursor = cursor
        self._init_view(shape)

    @classmethod
    def _over(cls, result: _AsyncView[Any], runner: Runner) -> StreamedScalarResult[Any]:
        return StreamedScalarResult(
            _BlockingCursor(result._cursor, runner), result._require_shape()
        )


class StreamedMappingResult(_MappingView):
    """Yields a :class:`RowMapping` per row of a :class:`StreamedResult`."""

    __slots__ = ()

    def __init__(self, cursor: _SyncCursor, shape: _Shape) -> None:
        self._cursor = cursor
        self._init_view(shape)

    def columns(self, *keys_or_indexes: str | int) -> StreamedMappingResult:
        """Mappings over the named columns only, sharing this result's stream."""
        return StreamedMappingResult(
            self._cursor, self._require_shape().with_columns(keys_or_indexes)
        )
