"""Search images with a sentence (notebook 6): CLIP, and an offline path, behind one interface."""
from .paths import (
    OFFLINE_RECIPE,
    TEXT_PATHS,
    ClipTextPath,
    OfflineTextPath,
    class_queries,
    evaluate_text,
    open_text_path,
)

__all__ = ["OFFLINE_RECIPE", "TEXT_PATHS", "ClipTextPath", "OfflineTextPath", "class_queries", "evaluate_text",
           "open_text_path"]
