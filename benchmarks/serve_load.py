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

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from _harness import Bench, run_benchmark

from imgsearch_helpers.data.tutorial import load_catalog, load_queries
from imgsearch_helpers.evaluation.metrics import evaluate
from imgsearch_helpers.evaluation.timing import Timing, time_runs
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
    """One request, timed from the client (reading the file included): (kind, seconds, status, body)."""
    def post() -> httpx.Response:
        with open(path, "rb") as handle:
            if kind == "upload":
                return client.post("/api/images", files=[("files", (f"load-{n}.jpg", handle))])
            return client.post("/api/search", files={"file": (Path(path).name, handle)}, data={"k": "10"})

    request = time_runs(post)
    answer = request.result
    body = answer.json() if answer.status_code == 200 else answer.text[:300]
    return kind, request.total, answer.status_code, body


def start_server(gallery: Path, bench: Bench, port: int) -> subprocess.Popen:
    """`imgsearch serve` on `gallery`, its output in the scratch folder, once its health route answers."""
    env = {**os.environ, "MILVUS_URI": bench.settings().milvus_uri, "GRADIO_TEMP_DIR": str(bench.scratch / "gradio")}
    log = bench.scratch / "serve.log"
    with open(log, "w") as out:
        command = [str(Path(sys.executable).parent / "imgsearch"), "serve", str(gallery), "--port", str(port),
                   "--token", TOKEN, "--quiet"]
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_url(f"http://127.0.0.1:{port}/api/health", server, log, timeout_s=900)
    except BaseException:
        server.terminate()
        raise
    return server


def check_uploads(client: httpx.Client, gallery: Path, measured) -> dict:
    """Every file in uploads/ has one row and every accepted upload is such a file."""
    on_disk = sorted(p.relative_to(gallery).as_posix() for p in (gallery / "uploads").glob("*"))
    accepted = sorted(f for kind, _, status, body in measured if kind == "upload" and status == 200
                      for f in body["files"])
    rows = client.get("/api/count", params={"where": 'folder == "uploads"'}).json()["count"]
    return {"uploads_accepted": len(accepted), "upload_files_on_disk": len(on_disk), "upload_rows": rows,
            "every_upload_indexed_or_not_written": accepted == on_disk and rows == len(on_disk)}


def send_all(client: httpx.Client, plan, clients: int) -> list:
    """Every planned request, `clients` at a time."""
    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(lambda item: send(client, item[1][0], item[1][1], item[0]), enumerate(plan)))


def add_options(parser) -> None:
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--upload-every", type=int, default=4, help="one request in N is an upload (default 4)")


def measure(bench: Bench) -> dict:
    args, settings = bench.args, bench.settings()
    queries = load_queries(settings=settings)
    plan = [("upload" if n % args.upload_every == 0 else "search", queries.path[n % len(queries)],
             queries.label[n % len(queries)]) for n in range(args.requests)]
    gallery = bench.scratch / "photos"
    gallery_rows = copy_gallery(settings, gallery)
    port = free_port()
    startup = time_runs(lambda: start_server(gallery, bench, port))
    server = startup.result
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120,
                          headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            send(client, "search", plan[1][1], -1)  # warm-up: the model's first run
            run = time_runs(lambda: send_all(client, plan, args.clients))
            uploads = check_uploads(client, gallery, run.result)
        peak_mb = peak_memory_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)
    return summarize(args, settings, run.result, plan, run.total) | uploads | {
        "gallery_rows": gallery_rows, "server_peak_memory_mb": round(peak_mb, 1), "startup_s": round(startup.total, 1)}


def first_gallery_label(hits: list[dict]) -> str | None:
    """The label of the first hit from the gallery itself (uploads are copies of the queries)."""
    return next((hit["label"] for hit in hits if hit["label"] != "uploads"), None)


def summarize(args, settings, measured, plan, wall_s: float) -> dict:
    def latency(kind: str, q: float) -> float:
        return round(Timing(tuple(m[1] for m in measured if m[0] == kind)).percentile_ms(q), 1)

    searches = [(m, label) for m, (_, _, label) in zip(measured, plan) if m[0] == "search"]
    answered = [(m, label) for m, label in searches if m[2] == 200]  # the query's label: its top hit's one relevant
    top1 = evaluate([{label} for _, label in answered], [[first_gallery_label(m[3]["hits"])] for m, _ in answered],
                    1, ("top1",))["top1"]
    return {
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
        "top1_label_matches": round(top1, 3),
    }


if __name__ == "__main__":
    run_benchmark(measure, __doc__, "serve.json", add_options)
