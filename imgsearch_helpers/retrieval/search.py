"""The engine's verbs on top of embeddings and an index: ingest, and the one read path every search
takes (scoring: `evaluation.runs`).

A search is the engine's top hits re-ranked by steps, each a `Step`: whitening, query expansion and
database-side augmentation (`postprocess`), diffusion (`diffused`), geometric verification
(`verify`), leaving out deleted files (`LiveFiles`). `ReadPath` chains them over any `SearchEngine`
and is one itself, so whatever takes an engine takes a read path. Ingest and queries take any
`embed.ImageEncoder`: a model, a search recipe, a text path's images.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..embed.cache import EmbeddingCache
from ..embed.stream import BATCH_SIZE, EmbedReport, ImageEncoder, OnImage, embed_paths
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
           transform=None, progress: bool = True, batch_size: int = BATCH_SIZE,
           on_image: OnImage | None = None) -> IngestReport:
    """Embed the catalog's images (`path`) batch by batch and upsert each batch under the catalog's
    ids, with the catalog's columns named by the engine's metadata `fields`, then commit.

    `transform` (e.g. `l2_normalize`) is applied to the vectors before they are stored; `on_image`
    sees each decoded image (`embed.iter_embeddings`; an encoder that is a `StreamsImages`).
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
    hook = {"on_image": on_image} if on_image else {}
    for batch in encoder.iter_batches(catalog["path"].tolist(), cache, report, progress, batch_size, **hook):
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
    return ReadPath(engine).search(embed_queries(paths, encoder, cache, transform), k)


@dataclass(frozen=True)
class Query:
    vectors: np.ndarray
    paths: Sequence | None = None  # the query images, for steps that look at their pixels
    where: str | None = None  # a filter on the engine's metadata fields

    def moved_to(self, vectors: np.ndarray) -> Query:
        return replace(self, vectors=vectors)


@dataclass
class Found:
    """Hits per query, best first: ids (-1: no hit) and distances as the engine reports them."""

    ids: np.ndarray
    distances: np.ndarray
    verified: np.ndarray | None = None  # per hit True/False once verification checked it, else None
    gone: int = 0  # hits left out because their file is gone
    inliers: np.ndarray | None = None  # per hit, local features that agree (a local-feature search), else None

    def take(self, positions: list[list[int]], k: int, verified: list[list] | None = None) -> Found:
        """Each row's hits at `positions`, in that order, cut or padded to k; `verified`: new flags for them."""
        rows = len(self.ids)
        ids, distances = np.full((rows, k), -1, np.int64), np.full((rows, k), np.nan, np.float32)
        flags = np.full((rows, k), None, object)
        for row, chosen in enumerate(positions):
            chosen = np.asarray(chosen, np.int64)[:k]
            ids[row, :len(chosen)], distances[row, :len(chosen)] = self.ids[row, chosen], self.distances[row, chosen]
            if verified is not None:
                flags[row, :len(chosen)] = verified[row][:len(chosen)]
            elif self.verified is not None:
                flags[row, :len(chosen)] = self.verified[row, chosen]
        checked = verified is not None or self.verified is not None
        return Found(ids, distances, flags if checked else None, self.gone, self._take_inliers(positions, k))

    def _take_inliers(self, positions: list[list[int]], k: int) -> np.ndarray | None:
        if self.inliers is None:
            return None
        taken = np.zeros((len(self.ids), k), np.int64)
        for row, chosen in enumerate(positions):
            chosen = np.asarray(chosen, np.int64)[:k]
            taken[row, :len(chosen)] = self.inliers[row, chosen]
        return taken


class Step:
    """A re-ranking step. `index` learns from the gallery's vectors as the steps before it left them
    and returns them as they are to be stored; `find` answers a query by asking `below` (the steps
    after it, then the engine). This base does neither: a step overrides what it changes."""

    def index(self, gallery: np.ndarray) -> np.ndarray:
        return gallery

    def find(self, query: Query, k: int, below: ReadPath) -> Found:
        return below.find(query, k)


class ReadPath:
    """An engine's search followed by `steps`, the first the outermost; the read side of a `SearchEngine`."""

    def __init__(self, engine: SearchEngine, steps: Sequence[Step] = ()):
        self.engine, self.steps = engine, tuple(steps)
        self.name, self.metric, self.fields = engine.name, engine.metric, getattr(engine, "fields", {})

    def index(self, gallery: np.ndarray) -> np.ndarray:
        """Fit every step on the gallery in turn: the vectors to store in the engine."""
        for step in self.steps:
            gallery = step.index(gallery)
        return gallery

    def find(self, query: Query, k: int) -> Found:
        if not self.steps:
            return Found(*self.engine.search(query.vectors, k, query.where))
        return self.steps[0].find(query, k, ReadPath(self.engine, self.steps[1:]))

    def search(self, vectors: np.ndarray, k: int, where: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        found = self.find(Query(vectors, where=where), k)
        return found.ids, found.distances

    def fetch(self, ids) -> np.ndarray:
        return self.engine.fetch(ids)

    def metadata(self, ids=None):
        return self.engine.metadata(ids)

    def count(self, where: str | None = None) -> int:
        return self.engine.count(where)


@dataclass
class LiveFiles(Step):
    """Step: hits whose file is gone (deleted since the ingest) are left out, and the search goes
    deeper, up to three times, to fill k. Ids `paths_of` does not know are left out too."""

    paths_of: Callable[[np.ndarray], list[list]]  # rows of ids -> rows of their files (None: not in the collection)
    lock: AbstractContextManager = field(default_factory=threading.Lock)  # held while reading the engine

    def find(self, query: Query, k: int, below: ReadPath) -> Found:
        depth = k
        for _ in range(3):
            with self.lock:
                found = below.find(query, depth)
                paths = self.paths_of(found.ids)
            known = [[i for i, path in enumerate(row) if path is not None] for row in paths]
            live = [[i for i in row_known if Path(row[i]).is_file()] for row, row_known in zip(paths, known)]
            gone = sum(len(row) - len(kept) for row, kept in zip(known, live))
            if not gone or all(len(kept) >= k for kept in live):
                break
            depth += gone
        kept = found.take(live, k)
        kept.gone += gone
        return kept
