"""What the in-process engines (FAISS, hnswlib) share: rows in a VectorStore, an index built from
them on `commit`, and the engine interface around it."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import EngineError
from .base import check_metric
from .params import BUILD_PARAMS, SEARCH_PARAMS, checked_params, with_defaults
from .store import VectorStore


class InProcessEngine:
    """Subclasses build `self.index` from the store in `build` and write it in `write`."""

    index_types: tuple[str, ...] = ()

    def __init__(self, metric: str, index_type: str, build_params: dict | None, search_params: dict | None):
        self.metric = check_metric(metric)
        self.index_type = index_type.upper()
        build = checked_params(build_params, BUILD_PARAMS, self.index_type, "build", self.index_types)
        search = checked_params(search_params, SEARCH_PARAMS, self.index_type, "search", self.index_types)
        self.build_params = with_defaults(build, BUILD_PARAMS[self.index_type])
        self.search_params = with_defaults(search, SEARCH_PARAMS.get(self.index_type, ()))
        self.store = VectorStore()
        self.index = None

    def build(self, matrix: np.ndarray, ids: np.ndarray):
        raise NotImplementedError

    def write(self, path: Path) -> None:
        raise NotImplementedError

    def add(self, ids, vectors) -> None:
        self.store.add(ids, vectors)

    def commit(self) -> None:
        self.store.consolidate()
        self.index = self.build(self.store.matrix, self.store.ids) if len(self.store.ids) else None

    def built_index(self):
        """The index over every row added so far (built now if rows came in since)."""
        if self.store.dirty or self.index is None:
            self.commit()
        if self.index is None:
            raise EngineError("the index is empty: add vectors first")
        return self.index

    def fetch(self, ids) -> np.ndarray:
        return self.store.rows(ids)

    def describe_index(self) -> dict:
        return {"index_type": self.index_type, "metric_type": self.metric, "params": dict(self.build_params)}

    def save(self, path) -> Path:
        """Write the index file (what Feder reads for FAISS IVF_FLAT and hnswlib)."""
        self.built_index()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.write(path)
        return path

    def count(self) -> int:
        return self.store.count()

    def drop(self) -> None:
        self.store.clear()
        self.index = None

    def close(self) -> None:
        pass
