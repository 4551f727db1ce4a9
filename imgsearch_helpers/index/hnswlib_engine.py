"""hnswlib in process: one HNSW graph, with the same interface as the Milvus engine.

Saved files (`save`) are what Feder draws for HNSW; Feder computes L2 distances, so draw an
index built with metric L2 (on unit vectors, for cosine ranking).
"""
from __future__ import annotations

from pathlib import Path

import hnswlib
import numpy as np

from .base import IndexError_, as_matrix, check_metric, padded
from .params import BUILD_PARAMS, SEARCH_PARAMS, checked_params, with_defaults
from .store import VectorStore

SPACES = {"L2": "l2", "IP": "ip", "COSINE": "cosine"}
SEED = 100  # hnswlib's level draws: with one build thread, the same rows give the same graph


class HnswlibEngine:
    """Vectors in memory; the graph is rebuilt from them on `commit`.

    Distances follow Milvus: L2 is squared, IP and COSINE are similarities (hnswlib reports
    1 - similarity for those, turned back here).
    """

    name = "hnswlib"
    index_type = "HNSW"

    def __init__(self, metric: str = "L2", build_params: dict | None = None, search_params: dict | None = None,
                 threads: int = 1):
        """`threads=1` (with the fixed seed) builds the same graph every run; -1 uses every core."""
        self.metric = check_metric(metric)
        build = checked_params(build_params, BUILD_PARAMS, "HNSW", "build", ("HNSW",))
        search = checked_params(search_params, SEARCH_PARAMS, "HNSW", "search", ("HNSW",))
        self.build_params = with_defaults(build, BUILD_PARAMS["HNSW"])
        self.search_params = with_defaults(search, SEARCH_PARAMS["HNSW"])
        self.threads = threads
        self.store = VectorStore()
        self.index = None

    def add(self, ids, vectors) -> None:
        self.store.add(ids, vectors)

    def commit(self) -> None:
        self.store.consolidate()
        if not len(self.store.ids):
            self.index = None
            return
        matrix = self.store.matrix
        index = hnswlib.Index(space=SPACES[self.metric], dim=matrix.shape[1])
        index.init_index(max_elements=len(matrix), M=self.build_params["M"],
                         ef_construction=self.build_params["efConstruction"], random_seed=SEED)
        index.add_items(matrix, self.store.ids, num_threads=self.threads)
        self.index = index

    def search(self, vectors, k: int):
        if self.store.dirty or self.index is None:
            self.commit()
        if self.index is None:
            raise IndexError_("the index is empty: add vectors before searching")
        queries = as_matrix(vectors, self.index.dim)
        k_eff = min(k, self.index.get_current_count())
        self.index.set_ef(max(self.search_params["ef"], k_eff))  # hnswlib needs ef >= k
        labels, dists = self.index.knn_query(queries, k=k_eff, num_threads=self.threads)
        if self.metric != "L2":
            dists = 1.0 - dists
        return padded(labels.astype(np.int64), dists, k)

    def fetch(self, ids) -> np.ndarray:
        return self.store.rows(ids)

    def describe_index(self) -> dict:
        return {"index_type": "HNSW", "metric_type": self.metric, "params": dict(self.build_params)}

    def save(self, path) -> Path:
        if self.store.dirty or self.index is None:
            self.commit()
        if self.index is None:
            raise IndexError_("the index is empty: nothing to save")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.index.save_index(str(path))
        return path

    def count(self) -> int:
        return self.store.count()

    def drop(self) -> None:
        self.store.clear()
        self.index = None

    def close(self) -> None:
        pass
