"""Load on `imgsearch serve`: concurrent clients searching by uploaded image, against the full gallery.

    python benchmarks/serve_load.py [--requests 200] [--clients 8] [--out benchmarks/results/serve.json]

Starts `imgsearch serve dataset` (the app and text search mounted, as a user runs it) on a free
localhost port with a temporary Milvus Lite database built from the configured embedding cache,
waits until it answers, then sends `--requests` POST /api/search uploads of the test queries from
`--clients` threads at once. Reports latency (p50 / p99 per request, client side), requests per
second, errors (any answer but 200), the top-1 label agreement, and the server's peak memory
(VmHWM of its process, read from /proc while it runs).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from imgsearch_helpers.config import get_settings
from imgsearch_helpers.data import load_queries
from imgsearch_helpers.results import write_benchmark
from imgsearch_helpers.tools.local_server import free_port, wait_for_url


def peak_memory_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def search_once(client: httpx.Client, path: str) -> tuple[float, int, str | None]:
    start = time.perf_counter()
    with open(path, "rb") as handle:
        answer = client.post("/api/search", files={"file": (Path(path).name, handle)}, data={"k": "10"})
    seconds = time.perf_counter() - start
    top = answer.json()["hits"][0]["label"] if answer.status_code == 200 else None
    return seconds, answer.status_code, top


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "serve.json")
    args = parser.parse_args()
    settings = get_settings()
    queries = load_queries(settings=settings)
    paths = [queries.path[i % len(queries)] for i in range(args.requests)]
    labels = [queries.label[i % len(queries)] for i in range(args.requests)]
    with tempfile.TemporaryDirectory() as scratch:
        port = free_port()
        env = {**os.environ, "MILVUS_URI": str(Path(scratch) / "milvus" / "serve.db"),
               "GRADIO_TEMP_DIR": str(Path(scratch) / "gradio")}
        log = Path(scratch) / "serve.log"
        started = time.perf_counter()
        with open(log, "w") as out:
            server = subprocess.Popen([str(Path(sys.executable).parent / "imgsearch"), "serve", "dataset", "--port",
                                       str(port), "--quiet"], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for_url(f"{base}/api/health", server, log, timeout_s=900)
            startup_s = time.perf_counter() - started
            rows = httpx.get(f"{base}/api/health").json()["rows"]
            with httpx.Client(base_url=base, timeout=120) as client:
                search_once(client, paths[0])  # warm-up: the model's first trace
                begin = time.perf_counter()
                with ThreadPoolExecutor(args.clients) as pool:
                    measured = list(pool.map(lambda p: search_once(client, p), paths))
                wall_s = time.perf_counter() - begin
            peak_mb = peak_memory_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=60)
    latencies = np.array([m[0] for m in measured]) * 1000
    result = {
        "command": f"python benchmarks/serve_load.py --requests {args.requests} --clients {args.clients}",
        "server": "imgsearch serve dataset (efficientnet_lite0, Milvus Lite FLAT, app and text search mounted)",
        "slice": settings.slice,
        "gallery_rows": rows,
        "requests": len(measured),
        "clients": args.clients,
        "errors": sum(1 for m in measured if m[1] != 200),
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 1),
        "latency_ms_p99": round(float(np.percentile(latencies, 99)), 1),
        "requests_per_s": round(len(measured) / wall_s, 2),
        "top1_label_matches": round(float(np.mean([m[2] == label for m, label in zip(measured, labels)])), 3),
        "server_peak_memory_mb": round(peak_mb, 1),
        "startup_s": round(startup_s, 1),
    }
    print(json.dumps(result, indent=2))
    write_benchmark(args.out, result)


if __name__ == "__main__":
    main()
