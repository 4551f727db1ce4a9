"""What the in-process engines (exact, FAISS, hnswlib) share: rows and metadata in a VectorStore,
an index built from them on `commit`, filtered search, and the engine interface around it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import EngineError
from ..vectors import l2_normalize
from .base import as_matrix, check_metric, top_k
from .params import BUILD_PARAMS, SEARCH_PARAMS, checked_params, with_defaults
from .store import VectorStore


class InProcessEngine:
    """Subclasses build `self.index` from the store in `build`, search it in `search_index` and
    write it in `write`. A filtered search (`where`) scans the rows the filter keeps exactly, so
    every engine returns min(k, matching rows) hits."""

    index_types: tuple[str, ...] = ()

    def __init__(self, metric: str, index_type: str, build_params: dict | None, search_params: dict | None,
                 fields: dict | None = None):
        self.metric = check_metric(metric)
        self.index_type = index_type.upper()
        build = checked_params(build_params, BUILD_PARAMS, self.index_type, "build", self.index_types)
        search = checked_params(search_params, SEARCH_PARAMS, self.index_type, "search", self.index_types)
        self.build_params = with_defaults(build, BUILD_PARAMS[self.index_type])
        self.search_params = with_defaults(search, SEARCH_PARAMS.get(self.index_type, ()))
        self.store = VectorStore(fields)
        self.fields = self.store.fields
        self.index = None

    def __deepcopy__(self, memo):
        return self  # a handle on shared state (a model, a connection): Towhee copies operator args

    def build(self, matrix: np.ndarray, ids: np.ndarray):
        raise NotImplementedError

    def search_index(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def write(self, path: Path) -> None:
        raise NotImplementedError

    def add(self, ids, vectors, metadata=None) -> None:
        self.store.add(ids, vectors, metadata)

    def commit(self) -> None:
        self.store.consolidate()
        self.index = self.build(self.store.matrix, self.store.ids) if len(self.store.ids) else None

    def built_index(self):
        """The index over every row added so far (built now if rows came in or left since)."""
        if self.store.dirty or self.index is None:
            self.commit()
        if self.index is None:
            raise EngineError("the index is empty: add vectors first")
        return self.index

    def search(self, vectors, k: int, where: str | None = None):
        self.built_index()  # over the rows as they are now
        queries = as_matrix(vectors, self.store.dim)
        return self.search_index(queries, k) if where is None else self.search_rows(queries, k, self.store.mask(where))

    def search_rows(self, queries: np.ndarray, k: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k among the stored rows selected by the boolean mask `rows`."""
        matrix, ids = self.store.matrix[rows], self.store.ids[rows]
        if self.metric == "COSINE":
            queries, matrix = l2_normalize(queries), l2_normalize(matrix) if len(matrix) else matrix
        scores = -squared_l2(queries, matrix) if self.metric == "L2" else queries @ matrix.T
        return top_k(scores, ids, k, larger_is_closer=self.metric != "L2")

    def fetch(self, ids) -> np.ndarray:
        return self.store.rows(ids)

    def metadata(self, ids=None) -> pd.DataFrame:
        return self.store.metadata(ids)

    def delete(self, ids) -> None:
        self.store.delete(ids)
        self.index = None  # rebuilt from the remaining rows on the next search

    def describe_index(self) -> dict:
        return {"index_type": self.index_type, "metric_type": self.metric, "params": dict(self.build_params)}

    def save(self, path) -> Path:
        """Write the index file (what Feder reads for FAISS IVF_FLAT and hnswlib)."""
        self.built_index()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.write(path)
        return path

    def count(self, where: str | None = None) -> int:
        return int(self.store.mask(where).sum()) if where else self.store.count()

    def drop(self) -> None:
        self.store.clear()
        self.index = None

    def close(self) -> None:
        pass


def squared_l2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] - 2.0 * a @ b.T + (b * b).sum(1)[None, :], 0.0)
