"""Search quality of every recipe in `QUALITY_RECIPES` (the rows of notebook 03), one JSON row each.

    python benchmarks/quality.py                              # the dataset's 100 test queries
    python benchmarks/quality.py --holdout 0 --out FILE       # unseen queries: image 0 of each class
    python benchmarks/quality.py --queries DIR --out FILE     # any <label>/<image> folder

Query labels are used only to score. `--holdout N` moves the N-th gallery image of each class
(sorted by path) out of the gallery and uses those 100 images as queries. Each recipe gets a
fresh Milvus Lite collection (IVF_FLAT, nlist 16, nprobe 8) in a temporary folder; embeddings go
through the configured embedding cache; `images_per_s` is measured separately, without it, on
up to 100 query images (each model pass timed once, best of 3, and summed over a recipe's passes).
Then `python benchmarks/readme_table.py` rewrites the quality table in docs/results.md from the file.
"""
from __future__ import annotations

from pathlib import Path

from _harness import Bench, run_benchmark

from imgsearch_helpers.config import display_path
from imgsearch_helpers.data.tutorial import holdout_split, load_catalog, load_queries
from imgsearch_helpers.evaluation.quality import QUALITY_RECIPES, QualityRun
from imgsearch_helpers.index import GALLERY_IVF


def add_options(parser) -> None:
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument("--queries", type=Path, help="folder of <label>/<image> query images")
    chosen.add_argument("--holdout", type=int, metavar="N", help="use the N-th gallery image of each class as queries")
    parser.add_argument("--backend", help="where the networks run (default: the setting, normally auto)")


def query_set(args, settings):
    """(gallery, queries, description) for the chosen query set."""
    catalog = load_catalog(settings)
    if args.holdout is not None:
        gallery, queries = holdout_split(catalog, args.holdout)
        return gallery, queries, f"holdout {args.holdout}: image {args.holdout} of each class, removed from the gallery"
    if args.queries is not None:
        return catalog, load_queries(args.queries, settings), f"folder {display_path(args.queries)}"
    return catalog, load_queries(settings=settings), "the dataset's test/ folder"


def measure(bench: Bench) -> dict:
    settings = bench.settings(backend=bench.args.backend)
    gallery, queries, description = query_set(bench.args, settings)
    run = QualityRun(settings, GALLERY_IVF)
    rows = []
    for recipe in QUALITY_RECIPES:
        row = run.measure(recipe, gallery, queries, queries_from=description)
        rows.append(row)
        print(f"{row['mhr@10']:.3f} mHR@10  {row['ap@10']:.3f} AP@10  {row['images_per_s']:5.1f} img/s  "
              f"{row['model']}: {row['technique']}", flush=True)
    backends = sorted({embedder.backend for embedder in run.embedders.values()})
    run.close()
    return {
        "queries": description,
        "query_count": len(queries),
        "gallery": len(gallery),
        "slice": settings.slice,
        "index": GALLERY_IVF.as_dict(),
        "backend": ", ".join(backends),
        "rows": rows,
    }


if __name__ == "__main__":
    run_benchmark(measure, __doc__, "quality.json", add_options)
