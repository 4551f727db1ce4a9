"""Exact (brute-force) search in numpy: the reference the approximate engines are checked against."""
from __future__ import annotations

import numpy as np

from ..errors import EngineError
from ..vectors import l2_normalize
from .base import as_matrix, check_metric, top_k
from .store import VectorStore


class ExactEngine:
    """Keeps vectors in memory. Distances follow Milvus: L2 is squared, IP and COSINE are similarities."""

    name = "exact"

    def __init__(self, metric: str = "L2"):
        self.metric = check_metric(metric)
        self.store = VectorStore()
        self._matrix = np.empty((0, 0), np.float32)

    def __deepcopy__(self, memo):
        return self  # a handle on shared state (a model, a connection): Towhee copies operator args

    def add(self, ids, vectors) -> None:
        self.store.add(ids, vectors)

    def commit(self) -> None:
        self.store.consolidate()
        matrix = self.store.matrix
        self._matrix = l2_normalize(matrix) if self.metric == "COSINE" and len(matrix) else matrix

    def search(self, vectors, k: int):
        if self.store.dirty:
            self.commit()
        if not len(self.store.ids):
            raise EngineError("the index is empty: add vectors before searching")
        queries = as_matrix(vectors, self._matrix.shape[1])
        if self.metric == "COSINE":
            queries = l2_normalize(queries)
        scores = -squared_l2(queries, self._matrix) if self.metric == "L2" else queries @ self._matrix.T
        return top_k(scores, self.store.ids, k, larger_is_closer=self.metric != "L2")

    def fetch(self, ids) -> np.ndarray:
        return self.store.rows(ids)

    def describe_index(self) -> dict:
        return {"index_type": "FLAT (numpy, exact)", "metric_type": self.metric, "params": {}}

    def count(self) -> int:
        return self.store.count()

    def drop(self) -> None:
        self.store.clear()
        self.commit()

    def close(self) -> None:
        pass


def squared_l2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] - 2.0 * a @ b.T + (b * b).sum(1)[None, :], 0.0)
