"""Instance-level search: every recipe of `INSTANCE_RECIPES` on copies, real photos and classes.

    python benchmarks/instance.py                                   # all benchmarks -> results/instance.json
    python benchmarks/instance.py --gallery DIR --queries DIR --out FILE   # any <group>/<image> folders
    python benchmarks/instance.py --only duplicates                 # rerun one part, keep the other rows
    python benchmarks/instance.py --only grocery --recipes local    # ... and only the recipes named so
    python benchmarks/instance.py --gallery G --queries Q --distractors D   # D's images join the gallery
    python benchmarks/make_copies.py --out D2 --edits 9 && \
    python benchmarks/instance.py --gallery G --queries Q --distractors D D2 --query-every 5   # the scale row

Without folders it runs, one row per recipe (and edit):
- copies: each edit of `imgsearch_helpers.data.edits` applied to every `--every`-th gallery
  image (default 5: 200 per edit), each copy a query for its original among all 1,000;
- ukbench: `<data>/ukbench_mini` as gallery and queries (each query finds itself; N-S score);
- classes: the tutorial's test queries and holdout 0 (image 0 of each class out of the gallery),
  without the local-feature recipes (they find one object or picture, not a class);
- grocery: `<data>/grocery_packages` (phone photos of packages in shops against one studio image
  each), then again with the tutorial's 1,000 images added to the gallery as distractors;
- duplicates: `find_duplicates` over the gallery plus one copy of each image (edits in turn),
  precision and recall of the pairs, timed from a cold embedding cache.
`ms_per_query` is decoding and embedding one query (timed without the cache) plus the search with
its switches (whitening, expansion, verification); `search_ms` is the latter alone.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import pandas as pd
from _harness import Bench, run_benchmark

from imgsearch_helpers.config import display_path
from imgsearch_helpers.data.copies import copies_gallery, make_copies
from imgsearch_helpers.data.edits import EDITS, apply_edit
from imgsearch_helpers.data.images import load_image
from imgsearch_helpers.data.real_photos import grocery_packages, ukbench_mini
from imgsearch_helpers.data.tutorial import holdout_split, load_catalog, load_queries
from imgsearch_helpers.embed.cache import open_cache
from imgsearch_helpers.evaluation import instance
from imgsearch_helpers.evaluation.timing import time_runs
from imgsearch_helpers.retrieval.duplicates import find_duplicates
from imgsearch_helpers.retrieval.verify import Verifier

PARTS = ("duplicates", "copies", "ukbench", "classes", "grocery")


def add_options(parser) -> None:
    parser.add_argument("--gallery", type=Path, help="folder of <group>/<image> gallery images")
    parser.add_argument("--queries", type=Path, help="folder of <group>/<image> queries (default: the gallery)")
    parser.add_argument("--every", type=int, default=5, help="copies of every N-th gallery image (default 5)")
    parser.add_argument("--distractors", type=Path, nargs="+", help="with --gallery: folders of images added to the "
                                                                    "gallery, relevant to no query")
    parser.add_argument("--query-every", type=int, default=1, help="with --gallery: score every N-th query (default 1)")
    parser.add_argument("--only", nargs="+", choices=PARTS, help="rerun these benchmarks, keep the file's other rows")
    parser.add_argument("--recipes", nargs="+", metavar="TEXT", help="only the recipes whose name holds one of "
                                                                      "these (e.g. 'local'); the file's rows of the "
                                                                      "others are kept")


def chosen_recipes(args) -> list:
    """`INSTANCE_RECIPES`, or with --recipes those of them and of `LOCAL_RECIPES` whose name holds one of its texts."""
    if not args.recipes:
        return list(instance.INSTANCE_RECIPES)
    return [r for r in (*instance.INSTANCE_RECIPES, *instance.LOCAL_RECIPES) if any(t in r.name for t in args.recipes)]


def with_distractors(gallery, *folders: Path):
    """The gallery plus every image under `folders`, in groups no query has."""
    extra = [load_queries(folder) for folder in folders]
    return pd.concat([gallery, *(e.assign(label="distractor: " + e["label"]) for e in extra)], ignore_index=True)


def score_recipes(descriptors, gallery, queries, benchmark: str, verifier=None, recipes=None, **columns) -> list[dict]:
    verifier = verifier or Verifier(gallery["path"].tolist())
    rows = []
    for recipe in RECIPES if recipes is None else recipes:
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
    queries = queries.iloc[::args.query_every].reset_index(drop=True)
    columns = {"gallery_dir": display_path(args.gallery), "queries_dir": display_path(args.queries or args.gallery),
               "query_every": args.query_every, "gallery_images": 0}
    if args.distractors:
        gallery = with_distractors(gallery, *args.distractors)
        columns["distractors_dir"] = " ".join(display_path(d) for d in args.distractors)
    columns["gallery_images"] = len(gallery)
    return score_recipes(descriptors, gallery, queries, "folders", **columns)


def grocery_rows(descriptors, settings) -> list[dict]:
    folder = grocery_packages(settings)
    gallery, queries = load_queries(folder / "gallery"), load_queries(folder / "queries")
    crowded = with_distractors(gallery, settings.data_dir / "reverse_image_search" / "train")
    return (score_recipes(descriptors, gallery, queries, "grocery", distractors=0)
            + score_recipes(descriptors, crowded, queries, "grocery", distractors=len(crowded) - len(gallery)))


def benchmark_rows(part: str, descriptors, settings, bench: Bench) -> list[dict]:
    if part == "duplicates":
        row = duplicate_row(settings, bench.scratch / "duplicates")
        print(row, flush=True)
        return [row]
    if part == "copies":
        return copies_rows(descriptors, settings, bench.args.every)
    if part == "grocery":
        return grocery_rows(descriptors, settings)
    if part == "ukbench":
        ukbench = load_queries(ukbench_mini(settings))
        return score_recipes(descriptors, ukbench, ukbench, "ukbench")
    catalog = load_catalog(settings)
    holdout_gallery, holdout_queries = holdout_split(catalog, 0)
    global_only = [r for r in RECIPES if not r.local]  # local features find one object, not a class
    return (score_recipes(descriptors, catalog, load_queries(settings=settings), "classes", recipes=global_only,
                          queries_from="test")
            + score_recipes(descriptors, holdout_gallery, holdout_queries, "classes", recipes=global_only,
                            queries_from="holdout 0"))


def measure(bench: Bench) -> dict:
    args, settings = bench.args, bench.settings()
    global RECIPES
    RECIPES = chosen_recipes(args)
    descriptors = instance.Descriptors(settings, open_cache(settings))
    if args.gallery:
        rows = folder_rows(descriptors, args)
    else:
        parts = args.only or PARTS
        fresh = [row for part in parts for row in benchmark_rows(part, descriptors, settings, bench)]
        rows = merged(kept_rows(args, parts), fresh)
    return {"every": args.every, "slice": settings.slice, "backend": settings.backend, "rows": rows}


def kept_rows(args, parts) -> list[dict]:
    """The file's rows this run does not redo: other parts, and with --recipes other recipes."""
    if not (args.only or args.recipes) or not args.out.is_file():
        return []
    redone = {recipe.name for recipe in RECIPES}
    return [r for r in json.loads(args.out.read_text())["rows"]
            if r["benchmark"] not in parts or (r["benchmark"] != "duplicates" and r["recipe"] not in redone)]


def merged(kept: list[dict], fresh: list[dict]) -> list[dict]:
    """Rows in the parts' order, each part's kept rows then its fresh ones."""
    return [row for part in PARTS for row in [*(r for r in kept if r["benchmark"] == part),
                                               *(r for r in fresh if r["benchmark"] == part)]]


RECIPES = list(instance.INSTANCE_RECIPES)  # this run's: all, or those --recipes names


if __name__ == "__main__":
    run_benchmark(measure, __doc__, "instance.json", add_options)
