"""Retrieval metrics over ranked result ids.

- hit ratio@k (Towhee's mHR): share of a query's relevant items found in its top k (recall@k).
- Towhee mAP@k: precision summed at each hit, divided by the number of hits; one hit at rank 1
  scores 1.0. Kept to compare with Towhee's published figures.
- AP@k (standard): the same sum divided by min(k, number of relevant items).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def _precision_sum(relevant: set, ranked: Sequence) -> tuple[float, int]:
    hits, total, seen = 0, 0.0, set()
    for rank, item in enumerate(ranked, start=1):
        if item in relevant and item not in seen:  # a repeated id counts once
            seen.add(item)
            hits += 1
            total += hits / rank
    return total, hits


def hit_ratio(relevant: Iterable, ranked: Sequence, k: int) -> float:
    relevant = set(relevant)
    if not relevant:
        raise ValueError("a query needs at least one relevant item")
    return len(relevant & set(ranked[:k])) / len(relevant)


def towhee_ap(relevant: Iterable, ranked: Sequence, k: int) -> float:
    relevant = set(relevant)
    if not relevant:
        raise ValueError("a query needs at least one relevant item")
    total, hits = _precision_sum(relevant, ranked[:k])
    return total / hits if hits else 0.0


def average_precision(relevant: Iterable, ranked: Sequence, k: int) -> float:
    relevant = set(relevant)
    if not relevant:
        raise ValueError("a query needs at least one relevant item")
    total, _ = _precision_sum(relevant, ranked[:k])
    return total / min(k, len(relevant))


def evaluate(ground_truth: Sequence[Iterable], results: Sequence[Sequence], k: int = 10, **columns) -> dict:
    """Score ranked `results` against `ground_truth` (one entry per query) into one table row.

    Extra keyword arguments (model, engine, timings...) are copied into the row first.
    """
    if len(ground_truth) != len(results):
        raise ValueError(f"{len(ground_truth)} ground-truth sets but {len(results)} result lists")
    if not results:
        raise ValueError("nothing to evaluate: no queries")
    pairs = list(zip(ground_truth, results))
    return {
        **columns,
        "queries": len(pairs),
        "k": k,
        f"mhr@{k}": float(np.mean([hit_ratio(g, r, k) for g, r in pairs])),
        f"towhee_map@{k}": float(np.mean([towhee_ap(g, r, k) for g, r in pairs])),
        f"ap@{k}": float(np.mean([average_precision(g, r, k) for g, r in pairs])),
    }


def relevant_found(ground_truth: Sequence[Iterable], results) -> np.ndarray:
    """How many relevant items each query's result row holds (to find who gains or loses)."""
    rows = results.tolist() if hasattr(results, "tolist") else results
    return np.array([len(set(relevant) & set(row)) for relevant, row in zip(ground_truth, rows)])
