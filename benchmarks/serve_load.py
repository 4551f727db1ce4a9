"""Load on `imgsearch serve`: concurrent clients mixing searches and uploads, against a folder gallery.

    python benchmarks/serve_load.py [--requests 200] [--clients 8] [--upload-every 4] [--out FILE]

Copies the tutorial's 1,000 gallery images into a temporary folder and starts `imgsearch serve
FOLDER --token ...` on it (the app and text search mounted, as a user runs it) with a temporary
Milvus Lite database, the configured embedding cache, and the token. Then `--clients` threads
send `--requests` requests at once: every `--upload-every`-th a POST /api/images of one test
photo under a new name, the rest POST /api/search uploads of the test queries. Reports latency
(p50 / p99 per request, client side, searches and uploads apart), requests per second, errors
(any answer but 200), the top-1 label agreement of the searches (the first hit from the gallery
itself: an uploaded copy of the query may rank first), the server's peak memory (VmHWM
of its process), and the check that matters under concurrent writes: every file in `uploads/`
has exactly one row, and every accepted upload is such a file.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from imgsearch_helpers.config import get_settings
from imgsearch_helpers.data.tutorial import load_catalog, load_queries
from imgsearch_helpers.evaluation.results import write_benchmark
from imgsearch_helpers.local_server import free_port, wait_for_url

TOKEN = "serve-load-benchmark-token"


def peak_memory_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def copy_gallery(settings, folder: Path) -> int:
    """The tutorial's gallery as a folder of one's own (`<label>/<file>`), which can take uploads."""
    catalog = load_catalog(settings)
    for path, label in zip(catalog["path"], catalog["label"]):
        (folder / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / label / Path(path).name)
    return len(catalog)


def send(client: httpx.Client, kind: str, path: str, n: int) -> tuple[str, float, int, object]:
    start = time.perf_counter()
    with open(path, "rb") as handle:
        if kind == "upload":
            answer = client.post("/api/images", files=[("files", (f"load-{n}.jpg", handle))])
        else:
            answer = client.post("/api/search", files={"file": (Path(path).name, handle)}, data={"k": "10"})
    seconds = time.perf_counter() - start
    body = answer.json() if answer.status_code == 200 else answer.text[:300]
    return kind, seconds, answer.status_code, body


def check_uploads(client: httpx.Client, gallery: Path, measured) -> dict:
    """Every file in uploads/ has one row and every accepted upload is such a file."""
    on_disk = sorted(p.relative_to(gallery).as_posix() for p in (gallery / "uploads").glob("*"))
    accepted = sorted(f for kind, _, status, body in measured if kind == "upload" and status == 200
                      for f in body["files"])
    rows = client.get("/api/count", params={"where": 'folder == "uploads"'}).json()["count"]
    return {"uploads_accepted": len(accepted), "upload_files_on_disk": len(on_disk), "upload_rows": rows,
            "every_upload_indexed_or_not_written": accepted == on_disk and rows == len(on_disk)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--upload-every", type=int, default=4, help="one request in N is an upload (default 4)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "serve.json")
    args = parser.parse_args()
    settings = get_settings()
    queries = load_queries(settings=settings)
    plan = [("upload" if n % args.upload_every == 0 else "search", queries.path[n % len(queries)],
             queries.label[n % len(queries)]) for n in range(args.requests)]
    with tempfile.TemporaryDirectory() as scratch:
        gallery = Path(scratch) / "photos"
        gallery_rows = copy_gallery(settings, gallery)
        port = free_port()
        env = {**os.environ, "MILVUS_URI": str(Path(scratch) / "milvus" / "serve.db"),
               "GRADIO_TEMP_DIR": str(Path(scratch) / "gradio")}
        log = Path(scratch) / "serve.log"
        started = time.perf_counter()
        with open(log, "w") as out:
            server = subprocess.Popen([str(Path(sys.executable).parent / "imgsearch"), "serve", str(gallery), "--port",
                                       str(port), "--token", TOKEN, "--quiet"], env=env, stdout=out,
                                      stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for_url(f"{base}/api/health", server, log, timeout_s=900)
            startup_s = time.perf_counter() - started
            with httpx.Client(base_url=base, timeout=120, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
                send(client, "search", plan[1][1], -1)  # warm-up: the model's first run
                begin = time.perf_counter()
                with ThreadPoolExecutor(args.clients) as pool:
                    measured = list(pool.map(lambda item: send(client, item[1][0], item[1][1], item[0]),
                                             enumerate(plan)))
                wall_s = time.perf_counter() - begin
                uploads = check_uploads(client, gallery, measured)
            peak_mb = peak_memory_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=60)
    result = summarize(args, settings, measured, plan, wall_s) | uploads | {
        "gallery_rows": gallery_rows, "server_peak_memory_mb": round(peak_mb, 1), "startup_s": round(startup_s, 1)}
    print(json.dumps(result, indent=2))
    write_benchmark(args.out, result)


def first_gallery_label(hits: list[dict]) -> str | None:
    """The label of the first hit from the gallery itself (uploads are copies of the queries)."""
    return next((hit["label"] for hit in hits if hit["label"] != "uploads"), None)


def summarize(args, settings, measured, plan, wall_s: float) -> dict:
    def latency(kind: str, q: float) -> float:
        return round(float(np.percentile([m[1] * 1000 for m in measured if m[0] == kind], q)), 1)

    searches = [(m, label) for m, (_, _, label) in zip(measured, plan) if m[0] == "search"]
    return {
        "command": f"python benchmarks/serve_load.py --requests {args.requests} --clients {args.clients} "
                   f"--upload-every {args.upload_every}",
        "server": "imgsearch serve FOLDER --token (a copy of the tutorial gallery; efficientnet_lite0, Milvus Lite "
                  "FLAT, app and text search mounted)",
        "slice": settings.slice,
        "requests": len(measured),
        "searches": len(searches),
        "uploads": len(measured) - len(searches),
        "clients": args.clients,
        "errors": sum(1 for m in measured if m[2] != 200),
        "search_latency_ms_p50": latency("search", 50),
        "search_latency_ms_p99": latency("search", 99),
        "upload_latency_ms_p50": latency("upload", 50),
        "upload_latency_ms_p99": latency("upload", 99),
        "requests_per_s": round(len(measured) / wall_s, 2),
        "top1_label_matches": round(float(np.mean([first_gallery_label(m[3]["hits"]) == label
                                                   for m, label in searches if m[2] == 200])), 3),
    }


if __name__ == "__main__":
    main()
