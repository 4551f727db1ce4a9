"""Instance search through the product's own engine (`serve.SearchService`, what the app, the API
and `imgsearch` run): a gallery folder indexed with the class-level model and with its `+gem`
descriptor, each query searched plainly and verified, scored and timed per query.

    python benchmarks/instance_service.py [--gallery DIR] [--queries DIR] [--out FILE]

Both folders are `<group>/<image>` trees (default: `<data>/ukbench_mini` for both, each photo a
query for its object's photos). Scores: N-S (group members in the top 4, the query's own file
included when the gallery holds it, as UKBench counts), `next_in_group` (the first hit that is not
the query's own file is of its group) and hit@10. Times: milliseconds per query, one query at a
time, in one process; the verified search is timed twice: while the gallery's local features are
still being found, and again once the service holds them. Milvus Lite in a temporary folder.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from imgsearch_helpers.config import get_settings
from imgsearch_helpers.data.tutorial import list_images
from imgsearch_helpers.evaluation.results import write_benchmark
from imgsearch_helpers.gallery.service import SearchService
from imgsearch_helpers.models import DEFAULT_MODEL, INSTANCE_SUFFIX


def timed_search(service, queries, verify: bool) -> tuple[list, float]:
    start, hits = time.perf_counter(), []
    for query in queries:
        hits.append(service.search_images([query], k=10, verify=verify).hits[0])
    return hits, 1000 * (time.perf_counter() - start) / len(queries)


def scores(queries, hits) -> dict:
    groups = [Path(q).parent.name for q in queries]
    found = [[h.relpath.split("/")[0] for h in row] for row in hits]
    others = [[h.relpath.split("/")[0] for h in row if Path(h.path).resolve() != Path(q).resolve()]
              for q, row in zip(queries, hits)]
    return {"ns@4": float(np.mean([row[:4].count(g) for g, row in zip(groups, found)])),
            "next_in_group": float(np.mean([row[:1] == [g] for g, row in zip(groups, others)])),
            "hit@10": float(np.mean([g in row for g, row in zip(groups, others)]))}


def measure(model: str, gallery: Path, queries: list[str], settings) -> list[dict]:
    service = SearchService(model, "milvus", gallery, settings)
    try:
        service.build(progress=False)
        service.search_images(queries[:1], k=10)  # warm-up: the model's first batch
        rows = []
        for verify, label in ((False, "plain"), (True, "verified, finding local features"),
                              (True, "verified, local features kept")):
            hits, ms = timed_search(service, queries, verify)
            rows.append({"model": model, "search": label, "queries": len(queries), **scores(queries, hits),
                         "ms_per_query": round(ms, 1)})
        return rows
    finally:
        service.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gallery", type=Path, help="<group>/<image> folder (default: <data>/ukbench_mini)")
    parser.add_argument("--queries", type=Path, help="<group>/<image> folder (default: the gallery)")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "instance_service.json")
    args = parser.parse_args()
    gallery = args.gallery or get_settings().data_dir / "ukbench_mini"
    queries = [str(p) for p in list_images(args.queries or gallery)]
    with tempfile.TemporaryDirectory() as scratch:
        settings = get_settings(milvus_uri=str(Path(scratch) / "instance.db"))
        rows = [row for model in (args.model, args.model + INSTANCE_SUFFIX)
                for row in measure(model, gallery, queries, settings)]
    command = "python benchmarks/instance_service.py" + "".join(
        f" --{name} {value}" for name, value in (("gallery", args.gallery), ("queries", args.queries)) if value)
    write_benchmark(args.out, {"command": command, "rows": rows})
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
