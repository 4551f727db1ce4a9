"""Index engines behind one interface (add / commit / search / count / drop); pick one by name."""
from __future__ import annotations

from ..config import Settings, get_settings
from .base import DimensionMismatchError, EngineUnavailableError, IndexError_, SearchEngine, l2_normalize
from .exact import ExactEngine
from .milvus import DatabaseLockedError, MilvusEngine

ENGINES = ("milvus", "exact")

__all__ = ["open_engine", "ENGINES", "SearchEngine", "ExactEngine", "MilvusEngine", "l2_normalize",
           "DimensionMismatchError", "EngineUnavailableError", "DatabaseLockedError", "IndexError_"]


def open_engine(kind: str = "milvus", metric: str = "L2", settings: Settings | None = None, **options) -> SearchEngine:
    """`milvus` uses settings.milvus_uri (Milvus Lite path by default, or a server URI + token).

    Options for milvus: collection, index_type, build_params, search_params.
    """
    if kind == "exact":
        return ExactEngine(metric=metric, **options)
    if kind == "milvus":
        settings = settings or get_settings()
        return MilvusEngine(uri=settings.milvus_uri, token=settings.milvus_token, metric=metric, **options)
    raise ValueError(f"unknown engine {kind!r}: choose one of {', '.join(ENGINES)}")
