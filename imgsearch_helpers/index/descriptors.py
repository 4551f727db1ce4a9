"""A store of local descriptors grouped by image: many rows per gallery image, each with the
image's id and the keypoint's position, added, replaced and removed one image at a time.

Rows are kept as 8-bit codes (RootSIFT values lie in [0, 0.36]: 128 bytes a descriptor, a quarter of
float32) with float16 positions, in one `.npz` file written whole (`save`). Nearest neighbours come
from an HNSW graph (hnswlib) over the rows, each under a label of its own: a new image's rows are
added to the graph, a removed image's marked deleted, and the graph is saved beside the rows, so a
process that opens the store searches at once. Milvus Lite and FAISS were measured for this job
(`benchmarks/local_store.py`): Milvus Lite answers a query's few hundred descriptor searches in
0.3 to 1 s, an exact search over 30,000 rows takes about 0.3 s here; the graph about 0.1 s.
"""
from __future__ import annotations

import secrets
import threading
from pathlib import Path

import hnswlib
import numpy as np

from .._io import atomic_path
from ..errors import EngineError

DIM = 128
SCALE = 700  # codes per unit: RootSIFT values stay below 0.36 (SIFT caps a bin at 0.2 of the L2 norm)
LINKS, BUILD_EF, SEARCH_EF = 16, 100, 64  # HNSW: recall@1 0.98-0.99 on RootSIFT (`benchmarks/local_store.py`)


def to_codes(descriptors: np.ndarray) -> np.ndarray:
    """Descriptors with values in [0, 0.36] as 8-bit codes."""
    return np.clip(np.rint(np.asarray(descriptors, np.float32) * SCALE), 0, 255).astype(np.uint8)


def from_codes(codes: np.ndarray) -> np.ndarray:
    return codes.astype(np.float32) / SCALE


class DescriptorIndex:
    """Local descriptors of many images; `path`: where `save` writes and `open` reads them."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else None
        self.codes = np.zeros((0, DIM), np.uint8)
        self.points = np.zeros((0, 2), np.float16)
        self.image_ids = np.zeros(0, np.int64)
        self.labels = np.zeros(0, np.int64)  # each row's label in the graph, increasing
        self._graph = None  # built on first search, then kept in step
        self._span_cache = None  # (the image_ids it was found for, {image id: (first row, end)})
        self._lock = threading.RLock()  # one writer; searches wait for it

    @classmethod
    def open(cls, path: Path) -> DescriptorIndex:
        """The store saved at `path` (with its graph when that was saved with these rows), or an
        empty one that will save there."""
        store = cls(path)
        if store.path.is_file():
            try:
                with np.load(store.path) as saved:
                    store.codes, store.points = saved["codes"], saved["points"]
                    store.image_ids, store.labels = saved["image_ids"], saved["labels"]
                    token = int(saved["graph"])
                store._graph = store._saved_graph(token)
            except (OSError, ValueError, KeyError, RuntimeError) as error:
                raise EngineError(f"the local-feature index {path} cannot be read ({error}); "
                                  "delete it and ingest again") from error
        return store

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def images(self) -> np.ndarray:
        return np.unique(self.image_ids)

    def put(self, image_ids, points: list[np.ndarray], descriptors: list[np.ndarray]) -> None:
        """Store each image's rows, replacing any it had."""
        ids = np.asarray(image_ids, np.int64)
        with self._lock:
            self.remove(ids)
            counts = [len(d) for d in descriptors]
            codes = np.concatenate([np.zeros((0, DIM), np.uint8), *(to_codes(d) for d in descriptors)])
            start = int(self.labels[-1]) + 1 if len(self.labels) else 0
            labels = np.arange(start, start + len(codes), dtype=np.int64)
            self.codes = np.concatenate([self.codes, codes])
            self.points = np.concatenate([self.points, *(np.asarray(p, np.float16).reshape(-1, 2) for p in points)])
            self.image_ids = np.concatenate([self.image_ids, np.repeat(ids, counts)])
            self.labels = np.concatenate([self.labels, labels])
            if self._graph is not None and len(codes):
                grow(self._graph, len(codes))
                self._graph.add_items(from_codes(codes), labels, replace_deleted=True)

    def remove(self, image_ids) -> int:
        """Remove every row of these images; the number of rows removed."""
        with self._lock:
            gone = np.isin(self.image_ids, np.asarray(image_ids, np.int64))
            if gone.any():
                if self._graph is not None:
                    for label in self.labels[gone]:
                        self._graph.mark_deleted(int(label))
                keep = ~gone
                self.codes, self.points = self.codes[keep], self.points[keep]
                self.image_ids, self.labels = self.image_ids[keep], self.labels[keep]
            return int(gone.sum())

    def rows_of(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(positions, descriptors) of one image's rows (they are stored together)."""
        start, end = self._spans().get(int(image_id), (0, 0))
        return self.points[start:end].astype(np.float32), from_codes(self.codes[start:end])

    def _spans(self) -> dict[int, tuple[int, int]]:
        """Each image's first row and the row after its last, found once per change of the rows."""
        if self._span_cache is None or self._span_cache[0] is not self.image_ids:
            starts = np.flatnonzero(np.r_[True, self.image_ids[1:] != self.image_ids[:-1]]) if len(self) else []
            ends = [*starts[1:], len(self)]
            spans = {int(self.image_ids[a]): (int(a), int(b)) for a, b in zip(starts, ends)}
            self._span_cache = (self.image_ids, spans)
        return self._span_cache[1]

    def save(self) -> None:
        """The graph (built now if it was not: the next process searches at once), then the rows,
        which name the graph they were saved with; older graphs are removed."""
        if self.path is None:
            return
        with self._lock:
            token = secrets.randbits(62) if len(self) else 0
            if len(self):
                with atomic_path(self._graph_path(token)) as scratch:
                    self._built_graph().save_index(str(scratch))
            with atomic_path(self.path) as scratch:
                with open(scratch, "wb") as handle:  # np.savez would add .npz to a bare scratch name
                    np.savez(handle, codes=self.codes, points=self.points, image_ids=self.image_ids,
                             labels=self.labels, graph=np.int64(token))
            for old in self.path.parent.glob(f"{self.path.stem}.*.hnsw"):
                if old != self._graph_path(token):
                    old.unlink(missing_ok=True)

    def search(self, descriptors: np.ndarray, k: int, ef: int = SEARCH_EF) -> tuple[np.ndarray, np.ndarray]:
        """(squared distances, row numbers) of each descriptor's k nearest rows (k at most the rows),
        the graph searched `ef` wide (at least k)."""
        with self._lock:
            graph = self._built_graph()
            graph.set_ef(max(ef, k))
            labels, distances = graph.knn_query(np.ascontiguousarray(descriptors, np.float32), min(k, len(self)))
            return distances, np.searchsorted(self.labels, labels.astype(np.int64))

    def build(self) -> DescriptorIndex:
        """Build the graph now (else the first search does)."""
        with self._lock:
            self._built_graph()
        return self

    def _built_graph(self):
        if self._graph is None:
            self._graph = new_graph(len(self))
            if len(self):
                self._graph.add_items(from_codes(self.codes), self.labels)
        return self._graph

    def _graph_path(self, token: int) -> Path:
        return self.path.parent / f"{self.path.stem}.{token}.hnsw"

    def _saved_graph(self, token: int):
        """The graph saved with these rows, or None (then built on first search)."""
        path = self._graph_path(token)
        if not token or not path.is_file():
            return None
        graph = hnswlib.Index(space="l2", dim=DIM)
        graph.load_index(str(path), max_elements=0, allow_replace_deleted=True)
        return graph

    def memory_bytes(self) -> int:
        """Bytes the rows (codes, positions, ids, labels) and the graph (float32 vectors and links) take."""
        rows = self.codes.nbytes + self.points.nbytes + self.image_ids.nbytes + self.labels.nbytes
        return rows + (self._graph.index_file_size() if self._graph is not None else 0)


def new_graph(rows: int):
    graph = hnswlib.Index(space="l2", dim=DIM)
    graph.init_index(max_elements=max(rows, 1024), M=LINKS, ef_construction=BUILD_EF, allow_replace_deleted=True)
    return graph


def grow(graph, rows: int) -> None:
    """Room in the graph for `rows` more (deleted slots are reused first)."""
    if graph.element_count + rows > graph.get_max_elements():
        graph.resize_index(max(2 * graph.get_max_elements(), graph.element_count + rows))
