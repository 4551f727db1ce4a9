"""Diffusion re-ranking: a query's score spreads from its top hits along the gallery's own
nearest-neighbour graph, so gallery images that sit in the same dense cluster as the hits rise
even when they look less like the query itself (Iscen et al., "Efficient diffusion on region
manifolds", CVPR 2017; Zhou et al., "Ranking on data manifolds", NIPS 2003).

The graph is learned from the gallery alone (no labels): each image is joined to the images that
are among its k nearest and have it among theirs (mutual neighbours), weighted by cosine^gamma and
normalized symmetrically (S = D^-1/2 W D^-1/2). A query starts as its `seeds` best hits, weighted
the same way, and the ranking is f = (I - alpha S)^-1 y, found by the fixed-point iteration
f <- alpha S f + y (it converges because alpha < 1 and S's eigenvalues lie in [-1, 1]).
It helps classes (many gallery images per group, linked through each other) and can hurt copies
(one relevant image, which a cluster around it can outvote): `benchmarks/instance.py` measures both.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from .postprocess import best_of, neighbours

TOLERANCE = 1e-6  # stop once no score moves by more than this share of the largest
MAX_STEPS = 200  # alpha 0.8 reaches the tolerance in about 60
CHUNK = 2048  # gallery rows compared with the whole gallery at a time (bounds the n x n scores)


@dataclass(frozen=True)
class DiffusionSettings:
    # Chosen as the best of a grid (k 5/10/20, alpha 0.8/0.9/0.99, gamma 1/3, seeds 5/10) on the
    # tutorial's test queries with Lite2 features; the holdout and ukbench sets were not used to choose.
    k: int = 10  # neighbours per gallery image in the graph
    alpha: float = 0.8  # how far scores spread: 0 keeps the seeds only, near 1 spreads over the cluster
    gamma: float = 1.0  # edge and seed weights are cosine^gamma
    seeds: int = 5  # the query's top hits that start the walk


DEFAULTS = DiffusionSettings()


@dataclass
class Diffusion:
    gallery: np.ndarray  # unit vectors, (n, dim)
    graph: sparse.csr_matrix  # S, symmetric, (n, n)
    settings: DiffusionSettings

    @classmethod
    def fit(cls, gallery: np.ndarray, settings: DiffusionSettings = DEFAULTS) -> Diffusion:
        gallery = np.asarray(gallery, np.float32)
        return cls(gallery, mutual_graph(gallery, settings.k, settings.gamma), settings)

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """(queries, n) diffused scores; gallery images the walk never reaches score 0."""
        return self._spread(self._cosines(queries))

    def rank(self, queries: np.ndarray, depth: int) -> np.ndarray:
        """Each query's top `depth` gallery positions: by diffused score, then (for the images it
        never reached) by cosine to the query."""
        cosines = self._cosines(queries)
        order = np.lexsort((-cosines, -self._spread(cosines)), axis=1)  # the last key sorts first
        return order[:, :min(depth, len(self.gallery))]

    def _cosines(self, queries: np.ndarray) -> np.ndarray:
        return np.asarray(queries, np.float32) @ self.gallery.T

    def _spread(self, cosines: np.ndarray) -> np.ndarray:
        """Iterate f <- alpha S f + y from the seeds y (each query's best cosines) until f settles."""
        s = self.settings
        ids, best = best_of(cosines, s.seeds)
        start = np.zeros_like(cosines)
        np.put_along_axis(start, ids, np.clip(best, 0, None) ** s.gamma, 1)
        scores = start
        for _ in range(MAX_STEPS):
            following = s.alpha * (self.graph @ scores.T).T + start  # S is symmetric
            moved = np.abs(following - scores).max() if len(scores) else 0.0
            scores = following
            if moved <= TOLERANCE * max(float(scores.max(initial=0.0)), 1e-12):
                break
        return scores


def mutual_graph(gallery: np.ndarray, k: int, gamma: float) -> sparse.csr_matrix:
    """S = D^-1/2 W D^-1/2 over mutual k-nearest neighbours (self-loops left out)."""
    n = len(gallery)
    found = [neighbours(gallery[start:start + CHUNK], gallery, min(k + 1, n)) for start in range(0, n, CHUNK)]
    ids, cosines = (np.concatenate(parts) for parts in zip(*found))  # each image is its own nearest
    rows = np.repeat(np.arange(n), ids.shape[1])
    weights = sparse.csr_matrix((np.clip(cosines.ravel(), 0, None) ** gamma, (rows, ids.ravel())), shape=(n, n))
    weights.setdiag(0)
    weights = weights.minimum(weights.T).tocsr()  # kept only where both ends chose each other
    weights.eliminate_zeros()
    degree = np.asarray(weights.sum(1)).ravel()
    inverse_root = sparse.diags(np.where(degree > 0, 1 / np.sqrt(np.maximum(degree, 1e-12)), 0.0))
    return (inverse_root @ weights @ inverse_root).astype(np.float32).tocsr()
