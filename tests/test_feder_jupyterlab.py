"""Feder's views inside a real JupyterLab: a server on localhost, the notebook run from its menu in
headless Chromium. Outputs' scripts run as JupyterLab runs them, and the views must draw from data
sent by an earlier output, with no request leaving the machine."""
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from conftest import TOOL_HOME
from nbformat.v4 import new_code_cell, new_notebook

from imgsearch_helpers.browser import FLAGS, chromium_path
from imgsearch_helpers.feder.assets import fetch_feder_js
from imgsearch_helpers.local_server import free_port, wait_for_url

pytestmark = pytest.mark.browser  # drives Debian's Chromium

TOKEN = "imgsearch-test"
CELLS = [
    """import numpy as np
from imgsearch_helpers.feder import FederIndex
from imgsearch_helpers.index import IndexSpec, open_engine
vectors = np.random.default_rng(0).normal(size=(400, 32)).astype("float32")
ivf = open_engine("faiss", index=IndexSpec("IVF_FLAT", {"nlist": 16}))
ivf.add(np.arange(400), vectors)
hnsw = open_engine("hnswlib", index=IndexSpec("HNSW", {"M": 8}))
hnsw.add(np.arange(400), vectors)""",
    'ivf_view = FederIndex.from_engine(ivf, "ivf.index", progress=False)\nivf_view',
    'ivf_view.search_by_id(3, k=5, nprobe=3, stage="fine")',
    'hnsw_view = FederIndex.from_engine(hnsw, "hnsw.bin", progress=False)\nhnsw_view',
    "hnsw_view.search_by_vector(vectors[5], k=5, ef=20)",
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    fetch_feder_js()
    folder = tmp_path_factory.mktemp("lab")
    notebook = new_notebook(cells=[new_code_cell(source) for source in CELLS])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, folder / "feder.ipynb")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser", f"--port={port}",
         "--ip=127.0.0.1", f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={folder}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_url(f"{base}/api/status?token={TOKEN}", server, timeout_s=60)
        yield base, folder
    finally:
        server.terminate()
        server.wait(timeout=30)


DRAWN = ("document.querySelectorAll('.jp-OutputArea .imgsearch-feder-view').length === 2 && "
         "[...document.querySelectorAll('.imgsearch-feder-view')].every(e => e.dataset.status === 'drawn')")


def test_views_draw_inline_in_jupyterlab_and_again_from_the_small_saved_notebook(lab):
    from playwright.sync_api import sync_playwright

    lab, folder = lab
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_path()), args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors, outside = [], []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("request", lambda request: outside.append(request.url)
                if request.url.startswith("http") and not request.url.startswith(lab) else None)
        page.goto(f"{lab}/lab/tree/feder.ipynb?token={TOKEN}")
        page.wait_for_selector(".jp-Notebook", timeout=60_000)
        page.locator(".jp-StatusBar-Widget", has_text="Idle").first.wait_for(timeout=60_000)  # the kernel is up
        page.get_by_text("Run", exact=True).first.click()
        page.get_by_text("Run All Cells", exact=True).click()
        page.wait_for_function(DRAWN, timeout=180_000)
        texts = page.evaluate("[...document.querySelectorAll('.imgsearch-feder-view')].map(e => e.innerText)")
        saved = folder / "feder.ipynb"
        before = saved.stat().st_mtime
        page.keyboard.press("Control+s")  # what autosave does too
        deadline = time.monotonic() + 30
        while saved.stat().st_mtime == before and time.monotonic() < deadline:
            time.sleep(0.2)
        page.reload()  # reopening: the views draw again from the data file the server serves
        page.wait_for_function(DRAWN, timeout=120_000)
        browser.close()
    assert "Find the 5 (k=5) vectors closest to the target from these 3 (nprobe=3) clusters" in texts[0]
    assert "k = 5, ef_search = 20." in texts[1]
    assert errors == [] and outside == [], (errors, outside)
    notebook = saved.read_text()
    assert saved.stat().st_mtime > before and "imgsearch-feder-view" in notebook  # saved with its outputs
    assert len(notebook) < 100_000, len(notebook)  # the index and thumbnails stayed in feder-data/
    assert list((folder / "feder-data").glob("*.json"))


def test_jupyterlab_keeps_its_workspace_out_of_the_home_folder(lab):
    """The server ran with the tests' tool folders (conftest): a user's next `make lab` must not
    reopen the test notebook from a workspace the test left in ~/.jupyter."""
    workspaces = Path(os.environ["JUPYTERLAB_WORKSPACES_DIR"])
    assert workspaces.is_relative_to(TOOL_HOME)
    home = Path.home() / ".jupyter" / "lab" / "workspaces"
    left = [p for p in home.glob("*.jupyterlab-workspace") if "feder.ipynb" in p.read_text()] if home.is_dir() else []
    assert left == []
