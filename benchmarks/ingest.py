"""Ingest and query speed, side by side in one run, on the configured data (full by default).

    python benchmarks/ingest.py [--model efficientnet_lite0] [--out benchmarks/results/ingest.json]
    python benchmarks/ingest.py --gallery DIR [--queries DIR] --out FILE   # any <group>/<image> folders

On the backend `auto` picks (the fastest runtime that passed its check against PyTorch):
(a) a per-image loop shaped like the Towhee tutorial: decode, embed a batch of 1, insert one row;
(b) the package's `ingest`: batched, decoding on worker threads, cold embedding cache;
(c) the same `ingest` again with the cache warm;
plus single-query latency (decode + embed + search, one image, warm) and Milvus vs exact quality.
Then (b), the latency and the quality again on PyTorch (`torch_*`), and on each other backend,
including ones that failed the check (`backends`, with their check). Last, `imgsearch search`
end to end as a process (`cli_search_s`: start to exit, the model export already cached).
Milvus Lite and the caches live in a temporary folder; nothing in the repo's data is touched.
`--gallery` replaces the tutorial gallery (a query's relevant images: its group's; the queries
default to the gallery itself, each finding itself too, as in ukbench's N-S score) and sizes the
index as the service does (`index_for_rows`: exact search below 10,000 rows).
"""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
from _harness import Bench, run_benchmark

from imgsearch_helpers.config import display_path
from imgsearch_helpers.data.images import load_image
from imgsearch_helpers.data.tutorial import ground_truth, load_catalog, load_queries
from imgsearch_helpers.embed.cache import open_cache
from imgsearch_helpers.embed.stream import BATCH_SIZE
from imgsearch_helpers.evaluation.runs import evaluate_engine
from imgsearch_helpers.evaluation.timing import time_each, time_runs
from imgsearch_helpers.index import GALLERY_IVF, index_for_rows, open_engine
from imgsearch_helpers.models import DEFAULT_MODEL, build_embedder
from imgsearch_helpers.retrieval.search import ingest, search_paths
from imgsearch_helpers.runtime import Export
from imgsearch_helpers.runtime.mixed import has_bf16

# measured beside the chosen one and PyTorch
OTHERS = ("openvino", "openvino-mixed", "openvino-f32", "openvino-int8", "onnxruntime")


def load_inputs(args, settings):
    """(gallery with ids, queries): the tutorial's, or `--gallery`/`--queries` folders."""
    if args.gallery is None:
        return load_catalog(settings), load_queries(args.queries, settings=settings)
    gallery = load_queries(args.gallery, settings=settings)
    gallery.insert(0, "id", np.arange(len(gallery)))
    return gallery, load_queries(args.queries, settings=settings) if args.queries else gallery


def tutorial_loop(catalog, embedder, engine) -> None:
    """One image at a time, as the tutorial's pipeline does."""
    for row in catalog.itertuples():
        vector = embedder.embed_batch(embedder.preprocess(load_image(row.path))[None])
        engine.add(np.array([row.id]), vector)
    engine.commit()


def warm_up(embedder, catalog, engine) -> None:
    """What the first batches pay once per process and backend (a trace or compile at batch 1 and
    at the batch size, Milvus Lite's first collection), so that no backend's figure carries it."""
    embedder.embed_batch(embedder.preprocess(load_image(catalog.path[0]))[None])
    ingest(catalog.head(4 * BATCH_SIZE), embedder, engine, progress=False)


def backend_row(embedder, catalog, queries, truth, milvus, cache) -> tuple[dict, object]:
    """Cold batched ingest, single-query latency and mHR@10 in Milvus for one embedder (and the
    cold ingest's report)."""
    name = embedder.backend.replace('.', '_').replace('-', '_')
    warm_up(embedder, catalog, milvus(f"warmup_{name}"))
    engine = milvus(f"cold_{name}")
    cold = ingest(catalog, embedder, engine, cache, progress=False)
    # one query at a time: decode + embed + search, no cache
    latency = time_each(lambda path: search_paths([path], embedder, engine, k=10), queries["path"])
    row = {"backend": embedder.backend, "images_per_s": round(cold.images_per_s, 1),
           "cold_s": round(cold.seconds, 2), "query_p50_ms": round(latency.percentile_ms(50), 2),
           "query_p99_ms": round(latency.percentile_ms(99), 2),
           "mhr@10": evaluate_engine(queries, truth, embedder, engine)["mhr@10"]}
    return row, cold


def cli_search_seconds(settings, query: str, runs: int = 3) -> float:
    """`imgsearch search` from process start to exit, on the tiny slice, the model export cached."""
    env = {**os.environ, "IMGSEARCH_CACHE_DIR": str(settings.cache_dir), "IMGSEARCH_SLICE": "tiny",
           "MILVUS_URI": str(settings.cache_dir / "cli" / "cli.db")}
    imgsearch = str(Path(sys.executable).parent / "imgsearch")
    subprocess.run([imgsearch, "ingest", "--quiet"], env=env, check=True, capture_output=True, timeout=600)
    search = [imgsearch, "search", query, "-k", "5"]
    return time_runs(lambda: subprocess.run(search, env=env, check=True, capture_output=True, timeout=300),
                     runs=runs).median


def add_options(parser) -> None:
    parser.add_argument("--gallery", type=Path, help="folder of <group>/<image> images (default: the tutorial's)")
    parser.add_argument("--queries", type=Path, help="folder of <group>/<image> queries (default: the tutorial's "
                        "test set, or the gallery itself with --gallery)")


def measure(bench: Bench) -> dict:
    args = bench.args
    settings = bench.settings(cold=True)  # the export and every embedding paid for in this run
    catalog, queries = load_inputs(args, settings)
    truth = ground_truth(catalog, queries)
    index = GALLERY_IVF if args.gallery is None else index_for_rows(len(catalog), "milvus")
    cache = open_cache(settings)

    def milvus(collection):
        return open_engine("milvus", collection=collection, index=index, settings=settings)

    embedder = build_embedder(args.model, settings=settings)  # "auto": exports and checks each runtime
    chosen, cold = backend_row(embedder, catalog, queries, truth, milvus, cache)
    loop_s = time_runs(lambda: tutorial_loop(catalog, embedder, milvus("loop"))).total
    warm = ingest(catalog, embedder, milvus("warm"), cache, progress=False)
    assert warm.embed.embedded == 0
    exact = open_engine("exact")
    ingest(catalog, embedder, exact, cache, progress=False)
    exact_row = evaluate_engine(queries, truth, embedder, exact)
    torch_row, _ = backend_row(build_embedder(args.model, settings=settings, backend="torch"), catalog, queries,
                               truth, milvus, cache)
    export = Export(settings.cache_dir, embedder.key.split("|")[0])
    others = []
    for backend in OTHERS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            other = build_embedder(args.model, settings=settings, backend=backend, checked=False)
        if other.backend != embedder.backend and not other.backend.startswith("torch"):
            row, _ = backend_row(other, catalog, queries, truth, milvus, cache)
            others.append({**row, "check_min_cosine": round(export.meta()["checks"][other.backend], 5)})
    checks = export.meta()["checks"]
    cli_s = cli_search_seconds(settings, queries.path[0])
    return {
        "model": args.model,
        "cpu_bf16": has_bf16(),  # whether the bf16 rows (openvino, openvino-mixed) could run here
        "slice": settings.slice,
        "gallery": display_path(args.gallery) if args.gallery else "tutorial",
        "queries": display_path(args.queries) if args.queries else "the gallery" if args.gallery else "tutorial test",
        "images": len(catalog),
        "backend": embedder.backend,
        "loop_images_per_s": len(catalog) / loop_s,
        "package_images_per_s": cold.images_per_s,
        "package_vs_loop": loop_s / cold.seconds,
        "cold_s": cold.seconds,
        "warm_s": warm.seconds,
        "warm_cache_speedup": cold.seconds / warm.seconds,
        "query_p50_ms": chosen["query_p50_ms"],
        "query_p99_ms": chosen["query_p99_ms"],
        "milvus_mhr@10": chosen["mhr@10"],
        "exact_mhr@10": exact_row["mhr@10"],
        "torch_images_per_s": torch_row["images_per_s"],
        "torch_query_p50_ms": torch_row["query_p50_ms"],
        "torch_mhr@10": torch_row["mhr@10"],
        "speedup_vs_torch": round(cold.images_per_s / torch_row["images_per_s"], 2),
        "cli_search_s": round(cli_s, 2),
        "check_min_cosine": round(checks.get(embedder.backend, float("nan")), 5),
        "backends": [chosen, torch_row, *others],
        "index": index.as_dict(),
    }


if __name__ == "__main__":
    run_benchmark(measure, __doc__, "ingest.json", add_options, model=DEFAULT_MODEL)
