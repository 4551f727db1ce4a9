"""The engine behind the app and the command line: one model, one collection, built once, reused.

A collection is named after its model and gallery; its catalog (id, path, label) is saved beside
the embedding cache, so `search` and the app can show what an id is without re-reading the images.
Vectors are unit length and searched by inner product (cosine: notebook 2).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from ..cache import open_cache
from ..config import Settings, get_settings
from ..data import catalog_from_folder, ground_truth, load_catalog, load_queries
from ..errors import NotBuiltError
from ..index import default_index, open_engine
from ..models import DEFAULT_MODEL, build_embedder
from ..search import IngestReport, embed_queries, evaluate_engine, ingest
from ..vectors import l2_normalize


@dataclass
class Hit:
    id: int
    label: str
    path: str
    similarity: float


def collection_name(model: str, gallery: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", f"app_{model}_{gallery}")


class SearchService:
    """`gallery` is "dataset" (the tutorial data, in the configured slice) or a folder of images."""

    def __init__(self, model: str = DEFAULT_MODEL, engine: str = "milvus", gallery: str = "dataset",
                 settings: Settings | None = None):
        self.settings = settings or get_settings()
        self.model_name, self.engine_kind = model, engine
        self.gallery = gallery
        label = f"dataset_{self.settings.slice}" if gallery == "dataset" else Path(gallery).resolve().name
        self.collection = collection_name(model, label)
        self.catalog_file = self.settings.cache_dir / "collections" / f"{self.collection}.csv"
        self.engine = open_engine(engine, metric="IP", collection=self.collection, index=default_index(engine),
                                  settings=self.settings)
        self.cache = open_cache(self.settings)
        self._catalog = None
        self._built = False  # known complete: searches skip the engine's row count

    @cached_property
    def embedder(self):
        """The model, built on first use: a command that fails early (nothing ingested) never loads it."""
        return build_embedder(self.model_name, settings=self.settings)

    def load_gallery(self) -> pd.DataFrame:
        """The images to index: the tutorial's gallery, or every image under the folder."""
        return load_catalog(self.settings) if self.gallery == "dataset" else catalog_from_folder(self.gallery)

    @property
    def catalog(self) -> pd.DataFrame:
        """The catalog the collection was built from (saved by `build`)."""
        if self._catalog is None:
            if not self.catalog_file.is_file():
                raise NotBuiltError(f"no collection {self.collection!r} yet: build it first (imgsearch ingest)")
            self._catalog = pd.read_csv(self.catalog_file)
        return self._catalog

    def ready(self) -> bool:
        """True when the collection holds a row for every image of its saved catalog."""
        try:
            return self.engine.count() == len(self.catalog) > 0
        except NotBuiltError:
            return False

    def require_built(self) -> None:
        """Raise NotBuiltError unless the collection is complete (asked of the engine once, then remembered)."""
        if not self._built:
            if not self.ready():
                raise NotBuiltError(f"collection {self.collection!r} is not built: run `imgsearch ingest` first")
            self._built = True

    def build(self, fresh: bool = False, progress: bool = True) -> IngestReport:
        """Embed the gallery (through the cache) and upsert it; `fresh` drops the collection first."""
        catalog = self.load_gallery()
        if fresh:
            self.engine.drop()
        report = ingest(catalog, self.embedder, self.engine, self.cache, transform=l2_normalize, progress=progress)
        unreadable = {failure.path for failure in report.embed.failures}
        self._catalog = catalog[~catalog["path"].isin(unreadable)].reset_index(drop=True)  # what is indexed
        self.catalog_file.parent.mkdir(parents=True, exist_ok=True)
        self._catalog.to_csv(self.catalog_file, index=False)
        self._built = False  # the next search checks the rows against the new catalog
        return report

    def ensure_built(self, progress: bool = True) -> IngestReport | None:
        """Build the collection when it is missing or incomplete; None when it was reused.

        The in-process engines (faiss, hnswlib, exact) keep nothing between runs, so for them
        this rebuilds from the embedding cache, which takes a second or two.
        """
        if self.engine_kind == "milvus" and self.ready():
            return None
        return self.build(progress=progress)

    def search_images(self, paths, k: int = 10) -> list[list[Hit]]:
        """Top-k hits per query image; an unreadable image raises `ImageError` naming it."""
        self.require_built()
        vectors = embed_queries([str(p) for p in paths], self.embedder, transform=l2_normalize)
        return self.hits(*self.engine.search(vectors, k))

    def hits(self, ids: np.ndarray, similarities: np.ndarray) -> list[list[Hit]]:
        by_id = self.catalog.set_index("id")
        return [[Hit(int(i), str(by_id.at[i, "label"]), str(by_id.at[i, "path"]), float(s))
                 for i, s in zip(row_ids, row_sims) if i >= 0] for row_ids, row_sims in zip(ids, similarities)]

    def evaluate(self, queries_folder=None, k: int = 10) -> dict:
        """mHR@k, Towhee mAP@k and AP@k over labelled queries (`<label>/<image>`; default: the test set)."""
        self.require_built()
        queries = load_queries(queries_folder, self.settings)
        return evaluate_engine(queries, ground_truth(self.catalog, queries), self.embedder, self.engine, k,
                               transform=l2_normalize, collection=self.collection)

    def describe(self) -> dict:
        return {"collection": self.collection, "model": self.model_name, "engine": self.engine_kind,
                "gallery": self.gallery, "rows": self.engine.count(), "index": self.engine.describe_index()}

    def close(self) -> None:
        self.engine.close()
        self.cache.close()


def hits_as_dicts(hits: list[list[Hit]]) -> list[list[dict]]:
    return [[asdict(hit) for hit in row] for row in hits]
