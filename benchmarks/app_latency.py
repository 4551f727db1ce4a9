"""Single-query latency through the showcase app: upload in the browser to results on the page.

    python benchmarks/app_latency.py [--queries 30] [--out FILE]

Starts the app (`python -m imgsearch_helpers.serve.app`) on a free localhost port with a temporary
Milvus Lite database (the index is built from the embedding cache), then drives Debian's
Chromium: for each test query, upload the file and wait until the status line names it. Reports
the browser's wall time (upload, decode, embed, search, thumbnails, page update) and the
server's own search time from the status line, one query at a time after one warm-up query.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from imgsearch_helpers.browser import FLAGS, chromium_path
from imgsearch_helpers.config import get_settings
from imgsearch_helpers.data.tutorial import load_queries
from imgsearch_helpers.evaluation.results import write_benchmark
from imgsearch_helpers.local_server import free_port, wait_for_url


def start_app(scratch: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "MILVUS_URI": str(scratch / "milvus" / "app.db"), "GRADIO_TEMP_DIR": str(scratch / "up")}
    server = subprocess.Popen([sys.executable, "-m", "imgsearch_helpers.serve.app", "--port", str(port), "--no-text"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_url(url, server, timeout_s=300)
    except RuntimeError:
        server.terminate()
        raise
    return server, url


def one_query(page, path: Path) -> tuple[float, float, str]:
    """(browser seconds, server ms, top label) for one upload."""
    if page.locator("#query-upload input[type=file]").count() == 0:
        page.locator("#query-upload button[aria-label='Clear']").click()
        page.wait_for_function("document.querySelector('#image-status').innerText.startsWith('Upload')")
    start = time.perf_counter()
    page.set_input_files("#query-upload input[type=file]", str(path))
    page.wait_for_function("(name) => document.querySelector('#image-status').innerText.includes(name)",
                           arg=path.name, timeout=60_000)
    page.wait_for_selector("#image-results .caption-label")
    seconds = time.perf_counter() - start
    server_ms = float(re.search(r"in (\d+) ms", page.inner_text("#image-status")).group(1))
    top = page.inner_text("#image-results .caption-label").split(" · ", 1)[1]  # "<similarity> · <label>"
    return seconds, server_ms, top


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "app.json")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    settings = get_settings()
    queries = load_queries(settings=settings)
    picked = queries.iloc[np.linspace(0, len(queries) - 1, args.queries + 1).astype(int)]
    with tempfile.TemporaryDirectory() as scratch:
        server, url = start_app(Path(scratch))
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(chromium_path()), args=FLAGS, headless=True)
                page = browser.new_page(viewport={"width": 1300, "height": 1000})
                page.goto(url)
                page.wait_for_selector("#query-upload input[type=file]", state="attached", timeout=60_000)
                one_query(page, Path(picked.path.iloc[0]))  # warm-up: the model's first trace
                measured = [(*one_query(page, Path(row.path)), row.label) for row in picked.iloc[1:].itertuples()]
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    browser_ms = np.array([m[0] for m in measured]) * 1000
    server_ms = np.array([m[1] for m in measured])
    result = {
        "command": f"python benchmarks/app_latency.py --queries {args.queries}",
        "slice": settings.slice,
        "queries": len(measured),
        "upload_to_results_ms_p50": round(float(np.percentile(browser_ms, 50)), 1),
        "upload_to_results_ms_p95": round(float(np.percentile(browser_ms, 95)), 1),
        "server_search_ms_p50": round(float(np.percentile(server_ms, 50)), 1),
        "server_search_ms_p95": round(float(np.percentile(server_ms, 95)), 1),
        "top1_label_matches": round(float(np.mean([m[2] == m[3] for m in measured])), 3),
        "app": "efficientnet_lite0, milvus (Milvus Lite, FLAT: the index for 1,000 rows), k=6, Chromium headless",
    }
    print(write_benchmark(args.out, result).read_text())


if __name__ == "__main__":
    main()
