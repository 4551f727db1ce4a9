"""Saved notebooks keep screenshots of Feder's views (drawn in headless Chromium), not megabytes of data."""
import base64
import io
import json

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output
from PIL import Image

from imgsearch_helpers.feder import FederIndex
from imgsearch_helpers.feder.assets import fetch_feder_js
from imgsearch_helpers.feder.snapshots import DATA_NOTE, screenshots, snapshot_feder_outputs
from imgsearch_helpers.index import IndexSpec, open_engine

pytestmark = pytest.mark.browser  # drives Debian's Chromium


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    fetch_feder_js()
    vectors = np.random.default_rng(5).normal(size=(400, 64)).astype(np.float32)
    engine = open_engine("faiss", index=IndexSpec("IVF_FLAT", {"nlist": 16}))
    engine.add(np.arange(400), vectors)
    return FederIndex.from_engine(engine, tmp_path_factory.mktemp("snap") / "ivf.index", progress=False)


def output_of(shown) -> dict:
    data, metadata = shown._repr_mimebundle_()
    return new_output("display_data", data=data, metadata=metadata)


def executed_notebook(index, views):
    cells = [new_code_cell("index", outputs=[output_of(index)])]
    cells += [new_code_cell("view", outputs=[output_of(view)]) for view in views]
    return new_notebook(cells=cells)


def test_views_become_screenshots_and_the_data_is_left_out(index):
    notebook = executed_notebook(index, [index.overview(), index.search_by_id(3, k=5, nprobe=2, stage="fine")])
    before = len(nbformat.writes(notebook))
    summary = snapshot_feder_outputs(notebook)
    assert summary == "2 Feder views saved as screenshots"
    text = nbformat.writes(notebook)
    assert "text/html" not in text and "<script" not in text and len(text) < before / 4
    data_output, *view_outputs = [cell.outputs[0] for cell in notebook.cells]
    assert data_output["data"]["text/plain"].endswith(DATA_NOTE)
    for output, caption in zip(view_outputs, ["IVF_FLAT overview", "search by id 3: k=5, nprobe=2"]):
        assert caption in output["data"]["text/plain"]
        image = Image.open(io.BytesIO(base64.b64decode(output["data"]["image/jpeg"])))
        assert image.width == 1000 and image.height > 600  # the caption above the 1000 x 600 view
        pixels = np.asarray(image.convert("L"), dtype=float)
        assert pixels.std() > 10  # something was drawn, not a blank frame
    nbformat.validate(notebook)


def test_without_a_browser_the_views_keep_only_their_caption(index, monkeypatch, tmp_path):
    monkeypatch.setenv("IMGSEARCH_CHROMIUM", str(tmp_path / "no-chromium"))
    notebook = executed_notebook(index, [index.overview()])
    summary = snapshot_feder_outputs(notebook)
    assert summary.startswith("Feder views not saved as screenshots: no Chromium found")
    view = notebook.cells[1].outputs[0]
    assert set(view["data"]) == {"text/plain"} and "no screenshot" in view["data"]["text/plain"]
    assert "text/html" not in json.dumps(notebook)


def test_a_notebook_without_feder_is_left_alone():
    notebook = new_notebook(cells=[new_code_cell("1", outputs=[new_output("stream", name="stdout", text="1\n")])])
    assert snapshot_feder_outputs(notebook) == "no Feder views"
    assert notebook.cells[0].outputs[0]["text"] == "1\n"


def test_a_snapshot_shows_the_last_frame_of_the_animation_it_skips(index, tmp_path):
    """Snapshots run Feder's animations 50 times faster; the frame they end on must be the one the
    animation played at full length ends on (an HNSW search animates its steps one by one)."""
    vectors = np.random.default_rng(6).normal(size=(120, 32)).astype(np.float32)
    engine = open_engine("hnswlib", index=IndexSpec("HNSW", {"M": 4, "efConstruction": 16}, {"ef": 4}))
    engine.add(np.arange(120), vectors)
    hnsw = FederIndex.from_engine(engine, tmp_path / "hnsw.bin", progress=False)
    views = [hnsw.search_by_vector(vectors[7], k=4, ef=4), index.search_by_id(3, k=5, nprobe=2, stage="coarse")]
    data = {each.key: output_of(each)["data"]["text/html"] for each in (hnsw, index)}
    shown = [(output_of(view)["data"]["text/html"], view.index.key) for view in views]
    played, skipped = (screenshots(data, shown, kind="png", play_animations=play) for play in (True, False))
    for full, fast in zip(played, skipped):
        full, fast = (np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"), dtype=int) for shot in (full, fast))
        assert full.shape == fast.shape
        rows, columns = np.nonzero(np.abs(full - fast).max(axis=2) > 16)
        if len(rows):  # only where the HNSW time slider's handle stops (the last frame overshoots the end a little)
            assert np.ptp(rows) < 32 and np.ptp(columns) < 32, (rows.min(), rows.max(), columns.min(), columns.max())


def test_a_view_whose_script_cannot_load_is_named_at_once(index, monkeypatch, tmp_path):
    """No local copy of Feder's script and no network (the page is offline): the views never draw,
    and the error says why at once instead of waiting for an animation that never starts."""
    import time

    from imgsearch_helpers.errors import RenderError

    monkeypatch.setenv("IMGSEARCH_ASSETS_DIR", str(tmp_path / "no-local-copy"))
    monkeypatch.delenv("IMGSEARCH_FEDER_JS", raising=False)
    online_only = FederIndex(index.path, progress=False)
    assert online_only.script.url  # the CDN, which the offline page refuses
    started = time.monotonic()
    with pytest.raises(RenderError, match="unpkg.com"):
        snapshot_feder_outputs(executed_notebook(online_only, [online_only.overview()]))
    assert time.monotonic() - started < 60
