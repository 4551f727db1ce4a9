"""Ingest of a folder of phone photos beside the tutorial's small images, in one run.

    python benchmarks/pictures_folder.py --sources ../shared/data/reverse_image_search/train --out data/pictures
    python benchmarks/photo_ingest.py --folder data/pictures [--small DIR]   # -> results/photo_ingest.json

For each folder (`--small`: the tutorial's 1,000 training images by default, then `--folder`), as a
user runs it: `imgsearch ingest FOLDER --json --quiet` as a process, with a new embedding cache that
holds only the model's export (the images are embedded, the model is not prepared again) and a new
Milvus Lite database: seconds, images a second, the process's peak resident memory; then the same
command again with nothing changed; then `queries` searches through the command line's service
(`SearchService.search_images`, one query image each: decoding, embedding, search), p50 and p95 in ms.
`rate_vs_small` is the folder's images a second over the small images' in the same run.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _harness import Bench, run_benchmark

from imgsearch_helpers.config import display_path
from imgsearch_helpers.evaluation.timing import time_each, time_runs
from imgsearch_helpers.gallery.service import SearchService

IMGSEARCH = Path(sys.executable).parent / "imgsearch"
# a small parent reports its child's peak memory (a child of this process would report this one's too)
MEASURED = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
            "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
            "sys.exit(code)")


def add_options(parser) -> None:
    parser.add_argument("--folder", type=Path, required=True, help="a folder of photos (pictures_folder.py)")
    parser.add_argument("--small", type=Path, help="the folder of small images to compare with "
                                                   "(default: the tutorial's train/)")
    parser.add_argument("--queries", type=int, default=50, help="searches timed per folder (default 50)")


def measure(bench: Bench) -> dict:
    settings = bench.settings()
    small = bench.args.small or settings.data_dir / "reverse_image_search" / "train"
    rows = [ingest_row(name, folder, bench) for name, folder in [("small images", small),
                                                                 ("phone photos", bench.args.folder)]]
    rows[1]["rate_vs_small"] = round(rows[1]["images_per_s"] / rows[0]["images_per_s"], 3)
    for row in rows:
        print(json.dumps(row), flush=True)
    return {"rows": rows}


def ingest_row(name: str, folder: Path, bench: Bench) -> dict:
    place = Path(tempfile.mkdtemp(dir=bench.scratch))
    env = {**os.environ, "IMGSEARCH_CACHE_DIR": str(seeded_cache(place / "cache", bench)),
           "MILVUS_URI": str(place / "milvus.db")}
    first = run_ingest(folder, env)
    again = run_ingest(folder, env)
    settings = bench.settings(cache_dir=place / "cache", milvus_uri=str(place / "milvus.db"))
    latency = query_ms(folder, settings, bench.args.queries)
    images = first["result"]["rows"]
    return {"folder": name, "path": display_path(folder), "images": images, "skipped": len(first["result"]["skipped"]),
            "ingest_s": first["seconds"], "images_per_s": round(images / first["seconds"], 1),
            "peak_mb": first["peak_mb"], "no_change_ingest_s": again["seconds"], **latency}


def seeded_cache(cache: Path, bench: Bench) -> Path:
    """A new cache holding the configured cache's model exports (hard links) and nothing else."""
    models = bench.settings().cache_dir / "models"
    if models.is_dir():
        shutil.copytree(models, cache / "models", copy_function=os.link)
    return cache


def run_ingest(folder: Path, env: dict) -> dict:
    run = time_runs(lambda: subprocess.run([sys.executable, "-c", MEASURED, str(IMGSEARCH), "ingest", str(folder),
                                            "--json", "--quiet"], env=env, capture_output=True, text=True))
    done = run.result
    if done.returncode != 0:
        raise SystemExit(f"imgsearch ingest {folder} failed:\n{done.stderr[-2000:]}")
    peak = [line for line in done.stderr.splitlines() if line.startswith("PEAK_KB ")]
    return {"result": json.loads(done.stdout), "seconds": round(run.total, 1),
            "peak_mb": round(int(peak[-1].split()[1]) / 1024)}


def query_ms(folder: Path, settings, count: int) -> dict:
    service = SearchService(gallery=folder, settings=settings)
    try:
        indexed = service.indexed()["path"].tolist()
        paths = indexed[::max(1, len(indexed) // count)][:count]
        service.search_images(paths[:1], 10)  # the model loaded and the collection opened
        timing = time_each(lambda path: service.search_images([path], 10), paths)
    finally:
        service.close()
    ms = np.asarray(timing.seconds) * 1000
    return {"queries": len(paths), "query_p50_ms": round(float(np.percentile(ms, 50)), 1),
            "query_p95_ms": round(float(np.percentile(ms, 95)), 1)}


if __name__ == "__main__":
    run_benchmark(measure, __doc__, "photo_ingest.json", add_options)
