"""The engine's verbs on top of embeddings and an index: ingest and search (scoring: `evaluation.runs`).

Every one of them takes any `embed.ImageEncoder`: a model, a search recipe, a text path's images.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..embed.cache import EmbeddingCache
from ..embed.stream import BATCH_SIZE, EmbedReport, ImageEncoder, embed_paths
from ..errors import UsageError
from ..index import SearchEngine

ROWS_PER_ADD = 256  # rows sent to the engine per call


@dataclass
class IngestReport:
    added: int
    seconds: float
    embed: EmbedReport = field(default_factory=EmbedReport)

    @property
    def images_per_s(self) -> float:
        return self.added / self.seconds if self.seconds else float("nan")

    def __str__(self) -> str:
        rate = f"{self.images_per_s:.1f} img/s"
        return f"ingested {self.added} images in {self.seconds:.1f} s ({rate}); {self.embed.summary()}"


def ingest(catalog: pd.DataFrame, encoder: ImageEncoder, engine: SearchEngine, cache: EmbeddingCache | None = None,
           transform=None, progress: bool = True, batch_size: int = BATCH_SIZE) -> IngestReport:
    """Embed the catalog's images (`path`) batch by batch and upsert each batch under the catalog's
    ids, with the catalog's columns named by the engine's metadata `fields`, then commit.

    `transform` (e.g. `l2_normalize`) is applied to the vectors before they are stored.
    Bad files are skipped and listed in the report; rows already in the index are kept.
    """
    start = time.perf_counter()
    report = EmbedReport()
    ids = catalog["id"].to_numpy()
    missing = [name for name in getattr(engine, "fields", {}) if name not in catalog]
    if missing:
        raise UsageError(f"the catalog has no column(s) {', '.join(missing)} for the engine's metadata fields")
    columns = {name: catalog[name].to_numpy() for name in getattr(engine, "fields", {})}
    added, pending = 0, []
    for batch in encoder.iter_batches(catalog["path"].tolist(), cache, report, progress, batch_size):
        pending.append(batch)
        if sum(len(b.positions) for b in pending) >= ROWS_PER_ADD:
            added += _add_batches(engine, ids, columns, pending, transform)
    added += _add_batches(engine, ids, columns, pending, transform)
    engine.commit()
    return IngestReport(added, time.perf_counter() - start, report)


def _add_batches(engine: SearchEngine, ids: np.ndarray, columns: dict, batches: list, transform=None) -> int:
    """Add the pending batches as one call (fewer round trips to the server) and clear them."""
    positions = [p for b in batches for p in b.positions]
    if positions:
        vectors = np.concatenate([b.vectors for b in batches if b.positions])
        metadata = {name: column[positions] for name, column in columns.items()} or None
        engine.add(ids[positions], transform(vectors) if transform is not None else vectors, metadata)
    batches.clear()
    return len(positions)


def embed_queries(paths, encoder: ImageEncoder, cache: EmbeddingCache | None = None, transform=None,
                  progress: bool = False) -> np.ndarray:
    """Query vectors in input order; a query image that cannot be read is an error, not a skip."""
    embedded = embed_paths(paths, encoder, cache, progress=progress)
    if embedded.report.failures:
        raise embedded.report.failures[0]
    return transform(embedded.vectors) if transform is not None else embedded.vectors


def search_paths(paths, encoder: ImageEncoder, engine: SearchEngine, k: int = 10,
                 cache: EmbeddingCache | None = None, transform=None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (ids, distances) for each query image; raises if an image cannot be read."""
    return engine.search(embed_queries(paths, encoder, cache, transform), k)
