"""What an approximate index trades (notebook 5): recall against exact search and the work a query
costs, over a sweep of IVF's `nprobe` or HNSW's `ef`, counted by FAISS itself."""
from __future__ import annotations

import time

import faiss
import numpy as np

from ..index.faiss_engine import build_faiss_index
from ..index.inprocess import squared_l2


def exact_top_k(matrix: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """The true top-k ids by L2, the reference recall is measured against."""
    order = np.argsort(squared_l2(queries, matrix), axis=1, kind="stable")[:, :k]
    return ids[order]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Share of the true top-k that the index returned (recall@k), averaged over queries."""
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found.tolist(), truth.tolist())]))


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
        start = time.perf_counter()
        _, found = index.search(queries, k, params=params)
        ms = 1000 * (time.perf_counter() - start) / len(queries)
        rows.append({"index": name, parameter: value, f"recall@{k}": recall(found, truth),
                     "vectors compared": stats.ndis / len(queries), "ms per query": ms})
    return rows


def list_sizes(index_file) -> dict:
    """How an IVF file's vectors are spread over its lists: the numbers behind "nlist fits n"."""
    from ..feder.files import read_faiss_ivf_flat

    sizes = read_faiss_ivf_flat(index_file).list_sizes()
    return {"nlist": len(sizes), "vectors": int(sizes.sum()), "empty lists": int((sizes == 0).sum()),
            "smallest": int(sizes.min()), "median": float(np.median(sizes)), "largest": int(sizes.max())}
