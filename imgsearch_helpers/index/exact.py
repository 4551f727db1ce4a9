"""Exact (brute-force) search in numpy: the reference the approximate engines are checked against."""
from __future__ import annotations

import numpy as np

from .inprocess import InProcessEngine


class ExactEngine(InProcessEngine):
    """Keeps vectors in memory. Distances follow Milvus: L2 is squared, IP and COSINE are similarities."""

    name = "exact"
    index_types = ("FLAT",)

    def __init__(self, metric: str = "L2", fields: dict | None = None):
        super().__init__(metric, "FLAT", None, None, fields)

    def build(self, matrix: np.ndarray, ids: np.ndarray):
        return True  # nothing to build: every search scans the rows

    def search_index(self, queries: np.ndarray, k: int):
        return self.search_rows(queries, k, np.ones(len(self.store.ids), bool))

    def describe_index(self) -> dict:
        return {"index_type": "FLAT (numpy, exact)", "metric_type": self.metric, "params": {}}
