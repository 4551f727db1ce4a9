"""What an approximate index trades (notebook 5): recall against exact search and the work a query
costs, over a sweep of IVF's `nprobe` or HNSW's `ef`, counted by FAISS itself."""
from __future__ import annotations

import faiss
import numpy as np

from ..index.base import top_k
from ..index.faiss_engine import build_faiss_index
from ..index.inprocess import squared_l2
from .metrics import RECALL, evaluate
from .timing import time_runs


def exact_top_k(matrix: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """The true top-k ids by L2, as the exact engine ranks them: the reference recall is measured against."""
    return top_k(-squared_l2(queries, matrix), ids, k, larger_is_closer=False)[0]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Share of the true top-k that the index returned (recall@k), averaged over queries."""
    k = truth.shape[1]
    return evaluate(truth.tolist(), found.tolist(), k, RECALL)[f"recall@{k}"]


def ivf_sweep(matrix, ids, queries, nlist: int, nprobes, k: int = 10) -> list[dict]:
    """An L2 IVF_FLAT index over `matrix`, searched with each `nprobe`: recall@k, vectors compared."""
    index = build_faiss_index(matrix, ids, "IVF_FLAT", "L2", {"nlist": nlist})
    searches = [("nprobe", n, faiss.SearchParametersIVF(nprobe=n)) for n in nprobes]
    return _sweep(index, f"IVF_FLAT nlist={nlist}", searches, faiss.cvar.indexIVF_stats,
                  exact_top_k(matrix, ids, queries, k), queries, k)


def hnsw_sweep(matrix, ids, queries, M: int, ef_construction: int, efs, k: int = 10) -> list[dict]:
    """An L2 HNSW graph over `matrix`, searched with each `ef`: recall@k, distances computed."""
    index = build_faiss_index(matrix, ids, "HNSW", "L2", {"M": M, "efConstruction": ef_construction})
    searches = [("ef", ef, faiss.SearchParametersHNSW(efSearch=ef)) for ef in efs]
    return _sweep(index, f"HNSW M={M} efConstruction={ef_construction}", searches, faiss.cvar.hnsw_stats,
                  exact_top_k(matrix, ids, queries, k), queries, k)


def _sweep(index, name: str, searches, stats, truth, queries, k: int) -> list[dict]:
    """Each (parameter, value, search parameters) timed, with the distances FAISS's `stats` counted."""
    rows = []
    for parameter, value, params in searches:
        stats.reset()
        searching = time_runs(lambda params=params: index.search(queries, k, params=params))
        _, found = searching.result
        ms = 1000 * searching.total / len(queries)
        rows.append({"index": name, parameter: value, f"recall@{k}": recall(found, truth),
                     "vectors compared": stats.ndis / len(queries), "ms per query": ms})
    return rows


def list_sizes(index_file) -> dict:
    """How an IVF file's vectors are spread over its lists: the numbers behind "nlist fits n"."""
    from ..feder.files import read_faiss_ivf_flat

    sizes = read_faiss_ivf_flat(index_file).list_sizes()
    return {"nlist": len(sizes), "vectors": int(sizes.sum()), "empty lists": int((sizes == 0).sum()),
            "smallest": int(sizes.min()), "median": float(np.median(sizes)), "largest": int(sizes.max())}
