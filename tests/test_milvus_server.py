"""A real Milvus server: notebook 01 runs against it through MILVUS_URI; a server that dies in the
middle of an ingest fails every call at once with a clear error, and the rerun ingest completes it.

The crash test kills the session's server (SIGKILL to it and its launcher) and starts it again
on the same data; it runs last in this module, and the restart takes a couple of minutes
(lingering sockets and the dead processes' registrations must expire first).
"""
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import imgsearch_helpers.retrieval.search as search_module
from imgsearch_helpers.config import get_settings
from imgsearch_helpers.data.tutorial import load_catalog
from imgsearch_helpers.embed.cache import content_digest, open_cache
from imgsearch_helpers.errors import EngineUnavailableError
from imgsearch_helpers.evaluation.results import load
from imgsearch_helpers.index import TUTORIAL_IVF, IndexSpec, MilvusEngine, open_engine
from imgsearch_helpers.retrieval.search import ingest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_build_image_search_engine.ipynb"


def stored_ids(engine: MilvusEngine) -> list[int]:
    rows = engine.client.query(engine.collection, filter="id >= 0", output_fields=["id"], limit=16_384)
    return sorted(int(row["id"]) for row in rows)


def ended(pid: int) -> bool:
    """Gone, or a zombie waiting for init to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_launched_server_ends_when_its_starter_is_killed():
    """The mechanism MilvusServer launches with, checked on a plain `sleep` (a second Milvus server
    cannot run beside the session's): the starter is SIGKILLed, the child must end at once."""
    starter = ("import subprocess, time\n"
               "from imgsearch_helpers.index.milvus_server import stop_with_parent\n"
               "child = subprocess.Popen(['sleep', '120'], preexec_fn=stop_with_parent)\n"
               "print(child.pid, flush=True)\n"
               "time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", starter], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert not ended(child)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    while not ended(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ended(child), f"process {child} outlived its starter"


@pytest.mark.notebook
def test_notebook_01_runs_against_the_server(milvus_server, tmp_path, monkeypatch, real_dataset):
    results = tmp_path / "runs"
    for name, value in {"MILVUS_URI": milvus_server.uri, "IMGSEARCH_SLICE": "tiny",
                        "IMGSEARCH_RESULTS_DIR": str(results)}.items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    settings = get_settings()
    assert "http://127.0.0.1" in "".join(c.outputs[0].get("text", "") for c in notebook.cells[:3]
                                         if c.cell_type == "code" and c.outputs)  # the settings it printed
    rows = {row["engine"]: row for row in load("01_build_engine", settings)["rows"]}
    assert rows["milvus"]["queries"] == rows["exact"]["queries"] == 10
    assert abs(rows["milvus"]["mhr@10"] - rows["exact"]["mhr@10"]) <= 0.05  # IVF, nprobe 8 of 16
    engine = MilvusEngine(milvus_server.uri, collection="reverse_image_search")
    catalog = load_catalog(settings)
    assert engine.count() == 100 and stored_ids(engine) == sorted(catalog.id.tolist())
    assert engine.describe_index() == {"index_type": "IVF_FLAT", "metric_type": "L2", "params": TUTORIAL_IVF.build}
    engine.close()


class CrashAfter:
    """An engine that kills the server after its n-th add, as a crash in the middle of an ingest."""

    def __init__(self, engine, server, adds: int):
        self.engine, self.server, self.adds = engine, server, adds

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def add(self, ids, vectors, metadata=None):
        self.engine.add(ids, vectors, metadata)
        self.adds -= 1
        if self.adds == 0:
            self.server.kill()


def test_a_crash_during_ingest_fails_fast_and_a_rerun_completes_it(milvus_server, tmp_path, monkeypatch, lite0):
    settings = get_settings(slice="tiny", cache_dir=tmp_path / "cache", milvus_uri=milvus_server.uri)
    catalog = load_catalog(settings)
    monkeypatch.setattr(search_module, "ROWS_PER_ADD", 20)  # several adds for 100 images
    embedder = lite0
    engine = open_engine("milvus", collection="crash_ingest", index=IndexSpec("FLAT"), settings=settings)
    engine.drop()
    cache = open_cache(settings)

    start = time.monotonic()
    with pytest.raises(EngineUnavailableError, match=f"Milvus at {milvus_server.uri} is not answering"):
        ingest(catalog, embedder, CrashAfter(engine, milvus_server, adds=2), cache, progress=False)
    assert time.monotonic() - start < 60  # embedding 100 images included: no hang on the dead server

    start = time.monotonic()  # while it is down, every call fails at once, naming the server
    with pytest.raises(EngineUnavailableError, match="is not answering"):
        engine.count()
    with pytest.raises(EngineUnavailableError, match=f"cannot connect to Milvus server at {milvus_server.uri}"):
        MilvusEngine(milvus_server.uri, collection="crash_ingest")
    assert time.monotonic() - start < 15
    embedded_before = len(cache.get_many(embedder.key, list(_digests(catalog))))
    assert 40 <= embedded_before < 100  # the crash came in the middle

    milvus_server.start()  # same data folder, same ports
    again = open_engine("milvus", collection="crash_ingest", index=IndexSpec("FLAT"), settings=settings)
    report = ingest(catalog, embedder, again, cache, progress=False)
    assert report.added == 100 and report.embed.from_cache >= embedded_before
    assert again.count() == 100
    assert stored_ids(again) == sorted(catalog.id.tolist())  # every image once: no duplicates, none lost
    found, _ = again.search(again.fetch(catalog.id.to_numpy()[:5]), 1)
    assert found[:, 0].tolist() == catalog.id.tolist()[:5]
    again.drop()
    again.close()


def _digests(catalog):
    return (content_digest(Path(path).read_bytes()) for path in catalog.path)

