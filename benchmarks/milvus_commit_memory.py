"""Where an ingest's peak memory goes at its end: a Milvus Lite collection's commit (flush, index
build, load) runs inside the process, and its flush of the rows written so far costs far more
memory than the rows themselves.

    python benchmarks/milvus_commit_memory.py [--rows 20000] [--dim 1280]   # -> results/milvus_commit_memory.json

Each row is measured in a new process: `MilvusEngine.add` of `--rows` random unit vectors (with a
path-like text field, as a folder's rows have) in batches of 256, then `commit()` with the index a
folder of that many rows gets (`index_for_rows`). The peak resident memory (the kernel's VmHWM) is
read after the adds and after the commit; "flush every N rows" flushes during the adds as well.
"""
from __future__ import annotations

import json
import subprocess
import sys

from _harness import Bench, run_benchmark

CHILD = """
import json, sys
import numpy as np
from imgsearch_helpers.index import MilvusEngine, index_for_rows

def peak_mb():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) // 1024

uri, rows, dim, flush_every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
spec = index_for_rows(rows)
engine = MilvusEngine(uri, collection="memory", index_type=spec.index_type, metric="IP",
                      build_params=spec.build, search_params=spec.search, fields={"relpath": "str"})
rng = np.random.default_rng(0)
before = peak_mb()
for start in range(0, rows, 256):
    vectors = rng.normal(size=(min(256, rows - start), dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(start, start + len(vectors))
    engine.add(ids, vectors, {"relpath": [f"DCIM/{100 + i // 1000}APPLE/IMG_{i:05d}.JPG" for i in ids]})
    if flush_every and (start + 256) % flush_every < 256:
        engine.client.flush(engine.collection)
added = peak_mb()
engine.commit()
print(json.dumps({"peak_mb_before": before, "peak_mb_after_adds": added, "peak_mb_after_commit": peak_mb(),
                  "index": str(spec)}))
"""


def add_options(parser) -> None:
    parser.add_argument("--rows", type=int, default=20000, help="rows written (default 20000)")
    parser.add_argument("--dim", type=int, default=1280, help="vector width (default 1280, Lite0's)")
    parser.add_argument("--flush-every", type=int, default=5000, help="the second row's flush interval")


def measure(bench: Bench) -> dict:
    args, rows = bench.args, []
    ways = (("one commit at the end (as ingest does)", 0), (f"flush every {args.flush_every} rows", args.flush_every))
    for name, every in ways:
        uri = str(bench.scratch / f"flush-{every}" / "memory.db")
        done = subprocess.run([sys.executable, "-c", CHILD, uri, str(args.rows), str(args.dim), str(every)],
                              capture_output=True, text=True, check=True)
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        row = {"how": name, "rows": args.rows, "dim": args.dim, **measured,
               "vectors_mb": round(args.rows * args.dim * 4 / 2**20)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return {"rows": rows}


if __name__ == "__main__":
    run_benchmark(measure, __doc__, "milvus_commit_memory.json", add_options)
