"""Tests for asyncsession.engine.result: rows, buffered and streamed results.

Pure tier: no database. The async classes consume a small interface
(``fetch_chunk``/``close``), so a fake source stands in for a cursor here.
SQLAlchemy's own ``IteratorResult`` serves as an oracle for the shared API.
"""

from __future__ import annotations

import copy
import pickle
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine.result import IteratorResult, SimpleResultMetaData

from asyncsession.engine.result import (
    AsyncMappingResult,
    AsyncResult,
    AsyncScalarResult,
    FrozenResult,
    MappingResult,
    Result,
    ResultMetaData,
    RMKeyView,
    Row,
    RowMapping,
    ScalarResult,
)
from asyncsession.exc import (
    ArgumentError,
    InvalidRequestError,
    MultipleResultsFound,
    NoResultFound,
    ResourceClosedError,
)

CLOSED = "This result object is closed"
NO_ROWS = "This result object does not return rows"
NO_ROW_FOUND = "No row was found when one was required"
MULTIPLE_FOR_ONE = "Multiple rows were found when exactly one was required"
MULTIPLE_FOR_ONE_OR_NONE = "Multiple rows were found when one or none was required"

ROWS = [(1, "ann", 10), (2, "bob", 20), (3, "cy", 30)]
KEYS = ("id", "name", "score")


def meta(keys: Sequence[str] = KEYS, **processors: Callable[[Any], Any]) -> ResultMetaData:
    return ResultMetaData(tuple(keys), tuple(processors.get(k) for k in keys))


def result(rows: Sequence[Any] = ROWS, keys: Sequence[str] = KEYS, **kw: Any) -> Result[Any]:
    return Result(meta(keys, **kw), list(rows))


def make_row(values: Sequence[Any], keys: Sequence[str] = KEYS) -> Row[Any]:
    return meta(keys).make_row(tuple(values))


# ----------------------------------------------------------------------------- Row


class TestRow:
    def test_behaves_as_tuple(self) -> None:
        row = make_row((1, "ann", 10))
        assert row == (1, "ann", 10)
        assert (1, "ann", 10) == row  # noqa: SIM300 - the reflected comparison is the point
        assert row != (1, "ann", 11)
        assert hash(row) == hash((1, "ann", 10))
        assert isinstance(row, tuple)
        assert row[0] == 1
        assert row[-1] == 10
        assert row[1:] == ("ann", 10)
        assert len(row) == 3
        assert list(row) == [1, "ann", 10]
        assert row < (2, "a", 0)
        identifier, name, score = row
        assert (identifier, name, score) == (1, "ann", 10)
        assert repr(row) == "(1, 'ann', 10)"
        assert str(row) == "(1, 'ann', 10)"

    def test_rows_with_different_keys_compare_by_values(self) -> None:
        assert make_row((1, 2), ("a", "b")) == make_row((1, 2), ("x", "y"))

    def test_string_index_is_not_supported(self) -> None:
        row = make_row((1, "ann", 10))
        with pytest.raises(TypeError):
            row["id"]  # type: ignore[call-overload]

    def test_attribute_access(self) -> None:
        row = make_row((1, "ann", 10))
        assert row.id == 1
        assert row.name == "ann"
        assert row.score == 10

    def test_missing_attribute_names_the_columns(self) -> None:
        row = make_row((1, "ann", 10))
        with pytest.raises(AttributeError, match=r"no column 'nope'.*\['id', 'name', 'score'\]"):
            row.nope  # noqa: B018
        assert not hasattr(row, "nope")

    def test_helpers(self) -> None:
        row = make_row((1, "ann", 10))
        assert row._fields == KEYS
        assert row._asdict() == {"id": 1, "name": "ann", "score": 10}
        assert row._tuple() == (1, "ann", 10)
        assert row._t == (1, "ann", 10)
        assert row._mapping["name"] == "ann"

    def test_tuple_method_names_stay_reachable_through_mapping(self) -> None:
        row = make_row((5, 6), ("count", "index"))
        assert row.count(5) == 1
        assert row._mapping["count"] == 5
        assert row._mapping["index"] == 6

    def test_duplicate_keys_are_positional_only(self) -> None:
        row = make_row((1, 2, "x"), ("id", "id", "name"))
        assert row[0] == 1
        assert row[1] == 2
        assert row.name == "x"
        assert row._mapping["name"] == "x"
        assert "id" in row._mapping
        with pytest.raises(InvalidRequestError, match="Ambiguous column name 'id'"):
            row.id  # noqa: B018
        with pytest.raises(InvalidRequestError, match="Ambiguous column name 'id'"):
            row._mapping["id"]
        with pytest.raises(InvalidRequestError, match="Ambiguous column name 'id'"):
            row._asdict()
        assert repr(row._mapping) == "{'id': 1, 'id': 2, 'name': 'x'}"

    def test_duplicate_key_three_times(self) -> None:
        row = make_row((1, 2, 3), ("id", "id", "id"))
        with pytest.raises(InvalidRequestError, match="'id'"):
            row.id  # noqa: B018

    @pytest.mark.parametrize("keys", [KEYS, ("id", "id", "name")])
    def test_pickle_round_trip(self, keys: tuple[str, ...]) -> None:
        row = make_row((1, "ann", 10), keys)
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            restored = pickle.loads(pickle.dumps(row, protocol))
            assert restored == row
            assert isinstance(restored, Row)
            assert restored._fields == keys
        assert pickle.loads(pickle.dumps(make_row((1, "ann", 10)))).name == "ann"

    def test_copy(self) -> None:
        row = make_row((1, "ann", [1, 2]))
        assert copy.copy(row) == row
        deep = copy.deepcopy(row)
        assert deep == row
        assert deep.score is not row.score

    def test_rows_share_a_class_per_keys(self) -> None:
        first = meta().make_row((1, "a", 1))
        second = ResultMetaData(KEYS, (str, None, None)).make_row((1, "a", 1))
        assert type(first) is type(second)
        assert not hasattr(first, "__dict__")

    @given(st.lists(st.one_of(st.integers(), st.text(max_size=3), st.none()), max_size=6))
    def test_equality_and_hash_match_tuple(self, values: list[Any]) -> None:
        keys = tuple(f"c{i}" for i in range(len(values)))
        row = make_row(values, keys)
        plain = tuple(values)
        assert row == plain
        assert hash(row) == hash(plain)
        assert (row < plain) == (plain < plain)
        assert {row: 1}[plain] == 1


# ------------------------------------------------------------------ RowMapping, keys


class TestRowMapping:
    def test_mapping_protocol(self) -> None:
        mapping = make_row((1, "ann", 10))._mapping
        assert isinstance(mapping, RowMapping)
        assert mapping["id"] == 1
        assert list(mapping) == ["id", "name", "score"]
        assert len(mapping) == 3
        assert "name" in mapping
        assert "nope" not in mapping
        assert mapping.get("nope") is None
        assert mapping.get("id") == 1
        assert dict(mapping) == {"id": 1, "name": "ann", "score": 10}
        assert list(mapping.values()) == [1, "ann", 10]
        assert list(mapping.items()) == [("id", 1), ("name", "ann"), ("score", 10)]
        assert mapping.keys() == ["id", "name", "score"]
        assert repr(mapping) == "{'id': 1, 'name': 'ann', 'score': 10}"

    def test_missing_key_and_integer_key_raise_key_error(self) -> None:
        mapping = make_row((1, "ann", 10))._mapping
        with pytest.raises(KeyError):
            mapping["nope"]
        with pytest.raises(KeyError):
            mapping[0]  # type: ignore[index]

    def test_equality_and_hash(self) -> None:
        mapping = make_row((1, "ann", 10))._mapping
        assert mapping == {"id": 1, "name": "ann", "score": 10}
        assert mapping != {"id": 1}
        assert mapping == make_row((1, "ann", 10))._mapping
        assert mapping != make_row((1, "ann", 10), ("a", "b", "c"))._mapping
        assert hash(mapping) == hash(make_row((1, "ann", 10))._mapping)


class TestRMKeyView:
    def test_behaviour(self) -> None:
        keys = RMKeyView(("a", "b", "a"))
        assert keys == ["a", "b", "a"]
        assert keys == ("a", "b", "a")
        assert keys == RMKeyView(("a", "b", "a"))
        assert keys != ["a", "b"]
        assert keys != {"a", "b"}
        assert list(keys) == ["a", "b", "a"]
        assert len(keys) == 3
        assert "b" in keys
        assert "c" not in keys
        assert keys & {"a", "z"} == {"a"}
        assert keys | {"z"} == {"a", "b", "z"}
        assert repr(keys) == "RMKeyView(['a', 'b', 'a'])"
        with pytest.raises(TypeError):
            hash(keys)


# --------------------------------------------------------------------- metadata


class Record:
    """A tuple-like driver record that is not a tuple (like asyncpg.Record)."""

    def __init__(self, *values: Any) -> None:
        self._values = values

    def __getitem__(self, index: int) -> Any:
        return self._values[index]

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Any:
        return iter(self._values)


class TestResultMetaData:
    def test_lengths_must_match(self) -> None:
        with pytest.raises(ArgumentError, match="2 keys and 1 processors"):
            ResultMetaData(("a", "b"), (None,))

    def test_make_rows_without_processors(self) -> None:
        rows = meta().make_rows(ROWS)
        assert rows == ROWS
        assert all(isinstance(r, Row) for r in rows)
        assert meta().make_row(Record(1, "a", 2)) == (1, "a", 2)

    def test_processors_apply_to_their_columns_and_receive_none(self) -> None:
        seen: list[Any] = []

        def upper(value: Any) -> Any:
            seen.append(value)
            return None if value is None else value.upper()

        md = meta(name=upper, score=lambda v: v * 2)
        rows = md.make_rows([(1, "ann", 10), Record(2, None, 3)])
        assert rows == [(1, "ANN", 20), (2, None, 6)]
        assert seen == ["ann", None]
        assert md.make_row((3, "cy", 1)) == (3, "CY", 2)
        assert rows[0].name == "ANN"

    def test_single_column_with_processor(self) -> None:
        md = ResultMetaData(("x",), (str,))
        assert md.make_rows([(1,), (2,)]) == [("1",), ("2",)]
        assert md.make_row((3,)) == ("3",)

    def test_wide_rows(self) -> None:
        keys = tuple(f"c{i}" for i in range(300))
        md = ResultMetaData(keys, tuple(str if i % 7 == 0 else None for i in range(300)))
        (row,) = md.make_rows([tuple(range(300))])
        assert row[0] == "0"
        assert row[1] == 1
        assert row.c299 == 299
        assert row.c294 == "294"

    def test_processors_run_once_per_row(self) -> None:
        calls = 0

        def count(value: Any) -> Any:
            nonlocal calls
            calls += 1
            return value

        res = result(name=count)
        rows = res.all()
        for row in rows:
            assert row.name == row._mapping["name"] == row[1]
        assert calls == 3


# ----------------------------------------------------------------- buffered Result


class TestFetching:
    def test_fetchone_until_exhausted(self) -> None:
        res = result()
        assert res.fetchone() == ROWS[0]
        assert res.fetchone() == ROWS[1]
        assert res.fetchone() == ROWS[2]
        assert res.fetchone() is None
        assert res.fetchone() is None
        assert not res.closed

    def test_fetchmany(self) -> None:
        res = result()
        assert res.fetchmany(2) == ROWS[:2]
        assert res.fetchmany(2) == ROWS[2:]
        assert res.fetchmany(2) == []
        assert result().fetchmany() == ROWS
        assert result().fetchmany(0) == []
        with pytest.raises(ArgumentError, match="must not be negative"):
            result().fetchmany(-1)

    def test_all_and_fetchall(self) -> None:
        res = result()
        assert res.fetchone() == ROWS[0]
        assert res.all() == ROWS[1:]
        assert res.all() == []
        assert res.fetchall() == []
        assert not res.closed
        assert result().fetchall() == ROWS

    def test_all_does_not_mutate_the_input(self) -> None:
        rows = list(ROWS)
        res = Result(meta(), rows)
        assert res.all() == ROWS
        assert rows == ROWS

    def test_exhausted_result_is_not_closed(self) -> None:
        res = result()
        res.all()
        assert not res.closed
        assert res.fetchmany(3) == []
        assert res.first() is None
        assert res.closed

    def test_iteration(self) -> None:
        assert list(result()) == ROWS
        res = result()
        assert next(res) == ROWS[0]
        assert list(res) == ROWS[1:]
        with pytest.raises(StopIteration):
            next(res)

    def test_iteration_interleaved_with_fetches(self) -> None:
        rows = [(i, str(i), i) for i in range(200)]
        res = result(rows)
        seen = []
        for row in res:
            seen.append(row)
            if row[0] % 10 == 0:
                fetched = res.fetchone()
                if fetched is not None:
                    seen.append(fetched)
        assert seen == rows

    def test_close_during_iteration(self) -> None:
        res = result()
        iterator = iter(res)
        assert next(iterator) == ROWS[0]
        res.close()
        with pytest.raises(ResourceClosedError, match=CLOSED):
            next(iterator)

    def test_processors_apply_on_every_path(self) -> None:
        def res() -> Result[Any]:
            return result(name=str.upper)

        upper = [(1, "ANN", 10), (2, "BOB", 20), (3, "CY", 30)]
        assert res().all() == upper
        assert list(res()) == upper
        assert res().fetchone() == upper[0]
        assert res().fetchmany(2) == upper[:2]
        assert res().scalars("name").all() == ["ANN", "BOB", "CY"]
        assert res().columns("name").all() == [("ANN",), ("BOB",), ("CY",)]
        assert res().mappings().first() == {"id": 1, "name": "ANN", "score": 10}
        assert res().scalar() == 1
        assert Result(meta(name=str.upper), ROWS[1:2]).scalar_one_or_none() == 2

    def test_rowcount_and_returns_rows(self) -> None:
        res = Result(meta(), ROWS, rowcount=3)
        assert res.rowcount == 3
        assert res.returns_rows
        assert result().rowcount == -1

    def test_keys(self) -> None:
        res = result()
        assert res.keys() == ["id", "name", "score"]
        keys = res.keys()
        assert isinstance(keys, RMKeyView)
        assert "name" in keys

    def test_tuples_is_self(self) -> None:
        res = result()
        assert res.tuples() is res
        assert res.t is res


class TestOneAndFirst:
    def test_first_closes(self) -> None:
        res = result()
        assert res.first() == ROWS[0]
        assert res.closed
        with pytest.raises(ResourceClosedError, match=CLOSED):
            res.all()
        empty = result([])
        assert empty.first() is None
        assert empty.closed

    def test_one(self) -> None:
        res = result(ROWS[:1])
        assert res.one() == ROWS[0]
        assert res.closed
        with pytest.raises(ResourceClosedError, match=CLOSED):
            res.all()

    def test_one_errors_close_too(self) -> None:
        res = result([])
        with pytest.raises(NoResultFound, match=NO_ROW_FOUND):
            res.one()
        assert res.closed
        res = result()
        with pytest.raises(MultipleResultsFound, match=MULTIPLE_FOR_ONE):
            res.one()
        assert res.closed
        with pytest.raises(ResourceClosedError, match=CLOSED):
            res.fetchone()

    def test_one_or_none(self) -> None:
        assert result([]).one_or_none() is None
        assert result(ROWS[:1]).one_or_none() == ROWS[0]
        res = result()
        with pytest.raises(MultipleResultsFound, match=MULTIPLE_FOR_ONE_OR_NONE):
            res.one_or_none()
        assert res.closed

    def test_one_after_exhaustion(self) -> None:
        res = result()
        res.all()
        with pytest.raises(NoResultFound):
            res.one()

    def test_one_after_partial_fetch_looks_at_the_rest(self) -> None:
        res = result(ROWS[:2])
        res.fetchone()
        assert res.one() == ROWS[1]

    def test_scalar_family(self) -> None:
        assert result().scalar() == 1
        assert result([]).scalar() is None
        res = result()
        res.scalar()
        assert res.closed
        assert result(ROWS[:1]).scalar_one() == 1
        assert result(ROWS[:1]).scalar_one_or_none() == 1
        assert result([]).scalar_one_or_none() is None
        with pytest.raises(NoResultFound, match=NO_ROW_FOUND):
            result([]).scalar_one()
        with pytest.raises(MultipleResultsFound, match=MULTIPLE_FOR_ONE):
            result().scalar_one()
        with pytest.raises(MultipleResultsFound, match=MULTIPLE_FOR_ONE_OR_NONE):
            result().scalar_one_or_none()
        res = result()
        with pytest.raises(MultipleResultsFound):
            res.scalar_one()
        assert res.closed

    def test_scalar_of_null(self) -> None:
        assert result([(None, "x", 1)]).scalar() is None
        assert result([(None, "x", 1)]).scalar_one() is None


class TestClose:
    def test_close_then_fetch(self) -> None:
        for method in ("fetchone", "fetchall", "all", "first", "one", "one_or_none", "scalar"):
            res = result()
            res.close()
            assert res.closed
            with pytest.raises(ResourceClosedError, match=CLOSED):
                getattr(res, method)()
        res = result()
        res.close()
        res.close()
        with pytest.raises(ResourceClosedError, match=CLOSED):
            res.fetchmany(1)
        with pytest.raises(ResourceClosedError, match=CLOSED):
            list(res)
        with pytest.raises(ResourceClosedError, match=CLOSED):
            list(res.partitions())
        with pytest.raises(ResourceClosedError, match=CLOSED):
            res.freeze()
        assert res.keys() == list(KEYS)

    def test_closing_a_view_closes_all_views(self) -> None:
        res = result()
        scalars = res.scalars()
        scalars.close()
        assert res.closed
        assert scalars.closed
        with pytest.raises(ResourceClosedError):
            res.fetchone()
        res = result()
        mappings = res.mappings()
        assert mappings.first() == {"id": 1, "name": "ann", "score": 10}
        assert res.closed

    def test_context_manager(self) -> None:
        with result() as res:
            assert res.fetchone() == ROWS[0]
        assert res.closed


class TestNoRows:
    def test_dml_result(self) -> None:
        res = Result(None, [], rowcount=4)
        assert res.rowcount == 4
        assert not res.returns_rows
        assert not res.closed
        calls: list[Callable[[], Any]] = [
            res.fetchone,
            res.fetchall,
            res.all,
            res.first,
            res.one,
            res.one_or_none,
            res.scalar,
            res.scalar_one,
            res.scalar_one_or_none,
            res.scalars,
            res.mappings,
            res.keys,
            res.freeze,
            res.unique,
            lambda: res.fetchmany(2),
            lambda: res.columns("x"),
            lambda: iter(res),
            lambda: res.partitions(),
        ]
        for call in calls:
            with pytest.raises(ResourceClosedError, match=NO_ROWS):
                call()
        res.close()
        assert res.closed


class TestViews:
    def test_scalars(self) -> None:
        assert result().scalars().all() == [1, 2, 3]
        assert result().scalars(1).all() == ["ann", "bob", "cy"]
        assert result().scalars("score").all() == [10, 20, 30]
        assert result().scalars(-1).all() == [10, 20, 30]
        res = result().scalars()
        assert isinstance(res, ScalarResult)
        assert res.fetchmany(2) == [1, 2]
        assert res.fetchall() == [3]
        assert list(result().scalars()) == [1, 2, 3]
        assert list(result().scalars().partitions(2)) == [[1, 2], [3]]
        assert result().scalars().first() == 1
        assert result(ROWS[:1]).scalars().one() == 1
        assert result([]).scalars().one_or_none() is None
        with pytest.raises(MultipleResultsFound):
            result().scalars().one()

    def test_scalars_bad_column(self) -> None:
        with pytest.raises(InvalidRequestError, match=r"'nope'.*\['id', 'name', 'score'\]"):
            result().scalars("nope")
        with pytest.raises(InvalidRequestError, match="index 3 is out of range"):
            result().scalars(3)
        with pytest.raises(InvalidRequestError, match="Ambiguous column name 'id'"):
            result(keys=("id", "id", "x")).scalars("id")
        with pytest.raises(ArgumentError, match="not by float"):
            result().scalars(1.0)  # type: ignore[call-overload]

    def test_views_share_the_position(self) -> None:
        res = result()
        assert res.fetchone() == ROWS[0]
        scalars = res.scalars(1)
        assert scalars.fetchmany(1) == ["bob"]
        assert res.mappings().all() == [{"id": 3, "name": "cy", "score": 30}]
        assert res.all() == []

    def test_mappings(self) -> None:
        res = result().mappings()
        assert isinstance(res, MappingResult)
        assert res.keys() == list(KEYS)
        first = res.fetchone()
        assert isinstance(first, RowMapping)
        assert first == {"id": 1, "name": "ann", "score": 10}
        assert res.fetchmany(1) == [{"id": 2, "name": "bob", "score": 20}]
        assert res.all() == [{"id": 3, "name": "cy", "score": 30}]
        assert res.fetchone() is None
        assert result().mappings().columns("name").all() == [
            {"name": "ann"},
            {"name": "bob"},
            {"name": "cy"},
        ]
        assert result().mappings().columns("name").keys() == ["name"]
        assert list(result().mappings().partitions(2))[1] == [{"id": 3, "name": "cy", "score": 30}]
        assert result(ROWS[:1]).mappings().one()["name"] == "ann"
        assert result([]).mappings().one_or_none() is None
        assert [m["id"] for m in result().mappings()] == [1, 2, 3]

    def test_columns(self) -> None:
        res = result().columns("score", 0)
        assert isinstance(res, Result)
        assert res.keys() == ["score", "id"]
        rows = res.all()
        assert rows == [(10, 1), (20, 2), (30, 3)]
        assert rows[0].score == 10
        assert rows[0]._fields == ("score", "id")
        assert result().columns("name").all() == [("ann",), ("bob",), ("cy",)]
        assert result().columns(-1, "id", "id").all()[0] == (10, 1, 1)

    def test_columns_of_columns_and_scalars_of_columns(self) -> None:
        assert result().columns("score", "name").columns("name").all()[0] == ("ann",)
        assert result().columns("score", "id").columns("id").all()[0] == (1,)
        assert result().columns("score", "id").columns(0).first() == (10,)
        assert result().columns("score", "id").scalars("id").all() == [1, 2, 3]
        assert result().columns("score", "id").mappings().columns("id").all()[1] == {"id": 2}
        assert result().columns("score", "name").columns(1).all()[0] == ("ann",)
        assert result().columns("score", "name").scalars().all() == [10, 20, 30]
        assert result().columns("score", "name").scalars(1).all() == ["ann", "bob", "cy"]
        assert result(name=str.upper).columns("score", "name").scalars("name").first() == "ANN"
        with pytest.raises(InvalidRequestError, match="'id'"):
            result().columns("score", "name").columns("id")

    def test_columns_shares_position_and_rowcount(self) -> None:
        res = Result(meta(), ROWS, rowcount=7)
        assert res.fetchone() == ROWS[0]
        sub = res.columns("id")
        assert sub.rowcount == 7
        assert sub.fetchone() == (2,)
        assert res.all() == [ROWS[2]]
        sub.close()
        assert res.closed

    def test_columns_errors(self) -> None:
        with pytest.raises(ArgumentError, match="at least one column"):
            result().columns()
        with pytest.raises(InvalidRequestError, match="'nope'"):
            result().columns("nope")
        with pytest.raises(InvalidRequestError, match="out of range"):
            result().columns(5)
        with pytest.raises(InvalidRequestError, match="Ambiguous column name 'id'"):
            result(keys=("id", "id", "x")).columns("id")
        assert result(keys=("id", "id", "x")).columns(1, "x").all()[0] == (
            "ann",
            10,
        )


class TestPartitions:
    def test_sizes(self) -> None:
        rows = [(i, str(i), i) for i in range(7)]
        assert [len(p) for p in result(rows).partitions(3)] == [3, 3, 1]
        assert [len(p) for p in result(rows).partitions()] == [7]
        assert list(result([]).partitions(3)) == []
        assert [len(p) for p in result(rows).yield_per(2).partitions()] == [2, 2, 2, 1]

    def test_bad_size(self) -> None:
        with pytest.raises(ArgumentError, match="positive"):
            result().partitions(0)
        with pytest.raises(ArgumentError, match="positive"):
            result().yield_per(0)

    def test_yield_per_sets_fetchmany_default(self) -> None:
        res = result()
        assert res.yield_per(2) is res
        assert res.fetchmany() == ROWS[:2]
        assert res.all() == ROWS[2:]


class TestUnique:
    DUPES = [(1, "a", 1), (1, "a", 1), (2, "a", 2), (1, "a", 1), (2, "b", 2)]

    def test_rows(self) -> None:
        res = result(self.DUPES)
        assert res.unique() is res
        assert res.all() == [(1, "a", 1), (2, "a", 2), (2, "b", 2)]

    def test_strategy(self) -> None:
        assert result(self.DUPES).unique(lambda row: row.name).all() == [(1, "a", 1), (2, "b", 2)]
        assert result(self.DUPES).scalars("id").unique(lambda v: v % 2).all() == [1, 2]

    def test_scalars(self) -> None:
        assert result(self.DUPES).scalars().unique().all() == [1, 2]
        assert result(self.DUPES).unique().scalars("name").all() == ["a", "b"]

    def test_mappings(self) -> None:
        assert result(self.DUPES).mappings().unique().all() == [
            {"id": 1, "name": "a", "score": 1},
            {"id": 2, "name": "a", "score": 2},
            {"id": 2, "name": "b", "score": 2},
        ]
        assert len(result(self.DUPES).unique().mappings().all()) == 3
        strategy_result = result(self.DUPES).mappings().unique(lambda m: m["name"]).all()
        assert [m["id"] for m in strategy_result] == [1, 2]

    def test_columns(self) -> None:
        assert result(self.DUPES).unique().columns("name").all() == [("a",), ("b",)]
        assert result(self.DUPES).columns("name").unique().all() == [("a",), ("b",)]

    def test_fetch_methods_skip_duplicates(self) -> None:
        res = result(self.DUPES).unique()
        assert res.fetchone() == (1, "a", 1)
        assert res.fetchmany(1) == [(2, "a", 2)]
        assert res.fetchmany(5) == [(2, "b", 2)]
        assert res.fetchone() is None
        assert list(result(self.DUPES).unique()) == [(1, "a", 1), (2, "a", 2), (2, "b", 2)]
        assert [len(p) for p in result(self.DUPES).unique().partitions(2)] == [2, 1]

    def test_one_considers_only_distinct_rows(self) -> None:
        assert result([(1, "a", 1)] * 3).unique().one() == (1, "a", 1)
        assert result([(1, "a", 1)] * 3).unique().scalar_one() == 1
        assert result([(1, "a", 1)] * 3).scalars().unique().one() == 1
        with pytest.raises(MultipleResultsFound):
            result(self.DUPES).unique().one()

    def test_unhashable_rows(self) -> None:
        with pytest.raises(TypeError):
            result([(1, [1], 1)]).unique().all()
        assert result([(1, [1], 1)]).unique(lambda row: row.id).all() == [(1, [1], 1)]


class TestFreeze:
    def test_round_trip(self) -> None:
        res = result(name=str.upper)
        frozen = res.freeze()
        assert isinstance(frozen, FrozenResult)
        expected = [(1, "ANN", 10), (2, "BOB", 20), (3, "CY", 30)]
        assert frozen.data == expected
        assert res.all() == []
        assert not res.closed
        first = frozen()
        assert first.keys() == list(KEYS)
        assert first.all() == expected
        assert frozen().scalars("name").all() == ["ANN", "BOB", "CY"]
        assert frozen().first().name == "ANN"  # type: ignore[union-attr]

    def test_partial_and_views(self) -> None:
        res = result()
        res.fetchone()
        assert res.freeze().data == ROWS[1:]
        frozen = result().columns("name").freeze()
        assert frozen().keys() == ["name"]
        assert frozen().all() == [("ann",), ("bob",), ("cy",)]
        assert result(TestUnique.DUPES).unique().freeze().data == [
            (1, "a", 1),
            (2, "a", 2),
            (2, "b", 2),
        ]

    def test_pickle(self) -> None:
        frozen = result(name=str.upper).freeze()
        restored = pickle.loads(pickle.dumps(frozen))
        assert restored().all() == frozen.data
        assert restored().first().name == "ANN"


# ----------------------------------------------------------------------- properties

rows_strategy = st.integers(min_value=1, max_value=3).flatmap(
    lambda width: st.lists(
        st.tuples(*[st.one_of(st.integers(0, 3), st.sampled_from(["a", "b"]))] * width),
        max_size=12,
    ).map(lambda rows: (width, rows))
)


def keys_for(width: int) -> tuple[str, ...]:
    return tuple("abc"[:width])


def dedupe(items: Sequence[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


@given(rows_strategy, st.lists(st.one_of(st.none(), st.integers(0, 4)), max_size=20))
def test_fetch_calls_reconstruct_the_rows(
    width_rows: tuple[int, list[tuple[Any, ...]]], sizes: list[int | None]
) -> None:
    width, rows = width_rows
    res = Result(ResultMetaData(keys_for(width), (None,) * width), rows)
    collected: list[Any] = []
    for size in sizes:
        if size is None:
            row = res.fetchone()
            if row is not None:
                collected.append(row)
        else:
            chunk = res.fetchmany(size)
            assert len(chunk) == min(size, len(rows) - len(collected))
            collected.extend(chunk)
    collected.extend(res)
    assert collected == rows


@given(rows_strategy, st.integers(1, 5), st.booleans())
def test_partitions_reconstruct_the_rows(
    width_rows: tuple[int, list[tuple[Any, ...]]], size: int, unique: bool
) -> None:
    width, rows = width_rows
    res = Result(ResultMetaData(keys_for(width), (None,) * width), rows)
    if unique:
        res = res.unique()
    parts = list(res.partitions(size))
    assert all(len(p) == size for p in parts[:-1])
    assert all(0 < len(p) <= size for p in parts)
    assert [row for part in parts for row in part] == (dedupe(rows) if unique else rows)


@given(rows_strategy, st.lists(st.integers(1, 4), max_size=10))
def test_unique_is_order_preserving_dedupe(
    width_rows: tuple[int, list[tuple[Any, ...]]], sizes: list[int]
) -> None:
    width, rows = width_rows
    md = ResultMetaData(keys_for(width), (None,) * width)
    assert Result(md, rows).unique().all() == dedupe(rows)
    assert Result(md, rows).scalars().unique().all() == dedupe([r[0] for r in rows])
    res = Result(md, rows).unique()
    collected: list[Any] = []
    for size in sizes:
        collected.extend(res.fetchmany(size))
    collected.extend(res)
    assert collected == dedupe(rows)


def oracle_outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """A comparable summary of what a call returned or raised (by class name,
    so that ours and SQLAlchemy's exception classes compare)."""
    try:
        value = call()
    except Exception as error:
        return ("raised", type(error).__name__)
    return ("returned", normalise(value))


def normalise(value: Any) -> Any:
    """Rows and mappings of either library as plain tuples and dicts."""
    if isinstance(value, Mapping):
        return ("mapping", dict(value))
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, Sequence) and not isinstance(value, str):
        return ("tuple", tuple(value))
    return value


ORACLE_CALLS: dict[str, Callable[[Any, tuple[str, ...]], Any]] = {
    "all": lambda r, k: r.all(),
    "first": lambda r, k: r.first(),
    "one": lambda r, k: r.one(),
    "one_or_none": lambda r, k: r.one_or_none(),
    "scalar": lambda r, k: r.scalar(),
    "scalar_one": lambda r, k: r.scalar_one(),
    "scalar_one_or_none": lambda r, k: r.scalar_one_or_none(),
    "unique": lambda r, k: r.unique().all(),
    "unique_one": lambda r, k: r.unique().one(),
    "unique_scalar_one": lambda r, k: r.unique().scalar_one(),
    "scalars": lambda r, k: r.scalars(k[-1]).all(),
    "scalars_unique": lambda r, k: r.scalars(k[-1]).unique().all(),
    "unique_scalars": lambda r, k: r.unique().scalars().all(),
    "columns": lambda r, k: r.columns(*reversed(k)).all(),
    "columns_unique": lambda r, k: r.columns(k[-1]).unique().all(),
    "columns_scalars": lambda r, k: r.columns(*reversed(k)).scalars().all(),
    "mappings": lambda r, k: r.mappings().all(),
    "mappings_unique": lambda r, k: r.mappings().unique().all(),
    "mappings_first": lambda r, k: r.mappings().first(),
    "mappings_columns": lambda r, k: r.mappings().columns(k[0]).all(),
    "keys": lambda r, k: list(r.keys()),
    "fetchmany": lambda r, k: [r.fetchmany(2), r.fetchone(), r.fetchall(), r.fetchone()],
    "partitions": lambda r, k: list(r.partitions(2)),
    "one_then_all": lambda r, k: [oracle_outcome(r.one), oracle_outcome(r.all)],
    "all_then_first": lambda r, k: [r.all(), r.first(), oracle_outcome(r.all)],
    "freeze": lambda r, k: [r.freeze()().all(), r.all()],
}


@settings(max_examples=60)
@given(rows_strategy, st.sampled_from(sorted(ORACLE_CALLS)))
def test_agrees_with_sqlalchemy(
    width_rows: tuple[int, list[tuple[Any, ...]]], call_name: str
) -> None:
    width, rows = width_rows
    keys = keys_for(width)
    call = ORACLE_CALLS[call_name]
    ours = Result(ResultMetaData(keys, (None,) * width), list(rows))
    theirs: IteratorResult[Any] = IteratorResult(SimpleResultMetaData(keys), iter(rows))
    assert oracle_outcome(lambda: call(ours, keys)) == oracle_outcome(lambda: call(theirs, keys))


def test_oracle_sees_errors() -> None:
    """The oracle comparison would notice an exception mismatch."""
    keys = ("a",)
    ours = Result(ResultMetaData(keys, (None,)), [(1,), (2,)])
    theirs: IteratorResult[Any] = IteratorResult(SimpleResultMetaData(keys), iter([(1,), (2,)]))
    assert oracle_outcome(ours.one) == ("raised", "MultipleResultsFound")
    assert oracle_outcome(theirs.one) == ("raised", "MultipleResultsFound")


# --------------------------------------------------------------------- AsyncResult


class FakeSource:
    """Serves rows in chunks, records what it was asked, counts closes."""

    def __init__(
        self,
        rows: Sequence[Any],
        *,
        block: anyio.Event | None = None,
        fail: BaseException | None = None,
        close_error: Exception | None = None,
        as_tuple: bool = False,
    ) -> None:
        self.rows = list(rows)
        self.pos = 0
        self.sizes: list[int] = []
        self.block = block
        self.fail = fail
        self.close_error = close_error
        self.as_tuple = as_tuple
        self.close_calls = 0
        self.closes_completed = 0
        self.fetching = anyio.Event()

    async def fetch_chunk(self, size: int) -> Sequence[Any]:
        assert self.close_calls == 0, "fetch after close"
        self.sizes.append(size)
        self.fetching.set()
        if self.block is not None:
            await self.block.wait()
        await anyio.lowlevel.checkpoint()
        if self.fail is not None:
            raise self.fail
        chunk = self.rows[self.pos : self.pos + size]
        self.pos += len(chunk)
        return tuple(chunk) if self.as_tuple else chunk

    async def close(self) -> None:
        self.close_calls += 1
        await anyio.lowlevel.checkpoint()
        self.closes_completed += 1
        if self.close_error is not None:
            raise self.close_error


def stream(
    rows: Sequence[Any] = ROWS, keys: Sequence[str] = KEYS, **kw: Any
) -> tuple[AsyncResult[Any], FakeSource]:
    source = FakeSource(rows, **kw)
    return AsyncResult(meta(keys), source), source


async def cancel_when_fetching(source: FakeSource, scope: anyio.CancelScope) -> None:
    await source.fetching.wait()
    scope.cancel()


MANY = [(i, f"n{i}", i * 10) for i in range(10)]


@pytest.mark.anyio
class TestAsyncResult:
    async def test_fetch_methods(self) -> None:
        res, source = stream(MANY)
        assert await res.fetchone() == MANY[0]
        assert await res.fetchmany(3) == MANY[1:4]
        assert await res.fetchall() == MANY[4:]
        assert await res.fetchone() is None
        assert await res.all() == []
        assert await res.fetchmany(2) == []
        assert source.close_calls == 1
        assert not res.closed

    async def test_chunks_follow_yield_per(self) -> None:
        res, source = stream(MANY)
        assert res.yield_per(4) is res
        assert await res.fetchone() == MANY[0]
        assert source.sizes == [4]
        assert await res.fetchmany() == MANY[1:5]
        assert await res.all() == MANY[5:]
        assert source.sizes == [4, 4, 4, 4]
        assert source.close_calls == 1

    async def test_default_chunk_size(self) -> None:
        res, source = stream(MANY)
        assert await res.all() == MANY
        assert source.sizes == [1000, 1000]

    async def test_non_list_chunks(self) -> None:
        res, _ = stream(MANY, as_tuple=True)
        res.yield_per(3)
        assert [row async for row in res] == MANY

    async def test_async_iteration(self) -> None:
        res, source = stream(MANY)
        res.yield_per(3)
        assert [row async for row in res] == MANY
        assert source.close_calls == 1
        res, _ = stream()
        assert [s async for s in res.scalars("name")] == ["ann", "bob", "cy"]

    async def test_first_one_scalar_close_the_source_once(self) -> None:
        res, source = stream()
        assert await res.first() == ROWS[0]
        assert res.closed
        assert source.close_calls == source.closes_completed == 1
        await res.close()
        assert source.close_calls == 1
        with pytest.raises(ResourceClosedError, match=CLOSED):
            await res.fetchone()

        res, source = stream(ROWS[:1])
        assert await res.one() == ROWS[0]
        assert source.close_calls == 1
        res, source = stream()
        with pytest.raises(MultipleResultsFound, match=MULTIPLE_FOR_ONE):
            await res.one()
        assert res.closed
        assert source.close_calls == 1
        res, _ = stream([])
        with pytest.raises(NoResultFound, match=NO_ROW_FOUND):
            await res.one()
        res, _ = stream()
        with pytest.raises(MultipleResultsFound, match=MULTIPLE_FOR_ONE_OR_NONE):
            await res.one_or_none()
        res, _ = stream([])
        assert await res.one_or_none() is None
        res, _ = stream([])
        assert await res.first() is None

    async def test_scalar_family(self) -> None:
        res, source = stream()
        assert await res.scalar() == 1
        assert source.close_calls == 1
        res, _ = stream([])
        assert await res.scalar() is None
        res, _ = stream(ROWS[:1])
        assert await res.scalar_one() == 1
        res, _ = stream(ROWS[:1])
        assert await res.scalar_one_or_none() == 1
        res, _ = stream([])
        assert await res.scalar_one_or_none() is None
        res, _ = stream()
        with pytest.raises(MultipleResultsFound):
            await res.scalar_one()
        res, _ = stream([])
        with pytest.raises(NoResultFound):
            await res.scalar_one()

    async def test_scalars_view(self) -> None:
        res, source = stream()
        scalars = res.scalars(1)
        assert isinstance(scalars, AsyncScalarResult)
        assert await scalars.fetchmany(2) == ["ann", "bob"]
        assert await scalars.all() == ["cy"]
        res, _ = stream()
        assert await res.scalars().fetchall() == [1, 2, 3]
        res, _ = stream()
        assert await res.scalars().first() == 1
        res, _ = stream(ROWS[:1])
        assert await res.scalars().one() == 1
        res, _ = stream([])
        assert await res.scalars().one_or_none() is None
        res, source = stream()
        await res.scalars().close()
        assert res.closed
        assert source.close_calls == 1

    async def test_mappings_view(self) -> None:
        res, _ = stream()
        mappings = res.mappings()
        assert isinstance(mappings, AsyncMappingResult)
        assert mappings.keys() == list(KEYS)
        assert await mappings.fetchone() == {"id": 1, "name": "ann", "score": 10}
        assert await mappings.columns("name").all() == [{"name": "bob"}, {"name": "cy"}]
        assert await mappings.fetchone() is None
        res, _ = stream()
        assert [m["id"] async for m in res.mappings()] == [1, 2, 3]
        res, _ = stream(ROWS[:1])
        assert (await res.mappings().one())["name"] == "ann"

    async def test_columns_unique_keys_tuples(self) -> None:
        res, _ = stream()
        assert res.keys() == list(KEYS)
        assert res.tuples() is res
        assert res.t is res
        sub = res.columns("score", "id")
        assert sub.keys() == ["score", "id"]
        assert await sub.fetchone() == (10, 1)
        assert await res.fetchone() == ROWS[1]
        res, _ = stream(TestUnique.DUPES)
        assert res.unique() is res
        assert await res.all() == [(1, "a", 1), (2, "a", 2), (2, "b", 2)]
        res, _ = stream(TestUnique.DUPES)
        assert await res.scalars("name").unique().all() == ["a", "b"]
        res, _ = stream(TestUnique.DUPES)
        assert await res.unique().fetchmany(2) == [(1, "a", 1), (2, "a", 2)]
        res, _ = stream([(1, "a", 1)] * 3)
        assert await res.unique().one() == (1, "a", 1)
        res, _ = stream(TestUnique.DUPES)
        assert await res.mappings().unique(lambda m: m["name"]).fetchall() == [
            {"id": 1, "name": "a", "score": 1},
            {"id": 2, "name": "b", "score": 2},
        ]

    async def test_partitions(self) -> None:
        res, source = stream(MANY)
        parts = [p async for p in res.partitions(4)]
        assert [len(p) for p in parts] == [4, 4, 2]
        assert [r for p in parts for r in p] == MANY
        assert source.close_calls == 1
        res, _ = stream(MANY)
        res.yield_per(3)
        assert [len(p) async for p in res.scalars().partitions()] == [3, 3, 3, 1]
        res, _ = stream(MANY)
        assert [len(p) async for p in res.partitions()] == [10]
        with pytest.raises(ArgumentError):
            res.partitions(0)

    async def test_freeze(self) -> None:
        res, source = stream()
        await res.fetchone()
        frozen = await res.freeze()
        assert frozen.data == ROWS[1:]
        assert frozen().all() == ROWS[1:]
        assert source.close_calls == 1

    async def test_async_with_closes_once(self) -> None:
        res, source = stream(MANY)
        async with res as entered:
            assert entered is res
            assert await res.fetchone() == MANY[0]
        assert res.closed
        assert source.close_calls == 1
        await res.close()
        assert source.close_calls == 1

    async def test_early_break_then_close(self) -> None:
        res, source = stream(MANY)
        res.yield_per(2)
        async for row in res:
            if row[0] == 3:
                break
        assert source.close_calls == 0
        assert not res.closed
        assert await res.fetchone() == MANY[4]
        await res.close()
        await res.close()
        assert source.close_calls == 1
        with pytest.raises(ResourceClosedError, match=CLOSED):
            await res.fetchone()
        with pytest.raises(ResourceClosedError, match=CLOSED):
            await anext(aiter(res))

    async def test_exhaustion_then_close(self) -> None:
        res, source = stream()
        assert await res.all() == ROWS
        assert source.close_calls == 1
        await res.close()
        assert source.close_calls == 1
        assert res.closed

    async def test_cancellation_during_fetch_chunk(self) -> None:
        res, source = stream(MANY, block=anyio.Event())
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as group:
                group.start_soon(cancel_when_fetching, source, scope)
                await res.fetchone()
        assert scope.cancelled_caught
        assert res.closed
        assert source.close_calls == source.closes_completed == 1
        await res.close()
        assert source.close_calls == 1
        with pytest.raises(ResourceClosedError, match=CLOSED):
            await res.fetchone()

    async def test_cancellation_during_async_for(self) -> None:
        res, source = stream(MANY, block=anyio.Event())
        seen = []
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as group:
                group.start_soon(cancel_when_fetching, source, scope)
                async for row in res:
                    seen.append(row)
        assert scope.cancelled_caught
        assert seen == []
        assert res.closed
        assert source.close_calls == 1

    async def test_close_is_shielded(self) -> None:
        res, source = stream()
        with anyio.CancelScope() as scope:
            scope.cancel()
            await res.close()
        assert source.closes_completed == 1

    async def test_fetch_error_closes_and_propagates(self) -> None:
        res, source = stream(fail=ValueError("server went away"))
        with pytest.raises(ValueError, match="server went away"):
            await res.all()
        assert res.closed
        assert source.close_calls == 1

    async def test_failed_close_after_failed_fetch_is_noted(self) -> None:
        res, source = stream(fail=ValueError("fetch"), close_error=OSError("close"))
        with pytest.raises(ValueError, match="fetch") as info:
            await res.fetchone()
        assert any("OSError('close')" in note for note in info.value.__notes__)
        assert source.close_calls == 1

    async def test_close_error_on_exhaustion_propagates_once(self) -> None:
        res, source = stream(close_error=OSError("close"))
        with pytest.raises(OSError, match="close"):
            await res.all()
        await res.close()
        assert source.close_calls == 1

    async def test_close_while_another_task_fetches(self) -> None:
        block = anyio.Event()
        res, source = stream(MANY, block=block)
        errors: list[BaseException] = []

        async def fetch() -> None:
            try:
                await res.fetchone()
            except ResourceClosedError as error:
                errors.append(error)

        async with anyio.create_task_group() as group:
            group.start_soon(fetch)
            await source.fetching.wait()
            await res.close()
            block.set()
        assert len(errors) == 1
        assert source.close_calls == 1

    async def test_bad_arguments(self) -> None:
        res, _ = stream()
        with pytest.raises(ArgumentError):
            res.yield_per(0)
        with pytest.raises(ArgumentError):
            await res.fetchmany(-1)
        with pytest.raises(InvalidRequestError, match="'nope'"):
            res.scalars("nope")
        with pytest.raises(ArgumentError):
            res.columns()


@given(
    st.lists(st.integers(0, 5), max_size=25),
    st.integers(1, 6),
    st.lists(st.one_of(st.none(), st.integers(0, 7)), max_size=12),
    st.booleans(),
)
def test_stream_reconstructs_the_rows(
    values: list[int], chunk: int, sizes: list[int | None], unique: bool
) -> None:
    rows = [(v,) for v in values]
    expected = dedupe(rows) if unique else rows

    async def run() -> tuple[list[Any], int]:
        source = FakeSource(rows)
        res: AsyncResult[Any] = AsyncResult(ResultMetaData(("v",), (None,)), source)
        res.yield_per(chunk)
        if unique:
            res.unique()
        collected: list[Any] = []
        for size in sizes:
            if size is None:
                row = await res.fetchone()
                if row is not None:
                    collected.append(row)
            else:
                collected.extend(await res.fetchmany(size))
        collected.extend([row async for row in res])
        return collected, source.close_calls

    collected, closes = anyio.run(run)
    assert collected == expected
    assert closes == 1


def test_docs_examples_run(capsys: pytest.CaptureFixture[str]) -> None:
    """Every Python block of docs/results.md runs, in order, in one namespace."""
    page = Path(__file__).parents[2] / "docs" / "results.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), re.DOTALL)
    assert len(blocks) >= 5
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, str(page), "exec"), namespace)
    assert capsys.readouterr().out.splitlines() == ["[1, 2]", "[3, 4]", "cursor closed"]


def test_raw_values_skip_rows_but_apply_processors() -> None:
    plain = result()
    assert plain.raw_values() == ROWS  # the driver's rows as they are
    assert plain.all() == []  # consumed, as a fetch would
    processed = Result(meta(score=lambda v: v * 2), list(ROWS))
    processed.fetchone()
    values = processed.raw_values()
    assert values == [(2, "bob", 40), (3, "cy", 60)]  # from the read position on
    assert all(type(v) is tuple for v in values)
    with pytest.raises(ResourceClosedError, match=NO_ROWS):
        Result(None, []).raw_values()


# -- results that must be unique()d (the ORM's joined eager collections) ------------------


def _needs_unique(rows: list[tuple[Any, ...]]) -> Result[Any]:
    result: Result[Any] = Result(ResultMetaData(("A", "n"), (None, None)), rows)
    result._require_unique()
    return result


def test_a_result_needing_unique_refuses_every_read_without_it() -> None:
    rows = [("a", 1), ("a", 1), ("b", 2)]
    reads: list[Callable[[Result[Any]], Any]] = [
        lambda r: r.all(),
        lambda r: r.first(),
        lambda r: r.scalars().all(),
        lambda r: r.scalar_one(),
        lambda r: list(r),
        lambda r: r.mappings().all(),
        lambda r: r.columns("n").all(),
    ]
    for read in reads:
        with pytest.raises(InvalidRequestError, match=r"unique\(\) method must be invoked"):
            read(_needs_unique(rows))
    assert _needs_unique(rows).unique().all() == [("a", 1), ("b", 2)]
    assert _needs_unique(rows).scalars().unique().all() == ["a", "b"]
    assert _needs_unique(rows).unique().scalars().all() == ["a", "b"]
    assert _needs_unique([]).all() == []
