"""Index engines behind one interface (add / commit / search / fetch / count / drop); pick one by name."""
from __future__ import annotations

from ..config import Settings, get_settings
from .base import DimensionMismatchError, EngineUnavailableError, IndexError_, SearchEngine, l2_normalize
from .exact import ExactEngine
from .faiss_engine import FaissEngine
from .hnswlib_engine import HnswlibEngine
from .milvus import DatabaseLockedError, MilvusEngine

ENGINES = ("milvus", "faiss", "hnswlib", "exact")

__all__ = ["open_engine", "ENGINES", "SearchEngine", "ExactEngine", "FaissEngine", "HnswlibEngine", "MilvusEngine",
           "l2_normalize", "DimensionMismatchError", "EngineUnavailableError", "DatabaseLockedError", "IndexError_"]


def open_engine(kind: str = "milvus", metric: str = "L2", collection: str = "reverse_image_search",
                index_type: str = "IVF_FLAT", build_params: dict | None = None, search_params: dict | None = None,
                settings: Settings | None = None) -> SearchEngine:
    """Open an engine by name; one argument switches a notebook between them.

    `milvus` connects to settings.milvus_uri: a Milvus Lite database path by default, or any
    server URI (with settings.milvus_token) when MILVUS_URI is set. `faiss` and `hnswlib` run in
    this process (hnswlib is always HNSW); `exact` is brute force and ignores the index options.
    """
    if kind == "exact":
        return ExactEngine(metric=metric)
    if kind == "faiss":
        return FaissEngine(metric, index_type, build_params, search_params)
    if kind == "hnswlib":
        if index_type.upper() != "HNSW":
            raise ValueError(f"hnswlib builds HNSW indexes only, not {index_type!r}")
        return HnswlibEngine(metric, build_params, search_params)
    if kind == "milvus":
        settings = settings or get_settings()
        return MilvusEngine(uri=settings.milvus_uri, token=settings.milvus_token, collection=collection,
                            index_type=index_type, metric=metric, build_params=build_params,
                            search_params=search_params)
    raise ValueError(f"unknown engine {kind!r}: choose one of {', '.join(ENGINES)}")
