"""Vectors and their metadata kept in memory by id, for the in-process engines (exact, FAISS, hnswlib)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DimensionMismatchError, EngineError
from .base import FIELD_DTYPES, as_matrix, check_fields, metadata_columns
from .filters import Filter


class VectorStore:
    """Rows by id with upsert semantics: adding an id again replaces its row (vector and metadata).

    Adds are appended as chunks and merged once, in `consolidate`, so ingesting a million rows
    in batches costs one merge rather than one per batch.
    """

    def __init__(self, fields: dict[str, str] | None = None):
        self.fields = check_fields(fields)
        self.ids = np.empty(0, np.int64)
        self.matrix = np.empty((0, 0), np.float32)
        self.columns = {name: np.empty(0, FIELD_DTYPES[kind]) for name, kind in self.fields.items()}
        self._pending: list[tuple[np.ndarray, np.ndarray, dict]] = []

    @property
    def dim(self) -> int | None:
        if self.matrix.shape[1]:
            return self.matrix.shape[1]
        return self._pending[0][1].shape[1] if self._pending else None

    def add(self, ids, vectors, metadata=None) -> None:
        vectors = as_matrix(vectors)
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        if self.dim is not None and vectors.shape[1] != self.dim:
            raise DimensionMismatchError(f"vectors have dimension {vectors.shape[1]}, the index stores {self.dim}")
        self._pending.append((ids, vectors.copy(), metadata_columns(self.fields, metadata, len(ids))))

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
        ids = np.concatenate([self.ids, *(i for i, _, _ in self._pending)])
        columns = {name: np.concatenate([self.columns[name], *(c[name] for _, _, c in self._pending)])
                   for name in self.fields}
        matrix = np.empty((len(ids), self.dim), np.float32)
        row = len(self.ids)
        if row:
            matrix[:row] = self.matrix
            self.matrix = np.empty((0, 0), np.float32)
        while self._pending:
            _, chunk, _ = self._pending.pop(0)
            matrix[row:row + len(chunk)] = chunk
            row += len(chunk)
            del chunk
        last = len(ids) - 1 - np.unique(ids[::-1], return_index=True)[1]  # last occurrence of each id
        if len(last) == len(ids):
            self.ids, self.matrix, self.columns = ids, matrix, columns
            return
        self._keep(ids, matrix, columns, np.sort(last))  # a replaced row moves to where its last add put it

    def _keep(self, ids, matrix, columns, rows) -> None:
        self.ids, self.matrix = ids[rows], matrix[rows]
        self.columns = {name: column[rows] for name, column in columns.items()}

    def rows(self, ids) -> np.ndarray:
        """Stored vectors for `ids` (any shape), a zero row where an id is unknown (e.g. -1)."""
        self.consolidate()
        ids = np.asarray(ids, dtype=np.int64)
        if not len(self.ids):
            raise EngineError("the index is empty: add vectors before fetching them")
        found, where = self._positions(ids.ravel())
        out = np.zeros((ids.size, self.dim), np.float32)
        out[found] = self.matrix[where[found]]
        return out.reshape(*ids.shape, self.dim)

    def _positions(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found, row): for each id, whether it is stored and at which row."""
        if not len(self.ids):
            return np.zeros(len(ids), bool), np.zeros(len(ids), np.int64)
        order = np.argsort(self.ids)
        where = np.searchsorted(self.ids, ids, sorter=order).clip(0, len(order) - 1)
        return self.ids[order[where]] == ids, order[where]

    def metadata(self, ids=None) -> pd.DataFrame:
        """`id` and the metadata columns of the rows `ids` (all rows when None)."""
        self.consolidate()
        if ids is None:
            rows = np.arange(len(self.ids))
        else:
            found, where = self._positions(np.unique(np.asarray(ids, np.int64).ravel()))
            rows = where[found]
        return pd.DataFrame({"id": self.ids[rows], **{name: column[rows] for name, column in self.columns.items()}})

    def mask(self, where: str | None) -> np.ndarray:
        """Rows a Milvus boolean expression keeps (all rows when None)."""
        self.consolidate()
        if where is None:
            return np.ones(len(self.ids), bool)
        return Filter(where, {"id", *self.fields}).mask({"id": self.ids, **self.columns})

    def delete(self, ids) -> None:
        self.consolidate()
        gone = np.isin(self.ids, np.asarray(ids, np.int64).ravel())
        if gone.any():
            self._keep(self.ids, self.matrix, self.columns, np.flatnonzero(~gone))

    def count(self) -> int:
        self.consolidate()
        return len(self.ids)

    def clear(self) -> None:
        self.__init__(self.fields)
