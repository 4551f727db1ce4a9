"""The small interface every index engine implements, and helpers they share."""
from __future__ import annotations

from typing import Protocol

import numpy as np

from ..errors import DimensionMismatchError, UsageError

METRICS = ("L2", "IP", "COSINE")


class SearchEngine(Protocol):
    name: str
    metric: str

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert or replace rows by id (re-adding an id replaces it: ingest is idempotent)."""

    def commit(self) -> None:
        """Make everything added searchable through the index (flush, build, load)."""

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k ids and distances per query row; missing hits are id -1."""

    def fetch(self, ids) -> np.ndarray:
        """Stored vectors for `ids`, rows in the order asked; id -1 (no hit) gives a zero row."""

    def describe_index(self) -> dict | None:
        """Index type, metric and build parameters as the engine reports them."""

    def count(self) -> int: ...

    def drop(self) -> None: ...

    def close(self) -> None: ...


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


def top_k(scores: np.ndarray, ids: np.ndarray, k: int, larger_is_closer: bool) -> tuple[np.ndarray, np.ndarray]:
    """The k best of each row of `scores` (higher is better) as (ids, distances), padded with -1 / NaN.

    Distances are reported as the engines report them: similarities when `larger_is_closer`,
    else the negated score (a distance).
    """
    k_eff = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k_eff]
    out_ids = np.full((len(scores), k), -1, np.int64)
    out_dists = np.full((len(scores), k), np.nan, np.float32)
    out_ids[:, :k_eff] = ids[top]
    picked = np.take_along_axis(scores, top, axis=1)
    out_dists[:, :k_eff] = picked if larger_is_closer else -picked
    return out_ids, out_dists


def padded(ids: np.ndarray, dists: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Widen (n, k_found) results to (n, k) with id -1 and distance NaN, the engines' "no hit"."""
    ids, dists = np.asarray(ids, np.int64), np.asarray(dists, np.float32)
    if ids.shape[1] == k:
        return ids, dists
    out_ids = np.full((len(ids), k), -1, np.int64)
    out_dists = np.full((len(ids), k), np.nan, np.float32)
    out_ids[:, :ids.shape[1]], out_dists[:, :ids.shape[1]] = ids, dists
    return out_ids, out_dists
