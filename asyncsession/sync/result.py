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
  derived views continue where their parent stopped. Rows are converted
  (and deduplicated by ``unique()``) in the caller's thread, as buffered
  results do.
* Iteration pulls one chunk per hop (1000 rows, or the ``yield_per()``
  size); ``fetchmany(n)`` pulls what it lacks; ``all()`` pulls the rest in one hop.
* ``close()`` (and the end of a ``with`` block, and ``first()``/``one()``)
  closes the cursor on the loop, shielded as the async layer closes it. A
  stream left open is closed when its transaction or connection ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any, Final, Generic, Self, TypeVar, final

from asyncsession.engine.result import (
    AsyncResult,
    FrozenResult,
    RMKeyView,
    Row,
    RowMapping,
    _AsyncView,
    _check_size,
    _exactly_one,
    _one_or_none,
    _Shape,
    _StreamCursor,
    _View,
)
from asyncsession.exc import ArgumentError, ResourceClosedError
from asyncsession.sync._runner import Runner

__all__ = ["StreamedMappingResult", "StreamedResult", "StreamedScalarResult"]

_R = TypeVar("_R")
_TP = TypeVar("_TP", bound=tuple[Any, ...])

_CLOSED: Final = "This result is closed; it can't be read any more"
# Rows converted per step of iteration: interleaved fetchone()/close() stay exact.
_ITER_CHUNK: Final = 64


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
    def chunk_size(self) -> int:
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
        self.buffer = self.runner.call(self.stream.take, self.chunk_size)
        self.pos = 0
        return bool(self.buffer)

    def close(self) -> None:
        self.buffer = []
        self.pos = 0
        if not self.stream.closed or self.stream.source_open:
            self.runner.call(_close, self.stream)


async def _close(stream: _StreamCursor) -> None:
    stream.closed = True
    await stream.close_source()


class _StreamedView(_View[_R]):
    """Fetch methods of a blocking streamed view, over the shared :class:`_BlockingCursor`."""

    __slots__ = ("_cursor",)

    _cursor: _BlockingCursor

    def _fetch(self, size: int | None) -> list[_R]:
        """Up to ``size`` objects (all remaining if None), after dedupe."""
        shape = self._require_shape()
        cursor = self._cursor
        if size is None or self._seen is None:
            return self._convert(shape, cursor.take(size))
        outs: list[_R] = []
        while len(outs) < size:
            raws = cursor.take(size - len(outs))
            if not raws:
                break
            outs.extend(self._convert(shape, raws))
        return outs

    @property
    def closed(self) -> bool:
        """True once the result was closed (explicitly, by first()/one()/..., or
        because a fetch failed or was interrupted)."""
        return self._cursor.closed

    def close(self) -> None:
        """Close the result and its server-side cursor (on the loop; once)."""
        self._cursor.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def yield_per(self, num: int) -> Self:
        """Pull ``num`` rows per round trip; also the default batch size. Returns self."""
        _check_size(num, "yield_per()")
        self._cursor.stream.chunk_size = num
        self._cursor.stream.default_size = num
        return self

    def fetchmany(self, size: int | None = None) -> list[_R]:
        """The next ``size`` objects (default: the chunk size); ``[]`` when exhausted."""
        if size is None:
            size = self._cursor.chunk_size
        elif size < 0:
            raise ArgumentError(f"fetchmany() size must not be negative, not {size!r}")
        return self._fetch(size)

    def fetchall(self) -> list[_R]:
        """All remaining objects."""
        return self._fetch(None)

    def all(self) -> list[_R]:
        """All remaining objects (the stream is then exhausted and its cursor closed)."""
        return self._fetch(None)

    def partitions(self, size: int | None = None) -> Iterator[list[_R]]:
        """Iterate over lists of ``size`` objects (default: the chunk size)."""
        _check_size(size, "partitions()")
        self._require_shape()
        return self._partitions(size or self._cursor.chunk_size)

    def _partitions(self, size: int) -> Iterator[list[_R]]:
        while partition := self._fetch(size):
            yield partition

    def first(self) -> _R | None:
        """The first object or None, then close the result."""
        try:
            outs = self._fetch(1)
        finally:
            self.close()
        return outs[0] if outs else None

    def one(self) -> _R:
        """Exactly one object, then close the result.

        Raises :class:`NoResultFound` or :class:`MultipleResultsFound`.
        """
        try:
            return _exactly_one(self._fetch(2))
        finally:
            self.close()

    def one_or_none(self) -> _R | None:
        """One object or None, then close; raises :class:`MultipleResultsFound`."""
        try:
            return _one_or_none(self._fetch(2))
        finally:
            self.close()

    def __iter__(self) -> Iterator[_R]:
        self._require_shape()
        return self._iterate()

    def _iterate(self) -> Iterator[_R]:
        # As buffered results iterate: convert a few rows at a time but advance
        # the shared position one object at a time, so fetchone()/close()
        # interleaved with iteration stay exact.
        cursor = self._cursor
        while True:
            if cursor.closed:
                raise ResourceClosedError(_CLOSED)
            shape = self._require_shape()
            start = cursor.pos
            raws = cursor.buffer[start : start + _ITER_CHUNK]
            if not raws:
                if not cursor.fill():
                    return
                continue
            seen = self._seen
            key = shape.unique_key
            buffer = cursor.buffer
            position = start
            for out in shape.convert(raws):
                if cursor.pos != position or cursor.buffer is not buffer or cursor.closed:
                    break
                position += 1
                cursor.pos = position
                if seen is not None:
                    marker = out if key is None else key(out)
                    if marker in seen:
                        continue
                    seen.add(marker)
                yield out

    def __next__(self) -> _R:
        outs = self._fetch(1)
        if not outs:
            raise StopIteration
        return outs[0]


class StreamedResult(_StreamedView[Row[_TP]], Generic[_TP]):
    """A blocking streamed result: rows come from a server-side cursor, a chunk per call.

    Returned by ``Connection.stream()`` and ``Session.stream()``. Read it
    before its transaction ends; close it with ``close()`` or a ``with`` block.
    """

    __slots__ = ()

    def __init__(self, cursor: _BlockingCursor, shape: _Shape) -> None:
        self._cursor = cursor
        self._init_view(shape)

    @classmethod
    def _over(cls, result: AsyncResult[Any], runner: Runner) -> StreamedResult[Any]:
        return StreamedResult(_BlockingCursor(result._cursor, runner), result._require_shape())

    def keys(self) -> RMKeyView:
        """The column keys of the rows, in order."""
        return RMKeyView(self._require_shape().metadata.keys)

    def tuples(self) -> Self:
        """This result; its rows are tuples already (for typing parity)."""
        return self

    @property
    def t(self) -> Self:
        """This result (synonym of :meth:`tuples`)."""
        return self

    def fetchone(self) -> Row[_TP] | None:
        """The next row, or None when exhausted."""
        outs = self._fetch(1)
        return outs[0] if outs else None

    def columns(self, *keys_or_indexes: str | int) -> StreamedResult[Any]:
        """A result over the named columns, sharing this result's stream."""
        return StreamedResult(self._cursor, self._require_shape().with_columns(keys_or_indexes))

    def scalars(self, index: str | int = 0) -> StreamedScalarResult[Any]:
        """A result yielding one column (the first by default) of each row."""
        return StreamedScalarResult(self._cursor, self._require_shape().as_scalars(index))

    def mappings(self) -> StreamedMappingResult:
        """A result yielding :class:`RowMapping` objects instead of rows."""
        return StreamedMappingResult(self._cursor, self._require_shape().as_mappings())

    def scalar(self) -> Any:
        """The first column of the first row, or None; then close the result."""
        row = self.first()
        return None if row is None else row[0]

    def scalar_one(self) -> Any:
        """The only row's first column; raises as :meth:`one`."""
        return self.one()[0]

    def scalar_one_or_none(self) -> Any:
        """The only row's first column or None; raises as :meth:`one_or_none`."""
        row = self.one_or_none()
        return None if row is None else row[0]

    def freeze(self) -> FrozenResult[_TP]:
        """Consume the remaining rows into a reusable :class:`FrozenResult`."""
        keys = self._require_shape().metadata.keys
        return FrozenResult(keys, self._fetch(None))


class StreamedScalarResult(_StreamedView[_R]):
    """Yields one column of each row of a :class:`StreamedResult`."""

    __slots__ = ()

    def __init__(self, cursor: _BlockingCursor, shape: _Shape) -> None:
        self._cursor = cursor
        self._init_view(shape)

    @classmethod
    def _over(cls, result: _AsyncView[Any], runner: Runner) -> StreamedScalarResult[Any]:
        return StreamedScalarResult(
            _BlockingCursor(result._cursor, runner), result._require_shape()
        )


class StreamedMappingResult(_StreamedView[RowMapping]):
    """Yields a :class:`RowMapping` per row of a :class:`StreamedResult`."""

    __slots__ = ()

    def __init__(self, cursor: _BlockingCursor, shape: _Shape) -> None:
        self._cursor = cursor
        self._init_view(shape)

    def keys(self) -> RMKeyView:
        """The column keys, in order."""
        return RMKeyView(self._require_shape().metadata.keys)

    def fetchone(self) -> RowMapping | None:
        """The next mapping, or None when exhausted."""
        outs = self._fetch(1)
        return outs[0] if outs else None

    def columns(self, *keys_or_indexes: str | int) -> StreamedMappingResult:
        """Mappings over the named columns only, sharing this result's stream."""
        return StreamedMappingResult(
            self._cursor, self._require_shape().with_columns(keys_or_indexes)
        )
