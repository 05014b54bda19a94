"""Time each contender on each workload and print the ratios that DESIGN.md targets.

How it works:

- A benchmark module is ``benchmarks/bench_<topic>.py`` with a module-level
  ``WORKLOADS``: a sequence of :class:`Workload`. A workload has one
  :class:`Implementation` per contender it covers (``CONTENDERS``).
- Per implementation: ``setup()`` once, returning a state object (or None);
  then ``WARMUP_RUNS`` untimed runs and ``repeat`` timed runs of
  ``run(state)``, each preceded by an untimed ``before_each(state)`` (reset
  tables, reseed rows); ``teardown(state)`` once at the end, also after a
  failure. Only ``run`` is inside the timer.
- Each callable may be sync or ``async``. An implementation with any coroutine
  function lives in one asyncio event loop (``anyio.run``) from setup to
  teardown, so connections opened in setup serve every run. A fully sync one
  runs without any event loop, as a blocking library expects.
- Each run starts from a collected heap (``gc.collect()``, untimed, as for every
  contender): otherwise a full collection of garbage left by the untimed reset
  or an earlier run lands at random inside some timed runs.
- The reported time is the best of the timed runs: noise only adds time.
- The contenders take turns: ``make bench`` runs each one's lifecycle in
  ``$BENCH_ROUNDS`` rounds (default 3), A B C A B C ..., with the timed runs
  split between the rounds. A slow phase of a shared machine then falls on
  every contender instead of on the one that happened to run in it, which
  moved single ratios by a quarter between identical runs.
- ``Unavailable`` raised by any step (typically setup, "PostgreSQL is not
  reachable") reports the contender as skipped; any other exception reports it
  as failed, the other contenders still run, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import inspect
import os
import pkgutil
import sys
import time
import traceback
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import anyio
import attrs

CONTENDERS = ("asyncsession", "sqlalchemy", "raw")
# (numerator, denominator): "sqlalchemy/asyncsession" above 1 means asyncsession
# is faster; "asyncsession/raw" is asyncsession's cost over the bare driver.
RATIOS = (("sqlalchemy", "asyncsession"), ("asyncsession", "raw"))
WARMUP_RUNS = 1
DEFAULT_REPEAT = 5
REPEAT_ENV = "BENCH_REPEAT"
DEFAULT_ROUNDS = 3
ROUNDS_ENV = "BENCH_ROUNDS"
MODULE_PREFIX = "bench_"

Step = Callable[[Any], Any]


class Unavailable(Exception):
    """Raised by a benchmark step when its contender cannot run here."""


@attrs.frozen
class Implementation:
    """One contender's version of a workload; every callable may be sync or async."""

    run: Step
    setup: Callable[[], Any] | None = None
    before_each: Step | None = None
    teardown: Step | None = None

    @property
    def is_async(self) -> bool:
        steps = (self.setup, self.before_each, self.run, self.teardown)
        return any(inspect.iscoroutinefunction(step) for step in steps if step is not None)


@attrs.frozen
class Workload:
    name: str
    description: str
    implementations: Mapping[str, Implementation]

    def __attrs_post_init__(self) -> None:
        unknown = sorted(set(self.implementations) - set(CONTENDERS))
        if unknown:
            raise ValueError(
                f"workload {self.name!r}: unknown contenders {unknown}; "
                f"use {list(CONTENDERS)} or add to CONTENDERS in {__name__}"
            )


@attrs.frozen
class Outcome:
    """How one contender did on one workload: timings, or why there are none."""

    samples: tuple[float, ...] = ()
    skipped: str | None = None
    error: str | None = None

    @property
    def best(self) -> float | None:
        return min(self.samples) if self.samples else None


@attrs.frozen
class WorkloadResult:
    workload: Workload
    outcomes: Mapping[str, Outcome]

    def best(self, contender: str) -> float | None:
        outcome = self.outcomes.get(contender)
        return outcome.best if outcome else None

    def ratio(self, numerator: str, denominator: str) -> float | None:
        top, bottom = self.best(numerator), self.best(denominator)
        if top is None or not bottom:
            return None
        return top / bottom


async def _call(step: Callable[..., Any], *args: Any) -> Any:
    result = step(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


async def _lifecycle(implementation: Implementation, repeat: int) -> tuple[float, ...]:
    state = await _call(implementation.setup) if implementation.setup else None
    try:
        samples = []
        for index in range(WARMUP_RUNS + repeat):
            if implementation.before_each:
                await _call(implementation.before_each, state)
            gc.collect()
            start = time.perf_counter()
            await _call(implementation.run, state)
            elapsed = time.perf_counter() - start
            if index >= WARMUP_RUNS:
                samples.append(elapsed)
        return tuple(samples)
    finally:
        if implementation.teardown:
            await _call(implementation.teardown, state)


def _run_without_loop(coroutine: Coroutine[Any, Any, tuple[float, ...]]) -> tuple[float, ...]:
    # A lifecycle whose steps are all sync never suspends, so one send() runs it
    # to the end, with no event loop in the thread.
    try:
        coroutine.send(None)
    except StopIteration as finished:
        samples: tuple[float, ...] = finished.value
        return samples
    coroutine.close()
    raise TypeError("a step that is not `async def` returned an awaitable; declare it async")


def measure(implementation: Implementation, repeat: int) -> Outcome:
    """Run one implementation through its lifecycle; never raises for its failures."""
    try:
        if implementation.is_async:
            samples = anyio.run(_lifecycle, implementation, repeat, backend="asyncio")
        else:
            samples = _run_without_loop(_lifecycle(implementation, repeat))
    except Unavailable as reason:
        return Outcome(skipped=str(reason) or "unavailable")
    except Exception:
        return Outcome(error=traceback.format_exc())
    return Outcome(samples=samples)


def run_workload(
    workload: Workload,
    repeat: int,
    progress: Callable[[str], None] | None = None,
    rounds: int = 1,
) -> WorkloadResult:
    """Measure every contender: ``rounds`` turns each, in contender order, each turn a
    whole lifecycle with ``repeat`` timed runs. A contender skipped or failed in one
    turn is reported so and not run again."""
    samples: dict[str, list[float]] = {}
    ended: dict[str, Outcome] = {}
    for turn in range(rounds):
        for contender in CONTENDERS:
            implementation = workload.implementations.get(contender)
            if implementation is None or contender in ended:
                continue
            if progress:
                where = f" (round {turn + 1} of {rounds})" if rounds > 1 else ""
                progress(f"{workload.name}: {contender}{where}")
            outcome = measure(implementation, repeat)
            if outcome.samples:
                samples.setdefault(contender, []).extend(outcome.samples)
            else:
                ended[contender] = outcome
    outcomes = {
        contender: ended.get(contender) or Outcome(samples=tuple(samples[contender]))
        for contender in CONTENDERS
        if contender in ended or contender in samples
    }
    return WorkloadResult(workload, outcomes)


def discover() -> list[Workload]:
    """Import every ``bench_*`` module of this package and collect its ``WORKLOADS``."""
    workloads: list[Workload] = []
    for module_info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)])):
        if module_info.name.startswith(MODULE_PREFIX):
            module = importlib.import_module(f"{__package__}.{module_info.name}")
            workloads.extend(module.WORKLOADS)
    names = [workload.name for workload in workloads]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"workload names used more than once: {duplicates}")
    return workloads


def select(workloads: Iterable[Workload], filters: Sequence[str]) -> list[Workload]:
    """The workloads whose name contains any of ``filters`` (all when none given)."""
    return [w for w in workloads if not filters or any(f in w.name for f in filters)]


def repeat_from_env(environ: Mapping[str, str] = os.environ) -> int:
    return _positive(environ, REPEAT_ENV, DEFAULT_REPEAT)


def rounds_from_env(environ: Mapping[str, str] = os.environ) -> int:
    return _positive(environ, ROUNDS_ENV, DEFAULT_ROUNDS)


def _positive(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name, str(default))
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{name} must be a positive integer, not {text!r}")
    return int(text)


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.3f} s"


def format_ratio(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}"


def _cell(outcome: Outcome | None) -> str:
    if outcome is None:
        return "-"
    if outcome.skipped is not None:
        return "skipped"
    if outcome.error is not None:
        return "failed"
    return format_seconds(outcome.best)


def format_table(results: Sequence[WorkloadResult]) -> str:
    """The report: one row per workload, then the reasons for skips and failures."""
    header = ["workload", *CONTENDERS, *(f"{top}/{bottom}" for top, bottom in RATIOS)]
    rows = [
        [
            result.workload.name,
            *(_cell(result.outcomes.get(contender)) for contender in CONTENDERS),
            *(format_ratio(result.ratio(top, bottom)) for top, bottom in RATIOS),
        ]
        for result in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    notes = []
    for result in results:
        for contender, outcome in result.outcomes.items():
            if outcome.skipped is not None:
                notes.append(f"skipped {contender} on {result.workload.name}: {outcome.skipped}")
            elif outcome.error is not None:
                last_line = outcome.error.strip().splitlines()[-1]
                notes.append(f"failed {contender} on {result.workload.name}: {last_line}")
    if notes:
        lines += ["", *notes]
    lines += ["", *(f"{r.workload.name}: {r.workload.description}" for r in results)]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=f"Run the benchmarks; best of ${REPEAT_ENV} runs (default "
        f"{DEFAULT_REPEAT}), split between ${ROUNDS_ENV} turns per contender (default "
        f"{DEFAULT_ROUNDS}), each turn after {WARMUP_RUNS} warm-up.",
    )
    parser.add_argument("filters", nargs="*", help="run only workloads whose name contains one")
    args = parser.parse_args(argv)
    try:
        repeat = repeat_from_env()
        rounds = min(rounds_from_env(), repeat)
    except ValueError as error:
        parser.error(str(error))
    per_round = -(-repeat // rounds)  # ceiling: at least ``repeat`` runs in all
    workloads = select(discover(), args.filters)
    if not workloads:
        wanted = f" matching {args.filters}" if args.filters else ""
        print(f"no workloads{wanted} (benchmarks/{MODULE_PREFIX}*.py define WORKLOADS)", file=out)
        return 1 if args.filters else 0

    def progress(message: str) -> None:
        print(f"running {message}", file=sys.stderr, flush=True)

    results = [run_workload(workload, per_round, progress, rounds) for workload in workloads]
    for result in results:
        for contender, outcome in result.outcomes.items():
            if outcome.error is not None:
                print(
                    f"\n{contender} on {result.workload.name} failed:\n{outcome.error}",
                    file=sys.stderr,
                )
    runs = per_round * rounds
    turns = f" in {rounds} turns per contender, each" if rounds > 1 else ""
    print(f"best of {runs} runs{turns} after {WARMUP_RUNS} warm-up\n", file=out)
    print(format_table(results), file=out)
    failed = any(o.error is not None for r in results for o in r.outcomes.values())
    return 1 if failed else 0
