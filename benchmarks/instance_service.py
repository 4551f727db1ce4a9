"""Instance search through the product's own engine (`serve.SearchService`, what the app, the API
and `imgsearch` run): a gallery folder indexed with the class-level model and with its `+gem`
descriptor, each query searched plainly and verified, scored and timed per query.

    python benchmarks/instance_service.py [--gallery DIR] [--queries DIR] [--out FILE]

Both folders are `<group>/<image>` trees (default: `<data>/ukbench_mini` for both, each photo a
query for its object's photos). Scores: N-S (`ns@4`: group members in the top 4, the query's own
file included when the gallery holds it, as UKBench counts), `next_in_group` (the first hit that
is not the query's own file is of its group) and `hit@10` (a group member other than the query's
own file in the top 10). Times: milliseconds per query, one query at a time, in one process; the
verified search is timed twice: while the gallery's local features are still being found, and
again once the service holds them. Milvus Lite in a temporary folder.
"""
from __future__ import annotations

from pathlib import Path

from _harness import Bench, run_benchmark

from imgsearch_helpers.data.real_photos import ukbench_mini
from imgsearch_helpers.data.tutorial import ground_truth, load_queries
from imgsearch_helpers.evaluation.metrics import evaluate
from imgsearch_helpers.evaluation.timing import time_each
from imgsearch_helpers.gallery.service import SearchService
from imgsearch_helpers.models import DEFAULT_MODEL, INSTANCE_SUFFIX

K = 10


def scores(truth: list[set], queries: list[str], hits) -> dict:
    """N-S over every hit; the first hit and hit@10 over the hits that are not the query's own file."""
    ranked = [[str(Path(hit.path).resolve()) for hit in row] for row in hits]
    others = [[path for path in row if path != query] for query, row in zip(queries, ranked)]
    beyond_itself = evaluate(truth, others, K, ("top1", "hit@{k}"))
    return {**evaluate(truth, ranked, K, ("ns@4",)), "next_in_group": beyond_itself["top1"],
            "hit@10": beyond_itself["hit@10"]}


def search_rows(model: str, gallery: Path, queries: list[str], truth: list[set], settings) -> list[dict]:
    service = SearchService(model, "milvus", gallery, settings)
    try:
        service.build(progress=False)
        service.search_images(queries[:1], k=K)  # warm-up: the model's first batch
        rows = []
        for verify, label in ((False, "plain"), (True, "verified, finding local features"),
                              (True, "verified, local features kept")):
            searches = time_each(lambda query, verify=verify: service.search_images([query], k=K, verify=verify),
                                 queries)
            hits = [found.hits[0] for found in searches.result]
            rows.append({"model": model, "search": label, **scores(truth, queries, hits),
                         "ms_per_query": round(1000 * searches.mean, 1)})
        return rows
    finally:
        service.close()


def add_options(parser) -> None:
    parser.add_argument("--gallery", type=Path, help="<group>/<image> folder (default: <data>/ukbench_mini)")
    parser.add_argument("--queries", type=Path, help="<group>/<image> folder (default: the gallery)")


def measure(bench: Bench) -> dict:
    settings = bench.settings()
    gallery = bench.args.gallery or ukbench_mini(settings)
    images = load_queries(gallery, settings)  # a query's relevant files: its group's in the gallery
    queries = load_queries(bench.args.queries or gallery, settings)
    truth = ground_truth(images.assign(id=images["path"]), queries)
    paths = queries["path"].tolist()
    models = (bench.args.model, bench.args.model + INSTANCE_SUFFIX)
    return {"rows": [row for model in models for row in search_rows(model, gallery, paths, truth, settings)]}


if __name__ == "__main__":
    run_benchmark(measure, __doc__, "instance_service.json", add_options, model=DEFAULT_MODEL)
