"""Instance recipes scored on any gallery and query folders laid out as `<group>/<image>`: a
query's relevant set is its group's gallery images.

A recipe (`retrieval.recipes.Recipe`) is an encoder (a class-level embedding or regional GeM) plus
steps after the network: whitening, database-side augmentation, query expansion, diffusion,
verification. Every step is learned from the gallery alone, so a recipe is fixed before it meets a
query set.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..config import Settings
from ..embed.cache import EmbeddingCache
from ..embed.stream import embed_paths
from ..index.exact import ExactEngine
from ..models.descriptors import Pooling
from ..retrieval.recipes import Recipe, RecipeEmbedder
from ..retrieval.search import Query, ReadPath, Step
from ..retrieval.verify import Verification, Verifier
from .metrics import INSTANCE, evaluate, relevant_by_group
from .timing import time_runs

K = 10


class Descriptors:
    """Each model built once and each recipe encoder's vectors kept per paths (`Recipe.encoder`)."""

    def __init__(self, settings: Settings, cache: EmbeddingCache | None):
        self.settings, self.cache, self._embedders, self._vectors, self.ms_per_image = settings, cache, {}, {}, {}
        self._local = {}

    def local_store(self, paths: list):
        """The local features of these gallery images, each under its position, found once per gallery."""
        from ..index.descriptors import DescriptorIndex  # hnswlib: only for local-feature recipes
        from ..retrieval.local import index_images

        key = tuple(paths)
        if key not in self._local:
            store = DescriptorIndex()
            for failure in index_images(store, range(len(paths)), paths):
                warnings.warn(f"skipped {failure.path}: {failure.reason}", stacklevel=2)
            self._local = {key: store}  # one gallery at a time: a big one takes hundreds of MB
        return self._local[key]

    def embedder(self, recipe: Recipe) -> RecipeEmbedder:
        return RecipeEmbedder(recipe.encoder, self.settings, self._embedders)

    def vectors(self, recipe: Recipe, paths: list) -> tuple[np.ndarray, list[int]]:
        """(the recipe's vectors, their positions in `paths`): unreadable files are left out, with a warning."""
        key = (recipe.encoder, tuple(paths))
        if key not in self._vectors:
            embedded = embed_paths(paths, self.embedder(recipe), self.cache)
            for failure in embedded.report.failures:
                warnings.warn(f"skipped {failure.path}: {failure.reason}", stacklevel=2)
            self._vectors[key] = embedded.vectors, embedded.positions
        return self._vectors[key]

    def time_per_image(self, descriptor: Recipe, paths: list, sample: int = 32) -> float:
        """Milliseconds to decode and embed one image, measured without the cache on `sample` paths."""
        if descriptor not in self.ms_per_image:
            chosen = paths[:sample]
            embedder = self.embedder(descriptor)
            embed_paths(chosen[:4], embedder, progress=False)  # warm up the runtime
            embedding = time_runs(lambda: embed_paths(chosen, embedder, progress=False))
            self.ms_per_image[descriptor] = 1000 * embedding.total / len(chosen)
        return self.ms_per_image[descriptor]


@dataclass
class Prepared:
    """A recipe's gallery indexed once: its steps fitted on the gallery (whitening, DBA, the diffusion
    graph) and the vectors they leave stored in an exact engine, gallery position i as id i."""

    recipe: Recipe
    path: ReadPath

    @classmethod
    def fit(cls, recipe: Recipe, gallery: np.ndarray) -> Prepared:
        engine = ExactEngine("IP")
        path = ReadPath(engine, recipe.steps())
        engine.add(np.arange(len(gallery)), path.index(gallery))
        engine.commit()
        return cls(recipe, path)

    def rank(self, queries: np.ndarray, query_paths, outer: Step | Verifier | None = None,
             depth: int = K) -> np.ndarray:
        """Each query's top `depth` gallery positions through the recipe's steps, after an `outer`
        step over the same gallery if given (local matching; a `Verifier`: its verification)."""
        outer = Verification.over(outer) if isinstance(outer, Verifier) else outer
        path = ReadPath(self.path.engine, [outer, *self.path.steps]) if outer else self.path
        return path.find(Query(queries, list(query_paths)), depth).ids[:, :min(depth, self.path.count())]


def score(ranked: np.ndarray, gallery_groups, query_groups, k: int = K) -> dict:
    """The instance metrics (`metrics.INSTANCE`: top-1, hit@k, AP@k, mHR@k, N-S) of gallery
    positions ranked per query, a query's relevant images being its group's."""
    return evaluate(relevant_by_group(list(gallery_groups), list(query_groups)), ranked.tolist(), k, INSTANCE)


def measure(recipe: Recipe, descriptors: Descriptors, gallery, queries, verifier: Verifier | None = None,
            **columns) -> dict:
    """One row: `gallery` and `queries` are frames with `path` and `label` (the group)."""
    gallery_vectors, kept = descriptors.vectors(recipe, gallery["path"].tolist())
    query_vectors, asked = descriptors.vectors(recipe, queries["path"].tolist())
    gallery, queries = gallery.iloc[kept], queries.iloc[asked]
    gallery_paths, query_paths = gallery["path"].tolist(), queries["path"].tolist()
    prepared = Prepared.fit(recipe, gallery_vectors)
    outer = None  # the gallery's local features are indexing work too: found before the clock starts
    if recipe.verify:
        if verifier is None or list(verifier.gallery_paths) != gallery_paths:  # positions must match
            verifier = Verifier(gallery_paths)
        verifier.prefetch(range(len(gallery_paths)))
        outer = Verification.over(verifier)
    store_columns = {}
    if recipe.local:
        from ..retrieval.local import LocalMatching

        # features and graph; 0 s when an earlier row (another edit) built this gallery's store
        built = time_runs(lambda: descriptors.local_store(gallery_paths).build())
        store = built.result
        outer = LocalMatching(store)
        store_columns = {"store_mb": round(store.memory_bytes() / 1e6, 1),
                         "kb_per_image": round(store.memory_bytes() / 1e3 / len(gallery_paths), 1),
                         "store_build_s": round(built.total, 1)}
    ranking = time_runs(lambda: prepared.rank(query_vectors, query_paths, outer))
    ranked, search_ms = ranking.result, 1000 * ranking.total / len(query_paths)
    embed_ms = descriptors.time_per_image(recipe.encoder, query_paths)
    return {**columns, "recipe": recipe.name, **score(ranked, gallery["label"], queries["label"]),
            "embed_ms": round(embed_ms, 1), "search_ms": round(search_ms, 1),
            "ms_per_query": round(embed_ms + search_ms, 1), **store_columns}


GEM = Pooling()
# Fixed before any scoring on the holdout and ukbench sets. The instance rows add one switch to the
# one above; the last four re-rank class-level features over the gallery's neighbours, their
# settings the best on the classes benchmark's test queries (DBA 1-5 x QE 1-5; `DiffusionSettings`).
# DBA and query expansion weigh neighbours by cosine^3 (alpha-QE's usual alpha).
INSTANCE_RECIPES = (
    Recipe("efficientnet_lite0"),
    Recipe("efficientnet_lite2"),
    Recipe("efficientnet_lite0", pooling=GEM),
    Recipe("efficientnet_lite0", pooling=GEM, whiten=0.5),
    Recipe("efficientnet_lite0", pooling=GEM, whiten=0.5, expand=2, alpha=3),
    Recipe("efficientnet_lite0", pooling=GEM, whiten=0.5, dba=2, expand=2, alpha=3),
    Recipe("efficientnet_lite0", pooling=GEM, whiten=0.5, verify=True),
    Recipe("efficientnet_lite2", pooling=GEM, whiten=0.5),
    Recipe("efficientnet_lite2", pooling=GEM, whiten=0.5, verify=True),
    Recipe("efficientnet_lite2", dba=5, expand=3, alpha=3),
    Recipe("efficientnet_lite2", diffuse=True),
    Recipe("efficientnet_lite0", diffuse=True),
    Recipe("efficientnet_lite2", pooling=GEM, whiten=0.5, diffuse=True),
)
# Matching by local features over the whole gallery (`efficientnet_lite0+local`; settings in
# `retrieval.local`): run with `benchmarks/instance.py --recipes local`.
LOCAL_RECIPES = (Recipe("efficientnet_lite0", local=True),)
