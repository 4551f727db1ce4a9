"""The one scorer: retrieval metrics over ranked result ids, one key naming for every table.

A metric's key is `<name>@<depth>`: the metric over each query's top `depth` results, averaged over
the queries. The names:
- `mhr` (Towhee's mean hit ratio): share of a query's relevant items found (recall@k);
- `recall`: the same share where the relevant items are the exact search's top k (an index's recall);
- `towhee_map` (Towhee's mAP): precision summed at each hit, divided by the number of hits; one
  hit at rank 1 scores 1.0. Kept to compare with Towhee's published figures;
- `ap` (standard AP, its mean over queries mAP): the same sum divided by min(k, relevant items);
- `hit`: whether any relevant item is found; `top1` is `hit@1`, the top-1 accuracy;
- `ns`: how many relevant items are found (`ns@4`: UKBench's N-S score).
In a key pattern, `{k}` is the run's depth: `mhr@{k}` with k = 10 is `mhr@10`.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

RANKING = ("mhr@{k}", "towhee_map@{k}", "ap@{k}")  # the tutorial's figures
INSTANCE = ("top1", "hit@{k}", "ap@{k}", "mhr@{k}", "ns@4")  # finding one object's photos
RECALL = ("recall@{k}",)  # an approximate index against exact search
ALIASES = {"top1": "hit@1"}


def _relevant(items: Iterable) -> set:
    relevant = set(items)
    if not relevant:
        raise ValueError("a query needs at least one relevant item")
    return relevant


def _precision_sum(relevant: set, ranked: Sequence) -> tuple[float, int]:
    hits, total, seen = 0, 0.0, set()
    for rank, item in enumerate(ranked, start=1):
        if item in relevant and item not in seen:  # a repeated id counts once
            seen.add(item)
            hits += 1
            total += hits / rank
    return total, hits


def hit_ratio(relevant: Iterable, ranked: Sequence, k: int) -> float:
    relevant = _relevant(relevant)
    return len(relevant & set(ranked[:k])) / len(relevant)


def towhee_ap(relevant: Iterable, ranked: Sequence, k: int) -> float:
    total, hits = _precision_sum(_relevant(relevant), ranked[:k])
    return total / hits if hits else 0.0


def average_precision(relevant: Iterable, ranked: Sequence, k: int) -> float:
    relevant = _relevant(relevant)
    total, _ = _precision_sum(relevant, ranked[:k])
    return total / min(k, len(relevant))


def hit(relevant: Iterable, ranked: Sequence, k: int) -> float:
    return float(bool(_relevant(relevant) & set(ranked[:k])))


def found(relevant: Iterable, ranked: Sequence, k: int) -> float:
    return float(len(_relevant(relevant) & set(ranked[:k])))


BY_NAME = {"mhr": hit_ratio, "recall": hit_ratio, "towhee_map": towhee_ap, "ap": average_precision, "hit": hit,
           "ns": found}


def metric_keys(patterns: Sequence[str], k: int) -> list[str]:
    """The keys a row gets for `patterns` at depth `k` (`mhr@{k}` -> `mhr@10`)."""
    return [pattern.format(k=k) for pattern in patterns]


def _metric(key: str):
    name, _, depth = ALIASES.get(key, key).partition("@")
    if name not in BY_NAME or not depth.isdigit():
        raise ValueError(f"unknown metric {key!r}: a key is <name>@<depth> with a name of {', '.join(BY_NAME)}")
    return BY_NAME[name], int(depth)


def evaluate(ground_truth: Sequence[Iterable], results: Sequence[Sequence], k: int = 10,
             metrics: Sequence[str] = RANKING, **columns) -> dict:
    """Score ranked `results` against `ground_truth` (one entry per query) into one table row.

    `metrics` are key patterns (`RANKING`, `INSTANCE`, `RECALL` or your own); extra keyword
    arguments (model, engine, timings...) are copied into the row first.
    """
    if len(ground_truth) != len(results):
        raise ValueError(f"{len(ground_truth)} ground-truth sets but {len(results)} result lists")
    if not results:
        raise ValueError("nothing to evaluate: no queries")
    pairs = [(set(relevant), list(ranked)) for relevant, ranked in zip(ground_truth, results)]
    row = {**columns, "queries": len(pairs), "k": k}
    for key in metric_keys(metrics, k):
        metric, depth = _metric(key)
        row[key] = float(np.mean([metric(relevant, ranked, depth) for relevant, ranked in pairs]))
    return row


def relevant_by_group(gallery_groups: Sequence, query_groups: Sequence) -> list[set]:
    """For each query, the gallery positions of its group (results ranked as gallery positions)."""
    positions: dict = {}
    for position, group in enumerate(gallery_groups):
        positions.setdefault(group, set()).add(position)
    return [positions.get(group, set()) for group in query_groups]


def relevant_found(ground_truth: Sequence[Iterable], results) -> np.ndarray:
    """How many relevant items each query's result row holds (to find who gains or loses)."""
    rows = results.tolist() if hasattr(results, "tolist") else results
    return np.array([int(found(relevant, row, len(row))) for relevant, row in zip(ground_truth, rows)])
