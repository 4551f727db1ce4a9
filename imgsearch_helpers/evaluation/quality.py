"""Notebook 3's and `benchmarks/quality.py`'s runner: every recipe indexed, searched and scored the same way."""
from __future__ import annotations

import pandas as pd

from ..config import Settings
from ..data.tutorial import ground_truth, load_catalog, load_queries
from ..embed.cache import EmbeddingCache, open_cache
from ..embed.stream import embed_paths
from ..index import GALLERY_IVF, IndexSpec, SearchEngine, open_engine
from ..models import LITE_MODELS
from ..models.embedder import Embedder
from ..retrieval.recipes import Recipe, RecipeEmbedder
from ..retrieval.search import ReadPath, embed_queries, ingest
from .metrics import evaluate
from .timing import time_runs

# Every configuration notebook 03 and benchmarks/quality.py measure, fixed before looking at any
# query set's results (query expansion uses the top 3 hits, a common default, not a tuned value).
QUALITY_RECIPES = [
    Recipe(LITE_MODELS[0], normalize=False),  # the tutorial: raw features, L2
    *[Recipe(name) for name in LITE_MODELS],
    Recipe(LITE_MODELS[2], flip=True),
    Recipe(LITE_MODELS, flip=True),
    Recipe(LITE_MODELS, flip=True, expand=3),
    *[Recipe(name, "probabilities") for name in LITE_MODELS],
    Recipe(LITE_MODELS[2], "probabilities", flip=True),
    Recipe(LITE_MODELS, "probabilities", flip=True),
    Recipe(LITE_MODELS, "probabilities", flip=True, expand=3),
]
TIMING_REPEATS = 3


def collection_name(recipe: Recipe) -> str:
    """One Milvus collection per stored representation (query expansion does not change it)."""
    models = "_".join(name.replace("efficientnet_", "") for name in recipe.models)
    flags = ("_flip" if recipe.flip else "") + ("" if recipe.normalize else "_raw")
    return f"quality_{models}_{recipe.head}{flags}"


def measure_recipe(embedder: RecipeEmbedder, engine: SearchEngine, queries, truth, k: int = 10,
                   cache: EmbeddingCache | None = None, **columns) -> dict:
    """Search every query with the recipe and score it: one row of the quality table."""
    recipe = embedder.recipe
    vectors = embed_queries(queries["path"].tolist(), embedder, cache)
    ids, _ = ReadPath(engine, recipe.steps()).search(vectors, k)
    return evaluate(truth, ids.tolist(), k, model=recipe.model, technique=recipe.technique, **columns,
                    imagenet_only=recipe.imagenet_only, dim=embedder.dim, parameters=embedder.parameters,
                    index_mb=engine.count() * embedder.dim * 4 / 1e6)  # float32 vectors as stored


def run_recipe(recipe: Recipe, gallery, queries, truth, engine_factory, cache: EmbeddingCache | None = None,
               embedders: dict | None = None, speed_paths=None, timings: dict | None = None,
               settings: Settings | None = None, **columns) -> dict:
    """Index `gallery` with the recipe in a fresh collection, search `queries`, score: one row.

    `engine_factory(metric, collection)` opens the engine; `speed_paths` (images embedded cold,
    without the cache) adds `images_per_s`; pass one `timings` dict to a series of calls to time
    each model pass once.
    """
    embedder = RecipeEmbedder(recipe, settings, embedders)
    engine = engine_factory(recipe.metric, collection_name(recipe))
    try:
        engine.drop()  # a fresh collection: no rows left over from another gallery
        ingest(gallery, embedder, engine, cache, progress=False)
        row = measure_recipe(embedder, engine, queries, truth, cache=cache, **columns)
    finally:
        engine.close()
    if speed_paths is not None:
        row["images_per_s"] = recipe_speed(embedder, list(speed_paths), timings)
    return row


def recipe_speed(embedder: RecipeEmbedder, paths, timings: dict | None = None) -> float:
    """Cold images per second over `paths` (no cache) through all of the recipe's network passes.

    Each pass is timed once per `timings` dict (best of `TIMING_REPEATS`), so recipes that share
    a pass share its figure instead of each getting its own noisy one.
    """
    timings = {} if timings is None else timings
    for network in embedder.passes:
        if network.key not in timings:
            timings[network.key] = time_pass(network, list(paths))
    return len(paths) / sum(timings[network.key] for network in embedder.passes)


def time_pass(embedder: Embedder, paths) -> float:
    """Best-of-N seconds to decode and embed `paths` with one model pass, after an untimed warm-up."""
    embed_paths(paths[:1], embedder, progress=False)  # traces the model
    return time_runs(lambda: embed_paths(paths, embedder, progress=False), runs=TIMING_REPEATS).best


class QualityRun:
    """Scores recipes one way: each recipe in a fresh Milvus collection (`index`), the gallery
    embedded through the cache (models already run elsewhere are not run again), every query
    searched and scored against its class, and the cold speed of the recipe's network passes
    over up to 100 of the queries (each pass timed once per run)."""

    def __init__(self, settings: Settings, index: IndexSpec = GALLERY_IVF, k: int = 10):
        self.settings, self.index, self.k = settings, index, k
        self.catalog, self.queries = load_catalog(settings), load_queries(settings=settings)
        self.cache = open_cache(settings)
        self.embedders: dict = {}  # models loaded once, shared by every recipe
        self.timings: dict = {}  # each model pass timed once

    def engine(self, metric: str, collection: str) -> SearchEngine:
        return open_engine("milvus", metric=metric, collection=collection, index=self.index, settings=self.settings)

    def measure(self, recipe: Recipe, gallery: pd.DataFrame | None = None, queries: pd.DataFrame | None = None,
                prefix: str = "", queries_from: str = "test/") -> dict:
        """One row of the quality table for `recipe` (by default: the whole gallery, the test queries)."""
        gallery = self.catalog if gallery is None else gallery
        queries = self.queries if queries is None else queries
        return run_recipe(recipe, gallery, queries, ground_truth(gallery, queries),
                          lambda metric, name: self.engine(metric, prefix + name), self.cache, self.embedders,
                          speed_paths=queries["path"][:100], timings=self.timings, settings=self.settings,
                          source="measured here", queries_from=queries_from)

    def top_hits(self, recipe: Recipe, k: int | None = None):
        """(ids, distances) of the test queries on the collection `measure` filled for `recipe`."""
        engine = self.engine(recipe.metric, collection_name(recipe))
        vectors = embed_queries(self.queries["path"].tolist(), RecipeEmbedder(recipe, self.settings, self.embedders),
                                self.cache)
        found = ReadPath(engine, recipe.steps()).search(vectors, k or self.k)
        engine.close()
        return found

    def close(self) -> None:
        self.cache.close()


def effect(rows: list[dict], before: Recipe, after: Recipe, what: str) -> dict:
    """What one technique did: the rows of `before` and `after` side by side (mHR@10, speed)."""
    by_recipe = {(row["model"], row["technique"]): row for row in rows}
    old, new = by_recipe[(before.model, before.technique)], by_recipe[(after.model, after.technique)]
    return {"technique": what, "from": f"{before.model}: {before.technique}".replace("efficientnet_", ""),
            "mhr@10_before": old["mhr@10"], "mhr@10_after": new["mhr@10"], "change": new["mhr@10"] - old["mhr@10"],
            "images_per_s_before": old["images_per_s"], "images_per_s_after": new["images_per_s"]}


# Each technique of notebook 3, as (what it is, the recipe before, the recipe with it).
L0, L2 = LITE_MODELS[0], LITE_MODELS[2]
STEPS = [
    ("flip (mirrored pass)", Recipe(L2), Recipe(L2, flip=True)),
    ("ensemble of Lite0+1+2", Recipe(L2, flip=True), Recipe(LITE_MODELS, flip=True)),
    ("query expansion (top 3)", Recipe(LITE_MODELS, flip=True), Recipe(LITE_MODELS, flip=True, expand=3)),
    ("class probabilities", Recipe(L0), Recipe(L0, "probabilities")),
    ("class probabilities", Recipe(L2), Recipe(L2, "probabilities")),
    ("... + flip + ensemble + query expansion", Recipe(L2, "probabilities"),
     Recipe(LITE_MODELS, "probabilities", flip=True, expand=3)),
]
