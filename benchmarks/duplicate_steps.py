"""Where `imgsearch duplicates` spends its time on a folder: each step's seconds and counts.

    python benchmarks/duplicate_steps.py --folder data/photos-20k [--every 2]

`find_duplicates` over the folder's images (every N-th of them, in the walk's order, with
--every) as the command runs it, with a new embedding cache holding only the model's export:
the seconds of each step and the process's CPU seconds in it (exact copies by hash; the regional
GeM descriptors, which decode each image once and find its ORB features for verification on the
way; candidate pairs; verification by local features) and what each did
(`retrieval.duplicates.Work`): images embedded, candidate pairs, pairs left to verify, pairs
matched and images whose features were found.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from _harness import Bench, run_benchmark
from photo_ingest import seeded_cache

from imgsearch_helpers.config import display_path
from imgsearch_helpers.data.folders import walk_folder
from imgsearch_helpers.embed.cache import open_cache
from imgsearch_helpers.evaluation.timing import time_runs
from imgsearch_helpers.retrieval.duplicates import find_duplicates


def add_options(parser) -> None:
    parser.add_argument("--folder", type=Path, required=True, help="a folder of photos")
    parser.add_argument("--every", type=int, default=1, help="every N-th image of the folder (default 1: all)")


def measure(bench: Bench) -> dict:
    paths = [str(path) for path in walk_folder(bench.args.folder).paths()][::bench.args.every]
    settings = bench.settings(cache_dir=seeded_cache(Path(tempfile.mkdtemp(dir=bench.scratch)) / "cache", bench))
    cache = open_cache(settings)
    try:
        run = time_runs(lambda: find_duplicates(paths, settings, cache, progress=False))
    finally:
        cache.close()
    row = {"path": display_path(bench.args.folder), "every": bench.args.every, "total_s": round(run.total, 1),
           "groups": len(run.result.groups), **run.result.work}
    print(row, flush=True)
    return {"rows": [row]}


if __name__ == "__main__":
    run_benchmark(measure, __doc__, "duplicate_steps.json", add_options)
