"""Re-ranking steps learned from the gallery alone (no labels), each a `search.Step`.

- whitening: PCA on the gallery's descriptors, each component scaled by eigenvalue^(-power/2),
  so directions every image shares (background, lighting) stop dominating the cosine; power 1 is
  full whitening, smaller powers shrink it (Jégou and Chum, ECCV 2012);
- database-side augmentation (DBA): each gallery vector replaced by the weighted mean of its
  nearest gallery neighbours, so an object's views pull together (Arandjelović and Zisserman 2012);
- query expansion: the query re-issued as the weighted mean of itself and its top hits, each hit
  weighing cosine^alpha: alpha 0 is the plain mean (average QE, Chum et al. 2007), larger alphas
  trust the closest hits most (alpha-QE, Radenović et al. 2018).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import UsageError
from ..index.base import best_columns
from ..vectors import l2_normalize
from .search import Found, Query, ReadPath, Step


@dataclass
class Whitening(Step):
    """Step: gallery and queries whitened alike, learned from the gallery as it is indexed."""

    power: float = 0.5
    keep: int | None = None  # at most this many components (None: all that carry variance)
    mean: np.ndarray | None = field(default=None, repr=False)
    projection: np.ndarray | None = field(default=None, repr=False)  # (dim, kept), scaled by eigenvalue^(-power/2)

    @classmethod
    def fit(cls, gallery: np.ndarray, power: float = 0.5, keep: int | None = None) -> Whitening:
        whitening = cls(power, keep)
        whitening.learn(gallery)
        return whitening

    def learn(self, gallery: np.ndarray) -> None:
        """Learn it from the gallery's unit-length descriptors (at most one fewer component than
        the gallery has images: the rest carry no variance)."""
        gallery = np.asarray(gallery, np.float64)
        mean = gallery.mean(0)
        _, singular, components = np.linalg.svd(gallery - mean, full_matrices=False)
        eigen = singular ** 2 / max(1, len(gallery) - 1)
        keep = min(self.keep or len(eigen), int((eigen > eigen[0] * 1e-9).sum()))
        scale = eigen[:keep] ** (-self.power / 2)
        self.mean, self.projection = mean.astype(np.float32), (components[:keep].T * scale).astype(np.float32)

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        if self.projection is None:
            raise UsageError("whitening is learned from the gallery: index the gallery through the read path first")
        return l2_normalize((np.asarray(vectors, np.float32) - self.mean) @ self.projection)

    def index(self, gallery: np.ndarray) -> np.ndarray:
        self.learn(gallery)
        return self(gallery)

    def find(self, query: Query, k: int, below: ReadPath) -> Found:
        return below.find(query.moved_to(self(query.vectors)), k)


@dataclass
class QueryExpansion(Step):
    """Step: each query searched again as the weighted mean of itself and its top `hits`."""

    hits: int
    alpha: float = 0.0
    unit: bool = True  # the expanded query scaled to unit length (cosine search), else the weighted mean

    def find(self, query: Query, k: int, below: ReadPath) -> Found:
        first = below.find(query, self.hits)
        expanded = weighted_mean(query.vectors, below.fetch(first.ids), first.distances, self.alpha, self.unit)
        return below.find(query.moved_to(expanded), k)


@dataclass
class DatabaseAugmentation(Step):
    """Step (gallery side): each gallery vector stored as the weighted mean of its nearest."""

    hits: int  # a gallery vector's nearest, itself the first
    alpha: float = 0.0
    applied: bool = field(default=False, repr=False)

    def index(self, gallery: np.ndarray) -> np.ndarray:
        self.applied = True
        return expand(gallery, gallery, self.hits, self.alpha)

    def find(self, query: Query, k: int, below: ReadPath) -> Found:
        if not self.applied:  # searching vectors stored without it would quietly skip it
            raise UsageError("DBA changes the gallery's vectors: index the gallery through the read path first")
        return below.find(query, k)


def weighted_mean(vectors: np.ndarray, hits: np.ndarray, cosines: np.ndarray, alpha: float,
                  unit: bool = True) -> np.ndarray:
    """Each vector plus its hits (`hits[i]`: vector i's, (k, dim)), a hit weighing cosine^alpha (a
    missing one, cosine NaN, weighs nothing unless alpha is 0); scaled to unit length when `unit`
    (dividing by the weights first would change nothing but rounding), else divided by the weights."""
    weights = np.nan_to_num(np.clip(cosines, 0, None)) ** alpha
    total = np.asarray(vectors, np.float32) + np.einsum("qk,qkd->qd", weights, hits)
    return l2_normalize(total) if unit else total / (1 + weights.sum(1, keepdims=True))


def expand(vectors: np.ndarray, against: np.ndarray, k: int = 3, alpha: float = 3.0) -> np.ndarray:
    """Each vector plus its k nearest in `against`, weighted by cosine^alpha (alpha-QE in memory; with
    the gallery as `against`, DBA: a vector's nearest neighbour is then itself)."""
    ids, cosines = neighbours(vectors, against, k)
    return weighted_mean(vectors, np.asarray(against, np.float32)[ids], cosines, alpha)


def neighbours(queries: np.ndarray, gallery: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, cosines) of each query's k most similar gallery vectors, best first (exact)."""
    return best_of(np.asarray(queries, np.float32) @ np.asarray(gallery, np.float32).T, k)


def best_of(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(columns, scores) of each row's k largest scores, largest first (`index.base.best_columns`)."""
    columns = best_columns(scores, k)
    return columns, np.take_along_axis(scores, columns, 1)
