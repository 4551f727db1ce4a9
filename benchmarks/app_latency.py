"""Single-query latency through the showcase app: upload in the browser to results on the page.

    python benchmarks/app_latency.py [--queries 30] [--out FILE]

Starts the app (`python -m imgsearch_helpers.serve.app`) on a free localhost port with a temporary
Milvus Lite database (the index is built from the embedding cache), then drives Debian's
Chromium: for each test query, upload the file and wait until the status line names it. Reports
the browser's wall time (upload, decode, embed, search, thumbnails, page update) and the
server's own search time from the status line, one query at a time after one warm-up query.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from _harness import Bench, run_benchmark

from imgsearch_helpers.browser import FLAGS, chromium_path
from imgsearch_helpers.data.tutorial import load_queries
from imgsearch_helpers.evaluation.metrics import evaluate
from imgsearch_helpers.evaluation.timing import Timing, time_each
from imgsearch_helpers.local_server import free_port, wait_for_url


def start_app(bench: Bench) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "MILVUS_URI": bench.settings().milvus_uri, "GRADIO_TEMP_DIR": str(bench.scratch / "up")}
    server = subprocess.Popen([sys.executable, "-m", "imgsearch_helpers.serve.app", "--port", str(port), "--no-text"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_url(url, server, timeout_s=300)
    except RuntimeError:
        server.terminate()
        raise
    return server, url


def clear_upload(page) -> None:
    """Back to an empty upload box."""
    if page.locator("#query-upload input[type=file]").count() == 0:
        page.locator("#query-upload button[aria-label='Clear']").click()
        page.wait_for_function("document.querySelector('#image-status').innerText.startsWith('Upload')")


def upload(page, path: Path) -> tuple[float, str]:
    """Upload one query and wait for its results on the page: (server ms, top label) as the page shows them."""
    page.set_input_files("#query-upload input[type=file]", str(path))
    page.wait_for_function("(name) => document.querySelector('#image-status').innerText.includes(name)",
                           arg=path.name, timeout=60_000)
    page.wait_for_selector("#image-results .caption-label")
    server_ms = float(re.search(r"in (\d+) ms", page.inner_text("#image-status")).group(1))
    top = page.inner_text("#image-results .caption-label").split(" · ", 1)[1]  # "<similarity> · <label>"
    return server_ms, top


def add_options(parser) -> None:
    parser.add_argument("--queries", type=int, default=30)


def measure(bench: Bench) -> dict:
    from playwright.sync_api import sync_playwright

    settings = bench.settings()
    queries = load_queries(settings=settings)
    picked = queries.iloc[np.linspace(0, len(queries) - 1, bench.args.queries + 1).astype(int)]
    server, url = start_app(bench)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(chromium_path()), args=FLAGS, headless=True)
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.goto(url)
            page.wait_for_selector("#query-upload input[type=file]", state="attached", timeout=60_000)
            upload(page, Path(picked.path.iloc[0]))  # warm-up: the model's first trace
            # the browser's wall time from upload to results, per query (the upload box cleared untimed)
            uploads = time_each(lambda path: upload(page, path), [Path(path) for path in picked.path.iloc[1:]],
                                setup=lambda _: clear_upload(page))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    server_ms = Timing(tuple(ms / 1000 for ms, _ in uploads.result))  # the server's own search times, as shown
    labels = picked.label.iloc[1:]  # the query's label is the one relevant label for its top hit
    top1 = evaluate([{label} for label in labels], [[top] for _, top in uploads.result], 1, ("top1",))["top1"]
    return {
        "slice": settings.slice,
        "queries": len(uploads.seconds),
        "upload_to_results_ms_p50": round(uploads.percentile_ms(50), 1),
        "upload_to_results_ms_p95": round(uploads.percentile_ms(95), 1),
        "server_search_ms_p50": round(server_ms.percentile_ms(50), 1),
        "server_search_ms_p95": round(server_ms.percentile_ms(95), 1),
        "top1_label_matches": round(top1, 3),
        "app": "efficientnet_lite0, milvus (Milvus Lite, FLAT: the index for 1,000 rows), k=6, Chromium headless",
    }


if __name__ == "__main__":
    run_benchmark(measure, __doc__, "app.json", add_options)
