"""The engine's three verbs on top of embeddings and an index: ingest, search, evaluate."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .cache import EmbeddingCache
from .embed import EmbedReport, embed_paths, iter_embeddings
from .index import SearchEngine
from .metrics import evaluate

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


def ingest(catalog: pd.DataFrame, embedder, engine: SearchEngine, cache: EmbeddingCache | None = None,
           batch_size: int = 16, progress: bool = True, transform=None) -> IngestReport:
    """Embed the catalog's images batch by batch and add each batch under the catalog's ids.

    `transform` (e.g. `l2_normalize`) is applied to the vectors before they are stored.
    Bad files are skipped and listed in the report; rows already in the index are kept.
    """
    start = time.perf_counter()
    report = EmbedReport()
    ids = catalog["id"].to_numpy()
    added, pending = 0, []
    paths = catalog["path"].tolist()
    for batch in iter_embeddings(paths, embedder, cache, batch_size, report=report, progress=progress):
        pending.append(batch)
        if sum(len(b.positions) for b in pending) >= ROWS_PER_ADD:
            added += _add_batches(engine, ids, pending, transform)
    added += _add_batches(engine, ids, pending, transform)
    engine.commit()
    return IngestReport(added, time.perf_counter() - start, report)


def ingest_embedded(catalog: pd.DataFrame, embed, engine: SearchEngine, cache: EmbeddingCache | None = None,
                    progress: bool = True) -> IngestReport:
    """Index the catalog with any `embed(paths, cache, progress) -> (vectors, positions, report)`
    (a search recipe, a text path): upsert the readable images under their ids, then commit."""
    start = time.perf_counter()
    vectors, positions, report = embed(catalog["path"].tolist(), cache, progress)
    ids = catalog["id"].to_numpy()[positions]
    for first in range(0, len(ids), ROWS_PER_ADD):
        engine.add(ids[first:first + ROWS_PER_ADD], vectors[first:first + ROWS_PER_ADD])
    engine.commit()
    return IngestReport(len(ids), time.perf_counter() - start, report)


def _add_batches(engine: SearchEngine, ids: np.ndarray, batches: list, transform=None) -> int:
    """Add the pending batches as one call (fewer round trips to the server) and clear them."""
    positions = [p for b in batches for p in b.positions]
    if positions:
        vectors = np.concatenate([b.vectors for b in batches if b.positions])
        engine.add(ids[positions], transform(vectors) if transform is not None else vectors)
    batches.clear()
    return len(positions)


def embed_queries(paths, embedder, cache: EmbeddingCache | None = None, transform=None,
                  progress: bool = False) -> np.ndarray:
    """Query vectors in input order; a query image that cannot be read is an error, not a skip."""
    vectors, _, report = embed_paths(paths, embedder, cache, progress=progress)
    if report.failures:
        raise report.failures[0]
    return transform(vectors) if transform is not None else vectors


def search_paths(paths, embedder, engine: SearchEngine, k: int = 10, cache: EmbeddingCache | None = None,
                 transform=None, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (ids, distances) for each query image; raises if an image cannot be read."""
    return engine.search(embed_queries(paths, embedder, cache, transform, progress), k)


def evaluate_engine(queries: pd.DataFrame, ground_truth, embedder, engine: SearchEngine, k: int = 10,
                    transform=None, **columns) -> dict:
    """Search every query image and score the results: one table row.

    Queries are embedded without the cache, so `query_ms` is what one search costs a user
    (decode + embed + search, averaged over a batched run); `search_ms` is the index alone.
    """
    paths = queries["path"].tolist()
    embed_queries(paths[:1], embedder)  # one-time trace, not timed
    start = time.perf_counter()
    vectors = embed_queries(paths, embedder, transform=transform)
    searched = time.perf_counter()
    ids, _ = engine.search(vectors, k)
    done = time.perf_counter()
    row = evaluate(ground_truth, ids.tolist(), k, model=embedder.name, engine=engine.name, **columns)
    row["query_ms"] = 1000 * (done - start) / len(queries)
    row["search_ms"] = 1000 * (done - searched) / len(queries)
    return row
