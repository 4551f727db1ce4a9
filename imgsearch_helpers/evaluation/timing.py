"""The one timer behind every figure that is a duration (as faiss contrib's `RepeatTimer`): untimed
warm-up calls, then timed runs, summed up as the figure asks (best, median, mean, a percentile).

- `time_runs(work, runs, warmup)`: the same work repeated (one run, best of 3, a median of 7);
- `time_each(work, items)`: one timed call per item (a query's latency: p50, p99);
- `time_interleaved(works, runs)`: several works taking turns, so that each meets the machine in
  the same state (a slow spell falls on all of them alike).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Timing:
    """Seconds of each timed call, and what the last one returned (`time_each`: every call's)."""

    seconds: tuple[float, ...]
    result: Any = None

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return float(np.median(self.seconds))

    @property
    def mean(self) -> float:
        return float(np.mean(self.seconds))

    @property
    def total(self) -> float:
        return float(sum(self.seconds))

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.seconds, q))

    def percentile_ms(self, q: float) -> float:
        """The `q`-th percentile in milliseconds (50: the median call, 99: all but the slowest 1%)."""
        return 1000 * self.percentile(q)


def time_runs(work: Callable[[], Any], runs: int = 1, warmup: int = 0) -> Timing:
    """`work()` called `warmup` times untimed (a first trace, compile or allocation is not the
    steady cost), then `runs` times timed."""
    for _ in range(warmup):
        work()
    seconds, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = work()
        seconds.append(time.perf_counter() - start)
    return Timing(tuple(seconds), result)


def _joined(timings: list[Timing], results=None) -> Timing:
    return Timing(tuple(s for timing in timings for s in timing.seconds),
                  timings[-1].result if results is None else results)


def time_each(work: Callable[[Any], Any], items: Iterable, setup: Callable[[Any], Any] | None = None) -> Timing:
    """`work(item)` timed once per item, in order, after `setup(item)` untimed (such as clearing a
    form); the result is every call's."""
    timings = []
    for item in items:
        if setup is not None:
            setup(item)
        timings.append(time_runs(lambda item=item: work(item)))
    return _joined(timings, [timing.result for timing in timings])


def time_interleaved(works: dict[str, Callable[[], Any]], runs: int, warmup: int = 0) -> dict[str, Timing]:
    """Each work warmed up, then timed `runs` times in turns (a, b, a, b): one `Timing` per name."""
    for work in works.values():
        time_runs(work, runs=0, warmup=warmup)
    rounds = [{name: time_runs(work) for name, work in works.items()} for _ in range(runs)]
    return {name: _joined([turn[name] for turn in rounds]) for name in works}
