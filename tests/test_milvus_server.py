"""A real Milvus server: a server that dies in the middle of an ingest fails every call at once
with a clear error, and the rerun ingest completes it. (The notebooks reach a server through
MILVUS_URI by the same engine: notebook 08 runs against one in the notebook tier.)

The crash test kills the session's server (SIGKILL to it and its launcher) and starts it again
on the same data; it runs last in this module, and the restart takes a couple of minutes
(lingering sockets and the dead processes' registrations must expire first).
"""
import subprocess
import sys
import time
from pathlib import Path

import pytest

import imgsearch_helpers.retrieval.search as search_module
from imgsearch_helpers.config import get_settings
from imgsearch_helpers.data.tutorial import load_catalog
from imgsearch_helpers.embed.cache import content_digest, open_cache
from imgsearch_helpers.errors import EngineUnavailableError
from imgsearch_helpers.index import IndexSpec, MilvusEngine, open_engine
from imgsearch_helpers.retrieval.search import ingest


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

