"""Notebook 3's and `benchmarks/quality.py`'s runner: every recipe indexed, searched and scored the same way."""
from __future__ import annotations

import time

from ..cache import EmbeddingCache
from ..embed import embed_paths
from ..index import SearchEngine
from ..metrics import evaluate
from ..models import LITE_MODELS
from ..models.embedder import Embedder
from ..recipes import Recipe, RecipeEmbedder, search_vectors
from ..search import embed_queries, ingest

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
        "queries": len(vectors),
    }


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
    best = float("inf")
    for _ in range(TIMING_REPEATS):
        start = time.perf_counter()
        embed_paths(paths, embedder, progress=False)
        best = min(best, time.perf_counter() - start)
    return best
