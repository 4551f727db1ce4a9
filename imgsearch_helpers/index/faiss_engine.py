"""FAISS in process: FLAT, IVF_FLAT and HNSW, with the same interface as the Milvus engine.

An IVF_FLAT index is saved in the form Feder draws (`save`): an IndexIVFFlat over the catalog's
ids, full inverted lists, no direct map.
"""
from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from ..errors import EngineError
from ..vectors import l2_normalize
from .base import padded
from .inprocess import InProcessEngine


class FaissEngine(InProcessEngine):
    """Vectors in memory; the FAISS index is rebuilt from them on `commit` (training IVF on all rows).

    Distances follow Milvus: L2 is squared, IP and COSINE are similarities (COSINE stores unit vectors).
    """

    name = "faiss"
    index_types = ("FLAT", "IVF_FLAT", "HNSW")

    def __init__(self, metric: str = "L2", index_type: str = "IVF_FLAT", build_params: dict | None = None,
                 search_params: dict | None = None, fields: dict | None = None):
        super().__init__(metric, index_type, build_params, search_params, fields)

    def build(self, matrix: np.ndarray, ids: np.ndarray):
        matrix = l2_normalize(matrix) if self.metric == "COSINE" else matrix
        return build_faiss_index(matrix, ids, self.index_type, self.metric, self.build_params)

    def search_index(self, queries: np.ndarray, k: int):
        index = self.index
        if self.metric == "COSINE":
            queries = l2_normalize(queries)
        dists, ids = index.search(queries, min(k, index.ntotal), params=self._search_parameters())
        return padded(ids, dists, k)

    def _search_parameters(self):
        if self.index_type == "IVF_FLAT":
            return faiss.SearchParametersIVF(nprobe=self.search_params["nprobe"])
        if self.index_type == "HNSW":
            return faiss.SearchParametersHNSW(efSearch=self.search_params["ef"])
        return None

    def write(self, path: Path) -> None:
        faiss.write_index(self.index, str(path))

    def memory_bytes(self) -> int:
        """Bytes the serialized index takes: vectors, ids and graph or lists."""
        return 0 if self.index is None else int(faiss.serialize_index(self.index).nbytes)


def build_faiss_index(matrix: np.ndarray, ids: np.ndarray, index_type: str, metric: str, params: dict):
    """A trained FAISS index holding `matrix` under `ids` (COSINE means unit vectors and IP)."""
    dim = matrix.shape[1]
    faiss_metric = faiss.METRIC_L2 if metric == "L2" else faiss.METRIC_INNER_PRODUCT
    if index_type == "IVF_FLAT":
        nlist = params["nlist"]
        if len(matrix) < nlist:
            raise EngineError(f"IVF_FLAT with nlist={nlist} needs at least {nlist} vectors to train, got {len(matrix)}")
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
