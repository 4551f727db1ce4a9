"""FAISS in process: FLAT, IVF_FLAT and HNSW, with the same interface as the Milvus engine.

An IVF_FLAT index is saved in the form Feder draws (`save`): an IndexIVFFlat over the catalog's
ids, full inverted lists, no direct map.
"""
from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from .base import IndexError_, as_matrix, check_metric, l2_normalize, padded
from .params import BUILD_PARAMS, SEARCH_PARAMS, checked_params, with_defaults
from .store import VectorStore

INDEX_TYPES = ("FLAT", "IVF_FLAT", "HNSW")


class FaissEngine:
    """Vectors in memory; the FAISS index is rebuilt from them on `commit` (training IVF on all rows).

    Distances follow Milvus: L2 is squared, IP and COSINE are similarities (COSINE stores unit vectors).
    """

    name = "faiss"

    def __init__(self, metric: str = "L2", index_type: str = "IVF_FLAT", build_params: dict | None = None,
                 search_params: dict | None = None):
        self.metric = check_metric(metric)
        self.index_type = index_type.upper()
        build = checked_params(build_params, BUILD_PARAMS, self.index_type, "build", INDEX_TYPES)
        search = checked_params(search_params, SEARCH_PARAMS, self.index_type, "search", INDEX_TYPES)
        self.build_params = with_defaults(build, BUILD_PARAMS[self.index_type])
        self.search_params = with_defaults(search, SEARCH_PARAMS.get(self.index_type, ()))
        self.store = VectorStore()
        self.index = None

    def add(self, ids, vectors) -> None:
        self.store.add(ids, vectors)

    def commit(self) -> None:
        self.store.consolidate()
        if not len(self.store.ids):
            self.index = None
            return
        matrix = l2_normalize(self.store.matrix) if self.metric == "COSINE" else self.store.matrix
        self.index = build_faiss_index(matrix, self.store.ids, self.index_type, self.metric, self.build_params)

    def search(self, vectors, k: int):
        if self.store.dirty or self.index is None:
            self.commit()
        if self.index is None:
            raise IndexError_("the index is empty: add vectors before searching")
        queries = as_matrix(vectors, self.index.d)
        if self.metric == "COSINE":
            queries = l2_normalize(queries)
        dists, ids = self.index.search(queries, min(k, self.index.ntotal), params=self._search_parameters())
        return padded(ids, dists, k)

    def _search_parameters(self):
        if self.index_type == "IVF_FLAT":
            return faiss.SearchParametersIVF(nprobe=self.search_params["nprobe"])
        if self.index_type == "HNSW":
            return faiss.SearchParametersHNSW(efSearch=self.search_params["ef"])
        return None

    def fetch(self, ids) -> np.ndarray:
        return self.store.rows(ids)

    def describe_index(self) -> dict:
        return {"index_type": self.index_type, "metric_type": self.metric, "params": dict(self.build_params)}

    def save(self, path) -> Path:
        """Write the index with faiss.write_index (IVF_FLAT files are what Feder reads)."""
        if self.store.dirty or self.index is None:
            self.commit()
        if self.index is None:
            raise IndexError_("the index is empty: nothing to save")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(path))
        return path

    def memory_bytes(self) -> int:
        """Bytes the serialized index takes: vectors, ids and graph or lists."""
        return 0 if self.index is None else int(faiss.serialize_index(self.index).nbytes)

    def count(self) -> int:
        return self.store.count()

    def drop(self) -> None:
        self.store.clear()
        self.index = None

    def close(self) -> None:
        pass


def build_faiss_index(matrix: np.ndarray, ids: np.ndarray, index_type: str, metric: str, params: dict):
    """A trained FAISS index holding `matrix` under `ids` (COSINE means unit vectors and IP)."""
    dim = matrix.shape[1]
    faiss_metric = faiss.METRIC_L2 if metric == "L2" else faiss.METRIC_INNER_PRODUCT
    if index_type == "IVF_FLAT":
        nlist = params["nlist"]
        if len(matrix) < nlist:
            raise ValueError(f"IVF_FLAT with nlist={nlist} needs at least {nlist} vectors to train, got {len(matrix)}")
        quantizer = faiss.IndexFlatL2(dim) if faiss_metric == faiss.METRIC_L2 else faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss_metric)
        index.train(matrix)
        index.add_with_ids(matrix, ids)
        return index
    if index_type == "HNSW":
        inner = faiss.IndexHNSWFlat(dim, params["M"], faiss_metric)
        inner.hnsw.efConstruction = params["efConstruction"]
    else:
        inner = faiss.IndexFlat(dim, faiss_metric)
    index = faiss.IndexIDMap2(inner)
    index.add_with_ids(matrix, ids)
    return index
