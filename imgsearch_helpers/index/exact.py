"""Exact (brute-force) search in numpy: the reference the approximate engines are checked against."""
from __future__ import annotations

import numpy as np

from .base import IndexError_, as_matrix, check_metric, l2_normalize


class ExactEngine:
    """Keeps vectors in memory. Distances follow Milvus: L2 is squared, IP and COSINE are similarities."""

    name = "exact"

    def __init__(self, metric: str = "L2"):
        self.metric = check_metric(metric)
        self._rows: dict[int, np.ndarray] = {}
        self._ids = np.empty(0, np.int64)
        self._matrix = np.empty((0, 0), np.float32)
        self._dirty = False

    def __deepcopy__(self, memo):
        return self  # a handle on shared state (a model, a connection): Towhee copies operator args

    def add(self, ids, vectors) -> None:
        dim = len(next(iter(self._rows.values()))) if self._rows else None
        vectors = as_matrix(vectors, dim)
        for i, v in zip(np.asarray(ids, dtype=np.int64).tolist(), vectors):
            self._rows[i] = v
        self._dirty = True

    def commit(self) -> None:
        self._ids = np.fromiter(self._rows, dtype=np.int64, count=len(self._rows))
        matrix = np.stack(list(self._rows.values())) if self._rows else np.empty((0, 0), np.float32)
        self._matrix = l2_normalize(matrix) if self.metric == "COSINE" and len(matrix) else matrix
        self._dirty = False

    def search(self, vectors, k: int):
        if self._dirty:
            self.commit()
        queries = as_matrix(vectors, self._matrix.shape[1] if len(self._matrix) else None)
        if self.metric == "COSINE":
            queries = l2_normalize(queries)
        if self.metric == "L2":
            scores = -squared_l2(queries, self._matrix)
        else:
            scores = queries @ self._matrix.T
        k_eff = min(k, scores.shape[1])
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k_eff]
        ids = np.full((len(queries), k), -1, np.int64)
        dists = np.full((len(queries), k), np.nan, np.float32)
        ids[:, :k_eff] = self._ids[top]
        picked = np.take_along_axis(scores, top, axis=1)
        dists[:, :k_eff] = -picked if self.metric == "L2" else picked
        return ids, dists

    def fetch(self, ids) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        if not self._rows:
            raise IndexError_("the index is empty: add vectors before fetching them")
        zero = np.zeros_like(next(iter(self._rows.values())))
        rows = [self._rows.get(i, zero) for i in ids.ravel().tolist()]
        return np.asarray(rows, np.float32).reshape(*ids.shape, len(zero))

    def describe_index(self) -> dict:
        return {"index_type": "FLAT (numpy, exact)", "metric_type": self.metric, "params": {}}

    def count(self) -> int:
        return len(self._rows)

    def drop(self) -> None:
        self._rows.clear()
        self.commit()

    def close(self) -> None:
        pass


def squared_l2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] - 2.0 * a @ b.T + (b * b).sum(1)[None, :], 0.0)
