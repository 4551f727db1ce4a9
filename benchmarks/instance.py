"""Instance-level search: every recipe of `INSTANCE_RECIPES` on copies, real photos and classes.

    python benchmarks/instance.py                                   # all benchmarks -> results/instance.json
    python benchmarks/instance.py --gallery DIR --queries DIR --out FILE   # any <group>/<image> folders
    python benchmarks/instance.py --only duplicates                 # rerun one part, keep the other rows

Without folders it runs, one row per recipe (and edit):
- copies: each edit of `imgsearch_helpers.data.edits` applied to every `--every`-th gallery
  image (default 5: 200 per edit), each copy a query for its original among all 1,000;
- ukbench: `<data>/ukbench_mini` as gallery and queries (each query finds itself; N-S score);
- classes: the tutorial's test queries and holdout 0 (image 0 of each class out of the gallery);
- duplicates: `find_duplicates` over the gallery plus one copy of each image (edits in turn),
  precision and recall of the pairs, timed from a cold embedding cache.
`ms_per_query` is decoding and embedding one query (timed without the cache) plus the search with
its switches (whitening, expansion, verification); `search_ms` is the latter alone.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

from _harness import Bench, run_benchmark

from imgsearch_helpers.config import display_path
from imgsearch_helpers.data.copies import copies_gallery, make_copies
from imgsearch_helpers.data.edits import EDITS, apply_edit
from imgsearch_helpers.data.images import load_image
from imgsearch_helpers.data.tutorial import holdout_split, load_catalog, load_queries
from imgsearch_helpers.embed.cache import open_cache
from imgsearch_helpers.evaluation import instance
from imgsearch_helpers.evaluation.timing import time_runs
from imgsearch_helpers.retrieval.duplicates import find_duplicates
from imgsearch_helpers.retrieval.verify import Verifier

PARTS = ("duplicates", "copies", "ukbench", "classes")


def add_options(parser) -> None:
    parser.add_argument("--gallery", type=Path, help="folder of <group>/<image> gallery images")
    parser.add_argument("--queries", type=Path, help="folder of <group>/<image> queries (default: the gallery)")
    parser.add_argument("--every", type=int, default=5, help="copies of every N-th gallery image (default 5)")
    parser.add_argument("--only", nargs="+", choices=PARTS, help="rerun these benchmarks, keep the file's other rows")


def score_recipes(descriptors, gallery, queries, benchmark: str, verifier=None, **columns) -> list[dict]:
    verifier = verifier or Verifier(gallery["path"].tolist())
    rows = []
    for recipe in instance.INSTANCE_RECIPES:
        row = instance.measure(recipe, descriptors, gallery, queries, verifier, benchmark=benchmark, **columns)
        print(f"{benchmark:<8} {columns.get('edit', columns.get('queries_from', '')):<13} {row['top1']:.3f} top-1  "
              f"{row['hit@10']:.3f} hit@10  {row['ap@10']:.3f} mAP@10  {row['mhr@10']:.3f} mHR@10  "
              f"{row['ns@4']:.2f} N-S  "
              f"{row['ms_per_query']:6.1f} ms  {row['recipe']}", flush=True)
        rows.append(row)
    return rows


def copies_rows(descriptors, settings, every: int) -> list[dict]:
    gallery = copies_gallery(load_catalog(settings))
    queries = make_copies(gallery, settings.cache_dir / "copies", every=every)
    verifier = Verifier(gallery["path"].tolist())  # one for all edits: the gallery's features found once
    rows = []
    for edit, edited in queries.groupby("edit", sort=False):
        rows += score_recipes(descriptors, gallery, edited.reset_index(drop=True), "copies", verifier, edit=edit)
    return rows


def duplicate_row(settings, folder: Path) -> dict:
    """The gallery plus one copy of every image (written to `folder`), edits in turn; scored on the pairs found."""
    catalog = load_catalog(settings)
    folder.mkdir(parents=True)
    truth = set()
    for i, (path, edit) in enumerate(zip(catalog["path"], itertools.cycle(EDITS))):
        original = Path(path)
        copy = folder / f"copy-{i:05d}.jpg"
        apply_edit(edit, load_image(original), f"{i:05d}").save(copy, "JPEG", quality=95)
        truth.add(frozenset((str(original), str(copy))))
    paths = list(catalog["path"]) + sorted(str(p) for p in folder.iterdir())
    finding = time_runs(lambda: find_duplicates(paths, settings, cache=None, progress=False))
    found, seconds = finding.result, finding.total
    pairs = {frozenset(pair) for group in found.groups for pair in itertools.combinations(group, 2)}
    right = len(pairs & truth)
    return {"benchmark": "duplicates", "images": len(paths), "true_pairs": len(truth), "found_pairs": len(pairs),
            "precision": right / max(1, len(pairs)), "recall": right / len(truth), "seconds": round(seconds, 1)}


def folder_rows(descriptors, args) -> list[dict]:
    gallery = load_queries(args.gallery)
    queries = load_queries(args.queries) if args.queries else gallery
    return score_recipes(descriptors, gallery, queries, "folders", gallery_dir=display_path(args.gallery),
                         queries_dir=display_path(args.queries or args.gallery))


def benchmark_rows(part: str, descriptors, settings, bench: Bench) -> list[dict]:
    if part == "duplicates":
        row = duplicate_row(settings, bench.scratch / "duplicates")
        print(row, flush=True)
        return [row]
    if part == "copies":
        return copies_rows(descriptors, settings, bench.args.every)
    if part == "ukbench":
        ukbench = load_queries(settings.data_dir / "ukbench_mini")
        return score_recipes(descriptors, ukbench, ukbench, "ukbench")
    catalog = load_catalog(settings)
    holdout_gallery, holdout_queries = holdout_split(catalog, 0)
    return (score_recipes(descriptors, catalog, load_queries(settings=settings), "classes", queries_from="test")
            + score_recipes(descriptors, holdout_gallery, holdout_queries, "classes", queries_from="holdout 0"))


def measure(bench: Bench) -> dict:
    args, settings = bench.args, bench.settings()
    descriptors = instance.Descriptors(settings, open_cache(settings))
    if args.gallery:
        rows = folder_rows(descriptors, args)
    else:
        parts = args.only or PARTS
        kept = [r for r in json.loads(args.out.read_text())["rows"] if r["benchmark"] not in parts] if args.only else []
        fresh = {part: benchmark_rows(part, descriptors, settings, bench) for part in parts}
        rows = [row for part in PARTS for row in (fresh[part] if part in fresh else
                                                  [r for r in kept if r["benchmark"] == part])]
    return {"every": args.every, "slice": settings.slice, "backend": settings.backend, "rows": rows}


if __name__ == "__main__":
    run_benchmark(measure, __doc__, "instance.json", add_options)
