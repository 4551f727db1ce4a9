"""Search recipes: how images become vectors and how a query is searched, one switch per technique.

On top of one or more models, a recipe chooses:
- `head`: "features" (pre-logit features, helps any image collection) or "probabilities" (the
  ImageNet classifier's class distribution: strong when the collection's classes are ImageNet
  classes, as in the tutorial data, and no help for pictures outside them);
- `flip`: average each image's embedding with its mirror image's (test-time augmentation);
- several models: an ensemble, each model's unit vectors concatenated;
- `expand`: average query expansion: search, average the query with its top `expand` hits,
  search again;
- `normalize`: unit vectors searched by inner product (cosine); False keeps the tutorial's raw
  vectors and L2.
Flip, ensembles and query expansion work for any image collection.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .cache import EmbeddingCache
from .config import Settings
from .embed import EmbedReport, embed_paths
from .index import SearchEngine, l2_normalize
from .metrics import evaluate
from .models import Embedder, build_embedder
from .search import IngestReport, ingest_embedded

HEADS = ("features", "probabilities")


@dataclass(frozen=True)
class Recipe:
    models: tuple[str, ...] = ("efficientnet_lite0",)
    head: str = "features"
    flip: bool = False
    expand: int = 0
    normalize: bool = True

    def __post_init__(self):
        if isinstance(self.models, str):
            object.__setattr__(self, "models", (self.models,))
        if not self.models:
            raise ValueError("a recipe needs at least one model")
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}: choose one of {', '.join(HEADS)}")
        if self.expand < 0:
            raise ValueError(f"expand must be 0 (off) or a number of hits, not {self.expand}")

    @property
    def model(self) -> str:
        return " + ".join(self.models)

    @property
    def technique(self) -> str:
        base = {"probabilities": "class probabilities", "features": "cosine" if self.normalize else "raw L2"}
        parts = [base[self.head]]
        parts += ["flip"] if self.flip else []
        parts += ["ensemble"] if len(self.models) > 1 else []
        parts += [f"query expansion {self.expand}"] if self.expand else []
        return " + ".join(parts)

    @property
    def metric(self) -> str:
        return "IP" if self.normalize or self.head == "probabilities" else "L2"

    @property
    def imagenet_only(self) -> bool:
        """True when the technique relies on the collection's classes being ImageNet classes."""
        return self.head == "probabilities"


class RecipeEmbedder:
    """Turns image paths into a recipe's vectors; every model pass goes through the embedding cache."""

    def __init__(self, recipe: Recipe, settings: Settings | None = None, embedders: dict | None = None):
        self.recipe = recipe
        loaded = embedders if embedders is not None else {}
        for name in recipe.models:  # reuse already-loaded models (and their traces) when given
            if name not in loaded:
                loaded[name] = build_embedder(name, settings=settings)
        self.embedders: list[Embedder] = [loaded[name] for name in recipe.models]

    @property
    def passes(self) -> list[Embedder]:
        """One network pass per model, two with `flip` (the mirrored pass has its own cache key)."""
        return [p for e in self.embedders for p in ([e, e.mirrored()] if self.recipe.flip else [e])]

    @property
    def dim(self) -> int:
        return sum(e.classes if self.recipe.head == "probabilities" else e.dim for e in self.embedders)

    @property
    def parameters(self) -> int:
        return sum(e.parameters for e in self.embedders)

    def embed(self, paths, cache: EmbeddingCache | None = None, progress: bool = True
              ) -> tuple[np.ndarray, list[int], EmbedReport]:
        """Vectors for the readable images (input order), their positions, and the first pass's report."""
        paths = [str(p) for p in paths]
        outputs = [embed_paths(paths, p, cache, progress=progress) for p in self.passes]
        positions, report = outputs[0][1], outputs[0][2]
        per_pass = [vectors for vectors, _, _ in outputs]
        step = 2 if self.recipe.flip else 1
        parts = [self._model_vectors(e, per_pass[i * step:(i + 1) * step]) for i, e in enumerate(self.embedders)]
        if len(parts) == 1:
            return parts[0], positions, report
        return np.hstack(parts) / np.sqrt(len(parts)), positions, report  # each part is unit length

    def _model_vectors(self, embedder: Embedder, features: list[np.ndarray]) -> np.ndarray:
        if self.recipe.head == "probabilities":
            # square roots of probabilities have unit length; their dot product is the
            # Bhattacharyya coefficient of the two class distributions
            return np.sqrt(np.mean([embedder.class_probabilities(f) for f in features], axis=0))
        mean = np.mean(features, axis=0)
        return l2_normalize(mean) if self.recipe.normalize or len(self.embedders) > 1 else mean

    def images_per_s(self, paths, timings: dict | None = None) -> float:
        """Cold speed over `paths` (no cache) through all of the recipe's network passes.

        Each pass is timed once per `timings` dict (best of `TIMING_REPEATS`), so recipes that
        share a pass share its figure instead of each getting its own noisy one.
        """
        timings = {} if timings is None else timings
        for p in self.passes:
            if p.key not in timings:
                timings[p.key] = time_pass(p, list(paths))
        return len(paths) / sum(timings[p.key] for p in self.passes)


TIMING_REPEATS = 3


def time_pass(embedder: Embedder, paths) -> float:
    """Best-of-N seconds to decode and embed `paths` with one model pass, after an untimed warm-up."""
    embed_paths(paths[:1], embedder, progress=False)  # traces the model
    best = float("inf")
    for _ in range(TIMING_REPEATS):
        start = time.perf_counter()
        embed_paths(paths, embedder, progress=False)
        best = min(best, time.perf_counter() - start)
    return best


def ingest_recipe(catalog, embedder: RecipeEmbedder, engine: SearchEngine, cache: EmbeddingCache | None = None,
                  progress: bool = True) -> IngestReport:
    """Embed the catalog with a recipe and upsert the vectors under the catalog's ids."""
    return ingest_embedded(catalog, embedder.embed, engine, cache, progress)


def search_vectors(engine: SearchEngine, vectors: np.ndarray, k: int, recipe: Recipe):
    """Top-k (ids, distances), with the recipe's query expansion when it has one."""
    if recipe.expand:
        hits, _ = engine.search(vectors, recipe.expand)
        expanded = (vectors + engine.fetch(hits).sum(axis=1)) / (1 + recipe.expand)
        vectors = l2_normalize(expanded) if recipe.metric == "IP" else expanded
    return engine.search(vectors, k)


def measure_recipe(embedder: RecipeEmbedder, engine: SearchEngine, queries, truth, k: int = 10,
                   cache: EmbeddingCache | None = None, **columns) -> dict:
    """Search every query with the recipe and score it: one row of the quality table."""
    recipe = embedder.recipe
    vectors, positions, report = embedder.embed(queries["path"].tolist(), cache, progress=False)
    if report.failures:
        raise report.failures[0]
    ids, _ = search_vectors(engine, vectors, k, recipe)
    scores = evaluate(truth, ids.tolist(), k)
    return {
        "model": recipe.model,
        "technique": recipe.technique,
        **columns,
        "imagenet_only": recipe.imagenet_only,
        "dim": embedder.dim,
        "parameters": embedder.parameters,
        f"mhr{k}": scores[f"mhr@{k}"],
        f"towhee_map{k}": scores[f"towhee_map@{k}"],
        f"ap{k}": scores[f"ap@{k}"],
        "index_mb": engine.count() * embedder.dim * 4 / 1e6,  # float32 vectors as stored
        "queries": len(positions),
    }


LITE = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
# Every configuration notebook 03 and benchmarks/quality.py measure, fixed before looking at any
# query set's results (query expansion uses the top 3 hits, a common default, not a tuned value).
QUALITY_RECIPES = [
    Recipe(LITE[0], normalize=False),  # the tutorial: raw features, L2
    *[Recipe(name) for name in LITE],
    Recipe(LITE[2], flip=True),
    Recipe(LITE, flip=True),
    Recipe(LITE, flip=True, expand=3),
    *[Recipe(name, "probabilities") for name in LITE],
    Recipe(LITE[2], "probabilities", flip=True),
    Recipe(LITE, "probabilities", flip=True),
    Recipe(LITE, "probabilities", flip=True, expand=3),
]


def collection_name(recipe: Recipe) -> str:
    """One Milvus collection per stored representation (query expansion does not change it)."""
    models = "_".join(name.replace("efficientnet_", "") for name in recipe.models)
    flags = ("_flip" if recipe.flip else "") + ("" if recipe.normalize else "_raw")
    return f"quality_{models}_{recipe.head}{flags}"


def run_recipe(recipe: Recipe, gallery, queries, truth, engine_factory, cache: EmbeddingCache | None = None,
               embedders: dict | None = None, speed_paths=None, timings: dict | None = None, **columns) -> dict:
    """Index `gallery` with the recipe in a fresh collection, search `queries`, score: one row.

    `engine_factory(metric, collection)` opens the engine; `speed_paths` (images embedded cold,
    without the cache) adds `images_per_s`; pass one `timings` dict to a series of calls to time
    each model pass once.
    """
    embedder = RecipeEmbedder(recipe, embedders=embedders)
    engine = engine_factory(recipe.metric, collection_name(recipe))
    try:
        engine.drop()  # a fresh collection: no rows left over from another gallery
        ingest_recipe(gallery, embedder, engine, cache, progress=False)
        row = measure_recipe(embedder, engine, queries, truth, cache=cache, **columns)
    finally:
        engine.close()
    if speed_paths is not None:
        row["images_per_s"] = embedder.images_per_s(list(speed_paths), timings)
    return row
