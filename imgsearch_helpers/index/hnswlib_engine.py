"""hnswlib in process: one HNSW graph, with the same interface as the Milvus engine.

Saved files (`save`) are what Feder draws for HNSW; Feder computes L2 distances, so draw an
index built with metric L2 (on unit vectors, for cosine ranking).
"""
from __future__ import annotations

from pathlib import Path

import hnswlib
import numpy as np

from .base import padded
from .inprocess import InProcessEngine

SPACES = {"L2": "l2", "IP": "ip", "COSINE": "cosine"}
SEED = 100  # hnswlib's level draws: with one build thread, the same rows give the same graph


class HnswlibEngine(InProcessEngine):
    """Vectors in memory; the graph is rebuilt from them on `commit`.

    Distances follow Milvus: L2 is squared, IP and COSINE are similarities (hnswlib reports
    1 - similarity for those, turned back here).
    """

    name = "hnswlib"
    index_types = ("HNSW",)

    def __init__(self, metric: str = "L2", build_params: dict | None = None, search_params: dict | None = None,
                 threads: int = 1, fields: dict | None = None):
        """`threads=1` (with the fixed seed) builds the same graph every run; -1 uses every core."""
        super().__init__(metric, "HNSW", build_params, search_params, fields)
        self.threads = threads

    def build(self, matrix: np.ndarray, ids: np.ndarray):
        index = hnswlib.Index(space=SPACES[self.metric], dim=matrix.shape[1])
        index.init_index(max_elements=len(matrix), M=self.build_params["M"],
                         ef_construction=self.build_params["efConstruction"], random_seed=SEED)
        index.add_items(matrix, ids, num_threads=self.threads)
        return index

    def search_index(self, queries: np.ndarray, k: int):
        index = self.index
        k_eff = min(k, index.get_current_count())
        index.set_ef(max(self.search_params["ef"], k_eff))  # hnswlib needs ef >= k
        labels, dists = index.knn_query(queries, k=k_eff, num_threads=self.threads)
        if self.metric != "L2":
            dists = 1.0 - dists
        return padded(labels.astype(np.int64), dists, k)

    def write(self, path: Path) -> None:
        self.index.save_index(str(path))
