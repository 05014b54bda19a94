"""The benchmark runner on toy workloads: lifecycle, ratios, skips, failures.

Nothing here asserts how long anything took; the ratios are checked against the
timings the runner itself recorded.
"""

from __future__ import annotations

import asyncio
import io
import re

import pytest

from benchmarks import _runner
from benchmarks._runner import Implementation, Unavailable, Workload

REPEAT = 3


def table_row(table: str, workload: str) -> dict[str, str]:
    lines = table.splitlines()
    header = re.split(r"\s{2,}", lines[0].strip())
    row = next(line for line in lines[2:] if line.startswith(workload + " "))
    return dict(zip(header, re.split(r"\s{2,}", row.strip()), strict=True))


def busy(n: int) -> None:
    sum(range(n))


async def async_busy(state: None) -> None:
    await asyncio.sleep(0)
    busy(2_000)


def toy_workload() -> Workload:
    return Workload(
        name="toy",
        description="sums numbers",
        implementations={
            "asyncsession": Implementation(run=async_busy),
            "sqlalchemy": Implementation(run=lambda _: busy(20_000)),
            "raw": Implementation(run=lambda _: busy(1_000)),
        },
    )


def test_ratios_come_from_the_recorded_timings() -> None:
    result = _runner.run_workload(toy_workload(), REPEAT)
    best = {}
    for contender, outcome in result.outcomes.items():
        assert len(outcome.samples) == REPEAT
        assert outcome.best == min(outcome.samples)
        best[contender] = outcome.best

    row = table_row(_runner.format_table([result]), "toy")

    assert row["sqlalchemy/asyncsession"] == f"{best['sqlalchemy'] / best['asyncsession']:.2f}"
    assert row["asyncsession/raw"] == f"{best['asyncsession'] / best['raw']:.2f}"
    for contender in _runner.CONTENDERS:
        assert row[contender] == _runner.format_seconds(best[contender])


def test_rounds_take_turns_and_pool_their_samples() -> None:
    turns: list[str] = []

    def contender(name: str) -> Implementation:
        def setup() -> None:
            turns.append(name)

        return Implementation(run=lambda _: busy(100), setup=setup)

    def unreachable() -> None:
        turns.append("sqlalchemy")
        raise Unavailable("not here")

    workload = Workload(
        name="turns",
        description="three rounds",
        implementations={
            "asyncsession": contender("asyncsession"),
            "sqlalchemy": Implementation(run=busy, setup=unreachable),
            "raw": contender("raw"),
        },
    )
    result = _runner.run_workload(workload, 2, rounds=3)

    # Turn by turn; a skipped contender is not tried again.
    assert turns == ["asyncsession", "sqlalchemy", "raw", *["asyncsession", "raw"] * 2]
    assert len(result.outcomes["asyncsession"].samples) == 6
    assert len(result.outcomes["raw"].samples) == 6
    assert result.outcomes["sqlalchemy"].skipped == "not here"
    assert list(result.outcomes) == ["asyncsession", "sqlalchemy", "raw"]


def test_main_splits_the_runs_between_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_runner, "discover", lambda: [toy_workload()])
    monkeypatch.setenv(_runner.REPEAT_ENV, "5")
    monkeypatch.setenv(_runner.ROUNDS_ENV, "3")
    out = io.StringIO()
    assert _runner.main([], out) == 0
    assert "best of 6 runs in 3 turns per contender" in out.getvalue()

    monkeypatch.setenv(_runner.ROUNDS_ENV, "0")
    with pytest.raises(SystemExit):
        _runner.main([], io.StringIO())


def test_lifecycle_of_sync_and_async_implementations() -> None:
    calls: list[str] = []
    loops: set[int] = set()

    async def setup() -> dict[str, int]:
        loops.add(id(asyncio.get_running_loop()))
        calls.append("setup")
        return {"runs": 0}

    def before_each(state: dict[str, int]) -> None:
        calls.append("before_each")

    async def run(state: dict[str, int]) -> None:
        loops.add(id(asyncio.get_running_loop()))
        state["runs"] += 1

    async def teardown(state: dict[str, int]) -> None:
        loops.add(id(asyncio.get_running_loop()))
        calls.append(f"teardown after {state['runs']} runs")

    outcome = _runner.measure(Implementation(run, setup, before_each, teardown), REPEAT)

    runs = _runner.WARMUP_RUNS + REPEAT
    assert calls == ["setup", *["before_each"] * runs, f"teardown after {runs} runs"]
    assert len(loops) == 1
    assert len(outcome.samples) == REPEAT

    def sync_run(state: None) -> None:
        with pytest.raises(RuntimeError):
            asyncio.get_running_loop()

    assert len(_runner.measure(Implementation(sync_run), REPEAT).samples) == REPEAT


def test_unavailable_and_failing_contenders_are_reported() -> None:
    torn_down: list[None] = []

    def unreachable() -> None:
        raise Unavailable("PostgreSQL is not reachable")

    def broken(state: None) -> None:
        raise ZeroDivisionError("bad benchmark")

    workload = Workload(
        name="partial",
        description="two of three contenders cannot run",
        implementations={
            "asyncsession": Implementation(run=busy, setup=lambda: 10),
            "sqlalchemy": Implementation(run=busy, setup=unreachable),
            "raw": Implementation(run=broken, teardown=torn_down.append),
        },
    )
    result = _runner.run_workload(workload, REPEAT)
    table = _runner.format_table([result])
    row = table_row(table, "partial")

    assert row["sqlalchemy"] == "skipped"
    assert row["raw"] == "failed"
    assert row["sqlalchemy/asyncsession"] == row["asyncsession/raw"] == "-"
    assert "skipped sqlalchemy on partial: PostgreSQL is not reachable" in table
    assert "failed raw on partial: ZeroDivisionError: bad benchmark" in table
    assert torn_down == [None]


def test_main_filters_by_name_and_fails_on_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(state: None) -> None:
        raise ZeroDivisionError

    workloads = [
        toy_workload(),
        Workload("broken", "always fails", {"raw": Implementation(run=broken)}),
    ]
    monkeypatch.setattr(_runner, "discover", lambda: workloads)
    monkeypatch.setenv(_runner.REPEAT_ENV, "2")

    out = io.StringIO()
    assert _runner.main(["toy"], out) == 0
    assert "best of 2 runs" in out.getvalue()
    assert "toy" in out.getvalue()
    assert "broken" not in out.getvalue()

    assert _runner.main(["broken"], io.StringIO()) == 1
    assert _runner.main(["nothing-matches"], io.StringIO()) == 1


def test_unknown_contender_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown contenders"):
        Workload("x", "y", {"asyncpg": Implementation(run=busy)})


def test_sync_step_returning_an_awaitable_is_an_error() -> None:
    outcome = _runner.measure(Implementation(run=lambda state: async_busy(state)), REPEAT)
    assert outcome.error is not None
    assert "declare it async" in outcome.error
