"""Instance recipes scored on any gallery and query folders laid out as `<group>/<image>`: a
query's relevant set is its group's gallery images.

A recipe is a descriptor (a class-level embedding or regional GeM) plus switches applied after the
network: whitening, database-side augmentation, query expansion, diffusion, verification. Every switch is
learned from the gallery alone, so a recipe is fixed before it meets a query set.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np

from ..config import Settings
from ..embed.cache import EmbeddingCache
from ..embed.stream import embed_paths
from ..models import build_embedder
from ..models.descriptors import Pooling, build_instance_embedder
from ..retrieval.diffusion import Diffusion
from ..retrieval.postprocess import Whitening, expand, neighbours
from ..retrieval.verify import Verifier
from ..vectors import l2_normalize
from .metrics import average_precision, hit_ratio

K = 10


@dataclass(frozen=True)
class InstanceRecipe:
    model: str = "efficientnet_lite0"
    pooling: Pooling | None = None  # None: the class-level embedding (center crop, average pool)
    whiten: float | None = None  # whitening power (learned on the gallery)
    dba: int = 0  # database-side augmentation with this many neighbours
    qe: int = 0  # query expansion with this many hits
    diffuse: bool = False  # rank by diffusion over the gallery's neighbour graph (`diffusion`)
    verify: bool = False  # geometric re-ranking of the top 10

    @property
    def name(self) -> str:
        parts = [self.model.replace("efficientnet_", ""), "regional GeM" if self.pooling else "cosine"]
        parts += [f"whiten {self.whiten:g}"] if self.whiten else []
        parts += [f"DBA {self.dba}"] if self.dba else []
        parts += [f"QE {self.qe}"] if self.qe else []
        parts += ["diffusion"] if self.diffuse else []
        parts += ["verify"] if self.verify else []
        return " + ".join(parts)

    @property
    def descriptor(self) -> tuple:
        return self.model, self.pooling


class Descriptors:
    """Embedders built once per descriptor and their vectors kept per (descriptor, paths)."""

    def __init__(self, settings: Settings, cache: EmbeddingCache | None):
        self.settings, self.cache, self._embedders, self._vectors, self.ms_per_image = settings, cache, {}, {}, {}

    def embedder(self, descriptor: tuple):
        if descriptor not in self._embedders:
            model, pooling = descriptor
            self._embedders[descriptor] = (build_instance_embedder(model, pooling, self.settings) if pooling
                                           else build_embedder(model, settings=self.settings))
        return self._embedders[descriptor]

    def vectors(self, descriptor: tuple, paths: list) -> tuple[np.ndarray, list[int]]:
        """(unit-length vectors, their positions in `paths`): unreadable files are left out, with a warning."""
        key = (descriptor, tuple(paths))
        if key not in self._vectors:
            embedded = embed_paths(paths, self.embedder(descriptor), self.cache)
            for failure in embedded.report.failures:
                warnings.warn(f"skipped {failure.path}: {failure.reason}", stacklevel=2)
            self._vectors[key] = l2_normalize(embedded.vectors), embedded.positions
        return self._vectors[key]

    def time_per_image(self, descriptor: tuple, paths: list, sample: int = 32) -> float:
        """Milliseconds to decode and embed one image, measured without the cache on `sample` paths."""
        if descriptor not in self.ms_per_image:
            chosen = paths[:sample]
            embedder = self.embedder(descriptor)
            embed_paths(chosen[:4], embedder, progress=False)  # warm up the runtime
            start = time.perf_counter()
            embed_paths(chosen, embedder, progress=False)
            self.ms_per_image[descriptor] = 1000 * (time.perf_counter() - start) / len(chosen)
        return self.ms_per_image[descriptor]


@dataclass
class Prepared:
    """The gallery side of a recipe, done once at indexing time: whitening fitted, DBA applied,
    the diffusion graph built."""

    recipe: InstanceRecipe
    gallery: np.ndarray
    whitening: Whitening | None
    diffusion: Diffusion | None = None

    @classmethod
    def fit(cls, recipe: InstanceRecipe, gallery: np.ndarray) -> Prepared:
        whitening = Whitening.fit(gallery, recipe.whiten) if recipe.whiten else None
        gallery = whitening(gallery) if whitening else gallery
        gallery = expand(gallery, gallery, recipe.dba) if recipe.dba else gallery
        return cls(recipe, gallery, whitening, Diffusion.fit(gallery) if recipe.diffuse else None)

    def rank(self, queries: np.ndarray, query_paths, verifier: Verifier | None = None, depth: int = K) -> np.ndarray:
        """Each query's top `depth` gallery positions under the recipe's query-side switches."""
        queries = self.whitening(queries) if self.whitening else queries
        if self.recipe.qe:
            queries = expand(queries, self.gallery, self.recipe.qe)
        deep = max(depth, verifier.top if verifier else 0)
        ranked = self.diffusion.rank(queries, deep) if self.diffusion else neighbours(queries, self.gallery, deep)[0]
        if verifier:
            ranked = np.stack([verifier.rerank(path, row) for path, row in zip(query_paths, ranked)])
        return ranked[:, :depth]


def score(ranked: np.ndarray, gallery_groups, query_groups, k: int = K) -> dict:
    """top-1, hit@k, AP@k, mHR@k (recall@k) and the N-S score (group members in the top 4)."""
    gallery_groups = np.asarray(gallery_groups)
    members = {g: set(np.flatnonzero(gallery_groups == g)) for g in set(query_groups)}
    rows = [(members[g], list(map(int, r))) for g, r in zip(query_groups, ranked)]
    return {
        "queries": len(rows),
        "top1": float(np.mean([r[0] in rel for rel, r in rows])),
        "hit10": float(np.mean([bool(rel & set(r[:k])) for rel, r in rows])),
        "map10": float(np.mean([average_precision(rel, r, k) for rel, r in rows])),
        "mhr10": float(np.mean([hit_ratio(rel, r, k) for rel, r in rows])),
        "ns": float(np.mean([len(rel & set(r[:4])) for rel, r in rows])),
    }


def measure(recipe: InstanceRecipe, descriptors: Descriptors, gallery, queries, verifier: Verifier | None = None,
            **columns) -> dict:
    """One row: `gallery` and `queries` are frames with `path` and `label` (the group)."""
    gallery_vectors, kept = descriptors.vectors(recipe.descriptor, gallery["path"].tolist())
    query_vectors, asked = descriptors.vectors(recipe.descriptor, queries["path"].tolist())
    gallery, queries = gallery.iloc[kept], queries.iloc[asked]
    gallery_paths, query_paths = gallery["path"].tolist(), queries["path"].tolist()
    prepared = Prepared.fit(recipe, gallery_vectors)
    if recipe.verify:  # the gallery's local features are indexing work too: found before the clock starts
        if verifier is None or list(verifier.gallery_paths) != gallery_paths:  # positions must match
            verifier = Verifier(gallery_paths)
        verifier.prefetch(range(len(gallery_paths)))
    start = time.perf_counter()
    ranked = prepared.rank(query_vectors, query_paths, verifier if recipe.verify else None)
    search_ms = 1000 * (time.perf_counter() - start) / len(query_paths)
    embed_ms = descriptors.time_per_image(recipe.descriptor, query_paths)
    return {**columns, "recipe": recipe.name, **score(ranked, gallery["label"], queries["label"]),
            "embed_ms": round(embed_ms, 1), "search_ms": round(search_ms, 1),
            "ms_per_query": round(embed_ms + search_ms, 1)}


GEM = Pooling()
# Fixed before any scoring on the holdout and ukbench sets. The instance rows add one switch to the
# one above; the last four re-rank class-level features over the gallery's neighbours, their
# settings the best on the classes benchmark's test queries (DBA 1-5 x QE 1-5; `DiffusionSettings`).
INSTANCE_RECIPES = (
    InstanceRecipe("efficientnet_lite0"),
    InstanceRecipe("efficientnet_lite2"),
    InstanceRecipe("efficientnet_lite0", GEM),
    InstanceRecipe("efficientnet_lite0", GEM, whiten=0.5),
    InstanceRecipe("efficientnet_lite0", GEM, whiten=0.5, qe=2),
    InstanceRecipe("efficientnet_lite0", GEM, whiten=0.5, dba=2, qe=2),
    InstanceRecipe("efficientnet_lite0", GEM, whiten=0.5, verify=True),
    InstanceRecipe("efficientnet_lite2", GEM, whiten=0.5),
    InstanceRecipe("efficientnet_lite2", GEM, whiten=0.5, verify=True),
    InstanceRecipe("efficientnet_lite2", dba=5, qe=3),
    InstanceRecipe("efficientnet_lite2", diffuse=True),
    InstanceRecipe("efficientnet_lite0", diffuse=True),
    InstanceRecipe("efficientnet_lite2", GEM, whiten=0.5, diffuse=True),
)
