"""A bounded thread pool: decode or prepare the next items while the current ones are used."""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor


def bounded_map(fn: Callable, items: Iterable, workers: int, ahead: int) -> Iterator:
    """`map` on a thread pool that keeps at most `ahead` results in flight (bounded memory).

    Results come in input order; `workers < 1` runs `fn` on the calling thread.
    """
    if workers < 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
