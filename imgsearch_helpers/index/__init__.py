"""Index engines behind one interface (add / commit / search / fetch / count / drop); pick one by name.

Importing this package is cheap: each engine's library (pymilvus, faiss, hnswlib) loads when the
engine is first opened or named.
"""
from __future__ import annotations

import importlib

from ..config import Settings, get_settings
from ..errors import UsageError
from .base import SearchEngine
from .params import GALLERY_IVF, IndexSpec, index_for_rows

ENGINES = ("milvus", "faiss", "hnswlib", "exact")
# Engine classes by name, and the module each lives in (imported on first use).
ENGINE_CLASSES = {"MilvusEngine": "milvus", "FaissEngine": "faiss_engine", "HnswlibEngine": "hnswlib_engine",
                  "ExactEngine": "exact"}

__all__ = ["open_engine", "index_for_rows", "ENGINES", "IndexSpec", "GALLERY_IVF", "SearchEngine", *ENGINE_CLASSES]


def __getattr__(name: str):
    """`from imgsearch_helpers.index import FaissEngine` imports faiss then, not with the package."""
    if name in ENGINE_CLASSES:
        return getattr(importlib.import_module(f".{ENGINE_CLASSES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_engine(kind: str = "milvus", metric: str = "L2", collection: str = "reverse_image_search",
                index: IndexSpec | None = None, settings: Settings | None = None,
                fields: dict[str, str] | None = None) -> SearchEngine:
    """Open an engine by name; one argument switches a notebook between them.

    `milvus` connects to settings.milvus_uri: a Milvus Lite database path by default, or any
    server URI (with settings.milvus_token) when MILVUS_URI is set. `faiss` and `hnswlib` run in
    this process (hnswlib is always HNSW); `exact` is brute force and takes no index. Without an
    `index`, IVF_FLAT (HNSW for hnswlib) with the engine's default parameters. `fields` declares
    the scalar metadata stored beside each vector (name -> "str", "int" or "float"), which
    `search(..., where=...)` filters on.
    """
    if kind not in ENGINES:
        raise UsageError(f"unknown engine {kind!r}: choose one of {', '.join(ENGINES)}")
    if kind == "exact":
        from .exact import ExactEngine

        return ExactEngine(metric=metric, fields=fields)
    index = index or IndexSpec("HNSW" if kind == "hnswlib" else "IVF_FLAT")
    if kind == "faiss":
        from .faiss_engine import FaissEngine

        return FaissEngine(metric, index.index_type, index.build, index.search, fields=fields)
    if kind == "hnswlib":
        from .hnswlib_engine import HnswlibEngine

        if index.index_type.upper() != "HNSW":
            raise UsageError(f"hnswlib builds HNSW indexes only, not {index.index_type!r}")
        return HnswlibEngine(metric, index.build, index.search, fields=fields)
    from .milvus import MilvusEngine

    settings = settings or get_settings()
    return MilvusEngine(uri=settings.milvus_uri, token=settings.milvus_token, collection=collection,
                        index_type=index.index_type, metric=metric, build_params=index.build,
                        search_params=index.search, fields=fields)
