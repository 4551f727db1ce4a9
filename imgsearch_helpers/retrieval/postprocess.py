"""What is done to descriptors after the network, all learned from the gallery alone (no labels).

- whitening: PCA on the gallery's descriptors, each component scaled by eigenvalue^(-power/2),
  so directions every image shares (background, lighting) stop dominating the cosine; power 1 is
  full whitening, smaller powers shrink it (Jégou and Chum, ECCV 2012);
- database-side augmentation (DBA): each gallery vector replaced by the weighted mean of its
  nearest gallery neighbours, so an object's views pull together (Arandjelović and Zisserman 2012);
- query expansion (alpha-QE): the query re-issued as the weighted mean of itself and its top hits.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..vectors import l2_normalize


@dataclass
class Whitening:
    mean: np.ndarray
    projection: np.ndarray  # (dim, kept) components scaled by their eigenvalue^(-power/2)

    @classmethod
    def fit(cls, gallery: np.ndarray, power: float = 0.5, keep: int | None = None) -> Whitening:
        """Learn it from the gallery's unit-length descriptors. `keep` limits the components
        (at most one fewer than the gallery's size: the rest carry no variance)."""
        gallery = np.asarray(gallery, np.float64)
        mean = gallery.mean(0)
        _, singular, components = np.linalg.svd(gallery - mean, full_matrices=False)
        eigen = singular ** 2 / max(1, len(gallery) - 1)
        keep = min(keep or len(eigen), int((eigen > eigen[0] * 1e-9).sum()))
        scale = eigen[:keep] ** (-power / 2)
        return cls(mean.astype(np.float32), (components[:keep].T * scale).astype(np.float32))

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        return l2_normalize((np.asarray(vectors, np.float32) - self.mean) @ self.projection)


def neighbours(queries: np.ndarray, gallery: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, cosines) of each query's k most similar gallery vectors, best first (exact)."""
    return best_of(np.asarray(queries, np.float32) @ np.asarray(gallery, np.float32).T, k)


def best_of(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(columns, scores) of each row's k largest scores, largest first."""
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1)
    ids = np.take_along_axis(top, order, 1)
    return ids, np.take_along_axis(scores, ids, 1)


def expand(vectors: np.ndarray, against: np.ndarray, k: int = 3, alpha: float = 3.0) -> np.ndarray:
    """Each vector plus its k nearest in `against`, weighted by cosine^alpha (alpha-QE; with the
    gallery as `against`, DBA: a vector's nearest neighbour is then itself)."""
    ids, cosines = neighbours(vectors, against, k)
    weights = np.clip(cosines, 0, None) ** alpha
    neighbourhood = np.einsum("qk,qkd->qd", weights, np.asarray(against, np.float32)[ids])
    return l2_normalize(np.asarray(vectors, np.float32) + neighbourhood)
