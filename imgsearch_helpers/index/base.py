"""The small interface every index engine implements, and helpers they share."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
import pandas as pd

from ..errors import DimensionMismatchError, UsageError

METRICS = ("L2", "IP", "COSINE")


class SearchEngine(Protocol):
    name: str
    metric: str
    fields: dict[str, str]  # scalar metadata stored beside each vector: name -> kind ("str", "int", "float")

    def add(self, ids: np.ndarray, vectors: np.ndarray, metadata: Mapping[str, Sequence] | None = None) -> None:
        """Insert or replace rows by id (re-adding an id replaces it: ingest is idempotent);
        `metadata` holds one value per row for each of the engine's `fields`."""

    def commit(self) -> None:
        """Make everything added searchable through the index (flush, build, load)."""

    def search(self, vectors: np.ndarray, k: int, where: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k ids and distances per query row; missing hits are id -1. `where` is a Milvus
        boolean expression over `fields` (`index.filters`): only rows it keeps are searched."""

    def fetch(self, ids) -> np.ndarray:
        """Stored vectors for `ids`, rows in the order asked; id -1 (no hit) gives a zero row."""

    def metadata(self, ids=None) -> pd.DataFrame:
        """The `id` and `fields` of the rows `ids` (every row when None), one row per id found."""

    def delete(self, ids) -> None:
        """Remove rows by id (ids not stored are ignored)."""

    def describe_index(self) -> dict | None:
        """Index type, metric and build parameters as the engine reports them."""

    def count(self, where: str | None = None) -> int: ...

    def drop(self) -> None: ...

    def close(self) -> None: ...


FIELD_DTYPES = {"str": object, "int": np.int64, "float": np.float64}  # metadata kinds and their numpy columns
FIELD_KINDS = tuple(FIELD_DTYPES)


def check_fields(fields: Mapping[str, str] | None) -> dict[str, str]:
    """Metadata field declarations, checked: identifiers, not `id`, kinds from FIELD_KINDS."""
    fields = dict(fields or {})
    for name, kind in fields.items():
        if not name.isidentifier() or name in ("id", "embedding"):
            raise UsageError(f"metadata field name {name!r} is not allowed (an identifier other than id, embedding)")
        if kind not in FIELD_KINDS:
            raise UsageError(f"metadata field {name!r} has kind {kind!r}; choose one of {', '.join(FIELD_KINDS)}")
    return fields


def metadata_columns(fields: dict[str, str], metadata: Mapping[str, Sequence] | None, rows: int) -> dict:
    """`metadata` as one numpy column per declared field (text as objects), checked against `fields`."""
    metadata = metadata or {}
    if set(metadata) != set(fields):
        missing, extra = sorted(set(fields) - set(metadata)), sorted(set(metadata) - set(fields))
        raise UsageError(f"metadata must give exactly the engine's fields {sorted(fields)}"
                         + (f"; missing {missing}" if missing else "") + (f"; not declared {extra}" if extra else ""))
    columns = {}
    for name, kind in fields.items():
        column = np.asarray(list(metadata[name]), dtype=FIELD_DTYPES[kind])
        if len(column) != rows:
            raise UsageError(f"metadata field {name!r} has {len(column)} values for {rows} rows")
        columns[name] = np.array([str(v) for v in column], dtype=object) if kind == "str" else column
    return columns


def as_matrix(vectors, dim: int | None = None) -> np.ndarray:
    """2-D C-contiguous float32, with a clear error for a wrong width."""
    matrix = np.ascontiguousarray(np.atleast_2d(np.asarray(vectors, dtype=np.float32)))
    if matrix.ndim != 2:
        raise ValueError(f"expected a 2-D array of vectors, got shape {matrix.shape}")
    if dim is not None and matrix.shape[1] != dim:
        raise DimensionMismatchError(f"vectors have dimension {matrix.shape[1]}, the index expects {dim}")
    return matrix


def check_metric(metric: str) -> str:
    metric = metric.upper()
    if metric not in METRICS:
        raise UsageError(f"unknown metric {metric!r}: choose one of {', '.join(METRICS)}")
    return metric


def best_columns(scores: np.ndarray, k: int) -> np.ndarray:
    """The exact top-k: columns of each row's k largest scores, largest first, equal scores in column
    order (as a stable sort of the whole row gives them), found by partitioning, not sorting, each row."""
    k = min(k, scores.shape[1])
    if k in (0, scores.shape[1]):
        return np.argsort(-scores, axis=1, kind="stable")[:, :k]
    picked = np.sort(np.argpartition(-scores, k - 1, axis=1)[:, :k], axis=1)  # the k best, in column order
    picked_scores = np.take_along_axis(scores, picked, 1)
    best = np.take_along_axis(picked, np.argsort(-picked_scores, axis=1, kind="stable"), 1)
    tied = (scores >= picked_scores.min(1, keepdims=True)).sum(1) > k  # equal scores cross the cut
    if tied.any():  # the partition chose among them arbitrarily: sort those rows whole
        best[tied] = np.argsort(-scores[tied], axis=1, kind="stable")[:, :k]
    return best


def top_k(scores: np.ndarray, ids: np.ndarray, k: int, larger_is_closer: bool) -> tuple[np.ndarray, np.ndarray]:
    """The k best of each row of `scores` (higher is better) as (ids, distances), padded with -1 / NaN.

    Distances are reported as the engines report them: similarities when `larger_is_closer`,
    else the negated score (a distance).
    """
    best = best_columns(scores, k)
    picked = np.take_along_axis(scores, best, axis=1)
    return padded(ids[best], picked if larger_is_closer else -picked, k)


def padded(ids: np.ndarray, dists: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Widen (n, k_found) results to (n, k) with id -1 and distance NaN, the engines' "no hit"."""
    ids, dists = np.asarray(ids, np.int64), np.asarray(dists, np.float32)
    if ids.shape[1] == k:
        return ids, dists
    out_ids = np.full((len(ids), k), -1, np.int64)
    out_dists = np.full((len(ids), k), np.nan, np.float32)
    out_ids[:, :ids.shape[1]], out_dists[:, :ids.shape[1]] = ids, dists
    return out_ids, out_dists
