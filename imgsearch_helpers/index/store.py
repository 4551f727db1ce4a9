"""Vectors kept in memory by id, for the in-process engines (exact, FAISS, hnswlib)."""
from __future__ import annotations

import numpy as np

from ..errors import DimensionMismatchError, EngineError
from .base import as_matrix


class VectorStore:
    """Rows by id with upsert semantics: adding an id again replaces its row.

    Adds are appended as chunks and merged once, in `consolidate`, so ingesting a million rows
    in batches costs one merge rather than one per batch.
    """

    def __init__(self):
        self.ids = np.empty(0, np.int64)
        self.matrix = np.empty((0, 0), np.float32)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []

    @property
    def dim(self) -> int | None:
        if self.matrix.shape[1]:
            return self.matrix.shape[1]
        return self._pending[0][1].shape[1] if self._pending else None

    def add(self, ids, vectors) -> None:
        vectors = as_matrix(vectors)
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        if self.dim is not None and vectors.shape[1] != self.dim:
            raise DimensionMismatchError(f"vectors have dimension {vectors.shape[1]}, the index stores {self.dim}")
        self._pending.append((ids, vectors.copy()))

    @property
    def dirty(self) -> bool:
        return bool(self._pending)

    def consolidate(self) -> None:
        """Merge pending adds; for an id added more than once, the last row wins.

        Memory: the merged matrix is filled chunk by chunk while each chunk is released, and rows
        are reordered (one more copy) only when an id repeats, so a million rows need about one
        extra copy at the peak, not three.
        """
        if not self._pending:
            return
        ids = np.concatenate([self.ids, *(i for i, _ in self._pending)])
        matrix = np.empty((len(ids), self.dim), np.float32)
        row = len(self.ids)
        if row:
            matrix[:row] = self.matrix
            self.matrix = np.empty((0, 0), np.float32)
        while self._pending:
            _, chunk = self._pending.pop(0)
            matrix[row:row + len(chunk)] = chunk
            row += len(chunk)
            del chunk
        last = len(ids) - 1 - np.unique(ids[::-1], return_index=True)[1]  # last occurrence of each id
        if len(last) == len(ids):
            self.ids, self.matrix = ids, matrix
            return
        keep = np.sort(last)  # a replaced row moves to where its last add put it
        self.ids, self.matrix = ids[keep], matrix[keep]

    def rows(self, ids) -> np.ndarray:
        """Stored vectors for `ids` (any shape), a zero row where an id is unknown (e.g. -1)."""
        self.consolidate()
        ids = np.asarray(ids, dtype=np.int64)
        if not len(self.ids):
            raise EngineError("the index is empty: add vectors before fetching them")
        order = np.argsort(self.ids)
        where = np.searchsorted(self.ids, ids.ravel(), sorter=order).clip(0, len(order) - 1)
        found = self.ids[order[where]] == ids.ravel()
        out = np.zeros((ids.size, self.dim), np.float32)
        out[found] = self.matrix[order[where[found]]]
        return out.reshape(*ids.shape, self.dim)

    def count(self) -> int:
        self.consolidate()
        return len(self.ids)

    def clear(self) -> None:
        self.ids = np.empty(0, np.int64)
        self.matrix = np.empty((0, 0), np.float32)
        self._pending.clear()
