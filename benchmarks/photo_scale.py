"""One big photo folder as a user runs it: ingest, ingest again, search through the command line's
service and through the HTTP API, duplicates; seconds and peak memory of each command.

    python benchmarks/many_photos.py --sources DIR [DIR ...] --out data/photos-20k
    python benchmarks/photo_scale.py --folder data/photos-20k       # -> results/photo_scale.json
    python benchmarks/photo_scale.py --folder data/photos-20k --only duplicates   # that step again, the rest kept

With a new embedding cache holding only the model's export and a new Milvus Lite database, as
processes: `imgsearch ingest FOLDER` (seconds, images a second, peak resident memory), the same
again with nothing changed, `queries` searches through the command line's service
(`photo_ingest.query_ms`), the same files posted to `imgsearch serve FOLDER --no-app --no-text`
(`POST /api/search`, k=10, a bearer token; the first one not timed), then `imgsearch duplicates
FOLDER` (its descriptors are not the ingest's, so it embeds every image again; the seconds of its
steps, as its `--json` reports them, beside the whole).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from _harness import Bench, run_benchmark
from photo_ingest import IMGSEARCH, MEASURED, query_ms, run_ingest, seeded_cache

from imgsearch_helpers.config import display_path
from imgsearch_helpers.data.folders import list_images
from imgsearch_helpers.evaluation.timing import time_each, time_runs

TOKEN = "benchmark-token"


def add_options(parser) -> None:
    parser.add_argument("--folder", type=Path, required=True, help="a folder of photos (many_photos.py)")
    parser.add_argument("--queries", type=int, default=50, help="searches timed each way (default 50)")
    parser.add_argument("--only", choices=["duplicates"], help="run this step again; keep the file's other figures")


def measure(bench: Bench) -> dict:
    folder = bench.args.folder
    place = Path(tempfile.mkdtemp(dir=bench.scratch))
    env = {**os.environ, "IMGSEARCH_CACHE_DIR": str(seeded_cache(place / "cache", bench)),
           "MILVUS_URI": str(place / "milvus.db")}
    if bench.args.only == "duplicates":
        [row] = json.loads(bench.args.out.read_text())["rows"]
        return {"rows": [{**row, **run_duplicates(folder, env)}]}
    first = run_ingest(folder, env)
    row = {"path": display_path(folder), "images": first["result"]["rows"],
           "skipped": len(first["result"]["skipped"]), "ingest_s": first["seconds"],
           "images_per_s": round(first["result"]["rows"] / first["seconds"], 1), "peak_mb": first["peak_mb"]}
    keep(bench, row)
    row["no_change_ingest_s"] = run_ingest(folder, env)["seconds"]
    # the server first: Milvus Lite admits one process, and this one keeps the database once it opened it
    row.update(api_query_ms(folder, env, every_nth(list_images(folder), bench.args.queries), place))
    settings = bench.settings(cache_dir=place / "cache", milvus_uri=str(place / "milvus.db"))
    row.update({f"service_{key}": value for key, value in query_ms(folder, settings, bench.args.queries).items()})
    keep(bench, row)
    row.update(run_duplicates(folder, env))
    keep(bench, row)
    return {"rows": [row]}


def keep(bench: Bench, row: dict) -> None:
    """Print the row and write what is measured so far (a run stopped in its last step keeps the rest)."""
    print(json.dumps(row), flush=True)
    bench.write({"rows": [row]})


def every_nth(paths: list, count: int) -> list[str]:
    """`count` paths spread over the list, as `query_ms` picks them."""
    return [str(path) for path in paths[::max(1, len(paths) // count)][:count]]


def api_query_ms(folder: Path, env: dict, paths: list[str], place: Path) -> dict:
    port = free_port()
    log = (place / "serve.log").open("w")
    server = subprocess.Popen([str(IMGSEARCH), "serve", str(folder), "--port", str(port), "--token", TOKEN,
                               "--no-app", "--no-text", "--quiet"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, server, place / "serve.log")
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as client:
            def search(path: str) -> None:
                with open(path, "rb") as handle:
                    answer = client.post("/api/search", files={"file": (Path(path).name, handle)}, data={"k": "10"})
                answer.raise_for_status()

            search(paths[0])  # the model loaded and the collection opened
            timing = time_each(search, paths)
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
    ms = np.asarray(timing.seconds) * 1000
    return {"api_queries": len(paths), "api_query_p50_ms": round(float(np.percentile(ms, 50)), 1),
            "api_query_p95_ms": round(float(np.percentile(ms, 95)), 1)}


def wait_healthy(base: str, server: subprocess.Popen, log: Path, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"imgsearch serve stopped:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/api/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit(f"imgsearch serve did not answer in {timeout_s:.0f} s:\n{log.read_text()[-2000:]}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_duplicates(folder: Path, env: dict) -> dict:
    run = time_runs(lambda: subprocess.run([sys.executable, "-c", MEASURED, str(IMGSEARCH), "duplicates",
                                            str(folder), "--json", "--quiet"], env=env, capture_output=True, text=True))
    done = run.result
    if done.returncode != 0:
        raise SystemExit(f"imgsearch duplicates {folder} failed:\n{done.stderr[-2000:]}")
    peak = [line for line in done.stderr.splitlines() if line.startswith("PEAK_KB ")]
    found = json.loads(done.stdout)
    return {"duplicates_s": round(run.total, 1), "duplicates_peak_mb": round(int(peak[-1].split()[1]) / 1024),
            "duplicate_groups": len(found["groups"]), "duplicates_steps_s": found["work"]["seconds"]}


if __name__ == "__main__":
    run_benchmark(measure, __doc__, "photo_scale.json", add_options)
