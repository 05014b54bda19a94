"""Result sets: rows, buffered results and streamed results.

How this works
--------------
A driver hands back *raw rows*: tuples, or tuple-like records indexable by
position. :class:`ResultMetaData` describes them with one key and one
processor (driver value -> Python value, ``None`` for "no conversion") per
column, and turns raw rows into :class:`Row` objects in bulk with
:meth:`ResultMetaData.make_rows`.

``Row`` is a tuple subclass. Each distinct tuple of keys gets one cached
subclass of ``Row`` whose class attributes hold the key -> position map, so a
row *is* the tuple of its values: creating one is a single tuple allocation;
equality, hashing, ordering and ``repr`` are the tuple's; there is no per-row
dict. Processors run once per row, when the raw row becomes a ``Row``; the
converter for each pattern of processed columns is generated once and cached
(as ``collections.namedtuple`` generates its class), because a generated tuple
display is about three times faster than a generic loop over the columns.

Result objects are *views* over a shared *cursor*. The cursor owns the raw
rows (buffered: a list; streamed: chunks pulled from a source) and the read
position. A view's shape says what it yields -- Rows over some columns, the
scalars of one column, or RowMappings -- and how to dedupe. ``scalars()``,
``mappings()`` and ``columns()`` return new views on the same cursor, so
reading from any of them advances all of them; ``unique()`` changes the view
it is called on and returns it, as SQLAlchemy's does.

Rules (SQLAlchemy 2.x semantics):

- ``first()``, ``one()``, ``one_or_none()``, ``scalar()``, ``scalar_one()``
  and ``scalar_one_or_none()`` close the result whatever they return or raise;
  a later fetch raises :class:`ResourceClosedError`.
- Exhausting a result does not close it: further fetches return ``None``/``[]``.
- Closing any view closes the cursor and so every view of it.
- A result built with ``metadata=None`` (DML without RETURNING) returns no
  rows: every row method raises ``ResourceClosedError``; ``rowcount`` holds.
- ``unique(strategy)`` dedupes the objects the view yields (Row, scalar or
  RowMapping); ``strategy`` receives that object and returns a hashable key.
  Views derived from a unique view are unique too (on their own objects).
- Names that two columns share are ambiguous: positional access works, access
  by name raises :class:`InvalidRequestError` naming the key.
- A streamed result (:class:`AsyncResult`) closes its source exactly once:
  when ``close()`` is awaited (also by ``first()``/``one()``/... and by
  ``async with``), when the stream is exhausted, or when a fetch fails or is
  cancelled -- then the result is closed too, since the stream position is
  unknown. The close of the source is shielded from cancellation. Breaking
  out of ``async for`` does not close the stream: use ``async with result:``
  or ``await result.close()``; the owner connection closes its open streams
  when it closes.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Iterator, KeysView, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Generic, Literal, Protocol, Self, TypeVar, cast, final, overload

import anyio

from asyncsession.exc import (
    ArgumentError,
    InvalidRequestError,
    MultipleResultsFound,
    NoResultFound,
    ResourceClosedError,
)

__all__ = [
    "AsyncMappingResult",
    "AsyncResult",
    "AsyncRowSource",
    "AsyncScalarResult",
    "FrozenResult",
    "MappingResult",
    "Processor",
    "RMKeyView",
    "Result",
    "ResultMetaData",
    "Row",
    "RowMapping",
    "ScalarResult",
]

_T = TypeVar("_T")
_R = TypeVar("_R")
_TP = TypeVar("_TP", bound=tuple[Any, ...])

Processor = Callable[[Any], Any]
"""Converts one driver value into its Python value (it also receives ``None``)."""

_Converter = Callable[[Sequence[Any]], list[Any]]
_RowsConverter = Callable[[Iterable[Any]], list[Any]]

_CLOSED: Final = "This result object is closed."
_NO_ROWS: Final = (
    "This result object does not return rows. The statement has no result columns "
    "(DML without RETURNING); use .rowcount for the number of rows it matched."
)
_NO_ROW_FOUND: Final = "No row was found when one was required"
_MULTIPLE_FOR_ONE: Final = "Multiple rows were found when exactly one was required"
_MULTIPLE_FOR_ONE_OR_NONE: Final = "Multiple rows were found when one or none was required"

_DEFAULT_STREAM_CHUNK: Final = 1000
_ITER_CHUNK: Final = 64


# --------------------------------------------------------------------------- rows


class Row(tuple[Any, ...], Generic[_TP]):
    """One result row: a tuple of its values, with access by column key.

    Behaves as a tuple (indexing, slicing, ``len``, iteration, ``==`` and
    ``hash`` equal to the plain tuple's, ordering) and adds ``row.<key>``,
    ``row._mapping``, ``row._asdict()``, ``row._fields``, ``row._tuple()`` and
    ``row._t``. ``row["key"]`` is not supported, as in SQLAlchemy 2.x: use
    ``row._mapping["key"]``. Columns named like tuple methods (``count``,
    ``index``) are reachable through ``_mapping``.

    Raises :class:`InvalidRequestError` when a key shared by several columns
    is used by name.
    """

    __slots__ = ()

    # Overridden by the per-keys subclass that _row_class() creates.
    _fields: tuple[str, ...] = ()
    _keymap: Mapping[str, int] = {}
    _ambiguous: frozenset[str] = frozenset()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[self._keymap[name]]
        except KeyError:
            if name in self._ambiguous:
                raise _ambiguous_error(name) from None
            raise AttributeError(
                f"Row has no column {name!r}; its columns are {list(self._fields)!r}",
                name=name,
                obj=self,
            ) from None

    @property
    def _mapping(self) -> RowMapping:
        """A read-only mapping of column key to value over this row."""
        return RowMapping(self)

    def _asdict(self) -> dict[str, Any]:
        """A new dict of column key to value; raises if a key is ambiguous."""
        if self._ambiguous:
            raise _ambiguous_error(min(self._ambiguous))
        return dict(zip(self._fields, self, strict=True))

    def _tuple(self) -> _TP:
        """This row, typed as the plain tuple it is."""
        return cast(_TP, self)

    @property
    def _t(self) -> _TP:
        """This row, typed as the plain tuple it is."""
        return cast(_TP, self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore_row, (self._fields, tuple(self)))


def _ambiguous_error(key: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"Ambiguous column name {key!r} in result set: several columns have this key. "
        "Use positional access (row[i]) or give the columns distinct labels."
    )


@functools.lru_cache(maxsize=1024)
def _row_class(keys: tuple[str, ...]) -> type[Row[Any]]:
    """The Row subclass for rows with these column keys (cached)."""
    keymap: dict[str, int] = {}
    ambiguous: set[str] = set()
    for index, key in enumerate(keys):
        if key in keymap:
            ambiguous.add(key)
        else:
            keymap[key] = index
    for key in ambiguous:
        del keymap[key]
    namespace = {
        "__slots__": (),
        "__module__": __name__,
        "__qualname__": "Row",
        "_fields": keys,
        "_keymap": keymap,
        "_ambiguous": frozenset(ambiguous),
    }
    return cast(type[Row[Any]], type("Row", (Row,), namespace))


def _restore_row(keys: tuple[str, ...], values: tuple[Any, ...]) -> Row[Any]:
    """Unpickle a Row (module level so that pickle can find it)."""
    return _row_class(keys)(values)


@final
class RowMapping(Mapping[str, Any]):
    """A read-only view of a :class:`Row` as a mapping of column key to value.

    Equal to any mapping with the same items (``m == {"id": 1}``); hashable.
    A missing key raises ``KeyError``; an ambiguous one ``InvalidRequestError``.
    """

    __slots__ = ("_row",)

    def __init__(self, row: Row[Any]) -> None:
        self._row = row

    def __getitem__(self, key: str) -> Any:
        row = self._row
        try:
            return row[row._keymap[key]]
        except KeyError:
            if key in row._ambiguous:
                raise _ambiguous_error(key) from None
            raise

    def __contains__(self, key: object) -> bool:
        row = self._row
        return key in row._keymap or key in row._ambiguous

    def __iter__(self) -> Iterator[str]:
        return iter(self._row._fields)

    def __len__(self) -> int:
        return len(self._row)

    def keys(self) -> RMKeyView:
        return RMKeyView(self._row._fields)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RowMapping):
            return self._row._fields == other._row._fields and tuple.__eq__(self._row, other._row)
        return super().__eq__(other)

    def __hash__(self) -> int:
        return hash(self._row)

    def __repr__(self) -> str:
        items = ", ".join(
            f"{k!r}: {v!r}" for k, v in zip(self._row._fields, self._row, strict=True)
        )
        return "{" + items + "}"


@final
class RMKeyView(KeysView[str]):
    """The keys of a result or row mapping, in column order (duplicates kept).

    Supports ``in``, ``len``, iteration and set operations; compares equal to
    a list or tuple of the same keys in the same order.
    """

    __slots__ = ("_keys",)

    def __init__(self, keys: tuple[str, ...]) -> None:
        self._keys = keys

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RMKeyView):
            return self._keys == other._keys
        if isinstance(other, list | tuple):
            return list(self._keys) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # a view compares by content

    def __repr__(self) -> str:
        return f"RMKeyView({list(self._keys)!r})"


# ----------------------------------------------------------------------- metadata


@functools.lru_cache(maxsize=256)
def _converter_factory(width: int, processed: tuple[int, ...]) -> Callable[..., Any]:
    """Generate converters for rows of ``width`` columns, processing ``processed``.

    The source contains only integers and fixed identifiers, never user data.
    The factory takes ``(new, cls, *processors)`` and returns
    ``(make_row, make_rows)``.
    """
    names = [f"v{i}" for i in range(width)]
    trailing = "," if width == 1 else ""
    unpack = ", ".join(names) + trailing
    values = ", ".join(f"p{i}({n})" if i in processed else n for i, n in enumerate(names))
    params = ", ".join(f"p{i}" for i in processed)
    source = (
        f"def factory(new, cls, {params}):\n"
        f"    def make_row(raw):\n"
        f"        {unpack} = raw\n"
        f"        return new(cls, ({values}{trailing}))\n"
        f"    def make_rows(raws):\n"
        f"        return [new(cls, ({values}{trailing})) for {unpack} in raws]\n"
        f"    return make_row, make_rows\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<row converter {width}:{processed}>", "exec"), namespace)
    return cast(Callable[..., Any], namespace["factory"])


@final
class ResultMetaData:
    """The columns of a result: their keys and their result processors.

    ``processors`` holds one entry per key: a callable turning the driver's
    value into the Python value (called for ``None`` too), or ``None`` for no
    conversion. Raises :class:`ArgumentError` if the lengths differ.
    """

    __slots__ = ("_converters", "_processed", "_row_cls", "_rows_shape", "keys", "processors")

    def __init__(self, keys: tuple[str, ...], processors: tuple[Processor | None, ...]) -> None:
        if len(keys) != len(processors):
            raise ArgumentError(
                f"ResultMetaData needs one processor (or None) per key: got {len(keys)} "
                f"keys and {len(processors)} processors"
            )
        self.keys = keys
        self.processors = processors
        self._row_cls = _row_class(keys)
        self._processed = tuple(i for i, p in enumerate(processors) if p is not None)
        self._converters: tuple[Callable[[Any], Row[Any]], _RowsConverter] | None = None
        self._rows_shape: _Shape | None = None

    def __repr__(self) -> str:
        return f"ResultMetaData(keys={self.keys!r})"

    def make_row(self, raw: Any) -> Row[Any]:
        """Build one :class:`Row` from a raw driver row, applying processors."""
        if not self._processed:
            return self._row_cls(raw)
        return (self._converters or self._build_converters())[0](raw)

    def make_rows(self, raws: Iterable[Any]) -> list[Row[Any]]:
        """Build :class:`Row` objects from raw driver rows, applying processors."""
        if not self._processed:
            return list(map(self._row_cls, raws))
        return (self._converters or self._build_converters())[1](raws)

    def _build_converters(self) -> tuple[Callable[[Any], Row[Any]], _RowsConverter]:
        factory = _converter_factory(len(self.keys), self._processed)
        processors = [self.processors[i] for i in self._processed]
        converters = cast(
            tuple[Callable[[Any], Row[Any]], _RowsConverter],
            factory(tuple.__new__, self._row_cls, *processors),
        )
        self._converters = converters
        return converters

    def _index_of(self, key_or_index: str | int) -> int:
        """The position of a column given its key or (possibly negative) index."""
        width = len(self.keys)
        if isinstance(key_or_index, int):
            if -width <= key_or_index < width:
                return key_or_index % width
            raise InvalidRequestError(
                f"Column index {key_or_index} is out of range for a result with {width} column(s)"
            )
        if isinstance(key_or_index, str):
            index = self._row_cls._keymap.get(key_or_index)
            if index is not None:
                return index
            if key_or_index in self._row_cls._ambiguous:
                raise _ambiguous_error(key_or_index)
            raise InvalidRequestError(
                f"Could not locate column {key_or_index!r} in the result; its columns "
                f"are {list(self.keys)!r}"
            )
        raise ArgumentError(
            f"A column is named by its key (str) or position (int), not by "
            f"{type(key_or_index).__name__}"
        )

    def _reduce(self, indexes: Sequence[int]) -> ResultMetaData:
        return ResultMetaData(
            tuple(self.keys[i] for i in indexes), tuple(self.processors[i] for i in indexes)
        )


# ------------------------------------------------------------------------- shapes

_ROWS: Final = 0
_SCALARS: Final = 1
_MAPPINGS: Final = 2

_row_of_mapping = operator.attrgetter("_row")


@final
class _Shape:
    """What a view yields from raw rows, and how it dedupes. Immutable, no IO.

    ``metadata`` describes the view's columns; ``sources`` gives each view
    column's position in the raw row (None: the same positions).
    """

    __slots__ = (
        "convert",
        "kind",
        "metadata",
        "needs_unique",
        "scalar_index",
        "sources",
        "strategy",
        "unique",
        "unique_key",
    )

    def __init__(
        self,
        metadata: ResultMetaData,
        sources: tuple[int, ...] | None,
        kind: int,
        scalar_index: int,
        unique: bool,
        strategy: Callable[[Any], Any] | None,
        needs_unique: bool = False,
    ) -> None:
        self.metadata = metadata
        self.sources = sources
        self.kind = kind
        self.scalar_index = scalar_index
        self.unique = unique
        self.strategy = strategy
        # An ORM result with joined-eager collections repeats its parents; as
        # SQLAlchemy, reading it without unique() is an error, not a surprise.
        self.needs_unique = needs_unique
        self.unique_key: Callable[[Any], Any] | None = strategy
        if unique and strategy is None and kind == _MAPPINGS:
            self.unique_key = _row_of_mapping
        self.convert = self._build_convert()

    @classmethod
    def rows(cls, metadata: ResultMetaData) -> _Shape:
        # Immutable, so one per metadata serves every result of that statement.
        shape = metadata._rows_shape
        if shape is None:
            shape = metadata._rows_shape = cls(metadata, None, _ROWS, 0, False, None)
        return shape

    def with_unique(self, strategy: Callable[[Any], Any] | None) -> _Shape:
        return _Shape(
            self.metadata,
            self.sources,
            self.kind,
            self.scalar_index,
            True,
            strategy,
            self.needs_unique,
        )

    def requiring_unique(self) -> _Shape:
        return _Shape(
            self.metadata,
            self.sources,
            self.kind,
            self.scalar_index,
            self.unique,
            self.strategy,
            True,
        )

    def as_scalars(self, key_or_index: str | int) -> _Shape:
        index = self.metadata._index_of(key_or_index)
        return _Shape(
            self.metadata,
            self.sources,
            _SCALARS,
            index,
            self.unique,
            self.strategy,
            self.needs_unique,
        )

    def as_mappings(self) -> _Shape:
        return _Shape(
            self.metadata,
            self.sources,
            _MAPPINGS,
            0,
            self.unique,
            self.strategy,
            self.needs_unique,
        )

    def with_columns(self, keys_or_indexes: Sequence[str | int]) -> _Shape:
        if not keys_or_indexes:
            raise ArgumentError("columns() needs at least one column key or index")
        indexes = [self.metadata._index_of(k) for k in keys_or_indexes]
        sources = self.sources
        new_sources = tuple(indexes if sources is None else (sources[i] for i in indexes))
        return _Shape(
            self.metadata._reduce(indexes),
            new_sources,
            self.kind,
            0,
            self.unique,
            self.strategy,
            self.needs_unique,
        )

    def _build_convert(self) -> _Converter:
        if self.needs_unique and not self.unique:
            return _must_unique
        metadata = self.metadata
        sources = self.sources
        if self.kind == _SCALARS:
            index = self.scalar_index
            position = index if sources is None else sources[index]
            processor = metadata.processors[index]
            if processor is None:
                getter = operator.itemgetter(position)

                def scalars(raws: Sequence[Any]) -> list[Any]:
                    return list(map(getter, raws))

                return scalars

            def processed_scalars(raws: Sequence[Any]) -> list[Any]:
                return [processor(raw[position]) for raw in raws]

            return processed_scalars

        make_rows: _Converter
        if sources is None:
            make_rows = metadata.make_rows
        elif len(sources) == 1:
            only = sources[0]

            def make_rows(raws: Sequence[Any]) -> list[Any]:
                return metadata.make_rows([(raw[only],) for raw in raws])

        else:
            pick = operator.itemgetter(*sources)

            def make_rows(raws: Sequence[Any]) -> list[Any]:
                return metadata.make_rows(map(pick, raws))

        if self.kind == _MAPPINGS:

            def mappings(raws: Sequence[Any]) -> list[Any]:
                return list(map(RowMapping, make_rows(raws)))

            return mappings
        return make_rows


def _must_unique(raws: Sequence[Any]) -> list[Any]:
    if not raws:
        return []
    raise InvalidRequestError(
        "The unique() method must be invoked on this Result, as it contains results that "
        "include joined eager loads against collections (each parent comes once per "
        "member): call result.unique() or result.scalars().unique() before reading it, or "
        "load the collection with selectinload() instead."
    )


def _dedupe(outs: list[Any], seen: set[Any], key: Callable[[Any], Any] | None) -> list[Any]:
    kept = []
    if key is None:
        for out in outs:
            if out not in seen:
                seen.add(out)
                kept.append(out)
    else:
        for out in outs:
            marker = key(out)
            if marker not in seen:
                seen.add(marker)
                kept.append(out)
    return kept


def _exactly_one(outs: list[_R]) -> _R:
    if not outs:
        raise NoResultFound(_NO_ROW_FOUND)
    if len(outs) > 1:
        raise MultipleResultsFound(_MULTIPLE_FOR_ONE)
    return outs[0]


def _one_or_none(outs: list[_R]) -> _R | None:
    if len(outs) > 1:
        raise MultipleResultsFound(_MULTIPLE_FOR_ONE_OR_NONE)
    return outs[0] if outs else None


def _check_size(size: int | None, what: str) -> None:
    if size is not None and size < 1:
        raise ArgumentError(f"{what} must be a positive number of rows, not {size!r}")


class _View(Generic[_R]):
    """The pure part every result view shares: its shape and unique state."""

    __slots__ = ("_seen", "_shape")

    _shape: _Shape | None
    _seen: set[Any] | None

    def _init_view(self, shape: _Shape | None) -> None:
        self._shape = shape
        self._seen = set() if shape is not None and shape.unique else None

    def _require_shape(self) -> _Shape:
        shape = self._shape
        if shape is None:
            raise ResourceClosedError(_NO_ROWS)
        return shape

    def _convert(self, shape: _Shape, raws: Sequence[Any]) -> list[_R]:
        outs = shape.convert(raws)
        seen = self._seen
        if seen is None:
            return outs
        return _dedupe(outs, seen, shape.unique_key)

    def unique(self, strategy: Callable[[Any], Any] | None = None) -> Self:
        """Yield each object once; ``strategy(obj)`` gives the key to compare by.

        Without a strategy, rows and scalars compare by value and mappings by
        their row. Changes this result and returns it. Rows must be hashable
        (or the strategy must return hashable keys).
        """
        self._shape = self._require_shape().with_unique(strategy)
        self._seen = set()
        return self


# ------------------------------------------------------------------ buffered results


class _SyncCursor(Protocol):
    """What a blocking view reads through, shared by the views of one result.

    ``buffer[pos:]`` are the raw rows in hand. A buffered result has them all;
    the sync facade's streamed results pull them a chunk at a time (``fill``).
    """

    pos: int

    @property
    def buffer(self) -> Sequence[Any]: ...

    @property
    def closed(self) -> bool: ...

    @property
    def fetch_size(self) -> int | None:
        """The default size of ``fetchmany()`` and ``partitions()`` (None: all)."""
        ...

    def take(self, size: int | None) -> Sequence[Any]:
        """Up to ``size`` raw rows from ``pos`` on (all remaining if None)."""
        ...

    def fill(self) -> bool:
        """Replace the read buffer with the next chunk (``pos`` 0); False at the end."""
        ...

    def close(self) -> None: ...

    def yield_per(self, num: int) -> None: ...


@final
class _BufferedCursor:
    """Rows already in memory, and the read position shared by all views."""

    __slots__ = ("buffer", "closed", "default_size", "pos")

    def __init__(self, rows: Sequence[Any]) -> None:
        self.buffer = rows
        self.pos = 0
        self.closed = False
        self.default_size: int | None = None

    @property
    def fetch_size(self) -> int | None:
        return self.default_size

    def take(self, size: int | None) -> Sequence[Any]:
        if self.closed:
            raise ResourceClosedError(_CLOSED)
        pos = self.pos
        rows = self.buffer
        if size is None:
            chunk = rows if pos == 0 else rows[pos:]
        else:
            chunk = rows[pos : pos + size]
        self.pos = pos + len(chunk)
        return chunk

    def fill(self) -> bool:
        return False  # every row is in the buffer

    def close(self) -> None:
        self.closed = True

    def yield_per(self, num: int) -> None:
        self.default_size = num  # the rows are already buffered: nothing else changes


class _SyncView(_View[_R]):
    """Fetch methods of a blocking view; all reads go through the shared cursor."""

    __slots__ = ("_cursor",)

    _cursor: _SyncCursor

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
        """True once the result was closed (explicitly, by first()/one()/..., or,
        for a stream, because a fetch failed or was interrupted)."""
        return self._cursor.closed

    def close(self) -> None:
        """Close the result (and a stream's server-side cursor); later fetches raise
        :class:`ResourceClosedError`."""
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
        """Set the default size of ``fetchmany()`` and ``partitions()``; a stream
        also pulls that many rows per round trip. Returns self.

        A buffered result has every row already, so nothing else changes.
        """
        _check_size(num, "yield_per()")
        self._cursor.yield_per(num)
        return self

    def fetchmany(self, size: int | None = None) -> list[_R]:
        """The next ``size`` objects (fewer at the end, ``[]`` when exhausted).

        Without a size: the ``yield_per()`` size if set, else all remaining
        (a stream: its chunk size).
        """
        if size is None:
            size = self._cursor.fetch_size
        elif size < 0:
            raise ArgumentError(f"fetchmany() size must not be negative, not {size!r}")
        return self._fetch(size)

    def fetchall(self) -> list[_R]:
        """All remaining objects."""
        return self._fetch(None)

    def all(self) -> list[_R]:
        """All remaining objects (the result is then exhausted)."""
        return self._fetch(None)

    def partitions(self, size: int | None = None) -> Iterator[list[_R]]:
        """Iterate over lists of ``size`` objects (the last may be shorter).

        Without a size: the ``yield_per()`` size if set, else one list of all
        (a stream: its chunk size).
        """
        _check_size(size, "partitions()")
        self._require_shape()
        return self._partitions(size or self._cursor.fetch_size)

    def _partitions(self, size: int | None) -> Iterator[list[_R]]:
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
        # Converts a chunk at a time but advances the cursor one object at a
        # time, so fetchone()/close() interleaved with iteration stay exact:
        # if the cursor moved under us, the rest of the chunk is dropped.
        cursor = self._cursor
        while True:
            if cursor.closed:
                raise ResourceClosedError(_CLOSED)
            shape = self._require_shape()
            start = cursor.pos
            buffer = cursor.buffer
            raws = buffer[start : start + _ITER_CHUNK]
            if not raws:
                if not cursor.fill():
                    return
                continue
            seen = self._seen
            key = shape.unique_key
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


class _RowView(_SyncView[Row[_TP]]):
    """The methods of a blocking view of rows, buffered (:class:`Result`) or
    streamed (the sync facade's ``StreamedResult``)."""

    __slots__ = ()

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

    @overload
    def scalar(self: _RowView[tuple[_T]]) -> _T | None: ...
    @overload
    def scalar(self) -> Any: ...
    def scalar(self) -> Any:
        """The first column of the first row, or None; then close the result."""
        row = self.first()
        return None if row is None else row[0]

    @overload
    def scalar_one(self: _RowView[tuple[_T]]) -> _T: ...
    @overload
    def scalar_one(self) -> Any: ...
    def scalar_one(self) -> Any:
        """The only row's first column; raises as :meth:`one`. Closes the result.

        ``unique()`` applies to whole rows here, as in :meth:`one`, not to the
        first column's values (that is ``scalars().one()``).
        """
        return self.one()[0]

    @overload
    def scalar_one_or_none(self: _RowView[tuple[_T]]) -> _T | None: ...
    @overload
    def scalar_one_or_none(self) -> Any: ...
    def scalar_one_or_none(self) -> Any:
        """The only row's first column or None; raises as :meth:`one_or_none`."""
        row = self.one_or_none()
        return None if row is None else row[0]

    def freeze(self) -> FrozenResult[_TP]:
        """Consume the remaining rows into a reusable :class:`FrozenResult`."""
        keys = self._require_shape().metadata.keys
        return FrozenResult(keys, self._fetch(None))


class Result(_RowView[_TP]):
    """A buffered result: every row is in memory, read through this object.

    Built by the engine as ``Result(metadata, raw_rows, rowcount=n)``;
    ``metadata=None`` means the statement returns no rows (DML without
    RETURNING). Usable after its connection is gone.
    """

    __slots__ = ("rowcount",)

    rowcount: int
    """The number of rows the statement matched, as the driver reports (-1: unknown)."""

    def __init__(
        self: Result[Any],
        metadata: ResultMetaData | None,
        rows: Sequence[Any],
        *,
        rowcount: int = -1,
    ) -> None:
        self._cursor = _BufferedCursor(rows)
        self._init_view(None if metadata is None else _Shape.rows(metadata))
        self.rowcount = rowcount

    @property
    def returns_rows(self) -> bool:
        """True if the statement returns rows (a SELECT or RETURNING)."""
        return self._shape is not None

    def _require_unique(self) -> None:
        """Make every read fail until ``unique()`` is called (ORM joined collections)."""
        self._shape = self._require_shape().requiring_unique()

    def raw_values(self) -> Sequence[Sequence[Any]]:
        """The remaining rows as sequences of Python values, without building Rows.

        For consumers that only index rows (the ORM's loader): the driver's rows
        as they are when no column needs a result processor, else plain tuples.
        """
        shape = self._require_shape()
        raws = self._cursor.take(None)
        metadata = shape.metadata
        if not metadata._processed:
            return raws
        factory = _converter_factory(len(metadata.keys), metadata._processed)
        processors = [metadata.processors[i] for i in metadata._processed]
        make_rows = factory(tuple.__new__, tuple, *processors)[1]
        values: list[tuple[Any, ...]] = make_rows(raws)
        return values

    def columns(self, *keys_or_indexes: str | int) -> Result[Any]:
        """A result over the named columns, in the order given.

        Shares this result's position: reading either advances both.
        """
        derived: Result[Any] = Result.__new__(Result)
        derived._cursor = self._cursor
        derived._init_view(self._require_shape().with_columns(keys_or_indexes))
        derived.rowcount = self.rowcount
        return derived

    @overload
    def scalars(self: Result[tuple[_T]], index: Literal[0]) -> ScalarResult[_T]: ...
    @overload
    def scalars(self: Result[tuple[_T]]) -> ScalarResult[_T]: ...
    @overload
    def scalars(self, index: str | int = ...) -> ScalarResult[Any]: ...
    def scalars(self, index: str | int = 0) -> ScalarResult[Any]:
        """A result yielding one column (the first by default) of each row."""
        return ScalarResult(self._cursor, self._require_shape().as_scalars(index))

    def mappings(self) -> MappingResult:
        """A result yielding :class:`RowMapping` objects instead of rows."""
        return MappingResult(self._cursor, self._require_shape().as_mappings())


class ScalarResult(_SyncView[_T]):
    """Yields one column of each row of a :class:`Result` (``result.scalars()``)."""

    __slots__ = ()

    def __init__(self, cursor: _SyncCursor, shape: _Shape) -> None:
        self._cursor = cursor
        self._init_view(shape)


class _MappingView(_SyncView[RowMapping]):
    """The methods of a blocking view of mappings, buffered or streamed."""

    __slots__ = ()

    def keys(self) -> RMKeyView:
        """The column keys, in order."""
        return RMKeyView(self._require_shape().metadata.keys)

    def fetchone(self) -> RowMapping | None:
        """The next mapping, or None when exhausted."""
        outs = self._fetch(1)
        return outs[0] if outs else None


class MappingResult(_MappingView):
    """Yields a :class:`RowMapping` per row of a :class:`Result` (``result.mappings()``)."""

    __slots__ = ()

    def __init__(self, cursor: _SyncCursor, shape: _Shape) -> None:
        self._cursor = cursor
        self._init_view(shape)

    def columns(self, *keys_or_indexes: str | int) -> MappingResult:
        """Mappings over the named columns only, sharing this result's position."""
        return MappingResult(self._cursor, self._require_shape().with_columns(keys_or_indexes))


@final
class FrozenResult(Generic[_TP]):
    """Rows captured by ``result.freeze()``; call it for a fresh :class:`Result`.

    ``data`` is the list of rows. Picklable, so it can be cached.
    """

    __slots__ = ("_metadata", "data", "keys")

    def __init__(self, keys: tuple[str, ...], data: list[Row[_TP]]) -> None:
        self.keys = keys
        self.data = data
        self._metadata = ResultMetaData(keys, (None,) * len(keys))

    def __call__(self) -> Result[_TP]:
        return Result(self._metadata, self.data)

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenResult, (self.keys, self.data))

    def __repr__(self) -> str:
        return f"<FrozenResult keys={list(self.keys)!r} rows={len(self.data)}>"


# ------------------------------------------------------------------ streamed results


class AsyncRowSource(Protocol):
    """What an :class:`AsyncResult` reads from: a server-side cursor, say."""

    async def fetch_chunk(self, size: int) -> Sequence[Any]:
        """Up to ``size`` raw rows; an empty sequence once exhausted."""
        ...

    async def close(self) -> None:
        """Release the cursor; called exactly once."""
        ...


@final
class _StreamCursor:
    """Chunks pulled from a source, the read position, and the source's lifetime."""

    __slots__ = (
        "buffer",
        "chunk_size",
        "closed",
        "default_size",
        "exhausted",
        "pos",
        "source",
        "source_open",
    )

    def __init__(self, source: AsyncRowSource) -> None:
        self.source = source
        self.buffer: list[Any] = []
        self.pos = 0
        self.chunk_size = _DEFAULT_STREAM_CHUNK
        self.default_size: int | None = None
        self.exhausted = False
        self.closed = False
        self.source_open = True

    async def take(self, size: int | None) -> list[Any]:
        if self.closed:
            raise ResourceClosedError(_CLOSED)
        taken: list[Any] = []
        while size is None or len(taken) < size:
            buffer = self.buffer
            pos = self.pos
            if pos < len(buffer):
                end = len(buffer) if size is None else pos + size - len(taken)
                chunk = buffer[pos:end]
                self.pos = pos + len(chunk)
                if taken:
                    taken.extend(chunk)
                else:
                    taken = chunk
            elif self.exhausted:
                break
            else:
                await self._fill()
        return taken

    async def _fill(self) -> None:
        try:
            chunk = await self.source.fetch_chunk(self.chunk_size)
        except BaseException as error:
            # The stream position is unknown now: close, never swallow the error.
            self.closed = True
            try:
                await self.close_source()
            except Exception as close_error:
                error.add_note(f"Closing the result's source also failed: {close_error!r}")
            raise
        if self.closed:
            raise ResourceClosedError(_CLOSED)
        self.pos = 0
        if chunk:
            self.buffer = chunk if isinstance(chunk, list) else list(chunk)
        else:
            self.buffer = []
            self.exhausted = True
            await self.close_source()

    async def close_source(self) -> None:
        if self.source_open:
            self.source_open = False
            with anyio.CancelScope(shield=True):
                await self.source.close()


@final
class _AsyncPartitions(Generic[_R]):
    __slots__ = ("_size", "_view")

    def __init__(self, view: _AsyncView[_R], size: int | None) -> None:
        self._view = view
        self._size = size

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> list[_R]:
        partition = await self._view._fetch(self._size)
        if not partition:
            raise StopAsyncIteration
        return partition


class _AsyncView(_View[_R]):
    """Fetch methods of a streamed view, as coroutines over the shared cursor."""

    __slots__ = ("_cursor",)

    _cursor: _StreamCursor

    async def _fetch(self, size: int | None) -> list[_R]:
        """Up to ``size`` objects (all remaining if None), after dedupe."""
        shape = self._require_shape()
        cursor = self._cursor
        if size is None or self._seen is None:
            return self._convert(shape, await cursor.take(size))
        outs: list[_R] = []
        while len(outs) < size:
            raws = await cursor.take(size - len(outs))
            if not raws:
                break
            outs.extend(self._convert(shape, raws))
        return outs

    @property
    def closed(self) -> bool:
        """True once the result was closed (explicitly, by first()/one()/..., or
        because a fetch failed or was cancelled)."""
        return self._cursor.closed

    async def close(self) -> None:
        """Close the result and its source (once; shielded from cancellation)."""
        self._cursor.closed = True
        await self._cursor.close_source()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def yield_per(self, num: int) -> Self:
        """Pull ``num`` rows per round trip; also the default batch size. Returns self."""
        _check_size(num, "yield_per()")
        self._cursor.chunk_size = num
        self._cursor.default_size = num
        return self

    async def fetchmany(self, size: int | None = None) -> list[_R]:
        """The next ``size`` objects (default: the chunk size); ``[]`` when exhausted."""
        if size is None:
            size = self._cursor.default_size or self._cursor.chunk_size
        elif size < 0:
            raise ArgumentError(f"fetchmany() size must not be negative, not {size!r}")
        return await self._fetch(size)

    async def fetchall(self) -> list[_R]:
        """All remaining objects."""
        return await self._fetch(None)

    async def all(self) -> list[_R]:
        """All remaining objects (the stream is then exhausted and its source closed)."""
        return await self._fetch(None)

    def partitions(self, size: int | None = None) -> _AsyncPartitions[_R]:
        """``async for`` over lists of ``size`` objects (default: the chunk size)."""
        _check_size(size, "partitions()")
        self._require_shape()
        return _AsyncPartitions(self, size or self._cursor.default_size or self._cursor.chunk_size)

    async def first(self) -> _R | None:
        """The first object or None, then close the result."""
        try:
            outs = await self._fetch(1)
        finally:
            await self.close()
        return outs[0] if outs else None

    async def one(self) -> _R:
        """Exactly one object, then close the result.

        Raises :class:`NoResultFound` or :class:`MultipleResultsFound`.
        """
        try:
            return _exactly_one(await self._fetch(2))
        finally:
            await self.close()

    async def one_or_none(self) -> _R | None:
        """One object or None, then close; raises :class:`MultipleResultsFound`."""
        try:
            return _one_or_none(await self._fetch(2))
        finally:
            await self.close()

    def __aiter__(self) -> Self:
        self._require_shape()
        return self

    async def __anext__(self) -> _R:
        outs = await self._fetch(1)
        if not outs:
            raise StopAsyncIteration
        return outs[0]


class AsyncResult(_AsyncView[Row[_TP]]):
    """A streamed result over a server-side cursor; every fetch is awaited.

    Built by the engine as ``AsyncResult(metadata, source)``. Rows are pulled
    from ``source.fetch_chunk`` in chunks (1000 rows, or the ``yield_per()``
    size). Close it with ``await result.close()`` or ``async with result:``;
    breaking out of ``async for`` leaves it open until its connection closes.
    """

    __slots__ = ()

    def __init__(self: AsyncResult[Any], metadata: ResultMetaData, source: AsyncRowSource) -> None:
        self._cursor = _StreamCursor(source)
        self._init_view(_Shape.rows(metadata))

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

    async def fetchone(self) -> Row[_TP] | None:
        """The next row, or None when exhausted."""
        outs = await self._fetch(1)
        return outs[0] if outs else None

    def columns(self, *keys_or_indexes: str | int) -> AsyncResult[Any]:
        """A result over the named columns, sharing this result's stream."""
        derived: AsyncResult[Any] = AsyncResult.__new__(AsyncResult)
        derived._cursor = self._cursor
        derived._init_view(self._require_shape().with_columns(keys_or_indexes))
        return derived

    @overload
    def scalars(self: AsyncResult[tuple[_T]], index: Literal[0]) -> AsyncScalarResult[_T]: ...
    @overload
    def scalars(self: AsyncResult[tuple[_T]]) -> AsyncScalarResult[_T]: ...
    @overload
    def scalars(self, index: str | int = ...) -> AsyncScalarResult[Any]: ...
    def scalars(self, index: str | int = 0) -> AsyncScalarResult[Any]:
        """A result yielding one column (the first by default) of each row."""
        return AsyncScalarResult(self._cursor, self._require_shape().as_scalars(index))

    def mappings(self) -> AsyncMappingResult:
        """A result yielding :class:`RowMapping` objects instead of rows."""
        return AsyncMappingResult(self._cursor, self._require_shape().as_mappings())

    @overload
    async def scalar(self: AsyncResult[tuple[_T]]) -> _T | None: ...
    @overload
    async def scalar(self) -> Any: ...
    async def scalar(self) -> Any:
        """The first column of the first row, or None; then close the result."""
        row = await self.first()
        return None if row is None else row[0]

    @overload
    async def scalar_one(self: AsyncResult[tuple[_T]]) -> _T: ...
    @overload
    async def scalar_one(self) -> Any: ...
    async def scalar_one(self) -> Any:
        """The only row's first column; raises as :meth:`one` (whole-row uniqueness)."""
        row = await self.one()
        return row[0]

    @overload
    async def scalar_one_or_none(self: AsyncResult[tuple[_T]]) -> _T | None: ...
    @overload
    async def scalar_one_or_none(self) -> Any: ...
    async def scalar_one_or_none(self) -> Any:
        """The only row's first column or None; raises as :meth:`one_or_none`."""
        row = await self.one_or_none()
        return None if row is None else row[0]

    async def freeze(self) -> FrozenResult[_TP]:
        """Consume the remaining rows into a reusable :class:`FrozenResult`."""
        keys = self._require_shape().metadata.keys
        return FrozenResult(keys, await self._fetch(None))


class AsyncScalarResult(_AsyncView[_T]):
    """Yields one column of each row of an :class:`AsyncResult`."""

    __slots__ = ()

    def __init__(self, cursor: _StreamCursor, shape: _Shape) -> None:
        self._cursor = cursor
        self._init_view(shape)


class AsyncMappingResult(_AsyncView[RowMapping]):
    """Yields a :class:`RowMapping` per row of an :class:`AsyncResult`."""

    __slots__ = ()

    def __init__(self, cursor: _StreamCursor, shape: _Shape) -> None:
        self._cursor = cursor
        self._init_view(shape)

    def keys(self) -> RMKeyView:
        """The column keys, in order."""
        return RMKeyView(self._require_shape().metadata.keys)

    async def fetchone(self) -> RowMapping | None:
        """The next mapping, or None when exhausted."""
        outs = await self._fetch(1)
        return outs[0] if outs else None

    def columns(self, *keys_or_indexes: str | int) -> AsyncMappingResult:
        """Mappings over the named columns only, sharing this result's stream."""
        return AsyncMappingResult(self._cursor, self._require_shape().with_columns(keys_or_indexes))
