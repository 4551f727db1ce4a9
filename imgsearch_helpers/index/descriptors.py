"""A store of local descriptors grouped by image: many rows per gallery image, each with the
image's id and the keypoint's position, added, replaced and removed one image at a time.

Rows are kept as 8-bit codes (RootSIFT values lie in [0, 0.36]: 128 bytes a descriptor, a quarter of
float32) with float16 positions, in one `.npz` file written whole (`save`). Nearest neighbours come
from FAISS, built on first search after a change: exact (`IndexFlatL2`) up to `EXACT_ROWS` rows, an
IVF index over 8-bit scalar codes past it (136 bytes a row). Milvus Lite was measured for this job
and is too slow for a query's many descriptor searches (`benchmarks/local_store.py`).
"""
from __future__ import annotations

import threading
from pathlib import Path

import faiss
import numpy as np

from .._io import atomic_path
from ..errors import EngineError

DIM = 128
SCALE = 700  # codes per unit: RootSIFT values stay below 0.36 (SIFT caps a bin at 0.2 of the L2 norm)
EXACT_ROWS = 300_000  # an exact search over more rows costs more than a query's budget
NPROBE = 24  # IVF lists visited per descriptor: the ratio test still sees the true neighbours


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
        self._index = None
        self._lock = threading.Lock()  # one thread builds the search index

    @classmethod
    def open(cls, path: Path) -> DescriptorIndex:
        """The store saved at `path`, or an empty one that will save there."""
        store = cls(path)
        if store.path.is_file():
            try:
                with np.load(store.path) as saved:
                    store.codes, store.points, store.image_ids = saved["codes"], saved["points"], saved["image_ids"]
            except (OSError, ValueError, KeyError) as error:
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
        self.remove(ids)
        counts = [len(d) for d in descriptors]
        self.codes = np.concatenate([self.codes, *(to_codes(d) for d in descriptors)])
        self.points = np.concatenate([self.points, *(np.asarray(p, np.float16).reshape(-1, 2) for p in points)])
        self.image_ids = np.concatenate([self.image_ids, np.repeat(ids, counts)])
        self._index = None

    def remove(self, image_ids) -> int:
        """Remove every row of these images; the number of rows removed."""
        gone = np.isin(self.image_ids, np.asarray(image_ids, np.int64))
        if gone.any():
            keep = ~gone
            self.codes, self.points, self.image_ids = self.codes[keep], self.points[keep], self.image_ids[keep]
            self._index = None
        return int(gone.sum())

    def rows_of(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(positions, descriptors) of one image's rows."""
        chosen = self.image_ids == image_id
        return self.points[chosen].astype(np.float32), from_codes(self.codes[chosen])

    def save(self) -> None:
        if self.path is None:
            return
        with atomic_path(self.path) as scratch:
            with open(scratch, "wb") as handle:  # np.savez would add .npz to a bare scratch name
                np.savez(handle, codes=self.codes, points=self.points, image_ids=self.image_ids)

    def search(self, descriptors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(squared distances, row numbers) of each descriptor's k nearest rows; row -1 past the end."""
        index = self._search_index()
        return index.search(np.ascontiguousarray(descriptors, np.float32), min(k, max(1, len(self))))

    def _search_index(self):
        with self._lock:
            if self._index is None:
                self._index = build_search_index(from_codes(self.codes))
            return self._index

    def memory_bytes(self) -> int:
        """Bytes the stored rows take (codes, positions, ids), without the search index."""
        return self.codes.nbytes + self.points.nbytes + self.image_ids.nbytes


def build_search_index(rows: np.ndarray):
    """Exact search for a few hundred thousand rows; IVF over 8-bit codes beyond."""
    if len(rows) <= EXACT_ROWS:
        index = faiss.IndexFlatL2(DIM)
        index.add(rows)
        return index
    lists = int(4 * np.sqrt(len(rows)))
    quantizer = faiss.IndexFlatL2(DIM)
    index = faiss.IndexIVFScalarQuantizer(quantizer, DIM, lists, faiss.ScalarQuantizer.QT_8bit)
    sample = rows[np.random.default_rng(0).choice(len(rows), min(len(rows), 64 * lists), replace=False)]
    index.train(sample)
    index.add(rows)
    index.nprobe = NPROBE
    return index
