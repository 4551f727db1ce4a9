"""Index engines behind one interface (add / commit / search / count / drop); pick one by name."""
from __future__ import annotations

from ..config import Settings, get_settings
from .base import DimensionMismatchError, EngineUnavailableError, IndexError_, SearchEngine, l2_normalize
from .exact import ExactEngine
from .milvus import DatabaseLockedError, MilvusEngine

ENGINES = ("milvus", "exact")

__all__ = ["open_engine", "ENGINES", "SearchEngine", "ExactEngine", "MilvusEngine", "l2_normalize",
           "DimensionMismatchError", "EngineUnavailableError", "DatabaseLockedError", "IndexError_"]


def open_engine(kind: str = "milvus", metric: str = "L2", collection: str = "reverse_image_search",
                index_type: str = "IVF_FLAT", build_params: dict | None = None, search_params: dict | None = None,
                settings: Settings | None = None) -> SearchEngine:
    """Open an engine by name; the index options apply to Milvus and are ignored by `exact`.

    `milvus` connects to settings.milvus_uri: a Milvus Lite database path by default, or any
    server URI (with settings.milvus_token) when MILVUS_URI is set.
    """
    if kind == "exact":
        return ExactEngine(metric=metric)
    if kind == "milvus":
        settings = settings or get_settings()
        return MilvusEngine(uri=settings.milvus_uri, token=settings.milvus_token, collection=collection,
                            index_type=index_type, metric=metric, build_params=build_params,
                            search_params=search_params)
    raise ValueError(f"unknown engine {kind!r}: choose one of {', '.join(ENGINES)}")
