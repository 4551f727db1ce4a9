"""Ingest and query speed, side by side in one run, on the configured data (full by default).

    python benchmarks/ingest.py [--model efficientnet_lite0] [--out benchmarks/results/ingest.json]

(a) a per-image loop shaped like the Towhee tutorial: decode, embed a batch of 1, insert one row;
(b) the package's `ingest`: batched, decoding on worker threads, cold embedding cache;
(c) the same `ingest` again with the cache warm;
plus single-query latency (decode + embed + search, warm) and Milvus vs exact search quality.
All engines are Milvus Lite in a temporary folder; nothing in the repo's data is touched.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from imgsearch_helpers.cache import open_cache
from imgsearch_helpers.config import get_settings
from imgsearch_helpers.data import ground_truth, load_catalog, load_queries
from imgsearch_helpers.images import load_image
from imgsearch_helpers.index import TUTORIAL_IVF, open_engine
from imgsearch_helpers.models import DEFAULT_MODEL, build_embedder
from imgsearch_helpers.results import write_benchmark
from imgsearch_helpers.search import evaluate_engine, ingest, search_paths


def tutorial_loop(catalog, embedder, engine) -> float:
    """One image at a time, as the tutorial's pipeline does; returns seconds."""
    start = time.perf_counter()
    for row in catalog.itertuples():
        vector = embedder.embed_batch(torch.stack([embedder.preprocess(load_image(row.path))]))
        engine.add(np.array([row.id]), vector)
    engine.commit()
    return time.perf_counter() - start


def query_latencies(queries, embedder, engine, k=10) -> np.ndarray:
    """Milliseconds per single query: decode + embed + search, no cache."""
    times = []
    for path in queries["path"]:
        start = time.perf_counter()
        search_paths([path], embedder, engine, k=k)
        times.append(1000 * (time.perf_counter() - start))
    return np.array(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "ingest.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        settings = get_settings(cache_dir=scratch, milvus_uri=str(Path(scratch) / "bench.db"))
        catalog, queries = load_catalog(settings), load_queries(settings=settings)
        embedder = build_embedder(args.model, settings=settings)
        embedder.embed_batch(torch.stack([embedder.preprocess(load_image(catalog.path[0]))]))  # warm up (trace)

        def milvus(collection):
            return open_engine("milvus", collection=collection, index=TUTORIAL_IVF, settings=settings)

        loop_s = tutorial_loop(catalog, embedder, milvus("loop"))
        cache = open_cache(settings)
        cold = ingest(catalog, embedder, milvus("cold"), cache)
        engine = milvus("warm")
        warm = ingest(catalog, embedder, engine, cache)
        assert warm.embed.embedded == 0 and engine.count() == len(catalog)

        latencies = query_latencies(queries, embedder, engine)
        exact = open_engine("exact")
        ingest(catalog, embedder, exact, cache, progress=False)
        truth = ground_truth(catalog, queries)
        milvus_row = evaluate_engine(queries, truth, embedder, engine)
        exact_row = evaluate_engine(queries, truth, embedder, exact)

    result = {
        "command": "python benchmarks/ingest.py",
        "model": args.model,
        "slice": settings.slice,
        "images": len(catalog),
        "loop_images_per_s": len(catalog) / loop_s,
        "package_images_per_s": cold.images_per_s,
        "package_vs_loop": loop_s / cold.seconds,
        "cold_s": cold.seconds,
        "warm_s": warm.seconds,
        "warm_cache_speedup": cold.seconds / warm.seconds,
        "query_p50_ms": float(np.percentile(latencies, 50)),
        "query_p99_ms": float(np.percentile(latencies, 99)),
        "milvus_mhr10": milvus_row["mhr@10"],
        "exact_mhr10": exact_row["mhr@10"],
        "index": TUTORIAL_IVF.as_dict(),
    }
    write_benchmark(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
